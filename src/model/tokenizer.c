/* tokenizer.c — the tokenizer engine: vocabulary storage and lookup, the encode
 * pipeline (added-token split → normalizer → pre-tokenizer → BPE → template) and the
 * streaming decoder. The loaders (tok_json.c, tok_gguf.c) build the pipeline; this file
 * runs it.
 *
 * Semantics follow Hugging Face tokenizers (Rust, src/tokenizer/added_vocabulary.rs,
 * src/pre_tokenizers/{split,byte_level,digits}.rs, src/models/bpe/{model,word}.rs,
 * src/decoders): leftmost-longest added-token matching on the raw text; normalizers per
 * segment between added tokens; Split behaviours; BPE by merge rank with the lowest rank
 * (then the leftmost position) merged first, using a binary heap over a doubly linked
 * list of symbols (O(n log n) per word); byte fallback and unk fusing; ignore_merges.
 * GGUF "llama" vocabularies without merges rank a merge by the score of the merged token
 * (llama.cpp's llm_tokenizer_spm).
 *
 * Deliberately not here: file formats (the loaders), Unicode tables (tok_nfc.c), chat
 * templates. No caches: an encode call allocates its own scratch, so a tokenizer is
 * safe to share between threads. */
#include "model/tok_internal.h"
#include "model/gguf.h"

#include <stdlib.h>
#include <string.h>

/* ---- the pre-tokenizer regexes ------------------------------------------------
 * GPT-2 (HF pre_tokenizers/byte_level.rs; llama.cpp "default"/"gpt2"), Llama 3
 * ("llama-bpe", tokenizer.json of Meta-Llama-3) and Qwen2 ("qwen2": the same with single
 * digits). HF runs them with Oniguruma; here PCRE2 in UTF + UCP mode. */
const char TOK_RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char TOK_RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char TOK_RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* HF Digits uses char::is_numeric (general categories Nd, Nl, No) = \p{N}. */
const char TOK_RE_DIGIT[] = "\\p{N}";
const char TOK_RE_DIGITS[] = "\\p{N}+";

/* ---- GPT-2 byte ↔ unicode map (HF pre_tokenizers/byte_level.rs bytes_char) --------
 * Printable bytes map to themselves; the other 68 map to U+0100 + n in byte order:
 * 0x00..0x20 → U+0100..U+0120, 0x7F..0xA0 → U+0121..U+0142, 0xAD → U+0143. Only the
 * inverse is needed: vocabulary strings are turned into raw bytes once, at load. */
static int cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp >= 0x100 && cp <= 0x120) return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142) return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143) return 0xAD;
    return -1;
}

/* Inverse byte map of a vocabulary string into buf; -1 when a char is outside the map. */
static long byte_decode(const char *text, size_t len, char *buf)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        int k = tw_utf8_decode(s + i, len - i, &cp);
        int b = cp_to_byte(cp);
        if (b < 0 || (cp == 0xFFFD && k == 1)) return -1;
        buf[o++] = (char)b;
        i += (size_t)k;
    }
    return (long)o;
}

static const char META[3] = {(char)0xE2, (char)0x96, (char)0x81};   /* "▁" U+2581 */

/* ---- string storage ------------------------------------------------------------- */
struct tok_chunk {
    tok_chunk *next;
    size_t used, cap;
    char data[];
};

char *tok_strdup(tw_tokenizer *t, const char *s, size_t n)
{
    tok_chunk *c = t->chunks;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        tok_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        t->chunks = nc;
        c = nc;
    }
    char *p = c->data + c->used;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    c->used += n + 1;
    return p;
}

/* ---- construction ----------------------------------------------------------------- */
tw_status tok_new(tw_tokenizer **out, tw_tok_kind kind, int32_t n_vocab, const char *source, tw_error *err)
{
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > (1 << 26))
        return tw_error_set(err, TW_ERR_INVALID, "%s: vocabulary size %d out of range", source, (int)n_vocab);
    tw_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->unk = t->bos = t->eos = t->pad = t->model_unk = -1;
    t->source = strdup(source ? source : "tokenizer");
    snprintf(t->pre_name, sizeof t->pre_name, "%s", kind == TW_TOK_SPM_BPE ? "llama" : "custom");
    size_t n = (size_t)n_vocab;
    t->text = calloc(n, sizeof *t->text);
    t->text_len = calloc(n, sizeof *t->text_len);
    t->piece = calloc(n, sizeof *t->piece);
    t->piece_len = calloc(n, sizeof *t->piece_len);
    t->attr = calloc(n, 1);
    uint32_t vs = 1024;
    while (vs < 2 * n) vs <<= 1;
    t->vh = calloc(vs, sizeof *t->vh);
    t->vh_mask = vs - 1;
    if (!t->source || !t->text || !t->text_len || !t->piece || !t->piece_len || !t->attr || !t->vh) {
        tw_tokenizer_free(t);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory for a %d-token vocabulary", (int)n_vocab);
    }
    for (int i = 0; i < 256; i++) t->byte_sym[i] = -1;
    *out = t;
    return TW_OK;
}

static bool parse_byte_token(const char *s, size_t n, unsigned *byte)
{
    /* "<0xNN>", hex digits in either case (HF ByteFallback accepts u8::from_str_radix) */
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return false;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else return false;
    }
    *byte = v;
    return true;
}

