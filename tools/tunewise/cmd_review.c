/* cmd_review.c — `tunewise review export RUN... --n 100 -o review.csv` and
 * `tunewise review import review.csv`: blinded human review of predictions
 * (src/report/review.c).
 * Deliberately not here: sampling, blinding and folding (the library does them). */
#include "cli.h"
#include "report/review.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt EXPORT_OPTS[] = {
    {"out", 'o', CLI_STR, "FILE", "CSV to write (the key goes to FILE with .key.json instead of .csv)", "review.csv"},
    {"n", 'n', CLI_INT, "N", "items to sample", "100"},
    {"seed", 0, CLI_INT, "N", "sampling and blinding seed", "1"},
    {"key", 'k', CLI_STR, "FILE", "key file (maps blinded answers to runs; keep it from the raters)", NULL},
    {0},
};

static const cli_opt IMPORT_OPTS[] = {
    {"key", 'k', CLI_STR, "FILE", "key file written by review export (default: CSV name with .key.json)", NULL},
    {"dry-run", 0, CLI_FLAG, NULL, "print the summary, do not change metrics.json", NULL},
    {"json", 0, CLI_FLAG, NULL, "print the summary as JSON", NULL},
    {0},
};

static void key_for(char *out, size_t cap, const char *csv)
{
    size_t l = strlen(csv);
    if (l > 4 && strcmp(csv + l - 4, ".csv") == 0) snprintf(out, cap, "%.*s.key.json", (int)(l - 4), csv);
    else snprintf(out, cap, "%s.key.json", csv);
}

static int run_export(cli_args *a)
{
    const char *csv = cli_str(a, "out");
    long n = cli_int(a, "n"), seed = cli_int(a, "seed");
    if (n < 1) return cli_usage_error(a->cmd, "--n must be >= 1");
    if (seed < 0) return cli_usage_error(a->cmd, "--seed must be >= 0");
    if (a->npos > 16) return cli_usage_error(a->cmd, "at most 16 runs");
    char key[4200];
    if (cli_str(a, "key")) snprintf(key, sizeof key, "%s", cli_str(a, "key"));
    else key_for(key, sizeof key, csv);
    tw_error err;
    tw_error_clear(&err);
    size_t written;
    if (tw_review_export(a->pos, (size_t)a->npos, (size_t)n, (uint64_t)seed, csv, key, &written, &err)) return cli_fail(&err);
    printf("wrote %zu items x %d blinded answers to %s (key: %s)\n", written, a->npos, csv, key);
    return EXIT_OK;
}

static int run_import(cli_args *a)
{
    const char *csv = a->pos[0];
    char key[4200];
    if (cli_str(a, "key")) snprintf(key, sizeof key, "%s", cli_str(a, "key"));
    else key_for(key, sizeof key, csv);
    tw_error err;
    tw_error_clear(&err);
    tw_review_summary s;
    if (tw_review_import(csv, key, cli_flag(a, "dry-run"), &s, &err)) return cli_fail(&err);
    if (cli_flag(a, "json")) {
        json_t *arr = json_array();
        for (size_t r = 0; r < s.n_runs; r++) {
            json_t *o = json_pack("{s:s,s:I}", "run", s.run_dir[r], "n", (json_int_t)s.n_rated[r]);
            json_object_set_new(o, "mean", s.n_rated[r] ? json_real(s.mean[r]) : json_null());
            json_object_set_new(o, "ci", s.n_rated[r] ? json_pack("[f,f]", s.lo[r], s.hi[r]) : json_null());
            json_array_append_new(arr, o);
        }
        cli_print_json(arr);
        json_decref(arr);
    } else {
        for (size_t r = 0; r < s.n_runs; r++) {
            if (s.n_rated[r]) printf("%-40s %4zu rated, mean %.3f [%.3f, %.3f]\n", s.run_dir[r], s.n_rated[r], s.mean[r], s.lo[r], s.hi[r]);
            else printf("%-40s    0 rated\n", s.run_dir[r]);
        }
        if (!cli_flag(a, "dry-run")) printf("folded into each run's metrics.json (\"human_review\")\n");
    }
    return EXIT_OK;
}

const cli_cmd cmd_review_export = {
    "review export",
    "write a seeded, blinded sample of predictions as CSV for people to rate",
    "RUN... [--n 100] [--seed 1] [-o review.csv]",
    "Samples --n items predicted by every RUN, shows each run's answer in a shuffled column\n"
    "order per item (answer_A, rating_A, ...), and writes the key that undoes the blinding\n"
    "beside the CSV. Fill the rating columns with numbers (blank: not rated), then run\n"
    "'tunewise review import'. Details: docs/reports.md.",
    EXPORT_OPTS, 1, CLI_MAX_POS, run_export,
};

const cli_cmd cmd_review_import = {
    "review import",
    "fold a rated review CSV back into the runs' metrics (human_review)",
    "CSV [--key FILE] [--dry-run]",
    "Reads the ratings, un-blinds them with the key, and writes each run's mean rating with a\n"
    "bootstrap 95% CI into its metrics.json; 'tunewise report' then shows it.",
    IMPORT_OPTS, 1, 1, run_import,
};
