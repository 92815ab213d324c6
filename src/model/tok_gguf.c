/* tok_gguf.c — build a tokenizer from GGUF metadata (llama.cpp's tokenizer.ggml.* keys,
 * ggml/docs/gguf.md "Tokenizer"): model, pre, tokens, token_type, merges, scores,
 * {bos,eos,unknown,padding}_token_id, add_bos_token, add_eos_token, add_space_prefix.
 *
 * The pipelines are chosen to match Hugging Face `tokenizers` on the original
 * tokenizer.json (the project's reference), which for the families below is also what
 * llama.cpp does, with one deliberate difference: "qwen2" applies NFC as Qwen's
 * tokenizer.json does (llama.cpp skips it). "llama" (SentencePiece) vocabularies merge by
 * token score like llama.cpp's llm_tokenizer_spm.
 *
 * Deliberately not here: tokenizer models other than "gpt2" and "llama" (bert/WPM, t5/UGM,
 * rwkv), and pre-tokenizer families beyond the ones listed in tokenizer.h. */
#include "model/tok_internal.h"
#include "model/gguf.h"

#include <stdlib.h>
#include <string.h>

/* llama.cpp llama_token_type / GGUF token_type values */
enum { GT_UNDEFINED = 0, GT_NORMAL = 1, GT_UNKNOWN = 2, GT_CONTROL = 3, GT_USER_DEFINED = 4, GT_UNUSED = 5, GT_BYTE = 6 };

static int32_t opt_id(const tw_gguf *g, const char *key, int32_t n_vocab)
{
    int64_t v = tw_gguf_int_or(g, key, -1);
    return (v >= 0 && v < n_vocab) ? (int32_t)v : -1;
}

typedef struct { float score; int32_t id; } scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static tw_status setup_pre(tw_tokenizer *t, const char *pre, const char *src, tw_error *err)
{
    tw_status st;
    const char *where = "tokenizer.ggml.pre";
    if (strcmp(pre, "smollm") == 0 || strcmp(pre, "starcoder") == 0 || strcmp(pre, "refact") == 0) {
        if ((st = tok_pre_add_regex(t, TOK_RE_DIGIT, strlen(TOK_RE_DIGIT), TOK_SPLIT_ISOLATED, false, where, err))) return st;
        st = tok_pre_add_regex(t, TOK_RE_GPT2, strlen(TOK_RE_GPT2), TOK_SPLIT_ISOLATED, false, where, err);
        snprintf(t->pre_name, sizeof t->pre_name, "smollm");
        return st;
    }
    if (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0 || strcmp(pre, "llama-v3") == 0) {
        t->ignore_merges = true;   /* tokenizer.json of Llama 3: "ignore_merges": true */
        snprintf(t->pre_name, sizeof t->pre_name, "llama-bpe");
        return tok_pre_add_regex(t, TOK_RE_LLAMA3, strlen(TOK_RE_LLAMA3), TOK_SPLIT_ISOLATED, false, where, err);
    }
    if (strcmp(pre, "qwen2") == 0) {
        if ((st = tok_norm_add(t, TOK_NORM_NFC, NULL, 0, NULL, 0, err))) return st;
        snprintf(t->pre_name, sizeof t->pre_name, "qwen2");
        return tok_pre_add_regex(t, TOK_RE_QWEN2, strlen(TOK_RE_QWEN2), TOK_SPLIT_ISOLATED, false, where, err);
    }
    if (strcmp(pre, "gpt2") == 0 || strcmp(pre, "default") == 0) {
        snprintf(t->pre_name, sizeof t->pre_name, "gpt2");
        return tok_pre_add_regex(t, TOK_RE_GPT2, strlen(TOK_RE_GPT2), TOK_SPLIT_ISOLATED, false, where, err);
    }
    return tw_error_set(err, TW_ERR_UNSUPPORTED,
                        "%s: tokenizer.ggml.pre '%s' is not supported (supported: smollm, llama-bpe, qwen2, gpt2, default)",
                        src, pre);
}

