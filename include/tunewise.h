/* tunewise.h — the public header of libtunewise.
 *
 * Conventions (see docs/ARCHITECTURE.md):
 *  - fallible functions return tw_status and fill a tw_error with context
 *    ("file:line: what is wrong"); the library never prints and never exits;
 *  - `_free(NULL)` is a no-op; ownership is written beside each function;
 *  - the only mutable global is the log hook.
 *
 * Module-level APIs live in the internal headers under src/<module>/ and are
 * re-exported here as they stabilise. This header holds what every module shares.
 */
#ifndef TUNEWISE_H
#define TUNEWISE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TW_VERSION_MAJOR 0
#define TW_VERSION_MINOR 1
#define TW_VERSION_PATCH 0
#define TW_VERSION_STRING "0.1.0"

/* Numbered result codes. Stable: never renumber, only append. */
typedef enum tw_status {
    TW_OK = 0,
    TW_ERR_IO = 1,          /* open/read/write/rename failed */
    TW_ERR_PARSE = 2,       /* malformed input file (JSON, YAML, CSV, UTF-8) */
    TW_ERR_INVALID = 3,     /* well-formed but semantically wrong input or argument */
    TW_ERR_NOMEM = 4,       /* allocation failed */
    TW_ERR_UNSUPPORTED = 5, /* valid request this build cannot do */
    TW_ERR_RUNTIME = 6,     /* anything else that went wrong at run time */
    TW_DONE = 7             /* iterator exhausted (not an error) */
} tw_status;

/* Human-readable name of a status, e.g. "parse error". Never NULL. */
const char *tw_status_str(tw_status s);

/* Error context: a message the CLI prints as is. Fixed size, no allocation,
 * so OOM paths can still report. */
#define TW_ERROR_MAX 1024
typedef struct tw_error {
    tw_status status;
    char msg[TW_ERROR_MAX];
} tw_error;

/* Set err (if non-NULL) to status + printf-style message; returns status so
 * callers can write `return tw_error_set(err, TW_ERR_PARSE, "...")`. */
tw_status tw_error_set(tw_error *err, tw_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message with more context ("while loading task.yaml: ..."). */
tw_status tw_error_prefix(tw_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tw_error_clear(tw_error *err);

/* Logging: the library reports progress and warnings through one hook.
 * Default: no output. The CLI installs a hook that writes to stderr. */
typedef enum tw_log_level { TW_LOG_DEBUG = 0, TW_LOG_INFO = 1, TW_LOG_WARN = 2, TW_LOG_ERROR = 3 } tw_log_level;
typedef void (*tw_log_fn)(tw_log_level level, const char *msg, void *user);
void tw_log_set_hook(tw_log_fn fn, void *user);
void tw_log(tw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *tw_version(void);

#ifdef __cplusplus
}
#endif
#endif /* TUNEWISE_H */
