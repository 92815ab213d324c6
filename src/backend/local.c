/* local.c — the in-process backend (local.h): model + tokenizer + chat template, prefix
 * cache by KV-sequence fork, generation and choice scoring.
 *
 * KV sequences: 0 holds the cached prefix, 1 the request being served (a fork of 0 when the
 * prefix is reused), 2.. the scratch sequences of tw_llama_score_choices.
 * Deliberately not here: prompt construction, answer parsing, result caching. */
#include "backend/local.h"

#include "model/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { SEQ_PREFIX = 0, SEQ_REQ = 1, SEQ_TMP = 2 };

struct tw_local {
    tw_llama *m;
    tw_tokenizer *tok;
    tw_chat_template *ct;      /* NULL: the model has none */
    tw_kv *kv;
    char *bos_text, *eos_text; /* the tokenizer's BOS / EOS token texts ("" when none) */
    char *prefix;              /* the cached prefix text (NULL: none) */
    tw_tok_ids prefix_ids;     /* its tokens, all in SEQ_PREFIX */
    char *model_id;            /* "sha256:..." once computed */
    tw_local_stats stats;
};

tw_local_params tw_local_default_params(void)
{
    return (tw_local_params){.n_threads = 0, .n_ctx = 4096, .kv_type = TW_KV_F16, .matmul = TW_MATMUL_FAST};
}

tw_status tw_local_load_tokenizer(const tw_model_files *mf, tw_tokenizer **out, tw_error *err)
{
    if (tw_model_files_gguf(mf)) return tw_tokenizer_from_gguf(out, tw_model_files_gguf(mf), err);
    if (!tw_model_files_tokenizer_json(mf))
        return tw_error_set(err, TW_ERR_INVALID, "%s: no tokenizer.json in this folder", tw_model_files_path(mf));
    return tw_tokenizer_load(out, tw_model_files_tokenizer_json(mf), err);
}

tw_status tw_local_load_template(const tw_model_files *mf, const char *override, tw_chat_template **out,
                                 tw_error *err)
{
    *out = NULL;
    if (override) {
        if (tw_file_exists(override)) return tw_chat_template_load(out, override, err);
        return tw_chat_template_builtin(out, override, err);
    }
    if (!mf) return TW_OK;
    const tw_gguf *g = tw_model_files_gguf(mf);
    if (g) {
        tw_gguf_str src;
        tw_error ignore;
        if (tw_gguf_get_str(g, "tokenizer.chat_template", &src, &ignore)) return TW_OK;
        char *tmpl = tw_strndup(src.ptr, src.len, err);
        if (!tmpl) return TW_ERR_NOMEM;
        tw_status st = tw_chat_template_new(out, tmpl, err);
        free(tmpl);
        return st;
    }
    if (!tw_model_files_tokenizer_config(mf)) return TW_OK;
    return tw_chat_template_load(out, tw_model_files_tokenizer_config(mf), err);
}

static char *token_text_dup(const tw_tokenizer *tok, int32_t id, tw_error *err)
{
    size_t n = 0;
    const char *s = id >= 0 ? tw_token_text(tok, id, &n) : "";
    return tw_strndup(s ? s : "", s ? n : 0, err);
}

tw_status tw_local_open(tw_local **out, const tw_local_params *p, tw_error *err)
{
    *out = NULL;
    tw_local_params d = tw_local_default_params();
    if (!p) p = &d;
    if (!p->model) return tw_error_set(err, TW_ERR_INVALID, "local backend: no model given");
    tw_local *l = calloc(1, sizeof *l);
    if (!l) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    tw_llama_params lp = tw_llama_default_params();
    lp.n_threads = p->n_threads;
    lp.matmul = p->matmul;
    tw_status st = tw_llama_open(&l->m, p->model, &lp, err);
    if (!st) st = tw_local_load_tokenizer(tw_llama_files(l->m), &l->tok, err);
    if (!st) st = tw_local_load_template(tw_llama_files(l->m), p->chat_template, &l->ct, err);
    if (!st) {
        tw_kv_params kp = tw_kv_default_params();
        kp.n_cells = p->n_ctx > 0 ? p->n_ctx : d.n_ctx;
        kp.n_seq = SEQ_TMP + 64;   /* 64 scratch sequences: labels scored 64 at a time */
        kp.type = p->kv_type;
        st = tw_kv_new(&l->kv, tw_llama_config(l->m), &kp, err);
    }
    if (!st) {
        l->bos_text = token_text_dup(l->tok, tw_tokenizer_bos(l->tok), err);
        l->eos_text = token_text_dup(l->tok, tw_tokenizer_eos(l->tok), err);
        if (!l->bos_text || !l->eos_text) st = TW_ERR_NOMEM;
    }
    if (st) {
        tw_local_free(l);
        return st;
    }
    *out = l;
    return TW_OK;
}

