/* main.c — `tunewise <command> [options]`: global options, dispatch, the option
 * parser driven by each command's table, help text, and error reporting.
 * Deliberately not here: any command's logic (cmd_*.c). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TW_GIT_COMMIT
#define TW_GIT_COMMIT "unknown"
#endif

static const cli_cmd *const COMMANDS[] = {
    &cmd_audit, &cmd_classic_train, &cmd_classic_eval, &cmd_eval, &cmd_prompt, &cmd_tune, &cmd_lora_merge, &cmd_verdict, &cmd_decide, &cmd_score, &cmd_split, &cmd_validate, &cmd_convert,
    &cmd_model_info, &cmd_model_init,
    &cmd_tokenize,
    &cmd_run, &cmd_bench, &cmd_serve, &cmd_report, &cmd_gate, &cmd_history, &cmd_review_export, &cmd_review_import,
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

/* ---- lookups ----------------------------------------------------------- */
static int opt_index(const cli_cmd *cmd, const char *name)
{
    for (int i = 0; cmd->opts && cmd->opts[i].name; i++)
        if (strcmp(cmd->opts[i].name, name) == 0) return i;
    return -1;
}

const char *cli_str(const cli_args *a, const char *name)
{
    int i = opt_index(a->cmd, name);
    if (i < 0) return NULL;
    return a->val[i] ? a->val[i] : a->cmd->opts[i].def;
}

bool cli_given(const cli_args *a, const char *name)
{
    int i = opt_index(a->cmd, name);
    return i >= 0 && a->val[i] != NULL;
}

bool cli_flag(const cli_args *a, const char *name) { return cli_given(a, name); }

size_t cli_list(const cli_args *a, const char *name, const char **out, size_t cap)
{
    int idx = opt_index(a->cmd, name);
    size_t n = 0;
    for (int i = 0; idx >= 0 && i < a->nlist && n < cap; i++)
        if (a->list_opt[i] == idx) out[n++] = a->list_val[i];
    return n;
}

long cli_int(const cli_args *a, const char *name)
{
    const char *s = cli_str(a, name);
    return s ? strtol(s, NULL, 10) : 0;
}

double cli_num(const cli_args *a, const char *name)
{
    const char *s = cli_str(a, name);
    return s ? strtod(s, NULL) : 0.0;
}

/* ---- help -------------------------------------------------------------- */
static void print_usage_line(const cli_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: tunewise %s %s\n", cmd->name, cmd->usage ? cmd->usage : "");
}

void cli_print_help(const cli_cmd *cmd, FILE *out)
{
    print_usage_line(cmd, out);
    fprintf(out, "\n%s\n", cmd->summary);
    if (cmd->details) fprintf(out, "\n%s\n", cmd->details);
    fprintf(out, "\noptions:\n");
    for (int i = 0; cmd->opts && cmd->opts[i].name; i++) {
        const cli_opt *o = &cmd->opts[i];
        char left[64];
        if (o->shortc)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->shortc, o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(out, "  %-28s %s%s", left, o->help, o->kind == CLI_LIST ? " (repeatable)" : "");
        if (o->def) fprintf(out, " (default: %s)", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
}

static void print_main_help(FILE *out)
{
    fprintf(out,
            "tunewise %s — should you prompt a model, fine-tune a smaller one, or neither?\n\n"
            "usage: tunewise <command> [options]\n"
            "       tunewise help <command>\n\n"
            "commands:\n",
            TW_VERSION_STRING);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-16s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
    fprintf(out,
            "\nglobal options (before or after the command):\n"
            "  -q, --quiet      no progress output on stderr\n"
            "  -v, --verbose    more log output on stderr\n"
            "      --version    print version and exit\n\n"
            "exit codes: 0 ok, 1 gate failure/regression, 2 bad input or usage, 3 runtime error\n"
            "docs: docs/cli.md\n");
}

int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd) {
        fprintf(stderr, "tunewise %s: %s\n", cmd->name, msg);
        print_usage_line(cmd, stderr);
        fprintf(stderr, "(see 'tunewise help %s')\n", cmd->name);
    } else {
        fprintf(stderr, "tunewise: %s\n", msg);
        fprintf(stderr, "usage: tunewise <command> [options]   (see 'tunewise help')\n");
    }
    return EXIT_USAGE;
}

int cli_exit_code(tw_status s)
{
    switch (s) {
    case TW_OK: case TW_DONE: return EXIT_OK;
    case TW_ERR_IO: case TW_ERR_PARSE: case TW_ERR_INVALID: case TW_ERR_UNSUPPORTED: return EXIT_USAGE;
    default: return EXIT_RUNTIME;
    }
}

int cli_fail(const tw_error *err)
{
    fprintf(stderr, "tunewise: error: %s\n", err->msg[0] ? err->msg : tw_status_str(err->status));
    return cli_exit_code(err->status ? err->status : TW_ERR_RUNTIME);
}

void cli_print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
}

/* ---- logging hook ------------------------------------------------------ */
static void log_stderr(tw_log_level level, const char *msg, void *user)
{
    int min = *(const int *)user;
    if ((int)level < min) return;
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "tunewise: %s: %s\n", names[level], msg);
}

/* ---- parsing ----------------------------------------------------------- */
static bool check_value(const cli_cmd *cmd, const cli_opt *o, const char *v)
{
    char *end;
    errno = 0;
    if (o->kind == CLI_INT) {
        (void)strtol(v, &end, 10);
        if (*v == '\0' || *end || errno) {
            cli_usage_error(cmd, "--%s expects an integer, got '%s'", o->name, v);
            return false;
        }
    } else if (o->kind == CLI_NUM) {
        (void)strtod(v, &end);
        if (*v == '\0' || *end || errno) {
            cli_usage_error(cmd, "--%s expects a number, got '%s'", o->name, v);
            return false;
        }
    }
    return true;
}

