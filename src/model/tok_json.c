/* tok_json.c — load a Hugging Face tokenizer.json (the `tokenizers` serialization:
 * {"normalizer", "pre_tokenizer", "model": {"type": "BPE", "vocab", "merges", ...},
 * "added_tokens", "post_processor", "decoder"}) into the engine's pipeline.
 * Bos/eos/pad ids, which tokenizer.json does not record, come from a sibling
 * tokenizer_config.json ("bos_token": "<s>" or {"content": ...}) or config.json
 * ("bos_token_id"), else from the post-processor template.
 *
 * Deliberately not here: models other than BPE (WordPiece, Unigram, WordLevel), BPE
 * dropout, continuing-subword prefixes, and normalizers / pre-tokenizers outside the
 * list in tokenizer.h — those fail with TW_ERR_UNSUPPORTED naming the JSON path. */
#include "model/tok_internal.h"

#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct jctx {
    tw_tokenizer *t;
    const char *name;
    tw_error *err;
    char sig[128];   /* pre-tokenizer signature, to name the family */
} jctx;

static tw_status unsupported(jctx *c, const char *path, const char *what, json_t *type)
{
    return tw_error_set(c->err, TW_ERR_UNSUPPORTED, "%s: %s: %s '%s' is not supported", c->name, path, what,
                        json_is_string(type) ? json_string_value(type) : "?");
}

static tw_status bad(jctx *c, const char *path, const char *expected)
{
    return tw_error_set(c->err, TW_ERR_PARSE, "%s: %s: expected %s", c->name, path, expected);
}

static bool jbool(json_t *o, const char *key, bool def)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *jtype(json_t *o) { return json_string_value(json_object_get(o, "type")); }

/* ---- normalizer --------------------------------------------------------------- */
static tw_status parse_normalizer(jctx *c, json_t *n, const char *path)
{
    if (!n || json_is_null(n)) return TW_OK;
    const char *type = jtype(n);
    if (!type) return bad(c, path, "an object with a \"type\"");
    tw_tokenizer *t = c->t;
    tw_status st;
    char sub[160];
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(n, "normalizers");
        if (!json_is_array(arr)) return bad(c, path, "\"normalizers\": [...]");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
            if ((st = parse_normalizer(c, json_array_get(arr, i), sub))) return st;
        }
        return TW_OK;
    }
    if (strcmp(type, "NFC") == 0) return tok_norm_add(t, TOK_NORM_NFC, NULL, 0, NULL, 0, c->err);
    if (strcmp(type, "Prepend") == 0) {
        json_t *p = json_object_get(n, "prepend");
        if (!json_is_string(p)) return bad(c, path, "\"prepend\": string");
        return tok_norm_add(t, TOK_NORM_PREPEND, json_string_value(p), json_string_length(p), NULL, 0, c->err);
    }
    if (strcmp(type, "Replace") == 0) {
        json_t *pat = json_object_get(json_object_get(n, "pattern"), "String");
        json_t *content = json_object_get(n, "content");
        if (!json_is_string(pat))
            return tw_error_set(c->err, TW_ERR_UNSUPPORTED, "%s: %s: only {\"String\": ...} Replace patterns are supported",
                                c->name, path);
        if (!json_is_string(content)) return bad(c, path, "\"content\": string");
        return tok_norm_add(t, TOK_NORM_REPLACE, json_string_value(pat), json_string_length(pat),
                            json_string_value(content), json_string_length(content), c->err);
    }
    return unsupported(c, path, "normalizer", json_object_get(n, "type"));
}

/* ---- pre-tokenizer ---------------------------------------------------------------- */
static void sig_add(jctx *c, const char *s)
{
    size_t l = strlen(c->sig);
    snprintf(c->sig + l, sizeof c->sig - l, "%s%s", l ? "," : "", s);
}

static bool parse_behavior(const char *s, tok_behavior *b)
{
    static const struct { const char *name; tok_behavior b; } names[] = {
        {"Removed", TOK_SPLIT_REMOVED}, {"Isolated", TOK_SPLIT_ISOLATED},
        {"MergedWithPrevious", TOK_SPLIT_MERGED_PREV}, {"MergedWithNext", TOK_SPLIT_MERGED_NEXT},
        {"Contiguous", TOK_SPLIT_CONTIGUOUS},
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) { *b = names[i].b; return true; }
    return false;
}

