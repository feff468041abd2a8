/* Truncated SVD: routes chosen by a flop estimate (randomised range finder in rsvd.c, Gram +
 * dsyevd, dgesdd), symmetric eigensolvers, and values-only mode spectra. */
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
    opt->power_iters = 1;
    opt->seed = 0;
    opt->max_power_iters = 8;
    opt->power_tol = -1.0; /* automatic, see td__svd_power_tol */
    opt->float_passes = 1;
}

int td__float_exponent(const double *x, size_t n)
{
    double amax = 0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(x[i]));
    int e = 0;
    if (amax > 0) frexp(amax, &e);
    return e;
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

td_status td__sign_flip_with_v(double *u, size_t m, size_t k, const double *v, size_t n, double *vt)
{
    double *fl = malloc(k * sizeof(double) + 1);
    if (!fl) return TD_ENOMEM;
    td__sign_flip_columns(u, m, k, fl);
    if (vt)
        for (size_t c = 0; c < k; c++)
            for (size_t j = 0; j < n; j++) vt[c * n + j] = fl[c] * v[j * k + c];
    free(fl);
    return TD_OK;
}

/* dsyevr with an index range pays only when few of many pairs are wanted: at n = 512 the
 * tridiagonalisation dominates and dsyevd for all pairs was faster even for k = n/4. At n = 4096
 * the index range still won at k = n/4 (19.4 s against 26.1 s for dsyevd, 2 threads, a loaded
 * machine): the VGG-16 fc6 Gram at rank 1024. */
#define EIG_RANGE_MIN_N 1024
#define EIG_RANGE_FRACTION 8 /* k * this <= n */
#define EIG_RANGE_WIDE_N 4096
#define EIG_RANGE_WIDE_FRACTION 4 /* from EIG_RANGE_WIDE_N on */
/* Values only stay on dsyevd 'N' (dsytrd + dsterf): dsyevd_2stage 'N' won in isolation (n = 2048:
 * 1.76 / 1.04 s on 1 thread; n = 4096: 14.7 / 13.8 s on 2) but td_mode_spectrum of a 4096 x 11008
 * matrix took 30.8 and 35.4 s with it against 24.5 and 21.7 s without (alternating runs). */

/* Leading k pairs of g by dsyevr 'I' (column-major = row-major for a symmetric matrix); the k
 * values, descending, into top if not NULL. */
static td_status eig_range(double *a, size_t n, size_t k, double *vecs, double *top)
{
    double *w = malloc(n * sizeof(double)), *z = malloc(n * k * sizeof(double));
    lapack_int *isuppz = malloc(2 * k * sizeof(lapack_int)), found = 0;
    td_status st = TD_OK;
    if (!w || !z || !isuppz) { st = TD_ENOMEM; goto done; }
    const lapack_int N = (lapack_int)n;
    lapack_int info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'U', N, a, N, 0.0, 0.0,
                                     N - (lapack_int)k + 1, N, 0.0, &found, w, z, N, isuppz);
    if (info != 0 || found != (lapack_int)k) { st = info < 0 ? TD_EINTERNAL : TD_ELAPACK; goto done; }
    for (size_t c = 0; c < k; c++) {  /* ascending: the largest is the last column */
        const double *v = z + (k - 1 - c) * n;
        if (top) top[c] = w[k - 1 - c];
        for (size_t i = 0; i < n; i++) vecs[i * k + c] = v[i];
    }
    td__sign_flip_columns(vecs, n, k, NULL);
done:
    free(w);
    free(z);
    free(isuppz);
    return st;
}

