/* tokenizer.h — text ↔ token ids for the model families tunewise runs:
 *
 *  - byte-level BPE (GPT-2 style: HF tokenizer.json with a ByteLevel pre-tokenizer,
 *    GGUF tokenizer.ggml.model = "gpt2"): SmolLM2, Llama 3, Qwen2/3;
 *  - SentencePiece-style BPE over characters with "▁" for spaces and <0xNN> byte
 *    fallback (HF tokenizer.json of Llama 2 / Mistral, GGUF tokenizer.ggml.model =
 *    "llama" with merges ranked by token score).
 *
 * Loaded from a Hugging Face tokenizer.json or from GGUF metadata; ids equal those of
 * Hugging Face `tokenizers` for the supported pipelines (see docs/tokenizers.md for the
 * algorithms, the pre-tokenizer regexes and the conformance results).
 *
 * A tokenizer is immutable after loading: any number of threads may encode and decode
 * with one tokenizer at once (each call uses its own scratch memory).
 *
 * Deliberately not here: chat templates (chat.c), the GGUF file format itself (gguf.h),
 * and training new vocabularies. */
#ifndef TW_MODEL_TOKENIZER_H
#define TW_MODEL_TOKENIZER_H

#include "tunewise.h"
#include "base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tw_tokenizer tw_tokenizer;
typedef struct tw_gguf tw_gguf;   /* model/gguf.h */

typedef enum tw_tok_kind {
    TW_TOK_BYTE_BPE = 1,   /* byte-level BPE (bytes mapped to printable chars, GPT-2) */
    TW_TOK_SPM_BPE = 2     /* character BPE, "▁" spaces, <0xNN> byte fallback */
} tw_tok_kind;

/* Flags of tw_tokenize. */
enum {
    /* Add what the tokenizer's post-processor adds around a text (HF
     * add_special_tokens=True; GGUF add_bos_token / add_eos_token): BOS for Llama 2. */
    TW_TOK_ADD_SPECIAL = 1u << 0,
    /* Match special (control) token strings such as "<|im_start|>" in the text and emit
     * their ids. Without it they are tokenized as plain text. Added tokens that are not
     * special (Qwen's "<think>") are always matched, as HF does. */
    TW_TOK_PARSE_SPECIAL = 1u << 1,
    /* Reject text that is not valid UTF-8 (TW_ERR_INVALID, "offset N: ..."). Without
     * it, each maximal invalid subsequence becomes U+FFFD first, exactly like Python's
     * bytes.decode("utf-8", errors="replace"). */
    TW_TOK_STRICT_UTF8 = 1u << 2,
};
/* What HF's tokenizer.encode(text) does by default. */
#define TW_TOK_DEFAULT (TW_TOK_ADD_SPECIAL | TW_TOK_PARSE_SPECIAL)

/* Per-token attributes (a bit set). */
enum {
    TW_TOKATTR_NORMAL = 0,
    TW_TOKATTR_SPECIAL = 1u << 0,   /* control token (BOS, EOS, <|im_start|>, ...) */
    TW_TOKATTR_ADDED = 1u << 1,     /* matched in text before BPE (special or not) */
    TW_TOKATTR_BYTE = 1u << 2,      /* <0xNN> byte-fallback token */
    TW_TOKATTR_UNKNOWN = 1u << 3,   /* the unknown token */
    TW_TOKATTR_UNUSED = 1u << 4,    /* an id without a token (gap in the vocabulary) */
};

/* ---- loading ------------------------------------------------------------ */
/* Hugging Face tokenizer.json (the file, or a directory holding tokenizer.json).
 * Supported: model BPE; normalizers NFC, Prepend, Replace (string pattern) and
 * Sequence of those; pre-tokenizers Split (regex or string; all five behaviours;
 * invert), Digits, ByteLevel, Sequence; post-processors TemplateProcessing, ByteLevel,
 * RobertaProcessing/BertProcessing (cls/sep ids), Sequence; decoders ByteLevel and
 * Sequence of Replace("▁", " ")/ByteFallback/Fuse/Strip(" ", 1, 0). Anything else is
 * TW_ERR_UNSUPPORTED naming the JSON path. */
tw_status tw_tokenizer_load_json(tw_tokenizer **out, const char *path, tw_error *err);
/* The same from a JSON text in memory (`name` appears in error messages). */
tw_status tw_tokenizer_from_json(tw_tokenizer **out, const char *json, size_t len, const char *name,
                                 tw_error *err);
/* From GGUF metadata (tokenizer.ggml.*). The tokenizer copies what it needs: the
 * GGUF handle may be freed afterwards. tokenizer.ggml.pre picks the pre-tokenizer:
 * "default"/"gpt2" (and absent), "llama-bpe"/"llama3", "qwen2", "smollm". */
tw_status tw_tokenizer_from_gguf(tw_tokenizer **out, const tw_gguf *g, tw_error *err);
/* By content: a GGUF file, a tokenizer.json, or a directory with tokenizer.json. */
tw_status tw_tokenizer_load(tw_tokenizer **out, const char *path, tw_error *err);
void tw_tokenizer_free(tw_tokenizer *t);