static tw_status parse_pre(jctx *c, json_t *p, const char *path)
{
    if (!p || json_is_null(p)) return TW_OK;
    const char *type = jtype(p);
    if (!type) return bad(c, path, "an object with a \"type\"");
    tw_tokenizer *t = c->t;
    tw_status st;
    char sub[160];
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(p, "pretokenizers");
        if (!json_is_array(arr)) return bad(c, path, "\"pretokenizers\": [...]");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
            if ((st = parse_pre(c, json_array_get(arr, i), sub))) return st;
        }
        return TW_OK;
    }
    if (strcmp(type, "Split") == 0) {
        json_t *pat = json_object_get(p, "pattern");
        json_t *re = json_object_get(pat, "Regex"), *str = json_object_get(pat, "String");
        tok_behavior b;
        if (!parse_behavior(json_string_value(json_object_get(p, "behavior")), &b))
            return bad(c, path, "\"behavior\": Removed|Isolated|MergedWithPrevious|MergedWithNext|Contiguous");
        bool invert = jbool(p, "invert", false);
        if (json_is_string(re)) {
            const char *r = json_string_value(re);
            if (strcmp(r, TOK_RE_LLAMA3) == 0) sig_add(c, "llama3");
            else if (strcmp(r, TOK_RE_QWEN2) == 0) sig_add(c, "qwen2");
            else sig_add(c, "split");
            return tok_pre_add_regex(t, r, json_string_length(re), b, invert, path, c->err);
        }
        if (json_is_string(str)) {
            /* a literal: escape every ASCII non-alphanumeric character */
            const char *s = json_string_value(str);
            size_t n = json_string_length(str);
            char *esc = malloc(2 * n + 1);
            if (!esc) return tw_error_set(c->err, TW_ERR_NOMEM, "out of memory");
            size_t o = 0;
            for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];
                bool alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
                if (ch < 0x80 && !alnum) esc[o++] = '\\';
                esc[o++] = (char)ch;
            }
            sig_add(c, "split");
            st = tok_pre_add_regex(t, esc, o, b, invert, path, c->err);
            free(esc);
            return st;
        }
        return bad(c, path, "\"pattern\": {\"Regex\": ...} or {\"String\": ...}");
    }
    if (strcmp(type, "Digits") == 0) {
        bool ind = jbool(p, "individual_digits", false);
        sig_add(c, ind ? "digit" : "digits");
        const char *r = ind ? TOK_RE_DIGIT : TOK_RE_DIGITS;
        return tok_pre_add_regex(t, r, strlen(r), TOK_SPLIT_ISOLATED, false, path, c->err);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (t->kind != TW_TOK_BYTE_BPE)
            return tw_error_set(c->err, TW_ERR_INVALID, "%s: %s: ByteLevel inside a non byte-level pipeline", c->name, path);
        if (jbool(p, "add_prefix_space", true)) {
            if (t->n_pre >= TOK_MAX_STEPS)
                return tw_error_set(c->err, TW_ERR_UNSUPPORTED, "%s: too many pre-tokenizer steps", c->name);
            t->pre[t->n_pre++] = (tok_pre){TOK_PRE_PREFIX_SPACE, NULL, TOK_SPLIT_ISOLATED, false};
            sig_add(c, "prefix");
        }
        if (jbool(p, "use_regex", true)) {
            sig_add(c, "bl-gpt2");
            return tok_pre_add_regex(t, TOK_RE_GPT2, strlen(TOK_RE_GPT2), TOK_SPLIT_ISOLATED, false, path, c->err);
        }
        sig_add(c, "bl");
        return TW_OK;
    }
    return unsupported(c, path, "pre-tokenizer", json_object_get(p, "type"));
}

/* Does the pre-tokenizer contain a ByteLevel step (the byte-level vocabulary)? */
static bool has_byte_level(json_t *p)
{
    if (!p || !json_is_object(p)) return false;
    const char *type = jtype(p);
    if (type && strcmp(type, "ByteLevel") == 0) return true;
    json_t *arr = json_object_get(p, "pretokenizers");
    for (size_t i = 0; json_is_array(arr) && i < json_array_size(arr); i++)
        if (has_byte_level(json_array_get(arr, i))) return true;
    return false;
}

/* ---- post-processor / decoder ------------------------------------------------------ */
static tw_status add_template_id(jctx *c, bool after, int32_t id, const char *path)
{
    tw_tokenizer *t = c->t;
    if (id < 0 || id >= t->n_vocab) return bad(c, path, "a token id inside the vocabulary");
    int *n = after ? &t->n_suffix : &t->n_prefix;
    int32_t *v = after ? t->suffix : t->prefix;
    if (*n >= TOK_MAX_TEMPLATE)
        return tw_error_set(c->err, TW_ERR_UNSUPPORTED, "%s: %s: template longer than %d tokens", c->name, path,
                            TOK_MAX_TEMPLATE);
    v[(*n)++] = id;
    return TW_OK;
}