/* Shared body: all n values into evals, or (range route, evals NULL) the k leading into top. */
static td_status sym_eig(const double *g, size_t n, size_t k, double *vecs, double *evals, double *top)
{
    if (k > n) return TD_EINVAL;
    if (n == 0) return TD_OK;
    if (!td__fits_blas(n) || n > 46000) return TD_ERANGE; /* n*n must fit an int for LAPACK */
    double *a = malloc(n * n * sizeof(double)), *w = malloc(n * sizeof(double));
    td_status st = TD_OK;
    if (!a || !w) { st = TD_ENOMEM; goto done; }
    memcpy(a, g, n * n * sizeof(double));
    const size_t frac = n >= EIG_RANGE_WIDE_N ? EIG_RANGE_WIDE_FRACTION : EIG_RANGE_FRACTION;
    if (vecs && !evals && k > 0 && n >= EIG_RANGE_MIN_N && k * frac <= n) {
        st = eig_range(a, n, k, vecs, top);
        goto done;
    }
    /* Symmetric, so row- and column-major are the same matrix; column-major avoids LAPACKE's
     * transposed copies. Eigenvector j is then contiguous at a + j*n. */
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, vecs ? 'V' : 'N', 'U', (lapack_int)n, a,
                                     (lapack_int)n, w);
    if (info != 0) { st = info < 0 ? TD_EINTERNAL : TD_ELAPACK; goto done; }
    if (evals)
        for (size_t i = 0; i < n; i++) evals[i] = w[n - 1 - i];
    if (top)
        for (size_t i = 0; i < k; i++) top[i] = w[n - 1 - i];
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

td_status td__sym_eig_leading(const double *g, size_t n, size_t k, double *vecs, double *evals)
{
    return sym_eig(g, n, k, vecs, evals, NULL);
}

td_status td__sym_eig_top(const double *g, size_t n, size_t k, double *vecs, double *top)
{
    return sym_eig(g, n, k, vecs, NULL, top);
}

/* The (size/I_n)^2 Gram X_(n)^T X_(n), for a values-only spectrum when it is the smaller one. End
 * modes read x in place; an interior mode copies the unfolding (size doubles). */
static td_status cross_gram(const td_tensor *x, const td_unfolding *uf, double *g)
{
    const size_t n = uf->rows, cols = uf->left * uf->right;
    if (!td__fits_blas(n) || !td__fits_blas(cols) || !td__fits_blas(x->size)) return TD_ERANGE;
    if (uf->left == 1) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)n, 1.0, x->data,
                    (int)cols, 0.0, g, (int)cols);
    } else if (uf->right == 1) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)cols, (int)n, 1.0, x->data,
                    (int)n, 0.0, g, (int)cols);
    } else {
        double *buf = malloc(x->size * sizeof(double));
        if (!buf) return TD_ENOMEM;
        const size_t t = uf->right;
        for (size_t l = 0; l < uf->left; l++)
            for (size_t i = 0; i < n; i++)
                memcpy(buf + i * cols + l * t, x->data + (l * n + i) * t, t * sizeof(double));
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)n, 1.0, buf, (int)cols,
                    0.0, g, (int)cols);
        free(buf);
    }
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j < i; j++) g[i * cols + j] = g[j * cols + i];
    return TD_OK;
}

/* Values only: eigenvalues (dsyevd 'N') of the smaller Gram into s2 (length I_n, zero-padded). */
static td_status spectrum_values(const td_tensor *x, int mode, double *s2)
{
    td_unfolding uf;
    td_status st = td_unfolding_of(x, mode, &uf);
    if (st != TD_OK) return st;
    const size_t n = uf.rows, cols = n ? x->size / n : 0, p = cols < n ? cols : n;
    td_tensor g = {0};
    double *ev = malloc((p ? p : 1) * sizeof(double));
    if (!ev) return TD_ENOMEM;
    if ((st = td_matrix_alloc(&g, p, p)) != TD_OK) goto done;
    if (cols < n) st = cross_gram(x, &uf, g.data);
    else st = td_gram(x, mode, &g);
    if (st == TD_OK) st = td__sym_eig_leading(g.data, p, 0, NULL, ev);
    if (st == TD_OK)
        for (size_t i = 0; i < n; i++) s2[i] = (i < p && ev[i] > 0) ? ev[i] : 0.0;
done:
    td_tensor_free(&g);
    free(ev);
    return st;
}

