/* trainer.c — the LoRA trainer loop (trainer.h): examples rendered as the prompt arm's
 * zero-shot prompts with the answer as completion, length-bucketed batches, gradient
 * accumulation, AdamW with warmup + decay and clipping, dev loss and (classify) label-
 * scoring accuracy through the shared scorer, early stopping, best-checkpoint selection,
 * atomic checkpoints and exact resume.
 * Deliberately not here: the model math (lmodel.c), printing (the CLI), see trainer.h. */
#include "train/trainer.h"

#include "arms/prompt.h"
#include "backend/local.h"
#include "base/base.h"
#include "eval/runner.h"
#include "model/chat.h"
#include "score/score.h"
#include "task/split.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TW_GIT_COMMIT
#define TW_GIT_COMMIT "unknown"
#endif

#define CKPT_MAGIC "TWCKPT01"
#define BUCKET_STEPS 8   /* length buckets: sort by length within chunks of 8 steps' examples */

tw_train_params tw_train_default_params(void)
{
    tw_train_params p;
    memset(&p, 0, sizeof p);
    p.lm = tw_lmodel_default_params();
    p.max_len = 256;
    p.epochs = 3;
    p.batch = 8;
    p.grad_accum = 1;
    p.lr = 2e-4f;
    p.schedule = TW_LR_COSINE;
    p.warmup = 0.05f;
    p.adamw = tw_adamw_default_params();
    p.clip = 1.0f;
    p.seed = 1;
    p.save_every = 10;
    p.dev_max = 200;
    return p;
}

/* ---- examples ------------------------------------------------------------------------- */

typedef struct tex {
    int32_t *tok;
    int32_t n, n_prompt;     /* tokens; the first n_prompt are the prompt (masked) */
} tex;

typedef struct dex {         /* a dev example: its training sequence and, for classify,
                              * prompt + each label's continuation */
    tex seq;
    tex *lab;                /* n_labels */
    int32_t gold_k;          /* classify: the gold label's index (its sequence gives the dev
                              * loss: seq is then not built), else -1 */
    const char *gold;
    const char *id;
} dex;

typedef struct tctx {
    const tw_task *task;
    const tw_train_params *p;
    tw_local *local;
    tw_prompt *prompt;
    const char *const *labels;
    size_t n_labels;
    const char *const *cont;  /* classify: the label continuations */
    size_t truncated, dropped;
} tctx;

static void tex_free(tex *e) { free(e->tok); e->tok = NULL; }

/* tokens of prompt + completion: the tokens of the whole text when the prompt's tokens are
 * a prefix of them (the prompt arm's rule for continuations), else prompt tokens followed
 * by the completion tokenized alone. Truncated on the right to max_len. */
static tw_status make_seq(tctx *c, const char *prompt, size_t plen, const char *comp, size_t clen, bool truncate_ok,
                          tex *out, tw_error *err)
{
    memset(out, 0, sizeof *out);
    tw_tok_ids P = {0}, A = {0};
    tw_buf full = {0};
    tw_status st = tw_local_tokenize(c->local, prompt, plen, &P, err);
    if (!st && (tw_buf_append(&full, prompt, plen) || tw_buf_append(&full, comp, clen)))
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st) st = tw_local_tokenize(c->local, full.data, full.len, &A, err);
    if (!st) {
        bool prefix = A.n > P.n && memcmp(A.v, P.v, P.n * sizeof *P.v) == 0;
        if (!prefix) {   /* prompt tokens, then the completion tokenized alone (no BOS) */
            A.n = 0;
            if (tw_grow((void **)&A.v, &A.cap, P.n, sizeof *A.v, err)) st = TW_ERR_NOMEM;
            if (!st) {
                memcpy(A.v, P.v, P.n * sizeof *P.v);
                A.n = P.n;
                st = tw_tokenize_append(tw_local_tokenizer(c->local), comp, clen, TW_TOK_PARSE_SPECIAL, &A, err);
            }
        }
    }
    if (!st) {
        int64_t n = (int64_t)A.n;
        if (n > c->p->max_len) {
            if (!truncate_ok) n = -1;
            else {
                n = c->p->max_len;
                c->truncated++;
            }
        }
        if (n >= 0 && n > (int64_t)P.n) {
            out->tok = malloc((size_t)n * sizeof *out->tok);
            if (!out->tok) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            else {
                memcpy(out->tok, A.v, (size_t)n * sizeof *A.v);
                out->n = (int32_t)n;
                out->n_prompt = (int32_t)P.n;
            }
        }
    }
    tw_tok_ids_free(&P);
    tw_tok_ids_free(&A);
    tw_buf_free(&full);
    return st;
}

