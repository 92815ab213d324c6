/* evidence.c — building a tw_evidence: by hand (add_arm / add_curve), from run
 * directories (run.json, metrics.json, predictions.jsonl; docs/eval.md), from an audit
 * report (task/audit.h) and from a task file's goal and prices.
 * Deliberately not here: cost arithmetic (cost.c), the rules (verdict.c). */
#include "decide/evidence.h"

#include "score/stats.h"
#include "task/predictions.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[] = {"other", "classic", "prompt", "lora"};

const char *tw_arm_kind_str(tw_arm_kind k) { return (unsigned)k < 4 ? KIND_NAMES[k] : "other"; }

tw_arm_kind tw_arm_kind_parse(const char *s)
{
    for (int i = 1; i < 4; i++)
        if (s && !strcmp(s, KIND_NAMES[i])) return (tw_arm_kind)i;
    return TW_ARM_OTHER;
}

tw_status tw_evidence_set_str(char **field, const char *value, tw_error *err)
{
    char *s = tw_strdup(value ? value : "", err);
    if (!s) return TW_ERR_NOMEM;
    free(*field);
    *field = s;
    return TW_OK;
}

tw_status tw_evidence_init(tw_evidence *ev, tw_error *err)
{
    memset(ev, 0, sizeof *ev);
    ev->task = tw_strdup("", err);
    ev->metric = tw_strdup("", err);
    if (!ev->task || !ev->metric) {
        tw_evidence_free(ev);
        return TW_ERR_NOMEM;
    }
    ev->metric_max = 1;
    ev->target = NAN;
    ev->monthly_volume = NAN;
    ev->max_latency_ms = NAN;
    ev->alpha = 0.05;
    ev->invalid_threshold = 0.05;
    ev->eval_level = TW_AUDIT_NOT_READY;
    ev->finetune_level = TW_AUDIT_NOT_READY;
    ev->mde = NAN;
    ev->min_train = 100;
    ev->good_train = 1000;
    ev->min_eval = 200;
    ev->good_eval = 500;
    return TW_OK;
}

static void arm_free(tw_ev_arm *a)
{
    free(a->name);
    free(a->model);
    free(a->strategy);
    free(a->run_dir);
    for (size_t i = 0; i < a->n_items; i++) free(a->ids[i]);
    free(a->ids);
    free(a->correct);
}

void tw_evidence_free(tw_evidence *ev)
{
    if (!ev) return;
    for (size_t i = 0; i < ev->n_arms; i++) arm_free(&ev->arms[i]);
    free(ev->arms);
    free(ev->curve);
    free(ev->task);
    free(ev->metric);
    memset(ev, 0, sizeof *ev);
}

static tw_ev_arm *find_arm(tw_evidence *ev, const char *name)
{
    for (size_t i = 0; i < ev->n_arms; i++)
        if (!strcmp(ev->arms[i].name, name)) return &ev->arms[i];
    return NULL;
}

tw_status tw_evidence_add_arm(tw_evidence *ev, const char *name, tw_ev_arm **out, tw_error *err)
{
    if (!name || !*name) return tw_error_set(err, TW_ERR_INVALID, "evidence: an arm needs a name");
    if (find_arm(ev, name)) return tw_error_set(err, TW_ERR_INVALID, "evidence: duplicate arm name '%s'", name);
    tw_status st = tw_grow((void **)&ev->arms, &ev->cap_arms, ev->n_arms + 1, sizeof *ev->arms, err);
    if (st) return st;
    tw_ev_arm *a = &ev->arms[ev->n_arms];
    memset(a, 0, sizeof *a);
    a->name = tw_strdup(name, err);
    a->model = tw_strdup("", err);
    a->strategy = tw_strdup("", err);
    if (!a->name || !a->model || !a->strategy) {
        arm_free(a);
        return TW_ERR_NOMEM;
    }
    a->metric = a->lo = a->hi = NAN;
    a->invalid_rate = NAN;
    a->latency_mean_ms = a->latency_p90_ms = NAN;
    a->rows_per_second = NAN;
    a->tokens_in = a->tokens_out = NAN;
    a->cost_per_call = NAN;
    a->cost = tw_cost_default_params();
    ev->n_arms++;
    if (out) *out = a;
    return TW_OK;
}

