/* cmd_score.c — `tunewise score PRED.jsonl --task TASK`: score a predictions file (the
 * format every arm writes) against the task's split, with bootstrap CIs; `--compare`
 * adds paired tests (McNemar, paired bootstrap) against a second predictions file.
 * Without --task the references come from the predictions file's "reference" field. */
#include "cli.h"
#include "score/score.h"
#include "task/predictions.h"
#include "task/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"task", 't', CLI_STR, "TASK", "task file: references from its split", NULL},
    {"split", 's', CLI_STR, "SPLIT", "train|dev|test", "test"},
    {"type", 0, CLI_STR, "TYPE", "without --task: classify|extract|generate", "classify"},
    {"compare", 'c', CLI_STR, "PRED2", "second predictions file: paired tests against it", NULL},
    {"bootstrap", 'b', CLI_INT, "N", "bootstrap replicates for CIs (0: none)", "1000"},
    {"seed", 0, CLI_INT, "N", "bootstrap seed", "1"},
    {"json", 0, CLI_FLAG, NULL, "print the report as JSON", NULL},
    {0},
};

/* Items for one predictions file: rows of the split in split order, each joined with its
 * prediction by id (a missing prediction scores as an empty answer, with a warning). */
typedef struct joined {
    tw_score_item *items;
    size_t n;
    size_t missing;
} joined;

static const char *pred_text(const tw_pred *p) { return p->parsed ? p->parsed : p->prediction; }

static tw_status join_split(joined *j, const tw_dataset *ds, const tw_pred_set *ps, const char *pred_path,
                            const char *split_name, tw_error *err)
{
    memset(j, 0, sizeof *j);
    tw_str_index by_id = {0};   /* prediction id → row (ids are unique: tw_pred_load checks) */
    bool *used = tw_calloc(ps->n ? ps->n : 1, sizeof *used, err);
    j->items = tw_calloc(ds->n ? ds->n : 1, sizeof *j->items, err);
    tw_status st = used && j->items ? TW_OK : TW_ERR_NOMEM;
    for (size_t i = 0; !st && i < ps->n; i++) st = tw_str_index_put(&by_id, ps->rows[i].id, i, NULL, NULL, err);
    if (st) {
        tw_str_index_free(&by_id);
        free(used);
        free(j->items);
        memset(j, 0, sizeof *j);
        return st;
    }
    for (size_t r = 0; r < ds->n; r++) {
        const tw_example *ex = &ds->rows[r];
        const tw_pred *p = NULL;
        size_t k;
        if (tw_str_index_get(&by_id, ex->id, &k)) {
            p = &ps->rows[k];
            used[k] = true;
        }
        tw_score_item *it = &j->items[j->n++];
        it->id = ex->id;
        it->reference = ex->output ? ex->output : "";
        it->refs = (const char *const *)ex->refs;
        it->n_refs = ex->n_refs;
        it->slice = ex->slice;
        it->latency_ms = it->tokens_in = it->tokens_out = NAN;
        if (p) {
            it->prediction = pred_text(p);
            it->latency_ms = p->latency_ms;
            it->tokens_in = p->tokens_in;
            it->tokens_out = p->tokens_out;
        } else {
            it->prediction = "";
            j->missing++;
        }
    }
    for (size_t i = 0; i < ps->n; i++)
        if (!used[i]) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: id '%s' is not in the %s split of the task", pred_path,
                              ps->rows[i].line, ps->rows[i].id, split_name);
            break;
        }
    if (!st && j->missing)
        tw_log(TW_LOG_WARN, "%s: %zu of %zu %s rows have no prediction (scored as empty answers)", pred_path, j->missing,
               ds->n, split_name);
    tw_str_index_free(&by_id);
    free(used);
    if (st) { free(j->items); memset(j, 0, sizeof *j); }
    return st;
}

/* Without a task: references from the predictions file itself. */
static tw_status items_from_preds(joined *j, const tw_pred_set *ps, const char *path, tw_error *err)
{
    memset(j, 0, sizeof *j);
    j->items = tw_calloc(ps->n, sizeof *j->items, err);
    if (!j->items) return TW_ERR_NOMEM;
    for (size_t i = 0; i < ps->n; i++) {
        const tw_pred *p = &ps->rows[i];
        if (!p->reference) {
            free(j->items);
            return tw_error_set(err, TW_ERR_INVALID, "%s:%zu: no 'reference' field (give --task TASK to take references "
                                "from the task's split)", path, p->line);
        }
        tw_score_item *it = &j->items[j->n++];
        it->id = p->id;
        it->reference = p->reference;
        it->prediction = pred_text(p);
        it->latency_ms = p->latency_ms;
        it->tokens_in = p->tokens_in;
        it->tokens_out = p->tokens_out;
    }
    return TW_OK;
}

static int parse_split(const char *s, tw_split_id *out)
{
    for (int i = 0; i < TW_SPLIT_COUNT; i++)
        if (strcmp(s, tw_split_name((tw_split_id)i)) == 0) { *out = (tw_split_id)i; return 1; }
    return 0;
}

