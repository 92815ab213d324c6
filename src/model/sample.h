/* sample.h — choosing the next token from logits, and the text-level pieces of a
 * generation loop (stop strings).
 *
 * The chain (the order of llama.cpp's default sampler chain, common/sampling.cpp):
 *   1. repetition penalty over the last repeat_last_n tokens (CTRL, Keskar et al. 2019,
 *      as llama.cpp applies it: each distinct token once, logit / penalty when positive,
 *      logit * penalty when negative);
 *   2. temperature <= 0: greedy — the arg max (lowest id on ties); nothing below runs;
 *   3. top-k: keep the k largest logits (ties at the boundary broken by lower id);
 *   4. top-p (nucleus, Holtzman et al. 2019): softmax of what is left; keep the smallest
 *      prefix of the candidates sorted by probability whose mass is >= top_p;
 *   5. min-p: keep candidates whose probability is >= min_p * the largest probability;
 *   6. temperature: logits / temperature, softmax over the survivors;
 *   7. draw with the seeded RNG (xoshiro256**, base.h): the first candidate in sorted
 *      order whose cumulative probability exceeds u ~ U[0, 1).
 * At least one candidate always survives every filter.
 *
 * Deliberately not here: the forward pass and the loop itself (llama.h), grammars,
 * DRY / XTC / mirostat / typical sampling, logit bias. */
#ifndef TW_MODEL_SAMPLE_H
#define TW_MODEL_SAMPLE_H

#include "tunewise.h"
#include "base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tw_sample_params {
    float temperature;       /* <= 0: greedy. Default 0 (deterministic) */
    int32_t top_k;           /* <= 0 or >= n_vocab: off. Default 40 */
    float top_p;             /* >= 1: off. Default 0.95 */
    float min_p;             /* <= 0: off. Default 0.05 */
    float repeat_penalty;    /* 1: off. Default 1 */
    int32_t repeat_last_n;   /* history window of the penalty: 0 off, -1 all. Default 64 */
    uint64_t seed;           /* default 0 */
} tw_sample_params;

tw_sample_params tw_sample_default_params(void);

typedef struct tw_sampler tw_sampler;

/* A sampler for vocabularies of n_vocab tokens; scratch memory is allocated here once.
 * Errors: TW_ERR_INVALID (n_vocab < 1, negative penalty, NaN parameters), TW_ERR_NOMEM. */
tw_status tw_sampler_new(tw_sampler **out, const tw_sample_params *p, int32_t n_vocab, tw_error *err);
void tw_sampler_free(tw_sampler *s);
/* Restart the random stream (same draws as a new sampler with this seed). */
void tw_sampler_reseed(tw_sampler *s, uint64_t seed);
const tw_sample_params *tw_sampler_params(const tw_sampler *s);

/* Choose a token from logits[0..n_vocab) (not modified) given the tokens so far
 * (history[0..n_history), for the repetition penalty; may be NULL). */
int32_t tw_sampler_sample(tw_sampler *s, const float *logits, const int32_t *history, size_t n_history);

/* The candidates that survived the last tw_sampler_sample's filters, in sampling order
 * (descending probability), with their final probabilities (summing to 1); for greedy,
 * the one chosen token with probability 1. Borrowed until the next call. Returns n. */
size_t tw_sampler_candidates(const tw_sampler *s, const int32_t **ids, const float **probs);

/* ---- pure helpers ------------------------------------------------------------------- */

/* The arg max of x[0..n) (lowest index among equal maxima; NaNs never win). */
int32_t tw_argmax(const float *x, int32_t n);
/* Apply the repetition penalty in place (step 1 above). */
void tw_apply_repeat_penalty(float *logits, int32_t n_vocab, const int32_t *history, size_t n_history, int32_t last_n,
                             float penalty);
/* log softmax(logits)[id], computed in double: logits[id] - max - log(sum exp(l - max)). */
double tw_log_softmax_at(const float *logits, int32_t n_vocab, int32_t id);

/* ---- stop strings ------------------------------------------------------------------- */

/* Earliest occurrence in text[0..len) of any of stops[0..n) that ends after byte `from`
 * (text before `from` was checked already; pass the length before the newest piece).
 * Returns the index of the stop found (the longest one among those starting at the
 * earliest offset) and sets *at to its offset; -1 when none. Empty stops are ignored. */
int tw_stop_find(const char *text, size_t len, const char *const *stops, size_t n, size_t from, size_t *at);
/* Bytes at the end of text[0..len) that could be the beginning of a stop string (the
 * longest suffix that is a proper prefix of some stop): a streaming caller emits
 * text[0 .. len - holdback) and keeps the rest until more text arrives. */
size_t tw_stop_holdback(const char *text, size_t len, const char *const *stops, size_t n);

#endif /* TW_MODEL_SAMPLE_H */
