/* error.c — result codes, error messages with context, and the log hook.
 * The library never prints: tw_log() forwards to a hook the CLI installs. */
#include "tunewise.h"

#include <stdio.h>
#include <string.h>

const char *tw_status_str(tw_status s)
{
    switch (s) {
    case TW_OK: return "ok";
    case TW_ERR_IO: return "i/o error";
    case TW_ERR_PARSE: return "parse error";
    case TW_ERR_INVALID: return "invalid input";
    case TW_ERR_NOMEM: return "out of memory";
    case TW_ERR_UNSUPPORTED: return "unsupported";
    case TW_ERR_RUNTIME: return "runtime error";
    case TW_DONE: return "done";
    }
    return "unknown status";
}

tw_status tw_error_set(tw_error *err, tw_status status, const char *fmt, ...)
{
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

tw_status tw_error_prefix(tw_error *err, const char *fmt, ...)
{
    if (!err) return TW_ERR_RUNTIME;
    char head[TW_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    char old[TW_ERROR_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t hl = strlen(head), ol = strnlen(old, sizeof old - 1);
    if (hl > sizeof err->msg - 1) hl = sizeof err->msg - 1;
    if (ol > sizeof err->msg - 1 - hl) ol = sizeof err->msg - 1 - hl;
    memcpy(err->msg, head, hl);
    memcpy(err->msg + hl, old, ol);
    err->msg[hl + ol] = '\0';
    return err->status;
}

void tw_error_clear(tw_error *err)
{
    if (err) {
        err->status = TW_OK;
        err->msg[0] = '\0';
    }
}

/* The one mutable global of the library (DESIGN.md convention 1). */
static tw_log_fn g_log_fn;
static void *g_log_user;

void tw_log_set_hook(tw_log_fn fn, void *user)
{
    g_log_fn = fn;
    g_log_user = user;
}

void tw_log(tw_log_level level, const char *fmt, ...)
{
    if (!g_log_fn) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g_log_fn(level, msg, g_log_user);
}

const char *tw_version(void) { return TW_VERSION_STRING; }
