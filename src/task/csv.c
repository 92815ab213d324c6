/* csv.c — an RFC 4180 record parser that streams over the base line reader, and the
 * field quoting used by the CSV writer.
 *
 * Accepted: quoted fields with "" escapes, line breaks inside quotes (LF or CRLF; stored as
 * "\n"), CRLF record ends, a UTF-8 byte order mark on line 1, blank lines between records
 * (skipped). Lenient, like Python's csv module: a quote in the middle of an unquoted field
 * is kept as a literal character.
 * Rejected with "path:line:col: ...": text after a closing quote, a quote that never closes,
 * invalid UTF-8, NUL bytes, a record longer than max_record bytes.
 * Deliberately not here: mapping columns to example fields (dataset.c), other separators. */
#include "task/rows.h"

#include <string.h>

static tw_status nomem(tw_error *err, const char *path, size_t line)
{
    return tw_error_set(err, TW_ERR_NOMEM, "%s:%zu: out of memory", path, line);
}

static tw_status start_field(tw_csv *c, tw_error *err, const char *path, size_t line)
{
    if (tw_grow((void **)&c->off, &c->cap, c->n + 1, sizeof *c->off, err)) return nomem(err, path, line);
    c->off[c->n++] = c->data.len;
    return TW_OK;
}

tw_status tw_csv_next(tw_csv *c, tw_line_reader *lr, tw_error *err)
{
    const char *path = lr->path;
    bool started = false, in_q = false, after_q = false;
    size_t q_line = 0, q_col = 0;
    for (;;) {
        const char *line;
        size_t len;
        tw_status st = tw_line_reader_next(lr, &line, &len, err);
        if (st == TW_DONE) {
            if (!started) return TW_DONE;
            /* only a quoted field keeps a record open past the end of a line */
            return tw_error_set(err, TW_ERR_PARSE,
                                "%s:%zu:%zu: unterminated quoted field (the quote opened here never closes)",
                                path, q_line, q_col);
        }
        if (st) return st;
        size_t ln = lr->line_no, i0 = 0;
        if (ln == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) i0 = 3;
        size_t bad;
        if (!tw_utf8_valid(line + i0, len - i0, &bad))
            return tw_error_set(err, TW_ERR_PARSE, "%s:%zu:%zu: invalid UTF-8 at byte offset %zu of the line",
                                path, ln, i0 + bad + 1, i0 + bad);
        const char *nul = memchr(line, '\0', len);
        if (nul)
            return tw_error_set(err, TW_ERR_PARSE, "%s:%zu:%zu: NUL byte in a text file",
                                path, ln, (size_t)(nul - line) + 1);
        if (!started) {
            if (len == i0) continue;   /* blank line between records */
            started = true;
            c->rec_line = ln;
            c->n = 0;
            tw_buf_clear(&c->data);
            if (start_field(c, err, path, ln)) return TW_ERR_NOMEM;
        } else if (tw_buf_putc(&c->data, '\n')) {   /* line break inside a quoted field */
            return nomem(err, path, ln);
        }
        size_t i = i0;
        while (i < len) {
            char ch = line[i];
            if (in_q) {
                const char *q = memchr(line + i, '"', len - i);
                size_t run = q ? (size_t)(q - (line + i)) : len - i;
                if (run && tw_buf_append(&c->data, line + i, run)) return nomem(err, path, ln);
                i += run;
                if (!q) break;
                if (i + 1 < len && line[i + 1] == '"') {   /* "" → " */
                    if (tw_buf_putc(&c->data, '"')) return nomem(err, path, ln);
                    i += 2;
                } else {
                    in_q = false;
                    after_q = true;
                    i++;
                }
            } else if (ch == ',') {
                if (tw_buf_putc(&c->data, '\0') || start_field(c, err, path, ln)) return nomem(err, path, ln);
                after_q = false;
                i++;
            } else if (after_q) {
                return tw_error_set(err, TW_ERR_PARSE,
                                    "%s:%zu:%zu: unexpected character '%c' after a closing quote "
                                    "(write a quote inside a quoted field as \"\")",
                                    path, ln, i + 1, ch);
            } else if (ch == '"' && c->data.len == c->off[c->n - 1]) {
                in_q = true;
                q_line = ln;
                q_col = i + 1;
                i++;
            } else {
                size_t j = i + 1;
                while (j < len && line[j] != ',' && line[j] != '"') j++;
                if (tw_buf_append(&c->data, line + i, j - i)) return nomem(err, path, ln);
                i = j;
            }
        }
        if (c->data.len > c->max_record) {
            if (in_q)
                return tw_error_set(err, TW_ERR_PARSE,
                                    "%s:%zu: CSV record longer than the limit of %zu bytes "
                                    "(is the quote opened at line %zu, column %zu unterminated?)",
                                    path, c->rec_line, c->max_record, q_line, q_col);
            return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: CSV record longer than the limit of %zu bytes",
                                path, c->rec_line, c->max_record);
        }
        if (!in_q) {
            if (tw_buf_putc(&c->data, '\0')) return nomem(err, path, ln);
            return TW_OK;
        }
    }
}

void tw_csv_free(tw_csv *c)
{
    tw_buf_free(&c->data);
    free(c->off);
    memset(c, 0, sizeof *c);
}

tw_status tw_csv_put_field(tw_buf *b, const char *s)
{
    if (!s) s = "";
    if (!strpbrk(s, ",\"\r\n")) return tw_buf_puts(b, s);
    if (tw_buf_putc(b, '"')) return TW_ERR_NOMEM;
    for (const char *p = s; *p; p++) {
        if (*p == '"' && tw_buf_putc(b, '"')) return TW_ERR_NOMEM;
        if (tw_buf_putc(b, *p)) return TW_ERR_NOMEM;
    }
    return tw_buf_putc(b, '"');
}
