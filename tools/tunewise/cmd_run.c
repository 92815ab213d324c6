/* cmd_run.c — `tunewise run -m MODEL -p TEXT`: generate a continuation (or, with --chat,
 * an assistant reply) with the in-process engine, streaming the text to stdout and the
 * statistics (prompt tokens, prefill and decode tokens/s, why it stopped) to stderr;
 * --json prints one JSON object instead. Deliberately not here: the engine (src/model/). */
#include "cli.h"
#include "backend/local.h"
#include "model/chat.h"
#include "model/llama.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"model", 'm', CLI_STR, "MODEL", "GGUF file or Hugging Face folder", NULL},
    {"prompt", 'p', CLI_STR, "TEXT", "the prompt ('-' reads stdin)", NULL},
    {"chat", 'c', CLI_FLAG, NULL, "render TEXT as a user turn with the model's chat template", NULL},
    {"system", 0, CLI_STR, "TEXT", "with --chat: a system message", NULL},
    {"chat-template", 0, CLI_STR, "FILE|NAME", "with --chat: Jinja file, tokenizer_config.json, or a built-in "
     "(chatml qwen3 llama3 llama3.1 llama2 mistral gemma zephyr)", NULL},
    {"n-predict", 'n', CLI_INT, "N", "tokens to generate at most", "64"},
    {"temp", 0, CLI_NUM, "T", "temperature; 0 = greedy", "0"},
    {"top-k", 0, CLI_INT, "K", "keep the K most likely tokens (0: off)", "40"},
    {"top-p", 0, CLI_NUM, "P", "nucleus sampling mass (1: off)", "0.95"},
    {"min-p", 0, CLI_NUM, "P", "drop tokens below P x the top probability (0: off)", "0.05"},
    {"repeat-penalty", 0, CLI_NUM, "X", "penalty for tokens of the last --repeat-last-n (1: off)", "1"},
    {"repeat-last-n", 0, CLI_INT, "N", "window of the repeat penalty (-1: all)", "64"},
    {"seed", 0, CLI_INT, "N", "random seed of the sampler", "0"},
    {"stop", 0, CLI_LIST, "STR", "stop when STR appears (may span tokens); a JSON array such as '[\"\\n\\n\", \"User:\"]' "
     "gives several", NULL},
    {"ignore-eos", 0, CLI_FLAG, NULL, "keep generating past the end-of-sequence token", NULL},
    {"no-bos", 0, CLI_FLAG, NULL, "raw prompts: add no BOS token even if the tokenizer would", NULL},
    {"ctx", 0, CLI_INT, "N", "KV cache size in tokens (0: prompt + n-predict)", "0"},
    {"kv-type", 0, CLI_STR, "TYPE", "KV cache element type: f16 or f32", "f16"},
    {"threads", 't', CLI_INT, "N", "threads (0: all cores)", "0"},
    {"json", 0, CLI_FLAG, NULL, "print one JSON object (text, tokens, stop reason, timings) instead of streaming", NULL},
    {0},
};

