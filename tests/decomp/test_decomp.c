/* Decompositions: exact recovery, orthonormality, error bounds, edge cases, statuses. */
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/naive.h"
#include "common/testutil.h"
#include "decomp/decomp_internal.h"

/* x = sum_r a0[:,r] o a1[:,r] o ... (exact CP tensor) from random factors. */
static void cp_tensor(td_tensor *x, int nd, const size_t *shape, size_t r, uint64_t seed)
{
    td_cp_result m;
    memset(&m, 0, sizeof m);
    m.ndim = nd;
    m.rank = r;
    for (int k = 0; k < nd; k++) tt_random_matrix(&m.factors[k], shape[k], r, seed + (uint64_t)k);
    ck_assert_int_eq(td_tensor_alloc(x, nd, shape), TD_OK);
    TT_OK(td_cp_full(&m, x));
    td_cp_free(&m);
}

/* Exact multilinear-rank tensor: random core times random factors. */
static void tucker_tensor(td_tensor *x, int nd, const size_t *shape, const size_t *ranks, uint64_t seed)
{
    td_tensor core, f[TD_MAX_MODES];
    const td_tensor *mp[TD_MAX_MODES];
    tt_random(&core, nd, ranks, seed);
    for (int k = 0; k < nd; k++) {
        tt_random_matrix(&f[k], shape[k], ranks[k], seed + 10 + (uint64_t)k);
        mp[k] = &f[k];
    }
    ck_assert_int_eq(td_tensor_alloc(x, nd, shape), TD_OK);
    TT_OK(td_ttm_multi(&core, mp, -1, 0, x));
    for (int k = 0; k < nd; k++) td_tensor_free(&f[k]);
    td_tensor_free(&core);
}

START_TEST(test_svd_known_spectrum)
{
    /* A = Q1 diag(s) Q2^T with orthonormal Q from the QR-free construction: take the Tucker
     * factors of random matrices (orthonormal by td_mode_spectrum). */
    const size_t m = 30, n = 12;
    const double sv[12] = {10, 8, 6, 5, 4, 3, 2, 1, 0.5, 0.25, 0.1, 0.05};
    td_tensor r1, r2, q1, q2, a;
    tt_random_matrix(&r1, m, m, 1);
    tt_random_matrix(&r2, n, n, 2);
    ck_assert_int_eq(td_matrix_alloc(&q1, m, n), TD_OK);
    ck_assert_int_eq(td_matrix_alloc(&q2, n, n), TD_OK);
    TT_OK(td_mode_spectrum(&r1, 0, n, &q1, NULL));
    TT_OK(td_mode_spectrum(&r2, 0, n, &q2, NULL));
    ck_assert(tt_orth_cols(&q1) < 1e-13 && tt_orth_cols(&q2) < 1e-13);
    ck_assert_int_eq(td_matrix_alloc(&a, m, n), TD_OK);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t c = 0; c < n; c++) s += q1.data[i * n + c] * sv[c] * q2.data[j * n + c];
            a.data[i * n + j] = s;
        }
    const td_svd_method methods[4] = {TD_SVD_AUTO, TD_SVD_GRAM, TD_SVD_GESDD, TD_SVD_RANDOMIZED};
    for (int mi = 0; mi < 4; mi++) {
        td_svd_options o;
        td_svd_options_init(&o);
        o.method = methods[mi];
        o.power_iters = 4;
        const size_t k = 5;
        td_tensor u, vt;
        double s[5];
        ck_assert_int_eq(td_matrix_alloc(&u, m, k), TD_OK);
        ck_assert_int_eq(td_matrix_alloc(&vt, k, n), TD_OK);
        TT_OK(td_svd_trunc(&a, k, &o, &u, s, &vt));
        double tol = methods[mi] == TD_SVD_RANDOMIZED ? 1e-8 : 1e-12;
        for (size_t c = 0; c < k; c++) ck_assert_msg(fabs(s[c] - sv[c]) < tol * 10, "method %d s%zu", mi, c);
        ck_assert(tt_orth_cols(&u) < 1e-10);
        /* Sign convention: the largest-|.| entry of each column of u is positive. */
        for (size_t c = 0; c < k; c++) {
            size_t best = 0;
            for (size_t i = 0; i < m; i++)
                if (fabs(u.data[i * k + c]) > fabs(u.data[best * k + c])) best = i;
            ck_assert(u.data[best * k + c] > 0);
        }
        /* u diag(s) vt equals the best rank-k approximation sum_c sv_c q1_c q2_c^T. */
        double worst = 0;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                double got = 0, want = 0;
                for (size_t c = 0; c < k; c++) {
                    got += u.data[i * k + c] * s[c] * vt.data[c * n + j];
                    want += q1.data[i * n + c] * sv[c] * q2.data[j * n + c];
                }
                worst = fmax(worst, fabs(got - want));
            }
        ck_assert_msg(worst < (methods[mi] == TD_SVD_RANDOMIZED ? 1e-7 : 1e-11), "method %d recon %g", mi, worst);
        td_tensor_free(&u);
        td_tensor_free(&vt);
    }
    /* tall and wide through the transposed Gram route */
    td_tensor at, u2;
    ck_assert_int_eq(td_matrix_alloc(&at, n, m), TD_OK);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) at.data[j * m + i] = a.data[i * n + j];
    double s2[3];
    ck_assert_int_eq(td_matrix_alloc(&u2, n, 3), TD_OK);
    td_svd_options o;
    td_svd_options_init(&o);
    o.method = TD_SVD_GRAM;
    TT_OK(td_svd_trunc(&at, 3, &o, &u2, s2, NULL));
    for (int c = 0; c < 3; c++) ck_assert(fabs(s2[c] - sv[c]) < 1e-11);
    ck_assert_int_eq(td_svd_trunc(&at, 13, &o, &u2, s2, NULL), TD_EINVAL);
    at.data[3] = NAN;
    ck_assert_int_eq(td_svd_trunc(&at, 3, &o, &u2, s2, NULL), TD_ENOTFINITE);
    td_tensor_free(&at); td_tensor_free(&u2);
    td_tensor_free(&r1); td_tensor_free(&r2); td_tensor_free(&q1); td_tensor_free(&q2); td_tensor_free(&a);
}
END_TEST