tw_status tw_evidence_add_curve(tw_evidence *ev, double n, double metric, tw_error *err)
{
    if (!(n > 0) || isnan(metric))
        return tw_error_set(err, TW_ERR_INVALID, "evidence: a learning-curve point needs n > 0 and a metric");
    tw_lc_point *c = tw_realloc(ev->curve, (ev->n_curve + 1) * sizeof *c, err);
    if (!c) return TW_ERR_NOMEM;
    ev->curve = c;
    c[ev->n_curve].n = n;
    c[ev->n_curve].metric = metric;
    ev->n_curve++;
    return TW_OK;
}

/* ---- JSON helpers: every error names the file and the dotted field ----------------- */

static tw_status load_json(json_t **out, const char *path, tw_error *err)
{
    json_error_t je;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!*out) {
        if (!tw_file_exists(path)) return tw_error_set(err, TW_ERR_IO, "%s: cannot open (missing file?)", path);
        return tw_error_set(err, TW_ERR_PARSE, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return tw_error_set(err, TW_ERR_PARSE, "%s: expected a JSON object", path);
    }
    return TW_OK;
}

/* Follow a dotted path ("a.b.c"); NULL when any step is missing. */
static json_t *jpath(const json_t *o, const char *path)
{
    char key[128];
    const json_t *cur = o;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
        path += n + (path[n] == '.');
    }
    return (json_t *)cur;
}

/* Optional number: absent or null -> NAN; anything but a number is an error. */
static tw_status opt_num(double *out, const json_t *o, const char *path, const char *file, tw_error *err)
{
    json_t *v = jpath(o, path);
    *out = NAN;
    if (!v || json_is_null(v)) return TW_OK;
    if (!json_is_number(v)) return tw_error_set(err, TW_ERR_PARSE, "%s: field '%s' must be a number", file, path);
    *out = json_number_value(v);
    return TW_OK;
}

static tw_status req_num(double *out, const json_t *o, const char *path, const char *file, tw_error *err)
{
    json_t *v = jpath(o, path);
    if (!v) return tw_error_set(err, TW_ERR_PARSE, "%s: missing field '%s'", file, path);
    if (!json_is_number(v)) return tw_error_set(err, TW_ERR_PARSE, "%s: field '%s' must be a number", file, path);
    *out = json_number_value(v);
    return TW_OK;
}

static tw_status req_count(size_t *out, const json_t *o, const char *path, const char *file, tw_error *err)
{
    json_t *v = jpath(o, path);
    if (!v) return tw_error_set(err, TW_ERR_PARSE, "%s: missing field '%s'", file, path);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return tw_error_set(err, TW_ERR_PARSE, "%s: field '%s' must be a non-negative integer", file, path);
    *out = (size_t)json_integer_value(v);
    return TW_OK;
}

/* Optional string: absent -> NULL; not a string -> error. */
static tw_status opt_str(const char **out, const json_t *o, const char *path, const char *file, tw_error *err)
{
    json_t *v = jpath(o, path);
    *out = NULL;
    if (!v || json_is_null(v)) return TW_OK;
    if (!json_is_string(v)) return tw_error_set(err, TW_ERR_PARSE, "%s: field '%s' must be a string", file, path);
    *out = json_string_value(v);
    return TW_OK;
}

static char *join(const char *dir, const char *name, tw_error *err)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = tw_malloc(n, err);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Trimmed equality (ASCII whitespace at both ends). */
static bool trim_eq(const char *a, const char *b)
{
    if (!a || !b) return false;
    while (isspace((unsigned char)*a)) a++;
    while (isspace((unsigned char)*b)) b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && isspace((unsigned char)a[na - 1])) na--;
    while (nb && isspace((unsigned char)b[nb - 1])) nb--;
    return na == nb && memcmp(a, b, na) == 0;
}