td_status td_mode_spectrum(const td_tensor *x, int mode, size_t k, td_tensor *u, double *s2)
{
    if (!x || mode < 0 || mode >= x->ndim) return TD_EINVAL;
    const size_t n = x->shape[mode];
    if (k > n) return TD_EINVAL;
    if (u && (u->ndim != 2 || u->shape[0] != n || u->shape[1] != k)) return TD_ESHAPE;
    if (!u) return s2 ? spectrum_values(x, mode, s2) : TD_OK;
    td_tensor g = {0};
    td_status st = td_matrix_alloc(&g, n, n);
    if (st != TD_OK) return st;
    if ((st = td_gram(x, mode, &g)) != TD_OK) goto done;
    double *ev = NULL;
    if (s2) {
        ev = malloc((n ? n : 1) * sizeof(double));
        if (!ev) { st = TD_ENOMEM; goto done; }
    }
    st = td__sym_eig_leading(g.data, n, k, u->data, ev);
    if (st == TD_OK && s2) {
        size_t cols = n ? x->size / n : 0, rk = n < cols ? n : cols;
        for (size_t i = 0; i < n; i++) s2[i] = (i < rk && ev[i] > 0) ? ev[i] : 0.0;
    }
    free(ev);
done:
    td_tensor_free(&g);
    return st;
}

/* The Gram route squares the condition number: with s_k / s_1 >= sqrt(GRAM_GUARD) (1e-4) the kept
 * vectors lose at most ~eps (s_1 / s_k)^2 ~ 1e-8 of accuracy, and the error reported by callers is
 * measured on what is returned anyway. AUTO takes the Gram route on near-square matrices only
 * under this guard; a spectrum that fails it goes to dgesdd. */
#define GRAM_GUARD 1e-8

/* Kept spectrum s_k^2 / s_1^2 at least this for td__svd_from_basis (its V is then orthonormal to
 * ~eps (s_1 / s_k)^2 <= ~1e-8, the Gram route's own bound). */
#define FROM_BASIS_GUARD 1e-8

td_status td__svd_from_basis(const double *uk, const double *z, size_t m, size_t n, size_t k, double *u, double *s,
                             double *vt, double *rz, int *ill)
{
    *ill = 1;
    if (k == 0) return TD_EINVAL;
    double *g = malloc(k * k * sizeof(double)), *vecs = malloc(k * k * sizeof(double)),
           *ev = calloc(k, sizeof(double)), *fl = malloc(k * sizeof(double));
    td_status st = TD_OK;
    if (!g || !vecs || !ev || !fl) { st = TD_ENOMEM; goto done; }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0, z, (int)k, 0.0, g, (int)k);
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < i; j++) g[i * k + j] = g[j * k + i];
    if ((st = td__sym_eig_leading(g, k, k, vecs, ev)) != TD_OK) goto done;
    if ((*ill = !(ev[k - 1] >= FROM_BASIS_GUARD * ev[0]))) goto done;
    for (size_t c = 0; c < k; c++) s[c] = sqrt(ev[c]);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)k, 1.0, uk, (int)k, vecs, (int)k,
                0.0, u, (int)k);
    td__sign_flip_columns(u, m, k, fl);
    if (vt) {
        /* vt = diag(fl / s) vecs^T z^T */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)n, (int)k, 1.0, vecs, (int)k, z, (int)k, 0.0,
                    vt, (int)n);
        for (size_t c = 0; c < k; c++)
            for (size_t j = 0; j < n; j++) vt[c * n + j] *= fl[c] / s[c];
    }
    if (rz) {
        memset(rz, 0, k * k * sizeof(double));
        for (size_t i = 0; i < k; i++) rz[i * k + i] = 1.0;
    }
done:
    free(g);
    free(vecs);
    free(ev);
    free(fl);
    return st;
}

td_status td__untranspose(const double *uw, const double *ut, size_t m, size_t n, size_t k, double *u, double *vt)
{
    for (size_t i = 0; i < m; i++)
        for (size_t c = 0; c < k; c++) u[i * k + c] = ut[c * m + i];
    return td__sign_flip_with_v(u, m, k, uw, n, vt);
}