/* the prompt text and the completion text of ex (output NULL: the reference) */
static tw_status render_example(tctx *c, const tw_example *ex, const char *output, tw_buf *prompt, tw_buf *comp,
                                tw_error *err)
{
    tw_prompt_example pe = {0};
    tw_status st = tw_prompt_build(c->prompt, ex, &pe, err);
    if (st) return st;
    const char *out = output ? output : ex->output ? ex->output : "";
    const tw_chat_template *tmpl = tw_local_chat_template(c->local);
    if (!tmpl) {   /* plain layout: prompt ends "Answer:", the answer is " output\n" */
        if (tw_buf_append(prompt, pe.text.data, pe.text.len) || tw_buf_printf(comp, " %s\n", out))
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    } else {
        tw_chat_msg *m = malloc((pe.n_msgs + 1) * sizeof *m);
        if (!m) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        else {
            memcpy(m, pe.msgs, pe.n_msgs * sizeof *m);
            m[pe.n_msgs] = (tw_chat_msg){"assistant", out};
            tw_chat_opts o = tw_chat_default_opts();
            const tw_tokenizer *tk = tw_local_tokenizer(c->local);
            size_t bl = 0, el = 0;
            const int32_t bos = tw_tokenizer_bos(tk), eos = tw_tokenizer_eos(tk);
            const char *bt = bos >= 0 ? tw_token_text(tk, bos, &bl) : NULL;
            const char *et = eos >= 0 ? tw_token_text(tk, eos, &el) : NULL;
            char *bs = bt ? tw_strndup(bt, bl, NULL) : NULL, *es = et ? tw_strndup(et, el, NULL) : NULL;
            o.bos_token = bs;
            o.eos_token = es;
            tw_buf r = {0};
            tw_chat_span sp;
            st = tw_chat_render_span(tmpl, m, pe.n_msgs + 1, &o, &r, &sp, err);
            if (!st) {
                /* the prompt is the prompt arm's text; the completion the span's answer + marker */
                if (tw_buf_append(prompt, pe.text.data, pe.text.len) ||
                    tw_buf_append(comp, r.data + sp.prompt_end, sp.turn_end - sp.prompt_end))
                    st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                else if (sp.prompt_end != pe.text.len || memcmp(r.data, pe.text.data, pe.text.len) != 0)
                    tw_log(TW_LOG_DEBUG, "example %s: the template renders the prompt differently once the answer "
                                         "follows; training on the prompt arm's prompt + the answer's span",
                           ex->id ? ex->id : "?");
            }
            tw_buf_free(&r);
            free(bs);
            free(es);
            free(m);
        }
    }
    tw_prompt_example_free(&pe);
    if (st) tw_error_prefix(err, "example %s: ", ex->id ? ex->id : "?");
    return st;
}

typedef struct { size_t row; uint64_t key; } sub_row;
static int sub_cmp(const void *a, const void *b)
{
    const sub_row *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}
static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

tw_status tw_train_subset(tw_dataset *ds, size_t keep, bool stratify, uint64_t seed, tw_error *err)
{
    const size_t n = ds->n;
    if (n <= keep) return TW_OK;
    sub_row *r = malloc(n * sizeof *r);
    size_t *pick = malloc(n * sizeof *pick), *lab = calloc(n, sizeof *lab);
    size_t *cnt = calloc(n + 1, sizeof *cnt), *quota = calloc(n + 1, sizeof *quota), *taken = calloc(n + 1, sizeof *taken);
    tw_dataset out = {0};
    tw_status st = r && pick && lab && cnt && quota && taken ? TW_OK : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    size_t n_lab = 0, n_pick = 0;
    for (size_t i = 0; !st && i < n; i++) {   /* label ids in order of first appearance */
        const tw_example *e = &ds->rows[i];
        const char *o = stratify && e->output ? e->output : "";
        size_t l = 0;
        for (; l < n_lab; l++) {
            const tw_example *f = &ds->rows[lab[l]];
            const char *q = stratify && f->output ? f->output : "";
            if (strcmp(o, q) == 0) break;
        }
        if (l == n_lab) lab[n_lab++] = i;
        r[i].row = i;
        r[i].key = tw_hash_mix(seed ^ 0x73756273ULL ^ tw_hash_mix((uint64_t)l << 32 ^ i));
        cnt[l]++;
        pick[i] = l;   /* the row's label id (pick holds labels until the rows are chosen) */
    }
    if (!st) {
        size_t sum = 0;
        for (size_t l = 0; l < n_lab; l++) {
            quota[l] = keep * cnt[l] / n;
            if (quota[l] == 0 && cnt[l] > 0) quota[l] = 1;
            sum += quota[l];
        }
        while (sum < keep) {   /* largest remainder first (ties: the label seen first) */
            size_t best = n_lab;
            double bf = -1.0;
            for (size_t l = 0; l < n_lab; l++) {
                double f = (double)keep * (double)cnt[l] / (double)n - (double)quota[l];
                if (quota[l] < cnt[l] && f > bf) best = l, bf = f;
            }
            if (best == n_lab) break;
            quota[best]++, sum++;
        }
        qsort(r, n, sizeof *r, sub_cmp);   /* seeded random order */
        for (size_t i = 0; i < n && n_pick < keep; i++) {
            size_t l = pick[r[i].row];
            if (taken[l] < quota[l]) taken[l]++, lab[n_pick++] = r[i].row;   /* lab now: the kept rows */
        }
        qsort(lab, n_pick, sizeof *lab, size_cmp);
        for (size_t i = 0; !st && i < n_pick; i++) st = tw_dataset_push(&out, &ds->rows[lab[i]], err);
    }
    if (!st) {
        char *path = ds->path ? strdup(ds->path) : NULL;
        tw_dataset_free(ds);
        *ds = out;
        ds->path = path;
    } else {
        tw_dataset_free(&out);
    }
    free(r), free(pick), free(lab), free(cnt), free(quota), free(taken);
    return st;
}

static tw_status build_train(tctx *c, const tw_dataset *ds, tex **out, size_t *n_out, tw_error *err)
{
    *out = calloc(ds->n ? ds->n : 1, sizeof **out);
    *n_out = 0;
    if (!*out) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ds->n; i++) {
        tw_buf pr = {0}, co = {0};
        tw_status st = render_example(c, &ds->rows[i], NULL, &pr, &co, err);
        tex e;
        if (!st) st = make_seq(c, pr.data, pr.len, co.data, co.len, true, &e, err);
        tw_buf_free(&pr);
        tw_buf_free(&co);
        if (st) return st;
        if (!e.tok) c->dropped++;
        else (*out)[(*n_out)++] = e;
    }
    return TW_OK;
}

