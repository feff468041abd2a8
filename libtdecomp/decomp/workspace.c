/* Workspace queries of the decompositions: upper bounds of what a call allocates (its own buffers,
 * LAPACKE's transposed copies and LAPACK's work arrays), in bytes. tests/core/test_workspace.c
 * checks each against the heap the call actually takes. */
#include <math.h>
#include "decomp/decomp_internal.h"

/* dgesdd of an m x n matrix ('S', row-major through LAPACKE): our copy and outputs, LAPACKE's
 * transposes, LAPACK's work (~4 p^2 + 7 p + max(m, n)) and iwork (8 p ints), in doubles. */
static double gesdd_doubles(double m, double n)
{
    const double p = fmin(m, n);
    return 2.0 * (m * n + m * p + p * n) + 4.0 * p * p + 16.0 * p + fmax(m, n);
}

/* Gram route: the Gram, its eigen-decomposition (copy, dsyevd's 1 + 6p + 2p^2 work and 5p + 3
 * ints, or dsyevr's n k vectors and 36 p work), the vectors and U when it is not wanted. */
static double gram_doubles(double m, double n, double k)
{
    const double p = fmin(m, n);
    return 4.0 * p * p + 3.0 * p * k + 16.0 * p + 2.0 * k + fmax(m, n) * k + 4;
}

td_status td_svd_trunc_workspace(size_t m, size_t n, size_t k, const td_svd_options *opt, uint64_t *bytes)
{
    td_svd_options def;
    if (!opt) { td_svd_options_init(&def); opt = &def; }
    if (!bytes || m == 0 || n == 0 || k < 1 || k > (m < n ? m : n)) return TD_EINVAL;
    const double M = (double)m, N = (double)n, K = (double)k, P = fmin(M, N);
    const double os = opt->oversample > 0 ? opt->oversample : 0;
    /* the range may grow once by max(k / 2, oversample) columns */
    const double L = fmin(P, K + os + fmax(K / 2.0, fmax(os, 1.0)));
    const double rand = 3.0 * (M + N) * L + N * L + M * K + 4.0 * L * L + gesdd_doubles(L, N);
    const double exact = fmax(gesdd_doubles(M, N), gram_doubles(M, N, K));
    double d = exact;
    if (opt->method == TD_SVD_GRAM) d = gram_doubles(M, N, K);
    else if (opt->method == TD_SVD_GESDD) d = gesdd_doubles(M, N);
    else if (opt->method == TD_SVD_RANDOMIZED || td__svd_auto_method(m, n, k, opt->oversample) == TD_SVD_RANDOMIZED)
        d = fmax(rand, exact); /* the randomised route falls back to an exact one when it stalls */
    const double b = 8.0 * d;
    if (!(b < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)b;
    return TD_OK;
}

/* Chunked copies td_gram makes of thin blocks (at most 4 MiB, at least one block, never more
 * than the tensor), in doubles. */
static double gram_chunk(double size, double block)
{
    return fmin(size, fmax((double)(4u << 20) / 8.0, block));
}

td_status td_mode_spectrum_workspace(int ndim, const size_t *shape, int mode, size_t k, uint64_t *bytes)
{
    if (!shape || !bytes || ndim < 1 || ndim > TD_MAX_MODES || mode < 0 || mode >= ndim || k > shape[mode]) return TD_EINVAL;
    size_t size;
    td_status st = td_size_product(ndim, shape, &size);
    if (st != TD_OK) return st;
    double right = 1;
    for (int j = mode + 1; j < ndim; j++) right *= (double)shape[j];
    const double n = (double)shape[mode], cols = n > 0 ? (double)size / n : 0, p = fmin(n, cols);
    const double chunk = gram_chunk((double)size, n * right);
    double d;
    if (k == 0) /* values only: the smaller Gram, dsyevd 'N' on a copy, an unfolding copy when interior */
        d = 2.0 * p * p + 8.0 * p + (cols < n ? (double)size : chunk);
    else /* the I_n Gram, dsyevd 'V' (copy, 1 + 6n + 2n^2 work, ints) or dsyevr, the values */
        d = 4.0 * n * n + 3.0 * n * (double)k + 16.0 * n + chunk;
    const double b = 8.0 * d;
    if (!(b < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)b;
    return TD_OK;
}
