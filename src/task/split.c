/* split.c — seeded, stratified, leak-free train/dev/test splits (split.h has the
 * algorithm), loading a task's splits, and the per-type label checks.
 * Why hash-order instead of shuffling: a shuffle depends on the row order of the file; the
 * hash of a group's normalized input under the seed does not, so re-ordering or appending
 * rows leaves existing assignments mostly in place.
 * Deliberately not here: near-duplicate detection and cross-file leak audits (audit). */
#include "task/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct group {
    char *norm;          /* normalized input (the group's key) */
    size_t len;
    uint64_t h;          /* tw_hash64(norm, seed): the group's place in its bucket */
    size_t n_rows;
    size_t head, tail;   /* first / last row; rows chained through next[] in file order */
    const char *stratum; /* majority output, "" when none */
    int split;           /* tw_split_id */
} group;

static int cmp_group(const void *a, const void *b)
{
    const group *x = *(group *const *)a, *y = *(group *const *)b;
    int c = strcmp(x->stratum, y->stratum);
    if (c) return c;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return strcmp(x->norm, y->norm);
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Majority output of a group (ties: the smallest string), independent of row order. */
static const char *majority(const tw_dataset *all, const group *g, const size_t *next, const char **scratch)
{
    size_t k = 0;
    for (size_t r = g->head; r != (size_t)-1; r = next[r]) scratch[k++] = all->rows[r].output ? all->rows[r].output : "";
    if (k == 1) return scratch[0];
    qsort(scratch, k, sizeof *scratch, cmp_cstr);
    const char *best = scratch[0];
    size_t best_n = 0;
    for (size_t i = 0; i < k;) {
        size_t j = i;
        while (j < k && strcmp(scratch[j], scratch[i]) == 0) j++;
        if (j - i > best_n) {
            best_n = j - i;
            best = scratch[i];
        }
        i = j;
    }
    return best;
}

static tw_status copy_rows(const tw_dataset *all, const int *row_split, int which, tw_dataset *out, tw_error *err)
{
    memset(out, 0, sizeof *out);
    if (all->path && !(out->path = tw_strdup(all->path, err))) return TW_ERR_NOMEM;
    for (size_t i = 0; i < all->n; i++)
        if (row_split[i] == which) {
            tw_status st = tw_dataset_push(out, &all->rows[i], err);
            if (st) return st;
        }
    return TW_OK;
}

tw_status tw_split_dataset(const tw_dataset *all, double dev_frac, double test_frac, uint64_t seed, bool stratify,
                           tw_dataset *train, tw_dataset *dev, tw_dataset *test, tw_error *err)
{
    memset(train, 0, sizeof *train);
    if (dev) memset(dev, 0, sizeof *dev);
    if (test) memset(test, 0, sizeof *test);
    if (!(dev_frac >= 0) || !(test_frac >= 0) || dev_frac + test_frac >= 1)
        return tw_error_set(err, TW_ERR_INVALID, "split fractions must be >= 0 and dev + test < 1 (got %g + %g)",
                            dev_frac, test_frac);
    if ((dev_frac > 0 && !dev) || (test_frac > 0 && !test))
        return tw_error_set(err, TW_ERR_INVALID, "split: a non-zero fraction needs an output dataset");
    size_t n = all->n;
    tw_status st = TW_OK;
    group *groups = NULL, **order = NULL;
    size_t *next = NULL, *table = NULL, n_groups = 0, tcap = 16;
    int *row_split = NULL;
    const char **scratch = NULL;
    char *buf = NULL;
    while (tcap < 2 * n + 2) tcap *= 2;
    if (!(groups = tw_calloc(n ? n : 1, sizeof *groups, err)) || !(next = tw_calloc(n ? n : 1, sizeof *next, err)) ||
        !(table = tw_calloc(tcap, sizeof *table, err)) || !(row_split = tw_calloc(n ? n : 1, sizeof *row_split, err)) ||
        !(scratch = tw_calloc(n ? n : 1, sizeof *scratch, err))) {
        st = TW_ERR_NOMEM;
        goto done;
    }
    /* 1. group rows by normalized input (table: group index + 1, keyed by unseeded hash) */
    for (size_t i = 0; i < n; i++) {
        const char *in = all->rows[i].input ? all->rows[i].input : "";
        size_t len = strlen(in);
        free(buf);
        if (!(buf = tw_malloc(len + 1, err))) { st = TW_ERR_NOMEM; goto done; }
        size_t nl = tw_normalize_text(in, len, buf);
        size_t slot = (size_t)tw_hash64(buf, nl, 0) & (tcap - 1);
        while (table[slot]) {
            group *g = &groups[table[slot] - 1];
            if (g->len == nl && memcmp(g->norm, buf, nl) == 0) break;
            slot = (slot + 1) & (tcap - 1);
        }
        next[i] = (size_t)-1;
        if (table[slot]) {
            group *g = &groups[table[slot] - 1];
            next[g->tail] = i;
            g->tail = i;
            g->n_rows++;
        } else {
            group *g = &groups[n_groups];
            g->norm = buf;
            g->len = nl;
            g->h = tw_hash64(buf, nl, seed);
            g->n_rows = 1;
            g->head = g->tail = i;
            g->split = TW_SPLIT_TRAIN;
            buf = NULL;
            table[slot] = ++n_groups;
        }
    }
    /* 2. buckets and hash order */
    if (!(order = tw_calloc(n_groups ? n_groups : 1, sizeof *order, err))) { st = TW_ERR_NOMEM; goto done; }
    for (size_t g = 0; g < n_groups; g++) {
        groups[g].stratum = stratify ? majority(all, &groups[g], next, scratch) : "";
        order[g] = &groups[g];
    }
    qsort(order, n_groups, sizeof *order, cmp_group);
    /* 3. assign, bucket by bucket, carrying the shares over */
    size_t rows_seen = 0, test_rows = 0, dev_rows = 0;
    for (size_t b = 0; b < n_groups;) {
        size_t e = b, bucket_rows = 0;
        while (e < n_groups && strcmp(order[e]->stratum, order[b]->stratum) == 0) bucket_rows += order[e++]->n_rows;
        rows_seen += bucket_rows;
        size_t test_goal = (size_t)llround(test_frac * (double)rows_seen);
        size_t dev_goal = (size_t)llround(dev_frac * (double)rows_seen);
        size_t g = b;
        /* the bucket's last group stays in train */
        while (g + 1 < e && test_rows < test_goal) {
            order[g]->split = TW_SPLIT_TEST;
            test_rows += order[g++]->n_rows;
        }
        while (g + 1 < e && dev_rows < dev_goal) {
            order[g]->split = TW_SPLIT_DEV;
            dev_rows += order[g++]->n_rows;
        }
        b = e;
    }
    for (size_t g = 0; g < n_groups; g++)
        for (size_t r = groups[g].head; r != (size_t)-1; r = next[r]) row_split[r] = groups[g].split;
    /* 4. copy out in file order */
    if ((st = copy_rows(all, row_split, TW_SPLIT_TRAIN, train, err))) goto done;
    if (dev && (st = copy_rows(all, row_split, TW_SPLIT_DEV, dev, err))) goto done;
    if (test && (st = copy_rows(all, row_split, TW_SPLIT_TEST, test, err))) goto done;
done:
    for (size_t g = 0; g < n_groups; g++) free(groups[g].norm);
    free(groups);
    free(order);
    free(next);
    free(table);
    free(row_split);
    free(scratch);
    free(buf);
    if (st) {
        tw_dataset_free(train);
        if (dev) tw_dataset_free(dev);
        if (test) tw_dataset_free(test);
    }
    return st;
}

/* ---- label checks ----------------------------------------------------------------- */

static bool in_sorted(char *const *set, size_t n, const char *s)
{
    return n && bsearch(&s, set, n, sizeof *set, cmp_cstr) != NULL;
}

typedef struct unseen { const char *label; size_t row; } unseen;

static int cmp_unseen(const void *a, const void *b)
{
    const unseen *x = a, *y = b;
    int c = strcmp(x->label, y->label);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

static const char *ds_path(const tw_dataset *ds) { return ds->path ? ds->path : "(data)"; }

static bool blank_text(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return false;
    return true;
}

tw_status tw_task_check_labels(const tw_task *t, const tw_dataset splits[TW_SPLIT_COUNT], size_t *n_warnings,
                               tw_error *err)
{
    if (n_warnings) *n_warnings = 0;
    if (t->type == TW_TASK_EXTRACT) {
        for (int s = 0; s < TW_SPLIT_COUNT; s++)
            for (size_t i = 0; i < splits[s].n; i++) {
                const tw_example *ex = &splits[s].rows[i];
                if (!ex->output) continue;
                json_error_t je;
                json_t *v = json_loads(ex->output, 0, &je);
                bool ok = json_is_object(v);
                json_decref(v);
                if (!ok)
                    return tw_error_set(err, TW_ERR_INVALID,
                                        "%s:%zu: output is not a JSON object (extract tasks store the fields to "
                                        "extract as a JSON object)%s%s",
                                        ds_path(&splits[s]), ex->line, v ? "" : ": ", v ? "" : je.text);
            }
        return TW_OK;
    }
    if (t->type != TW_TASK_CLASSIFY) return TW_OK;
    char **declared = NULL, **seen = NULL;
    size_t n_declared = t->n_labels, n_seen = 0;
    tw_status st = TW_OK;
    if (n_declared) {
        if (!(declared = tw_calloc(n_declared, sizeof *declared, err))) return TW_ERR_NOMEM;
        memcpy(declared, t->labels, n_declared * sizeof *declared);
        qsort(declared, n_declared, sizeof *declared, cmp_cstr);
    }
    for (int s = 0; s < TW_SPLIT_COUNT; s++)
        for (size_t i = 0; i < splits[s].n; i++) {
            const tw_example *ex = &splits[s].rows[i];
            if (blank_text(ex->output)) {
                st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: empty output: classify rows need a label",
                                  ds_path(&splits[s]), ex->line);
                goto done;
            }
            if (n_declared && !in_sorted(declared, n_declared, ex->output)) {
                st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: label '%s' is not in the task's label set",
                                  ds_path(&splits[s]), ex->line, ex->output);
                goto done;
            }
        }
    if (n_declared) goto done;
    /* no declared set: dev/test labels train never has are suspicious, not fatal */
    if ((st = tw_dataset_labels(&splits[TW_SPLIT_TRAIN], &seen, &n_seen, err))) goto done;
    for (int s = TW_SPLIT_DEV; s < TW_SPLIT_COUNT; s++) {
        const tw_dataset *ds = &splits[s];
        /* one warning per unseen label, at its first row, with a count */
        unseen *u = tw_calloc(ds->n ? ds->n : 1, sizeof *u, err);
        if (!u) { st = TW_ERR_NOMEM; goto done; }
        size_t k = 0;
        for (size_t i = 0; i < ds->n; i++)
            if (!in_sorted(seen, n_seen, ds->rows[i].output)) u[k++] = (unseen){ds->rows[i].output, i};
        qsort(u, k, sizeof *u, cmp_unseen);
        for (size_t i = 0; i < k;) {
            size_t j = i;
            while (j < k && strcmp(u[j].label, u[i].label) == 0) j++;
            tw_log(TW_LOG_WARN, "%s:%zu: label '%s' in %s never occurs in train (%zu row%s)", ds_path(ds),
                   ds->rows[u[i].row].line, u[i].label, tw_split_name((tw_split_id)s), j - i, j - i == 1 ? "" : "s");
            if (n_warnings) (*n_warnings)++;
            i = j;
        }
        free(u);
    }
done:
    free(declared);
    tw_labels_free(seen, n_seen);
    return st;
}