/* Singular values of the m x n row-major a by LAPACK directly (dgesdd 'N'): the reference. */
static void lapack_values(const td_tensor *a, double *s)
{
    const size_t m = a->shape[0], n = a->shape[1];
    double *c = malloc(a->size * sizeof(double));
    ck_assert(c != NULL);
    memcpy(c, a->data, a->size * sizeof(double));
    /* row-major m x n is column-major n x m: the same singular values, no LAPACKE transpose */
    ck_assert_int_eq(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)n, (lapack_int)m, c, (lapack_int)n, s,
                                    NULL, 1, NULL, 1), 0);
    free(c);
}

/* ||a - u diag(s) vt||_F / ||a||_F by loops, and the formula sqrt(||a||^2 - sum s^2) / ||a||. */
static void svd_errors(const td_tensor *a, const td_tensor *u, const double *s, const td_tensor *vt, size_t k,
                       double *recomposed, double *formula)
{
    const size_t m = a->shape[0], n = a->shape[1];
    double r2 = 0, a2 = 0, s2 = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double v = a->data[i * n + j];
            for (size_t c = 0; c < k; c++) v -= u->data[i * k + c] * s[c] * vt->data[c * n + j];
            r2 += v * v;
            a2 += a->data[i * n + j] * a->data[i * n + j];
        }
    for (size_t c = 0; c < k; c++) s2 += s[c] * s[c];
    *recomposed = sqrt(r2 / a2);
    *formula = sqrt(fmax(a2 - s2, 0) / a2);
}

/* One randomised run against LAPACK's exact values; returns the info. */
static td__svd_info check_random_route(const td_tensor *a, size_t k, const td_svd_options *o, double s_tol,
                                       double err_rtol)
{
    const size_t m = a->shape[0], n = a->shape[1], p = m < n ? m : n;
    td_tensor u, vt;
    double *s = malloc(k * sizeof(double)), *ex = malloc(p * sizeof(double));
    ck_assert(s && ex);
    ck_assert_int_eq(td_matrix_alloc(&u, m, k), TD_OK);
    ck_assert_int_eq(td_matrix_alloc(&vt, k, n), TD_OK);
    td__svd_info info;
    TT_OK(td__svd_trunc_ex(a, k, o, &u, s, &vt, &info));
    lapack_values(a, ex);
    for (size_t c = 0; c < k; c++)
        ck_assert_msg(fabs(s[c] - ex[c]) <= s_tol * ex[0], "s%zu %.17g vs %.17g", c, s[c], ex[c]);
    ck_assert(tt_orth_cols(&u) < 1e-12);
    ck_assert(tt_orth_defect(vt.data, vt.shape[0], vt.shape[1], 1) < 1e-12);
    double rec, form, a2 = 0, kept = 0;
    svd_errors(a, &u, s, &vt, k, &rec, &form);
    /* the reported error (the formula) is exact for what is returned */
    ck_assert_msg(fabs(rec - form) < 1e-9, "recomposed %.12g formula %.12g", rec, form);
    for (size_t c = 0; c < p; c++) a2 += ex[c] * ex[c];
    for (size_t c = 0; c < k; c++) kept += ex[c] * ex[c];
    const double exact = sqrt(fmax(a2 - kept, 0) / a2);
    ck_assert_msg(rec <= exact * (1 + err_rtol) + 1e-12 && rec >= exact * (1 - 1e-9) - 1e-12,
                  "error %.12g exact truncated %.12g", rec, exact);
    td_tensor_free(&u);
    td_tensor_free(&vt);
    free(s);
    free(ex);
    return info;
}

START_TEST(test_svd_randomized_low_rank_noise)
{
    enum { P = 24 };
    double sv[P];
    for (int c = 0; c < P; c++) sv[c] = 100.0 * pow(0.8, c);
    const size_t m = 240, n = 600, k = 16;
    td_tensor a, at;
    tt_matrix_with_spectrum(&a, m, n, sv, P, 1e-3, 31);
    ck_assert_int_eq(td_matrix_alloc(&at, n, m), TD_OK);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) at.data[j * m + i] = a.data[i * n + j];
    /* AUTO takes the randomised route here: k + 10 = 26 <= 240/4 and fewer flops */
    ck_assert_int_eq(td__svd_auto_method(m, n, k, 10), TD_SVD_RANDOMIZED);
    ck_assert_int_eq(td__svd_auto_method(m, n, 100, 10), TD_SVD_GRAM); /* cheaper; guarded at run time */
    ck_assert_int_eq(td__svd_auto_method(600, 4000, 300, 10), TD_SVD_GRAM);
    td_svd_options o;
    td_svd_options_init(&o);
    td__svd_info info = check_random_route(&a, k, &o, 1e-12, 1e-9);
    ck_assert_int_eq(info.method, TD_SVD_RANDOMIZED);
    ck_assert_int_eq(info.fell_back, 0);
    ck_assert(info.power_iters >= 1 && info.power_iters < o.max_power_iters);
    info = check_random_route(&at, k, &o, 1e-12, 1e-9);   /* tall */
    ck_assert_int_eq(info.method, TD_SVD_RANDOMIZED);
    /* no power iteration and no oversampling: the residual check sends it to the exact route */
    o.method = TD_SVD_RANDOMIZED;
    o.power_iters = o.max_power_iters = 0;
    o.oversample = 0;
    info = check_random_route(&a, k, &o, 1e-12, 1e-9);
    ck_assert_int_eq(info.fell_back, 1);
    /* the exact route AUTO would take: the Gram here (cheaper, s_16 / s_1 ~ 0.04 passes its guard) */
    ck_assert_int_eq(info.method, TD_SVD_GRAM);
    td_tensor_free(&a);
    td_tensor_free(&at);
}
END_TEST

