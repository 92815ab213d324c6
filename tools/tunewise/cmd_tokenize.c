/* cmd_tokenize.c — `tunewise tokenize --tokenizer FILE|MODEL TEXT|-`: show how a
 * tokenizer splits a text (ids, vocabulary strings and the bytes each token stands
 * for), or decode ids back to text with --decode. A debugging tool: the output is for
 * people, or for scripts with --json / --ids. */
#include "cli.h"
#include "model/chat.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"tokenizer", 't', CLI_STR, "FILE|MODEL", "tokenizer.json, a directory holding one, or a GGUF model", NULL},
    {"json", 0, CLI_FLAG, NULL, "print JSON: ids and one object per token", NULL},
    {"ids", 0, CLI_FLAG, NULL, "print only the ids, space-separated, on one line", NULL},
    {"no-special", 0, CLI_FLAG, NULL, "add no BOS/EOS and read special-token strings as plain text", NULL},
    {"no-bos", 0, CLI_FLAG, NULL, "add no BOS/EOS (special-token strings are still recognised)", NULL},
    {"strict-utf8", 0, CLI_FLAG, NULL, "reject invalid UTF-8 instead of replacing it with U+FFFD", NULL},
    {"decode", 'd', CLI_FLAG, NULL, "TEXT is a list of ids (spaces or commas): print the decoded text", NULL},
    {"skip-special", 0, CLI_FLAG, NULL, "with --decode: drop special tokens", NULL},
    {"chat", 'c', CLI_FLAG, NULL, "render TEXT as a user turn with the model's chat template first", NULL},
    {"system", 0, CLI_STR, "TEXT", "with --chat: a system message", NULL},
    {"chat-template", 0, CLI_STR, "FILE|NAME", "with --chat: Jinja file, tokenizer_config.json, or a built-in "
     "(chatml qwen3 llama3 llama3.1 llama2 mistral gemma zephyr)", NULL},
    {0},
};

static tw_status read_stdin(tw_buf *b, tw_error *err)
{
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (tw_buf_append(b, chunk, k)) return tw_error_set(err, TW_ERR_NOMEM, "out of memory reading stdin");
    if (ferror(stdin)) return tw_error_set(err, TW_ERR_IO, "stdin: read error");
    return TW_OK;
}

/* Quote bytes for a terminal: printable UTF-8 as is, escapes for the rest. */
static void print_quoted(const char *p, size_t n)
{
    putchar('\'');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c == '\'') fputs("\\'", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\x%02x", c);
        else if (c < 0x80) putchar(c);
        else {
            uint32_t cp;
            int k = tw_utf8_decode((const unsigned char *)p + i, n - i, &cp);
            if (cp == 0xFFFD && k == 1) printf("\\x%02x", c);
            else fwrite(p + i, 1, (size_t)k, stdout);
            i += (size_t)k;
            continue;
        }
        i++;
    }
    putchar('\'');
}

/* The chat template for --chat: --chat-template FILE|NAME, else the model's own (GGUF
 * tokenizer.chat_template, or tokenizer_config.json beside a tokenizer.json). */
static tw_status load_template(const char *tok_path, const char *override, tw_chat_template **out, tw_error *err)
{
    if (override) {
        if (tw_file_exists(override)) return tw_chat_template_load(out, override, err);
        return tw_chat_template_builtin(out, override, err);
    }
    tw_gguf *g = NULL;
    if (tw_gguf_open(&g, tok_path, err) == TW_OK) {
        tw_gguf_str src;
        tw_status st = tw_gguf_get_str(g, "tokenizer.chat_template", &src, err);
        if (st == TW_OK) {
            char *tmpl = tw_strndup(src.ptr, src.len, err);
            st = tmpl ? tw_chat_template_new(out, tmpl, err) : TW_ERR_NOMEM;
            free(tmpl);
        } else {
            tw_error_set(err, TW_ERR_INVALID, "%s has no tokenizer.chat_template: give --chat-template FILE|NAME", tok_path);
        }
        tw_gguf_free(g);
        return st;
    }
    /* a tokenizer.json (or its directory): look for tokenizer_config.json beside it */
    char cfg[4096];
    const char *slash = strrchr(tok_path, '/');
    bool is_dir = !strstr(tok_path, ".json");
    if (is_dir) snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", tok_path);
    else snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", slash ? (int)(slash - tok_path + 1) : 0, tok_path);
    if (!tw_file_exists(cfg))
        return tw_error_set(err, TW_ERR_INVALID, "no chat template for %s (looked for %s): give --chat-template FILE|NAME",
                            tok_path, cfg);
    return tw_chat_template_load(out, cfg, err);
}