static tw_status read_metrics(tw_evidence *ev, tw_ev_arm *a, const char *dir, tw_error *err)
{
    char *path = join(dir, "metrics.json", err);
    if (!path) return TW_ERR_NOMEM;
    json_t *m = NULL;
    tw_status st = load_json(&m, path, err);
    const char *primary = NULL;
    if (!st) st = opt_str(&primary, m, "primary", path, err);
    if (!st && !primary) st = tw_error_set(err, TW_ERR_PARSE, "%s: missing field 'primary'", path);
    if (!st && *ev->metric && strcmp(ev->metric, primary))
        st = tw_error_set(err, TW_ERR_INVALID, "%s: primary metric '%s' differs from the comparison's '%s'", path,
                          primary, ev->metric);
    if (!st && !*ev->metric) {
        st = tw_evidence_set_str(&ev->metric, primary, err);
        if (!st) ev->metric_max = (!strcmp(primary, "bleu") || !strcmp(primary, "chrf")) ? 100 : 1;
    }
    char fld[192];
    if (!st) {
        snprintf(fld, sizeof fld, "metrics.%s.value", primary);
        st = req_num(&a->metric, m, fld, path, err);
    }
    if (!st) {
        snprintf(fld, sizeof fld, "metrics.%s.ci", primary);
        json_t *ci = jpath(m, fld);
        if (ci && !json_is_null(ci)) {
            if (!json_is_array(ci) || json_array_size(ci) != 2 || !json_is_number(json_array_get(ci, 0)) ||
                !json_is_number(json_array_get(ci, 1)))
                st = tw_error_set(err, TW_ERR_PARSE, "%s: field '%s' must be [lo, hi] or null", path, fld);
            else {
                a->lo = json_number_value(json_array_get(ci, 0));
                a->hi = json_number_value(json_array_get(ci, 1));
            }
        }
    }
    if (!st) st = req_count(&a->n, m, "n", path, err);
    if (!st) st = opt_num(&a->latency_mean_ms, m, "latency_ms.mean", path, err);
    if (!st) st = opt_num(&a->latency_p90_ms, m, "latency_ms.p90", path, err);
    if (!st) st = opt_num(&a->tokens_in, m, "tokens.in_mean", path, err);
    if (!st) st = opt_num(&a->tokens_out, m, "tokens.out_mean", path, err);
    json_decref(m);
    free(path);
    return st;
}

static tw_status read_run(tw_ev_arm *a, const char *dir, tw_error *err)
{
    char *path = join(dir, "run.json", err);
    if (!path) return TW_ERR_NOMEM;
    json_t *r = NULL;
    tw_status st = load_json(&r, path, err);
    const char *arm = NULL, *strategy = NULL, *output = NULL, *model = NULL;
    if (!st) st = opt_str(&arm, r, "arm.name", path, err);
    if (!st && !arm) st = tw_error_set(err, TW_ERR_PARSE, "%s: missing field 'arm.name'", path);
    if (!st) st = opt_str(&strategy, r, "arm.config.strategy", path, err);
    if (!st) st = opt_str(&output, r, "arm.config.output", path, err);
    if (!st) st = opt_str(&model, r, "context.model", path, err);
    if (!st) st = opt_num(&a->rows_per_second, r, "timings.rows_per_second", path, err);
    if (!st) {
        a->kind = tw_arm_kind_parse(arm);
        if (strategy) st = tw_evidence_set_str(&a->strategy, strategy, err);
    }
    if (!st && model) st = tw_evidence_set_str(&a->model, model, err);
    if (!st) {
        a->retrieval = strategy && (strstr(strategy, "knn") || strstr(strategy, "rag"));
        a->constrained = output && (!strcmp(output, "choice") || !strcmp(output, "json") || !strcmp(output, "score"));
    }
    json_decref(r);
    free(path);
    return st;
}

static tw_status read_predictions(tw_ev_arm *a, const char *dir, tw_error *err)
{
    char *path = join(dir, "predictions.jsonl", err);
    if (!path) return TW_ERR_NOMEM;
    tw_pred_set ps = {0};
    tw_status st = tw_pred_load(&ps, path, err);
    if (!st) {
        a->ids = tw_calloc(ps.n, sizeof *a->ids, err);
        a->correct = tw_calloc(ps.n, 1, err);
        if (!a->ids || !a->correct) st = TW_ERR_NOMEM;
    }
    size_t invalid = 0, n_cost = 0;
    double cost = 0;
    for (size_t i = 0; !st && i < ps.n; i++) {
        tw_pred *p = &ps.rows[i];
        a->ids[i] = p->id;
        p->id = NULL;
        a->n_items = i + 1;
        a->correct[i] = p->reference && trim_eq(p->parsed ? p->parsed : p->prediction, p->reference);
        invalid += !p->valid;
        if (!isnan(p->cost)) {
            cost += p->cost;
            n_cost++;
        }
    }
    if (!st) {
        a->invalid_rate = ps.n ? (double)invalid / (double)ps.n : NAN;
        a->cost_per_call = n_cost ? cost / (double)n_cost : NAN;
    }
    tw_pred_set_free(&ps);
    free(path);
    return st;
}

