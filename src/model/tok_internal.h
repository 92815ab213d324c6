/* tok_internal.h — the tokenizer's internal representation, shared by the loaders
 * (tok_json.c, tok_gguf.c), the engine (tokenizer.c) and the Unicode helpers
 * (tok_nfc.c). Not part of the API: include model/tokenizer.h instead.
 *
 * Both loaders translate their format into one pipeline, which mirrors Hugging Face
 * tokenizers' (tokenizer/mod.rs encode_single_sequence):
 *   added-token split → normalizer steps → pre-tokenizer steps → BPE model → template. */
#ifndef TW_MODEL_TOK_INTERNAL_H
#define TW_MODEL_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "model/tokenizer.h"

#define TOK_MAX_STEPS 8
#define TOK_MAX_TEMPLATE 8

/* Normalizer steps (HF tokenizers: src/normalizers). */
typedef enum tok_norm_kind { TOK_NORM_NFC = 1, TOK_NORM_PREPEND, TOK_NORM_REPLACE } tok_norm_kind;
typedef struct tok_norm {
    tok_norm_kind kind;
    char *a;   /* PREPEND: the prefix; REPLACE: the pattern */
    size_t alen;
    char *b;   /* REPLACE: the replacement */
    size_t blen;
} tok_norm;

/* Split behaviours (HF SplitDelimiterBehavior). */
typedef enum tok_behavior {
    TOK_SPLIT_REMOVED = 0,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS
} tok_behavior;

/* Pre-tokenizer steps. Each refines every piece of the previous step. */
typedef enum tok_pre_kind {
    TOK_PRE_SPLIT = 1,     /* regex split: Split, Digits, ByteLevel(use_regex) */
    TOK_PRE_PREFIX_SPACE   /* ByteLevel(add_prefix_space): " " before a piece not starting with one */
} tok_pre_kind;
typedef struct tok_pre {
    tok_pre_kind kind;
    pcre2_code *re;
    tok_behavior behavior;
    bool invert;
} tok_pre;

typedef struct tok_added {
    int32_t id;
    bool special, lstrip, rstrip, single_word;
} tok_added;

/* Byte trie over the added tokens' contents. Node 0 is the root. */
typedef struct tok_trie_node {
    int32_t child;     /* first child, -1 none */
    int32_t sibling;   /* next sibling, -1 none */
    int32_t added;     /* index into added[] of the token ending here, -1 none */
    uint8_t byte;
} tok_trie_node;

typedef struct tok_merge_slot {
    uint64_t key;      /* (left id << 32) | right id; 0 with id == -1 marks empty */
    int32_t rank;
    int32_t id;        /* merged token; -1: empty slot */
} tok_merge_slot;

typedef struct tok_chunk tok_chunk;

struct tw_tokenizer {
    tw_tok_kind kind;
    char *source;
    char pre_name[32];

    /* ---- vocabulary, by id ---- */
    int32_t n_vocab;
    const char **text;       /* vocabulary string, NUL-terminated */
    uint32_t *text_len;
    const char **piece;      /* decoded bytes */
    uint32_t *piece_len;
    uint8_t *attr;           /* TW_TOKATTR_* */
    tok_chunk *chunks;       /* string storage */

    /* model vocabulary: key form → id (byte-level: raw bytes; SPM: the text). Holds the
     * tokens the BPE model may produce, not added tokens absent from the model vocab. */
    uint32_t *vh;            /* id + 1, 0 = empty */
    uint32_t vh_mask;

    /* ---- BPE model ---- */
    tok_merge_slot *mh;      /* merges by id pair */
    uint32_t mh_mask;
    size_t n_merges;
    int32_t *score_rank;     /* GGUF SPM without merges: merge priority of each id (lower
                              * first), -1 for tokens that no merge may produce; else NULL */
    int32_t byte_sym[256];   /* byte-level: id of the one-byte symbol; SPM: id of <0xNN> */
    bool byte_fallback, fuse_unk, ignore_merges;
    bool spm_split;          /* SPM: no vocabulary token has "▁" after another character, so
                              * no merge crosses a "▁" that follows a non-"▁": BPE runs on
                              * each such chunk separately (same ids, much less work) */
    int32_t unk, bos, eos, pad;
    int32_t model_unk;       /* what the BPE model emits for a symbol outside the vocabulary:
                              * HF model.unk_token; -1 drops the symbol (HF without unk_token,
                              * llama.cpp's BPE) */

