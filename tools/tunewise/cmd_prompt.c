/* cmd_prompt.c — `tunewise prompt --task T --model M --strategy kshot --k 8 --output score
 * -o RUN/`: the prompt arm over a split through the evaluation runner, on a local model.
 * With --demo-sets N (kshot), N seeded demonstration sets are tried on the dev split first
 * (RUN/search/set-I/ each, RUN/search.json with the spread) and the best one runs on the
 * evaluation split. Everything resumable and cached like `tunewise eval`.
 * Deliberately not here: prompt texts (arms/prompt.c), the arm (eval/arm_prompt.c), the
 * runner; remote models arrive with the remote backend. */
#include "cli.h"
#include "eval/arm_prompt.h"
#include "model/lora.h"
#include "task/split.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const cli_opt OPTS[] = {
    {"task", 't', CLI_STR, "TASK", "task file", NULL},
    {"model", 'm', CLI_STR, "MODEL", "local model (GGUF file or Hugging Face folder); with --remote the model name", NULL},
    {"adapter", 0, CLI_STR, "PATH", "LoRA adapter (llama.cpp GGUF or PEFT folder, e.g. from 'tunewise tune') applied to the local model", NULL},
    {"prompt", 0, CLI_STR, "auto|full|short", "system prompt: full (instructions + label list / schema), short (instructions only, for fine-tuned models); auto: what the adapter's run trained on (train.json beside it), else full", "auto"},
    {"remote", 0, CLI_STR, "URL", "OpenAI-compatible server base URL (e.g. http://127.0.0.1:8080/v1) instead of a local model", NULL},
    {"api-key-env", 0, CLI_STR, "NAME", "with --remote: environment variable holding the API key", NULL},
    {"concurrency", 0, CLI_INT, "N", "with --remote: requests in flight", "4"},
    {"rpm", 0, CLI_STR, "N", "with --remote: requests per minute at most (0: no limit)", "0"},
    {"timeout", 0, CLI_STR, "S", "with --remote: seconds per attempt before a retry", "120"},
    {"strategy", 0, CLI_STR, "S", "zero|kshot|knn, optionally +cot and/or +rag (e.g. knn+cot)", "zero"},
    {"k", 'k', CLI_INT, "K", "demonstrations for kshot / knn", "8"},
    {"output", 0, CLI_STR, "MODE", "free|choice|score|json (default: score for classify, json for extract, free "
                                    "for generate)", NULL},
    {"demo-sets", 0, CLI_INT, "N", "kshot: try N seeded demonstration sets on dev, keep the best", "1"},
    {"rag", 0, CLI_STR, "DIR", "rag: folder of .txt/.md documents", NULL},
    {"rag-k", 0, CLI_INT, "K", "rag: passages per example", "3"},
    {"split", 's', CLI_STR, "SPLIT", "train|dev|test: the split evaluated", "test"},
    {"limit", 0, CLI_INT, "N", "evaluate only the first N rows of each split used (0: all)", "0"},
    {"max-tokens", 'n', CLI_INT, "N", "tokens generated at most (free/choice/json; 0: 64, json 192, cot 256)", "0"},
    {"temp", 0, CLI_STR, "T", "sampling temperature (0: greedy)", "0"},
    {"out", 'o', CLI_STR, "DIR", "run directory (created; an interrupted run there is resumed)", NULL},
    {"force", 0, CLI_FLAG, NULL, "discard what DIR holds and start over", NULL},
    {"cache", 0, CLI_STR, "FILE", "SQLite cache of model calls (re-runs are free)", NULL},
    {"chat-template", 0, CLI_STR, "FILE|NAME", "chat template instead of the model's own", NULL},
    {"ctx", 0, CLI_INT, "N", "KV cache size in tokens", "4096"},
    {"threads", 'j', CLI_INT, "N", "threads (0: all cores)", "0"},
    {"bootstrap", 'b', CLI_INT, "N", "bootstrap replicates for CIs (0: none)", "1000"},
    {"seed", 0, CLI_INT, "N", "seed: demonstration draw, sampler, bootstrap", "1"},
    {"json", 0, CLI_FLAG, NULL, "print the metrics report as JSON", NULL},
    {0},
};