START_TEST(test_svd_randomized_flat_spectrum)
{
    enum { P = 120 };
    const size_t m = 120, n = 300, k = 10;
    double sv[P];
    for (int c = 0; c < P; c++) sv[c] = 1.0;
    td_tensor a;
    tt_matrix_with_spectrum(&a, m, n, sv, P, 0, 41);
    td_svd_options o;
    td_svd_options_init(&o);
    o.method = TD_SVD_RANDOMIZED;
    /* exactly flat: any k-subspace is optimal, the tail cannot change, the iteration stops right
     * after its minimum (one more when the first iterate grew the range) instead of running to
     * the cap; error sqrt(1 - k/p) */
    td__svd_info info = check_random_route(&a, k, &o, 1e-12, 1e-12);
    ck_assert_msg(info.power_iters <= 2, "iterations %d", info.power_iters);
    ck_assert_int_eq(info.fell_back, 0);
    ck_assert(fabs(sqrt(info.tail) / sqrt((double)P) - sqrt(1.0 - (double)k / P)) < 1e-12);
    td_tensor_free(&a);
    /* whitened-like: nearly flat with noise; the error stays within 1e-3 of the optimum, by the
     * power iteration or, when it stalls, by the exact route */
    for (int c = 0; c < P; c++) sv[c] = 1.0 - 0.3 * c / P;
    tt_matrix_with_spectrum(&a, m, n, sv, P, 0.01, 43);
    info = check_random_route(&a, k, &o, 0.05, 1e-3);
    ck_assert(info.power_iters >= 1 && info.power_iters <= o.max_power_iters);
    ck_assert(info.stalled ? info.fell_back && info.method != TD_SVD_RANDOMIZED : info.method == TD_SVD_RANDOMIZED);
    td_tensor_free(&a);
}
END_TEST

START_TEST(test_values_only_spectrum)
{
    /* shapes where the short Gram is the mode's own, and where it is the other side (end and
     * interior modes) */
    const size_t shapes[4][3] = {{6, 5, 4}, {40, 3, 2}, {3, 40, 2}, {2, 3, 40}};
    for (int si = 0; si < 4; si++)
        for (int mode = 0; mode < 3; mode++) {
            td_tensor x, unf, u;
            tt_random(&x, 3, shapes[si], 50 + (uint64_t)si);
            const size_t in = shapes[si][mode], cols = x.size / in, p = in < cols ? in : cols;
            ck_assert_int_eq(td_matrix_alloc(&unf, in, cols), TD_OK);
            nv_unfold(&x, mode, &unf);
            double *ex = malloc(p * sizeof(double)), *vo = malloc(in * sizeof(double)),
                   *full = malloc(in * sizeof(double));
            ck_assert(ex && vo && full);
            lapack_values(&unf, ex);
            ck_assert_int_eq(td_matrix_alloc(&u, in, in), TD_OK);
            TT_OK(td_mode_spectrum(&x, mode, 0, NULL, vo));
            TT_OK(td_mode_spectrum(&x, mode, in, &u, full));
            for (size_t i = 0; i < in; i++) {
                const double want = i < p ? ex[i] * ex[i] : 0.0;
                ck_assert_msg(fabs(vo[i] - want) < 1e-11 * ex[0] * ex[0], "shape %d mode %d i %zu", si, mode, i);
                ck_assert(fabs(full[i] - want) < 1e-11 * ex[0] * ex[0]);
            }
            free(ex); free(vo); free(full);
            td_tensor_free(&x); td_tensor_free(&unf); td_tensor_free(&u);
        }
}
END_TEST

START_TEST(test_sym_eig_index_range)
{
    /* n >= 1024 and k <= n/8 takes dsyevr's index range; the truth is LAPACK's dsyevd called here */
    const size_t n = 1030, k = 12;
    td_tensor b;
    tt_random_matrix(&b, n, n, 61);
    double *g = malloc(n * n * sizeof(double)), *w = malloc(n * sizeof(double)),
           *ref = malloc(n * n * sizeof(double)), *vec = malloc(n * k * sizeof(double)), top[12];
    ck_assert(g && w && ref && vec);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) g[i * n + j] = b.data[i * n + j] + b.data[j * n + i];
    memcpy(ref, g, n * n * sizeof(double));
    ck_assert_int_eq(LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)n, ref, (lapack_int)n, w), 0);
    TT_OK(td__sym_eig_top(g, n, k, vec, top));
    for (size_t c = 0; c < k; c++) {
        const double want = w[n - 1 - c];
        ck_assert_msg(fabs(top[c] - want) < 1e-10 * fabs(w[n - 1]), "value %zu", c);
        double dot = 0;
        for (size_t i = 0; i < n; i++) dot += vec[i * k + c] * ref[(n - 1 - c) * n + i];
        ck_assert_msg(fabs(fabs(dot) - 1) < 1e-8, "vector %zu: |dot| %.12g", c, fabs(dot));
    }
    free(g); free(w); free(ref); free(vec);
    td_tensor_free(&b);
}
END_TEST

