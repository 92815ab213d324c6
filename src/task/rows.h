/* rows.h — internal to src/task: the pieces the dataset reader (dataset.c) shares with
 * the CSV record parser (csv.c) and the chat-row converter (chat.c).
 * Not a public API: nothing outside src/task includes it. */
#ifndef TW_TASK_ROWS_H
#define TW_TASK_ROWS_H

#include "task/dataset.h"

/* Where a row came from, for messages and default ids. */
typedef struct tw_row_ctx {
    const char *path;       /* as given to the reader */
    const char *base;       /* basename of path, for default ids */
    size_t line;            /* 1-based line of the row */
    const tw_fields *fields;/* all members non-NULL */
    bool require_output;
} tw_row_ctx;

/* "string", "number", "object", ... for messages. */
const char *tw_json_kind(const json_t *v);

/* Text of a JSON output value: strings as is, integers/reals as their shortest round-trip
 * text, booleans "true"/"false", objects/arrays as compact JSON. NULL for json null.
 * Heap string in *out (NULL for null). */
tw_status tw_json_to_text(const json_t *v, char **out, tw_error *err);

/* Fill ex->id from root[fields->id] (string or integer) or the default "<base>:<line>",
 * and remove the key. */
tw_status tw_row_take_id(tw_example *ex, json_t *root, const tw_row_ctx *c, tw_error *err);
/* Remove root[key] and return it as a new reference (NULL when absent). */
json_t *tw_json_take(json_t *root, const char *key);
/* Set ex->extra = root when it still has members (steals the reference), else decref. */
void tw_row_keep_extra(tw_example *ex, json_t *root);

/* Convert one parsed chat row ({"messages":[...]}); steals root. */
tw_status tw_chat_row(tw_example *ex, json_t *root, const tw_row_ctx *c, tw_error *err);
/* Append one example to b as a chat row (no newline). */
tw_status tw_chat_row_text(tw_buf *b, const tw_example *ex, const char *default_system,
                           const char *path, tw_error *err);

/* ---- CSV (RFC 4180) ---------------------------------------------------- */
/* Incremental record parser over a line reader: a quoted field may span lines (the line
 * break inside it becomes "\n"). Memory: one record's bytes plus one offset per field. */
typedef struct tw_csv {
    tw_buf data;            /* fields, each NUL-terminated, back to back */
    size_t *off;            /* start of field i in data.data */
    size_t n, cap;          /* fields in the current record */
    size_t max_record;      /* bytes */
    size_t rec_line;        /* first line of the current record */
} tw_csv;

/* Read the next non-blank record. TW_OK, TW_DONE at end of file, or an error
 * "path:line[:col]: ..." (unterminated quote, text after a closing quote, invalid UTF-8,
 * record longer than max_record). */
tw_status tw_csv_next(tw_csv *c, tw_line_reader *lr, tw_error *err);
static inline const char *tw_csv_field(const tw_csv *c, size_t i) { return c->data.data + c->off[i]; }
static inline size_t tw_csv_field_len(const tw_csv *c, size_t i)
{
    return (i + 1 < c->n ? c->off[i + 1] : c->data.len) - 1 - c->off[i];
}
void tw_csv_free(tw_csv *c);
/* Append one field to b, quoted when it holds a comma, quote, CR or LF. */
tw_status tw_csv_put_field(tw_buf *b, const char *s);

#endif /* TW_TASK_ROWS_H */