typedef struct job {
    const cli_args *a;
    tw_task *task;
    tw_dataset *sp;
    tw_local *be;
    tw_remote *rb;
    tw_chat_template *tmpl;     /* remote: --chat-template, for score's prompt text */
    const tw_price *price;      /* remote: the task's price for this model */
    tw_cache *cache;
    tw_lora *lora;              /* --adapter */
    char adapter_hash[65];
    tw_eval_params ep;
} job;

static size_t limited(const cli_args *a, size_t n)
{
    long lim = cli_int(a, "limit");
    return lim > 0 && (size_t)lim < n ? (size_t)lim : n;
}

/* Run the arm with params pp on split s into dir; *primary gets the primary metric. */
static tw_status run_one(job *j, const tw_prompt_arm_params *pp, int s, const char *dir, json_t **metrics,
                         double *primary, tw_eval_result *res, tw_error *err)
{
    tw_eval_arm *arm = NULL;
    tw_status st = j->rb ? tw_eval_arm_prompt_new_remote(&arm, j->rb, j->tmpl, j->price, j->task,
                                                         &j->sp[TW_SPLIT_TRAIN], pp, err)
                         : tw_eval_arm_prompt_new(&arm, j->be, j->task, &j->sp[TW_SPLIT_TRAIN], pp, err);
    if (st) return st;
    memcpy(arm->adapter_hash, j->adapter_hash, sizeof arm->adapter_hash);
    const tw_dataset *ds = &j->sp[s];
    json_t *ctx = json_pack("{s:s, s:s, s:s, s:s}", "task", j->task->path, "task_name",
                            j->task->name ? j->task->name : "", "split", tw_split_name((tw_split_id)s), "model",
                            cli_str(j->a, "model"));
    tw_eval_params ep = j->ep;
    ep.context = ctx;
    memset(res, 0, sizeof *res);
    st = tw_eval_run(arm, ds->rows, limited(j->a, ds->n), dir, &ep, res, err);
    json_decref(ctx);
    tw_eval_arm_free(arm);
    if (st) return st;
    json_t *m = json_object_get(json_object_get(res->metrics, "metrics"),
                                json_string_value(json_object_get(res->metrics, "primary")));
    *primary = m ? json_number_value(json_object_get(m, "value")) : NAN;
    *metrics = res->metrics;
    return TW_OK;
}