START_TEST(test_orthonormalise_paths)
{
    /* well conditioned (Cholesky-QR), exactly rank deficient and ill conditioned (the Householder
     * fallback): orthonormal columns spanning the input's range (Q Q^T Y = Y) either way */
    const size_t m = 200, l = 12;
    for (int kind = 0; kind < 3; kind++) {
        td_tensor y, q;
        tt_random_matrix(&y, m, l, 90 + (uint64_t)kind);
        for (size_t i = 0; i < m; i++) {
            if (kind == 1) y.data[i * l + 5] = 2.0 * y.data[i * l + 2];          /* rank l - 1 */
            if (kind == 2) y.data[i * l + 7] = y.data[i * l + 3] + 1e-9 * y.data[i * l + 7]; /* kappa ~1e9 */
        }
        TT_OK(td_tensor_copy(&q, &y));
        TT_OK(td__orthonormalise(q.data, m, l));
        ck_assert_msg(tt_orth_cols(&q) < 1e-12, "kind %d: defect %g", kind, tt_orth_cols(&q));
        double worst = 0;
        for (size_t i = 0; i < m; i++)
            for (size_t c = 0; c < l; c++) {
                double v = 0;
                for (size_t a = 0; a < l; a++) {
                    double d = 0;
                    for (size_t j = 0; j < m; j++) d += q.data[j * l + a] * y.data[j * l + c];
                    v += q.data[i * l + a] * d;
                }
                worst = fmax(worst, fabs(v - y.data[i * l + c]));
            }
        ck_assert_msg(worst < 1e-10, "kind %d: span %g", kind, worst);
        td_tensor_free(&y);
        td_tensor_free(&q);
    }
}
END_TEST

START_TEST(test_tucker_exact_recovery)
{
    size_t shape[3] = {12, 10, 8}, ranks[3] = {4, 3, 5};
    int modes[3] = {0, 1, 2};
    td_tensor x;
    tucker_tensor(&x, 3, shape, ranks, 7);
    const td_tucker_method meths[3] = {TD_TUCKER_HOSVD, TD_TUCKER_STHOSVD, TD_TUCKER_HOOI};
    for (int i = 0; i < 3; i++) {
        td_tucker_options o;
        td_tucker_options_init(&o);
        o.method = meths[i];
        td_tucker_result r;
        TT_OK(td_tucker(&x, 3, modes, ranks, &o, &r));
        ck_assert_msg(r.rel_error < 1e-13, "method %d err %g", i, r.rel_error);
        ck_assert(tt_tucker_err(&x, &r) < 1e-13);
        for (int k = 0; k < 3; k++) {
            ck_assert_uint_eq(r.factors[k].shape[1], ranks[k]);
            ck_assert(tt_orth_cols(&r.factors[k]) < 100 * 12 * DBL_EPSILON);
        }
        if (meths[i] != TD_TUCKER_HOOI) {
            ck_assert_int_eq(r.iterations, 0);
            ck_assert_int_eq(r.converged, 1);
        }
        td_tucker_free(&r);
    }
    td_tensor_free(&x);
}
END_TEST

START_TEST(test_tucker_bounds_and_orthogonality)
{
    size_t shape[3] = {9, 8, 7}, ranks[3] = {4, 3, 3};
    int modes[3] = {0, 1, 2};
    td_tensor x;
    tt_random(&x, 3, shape, 21);
    const double nx = td_norm(&x);
    /* The HOSVD bound: err^2 <= sum over modes of discarded squared singular values. */
    double bound2 = 0;
    for (int k = 0; k < 3; k++) {
        double s2[9];
        TT_OK(td_mode_spectrum(&x, k, 0, NULL, s2));
        for (size_t i = ranks[k]; i < shape[k]; i++) bound2 += s2[i];
        /* spectrum matches the Gram trace: sum s2 = ||x||^2 */
        double tot = 0;
        for (size_t i = 0; i < shape[k]; i++) tot += s2[i];
        ck_assert(fabs(tot - nx * nx) < 1e-10 * nx * nx);
        for (size_t i = 1; i < shape[k]; i++) ck_assert(s2[i] <= s2[i - 1]);
    }
    td_tucker_options o;
    td_tucker_options_init(&o);
    td_tucker_result h, st, hooi;
    o.method = TD_TUCKER_HOSVD;
    TT_OK(td_tucker(&x, 3, modes, ranks, &o, &h));
    o.method = TD_TUCKER_STHOSVD;
    TT_OK(td_tucker(&x, 3, modes, ranks, &o, &st));
    o.method = TD_TUCKER_HOOI;
    o.tol = 0;
    o.max_iter = 15;
    TT_OK(td_tucker(&x, 3, modes, ranks, &o, &hooi));
    const double bound = sqrt(bound2) / nx;
    ck_assert(h.rel_error <= bound * (1 + 1e-12));
    ck_assert(st.rel_error <= bound * (1 + 1e-12));
    ck_assert(hooi.rel_error <= h.rel_error * (1 + 1e-12));
    ck_assert(fabs(tt_tucker_err(&x, &h) - h.rel_error) < 1e-12);
    ck_assert(fabs(tt_tucker_err(&x, &hooi) - hooi.rel_error) < 1e-12);
    ck_assert_int_eq(hooi.iterations, 15);
    ck_assert(hooi.history != NULL);
    for (int i = 1; i < hooi.iterations; i++) ck_assert(hooi.history[i] <= hooi.history[i - 1] + 1e-12);
    /* All-orthogonality of the full HOSVD core: slices along each mode mutually orthogonal,
     * their norms (the singular values) descending. */
    size_t full[3] = {9, 8, 7};
    td_tucker_result fr;
    o.method = TD_TUCKER_HOSVD;
    TT_OK(td_tucker(&x, 3, modes, full, &o, &fr));
    ck_assert(fr.rel_error < 1e-13);
    for (int k = 0; k < 3; k++) {
        td_tensor g;
        ck_assert_int_eq(td_matrix_alloc(&g, shape[k], shape[k]), TD_OK);
        TT_OK(td_gram(&fr.core, k, &g));
        for (size_t a = 0; a < shape[k]; a++)
            for (size_t b = 0; b < shape[k]; b++)
                if (a != b) ck_assert(fabs(g.data[a * shape[k] + b]) < 1e-12 * nx * nx);
        for (size_t a = 1; a < shape[k]; a++)
            ck_assert(g.data[a * shape[k] + a] <= g.data[(a - 1) * shape[k] + a - 1] * (1 + 1e-12));
        td_tensor_free(&g);
    }
    td_tucker_free(&fr);
    td_tucker_free(&h);
    td_tucker_free(&st);
    td_tucker_free(&hooi);
    td_tensor_free(&x);
}
END_TEST