tw_status tok_set_token(tw_tokenizer *t, int32_t id, const char *text, size_t len, unsigned attr, tw_error *err)
{
    if (id < 0 || id >= t->n_vocab)
        return tw_error_set(err, TW_ERR_INVALID, "%s: token id %d out of range [0, %d)", t->source, (int)id,
                            (int)t->n_vocab);
    char *txt = tok_strdup(t, text, len);
    if (!txt) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    t->text[id] = txt;
    t->text_len[id] = (uint32_t)len;
    const char *piece = txt;
    size_t plen = len;
    unsigned byte;
    if (t->kind == TW_TOK_BYTE_BPE) {
        char *buf = malloc(len + 1);
        if (!buf) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        long k = byte_decode(text, len, buf);
        if (k >= 0 && ((size_t)k != len || memcmp(buf, text, len) != 0)) {
            piece = tok_strdup(t, buf, (size_t)k);
            plen = (size_t)k;
        }
        free(buf);
        if (!piece) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    } else {
        if ((attr & TW_TOKATTR_BYTE) || (!(attr & TW_TOKATTR_ADDED) && parse_byte_token(text, len, &byte))) {
            if (parse_byte_token(text, len, &byte)) {
                char b = (char)byte;
                piece = tok_strdup(t, &b, 1);
                plen = 1;
                attr |= TW_TOKATTR_BYTE;
            }
        } else if (len >= 3 && memmem(text, len, "\xe2\x96\x81", 3)) {
            /* "▁" (U+2581) → " " (HF decoder Replace; llama.cpp token_to_piece) */
            char *buf = malloc(len + 1);
            if (!buf) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            size_t o = 0;
            for (size_t i = 0; i < len;) {
                if (i + 3 <= len && memcmp(text + i, "\xe2\x96\x81", 3) == 0) { buf[o++] = ' '; i += 3; }
                else buf[o++] = text[i++];
            }
            piece = tok_strdup(t, buf, o);
            plen = o;
            free(buf);
        }
        if (!piece) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    t->piece[id] = piece;
    t->piece_len[id] = (uint32_t)plen;
    t->attr[id] = (uint8_t)attr;
    return TW_OK;
}

size_t tok_key_of_text(const tw_tokenizer *t, const char *text, size_t len, char *buf)
{
    if (t->kind == TW_TOK_BYTE_BPE) {
        long k = byte_decode(text, len, buf);
        if (k >= 0) return (size_t)k;
    }
    memcpy(buf, text, len);
    return len;
}

static inline const char *key_of(const tw_tokenizer *t, int32_t id, size_t *len)
{
    if (t->kind == TW_TOK_BYTE_BPE) { *len = t->piece_len[id]; return t->piece[id]; }
    *len = t->text_len[id];
    return t->text[id];
}

static inline uint32_t str_hash(const char *s, size_t n) { return (uint32_t)tw_hash64(s, n, 0x70C3u); }

int32_t tok_vocab_find(const tw_tokenizer *t, const char *key, size_t len)
{
    uint32_t h = str_hash(key, len) & t->vh_mask;
    for (;;) {
        uint32_t v = t->vh[h];
        if (!v) return -1;
        int32_t id = (int32_t)v - 1;
        size_t kl;
        const char *k = key_of(t, id, &kl);
        if (kl == len && memcmp(k, key, len) == 0) return id;
        h = (h + 1) & t->vh_mask;
    }
}

tw_status tok_vocab_insert(tw_tokenizer *t, int32_t id, tw_error *err)
{
    size_t len;
    const char *key = key_of(t, id, &len);
    uint32_t h = str_hash(key, len) & t->vh_mask;
    for (;;) {
        uint32_t v = t->vh[h];
        if (!v) { t->vh[h] = (uint32_t)id + 1; return TW_OK; }
        size_t kl;
        const char *k = key_of(t, (int32_t)v - 1, &kl);
        if (kl == len && memcmp(k, key, len) == 0) return TW_OK;   /* first wins */
        h = (h + 1) & t->vh_mask;
    }
    (void)err;
}

static inline uint32_t pair_hash(uint64_t key) { return (uint32_t)tw_hash_mix(key ^ 0x5851F42D4C957F2DULL); }

tw_status tok_merges_reserve(tw_tokenizer *t, size_t n, tw_error *err)
{
    uint32_t cap = 1024;
    while ((size_t)cap * 3 < n * 4 + 4) cap <<= 1;   /* load <= 0.75 */
    free(t->mh);
    t->mh = malloc((size_t)cap * sizeof *t->mh);
    if (!t->mh) return tw_error_set(err, TW_ERR_NOMEM, "out of memory for %zu merges", n);
    for (uint32_t i = 0; i < cap; i++) { t->mh[i].key = 0; t->mh[i].id = -1; t->mh[i].rank = 0; }
    t->mh_mask = cap - 1;
    t->n_merges = 0;
    return TW_OK;
}

static inline const tok_merge_slot *merge_find(const tw_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = pair_hash(key) & t->mh_mask;
    for (;;) {
        const tok_merge_slot *s = &t->mh[h];
        if (s->id < 0) return NULL;
        if (s->key == key) return s;
        h = (h + 1) & t->mh_mask;
    }
}

tw_status tok_merge_add(tw_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int32_t rank,
                        const char *where, tw_error *err)
{
    if (!t->mh || (t->n_merges + 1) * 4 > (size_t)(t->mh_mask + 1) * 3)
        return tw_error_set(err, TW_ERR_INVALID, "%s: merge table not sized", where);
    char *buf = malloc(alen + blen + 1);
    if (!buf) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    size_t ka = tok_key_of_text(t, a, alen, buf);
    int32_t ia = tok_vocab_find(t, buf, ka);
    size_t kb = tok_key_of_text(t, b, blen, buf + ka);
    int32_t ib = tok_vocab_find(t, buf + ka, kb);
    int32_t im = tok_vocab_find(t, buf, ka + kb);
    free(buf);
    if (ia < 0 || ib < 0)
        return tw_error_set(err, TW_ERR_INVALID, "%s: token '%.*s' is not in the vocabulary", where,
                            (int)(ia < 0 ? alen : blen), ia < 0 ? a : b);
    if (im < 0)
        return tw_error_set(err, TW_ERR_INVALID, "%s: merged token '%.*s%.*s' is not in the vocabulary", where,
                            (int)alen, a, (int)blen, b);
    uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    uint32_t h = pair_hash(key) & t->mh_mask;
    for (;;) {
        tok_merge_slot *s = &t->mh[h];
        if (s->id < 0) {
            s->key = key;
            s->rank = rank;
            s->id = im;
            t->n_merges++;
            return TW_OK;
        }
        if (s->key == key) return TW_OK;   /* duplicate: keep the lower rank */
        h = (h + 1) & t->mh_mask;
    }
}

tw_status tok_added_add(tw_tokenizer *t, int32_t id, bool special, bool lstrip, bool rstrip, bool single_word,
                        tw_error *err)
{
    if (id < 0 || id >= t->n_vocab || !t->text[id] || t->text_len[id] == 0)
        return tw_error_set(err, TW_ERR_INVALID, "%s: added token id %d has no content", t->source, (int)id);
    if (t->n_added % 64 == 0) {
        tok_added *na = realloc(t->added, ((size_t)t->n_added + 64) * sizeof *na);
        if (!na) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        t->added = na;
    }
    t->added[t->n_added++] = (tok_added){id, special, lstrip, rstrip, single_word};
    t->attr[id] |= TW_TOKATTR_ADDED | (special ? TW_TOKATTR_SPECIAL : 0);
    return TW_OK;
}

static int32_t trie_node(tw_tokenizer *t, uint8_t byte)
{
    if (t->n_trie == t->cap_trie) {
        int32_t nc = t->cap_trie ? 2 * t->cap_trie : 256;
        tok_trie_node *nn = realloc(t->trie, (size_t)nc * sizeof *nn);
        if (!nn) return -1;
        t->trie = nn;
        t->cap_trie = nc;
    }
    t->trie[t->n_trie] = (tok_trie_node){-1, -1, -1, byte};
    return t->n_trie++;
}

static tw_status build_trie(tw_tokenizer *t, tw_error *err)
{
    t->n_trie = 0;
    memset(t->added_first, 0, sizeof t->added_first);
    if (trie_node(t, 0) < 0) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (int a = 0; a < t->n_added; a++) {
        const unsigned char *s = (const unsigned char *)t->text[t->added[a].id];
        size_t n = t->text_len[t->added[a].id];
        t->added_first[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
        int32_t node = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t c = t->trie[node].child;
            while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].sibling;
            if (c < 0) {
                c = trie_node(t, s[i]);
                if (c < 0) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                t->trie[c].sibling = t->trie[node].child;
                t->trie[node].child = c;
            }
            node = c;
        }
        if (t->trie[node].added < 0) t->trie[node].added = a;   /* first definition wins */
    }
    return TW_OK;
}