/* ---- a task's splits ---------------------------------------------------------------- */

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static tw_status split_task(const tw_task *t, tw_dataset out[TW_SPLIT_COUNT], json_t **info, bool check,
                            tw_error *err)
{
    for (int s = 0; s < TW_SPLIT_COUNT; s++) memset(&out[s], 0, sizeof out[s]);
    if (info) *info = NULL;
    tw_reader_params p = tw_task_reader_params(t);
    bool stratify = t->type == TW_TASK_CLASSIFY;
    const char *src = t->data_all ? t->data_all : t->data[TW_SPLIT_TRAIN];
    if (!src) return tw_error_set(err, TW_ERR_INVALID, "%s: the task names no data file", t->path ? t->path : "task");
    tw_dataset all = {0};
    tw_status st = tw_dataset_load(&all, src, &p, err);
    if (st) return st;
    const char *mode;
    bool dev_given = !t->data_all && t->data[TW_SPLIT_DEV], test_given = !t->data_all && t->data[TW_SPLIT_TEST];
    if (dev_given && (st = tw_dataset_load(&out[TW_SPLIT_DEV], t->data[TW_SPLIT_DEV], &p, err))) goto fail;
    if (test_given && (st = tw_dataset_load(&out[TW_SPLIT_TEST], t->data[TW_SPLIT_TEST], &p, err))) goto fail;
    if (dev_given && test_given) {
        mode = "given";
        out[TW_SPLIT_TRAIN] = all;
        memset(&all, 0, sizeof all);
    } else {
        double dev_frac = dev_given ? 0 : t->dev_fraction, test_frac = test_given ? 0 : t->test_fraction;
        mode = dev_given ? "carve_test" : test_given ? "carve_dev" : "split_all";
        tw_dataset *dev = dev_given ? NULL : &out[TW_SPLIT_DEV], *test = test_given ? NULL : &out[TW_SPLIT_TEST];
        tw_dataset tmp_dev = {0}, tmp_test = {0};
        if ((st = tw_split_dataset(&all, dev_frac, test_frac, t->seed, stratify, &out[TW_SPLIT_TRAIN],
                                   dev ? dev : &tmp_dev, test ? test : &tmp_test, err))) {
            tw_error_prefix(err, "%s: ", src);
            goto fail;
        }
        tw_dataset_free(&tmp_dev);
        tw_dataset_free(&tmp_test);
        for (int s = TW_SPLIT_DEV; s < TW_SPLIT_COUNT; s++)
            if (out[s].n == 0 && (s == TW_SPLIT_DEV ? dev_frac : test_frac) > 0)
                tw_log(TW_LOG_WARN, "%s: too few rows to carve a %s split (it is empty)", src,
                       tw_split_name((tw_split_id)s));
        tw_dataset_free(&all);
    }
    size_t n_warn = 0;
    if (check && (st = tw_task_check_labels(t, out, &n_warn, err))) goto fail;
    if (info) {
        json_t *o = json_object(), *files = json_object(), *counts = json_object(), *labels = json_array();
        bool bad = !o || !files || !counts || !labels;
        bool inferred = false;
        if (!bad) {
            if (t->data_all) {
                bad |= json_object_set_new(files, "all", json_string(t->data_all)) != 0;
            } else {
                bad |= json_object_set_new(files, "train", json_string(t->data[TW_SPLIT_TRAIN])) != 0;
                bad |= json_object_set_new(files, "dev", str_or_null(t->data[TW_SPLIT_DEV])) != 0;
                bad |= json_object_set_new(files, "test", str_or_null(t->data[TW_SPLIT_TEST])) != 0;
            }
            for (int s = 0; s < TW_SPLIT_COUNT; s++)
                bad |= json_object_set_new(counts, tw_split_name((tw_split_id)s), json_integer((json_int_t)out[s].n)) != 0;
            if (t->type == TW_TASK_CLASSIFY) {
                if (t->n_labels) {
                    for (size_t i = 0; i < t->n_labels; i++) bad |= json_array_append_new(labels, json_string(t->labels[i])) != 0;
                } else {
                    char **ls;
                    size_t nl;
                    if (tw_dataset_labels(&out[TW_SPLIT_TRAIN], &ls, &nl, err) == TW_OK) {
                        for (size_t i = 0; i < nl; i++) bad |= json_array_append_new(labels, json_string(ls[i])) != 0;
                        tw_labels_free(ls, nl);
                        inferred = true;
                    } else {
                        bad = true;
                    }
                }
            }
            bad |= json_object_set_new(o, "mode", json_string(mode)) != 0;
            bad |= json_object_set_new(o, "seed", json_integer((json_int_t)t->seed)) != 0;
            bad |= json_object_set_new(o, "dev_fraction", json_real(dev_given ? 0 : t->dev_fraction)) != 0;
            bad |= json_object_set_new(o, "test_fraction", json_real(test_given ? 0 : t->test_fraction)) != 0;
            bad |= json_object_set_new(o, "stratified", json_boolean(stratify)) != 0;
            bad |= json_object_set(o, "files", files) != 0;
            bad |= json_object_set(o, "counts", counts) != 0;
            bad |= json_object_set(o, "labels", labels) != 0;
            bad |= json_object_set_new(o, "labels_inferred", json_boolean(inferred)) != 0;
            bad |= json_object_set_new(o, "unseen_label_warnings", json_integer((json_int_t)n_warn)) != 0;
        }
        json_decref(files);
        json_decref(counts);
        json_decref(labels);
        if (bad) {
            json_decref(o);
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory building split info");
            goto fail;
        }
        *info = o;
    }
    return TW_OK;
fail:
    tw_dataset_free(&all);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&out[s]);
    return st;
}

tw_status tw_split_task(const tw_task *t, tw_dataset out[TW_SPLIT_COUNT], json_t **info, tw_error *err)
{
    return split_task(t, out, info, true, err);
}

tw_status tw_split_task_unchecked(const tw_task *t, tw_dataset out[TW_SPLIT_COUNT], json_t **info, tw_error *err)
{
    return split_task(t, out, info, false, err);
}