static tw_status build_dev(tctx *c, const tw_dataset *ds, const size_t *rows, size_t n, dex **out, size_t *n_out,
                           tw_error *err)
{
    *out = calloc(n ? n : 1, sizeof **out);
    *n_out = 0;
    if (!*out) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const tw_example *ex = &ds->rows[rows[i]];
        dex *d = &(*out)[*n_out];
        tw_buf pr = {0}, co = {0};
        tw_status st = render_example(c, ex, NULL, &pr, &co, err);
        d->gold_k = -1;
        for (size_t k = 0; c->cont && ex->output && k < c->n_labels; k++)
            if (!strcmp(ex->output, c->labels[k])) d->gold_k = (int32_t)k;
        if (!st && d->gold_k < 0) st = make_seq(c, pr.data, pr.len, co.data, co.len, true, &d->seq, err);
        if (!st && c->cont) {
            d->lab = calloc(c->n_labels, sizeof *d->lab);
            if (!d->lab) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            for (size_t k = 0; !st && k < c->n_labels; k++) {
                st = make_seq(c, pr.data, pr.len, c->cont[k], strlen(c->cont[k]), false, &d->lab[k], err);
                if (!st && !d->lab[k].tok) st = TW_DONE;   /* too long to score: skip the example */
            }
        }
        tw_buf_free(&pr);
        tw_buf_free(&co);
        if (st == TW_DONE || (!st && d->gold_k < 0 && !d->seq.tok)) {
            tex_free(&d->seq);
            if (d->lab)
                for (size_t k = 0; k < c->n_labels; k++) tex_free(&d->lab[k]);
            free(d->lab);
            memset(d, 0, sizeof *d);
            c->dropped++;
            continue;
        }
        if (st) return st;
        d->gold = ex->output;
        d->id = ex->id;
        (*n_out)++;
    }
    return TW_OK;
}

/* ---- data order ------------------------------------------------------------------------- */

typedef struct lenidx { int32_t len; uint32_t idx; } lenidx;
static int cmp_lenidx(const void *a, const void *b)
{
    const lenidx *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The example order of one epoch: a seeded shuffle (tw_rng seeded by (seed, epoch)), sorted
 * by length within chunks of BUCKET_STEPS steps' examples, then the steps' batches shuffled
 * (so long batches are not always last in a chunk). A function of (seed, epoch) only. */
static tw_status epoch_order(const tex *ex, size_t n, size_t per_step, uint64_t seed, int64_t epoch, uint32_t *order,
                             tw_error *err)
{
    tw_rng r;
    tw_rng_seed(&r, tw_hash_mix(seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch + 1));
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    tw_rng_shuffle(&r, order, n, sizeof *order);
    const size_t chunk = per_step * BUCKET_STEPS;
    lenidx *li = malloc((n ? n : 1) * sizeof *li);
    if (!li) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) li[i] = (lenidx){ex[order[i]].n, order[i]};
    for (size_t s = 0; s < n; s += chunk) qsort(li + s, (n - s < chunk ? n - s : chunk), sizeof *li, cmp_lenidx);
    const size_t n_steps = (n + per_step - 1) / per_step;
    uint32_t *perm = malloc((n_steps ? n_steps : 1) * sizeof *perm);
    if (!perm) {
        free(li);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_steps; i++) perm[i] = (uint32_t)i;
    /* shuffle the full steps only: the last (partial) step stays last */
    const size_t full = n / per_step;
    tw_rng_shuffle(&r, perm, full, sizeof *perm);
    size_t o = 0;
    for (size_t s = 0; s < n_steps; s++)
        for (size_t j = (size_t)perm[s] * per_step; j < n && j < ((size_t)perm[s] + 1) * per_step; j++)
            order[o++] = li[j].idx;
    free(perm);
    free(li);
    return TW_OK;
}

/* ---- state + checkpoints ---------------------------------------------------------------- */

typedef struct tstate {
    int64_t step, epoch, pos;      /* steps done; current epoch; steps done in it */
    int64_t best_step, bad_evals, log_bytes;
    double best_score, best_dev_loss, best_metric;
    double untuned_dev_loss, untuned_metric;
    double first_loss, last_loss;
    int64_t done;                  /* 1: finished (outputs may still need writing) */
    int64_t early_stopped;
} tstate;

typedef struct ckpt_hdr {
    char magic[8];
    uint64_t config_hash;
    int64_t n_params;
    tstate s;
} ckpt_hdr;

static tw_status ckpt_write(const char *path, uint64_t cfg_hash, const tstate *s, const float *params, const float *m,
                            const float *v, const float *best, int64_t n, tw_error *err)
{
    ckpt_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    h.config_hash = cfg_hash;
    h.n_params = n;
    h.s = *s;
    const size_t fb = (size_t)n * sizeof(float);
    const size_t total = sizeof h + 4 * fb + sizeof(uint64_t);
    char *buf = malloc(total);
    if (!buf) return tw_error_set(err, TW_ERR_NOMEM, "checkpoint: out of memory (%zu bytes)", total);
    char *p = buf;
    memcpy(p, &h, sizeof h); p += sizeof h;
    memcpy(p, params, fb); p += fb;
    memcpy(p, m, fb); p += fb;
    memcpy(p, v, fb); p += fb;
    memcpy(p, best, fb); p += fb;
    const uint64_t sum = tw_hash64(buf, (size_t)(p - buf), 0x636b7074);
    memcpy(p, &sum, sizeof sum);
    tw_status st = tw_file_write_atomic(path, buf, total, err);
    free(buf);
    return st;
}