tw_status tok_finish(tw_tokenizer *t, tw_error *err)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->text[id]) {   /* a gap in the ids */
            t->text[id] = t->piece[id] = "";
            t->attr[id] = TW_TOKATTR_UNUSED;
        }
    }
    for (int b = 0; b < 256; b++) {
        if (t->kind == TW_TOK_BYTE_BPE) {
            char c = (char)b;
            t->byte_sym[b] = tok_vocab_find(t, &c, 1);
        } else {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_sym[b] = tok_vocab_find(t, name, 6);
        }
    }
    if (t->unk >= 0) t->attr[t->unk] |= TW_TOKATTR_UNKNOWN;
    if (t->kind == TW_TOK_SPM_BPE) {
        t->spm_split = true;
        for (int32_t id = 0; id < t->n_vocab && t->spm_split; id++) {
            if (t->attr[id] & TW_TOKATTR_UNUSED) continue;
            const char *s = t->text[id];
            size_t n = t->text_len[id];
            for (size_t i = 1; i + 3 <= n; i++)
                if (memcmp(s + i, META, 3) == 0 && !(i >= 3 && memcmp(s + i - 3, META, 3) == 0)) {
                    t->spm_split = false;   /* a "▁" after another character */
                    break;
                }
        }
    }
    return build_trie(t, err);
}

tw_status tok_pre_add_regex(tw_tokenizer *t, const char *pattern, size_t len, tok_behavior b, bool invert,
                            const char *where, tw_error *err)
{
    if (t->n_pre >= TOK_MAX_STEPS)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", where, TOK_MAX_STEPS);
    /* HF compiles these with Oniguruma, whose \s is the Unicode White_Space property;
     * PCRE2's \s in UCP mode also matches U+180E (MONGOLIAN VOWEL SEPARATOR, Cf since
     * Unicode 6.3). Spell \s / \S as \p{White_Space} / \P{White_Space}, which also
     * works inside character classes. */
    tw_buf rw = {0};
    for (size_t i = 0; i < len; i++) {
        tw_status bs = TW_OK;
        if (pattern[i] == '\\' && i + 1 < len) {
            char e = pattern[++i];
            if (e == 's') bs = tw_buf_puts(&rw, "\\p{White_Space}");
            else if (e == 'S') bs = tw_buf_puts(&rw, "\\P{White_Space}");
            else if (!(bs = tw_buf_putc(&rw, '\\'))) bs = tw_buf_putc(&rw, e);
        } else {
            bs = tw_buf_putc(&rw, pattern[i]);
        }
        if (bs) {
            tw_buf_free(&rw);
            return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        }
    }
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(rw.data ? rw.data : ""), rw.len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    tw_buf_free(&rw);
    if (!re) {
        char msg[256];
        pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: regex /%.*s/ at offset %zu: %s", where, (int)len, pattern,
                            (size_t)eo, msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* the interpreter is the fallback */
    if (!t->mctx) {
        /* PCRE2's default match limit (10^7 steps) stops e.g. Llama 3's \s*[\r\n]+ on a
         * run of ~10^7 spaces (it backtracks once through the run before \s+(?!\S) wins);
         * the patterns here are linear per match, so lift the limits. */
        t->mctx = pcre2_match_context_create(NULL);
        if (!t->mctx) {
            pcre2_code_free(re);
            return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        }
        pcre2_set_match_limit(t->mctx, UINT32_MAX);
        pcre2_set_heap_limit(t->mctx, UINT32_MAX);   /* KiB, interpreter only */
    }
    uint32_t caps = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &caps);
    if (caps + 1 > t->max_captures) t->max_captures = caps + 1;
    t->pre[t->n_pre++] = (tok_pre){TOK_PRE_SPLIT, re, b, invert};
    return TW_OK;
}

