#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core/internal.h"

void td_error_clear(td_error *err)
{
    if (!err) return;
    err->status = TD_OK;
    err->message[0] = '\0';
}

td_status td__error_vset(td_error *err, td_status status, const char *file, const char *dataset,
                         const char *fmt, va_list ap)
{
    if (!err) return status;
    err->status = status;
    size_t cap = sizeof err->message, n = 0;
    int w;
    if (file && *file) {
        w = snprintf(err->message, cap, "%s: ", file);
        n = w < 0 ? 0 : ((size_t)w >= cap ? cap - 1 : (size_t)w);
    }
    if (dataset && *dataset && n < cap - 1) {
        w = snprintf(err->message + n, cap - n, "%s: ", dataset);
        n += w < 0 ? 0 : ((size_t)w >= cap - n ? cap - n - 1 : (size_t)w);
    }
    if (n < cap - 1) vsnprintf(err->message + n, cap - n, fmt, ap);
    /* one line only: messages end up as the tool's last stderr line */
    for (char *p = err->message; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return status;
}

td_status td__error_set(td_error *err, td_status status, const char *file, const char *dataset,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td__error_vset(err, status, file, dataset, fmt, ap);
    va_end(ap);
    return status;
}

double td__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *td__strndup(const char *s, size_t n)
{
    if (!s) return NULL;
    const size_t len = strnlen(s, n);
    char *d = malloc(len + 1);
    if (d) { memcpy(d, s, len); d[len] = '\0'; }
    return d;
}

char *td__strdup(const char *s) { return s ? td__strndup(s, strlen(s)) : NULL; }
