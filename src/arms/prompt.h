/* prompt.h — the prompt arm's prompts: from a task, its training rows and a strategy,
 * the exact chat messages and rendered prompt text of every example, split into a
 * shared prefix (the KV-cache-reusable part) and a per-example suffix; the label
 * continuations that `score` / `choice` rank; and the parsing of a model's raw output
 * into the value src/score expects.
 *
 * Strategies (combinable with '+', e.g. "kshot+rag", "knn+cot"):
 *   zero   instructions + the label set (classify) / the JSON Schema (extract);
 *   kshot  k demonstrations drawn once from train, stratified by class, seeded: the same
 *          demonstrations for every example (they sit in the shared prefix);
 *   knn    k demonstrations per example, the BM25 (retrieve.h) nearest training inputs;
 *          a training row with the example's id or its normalized text is never used;
 *   cot    ask for brief reasoning, then a last line "Answer: <answer>";
 *   rag    the rag_k best passages (BM25) of a chunked document folder, per example.
 * Output modes: free (generate, then parse), choice (constrained to the labels), score
 * (rank the labels' continuations by log-likelihood), json (JSON Schema; extract).
 * The exact texts and layouts are in docs/prompt.md.
 *
 * Layout: one system message (instructions), then each demonstration as a user turn
 * (its input) and an assistant turn (its output), then the example's user turn, rendered
 * by the model's chat template with add_generation_prompt. Without a template (base
 * models such as stories260K) a plain layout is used: the system text, then
 * "\n\nInput: <input>\nAnswer: <output>" per demonstration and "\n\nInput: <input>\nAnswer:"
 * (with cot the prompt ends "\n\nInput: <input>\n"). rag's passages come in the example's
 * turn, before its input, as "Context:" blocks citing "[n] file:line".
 *
 * Deliberately not here: running a model (backend/), caching, constrained decoding
 * itself (the backend's trie / grammar), scoring (score/).
 *
 * Ownership: a tw_prompt copies what it needs from the task and train set (it keeps row
 * indices into train, so train must outlive it) and is immutable after tw_prompt_new:
 * several threads may build examples from one tw_prompt at once. */
#ifndef TW_ARMS_PROMPT_H
#define TW_ARMS_PROMPT_H

#include "arms/retrieve.h"
#include "model/chat.h"
#include "model/tokenizer.h"
#include "task/task.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tw_prompt_demos {
    TW_DEMOS_NONE = 0,    /* zero-shot */
    TW_DEMOS_KSHOT = 1,
    TW_DEMOS_KNN = 2
} tw_prompt_demos;

typedef enum tw_output_mode {
    TW_OUTPUT_FREE = 0,
    TW_OUTPUT_CHOICE = 1,
    TW_OUTPUT_SCORE = 2,
    TW_OUTPUT_JSON = 3
} tw_output_mode;
const char *tw_output_mode_str(tw_output_mode m);            /* "free", "choice", "score", "json" */
bool tw_output_mode_parse(const char *s, tw_output_mode *out);

typedef struct tw_prompt_params {
    tw_prompt_demos demos;
    bool cot;
    bool rag;
    size_t k;                 /* demonstrations (kshot / knn); default 8 */
    uint64_t seed;            /* kshot draw (see tw_prompt_demo_seed); default 1 */
    tw_output_mode output;    /* default free */
    const char *rag_dir;      /* rag: the document folder (borrowed during new) */
    size_t rag_k;             /* rag: passages per example (default 3) */
    tw_chunk_params chunk;    /* rag: chunking (default tw_chunk_default_params) */
    tw_bm25_params bm25;      /* knn and rag indexes (default tw_bm25_default_params) */
    bool short_system;        /* system prompt = the task's instructions only: no label list,
                                 schema or answer-format lines (a fine-tuned model learned
                                 them: `tune --prompt short`); default false */
} tw_prompt_params;

tw_prompt_params tw_prompt_default_params(void);

/* Parse a strategy "zero" | "kshot" | "knn" | "cot" | "rag" or a '+'-joined combination
 * (at most one of zero/kshot/knn) into p->demos / cot / rag; other fields untouched.
 * TW_ERR_INVALID naming the bad part. */
