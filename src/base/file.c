/* file.c — whole-file reads, atomic writes (temp + fsync + rename), mkdir -p and the
 * streaming line reader used by every dataset reader.
 * Deliberately not here: parsing of any format. */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

tw_status tw_file_read(const char *path, char **out, size_t *len, tw_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tw_error_set(err, TW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    tw_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (tw_buf_append(&b, chunk, n)) {
            fclose(f);
            tw_buf_free(&b);
            return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory reading file", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        tw_buf_free(&b);
        return tw_error_set(err, TW_ERR_IO, "%s: read error", path);
    }
    if (len) *len = b.len;
    *out = tw_buf_steal(&b);
    if (!*out) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", path);
    return TW_OK;
}

tw_status tw_atomic_open(tw_atomic_file *af, const char *path, tw_error *err)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = tw_strdup(path, err);
    af->tmp_path = tw_malloc(n, err);
    if (!af->path || !af->tmp_path) {
        free(af->path);
        free(af->tmp_path);
        return TW_ERR_NOMEM;
    }
    snprintf(af->tmp_path, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        tw_status s = tw_error_set(err, TW_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(af->path);
        free(af->tmp_path);
        memset(af, 0, sizeof *af);
        return s;
    }
    fchmod(fd, 0644);
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        unlink(af->tmp_path);
        free(af->path);
        free(af->tmp_path);
        memset(af, 0, sizeof *af);
        return tw_error_set(err, TW_ERR_IO, "%s: fdopen failed", path);
    }
    return TW_OK;
}

tw_status tw_atomic_commit(tw_atomic_file *af, tw_error *err)
{
    tw_status st = TW_OK;
    if (!af->fp) return tw_error_set(err, TW_ERR_IO, "atomic file not open");
    if (fflush(af->fp) != 0 || ferror(af->fp) || fsync(fileno(af->fp)) != 0)
        st = tw_error_set(err, TW_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
    if (fclose(af->fp) != 0 && st == TW_OK)
        st = tw_error_set(err, TW_ERR_IO, "%s: close failed: %s", af->path, strerror(errno));
    af->fp = NULL;
    if (st == TW_OK && rename(af->tmp_path, af->path) != 0)
        st = tw_error_set(err, TW_ERR_IO, "%s: rename failed: %s", af->path, strerror(errno));
    if (st != TW_OK) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    return st;
}

void tw_atomic_abort(tw_atomic_file *af)
{
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

tw_status tw_file_write_atomic(const char *path, const void *data, size_t len, tw_error *err)
{
    tw_atomic_file af;
    tw_status st = tw_atomic_open(&af, path, err);
    if (st) return st;
    if (len && fwrite(data, 1, len, af.fp) != len) {
        tw_atomic_abort(&af);
        return tw_error_set(err, TW_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return tw_atomic_commit(&af, err);
}

tw_status tw_mkdir_p(const char *path, tw_error *err)
{
    char *p = tw_strdup(path, err);
    if (!p) return TW_ERR_NOMEM;
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                tw_status st = tw_error_set(err, TW_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return st;
            }
            *s = c;
            if (c == '\0') break;
        }
    }
    free(p);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tw_error_set(err, TW_ERR_IO, "%s: not a directory", path);
    return TW_OK;
}

bool tw_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

tw_status tw_line_reader_open(tw_line_reader *r, const char *path, size_t max_line, tw_error *err)
{
    memset(r, 0, sizeof *r);
    r->max_line = max_line ? max_line : TW_MAX_LINE_DEFAULT;
    if (strcmp(path, "-") == 0) {
        r->fp = stdin;
    } else {
        r->fp = fopen(path, "rb");
        if (!r->fp) return tw_error_set(err, TW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        r->owns_fp = true;
    }
    r->path = tw_strdup(path, err);
    if (!r->path) {
        tw_line_reader_close(r);
        return TW_ERR_NOMEM;
    }
    return TW_OK;
}

tw_status tw_line_reader_next(tw_line_reader *r, const char **line, size_t *len, tw_error *err)
{
    size_t n = 0;
    bool too_long = false;
    int c;
    r->offset = r->next_off;
    for (;;) {
        c = getc_unlocked(r->fp);
        if (c == EOF) break;
        r->next_off++;
        if (c == '\n') break;
        if (too_long) continue;
        if (n + 2 > r->cap) {
            size_t nc = r->cap ? r->cap * 2 : 4096;
            if (nc > r->max_line + 2) nc = r->max_line + 2;
            char *p = realloc(r->line, nc);
            if (!p) return tw_error_set(err, TW_ERR_NOMEM, "%s:%zu: out of memory", r->path, r->line_no + 1);
            r->line = p;
            r->cap = nc;
        }
        if (n >= r->max_line) {
            too_long = true;
            continue;
        }
        r->line[n++] = (char)c;
    }
    if (ferror(r->fp)) return tw_error_set(err, TW_ERR_IO, "%s:%zu: read error", r->path, r->line_no + 1);
    if (c == EOF && n == 0 && !too_long && r->next_off == r->offset) return TW_DONE;
    r->line_no++;
    if (too_long)
        return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: line is longer than the limit of %zu bytes",
                            r->path, r->line_no, r->max_line);
    if (n > 0 && r->line[n - 1] == '\r') n--;
    if (!r->line) {
        r->line = malloc(16);
        if (!r->line) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        r->cap = 16;
    }
    r->line[n] = '\0';
    *line = r->line;
    *len = n;
    return TW_OK;
}

void tw_line_reader_close(tw_line_reader *r)
{
    if (r->fp && r->owns_fp) fclose(r->fp);
    free(r->line);
    free(r->path);
    memset(r, 0, sizeof *r);
}
