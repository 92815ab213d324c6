/* task.h — the task file (task.yaml): what the user wants to learn, where the data
 * is, how to score it, and what calls cost. Parsed with libyaml and validated
 * strictly: unknown keys and wrong types are errors with "file:line:column: ...".
 * Deliberately not here: reading the data (dataset.h) or splitting it (split.h). */
#ifndef TW_TASK_TASK_H
#define TW_TASK_TASK_H

#include "task/dataset.h"

typedef enum tw_task_type {
    TW_TASK_CLASSIFY = 0,
    TW_TASK_EXTRACT,
    TW_TASK_GENERATE
} tw_task_type;
const char *tw_task_type_str(tw_task_type t);          /* "classify", "extract", "generate" */
bool tw_task_type_parse(const char *s, tw_task_type *out);   /* false when unknown */

/* Metric names a task type accepts (NULL-terminated); the first is the default.
 *   classify: accuracy, macro_f1, micro_f1, weighted_f1            (fractions 0..1)
 *   extract:  field_f1, exact_match, json_valid, schema_valid      (fractions 0..1)
 *   generate: bleu, chrf (0..100, sacreBLEU scale), rouge_l, rouge_1, rouge_2, token_f1,
 *             exact_match (fractions 0..1) */
const char *const *tw_task_metrics(tw_task_type t);
bool tw_task_metric_ok(tw_task_type t, const char *metric);

typedef enum tw_split_id { TW_SPLIT_TRAIN = 0, TW_SPLIT_DEV = 1, TW_SPLIT_TEST = 2, TW_SPLIT_COUNT = 3 } tw_split_id;
const char *tw_split_name(tw_split_id s);

typedef struct tw_price {
    char *model;              /* model/arm name this price applies to */
    double input_per_mtok;    /* USD per 1M input tokens */
    double output_per_mtok;   /* USD per 1M output tokens */
    double per_hour;          /* USD per machine-hour (self-hosted) */
} tw_price;

typedef struct tw_task {
    char *path;               /* the task file (absolute or as given) */
    char *dir;                /* its directory: relative data paths resolve against it */
    char *name;
    tw_task_type type;
    char *data[TW_SPLIT_COUNT];   /* `data: {train, dev, test}`, resolved; NULL when absent */
    char *data_all;           /* `data: file` (single file to split into all three), else NULL;
                                 then data[] is all NULL. Use tw_split_task (split.h) to get
                                 the three splits in every case. */
    tw_format format;
    tw_fields fields;         /* strings owned by the task */
    char **labels;            /* label set; n_labels == 0 means infer from train */
    size_t n_labels;
    char *instructions;       /* system prompt (trailing newlines dropped); may be NULL */
    char *schema_path;        /* extract: JSON Schema file (resolved), may be NULL */
    char *metric;             /* primary metric name (tw_task_metrics); never NULL after load */
    double target;            /* target value of the primary metric, NAN when absent */
    double monthly_volume;    /* expected calls per month, NAN when absent */
    tw_price *prices;
    size_t n_prices;
    /* split settings when the task gives one data file (or no dev / no test file):
     * fractions of the file that is carved (see docs/task-file.md, `split`) */
    uint64_t seed;            /* default 1 */
    double dev_fraction;      /* default 0.1 */
    double test_fraction;     /* default 0.2 */
} tw_task;

/* Parse and validate a task file. On error the message is "path:line:col: ..." (or
 * "path: ..." when there is no position) and *task is left zeroed. Checks: YAML syntax, one
 * document, unknown / duplicate / missing keys, value types, enum values, that the metric
 * belongs to the type, labels only for classify, schema only for extract (and is a JSON
 * object), data and schema files exist. Relative paths resolve against the file's dir. */
tw_status tw_task_load(tw_task *task, const char *path, tw_error *err);
/* Frees every owned member (all strings, fields.* included) and zeroes; NULL ok. */
void tw_task_free(tw_task *task);

/* Reader params for this task's data files: its format and field names (borrowed from the
 * task), the default max line, require_output = true. */
tw_reader_params tw_task_reader_params(const tw_task *task);

#endif /* TW_TASK_TASK_H */
