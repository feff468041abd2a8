/* Helpers shared by the Check tests: random data and comparisons. Truths come from naive.h. */
#ifndef TDTEST_TESTUTIL_H
#define TDTEST_TESTUTIL_H

#include <check.h>
#include "tdecomp.h"

/* Allocates t with the given shape (asserting success) filled with standard normals from seed. */
void tt_random(td_tensor *t, int ndim, const size_t *shape, uint64_t seed);
/* Random matrix rows x cols. */
void tt_random_matrix(td_tensor *t, size_t rows, size_t cols, uint64_t seed);
/* max |a - b| over all entries; asserts equal shapes. */
double tt_maxdiff(const td_tensor *a, const td_tensor *b);
/* ||a - b||_F / ||b||_F (0 when both are 0); asserts equal shapes. */
double tt_relerr(const td_tensor *a, const td_tensor *b);
/* 1 when both tensors are bit-for-bit equal (same shape, same bytes). */
int tt_bitequal(const td_tensor *a, const td_tensor *b);
/* max |X^T X - I| over the columns (rows = 0) or the rows (rows = 1) of the r x c matrix x. */
double tt_orth_defect(const double *x, size_t r, size_t c, int rows);
/* The same for the columns of a matrix tensor. */
double tt_orth_cols(const td_tensor *u);
/* m x p with orthonormal columns: LAPACK's Householder QR of a seeded Gaussian matrix. */
void tt_orth_basis(td_tensor *q, size_t m, size_t p, uint64_t seed);
/* a = Q1 diag(sv) Q2^T + noise * N(0, 1), m x n, p = len(sv) <= min(m, n), bases by tt_orth_basis. */
void tt_matrix_with_spectrum(td_tensor *a, size_t m, size_t n, const double *sv, size_t p, double noise,
                             uint64_t seed);
/* ||x - full(r)||_F / ||x||_F, recomputed from the Tucker reconstruction. */
double tt_tucker_err(const td_tensor *x, const td_tucker_result *r);
/* The planner's view of a layer: its geometry's admission (td_layer_admission), not excluded. */
td_plan_layer tt_plan_layer(const char *name, td_layer_desc d);
/* Runs a suite built by make_suite with CK_NORMAL output; returns the process exit status. */
int tt_run(Suite *s);

#define TT_OK(expr) ck_assert_msg((expr) == TD_OK, "%s failed: %s", #expr, td_status_name(expr))

#endif
