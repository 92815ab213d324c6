/* arm_prompt.h — the prompt arm through the evaluation runner: per row, build the prompt
 * (arms/prompt.h), answer it with the in-process backend (backend/local.h) — generation,
 * generation constrained to the labels (choice) or to the task's JSON Schema (json), or
 * ranking of the label continuations by log-likelihood (score) — parse the answer, and
 * record the exact prompt text as the prediction's input. Calls go through the runner's
 * SQLite cache when one is given (key: model hash, exact prompt, decoding params, mode).
 *
 * Deliberately not here: prompt texts and parsing rules (arms/prompt.c), the model
 * (backend/local.c), the run directory and resume (runner.c), remote backends. */
#ifndef TW_EVAL_ARM_PROMPT_H
#define TW_EVAL_ARM_PROMPT_H

#include "arms/prompt.h"
#include "backend/local.h"
#include "backend/remote.h"
#include "eval/runner.h"

typedef struct tw_prompt_arm_params {
    tw_prompt_params prompt;   /* strategy, k, seed, output mode, rag folder */
    int32_t max_tokens;        /* free / choice / json: tokens generated at most (default
                                  64; json 192: extraction answers run long; cot 256) */
    float temperature;         /* default 0: greedy */
    uint64_t sample_seed;      /* sampler seed when temperature > 0 */
} tw_prompt_arm_params;

tw_prompt_arm_params tw_prompt_arm_default_params(void);

/* An arm over backend (borrowed: must outlive the arm; one arm at a time uses it) for a
 * task with its training split (borrowed: demonstrations and the knn index refer to it).
 * Errors from tw_prompt_new (strategy / mode / task mismatches), the schema file, the
 * grammar compiler, the model's hash. Free with tw_eval_arm_free. */
tw_status tw_eval_arm_prompt_new(tw_eval_arm **out, tw_local *backend, const tw_task *task, const tw_dataset *train,
                                 const tw_prompt_arm_params *p, tw_error *err);

/* The same arm over an OpenAI-compatible server (borrowed; thread-safe). tmpl (borrowed,
 * may be NULL): the remote model's chat template, used only to render the prompt text
 * that `score` sends to /v1/completions (without one the plain layout is scored; the chat
 * modes then build their messages with the ChatML layout: the server applies its own). free /
 * cot go to /v1/chat/completions as messages; json sends the task's schema as
 * response_format json_schema; choice sends a schema {"label": enum of the labels} and
 * reads the label back. price (borrowed, may be NULL): cost per call from the usage
 * tokens. model_id identifies the remote model in cache keys (e.g. "remote:URL#model"). */
tw_status tw_eval_arm_prompt_new_remote(tw_eval_arm **out, tw_remote *remote, const tw_chat_template *tmpl,
                                        const tw_price *price, const tw_task *task, const tw_dataset *train,
                                        const tw_prompt_arm_params *p, tw_error *err);

/* The tw_prompt inside (prefix, labels, config), borrowed. */
const tw_prompt *tw_eval_arm_prompt_get(const tw_eval_arm *arm);

#endif /* TW_EVAL_ARM_PROMPT_H */