tw_status tok_norm_add(tw_tokenizer *t, tok_norm_kind kind, const char *a, size_t alen, const char *b,
                       size_t blen, tw_error *err)
{
    if (t->n_norm >= TOK_MAX_STEPS)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: more than %d normalizer steps", t->source, TOK_MAX_STEPS);
    tok_norm *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    if (a) {
        n->a = tok_strdup(t, a, alen);
        n->alen = alen;
    }
    if (b) {
        n->b = tok_strdup(t, b, blen);
        n->blen = blen;
    }
    if ((a && !n->a) || (b && !n->b)) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (kind == TOK_NORM_REPLACE && alen == 0)
        return tw_error_set(err, TW_ERR_INVALID, "%s: Replace normalizer with an empty pattern", t->source);
    t->n_norm++;
    return TW_OK;
}

void tw_tokenizer_free(tw_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    pcre2_match_context_free(t->mctx);
    while (t->chunks) {
        tok_chunk *n = t->chunks->next;
        free(t->chunks);
        t->chunks = n;
    }
    free(t->text);
    free(t->text_len);
    free(t->piece);
    free(t->piece_len);
    free(t->attr);
    free(t->vh);
    free(t->mh);
    free(t->score_rank);
    free(t->added);
    free(t->trie);
    free(t->source);
    free(t);
}

/* ---- encoding ------------------------------------------------------------------- */
typedef struct sym {
    int32_t id;          /* -1: not in the vocabulary (score mode) */
    int32_t prev, next;  /* -1 at the ends */
    uint32_t start, len; /* bytes of the word; len 0 = merged away */
} sym;

typedef struct cand {
    int32_t rank;        /* lower merges first */
    int32_t pos;         /* left symbol; ties go to the leftmost */
    uint32_t llen, rlen; /* the pair it was made for (stale entries are skipped) */
    int32_t id;          /* merged token */
} cand;

typedef struct tok_ctx {
    const tw_tokenizer *t;
    tw_tok_ids *out;
    tw_error *err;
    pcre2_match_data *md;
    tw_buf nb[2];                 /* normalizer ping-pong */
    tw_buf lv[TOK_MAX_STEPS];     /* prefix-space copies per pre-tokenizer step */
    sym *syms;
    size_t cap_syms;
    cand *heap;
    size_t n_heap, cap_heap;
} tok_ctx;

static tw_status nomem(tok_ctx *c) { return tw_error_set(c->err, TW_ERR_NOMEM, "out of memory while tokenizing"); }

static inline tw_status push_id(tok_ctx *c, int32_t id)
{
    tw_tok_ids *o = c->out;
    if (o->n == o->cap) {
        size_t nc = o->cap ? 2 * o->cap : 64;
        int32_t *nv = realloc(o->v, nc * sizeof *nv);
        if (!nv) return nomem(c);
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n++] = id;
    return TW_OK;
}