static tw_status ckpt_read(const char *path, uint64_t cfg_hash, tstate *s, float *params, float *m, float *v,
                           float *best, int64_t n, tw_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    tw_status st = tw_file_read(path, &buf, &len, err);
    if (st) return st;
    const size_t fb = (size_t)n * sizeof(float);
    ckpt_hdr h;
    if (len != sizeof h + 4 * fb + sizeof(uint64_t)) {
        free(buf);
        return tw_error_set(err, TW_ERR_INVALID, "%s: %zu bytes, expected %zu: not a checkpoint of this run", path, len,
                            sizeof h + 4 * fb + sizeof(uint64_t));
    }
    uint64_t sum;
    memcpy(&sum, buf + len - sizeof sum, sizeof sum);
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, CKPT_MAGIC, 8) != 0 || sum != tw_hash64(buf, len - sizeof sum, 0x636b7074)) {
        free(buf);
        return tw_error_set(err, TW_ERR_INVALID, "%s: offset 0: bad magic or checksum: corrupt checkpoint", path);
    }
    if (h.config_hash != cfg_hash || h.n_params != n) {
        free(buf);
        return tw_error_set(err, TW_ERR_INVALID,
                            "%s: the checkpoint is of another configuration (model, data, or hyper-parameters "
                            "differ): use the same options, or another output directory",
                            path);
    }
    const char *p = buf + sizeof h;
    memcpy(params, p, fb); p += fb;
    memcpy(m, p, fb); p += fb;
    memcpy(v, p, fb); p += fb;
    memcpy(best, p, fb);
    *s = h.s;
    free(buf);
    return TW_OK;
}

/* ---- evaluation --------------------------------------------------------------------------- */

typedef struct trun {
    tctx *c;
    tw_lmodel *lm;
    float *wbuf;
    int32_t *tgbuf;
} trun;

/* loss of sequence e with weight wt per completion target; train: also backward */
static double seq_loss(trun *r, const tex *e, float wt, bool train, uint64_t dseed)
{
    const int64_t T = e->n;
    for (int64_t t = 0; t < T; t++) {
        r->tgbuf[t] = t + 1 < T ? e->tok[t + 1] : 0;
        r->wbuf[t] = t + 1 < T && t + 1 >= e->n_prompt ? wt : 0.0f;
    }
    if (!train) return tw_lmodel_forward(r->lm, e->tok, r->tgbuf, r->wbuf, T, 0, false);
    tw_lmodel_forward(r->lm, e->tok, NULL, NULL, T, dseed, true);
    return tw_lmodel_backward(r->lm, r->tgbuf, r->wbuf);
}

static tw_status evaluate(trun *r, const dex *dev, size_t n_dev, double *dev_loss, double *metric, tw_error *err)
{
    tctx *c = r->c;
    double lsum = 0;
    int64_t ntok = 0;
    for (size_t i = 0; i < n_dev; i++) {
        if (dev[i].gold_k >= 0) continue;   /* from its label's scoring below */
        lsum += seq_loss(r, &dev[i].seq, 1.0f, false, 0);
        ntok += dev[i].seq.n - dev[i].seq.n_prompt;
    }
    *metric = NAN;
    if (!c->cont || n_dev == 0) {
        *dev_loss = ntok ? lsum / (double)ntok : NAN;
        return TW_OK;
    }
    tw_score_item *items = calloc(n_dev, sizeof *items);
    if (!items) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n_dev; i++) {
        size_t best = 0;
        double best_lp = -INFINITY;
        for (size_t k = 0; k < c->n_labels; k++) {
            const double lp = -seq_loss(r, &dev[i].lab[k], 1.0f, false, 0);
            if (lp > best_lp) { best_lp = lp; best = k; }
            if ((int32_t)k == dev[i].gold_k) {
                lsum -= lp;
                ntok += dev[i].lab[k].n - dev[i].lab[k].n_prompt;
            }
        }
        items[i] = (tw_score_item){.id = dev[i].id, .reference = dev[i].gold, .prediction = c->labels[best],
                                   .latency_ms = NAN, .tokens_in = NAN, .tokens_out = NAN};
    }
    tw_score_params sp = tw_score_default_params();
    sp.task_type = (int)c->task->type;
    sp.labels = c->labels;
    sp.n_labels = c->n_labels;
    sp.primary = c->task->metric;
    sp.bootstrap = 0;
    json_t *rep = NULL;
    tw_status st = tw_score(items, n_dev, &sp, &rep, err);
    free(items);
    if (st) return tw_error_prefix(err, "dev evaluation: ");
    const json_t *v = json_object_get(json_object_get(json_object_get(rep, "metrics"), c->task->metric), "value");
    *metric = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(rep);
    *dev_loss = ntok ? lsum / (double)ntok : NAN;
    return TW_OK;
}

/* ---- outputs ------------------------------------------------------------------------------ */

