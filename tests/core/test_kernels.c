/* Core kernels against naive reference loops, a hand-checked golden unfolding, and identities. */
#include <float.h>
#include <math.h>
#include <string.h>
#include "common/naive.h"
#include "common/testutil.h"

/* Shapes covering 1-D to 5-D, size-1 modes and uneven extents. */
/* Each row: ndim, then the extents. 1-D to 5-D, size-1 modes, uneven extents. */
static const size_t SHAPES[][6] = {
    {1, 7},          {3, 2, 3, 5},    {3, 2, 1, 4},    {4, 3, 4, 2, 1}, {4, 3, 2, 3, 2},
    {5, 4, 1, 1, 5, 2}, {5, 2, 3, 1, 2, 3}, {3, 5, 5, 5}, {1, 1},     {4, 3, 1, 1, 1},
    {3, 4, 6, 3},    {3, 2, 64, 3},   {3, 70, 2, 2},   {3, 3, 3, 40},  {4, 4, 5, 3, 3},
    {2, 1, 9},       {3, 2, 8, 1},    {4, 6, 1, 2, 2}, {5, 2, 2, 2, 2, 2}, {3, 9, 4, 1},
    {3, 2, 5, 70},   {4, 1, 3, 3, 3}, {2, 8, 8},       {4, 3, 2, 1, 4}, {5, 1, 1, 1, 1, 1},
    {2, 100, 3},     {2, 3, 100},     {3, 2, 3, 4},    {3, 7, 7, 2},   {5, 4, 3, 2, 1, 2},
    {2, 5, 1},       {2, 1, 1},
};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

static void shape_of(size_t s, int *ndim, size_t *shape)
{
    *ndim = (int)SHAPES[s][0];
    for (int k = 0; k < *ndim; k++) shape[k] = SHAPES[s][k + 1];
}

static double tol_for(const td_tensor *ref, size_t inner)
{
    double m = 0;
    for (size_t i = 0; i < ref->size; i++) m = fmax(m, fabs(ref->data[i]));
    return 32.0 * DBL_EPSILON * (double)(inner + 1) * fmax(m, 1.0);
}

START_TEST(test_golden_unfolding)
{
    size_t shape[3] = {3, 4, 2};
    td_tensor x, u;
    ck_assert_int_eq(td_tensor_alloc(&x, 3, shape), TD_OK);
    for (size_t i = 0; i < 24; i++) x.data[i] = (double)i;
    static const double m0[3][8] = {{0, 1, 2, 3, 4, 5, 6, 7},
                                    {8, 9, 10, 11, 12, 13, 14, 15},
                                    {16, 17, 18, 19, 20, 21, 22, 23}};
    static const double m1[4][6] = {{0, 1, 8, 9, 16, 17},
                                    {2, 3, 10, 11, 18, 19},
                                    {4, 5, 12, 13, 20, 21},
                                    {6, 7, 14, 15, 22, 23}};
    static const double m2[2][12] = {{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22},
                                     {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}};
    const double *want[3] = {&m0[0][0], &m1[0][0], &m2[0][0]};
    for (int n = 0; n < 3; n++) {
        ck_assert_int_eq(td_matrix_alloc(&u, shape[n], 24 / shape[n]), TD_OK);
        ck_assert_int_eq(td_unfold(&x, n, &u), TD_OK);
        for (size_t i = 0; i < 24; i++) ck_assert_msg(u.data[i] == want[n][i], "mode %d entry %zu", n, i);
        td_tensor back;
        ck_assert_int_eq(td_tensor_alloc(&back, 3, shape), TD_OK);
        ck_assert_int_eq(td_fold(&u, n, &back), TD_OK);
        ck_assert(tt_bitequal(&back, &x));
        td_tensor_free(&back);
        td_tensor_free(&u);
    }
    td_tensor_free(&x);
}
END_TEST