tw_status tw_tokenizer_from_gguf(tw_tokenizer **out, const tw_gguf *g, tw_error *err)
{
    *out = NULL;
    const char *src = tw_gguf_path(g);
    tw_gguf_str model;
    tw_status st = tw_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (st) return st;
    tw_tok_kind kind;
    if (tw_gguf_str_eq(model, "gpt2")) kind = TW_TOK_BYTE_BPE;
    else if (tw_gguf_str_eq(model, "llama")) kind = TW_TOK_SPM_BPE;
    else
        return tw_error_set(err, TW_ERR_UNSUPPORTED,
                            "%s: tokenizer.ggml.model '%.*s' is not supported (supported: gpt2, llama)", src,
                            (int)(model.len > 64 ? 64 : model.len), model.ptr);
    tw_gguf_array toks, types = {0}, merges = {0}, scores = {0};
    if ((st = tw_gguf_get_arr(g, "tokenizer.ggml.tokens", TW_GGUF_STRING, &toks, err))) return st;
    if (toks.n == 0 || toks.n >= (1u << 26))
        return tw_error_set(err, TW_ERR_INVALID, "%s: tokenizer.ggml.tokens: %llu tokens (expected 1 .. 2^26)", src,
                            (unsigned long long)toks.n);
    int32_t n = (int32_t)toks.n;
    bool has_types = tw_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0;
    if (has_types) {
        if ((st = tw_gguf_get_arr(g, "tokenizer.ggml.token_type", TW_GGUF_VTYPE_COUNT, &types, err))) return st;
        if (types.n != toks.n || types.type == TW_GGUF_STRING)
            return tw_error_set(err, TW_ERR_INVALID, "%s: tokenizer.ggml.token_type: %llu integers expected, one per token",
                                src, (unsigned long long)toks.n);
    }
    bool has_merges = tw_gguf_find_key(g, "tokenizer.ggml.merges") >= 0;
    if (has_merges && (st = tw_gguf_get_arr(g, "tokenizer.ggml.merges", TW_GGUF_STRING, &merges, err))) return st;
    bool has_scores = tw_gguf_find_key(g, "tokenizer.ggml.scores") >= 0;
    if (has_scores) {
        if ((st = tw_gguf_get_arr(g, "tokenizer.ggml.scores", TW_GGUF_VTYPE_COUNT, &scores, err))) return st;
        if (scores.n != toks.n || (scores.type != TW_GGUF_FLOAT32 && scores.type != TW_GGUF_FLOAT64))
            return tw_error_set(err, TW_ERR_INVALID, "%s: tokenizer.ggml.scores: %llu floats expected, one per token", src,
                                (unsigned long long)toks.n);
    }
    if (kind == TW_TOK_BYTE_BPE && !has_merges)
        return tw_error_set(err, TW_ERR_INVALID, "%s: tokenizer.ggml.merges: missing (required for a gpt2 tokenizer)", src);
    if (kind == TW_TOK_SPM_BPE && !has_scores && !has_merges)
        return tw_error_set(err, TW_ERR_INVALID, "%s: tokenizer.ggml.scores: missing (required for a llama tokenizer)", src);

    tw_tokenizer *t;
    if ((st = tok_new(&t, kind, n, src, err))) return st;
    for (int32_t id = 0; id < n; id++) {
        tw_gguf_str s = tw_gguf_arr_str(g, &toks, (uint64_t)id);
        int64_t ty = has_types ? tw_gguf_arr_int(&types, (uint64_t)id) : GT_NORMAL;
        unsigned attr = TW_TOKATTR_NORMAL;
        if (ty == GT_BYTE) attr = TW_TOKATTR_BYTE;
        else if (ty == GT_UNUSED) attr = TW_TOKATTR_UNUSED;
        if ((st = tok_set_token(t, id, s.ptr, (size_t)s.len, attr, err))) goto fail;
    }
    for (int32_t id = 0; id < n; id++) {
        int64_t ty = has_types ? tw_gguf_arr_int(&types, (uint64_t)id) : GT_NORMAL;
        if (ty == GT_CONTROL || ty == GT_USER_DEFINED) {
            if (t->text_len[id] == 0) continue;   /* nothing to match */
            if ((st = tok_added_add(t, id, ty == GT_CONTROL, false, false, false, err))) goto fail;
            continue;
        }
        if (ty == GT_UNKNOWN && t->text_len[id] > 0 && (st = tok_added_add(t, id, true, false, false, false, err)))
            goto fail;
        if ((st = tok_vocab_insert(t, id, err))) goto fail;
    }
    t->bos = opt_id(g, "tokenizer.ggml.bos_token_id", n);
    t->eos = opt_id(g, "tokenizer.ggml.eos_token_id", n);
    t->unk = opt_id(g, "tokenizer.ggml.unknown_token_id", n);
    t->pad = opt_id(g, "tokenizer.ggml.padding_token_id", n);
    /* llama.cpp's BPE drops bytes without a token; its SPM emits unk (as HF does) */
    t->model_unk = kind == TW_TOK_SPM_BPE ? t->unk : -1;
    bool spm = kind == TW_TOK_SPM_BPE;
    if (tw_gguf_bool_or(g, "tokenizer.ggml.add_bos_token", spm) && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    if (tw_gguf_bool_or(g, "tokenizer.ggml.add_eos_token", false) && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;

    if (spm) {
        bool space_prefix = tw_gguf_bool_or(g, "tokenizer.ggml.add_space_prefix", true);
        if (space_prefix && (st = tok_norm_add(t, TOK_NORM_PREPEND, "\xe2\x96\x81", 3, NULL, 0, err))) goto fail;
        if ((st = tok_norm_add(t, TOK_NORM_REPLACE, " ", 1, "\xe2\x96\x81", 3, err))) goto fail;
        t->byte_fallback = true;
        t->dec_strip_space = space_prefix;
        snprintf(t->pre_name, sizeof t->pre_name, "llama");
    } else {
        char pre[64];
        if (!tw_gguf_str_copy(g, "tokenizer.ggml.pre", pre, sizeof pre)) {
            tw_log(TW_LOG_WARN, "%s: no tokenizer.ggml.pre; using the GPT-2 pre-tokenizer", src);
            snprintf(pre, sizeof pre, "default");
        }
        if ((st = setup_pre(t, pre, src, err))) goto fail;
    }

    if (spm && has_scores) {
        /* llama.cpp SPM: a merge's priority is the merged token's score (higher first) */
        scored *sc = malloc((size_t)n * sizeof *sc);
        t->score_rank = malloc((size_t)n * sizeof *t->score_rank);
        if (!sc || !t->score_rank) {
            free(sc);
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int32_t id = 0; id < n; id++) sc[id] = (scored){(float)tw_gguf_arr_float(&scores, (uint64_t)id), id};
        qsort(sc, (size_t)n, sizeof *sc, cmp_scored);
        int32_t rank = 0;
        for (int32_t i = 0; i < n; i++) {
            if (i > 0 && sc[i].score != sc[i - 1].score) rank++;
            t->score_rank[sc[i].id] = (t->attr[sc[i].id] & (TW_TOKATTR_ADDED | TW_TOKATTR_BYTE)) ? -1 : rank;
        }
        free(sc);
    } else {
        if ((st = tok_merges_reserve(t, (size_t)merges.n, err))) goto fail;
        for (uint64_t i = 0; i < merges.n; i++) {
            tw_gguf_str m = tw_gguf_arr_str(g, &merges, i);
            char where[160];
            snprintf(where, sizeof where, "%s: tokenizer.ggml.merges[%llu]", src, (unsigned long long)i);
            const char *sp = memchr(m.ptr, ' ', (size_t)m.len);
            if (!sp || memchr(sp + 1, ' ', (size_t)(m.ptr + m.len - sp - 1))) {
                st = tw_error_set(err, TW_ERR_PARSE, "%s: expected \"left right\" (one space), got '%.*s'", where,
                                  (int)(m.len > 100 ? 100 : m.len), m.ptr);
                goto fail;
            }
            size_t al = (size_t)(sp - m.ptr);
            if ((st = tok_merge_add(t, m.ptr, al, sp + 1, (size_t)m.len - al - 1, (int32_t)i, where, err))) goto fail;
        }
    }
    if ((st = tok_finish(t, err))) goto fail;
    *out = t;
    return TW_OK;
fail:
    tw_tokenizer_free(t);
    return st;
}