/* Float32 Gram route for large matrices (float_passes): the Gram of the short side by SSYRK on
 * float blocks of A (each block's product added into a double Gram, so only one block's k terms
 * round in float), its k leading eigenvectors by ssyevr (about half dsyevr's time: the tridiagonal
 * reduction is memory-bound), then everything in double: the vectors orthonormalised into Q, the
 * projection Z = A^T Q (U side; A Q on the V side) and the exact SVD of B = Q^T A = Z^T from its
 * k x k Gram. The result is the exact SVD of the orthogonal projection Q Q^T A, so
 * ||A - U S V^T||^2 = ||A||^2 - sum s^2 holds for what is returned; float rounding (~1e-6 of the
 * Gram) only moves which subspace Q is, which changes the captured energy to second order. */
#define GRAM_FLOAT_BLOCK 2048
/* Kept spectrum lambda_k / lambda_1 at least this in float, else the double route: below it float
 * rounding of the Gram is no longer small against the kept eigenvalues. */
#define GRAM_FLOAT_GUARD 1e-4

/* g (p x p, double, upper) = A A^T (left) or A^T A, from float blocks of GRAM_FLOAT_BLOCK columns
 * (left) or rows of A. */
static td_status float_gram(const td_tensor *a, int left, double *g)
{
    const size_t m = a->shape[0], n = a->shape[1], p = left ? m : n, len = left ? n : m;
    const size_t bw = len < GRAM_FLOAT_BLOCK ? len : GRAM_FLOAT_BLOCK;
    float *buf = malloc(p * bw * sizeof(float)), *gb = malloc(p * p * sizeof(float));
    if (!buf || !gb) { free(buf); free(gb); return TD_ENOMEM; }
    memset(g, 0, p * p * sizeof(double));
    /* only the vectors and lambda_k / lambda_1 are used: the Gram of A 2^-e needs no scaling back */
    const double sc = ldexp(1.0, -td__float_exponent(a->data, a->size));
    for (size_t j0 = 0; j0 < len; j0 += bw) {
        const size_t b = len - j0 < bw ? len - j0 : bw;
        if (left) {
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < b; j++) buf[i * b + j] = (float)(sc * a->data[i * n + j0 + j]);
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)p, (int)b, 1.0f, buf, (int)b, 0.0f, gb, (int)p);
        } else {
            for (size_t i = 0; i < b * n; i++) buf[i] = (float)(sc * a->data[j0 * n + i]);
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p, (int)b, 1.0f, buf, (int)p, 0.0f, gb, (int)p);
        }
        for (size_t i = 0; i < p; i++)
            for (size_t j = i; j < p; j++) g[i * p + j] += (double)gb[i * p + j];
    }
    free(buf);
    free(gb);
    return TD_OK;
}

/* The k leading eigenvectors (q, p x k, row-major, double) and values (top) of the upper part of g,
 * by ssyevr on a float copy. */
static td_status float_eig_top(const double *g, size_t p, size_t k, double *q, double *top)
{
    float *a = malloc(p * p * sizeof(float)), *w = malloc(p * sizeof(float)), *z = malloc(p * k * sizeof(float));
    lapack_int *isuppz = malloc(2 * k * sizeof(lapack_int)), found = 0;
    td_status st = TD_OK;
    if (!a || !w || !z || !isuppz) { st = TD_ENOMEM; goto done; }
    /* row-major upper = column-major lower; both triangles filled, so 'U' reads the same matrix */
    for (size_t i = 0; i < p; i++)
        for (size_t j = i; j < p; j++) a[i * p + j] = a[j * p + i] = (float)g[i * p + j];
    const lapack_int P = (lapack_int)p;
    const lapack_int info = LAPACKE_ssyevr(LAPACK_COL_MAJOR, 'V', 'I', 'U', P, a, P, 0.0f, 0.0f, P - (lapack_int)k + 1,
                                           P, 0.0f, &found, w, z, P, isuppz);
    if (info != 0 || found != (lapack_int)k) { st = info < 0 ? TD_EINTERNAL : TD_ELAPACK; goto done; }
    for (size_t c = 0; c < k; c++) { /* ascending: the largest is the last column */
        const float *v = z + (k - 1 - c) * p;
        top[c] = (double)w[k - 1 - c];
        for (size_t i = 0; i < p; i++) q[i * k + c] = (double)v[i];
    }
done:
    free(a);
    free(w);
    free(z);
    free(isuppz);
    return st;
}