START_TEST(test_unfold_fold_vs_naive)
{
    for (size_t s = 0; s < NSHAPES; s++) {
        int nd;
        size_t shape[TD_MAX_MODES];
        shape_of(s, &nd, shape);
        td_tensor x;
        tt_random(&x, nd, shape, 100 + s);
        for (int n = 0; n < nd; n++) {
            td_tensor u, r, back;
            ck_assert_int_eq(td_matrix_alloc(&u, shape[n], x.size / shape[n]), TD_OK);
            ck_assert_int_eq(td_matrix_alloc(&r, shape[n], x.size / shape[n]), TD_OK);
            ck_assert_int_eq(td_unfold(&x, n, &u), TD_OK);
            nv_unfold(&x, n, &r);
            ck_assert(tt_bitequal(&u, &r));
            ck_assert_int_eq(td_tensor_alloc(&back, nd, shape), TD_OK);
            ck_assert_int_eq(td_fold(&u, n, &back), TD_OK);
            ck_assert(tt_bitequal(&back, &x));
            ck_assert(fabs(td_norm(&u) - td_norm(&x)) <= 4 * DBL_EPSILON * td_norm(&x));
            td_unfolding d;
            ck_assert_int_eq(td_unfolding_of(&x, n, &d), TD_OK);
            ck_assert_uint_eq(d.left * d.rows * d.right, x.size);
            td_tensor_free(&u);
            td_tensor_free(&r);
            td_tensor_free(&back);
        }
        td_tensor_free(&x);
    }
}
END_TEST

START_TEST(test_ttm_vs_naive)
{
    for (size_t s = 0; s < NSHAPES; s++) {
        int nd;
        size_t shape[TD_MAX_MODES], ys[TD_MAX_MODES];
        shape_of(s, &nd, shape);
        td_tensor x;
        tt_random(&x, nd, shape, 200 + s);
        for (int n = 0; n < nd; n++)
            for (int tr = 0; tr < 2; tr++) {
                size_t j = 1 + (s + (size_t)n) % 5;
                td_tensor m, y, r;
                if (tr) tt_random_matrix(&m, shape[n], j, 7 + s);
                else tt_random_matrix(&m, j, shape[n], 7 + s);
                memcpy(ys, shape, sizeof ys);
                ys[n] = j;
                ck_assert_int_eq(td_tensor_alloc(&y, nd, ys), TD_OK);
                ck_assert_int_eq(td_tensor_alloc(&r, nd, ys), TD_OK);
                ck_assert_int_eq(td_ttm(&x, n, &m, tr, &y), TD_OK);
                nv_ttm(&x, n, &m, tr, &r);
                ck_assert_msg(tt_maxdiff(&y, &r) <= tol_for(&r, shape[n]), "shape %zu mode %d tr %d", s, n, tr);
                td_tensor_free(&m);
                td_tensor_free(&y);
                td_tensor_free(&r);
            }
        td_tensor_free(&x);
    }
}
END_TEST

