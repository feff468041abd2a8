/* Internal helpers shared by the library's layers (td__ prefix, hidden). Not installed. */
#ifndef TDECOMP_CORE_INTERNAL_H
#define TDECOMP_CORE_INTERNAL_H

#include <limits.h>
#include <stdarg.h>
#include "tdecomp/core.h"

/* 1 when v fits a 32-bit BLAS/LAPACK integer. */
static inline int td__fits_blas(size_t v) { return v <= (size_t)INT_MAX; }

/* a * b with overflow check; returns 0 on overflow. */
static inline int td__mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* strdup / strndup through malloc (so allocation-failure tests see every allocation); NULL s
 * gives NULL. */
char *td__strdup(const char *s);
char *td__strndup(const char *s, size_t n);

/* Fills err (may be NULL) with "file: dataset: problem" (file/dataset may be NULL or empty and
 * are then left out) and returns status. Never allocates. */
td_status td__error_set(td_error *err, td_status status, const char *file, const char *dataset,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
td_status td__error_vset(td_error *err, td_status status, const char *file, const char *dataset,
                         const char *fmt, va_list ap);

/* Monotonic wall clock in seconds. */
double td__now(void);

/* ||x - ref||_2 over n values (||ref|| when x is NULL), scaled against overflow and underflow;
 * NaN or infinity when a difference is. td_rel_diff's norms, for callers that go by blocks. */
double td__diff_norm(const double *x, const double *ref, size_t n);

#endif
