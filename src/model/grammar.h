/* grammar.h — constrained decoding: a byte-level matcher compiled from a JSON Schema
 * (or from a set of label strings), and the token-level constraint that tw_generate
 * (llama.h) applies to the logits at every step so that the generated text is valid
 * by construction.
 *
 *  - tw_grammar: immutable, compiled once. JSON mode accepts exactly one JSON value
 *    (RFC 8259 grammar, as jansson parses it) that validates against the schema, with
 *    at most max_ws whitespace bytes in each gap between JSON tokens; choice mode
 *    accepts exactly one of the label byte strings. Supported schema subset and the
 *    design: docs/constrained.md.
 *  - tw_gstate: the matcher state, a plain value (a stack of small frames) that can be
 *    copied; tw_gstate_feed advances it by one byte. The matcher never accepts a prefix
 *    that cannot be completed (no dead ends), so a masked generation cannot get stuck.
 *  - tw_token_trie: every non-special token's decoded bytes (tw_token_piece) in a byte
 *    trie, built once per tokenizer; shared prefixes are matched once per step.
 *  - tw_constraint: a grammar + a trie + the running state: the set of allowed tokens
 *    for the next step, and accepting the sampled one.
 *
 * Deliberately not here: the decode loop (generate.c), sampling (sample.c), JSON
 * Schema validation of finished values (score/extract.c), $ref / anyOf / pattern /
 * numeric bounds (rejected at compile time with the JSON pointer of the keyword). */
#ifndef TW_MODEL_GRAMMAR_H
#define TW_MODEL_GRAMMAR_H

#include "tunewise.h"
#include "model/tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tw_grammar tw_grammar;

typedef struct tw_grammar_params {
    int32_t max_ws;   /* whitespace bytes (space, \t, \n, \r) allowed in each gap between JSON
                         tokens, and before the value; 0..255. Default 4 */
} tw_grammar_params;

tw_grammar_params tw_grammar_default_params(void);

/* Compile a JSON Schema (borrowed; nothing is kept). Errors: TW_ERR_UNSUPPORTED for a
 * keyword outside the subset ("schema: /properties/x/pattern: unsupported keyword"),
 * TW_ERR_INVALID for a malformed or unsatisfiable schema (minItems > maxItems, an enum
 * with no value of the schema's type, `false`), TW_ERR_NOMEM. */
tw_status tw_grammar_from_schema(tw_grammar **out, const json_t *schema, const tw_grammar_params *p, tw_error *err);
/* The same from schema text (JSON). TW_ERR_PARSE when it is not JSON. */
tw_status tw_grammar_from_schema_text(tw_grammar **out, const char *text, size_t len, const tw_grammar_params *p,
                                      tw_error *err);
/* Exactly one of labels[0..n) (byte strings taken as given: a leading space is part of
 * the label). Duplicates are merged. Errors: TW_ERR_INVALID (n == 0, an empty label). */
tw_status tw_grammar_from_choices(tw_grammar **out, const char *const *labels, size_t n, tw_error *err);
void tw_grammar_free(tw_grammar *g);

/* ---- the byte-level matcher --------------------------------------------------------- */

/* Frames: the root, and one per open value (object, array, string, number, literal).
 * Deeper schemas are rejected at compile time; an unconstrained value (`{}`) opens no
 * container past this depth. */
#define TW_GRAMMAR_MAX_DEPTH 32

typedef struct tw_gframe {
    uint16_t node;    /* schema node */
    uint8_t kind;     /* root / object / array / string / number / literal */
    uint8_t phase;    /* where in that kind's grammar */
    uint8_t ws;       /* whitespace bytes in the current gap */
    uint8_t esc;      /* string: escape state (\, \uXXXX, surrogate pairs) */
    uint8_t utf;      /* string: UTF-8 continuation bytes expected, range of the next */
    uint8_t flags;    /* string: \u digit facts; object: key mode; number: integer only */
    int32_t cand;     /* object: property of the key / value; literal: first candidate */
    uint32_t pos;     /* object key / literal: bytes matched; number: digits of this part */
    uint32_t n;       /* string: code points; array: items; object: next property;
                         literal: end of the candidate range */
    uint64_t h;       /* object: hash of the free key being read (FNV-1a of its bytes) */
} tw_gframe;

/* Free keys (additionalProperties) held at once by the open objects of a state: an
 * object may not repeat one (RFC 8259 section 4 says names SHOULD be unique; jansson and
 * most parsers keep only the last); with this many live, no further free key starts. */
