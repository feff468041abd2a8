/* Rank rules on known spectra; EVBMF on the worked examples of research/rank_selection.md. */
#include <math.h>
#include "common/testutil.h"

START_TEST(test_ratio_rounding)
{
    ck_assert_uint_eq(td_rank_ratio(0.25, 256), 64);
    ck_assert_uint_eq(td_rank_ratio(0.25, 128), 32); /* (256,128,3,3) at 0.25 gives (64,32) */
    ck_assert_uint_eq(td_rank_ratio(0.5, 3), 2);     /* 1.5 rounds half up */
    ck_assert_uint_eq(td_rank_ratio(0.1, 16), 2);    /* 1.6 */
    ck_assert_uint_eq(td_rank_ratio(0.01, 16), 1);   /* never below 1 */
    ck_assert_uint_eq(td_rank_ratio(1.0, 7), 7);
    ck_assert_uint_eq(td_rank_ratio(0.3, 10), 3);    /* 0.3*10 = 2.9999999999999996 in binary */
    ck_assert_uint_eq(td_rank_ratio(0.35, 10), 4);   /* 3.5 -> 4 although 0.35*10 < 3.5 in binary */
    ck_assert_uint_eq(td_rank_ratio(0.5, 0), 0);
}
END_TEST

START_TEST(test_energy)
{
    const double s2[5] = {50, 25, 15, 8, 2}; /* total 100 */
    size_t r;
    TT_OK(td_rank_energy(s2, 5, 0.5, &r));
    ck_assert_uint_eq(r, 1);
    TT_OK(td_rank_energy(s2, 5, 0.75, &r));
    ck_assert_uint_eq(r, 2);
    TT_OK(td_rank_energy(s2, 5, 0.76, &r));
    ck_assert_uint_eq(r, 3);
    TT_OK(td_rank_energy(s2, 5, 0.98, &r));
    ck_assert_uint_eq(r, 4);
    TT_OK(td_rank_energy(s2, 5, 1.0, &r));
    ck_assert_uint_eq(r, 5);
    const double low[4] = {4, 1, 0, 0};
    TT_OK(td_rank_energy(low, 4, 1.0, &r));
    ck_assert_uint_eq(r, 2); /* numerical rank */
    ck_assert_int_eq(td_rank_energy(s2, 5, 0.0, &r), TD_EINVAL);
    ck_assert_int_eq(td_rank_energy(s2, 5, 1.5, &r), TD_EINVAL);
}
END_TEST

START_TEST(test_evbmf_worked_examples)
{
    size_t r;
    double s2;
    const double a[5] = {10, 8, 0.5, 0.4, 0.3}, b[6] = {3, 2, 1, 1, 1, 1}, c[4] = {1, 1, 1, 1};
    TT_OK(td_rank_evbmf(a, 5, 5, 10, &r, &s2));
    ck_assert_uint_eq(r, 2);
    ck_assert(fabs(s2 - 0.025036) < 2e-5); /* the free energy's global minimum (grid search) */
    TT_OK(td_rank_evbmf(b, 6, 6, 12, &r, &s2));
    ck_assert_uint_eq(r, 1);
    ck_assert(fabs(s2 - 0.153418) < 2e-5);
    TT_OK(td_rank_evbmf(c, 4, 4, 8, &r, &s2));
    ck_assert_uint_eq(r, 0);
    ck_assert(fabs(s2 - 0.125) < 1e-12); /* lower == upper == 4/32 */
    /* transposed input (rows > cols) gives the same answer */
    TT_OK(td_rank_evbmf(a, 5, 10, 5, &r, &s2));
    ck_assert_uint_eq(r, 2);
}
END_TEST

