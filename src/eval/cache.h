/* cache.h — the model-call cache: a SQLite file mapping a key (model, adapter, exact
 * prompt, decoding parameters, strategy/output mode) to what the call returned (raw text,
 * parsed answer, validity, tokens, latency, logprobs). Re-running an evaluation with the
 * same calls costs nothing, and a killed run that is resumed does not pay twice for the
 * calls it had already made.
 *
 * Concurrency: the file is in WAL mode with a busy timeout, so several processes may
 * read and write one cache at once (each opens its own handle; a handle must not be
 * carried across fork()). One handle is safe to use from several threads (a mutex
 * serialises its calls).
 * Durability: synchronous=NORMAL — a committed entry survives the process being killed;
 * the last few may be lost on power failure, which only costs a re-computation.
 *
 * Deliberately not here: deciding what to cache (the arms build the key; an arm whose
 * calls are cheaper than a lookup, like the classic one, does not use the cache), and
 * eviction (the file grows until the user deletes it). Key definition: docs/eval.md. */
#ifndef TW_EVAL_CACHE_H
#define TW_EVAL_CACHE_H

#include "base/base.h"

#include <jansson.h>
#include <stdbool.h>

/* Schema version this build writes and reads. A file with a newer version is refused. */
#define TW_CACHE_SCHEMA_VERSION 1

typedef struct tw_cache tw_cache;   /* opaque */

/* Open (creating when absent: the file and its schema) the cache at path. Errors name the
 * path and SQLite's message: not a database / corrupted, a SQLite database that is not a
 * tunewise cache, a schema version newer than TW_CACHE_SCHEMA_VERSION. *out is NULL on
 * error. */
tw_status tw_cache_open(tw_cache **out, const char *path, tw_error *err);
void tw_cache_close(tw_cache *c);   /* NULL: no-op */
const char *tw_cache_path(const tw_cache *c);   /* borrowed */

/* What identifies one call. All strings borrowed during the call.
 *   model_hash    sha256 (hex) of the model file(s); required, non-empty
 *   adapter_hash  sha256 of the adapter, or NULL / "" for none (the same key)
 *   prompt        the exact text sent (after chat templating); required
 *   params        decoding parameters (temperature, max tokens, stop strings, grammar,
 *                 seed, ...) as a JSON object, or NULL for {} — hashed in canonical form
 *                 (compact, keys sorted at every level, reals with 17 significant digits):
 *                 1 and 1.0 are different values, so build it from typed fields
 *   mode          strategy/output-mode tag, e.g. "kshot/choice"; required */
typedef struct tw_cache_key {
    const char *model_hash;
    const char *adapter_hash;
    const char *prompt;
    const json_t *params;
    const char *mode;
} tw_cache_key;

/* hex = sha256 over "tunewise-cache-key-v1" and each field as a netstring
 * (<decimal length>:<bytes>,) in the order model, adapter, prompt, params, mode. */
tw_status tw_cache_key_hash(const tw_cache_key *k, char hex[65], tw_error *err);

/* One cached result. Strings are heap-owned by the entry after tw_cache_get. */
typedef struct tw_cache_entry {
    char *output;       /* raw model output (never NULL in a stored entry) */
    char *parsed;       /* parsed / normalized answer, NULL when none */
    bool valid;         /* the output had the expected format */
    double tokens_in, tokens_out;   /* NAN when unknown */
    double latency_ms;  /* latency of the original call; NAN when unknown */
    char *logprobs;     /* JSON text, NULL when none */
    double created;     /* unix time (seconds) the entry was stored; set by put */
} tw_cache_entry;

void tw_cache_entry_init(tw_cache_entry *e);   /* NULL strings, NAN numbers, valid */
void tw_cache_entry_free(tw_cache_entry *e);   /* frees the strings, re-inits */

/* key: 64 lowercase hex digits (tw_cache_key_hash); anything else is TW_ERR_INVALID.
 * Look a key up: *hit = true and *out filled (caller frees with tw_cache_entry_free),
 * or *hit = false and *out initialised. */
tw_status tw_cache_get(tw_cache *c, const char *key, tw_cache_entry *out, bool *hit, tw_error *err);
/* Store (first writer wins: an existing key is left unchanged, so concurrent runs of the
 * same deterministic call agree). e->output must be non-NULL; logprobs, when given, must
 * be valid JSON. e->created is ignored (the current time is stored). */
tw_status tw_cache_put(tw_cache *c, const char *key, const tw_cache_entry *e, tw_error *err);

/* Entries in the file. */
tw_status tw_cache_count(tw_cache *c, size_t *n, tw_error *err);
/* Lookups on this handle since it was opened. */
void tw_cache_stats(tw_cache *c, size_t *hits, size_t *misses);

#endif /* TW_EVAL_CACHE_H */
