/* cmd_convert.c — `tunewise convert IN OUT`: rewrite a dataset between JSONL, CSV and
 * chat JSONL (the shape fine-tuning APIs take), streaming, atomically. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"from", 0, CLI_STR, "FORMAT", "input format: auto|jsonl|csv|chat", "auto"},
    {"to", 0, CLI_STR, "FORMAT", "output format: auto|jsonl|csv|chat (auto: by OUT's extension)", "auto"},
    {"input-field", 0, CLI_STR, "NAME", "field holding the input", "input"},
    {"output-field", 0, CLI_STR, "NAME", "field holding the reference output", "output"},
    {"system", 0, CLI_STR, "TEXT", "system message for chat output rows that have none", NULL},
    {0},
};

static int run(cli_args *a)
{
    tw_format from, to;
    if (!tw_format_parse(cli_str(a, "from"), &from))
        return cli_usage_error(a->cmd, "unknown --from format '%s' (expected auto, jsonl, csv or chat)", cli_str(a, "from"));
    if (!tw_format_parse(cli_str(a, "to"), &to))
        return cli_usage_error(a->cmd, "unknown --to format '%s' (expected auto, jsonl, csv or chat)", cli_str(a, "to"));
    tw_reader_params rp = tw_reader_default_params();
    rp.format = from;
    rp.fields.input = cli_str(a, "input-field");
    rp.fields.output = cli_str(a, "output-field");
    tw_error err;
    tw_error_clear(&err);
    tw_reader *r = NULL;
    tw_writer *w = NULL;
    tw_status st = tw_reader_open(&r, a->pos[0], &rp, &err);
    if (!st) st = tw_writer_open(&w, a->pos[1], to, NULL, &err);
    if (!st && cli_given(a, "system")) st = tw_writer_set_system(w, cli_str(a, "system"), &err);
    size_t n = 0;
    const tw_example *ex;
    while (!st && (st = tw_reader_next(r, &ex, &err)) == TW_OK) {
        st = tw_writer_write(w, ex, &err);
        n++;
    }
    if (st == TW_DONE) st = TW_OK;
    tw_reader_free(r);
    if (st) {
        tw_writer_abort(w);
        return cli_fail(&err);
    }
    if ((st = tw_writer_close(w, &err))) return cli_fail(&err);
    if (!a->quiet) fprintf(stderr, "tunewise: wrote %zu rows to %s\n", n, a->pos[1]);
    return EXIT_OK;
}

const cli_cmd cmd_convert = {
    .name = "convert",
    .summary = "convert a dataset between JSONL, CSV and chat JSONL",
    .usage = "IN OUT [options]",
    .details = "Streams IN to OUT (memory stays flat on large files); OUT is written atomically.\n"
               "Chat JSONL is the {\"messages\": [...]} shape that fine-tuning APIs accept.",
    .opts = OPTS,
    .min_pos = 2,
    .max_pos = 2,
    .run = run,
};
