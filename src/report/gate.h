/* gate.h — the CI gate: checks one candidate arm (a run) against absolute thresholds
 * (minimum metric values, p95 latency and cost-per-call ceilings) and, optionally, against
 * a baseline run: a drop of the primary metric larger than max_drop is a regression only
 * when it is statistically significant — exact McNemar test on the paired per-item
 * correctness when both runs scored the same items (accuracy), else a two-sided z test
 * from the two CIs (unpaired, conservative) — unless `strict`, where any drop beyond
 * max_drop fails and minimum thresholds apply to the CI's lower bound.
 * Every check is reported with its numbers; the caller maps pass/fail to exit 0/1.
 * Deliberately not here: loading runs (report.c), argument parsing, exit codes. */
#ifndef TW_REPORT_GATE_H
#define TW_REPORT_GATE_H

#include "report/report.h"

#include <stdbool.h>

#define TW_GATE_MAX_MIN 16

typedef struct tw_gate_opts {
    const char *min_name[TW_GATE_MAX_MIN];  /* --min NAME=VALUE: metric >= VALUE */
    double min_value[TW_GATE_MAX_MIN];
    size_t n_min;
    double max_drop;            /* allowed drop of the primary metric vs the baseline (>= 0) */
    double max_p95_ms;          /* NAN: no check */
    double max_cost_per_call;   /* USD; NAN: no check */
    double alpha;               /* significance level of the drop test (e.g. 0.05) */
    bool strict;
} tw_gate_opts;

void tw_gate_default_opts(tw_gate_opts *o);   /* no thresholds, max_drop 0, alpha 0.05 */

typedef struct tw_gate_check {
    char name[96];          /* e.g. "min accuracy", "drop vs baseline", "p95 latency" */
    bool pass;
    char detail[512];       /* the numbers and the reason */
} tw_gate_check;

typedef struct tw_gate_result {
    tw_gate_check checks[TW_GATE_MAX_MIN + 8];
    size_t n;
    bool pass;              /* every check passed */
} tw_gate_result;

/* Run the checks. cand/base come from tw_report_add_run (base may be NULL: no baseline
 * check); the paired test reads both arms' run_dir/predictions.jsonl when available.
 * A --min metric the candidate lacks, or a threshold that is not finite, is bad input
 * (TW_ERR_INVALID); a failing check is not an error (res->pass false). */
tw_status tw_gate_run(const tw_rep_arm *cand, const tw_rep_arm *base, const tw_gate_opts *o, tw_gate_result *res,
                      tw_error *err);

/* Human-readable lines "PASS name: detail" / "FAIL ...", then the overall result. */
tw_status tw_gate_text(tw_buf *out, const tw_gate_result *res);
/* JUnit XML (one testsuite, one testcase per check, <failure> for failed ones). */
tw_status tw_gate_junit(tw_buf *out, const tw_gate_result *res, const char *suite);

/* Paired correctness of two runs over the same items (same ids, same order in
 * predictions.jsonl): b = base right & cand wrong, c = base wrong & cand right. Returns
 * TW_ERR_INVALID when the files do not pair up. A prediction is right when its parsed
 * answer (else the prediction) equals the reference exactly. */
tw_status tw_gate_paired_counts(const char *base_dir, const char *cand_dir, uint64_t *b, uint64_t *c, uint64_t *n,
                                double *base_acc, double *cand_acc, tw_error *err);

#endif /* TW_REPORT_GATE_H */
