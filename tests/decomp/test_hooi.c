/* HOOI's warm sweeps (Chebyshev-filtered subspace step + Rayleigh-Ritz) against the dense-sweep
 * HOOI (hooi_exact = 1) as the reference, and the shortcuts of its initialisation and core. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/naive.h"
#include "common/testutil.h"

/* The warm step is not an exact eigensolve: after each sweep its error may trail the dense
 * sweep's by at most this (measured on these kernels: by up to 1.2e-4 after the second sweep,
 * ahead from the third on). */
#define WARM_TRAIL_TOL 5e-4

static void run_float(const td_tensor *x, int nm, const int *modes, const size_t *ranks, double tol, int max_iter,
                      int exact, int float_sweeps, td_tucker_result *res)
{
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.tol = tol;
    o.max_iter = max_iter;
    o.hooi_exact = exact;
    o.float_sweeps = float_sweeps;
    TT_OK(td_tucker(x, nm, modes, ranks, &o, res));
}

/* The default float_sweeps (1): these tensors are below 2^20 entries, all double. */
static void run(const td_tensor *x, int nm, const int *modes, const size_t *ranks, double tol, int max_iter,
                int exact, td_tucker_result *res)
{
    run_float(x, nm, modes, ranks, tol, max_iter, exact, 1, res);
    ck_assert_int_eq(res->float_sweeps, 0);
}

/* Gaussian conv kernels (flat spectra, the slow case): after every sweep the warm error is at most
 * the dense one's + WARM_TRAIL_TOL, never rises, and the reported error is the reconstruction's. */
START_TEST(test_warm_tracks_dense_on_kernels)
{
    const size_t shapes[3][4] = {{32, 32, 3, 3}, {40, 24, 3, 3}, {24, 40, 1, 5}};
    const size_t ranks[3][2] = {{8, 8}, {10, 6}, {6, 10}};
    const int modes[2] = {0, 1}, sweeps = 8;
    for (int c = 0; c < 3; c++) {
        td_tensor x;
        tt_random(&x, 4, shapes[c], 101 + (uint64_t)c);
        td_tucker_result w, d;
        run(&x, 2, modes, ranks[c], 0, sweeps, 0, &w);
        run(&x, 2, modes, ranks[c], 0, sweeps, 1, &d);
        ck_assert_int_eq(w.iterations, sweeps);
        ck_assert(w.history[0] == d.history[0]); /* the first sweep is dense on both */
        for (int i = 0; i < sweeps; i++)
            ck_assert_msg(w.history[i] <= d.history[i] + WARM_TRAIL_TOL, "case %d sweep %d: warm %.10g dense %.10g",
                          c, i + 1, w.history[i], d.history[i]);
        for (int i = 1; i < sweeps; i++)
            ck_assert_msg(w.history[i] <= w.history[i - 1] + 1e-13, "case %d sweep %d rose", c, i + 1);
        ck_assert(fabs(tt_tucker_err(&x, &w) - w.rel_error) < 1e-12);
        ck_assert(fabs(w.history[sweeps - 1] - w.rel_error) < 1e-12);
        for (int i = 0; i < 2; i++) ck_assert(tt_orth_cols(&w.factors[i]) < 1e-12);
        td_tucker_free(&w);
        td_tucker_free(&d);
        td_tensor_free(&x);
    }
}
END_TEST

/* Converged runs (tight tol) reach the dense run's error; a loose tol ends within tol of it
 * (a warm sweep's small change is confirmed by a dense sweep before the run stops). */
START_TEST(test_warm_converges_to_dense)
{
    const size_t shape[4] = {30, 28, 3, 3}, ranks[2] = {6, 7};
    const int modes[2] = {0, 1};
    td_tensor x;
    tt_random(&x, 4, shape, 131);
    td_tucker_result w, d;
    run(&x, 2, modes, ranks, 1e-10, 1000, 0, &w);
    run(&x, 2, modes, ranks, 1e-10, 1000, 1, &d);
    ck_assert(w.converged && d.converged);
    ck_assert_msg(fabs(w.rel_error - d.rel_error) < 1e-6, "warm %.10g dense %.10g", w.rel_error, d.rel_error);
    td_tucker_free(&w);
    td_tucker_free(&d);
    run(&x, 2, modes, ranks, 1e-3, 100, 0, &w);
    run(&x, 2, modes, ranks, 1e-3, 100, 1, &d);
    ck_assert(w.converged && d.converged);
    ck_assert_msg(w.rel_error <= d.rel_error + 1e-3, "warm %.10g dense %.10g", w.rel_error, d.rel_error);
    td_tucker_free(&w);
    td_tucker_free(&d);
    td_tensor_free(&x);
}
END_TEST

