/* Rank rules on known spectra; EVBMF on worked examples (Nakajima et al. 2013 closed form; docs/rank-rules.md). */
#include <math.h>
#include <string.h>
#include "common/testutil.h"

START_TEST(test_ratio_rounding)
{
    ck_assert_uint_eq(td_rank_ratio(0.25, 256), 64);
    ck_assert_uint_eq(td_rank_ratio(0.25, 128), 32); /* (256,128,3,3) at 0.25 gives (64,32) */
    ck_assert_uint_eq(td_rank_ratio(0.5, 3), 2);     /* 1.5 rounds half up */
    ck_assert_uint_eq(td_rank_ratio(0.1, 16), 2);    /* 1.6 */
    ck_assert_uint_eq(td_rank_ratio(0.01, 16), 1);   /* never below 1 */
    ck_assert_uint_eq(td_rank_ratio(1.0, 7), 7);
    ck_assert_uint_eq(td_rank_ratio(0.3, 10), 3);
    ck_assert_uint_eq(td_rank_ratio(0.35, 10), 4);   /* 3.5 -> 4 */
    /* products that binary rounding puts just below the exact decimal value */
    ck_assert_uint_eq(td_rank_ratio(0.29, 50), 15);  /* 14.499999999999998 -> 14.5 -> 15 */
    ck_assert_uint_eq(td_rank_ratio(0.35, 90), 32);  /* 31.499999999999996 -> 32 */
    ck_assert_uint_eq(td_rank_ratio(0.29, 100), 29); /* 28.999999999999996 -> 29 */
    ck_assert_uint_eq(td_rank_ratio(0.57, 200), 114);
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

/* A Tucker-2 low-rank kernel (Cout 12, Cin 10, 3, 3) of multilinear ranks (3, 5) plus small noise:
 * EVBMF on the mode-0 / mode-1 unfoldings (the --vbmf path) finds (3, 5), at every scale, and the
 * callback with td_tucker agrees. */
START_TEST(test_evbmf_tucker2_kernel)
{
    size_t cs[4] = {3, 5, 3, 3}, ks[4] = {12, 10, 3, 3};
    td_tensor core, uo, ui, t, k, noise;
    tt_random(&core, 4, cs, 21);
    tt_random_matrix(&uo, 12, 3, 22);
    tt_random_matrix(&ui, 10, 5, 23);
    tt_random(&noise, 4, ks, 24);
    size_t ts[4] = {12, 5, 3, 3};
    ck_assert_int_eq(td_tensor_alloc(&t, 4, ts), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&k, 4, ks), TD_OK);
    TT_OK(td_ttm(&core, 0, &uo, 0, &t));
    TT_OK(td_ttm(&t, 1, &ui, 0, &k));
    for (size_t i = 0; i < k.size; i++) k.data[i] += 0.01 * noise.data[i];
    const size_t want[2] = {3, 5};
    for (int mode = 0; mode < 2; mode++) {
        double s2[12], s[12];
        size_t n = ks[mode], r;
        TT_OK(td_mode_spectrum(&k, mode, 0, NULL, s2));
        for (double scale = 1e-3; scale <= 1e3 * 1.0001; scale *= 1e3) {
            for (size_t i = 0; i < n; i++) s[i] = sqrt(s2[i]) * scale;
            TT_OK(td_rank_evbmf(s, n, n, k.size / n, &r, NULL));
            ck_assert_msg(r == want[mode], "mode %d scale %g rank %zu", mode, scale, r);
        }
    }
    td_rank_rule rule;
    memset(&rule, 0, sizeof rule);
    rule.kind = TD_RANK_EVBMF;
    rule.tensor_size = k.size;
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.truncate = td_rank_truncate;
    o.truncate_ctx = &rule;
    int modes[2] = {0, 1};
    td_tucker_result res;
    TT_OK(td_tucker(&k, 2, modes, NULL, &o, &res));
    ck_assert_uint_eq(res.ranks[0], 3);
    ck_assert_uint_eq(res.ranks[1], 5);
    ck_assert(res.rel_error < 0.05);
    td_tucker_free(&res);
    rule.tensor_size = 0; /* EVBMF needs the column count */
    ck_assert_int_eq(td_tucker(&k, 2, modes, NULL, &o, &res), TD_EINVAL);
    td_tensor_free(&core); td_tensor_free(&uo); td_tensor_free(&ui); td_tensor_free(&t);
    td_tensor_free(&k); td_tensor_free(&noise);
}
END_TEST

/* The callback with fixed ranks and bad rules; EVBMF with more rows than columns. */
START_TEST(test_truncate_rules)
{
    const double sv2[6] = {36, 25, 4, 1, 0.25, 0.01};
    td_rank_rule rule;
    memset(&rule, 0, sizeof rule);
    size_t r;
    rule.kind = TD_RANK_FIXED;
    rule.fixed[0] = 4;
    rule.fixed[2] = 9;
    TT_OK(td_rank_truncate(&rule, 0, sv2, 6, &r));
    ck_assert_uint_eq(r, 4);
    TT_OK(td_rank_truncate(&rule, 2, sv2, 6, &r));
    ck_assert_uint_eq(r, 6); /* lowered to the mode */
    ck_assert_int_eq(td_rank_truncate(&rule, 1, sv2, 6, &r), TD_EINVAL); /* fixed 0 */
    ck_assert_int_eq(td_rank_truncate(&rule, -1, sv2, 6, &r), TD_EINVAL);
    ck_assert_int_eq(td_rank_truncate(NULL, 0, sv2, 6, &r), TD_EINVAL);
    rule.kind = TD_RANK_RATIO;
    rule.value = 0.5;
    TT_OK(td_rank_truncate(&rule, 1, sv2, 6, &r));
    ck_assert_uint_eq(r, 3);
    rule.value = 1.5;
    ck_assert_int_eq(td_rank_truncate(&rule, 1, sv2, 6, &r), TD_EINVAL);
    rule.kind = TD_RANK_ENERGY;
    rule.value = 0.9; /* total 66.26: 36 + 25 = 61 >= 59.634 */
    TT_OK(td_rank_truncate(&rule, 1, sv2, 6, &r));
    ck_assert_uint_eq(r, 2);
    const double bad[2] = {1, NAN};
    ck_assert_int_eq(td_rank_energy(bad, 2, 0.5, &r), TD_ENOTFINITE);
    ck_assert_int_eq(td_rank_evbmf(bad, 2, 2, 4, &r, NULL), TD_ENOTFINITE);
    ck_assert_int_eq(td_rank_evbmf(bad, 2, 0, 4, &r, NULL), TD_EINVAL);
    /* worked example A of rank_selection.md as the 10 x 5 transpose: rows > cols, same rank 2 */
    const double a2[10] = {100, 64, 0.25, 0.16, 0.09, 0, 0, 0, 0, 0};
    rule.kind = TD_RANK_EVBMF;
    rule.tensor_size = 50;
    TT_OK(td_rank_truncate(&rule, 0, a2, 10, &r));
    ck_assert_uint_eq(r, 2);
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
    tcase_add_test(tc, test_evbmf_tucker2_kernel);
    tcase_add_test(tc, test_truncate_rules);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