tw_status tw_prompt_strategy_parse(const char *s, tw_prompt_params *p, tw_error *err);
/* Canonical name of p's strategy ("zero", "kshot+cot+rag", ...) into buf. */
void tw_prompt_strategy_str(const tw_prompt_params *p, char *buf, size_t cap);

/* Where prompts are rendered: the model's chat template (NULL: plain layout) and the
 * tokenizer's BOS / EOS texts the template may use (NULL: none). Borrowed: the template
 * must outlive the tw_prompt. */
typedef struct tw_prompt_target {
    const tw_chat_template *tmpl;
    const char *bos;
    const char *eos;
} tw_prompt_target;

typedef struct tw_prompt tw_prompt;

/* Prepare a strategy for a task. train: the training split (demonstrations, the knn
 * index); the label set is task->labels, else the sorted distinct train outputs.
 * Checks (TW_ERR_INVALID): choice / score only for classify and not with cot; json only
 * for extract; generate only free; kshot / knn need train rows; rag needs rag_dir.
 * Reads the task's schema file (extract) and the rag folder (errors name the file).
 * Renders the shared prefix once. */
tw_status tw_prompt_new(tw_prompt **out, const tw_task *task, const tw_dataset *train, const tw_prompt_params *p,
                        const tw_prompt_target *target, tw_error *err);
void tw_prompt_free(tw_prompt *p);

/* Accessors (borrowed, valid until tw_prompt_free). */
const char *tw_prompt_system(const tw_prompt *p);                  /* the system message */
/* The shared prefix: identical for every example. Chat layout: the shared turns (system,
 * kshot demonstrations) rendered alone, ending at a turn boundary — cut back to the last
 * end-of-turn marker both renderings share when the template renders those turns
 * differently once more follow (Qwen3, some Llama 3 templates). Plain layout: up to and
 * including the "Input:" / "Context:" label of the first per-example block, so every
 * suffix starts with a space. "" when nothing can be shared (then prefix_len is 0).
 * Its token ids are a prefix of the prompt's for the tokenizers measured (docs/prompt.md);
 * tw_prompt_check_tokens tests it. */
const char *tw_prompt_prefix(const tw_prompt *p, size_t *len);
const char *const *tw_prompt_labels(const tw_prompt *p, size_t *n);   /* classify; else n = 0 */
/* score / choice: cont[i] is the exact text label i is answered as after the prompt:
 * the assistant turn's content plus the template's end-of-turn marker (ChatML:
 * "label<|im_end|>"; plain layout: " label\n"). NULL (n = 0) for other modes. */
const char *const *tw_prompt_continuations(const tw_prompt *p, size_t *n);
/* Strings that end an answer (the template's stops; plain layout: "\n", or "\n\nInput:"
 * with cot). NULL-terminated. */
const char *const *tw_prompt_stops(const tw_prompt *p);
/* kshot: the demonstration rows (indices into train), in prompt order. */
const size_t *tw_prompt_kshot_rows(const tw_prompt *p, size_t *n);
const tw_chunks *tw_prompt_chunks(const tw_prompt *p);             /* rag; else NULL */
const tw_prompt_params *tw_prompt_get_params(const tw_prompt *p);  /* rag_dir is NULL */

/* Everything that determines the prompts besides the task and the model, for run records
 * and cache keys (a new JSON object; NULL on OOM):
 *   {"strategy", "output", "k", "seed", "layout": "chat"|"plain", "template_family",
 *    "system_sha256", "prefix_sha256", "kshot_ids": [train ids] (kshot),
 *    "bm25": {"k1", "b"} (knn, rag), "rag": {"k", "max_words", "overlap", "files",
 *    "chunks", "sha256"} (rag: sha256 over every chunk's file, line and text)} */
json_t *tw_prompt_config(const tw_prompt *p);

/* One example's prompt. */
typedef struct tw_prompt_example {
    tw_buf text;             /* the full prompt (prefix + suffix) */
    size_t prefix_len;       /* text[0, prefix_len) == tw_prompt_prefix(), or 0 when this
                                example's text does not start with it (then send it whole) */
    tw_chat_msg *msgs;       /* the messages rendered (contents borrowed from the prompt
                                and from strings owned by this struct) */
    size_t n_msgs;
    size_t *demo_rows;       /* train rows used as demonstrations, in prompt order */
    size_t n_demos;
    size_t *passages;        /* rag: chunk indices, best first */
    size_t n_passages;
    char **owned;            /* internal: strings msgs point to */
    size_t n_owned;
} tw_prompt_example;

