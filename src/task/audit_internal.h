/* audit_internal.h — what the audit computation (audit.c) and its table formatter
 * (audit_format.c) share beyond audit.h. Not part of the API.
 *
 * Deliberately not here: anything else; the formatter otherwise reads only the report. */
#ifndef TW_TASK_AUDIT_INTERNAL_H
#define TW_TASK_AUDIT_INTERNAL_H

#include <stddef.h>

/* v with thousands separators ("12,345") into out[cap] (NUL-terminated, cut to fit).
 * Defined in audit.c, where the readiness reasons use it too. */
void audit_fmt_count(size_t v, char *out, size_t cap);

#endif /* TW_TASK_AUDIT_INTERNAL_H */