static inline bool cand_less(const cand *a, const cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static tw_status heap_push(tok_ctx *c, cand x)
{
    if (c->n_heap == c->cap_heap) {
        size_t nc = c->cap_heap ? 2 * c->cap_heap : 256;
        cand *nh = realloc(c->heap, nc * sizeof *nh);
        if (!nh) return nomem(c);
        c->heap = nh;
        c->cap_heap = nc;
    }
    size_t i = c->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&x, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = x;
    return TW_OK;
}

static cand heap_pop(tok_ctx *c)
{
    cand top = c->heap[0];
    cand x = c->heap[--c->n_heap];
    size_t n = c->n_heap, i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = (l + 1 < n && cand_less(&c->heap[l + 1], &c->heap[l])) ? l + 1 : l;
        if (!cand_less(&c->heap[m], &x)) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = x;
    return top;
}

/* Queue the merge of symbols l and its right neighbour, if the pair has one. */
static tw_status try_pair(tok_ctx *c, const char *w, int32_t l)
{
    const tw_tokenizer *t = c->t;
    sym *s = c->syms;
    if (l < 0) return TW_OK;
    int32_t r = s[l].next;
    if (r < 0) return TW_OK;
    cand x;
    if (t->score_rank) {
        int32_t id = tok_vocab_find(t, w + s[l].start, s[l].len + s[r].len);
        if (id < 0 || t->score_rank[id] < 0) return TW_OK;
        x = (cand){t->score_rank[id], l, s[l].len, s[r].len, id};
    } else {
        if (!t->mh || s[l].id < 0 || s[r].id < 0) return TW_OK;
        const tok_merge_slot *m = merge_find(t, s[l].id, s[r].id);
        if (!m) return TW_OK;
        x = (cand){m->rank, l, s[l].len, s[r].len, m->id};
    }
    return heap_push(c, x);
}

static inline tw_status add_sym(tok_ctx *c, int32_t *n, int32_t id, uint32_t start, uint32_t len)
{
    sym *s = &c->syms[*n];
    s->id = id;
    s->prev = *n - 1;
    s->next = -1;
    s->start = start;
    s->len = len;
    if (*n > 0) c->syms[*n - 1].next = *n;
    (*n)++;
    return TW_OK;
}

/* BPE over one pre-tokenized word w[0..n) (raw bytes for byte-level models, normalized
 * text for SPM models); appends its ids. */
static tw_status bpe_chunk(tok_ctx *c, const char *w, size_t n)
{
    const tw_tokenizer *t = c->t;
    const unsigned char *u = (const unsigned char *)w;
    if (n == 0) return TW_OK;
    if (t->kind == TW_TOK_BYTE_BPE && n == 1) {
        int32_t id = t->byte_sym[u[0]];
        if (id >= 0) return push_id(c, id);
        return t->model_unk >= 0 ? push_id(c, t->model_unk) : TW_OK;
    }
    if (t->ignore_merges) {
        int32_t id = tok_vocab_find(t, w, n);
        if (id >= 0) return push_id(c, id);
    }
    if (n > (size_t)INT32_MAX / 2) return tw_error_set(c->err, TW_ERR_INVALID, "word of %zu bytes too long", n);
    if (n + 1 > c->cap_syms) {
        size_t nc = c->cap_syms ? c->cap_syms : 64;
        while (nc < n + 1) nc *= 2;
        sym *ns = realloc(c->syms, nc * sizeof *ns);
        if (!ns) return nomem(c);
        c->syms = ns;
        c->cap_syms = nc;
    }
    /* initial symbols (HF models/bpe/model.rs merge_word) */
    int32_t ns = 0;
    if (t->kind == TW_TOK_BYTE_BPE) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->byte_sym[u[i]];
            if (id < 0) id = t->model_unk;
            if (id >= 0) add_sym(c, &ns, id, (uint32_t)i, 1);
        }
    } else if (t->score_rank) {
        for (size_t i = 0; i < n;) {   /* llama.cpp SPM: one symbol per UTF-8 character */
            uint32_t cp;
            int k = tw_utf8_decode(u + i, n - i, &cp);
            add_sym(c, &ns, tok_vocab_find(t, w + i, (size_t)k), (uint32_t)i, (uint32_t)k);
            i += (size_t)k;
        }
    } else {
        int64_t unk_start = -1;
        uint32_t unk_len = 0;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int k = tw_utf8_decode(u + i, n - i, &cp);
            int32_t id = tok_vocab_find(t, w + i, (size_t)k);
            bool bytes_ok = false;
            if (id < 0 && t->byte_fallback) {
                bytes_ok = true;
                for (int j = 0; j < k; j++)
                    if (t->byte_sym[u[i + (size_t)j]] < 0) bytes_ok = false;
            }
            if (id >= 0 || bytes_ok) {
                if (unk_start >= 0) { add_sym(c, &ns, t->model_unk, (uint32_t)unk_start, unk_len); unk_start = -1; }
                if (id >= 0) add_sym(c, &ns, id, (uint32_t)i, (uint32_t)k);
                else
                    for (int j = 0; j < k; j++) add_sym(c, &ns, t->byte_sym[u[i + (size_t)j]], (uint32_t)(i + (size_t)j), 1);
            } else if (t->model_unk >= 0) {
                if (unk_start >= 0 && t->fuse_unk) unk_len += (uint32_t)k;
                else {
                    if (unk_start >= 0) add_sym(c, &ns, t->model_unk, (uint32_t)unk_start, unk_len);
                    unk_start = (int64_t)i;
                    unk_len = (uint32_t)k;
                }
            }
            i += (size_t)k;
        }
        if (unk_start >= 0) add_sym(c, &ns, t->model_unk, (uint32_t)unk_start, unk_len);
    }
    if (ns == 0) return TW_OK;
    /* merges: lowest rank first, leftmost on ties (HF word.rs merge_all) */
    sym *s = c->syms;
    c->n_heap = 0;
    tw_status st;
    for (int32_t i = 0; i + 1 < ns; i++)
        if ((st = try_pair(c, w, i))) return st;
    while (c->n_heap) {
        cand x = heap_pop(c);
        sym *l = &s[x.pos];
        if (l->len != x.llen || l->next < 0) continue;
        sym *r = &s[l->next];
        if (r->len != x.rlen) continue;
        l->id = x.id;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = x.pos;
        if (l->prev >= 0 && (st = try_pair(c, w, l->prev))) return st;
        if ((st = try_pair(c, w, x.pos))) return st;
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        if (s[i].id >= 0) {
            if ((st = push_id(c, s[i].id))) return st;
            continue;
        }
        /* score mode: a character outside the vocabulary → its bytes, else unk */
        for (uint32_t j = 0; j < s[i].len; j++) {
            int32_t b = t->byte_sym[u[s[i].start + j]];
            if (b < 0) {
                if (t->model_unk >= 0 && (st = push_id(c, t->model_unk))) return st;
                break;
            }
            if ((st = push_id(c, b))) return st;
        }
    }
    return TW_OK;
}

static tw_status bpe_word(tok_ctx *c, const char *w, size_t n)
{
    if (!c->t->spm_split) return bpe_chunk(c, w, n);
    /* cut before each "▁" that follows another character (see spm_split) */
    size_t start = 0, i = 0;
    bool prev_meta = false;
    while (i < n) {
        if (i + 3 <= n && memcmp(w + i, META, 3) == 0) {
            if (i > start && !prev_meta) {
                tw_status st = bpe_chunk(c, w + start, i - start);
                if (st) return st;
                start = i;
            }
            prev_meta = true;
            i += 3;
        } else {
            prev_meta = false;
            i++;
        }
    }
    return bpe_chunk(c, w + start, n - start);
}

static tw_status pre_split(tok_ctx *c, int step, const char *s, size_t n);

/* Span handling of HF SplitDelimiterBehavior, streamed: `pend` holds a span that may
 * still grow. */
typedef struct span_state {
    size_t ps, pe;
    bool have, pdelim, prev_delim;
} span_state;

static tw_status span_emit(tok_ctx *c, int step, const char *s, size_t a, size_t b)
{
    return b > a ? pre_split(c, step + 1, s + a, b - a) : TW_OK;
}