tw_status tw_evidence_add_run(tw_evidence *ev, const char *dir, tw_ev_arm **out, tw_error *err)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    size_t b = dl;
    while (b > 0 && dir[b - 1] != '/') b--;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(dl - b > 200 ? 200 : dl - b), dir + b);
    if (!*name) snprintf(name, sizeof name, "run");
    char uniq[280];
    snprintf(uniq, sizeof uniq, "%s", name);
    for (int k = 2; find_arm(ev, uniq); k++) snprintf(uniq, sizeof uniq, "%s#%d", name, k);
    tw_ev_arm *a;
    tw_status st = tw_evidence_add_arm(ev, uniq, &a, err);
    if (st) return st;
    if ((st = read_run(a, dir, err)) || (st = read_metrics(ev, a, dir, err)) ||
        (st = read_predictions(a, dir, err)) || (st = tw_evidence_set_str(&a->run_dir, dir, err))) {
        arm_free(a);
        ev->n_arms--;
        return st;
    }
    if (out) *out = a;
    return TW_OK;
}

/* ---- audit ------------------------------------------------------------------------ */

static tw_status level_of(tw_audit_level *out, const json_t *o, const char *path, const char *what, tw_error *err)
{
    const char *s;
    tw_status st = opt_str(&s, o, path, what, err);
    if (st) return st;
    if (!s) return tw_error_set(err, TW_ERR_PARSE, "%s: missing field '%s'", what, path);
    if (!strcmp(s, "ready")) *out = TW_AUDIT_READY;
    else if (!strcmp(s, "warnings")) *out = TW_AUDIT_WARNINGS;
    else if (!strcmp(s, "not_ready")) *out = TW_AUDIT_NOT_READY;
    else
        return tw_error_set(err, TW_ERR_PARSE, "%s: field '%s' must be \"ready\", \"warnings\" or \"not_ready\" (got \"%s\")",
                            what, path, s);
    return TW_OK;
}

tw_status tw_evidence_set_audit(tw_evidence *ev, const json_t *rep, const char *what, tw_error *err)
{
    if (!json_is_object(rep) || !json_object_get(rep, "audit_version"))
        return tw_error_set(err, TW_ERR_PARSE, "%s: not an audit report (no 'audit_version')", what);
    tw_evidence tmp = *ev;   /* commit only when everything reads */
    tw_status st;
    if ((st = level_of(&tmp.eval_level, rep, "readiness.eval.level", what, err)) ||
        (st = level_of(&tmp.finetune_level, rep, "readiness.finetune.level", what, err)) ||
        (st = req_count(&tmp.eval_rows, rep, "readiness.eval.rows", what, err)) ||
        (st = req_count(&tmp.train_rows, rep, "readiness.finetune.train_rows", what, err)) ||
        (st = opt_num(&tmp.mde, rep, "readiness.eval.mde.difference", what, err)))
        return st;
    static const char *const TH[] = {"min_train", "good_train", "min_eval", "good_eval"};
    size_t *dst[] = {&tmp.min_train, &tmp.good_train, &tmp.min_eval, &tmp.good_eval};
    for (int i = 0; i < 4; i++) {
        char fld[64];
        snprintf(fld, sizeof fld, "params.thresholds.%s", TH[i]);
        if (jpath(rep, fld) && (st = req_count(dst[i], rep, fld, what, err))) return st;
    }
    tmp.have_audit = true;
    *ev = tmp;
    return TW_OK;
}

