/* Truncated SVD routes against truths from outside the code under test: LAPACK's dgesdd of the
 * same matrix, exact recovery of synthetic low-rank matrices, the identity
 * ||A - U S V^T||_F^2 = ||A||_F^2 - sum s^2 for what is returned, orthonormality, and the
 * interlacing bound s_c(Q^T A) <= s_c(A). Small sizes: fast, and clean under valgrind. */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/testutil.h"
#include "decomp/decomp_internal.h"

/* All min(m, n) singular values of a by LAPACK (dgesdd 'N' on a copy). */
static double *lapack_values(const td_tensor *a)
{
    const size_t m = a->shape[0], n = a->shape[1], p = m < n ? m : n;
    double *c = malloc(a->size * sizeof(double)), *s = malloc(p * sizeof(double));
    ck_assert(c && s);
    memcpy(c, a->data, a->size * sizeof(double));
    ck_assert_int_eq(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)n, (lapack_int)m, c, (lapack_int)n, s,
                                    NULL, 1, NULL, 1), 0);
    free(c);
    return s;
}

typedef struct svd_check {
    double recomposed, formula, exact; /* relative errors: by recomposition, sqrt(||A||^2 - sum s^2), optimum */
    td__svd_info info;
} svd_check;

/* One truncated SVD, checked for what holds on every route: the identity, orthonormal U and V,
 * values at most LAPACK's (interlacing), the sign convention; returns the errors. */
static svd_check run_svd(const td_tensor *a, size_t k, const td_svd_options *o)
{
    const size_t m = a->shape[0], n = a->shape[1], p = m < n ? m : n;
    td_tensor u, vt;
    double *s = malloc(k * sizeof(double)), *ex = lapack_values(a);
    ck_assert(s != NULL);
    ck_assert_int_eq(td_matrix_alloc(&u, m, k), TD_OK);
    ck_assert_int_eq(td_matrix_alloc(&vt, k, n), TD_OK);
    svd_check r;
    TT_OK(td__svd_trunc_ex(a, k, o, &u, s, &vt, &r.info));
    ck_assert_msg(tt_orth_defect(u.data, m, k, 0) < 1e-12, "U defect %g", tt_orth_defect(u.data, m, k, 0));
    ck_assert_msg(tt_orth_defect(vt.data, k, n, 1) < 1e-12, "V defect %g", tt_orth_defect(vt.data, k, n, 1));
    double a2 = 0, r2 = 0, s2 = 0, kept = 0;
    for (size_t c = 0; c < k; c++) {
        ck_assert_msg(s[c] <= ex[c] * (1 + 1e-12) + 1e-13 * ex[0], "s%zu %.17g above LAPACK %.17g", c, s[c], ex[c]);
        ck_assert(c == 0 || s[c] <= s[c - 1]);
        size_t best = 0;
        for (size_t i = 0; i < m; i++)
            if (fabs(u.data[i * k + c]) > fabs(u.data[best * k + c])) best = i;
        ck_assert(u.data[best * k + c] > 0);
        s2 += s[c] * s[c];
        kept += ex[c] * ex[c];
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double v = a->data[i * n + j];
            for (size_t c = 0; c < k; c++) v -= u.data[i * k + c] * s[c] * vt.data[c * n + j];
            r2 += v * v;
            a2 += a->data[i * n + j] * a->data[i * n + j];
        }
    double all = 0;
    for (size_t c = 0; c < p; c++) all += ex[c] * ex[c];
    r.recomposed = sqrt(r2 / a2);
    r.formula = sqrt(fmax(a2 - s2, 0) / a2);
    r.exact = sqrt(fmax(all - kept, 0) / all);
    /* the identity: the reported error is exact for what is returned */
    ck_assert_msg(fabs(r.recomposed - r.formula) < 1e-10, "recomposed %.15g formula %.15g", r.recomposed, r.formula);
    ck_assert_msg(r.recomposed >= r.exact * (1 - 1e-9) - 1e-12, "below the optimum: %.15g < %.15g", r.recomposed, r.exact);
    td_tensor_free(&u);
    td_tensor_free(&vt);
    free(s);
    free(ex);
    return r;
}