/* *ill = 1 (nothing written) when lambda_k < GRAM_FLOAT_GUARD lambda_1 (or the final k x k Gram
 * fails its own guard): the caller takes the double route. The wide one of A and A^T is worked on:
 * q spans its U, z = (its matrix)^T q, and a tall A's result is transposed back. */
static td_status svd_gram_float(const td_tensor *a, size_t k, double *u, double *s, double *vt, int *ill)
{
    const size_t m = a->shape[0], n = a->shape[1];
    const int left = m <= n, M = (int)m, N = (int)n, K = (int)k;
    const size_t p = left ? m : n, q_ = left ? n : m;
    double *g = malloc(p * p * sizeof(double)), *q = malloc(p * k * sizeof(double)), *top = malloc(k * sizeof(double)),
           *z = malloc(q_ * k * sizeof(double)), *uw = left && u ? u : malloc(p * k * sizeof(double)),
           *vw = left ? vt : malloc(k * q_ * sizeof(double));
    td_status st = TD_OK;
    *ill = 1;
    if (!g || !q || !top || !z || !uw || (!left && !vw)) { st = TD_ENOMEM; goto done; }
    if ((st = float_gram(a, left, g)) != TD_OK) goto done;
    if ((st = float_eig_top(g, p, k, q, top)) != TD_OK) goto done;
    free(g);
    g = NULL;
    if (!(top[k - 1] >= GRAM_FLOAT_GUARD * top[0])) goto done;
    if ((st = td__orthonormalise(q, p, k)) != TD_OK) goto done;
    /* z = A^T q (left, n x k) or A q (m x k): B = q^T A (or q^T A^T) = z^T, exactly in double */
    if (left) cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0, a->data, N, q, K, 0.0, z, K);
    else cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0, a->data, N, q, K, 0.0, z, K);
    free(top);
    top = NULL;
    if ((st = td__svd_from_basis(q, z, p, q_, k, uw, s, vw, NULL, ill)) != TD_OK || *ill || left) goto done;
    double *pu = u ? u : malloc(m * k * sizeof(double));
    if (!pu) { st = TD_ENOMEM; goto done; }
    st = td__untranspose(uw, vw, m, n, k, pu, vt);
    if (pu != u) free(pu);
done:
    free(g);
    free(q);
    free(top);
    free(z);
    if (uw != u) free(uw);
    if (vw != vt) free(vw);
    return st;
}

/* Gram route. m <= n: eig of A A^T gives U; V^T = S^-1 U^T A. m > n: eig of A^T A gives V.
 * guard > 0: when lambda_k < guard lambda_1, *ill = 1 and nothing is returned. */
static td_status svd_gram(const td_tensor *a, size_t k, double *u, double *s, double *vt, double guard, int *ill)
{
    const size_t m = a->shape[0], n = a->shape[1];
    const int left = m <= n;
    const size_t p = left ? m : n;
    double *g = malloc(p * p * sizeof(double)), *vec = malloc(p * k * sizeof(double) + 1),
           *ev = malloc(k * sizeof(double) + 1);
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
    if ((st = td__sym_eig_top(g, p, k, vec, ev)) != TD_OK) goto done; /* ev: s^2 */
    if ((*ill = guard > 0 && k > 0 && !(ev[k - 1] >= guard * ev[0]))) goto done;
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
        st = td__sign_flip_with_v(uu, m, k, vec, n, vt);
        if (!u) free(uu);
    }
done:
    free(g);
    free(vec);
    free(ev);
    return st;
}