void tw_local_free(tw_local *l)
{
    if (!l) return;
    tw_kv_free(l->kv);
    tw_chat_template_free(l->ct);
    tw_tokenizer_free(l->tok);
    tw_llama_free(l->m);
    free(l->bos_text);
    free(l->eos_text);
    free(l->prefix);
    tw_tok_ids_free(&l->prefix_ids);
    free(l->model_id);
    free(l);
}

tw_llama *tw_local_model(tw_local *l) { return l->m; }
const tw_tokenizer *tw_local_tokenizer(const tw_local *l) { return l->tok; }
const tw_chat_template *tw_local_chat_template(const tw_local *l) { return l->ct; }
tw_local_stats tw_local_get_stats(const tw_local *l) { return l->stats; }

const char *tw_local_model_id(tw_local *l, tw_error *err)
{
    if (l->model_id) return l->model_id;
    const tw_model_files *mf = tw_llama_files(l->m);
    char hex[65];
    if (tw_model_files_gguf(mf)) {
        if (tw_sha256_file(tw_model_files_path(mf), hex, err)) return NULL;
    } else {
        /* HF folder: a hash over every tensor's name and data hash (the files may be split
         * into shards; what identifies the model is its tensors) */
        tw_buf b = {0};
        for (int64_t i = 0; i < tw_model_files_tensor_count(mf); i++) {
            const tw_model_tensor *t = tw_model_files_tensor_at(mf, i);
            char th[65];
            tw_sha256(t->data, (size_t)t->nbytes, th);
            if (tw_buf_printf(&b, "%s %d %s\n", t->name, (int)t->type, th)) {
                tw_buf_free(&b);
                tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                return NULL;
            }
        }
        tw_sha256(b.data ? b.data : "", b.len, hex);
        tw_buf_free(&b);
    }
    size_t n = strlen("sha256:") + 65;
    l->model_id = malloc(n);
    if (!l->model_id) {
        tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(l->model_id, n, "sha256:%s", hex);
    return l->model_id;
}

tw_status tw_local_render(const tw_local *l, const tw_chat_msg *msgs, size_t n, bool add_generation_prompt,
                          tw_buf *out, tw_error *err)
{
    if (!l->ct)
        return tw_error_set(err, TW_ERR_INVALID, "%s: the model has no chat template (give one)",
                            tw_model_files_path(tw_llama_files(l->m)));
    return tw_chat_render(l->ct, msgs, n, add_generation_prompt, l->bos_text, l->eos_text, out, err);
}

tw_status tw_local_tokenize(const tw_local *l, const char *text, size_t len, tw_tok_ids *out, tw_error *err)
{
    unsigned flags = TW_TOK_PARSE_SPECIAL;
    const size_t bl = strlen(l->bos_text);
    const bool has_bos = bl > 0 && len >= bl && memcmp(text, l->bos_text, bl) == 0;
    if (!has_bos) flags |= TW_TOK_ADD_SPECIAL;
    return tw_tokenize_append(l->tok, text, len, flags, out, err);
}

tw_status tw_local_set_prefix(tw_local *l, const char *text, tw_error *err)
{
    if (!text) text = "";
    if ((l->prefix ? l->prefix : "")[0] == 0 && text[0] == 0) return TW_OK;
    if (l->prefix && strcmp(l->prefix, text) == 0) return TW_OK;
    tw_kv_seq_clear(l->kv, SEQ_PREFIX);
    free(l->prefix);
    l->prefix = NULL;
    l->prefix_ids.n = 0;
    if (!text[0]) return TW_OK;
    tw_tok_ids ids = {0};
    tw_status st = tw_local_tokenize(l, text, strlen(text), &ids, err);
    if (!st && ids.n > 0)
        st = tw_llama_forward(l->m, l->kv, SEQ_PREFIX, ids.v, NULL, (int32_t)ids.n, TW_LOGITS_NONE, NULL, err);
    if (!st && !(l->prefix = tw_strdup(text, err))) st = TW_ERR_NOMEM;
    if (st) {
        tw_kv_seq_clear(l->kv, SEQ_PREFIX);
        tw_tok_ids_free(&ids);
        return st;
    }
    tw_tok_ids_free(&l->prefix_ids);
    l->prefix_ids = ids;
    return TW_OK;
}

tw_status tw_local_set_adapters(tw_local *l, struct tw_lora *const *adapters, const float *scales, int n,
                                tw_error *err)
{
    tw_status st = tw_llama_set_adapters(l->m, adapters, scales, n, err);
    if (st) return st;
    tw_kv_seq_clear(l->kv, SEQ_PREFIX);
    free(l->prefix);
    l->prefix = NULL;
    l->prefix_ids.n = 0;
    return TW_OK;
}

void tw_local_result_free(tw_local_result *r)
{
    if (!r) return;
    tw_buf_free(&r->text);
    memset(r, 0, sizeof *r);
}

/* Tokenize prefix + suffix into *ids and set up SEQ_REQ: a fork of the prefix when its
 * tokens start the prompt's (keeping at least one token to compute, so the caller always
 * has logits of the last prompt token), else empty. *skip = tokens already in SEQ_REQ. */
static tw_status prepare(tw_local *l, const char *suffix, tw_tok_ids *ids, int32_t *skip, tw_error *err)
{
    *skip = 0;
    tw_buf full = {0};
    tw_status st = TW_OK;
    if ((l->prefix && tw_buf_puts(&full, l->prefix)) || tw_buf_puts(&full, suffix ? suffix : ""))
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st) st = tw_local_tokenize(l, full.data ? full.data : "", full.len, ids, err);
    tw_buf_free(&full);
    if (st) return st;
    if (ids->n == 0) return tw_error_set(err, TW_ERR_INVALID, "local backend: empty prompt");
    tw_kv_seq_clear(l->kv, SEQ_REQ);
    l->stats.requests++;
    const size_t np = l->prefix_ids.n;
    if (np > 0) {
        bool ok = np <= ids->n && memcmp(ids->v, l->prefix_ids.v, np * sizeof *ids->v) == 0;
        if (!ok) {
            l->stats.prefix_misses++;
        } else {
            if ((st = tw_kv_seq_fork(l->kv, SEQ_REQ, SEQ_PREFIX, err))) return st;
            int32_t keep = (int32_t)np;
            if ((size_t)keep == ids->n) {            /* nothing after the prefix: redo its last token */
                keep--;
                tw_kv_seq_truncate(l->kv, SEQ_REQ, keep);
            }
            *skip = keep;
            l->stats.prefix_hits++;
            l->stats.tokens_reused += keep;
        }
    }
    l->stats.tokens_prefilled += (int64_t)ids->n - *skip;
    return TW_OK;
}