START_TEST(test_tucker2_partial_modes)
{
    /* Tucker-2 of a conv-like kernel (modes 0 and 1), R_in != R_out, exact multilinear rank. */
    size_t shape[4] = {16, 12, 3, 3}, ranks4[4] = {5, 4, 3, 3};
    td_tensor w;
    tucker_tensor(&w, 4, shape, ranks4, 31);
    int modes[2] = {1, 0}; /* any order; sorted in the result */
    size_t ranks[2] = {4, 5};
    td_tucker_result r;
    TT_OK(td_tucker(&w, 2, modes, ranks, NULL, &r));
    ck_assert_int_eq(r.nmodes, 2);
    ck_assert_int_eq(r.modes[0], 0);
    ck_assert_int_eq(r.modes[1], 1);
    ck_assert_uint_eq(r.ranks[0], 5);
    ck_assert_uint_eq(r.ranks[1], 4);
    ck_assert_uint_eq(r.core.shape[0], 5);
    ck_assert_uint_eq(r.core.shape[1], 4);
    ck_assert_uint_eq(r.core.shape[2], 3);
    ck_assert_uint_eq(r.factors[0].shape[0], 16);
    ck_assert(r.rel_error < 1e-12);
    ck_assert(tt_tucker_err(&w, &r) < 1e-12);
    td_tucker_free(&r);
    td_tensor_free(&w);
}
END_TEST

static td_status energy_rule(void *ctx, int mode, const double *s2, size_t n, size_t *rank)
{
    (void)mode;
    double f = *(const double *)ctx, tot = 0, acc = 0;
    for (size_t i = 0; i < n; i++) tot += s2[i];
    for (size_t i = 0; i < n; i++) {
        acc += s2[i];
        if (acc >= f * tot) { *rank = i + 1; return TD_OK; }
    }
    *rank = n;
    return TD_OK;
}

static int cancel_at_2(void *ctx, int it, double e)
{
    (void)ctx;
    (void)e;
    return it >= 2;
}

START_TEST(test_tucker_edge_cases)
{
    size_t shape[3] = {5, 4, 3};
    int modes[3] = {0, 1, 2};
    td_tensor x;
    tt_random(&x, 3, shape, 3);
    td_tucker_result r;
    td_tucker_options o;
    td_tucker_options_init(&o);
    size_t big[3] = {6, 4, 3};
    ck_assert_int_eq(td_tucker(&x, 3, modes, big, &o, &r), TD_EINVAL);
    ck_assert_ptr_null(r.core.data);
    o.clamp = 1;
    TT_OK(td_tucker(&x, 3, modes, big, &o, &r));
    ck_assert_uint_eq(r.ranks[0], 5);
    ck_assert_int_eq(r.clamped[0], 1);
    ck_assert_int_eq(r.clamped[1], 0);
    ck_assert(r.rel_error < 1e-13);
    td_tucker_free(&r);
    size_t zero[3] = {0, 1, 1};
    ck_assert_int_eq(td_tucker(&x, 3, modes, zero, NULL, &r), TD_EINVAL);
    int dup[2] = {1, 1};
    ck_assert_int_eq(td_tucker(&x, 2, dup, big, NULL, &r), TD_EINVAL);
    int oob[1] = {3};
    ck_assert_int_eq(td_tucker(&x, 1, oob, big, NULL, &r), TD_EINVAL);
    /* rank 1 everywhere; rank = mode size */
    size_t ones[3] = {1, 1, 1}, full[3] = {5, 4, 3};
    TT_OK(td_tucker(&x, 3, modes, ones, NULL, &r));
    ck_assert(r.rel_error > 0 && r.rel_error < 1);
    td_tucker_free(&r);
    TT_OK(td_tucker(&x, 3, modes, full, NULL, &r));
    ck_assert(r.rel_error < 1e-13);
    td_tucker_free(&r);
    /* truncation callback (energy 0.9) decides the ranks */
    double f = 0.9;
    td_tucker_options_init(&o);
    o.truncate = energy_rule;
    o.truncate_ctx = &f;
    o.method = TD_TUCKER_HOSVD;
    TT_OK(td_tucker(&x, 3, modes, NULL, &o, &r));
    for (int k = 0; k < 3; k++) {
        double s2[5], tot = 0, kept = 0;
        TT_OK(td_mode_spectrum(&x, k, 0, NULL, s2));
        for (size_t i = 0; i < shape[k]; i++) tot += s2[i];
        for (size_t i = 0; i < r.ranks[k]; i++) kept += s2[i];
        ck_assert(kept >= 0.9 * tot);
        if (r.ranks[k] > 1) ck_assert(kept - s2[r.ranks[k] - 1] < 0.9 * tot);
    }
    td_tucker_free(&r);
    /* cancel through the progress callback */
    td_tucker_options_init(&o);
    o.tol = 0;
    o.max_iter = 10;
    o.progress = cancel_at_2;
    size_t r2[3] = {2, 2, 2};
    ck_assert_int_eq(td_tucker(&x, 3, modes, r2, &o, &r), TD_ECANCELED);
    ck_assert_ptr_null(r.history);
    ck_assert_ptr_null(r.core.data);
    /* zero tensor: error 0, no division by zero */
    td_tensor z;
    ck_assert_int_eq(td_tensor_alloc(&z, 3, shape), TD_OK);
    TT_OK(td_tucker(&z, 3, modes, r2, NULL, &r));
    ck_assert(r.rel_error == 0.0);
    td_tucker_free(&r);
    td_tensor_free(&z);
    /* NaN input */
    x.data[7] = NAN;
    ck_assert_int_eq(td_tucker(&x, 3, modes, r2, NULL, &r), TD_ENOTFINITE);
    td_tensor_free(&x);
    /* 1-D and 2-D tensors */
    size_t s1[1] = {6}, s2d[2] = {6, 4};
    td_tensor v, mtx;
    tt_random(&v, 1, s1, 4);
    int m0[1] = {0};
    size_t r1[1] = {1};
    TT_OK(td_tucker(&v, 1, m0, r1, NULL, &r));
    ck_assert(r.rel_error < 1e-14); /* a vector has multilinear rank 1 */
    td_tucker_free(&r);
    tt_random(&mtx, 2, s2d, 5);
    int m01[2] = {0, 1};
    size_t rr[2] = {4, 4};
    TT_OK(td_tucker(&mtx, 2, m01, rr, NULL, &r));
    ck_assert(r.rel_error < 1e-13);
    td_tucker_free(&r);
    td_tensor_free(&v);
    td_tensor_free(&mtx);
}
END_TEST