static void transpose(const td_tensor *a, td_tensor *at)
{
    const size_t m = a->shape[0], n = a->shape[1];
    ck_assert_int_eq(td_matrix_alloc(at, n, m), TD_OK);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) at->data[j * m + i] = a->data[i * n + j];
}

START_TEST(test_identity_every_route)
{
    enum { P = 60 };
    double sv[P];
    for (int c = 0; c < P; c++) sv[c] = 10.0 * exp(-0.1 * c);
    td_tensor a[2];
    tt_matrix_with_spectrum(&a[0], 90, 240, sv, P, 1e-3, 11);
    transpose(&a[0], &a[1]);
    const td_svd_method meth[4] = {TD_SVD_AUTO, TD_SVD_GRAM, TD_SVD_GESDD, TD_SVD_RANDOMIZED};
    for (int t = 0; t < 2; t++)
        for (int mi = 0; mi < 5; mi++) {
            td_svd_options o;
            td_svd_options_init(&o);
            o.method = meth[mi < 4 ? mi : 3];
            o.float_passes = mi == 4 ? 2 : 0; /* the last: randomised with float32 passes */
            svd_check r = run_svd(&a[t], 12, &o);
            const double rtol = o.method == TD_SVD_RANDOMIZED || o.method == TD_SVD_AUTO ? 1e-3 : 1e-10;
            ck_assert_msg(r.recomposed <= r.exact * (1 + rtol), "shape %d method %d: %.15g vs optimum %.15g", t, mi,
                          r.recomposed, r.exact);
        }
    td_tensor_free(&a[0]);
    td_tensor_free(&a[1]);
}
END_TEST

START_TEST(test_float_passes_keep_accuracy)
{
    /* a slowly decaying spectrum (the hard kind for a range finder) with a noise floor: float32
     * passes end within 1e-3 of the optimal error, as double passes do */
    enum { P = 120 };
    double sv[P];
    for (int c = 0; c < P; c++) sv[c] = 1.0 / sqrt(1.0 + c);
    td_tensor a;
    tt_matrix_with_spectrum(&a, 150, 400, sv, P, 1e-3, 21);
    for (int f = 0; f < 3; f++) {
        td_svd_options o;
        td_svd_options_init(&o);
        o.method = TD_SVD_RANDOMIZED;
        o.float_passes = f;
        svd_check r = run_svd(&a, 16, &o);
        ck_assert_msg(r.recomposed <= r.exact * (1 + 1e-3), "float_passes %d: %.15g vs optimum %.15g", f,
                      r.recomposed, r.exact);
        ck_assert_int_eq(r.info.fell_back, 0);
        /* the tail stays above 1e-4 ||A||^2, so with float passes the last Z is float32 and only
         * its 16 leading directions are projected again in double (run_svd checked the identity
         * and orthonormality of that result); in double the whole range is */
        ck_assert_uint_eq(r.info.basis, f == 2 ? 16 : r.info.columns);
        /* ... whose SVD then comes from the 16 x 16 Gram (s_16 / s_1 = 0.25, far above its guard) */
        ck_assert_int_eq(r.info.gram_final, f == 2);
        /* the slow spectrum makes the range grow once, by its new columns alone */
        ck_assert_uint_gt(r.info.columns, 16 + 10);
        ck_assert_int_eq(r.info.grew, 1);
    }
    td_tensor_free(&a);
}
END_TEST

START_TEST(test_float_passes_exact_low_rank)
{
    /* rank 8 below k = 12, no noise: float32 rounding would leave ~1e-7; the passes turn double
     * once the tail is that small, and the recovery is exact */
    const double sv[8] = {50, 20, 9, 7, 3, 1, 0.5, 0.2};
    td_tensor a[2];
    tt_matrix_with_spectrum(&a[0], 120, 300, sv, 8, 0.0, 31);
    transpose(&a[0], &a[1]);
    for (int t = 0; t < 2; t++) {
        td_svd_options o;
        td_svd_options_init(&o);
        o.method = TD_SVD_RANDOMIZED;
        o.float_passes = 2;
        const size_t k = 12;
        td_tensor u, vt;
        double s[12];
        ck_assert_int_eq(td_matrix_alloc(&u, a[t].shape[0], k), TD_OK);
        ck_assert_int_eq(td_matrix_alloc(&vt, k, a[t].shape[1]), TD_OK);
        td__svd_info info;
        TT_OK(td__svd_trunc_ex(&a[t], k, &o, &u, s, &vt, &info));
        ck_assert_int_eq(info.method, TD_SVD_RANDOMIZED);
        for (size_t c = 0; c < k; c++)
            ck_assert_msg(fabs(s[c] - (c < 8 ? sv[c] : 0.0)) < 1e-12 * sv[0], "s%zu %.17g", c, s[c]);
        td_tensor_free(&u);
        td_tensor_free(&vt);
        svd_check r = run_svd(&a[t], 8, &o);
        ck_assert_msg(r.recomposed < 1e-13, "error %g", r.recomposed);
    }
    td_tensor_free(&a[0]);
    td_tensor_free(&a[1]);
}
END_TEST