static int run_decode(cli_args *a, const tw_tokenizer *t, const char *text, size_t len)
{
    tw_tok_ids ids = {0};
    tw_error err;
    tw_error_clear(&err);
    const char *p = text, *end = text + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '[' || *p == ']' || *p == '\r')) p++;
        if (p >= end) break;
        char *q;
        long v = strtol(p, &q, 10);
        if (q == p || v < 0 || v >= tw_tokenizer_n_vocab(t)) {
            tw_tok_ids_free(&ids);
            return cli_usage_error(a->cmd, "--decode: expected token ids in [0, %d), got '%.20s'", tw_tokenizer_n_vocab(t), p);
        }
        if (ids.n == ids.cap) {
            ids.cap = ids.cap ? 2 * ids.cap : 64;
            ids.v = realloc(ids.v, ids.cap * sizeof *ids.v);
            if (!ids.v) { fprintf(stderr, "tunewise: out of memory\n"); return EXIT_RUNTIME; }
        }
        ids.v[ids.n++] = (int32_t)v;
        p = q;
    }
    tw_buf out = {0};
    tw_status st = tw_detokenize(t, ids.v, ids.n, cli_flag(a, "skip-special") ? TW_DETOK_SKIP_SPECIAL : 0, &out, &err);
    tw_tok_ids_free(&ids);
    if (st) { tw_buf_free(&out); return cli_fail(&err); }
    if (cli_flag(a, "json")) {
        json_t *j = json_pack("{s:s%}", "text", out.data ? out.data : "", out.len);
        cli_print_json(j);
        json_decref(j);
    } else {
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
        putchar('\n');
    }
    tw_buf_free(&out);
    return EXIT_OK;
}