START_TEST(test_cp_exact_recovery)
{
    size_t s3[3] = {12, 10, 8}, s4[4] = {20, 15, 10, 6};
    td_tensor x3, x4;
    cp_tensor(&x3, 3, s3, 3, 40);
    cp_tensor(&x4, 4, s4, 4, 50);
    td_cp_options o;
    td_cp_options_init(&o);
    o.max_iter = 500;
    o.tol = 1e-12;
    td_cp_result r;
    TT_OK(td_cp_als(&x3, 3, &o, &r));
    ck_assert_msg(r.rel_error < 1e-8, "cp3 err %g after %d", r.rel_error, r.iterations);
    /* the reported error equals the one recomputed here from the reconstruction */
    td_tensor full;
    ck_assert_int_eq(td_tensor_alloc(&full, 3, s3), TD_OK);
    TT_OK(td_cp_full(&r, &full));
    ck_assert(fabs(tt_relerr(&full, &x3) - r.rel_error) < 1e-12);
    /* normalised factors: unit columns */
    for (int k = 0; k < 3; k++)
        for (size_t c = 0; c < 3; c++) {
            double s = 0;
            for (size_t i = 0; i < s3[k]; i++) s += r.factors[k].data[i * 3 + c] * r.factors[k].data[i * 3 + c];
            ck_assert(fabs(s - 1) < 1e-12);
        }
    for (int i = 1; i < r.iterations; i++) ck_assert(r.history[i] <= r.history[i - 1] + 1e-10);
    td_tensor_free(&full);
    td_cp_free(&r);
    TT_OK(td_cp_als(&x4, 4, &o, &r));
    ck_assert_msg(r.rel_error < 1e-8, "cp4 err %g after %d", r.rel_error, r.iterations);
    td_cp_free(&r);
    td_tensor_free(&x3);
    td_tensor_free(&x4);
}
END_TEST

START_TEST(test_cp_options_and_edges)
{
    size_t s[3] = {6, 5, 4};
    td_tensor x;
    tt_random(&x, 3, s, 60);
    td_cp_options o;
    td_cp_options_init(&o);
    ck_assert(o.tol == 1e-8 && o.max_iter == 100 && o.init == TD_CP_INIT_SVD);
    td_cp_result a, b;
    /* tol 0: exactly max_iter sweeps, one history entry each; non-increasing ALS error */
    o.tol = 0;
    o.max_iter = 25;
    TT_OK(td_cp_als(&x, 3, &o, &a));
    ck_assert_int_eq(a.iterations, 25);
    ck_assert_int_eq(a.converged, 0);
    for (int i = 1; i < 25; i++) ck_assert(a.history[i] <= a.history[i - 1] + 1e-10);
    /* deterministic: bit-identical on a second run */
    TT_OK(td_cp_als(&x, 3, &o, &b));
    for (int k = 0; k < 3; k++) ck_assert(tt_bitequal(&a.factors[k], &b.factors[k]));
    ck_assert(a.rel_error == b.rel_error);
    td_cp_free(&a);
    td_cp_free(&b);
    /* random init is seeded */
    o.init = TD_CP_INIT_RANDOM;
    o.seed = 9;
    TT_OK(td_cp_als(&x, 2, &o, &a));
    TT_OK(td_cp_als(&x, 2, &o, &b));
    ck_assert(tt_bitequal(&a.factors[0], &b.factors[0]));
    td_cp_free(&a);
    td_cp_free(&b);
    /* rank above every mode is allowed (columns past a short mode are seeded random) */
    o.init = TD_CP_INIT_SVD;
    o.max_iter = 20;
    TT_OK(td_cp_als(&x, 8, &o, &a));
    ck_assert_uint_eq(a.factors[0].shape[1], 8);
    ck_assert(a.rel_error < 1.0 && isfinite(a.rel_error));
    td_cp_free(&a);
    /* a conv-like kernel with rank above its spatial modes */
    size_t ks[4] = {8, 4, 3, 3};
    td_tensor k;
    tt_random(&k, 4, ks, 61);
    TT_OK(td_cp_als(&k, 12, &o, &a));
    ck_assert(isfinite(a.rel_error) && a.rel_error < 1.0);
    td_cp_free(&a);
    td_tensor_free(&k);
    /* rank 1 of a rank-1 tensor is exact */
    td_tensor x1;
    cp_tensor(&x1, 3, s, 1, 70);
    td_cp_options_init(&o);
    TT_OK(td_cp_als(&x1, 1, &o, &a));
    ck_assert(a.rel_error < 1e-12);
    td_cp_free(&a);
    td_tensor_free(&x1);
    /* given factors */
    td_tensor g[3];
    for (int i = 0; i < 3; i++) tt_random_matrix(&g[i], s[i], 2, 80 + (uint64_t)i);
    td_cp_options_init(&o);
    o.init = TD_CP_INIT_GIVEN;
    o.init_factors = g;
    o.max_iter = 3;
    o.tol = 0;
    TT_OK(td_cp_als(&x, 2, &o, &a));
    ck_assert_int_eq(a.iterations, 3);
    td_cp_free(&a);
    ck_assert_int_eq(td_cp_als(&x, 3, &o, &a), TD_ESHAPE); /* given factors have rank 2 */
    for (int i = 0; i < 3; i++) td_tensor_free(&g[i]);
    /* cancel, rank 0, NaN, zero tensor, 2-D */
    td_cp_options_init(&o);
    o.progress = cancel_at_2;
    ck_assert_int_eq(td_cp_als(&x, 2, &o, &a), TD_ECANCELED);
    ck_assert_ptr_null(a.weights);
    ck_assert_int_eq(td_cp_als(&x, 0, NULL, &a), TD_EINVAL);
    td_tensor z;
    ck_assert_int_eq(td_tensor_alloc(&z, 3, s), TD_OK);
    TT_OK(td_cp_als(&z, 2, NULL, &a));
    ck_assert(a.rel_error == 0.0);
    td_cp_free(&a);
    td_tensor_free(&z);
    size_t m2[2] = {7, 5};
    td_tensor mtx;
    tt_random(&mtx, 2, m2, 90);
    td_cp_options_init(&o);
    o.max_iter = 200;
    TT_OK(td_cp_als(&mtx, 5, &o, &a));
    ck_assert(a.rel_error < 1e-8); /* full rank of a 7x5 matrix */
    td_cp_free(&a);
    td_tensor_free(&mtx);
    x.data[0] = INFINITY;
    ck_assert_int_eq(td_cp_als(&x, 2, NULL, &a), TD_ENOTFINITE);
    td_tensor_free(&x);
}
END_TEST