/* ---- encoding ----------------------------------------------------------- */
/* A growable id vector. Free with tw_tok_ids_free; zero-initialise before first use. */
typedef struct tw_tok_ids {
    int32_t *v;
    size_t n, cap;
} tw_tok_ids;
void tw_tok_ids_free(tw_tok_ids *ids);

/* Tokenize text[0..len) and APPEND the ids to out (flags: TW_TOK_*). On error out is
 * left as it was. Errors: TW_ERR_INVALID (invalid UTF-8 with TW_TOK_STRICT_UTF8),
 * TW_ERR_NOMEM, TW_ERR_RUNTIME (regex engine failure). */
tw_status tw_tokenize_append(const tw_tokenizer *t, const char *text, size_t len, unsigned flags,
                             tw_tok_ids *out, tw_error *err);
/* Tokenize into a caller's array. *n_out is always set to the number of ids of the
 * text; when it exceeds cap, nothing is written and TW_ERR_INVALID says how many ids
 * are needed (call again with a larger array). */
tw_status tw_tokenize(const tw_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *ids,
                      size_t cap, size_t *n_out, tw_error *err);

/* ---- decoding ----------------------------------------------------------- */
enum {
    TW_DETOK_SKIP_SPECIAL = 1u << 0,   /* drop special (control) tokens, HF skip_special_tokens */
};

/* Streaming decoder: feed ids one at a time and get back only complete UTF-8
 * characters; a token that ends inside a multi-byte character (byte-level BPE or
 * <0xNN> tokens) is held until the character completes. Invalid sequences become
 * U+FFFD, one per maximal invalid subpart (like Rust's String::from_utf8_lossy, which
 * HF's ByteLevel decoder uses). A plain struct: no allocation, no free. */
typedef struct tw_detok {
    const tw_tokenizer *tok;
    unsigned flags;
    unsigned char pend[4];   /* bytes of an incomplete character */
    int npend, need;         /* held bytes / length of the character they start */
    bool at_start;           /* nothing emitted yet (leading-space strip of SPM models) */
} tw_detok;

void tw_detok_init(tw_detok *d, const tw_tokenizer *t, unsigned flags);
/* Append the text that token `id` completes to out. TW_ERR_INVALID for an id outside
 * the vocabulary; TW_ERR_NOMEM. */
tw_status tw_detok_push(tw_detok *d, int32_t id, tw_buf *out, tw_error *err);
/* End of stream: a held incomplete character becomes U+FFFD. The decoder is then
 * ready for a new stream. */
tw_status tw_detok_flush(tw_detok *d, tw_buf *out, tw_error *err);

/* Decode ids[0..n) into out (appended; NUL-terminated). Same as push + flush. */
tw_status tw_detokenize(const tw_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, tw_buf *out,
                        tw_error *err);

/* ---- vocabulary ------------------------------------------------------------ */
tw_tok_kind tw_tokenizer_kind(const tw_tokenizer *t);
int32_t tw_tokenizer_n_vocab(const tw_tokenizer *t);   /* ids are 0 .. n_vocab-1 */
/* Special ids, or -1 when the tokenizer has none. */
int32_t tw_tokenizer_bos(const tw_tokenizer *t);
int32_t tw_tokenizer_eos(const tw_tokenizer *t);
int32_t tw_tokenizer_unk(const tw_tokenizer *t);
int32_t tw_tokenizer_pad(const tw_tokenizer *t);
/* Does TW_TOK_ADD_SPECIAL add a BOS / an EOS? */
bool tw_tokenizer_adds_bos(const tw_tokenizer *t);
bool tw_tokenizer_adds_eos(const tw_tokenizer *t);
/* Pre-tokenizer family: "smollm", "llama-bpe", "qwen2", "gpt2", "llama" (SPM), or
 * "custom" for a tokenizer.json whose pre-tokenizer is none of those. Borrowed. */
const char *tw_tokenizer_pre(const tw_tokenizer *t);
/* Where it was loaded from. Borrowed. */
const char *tw_tokenizer_source(const tw_tokenizer *t);

/* The token's string as written in the vocabulary ("Ġhello", "▁hello", "<0x0A>",
 * "<|im_end|>"); NUL-terminated; *len (if non-NULL) gets its length. NULL for an id
 * out of range. Borrowed: valid until tw_tokenizer_free. */
const char *tw_token_text(const tw_tokenizer *t, int32_t id, size_t *len);
/* The bytes the token stands for in decoded text (" hello", "\n", a lone byte of a
 * multi-byte character...); may be partial UTF-8 and is not NUL-terminated. NULL for an
 * id out of range. Borrowed. */
const char *tw_token_piece(const tw_tokenizer *t, int32_t id, size_t *len);
/* TW_TOKATTR_* bits; TW_TOKATTR_UNUSED for an id out of range. */
unsigned tw_token_attr(const tw_tokenizer *t, int32_t id);
bool tw_token_is_special(const tw_tokenizer *t, int32_t id);
/* Id of the token whose vocabulary string (tw_token_text form) is text[0..len);
 * added/special tokens are found by their content. -1 when absent. */
int32_t tw_token_lookup(const tw_tokenizer *t, const char *text, size_t len);

#endif /* TW_MODEL_TOKENIZER_H */
