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
const char *tw_task_type_str(tw_task_type t);

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
    char *data[TW_SPLIT_COUNT];   /* resolved paths; NULL when absent */
    char *data_all;           /* `data: file` (single file to split), else NULL */
    tw_format format;
    tw_fields fields;         /* strings owned by the task */
    char **labels;            /* label set; n_labels == 0 means infer from train */
    size_t n_labels;
    char *instructions;       /* system prompt; may be NULL */
    char *schema_path;        /* extract: JSON Schema file, may be NULL */
    char *metric;             /* primary metric name, e.g. "accuracy", "macro_f1", "field_f1", "bleu" */
    double target;            /* target value of the primary metric, NAN when absent */
    double monthly_volume;    /* expected calls per month, NAN when absent */
    tw_price *prices;
    size_t n_prices;
    /* split settings when the task gives one data file (or only train + test) */
    uint64_t seed;            /* default 1 */
    double dev_fraction;      /* default 0.1 */
    double test_fraction;     /* default 0.2 */
} tw_task;

/* Parse and validate a task file. On error the message is "path:line:col: ...". */
tw_status tw_task_load(tw_task *task, const char *path, tw_error *err);
void tw_task_free(tw_task *task);

/* Reader params for this task's data files (format + field names). */
tw_reader_params tw_task_reader_params(const tw_task *task);

#endif /* TW_TASK_TASK_H */