/* A tall matrix is worked on as its transpose (the range on the short side): A and A^T give the
 * same triplets, U of one being V of the other, with the sign convention on each one's U. */
START_TEST(test_tall_is_transposed_wide)
{
    enum { P = 50 };
    double sv[P];
    for (int c = 0; c < P; c++) sv[c] = 1.0 / (1.0 + 0.2 * c);
    td_tensor a[2], u[2], vt[2];
    tt_matrix_with_spectrum(&a[0], 80, 200, sv, P, 1e-3, 61);
    transpose(&a[0], &a[1]);
    const size_t k = 10;
    double s[2][10];
    for (int t = 0; t < 2; t++) {
        td_svd_options o;
        td_svd_options_init(&o);
        o.method = TD_SVD_RANDOMIZED;
        o.float_passes = 2;
        ck_assert_int_eq(td_matrix_alloc(&u[t], a[t].shape[0], k), TD_OK);
        ck_assert_int_eq(td_matrix_alloc(&vt[t], k, a[t].shape[1]), TD_OK);
        TT_OK(td_svd_trunc(&a[t], k, &o, &u[t], s[t], &vt[t]));
    }
    for (size_t c = 0; c < k; c++) {
        ck_assert_msg(fabs(s[0][c] - s[1][c]) <= 1e-12 * s[0][0], "s%zu %.17g vs %.17g", c, s[0][c], s[1][c]);
        /* U(A)_c = +-V(A^T)_c: the sign is fixed on each one's own U */
        double dot = 0;
        for (size_t i = 0; i < 80; i++) dot += u[0].data[i * k + c] * vt[1].data[c * 80 + i];
        ck_assert_msg(fabs(fabs(dot) - 1.0) < 1e-9, "column %zu: |<U, V^T>| = %.17g", c, fabs(dot));
    }
    for (int t = 0; t < 2; t++) { td_tensor_free(&a[t]); td_tensor_free(&u[t]); td_tensor_free(&vt[t]); }
}
END_TEST

START_TEST(test_hard_spectra_default_tolerance)
{
    /* flat-ish (whitened-like) and slowly decaying spectra with the default options: the error
     * is within 1e-3 of the optimum, by the power iteration or by the exact route it falls back to */
    enum { P = 150 };
    double sv[P];
    for (int kind = 0; kind < 2; kind++) {
        for (int c = 0; c < P; c++) sv[c] = kind ? 1.0 - 0.3 * c / P : pow(1.0 + c, -0.5);
        td_tensor a;
        tt_matrix_with_spectrum(&a, 150, 360, sv, P, kind ? 0.01 : 0.0, 41 + (uint64_t)kind);
        td_svd_options o;
        td_svd_options_init(&o);
        o.method = TD_SVD_RANDOMIZED;
        svd_check r = run_svd(&a, 12, &o);
        ck_assert_msg(r.recomposed <= r.exact * (1 + 1e-3), "kind %d: %.15g vs optimum %.15g", kind, r.recomposed,
                      r.exact);
        ck_assert(r.info.fell_back ? r.info.method != TD_SVD_RANDOMIZED : r.info.method == TD_SVD_RANDOMIZED);
        td_tensor_free(&a);
    }
}
END_TEST

