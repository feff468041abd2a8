/* Truncated SVD: Gram + dsyevd for short-wide (or tall-thin) matrices, dgesdd otherwise, and a
 * randomised range finder. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "decomp/decomp_internal.h"

void td_svd_options_init(td_svd_options *opt)
{
    if (!opt) return;
    opt->method = TD_SVD_AUTO;
    opt->oversample = 10;
    opt->power_iters = 2;
    opt->seed = 0;
}

void td__sign_flip_columns(double *u, size_t m, size_t k, double *flips)
{
    for (size_t c = 0; c < k; c++) {
        size_t best = 0;
        double bv = -1.0;
        for (size_t i = 0; i < m; i++) {
            double a = fabs(u[i * k + c]);
            if (a > bv) { bv = a; best = i; }
        }
        double f = (m > 0 && u[best * k + c] < 0) ? -1.0 : 1.0;
        if (f < 0)
            for (size_t i = 0; i < m; i++) u[i * k + c] = -u[i * k + c];
        if (flips) flips[c] = f;
    }
}

td_status td__sym_eig_leading(const double *g, size_t n, size_t k, double *vecs, double *evals)
{
    if (k > n) return TD_EINVAL;
    if (n == 0) return TD_OK;
    if (!td__fits_blas(n) || n > 46000) return TD_ERANGE; /* n*n must fit an int for LAPACK */
    double *a = malloc(n * n * sizeof(double)), *w = malloc(n * sizeof(double));
    td_status st = TD_OK;
    if (!a || !w) { st = TD_ENOMEM; goto done; }
    memcpy(a, g, n * n * sizeof(double));
    /* Symmetric, so row- and column-major are the same matrix; column-major avoids LAPACKE's
     * transposed copies. Eigenvector j is then contiguous at a + j*n. */
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, vecs ? 'V' : 'N', 'U', (lapack_int)n, a,
                                     (lapack_int)n, w);
    if (info != 0) { st = info < 0 ? TD_EINTERNAL : TD_ELAPACK; goto done; }
    if (evals)
        for (size_t i = 0; i < n; i++) evals[i] = w[n - 1 - i];
    if (vecs) {
        for (size_t c = 0; c < k; c++) {
            const double *v = a + (n - 1 - c) * n;
            for (size_t i = 0; i < n; i++) vecs[i * k + c] = v[i];
        }
        td__sign_flip_columns(vecs, n, k, NULL);
    }
done:
    free(a);
    free(w);
    return st;
}

td_status td_mode_spectrum(const td_tensor *x, int mode, size_t k, td_tensor *u, double *s2)
{
    if (!x || mode < 0 || mode >= x->ndim) return TD_EINVAL;
    const size_t n = x->shape[mode];
    if (k > n) return TD_EINVAL;
    if (u && (u->ndim != 2 || u->shape[0] != n || u->shape[1] != k)) return TD_ESHAPE;
    td_tensor g = {0};
    td_status st = td_matrix_alloc(&g, n, n);
    if (st != TD_OK) return st;
    if ((st = td_gram(x, mode, &g)) != TD_OK) goto done;
    double *ev = NULL;
    if (s2 || u) {
        ev = malloc((n ? n : 1) * sizeof(double));
        if (!ev) { st = TD_ENOMEM; goto done; }
    }
    st = td__sym_eig_leading(g.data, n, k, u ? u->data : NULL, ev);
    if (st == TD_OK && s2) {
        size_t cols = n ? x->size / n : 0, rk = n < cols ? n : cols;
        for (size_t i = 0; i < n; i++) s2[i] = (i < rk && ev[i] > 0) ? ev[i] : 0.0;
    }
    free(ev);
done:
    td_tensor_free(&g);
    return st;
}