td_status td__svd_gesdd(const double *adata, size_t m, size_t n, size_t k, double *u, double *s,
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


/* Householder QR (dgeqrf + dorgqr): stable for any y; R (l x l, upper) into r if not NULL. */
static td_status householder_q(double *y, size_t m, size_t l, double *r)
{
    double *tau = malloc(l * sizeof(double) + 1);
    if (!tau) return TD_ENOMEM;
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, y,
                                     (lapack_int)l, tau);
    if (info == 0 && r)
        for (size_t i = 0; i < l; i++)
            for (size_t j = 0; j < l; j++) r[i * l + j] = j >= i && i < m ? y[i * l + j] : 0.0;
    if (info == 0)
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, (lapack_int)l, y,
                              (lapack_int)l, tau);
    free(tau);
    return info == 0 ? TD_OK : (info < 0 ? TD_EINTERNAL : TD_ELAPACK);
}

/* One Cholesky-QR pass y <- y R^-1 with R^T R = y^T y; g (l x l) is workspace and holds R (upper,
 * row-major) on return. g0, if not NULL, is y^T y already computed (its upper part is read).
 * Returns 0 when the Gram is not numerically positive definite. */
static int cholqr_pass(double *y, size_t m, size_t l, double *g, const double *g0, double *offdiag)
{
    const int M = (int)m, L = (int)l;
    if (g0) memcpy(g, g0, l * l * sizeof(double));
    else cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, L, M, 1.0, y, L, 0.0, g, L);
    double dev = 0;
    for (size_t i = 0; i < l; i++)
        for (size_t j = i; j < l; j++) dev = fmax(dev, fabs(g[i * l + j] - (i == j ? 1.0 : 0.0)));
    if (offdiag) *offdiag = dev;
    /* row-major upper = column-major lower: dpotrf 'L' there gives R upper in row-major */
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', L, g, L) != 0) return 0;
    for (size_t i = 0; i < l; i++)
        for (size_t j = 0; j < i; j++) g[i * l + j] = 0.0;
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, M, L, 1.0, g, L, y, L);
    return 1;
}

/* A first pass leaves y orthonormal to ~kappa(y)^2 eps; the second pass's Gram measures that.
 * Below this deviation from I the second pass restores orthogonality to ~eps (CholeskyQR2). */
#define CHOLQR_MAX_DEVIATION 0.1

td_status td__orthonormalise_r(double *y, size_t m, size_t l, const double *g0, double *r)
{
    if (l == 0) return TD_OK;
    if (m < l) return householder_q(y, m, l, r);
    /* CholeskyQR2: SYRK + Cholesky + TRSM twice, all BLAS-3 (Householder's panels are not);
     * Householder when the Gram is singular or too far from I after the first pass */
    double *g = malloc(2 * l * l * sizeof(double)), *keep = malloc(m * l * sizeof(double));
    if (!g || !keep) { free(g); free(keep); return TD_ENOMEM; }
    double *r1 = g + l * l, dev = 0;
    memcpy(keep, y, m * l * sizeof(double));
    int ok = cholqr_pass(y, m, l, r1, g0, NULL) && cholqr_pass(y, m, l, g, NULL, &dev) &&
             dev < CHOLQR_MAX_DEVIATION;
    for (size_t i = 0; i < m * l && ok; i++) ok = isfinite(y[i]);
    if (ok && r) { /* R = R2 R1 */
        memcpy(r, r1, l * l * sizeof(double));
        cblas_dtrmm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, (int)l, (int)l,
                    1.0, g, (int)l, r, (int)l);
    }
    if (!ok) memcpy(y, keep, m * l * sizeof(double)); /* ill-conditioned: start again from y */
    free(g);
    free(keep);
    return ok ? TD_OK : householder_q(y, m, l, r);
}

td_status td__orthonormalise(double *y, size_t m, size_t l)
{
    return td__orthonormalise_r(y, m, l, NULL, NULL);
}

td_status td__orthonormalise_span(double *y, size_t m, size_t l, const double *g)
{
    if (l == 0) return TD_OK;
    if (m < l) return householder_q(y, m, l, NULL);
    double *r = malloc(l * l * sizeof(double));
    if (!r) return TD_ENOMEM;
    /* one pass leaves y orthonormal to ~kappa^2 eps, enough for a basis; singular: Householder */
    int ok = cholqr_pass(y, m, l, r, g, NULL);
    free(r);
    return ok ? TD_OK : td__orthonormalise(y, m, l);
}

