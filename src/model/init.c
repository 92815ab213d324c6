/* init.c — `tunewise model init`: write a random-weight GGUF model of a real shape with
 * llama.cpp's tensor names and metadata keys (llama.cpp src/llama-arch.cpp, GGUF spec "LLM"
 * and "Tokenizer" sections), and the conversion of a Hugging Face tokenizer.json into
 * llama.cpp's tokenizer.ggml.* metadata (the rules of llama.cpp's convert_hf_to_gguf.py /
 * gguf-py SpecialVocab, restated in docs/model-files.md).
 *
 * Tensors are produced row by row inside the GGUF writer's fill callback, so memory stays
 * at a few MiB whatever the model size; each tensor has its own RNG stream seeded by
 * (seed, tensor name), so the bytes depend only on the seed, the shape and the type.
 * Deliberately not here: training or any meaningful weights; tokenization itself. */
#include "model/config.h"
#include "model/quant.h"
#include "base/base.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* llama.cpp token types (llama_token_type / gguf-py TokenType). */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

/* ---- tokenizer.json -> GGUF ------------------------------------------------ */
typedef struct tok_entry {
    const char *s;     /* borrowed from the JSON tree, or from `pads` */
    size_t len;
    int32_t type;
    bool set;
} tok_entry;

/* Does the pre-tokenizer / decoder tree contain a component of this type? */
static json_t *find_component(json_t *node, const char *type)
{
    if (!json_is_object(node)) return NULL;
    const char *t = json_string_value(json_object_get(node, "type"));
    if (t && strcmp(t, type) == 0) return node;
    const char *lists[] = {"pretokenizers", "normalizers", "decoders"};
    for (size_t i = 0; i < 3; i++) {
        json_t *arr = json_object_get(node, lists[i]);
        size_t k;
        json_t *e;
        json_array_foreach(arr, k, e) {
            json_t *f = find_component(e, type);
            if (f) return f;
        }
    }
    return NULL;
}

/* The regex of llama 3's and Qwen2's Split pre-tokenizers (as in their tokenizer.json). */
static const char *const RE_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const RE_QWEN2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* llama.cpp's tokenizer.ggml.pre name for a byte-level pre-tokenizer we recognize. */
static const char *detect_pre(json_t *pre)
{
    if (!json_is_object(pre)) return "default";
    const char *t = json_string_value(json_object_get(pre, "type"));
    json_t *split = find_component(pre, "Split");
    if (split) {
        const char *re = json_string_value(json_object_get(json_object_get(split, "pattern"), "Regex"));
        if (re && strcmp(re, RE_LLAMA3) == 0) return "llama-bpe";
        if (re && strcmp(re, RE_QWEN2) == 0) return "qwen2";
        return "default";
    }
    if (t && strcmp(t, "ByteLevel") == 0 && json_is_true(json_object_get(pre, "use_regex"))) return "gpt2";
    json_t *list = json_object_get(pre, "pretokenizers");
    if (t && strcmp(t, "Sequence") == 0 && json_array_size(list) == 2) {
        json_t *a = json_array_get(list, 0), *b = json_array_get(list, 1);
        const char *ta = json_string_value(json_object_get(a, "type")), *tb = json_string_value(json_object_get(b, "type"));
        if (ta && tb && strcmp(ta, "Digits") == 0 && json_is_true(json_object_get(a, "individual_digits")) &&
            strcmp(tb, "ByteLevel") == 0 && json_is_true(json_object_get(b, "use_regex")))
            return "smollm";
    }
    return "default";
}

/* A special-token field of tokenizer_config.json: "text" or {"content": "text", ...}. */
static const char *token_text(json_t *v)
{
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static char *sibling(const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 1;
    size_t n = dl + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) return NULL;
    if (slash) snprintf(p, n, "%.*s/%s", (int)dl, path, name);
    else snprintf(p, n, "./%s", name);
    return p;
}

static json_t *load_optional_json(const char *tokenizer_json, const char *name, tw_error *err, tw_status *st)
{
    *st = TW_OK;
    char *p = sibling(tokenizer_json, name);
    if (!p) {
        *st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        return NULL;
    }
    json_t *j = NULL;
    if (tw_file_exists(p)) {
        json_error_t je;
        /* integers as reals: tokenizer_config.json files carry model_max_length values
         * like 1e30 that do not fit json_int_t; ids are read back with json_id() */
        j = json_load_file(p, JSON_DECODE_INT_AS_REAL, &je);
        if (!j || !json_is_object(j)) {
            *st = tw_error_set(err, TW_ERR_PARSE, "%s:%d:%d: %s", p, je.line, je.column, j ? "expected an object" : je.text);
            json_decref(j);
            j = NULL;
        }
    }
    free(p);
    return j;
}