static tw_status parse_post(jctx *c, json_t *p, const char *path)
{
    if (!p || json_is_null(p)) return TW_OK;
    const char *type = jtype(p);
    if (!type) return bad(c, path, "an object with a \"type\"");
    tw_status st;
    char sub[160];
    if (strcmp(type, "ByteLevel") == 0) return TW_OK;   /* offsets only */
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(p, "processors");
        if (!json_is_array(arr)) return bad(c, path, "\"processors\": [...]");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.processors[%zu]", path, i);
            if ((st = parse_post(c, json_array_get(arr, i), sub))) return st;
        }
        return TW_OK;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
        if (!json_is_array(single)) return bad(c, path, "\"single\": [...]");
        bool after = false;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *item = json_array_get(single, i);
            snprintf(sub, sizeof sub, "%s.single[%zu]", path, i);
            if (json_object_get(item, "Sequence")) { after = true; continue; }
            json_t *sp = json_object_get(json_object_get(item, "SpecialToken"), "id");
            if (!json_is_string(sp)) return bad(c, sub, "{\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}");
            json_t *ids = json_object_get(json_object_get(specials, json_string_value(sp)), "ids");
            if (!json_is_array(ids)) return bad(c, sub, "a special token listed in \"special_tokens\" with \"ids\"");
            for (size_t k = 0; k < json_array_size(ids); k++) {
                json_t *v = json_array_get(ids, k);
                if (!json_is_integer(v)) return bad(c, sub, "integer ids");
                if ((st = add_template_id(c, after, (int32_t)json_integer_value(v), sub))) return st;
            }
        }
        return TW_OK;
    }
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        json_t *cls = json_array_get(json_object_get(p, "cls"), 1), *sep = json_array_get(json_object_get(p, "sep"), 1);
        if (!json_is_integer(cls) || !json_is_integer(sep)) return bad(c, path, "\"cls\" and \"sep\": [token, id]");
        if ((st = add_template_id(c, false, (int32_t)json_integer_value(cls), path))) return st;
        return add_template_id(c, true, (int32_t)json_integer_value(sep), path);
    }
    return unsupported(c, path, "post-processor", json_object_get(p, "type"));
}

static tw_status parse_decoder(jctx *c, json_t *d, const char *path)
{
    if (!d || json_is_null(d)) return TW_OK;
    const char *type = jtype(d);
    if (!type) return bad(c, path, "an object with a \"type\"");
    char sub[160];
    tw_status st;
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(d, "decoders");
        if (!json_is_array(arr)) return bad(c, path, "\"decoders\": [...]");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", path, i);
            if ((st = parse_decoder(c, json_array_get(arr, i), sub))) return st;
        }
        return TW_OK;
    }
    if (strcmp(type, "ByteLevel") == 0 || strcmp(type, "ByteFallback") == 0 || strcmp(type, "Fuse") == 0)
        return TW_OK;   /* built into the token pieces and the streaming decoder */
    if (strcmp(type, "Replace") == 0) {
        /* the SPM decoder's "▁" → " " is built into the pieces; nothing else is */
        json_t *pat = json_object_get(json_object_get(d, "pattern"), "String");
        json_t *content = json_object_get(d, "content");
        if (json_is_string(pat) && json_is_string(content) && strcmp(json_string_value(pat), "\xe2\x96\x81") == 0 &&
            strcmp(json_string_value(content), " ") == 0)
            return TW_OK;
        return tw_error_set(c->err, TW_ERR_UNSUPPORTED, "%s: %s: only the Replace(\"\xe2\x96\x81\", \" \") decoder is supported",
                            c->name, path);
    }
    if (strcmp(type, "Strip") == 0) {
        json_t *content = json_object_get(d, "content");
        json_int_t start = json_integer_value(json_object_get(d, "start"));
        json_int_t stop = json_integer_value(json_object_get(d, "stop"));
        if (!json_is_string(content) || strcmp(json_string_value(content), " ") != 0 || start > 1 || stop != 0)
            return tw_error_set(c->err, TW_ERR_UNSUPPORTED, "%s: %s: only Strip(\" \", start <= 1, stop 0) is supported",
                                c->name, path);
        c->t->dec_strip_space = start == 1;
        return TW_OK;
    }
    return unsupported(c, path, "decoder", json_object_get(d, "type"));
}

/* ---- special ids from the sibling config files --------------------------------------- */
static int32_t config_token(tw_tokenizer *t, json_t *v)
{
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -1;
    return tw_token_lookup(t, json_string_value(v), json_string_length(v));
}