START_TEST(test_outputs_optional_and_statuses)
{
    const double sv[6] = {6, 5, 4, 3, 2, 1};
    td_tensor a, u, vt, bad;
    tt_matrix_with_spectrum(&a, 40, 70, sv, 6, 0.0, 51);
    double s[4], s2[4];
    td_svd_options o;
    td_svd_options_init(&o);
    o.method = TD_SVD_RANDOMIZED;
    ck_assert_int_eq(td_matrix_alloc(&u, 40, 4), TD_OK);
    ck_assert_int_eq(td_matrix_alloc(&vt, 4, 70), TD_OK);
    TT_OK(td_svd_trunc(&a, 4, &o, NULL, s, NULL));
    TT_OK(td_svd_trunc(&a, 4, &o, &u, s2, NULL));
    for (int c = 0; c < 4; c++) ck_assert(fabs(s[c] - sv[c]) < 1e-12 * sv[0] && s2[c] == s[c]);
    TT_OK(td_svd_trunc(&a, 4, &o, NULL, s2, &vt));
    for (int c = 0; c < 4; c++) ck_assert(s2[c] == s[c]);
    ck_assert_int_eq(td_svd_trunc(&a, 0, &o, &u, s, &vt), TD_EINVAL);
    ck_assert_int_eq(td_svd_trunc(&a, 41, &o, NULL, s, NULL), TD_EINVAL);
    ck_assert_int_eq(td_svd_trunc(&a, 4, &o, &u, NULL, &vt), TD_EINVAL);
    ck_assert_int_eq(td_matrix_alloc(&bad, 4, 69), TD_OK);
    ck_assert_int_eq(td_svd_trunc(&a, 4, &o, &u, s, &bad), TD_ESHAPE);
    ck_assert_int_eq(td_svd_trunc(&a, 4, &o, &bad, s, NULL), TD_ESHAPE);
    o.method = (td_svd_method)7;
    ck_assert_int_eq(td_svd_trunc(&a, 4, &o, &u, s, &vt), TD_EINVAL);
    o.method = TD_SVD_RANDOMIZED;
    a.data[5] = INFINITY;
    ck_assert_int_eq(td_svd_trunc(&a, 4, &o, &u, s, &vt), TD_ENOTFINITE);
    td_tensor_free(&a); td_tensor_free(&u); td_tensor_free(&vt); td_tensor_free(&bad);
}
END_TEST

START_TEST(test_defaults_and_auto_routes)
{
    td_svd_options o;
    td_svd_options_init(&o);
    ck_assert_int_eq(o.method, TD_SVD_AUTO);
    ck_assert_int_eq(o.oversample, 10);
    ck_assert_int_eq(o.power_iters, 1);
    ck_assert_int_eq(o.max_power_iters, 8);
    ck_assert(o.power_tol < 0); /* automatic: */
    ck_assert(td__svd_power_tol(&o, 4096, 11008) == 1e-4);
    ck_assert(td__svd_power_tol(&o, 2000, 1000) == 1e-6);
    ck_assert(td__svd_power_tol(&o, 2048, 2048) == 1e-4);
    o.power_tol = 1e-3;
    ck_assert(td__svd_power_tol(&o, 512, 1024) == 1e-3);
    o.power_tol = -1;
    ck_assert_int_eq(o.float_passes, 1);
    /* LLM projections at rank 512: randomised; a conv-sized matrix keeps the Gram route */
    ck_assert_int_eq(td__svd_auto_method(4096, 11008, 512, 10), TD_SVD_RANDOMIZED);
    ck_assert_int_eq(td__svd_auto_method(11008, 4096, 512, 10), TD_SVD_RANDOMIZED);
    ck_assert_int_eq(td__svd_auto_method(512, 4608, 128, 10), TD_SVD_GRAM);
    /* near-square: the Gram route when it is cheaper (guarded at run time, below) */
    ck_assert_int_eq(td__svd_auto_method(300, 400, 200, 10), TD_SVD_GRAM);
    /* VGG-16 fc6 at rank 1024 (l > p / 4): the exact Gram route, dsyevr on the index range */
    ck_assert_int_eq(td__svd_auto_method(4096, 25088, 1024, 10), TD_SVD_GRAM);
}
END_TEST

/* AUTO takes the Gram route on a near-square matrix only when the kept spectrum is well
 * conditioned (s_k / s_1 >= 1e-4); otherwise dgesdd. Both give LAPACK's optimum. */
