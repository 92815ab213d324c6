/* testutil.h — helpers shared by the Criterion test files: temp files, paths to
 * ../shared, running the CLI. Header-only so every test binary stays one file. */
#ifndef TW_TESTUTIL_H
#define TW_TESTUTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Directory of the shared datasets/models (CI puts ../shared beside the checkout). */
static inline const char *tw_test_shared(void)
{
    const char *s = getenv("TW_SHARED");
    return s ? s : "../shared";
}

/* Make a fresh temp directory; returns a heap path (caller frees). */
static inline char *tw_test_tmpdir(void)
{
    char tmpl[] = "/tmp/tunewise-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d, "mkdtemp failed");
    return strdup(d);
}

/* Write text to dir/name; returns the heap path (caller frees). */
static inline char *tw_test_write(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "cannot write %s", p);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return p;
}

/* Run a shell command, capture stdout into *out (heap, caller frees) and return the
 * exit status. stderr is captured into *err_out when non-NULL. */
static inline int tw_test_run(const char *cmd, char **out, char **err_out)
{
    char errfile[] = "/tmp/tunewise-stderr-XXXXXX";
    int efd = mkstemp(errfile);
    cr_assert(efd >= 0);
    close(efd);
    size_t n = strlen(cmd) + sizeof errfile + 16;
    char *full = malloc(n);
    snprintf(full, n, "%s 2>%s", cmd, errfile);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 2) { cap *= 2; buf = realloc(buf, cap); }
    }
    buf[len] = '\0';
    int st = pclose(p);
    free(full);
    if (out) *out = buf; else free(buf);
    if (err_out) {
        FILE *f = fopen(errfile, "rb");
        size_t ecap = 1 << 16;
        char *e = calloc(1, ecap);
        if (f) { size_t k = fread(e, 1, ecap - 1, f); e[k] = '\0'; fclose(f); }
        *err_out = e;
    }
    unlink(errfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Path of the tunewise binary under test (set by `make test`). */
static inline const char *tw_test_bin(void)
{
    const char *b = getenv("TW_BIN");
    return b ? b : "build/tunewise";
}

#endif