START_TEST(test_ttm_identities)
{
    size_t shape[4] = {4, 5, 3, 6};
    td_tensor x;
    tt_random(&x, 4, shape, 5);
    for (int n = 0; n < 4; n++) {
        /* (X x_n A) x_n B == X x_n (B A) */
        td_tensor a, b, ba, y1, y2, y3;
        tt_random_matrix(&a, 7, shape[n], 11);
        tt_random_matrix(&b, 2, 7, 12);
        ck_assert_int_eq(td_matrix_alloc(&ba, 2, shape[n]), TD_OK);
        for (size_t i = 0; i < 2; i++)
            for (size_t k = 0; k < shape[n]; k++) {
                double sum = 0;
                for (size_t t = 0; t < 7; t++) sum += b.data[i * 7 + t] * a.data[t * shape[n] + k];
                ba.data[i * shape[n] + k] = sum;
            }
        size_t s1[4], s2[4];
        memcpy(s1, shape, sizeof s1);
        memcpy(s2, shape, sizeof s2);
        s1[n] = 7;
        s2[n] = 2;
        ck_assert_int_eq(td_tensor_alloc(&y1, 4, s1), TD_OK);
        ck_assert_int_eq(td_tensor_alloc(&y2, 4, s2), TD_OK);
        ck_assert_int_eq(td_tensor_alloc(&y3, 4, s2), TD_OK);
        TT_OK(td_ttm(&x, n, &a, 0, &y1));
        TT_OK(td_ttm(&y1, n, &b, 0, &y2));
        TT_OK(td_ttm(&x, n, &ba, 0, &y3));
        ck_assert(tt_relerr(&y2, &y3) < 1e-13);
        td_tensor_free(&a); td_tensor_free(&b); td_tensor_free(&ba);
        td_tensor_free(&y1); td_tensor_free(&y2); td_tensor_free(&y3);
    }
    /* Products on different modes commute; ttm_multi agrees with the sequence, any skip. */
    td_tensor m[4], y01, y10, t0, t1;
    for (int k = 0; k < 4; k++) tt_random_matrix(&m[k], k + 2, shape[k], 30 + (uint64_t)k);
    size_t a0[4] = {2, 5, 3, 6}, a01[4] = {2, 3, 3, 6}, a1[4] = {4, 3, 3, 6};
    ck_assert_int_eq(td_tensor_alloc(&t0, 4, a0), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&t1, 4, a1), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&y01, 4, a01), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&y10, 4, a01), TD_OK);
    TT_OK(td_ttm(&x, 0, &m[0], 0, &t0));
    TT_OK(td_ttm(&t0, 1, &m[1], 0, &y01));
    TT_OK(td_ttm(&x, 1, &m[1], 0, &t1));
    TT_OK(td_ttm(&t1, 0, &m[0], 0, &y10));
    ck_assert(tt_relerr(&y01, &y10) < 1e-13);
    const td_tensor *mats[4] = {&m[0], &m[1], NULL, NULL};
    td_tensor ym;
    ck_assert_int_eq(td_tensor_alloc(&ym, 4, a01), TD_OK);
    TT_OK(td_ttm_multi(&x, mats, -1, 0, &ym));
    ck_assert(tt_relerr(&ym, &y01) < 1e-13);
    td_tensor_free(&ym);
    const td_tensor *all[4] = {&m[0], &m[1], &m[2], &m[3]};
    size_t sk[4] = {2, 3, 3, 6}; /* skip mode 3 */
    ck_assert_int_eq(td_tensor_alloc(&ym, 4, sk), TD_OK);
    td_tensor step;
    size_t ss[4] = {2, 3, 4, 6};
    ck_assert_int_eq(td_tensor_alloc(&step, 4, ss), TD_OK);
    TT_OK(td_ttm(&y01, 2, &m[2], 0, &step));
    sk[2] = 4;
    td_tensor_free(&ym);
    ck_assert_int_eq(td_tensor_alloc(&ym, 4, sk), TD_OK);
    TT_OK(td_ttm_multi(&x, all, 3, 0, &ym));
    ck_assert(tt_relerr(&ym, &step) < 1e-13);
    ck_assert_int_eq(td_ttm_multi(&x, all, 3, 1, &ym), TD_ESHAPE); /* transposed shapes differ */
    td_tensor_free(&ym); td_tensor_free(&step);
    for (int k = 0; k < 4; k++) td_tensor_free(&m[k]);
    td_tensor_free(&t0); td_tensor_free(&t1); td_tensor_free(&y01); td_tensor_free(&y10);
    td_tensor_free(&x);
}
END_TEST

