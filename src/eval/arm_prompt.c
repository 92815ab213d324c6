/* arm_prompt.c — the prompt arm as a runner arm (arm_prompt.h): prompt → cache → local
 * backend (generate / constrained generate / score) → parse → prediction.
 * Deliberately not here: prompt construction and parsing (arms/prompt.c), decoding
 * (model/), run bookkeeping (runner.c). */
#include "eval/arm_prompt.h"

#include "model/grammar.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct prompt_state {
    tw_local *be;                     /* exactly one of be / rb */
    tw_remote *rb;
    const tw_price *price;            /* remote: cost per call (may be NULL) */
    char *schema_text;                /* remote json / choice: the response_format object */
    tw_chat_template *own_tmpl;       /* remote chat modes without a template: built-in chatml */
    tw_prompt *pr;
    tw_prompt_arm_params p;
    tw_output_mode mode;
    const char *const *labels;        /* classify: the label set (borrowed from pr) */
    size_t n_labels;
    const char *const *conts;         /* score: continuations (borrowed from pr) */
    size_t n_conts;
    const char *const *stops;         /* borrowed from pr */
    size_t n_stops;
    tw_grammar *grammar;              /* choice / json */
    tw_token_trie *trie;
    tw_constraint *con;
    json_t *dec;                      /* decoding parameters for the cache key */
    char tag[96];                     /* "kshot/score" */
    char *bos, *eos;                  /* the tokenizer's BOS / EOS texts: the prompt borrows them */
} prompt_state;

tw_prompt_arm_params tw_prompt_arm_default_params(void)
{
    return (tw_prompt_arm_params){.prompt = tw_prompt_default_params(), .max_tokens = 0, .temperature = 0.0f,
                                  .sample_seed = 1};
}

static void state_free(void *v)
{
    prompt_state *s = v;
    if (!s) return;
    tw_constraint_free(s->con);
    tw_token_trie_free(s->trie);
    tw_grammar_free(s->grammar);
    tw_prompt_free(s->pr);
    json_decref(s->dec);
    free(s->bos);
    free(s->eos);
    free(s->schema_text);
    tw_chat_template_free(s->own_tmpl);
    free(s);
}

static json_t *arm_config(const tw_eval_arm *arm)
{
    const prompt_state *s = arm->state;
    json_t *c = tw_prompt_config(s->pr);
    if (!c) return NULL;
    json_object_set_new(c, "backend", json_string(s->rb ? "remote" : "local"));
    json_object_set(c, "decoding", s->dec);
    return c;
}

/* The strings the model is constrained to in `choice` mode: each score continuation
 * without the end-of-turn stop it ends with (the end token then closes the answer). */
static tw_status choice_grammar(prompt_state *s, tw_error *err)
{
    const char **opts = calloc(s->n_conts ? s->n_conts : 1, sizeof *opts);
    char **own = calloc(s->n_conts ? s->n_conts : 1, sizeof *own);
    tw_status st = opts && own ? TW_OK : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < s->n_conts; i++) {
        const char *c = s->conts[i];
        size_t n = strlen(c), cut = 0;
        for (size_t j = 0; j < s->n_stops; j++) {
            size_t m = strlen(s->stops[j]);
            if (m <= n && m > cut && memcmp(c + n - m, s->stops[j], m) == 0) cut = m;
        }
        if (!(own[i] = tw_strndup(c, n - cut, err))) st = TW_ERR_NOMEM;
        opts[i] = own[i];
    }
    if (!st) st = tw_grammar_from_choices(&s->grammar, opts, s->n_conts, err);
    for (size_t i = 0; own && i < s->n_conts; i++) free(own[i]);
    free(own);
    free(opts);
    return st;
}

/* End tokens of a constrained answer: the stops that are single tokens (ChatML's
 * <|im_end|>), plus the tokenizer's EOS. */