/* Cost model, in DGEMM-equivalent flops. The symmetric and bidiagonal reductions are half BLAS-2
 * and ran ~3-4x below DGEMM here (dsyevd 512: 1.2 GFLOP in 30 ms against 150 GF/s DGEMM). */
#define COST_REDUCTION_WEIGHT 3.0
#define COST_EXPECTED_POWER_ITERS 2.0
/* Randomised only when k + oversample is at most this fraction of the short side. */
#define RSVD_MAX_FRACTION 4

td_svd_method td__svd_auto_method(size_t m, size_t n, size_t k, int oversample)
{
    const size_t ps = m < n ? m : n, qs = m < n ? n : m;
    const double p = (double)ps, q = (double)qs, kk = (double)k, W = COST_REDUCTION_WEIGHT;
    const size_t ls = k + (size_t)(oversample > 0 ? oversample : 0);
    const double l = (double)ls, it = COST_EXPECTED_POWER_ITERS;
    const double gram = q * p * p + W * 9.0 * p * p * p + 2.0 * q * p * kk;
    const double gesdd = W * (6.0 * q * p * p + 11.0 * p * p * p);
    const double rand = (2.0 + 4.0 * it) * p * q * l + 4.0 * l * l * ((1.0 + it) * (double)m + it * (double)n) +
                        W * (6.0 * (double)n * l * l + 11.0 * l * l * l);
    /* near-square matrices take the Gram route only under GRAM_GUARD (run_route) */
    const double exact = fmin(gram, gesdd);
    if (ls * RSVD_MAX_FRACTION <= ps && rand < exact) return TD_SVD_RANDOMIZED;
    return gram <= gesdd ? TD_SVD_GRAM : TD_SVD_GESDD;
}

/* The exact route AUTO takes (a randomised run's fallback too). */
static td_svd_method exact_route(size_t m, size_t n, size_t k)
{
    const td_svd_method r = td__svd_auto_method(m, n, k, -1);
    return r == TD_SVD_RANDOMIZED ? TD_SVD_GRAM : r;
}

static td_status run_route(td_svd_method meth, const td_tensor *a, size_t k, const td_svd_options *opt,
                           double *u, double *s, double *vt, td__svd_info *info)
{
    const size_t m = a->shape[0], n = a->shape[1];
    info->method = meth;
    switch (meth) {
    case TD_SVD_GRAM: {
        /* chosen, not asked for: near-square matrices need a well-conditioned kept spectrum */
        const size_t p = m < n ? m : n, q = m < n ? n : m;
        int ill = 0;
        if (opt->float_passes >= 2 || (opt->float_passes == 1 && (double)m * (double)n >= (double)RSVD_FLOAT_MIN_SIZE)) {
            td_status st = svd_gram_float(a, k, u, s, vt, &ill);
            if (st == TD_ENOMEM || (st == TD_OK && !ill)) {
                info->float_gram = st == TD_OK;
                return st;
            }
            ill = 0; /* guard failed, or LAPACK's float solver did: the double route */
        }
        td_status st = svd_gram(a, k, u, s, vt, opt->method != TD_SVD_GRAM && 4 * p > q ? GRAM_GUARD : 0, &ill);
        if (st != TD_OK || !ill) return st;
        info->method = TD_SVD_GESDD;
        return td__svd_gesdd(a->data, m, n, k, u, s, vt);
    }
    case TD_SVD_GESDD: return td__svd_gesdd(a->data, m, n, k, u, s, vt);
    case TD_SVD_RANDOMIZED: {
        int ok = 1;
        td_status st = td__svd_random(a, k, opt, u, s, vt, &ok, info);
        if (st != TD_OK || ok) return st;
        /* the power iteration stalled (flat spectrum) or the residual check found a direction
         * larger than the kept ones: the exact route */
        info->fell_back = 1;
        return run_route(exact_route(m, n, k), a, k, opt, u, s, vt, info);
    }
    default: return TD_EINVAL;
    }
}