/* x = core x_0 A x_1 B with random core and factors: exact multilinear rank on modes 0, 1. */
static void tucker2_tensor(td_tensor *x, const size_t *shape, size_t r0, size_t r1, uint64_t seed)
{
    const size_t cs[4] = {r0, r1, shape[2], shape[3]}, ms[4] = {r0, shape[1], shape[2], shape[3]};
    td_tensor core, a, b, mid;
    tt_random(&core, 4, cs, seed);
    tt_random_matrix(&a, shape[0], r0, seed + 1);
    tt_random_matrix(&b, shape[1], r1, seed + 2);
    ck_assert_int_eq(td_tensor_alloc(&mid, 4, ms), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(x, 4, shape), TD_OK);
    nv_ttm(&core, 1, &b, 0, &mid);
    nv_ttm(&mid, 0, &a, 0, x);
    td_tensor_free(&core);
    td_tensor_free(&a);
    td_tensor_free(&b);
    td_tensor_free(&mid);
}

/* Exact recovery through warm sweeps; and ranks above the multilinear rank, where the trailing
 * eigenvalues of the mode Grams are 0 (the filter does not apply and the dense route runs). */
START_TEST(test_warm_exact_recovery)
{
    const size_t shape[4] = {26, 22, 3, 3};
    const int modes[2] = {0, 1};
    td_tensor x;
    tucker2_tensor(&x, shape, 5, 4, 141);
    const size_t exact_r[2] = {5, 4}, over_r[2] = {8, 7};
    td_tucker_result w;
    run(&x, 2, modes, exact_r, 0, 5, 0, &w);
    ck_assert_msg(w.rel_error < 1e-12 && tt_tucker_err(&x, &w) < 1e-12, "err %g", w.rel_error);
    td_tucker_free(&w);
    run(&x, 2, modes, over_r, 0, 5, 0, &w);
    ck_assert_msg(tt_tucker_err(&x, &w) < 1e-12, "err %g", tt_tucker_err(&x, &w));
    for (int i = 0; i < 2; i++) ck_assert(tt_orth_cols(&w.factors[i]) < 1e-12);
    td_tucker_free(&w);
    td_tensor_free(&x);
}
END_TEST

/* The core (one product from the last mode's projection) is x x_m U_m^T over every mode, by the
 * naive loops; HOOI with no sweeps is HOSVD (every initial factor computed). */
START_TEST(test_core_and_initialisation)
{
    const size_t shape[4] = {12, 10, 3, 2}, ranks[2] = {4, 3};
    const int modes[2] = {0, 1};
    td_tensor x;
    tt_random(&x, 4, shape, 151);
    td_tucker_result w;
    run(&x, 2, modes, ranks, 0, 3, 0, &w);
    const size_t s1[4] = {4, 10, 3, 2}, s2[4] = {4, 3, 3, 2};
    td_tensor y, core;
    ck_assert_int_eq(td_tensor_alloc(&y, 4, s1), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&core, 4, s2), TD_OK);
    nv_ttm(&x, 0, &w.factors[0], 1, &y);
    nv_ttm(&y, 1, &w.factors[1], 1, &core);
    ck_assert_msg(tt_maxdiff(&core, &w.core) < 1e-12, "core off by %g", tt_maxdiff(&core, &w.core));
    td_tensor_free(&y);
    td_tensor_free(&core);
    td_tucker_free(&w);

    td_tucker_result h, z;
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.method = TD_TUCKER_HOSVD;
    TT_OK(td_tucker(&x, 2, modes, ranks, &o, &h));
    run(&x, 2, modes, ranks, 0, 0, 0, &z);
    ck_assert_int_eq(z.iterations, 0);
    for (int i = 0; i < 2; i++) ck_assert(tt_bitequal(&h.factors[i], &z.factors[i]));
    ck_assert(tt_bitequal(&h.core, &z.core));
    td_tucker_free(&h);
    td_tucker_free(&z);
    td_tensor_free(&x);
}
END_TEST

static td_status count_rule(void *ctx, int mode, const double *sv2, size_t n, size_t *rank)
{
    (void)mode;
    (void)sv2;
    ++*(int *)ctx;
    *rank = n / 3;
    return TD_OK;
}

/* A truncation rule still sees every mode's spectrum under HOOI (the first mode's factor is then
 * computed at the initialisation). */
