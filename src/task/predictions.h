/* predictions.h — the predictions file every arm writes and `tunewise score` reads:
 * one JSON object per line
 *   {"id", "input", "reference", "prediction", "parsed", "valid",
 *    "latency_ms", "tokens_in", "tokens_out", "cost"}
 * Only "id" and "prediction" are required when reading; numbers that are unknown are
 * written as absent and read as NAN. Deliberately not here: scoring (src/score/). */
#ifndef TW_TASK_PREDICTIONS_H
#define TW_TASK_PREDICTIONS_H

#include "base/base.h"

#include <stdbool.h>

typedef struct tw_pred {
    char *id;
    char *input;        /* may be NULL */
    char *reference;    /* may be NULL */
    char *prediction;   /* raw model output (never NULL after reading) */
    char *parsed;       /* normalized/parsed answer; NULL = same as prediction */
    bool valid;         /* the output had the expected format (default true) */
    double latency_ms, tokens_in, tokens_out, cost;   /* NAN when unknown */
    size_t line;        /* 1-based line in the file it was read from */
} tw_pred;

void tw_pred_init(tw_pred *p);          /* zero strings, NAN numbers, valid = true */
void tw_pred_free(tw_pred *p);          /* frees members */

typedef struct tw_pred_set {
    tw_pred *rows;
    size_t n, cap;
} tw_pred_set;

/* Read a whole predictions file. Errors name "path:line: ...". Duplicate ids are an error. */
tw_status tw_pred_load(tw_pred_set *out, const char *path, tw_error *err);
void tw_pred_set_free(tw_pred_set *s);

/* Streaming, atomic writer (temp file + rename at close). */
typedef struct tw_pred_writer tw_pred_writer;
tw_status tw_pred_writer_open(tw_pred_writer **out, const char *path, tw_error *err);
tw_status tw_pred_writer_write(tw_pred_writer *w, const tw_pred *p, tw_error *err);
tw_status tw_pred_writer_close(tw_pred_writer *w, tw_error *err);
void tw_pred_writer_abort(tw_pred_writer *w);

#endif
