/* dataset.h — labeled examples, the readers that stream them from JSONL / CSV /
 * chat JSONL files, the writers, and in-memory datasets.
 * Deliberately not here: task files (task.h), splitting (split.h), audit (audit.h).
 * File formats and every error message: docs/data-formats.md. */
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
                          first reference for generate; NULL when the file has none.
                          Non-string JSON values are converted: numbers/booleans to their
                          text, objects/arrays to compact JSON text. */
    char **refs;       /* all references (generate tasks with a `references` list); may be NULL */
    size_t n_refs;
    char *slice;       /* from `slice` (or first of `tags`), else NULL */
    char *system;      /* chat files: system message(s), else NULL */
    json_t *extra;     /* other fields of the row, kept verbatim (owned ref); may be NULL.
                          CSV: other columns as strings. Chat: other top-level keys, plus
                          "messages" (the turns before the answer) for multi-turn rows. */
    size_t line;       /* 1-based source line (CSV: record's first line) */
} tw_example;

void tw_example_free(tw_example *ex);   /* frees members, not ex itself; zeroes ex */
/* Deep copy (extra is ref-counted). dst is overwritten (not freed first). */
tw_status tw_example_copy(tw_example *dst, const tw_example *src, tw_error *err);

typedef enum tw_format {
    TW_FORMAT_AUTO = 0,  /* .csv → CSV; else sniffed from the first non-blank line: chat when
                            it is an object with "messages" and no input field, JSONL when it
                            starts with '{' or the file is .jsonl/.json/.ndjson, else CSV */
    TW_FORMAT_JSONL,
    TW_FORMAT_CSV,
    TW_FORMAT_CHAT       /* {"messages":[{"role":...,"content":...}, ...]} per line */
} tw_format;
const char *tw_format_str(tw_format f);              /* "auto", "jsonl", "csv", "chat" */
/* Parse a format name; returns false when unknown. */
bool tw_format_parse(const char *s, tw_format *out);

/* Which fields hold what. Defaults: id, input, output, references, slice (falls back to
 * the first string of a `tags` list when the slice field is absent). */
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
    tw_fields fields;       /* borrowed during tw_reader_open only (the reader copies them);
                               NULL members take the default name */
    size_t max_line;        /* longest accepted line / CSV record in bytes; 0 = TW_MAX_LINE_DEFAULT */
    bool require_output;    /* error when a row has no output (nor references) */
} tw_reader_params;
tw_reader_params tw_reader_default_params(void);

/* Streaming reader: memory stays flat regardless of file size (one line / CSV record and
 * one example at a time). Path "-" reads stdin (format AUTO then means JSONL). */
typedef struct tw_reader tw_reader;
tw_status tw_reader_open(tw_reader **out, const char *path, const tw_reader_params *p, tw_error *err);
/* TW_OK and *ex filled (borrowed: valid until the next call or tw_reader_free), TW_DONE at
 * end, or an error whose message starts with "path:line: " (CSV: "path:line:col: " where a
 * column is known). Blank lines are skipped. After an error the reader must be freed. */
tw_status tw_reader_next(tw_reader *r, const tw_example **ex, tw_error *err);
/* The format in use: never TW_FORMAT_AUTO after a successful open. */
tw_format tw_reader_format(const tw_reader *r);
/* Bytes the reader holds in its buffers (line buffer, CSV record, field offsets). Stays
 * bounded by the longest line/record, not the file size; tests use it to prove streaming. */
size_t tw_reader_mem(const tw_reader *r);
void tw_reader_free(tw_reader *r);

/* In-memory dataset (owns its examples). Zero-initialise before first use. */
typedef struct tw_dataset {
    tw_example *rows;
    size_t n, cap;
    char *path;        /* source file (may be NULL for derived sets) */
} tw_dataset;

/* Load a whole file. Errors: anything tw_reader_next reports, and "path: no examples" for a
 * file without rows. Duplicate ids are a warning (tw_log TW_LOG_WARN,
 * "path:line: duplicate id 'x' (first seen at line N)"), not an error. */
tw_status tw_dataset_load(tw_dataset *ds, const char *path, const tw_reader_params *p, tw_error *err);
/* Append a deep copy. */
tw_status tw_dataset_push(tw_dataset *ds, const tw_example *ex, tw_error *err);
void tw_dataset_free(tw_dataset *ds);   /* frees members and zeroes; ds itself may be stack */

/* Sorted, de-duplicated outputs of the rows that have one (the label set of a classify
 * dataset). *labels is a heap array of heap strings; free with tw_labels_free. */
tw_status tw_dataset_labels(const tw_dataset *ds, char ***labels, size_t *n, tw_error *err);
void tw_labels_free(char **labels, size_t n);

/* Writers (atomic: temp file + rename on close). format: JSONL, CSV or CHAT (AUTO picks by
 * extension like the reader, .csv → CSV, else JSONL). fields may be NULL (defaults).
 *  JSONL: {"id","input","output","references","slice","system", then extra's keys} (absent
 *         members omitted; output is always written as a string).
 *  CSV:   header id,input,output[,references][,slice] from the first row written; references
 *         as a JSON list; extra is not written.
 *  CHAT:  {"id":..,"messages":[system?, user turn(s), assistant?]} — the OpenAI fine-tuning
 *         shape. The system message is ex->system, else the writer's default system. */
typedef struct tw_writer tw_writer;
tw_status tw_writer_open(tw_writer **out, const char *path, tw_format format, const tw_fields *fields, tw_error *err);
/* Chat writer: system prompt for rows without ex->system (e.g. the task's instructions).
 * Copied. Ignored by the other formats. */
tw_status tw_writer_set_system(tw_writer *w, const char *system, tw_error *err);
tw_status tw_writer_write(tw_writer *w, const tw_example *ex, tw_error *err);
tw_status tw_writer_close(tw_writer *w, tw_error *err);   /* commits; frees w */
void tw_writer_abort(tw_writer *w);                        /* discards; frees w; NULL ok */
/* Convenience: write every row of ds. */
tw_status tw_dataset_write(const tw_dataset *ds, const char *path, tw_format format,
                           const tw_fields *fields, tw_error *err);

#endif /* TW_TASK_DATASET_H */