static bool stream_out(void *user, const char *text, size_t len)
{
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

static tw_status read_stdin(tw_buf *b, tw_error *err)
{
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (tw_buf_append(b, chunk, k)) return tw_error_set(err, TW_ERR_NOMEM, "out of memory reading stdin");
    if (ferror(stdin)) return tw_error_set(err, TW_ERR_IO, "stdin: read error");
    return TW_OK;
}

/* The chat template: --chat-template FILE|NAME, else the model's own (required here). */
static tw_status load_template(const tw_model_files *mf, const char *override, tw_chat_template **out, tw_error *err)
{
    tw_status st = tw_local_load_template(mf, override, out, err);
    if (!st && !*out)
        st = tw_error_set(err, TW_ERR_INVALID, "%s has no chat template: give --chat-template FILE|NAME",
                          tw_model_files_path(mf));
    return st;
}

/* Render the prompt as a user turn; the template writes BOS itself. */
static tw_status render_chat(const tw_model_files *mf, const tw_tokenizer *tok, const cli_args *a, const char *user,
                             tw_buf *out, tw_chat_template **ct_out, tw_error *err)
{
    tw_chat_template *ct = NULL;
    tw_status st = load_template(mf, cli_str(a, "chat-template"), &ct, err);
    if (st) return st;
    tw_chat_msg msgs[2];
    size_t nm = 0;
    if (cli_given(a, "system")) msgs[nm++] = (tw_chat_msg){.role = "system", .content = cli_str(a, "system")};
    msgs[nm++] = (tw_chat_msg){.role = "user", .content = user};
    size_t bl = 0, el = 0;
    const char *bos = tw_tokenizer_bos(tok) >= 0 ? tw_token_text(tok, tw_tokenizer_bos(tok), &bl) : "";
    const char *eos = tw_tokenizer_eos(tok) >= 0 ? tw_token_text(tok, tw_tokenizer_eos(tok), &el) : "";
    char *bos_s = tw_strndup(bos, bl, err), *eos_s = tw_strndup(eos, el, err);
    st = bos_s && eos_s ? tw_chat_render(ct, msgs, nm, true, bos_s, eos_s, out, err) : TW_ERR_NOMEM;
    free(bos_s);
    free(eos_s);
    if (st) {
        tw_chat_template_free(ct);
        return st;
    }
    *ct_out = ct;
    return TW_OK;
}

/* --stop (repeatable): each value is one string, or a JSON array of strings. Adds to
 * stops; strings are borrowed from the option values or from *j (which owns the parsed
 * arrays' strings; the caller decrefs it). */
static int parse_stops(const cli_args *a, json_t **j, const char **stops, size_t *n, size_t cap)
{
    const char *vals[CLI_MAX_LIST];
    size_t nv = cli_list(a, "stop", vals, CLI_MAX_LIST);
    for (size_t k = 0; k < nv; k++) {
        const char *s = vals[k];
        if (s[0] == '[') {
            json_error_t je;
            json_t *arr = json_loads(s, 0, &je);
            if (json_is_array(arr)) {
                if (!*j) *j = json_array();
                size_t i;
                json_t *v;
                json_array_foreach(arr, i, v) {
                    if (!json_is_string(v)) {
                        json_decref(arr);
                        return cli_usage_error(a->cmd, "--stop: the JSON array must hold strings");
                    }
                    json_array_append(*j, v);   /* keeps the string alive after arr is freed */
                    if (*n < cap) stops[(*n)++] = json_string_value(v);
                }
                json_decref(arr);
                continue;
            }
            json_decref(arr);   /* not a JSON array: a literal stop string */
        }
        if (*n < cap) stops[(*n)++] = s;
    }
    return -1;
}

static int run(cli_args *a)
{
    const char *path = cli_str(a, "model"), *prompt = cli_str(a, "prompt");
    if (!path) return cli_usage_error(a->cmd, "--model MODEL is required");
    if (!prompt) return cli_usage_error(a->cmd, "--prompt TEXT is required");
    long n_predict = cli_int(a, "n-predict"), ctx = cli_int(a, "ctx"), threads = cli_int(a, "threads");
    if (n_predict < 0 || n_predict > 1 << 20) return cli_usage_error(a->cmd, "--n-predict must be in 0..%d", 1 << 20);
    if (ctx < 0 || ctx > 1 << 24) return cli_usage_error(a->cmd, "--ctx must be in 0..%d", 1 << 24);
    const char *kvt = cli_str(a, "kv-type");
    if (strcmp(kvt, "f16") != 0 && strcmp(kvt, "f32") != 0) return cli_usage_error(a->cmd, "--kv-type must be f16 or f32");
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = (int32_t)n_predict;
    gp.ignore_eos = cli_flag(a, "ignore-eos");
    gp.sample.temperature = (float)cli_num(a, "temp");
    gp.sample.top_k = (int32_t)cli_int(a, "top-k");
    gp.sample.top_p = (float)cli_num(a, "top-p");
    gp.sample.min_p = (float)cli_num(a, "min-p");
    gp.sample.repeat_penalty = (float)cli_num(a, "repeat-penalty");
    gp.sample.repeat_last_n = (int32_t)cli_int(a, "repeat-last-n");
    gp.sample.seed = (uint64_t)cli_int(a, "seed");
    if (!(gp.sample.repeat_penalty > 0.0f)) return cli_usage_error(a->cmd, "--repeat-penalty must be positive");
    if (gp.sample.repeat_last_n < -1) return cli_usage_error(a->cmd, "--repeat-last-n must be -1 or more");
    const char *stops[64];
    size_t n_stops = 0;
    json_t *stop_json = NULL;
    int rc = parse_stops(a, &stop_json, stops, &n_stops, 48);
    if (rc >= 0) {
        json_decref(stop_json);
        return rc;
    }

    tw_error err;
    tw_error_clear(&err);
    tw_buf in = {0}, chat = {0};
    tw_llama *m = NULL;
    tw_tokenizer *tok = NULL;
    tw_chat_template *ct = NULL;
    tw_kv *kv = NULL;
    tw_tok_ids ids = {0};
    tw_gen_result res = {0};
    tw_status st = TW_OK;
    rc = EXIT_OK;
    if (strcmp(prompt, "-") == 0) {
        if ((st = read_stdin(&in, &err))) goto fail;
        prompt = in.data ? in.data : "";
    }
    tw_llama_params lp = tw_llama_default_params();
    lp.n_threads = (int)threads;
    double t_load = tw_now();
    if ((st = tw_llama_open(&m, path, &lp, &err))) goto fail;
    t_load = tw_now() - t_load;
    const tw_model_files *mf = tw_llama_files(m);
    if ((st = tw_local_load_tokenizer(mf, &tok, &err))) goto fail;
    const char *text = prompt;
    unsigned flags = TW_TOK_DEFAULT;
    if (cli_flag(a, "chat")) {
        if ((st = render_chat(mf, tok, a, prompt, &chat, &ct, &err))) goto fail;
        text = chat.data ? chat.data : "";
        flags = TW_TOK_PARSE_SPECIAL;
        for (const char *const *s = tw_chat_template_stops(ct); *s && n_stops < 64; s++) stops[n_stops++] = *s;
    }
    if (cli_flag(a, "no-bos")) flags &= ~(unsigned)TW_TOK_ADD_SPECIAL;
    if ((st = tw_tokenize_append(tok, text, strlen(text), flags, &ids, &err))) goto fail;
    if (ids.n == 0) {
        st = tw_error_set(&err, TW_ERR_INVALID, "the prompt gives no tokens");
        goto fail;
    }
    gp.stops = stops;
    gp.n_stops = n_stops;
    bool json = cli_flag(a, "json");
    if (!json) gp.on_text = stream_out;
    tw_kv_params kp = tw_kv_default_params();
    kp.n_seq = 1;
    kp.type = strcmp(kvt, "f32") == 0 ? TW_KV_F32 : TW_KV_F16;
    kp.n_cells = ctx > 0 ? (int32_t)ctx : (int32_t)ids.n + (int32_t)n_predict;
    if (kp.n_cells < (int32_t)ids.n) {
        st = tw_error_set(&err, TW_ERR_INVALID, "the prompt has %zu tokens but --ctx is %d", ids.n, kp.n_cells);
        goto fail;
    }
    if ((st = tw_kv_new(&kv, tw_llama_config(m), &kp, &err))) goto fail;
    if ((st = tw_generate(m, kv, 0, tok, ids.v, (int32_t)ids.n, &gp, &res, &err))) goto fail;

    int32_t n_fwd = res.n_gen > 0 ? res.n_gen - 1 : 0;   /* decode forwards after the first sampled token */
    double pp = res.t_prefill > 0 ? res.n_prompt / res.t_prefill : 0.0;
    double tg = res.t_decode > 0 && n_fwd > 0 ? n_fwd / res.t_decode : 0.0;
    if (json) {
        json_t *j = json_object(), *arr = json_array();
        for (size_t i = 0; i < res.ids.n; i++) json_array_append_new(arr, json_integer(res.ids.v[i]));
        json_object_set_new(j, "model", json_string(path));
        json_object_set_new(j, "text", json_stringn(res.text.data ? res.text.data : "", res.text.len));
        json_object_set_new(j, "tokens", arr);
        json_object_set_new(j, "prompt_tokens", json_integer(res.n_prompt));
        json_object_set_new(j, "generated_tokens", json_integer(res.n_gen));
        json_object_set_new(j, "stop", json_string(tw_stop_reason_name(res.stop)));
        json_object_set_new(j, "prefill_s", json_real(res.t_prefill));
        json_object_set_new(j, "decode_s", json_real(res.t_decode));
        json_object_set_new(j, "prefill_tok_s", json_real(pp));
        json_object_set_new(j, "decode_tok_s", json_real(tg));
        json_object_set_new(j, "seed", json_integer((json_int_t)gp.sample.seed));
        cli_print_json(j);
        json_decref(j);
    } else {
        putchar('\n');
        fflush(stdout);
    }
    if (!a->quiet)
        fprintf(stderr,
                "tunewise: load %.2f s; prompt %d tokens in %.3f s (%.1f tok/s); generated %d tokens, %d decode steps in "
                "%.3f s (%.1f tok/s); stop: %s\n",
                t_load, res.n_prompt, res.t_prefill, pp, res.n_gen, n_fwd, res.t_decode, tg, tw_stop_reason_name(res.stop));
    goto done;
fail:
    rc = cli_fail(&err);
done:
    tw_gen_result_free(&res);
    tw_tok_ids_free(&ids);
    tw_kv_free(kv);
    tw_chat_template_free(ct);
    tw_tokenizer_free(tok);
    tw_llama_free(m);
    tw_buf_free(&in);
    tw_buf_free(&chat);
    json_decref(stop_json);
    return rc;
}

const cli_cmd cmd_run = {
    .name = "run",
    .summary = "generate text with a local model (GGUF or Hugging Face folder)",
    .usage = "-m MODEL -p TEXT [options]",
    .details = "Streams the generated text to stdout; statistics go to stderr. Greedy by default\n"
               "(--temp 0), after --repeat-penalty; with --temp > 0 the sampler applies --top-k,\n"
               "--top-p, --min-p, then the temperature, and draws with --seed (docs/inference.md). With --chat\n"
               "the prompt becomes a user turn of the model's chat template and its end-of-turn\n"
               "strings are stop strings. Generation stops at EOS, a --stop string, or -n tokens.",
    .opts = OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run,
};