tw_status tw_evidence_load_audit(tw_evidence *ev, const char *path, tw_error *err)
{
    json_t *r = NULL;
    tw_status st = load_json(&r, path, err);
    if (!st) st = tw_evidence_set_audit(ev, r, path, err);
    json_decref(r);
    return st;
}

/* ---- task: goal and billing ---------------------------------------------------------- */

static const tw_price *task_price(const tw_task *t, const char *name)
{
    if (!name || !*name) return NULL;
    for (size_t i = 0; i < t->n_prices; i++)
        if (t->prices[i].model && !strcmp(t->prices[i].model, name)) return &t->prices[i];
    return NULL;
}

static bool pos(double x) { return x > 0 && !isinf(x); }

tw_status tw_evidence_apply_task(tw_evidence *ev, const tw_task *t, tw_error *err)
{
    tw_status st;
    if (t->name && (st = tw_evidence_set_str(&ev->task, t->name, err))) return st;
    if (!*ev->metric && t->metric) {
        if ((st = tw_evidence_set_str(&ev->metric, t->metric, err))) return st;
        ev->metric_max = (!strcmp(t->metric, "bleu") || !strcmp(t->metric, "chrf")) ? 100 : 1;
    }
    ev->target = t->target;
    ev->monthly_volume = t->monthly_volume;
    for (size_t i = 0; i < ev->n_arms; i++) {
        tw_ev_arm *a = &ev->arms[i];
        tw_cost_params c = a->cost;
        const tw_price *p = task_price(t, a->model);
        if (!p) p = task_price(t, a->name);
        const tw_preset_price *pp = p ? NULL : tw_preset_price_find(a->model);
        a->cost_known = false;
        if (p && pos(p->per_hour)) {
            double spc = !isnan(a->latency_mean_ms) ? a->latency_mean_ms / 1000.0
                         : pos(a->rows_per_second) ? 1.0 / a->rows_per_second : NAN;
            c.kind = TW_BILL_HOURLY;
            c.per_hour = p->per_hour;
            c.seconds_per_call = spc;
            a->cost_known = !isnan(spc);
        } else if ((p && (p->input_per_mtok > 0 || p->output_per_mtok > 0)) || pp) {
            c.kind = TW_BILL_API;
            c.input_per_mtok = p ? p->input_per_mtok : pp->input_per_mtok;
            c.output_per_mtok = p ? p->output_per_mtok : pp->output_per_mtok;
            c.tokens_in = a->tokens_in;
            c.tokens_out = a->tokens_out;
            a->cost_known = !isnan(a->tokens_in) && !isnan(a->tokens_out);
        } else if (a->kind == TW_ARM_CLASSIC || p) {
            c.kind = TW_BILL_FREE;   /* classic on hardware you have, or a price of 0 */
            a->cost_known = true;
        }
        if (a->kind == TW_ARM_LORA) {
            c.label_rate = ev->label_rate;
            c.retrains_per_year = ev->retrains_per_year;
            if (ev->labels_per_hour > 0) c.label_hours = (double)a->train_examples / ev->labels_per_hour;
        }
        a->cost = c;
    }
    return TW_OK;
}

double tw_evidence_mcnemar(const tw_evidence *ev, size_t i, size_t j, uint64_t *b, uint64_t *c, size_t *shared)
{
    uint64_t bb = 0, cc = 0;
    size_t sh = 0;
    const tw_ev_arm *A = &ev->arms[i], *B = &ev->arms[j];
    tw_str_index ix;
    memset(&ix, 0, sizeof ix);
    bool ok = true;
    for (size_t k = 0; ok && k < B->n_items; k++) {
        bool found;
        size_t prev;
        ok = tw_str_index_put(&ix, B->ids[k], k, &found, &prev, NULL) == TW_OK;
    }
    for (size_t k = 0; ok && k < A->n_items; k++) {
        size_t m;
        if (!tw_str_index_get(&ix, A->ids[k], &m)) continue;
        sh++;
        if (A->correct[k] && !B->correct[m]) bb++;
        if (!A->correct[k] && B->correct[m]) cc++;
    }
    tw_str_index_free(&ix);
    if (b) *b = bb;
    if (c) *c = cc;
    if (shared) *shared = ok ? sh : 0;
    return ok && sh ? tw_mcnemar_exact(bb, cc) : NAN;
}