START_TEST(test_khatri_rao)
{
    /* TensorLy's documented example. */
    double ad[4] = {1, 2, 3, 4}, bd[6] = {1, 10, 100, 1000, 5, 6};
    size_t as[2] = {2, 2}, bs[2] = {3, 2}, os[2] = {6, 2};
    td_tensor a, b, out;
    TT_OK(td_tensor_view(&a, 2, as, ad));
    TT_OK(td_tensor_view(&b, 2, bs, bd));
    ck_assert_int_eq(td_tensor_alloc(&out, 2, os), TD_OK);
    const td_tensor *ms[2] = {&a, &b};
    TT_OK(td_khatri_rao(ms, 2, -1, &out));
    static const double want[12] = {1, 20, 100, 2000, 5, 12, 3, 40, 300, 4000, 15, 24};
    for (int i = 0; i < 12; i++) ck_assert(out.data[i] == want[i]);
    td_tensor_free(&out);
    /* Random cases with skips against the definition. */
    td_tensor m[4], r, k;
    for (int i = 0; i < 4; i++) tt_random_matrix(&m[i], (size_t)i + 2, 3, 50 + (uint64_t)i);
    const td_tensor *mp[4] = {&m[0], &m[1], &m[2], &m[3]};
    for (int skip = -1; skip < 4; skip++) {
        size_t rows = 1;
        for (int i = 0; i < 4; i++) if (i != skip) rows *= (size_t)i + 2;
        ck_assert_int_eq(td_matrix_alloc(&k, rows, 3), TD_OK);
        ck_assert_int_eq(td_matrix_alloc(&r, rows, 3), TD_OK);
        TT_OK(td_khatri_rao(mp, 4, skip, &k));
        nv_khatri_rao(mp, 4, skip, &r);
        ck_assert(tt_maxdiff(&k, &r) <= 1e-14);
        td_tensor_free(&k);
        td_tensor_free(&r);
    }
    ck_assert_int_eq(td_matrix_alloc(&k, 5, 3), TD_OK);
    ck_assert_int_eq(td_khatri_rao(mp, 4, -1, &k), TD_ESHAPE);
    td_tensor_free(&k);
    for (int i = 0; i < 4; i++) td_tensor_free(&m[i]);
}
END_TEST

START_TEST(test_mttkrp_and_gram_vs_naive)
{
    for (size_t s = 0; s < NSHAPES; s++) {
        int nd;
        size_t shape[TD_MAX_MODES];
        shape_of(s, &nd, shape);
        if (nd < 2) continue;
        td_tensor x, f[TD_MAX_MODES];
        const td_tensor *fp[TD_MAX_MODES];
        tt_random(&x, nd, shape, 300 + s);
        size_t r = 1 + s % 4;
        for (int k = 0; k < nd; k++) {
            tt_random_matrix(&f[k], shape[k], r, 400 + s * 8 + (size_t)k);
            fp[k] = &f[k];
        }
        for (int n = 0; n < nd; n++) {
            td_tensor o, ref, g, gr;
            ck_assert_int_eq(td_matrix_alloc(&o, shape[n], r), TD_OK);
            ck_assert_int_eq(td_matrix_alloc(&ref, shape[n], r), TD_OK);
            TT_OK(td_mttkrp(&x, fp, n, &o));
            nv_mttkrp(&x, fp, n, &ref);
            ck_assert_msg(tt_maxdiff(&o, &ref) <= tol_for(&ref, x.size), "mttkrp shape %zu mode %d", s, n);
            ck_assert_int_eq(td_matrix_alloc(&g, shape[n], shape[n]), TD_OK);
            ck_assert_int_eq(td_matrix_alloc(&gr, shape[n], shape[n]), TD_OK);
            TT_OK(td_gram(&x, n, &g));
            nv_gram(&x, n, &gr);
            ck_assert_msg(tt_maxdiff(&g, &gr) <= tol_for(&gr, x.size), "gram shape %zu mode %d", s, n);
            for (size_t i = 0; i < shape[n]; i++)
                for (size_t j = 0; j < shape[n]; j++)
                    ck_assert(g.data[i * shape[n] + j] == g.data[j * shape[n] + i]);
            td_tensor_free(&o); td_tensor_free(&ref); td_tensor_free(&g); td_tensor_free(&gr);
        }
        for (int k = 0; k < nd; k++) td_tensor_free(&f[k]);
        td_tensor_free(&x);
    }
}
END_TEST

/* Random probes on a larger tensor: y^T K z for kernels K, against contractions computed from
 * the tensor's elements directly. */