static size_t end_tokens(const prompt_state *s, int32_t *ids, size_t cap)
{
    const tw_tokenizer *tok = tw_local_tokenizer(s->be);
    size_t n = 0;
    for (size_t j = 0; j < s->n_stops && n < cap; j++) {
        int32_t id = tw_token_lookup(tok, s->stops[j], strlen(s->stops[j]));
        if (id >= 0 && tw_token_is_special(tok, id)) ids[n++] = id;
    }
    int32_t eos = tw_tokenizer_eos(tok);
    bool have = false;
    for (size_t j = 0; j < n; j++) have |= ids[j] == eos;
    if (eos >= 0 && !have && n < cap) ids[n++] = eos;
    return n;
}

static tw_status make_constraint(prompt_state *s, const tw_task *task, tw_error *err)
{
    tw_status st = TW_OK;
    if (s->mode == TW_OUTPUT_CHOICE) {
        st = choice_grammar(s, err);
    } else {
        if (!task->schema_path)
            return tw_error_set(err, TW_ERR_INVALID, "%s: --output json needs the task's schema", task->path);
        char *text = NULL;
        size_t len = 0;
        if ((st = tw_file_read(task->schema_path, &text, &len, err))) return st;
        st = tw_grammar_from_schema_text(&s->grammar, text, len, NULL, err);
        free(text);
        if (st) return tw_error_prefix(err, "%s: ", task->schema_path);
    }
    if (!st) st = tw_token_trie_new(&s->trie, tw_local_tokenizer(s->be), err);
    int32_t ends[8];
    size_t n_end = end_tokens(s, ends, 8);
    if (!st) st = tw_constraint_new(&s->con, s->grammar, s->trie, ends, n_end, err);
    return st;
}