td_status td__svd_trunc_ex(const td_tensor *a, size_t k, const td_svd_options *opt, td_tensor *u,
                           double *s, td_tensor *vt, td__svd_info *info)
{
    td_svd_options def;
    td__svd_info scratch;
    if (!opt) { td_svd_options_init(&def); opt = &def; }
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    if (!a || a->ndim != 2 || !s) return TD_EINVAL;
    const size_t m = a->shape[0], n = a->shape[1], p = m < n ? m : n;
    if (k < 1 || k > p) return TD_EINVAL;
    if (u && (u->ndim != 2 || u->shape[0] != m || u->shape[1] != k)) return TD_ESHAPE;
    if (vt && (vt->ndim != 2 || vt->shape[0] != k || vt->shape[1] != n)) return TD_ESHAPE;
    if (!td__fits_blas(m) || !td__fits_blas(n) || !td__fits_blas(m * n)) return TD_ERANGE;
    if (opt->method < TD_SVD_AUTO || opt->method > TD_SVD_RANDOMIZED) return TD_EINVAL;
    td_status st = td_tensor_check_finite(a);
    if (st != TD_OK) return st;
    td_svd_method meth = opt->method;
    if (meth == TD_SVD_AUTO) meth = td__svd_auto_method(m, n, k, opt->oversample);
    return run_route(meth, a, k, opt, u ? u->data : NULL, s, vt ? vt->data : NULL, info);
}

td_status td_svd_trunc(const td_tensor *a, size_t k, const td_svd_options *opt, td_tensor *u,
                       double *s, td_tensor *vt)
{
    return td__svd_trunc_ex(a, k, opt, u, s, vt, NULL);
}

/* --- workspace queries (tests/core/test_workspace.c checks them against the heap taken) --- */

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

/* Float32 Gram route (svd_gram_float): the double Gram, the basis, the worked-on U (when not the
 * caller's), the projection z and a tall matrix's worked-on V^T, then the largest of its phases:
 * the float block and block Gram, ssyevr's float copy, vectors and work (26 p floats and 10 p
 * ints), the orthonormalisation (CholeskyQR2's copy, or Householder's), td__svd_from_basis (two
 * k x k matrices and the eigensolve's copy and work), a tall matrix's U. Its fallback, the double route,
 * runs after it has freed everything (the caller takes the larger of the two). */
static double gram_float_doubles(double m, double n, double k)
{
    const double p = fmin(m, n), q = fmax(m, n);
    const double base = p * p + 2.0 * p * k + q * k + k + (m > n ? k * q : 0);
    const double phase = fmax(fmax(0.5 * p * p + 0.5 * p * fmin(q, GRAM_FLOAT_BLOCK), 0.5 * p * p + 0.5 * p * k + 40.0 * p + k),
                              fmax(2.0 * k * k + p * k + 64.0 * k + p, 6.0 * k * k + 16.0 * k + 8.0 + (m > n ? m * k : 0)));
    return base + phase + 16.0;
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
    /* float32 passes on large matrices: a float copy of A and two float operands */
    const int fl = opt->float_passes >= 2 || (opt->float_passes == 1 && (double)m * (double)n >= (double)RSVD_FLOAT_MIN_SIZE);
    /* narrowing a float32 range to k columns (L k + M k), a tall A's transposed outputs (M + N) k */
    const double rand = 3.0 * (M + N) * L + N * L + M * K + 4.0 * L * L + gesdd_doubles(L, N) +
                        (fl ? 0.5 * M * N + fmax(M, N) * L + (L + M) * K : 0) + (m > n ? (M + N) * K : 0);
    /* the Gram route in float32 first when float passes apply (then, if its guard fails, double) */
    const double gram = fmax(gram_doubles(M, N, K), fl ? gram_float_doubles(M, N, K) : 0);
    const double exact = fmax(gesdd_doubles(M, N), gram);
    double d = exact;
    if (opt->method == TD_SVD_GRAM) d = gram;
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