static void read_configs(tw_tokenizer *t, const char *dir)
{
    if (!dir) return;
    char path[4096];
    int32_t *dst[] = {&t->bos, &t->eos, &t->pad};
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    if (cfg) {
        const char *keys[] = {"bos_token_id", "eos_token_id", "pad_token_id"};
        for (int i = 0; i < 3; i++) {
            json_t *v = json_object_get(cfg, keys[i]);
            if (json_is_array(v)) v = json_array_get(v, 0);
            if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < t->n_vocab)
                *dst[i] = (int32_t)json_integer_value(v);
        }
        json_decref(cfg);
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *tc = json_load_file(path, JSON_DECODE_INT_AS_REAL, NULL);   /* model_max_length: 1e30 */
    if (tc) {
        const char *keys[] = {"bos_token", "eos_token", "pad_token"};
        for (int i = 0; i < 3; i++) {
            int32_t id = config_token(t, json_object_get(tc, keys[i]));
            if (id >= 0) *dst[i] = id;
        }
        json_decref(tc);
    }
}

/* ---- the whole file ------------------------------------------------------------------ */
static tw_status build(jctx *c, json_t *root, tw_tokenizer **out)
{
    tw_error *err = c->err;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return bad(c, "model", "an object");
    const char *mtype = jtype(model);
    if (mtype && strcmp(mtype, "BPE") != 0) return unsupported(c, "model.type", "model", json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab)) return bad(c, "model.vocab", "an object {token: id}");
    if (!json_is_array(merges)) return bad(c, "model.merges", "an array");
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added)) return bad(c, "added_tokens", "an array");
    json_t *v;
    const char *key;
    const char *s;
    if ((s = json_string_value(json_object_get(model, "continuing_subword_prefix"))) && *s)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: model.continuing_subword_prefix '%s' is not supported", c->name, s);
    if ((s = json_string_value(json_object_get(model, "end_of_word_suffix"))) && *s)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: model.end_of_word_suffix '%s' is not supported", c->name, s);
    json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) > 0)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: model.dropout (BPE dropout) is not supported", c->name);

    /* ids */
    json_int_t max_id = -1;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            char p[200];
            snprintf(p, sizeof p, "model.vocab[\"%.80s\"]", key);
            return bad(c, p, "a non-negative integer id");
        }
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        json_t *id = json_object_get(a, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || !json_is_string(json_object_get(a, "content"))) {
            char p[64];
            snprintf(p, sizeof p, "added_tokens[%zu]", i);
            return bad(c, p, "{\"id\": integer >= 0, \"content\": string, ...}");
        }
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    if (max_id < 0 || max_id >= (1 << 26)) return bad(c, "model.vocab", "between 1 and 2^26 tokens");

    tw_tok_kind kind = has_byte_level(json_object_get(root, "pre_tokenizer")) ? TW_TOK_BYTE_BPE : TW_TOK_SPM_BPE;
    tw_tokenizer *t;
    tw_status st = tok_new(&t, kind, (int32_t)max_id + 1, c->name, err);
    if (st) return st;
    c->t = t;
    json_object_foreach(vocab, key, v) {
        int32_t id = (int32_t)json_integer_value(v);
        if (t->text[id]) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: model.vocab: id %d is used by '%s' and '%s'", c->name, (int)id,
                              t->text[id], key);
            goto fail;
        }
        if ((st = tok_set_token(t, id, key, strlen(key), TW_TOKATTR_NORMAL, err))) goto fail;
    }
    json_object_foreach(vocab, key, v) {
        if ((st = tok_vocab_insert(t, (int32_t)json_integer_value(v), err))) goto fail;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        json_t *content = json_object_get(a, "content");
        const char *cs = json_string_value(content);
        size_t cl = json_string_length(content);
        if (t->text[id] && (t->text_len[id] != cl || memcmp(t->text[id], cs, cl) != 0)) {
            st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                              "%s: added_tokens[%zu]: content '%s' differs from the vocabulary's '%s' for id %d", c->name,
                              i, cs, t->text[id], (int)id);
            goto fail;
        }
        if (cl == 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: added_tokens[%zu]: empty content", c->name, i);
            goto fail;
        }
        if (!t->text[id] && (st = tok_set_token(t, id, cs, cl, TW_TOKATTR_ADDED, err))) goto fail;
        if ((st = tok_added_add(t, id, jbool(a, "special", false), jbool(a, "lstrip", false), jbool(a, "rstrip", false),
                                jbool(a, "single_word", false), err)))
            goto fail;
    }
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->fuse_unk = jbool(model, "fuse_unk", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        char *buf = malloc(json_string_length(unk) + 1);
        if (!buf) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto fail; }
        size_t k = tok_key_of_text(t, json_string_value(unk), json_string_length(unk), buf);
        t->unk = tok_vocab_find(t, buf, k);
        free(buf);
        t->model_unk = t->unk;
        if (t->unk < 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: model.unk_token '%s' is not in the vocabulary", c->name,
                              json_string_value(unk));
            goto fail;
        }
    }

    /* merges: "a b" strings (older files) or ["a", "b"] pairs */
    size_t nm = json_array_size(merges);
    if ((st = tok_merges_reserve(t, nm, err))) goto fail;
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        char where[200];
        snprintf(where, sizeof where, "%s: model.merges[%zu]", c->name, i);
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = tw_error_set(err, TW_ERR_PARSE, "%s: expected \"left right\" (one space), got '%s'", where, a);
                goto fail;
            }
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = json_string_length(m) - al - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            al = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            bl = json_string_length(json_array_get(m, 1));
        } else {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: expected \"left right\" or [\"left\", \"right\"]", where);
            goto fail;
        }
        if ((st = tok_merge_add(t, a, al, b, bl, (int32_t)i, where, err))) goto fail;
    }

    if ((st = parse_normalizer(c, json_object_get(root, "normalizer"), "normalizer"))) goto fail;
    if ((st = parse_pre(c, json_object_get(root, "pre_tokenizer"), "pre_tokenizer"))) goto fail;
    if ((st = parse_post(c, json_object_get(root, "post_processor"), "post_processor"))) goto fail;
    if ((st = parse_decoder(c, json_object_get(root, "decoder"), "decoder"))) goto fail;

    if (kind == TW_TOK_SPM_BPE) snprintf(t->pre_name, sizeof t->pre_name, "llama");
    else if (strcmp(c->sig, "digit,bl-gpt2") == 0) snprintf(t->pre_name, sizeof t->pre_name, "smollm");
    else if (strcmp(c->sig, "llama3,bl") == 0) snprintf(t->pre_name, sizeof t->pre_name, "llama-bpe");
    else if (strcmp(c->sig, "qwen2,bl") == 0) snprintf(t->pre_name, sizeof t->pre_name, "qwen2");
    else if (strcmp(c->sig, "bl-gpt2") == 0) snprintf(t->pre_name, sizeof t->pre_name, "gpt2");
    else snprintf(t->pre_name, sizeof t->pre_name, "custom");

    if (t->n_prefix > 0 && (t->attr[t->prefix[0]] & TW_TOKATTR_SPECIAL)) t->bos = t->prefix[0];
    if (t->n_suffix > 0 && (t->attr[t->suffix[t->n_suffix - 1]] & TW_TOKATTR_SPECIAL)) t->eos = t->suffix[t->n_suffix - 1];
    if ((st = tok_finish(t, err))) goto fail;
    *out = t;
    return TW_OK;