/* A token id from a file loaded with JSON_DECODE_INT_AS_REAL: a non-negative integral number. */
static int32_t json_id(json_t *v)
{
    if (json_is_array(v)) v = json_array_get(v, 0);   /* eos_token_id: [a, b] */
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    return d >= 0 && d < INT32_MAX && d == floor(d) ? (int32_t)d : -1;
}

typedef struct tok_conv {
    tok_entry *tok;
    int64_t n;
    json_t *vocab;           /* model.vocab */
    json_t *added;           /* added_tokens */
} tok_conv;

static int32_t lookup_id(const tok_conv *c, const char *text)
{
    if (!text) return -1;
    size_t k;
    json_t *a;
    json_array_foreach(c->added, k, a) {
        const char *ct = json_string_value(json_object_get(a, "content"));
        if (ct && strcmp(ct, text) == 0 && json_is_integer(json_object_get(a, "id")))
            return (int32_t)json_integer_value(json_object_get(a, "id"));
    }
    json_t *v = json_object_get(c->vocab, text);
    return json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
}

tw_status tw_tokenizer_json_to_gguf(tw_gguf_writer *w, const char *path, const char *pre_override, int64_t n_vocab_pad,
                                    tw_tokenizer_gguf_info *info, tw_error *err)
{
    tw_tokenizer_gguf_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->bos_id = info->eos_id = -1;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        bool missing = strstr(je.text, "unable to open") != NULL;
        return tw_error_set(err, missing ? TW_ERR_IO : TW_ERR_PARSE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    tw_status st = TW_OK;
    json_t *tcfg = NULL, *mcfg = NULL;
    tok_conv c = {0};
    char **pads = NULL;
    int64_t n_pads = 0;
    const char **strs = NULL;
    size_t *lens = NULL;
    int32_t *types = NULL;
    float *scores = NULL;
    char **merges = NULL;
    int64_t n_merges = 0;

    json_t *model = json_object_get(root, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model) || !mtype) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s: expected an object \"model\" with a \"type\"", path);
        goto done;
    }
    if (strcmp(mtype, "BPE") != 0) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tokenizer model type '%s' is not supported (expected BPE)", path, mtype);
        goto done;
    }
    json_t *pre = json_object_get(root, "pre_tokenizer"), *norm = json_object_get(root, "normalizer");
    json_t *dec = json_object_get(root, "decoder");
    bool byte_level = find_component(pre, "ByteLevel") || find_component(dec, "ByteLevel");
    bool byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    json_t *prepend = find_component(norm, "Prepend"), *metaspace = find_component(pre, "Metaspace");
    bool spm = !byte_level && (byte_fallback || prepend || metaspace || find_component(norm, "Replace"));
    if (!byte_level && !spm) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                          "%s: neither a byte-level BPE (ByteLevel pre-tokenizer) nor a SentencePiece-style BPE "
                          "(byte_fallback / Metaspace / \"\\u2581\" normalizer): not supported", path);
        goto done;
    }
    snprintf(info->model, sizeof info->model, "%s", byte_level ? "gpt2" : "llama");

    /* tokens: vocab, then added_tokens (which may extend it or restate entries) */
    c.vocab = json_object_get(model, "vocab");
    c.added = json_object_get(root, "added_tokens");
    if (!json_is_object(c.vocab)) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s: expected an object \"model.vocab\"", path);
        goto done;
    }
    if (c.added && !json_is_array(c.added)) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s: expected an array \"added_tokens\"", path);
        goto done;
    }
    int64_t max_id = -1;
    const char *k;
    json_t *v;
    json_object_foreach(c.vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24)) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: model.vocab['%s']: expected a token id in 0..16777215", path, k);
            goto done;
        }
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    size_t ai;
    json_t *a;
    json_array_foreach(c.added, ai, a) {
        json_t *id = json_object_get(a, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
            !json_is_string(json_object_get(a, "content"))) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: added_tokens[%zu]: expected \"id\" in 0..16777215 and a string \"content\"",
                              path, ai);
            goto done;
        }
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    c.n = max_id + 1;
    int64_t n_total = c.n > n_vocab_pad ? c.n : n_vocab_pad;
    c.tok = calloc((size_t)(n_total ? n_total : 1), sizeof *c.tok);
    if (!c.tok) {
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    json_object_foreach(c.vocab, k, v) {
        int64_t id = json_integer_value(v);
        if (c.tok[id].set) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: model.vocab: id %lld is used by both '%s' and '%.*s'", path, (long long)id, k,
                              (int)c.tok[id].len, c.tok[id].s);
            goto done;
        }
        c.tok[id].s = k;
        c.tok[id].len = strlen(k);
        c.tok[id].set = true;
        c.tok[id].type = TOK_NORMAL;
        if (spm) {
            unsigned hx;
            char tail;
            if (unk && strcmp(k, unk) == 0) c.tok[id].type = TOK_UNKNOWN;
            else if (byte_fallback && strlen(k) == 6 && sscanf(k, "<0x%2X%c", &hx, &tail) == 2 && tail == '>')
                c.tok[id].type = TOK_BYTE;
        }
    }
    json_array_foreach(c.added, ai, a) {
        int64_t id = json_integer_value(json_object_get(a, "id"));
        json_t *cs = json_object_get(a, "content");
        c.tok[id].s = json_string_value(cs);
        c.tok[id].len = json_string_length(cs);
        c.tok[id].set = true;
        if (json_is_true(json_object_get(a, "special"))) {
            if (!(spm && unk && strcmp(c.tok[id].s, unk) == 0)) c.tok[id].type = TOK_CONTROL;
        } else {
            c.tok[id].type = TOK_USER_DEFINED;
        }
    }
    for (int64_t i = 0; i < n_total; i++)
        if (!c.tok[i].set) n_pads++;
    if (n_pads) {
        pads = calloc((size_t)n_pads, sizeof *pads);
        if (!pads) {
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            goto done;
        }
        int64_t p = 0;
        for (int64_t i = 0; i < n_total; i++) {
            if (c.tok[i].set) continue;
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%lld]", (long long)i);
            pads[p] = strdup(buf);
            if (!pads[p]) {
                st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                goto done;
            }
            c.tok[i] = (tok_entry){pads[p], strlen(pads[p]), TOK_UNUSED, true};
            p++;
        }
        if (n_pads > n_total - c.n)
            tw_log(TW_LOG_WARN, "%s: %lld token ids below %lld have no token; filled with [PAD<id>]", path,
                   (long long)(n_pads - (n_total - c.n)), (long long)c.n);
    }

    /* merges: "a b" strings, or ["a", "b"] pairs in newer files */
    json_t *jm = json_object_get(model, "merges");
    if (jm && !json_is_array(jm)) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s: expected an array \"model.merges\"", path);
        goto done;
    }
    n_merges = (int64_t)json_array_size(jm);
    merges = calloc((size_t)(n_merges ? n_merges : 1), sizeof *merges);
    if (!merges) {
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n_merges; i++) {
        json_t *e = json_array_get(jm, (size_t)i);
        if (json_is_string(e)) {
            merges[i] = strdup(json_string_value(e));
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            const char *x = json_string_value(json_array_get(e, 0)), *y = json_string_value(json_array_get(e, 1));
            size_t n = strlen(x) + strlen(y) + 2;
            merges[i] = malloc(n);
            if (merges[i]) snprintf(merges[i], n, "%s %s", x, y);
        } else {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: model.merges[%lld]: expected \"a b\" or [\"a\", \"b\"]", path, (long long)i);
            goto done;
        }
        if (!merges[i]) {
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            goto done;
        }
    }

    strs = calloc((size_t)n_total, sizeof *strs);
    lens = calloc((size_t)n_total, sizeof *lens);
    types = calloc((size_t)n_total, sizeof *types);
    if (!strs || !lens || !types) {
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n_total; i++) {
        strs[i] = c.tok[i].s;
        lens[i] = c.tok[i].len;
        types[i] = c.tok[i].type;
    }

    /* SentencePiece-style: llama.cpp's "llama" tokenizer merges the adjacent pair whose
     * concatenation has the highest score, so the score encodes the merge priority:
     * -(rank of the first merge producing the token); tokens no merge produces rank
     * after every merge, -(n_merges + id); byte / control / unknown tokens score 0. */
    if (spm) {
        scores = malloc((size_t)n_total * sizeof *scores);
        if (!scores) {
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n_total; i++)
            scores[i] = (types[i] == TOK_NORMAL || types[i] == TOK_USER_DEFINED) ? -(float)(n_merges + i) : 0.0f;
        for (int64_t r = 0; r < n_merges; r++) {
            char *sp = strchr(merges[r], ' ');
            if (!sp) continue;
            size_t la = (size_t)(sp - merges[r]);
            char joined[512];
            size_t lb = strlen(sp + 1);
            if (la + lb >= sizeof joined) continue;
            memcpy(joined, merges[r], la);
            memcpy(joined + la, sp + 1, lb + 1);
            json_t *id = json_object_get(c.vocab, joined);
            if (json_is_integer(id)) {
                int64_t t = json_integer_value(id);
                if (types[t] == TOK_NORMAL && scores[t] < -(float)r) scores[t] = -(float)r;
            }
        }
    }

    /* special tokens: tokenizer_config.json, then config.json, then the post-processor */
    tcfg = load_optional_json(path, "tokenizer_config.json", err, &st);
    if (st) goto done;
    mcfg = load_optional_json(path, "config.json", err, &st);
    if (st) goto done;
    int32_t bos = lookup_id(&c, token_text(json_object_get(tcfg, "bos_token")));
    int32_t eos = lookup_id(&c, token_text(json_object_get(tcfg, "eos_token")));
    int32_t unk_id = lookup_id(&c, token_text(json_object_get(tcfg, "unk_token")));
    int32_t pad = lookup_id(&c, token_text(json_object_get(tcfg, "pad_token")));
    if (unk_id < 0 && unk) unk_id = lookup_id(&c, unk);
    json_t *x;
    if (bos < 0) bos = json_id(json_object_get(mcfg, "bos_token_id"));
    if (eos < 0) eos = json_id(json_object_get(mcfg, "eos_token_id"));
    if (pad < 0) pad = json_id(json_object_get(mcfg, "pad_token_id"));
    /* add_bos / add_eos: tokenizer_config.json, else a TemplateProcessing post-processor
     * that starts (ends) its "single" template with a special token */
    int add_bos = -1, add_eos = -1;
    if (json_is_boolean(x = json_object_get(tcfg, "add_bos_token"))) add_bos = json_is_true(x);
    if (json_is_boolean(x = json_object_get(tcfg, "add_eos_token"))) add_eos = json_is_true(x);
    json_t *tp = find_component(json_object_get(root, "post_processor"), "TemplateProcessing");
    json_t *single = json_object_get(tp, "single");
    if (json_array_size(single) > 0) {
        json_t *first = json_object_get(json_array_get(single, 0), "SpecialToken");
        json_t *last = json_object_get(json_array_get(single, json_array_size(single) - 1), "SpecialToken");
        if (add_bos < 0) add_bos = first != NULL;
        if (add_eos < 0) add_eos = last != NULL && json_array_size(single) > 1;
        if (bos < 0 && first) bos = lookup_id(&c, json_string_value(json_object_get(first, "id")));
    }
    if (bos >= n_total) bos = -1;
    if (eos >= n_total) eos = -1;
    if (pad >= n_total) pad = -1;
    if (unk_id >= n_total) unk_id = -1;
    bool space_prefix = false;
    if (spm) {
        space_prefix = prepend != NULL;
        if (metaspace) {
            const char *scheme = json_string_value(json_object_get(metaspace, "prepend_scheme"));
            space_prefix = json_is_true(json_object_get(metaspace, "add_prefix_space")) || (scheme && strcmp(scheme, "never") != 0);
        }
    } else {
        space_prefix = json_is_true(json_object_get(find_component(pre, "ByteLevel"), "add_prefix_space"));
    }

    const char *pre_name = pre_override ? pre_override : (byte_level ? detect_pre(pre) : "default");
    snprintf(info->pre, sizeof info->pre, "%s", pre_name);
    if (byte_level && !pre_override && strcmp(pre_name, "default") == 0)
        tw_log(TW_LOG_WARN, "%s: pre-tokenizer not recognized; tokenizer.ggml.pre = \"default\" (use --tokenizer-pre)", path);

    if ((st = tw_gguf_writer_set_str(w, "tokenizer.ggml.model", info->model, (size_t)-1, err))) goto done;
    if ((st = tw_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre_name, (size_t)-1, err))) goto done;
    if ((st = tw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)n_total, err))) goto done;
    if (scores && (st = tw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", TW_GGUF_FLOAT32, scores, (uint64_t)n_total, err)))
        goto done;
    if ((st = tw_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TW_GGUF_INT32, types, (uint64_t)n_total, err))) goto done;
    if (n_merges &&
        (st = tw_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL, (uint64_t)n_merges, err)))
        goto done;
    if (bos >= 0 && (st = tw_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos, err))) goto done;
    if (eos >= 0 && (st = tw_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos, err))) goto done;
    if (unk_id >= 0 && (st = tw_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk_id, err))) goto done;
    if (pad >= 0 && (st = tw_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad, err))) goto done;
    if (add_bos >= 0 && (st = tw_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos == 1, err))) goto done;
    if (add_eos >= 0 && (st = tw_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos == 1, err))) goto done;
    if ((st = tw_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", space_prefix, err))) goto done;
    json_t *tmpl = json_object_get(tcfg, "chat_template");
    if (json_is_string(tmpl)) {
        if ((st = tw_gguf_writer_set_str(w, "tokenizer.chat_template", json_string_value(tmpl), json_string_length(tmpl), err)))
            goto done;
        info->chat_template = true;
    } else if (json_is_array(tmpl)) {
        /* [{"name": "default", "template": "..."}, {"name": "tool_use", ...}] */
        size_t ti;
        json_t *e;
        json_array_foreach(tmpl, ti, e) {
            const char *nm = json_string_value(json_object_get(e, "name"));
            json_t *tx = json_object_get(e, "template");
            if (!nm || !json_is_string(tx)) continue;
            char key[160];
            if (strcmp(nm, "default") == 0) snprintf(key, sizeof key, "tokenizer.chat_template");
            else snprintf(key, sizeof key, "tokenizer.chat_template.%.100s", nm);
            if ((st = tw_gguf_writer_set_str(w, key, json_string_value(tx), json_string_length(tx), err))) goto done;
            info->chat_template = true;
        }
    }
    info->n_tokens = n_total;
    info->n_merges = n_merges;
    info->bos_id = bos;
    info->eos_id = eos;

done:
    if (merges)
        for (int64_t i = 0; i < n_merges; i++) free(merges[i]);
    free(merges);
    if (pads)
        for (int64_t i = 0; i < n_pads; i++) free(pads[i]);
    free(pads);
    free(c.tok);
    free(strs);
    free(lens);
    free(types);
    free(scores);
    json_decref(tcfg);
    json_decref(mcfg);
    json_decref(root);
    return st;
}

/* ---- random-weight model ----------------------------------------------------- */
tw_model_init_params tw_model_init_default_params(void)
{
    tw_model_init_params p;
    memset(&p, 0, sizeof p);
    p.like = "tiny";
    p.type = TW_TYPE_F32;
    p.seed = 42;
    p.stddev = 0.02f;
    return p;
}

/* llama_ftype of a file whose 2-D weights are `t` (llama.cpp include/llama.h). */
static uint32_t file_type_of(tw_type t)
{
    switch (t) {
    case TW_TYPE_F32: return 0;
    case TW_TYPE_F16: return 1;
    case TW_TYPE_Q4_0: return 2;
    case TW_TYPE_Q4_1: return 3;
    case TW_TYPE_Q8_0: return 7;
    case TW_TYPE_Q5_0: return 8;
    case TW_TYPE_Q5_1: return 9;
    case TW_TYPE_Q4_K: return 14;   /* Q4_K_S: every weight Q4_K */
    case TW_TYPE_Q5_K: return 16;   /* Q5_K_S */
    case TW_TYPE_Q6_K: return 18;
    case TW_TYPE_BF16: return 32;
    default: return 0;
    }
}

/* The type a row of ne0 elements gets: t when ne0 fits its block, else llama.cpp's
 * fallback for k-quants (llama-quant.cpp: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), else F16. */
static tw_type fit_type(tw_type t, int64_t ne0)
{
    const tw_type_info *ti = tw_type_get(t);
    if (ne0 % ti->block == 0) return t;
    tw_type f = TW_TYPE_F16;
    if (t == TW_TYPE_Q4_K) f = TW_TYPE_Q5_0;
    else if (t == TW_TYPE_Q5_K) f = TW_TYPE_Q5_1;
    else if (t == TW_TYPE_Q6_K) f = TW_TYPE_Q8_0;
    if (ne0 % tw_type_get(f)->block) f = TW_TYPE_F16;
    return f;
}

typedef enum { FILL_NORMAL, FILL_ONES, FILL_FIXED } fill_kind;

typedef struct gen_tensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[2];
    tw_type type;
    fill_kind kind;
    uint64_t seed;           /* of this tensor: hash of (seed, name) */
    float stddev;
    const float *fixed;      /* FILL_FIXED: ne[0] values */
    uint64_t *done, total;   /* progress */
    const tw_model_init_params *p;
} gen_tensor;