START_TEST(test_near_square_gram_guard)
{
    enum { P = 60 };
    const size_t m = 90, n = 120, k = 40;
    double good[P], bad[P];
    for (int c = 0; c < P; c++) {
        good[c] = 10.0 * pow(0.97, c);     /* s_40 / s_1 ~ 0.3 */
        bad[c] = 10.0 * pow(0.75, c);      /* s_40 / s_1 ~ 1e-5: below the guard */
    }
    td_svd_options o;
    td_svd_options_init(&o);
    ck_assert_int_eq(td__svd_auto_method(m, n, k, o.oversample), TD_SVD_GRAM);
    for (int t = 0; t < 2; t++) {
        td_tensor a;
        tt_matrix_with_spectrum(&a, m, n, t ? bad : good, P, 0, 70 + (uint64_t)t);
        svd_check r = run_svd(&a, k, &o);
        ck_assert_int_eq(r.info.method, t ? TD_SVD_GESDD : TD_SVD_GRAM);
        /* the optimum from LAPACK's values cancels at ~1e-5 relative error: compared to 1e-5 of itself */
        ck_assert_msg(r.recomposed <= r.exact * (1 + 1e-5) + 1e-12, "case %d: %.15g vs optimum %.15g", t, r.recomposed, r.exact);
        /* asked for explicitly, the Gram route is not guarded */
        td_svd_options g = o;
        g.method = TD_SVD_GRAM;
        td_tensor u, vt;
        double sv[40];
        ck_assert_int_eq(td_matrix_alloc(&u, m, k), TD_OK);
        ck_assert_int_eq(td_matrix_alloc(&vt, k, n), TD_OK);
        td__svd_info info;
        TT_OK(td__svd_trunc_ex(&a, k, &g, &u, sv, &vt, &info));
        ck_assert_int_eq(info.method, TD_SVD_GRAM);
        td_tensor_free(&u);
        td_tensor_free(&vt);
        td_tensor_free(&a);
    }
}
END_TEST

/* The Gram route with a float32 Gram and eigensolver (float_passes 2: any size), wide and tall:
 * the exact SVD of a projection (run_svd checks the identity, orthonormality in double, LAPACK's
 * interlacing bound, the signs), within 1e-6 of the optimum's error; the same call in double agrees.
 * A kept spectrum below the float guard (lambda_k / lambda_1 < 1e-4) takes the double Gram route
 * (whose V is then orthonormal only to ~eps (s_1 / s_k)^2, so it is checked here, not by run_svd). */
START_TEST(test_float_gram_route)
{
    enum { P = 150 };
    const size_t k = 60;
    double good[P], steep[P];
    for (int c = 0; c < P; c++) {
        good[c] = 10.0 * pow(0.99, c);  /* s_60 / s_1 ~ 0.55 */
        steep[c] = 10.0 * pow(0.9, c);  /* s_60 / s_1 ~ 2e-3: lambda ratio ~4e-6 */
    }
    td_tensor a[2];
    tt_matrix_with_spectrum(&a[0], 150, 400, good, P, 1e-3, 91);
    transpose(&a[0], &a[1]);
    for (int t = 0; t < 2; t++) {
        td_svd_options o;
        td_svd_options_init(&o);
        ck_assert_int_eq(td__svd_auto_method(a[t].shape[0], a[t].shape[1], k, o.oversample), TD_SVD_GRAM);
        o.float_passes = 2;
        svd_check f = run_svd(&a[t], k, &o);
        o.float_passes = 0;
        svd_check d = run_svd(&a[t], k, &o);
        ck_assert_int_eq(f.info.method, TD_SVD_GRAM);
        ck_assert_int_eq(f.info.float_gram, 1);
        ck_assert_int_eq(d.info.float_gram, 0);
        ck_assert_msg(f.recomposed <= f.exact * (1 + 1e-6), "shape %d: %.15g vs optimum %.15g", t, f.recomposed, f.exact);
        ck_assert_msg(fabs(f.recomposed - d.recomposed) <= 1e-6 * d.recomposed, "shape %d: float %.15g double %.15g", t,
                      f.recomposed, d.recomposed);
    }
    td_tensor_free(&a[0]);
    td_tensor_free(&a[1]);
    /* a long side of 4500: the float Gram is summed over three blocks of columns (or rows) */
    tt_matrix_with_spectrum(&a[0], 40, 4500, good, 40, 1e-3, 93);
    transpose(&a[0], &a[1]);
    for (int t = 0; t < 2; t++) {
        td_svd_options o;
        td_svd_options_init(&o);
        o.float_passes = 2;
        svd_check f = run_svd(&a[t], 12, &o);
        ck_assert_int_eq(f.info.method, TD_SVD_GRAM);
        ck_assert_int_eq(f.info.float_gram, 1);
        ck_assert_msg(f.recomposed <= f.exact * (1 + 1e-6), "long %d: %.15g vs optimum %.15g", t, f.recomposed, f.exact);
    }
    td_tensor_free(&a[0]);
    td_tensor_free(&a[1]);
    tt_matrix_with_spectrum(&a[0], 150, 400, steep, P, 1e-3, 92);
    td_svd_options o;
    td_svd_options_init(&o);
    o.float_passes = 2;
    td_tensor u, vt;
    double sv[60];
    ck_assert_int_eq(td_matrix_alloc(&u, 150, k), TD_OK);
    ck_assert_int_eq(td_matrix_alloc(&vt, k, 400), TD_OK);
    td__svd_info info;
    TT_OK(td__svd_trunc_ex(&a[0], k, &o, &u, sv, &vt, &info));
    ck_assert_int_eq(info.method, TD_SVD_GRAM);
    ck_assert_int_eq(info.float_gram, 0);
    ck_assert(tt_orth_defect(u.data, 150, k, 0) < 1e-12 && tt_orth_defect(vt.data, k, 400, 1) < 1e-8);
    td_tensor_free(&u);
    td_tensor_free(&vt);
    td_tensor_free(&a[0]);
}
END_TEST

