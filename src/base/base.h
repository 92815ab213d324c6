/* base.h — small shared pieces every module uses: growable buffers, file I/O with
 * atomic writes, a streaming line reader, UTF-8 validation, hashing, a seeded RNG,
 * a progress reporter, and a few string helpers.
 * Deliberately not here: anything that knows about tasks, models or metrics. */
#ifndef TW_BASE_H
#define TW_BASE_H

#include "tunewise.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- memory ------------------------------------------------------------ */
/* malloc/calloc/realloc that set err on failure (return NULL). */
void *tw_malloc(size_t n, tw_error *err);
void *tw_calloc(size_t n, size_t size, tw_error *err);
void *tw_realloc(void *p, size_t n, tw_error *err);
/* strdup / strndup that return NULL on OOM (and set err when given). */
char *tw_strdup(const char *s, tw_error *err);
char *tw_strndup(const char *s, size_t n, tw_error *err);

/* Grow *arr (element size `elem`) so it can hold at least `need` elements.
 * *cap is updated. Returns TW_OK or TW_ERR_NOMEM. */
tw_status tw_grow(void **arr, size_t *cap, size_t need, size_t elem, tw_error *err);

/* ---- growable byte buffer (always NUL-terminated when len > 0) --------- */
typedef struct tw_buf {
    char *data;
    size_t len, cap;
} tw_buf;

tw_status tw_buf_reserve(tw_buf *b, size_t extra);
tw_status tw_buf_append(tw_buf *b, const void *p, size_t n);
tw_status tw_buf_puts(tw_buf *b, const char *s);
tw_status tw_buf_putc(tw_buf *b, char c);
tw_status tw_buf_printf(tw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tw_buf_clear(tw_buf *b);   /* len = 0, keeps memory */
void tw_buf_free(tw_buf *b);
/* Hand the buffer's memory to the caller (caller frees); the buffer is reset. */
char *tw_buf_steal(tw_buf *b);

/* ---- files ------------------------------------------------------------- */
/* Read a whole file into a NUL-terminated heap buffer (caller frees). */
tw_status tw_file_read(const char *path, char **out, size_t *len, tw_error *err);
/* Write atomically: temp file in the same directory, fsync, rename. Readers see
 * either the old file or the new one, never a partial write. */
tw_status tw_file_write_atomic(const char *path, const void *data, size_t len, tw_error *err);

/* Atomic writer for streamed output: open a temp file, write through FILE*,
 * commit (fsync + rename) or abort (unlink). */
typedef struct tw_atomic_file {
    FILE *fp;
    char *path;
    char *tmp_path;
} tw_atomic_file;
tw_status tw_atomic_open(tw_atomic_file *af, const char *path, tw_error *err);
tw_status tw_atomic_commit(tw_atomic_file *af, tw_error *err);
void tw_atomic_abort(tw_atomic_file *af);

/* Create a directory and its parents (like mkdir -p). */
tw_status tw_mkdir_p(const char *path, tw_error *err);
bool tw_file_exists(const char *path);

/* Streaming line reader: memory stays bounded by the longest line (itself
 * capped by max_line). Lines are returned without the trailing "\n" / "\r\n". */
typedef struct tw_line_reader {
    FILE *fp;
    char *path;
    size_t line_no;     /* 1-based number of the line last returned */
    size_t max_line;    /* longest accepted line in bytes */
    uint64_t offset;    /* byte offset of the start of the line last returned */
    uint64_t next_off;
    char *line;
    size_t cap;
    bool owns_fp;
} tw_line_reader;

#define TW_MAX_LINE_DEFAULT ((size_t)8 << 20)   /* 8 MiB */

tw_status tw_line_reader_open(tw_line_reader *r, const char *path, size_t max_line, tw_error *err);
/* Returns TW_OK with *line and *len set (borrowed until the next call), TW_DONE at EOF,
 * or an error ("path:line: line longer than N bytes"). */
tw_status tw_line_reader_next(tw_line_reader *r, const char **line, size_t *len, tw_error *err);
void tw_line_reader_close(tw_line_reader *r);

/* ---- UTF-8 ------------------------------------------------------------- */
/* Returns true when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
 * On failure *bad_off (if non-NULL) is the byte offset of the first invalid byte. */
bool tw_utf8_valid(const char *s, size_t n, size_t *bad_off);
/* Decode one code point at s (n bytes left); returns its length (>= 1) and sets *cp.
 * Invalid sequences decode as U+FFFD with length 1. */
int tw_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Encode cp into out (>= 4 bytes); returns the byte count. */
int tw_utf8_encode(uint32_t cp, char *out);
/* Number of code points. */
size_t tw_utf8_len(const char *s, size_t n);

/* ---- hashing ----------------------------------------------------------- */
uint64_t tw_hash64(const void *data, size_t n, uint64_t seed);   /* fast, non-crypto */
static inline uint64_t tw_hash_mix(uint64_t h)
{
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}
/* SHA-256 of a buffer / a file, as 64 lowercase hex chars + NUL. */
void tw_sha256(const void *data, size_t n, char hex[65]);
tw_status tw_sha256_file(const char *path, char hex[65], tw_error *err);

/* ---- string index ----------------------------------------------------- */
/* Maps strings to size_t values (open addressing on tw_hash64). Keys are borrowed: they
 * must stay valid and unchanged while the index is used. Zero-initialise before use. */
typedef struct tw_str_index {
    const char **keys;
    size_t *vals;
    size_t n, cap;   /* cap is 0 or a power of two */
} tw_str_index;
/* Insert key → val. When key is already present nothing changes and *found (if non-NULL)
 * is set to true with *val_out (if non-NULL) its existing value; otherwise *found = false. */
tw_status tw_str_index_put(tw_str_index *ix, const char *key, size_t val, bool *found, size_t *val_out,
                           tw_error *err);
/* true and *val when key is present. */
bool tw_str_index_get(const tw_str_index *ix, const char *key, size_t *val);
void tw_str_index_free(tw_str_index *ix);

/* ---- seeded RNG (xoshiro256**, seeded via splitmix64) ------------------ */
typedef struct tw_rng { uint64_t s[4]; } tw_rng;
void tw_rng_seed(tw_rng *r, uint64_t seed);
uint64_t tw_rng_next(tw_rng *r);
double tw_rng_uniform(tw_rng *r);                 /* [0, 1) */
uint64_t tw_rng_below(tw_rng *r, uint64_t n);     /* [0, n), unbiased */
double tw_rng_normal(tw_rng *r);                  /* N(0, 1) */
void tw_rng_shuffle(tw_rng *r, void *base, size_t n, size_t elem);

/* ---- progress ---------------------------------------------------------- */
/* Progress on stderr: a bar with rate and ETA on a terminal, plain lines
 * (at most every few seconds) otherwise. Quiet when disabled. */
typedef struct tw_progress {
    const char *label;
    uint64_t total, done;
    double t_start, t_last;
    bool tty, enabled;
} tw_progress;
void tw_progress_begin(tw_progress *p, const char *label, uint64_t total, bool enabled);
void tw_progress_update(tw_progress *p, uint64_t done);
void tw_progress_end(tw_progress *p);

/* ---- misc -------------------------------------------------------------- */
double tw_now(void);   /* monotonic seconds */
/* Case-fold ASCII, collapse whitespace runs, strip ASCII punctuation, trim.
 * Writes into out (cap >= n + 1); returns the length. Used for "normalized" matching. */
size_t tw_normalize_text(const char *s, size_t n, char *out);
int tw_cmp_double(const void *a, const void *b);

#endif /* TW_BASE_H */