/* n samples of N(0, sd): Box-Muller, both outputs of each pair used. */
static void normal_row(tw_rng *r, float *out, int64_t n, float sd)
{
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = tw_rng_uniform(r), u2 = tw_rng_uniform(r);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)) * sd, th = 2.0 * M_PI * u2;
        out[i] = (float)(rad * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(rad * sin(th));
    }
}

/* Rows are independent: row i of a tensor draws from its own stream seeded by
 * (tensor seed, i), so the bytes do not depend on the number of threads or on how the
 * writer chunks the rows. */
static tw_status gen_fill(void *user, void *dst, uint64_t row0, uint64_t nrows, tw_error *err)
{
    gen_tensor *g = user;
    int64_t n = g->ne[0];
    size_t rb = tw_type_row_bytes(g->type, (uint64_t)n);
    int failed = 0;
#pragma omp parallel
    {
        float *row = malloc((size_t)n * sizeof *row);
        if (!row) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < (int64_t)nrows; r++) {
            if (!row) continue;
            if (g->kind == FILL_ONES) {
                for (int64_t i = 0; i < n; i++) row[i] = 1.0f;
            } else if (g->kind == FILL_FIXED) {
                memcpy(row, g->fixed, (size_t)n * sizeof *row);
            } else {
                tw_rng rng;
                tw_rng_seed(&rng, g->seed + (row0 + (uint64_t)r) * 0x9e3779b97f4a7c15ULL);
                normal_row(&rng, row, n, g->stddev);
            }
            uint8_t *out = (uint8_t *)dst + (size_t)r * rb;
            if (g->type == TW_TYPE_F32) memcpy(out, row, (size_t)n * sizeof(float));
            else tw_quantize_row(g->type, out, row, n);
        }
        free(row);
    }
    if (failed) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (g->done) {
        *g->done += nrows * rb;
        if (g->p->progress) g->p->progress(g->p->progress_user, *g->done, g->total);
    }
    return TW_OK;
}