tw_status tw_local_generate(tw_local *l, const char *suffix, const tw_gen_params *gp, tw_local_result *res,
                            tw_error *err)
{
    memset(res, 0, sizeof *res);
    const double t0 = tw_now();
    tw_tok_ids ids = {0};
    int32_t skip;
    tw_status st = prepare(l, suffix, &ids, &skip, err);
    if (!st) {
        tw_gen_result gr;
        st = tw_generate(l->m, l->kv, SEQ_REQ, l->tok, ids.v + skip, (int32_t)ids.n - skip, gp, &gr, err);
        if (!st) {
            res->text = gr.text;
            gr.text = (tw_buf){0};
            res->tokens_out = gr.n_gen;
            res->stop = gr.stop;
        }
        tw_gen_result_free(&gr);
        res->tokens_in = (int32_t)ids.n;
        res->tokens_prefilled = (int32_t)ids.n - skip;
    }
    tw_kv_seq_clear(l->kv, SEQ_REQ);
    tw_tok_ids_free(&ids);
    res->latency_ms = (tw_now() - t0) * 1e3;
    return st;
}

/* The tokens of choice c as a continuation of suffix: tokenize suffix + choice and take
 * what follows suffix's own tokens when those are a prefix; else the choice alone. (The
 * suffix starts at a token boundary of the whole prompt: prepare() checked that, or the
 * prompt is being computed whole.) */
