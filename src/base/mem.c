/* mem.c — checked allocation, growable arrays and the tw_buf byte buffer.
 * Allocation failures become TW_ERR_NOMEM with a message; nothing here aborts. */
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

void *tw_malloc(size_t n, tw_error *err)
{
    void *p = malloc(n ? n : 1);
    if (!p) tw_error_set(err, TW_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *tw_calloc(size_t n, size_t size, tw_error *err)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) tw_error_set(err, TW_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *tw_realloc(void *p, size_t n, tw_error *err)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) tw_error_set(err, TW_ERR_NOMEM, "out of memory reallocating to %zu bytes", n);
    return q;
}

char *tw_strndup(const char *s, size_t n, tw_error *err)
{
    char *p = tw_malloc(n + 1, err);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *tw_strdup(const char *s, tw_error *err)
{
    return s ? tw_strndup(s, strlen(s), err) : NULL;
}

tw_status tw_grow(void **arr, size_t *cap, size_t need, size_t elem, tw_error *err)
{
    if (need <= *cap) return TW_OK;
    size_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > ((size_t)-1) / 2 / elem)
            return tw_error_set(err, TW_ERR_NOMEM, "array too large (%zu elements)", need);
        nc *= 2;
    }
    void *p = realloc(*arr, nc * elem);
    if (!p) return tw_error_set(err, TW_ERR_NOMEM, "out of memory growing array to %zu elements", nc);
    *arr = p;
    *cap = nc;
    return TW_OK;
}

tw_status tw_buf_reserve(tw_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return TW_OK;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < need) nc *= 2;
    char *p = realloc(b->data, nc);
    if (!p) return TW_ERR_NOMEM;
    b->data = p;
    b->cap = nc;
    return TW_OK;
}

tw_status tw_buf_append(tw_buf *b, const void *p, size_t n)
{
    if (tw_buf_reserve(b, n)) return TW_ERR_NOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return TW_OK;
}

tw_status tw_buf_puts(tw_buf *b, const char *s) { return tw_buf_append(b, s, strlen(s)); }
tw_status tw_buf_putc(tw_buf *b, char c) { return tw_buf_append(b, &c, 1); }

tw_status tw_buf_printf(tw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return TW_ERR_RUNTIME;
    if (tw_buf_reserve(b, (size_t)n)) return TW_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return TW_OK;
}

void tw_buf_clear(tw_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void tw_buf_free(tw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *tw_buf_steal(tw_buf *b)
{
    if (!b->data && tw_buf_reserve(b, 0)) return NULL;
    char *p = b->data;
    p[b->len] = '\0';
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