/* Returns -1 on success, or an exit code. */
static int parse_args(cli_args *a, int argc, char **argv)
{
    const cli_cmd *cmd = a->cmd;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!only_pos && strcmp(s, "--") == 0) { only_pos = true; continue; }
        if (only_pos || s[0] != '-' || s[1] == '\0') {
            if (a->npos >= CLI_MAX_POS) return cli_usage_error(cmd, "too many arguments");
            a->pos[a->npos++] = s;
            continue;
        }
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            cli_print_help(cmd, stdout);
            return EXIT_OK;
        }
        if (strcmp(s, "-q") == 0 || strcmp(s, "--quiet") == 0) { a->quiet = true; continue; }
        if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) { a->verbose++; continue; }
        int idx = -1;
        const char *inline_val = NULL;
        if (s[1] == '-') {
            const char *name = s + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (int k = 0; cmd->opts && cmd->opts[k].name; k++)
                if (strlen(cmd->opts[k].name) == len && strncmp(cmd->opts[k].name, name, len) == 0) idx = k;
            if (eq) inline_val = eq + 1;
        } else if (s[2] == '\0') {
            for (int k = 0; cmd->opts && cmd->opts[k].name; k++)
                if (cmd->opts[k].shortc == s[1]) idx = k;
        }
        if (idx < 0) return cli_usage_error(cmd, "unknown option '%s'", s);
        const cli_opt *o = &cmd->opts[idx];
        if (o->kind == CLI_FLAG) {
            if (inline_val) return cli_usage_error(cmd, "--%s takes no value", o->name);
            a->val[idx] = "1";
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) return cli_usage_error(cmd, "option --%s needs a value (%s)", o->name, o->metavar ? o->metavar : "VALUE");
            v = argv[++i];
        }
        if (!check_value(cmd, o, v)) return EXIT_USAGE;
        a->val[idx] = v;
        if (o->kind == CLI_LIST) {
            if (a->nlist >= CLI_MAX_LIST) return cli_usage_error(cmd, "too many --%s values (at most %d)", o->name, CLI_MAX_LIST);
            a->list_opt[a->nlist] = idx;
            a->list_val[a->nlist++] = v;
        }
    }
    if (a->npos < cmd->min_pos) return cli_usage_error(cmd, "missing argument (%s)", cmd->usage);
    if (a->npos > cmd->max_pos) return cli_usage_error(cmd, "unexpected argument '%s'", a->pos[cmd->max_pos]);
    return -1;
}

static const cli_cmd *find_command(int argc, char **argv, int *consumed)
{
    /* two-word commands first ("classic train"), then one-word */
    if (argc >= 2) {
        char two[128];
        snprintf(two, sizeof two, "%s %s", argv[0], argv[1]);
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (strcmp(COMMANDS[i]->name, two) == 0) { *consumed = 2; return COMMANDS[i]; }
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i]->name, argv[0]) == 0) { *consumed = 1; return COMMANDS[i]; }
    return NULL;
}

/* Names of the subcommands of a group ("classic" → "train, eval"), or 0 when none. */
static int list_group(const char *group, char *out, size_t n)
{
    size_t gl = strlen(group);
    int found = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *nm = COMMANDS[i]->name;
        if (strncmp(nm, group, gl) == 0 && nm[gl] == ' ') {
            size_t used = strlen(out);
            snprintf(out + used, n - used, "%s%s", found ? ", " : "", nm + gl + 1);
            found++;
        }
    }
    return found;
}

int main(int argc, char **argv)
{
    static int log_min = TW_LOG_INFO;
    tw_log_set_hook(log_stderr, &log_min);
    /* global options before the command: move them after it (parse_args handles them) */
    bool pre_quiet = false;
    int pre_verbose = 0;
    while (argc >= 2 && (strcmp(argv[1], "-q") == 0 || strcmp(argv[1], "--quiet") == 0 ||
                         strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--verbose") == 0)) {
        if (argv[1][1] == 'q' || argv[1][2] == 'q') pre_quiet = true;
        else pre_verbose++;
        argv++;
        argc--;
    }
    if (argc < 2) {
        print_main_help(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("tunewise %s (commit %s)\n", TW_VERSION_STRING, TW_GIT_COMMIT);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        print_main_help(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc < 3) {
            print_main_help(stdout);
            return EXIT_OK;
        }
        int used;
        const cli_cmd *c = find_command(argc - 2, argv + 2, &used);
        if (!c) {
            char subs[256];
            if (list_group(argv[2], subs, sizeof subs)) {
                printf("tunewise %s: subcommands: %s (see 'tunewise help %s <subcommand>')\n", argv[2], subs, argv[2]);
                return EXIT_OK;
            }
            return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
        }
        cli_print_help(c, stdout);
        return EXIT_OK;
    }
    int used = 0;
    const cli_cmd *cmd = find_command(argc - 1, argv + 1, &used);
    if (!cmd) {
        char subs[256];
        if (list_group(argv[1], subs, sizeof subs))
            return cli_usage_error(NULL, "'%s' needs a subcommand: %s", argv[1], subs);
        return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    }
    cli_args a;
    memset(&a, 0, sizeof a);
    a.cmd = cmd;
    a.quiet = pre_quiet;
    a.verbose = pre_verbose;
    int rc = parse_args(&a, argc - 1 - used, argv + 1 + used);
    if (rc >= 0) return rc;
    log_min = a.quiet ? TW_LOG_WARN : (a.verbose ? TW_LOG_DEBUG : TW_LOG_INFO);
    return cmd->run(&a);
}