static char *join(const char *dir, const char *name)
{
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static json_t *config_json(const tw_train_params *p, const char *model_sha, const char *data_sha, const char *dev_sha,
                           const tw_task *t)
{
    char tg[64] = "";
    for (int i = 0; i < 7; i++)
        if ((p->lm.targets >> i) & 1u) {
            if (tg[0]) strcat(tg, ",");
            strcat(tg, tw_lora_target_name((tw_lora_target)(1u << i)));
        }
    static const char *const sched[] = {"constant", "linear", "cosine"};
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:i, s:f, s:f, s:i, s:i, s:I, s:i, s:i, s:f, s:f, s:s, s:f, s:f, "
                     "s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:i, s:I, s:s}",
                     "model_sha256", model_sha, "train_data_sha256", data_sha, "dev_data_sha256", dev_sha, "task", t->name ? t->name : "",
                     "chat_template", p->chat_template, "targets", tg, "rank", (int)p->lm.rank, "alpha",
                     (double)p->lm.alpha, "dropout", (double)p->lm.dropout, "max_len", (int)p->max_len, "epochs",
                     (int)p->epochs, "max_steps", (json_int_t)p->max_steps, "batch", (int)p->batch, "grad_accum",
                     (int)p->grad_accum, "lr", (double)p->lr, "lr_min", (double)p->lr_min, "schedule",
                     sched[p->schedule <= TW_LR_COSINE ? p->schedule : 0], "warmup", (double)p->warmup, "weight_decay",
                     (double)p->adamw.weight_decay, "beta1", (double)p->adamw.beta1, "beta2", (double)p->adamw.beta2,
                     "eps", (double)p->adamw.eps, "clip", (double)p->clip, "seed", (json_int_t)p->seed, "eval_every",
                     (json_int_t)p->eval_every, "save_every", (json_int_t)p->save_every, "dev_max",
                     (json_int_t)p->dev_max, "patience", (int)p->patience, "train_max", (json_int_t)p->train_max,
                     "prompt", p->prompt_short ? "short" : "full");
}

static tw_status write_outputs(trun *r, const char *dir, const float *best, json_t *info, tw_error *err)
{
    tw_lora *l = NULL;
    tw_status st = tw_lmodel_to_lora(r->lm, best, &l, err);
    char *g = join(dir, "adapter.gguf"), *pd = join(dir, "adapter"), *tj = join(dir, "train.json");
    if (!g || !pd || !tj) st = st ? st : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st) st = tw_lora_write_gguf(l, g, NULL, err);
    if (!st) st = tw_lora_write_peft(l, pd, NULL, err);
    char hex[65];
    if (!st) st = tw_sha256_file(g, hex, err);
    if (!st) {
        json_object_set_new(info, "adapter_sha256", json_string(hex));
        char *s = json_dumps(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        tw_buf b = {0};
        if (!s || tw_buf_puts(&b, s) || tw_buf_putc(&b, '\n')) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        else st = tw_file_write_atomic(tj, b.data, b.len, err);
        tw_buf_free(&b);
        free(s);
    }
    free(g);
    free(pd);
    free(tj);
    tw_lora_free(l);
    return st;
}