START_TEST(test_truncation_rule_sees_every_mode)
{
    const size_t shape[4] = {15, 12, 3, 3};
    const int modes[2] = {0, 1};
    td_tensor x;
    tt_random(&x, 4, shape, 161);
    int calls = 0;
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.truncate = count_rule;
    o.truncate_ctx = &calls;
    o.tol = 0;
    o.max_iter = 3;
    td_tucker_result w;
    TT_OK(td_tucker(&x, 2, modes, NULL, &o, &w));
    ck_assert_int_eq(calls, 2);
    ck_assert(w.ranks[0] == 5 && w.ranks[1] == 4);
    td_tucker_free(&w);
    td_tensor_free(&x);
}
END_TEST

/* Three modes (the Tucker 200^3 case, small): warm and dense converge to the same error. */
START_TEST(test_warm_three_modes)
{
    const size_t shape[3] = {22, 20, 18}, ranks[3] = {4, 5, 3};
    const int modes[3] = {0, 1, 2};
    td_tensor x;
    tt_random(&x, 3, shape, 171);
    td_tucker_result w, d;
    run(&x, 3, modes, ranks, 1e-10, 500, 0, &w);
    run(&x, 3, modes, ranks, 1e-10, 500, 1, &d);
    ck_assert_msg(fabs(w.rel_error - d.rel_error) < 1e-6, "warm %.10g dense %.10g", w.rel_error, d.rel_error);
    for (int i = 1; i < w.iterations; i++) ck_assert(w.history[i] <= w.history[i - 1] + 1e-13);
    ck_assert(fabs(tt_tucker_err(&x, &w) - w.rel_error) < 1e-12);
    td_tucker_free(&w);
    td_tucker_free(&d);
    td_tensor_free(&x);
}
END_TEST


/* Float32 warm sweeps (float_sweeps 2, any size) against the same sweeps in double: the same
 * path within float rounding of the Grams (~1e-6 of them), the final error within 1e-6, the
 * reported error the reconstruction's (core from x in double), factors orthonormal in double. */
START_TEST(test_float_sweeps_track_double)
{
    const size_t shapes[3][4] = {{48, 40, 3, 3}, {40, 56, 3, 3}, {36, 30, 1, 5}};
    const size_t ranks[3][2] = {{12, 10}, {10, 14}, {9, 7}};
    const int modes[2] = {0, 1}, sweeps = 8;
    for (int c = 0; c < 3; c++) {
        td_tensor x;
        tt_random(&x, 4, shapes[c], 171 + (uint64_t)c);
        td_tucker_result f, d;
        run_float(&x, 2, modes, ranks[c], 0, sweeps, 0, 2, &f);
        run_float(&x, 2, modes, ranks[c], 0, sweeps, 0, 0, &d);
        ck_assert_int_eq(d.float_sweeps, 0);
        ck_assert_int_eq(f.float_sweeps, sweeps - 1); /* all but the first (dense, double) */
        ck_assert(f.history[0] == d.history[0]);
        for (int i = 0; i < sweeps; i++)
            ck_assert_msg(fabs(f.history[i] - d.history[i]) < 1e-5, "case %d sweep %d: float %.10g double %.10g",
                          c, i + 1, f.history[i], d.history[i]);
        ck_assert_msg(fabs(f.rel_error - d.rel_error) < 1e-6, "case %d: float %.12g double %.12g", c, f.rel_error,
                      d.rel_error);
        ck_assert(fabs(tt_tucker_err(&x, &f) - f.rel_error) < 1e-12);
        for (int i = 0; i < 2; i++) ck_assert(tt_orth_cols(&f.factors[i]) < 1e-12);
        td_tucker_free(&f);
        td_tucker_free(&d);
        td_tensor_free(&x);
    }
}
END_TEST

/* Near-exact multilinear rank: the error falls below 1e-2 at the first (double) sweep, so no
 * float sweep runs and recovery is exact to double precision; with hooi_exact none runs either.
 * Other mode sets than {0, 1} stay double. */
