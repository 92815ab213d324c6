/* history.h — the run history: a SQLite file that records every reported comparison
 * (task, arms with config/model/adapter/data hashes, metrics with CIs, cost, latency,
 * verdict, git commit, time), lists and reloads it, answers trend queries (one metric of
 * one arm over time), and renders a self-contained HTML dashboard with a trend chart per
 * task. Schema (version 1) in docs/reports.md; a newer schema is refused.
 * Deliberately not here: computing metrics (they come from a tw_report), the gate. */
#ifndef TW_REPORT_HISTORY_H
#define TW_REPORT_HISTORY_H

#include "report/report.h"

#include <stdint.h>

#define TW_HISTORY_SCHEMA 1

typedef struct tw_history tw_history;

/* Open (creating when absent) a history file. Refuses a non-SQLite file, a SQLite file
 * that is not a tunewise history, and a newer schema version, naming the path. */
tw_status tw_history_open(tw_history **out, const char *path, tw_error *err);
void tw_history_close(tw_history *h);   /* NULL-safe */

/* Record the report's arms as one history run (label: free text, e.g. the report title).
 * An arm already recorded (same predictions sha256, config hash and finish time) is not
 * recorded again; when every arm was, no run is added and *run_id is 0. */
tw_status tw_history_add(tw_history *h, const tw_report *r, const char *label, double now_unix, int64_t *run_id,
                         tw_error *err);

typedef struct tw_hist_run {
    int64_t id;
    double recorded_unix;
    char task[128];
    char label[256];
    char verdict[512];
    char git_commit[64];
    size_t n_arms;
} tw_hist_run;

/* All runs, oldest first; *out is heap (free()). */
tw_status tw_history_list(tw_history *h, tw_hist_run **out, size_t *n, tw_error *err);

/* Rebuild a recorded run as a report (arms with metrics, hashes, cost, verdict; no samples:
 * n_latency is 0). tw_report_init is called on r. Unknown id: TW_ERR_INVALID. */
tw_status tw_history_load(tw_history *h, int64_t run_id, tw_report *r, tw_error *err);

/* Latest recorded arm with this task and arm name, recorded before run `before_id`
 * (0: any); *run_id 0 when none. */
tw_status tw_history_find_arm(tw_history *h, const char *task, const char *arm, int64_t before_id, int64_t *run_id,
                              tw_error *err);

typedef struct tw_hist_point {
    int64_t run_id;
    double time;            /* the arm's finish time, else when it was recorded */
    double value, lo, hi;   /* lo/hi NAN when unknown */
} tw_hist_point;

/* One metric of one arm (by name) of a task (NULL or "": any task), oldest first. */
tw_status tw_history_trend(tw_history *h, const char *task, const char *arm, const char *metric,
                           tw_hist_point **out, size_t *n, tw_error *err);

/* Self-contained HTML dashboard: per task, the primary metric of every arm over the
 * recorded runs (trend lines) and the runs with their verdicts (changes marked). */
tw_status tw_history_dashboard(tw_history *h, tw_buf *out, tw_error *err);

#endif /* TW_REPORT_HISTORY_H */