static int run(cli_args *a)
{
    tw_split_id split;
    if (!parse_split(cli_str(a, "split"), &split))
        return cli_usage_error(a->cmd, "unknown --split '%s' (expected train, dev or test)", cli_str(a, "split"));
    if (cli_int(a, "bootstrap") < 0) return cli_usage_error(a->cmd, "--bootstrap must be >= 0");
    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    memset(&t, 0, sizeof t);
    bool have_task = cli_given(a, "task");
    tw_dataset sp[TW_SPLIT_COUNT];
    memset(sp, 0, sizeof sp);
    tw_pred_set pa = {0}, pb = {0};
    joined ja = {0}, jb = {0};
    json_t *report = NULL, *schema = NULL;
    char **labels = NULL;
    size_t n_labels = 0;
    tw_score_params sp_params = tw_score_default_params();
    tw_status st = TW_OK;
    int type;
    if (have_task) {
        if ((st = tw_task_load(&t, cli_str(a, "task"), &err))) goto done;
        if ((st = tw_split_task(&t, sp, NULL, &err))) goto done;
        type = (int)t.type;
        if (t.type == TW_TASK_CLASSIFY) {
            if (t.n_labels) {
                sp_params.labels = (const char *const *)t.labels;
                sp_params.n_labels = t.n_labels;
            } else {
                if ((st = tw_dataset_labels(&sp[TW_SPLIT_TRAIN], &labels, &n_labels, &err))) goto done;
                sp_params.labels = (const char *const *)labels;
                sp_params.n_labels = n_labels;
            }
        }
        sp_params.primary = t.metric;
        if (t.schema_path) {
            json_error_t je;
            schema = json_load_file(t.schema_path, 0, &je);
            if (!schema) {
                st = tw_error_set(&err, TW_ERR_PARSE, "%s:%d:%d: invalid JSON schema: %s", t.schema_path, je.line, je.column, je.text);
                goto done;
            }
            sp_params.schema = schema;
        }
    } else {
        tw_task_type tt;
        if (!tw_task_type_parse(cli_str(a, "type"), &tt))
            return cli_usage_error(a->cmd, "unknown --type '%s' (expected classify, extract or generate)", cli_str(a, "type"));
        type = (int)tt;
    }
    sp_params.task_type = type;
    sp_params.bootstrap = (int)cli_int(a, "bootstrap");
    sp_params.seed = (uint64_t)cli_int(a, "seed");
    if ((st = tw_pred_load(&pa, a->pos[0], &err))) goto done;
    if (cli_given(a, "compare") && (st = tw_pred_load(&pb, cli_str(a, "compare"), &err))) goto done;
    if (have_task) {
        if ((st = join_split(&ja, &sp[split], &pa, a->pos[0], tw_split_name(split), &err))) goto done;
        if (pb.n && (st = join_split(&jb, &sp[split], &pb, cli_str(a, "compare"), tw_split_name(split), &err))) goto done;
    } else {
        if ((st = items_from_preds(&ja, &pa, a->pos[0], &err))) goto done;
        if (pb.n) {
            if ((st = items_from_preds(&jb, &pb, cli_str(a, "compare"), &err))) goto done;
            if (jb.n != ja.n) {
                st = tw_error_set(&err, TW_ERR_INVALID, "%s has %zu rows but %s has %zu: paired tests need the same items "
                                  "(give --task to join by id)", a->pos[0], ja.n, cli_str(a, "compare"), jb.n);
                goto done;
            }
            for (size_t i = 0; i < ja.n; i++)
                if (strcmp(ja.items[i].id, jb.items[i].id) != 0) {
                    st = tw_error_set(&err, TW_ERR_INVALID, "%s:%zu: id '%s' differs from '%s' in %s (give --task to join by id)",
                                      cli_str(a, "compare"), pb.rows[i].line, jb.items[i].id, ja.items[i].id, a->pos[0]);
                    goto done;
                }
        }
    }
    if (ja.n == 0) {
        st = tw_error_set(&err, TW_ERR_INVALID, "the %s split is empty: nothing to score", tw_split_name(split));
        goto done;
    }
    if (pb.n) st = tw_score_compare(ja.items, jb.items, ja.n, &sp_params, &report, &err);
    else st = tw_score(ja.items, ja.n, &sp_params, &report, &err);
    if (st) goto done;
    if (cli_flag(a, "json")) {
        cli_print_json(report);
    } else {
        tw_buf out = {0};
        if (tw_score_format_table(report, &out) == TW_OK && out.data) fputs(out.data, stdout);
        tw_buf_free(&out);
        if (have_task && !isnan(t.target)) {
            json_t *m = json_object_get(json_object_get(pb.n ? json_object_get(report, "a") : report, "metrics"), t.metric);
            json_t *v = json_object_get(m, "value");
            if (json_is_number(v))
                printf("target %s >= %g: %s\n", t.metric, t.target, json_number_value(v) >= t.target ? "met" : "not met");
        }
    }
done:
    json_decref(report);
    json_decref(schema);
    free(ja.items);
    free(jb.items);
    tw_pred_set_free(&pa);
    tw_pred_set_free(&pb);
    tw_labels_free(labels, n_labels);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    if (have_task) tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_score = {
    .name = "score",
    .summary = "score a predictions file: metrics with 95% CIs, paired tests with --compare",
    .usage = "PRED.jsonl [--task TASK] [options]",
    .details = "PRED.jsonl has one {\"id\", \"prediction\", \"latency_ms\", \"tokens_in\", \"tokens_out\"}\n"
               "object per line (what every arm writes). Predictions are joined to the task's split\n"
               "by id. Metric definitions: docs/metrics.md.",
    .opts = OPTS,
    .min_pos = 1,
    .max_pos = 1,
    .run = run,
};