static json_t *jreal(double x) { return isfinite(x) ? json_real(x) : json_null(); }
static int cmp_size(const void *a, const void *b)
{
    const size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the loop ------------------------------------------------------------------------------ */

tw_status tw_train(const tw_task *task, const tw_train_params *pin, const char *out_dir, tw_train_result *res,
                   tw_error *err)
{
    tw_train_params P = *pin;
    const tw_train_params *p = &P;
    if (p->batch <= 0 || p->grad_accum <= 0 || p->max_len < 2 || p->epochs <= 0 || !(p->lr > 0) || p->save_every <= 0)
        return tw_error_set(err, TW_ERR_INVALID,
                            "train: batch %d, grad_accum %d, max_len %d, epochs %d, lr %g, save_every %lld: out of range",
                            (int)p->batch, (int)p->grad_accum, (int)p->max_len, (int)p->epochs, (double)p->lr,
                            (long long)p->save_every);
    tw_train_result R;
    memset(&R, 0, sizeof R);
    tw_dataset sp[TW_SPLIT_COUNT];
    memset(sp, 0, sizeof sp);
    tctx c;
    memset(&c, 0, sizeof c);
    c.task = task;
    c.p = p;
    trun r = {&c, NULL, NULL, NULL};
    tex *tr = NULL;
    dex *dev = NULL;
    size_t n_tr = 0, n_dev = 0;
    uint32_t *order = NULL;
    float *m = NULL, *v = NULL, *best = NULL;
    size_t *dev_rows = NULL;
    json_t *cfg = NULL, *info = NULL;
    FILE *logf = NULL;
    char *ckpt_path = NULL, *log_path = NULL;
    tw_status st = TW_OK;
    char model_sha[65] = "", data_sha[65] = "", dev_sha[65] = "";
    char bbuf[256], ebuf[256];   /* BOS / EOS texts the prompt borrows */

    if ((st = tw_mkdir_p(out_dir, err))) return st;
    ckpt_path = join(out_dir, "checkpoint.bin");
    log_path = join(out_dir, "train_log.jsonl");
    if (!ckpt_path || !log_path) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
    const bool have_ckpt = tw_file_exists(ckpt_path);
    if (have_ckpt && !p->resume) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s exists: use --resume to continue that run, or another output directory",
                          ckpt_path);
        goto done;
    }
    /* data and model */
    if ((st = tw_split_task(task, sp, NULL, err))) goto done;
    if (sp[TW_SPLIT_TRAIN].n == 0) { st = tw_error_set(err, TW_ERR_INVALID, "%s: no training rows", task->path); goto done; }
    if (p->train_max > 0 && sp[TW_SPLIT_TRAIN].n > p->train_max &&
        (st = tw_train_subset(&sp[TW_SPLIT_TRAIN], p->train_max, task->type == TW_TASK_CLASSIFY, p->seed, err)))
        goto done;
    tw_local_params lp = tw_local_default_params();
    lp.model = p->model;
    lp.chat_template = p->chat_template;
    lp.n_threads = p->lm.n_threads;
    lp.n_ctx = 16;
    if ((st = tw_local_open(&c.local, &lp, err))) goto done;
    {
        const char *id = tw_local_model_id(c.local, err);
        if (!id) { st = err->status ? err->status : TW_ERR_IO; goto done; }
        snprintf(model_sha, sizeof model_sha, "%s", strncmp(id, "sha256:", 7) == 0 ? id + 7 : id);
    }
    if ((st = tw_eval_data_hash(sp[TW_SPLIT_TRAIN].rows, sp[TW_SPLIT_TRAIN].n, data_sha, err))) goto done;
    if ((st = tw_eval_data_hash(sp[TW_SPLIT_DEV].rows, sp[TW_SPLIT_DEV].n, dev_sha, err))) goto done;
    tw_prompt_params pp = tw_prompt_default_params();
    pp.demos = TW_DEMOS_NONE;
    pp.output = task->type == TW_TASK_CLASSIFY ? TW_OUTPUT_SCORE : TW_OUTPUT_FREE;
    pp.short_system = p->prompt_short;
    {
        const tw_tokenizer *tk = tw_local_tokenizer(c.local);
        size_t bl = 0, el = 0;
        const int32_t bos = tw_tokenizer_bos(tk), eos = tw_tokenizer_eos(tk);
        const char *bt = bos >= 0 ? tw_token_text(tk, bos, &bl) : NULL, *et = eos >= 0 ? tw_token_text(tk, eos, &el) : NULL;
        snprintf(bbuf, sizeof bbuf, "%.*s", (int)(bt ? bl : 0), bt ? bt : "");
        snprintf(ebuf, sizeof ebuf, "%.*s", (int)(et ? el : 0), et ? et : "");
        tw_prompt_target tgt = {tw_local_chat_template(c.local), bbuf[0] ? bbuf : NULL, ebuf[0] ? ebuf : NULL};
        if ((st = tw_prompt_new(&c.prompt, task, &sp[TW_SPLIT_TRAIN], &pp, &tgt, err))) goto done;
    }
    if (task->type == TW_TASK_CLASSIFY) {
        c.labels = tw_prompt_labels(c.prompt, &c.n_labels);
        size_t nc = 0;
        c.cont = tw_prompt_continuations(c.prompt, &nc);
        if (nc != c.n_labels) c.cont = NULL;
    }
    if ((st = build_train(&c, &sp[TW_SPLIT_TRAIN], &tr, &n_tr, err))) goto done;
    if (n_tr == 0) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s: no training example fits in --max-len %d", task->path, (int)p->max_len);
        goto done;
    }
    {   /* the dev subset: a seeded sample of dev_max rows, in file order */
        const tw_dataset *ds = &sp[TW_SPLIT_DEV];
        dev_rows = malloc((ds->n ? ds->n : 1) * sizeof *dev_rows);
        if (!dev_rows) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
        for (size_t i = 0; i < ds->n; i++) dev_rows[i] = i;
        size_t nd = ds->n;
        if (p->dev_max > 0 && nd > p->dev_max) {
            tw_rng rr;
            tw_rng_seed(&rr, tw_hash_mix(p->seed ^ 0x646576ULL));
            tw_rng_shuffle(&rr, dev_rows, nd, sizeof *dev_rows);
            nd = p->dev_max;
            qsort(dev_rows, nd, sizeof *dev_rows, cmp_size);
        }
        if ((st = build_dev(&c, ds, dev_rows, nd, &dev, &n_dev, err))) goto done;
    }
    int64_t max_T = 2;
    for (size_t i = 0; i < n_tr; i++) max_T = tr[i].n > max_T ? tr[i].n : max_T;
    for (size_t i = 0; i < n_dev; i++) {
        max_T = dev[i].seq.n > max_T ? dev[i].seq.n : max_T;
        for (size_t k = 0; dev[i].lab && k < c.n_labels; k++) max_T = dev[i].lab[k].n > max_T ? dev[i].lab[k].n : max_T;
    }
    P.lm.max_T = max_T;
    if ((st = tw_lmodel_new(&r.lm, tw_llama_files(tw_local_model(c.local)), &P.lm, err))) goto done;
    r.wbuf = malloc((size_t)max_T * sizeof *r.wbuf);
    r.tgbuf = malloc((size_t)max_T * sizeof *r.tgbuf);
    const int64_t np = tw_lmodel_n_params(r.lm);
    m = calloc((size_t)np, sizeof *m);
    v = calloc((size_t)np, sizeof *v);
    best = calloc((size_t)np, sizeof *best);
    order = malloc(n_tr * sizeof *order);
    if (!r.wbuf || !r.tgbuf || !m || !v || !best || !order) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
    float *params = tw_lmodel_lora_params(r.lm), *grads = tw_lmodel_lora_grads(r.lm);

    /* schedule */
    const size_t per_step = (size_t)p->batch * (size_t)p->grad_accum;
    const int64_t spe = (int64_t)((n_tr + per_step - 1) / per_step);
    int64_t total = spe * p->epochs;
    if (p->max_steps > 0 && p->max_steps < total) total = p->max_steps;
    const int64_t warmup = (int64_t)llround((double)p->warmup * (double)total);

    cfg = config_json(p, model_sha, data_sha, dev_sha, task);
    if (!cfg) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
    uint64_t cfg_hash;
    {
        char *s = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
        cfg_hash = tw_hash64(s, strlen(s), 0x74756e65);
        free(s);
    }

    tstate S;
    memset(&S, 0, sizeof S);
    S.best_score = -INFINITY;
    S.untuned_metric = S.untuned_dev_loss = S.best_metric = S.best_dev_loss = NAN;
    S.first_loss = S.last_loss = NAN;
    S.best_step = -1;
    if (have_ckpt) {
        if ((st = ckpt_read(ckpt_path, cfg_hash, &S, params, m, v, best, np, err))) goto done;
        R.resumed = true;
        if (truncate(log_path, (off_t)S.log_bytes) != 0) {
            st = tw_error_set(err, TW_ERR_IO, "%s: cannot truncate to %lld bytes", log_path, (long long)S.log_bytes);
            goto done;
        }
        logf = fopen(log_path, "ab");
        if (logf) fseek(logf, 0, SEEK_END);
    } else {
        if ((st = tw_lmodel_init_peft(r.lm, p->seed, err))) goto done;
        memcpy(best, params, (size_t)np * sizeof *best);
        logf = fopen(log_path, "wb");
    }
    if (!logf) { st = tw_error_set(err, TW_ERR_IO, "%s: cannot open for writing", log_path); goto done; }

    const double t_start = tw_now();
    int64_t steps_here = 0, order_epoch = -1;
    double tok_here = 0;
    /* the evaluation / selection / checkpoint of one point of the run; returns stop */