#define TW_GRAMMAR_MAX_KEYS 64

/* A plain value: copy it with tw_gstate_copy (copies only the live frames). */
typedef struct tw_gstate {
    int32_t depth;    /* live frames, >= 1 (the root) */
    int32_t n_keys;   /* live entries of keys */
    tw_gframe f[TW_GRAMMAR_MAX_DEPTH];
    struct { uint64_t hash; int32_t depth; } keys[TW_GRAMMAR_MAX_KEYS];   /* free keys used, by
                         the depth of their object frame; in stack order */
} tw_gstate;

void tw_gstate_init(tw_gstate *s, const tw_grammar *g);
static inline void tw_gstate_copy(tw_gstate *dst, const tw_gstate *src)
{
    dst->depth = src->depth;
    dst->n_keys = src->n_keys;
    for (int32_t i = 0; i < src->depth; i++) dst->f[i] = src->f[i];
    for (int32_t i = 0; i < src->n_keys; i++) dst->keys[i] = src->keys[i];
}
/* Advance by one byte. false: the byte cannot follow (s is then unspecified: feed a
 * copy when probing). */
bool tw_gstate_feed(tw_gstate *s, const tw_grammar *g, unsigned char c);
bool tw_gstate_feed_bytes(tw_gstate *s, const tw_grammar *g, const void *bytes, size_t n);
/* The bytes so far are a complete value (generation may end here). */
bool tw_gstate_can_end(const tw_gstate *s, const tw_grammar *g);
/* Complete and no byte may follow: generation must end. */
bool tw_gstate_done(const tw_gstate *s);
/* Is bytes[0..n) exactly one complete value? */
bool tw_grammar_accepts(const tw_grammar *g, const void *bytes, size_t n);

/* ---- tokens -------------------------------------------------------------------------- */

typedef struct tw_token_trie tw_token_trie;

/* Trie over tw_token_piece of every token that is not special, unknown or unused and has
 * a non-empty piece (special tokens are never generated under a constraint, except the
 * end tokens). Immutable; tok is not kept. */
tw_status tw_token_trie_new(tw_token_trie **out, const tw_tokenizer *tok, tw_error *err);
void tw_token_trie_free(tw_token_trie *t);
int32_t tw_token_trie_n_vocab(const tw_token_trie *t);
int32_t tw_token_trie_n_nodes(const tw_token_trie *t);

typedef struct tw_constraint tw_constraint;

/* g and trie are borrowed (must outlive the constraint). end_ids[0..n_end): the tokens
 * that end generation once the value is complete (the EOS, a chat template's
 * end-of-turn token); n_end == 0: the tokenizer's EOS as recorded in the trie.
 * Errors: TW_ERR_INVALID (no end token, an end id outside the vocabulary), NOMEM. */
tw_status tw_constraint_new(tw_constraint **out, const tw_grammar *g, const tw_token_trie *trie,
                            const int32_t *end_ids, size_t n_end, tw_error *err);
void tw_constraint_free(tw_constraint *c);
/* Back to the start (no bytes). tw_generate calls it before its first step. */
void tw_constraint_reset(tw_constraint *c);

/* The tokens allowed next: mask[id] = 1 for ids < the trie's vocabulary (0 elsewhere);
 * end tokens are allowed only when the value is complete (once done, only they are).
 * Returns how many are allowed (0 only after an end token was accepted). *mask is
 * borrowed until the next call. */
int32_t tw_constraint_allowed(tw_constraint *c, const uint8_t **mask);
/* The same applied to logits[0..n_vocab): disallowed entries (and ids beyond the
 * trie's vocabulary) become -INFINITY. Returns how many of the n_vocab remain. */
int32_t tw_constraint_apply(tw_constraint *c, float *logits, int32_t n_vocab);
/* Advance by the token the caller chose. An end token marks the constraint ended.
 * TW_ERR_INVALID when the token is not allowed (the state is then unchanged). */
tw_status tw_constraint_accept(tw_constraint *c, int32_t id, tw_error *err);
bool tw_constraint_is_end(const tw_constraint *c, int32_t id);
/* The text accepted so far is a complete value (an incomplete one: max_tokens hit). */
bool tw_constraint_complete(const tw_constraint *c);
/* Nothing may follow but an end token (or an end token was accepted). */
bool tw_constraint_done(const tw_constraint *c);

#endif /* TW_MODEL_GRAMMAR_H */