/* Gram route. m <= n: eig of A A^T gives U; V^T = S^-1 U^T A. m > n: eig of A^T A gives V. */
static td_status svd_gram(const td_tensor *a, size_t k, double *u, double *s, double *vt)
{
    const size_t m = a->shape[0], n = a->shape[1];
    const int left = m <= n;
    const size_t p = left ? m : n;
    double *g = malloc(p * p * sizeof(double)), *vec = malloc(p * k * sizeof(double) + 1),
           *ev = malloc(p * sizeof(double));
    td_status st = TD_OK;
    if (!g || !vec || !ev) { st = TD_ENOMEM; goto done; }
    if (left)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)n, 1.0, a->data, (int)n,
                    0.0, g, (int)m);
    else
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)m, 1.0, a->data, (int)n,
                    0.0, g, (int)n);
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < i; j++) g[i * p + j] = g[j * p + i];
    if ((st = td__sym_eig_leading(g, p, k, vec, ev)) != TD_OK) goto done;
    for (size_t c = 0; c < k; c++) s[c] = ev[c] > 0 ? sqrt(ev[c]) : 0.0;
    if (left) {
        /* vec = U (m x k) */
        if (u) memcpy(u, vec, m * k * sizeof(double));
        if (vt) {
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)n, (int)m, 1.0, vec,
                        (int)k, a->data, (int)n, 0.0, vt, (int)n);
            for (size_t c = 0; c < k; c++) {
                double inv = s[c] > 0 ? 1.0 / s[c] : 0.0;
                for (size_t j = 0; j < n; j++) vt[c * n + j] *= inv;
            }
        }
    } else {
        /* vec = V (n x k); U = A V S^-1, then the sign convention is set on U's columns. */
        double *uu = u ? u : malloc(m * k * sizeof(double) + 1);
        if (!uu) { st = TD_ENOMEM; goto done; }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)n, 1.0,
                    a->data, (int)n, vec, (int)k, 0.0, uu, (int)k);
        for (size_t i = 0; i < m; i++)
            for (size_t c = 0; c < k; c++) uu[i * k + c] *= s[c] > 0 ? 1.0 / s[c] : 0.0;
        double *fl = malloc(k * sizeof(double) + 1);
        if (!fl) { if (!u) free(uu); st = TD_ENOMEM; goto done; }
        td__sign_flip_columns(uu, m, k, fl);
        if (vt)
            for (size_t c = 0; c < k; c++)
                for (size_t j = 0; j < n; j++) vt[c * n + j] = fl[c] * vec[j * k + c];
        free(fl);
        if (!u) free(uu);
    }
done:
    free(g);
    free(vec);
    free(ev);
    return st;
}

/* Full thin SVD of an m x n matrix (copied) by dgesdd; leading k kept, signs fixed. */
static td_status svd_gesdd(const double *adata, size_t m, size_t n, size_t k, double *u, double *s,
                           double *vt)
{
    const size_t p = m < n ? m : n;
    double *a = malloc(m * n * sizeof(double)), *uu = malloc(m * p * sizeof(double)),
           *ss = malloc(p * sizeof(double)), *vv = malloc(p * n * sizeof(double));
    td_status st = TD_OK;
    if (!a || !uu || !ss || !vv) { st = TD_ENOMEM; goto done; }
    memcpy(a, adata, m * n * sizeof(double));
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)m, (lapack_int)n, a,
                                     (lapack_int)n, ss, uu, (lapack_int)p, vv, (lapack_int)n);
    if (info != 0) { st = info < 0 ? TD_EINTERNAL : TD_ELAPACK; goto done; }
    for (size_t c = 0; c < k; c++) s[c] = ss[c];
    /* sign convention on U's leading columns, mirrored on V^T's rows */
    for (size_t c = 0; c < k; c++) {
        size_t best = 0;
        double bv = -1;
        for (size_t i = 0; i < m; i++)
            if (fabs(uu[i * p + c]) > bv) { bv = fabs(uu[i * p + c]); best = i; }
        double f = uu[best * p + c] < 0 ? -1.0 : 1.0;
        if (u)
            for (size_t i = 0; i < m; i++) u[i * k + c] = f * uu[i * p + c];
        if (vt)
            for (size_t j = 0; j < n; j++) vt[c * n + j] = f * vv[c * n + j];
    }
done:
    free(a);
    free(uu);
    free(ss);
    free(vv);
    return st;
}

/* Orthonormalise the columns of the m x l row-major matrix y in place (Householder QR). */
static td_status orthonormalise(double *y, size_t m, size_t l)
{
    double *tau = malloc(l * sizeof(double) + 1);
    if (!tau) return TD_ENOMEM;
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, y,
                                     (lapack_int)l, tau);
    if (info == 0)
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, (lapack_int)l, y,
                              (lapack_int)l, tau);
    free(tau);
    return info == 0 ? TD_OK : (info < 0 ? TD_EINTERNAL : TD_ELAPACK);
}

