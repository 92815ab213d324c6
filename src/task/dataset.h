/* dataset.h — labeled examples, the readers that stream them from JSONL / CSV /
 * chat JSONL files, the writers, and in-memory datasets.
 * Deliberately not here: task files (task.h), splitting (split.h), audit (audit.h). */
#ifndef TW_TASK_DATASET_H
#define TW_TASK_DATASET_H

#include "tunewise.h"
#include "base/base.h"

#include <jansson.h>

/* One labeled example. Strings are UTF-8 (validated by the readers). */
typedef struct tw_example {
    char *id;          /* from the id field, else "<file basename>:<line>" */
    char *input;       /* model input text (for chat files: the rendered user turn(s)) */
    char *output;      /* reference output: label for classify, JSON text for extract,
                          first reference for generate; NULL when the file has none */
    char **refs;       /* all references (generate tasks with a `references` list); may be NULL */
    size_t n_refs;
    char *slice;       /* from `slice` (or first of `tags`), else NULL */
    char *system;      /* chat files: system message, else NULL */
    json_t *extra;     /* other fields of the row, kept verbatim (owned ref); may be NULL */
    size_t line;       /* 1-based source line (CSV: record's first line) */
} tw_example;

void tw_example_free(tw_example *ex);   /* frees members, not ex itself */
/* Deep copy (extra is ref-counted). */
tw_status tw_example_copy(tw_example *dst, const tw_example *src, tw_error *err);

typedef enum tw_format {
    TW_FORMAT_AUTO = 0,  /* by extension: .jsonl/.json → JSONL (chat if rows have "messages"), .csv → CSV */
    TW_FORMAT_JSONL,
    TW_FORMAT_CSV,
    TW_FORMAT_CHAT       /* {"messages":[{"role":...,"content":...}, ...]} per line */
} tw_format;

/* Which fields hold what. Defaults: id, input, output, references, slice/tags. */
typedef struct tw_fields {
    const char *id;
    const char *input;
    const char *output;
    const char *references;
    const char *slice;
} tw_fields;
tw_fields tw_fields_default(void);

typedef struct tw_reader_params {
    tw_format format;
    tw_fields fields;
    size_t max_line;        /* default TW_MAX_LINE_DEFAULT */
    bool require_output;    /* error when a row has no output field */
} tw_reader_params;
tw_reader_params tw_reader_default_params(void);

/* Streaming reader: memory stays flat regardless of file size. */
typedef struct tw_reader tw_reader;
tw_status tw_reader_open(tw_reader **out, const char *path, const tw_reader_params *p, tw_error *err);
/* TW_OK and *ex filled (borrowed: valid until the next call), TW_DONE at end, or an
 * error whose message starts with "path:line: ". */
tw_status tw_reader_next(tw_reader *r, const tw_example **ex, tw_error *err);
tw_format tw_reader_format(const tw_reader *r);
void tw_reader_free(tw_reader *r);

/* In-memory dataset (owns its examples). */
typedef struct tw_dataset {
    tw_example *rows;
    size_t n, cap;
    char *path;        /* source file (may be NULL for derived sets) */
} tw_dataset;

tw_status tw_dataset_load(tw_dataset *ds, const char *path, const tw_reader_params *p, tw_error *err);
/* Append a deep copy. */
tw_status tw_dataset_push(tw_dataset *ds, const tw_example *ex, tw_error *err);
void tw_dataset_free(tw_dataset *ds);   /* frees members; ds itself may be stack */

/* Writers (atomic: temp file + rename on close). */
typedef struct tw_writer tw_writer;
tw_status tw_writer_open(tw_writer **out, const char *path, tw_format format, const tw_fields *fields, tw_error *err);
tw_status tw_writer_write(tw_writer *w, const tw_example *ex, tw_error *err);
tw_status tw_writer_close(tw_writer *w, tw_error *err);   /* commits; frees w */
void tw_writer_abort(tw_writer *w);                        /* discards; frees w */

#endif /* TW_TASK_DATASET_H */