static int run(cli_args *a)
{
    const char *path = cli_str(a, "tokenizer");
    if (!path) return cli_usage_error(a->cmd, "--tokenizer FILE|MODEL is required");
    tw_error err;
    tw_error_clear(&err);
    tw_buf in = {0};
    const char *text = a->pos[0];
    size_t len;
    if (strcmp(text, "-") == 0) {
        if (read_stdin(&in, &err)) return cli_fail(&err);
        text = in.data ? in.data : "";
        len = in.len;
    } else {
        len = strlen(text);
    }
    tw_tokenizer *t = NULL;
    tw_status st = tw_tokenizer_load(&t, path, &err);
    if (st) {
        tw_buf_free(&in);
        return cli_fail(&err);
    }
    int rc;
    if (cli_flag(a, "decode")) {
        rc = run_decode(a, t, text, len);
        tw_tokenizer_free(t);
        tw_buf_free(&in);
        return rc;
    }
    unsigned flags = TW_TOK_DEFAULT;
    tw_buf chat = {0};
    if (cli_flag(a, "chat")) {
        /* Render like apply_chat_template(tokenize=True): the template writes any BOS
         * itself, so the tokenizer adds none; special-token strings are parsed. */
        tw_chat_template *ct = NULL;
        st = load_template(path, cli_str(a, "chat-template"), &ct, &err);
        tw_chat_msg msgs[2];
        size_t nm = 0;
        if (cli_given(a, "system")) msgs[nm++] = (tw_chat_msg){.role = "system", .content = cli_str(a, "system")};
        char *user = st ? NULL : tw_strndup(text, len, &err);
        msgs[nm++] = (tw_chat_msg){.role = "user", .content = user ? user : ""};
        size_t bl = 0, el = 0;
        const char *bos = tw_tokenizer_bos(t) >= 0 ? tw_token_text(t, tw_tokenizer_bos(t), &bl) : "";
        const char *eos = tw_tokenizer_eos(t) >= 0 ? tw_token_text(t, tw_tokenizer_eos(t), &el) : "";
        char *bos_s = tw_strndup(bos, bl, &err), *eos_s = tw_strndup(eos, el, &err);
        if (!st) st = tw_chat_render(ct, msgs, nm, true, bos_s, eos_s, &chat, &err);
        free(user); free(bos_s); free(eos_s);
        tw_chat_template_free(ct);
        if (st) {
            tw_buf_free(&chat);
            tw_tokenizer_free(t);
            tw_buf_free(&in);
            return cli_fail(&err);
        }
        text = chat.data ? chat.data : "";
        len = chat.len;
        flags = TW_TOK_PARSE_SPECIAL;
    }
    if (cli_flag(a, "no-special")) flags = 0;
    if (cli_flag(a, "no-bos")) flags &= ~(unsigned)TW_TOK_ADD_SPECIAL;
    if (cli_flag(a, "strict-utf8")) flags |= TW_TOK_STRICT_UTF8;
    tw_tok_ids ids = {0};
    st = tw_tokenize_append(t, text, len, flags, &ids, &err);
    if (st) {
        tw_tokenizer_free(t);
        tw_buf_free(&in);
        tw_buf_free(&chat);
        return cli_fail(&err);
    }
    if (cli_flag(a, "json")) {
        json_t *j = json_object();
        json_object_set_new(j, "tokenizer", json_string(path));
        json_object_set_new(j, "pre", json_string(tw_tokenizer_pre(t)));
        json_object_set_new(j, "n_vocab", json_integer(tw_tokenizer_n_vocab(t)));
        json_object_set_new(j, "n", json_integer((json_int_t)ids.n));
        json_t *arr = json_array(), *toks = json_array();
        for (size_t i = 0; i < ids.n; i++) {
            json_array_append_new(arr, json_integer(ids.v[i]));
            size_t tl, pl;
            const char *tx = tw_token_text(t, ids.v[i], &tl);
            const char *pc = tw_token_piece(t, ids.v[i], &pl);
            json_t *o = json_object();
            json_object_set_new(o, "id", json_integer(ids.v[i]));
            json_object_set_new(o, "text", tw_utf8_valid(tx, tl, NULL) ? json_stringn(tx, tl) : json_null());
            if (tw_utf8_valid(pc, pl, NULL)) {
                json_object_set_new(o, "piece", json_stringn(pc, pl));
            } else {   /* part of a multi-byte character: give the bytes */
                char hex[64];
                size_t h = 0;
                for (size_t k = 0; k < pl && h + 3 < sizeof hex; k++) h += (size_t)snprintf(hex + h, sizeof hex - h, "%02x", (unsigned char)pc[k]);
                json_object_set_new(o, "piece", json_null());
                json_object_set_new(o, "bytes", json_string(hex));
            }
            json_object_set_new(o, "special", json_boolean(tw_token_is_special(t, ids.v[i])));
            json_array_append_new(toks, o);
        }
        json_object_set_new(j, "ids", arr);
        json_object_set_new(j, "tokens", toks);
        cli_print_json(j);
        json_decref(j);
    } else if (cli_flag(a, "ids")) {
        for (size_t i = 0; i < ids.n; i++) printf("%s%d", i ? " " : "", ids.v[i]);
        putchar('\n');
    } else {
        for (size_t i = 0; i < ids.n; i++) {
            size_t pl;
            const char *pc = tw_token_piece(t, ids.v[i], &pl);
            printf("%8d  ", ids.v[i]);
            print_quoted(pc, pl);
            if (tw_token_is_special(t, ids.v[i])) fputs("  (special)", stdout);
            putchar('\n');
        }
        if (!a->quiet)
            fprintf(stderr, "tunewise: %zu tokens for %zu bytes (%s, %s, vocabulary %d)\n", ids.n, len,
                    tw_tokenizer_kind(t) == TW_TOK_BYTE_BPE ? "byte-level BPE" : "SentencePiece BPE", tw_tokenizer_pre(t),
                    tw_tokenizer_n_vocab(t));
    }
    tw_tok_ids_free(&ids);
    tw_tokenizer_free(t);
    tw_buf_free(&in);
    tw_buf_free(&chat);
    return EXIT_OK;
}

const cli_cmd cmd_tokenize = {
    .name = "tokenize",
    .summary = "show the token ids of a text (or decode ids) with a model's tokenizer",
    .usage = "--tokenizer FILE|MODEL [options] TEXT|-",
    .details = "TEXT '-' reads the text from stdin. By default the tokenizer adds what it adds for a\n"
               "model input (BOS for Llama 2 / SentencePiece models) and recognises special-token\n"
               "strings such as <|im_start|>; --no-special does neither. Each line of the default\n"
               "output is an id and the bytes it stands for. Invalid UTF-8 is replaced with U+FFFD\n"
               "(as Python's errors='replace') unless --strict-utf8. See docs/tokenizers.md.",
    .opts = OPTS,
    .min_pos = 1,
    .max_pos = 1,
    .run = run,
};
