/* tdecomp/status.h - status codes and the caller-provided error record.
 *
 * Every fallible function returns td_status; TD_OK is 0. The numbers are stable: a code is
 * never renumbered or reused. Not converging is a result (converged = 0), not an error.
 * The table below is the single source of the enum, td_status_name and td_strerror.
 * Thread-safety: everything here is reentrant; there is no global or thread-local error state. */
#ifndef TDECOMP_STATUS_H
#define TDECOMP_STATUS_H

#include "common.h"

TD_BEGIN_DECLS

/*      name              number  message */
#define TD_STATUS_TABLE(X)                                                                     \
    X(TD_OK,              0,  "success")                                                       \
    X(TD_EINVAL,          1,  "invalid argument")                                              \
    X(TD_ENOMEM,          2,  "out of memory")                                                 \
    X(TD_ESHAPE,          3,  "shapes do not match")                                           \
    X(TD_EOVERFLOW,       4,  "size overflows the address space")                              \
    X(TD_ERANGE,          5,  "dimension too large for 32-bit BLAS/LAPACK integers")           \
    X(TD_ELAPACK,         6,  "LAPACK routine failed")                                         \
    X(TD_ENOTFINITE,      7,  "input contains NaN or Inf")                                     \
    X(TD_ECANCELED,       8,  "canceled by the progress callback")                             \
    X(TD_EIO,             9,  "input/output error")                                            \
    X(TD_EFORMAT,        10,  "malformed or unsupported file content")                         \
    X(TD_ENOTFOUND,      11,  "no such file, group or dataset")                                \
    X(TD_EEXIST,         12,  "output already exists")                                         \
    X(TD_EDTYPE,         13,  "unsupported data type")                                         \
    X(TD_EINFEASIBLE,    14,  "target cannot be reached")                                      \
    X(TD_EUNSUPPORTED,   15,  "operation does not apply to this layer")                        \
    X(TD_ELIMIT,         16,  "request exceeds the configured memory limit")                   \
    X(TD_EINTERNAL,      17,  "internal error")                                              \
    X(TD_EPATH,          18,  "unusable output path")                                        \
    X(TD_EVALUE,         19,  "values too large to decompose (their squares would overflow)")

typedef enum td_status {
#define TD__STATUS_ENUM(name, num, msg) name = num,
    TD_STATUS_TABLE(TD__STATUS_ENUM)
#undef TD__STATUS_ENUM
    TD_STATUS_COUNT_ /* one past the largest code; not a status */
} td_status;

/* Human-readable message for a status ("out of memory"); "unknown status" for anything else.
 * Never NULL, static storage. O(1), no allocation. */
TD_API const char *td_strerror(td_status status);

/* The enumerator's name ("TD_ENOMEM"); "TD_UNKNOWN" for anything else. Never NULL, static
 * storage. O(1), no allocation. */
TD_API const char *td_status_name(td_status status);

/* Error record for calls that touch files. The caller owns it (stack is fine); functions that
 * take one fill it on failure with a single line "FILE: DATASET: problem" (DATASET left out
 * when none applies). Filling it never allocates. A NULL record is allowed everywhere. */
#define TD_ERROR_MSG_MAX 1024
typedef struct td_error {
    td_status status;            /* the status the call returned */
    char message[TD_ERROR_MSG_MAX];
} td_error;

/* The library's version at run time ("0.2.0"), which may differ from TD_VERSION_STRING of the
 * headers a program was compiled with. Static storage; thread-safe. O(1), no allocation. */
TD_API const char *td_version(void);

/* Resets a record to TD_OK and an empty message; NULL is ignored. O(1). */
TD_API void td_error_clear(td_error *err);

TD_END_DECLS

#endif