START_TEST(test_evbmf_scale_invariance_and_signal)
{
    /* a rank-4 signal plus small noise in a 30 x 60 matrix: EVBMF finds 4, at every scale */
    td_tensor a, u;
    tt_random_matrix(&a, 30, 60, 3);
    td_tensor f1, f2;
    tt_random_matrix(&f1, 30, 4, 4);
    tt_random_matrix(&f2, 4, 60, 5);
    for (size_t i = 0; i < 30; i++)
        for (size_t j = 0; j < 60; j++) {
            double s = 0;
            for (size_t k = 0; k < 4; k++) s += f1.data[i * 4 + k] * f2.data[k * 60 + j];
            a.data[i * 60 + j] = 3.0 * s + 0.05 * a.data[i * 60 + j];
        }
    double sv[30];
    ck_assert_int_eq(td_matrix_alloc(&u, 30, 30), TD_OK);
    TT_OK(td_svd_trunc(&a, 30, NULL, &u, sv, NULL));
    for (double scale = 1e-3; scale <= 1e3 * 1.0001; scale *= 10) {
        double s[30];
        size_t r;
        for (int i = 0; i < 30; i++) s[i] = sv[i] * scale;
        TT_OK(td_rank_evbmf(s, 30, 30, 60, &r, NULL));
        ck_assert_msg(r == 4, "scale %g rank %zu", scale, r);
    }
    /* pure Gaussian noise: rank 0 */
    td_tensor z;
    tt_random_matrix(&z, 32, 64, 9);
    double zs[32];
    size_t r;
    TT_OK(td_svd_trunc(&z, 32, NULL, NULL, zs, NULL));
    TT_OK(td_rank_evbmf(zs, 32, 32, 64, &r, NULL));
    ck_assert_uint_eq(r, 0);
    /* a zero matrix: rank 0, no division by zero */
    double zero[3] = {0, 0, 0};
    TT_OK(td_rank_evbmf(zero, 3, 3, 5, &r, NULL));
    ck_assert_uint_eq(r, 0);
    td_tensor_free(&a); td_tensor_free(&u); td_tensor_free(&f1); td_tensor_free(&f2); td_tensor_free(&z);
}
END_TEST

START_TEST(test_truncate_callback_with_tucker)
{
    /* energy rule through td_tucker: each mode keeps >= 90 % of its unfolding's energy */
    size_t shape[3] = {8, 7, 6};
    int modes[3] = {0, 1, 2};
    td_tensor x;
    tt_random(&x, 3, shape, 11);
    td_rank_rule rule = {0};
    rule.kind = TD_RANK_ENERGY;
    rule.value = 0.9;
    rule.tensor_size = x.size;
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.method = TD_TUCKER_HOSVD;
    o.truncate = td_rank_truncate;
    o.truncate_ctx = &rule;
    td_tucker_result res;
    TT_OK(td_tucker(&x, 3, modes, NULL, &o, &res));
    for (int k = 0; k < 3; k++) {
        double s2[8], tot = 0, kept = 0;
        TT_OK(td_mode_spectrum(&x, k, 0, NULL, s2));
        for (size_t i = 0; i < shape[k]; i++) tot += s2[i];
        for (size_t i = 0; i < res.ranks[k]; i++) kept += s2[i];
        ck_assert(kept >= 0.9 * tot * (1 - 1e-12));
        ck_assert(kept - s2[res.ranks[k] - 1] < 0.9 * tot);
    }
    td_tucker_free(&res);
    rule.kind = TD_RANK_RATIO;
    rule.value = 0.5;
    TT_OK(td_tucker(&x, 3, modes, NULL, &o, &res));
    ck_assert_uint_eq(res.ranks[0], 4);
    ck_assert_uint_eq(res.ranks[1], 4); /* 3.5 rounds up */
    ck_assert_uint_eq(res.ranks[2], 3);
    td_tucker_free(&res);
    /* EVBMF on pure noise picks rank 0: td_tucker reports TD_EINFEASIBLE */
    rule.kind = TD_RANK_EVBMF;
    ck_assert_int_eq(td_tucker(&x, 3, modes, NULL, &o, &res), TD_EINFEASIBLE);
    td_tensor_free(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rank");
    TCase *tc = tcase_create("rank");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ratio_rounding);
    tcase_add_test(tc, test_energy);
    tcase_add_test(tc, test_evbmf_worked_examples);
    tcase_add_test(tc, test_evbmf_scale_invariance_and_signal);
    tcase_add_test(tc, test_truncate_callback_with_tucker);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