START_TEST(test_float_sweeps_only_while_error_large)
{
    const size_t shape[4] = {26, 22, 3, 3}, r[2] = {5, 4}, r3[3] = {5, 4, 2}, r12[2] = {5, 2};
    const int modes[2] = {0, 1}, modes3[3] = {0, 1, 2}, modes12[2] = {1, 2};
    td_tensor x;
    tucker2_tensor(&x, shape, 5, 4, 181);
    td_tucker_result w;
    run_float(&x, 2, modes, r, 0, 5, 0, 2, &w);
    ck_assert_int_eq(w.float_sweeps, 0);
    ck_assert_msg(w.rel_error < 1e-12 && tt_tucker_err(&x, &w) < 1e-12, "err %g", w.rel_error);
    td_tucker_free(&w);
    td_tensor_free(&x);
    tt_random(&x, 4, shape, 183);
    run_float(&x, 2, modes, r, 0, 5, 1, 2, &w);
    ck_assert_int_eq(w.float_sweeps, 0);
    td_tucker_free(&w);
    run_float(&x, 3, modes3, r3, 0, 5, 0, 2, &w);
    ck_assert_int_eq(w.float_sweeps, 0);
    td_tucker_free(&w);
    run_float(&x, 2, modes12, r12, 0, 5, 0, 2, &w);
    ck_assert_int_eq(w.float_sweeps, 0);
    td_tucker_free(&w);
    run_float(&x, 2, modes, r, 0, 5, 0, 2, &w);
    ck_assert_int_eq(w.float_sweeps, 4);
    td_tucker_free(&w);
    td_tensor_free(&x);
}
END_TEST

/* The float copy is of x 2^-e: x scaled by 2^100 (squares overflow float32) or 2^-100 (they
 * underflow) decomposes as x does, its float sweeps included. */
START_TEST(test_float_sweeps_scale_exactly)
{
    const size_t shape[4] = {40, 36, 3, 3}, r[2] = {9, 8};
    const int modes[2] = {0, 1};
    td_tensor x, y;
    tt_random(&x, 4, shape, 197);
    ck_assert_int_eq(td_tensor_alloc(&y, 4, shape), TD_OK);
    td_tucker_result ref, got;
    run_float(&x, 2, modes, r, 0, 6, 0, 2, &ref);
    ck_assert_int_eq(ref.float_sweeps, 5);
    for (int e = -100; e <= 100; e += 200) {
        for (size_t i = 0; i < x.size; i++) y.data[i] = ldexp(x.data[i], e);
        run_float(&y, 2, modes, r, 0, 6, 0, 2, &got);
        ck_assert_int_eq(got.float_sweeps, 5);
        ck_assert_msg(fabs(got.rel_error - ref.rel_error) < 1e-12, "2^%d: %.15g vs %.15g", e, got.rel_error, ref.rel_error);
        for (int i = 0; i < 6; i++) ck_assert(fabs(got.history[i] - ref.history[i]) < 1e-12);
        td_tucker_free(&got);
    }
    td_tucker_free(&ref);
    td_tensor_free(&x);
    td_tensor_free(&y);
}
END_TEST

/* The float Gram over each mode against the naive sum over the projected tensor in double: the
 * first float sweep's factors are the warm step from the same previous factors, so a float run
 * of 2 sweeps and a double one agree to float rounding in their factors' subspaces. */
START_TEST(test_float_sweep_subspace)
{
    const size_t shape[4] = {30, 34, 3, 3}, r[2] = {7, 9};
    const int modes[2] = {0, 1};
    td_tensor x;
    tt_random(&x, 4, shape, 191);
    td_tucker_result f, d;
    run_float(&x, 2, modes, r, 0, 2, 0, 2, &f);
    run_float(&x, 2, modes, r, 0, 2, 0, 0, &d);
    ck_assert_int_eq(f.float_sweeps, 1);
    for (int i = 0; i < 2; i++) {
        /* || U_f^T U_d ||_F^2 = r when the subspaces coincide */
        const td_tensor *a = &f.factors[i], *b = &d.factors[i];
        double sum = 0;
        for (size_t p = 0; p < a->shape[1]; p++)
            for (size_t q = 0; q < b->shape[1]; q++) {
                double dot = 0;
                for (size_t k = 0; k < a->shape[0]; k++) dot += a->data[k * a->shape[1] + p] * b->data[k * b->shape[1] + q];
                sum += dot * dot;
            }
        ck_assert_msg(fabs(sum - (double)r[i]) < 1e-8, "mode %d: %.12g of %zu", i, sum, r[i]);
    }
    td_tucker_free(&f);
    td_tucker_free(&d);
    td_tensor_free(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hooi");
    TCase *tc = tcase_create("hooi");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_warm_tracks_dense_on_kernels);
    tcase_add_test(tc, test_warm_converges_to_dense);
    tcase_add_test(tc, test_warm_exact_recovery);
    tcase_add_test(tc, test_core_and_initialisation);
    tcase_add_test(tc, test_truncation_rule_sees_every_mode);
    tcase_add_test(tc, test_warm_three_modes);
    tcase_add_test(tc, test_float_sweeps_track_double);
    tcase_add_test(tc, test_float_sweeps_only_while_error_large);
    tcase_add_test(tc, test_float_sweep_subspace);
    tcase_add_test(tc, test_float_sweeps_scale_exactly);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