/* HOOI with the warm start against the dense-eigensolver sweeps (hooi_exact = 1). */
static void hooi_pair(const td_tensor *x, int nm, const int *modes, const size_t *ranks, double tol, int max_iter,
                      td_tucker_result *warm, td_tucker_result *cold)
{
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.tol = tol;
    o.max_iter = max_iter;
    TT_OK(td_tucker(x, nm, modes, ranks, &o, warm));
    o.hooi_exact = 1;
    TT_OK(td_tucker(x, nm, modes, ranks, &o, cold));
}

START_TEST(test_hooi_warm_start)
{
    /* exactly low multilinear rank on the two decomposed modes: exact recovery either way */
    {
        const size_t shape[4] = {30, 24, 3, 3}, cr[4] = {5, 4, 3, 3}, ranks[2] = {5, 4};
        const int modes[2] = {0, 1};
        td_tensor x;
        tucker_tensor(&x, 4, shape, cr, 71);
        td_tucker_result w, c;
        hooi_pair(&x, 2, modes, ranks, 0, 6, &w, &c);
        ck_assert_int_eq(w.iterations, 6);
        ck_assert_msg(w.rel_error < 1e-12 && tt_tucker_err(&x, &w) < 1e-12, "warm err %g", w.rel_error);
        ck_assert(c.rel_error < 1e-12);
        for (int i = 0; i < 2; i++) ck_assert(tt_orth_cols(&w.factors[i]) < 1e-12);
        td_tucker_free(&w);
        td_tucker_free(&c);
        td_tensor_free(&x);
    }
    /* random data: the same error as the dense sweeps at convergence; every warm sweep is an
     * ascent step, so the error history never rises */
    {
        const size_t shape[4] = {40, 36, 3, 3}, ranks[2] = {8, 7};
        const int modes[2] = {0, 1};
        td_tensor x;
        tt_random(&x, 4, shape, 73);
        td_tucker_result w, c;
        hooi_pair(&x, 2, modes, ranks, 1e-9, 500, &w, &c);
        ck_assert(w.converged && c.converged);
        ck_assert_msg(fabs(w.rel_error - c.rel_error) < 1e-6, "warm %.10g cold %.10g", w.rel_error, c.rel_error);
        ck_assert(fabs(tt_tucker_err(&x, &w) - w.rel_error) < 1e-12);
        for (int i = 1; i < w.iterations; i++)
            ck_assert_msg(w.history[i] <= w.history[i - 1] + 1e-13, "sweep %d rose", i + 1);
        for (int i = 0; i < 2; i++) ck_assert(tt_orth_cols(&w.factors[i]) < 1e-12);
        td_tucker_free(&w);
        td_tucker_free(&c);
        /* fixed sweeps (tol 0): all after the first are warm, and each one makes progress */
        hooi_pair(&x, 2, modes, ranks, 0, 6, &w, &c);
        for (int i = 1; i < 6; i++) ck_assert_msg(w.history[i] < w.history[i - 1] - 1e-9, "warm sweep %d stalled", i + 1);
        ck_assert(fabs(w.history[0] - c.history[0]) < 1e-15); /* the first sweep is the dense one */
        td_tucker_free(&w);
        td_tucker_free(&c);
        /* a loose tol: a warm sweep's small change is confirmed by a dense sweep before stopping,
         * so the warm run ends no worse than the cold one by more than tol */
        hooi_pair(&x, 2, modes, ranks, 1e-4, 100, &w, &c);
        ck_assert(w.converged && c.converged);
        ck_assert_msg(w.rel_error <= c.rel_error + 1e-4, "warm %.10g cold %.10g", w.rel_error, c.rel_error);
        td_tucker_free(&w);
        td_tucker_free(&c);
        td_tensor_free(&x);
    }
    /* three modes, 3-way */
    {
        const size_t shape[3] = {20, 18, 16}, ranks[3] = {4, 5, 3};
        const int modes[3] = {0, 1, 2};
        td_tensor x;
        tt_random(&x, 3, shape, 79);
        td_tucker_result w, c;
        hooi_pair(&x, 3, modes, ranks, 1e-10, 500, &w, &c);
        ck_assert_msg(fabs(w.rel_error - c.rel_error) < 1e-6, "warm %.10g cold %.10g", w.rel_error, c.rel_error);
        td_tucker_free(&w);
        td_tucker_free(&c);
        td_tensor_free(&x);
    }
}
END_TEST