/* Build ex's prompt into out (zero-initialise out first; reusable after
 * tw_prompt_example_free). Errors: template rejections (TW_ERR_INVALID), TW_ERR_NOMEM. */
tw_status tw_prompt_build(const tw_prompt *p, const tw_example *ex, tw_prompt_example *out, tw_error *err);
void tw_prompt_example_free(tw_prompt_example *e);

/* ---- demonstration sets --------------------------------------------------------------- */

/* Seed of demonstration set i (0-based) for a base seed: i = 0 gives base itself, others
 * tw_hash_mix(base + i * 0x9E3779B97F4A7C15). */
uint64_t tw_prompt_demo_seed(uint64_t base, size_t i);

/* Draw k demonstration rows from train (rows[] holds at least k). stratify (classify):
 * with C classes (distinct outputs, in byte order), k >= C gives each class floor(k/C)
 * and k mod C seeded-chosen classes one more; k < C gives k seeded-chosen classes one
 * each; a class short of rows gives its share to others. Rows within a class and the
 * final order are seeded shuffles. Without stratify: a seeded sample of k rows.
 * *n_out = min(k, train->n). */
tw_status tw_prompt_kshot_select(const tw_dataset *train, bool stratify, size_t k, uint64_t seed, size_t *rows,
                                 size_t *n_out, tw_error *err);
/* The i-th of n seeded demonstration sets (i < n): tw_prompt_kshot_select with
 * tw_prompt_demo_seed(base_seed, i). So the runner can try n sets on dev and keep the best. */
tw_status tw_prompt_demo_set(const tw_dataset *train, bool stratify, size_t k, uint64_t base_seed, size_t i,
                             size_t n, size_t *rows, size_t *n_out, tw_error *err);

/* ---- parsing model output --------------------------------------------------------------- */

typedef struct tw_parsed {
    char *value;    /* heap: classify the label exactly as in the label set (when valid) or
                       the cleaned text; extract the JSON object's text; generate the text */
    bool valid;     /* a label of the set / a JSON object / a non-empty text */
} tw_parsed;
void tw_parsed_free(tw_parsed *p);

/* Free-form label parsing (docs/prompt.md, "Parsing"): trim; strip code fences, paired
 * quotes / backticks / markdown emphasis and trailing . , ; ! ; then (1) byte-exact
 * label, (2) the unique case-insensitive match, (3) the unique match after folding case
 * and treating runs of spaces, '_' and '-' alike, (4) the labels contained in the text at
 * word boundaries (same folding), a match inside a longer match not counting: exactly one
 * label left wins; otherwise invalid. */
tw_status tw_parse_label(const char *raw, const char *const *labels, size_t n_labels, tw_parsed *out,
                         tw_error *err);
/* First balanced {...} in text (strings and escapes respected) that parses as a JSON
 * object; value = that substring verbatim. Invalid: value = trimmed text. */
tw_status tw_parse_json_object(const char *raw, tw_parsed *out, tw_error *err);
/* Chain-of-thought: the text after the last "Answer:" that starts a line (case-
 * insensitive; leading markdown '*' '#' '>' and "Final " allowed), trimmed. NULL when
 * there is none. Heap string. */
char *tw_parse_cot_answer(const char *raw);

/* Parse raw model output as p's task and strategy expect: cot → the Answer part (the
 * whole text when there is no Answer line), then classify → tw_parse_label, extract →
 * tw_parse_json_object, generate → trimmed text. */
tw_status tw_prompt_parse(const tw_prompt *p, const char *raw, tw_parsed *out, tw_error *err);

/* ---- token boundary ------------------------------------------------------------------- */

/* *ok = the token ids of text[0, prefix_len) (TW_TOK_DEFAULT) are a prefix of those of
 * text[0, len): what the backend's prefix cache needs. */
tw_status tw_prompt_check_tokens(const tw_tokenizer *tok, const char *text, size_t len, size_t prefix_len, bool *ok,
                                 tw_error *err);

#endif /* TW_ARMS_PROMPT_H */