/* Append a tensor description: 2-D weights take `type` (or its fallback), 1-D ones F32.
 * d1 = 0 means a 1-D tensor of d0 elements. */
static void add_gen(gen_tensor *gt, size_t *nt, const char *name, int64_t d0, int64_t d1, fill_kind kind, tw_type type,
                    int *n_fallback)
{
    gen_tensor *g = &gt[(*nt)++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->ne[0] = d0;
    g->ne[1] = d1 > 0 ? d1 : 1;
    g->n_dims = d1 > 0 ? 2 : 1;
    g->kind = kind;
    g->type = g->n_dims == 2 ? fit_type(type, d0) : TW_TYPE_F32;
    if (g->n_dims == 2 && g->type != type) (*n_fallback)++;
}

static tw_status add_kv_arch(tw_gguf_writer *w, const tw_model_config *c, tw_error *err)
{
    const char *a = tw_arch_name(c->arch);
    char k[128];
    tw_status st;
#define U32(suffix, val)                                                        \
    do {                                                                        \
        snprintf(k, sizeof k, "%s.%s", a, suffix);                              \
        if ((st = tw_gguf_writer_set_u32(w, k, (uint32_t)(val), err))) return st; \
    } while (0)
#define F32(suffix, val)                                                        \
    do {                                                                        \
        snprintf(k, sizeof k, "%s.%s", a, suffix);                              \
        if ((st = tw_gguf_writer_set_f32(w, k, (float)(val), err))) return st;  \
    } while (0)
    U32("context_length", c->n_ctx_train);
    U32("embedding_length", c->n_embd);
    U32("block_count", c->n_layer);
    U32("feed_forward_length", c->n_ff);
    U32("attention.head_count", c->n_head);
    U32("attention.head_count_kv", c->n_head_kv);
    F32("rope.freq_base", c->rope_freq_base);
    F32("attention.layer_norm_rms_epsilon", c->rms_eps);
    U32("rope.dimension_count", c->n_rot);
    U32("vocab_size", c->n_vocab);
    if (c->arch == TW_ARCH_QWEN3 || c->head_dim != c->n_embd / c->n_head) {
        U32("attention.key_length", c->head_dim);
        U32("attention.value_length", c->head_dim);
    }
#undef U32
#undef F32
    return TW_OK;
}

tw_status tw_model_init(const tw_model_init_params *p, const char *out_path, tw_model_init_info *info, tw_error *err)
{
    tw_model_init_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->tok.bos_id = info->tok.eos_id = -1;
    const tw_model_shape *shape = tw_model_shape_find(p->like ? p->like : "");
    if (!shape) {
        char names[256] = "";
        for (int i = 0; i < tw_model_shape_count(); i++) {
            size_t u = strlen(names);
            snprintf(names + u, sizeof names - u, "%s%s", i ? ", " : "", tw_model_shape_at(i)->name);
        }
        return tw_error_set(err, TW_ERR_INVALID, "unknown model shape '%s' (known: %s)", p->like ? p->like : "", names);
    }
    const tw_type_info *ti = tw_type_get(p->type);
    if (!ti || !tw_quant_supported(p->type))
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "cannot write weights of type %s (supported: f32, f16, bf16, q8_0, "
                            "q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)", ti ? ti->name : "?");
    tw_model_config c = shape->cfg;
    if (p->arch) {
        if (!tw_arch_parse(p->arch, &c.arch))
            return tw_error_set(err, TW_ERR_INVALID, "unknown architecture '%s' (expected llama, qwen2 or qwen3)", p->arch);
        c.attn_bias = c.arch == TW_ARCH_QWEN2;
        c.qk_norm = c.arch == TW_ARCH_QWEN3;
        c.rope_type = c.arch == TW_ARCH_LLAMA ? TW_ROPE_NORMAL : TW_ROPE_NEOX;
    }
    bool llama3_rope = strcmp(shape->name, "llama-3.2-1b") == 0;
    if (llama3_rope) {
        c.rope_scaling = TW_ROPE_SCALING_LLAMA3;
        c.rope_scale = 32.0f;
        c.rope_low_freq_factor = 1.0f;
        c.rope_high_freq_factor = 4.0f;
        c.rope_orig_ctx = 8192;
    }
    if (p->n_vocab > 0) c.n_vocab = p->n_vocab;
    float stddev = p->stddev > 0.0f ? p->stddev : 0.02f;

    tw_gguf_writer *w = NULL;
    gen_tensor *gt = NULL;
    float *rope = NULL;
    tw_status st = tw_gguf_writer_new(&w, err);
    if (st) return st;
    const char *an = tw_arch_name(c.arch);
    char name[160];
    snprintf(name, sizeof name, "tunewise random %s (%s)", shape->name, an);
    if ((st = tw_gguf_writer_set_str(w, "general.architecture", an, (size_t)-1, err))) goto done;
    if ((st = tw_gguf_writer_set_str(w, "general.type", "model", (size_t)-1, err))) goto done;
    if ((st = tw_gguf_writer_set_str(w, "general.name", name, (size_t)-1, err))) goto done;
    if ((st = tw_gguf_writer_set_u32(w, "general.file_type", file_type_of(p->type), err))) goto done;
    if (ti->block > 1 && (st = tw_gguf_writer_set_u32(w, "general.quantization_version", 2, err))) goto done;
    if ((st = tw_gguf_writer_set_str(w, "tunewise.init.like", shape->name, (size_t)-1, err))) goto done;
    if ((st = tw_gguf_writer_set_u64(w, "tunewise.init.seed", p->seed, err))) goto done;
    if ((st = tw_gguf_writer_set_f32(w, "tunewise.init.stddev", stddev, err))) goto done;

    if (p->tokenizer) {
        /* real shapes keep their (padded) vocabulary size; the tiny shape takes the tokenizer's */
        int64_t pad = p->n_vocab > 0 ? p->n_vocab : (strcmp(shape->name, "tiny") == 0 ? 0 : c.n_vocab);
        if ((st = tw_tokenizer_json_to_gguf(w, p->tokenizer, p->tokenizer_pre, pad, &info->tok, err))) goto done;
        if (info->tok.n_tokens > INT32_MAX / 2) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: too many tokens", p->tokenizer);
            goto done;
        }
        if (p->n_vocab > 0 && info->tok.n_tokens > p->n_vocab) {
            st = tw_error_set(err, TW_ERR_INVALID, "--vocab %d is smaller than the tokenizer's %lld tokens", p->n_vocab,
                              (long long)info->tok.n_tokens);
            goto done;
        }
        if (info->tok.n_tokens > c.n_vocab && strcmp(shape->name, "tiny") != 0)
            tw_log(TW_LOG_WARN, "tokenizer has %lld tokens, more than the %d of %s: using %lld",
                   (long long)info->tok.n_tokens, c.n_vocab, shape->name, (long long)info->tok.n_tokens);
        c.n_vocab = (int32_t)info->tok.n_tokens;
        c.bos_id = info->tok.bos_id;
        c.eos_id = info->tok.eos_id;
    } else {
        c.bos_id = c.eos_id = -1;
    }
    if ((st = tw_model_config_validate(&c, shape->name, err))) goto done;
    if ((st = add_kv_arch(w, &c, err))) goto done;

    /* the tensor list, in llama.cpp's usual order */
    int64_t E = c.n_embd, Q = (int64_t)c.n_head * c.head_dim, KV = (int64_t)c.n_head_kv * c.head_dim, F = c.n_ff;
    size_t max_t = 4 + (size_t)c.n_layer * 16;
    gt = calloc(max_t, sizeof *gt);
    if (!gt) {
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t nt = 0;
    char nm[64];
    add_gen(gt, &nt, "token_embd.weight", E, c.n_vocab, FILL_NORMAL, p->type, &info->n_fallback);
    for (int l = 0; l < c.n_layer; l++) {
#define L(suffix) (snprintf(nm, sizeof nm, "blk.%d." suffix, l), nm)
        add_gen(gt, &nt, L("attn_norm.weight"), E, 0, FILL_ONES, p->type, &info->n_fallback);
        add_gen(gt, &nt, L("attn_q.weight"), E, Q, FILL_NORMAL, p->type, &info->n_fallback);
        add_gen(gt, &nt, L("attn_k.weight"), E, KV, FILL_NORMAL, p->type, &info->n_fallback);
        add_gen(gt, &nt, L("attn_v.weight"), E, KV, FILL_NORMAL, p->type, &info->n_fallback);
        if (c.attn_bias) {
            add_gen(gt, &nt, L("attn_q.bias"), Q, 0, FILL_NORMAL, p->type, &info->n_fallback);
            add_gen(gt, &nt, L("attn_k.bias"), KV, 0, FILL_NORMAL, p->type, &info->n_fallback);
            add_gen(gt, &nt, L("attn_v.bias"), KV, 0, FILL_NORMAL, p->type, &info->n_fallback);
        }
        if (c.qk_norm) {
            add_gen(gt, &nt, L("attn_q_norm.weight"), c.head_dim, 0, FILL_ONES, p->type, &info->n_fallback);
            add_gen(gt, &nt, L("attn_k_norm.weight"), c.head_dim, 0, FILL_ONES, p->type, &info->n_fallback);
        }
        add_gen(gt, &nt, L("attn_output.weight"), Q, E, FILL_NORMAL, p->type, &info->n_fallback);
        add_gen(gt, &nt, L("ffn_norm.weight"), E, 0, FILL_ONES, p->type, &info->n_fallback);
        add_gen(gt, &nt, L("ffn_gate.weight"), E, F, FILL_NORMAL, p->type, &info->n_fallback);
        add_gen(gt, &nt, L("ffn_up.weight"), E, F, FILL_NORMAL, p->type, &info->n_fallback);
        add_gen(gt, &nt, L("ffn_down.weight"), F, E, FILL_NORMAL, p->type, &info->n_fallback);
#undef L
    }
    add_gen(gt, &nt, "output_norm.weight", E, 0, FILL_ONES, p->type, &info->n_fallback);
    if (!c.tied_embeddings) add_gen(gt, &nt, "output.weight", E, c.n_vocab, FILL_NORMAL, p->type, &info->n_fallback);
    if (llama3_rope) {
        rope = malloc((size_t)(c.n_rot / 2) * sizeof *rope);
        if (!rope) {
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            goto done;
        }
        /* the factors llama.cpp's converter writes for this rope_scaling */
        tw_rope_llama3_factors(&c, rope);
        add_gen(gt, &nt, "rope_freqs.weight", c.n_rot / 2, 0, FILL_FIXED, p->type, &info->n_fallback);
        gt[nt - 1].fixed = rope;
    }
    uint64_t total = 0, done_bytes = 0;
    for (size_t i = 0; i < nt; i++)
        total += tw_type_row_bytes(gt[i].type, (uint64_t)gt[i].ne[0]) * (uint64_t)gt[i].ne[1];
    for (size_t i = 0; i < nt; i++) {
        gen_tensor *g = &gt[i];
        g->stddev = stddev;
        g->p = p;
        g->done = &done_bytes;
        g->total = total;
        g->seed = tw_hash64(g->name, strlen(g->name), p->seed);
        if ((st = tw_gguf_writer_add_tensor(w, g->name, g->type, g->n_dims, g->ne, NULL, gen_fill, g, err))) goto done;
    }
    if ((st = tw_gguf_writer_write(w, out_path, err))) goto done;
    info->cfg = c;
    info->n_tensors = (int64_t)nt;
    info->n_params = tw_model_config_n_params(&c);
    struct stat sb;
    if (stat(out_path, &sb) == 0) info->file_bytes = (uint64_t)sb.st_size;

done:
    free(gt);
    free(rope);
    tw_gguf_writer_free(w);
    return st;
}