#define EVAL_AND_SELECT(ev)                                                                                            \
    do {                                                                                                               \
        double dl, mt;                                                                                                 \
        if ((st = evaluate(&r, dev, n_dev, &dl, &mt, err))) goto done;                                                 \
        (ev).evaluated = true;                                                                                         \
        (ev).dev_loss = dl;                                                                                            \
        (ev).dev_metric = mt;                                                                                          \
        (ev).metric = c.cont ? task->metric : NULL;                                                                    \
        const double score = c.cont ? mt : -dl;                                                                        \
        if (S.step == 0) { S.untuned_dev_loss = dl; S.untuned_metric = mt; }                                          \
        if (n_dev > 0 && score > S.best_score) {                                                                       \
            S.best_score = score; S.best_step = S.step; S.best_dev_loss = dl; S.best_metric = mt;                     \
            S.bad_evals = 0;                                                                                           \
            memcpy(best, params, (size_t)np * sizeof *best);                                                           \
            (ev).is_best = true;                                                                                       \
        } else if (n_dev > 0) S.bad_evals++;                                                                           \
    } while (0)

    if (!have_ckpt) {   /* step 0: the untuned model (B = 0) */
        tw_train_event ev = {.step = 0, .total_steps = total, .loss = NAN, .lr = 0, .grad_norm = NAN,
                             .tokens_per_s = NAN, .eta_s = NAN, .dev_metric = NAN, .dev_loss = NAN};
        EVAL_AND_SELECT(ev);
        if (n_dev == 0) S.best_step = 0;
        json_t *line = json_pack("{s:I, s:f, s:o, s:o}", "step", (json_int_t)0, "epoch", 0.0, "dev_loss",
                                 jreal(ev.dev_loss), "dev_metric", jreal(ev.dev_metric));
        char *ls = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(line);
        if (ls) { fprintf(logf, "%s\n", ls); free(ls); }
        fflush(logf);
        S.log_bytes = ftell(logf);
        if (p->on_event) p->on_event(p->ud, &ev);
    }

    while (!S.done) {
        if (S.step >= total) { S.done = 1; break; }
        if (S.pos >= spe) { S.epoch++; S.pos = 0; }
        if (S.epoch != order_epoch) {
            if ((st = epoch_order(tr, n_tr, per_step, p->seed, S.epoch, order, err))) goto done;
            order_epoch = S.epoch;
        }
        const size_t i0 = (size_t)S.pos * per_step, i1 = i0 + per_step < n_tr ? i0 + per_step : n_tr;
        const double t0 = tw_now();
        /* one optimizer step over examples order[i0..i1): loss = mean over all their
         * completion tokens (the micro-batches of grad_accum are summed with that weight) */
        int64_t ntok = 0, alltok = 0;
        for (size_t i = i0; i < i1; i++) {
            ntok += tr[order[i]].n - tr[order[i]].n_prompt;
            alltok += tr[order[i]].n;
        }
        tw_lmodel_zero_grads(r.lm);
        double loss = 0;
        for (size_t i = i0; i < i1; i++) {
            const uint64_t ds = tw_hash_mix(p->seed ^ tw_hash_mix((uint64_t)S.step * 1000003ULL + (uint64_t)(i - i0)));
            loss += seq_loss(&r, &tr[order[i]], 1.0f / (float)ntok, true, ds);
        }
        const double gnorm = tw_grad_clip(grads, np, p->clip);
        const float lr = tw_lr_at(p->schedule, S.step, warmup, total, p->lr, p->lr_min);
        tw_adamw_step(params, m, v, grads, np, S.step + 1, lr, &p->adamw);
        S.step++;
        S.pos++;
        if (!isfinite(S.first_loss)) S.first_loss = loss;
        S.last_loss = loss;
        const double dt = tw_now() - t0;
        steps_here++;
        tok_here += (double)alltok;
        tw_train_event ev = {.step = S.step, .total_steps = total, .epoch = (double)S.step / (double)spe, .loss = loss,
                             .lr = lr, .grad_norm = gnorm, .tokens_per_s = dt > 0 ? (double)alltok / dt : NAN,
                             .dev_loss = NAN, .dev_metric = NAN};
        ev.eta_s = (tw_now() - t_start) / (double)steps_here * (double)(total - S.step);
        const bool epoch_end = S.pos >= spe;
        if ((p->eval_every > 0 && S.step % p->eval_every == 0) || epoch_end || S.step >= total) {
            EVAL_AND_SELECT(ev);
            if (p->patience > 0 && S.bad_evals >= p->patience) {
                S.done = 1;
                S.early_stopped = 1;
            }
        }
        if (S.step >= total) S.done = 1;
        json_t *line = json_pack("{s:I, s:f, s:o, s:f, s:o, s:I, s:o}", "step", (json_int_t)S.step, "epoch", ev.epoch,
                                 "loss", jreal(loss), "lr", (double)lr, "grad_norm", jreal(gnorm), "tokens",
                                 (json_int_t)alltok, "tokens_per_s", jreal(ev.tokens_per_s));
        if (line && ev.evaluated) {
            json_object_set_new(line, "dev_loss", jreal(ev.dev_loss));
            if (ev.metric) json_object_set_new(line, "dev_metric", jreal(ev.dev_metric));
            json_object_set_new(line, "best", json_boolean(ev.is_best));
        }
        char *ls = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(line);
        if (!ls) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
        fprintf(logf, "%s\n", ls);
        free(ls);
        if (fflush(logf) != 0) { st = tw_error_set(err, TW_ERR_IO, "%s: write failed", log_path); goto done; }
        S.log_bytes = ftell(logf);
        if (S.step % p->save_every == 0 || epoch_end || S.done) {
            if ((st = ckpt_write(ckpt_path, cfg_hash, &S, params, m, v, best, np, err))) goto done;
            ev.checkpointed = true;
        }
        if (p->on_event) p->on_event(p->ud, &ev);
    }
    if (S.best_step < 0) {   /* no dev set: the last parameters */
        memcpy(best, params, (size_t)np * sizeof *best);
        S.best_step = S.step;
    }
    if (n_dev == 0) {
        memcpy(best, params, (size_t)np * sizeof *best);
        S.best_step = S.step;
    }
    /* outputs */
    info = json_object();
    const tw_chat_template *tmpl = tw_local_chat_template(c.local);
    json_object_set_new(info, "format", json_string("tunewise.train"));
    json_object_set_new(info, "version", json_integer(1));
    json_object_set_new(info, "tunewise_version", json_string(TW_VERSION_STRING));
    json_object_set_new(info, "git_commit", json_string(TW_GIT_COMMIT));
    json_object_set_new(info, "task", json_string(task->path ? task->path : ""));
    json_object_set_new(info, "model", json_string(p->model));
    json_object_set_new(info, "config", json_incref(cfg));
    {
        char hx[17];
        snprintf(hx, sizeof hx, "%016llx", (unsigned long long)cfg_hash);
        json_object_set_new(info, "config_hash", json_string(hx));
    }
    json_object_set_new(info, "layout", json_string(tmpl ? "chat" : "plain"));
    json_object_set_new(info, "template_family",
                        json_string(tmpl ? tw_chat_family_name(tw_chat_template_family(tmpl)) : "none"));
    json_object_set_new(info, "data", json_pack("{s:I, s:I, s:I, s:I, s:I}", "train", (json_int_t)n_tr, "dev",
                                                (json_int_t)sp[TW_SPLIT_DEV].n, "dev_used", (json_int_t)n_dev,
                                                "truncated", (json_int_t)c.truncated, "dropped", (json_int_t)c.dropped));
    json_object_set_new(info, "steps", json_integer(S.step));
    json_object_set_new(info, "total_steps", json_integer(total));
    json_object_set_new(info, "steps_per_epoch", json_integer(spe));
    json_object_set_new(info, "stopped", json_string(S.early_stopped ? "early_stopping" : "schedule_end"));
    json_object_set_new(info, "best_step", json_integer(S.best_step));
    json_object_set_new(info, "metric", c.cont ? json_string(task->metric) : json_null());
    json_object_set_new(info, "untuned", json_pack("{s:o, s:o}", "dev_loss", jreal(S.untuned_dev_loss), "dev_metric",
                                                   jreal(S.untuned_metric)));
    json_object_set_new(info, "best", json_pack("{s:o, s:o}", "dev_loss", jreal(S.best_dev_loss), "dev_metric",
                                                jreal(S.best_metric)));
    json_object_set_new(info, "train_loss", json_pack("{s:o, s:o}", "first", jreal(S.first_loss), "last",
                                                      jreal(S.last_loss)));
    json_object_set_new(info, "lora_params", json_integer(np));
    if ((st = write_outputs(&r, out_dir, best, info, err))) goto done;
    if (!S.done) S.done = 1;

    R.steps = S.step;
    R.best_step = S.best_step;
    R.untuned_dev_loss = S.untuned_dev_loss;
    R.untuned_metric = S.untuned_metric;
    R.best_dev_loss = S.best_dev_loss;
    R.best_metric = S.best_metric;
    R.first_loss = S.first_loss;
    R.last_loss = S.last_loss;
    R.n_train = n_tr;
    R.n_dev_used = n_dev;
    R.truncated = c.truncated;
    R.dropped = c.dropped;
    R.early_stopped = S.early_stopped != 0;
    R.tokens_per_s = tw_now() > t_start && steps_here ? tok_here / (tw_now() - t_start) : NAN;
#undef EVAL_AND_SELECT
done:
    if (res) *res = R;
    if (logf) fclose(logf);
    json_decref(cfg);
    json_decref(info);
    for (size_t i = 0; tr && i < n_tr; i++) tex_free(&tr[i]);
    free(tr);
    for (size_t i = 0; dev && i < n_dev; i++) {
        tex_free(&dev[i].seq);
        for (size_t k = 0; dev[i].lab && k < c.n_labels; k++) tex_free(&dev[i].lab[k]);
        free(dev[i].lab);
    }
    free(dev);
    free(dev_rows);
    free(order);
    free(m);
    free(v);
    free(best);
    free(r.wbuf);
    free(r.tgbuf);
    tw_lmodel_free(r.lm);
    tw_prompt_free(c.prompt);
    tw_local_free(c.local);
    for (int i = 0; i < TW_SPLIT_COUNT; i++) tw_dataset_free(&sp[i]);
    free(ckpt_path);
    free(log_path);
    return st;
}
