/* Shared helpers of the decomp layer (not installed). */
#ifndef TDECOMP_DECOMP_INTERNAL_H
#define TDECOMP_DECOMP_INTERNAL_H

#include "core/internal.h"
#include "tdecomp/decomp.h"

/* Eigen-decomposition of the symmetric n x n matrix g (not modified): the k leading eigenvectors
 * into vecs (n x k row-major, may be NULL) and all n eigenvalues, descending, into evals (may be
 * NULL). Sign convention of td_svd_trunc applied to the vectors. dsyevd ('N' without vectors). */
td_status td__sym_eig_leading(const double *g, size_t n, size_t k, double *vecs, double *evals);

/* The k leading pairs only (top: k values, descending, may be NULL): dsyevr on the index range
 * when k is small against a large n (n >= 1024, k <= n/8; from n = 4096, k <= n/4), else dsyevd. */
td_status td__sym_eig_top(const double *g, size_t n, size_t k, double *vecs, double *top);

/* Flips each column c of the m x k row-major matrix u so its largest-|.| entry (first on ties)
 * is positive; if flips is not NULL, flips[c] = -1 or +1 records what was done. */
void td__sign_flip_columns(double *u, size_t m, size_t k, double *flips);

/* The sign convention on u (m x k) mirrored on vt (k x n, may be NULL) = diag(flips) v^T, v given
 * as n x k (the V of a route that found V first). TD_ENOMEM only. */
td_status td__sign_flip_with_v(double *u, size_t m, size_t k, const double *v, size_t n, double *vt);

/* Orthonormalise the columns of the m x l row-major matrix y in place (Householder QR). */
td_status td__orthonormalise(double *y, size_t m, size_t l);

/* The same, y = Q R: R (l x l, upper, row-major) into r if not NULL; g0, if not NULL, is y^T y
 * already computed (upper part read; saves the first SYRK of CholeskyQR2). */
td_status td__orthonormalise_r(double *y, size_t m, size_t l, const double *g0, double *r);

/* A well-conditioned basis of y's span in place, for products whose span alone matters: one
 * Cholesky-QR pass from g = y^T y (upper part read), or the full orthonormalisation when g is not
 * numerically positive definite. */
td_status td__orthonormalise_span(double *y, size_t m, size_t l, const double *g);

/* Full thin SVD of the m x n row-major adata (copied) by dgesdd; leading k kept, signs fixed.
 * u (m x k) or vt (k x n) may be NULL. */
td_status td__svd_gesdd(const double *adata, size_t m, size_t n, size_t k, double *u, double *s,
                        double *vt);

/* The exponent e of max |x_i| (frexp: max in [2^(e-1), 2^e)), 0 for an all-zero x. Float32 copies
 * are taken of x * 2^-e: a power of two scales exactly, so float products neither overflow (weights
 * of 1e30 are valid float32, their squares are not) nor lose small matrices to subnormals, and the
 * results scale back exactly. */
int td__float_exponent(const double *x, size_t n);

/* The SVD of B = U_k^T A = z^T (k x n; uk m x k orthonormal) from its k x k Gram z^T z: eig gives
 * B B^T = U_r S^2 U_r^T, u = U_k U_r (m x k, signs set), vt = S^-1 U_r^T B (may be NULL). S vt =
 * U_r^T U_k^T A exactly, so the result is U U^T A with U orthonormal and ||A - U S V^T||^2 =
 * ||A||^2 - sum s^2; only V's orthogonality depends on s_k / s_1: *ill = 1 (nothing written) when
 * s_k^2 < 1e-8 s_1^2. rz (k x k, may be NULL) becomes the identity, so that (z, rz) describe B. */
td_status td__svd_from_basis(const double *uk, const double *z, size_t m, size_t n, size_t k, double *u, double *s,
                             double *vt, double *rz, int *ill);

/* A tall A was worked on as A^T: its U is the worked-on V (ut = V^T, k x m) and its V^T the
 * worked-on U^T (uw, n x k); the sign convention is set on U's columns and mirrored on V^T. */
td_status td__untranspose(const double *uw, const double *ut, size_t m, size_t n, size_t k, double *u, double *vt);

/* What a truncated SVD did (tests and benchmarks read it). */
typedef struct td__svd_info {
    td_svd_method method;  /* route taken, after AUTO and any fallback */
    int power_iters;       /* randomised: power iterations run */
    int fell_back;         /* randomised: stalled or failed the residual check; an exact route ran */
    int stalled;           /* randomised: the tail converged too slowly (flat spectrum) */
    double tail;           /* randomised: last ||A||_F^2 - ||(Q^T A)_k||_F^2 */
    size_t columns;        /* randomised: columns of Q at the end (k + oversample, or grown) */
    double residual;       /* randomised: lower estimate of ||A - Q Q^T A||_2 from the check */
    size_t basis;          /* randomised: columns of the basis projected on at the end (columns,
                            * or k when the last pass was float32 and only its k leading
                            * directions were projected in double) */
    int grew;              /* randomised: 0 no growth, 1 the new columns alone were passed,
                            * 2 the grown block was orthonormalised and passed whole */
    int gram_final;        /* randomised: the narrowed basis' SVD came from its k x k Gram */
    int float_gram;        /* Gram route: the float32 Gram and eigensolver found the basis */
} td__svd_info;

/* td_svd_trunc with a report (info may be NULL). */
td_status td__svd_trunc_ex(const td_tensor *a, size_t k, const td_svd_options *opt, td_tensor *u,
                           double *s, td_tensor *vt, td__svd_info *info);

/* The route TD_SVD_AUTO takes for an m x n matrix at rank k (flop estimate). */
td_svd_method td__svd_auto_method(size_t m, size_t n, size_t k, int oversample);

/* The power_tol in force for an m x n matrix (the automatic one when o->power_tol < 0). */
double td__svd_power_tol(const td_svd_options *o, size_t m, size_t n);

/* Randomised route (rsvd.c). *check_ok = 0 when the power iteration stalled or the a-posteriori
 * residual check failed (the outputs are then to be discarded). u may be NULL. */
td_status td__svd_random(const td_tensor *a, size_t k, const td_svd_options *o, double *u, double *s,
                         double *vt, int *check_ok, td__svd_info *info);

/* The randomised route's "large" matrices: from 2^22 entries (2048 x 2048; LLM projections have
 * 10-100x more) float32 range passes may run by default and the automatic power_tol is 1e-4
 * (rsvd.c says why); the workspace query (svd.c) counts the float copy from the same size. */
#define RSVD_LARGE_SIZE (1u << 22)
#define RSVD_FLOAT_MIN_SIZE RSVD_LARGE_SIZE

#endif