/* Halko, Martinsson & Tropp (2011), Alg. 4.4 with power iterations, then an SVD of Q^T A. */
static td_status svd_random(const td_tensor *a, size_t k, const td_svd_options *o, double *u,
                            double *s, double *vt)
{
    const size_t m = a->shape[0], n = a->shape[1], p = m < n ? m : n;
    size_t l = k + (size_t)(o->oversample > 0 ? o->oversample : 0);
    if (l > p) l = p;
    double *om = malloc(n * l * sizeof(double)), *y = malloc(m * l * sizeof(double)),
           *z = malloc(n * l * sizeof(double)), *b = malloc(l * n * sizeof(double)),
           *ub = malloc(l * k * sizeof(double) + 1);
    td_status st = TD_OK;
    if (!om || !y || !z || !b || !ub) { st = TD_ENOMEM; goto done; }
    td_rng rng;
    td_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < n * l; i++) om[i] = td_rng_normal(&rng);
    const int M = (int)m, N = (int)n, L = (int)l;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, L, N, 1.0, a->data, N, om, L, 0.0, y, L);
    if ((st = orthonormalise(y, m, l)) != TD_OK) goto done;
    for (int q = 0; q < o->power_iters; q++) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, L, M, 1.0, a->data, N, y, L, 0.0, z, L);
        if ((st = orthonormalise(z, n, l)) != TD_OK) goto done;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, L, N, 1.0, a->data, N, z, L, 0.0, y, L);
        if ((st = orthonormalise(y, m, l)) != TD_OK) goto done;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, N, M, 1.0, y, L, a->data, N, 0.0, b, N);
    if ((st = svd_gesdd(b, l, n, k, ub, s, vt)) != TD_OK) goto done;
    if (u) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, (int)k, L, 1.0, y, L, ub, (int)k,
                    0.0, u, (int)k);
        /* Q Ub keeps Ub's signs only approximately aligned with the convention: re-apply it. */
        double *fl = malloc(k * sizeof(double) + 1);
        if (!fl) { st = TD_ENOMEM; goto done; }
        td__sign_flip_columns(u, m, k, fl);
        if (vt)
            for (size_t c = 0; c < k; c++)
                for (size_t j = 0; j < n; j++) vt[c * n + j] *= fl[c];
        free(fl);
    }
done:
    free(om);
    free(y);
    free(z);
    free(b);
    free(ub);
    return st;
}

td_status td_svd_trunc(const td_tensor *a, size_t k, const td_svd_options *opt, td_tensor *u,
                       double *s, td_tensor *vt)
{
    td_svd_options def;
    if (!opt) { td_svd_options_init(&def); opt = &def; }
    if (!a || a->ndim != 2 || !s) return TD_EINVAL;
    const size_t m = a->shape[0], n = a->shape[1], p = m < n ? m : n;
    if (k < 1 || k > p) return TD_EINVAL;
    if (u && (u->ndim != 2 || u->shape[0] != m || u->shape[1] != k)) return TD_ESHAPE;
    if (vt && (vt->ndim != 2 || vt->shape[0] != k || vt->shape[1] != n)) return TD_ESHAPE;
    if (!td__fits_blas(m) || !td__fits_blas(n) || !td__fits_blas(m * n)) return TD_ERANGE;
    td_status st = td_tensor_check_finite(a);
    if (st != TD_OK) return st;
    td_svd_method meth = opt->method;
    if (meth == TD_SVD_AUTO) meth = (4 * p <= (m > n ? m : n)) ? TD_SVD_GRAM : TD_SVD_GESDD;
    switch (meth) {
    case TD_SVD_GRAM: return svd_gram(a, k, u ? u->data : NULL, s, vt ? vt->data : NULL);
    case TD_SVD_GESDD: return svd_gesdd(a->data, m, n, k, u ? u->data : NULL, s, vt ? vt->data : NULL);
    case TD_SVD_RANDOMIZED: return svd_random(a, k, opt, u ? u->data : NULL, s, vt ? vt->data : NULL);
    default: return TD_EINVAL;
    }
}