static int run(cli_args *a)
{
    const char *task_path = cli_str(a, "task"), *out = cli_str(a, "out"), *model = cli_str(a, "model");
    if (!task_path) return cli_usage_error(a->cmd, "missing --task TASK");
    if (!model) return cli_usage_error(a->cmd, "missing --model MODEL");
    if (!out) return cli_usage_error(a->cmd, "missing --out DIR");
    int split = -1;
    for (int s = 0; s < TW_SPLIT_COUNT; s++)
        if (strcmp(cli_str(a, "split"), tw_split_name((tw_split_id)s)) == 0) split = s;
    if (split < 0) return cli_usage_error(a->cmd, "unknown --split '%s' (expected train, dev or test)", cli_str(a, "split"));
    if (cli_int(a, "concurrency") < 1) return cli_usage_error(a->cmd, "--concurrency must be >= 1");
    if (cli_int(a, "k") < 0 || cli_int(a, "demo-sets") < 1 || cli_int(a, "limit") < 0 || cli_int(a, "bootstrap") < 0)
        return cli_usage_error(a->cmd, "--k, --limit, --bootstrap must be >= 0 and --demo-sets >= 1");
    char *end;
    double temp = strtod(cli_str(a, "temp"), &end);
    if (*end || temp < 0 || !isfinite(temp)) return cli_usage_error(a->cmd, "--temp must be a number >= 0");

    tw_error err;
    tw_error_clear(&err);
    tw_prompt_arm_params pp = tw_prompt_arm_default_params();
    if (tw_prompt_strategy_parse(cli_str(a, "strategy"), &pp.prompt, &err))
        return cli_usage_error(a->cmd, "%s", err.msg);
    pp.prompt.k = (size_t)cli_int(a, "k");
    pp.prompt.seed = (uint64_t)cli_int(a, "seed");
    pp.prompt.rag_dir = cli_str(a, "rag");
    pp.prompt.rag_k = (size_t)cli_int(a, "rag-k");
    pp.max_tokens = (int32_t)cli_int(a, "max-tokens");
    pp.temperature = (float)temp;
    pp.sample_seed = (uint64_t)cli_int(a, "seed");
    {
        const char *pm = cli_str(a, "prompt");
        if (strcmp(pm, "auto") && strcmp(pm, "full") && strcmp(pm, "short"))
            return cli_usage_error(a->cmd, "unknown --prompt '%s' (expected auto, full or short)", pm);
        pp.prompt.short_system = strcmp(pm, "short") == 0;
        const char *ad = cli_str(a, "adapter");
        if (!strcmp(pm, "auto") && ad) {   /* tune writes train.json beside adapter.gguf / adapter/ */
            char tj[4200];
            const char *slash = strrchr(ad, '/');
            snprintf(tj, sizeof tj, "%.*s/train.json", slash ? (int)(slash - ad) : 1, slash ? ad : ".");
            json_t *j = json_load_file(tj, 0, NULL);
            const char *lay = json_string_value(json_object_get(json_object_get(j, "config"), "prompt"));
            pp.prompt.short_system = lay && strcmp(lay, "short") == 0;
            json_decref(j);
        }
    }

    tw_task t;
    if (tw_task_load(&t, task_path, &err)) return cli_fail(&err);
    if (cli_given(a, "output")) {
        if (!tw_output_mode_parse(cli_str(a, "output"), &pp.prompt.output)) {
            tw_task_free(&t);
            return cli_usage_error(a->cmd, "unknown --output '%s' (expected free, choice, score or json)",
                                   cli_str(a, "output"));
        }
    } else {
        pp.prompt.output = t.type == TW_TASK_CLASSIFY ? (pp.prompt.cot ? TW_OUTPUT_FREE : TW_OUTPUT_SCORE)
                           : t.type == TW_TASK_EXTRACT ? TW_OUTPUT_JSON : TW_OUTPUT_FREE;
    }
    const int n_sets = (int)cli_int(a, "demo-sets");
    if (n_sets > 1 && pp.prompt.demos != TW_DEMOS_KSHOT) {
        tw_task_free(&t);
        return cli_usage_error(a->cmd, "--demo-sets needs a kshot strategy");
    }

    job j = {.a = a, .task = &t};
    tw_dataset sp[TW_SPLIT_COUNT];
    memset(sp, 0, sizeof sp);
    j.sp = sp;
    char **labels = NULL;
    size_t n_labels = 0;
    json_t *schema = NULL, *metrics = NULL, *search = NULL;
    tw_status st = tw_split_task(&t, sp, NULL, &err);
    if (!st && sp[split].n == 0)
        st = tw_error_set(&err, TW_ERR_INVALID, "%s: the %s split is empty", t.path, tw_split_name((tw_split_id)split));
    if (!st && n_sets > 1 && sp[TW_SPLIT_DEV].n == 0)
        st = tw_error_set(&err, TW_ERR_INVALID, "%s: --demo-sets needs a dev split, and it is empty", t.path);
    j.ep = tw_eval_default_params();
    j.ep.score.task_type = (int)t.type;
    j.ep.score.primary = t.metric;
    j.ep.score.bootstrap = (int)cli_int(a, "bootstrap");
    j.ep.score.seed = (uint64_t)cli_int(a, "seed");
    if (!st && t.type == TW_TASK_CLASSIFY) {
        if (t.n_labels) {
            j.ep.score.labels = (const char *const *)t.labels;
            j.ep.score.n_labels = t.n_labels;
        } else if (!(st = tw_dataset_labels(&sp[TW_SPLIT_TRAIN], &labels, &n_labels, &err))) {
            j.ep.score.labels = (const char *const *)labels;
            j.ep.score.n_labels = n_labels;
        }
    }
    if (!st && t.schema_path) {
        json_error_t je;
        if (!(schema = json_load_file(t.schema_path, 0, &je)))
            st = tw_error_set(&err, TW_ERR_PARSE, "%s:%d:%d: invalid JSON schema: %s", t.schema_path, je.line,
                              je.column, je.text);
        j.ep.score.schema = schema;
    }
    if (!st && cli_given(a, "cache")) st = tw_cache_open(&j.cache, cli_str(a, "cache"), &err);
    if (!st && cli_given(a, "remote") && cli_given(a, "adapter"))
        st = tw_error_set(&err, TW_ERR_INVALID, "--adapter applies to local models (a server applies its own: model BASE+NAME)");
    if (!st && cli_given(a, "remote")) {
        tw_remote_params rp = tw_remote_default_params();
        rp.base_url = cli_str(a, "remote");
        rp.model = model;
        rp.api_key_env = cli_str(a, "api-key-env");
        rp.max_in_flight = (int)cli_int(a, "concurrency");
        rp.requests_per_minute = strtod(cli_str(a, "rpm"), NULL);
        rp.timeout_s = strtod(cli_str(a, "timeout"), NULL);
        if (rp.requests_per_minute < 0 || !(rp.timeout_s > 0))
            st = tw_error_set(&err, TW_ERR_INVALID, "--rpm must be >= 0 and --timeout > 0");
        rp.seed = (uint64_t)cli_int(a, "seed");
        if (!st) st = tw_remote_open(&j.rb, &rp, &err);
        const char *ctn = cli_str(a, "chat-template");
        if (!st && ctn) st = tw_local_load_template(NULL, ctn, &j.tmpl, &err);
        for (size_t i = 0; i < t.n_prices; i++)
            if (t.prices[i].model && strcmp(t.prices[i].model, model) == 0) j.price = &t.prices[i];
    } else if (!st) {
        tw_local_params lp = tw_local_default_params();
        lp.model = model;
        lp.chat_template = cli_str(a, "chat-template");
        lp.n_threads = (int)cli_int(a, "threads");
        lp.n_ctx = (int32_t)cli_int(a, "ctx");
        st = tw_local_open(&j.be, &lp, &err);
        const char *ad = cli_str(a, "adapter");
        if (!st && ad) {
            char apath[4096];
            struct stat sb;
            bool dir = stat(ad, &sb) == 0 && S_ISDIR(sb.st_mode);
            st = dir ? tw_lora_read_peft(&j.lora, ad, tw_llama_config(tw_local_model(j.be)), &err)
                     : tw_lora_read_gguf(&j.lora, ad, &err);
            snprintf(apath, sizeof apath, dir ? "%s/adapter_model.safetensors" : "%s", ad);
            if (!st) st = tw_sha256_file(apath, j.adapter_hash, &err);
            if (!st) st = tw_local_set_adapters(j.be, &j.lora, NULL, 1, &err);
        }
    }
    j.ep.cache = j.cache;
    j.ep.seed = (uint64_t)cli_int(a, "seed");
    j.ep.force = cli_flag(a, "force");
    j.ep.batch_size = j.rb ? (size_t)cli_int(a, "concurrency") : 1;   /* remote: rows in flight */
    j.ep.progress = !a->quiet;
    tw_eval_result res;
    memset(&res, 0, sizeof res);
    double primary = NAN;
    if (!st && n_sets > 1) {
        /* demonstration-set search on dev */
        search = json_pack("{s:s, s:i, s:[]}", "split", "dev", "n_sets", n_sets, "sets");
        double best = -INFINITY, sum = 0, sum2 = 0, lo = INFINITY, hi = -INFINITY;
        uint64_t best_seed = pp.prompt.seed;
        const uint64_t base = pp.prompt.seed;
        for (int i = 0; !st && i < n_sets; i++) {
            tw_prompt_arm_params q = pp;
            q.prompt.seed = tw_prompt_demo_seed(base, (size_t)i);
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/search/set-%d", out, i);
            json_t *m = NULL;
            double v;
            if ((st = run_one(&j, &q, TW_SPLIT_DEV, dir, &m, &v, &res, &err))) break;
            json_decref(m);
            fprintf(stderr, "demo set %d (seed %llu): dev %s = %.4f\n", i, (unsigned long long)q.prompt.seed, t.metric,
                    v);
            json_array_append_new(json_object_get(search, "sets"),
                                  json_pack("{s:i, s:I, s:f, s:s}", "set", i, "seed", (json_int_t)q.prompt.seed,
                                            "value", v, "dir", dir));
            sum += v;
            sum2 += v * v;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
            if (v > best) {
                best = v;
                best_seed = q.prompt.seed;
            }
        }
        if (!st) {
            const double mean = sum / n_sets, sd = sqrt(fmax(0, (sum2 - n_sets * mean * mean) / (n_sets - 1)));
            json_object_set_new(search, "metric", json_string(t.metric));
            json_object_set_new(search, "mean", json_real(mean));
            json_object_set_new(search, "sd", json_real(sd));
            json_object_set_new(search, "min", json_real(lo));
            json_object_set_new(search, "max", json_real(hi));
            json_object_set_new(search, "best_seed", json_integer((json_int_t)best_seed));
            char path[4096];
            snprintf(path, sizeof path, "%s/search.json", out);
            char *text = json_dumps(search, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
            st = text ? tw_file_write_atomic(path, text, strlen(text), &err) : TW_ERR_NOMEM;
            free(text);
            fprintf(stderr, "demo sets on dev: %s mean %.4f, sd %.4f, range [%.4f, %.4f]; best seed %llu\n", t.metric,
                    mean, sd, lo, hi, (unsigned long long)best_seed);
            pp.prompt.seed = best_seed;
        }
    }
    if (!st) st = run_one(&j, &pp, split, out, &metrics, &primary, &res, &err);
    if (!st) {
        if (cli_flag(a, "json")) {
            cli_print_json(metrics);
        } else {
            char strat[64];
            tw_prompt_strategy_str(&pp.prompt, strat, sizeof strat);
            printf("prompt arm %s/%s on the %s split of %s (%zu rows", strat, tw_output_mode_str(pp.prompt.output),
                   tw_split_name((tw_split_id)split), t.name ? t.name : t.path, res.n_rows);
            if (res.n_resumed) printf("; %zu resumed", res.n_resumed);
            if (j.cache) printf("; cache %zu hits, %zu misses", res.cache_hits, res.cache_misses);
            if (j.be) {
                tw_local_stats ls = tw_local_get_stats(j.be);
                printf("; prefix cache %lld/%lld requests", (long long)ls.prefix_hits, (long long)ls.requests);
            }
            if (j.rb) {
                tw_remote_stats rs = tw_remote_get_stats(j.rb);
                printf("; %lld HTTP attempts, %lld retries", (long long)rs.attempts, (long long)rs.retries);
            }
            printf(")\n");
            tw_buf tb = {0};
            if (tw_score_format_table(metrics, &tb) == TW_OK && tb.data) fputs(tb.data, stdout);
            tw_buf_free(&tb);
            printf("wrote %s/{predictions.jsonl,metrics.json,run.json}%s\n", out, n_sets > 1 ? " and search.json" : "");
        }
    }
    json_decref(metrics);
    json_decref(search);
    json_decref(schema);
    tw_local_free(j.be);
    tw_lora_free(j.lora);
    tw_remote_free(j.rb);
    tw_chat_template_free(j.tmpl);
    tw_cache_close(j.cache);
    tw_labels_free(labels, n_labels);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_prompt = {
    .name = "prompt",
    .summary = "run the prompt arm (zero/kshot/knn/cot/rag x free/choice/score/json) on a local model",
    .usage = "--task TASK -m MODEL [--remote URL [--api-key-env NAME]] [--strategy S] [--k K] [--output MODE] -o DIR [options]",
    .details = "Builds each example's prompt from the task (instructions, labels or schema) and its train\n"
               "split, runs it on the model with the shared prefix computed once, parses the answers and\n"
               "scores them. predictions.jsonl keeps the exact prompt of every row. Resumable like\n"
               "'tunewise eval'; --cache makes re-runs free. With --remote the model is served by an\n"
               "OpenAI-compatible server (tunewise serve, vLLM, llama-server, a provider): chat completions\n"
               "for free/json/choice, /v1/completions with echoed log-probs for score (render its prompt\n"
               "with --chat-template NAME for chat models). Details: docs/prompt.md, docs/eval.md, docs/remote.md.",
    .opts = OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run,
};