static json_t *decoding_json(const prompt_state *s)
{
    json_t *stops = json_array();
    for (size_t i = 0; i < s->n_stops; i++) json_array_append_new(stops, json_string(s->stops[i]));
    json_t *d = json_pack("{s:s, s:o}", "output", tw_output_mode_str(s->mode), "stops", stops);
    if (!d) return NULL;
    if (s->mode == TW_OUTPUT_SCORE) {
        json_t *c = json_array();
        for (size_t i = 0; i < s->n_conts; i++) json_array_append_new(c, json_string(s->conts[i]));
        json_object_set_new(d, "continuations", c);
    } else {
        json_object_set_new(d, "max_tokens", json_integer(s->p.max_tokens));
        json_object_set_new(d, "temperature", json_real(s->p.temperature));
        if (s->p.temperature > 0) json_object_set_new(d, "seed", json_integer((json_int_t)s->p.sample_seed));
    }
    return d;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Answer one prompt with the backend; fills out's prediction, parsed, valid, tokens,
 * latency, and the cache entry to store. */
static tw_status answer(prompt_state *s, const tw_prompt_example *ex, tw_cache_entry *e, tw_error *err)
{
    size_t plen = 0;
    const char *prefix = tw_prompt_prefix(s->pr, &plen);
    const char *suffix = ex->text.data;
    tw_status st;
    if (ex->prefix_len > 0) {
        st = tw_local_set_prefix(s->be, prefix, err);
        suffix += ex->prefix_len;
    } else {
        st = tw_local_set_prefix(s->be, NULL, err);
    }
    if (st) return st;
    tw_local_result r;
    memset(&r, 0, sizeof r);
    if (s->mode == TW_OUTPUT_SCORE) {
        double *lp = malloc((s->n_conts ? s->n_conts : 1) * sizeof *lp);
        if (!lp) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        st = tw_local_score(s->be, suffix, s->conts, s->n_conts, lp, &r, err);
        if (!st) {
            size_t best = 0;
            json_t *j = json_object();
            for (size_t i = 0; i < s->n_conts; i++) {
                if (lp[i] > lp[best]) best = i;
                json_object_set_new(j, s->labels[i], json_real(lp[i]));
            }
            e->output = dup_or_null(s->labels[best]);
            e->parsed = dup_or_null(s->labels[best]);
            e->valid = true;
            e->logprobs = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
            json_decref(j);
            e->tokens_out = 0;
        }
        free(lp);
    } else {
        tw_gen_params gp = tw_gen_default_params();
        gp.max_tokens = s->p.max_tokens;
        gp.stops = s->stops;
        gp.n_stops = s->n_stops;
        gp.sample.temperature = s->p.temperature;
        gp.sample.seed = s->p.sample_seed;
        gp.constraint = s->con;
        st = tw_local_generate(s->be, suffix, &gp, &r, err);
        if (!st) {
            e->output = strdup(r.text.data ? r.text.data : "");
            tw_parsed pa = {0};
            st = tw_prompt_parse(s->pr, e->output, &pa, err);
            if (!st) {
                e->parsed = pa.value;
                pa.value = NULL;
                e->valid = pa.valid && (!s->con || tw_constraint_complete(s->con));
            }
            tw_parsed_free(&pa);
            e->tokens_out = r.tokens_out;
        }
    }
    if (st) {
        tw_local_result_free(&r);
        return st;
    }
    e->tokens_in = r.tokens_in;
    e->latency_ms = r.latency_ms;
    tw_local_result_free(&r);
    if (!e->output) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    return TW_OK;
}

/* The cache key of one call: model, adapter, the exact prompt, decoding parameters, mode. */
static tw_status cache_key(const tw_eval_arm *arm, const char *prompt, char key[65], tw_error *err)
{
    const prompt_state *s = arm->state;
    tw_cache_key k = {.model_hash = arm->model_hash, .adapter_hash = arm->adapter_hash, .prompt = prompt,
                      .params = s->dec, .mode = s->tag};
    return tw_cache_key_hash(&k, key, err);
}

/* Move an answer (fresh or from the cache) into a prediction; the prompt becomes its input. */
static tw_status take_entry(const prompt_state *s, tw_pred *out, tw_cache_entry *e, const char *prompt, tw_error *err)
{
    out->prediction = e->output;
    out->parsed = e->parsed;
    e->output = e->parsed = NULL;
    out->valid = e->valid;
    out->tokens_in = e->tokens_in;
    out->tokens_out = e->tokens_out;
    out->latency_ms = e->latency_ms;
    if (s->rb && s->price) out->cost = tw_remote_cost(s->price, (int64_t)e->tokens_in, (int64_t)e->tokens_out);
    out->input = strdup(prompt);
    return out->input ? TW_OK : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
}

/* The remote path: chat completions (free / cot / json / choice) or completions with echoed
 * log-probs (score). */
static tw_status answer_remote(prompt_state *s, const tw_prompt_example *ex, tw_cache_entry *e, tw_error *err)
{
    tw_remote_result r;
    memset(&r, 0, sizeof r);
    tw_status st;
    if (s->mode == TW_OUTPUT_SCORE) {
        double *lp = malloc((s->n_conts ? s->n_conts : 1) * sizeof *lp);
        if (!lp) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        st = tw_remote_score(s->rb, ex->text.data, s->conts, s->n_conts, lp, &r, err);
        if (!st) {
            size_t best = 0;
            json_t *j = json_object();
            for (size_t i = 0; i < s->n_conts; i++) {
                if (lp[i] > lp[best]) best = i;
                json_object_set_new(j, s->labels[i], json_real(lp[i]));
            }
            e->output = dup_or_null(s->labels[best]);
            e->parsed = dup_or_null(s->labels[best]);
            e->valid = true;
            e->logprobs = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
            json_decref(j);
        }
        free(lp);
    } else {
        tw_remote_request q = tw_remote_request_init();
        q.msgs = ex->msgs;
        q.n_msgs = ex->n_msgs;
        q.max_tokens = s->p.max_tokens;
        q.temperature = s->p.temperature;
        if (s->p.temperature > 0) q.seed = (int64_t)s->p.sample_seed;
        q.response_format = s->schema_text;
        if (s->mode == TW_OUTPUT_FREE) {   /* the chat template's own stops are the server's business */
            q.stops = NULL;
            q.n_stops = 0;
        }
        st = tw_remote_chat(s->rb, &q, &r, err);
        if (!st) {
            e->output = strdup(r.text.data ? r.text.data : "");
            const char *raw = e->output;
            char *label = NULL;
            if (s->mode == TW_OUTPUT_CHOICE) {   /* {"label": "..."} */
                json_t *j = json_loads(raw ? raw : "", 0, NULL);
                const char *l = json_string_value(json_object_get(j, "label"));
                label = l ? strdup(l) : NULL;
                json_decref(j);
                if (label) raw = label;
            }
            tw_parsed pa = {0};
            st = raw ? tw_prompt_parse(s->pr, raw, &pa, err) : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            if (!st) {
                e->parsed = pa.value;
                pa.value = NULL;
                e->valid = pa.valid && (s->mode != TW_OUTPUT_CHOICE || label);
            }
            tw_parsed_free(&pa);
            free(label);
        }
    }
    if (!st) {
        e->tokens_in = r.prompt_tokens >= 0 ? (double)r.prompt_tokens : NAN;
        e->tokens_out = r.completion_tokens >= 0 ? (double)r.completion_tokens : NAN;
        e->latency_ms = r.latency_ms;
    }
    tw_remote_result_free(&r);
    if (!st && !e->output) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    return st;
}

static tw_status predict(tw_eval_arm *arm, const tw_example *row, tw_pred *out, const tw_eval_ctx *ctx, tw_error *err)
{
    prompt_state *s = arm->state;
    tw_prompt_example ex;
    memset(&ex, 0, sizeof ex);
    tw_status st = tw_prompt_build(s->pr, row, &ex, err);
    if (st) return st;
    tw_cache_entry e;
    tw_cache_entry_init(&e);
    char key[65];
    bool hit = false;
    if (ctx && ctx->cache) {
        st = cache_key(arm, ex.text.data, key, err);
        if (!st) st = tw_cache_get(ctx->cache, key, &e, &hit, err);
    }
    if (!st && !hit) {
        st = s->rb ? answer_remote(s, &ex, &e, err) : answer(s, &ex, &e, err);
        if (!st && ctx && ctx->cache) st = tw_cache_put(ctx->cache, key, &e, err);
    }
    if (!st) {
        st = take_entry(s, out, &e, ex.text.data, err);
    }
    tw_cache_entry_free(&e);
    tw_prompt_example_free(&ex);
    return st;
}

/* Remote arms: n rows at once — prompts and cache lookups on this thread, the misses'
 * calls on one thread each (the client caps the requests in flight), then the cache. */
typedef struct remote_job {
    prompt_state *s;
    const tw_prompt_example *ex;
    tw_cache_entry *e;
    tw_status st;
    tw_error err;
} remote_job;

static void *remote_job_run(void *v)
{
    remote_job *j = v;
    j->st = answer_remote(j->s, j->ex, j->e, &j->err);
    return NULL;
}

static tw_status predict_batch(tw_eval_arm *arm, const tw_example *rows, size_t n, tw_pred *out,
                               const tw_eval_ctx *ctx, tw_error *err)
{
    prompt_state *s = arm->state;
    if (!s->rb || n == 1) {
        for (size_t i = 0; i < n; i++) {
            tw_status st = predict(arm, &rows[i], &out[i], ctx, err);
            if (st) return st;
        }
        return TW_OK;
    }
    tw_prompt_example *ex = calloc(n, sizeof *ex);
    tw_cache_entry *e = calloc(n, sizeof *e);
    remote_job *jobs = calloc(n, sizeof *jobs);
    pthread_t *th = calloc(n, sizeof *th);
    bool *hit = calloc(n, sizeof *hit), *started = calloc(n, sizeof *started);
    char (*keys)[65] = calloc(n, sizeof *keys);
    tw_status st = ex && e && jobs && th && hit && started && keys ? TW_OK : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; ex && e && i < n; i++) tw_cache_entry_init(&e[i]);
    for (size_t i = 0; !st && i < n; i++) {
        st = tw_prompt_build(s->pr, &rows[i], &ex[i], err);
        if (!st && ctx && ctx->cache) {
            st = cache_key(arm, ex[i].text.data, keys[i], err);
            if (!st) st = tw_cache_get(ctx->cache, keys[i], &e[i], &hit[i], err);
        }
    }
    for (size_t i = 0; !st && i < n; i++) {
        if (hit[i]) continue;
        jobs[i] = (remote_job){.s = s, .ex = &ex[i], .e = &e[i]};
        if (pthread_create(&th[i], NULL, remote_job_run, &jobs[i]) == 0) started[i] = true;
        else remote_job_run(&jobs[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (started[i]) pthread_join(th[i], NULL);
    for (size_t i = 0; !st && i < n; i++) {
        if (hit[i]) continue;
        if (jobs[i].st) {
            *err = jobs[i].err;
            st = jobs[i].st;
        } else if (ctx && ctx->cache) {
            st = tw_cache_put(ctx->cache, keys[i], &e[i], err);
        }
    }
    for (size_t i = 0; !st && i < n; i++) {
        st = take_entry(s, &out[i], &e[i], ex[i].text.data, err);
    }
    for (size_t i = 0; ex && e && i < n; i++) {
        tw_prompt_example_free(&ex[i]);
        tw_cache_entry_free(&e[i]);
    }
    free(ex);
    free(e);
    free(jobs);
    free(th);
    free(hit);
    free(started);
    free(keys);
    return st;
}

static const tw_eval_arm_ops PROMPT_OPS = {
    .name = "prompt",
    .predict = predict,
    .predict_batch = predict_batch,
    .config = arm_config,
    .destroy = state_free,
};

/* What both constructors share: the state, the prompt (rendered with tmpl, bos, eos),
 * labels / continuations / stops, the decoding tag. */
static tw_status arm_begin(tw_eval_arm **armp, prompt_state **sp, const tw_chat_template *tmpl, const char *bos,
                           const char *eos, const tw_task *task, const tw_dataset *train, const tw_prompt_arm_params *p,
                           tw_error *err)
{
    *armp = NULL;
    prompt_state *s = calloc(1, sizeof *s);
    tw_eval_arm *arm = calloc(1, sizeof *arm);
    if (!s || !arm) {
        free(s);
        free(arm);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    s->p = *p;
    s->mode = p->prompt.output;
    if (s->p.max_tokens <= 0) s->p.max_tokens = p->prompt.cot ? 256 : s->mode == TW_OUTPUT_JSON ? 192 : 64;
    arm->ops = &PROMPT_OPS;
    arm->state = s;
    *armp = arm;
    *sp = s;
    s->bos = bos ? tw_strdup(bos, err) : NULL;
    s->eos = eos ? tw_strdup(eos, err) : NULL;
    if ((bos && !s->bos) || (eos && !s->eos)) return TW_ERR_NOMEM;
    tw_prompt_target tg = {.tmpl = tmpl, .bos = s->bos, .eos = s->eos};
    tw_status st = tw_prompt_new(&s->pr, task, train, &p->prompt, &tg, err);
    if (st) return st;
    s->labels = tw_prompt_labels(s->pr, &s->n_labels);
    s->conts = tw_prompt_continuations(s->pr, &s->n_conts);
    s->stops = tw_prompt_stops(s->pr);
    while (s->stops && s->stops[s->n_stops]) s->n_stops++;
    if (s->mode == TW_OUTPUT_SCORE && s->n_conts != s->n_labels)
        return tw_error_set(err, TW_ERR_INVALID, "score: %zu continuations for %zu labels", s->n_conts, s->n_labels);
    char strat[64];
    tw_prompt_strategy_str(&p->prompt, strat, sizeof strat);
    snprintf(s->tag, sizeof s->tag, "%s/%s", strat, tw_output_mode_str(s->mode));
    return TW_OK;
}

tw_status tw_eval_arm_prompt_new(tw_eval_arm **out, tw_local *backend, const tw_task *task, const tw_dataset *train,
                                 const tw_prompt_arm_params *p, tw_error *err)
{
    *out = NULL;
    const tw_tokenizer *tok = tw_local_tokenizer(backend);
    size_t bl = 0, el = 0;
    const char *bos = tw_tokenizer_bos(tok) >= 0 ? tw_token_text(tok, tw_tokenizer_bos(tok), &bl) : NULL;
    const char *eos = tw_tokenizer_eos(tok) >= 0 ? tw_token_text(tok, tw_tokenizer_eos(tok), &el) : NULL;
    char *b = bos ? tw_strndup(bos, bl, err) : NULL, *e = eos ? tw_strndup(eos, el, err) : NULL;
    tw_eval_arm *arm = NULL;
    prompt_state *s = NULL;
    tw_status st = (bos && !b) || (eos && !e) ? TW_ERR_NOMEM
                   : arm_begin(&arm, &s, tw_local_chat_template(backend), b, e, task, train, p, err);
    free(b);
    free(e);
    if (s) s->be = backend;
    if (!st && (s->mode == TW_OUTPUT_CHOICE || s->mode == TW_OUTPUT_JSON)) st = make_constraint(s, task, err);
    if (!st && !(s->dec = decoding_json(s))) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st) {
        const char *id = tw_local_model_id(backend, err);
        if (!id) st = TW_ERR_IO;
        else snprintf(arm->model_hash, sizeof arm->model_hash, "%s", strncmp(id, "sha256:", 7) ? id : id + 7);
    }
    if (st) {
        tw_eval_arm_free(arm);
        return st;
    }
    *out = arm;
    return TW_OK;
}

/* response_format for the remote json / choice modes. */
static tw_status remote_format(prompt_state *s, const tw_task *task, tw_error *err)
{
    json_t *schema = NULL;
    if (s->mode == TW_OUTPUT_JSON) {
        if (!task->schema_path)
            return tw_error_set(err, TW_ERR_INVALID, "%s: --output json needs the task's schema", task->path);
        json_error_t je;
        if (!(schema = json_load_file(task->schema_path, 0, &je)))
            return tw_error_set(err, TW_ERR_PARSE, "%s:%d:%d: %s", task->schema_path, je.line, je.column, je.text);
    } else {
        json_t *en = json_array();
        for (size_t i = 0; i < s->n_labels; i++) json_array_append_new(en, json_string(s->labels[i]));
        schema = json_pack("{s:s, s:{s:{s:s, s:o}}, s:[s], s:b}", "type", "object", "properties", "label", "type",
                           "string", "enum", en, "required", "label", "additionalProperties", 0);
    }
    json_t *rf = schema ? json_pack("{s:s, s:{s:s, s:o}}", "type", "json_schema", "json_schema", "name", "answer",
                                    "schema", schema)
                        : NULL;
    s->schema_text = rf ? json_dumps(rf, JSON_COMPACT) : NULL;
    json_decref(rf);
    return s->schema_text ? TW_OK : tw_error_set(err, TW_ERR_NOMEM, "out of memory");
}

tw_status tw_eval_arm_prompt_new_remote(tw_eval_arm **out, tw_remote *remote, const tw_chat_template *tmpl,
                                        const tw_price *price, const tw_task *task, const tw_dataset *train,
                                        const tw_prompt_arm_params *p, tw_error *err)
{
    *out = NULL;
    tw_eval_arm *arm = NULL;
    prompt_state *s = NULL;
    /* the chat modes send messages, which need the chat layout: without the model's own
     * template, the messages are built (and the cache key's text rendered) with ChatML */
    tw_chat_template *own = NULL;
    if (!tmpl && p->prompt.output != TW_OUTPUT_SCORE) {
        tw_status s0 = tw_chat_template_builtin(&own, "chatml", err);
        if (s0) return s0;
        tmpl = own;
    }
    tw_status st = arm_begin(&arm, &s, tmpl, NULL, NULL, task, train, p, err);
    if (!s) tw_chat_template_free(own);
    if (s) {
        s->own_tmpl = own;
        s->rb = remote;
        s->price = price;
    }
    if (!st && (s->mode == TW_OUTPUT_CHOICE || s->mode == TW_OUTPUT_JSON)) st = remote_format(s, task, err);
    if (!st && !(s->dec = decoding_json(s))) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st) {
        const char *id = tw_remote_model_id(remote);
        tw_sha256(id, strlen(id), arm->model_hash);
        json_object_set_new(s->dec, "remote_model", json_string(id));
    }
    if (st) {
        tw_eval_arm_free(arm);
        return st;
    }
    *out = arm;
    return TW_OK;
}

const tw_prompt *tw_eval_arm_prompt_get(const tw_eval_arm *arm)
{
    return ((const prompt_state *)arm->state)->pr;
}