static tw_status span_feed(tok_ctx *c, int step, const char *s, span_state *st, size_t a, size_t b, bool delim)
{
    tw_status r = TW_OK;
    switch (c->t->pre[step].behavior) {
    case TOK_SPLIT_REMOVED:
        if (!delim) r = span_emit(c, step, s, a, b);
        break;
    case TOK_SPLIT_ISOLATED:
        r = span_emit(c, step, s, a, b);
        break;
    case TOK_SPLIT_MERGED_PREV:
        if (delim && !st->prev_delim && st->have) st->pe = b;
        else {
            if (st->have) r = span_emit(c, step, s, st->ps, st->pe);
            st->ps = a; st->pe = b; st->have = true;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT:
        if (delim) {
            if (st->have) r = span_emit(c, step, s, st->ps, st->pe);
            st->ps = a; st->pe = b; st->have = true;
        } else if (st->have) {
            r = span_emit(c, step, s, st->ps, b);
            st->have = false;
        } else r = span_emit(c, step, s, a, b);
        break;
    case TOK_SPLIT_CONTIGUOUS:
        if (delim && st->prev_delim && st->have) st->pe = b;
        else {
            if (st->have) r = span_emit(c, step, s, st->ps, st->pe);
            st->ps = a; st->pe = b; st->have = true;
        }
        break;
    }
    st->prev_delim = delim;
    return r;
}

static tw_status pre_split(tok_ctx *c, int step, const char *s, size_t n)
{
    const tw_tokenizer *t = c->t;
    if (step == t->n_pre) return bpe_word(c, s, n);
    const tok_pre *p = &t->pre[step];
    if (p->kind == TOK_PRE_PREFIX_SPACE) {
        if (n == 0 || s[0] == ' ') return pre_split(c, step + 1, s, n);
        tw_buf *b = &c->lv[step];
        tw_buf_clear(b);
        if (tw_buf_putc(b, ' ') || tw_buf_append(b, s, n)) return nomem(c);
        return pre_split(c, step + 1, b->data, b->len);
    }
    span_state st = {0};
    size_t off = 0, last = 0;
    tw_status r;
    uint32_t opts = PCRE2_NO_UTF_CHECK;
    while (off < n) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, off, opts, c->md, t->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !(opts & PCRE2_NO_JIT)) {
            opts |= PCRE2_NO_JIT;
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            char msg[200];
            pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
            return tw_error_set(c->err, TW_ERR_RUNTIME, "pre-tokenizer regex failed at byte %zu: %s", off, msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {   /* empty match: not a split point; step one character */
            off = ms + 1;
            while (off < n && ((unsigned char)s[off] & 0xC0) == 0x80) off++;
            continue;
        }
        if (ms > last && (r = span_feed(c, step, s, &st, last, ms, p->invert))) return r;
        if ((r = span_feed(c, step, s, &st, ms, me, !p->invert))) return r;
        last = off = me;
    }
    if (last < n && (r = span_feed(c, step, s, &st, last, n, p->invert))) return r;
    if (st.have) return span_emit(c, step, s, st.ps, st.pe);
    return TW_OK;
}

/* Normalizer steps, then the pre-tokenizer, on one segment between added tokens. */
static tw_status encode_segment(tok_ctx *c, const char *s, size_t n)
{
    const tw_tokenizer *t = c->t;
    if (n == 0) return TW_OK;
    const char *cur = s;
    size_t cn = n;
    int which = 0;
    for (int i = 0; i < t->n_norm; i++) {
        const tok_norm *nm = &t->norm[i];
        tw_buf *o = &c->nb[which];
        switch (nm->kind) {
        case TOK_NORM_NFC:
            if (!tok_nfc_maybe(cur, cn)) continue;
            if (tok_nfc(cur, cn, o)) return nomem(c);
            break;
        case TOK_NORM_PREPEND:
            if (cn == 0) continue;
            tw_buf_clear(o);
            if (tw_buf_append(o, nm->a, nm->alen) || tw_buf_append(o, cur, cn)) return nomem(c);
            break;
        case TOK_NORM_REPLACE: {
            const char *hit = memmem(cur, cn, nm->a, nm->alen);
            if (!hit) continue;
            tw_buf_clear(o);
            if (tw_buf_reserve(o, cn)) return nomem(c);
            size_t i0 = 0;
            while (hit) {
                size_t h = (size_t)(hit - cur);
                if (tw_buf_append(o, cur + i0, h - i0) || tw_buf_append(o, nm->b, nm->blen)) return nomem(c);
                i0 = h + nm->alen;
                hit = i0 <= cn ? memmem(cur + i0, cn - i0, nm->a, nm->alen) : NULL;
            }
            if (tw_buf_append(o, cur + i0, cn - i0)) return nomem(c);
            break;
        }
        }
        cur = o->data ? o->data : "";
        cn = o->len;
        which ^= 1;
    }
    if (cn == 0) return TW_OK;
    return pre_split(c, 0, cur, cn);
}

static bool is_space(unsigned char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }
static bool is_word(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch >= 0x80;
}

/* Longest added token allowed at s[i..n): its index in t->added, or -1; *len gets its length. */
static int match_added(const tw_tokenizer *t, const unsigned char *s, size_t n, size_t i, unsigned flags, size_t *len)
{
    int best = -1;
    int32_t node = 0;
    for (size_t j = i; j < n; j++) {
        int32_t ch = t->trie[node].child;
        while (ch >= 0 && t->trie[ch].byte != s[j]) ch = t->trie[ch].sibling;
        if (ch < 0) break;
        node = ch;
        int a = t->trie[node].added;
        if (a >= 0 && (!t->added[a].special || (flags & TW_TOK_PARSE_SPECIAL))) {
            const tok_added *ad = &t->added[a];
            if (ad->single_word && ((i > 0 && is_word(s[i - 1])) || (j + 1 < n && is_word(s[j + 1])))) continue;
            best = a;
            *len = j + 1 - i;
        }
    }
    return best;
}

static void ctx_free(tok_ctx *c)
{
    pcre2_match_data_free(c->md);
    tw_buf_free(&c->nb[0]);
    tw_buf_free(&c->nb[1]);
    for (int i = 0; i < TOK_MAX_STEPS; i++) tw_buf_free(&c->lv[i]);
    free(c->syms);
    free(c->heap);
}

tw_status tw_tokenize_append(const tw_tokenizer *t, const char *text, size_t len, unsigned flags, tw_tok_ids *out,
                             tw_error *err)
{
    if (!t || !out || (!text && len))
        return tw_error_set(err, TW_ERR_INVALID, "tw_tokenize: NULL %s", !t ? "tokenizer" : !out ? "output" : "text");
    if (!text) text = "";
    size_t n0 = out->n;
    char *fixed = NULL;
    size_t bad;
    if (!tok_utf8_check(text, len, &bad)) {
        if (flags & TW_TOK_STRICT_UTF8)
            return tw_error_set(err, TW_ERR_INVALID, "text: offset %zu: invalid UTF-8 (byte 0x%02X)", bad,
                                (unsigned char)text[bad]);
        if (len > SIZE_MAX / 3 - 1 || !(fixed = malloc(3 * len + 1)))
            return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        len = tok_utf8_repair(text, len, fixed);
        text = fixed;
    }
    tok_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.out = out;
    c.err = err;
    tw_status st = TW_OK;
    if (t->n_pre > 0 && !(c.md = pcre2_match_data_create(t->max_captures ? t->max_captures : 1, NULL)))
        st = nomem(&c);
    if (!st && (flags & TW_TOK_ADD_SPECIAL))
        for (int i = 0; i < t->n_prefix && !st; i++) st = push_id(&c, t->prefix[i]);
    const unsigned char *s = (const unsigned char *)text;
    size_t seg = 0, i = 0;
    while (!st && i < len && t->n_added) {
        if (!(t->added_first[s[i] >> 3] & (1u << (s[i] & 7)))) { i++; continue; }
        size_t mlen = 0;
        int a = match_added(t, s, len, i, flags, &mlen);
        if (a < 0) { i++; continue; }
        size_t ms = i, me = i + mlen;
        if (t->added[a].lstrip)
            while (ms > seg && is_space(s[ms - 1])) ms--;
        if (t->added[a].rstrip)
            while (me < len && is_space(s[me])) me++;
        st = encode_segment(&c, text + seg, ms - seg);
        if (!st) st = push_id(&c, t->added[a].id);
        i = seg = me;
    }
    if (!st) st = encode_segment(&c, text + seg, len - seg);
    if (!st && (flags & TW_TOK_ADD_SPECIAL))
        for (int k = 0; k < t->n_suffix && !st; k++) st = push_id(&c, t->suffix[k]);
    ctx_free(&c);
    free(fixed);
    if (st) out->n = n0;
    return st;
}

tw_status tw_tokenize(const tw_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *ids, size_t cap,
                      size_t *n_out, tw_error *err)
{
    tw_tok_ids v = {0};
    if (n_out) *n_out = 0;
    tw_status st = tw_tokenize_append(t, text, len, flags, &v, err);
    if (st) return st;
    if (n_out) *n_out = v.n;
    if (v.n > cap) {
        st = tw_error_set(err, TW_ERR_INVALID, "tw_tokenize: output holds %zu ids, the text needs %zu", cap, v.n);
    } else if (v.n) {
        memcpy(ids, v.v, v.n * sizeof *ids);
    }
    tw_tok_ids_free(&v);
    return st;
}

void tw_tok_ids_free(tw_tok_ids *ids)
{
    if (!ids) return;
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

/* ---- decoding ------------------------------------------------------------------ */
static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

static tw_status out_chars(tw_detok *d, tw_buf *out, const void *p, size_t n)
{
    if (n == 0) return TW_OK;
    if (d->at_start) {
        d->at_start = false;
        if (d->tok->dec_strip_space && *(const char *)p == ' ') {
            p = (const char *)p + 1;
            n--;
        }
    }
    return tw_buf_append(out, p, n);
}

/* Held bytes of an interrupted character: one U+FFFD for the maximal subpart
 * (from_utf8_lossy, byte-level), or one per byte (HF ByteFallback, SPM). */
static tw_status flush_pending(tw_detok *d, tw_buf *out)
{
    if (!d->npend) return TW_OK;
    int k = d->tok->kind == TW_TOK_SPM_BPE ? d->npend : 1;
    d->npend = 0;
    for (int i = 0; i < k; i++)
        if (out_chars(d, out, FFFD, 3)) return TW_ERR_NOMEM;
    return TW_OK;
}

static tw_status feed_bytes(tw_detok *d, tw_buf *out, const unsigned char *p, size_t n)
{
    size_t run = 0;   /* start of a run of complete characters not yet appended */
    size_t i = 0;
    while (i < n) {
        unsigned b = p[i];
        if (d->npend == 0) {
            if (b < 0x80) { i++; continue; }
            /* a lead byte: find the whole character inside p if we can */
            int need = (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3 : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
            if (need == 0) {
                if (out_chars(d, out, p + run, i - run) || out_chars(d, out, FFFD, 3)) return TW_ERR_NOMEM;
                run = ++i;
                continue;
            }
            if (out_chars(d, out, p + run, i - run)) return TW_ERR_NOMEM;
            d->pend[0] = (unsigned char)b;
            d->npend = 1;
            d->need = need;
            run = ++i;
            continue;
        }
        unsigned lo = 0x80, hi = 0xBF;
        if (d->npend == 1) {
            if (d->pend[0] == 0xE0) lo = 0xA0;
            else if (d->pend[0] == 0xED) hi = 0x9F;
            else if (d->pend[0] == 0xF0) lo = 0x90;
            else if (d->pend[0] == 0xF4) hi = 0x8F;
        }
        if (b < lo || b > hi) {   /* interrupted: replace what is held, re-read b */
            if (flush_pending(d, out)) return TW_ERR_NOMEM;
            run = i;
            continue;
        }
        d->pend[d->npend++] = (unsigned char)b;
        i++;
        run = i;
        if (d->npend == d->need) {
            int k = d->npend;
            d->npend = 0;
            if (out_chars(d, out, d->pend, (size_t)k)) return TW_ERR_NOMEM;
        }
    }
    return out_chars(d, out, p + run, n - run);
}

void tw_detok_init(tw_detok *d, const tw_tokenizer *t, unsigned flags)
{
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->flags = flags;
    d->at_start = true;
}

tw_status tw_detok_push(tw_detok *d, int32_t id, tw_buf *out, tw_error *err)
{
    const tw_tokenizer *t = d->tok;
    if (id < 0 || id >= t->n_vocab)
        return tw_error_set(err, TW_ERR_INVALID, "token id %d outside the vocabulary [0, %d)", (int)id, (int)t->n_vocab);
    unsigned a = t->attr[id];
    if ((a & TW_TOKATTR_SPECIAL) && (d->flags & TW_DETOK_SKIP_SPECIAL)) return TW_OK;
    tw_status st = TW_OK;
    if (t->kind == TW_TOK_SPM_BPE && !(a & TW_TOKATTR_BYTE)) st = flush_pending(d, out);
    if (!st) st = feed_bytes(d, out, (const unsigned char *)t->piece[id], t->piece_len[id]);
    if (st) return tw_error_set(err, TW_ERR_NOMEM, "out of memory while decoding");
    return TW_OK;
}

tw_status tw_detok_flush(tw_detok *d, tw_buf *out, tw_error *err)
{
    if (flush_pending(d, out) || tw_buf_reserve(out, 0))
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory while decoding");
    if (out->data) out->data[out->len] = '\0';
    d->at_start = true;
    return TW_OK;
}

tw_status tw_detokenize(const tw_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, tw_buf *out,
                        tw_error *err)
{
    tw_detok d;
    tw_detok_init(&d, t, flags);
    size_t len0 = out->len;
    for (size_t i = 0; i < n; i++) {
        tw_status st = tw_detok_push(&d, ids[i], out, err);
        if (st) {
            out->len = len0;
            if (out->data) out->data[len0] = '\0';
            return st;
        }
    }
    return tw_detok_flush(&d, out, err);
}

/* ---- accessors ------------------------------------------------------------------- */
tw_tok_kind tw_tokenizer_kind(const tw_tokenizer *t) { return t->kind; }
int32_t tw_tokenizer_n_vocab(const tw_tokenizer *t) { return t->n_vocab; }
int32_t tw_tokenizer_bos(const tw_tokenizer *t) { return t->bos; }
int32_t tw_tokenizer_eos(const tw_tokenizer *t) { return t->eos; }
int32_t tw_tokenizer_unk(const tw_tokenizer *t) { return t->unk; }
int32_t tw_tokenizer_pad(const tw_tokenizer *t) { return t->pad; }
const char *tw_tokenizer_pre(const tw_tokenizer *t) { return t->pre_name; }
const char *tw_tokenizer_source(const tw_tokenizer *t) { return t->source; }

bool tw_tokenizer_adds_bos(const tw_tokenizer *t)
{
    return t->bos >= 0 && t->n_prefix > 0 && t->prefix[0] == t->bos;
}

bool tw_tokenizer_adds_eos(const tw_tokenizer *t)
{
    return t->eos >= 0 && t->n_suffix > 0 && t->suffix[t->n_suffix - 1] == t->eos;
}

const char *tw_token_text(const tw_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->text_len[id];
    return t->text[id];
}

const char *tw_token_piece(const tw_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->piece_len[id];
    return t->piece[id];
}

unsigned tw_token_attr(const tw_tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab) return TW_TOKATTR_UNUSED;
    return t->attr[id];
}

bool tw_token_is_special(const tw_tokenizer *t, int32_t id) { return tw_token_attr(t, id) & TW_TOKATTR_SPECIAL; }

int32_t tw_token_lookup(const tw_tokenizer *t, const char *text, size_t len)
{
    for (int a = 0; a < t->n_added; a++) {
        int32_t id = t->added[a].id;
        if (t->text_len[id] == len && memcmp(t->text[id], text, len) == 0) return id;
    }
    char stackbuf[256];
    char *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (!buf) return -1;
    size_t k = tok_key_of_text(t, text, len, buf);
    int32_t id = tok_vocab_find(t, buf, k);
    if (buf != stackbuf) free(buf);
    /* the key form can be shared by a text outside the byte map: confirm the text */
    if (id >= 0 && (t->text_len[id] != len || memcmp(t->text[id], text, len) != 0)) return -1;
    return id;
}

/* ---- loading by content --------------------------------------------------------------- */
tw_status tw_tokenizer_load(tw_tokenizer **out, const char *path, tw_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tw_tokenizer_load_json(out, path, err);   /* a directory, or a precise error there */
    char magic[4] = {0};
    size_t k = fread(magic, 1, 4, f);
    fclose(f);
    if (k == 4 && memcmp(magic, "GGUF", 4) == 0) {
        tw_gguf *g = NULL;
        tw_status st = tw_gguf_open(&g, path, err);
        if (st) return st;
        st = tw_tokenizer_from_gguf(out, g, err);
        tw_gguf_free(g);
        return st;
    }
    return tw_tokenizer_load_json(out, path, err);
}