/* Float32 copies are taken of A 2^-e (e: the exponent of max |a|): a matrix scaled by 2^100 (its
 * squares overflow float32) or 2^-100 (they underflow) gives the unscaled matrix's result, on the
 * float Gram route and on the randomized route's float passes. */
START_TEST(test_float_paths_scale_exactly)
{
    enum { P = 150 };
    const td_svd_method meth[2] = {TD_SVD_GRAM, TD_SVD_RANDOMIZED};
    const size_t ks[2] = {60, 12};
    const double decay[2] = {0.99, 0.85}; /* the range finder converges on the second */
    for (int r = 0; r < 2; r++) {
        double sv[P];
        for (int c = 0; c < P; c++) sv[c] = 10.0 * pow(decay[r], c);
        td_tensor a, b;
        tt_matrix_with_spectrum(&a, 150, 400, sv, P, 1e-3, 97);
        ck_assert_int_eq(td_matrix_alloc(&b, 150, 400), TD_OK);
        td_svd_options o;
        td_svd_options_init(&o);
        o.method = meth[r];
        o.float_passes = 2;
        svd_check ref = run_svd(&a, ks[r], &o);
        ck_assert_int_eq(ref.info.method, meth[r]);
        for (int e = -100; e <= 100; e += 200) {
            for (size_t i = 0; i < a.size; i++) b.data[i] = ldexp(a.data[i], e);
            svd_check got = run_svd(&b, ks[r], &o);
            ck_assert_int_eq(got.info.method, meth[r]);
            ck_assert_int_eq(got.info.float_gram, r == 0);
            ck_assert_int_eq(got.info.power_iters, ref.info.power_iters);
            ck_assert_msg(fabs(got.recomposed - ref.recomposed) < 1e-12, "route %d scale 2^%d: %.15g vs %.15g", r, e,
                          got.recomposed, ref.recomposed);
        }
        td_tensor_free(&a);
        td_tensor_free(&b);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("svd_routes");
    TCase *tc = tcase_create("svd_routes");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_identity_every_route);
    tcase_add_test(tc, test_near_square_gram_guard);
    tcase_add_test(tc, test_float_gram_route);
    tcase_add_test(tc, test_float_paths_scale_exactly);
    tcase_add_test(tc, test_float_passes_keep_accuracy);
    tcase_add_test(tc, test_float_passes_exact_low_rank);
    tcase_add_test(tc, test_tall_is_transposed_wide);
    tcase_add_test(tc, test_hard_spectra_default_tolerance);
    tcase_add_test(tc, test_outputs_optional_and_statuses);
    tcase_add_test(tc, test_defaults_and_auto_routes);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