static tw_status choice_tokens(const tw_local *l, const char *suffix, const tw_tok_ids *suffix_ids, const char *choice,
                               tw_tok_ids *out, tw_error *err)
{
    tw_buf b = {0};
    if (tw_buf_puts(&b, suffix) || tw_buf_puts(&b, choice)) {
        tw_buf_free(&b);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    tw_tok_ids all = {0};
    tw_status st = tw_tokenize_append(l->tok, b.data, b.len, TW_TOK_PARSE_SPECIAL, &all, err);
    tw_buf_free(&b);
    if (st) return st;
    const size_t ns = suffix_ids->n;
    if (all.n > ns && memcmp(all.v, suffix_ids->v, ns * sizeof *all.v) == 0) {
        tw_tok_ids_free(out);
        *out = all;                               /* keep the tail: shift it down */
        memmove(out->v, out->v + ns, (all.n - ns) * sizeof *out->v);
        out->n = all.n - ns;
        return TW_OK;
    } else {
        st = tw_tokenize_append(l->tok, choice, strlen(choice), TW_TOK_PARSE_SPECIAL, out, err);
    }
    tw_tok_ids_free(&all);
    return st;
}

tw_status tw_local_score(tw_local *l, const char *suffix, const char *const *choices, size_t n_choices,
                         double *logprobs, tw_local_result *res, tw_error *err)
{
    tw_local_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    const double t0 = tw_now();
    if (!suffix) suffix = "";
    tw_tok_ids ids = {0}, suffix_ids = {0};
    tw_tok_ids *ct = calloc(n_choices ? n_choices : 1, sizeof *ct);
    const int32_t **cv = calloc(n_choices ? n_choices : 1, sizeof *cv);
    int32_t *cl = calloc(n_choices ? n_choices : 1, sizeof *cl);
    int32_t skip = 0;
    tw_status st = ct && cv && cl ? TW_OK : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st) st = prepare(l, suffix, &ids, &skip, err);
    if (!st) st = tw_tokenize_append(l->tok, suffix, strlen(suffix), TW_TOK_PARSE_SPECIAL, &suffix_ids, err);
    for (size_t c = 0; !st && c < n_choices; c++) {
        st = choice_tokens(l, suffix, &suffix_ids, choices[c], &ct[c], err);
        cv[c] = ct[c].v;
        cl[c] = (int32_t)ct[c].n;
    }
    if (!st)
        st = tw_llama_score_choices(l->m, l->kv, SEQ_REQ, SEQ_TMP, ids.v + skip, (int32_t)ids.n - skip, cv, cl,
                                    (int32_t)n_choices, logprobs, NULL, err);
    res->tokens_in = (int32_t)ids.n;
    res->tokens_prefilled = (int32_t)ids.n - skip;
    tw_kv_seq_clear(l->kv, SEQ_REQ);
    for (size_t c = 0; ct && c < n_choices; c++) tw_tok_ids_free(&ct[c]);
    free(ct);
    free(cv);
    free(cl);
    tw_tok_ids_free(&ids);
    tw_tok_ids_free(&suffix_ids);
    res->latency_ms = (tw_now() - t0) * 1e3;
    return st;
}