START_TEST(test_probes_large)
{
    size_t shape[3] = {60, 50, 40};
    td_tensor x;
    tt_random(&x, 3, shape, 77);
    td_rng rng;
    td_rng_seed(&rng, 3);
    for (int n = 0; n < 3; n++) {
        const size_t in = shape[n], cols = x.size / in;
        td_tensor g, u;
        ck_assert_int_eq(td_matrix_alloc(&g, in, in), TD_OK);
        TT_OK(td_gram(&x, n, &g));
        ck_assert_int_eq(td_matrix_alloc(&u, in, cols), TD_OK);
        nv_unfold(&x, n, &u);
        double y[60], z[60], uy[3000] = {0}, uz[3000] = {0};
        ck_assert(cols <= 3000 && in <= 60);
        for (size_t i = 0; i < in; i++) { y[i] = td_rng_normal(&rng); z[i] = td_rng_normal(&rng); }
        for (size_t i = 0; i < in; i++)
            for (size_t c = 0; c < cols; c++) {
                uy[c] += y[i] * u.data[i * cols + c];
                uz[c] += z[i] * u.data[i * cols + c];
            }
        double want = 0, got = 0;
        for (size_t c = 0; c < cols; c++) want += uy[c] * uz[c];
        for (size_t i = 0; i < in; i++)
            for (size_t k = 0; k < in; k++) got += y[i] * g.data[i * in + k] * z[k];
        ck_assert(fabs(got - want) <= 1e-10 * (fabs(want) + 1e3));
        td_tensor_free(&g);
        td_tensor_free(&u);
    }
    td_tensor_free(&x);
}
END_TEST

START_TEST(test_norm_inner_and_errors)
{
    size_t shape[2] = {3, 4};
    td_tensor x, y, m, bad;
    tt_random(&x, 2, shape, 1);
    double s = 0;
    for (size_t i = 0; i < x.size; i++) s += x.data[i] * x.data[i];
    ck_assert(fabs(td_norm(&x) - sqrt(s)) <= 1e-15 * sqrt(s));
    double ip;
    TT_OK(td_inner(&x, &x, &ip));
    ck_assert(fabs(ip - s) <= 1e-14 * s);
    for (size_t i = 0; i < x.size; i++) x.data[i] = 1e200;
    ck_assert(fabs(td_norm(&x) / (1e200 * sqrt(12.0)) - 1) < 1e-14); /* no overflow */
    for (size_t i = 0; i < x.size; i++) x.data[i] = 1e-200;
    ck_assert(fabs(td_norm(&x) / (1e-200 * sqrt(12.0)) - 1) < 1e-14); /* no underflow */
    tt_random(&y, 2, (size_t[]){4, 3}, 2);
    ck_assert_int_eq(td_inner(&x, &y, &ip), TD_ESHAPE);
    ck_assert_int_eq(td_matrix_alloc(&m, 2, 3), TD_OK);
    ck_assert_int_eq(td_ttm(&x, 2, &m, 0, &y), TD_EINVAL);
    ck_assert_int_eq(td_ttm(&x, -1, &m, 0, &y), TD_EINVAL);
    ck_assert_int_eq(td_ttm(&x, 0, &m, 0, &y), TD_ESHAPE); /* y must be (2, 4) */
    ck_assert_int_eq(td_ttm(&x, 1, &m, 0, &y), TD_ESHAPE); /* m is 2x3, mode 1 has 4 */
    ck_assert_int_eq(td_matrix_alloc(&bad, 3, 5), TD_OK);
    ck_assert_int_eq(td_unfold(&x, 0, &bad), TD_ESHAPE);
    ck_assert_int_eq(td_gram(&x, 0, &bad), TD_ESHAPE);
    ck_assert_int_eq(td_unfold(&x, 5, &bad), TD_EINVAL);
    td_tensor_free(&x); td_tensor_free(&y); td_tensor_free(&m); td_tensor_free(&bad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core_kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_golden_unfolding);
    tcase_add_test(tc, test_unfold_fold_vs_naive);
    tcase_add_test(tc, test_ttm_vs_naive);
    tcase_add_test(tc, test_ttm_identities);
    tcase_add_test(tc, test_khatri_rao);
    tcase_add_test(tc, test_mttkrp_and_gram_vs_naive);
    tcase_add_test(tc, test_probes_large);
    tcase_add_test(tc, test_norm_inner_and_errors);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
