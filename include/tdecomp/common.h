/* tdecomp/common.h - export macro, attributes and the fixed limits shared by every header.
 *
 * Public headers include no HDF5, CBLAS or LAPACKE header; they compile alone as C11 and C++.
 * Thread-safety: macros and constants only; nothing here has state. */
#ifndef TDECOMP_COMMON_H
#define TDECOMP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(TD_BUILDING_LIBRARY) && defined(__GNUC__)
#define TD_API __attribute__((visibility("default")))
#else
#define TD_API
#endif

/* Status-returning functions: ignoring a status is a compile-time warning. */
#if defined(__GNUC__)
#define TD_WUR __attribute__((warn_unused_result))
#else
#define TD_WUR
#endif

#ifdef __cplusplus
#define TD_BEGIN_DECLS extern "C" {
#define TD_END_DECLS }
#else
#define TD_BEGIN_DECLS
#define TD_END_DECLS
#endif

/* Largest number of modes a td_tensor can have. */
#define TD_MAX_MODES 16

/* Library version, also printed by `tdecomp-tool --version`. */
#define TD_VERSION_MAJOR 0
#define TD_VERSION_MINOR 2
#define TD_VERSION_PATCH 0
#define TD_VERSION_STRING "0.2.0"

#endif
