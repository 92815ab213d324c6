/* cli.h — the command-line tool's shared pieces: the option table that drives both
 * parsing and `--help`, command registration, exit codes and output helpers.
 * Each command lives in its own cmd_<name>.c. The library never prints; this does. */
#ifndef TW_CLI_H
#define TW_CLI_H

#include "tunewise.h"
#include "base/base.h"

#include <jansson.h>
#include <stdbool.h>

/* Exit codes (DESIGN.md convention 6). */
enum { EXIT_OK = 0, EXIT_GATE = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

typedef enum cli_kind { CLI_FLAG, CLI_STR, CLI_INT, CLI_NUM, CLI_LIST /* repeatable string */ } cli_kind;

typedef struct cli_opt {
    const char *name;      /* long name without "--" */
    char shortc;           /* 0 when none */
    cli_kind kind;
    const char *metavar;   /* e.g. "FILE"; NULL for flags */
    const char *help;
    const char *def;       /* default shown in help and returned by cli_str; may be NULL */
} cli_opt;

#define CLI_MAX_OPTS 40
#define CLI_MAX_POS 16
#define CLI_MAX_LIST 32

struct cli_args;
typedef struct cli_cmd {
    const char *name;      /* "audit", "classic train" */
    const char *summary;   /* one line for `tunewise help` */
    const char *usage;     /* "TASK|DATA [options]" */
    const char *details;   /* paragraph(s) for `tunewise help <cmd>`; may be NULL */
    const cli_opt *opts;   /* terminated by {0} */
    int min_pos, max_pos;
    int (*run)(struct cli_args *a);
} cli_cmd;

typedef struct cli_args {
    const cli_cmd *cmd;
    const char *val[CLI_MAX_OPTS];   /* parsed value (or "1" for set flags), NULL when unset */
    const char *pos[CLI_MAX_POS];
    int npos;
    const char *list_val[CLI_MAX_LIST];  /* values of repeatable (CLI_LIST) options, in order */
    int list_opt[CLI_MAX_LIST];          /* the option index of each */
    int nlist;
    bool quiet;                      /* global -q */
    int verbose;                     /* global -v */
} cli_args;

/* Lookups by long name. Unset options return their default (may be NULL). */
const char *cli_str(const cli_args *a, const char *name);
bool cli_flag(const cli_args *a, const char *name);
long cli_int(const cli_args *a, const char *name);
double cli_num(const cli_args *a, const char *name);
bool cli_given(const cli_args *a, const char *name);
/* All values of a repeatable option, in command-line order; returns how many (<= cap). */
size_t cli_list(const cli_args *a, const char *name, const char **out, size_t cap);

/* Print "tunewise <cmd>: <msg>" plus the command's usage to stderr; returns EXIT_USAGE. */
int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_print_help(const cli_cmd *cmd, FILE *out);

/* Report a library error on stderr and map its status to an exit code. */
int cli_fail(const tw_error *err);
int cli_exit_code(tw_status s);

/* Print a JSON document to stdout (indented, key order kept) and a newline. */
void cli_print_json(const json_t *j);

/* The registry of commands (cmd_*.c each export one or more cli_cmd). */
extern const cli_cmd cmd_audit;
extern const cli_cmd cmd_score;
extern const cli_cmd cmd_classic_train;
extern const cli_cmd cmd_classic_eval;
extern const cli_cmd cmd_eval;
extern const cli_cmd cmd_prompt;
extern const cli_cmd cmd_serve;
extern const cli_cmd cmd_tune;
extern const cli_cmd cmd_lora_merge;
extern const cli_cmd cmd_verdict;
extern const cli_cmd cmd_decide;
extern const cli_cmd cmd_report;
extern const cli_cmd cmd_gate;
extern const cli_cmd cmd_history;
extern const cli_cmd cmd_review_export;
extern const cli_cmd cmd_review_import;
extern const cli_cmd cmd_split;
extern const cli_cmd cmd_convert;
extern const cli_cmd cmd_validate;
extern const cli_cmd cmd_model_info;
extern const cli_cmd cmd_model_init;
extern const cli_cmd cmd_tokenize;
extern const cli_cmd cmd_run;
extern const cli_cmd cmd_bench;

#include "task/task.h"

/* TASK|DATA arguments (cmd_common.c). The command's option table may offer
 * --type, --dev, --test, --input-field, --output-field for the DATA form.
 * Both return -1 on success (task filled; free with tw_task_free) or an exit code. */
bool cli_is_task_file(const char *path);
int cli_task_from_data(tw_task *t, const cli_args *a, const char *train, tw_error *err);
int cli_load_task_arg(tw_task *t, const cli_args *a, const char *arg, tw_error *err);

#endif /* TW_CLI_H */