/* Leading r eigenvectors (n x r) of the symmetric g by LAPACK's dsyevd called here. */
static void lapack_top(const td_tensor *g, size_t r, td_tensor *u)
{
    const size_t n = g->shape[0];
    double *a = malloc(n * n * sizeof(double)), *w = malloc(n * sizeof(double));
    ck_assert(a && w);
    memcpy(a, g->data, n * n * sizeof(double));
    ck_assert_int_eq(LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)n, a, (lapack_int)n, w), 0);
    ck_assert_int_eq(td_matrix_alloc(u, n, r), TD_OK);
    for (size_t c = 0; c < r; c++)
        for (size_t i = 0; i < n; i++) u->data[i * r + c] = a[(n - 1 - c) * n + i];
    free(a);
    free(w);
}

/* Leading r left singular vectors of x's mode-m unfolding after projecting mode p on up^T
 * (up NULL: no projection), all by naive loops and LAPACK. */
static void naive_factor(const td_tensor *x, int m, int p, const td_tensor *up, size_t r, td_tensor *u)
{
    td_tensor y = {0}, g;
    const td_tensor *src = x;
    if (up) {
        size_t shape[TD_MAX_MODES];
        memcpy(shape, x->shape, sizeof shape);
        shape[p] = up->shape[1];
        ck_assert_int_eq(td_tensor_alloc(&y, x->ndim, shape), TD_OK);
        nv_ttm(x, p, up, 1, &y);
        src = &y;
    }
    ck_assert_int_eq(td_matrix_alloc(&g, x->shape[m], x->shape[m]), TD_OK);
    nv_gram(src, m, &g);
    lapack_top(&g, r, u);
    td_tensor_free(&g);
    td_tensor_free(&y);
}

START_TEST(test_hooi_sweep_against_naive)
{
    /* one dense sweep of Tucker-2 on an OIHW-shaped tensor (the permuted-copy path) against the
     * same sweep by naive loops: HOSVD init, U0 from x x_1 U1^T, U1 from x x_0 U0^T */
    const size_t shape[4] = {12, 10, 3, 3}, r[2] = {4, 3};
    const int modes[2] = {0, 1};
    td_tensor x, u0, u1, n0, n1, y, core;
    tt_random(&x, 4, shape, 81);
    naive_factor(&x, 0, 0, NULL, r[0], &u0);
    naive_factor(&x, 1, 1, NULL, r[1], &u1);
    naive_factor(&x, 0, 1, &u1, r[0], &n0);
    naive_factor(&x, 1, 0, &n0, r[1], &n1);
    const size_t ys[4] = {4, 10, 3, 3}, cs[4] = {4, 3, 3, 3};
    ck_assert_int_eq(td_tensor_alloc(&y, 4, ys), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&core, 4, cs), TD_OK);
    nv_ttm(&x, 0, &n0, 1, &y);
    nv_ttm(&y, 1, &n1, 1, &core);
    const double nx = td_norm(&x), nc = td_norm(&core), want = sqrt(nx * nx - nc * nc) / nx;
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.tol = 0;
    o.max_iter = 1;
    td_tucker_result res;
    TT_OK(td_tucker(&x, 2, modes, r, &o, &res));
    ck_assert_msg(fabs(res.history[0] - want) < 1e-12, "sweep error %.15g vs %.15g", res.history[0], want);
    /* the same subspaces: |U^T N| has singular values 1, i.e. ||U^T N||_F^2 = r */
    const td_tensor *mine[2] = {&res.factors[0], &res.factors[1]}, *ref[2] = {&n0, &n1};
    for (int f = 0; f < 2; f++) {
        double s2 = 0;
        for (size_t a = 0; a < r[f]; a++)
            for (size_t b = 0; b < r[f]; b++) {
                double d = 0;
                for (size_t i = 0; i < shape[f]; i++) d += mine[f]->data[i * r[f] + a] * ref[f]->data[i * r[f] + b];
                s2 += d * d;
            }
        ck_assert_msg(fabs(s2 - (double)r[f]) < 1e-10, "factor %d subspace %.15g", f, s2);
    }
    td_tucker_free(&res);
    td_tensor_free(&x); td_tensor_free(&u0); td_tensor_free(&u1); td_tensor_free(&n0); td_tensor_free(&n1);
    td_tensor_free(&y); td_tensor_free(&core);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("decomp");
    TCase *tc = tcase_create("decomp");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_svd_known_spectrum);
    tcase_add_test(tc, test_svd_randomized_low_rank_noise);
    tcase_add_test(tc, test_svd_randomized_flat_spectrum);
    tcase_add_test(tc, test_values_only_spectrum);
    tcase_add_test(tc, test_orthonormalise_paths);
    tcase_add_test(tc, test_tucker_exact_recovery);
    tcase_add_test(tc, test_tucker_bounds_and_orthogonality);
    tcase_add_test(tc, test_tucker2_partial_modes);
    tcase_add_test(tc, test_tucker_edge_cases);
    tcase_add_test(tc, test_hooi_warm_start);
    tcase_add_test(tc, test_hooi_sweep_against_naive);
    tcase_add_test(tc, test_cp_exact_recovery);
    tcase_add_test(tc, test_cp_options_and_edges);
    suite_add_tcase(s, tc);
    /* nearly four minutes under valgrind (two 1030 x 1030 dense eigensolvers): the valgrind setup
     * excludes the tag, the release and ASan stages run it */
    TCase *large = tcase_create("large");
    tcase_set_tags(large, "large");
    tcase_set_timeout(large, 300);
    tcase_add_test(large, test_sym_eig_index_range);
    suite_add_tcase(s, large);
    return tt_run(s);
}