fail:
    tw_tokenizer_free(t);
    c->t = NULL;
    return st;
}

static tw_status from_json(tw_tokenizer **out, const char *json, size_t len, const char *name, const char *dir,
                           tw_error *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    if (!root)
        return tw_error_set(err, TW_ERR_PARSE, "%s: line %d, column %d: %s", name, je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return tw_error_set(err, TW_ERR_PARSE, "%s: expected a JSON object (a tokenizer.json)", name);
    }
    jctx c = {.name = name, .err = err};
    tw_status st = build(&c, root, out);
    json_decref(root);
    if (!st) {
        read_configs(*out, dir);
        /* the decoder strip of SPM files needs no config; GGUF sets it from add_space_prefix */
    }
    return st;
}

tw_status tw_tokenizer_from_json(tw_tokenizer **out, const char *json, size_t len, const char *name, tw_error *err)
{
    return from_json(out, json, len, name ? name : "tokenizer.json", NULL, err);
}

tw_status tw_tokenizer_load_json(tw_tokenizer **out, const char *path, tw_error *err)
{
    *out = NULL;
    struct stat sb;
    char *file = NULL;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        size_t n = strlen(path) + 32;
        file = malloc(n);
        if (!file) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        snprintf(file, n, "%s/tokenizer.json", path);
    } else {
        file = strdup(path);
        if (!file) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    char *data = NULL;
    size_t len = 0;
    tw_status st = tw_file_read(file, &data, &len, err);
    if (!st) {
        char *d = strdup(file);
        st = d ? from_json(out, data, len, file, dirname(d), err) : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        free(d);
    }
    free(data);
    free(file);
    return st;
}