    /* ---- pipeline ---- */
    tok_norm norm[TOK_MAX_STEPS];
    int n_norm;
    tok_pre pre[TOK_MAX_STEPS];
    int n_pre;
    uint32_t max_captures;   /* for match data */
    pcre2_match_context *mctx;   /* raised match/heap limits; only read while matching, so
                                  * shared by concurrent encodes */

    tok_added *added;
    int n_added;
    tok_trie_node *trie;
    int32_t n_trie, cap_trie;
    uint8_t added_first[32]; /* bitmap of first bytes of added tokens */

    int32_t prefix[TOK_MAX_TEMPLATE], suffix[TOK_MAX_TEMPLATE];
    int n_prefix, n_suffix;

    /* ---- decoder ---- */
    bool dec_strip_space;    /* drop one leading space of the decoded text (SPM) */
};

/* ---- construction helpers (tokenizer.c) ---------------------------------- */
tw_status tok_new(tw_tokenizer **out, tw_tok_kind kind, int32_t n_vocab, const char *source, tw_error *err);
/* Copy a string into the tokenizer's storage (NUL-terminated). NULL on OOM. */
char *tok_strdup(tw_tokenizer *t, const char *s, size_t n);
/* Set token `id`'s text and attributes; derives the piece from the kind (byte-level
 * inverse map, or "▁" → " " and <0xNN> → the byte for SPM). */
tw_status tok_set_token(tw_tokenizer *t, int32_t id, const char *text, size_t len, unsigned attr, tw_error *err);
/* Key form of a vocabulary string (byte-level: raw bytes when every char is in the
 * byte map, else the text). Writes into buf (cap >= len); returns the key length. */
size_t tok_key_of_text(const tw_tokenizer *t, const char *text, size_t len, char *buf);
/* Insert id into the model-vocabulary hash under its key (first insertion wins). */
tw_status tok_vocab_insert(tw_tokenizer *t, int32_t id, tw_error *err);
int32_t tok_vocab_find(const tw_tokenizer *t, const char *key, size_t len);
/* Size the merge table, then add merges in rank order. */
tw_status tok_merges_reserve(tw_tokenizer *t, size_t n, tw_error *err);
/* Add merge (a, b) with the given rank; `where` names it in errors. Duplicates keep the
 * first (lowest) rank, as HF does. */
tw_status tok_merge_add(tw_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int32_t rank,
                        const char *where, tw_error *err);
tw_status tok_added_add(tw_tokenizer *t, int32_t id, bool special, bool lstrip, bool rstrip, bool single_word,
                        tw_error *err);
/* After all tokens are set: byte symbols, trie. */
tw_status tok_finish(tw_tokenizer *t, tw_error *err);
/* Compile a pre-tokenizer regex (UTF, UCP, JIT) and append it as a split step. */
tw_status tok_pre_add_regex(tw_tokenizer *t, const char *pattern, size_t len, tok_behavior b, bool invert,
                            const char *where, tw_error *err);
tw_status tok_norm_add(tw_tokenizer *t, tok_norm_kind kind, const char *a, size_t alen, const char *b,
                       size_t blen, tw_error *err);

/* The pre-tokenizer regexes of the supported families (HF / llama.cpp spellings). */
extern const char TOK_RE_GPT2[];
extern const char TOK_RE_LLAMA3[];
extern const char TOK_RE_QWEN2[];
extern const char TOK_RE_DIGIT[];     /* Digits(individual_digits = true) */
extern const char TOK_RE_DIGITS[];    /* Digits(individual_digits = false) */

/* ---- Unicode (tok_nfc.c) --------------------------------------------------- */
/* Length of the UTF-8 text after replacing each maximal invalid subpart with U+FFFD
 * (3 bytes), and whether anything was invalid (first bad offset in *bad_off). */
bool tok_utf8_check(const char *s, size_t n, size_t *bad_off);
/* Write the repaired text into out (capacity >= 3 * n); returns its length. */
size_t tok_utf8_repair(const char *s, size_t n, char *out);
/* Does s (valid UTF-8) contain a character that NFC might change? */
bool tok_nfc_maybe(const char *s, size_t n);
/* NFC of valid UTF-8 s into *out (growable, replaced); returns TW_OK or TW_ERR_NOMEM. */
tw_status tok_nfc(const char *s, size_t n, tw_buf *out);

#endif /* TW_MODEL_TOK_INTERNAL_H */
