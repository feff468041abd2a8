/* The planner: rank rules per layer, skip reasons in the contract's order, and the global
 * allocator (budget met; min-max error never above uniform ratios at equal parameters; the
 * measured error of the real decomposition within the predicted bound). */
#include <math.h>
#include <string.h>
#include "common/testutil.h"

static td_layer_desc conv(size_t cout, size_t cin, size_t k)
{
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = TD_LAYER_CONV2D;
    d.cout = cout; d.cin = cin; d.kh = d.kw = k; d.groups = 1;
    d.stride[0] = d.stride[1] = d.dilation[0] = d.dilation[1] = 1;
    d.pad_mode = TD_PAD_EXPLICIT;
    d.pad[0] = d.pad[1] = d.pad[2] = d.pad[3] = k / 2;
    d.input_known = 1;
    d.in_h = d.in_w = 16;
    return d;
}

/* A kernel with a decaying spectrum along both channel modes, like a trained layer's:
 * core with geometrically decaying scale times random orthogonal-ish factors, plus noise. */
static void realistic_kernel(td_tensor *k, size_t cout, size_t cin, size_t ks, double decay, uint64_t seed)
{
    size_t shape[4] = {cout, cin, ks, ks};
    tt_random(k, 4, shape, seed);
    td_rng r;
    td_rng_seed(&r, seed * 7 + 1);
    for (size_t o = 0; o < cout; o++)
        for (size_t c = 0; c < cin; c++) {
            double sc = pow(decay, (double)o) * pow(decay, (double)c);
            for (size_t s = 0; s < ks * ks; s++) {
                double *v = &k->data[(o * cin + c) * ks * ks + s];
                *v = *v * sc + 0.01 * td_rng_normal(&r);
            }
        }
}

static const td_plan_layer *LAYERS;
static const td_tensor *KP[5];

/* A layer as io would describe it. */
static td_plan_layer layer(const char *name, td_layer_desc d, int excluded)
{
    td_plan_layer l = tt_plan_layer(name, d);
    l.excluded = excluded;
    return l;
}

START_TEST(test_rules_and_reasons)
{
    td_tensor k0, k1, k2, k3, k4;
    realistic_kernel(&k0, 256, 128, 3, 0.97, 1);
    size_t s1[4] = {8, 1, 3, 3}, s2[2] = {10, 32}, s3[4] = {16, 8, 3, 3}, s4[2] = {2, 2};
    tt_random(&k1, 4, s1, 2);
    tt_random(&k2, 2, s2, 3);
    tt_random(&k3, 4, s3, 4);
    tt_random(&k4, 2, s4, 5);
    td_plan_layer L[6];
    memset(L, 0, sizeof L);
    td_layer_desc dw = conv(8, 8, 3), fc, tiny, mdw = conv(8, 1, 3);
    dw.groups = 8;
    memset(&fc, 0, sizeof fc);
    fc.kind = TD_LAYER_DENSE; fc.cout = 10; fc.cin = 32; fc.kh = fc.kw = 1;
    tiny = fc;
    tiny.cout = tiny.cin = 2;
    L[0] = layer("conv", conv(256, 128, 3), 0);
    L[1] = layer("dw", dw, 0);
    L[2] = layer("fc", fc, 0);
    L[3] = layer("excl", conv(16, 8, 3), 1);
    L[4] = layer("tiny", tiny, 0);
    L[5] = layer("maybe_dw", mdw, 0);
    /* the file says nothing of its groups: (C,1,kh,kw); io refuses every method as depthwise */
    for (int m = TD_METHOD_TUCKER2; m < TD_METHOD_COUNT; m++) td_admission_refuse(&L[5].admits, (td_method)m, "depthwise");
    const td_tensor *kp[6] = {&k0, &k1, &k2, &k3, &k4, &k1};
    td_plan_options o;
    td_plan_options_init(&o);
    o.rule = TD_RULE_RATIO;
    o.value = 0.25;
    td_plan_decision d[6];
    td_plan_summary sum;
    td_error err;
    TT_OK(td_plan_kernels(L, kp, 6, &o, d, &sum, &err));
    ck_assert_int_eq(d[0].method, TD_METHOD_TUCKER2);
    ck_assert_uint_eq(d[0].ranks[0], 64);
    ck_assert_uint_eq(d[0].ranks[1], 32);
    ck_assert(d[1].skipped && !strcmp(d[1].reason, "depthwise"));
    ck_assert_int_eq(d[2].method, TD_METHOD_SVD);
    ck_assert_uint_eq(d[2].ranks[0], 3); /* 0.25 * min(10, 32) = 2.5 -> 3 */
    ck_assert(d[3].skipped && !strcmp(d[3].reason, "excluded"));
    ck_assert(d[4].skipped && !strcmp(d[4].reason, "would not shrink")); /* 2x2 at rank 1: 4 >= 4 */
    ck_assert(d[5].skipped && !strcmp(d[5].reason, "depthwise"));
    ck_assert_uint_eq(sum.params_before, 294912 + 72 + 320 + 1152 + 4 + 72); /* kernels only */
    /* named method that does not apply; keep-larger keeps a chain that does not shrink */
    o.method_auto = 0;
    o.method = TD_METHOD_CP;
    TT_OK(td_plan_kernels(L, kp, 6, &o, d, NULL, &err));
    ck_assert(d[2].skipped && !strcmp(d[2].reason, "method cp does not apply"));
    ck_assert(d[3].skipped && !strcmp(d[3].reason, "excluded")); /* excluded comes first */
    ck_assert_int_eq(d[0].method, TD_METHOD_CP);
    ck_assert_uint_eq(d[0].ranks[0], 64); /* 0.25 * max(256, 128) */
    o.method_auto = 1;
    o.rule = TD_RULE_RATIO;
    o.value = 1.0;
    o.keep_larger = 1;
    TT_OK(td_plan_kernels(L, kp, 6, &o, d, NULL, &err));
    ck_assert(!d[4].skipped && d[4].params_after >= d[4].params_before);
    /* rank rule clamps; ranks rule in OIHW order */
    o.keep_larger = 0;
    o.rule = TD_RULE_RANKS;
    o.ranks[0] = 300;
    o.ranks[1] = 20;
    TT_OK(td_plan_kernels(L, kp, 6, &o, d, NULL, &err));
    ck_assert_uint_eq(d[0].ranks[0], 256);
    ck_assert_uint_eq(d[0].ranks[1], 20);
    ck_assert_int_eq(d[0].clamped, 1);
    /* svd: min(300, 20) = 20 clamped to 10, which would not shrink the (10, 32) layer */
    ck_assert(d[2].skipped && !strcmp(d[2].reason, "would not shrink") && d[2].ranks[0] == 0);
    /* EVBMF: pure noise gives rank 0 and a skip */
    td_tensor noise;
    size_t ns[4] = {32, 16, 3, 3};
    tt_random(&noise, 4, ns, 9);
    td_plan_layer N = layer("noise", conv(32, 16, 3), 0);
    const td_tensor *np[1] = {&noise};
    o.rule = TD_RULE_VBMF;
    TT_OK(td_plan_kernels(&N, np, 1, &o, d, NULL, &err));
    ck_assert(d[0].skipped && !strcmp(d[0].reason, "rank 0 (EVBMF)"));
    /* energy: est_error from the HOSVD bound <= sqrt(2 (1 - F)) */
    o.rule = TD_RULE_ENERGY;
    o.value = 0.9;
    TT_OK(td_plan_kernels(L, kp, 1, &o, d, NULL, &err));
    ck_assert(d[0].est_known && d[0].est_error <= sqrt(2 * 0.1) + 1e-12);
    td_tensor_free(&noise);
    td_tensor_free(&k0); td_tensor_free(&k1); td_tensor_free(&k2); td_tensor_free(&k3); td_tensor_free(&k4);
}
END_TEST

/* A set of real-looking layers with different spectral decay. */
static td_tensor KS[5];
static td_plan_layer PL[5];
static void make_model(void)
{
    const size_t co[5] = {32, 64, 64, 48, 96}, ci[5] = {16, 32, 64, 64, 48};
    const double dec[5] = {0.9, 0.95, 0.8, 0.97, 0.92};
    static const char *names[5] = {"c0", "c1", "c2", "c3", "c4"};
    for (int i = 0; i < 5; i++) {
        realistic_kernel(&KS[i], co[i], ci[i], 3, dec[i], 100 + (uint64_t)i);
        PL[i] = layer(names[i], conv(co[i], ci[i], 3), 0);
        KP[i] = &KS[i];
    }
    LAYERS = PL;
}
static void free_model(void) { for (int i = 0; i < 5; i++) td_tensor_free(&KS[i]); }

START_TEST(test_allocator_beats_uniform)
{
    make_model();
    td_plan_options o;
    td_plan_options_init(&o);
    td_plan_decision u[5], a[5];
    td_plan_summary su, sa;
    td_error err;
    const double ratios[3] = {0.25, 0.4, 0.6};
    for (int t = 0; t < 3; t++) {
        o.rule = TD_RULE_RATIO;
        o.value = ratios[t];
        o.estimate_errors = 1; /* the uniform plan's predicted errors, to compare */
        TT_OK(td_plan_kernels(LAYERS, KP, 5, &o, u, &su, &err));
        double umax = 0;
        for (int i = 0; i < 5; i++) umax = fmax(umax, u[i].est_error);
        o.rule = TD_RULE_TARGET_PARAMS;
        o.value = (double)su.params_after / (double)su.params_before;
        TT_OK(td_plan_kernels(LAYERS, KP, 5, &o, a, &sa, &err));
        ck_assert_msg(sa.params_after <= su.params_after, "budget %llu > %llu",
                      (unsigned long long)sa.params_after, (unsigned long long)su.params_after);
        double amax = 0;
        for (int i = 0; i < 5; i++) amax = fmax(amax, a[i].est_error);
        ck_assert_msg(amax <= umax * (1 + 1e-9), "ratio %g: allocator %g > uniform %g", ratios[t], amax, umax);
        /* the real decompositions stay within the predicted bound, and the predicted
         * parameter and FLOP counts are what the chains really have */
        for (int i = 0; i < 5; i++) {
            if (a[i].skipped) continue;
            td_chain ch;
            TT_OK(td_conv_tucker2(&LAYERS[i].desc, KP[i], NULL, a[i].ranks[0], a[i].ranks[1], NULL, &ch));
            ck_assert(ch.rel_error <= a[i].est_error * (1 + 1e-9) + 1e-12);
            td_cost c;
            TT_OK(td_chain_cost(&ch, &c));
            ck_assert_uint_eq(c.params, a[i].params_after);
            ck_assert_uint_eq(c.flops, a[i].flops_after);
            td_chain_free(&ch);
        }
    }
    free_model();
}
END_TEST

/* A sweep computes the spectra once: every point is the plan td_plan makes at that value, for
 * global targets (infeasible ones included), ratios and the sum objective; rules without a
 * value are refused. */
START_TEST(test_sweep_matches_plan)
{
    make_model();
    const double values[6] = {0.001, 0.1, 0.3, 0.5, 0.8, 1.0};
    td_plan_decision one[5], scratch[5];
    td_plan_point pts[6];
    td_error err;
    const td_rule_kind rules[3] = {TD_RULE_TARGET_PARAMS, TD_RULE_RATIO, TD_RULE_TARGET_FLOPS};
    for (int r = 0; r < 4; r++) {
        td_plan_options o;
        td_plan_options_init(&o);
        o.rule = rules[r % 3];
        o.min_total_error = r == 3;
        td_plan_curve *cv[5];
        o.estimate_errors = 1;
        for (int i = 0; i < 5; i++) TT_OK(td_plan_curve_new(&LAYERS[i], KP[i], &o, &cv[i], &err));
        TT_OK(td_plan_sweep(LAYERS, cv, 5, &o, values, 6, scratch, pts, &err));
        int infeasible = 0;
        for (int k = 0; k < 6; k++) {
            o.value = values[k];
            td_plan_summary sum;
            td_status st = td_plan_kernels(LAYERS, KP, 5, &o, one, &sum, &err);
            ck_assert(st == TD_OK || st == TD_EINFEASIBLE);
            ck_assert_int_eq(pts[k].feasible, st == TD_OK);
            ck_assert(pts[k].value == values[k]);
            infeasible += st != TD_OK;
            if (st != TD_OK) continue;
            double maxe = 0;
            size_t nd = 0;
            for (int i = 0; i < 5; i++)
                if (!one[i].skipped) { nd++; maxe = fmax(maxe, one[i].est_error); }
            ck_assert_uint_eq(pts[k].params_after, sum.params_after);
            ck_assert(pts[k].max_est_error == maxe);
            ck_assert_uint_eq(pts[k].layers_decomposed, nd);
        }
        if (o.rule == TD_RULE_TARGET_PARAMS) ck_assert(infeasible >= 1); /* 0.1 % cannot be reached */
        for (int i = 0; i < 5; i++) td_plan_curve_free(cv[i]);
    }
    td_plan_options o;
    td_plan_options_init(&o);
    o.rule = TD_RULE_VBMF;
    ck_assert_int_eq(td_plan_sweep(LAYERS, NULL, 5, &o, values, 6, scratch, pts, &err), TD_EINVAL);
    o.rule = TD_RULE_RATIO;
    const double bad[2] = {0.5, 1.5};
    ck_assert_int_eq(td_plan_sweep(LAYERS, NULL, 5, &o, bad, 2, scratch, pts, &err), TD_EINVAL);
    free_model();
}
END_TEST

START_TEST(test_targets_and_errors)
{
    make_model();
    td_plan_options o;
    td_plan_options_init(&o);
    td_plan_decision d[5];
    td_plan_summary s;
    td_error err;
    td_error_clear(&err);
    /* --max-error: every layer's predicted (and real) error within the bound */
    o.rule = TD_RULE_MAX_ERROR;
    o.value = 0.3;
    TT_OK(td_plan_kernels(LAYERS, KP, 5, &o, d, &s, &err));
    for (int i = 0; i < 5; i++) {
        if (d[i].skipped) continue;
        ck_assert(d[i].est_error <= 0.3 + 1e-12);
        td_chain ch;
        TT_OK(td_conv_tucker2(&LAYERS[i].desc, KP[i], NULL, d[i].ranks[0], d[i].ranks[1], NULL, &ch));
        ck_assert(ch.rel_error <= 0.3 + 1e-12);
        td_chain_free(&ch);
    }
    /* --target-flops meets its budget */
    o.rule = TD_RULE_TARGET_FLOPS;
    o.value = 0.3;
    TT_OK(td_plan_kernels(LAYERS, KP, 5, &o, d, &s, &err));
    uint64_t fb = 0, fa = 0;
    for (int i = 0; i < 5; i++) { fb += d[i].flops_before; fa += d[i].flops_after; }
    ck_assert((double)fa <= 0.3 * (double)fb);
    /* infeasible: says what is reachable */
    o.rule = TD_RULE_TARGET_PARAMS;
    o.value = 0.001;
    ck_assert_int_eq(td_plan_kernels(LAYERS, KP, 5, &o, d, &s, &err), TD_EINFEASIBLE);
    ck_assert(strstr(err.message, "not reachable") && strstr(err.message, "keeps"));
    /* target-flops with an unknown input size is refused, naming the layer */
    td_plan_layer one = PL[2];
    one.desc.input_known = 0;
    o.rule = TD_RULE_TARGET_FLOPS;
    o.value = 0.5;
    ck_assert_int_eq(td_plan_kernels(&one, &KP[2], 1, &o, d, &s, &err), TD_EINVAL);
    ck_assert(strstr(err.message, "c2") != NULL);
    o.rule = TD_RULE_NONE;
    ck_assert_int_eq(td_plan_kernels(&one, &KP[2], 1, &o, d, &s, &err), TD_EINVAL);
    /* target 1.0: nothing needs to change, every layer whole or exact */
    o.rule = TD_RULE_TARGET_PARAMS;
    o.value = 1.0;
    TT_OK(td_plan_kernels(LAYERS, KP, 5, &o, d, &s, &err));
    ck_assert(s.target_error == 0.0);
    free_model();
}
END_TEST

static double sum_sq(const td_plan_decision *d, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += d[i].est_error * d[i].est_error;
    return s;
}

START_TEST(test_min_total_error_variant)
{
    make_model();
    td_plan_options o;
    td_plan_options_init(&o);
    td_plan_decision m[5], x[5];
    td_plan_summary sm, sx;
    td_error err;
    const double targets[3] = {0.15, 0.3, 0.5};
    for (int t = 0; t < 3; t++) {
        o.rule = TD_RULE_TARGET_PARAMS;
        o.value = targets[t];
        o.min_total_error = 1;
        TT_OK(td_plan_kernels(LAYERS, KP, 5, &o, m, &sm, &err));
        ck_assert((double)sm.params_after <= targets[t] * (double)sm.params_before);
        /* a Lagrangian point is optimal for the cost it reaches: the min-max allocator at that
         * same budget cannot have a smaller sum of squared errors */
        o.min_total_error = 0;
        o.value = (double)sm.params_after / (double)sm.params_before;
        TT_OK(td_plan_kernels(LAYERS, KP, 5, &o, x, &sx, &err));
        ck_assert_msg(sum_sq(m, 5) <= sum_sq(x, 5) * (1 + 1e-9) + 1e-15, "target %g: min-sum %g > min-max %g",
                      targets[t], sum_sq(m, 5), sum_sq(x, 5));
    }
    free_model();
}
END_TEST

START_TEST(test_svd_grouped_choice)
{
    td_tensor k;
    realistic_kernel(&k, 32, 16, 3, 0.9, 77);
    td_plan_layer l = layer("g", conv(32, 16, 3), 0);
    const td_tensor *kp[1] = {&k};
    td_plan_options o;
    td_plan_options_init(&o);
    o.method_auto = 0;
    o.method = TD_METHOD_SVD_GROUPED;
    o.rule = TD_RULE_RATIO;
    o.value = 0.25;
    td_plan_decision d;
    td_error err;
    TT_OK(td_plan_kernels(&l, kp, 1, &o, &d, NULL, &err));
    /* k = 1 is plain SVD */
    ck_assert(d.method == TD_METHOD_SVD_GROUPED ? 16 % d.ranks[0] == 0 && d.ranks[0] <= 8 : d.method == TD_METHOD_SVD);
    /* the chosen k has the smallest predicted error among the divisors at that budget, and the
     * real grouped SVD has exactly that error (Eckart-Young per group) */
    td_chain ch;
    TT_OK(td_plan_build(&l, &k, NULL, &d, NULL, &ch));
    ck_assert(fabs(ch.rel_error - d.est_error) < 1e-9);
    td_chain_free(&ch);
    o.svd_groups = 4;
    TT_OK(td_plan_kernels(&l, kp, 1, &o, &d, NULL, &err));
    ck_assert_uint_eq(d.ranks[0], 4);
    td_tensor_free(&k);
}
END_TEST

/* The planner's predicted cost is the written chain's, for every method, strides 1 and 2 and
 * explicit and 'same' padding, under fixed ranks and under the global allocators (whose
 * bilinear cost fits must then be exact). */
START_TEST(test_costs_are_the_chains)
{
    td_tensor k;
    realistic_kernel(&k, 24, 16, 3, 0.9, 5);
    const td_tensor *kp[1] = {&k};
    const td_method methods[4] = {TD_METHOD_TUCKER2, TD_METHOD_CP, TD_METHOD_SVD, TD_METHOD_SVD_GROUPED};
    int checked = 0;
    for (int stride = 1; stride <= 2; stride++)
        for (int same = 0; same <= 1; same++)
            for (int mi = 0; mi < 4; mi++)
                for (int rule = 0; rule < 3; rule++) {
                    td_layer_desc d = conv(24, 16, 3);
                    d.stride[0] = d.stride[1] = (size_t)stride;
                    d.in_h = 15; d.in_w = 13;
                    if (same) d.pad_mode = TD_PAD_SAME;
                    td_plan_layer l = layer("c", d, 0);
                    td_plan_options o;
                    td_plan_options_init(&o);
                    o.method_auto = 0;
                    o.method = methods[mi];
                    o.keep_larger = 1;
                    o.min_total_error = rule == 2;
                    o.rule = rule == 0 ? TD_RULE_RANKS : TD_RULE_TARGET_FLOPS;
                    o.ranks[0] = 5; o.ranks[1] = 7;
                    o.value = 0.4;
                    td_plan_decision dec;
                    td_plan_summary sum;
                    td_error err;
                    TT_OK(td_plan_kernels(&l, kp, 1, &o, &dec, &sum, &err));
                    ck_assert(!dec.skipped);
                    td_chain ch;
                    TT_OK(td_plan_build(&l, &k, NULL, &dec, NULL, &ch));
                    td_cost c;
                    TT_OK(td_chain_cost(&ch, &c));
                    ck_assert_uint_eq(c.params, dec.params_after);
                    ck_assert_uint_eq(c.flops, dec.flops_after);
                    ck_assert_uint_eq(c.params, sum.params_after);
                    if (rule) ck_assert((double)c.flops <= 0.4 * (double)dec.flops_before);
                    td_chain_free(&ch);
                    checked++;
                }
    ck_assert_int_eq(checked, 48);
    td_tensor_free(&k);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_rules_and_reasons);
    tcase_add_test(tc, test_allocator_beats_uniform);
    tcase_add_test(tc, test_targets_and_errors);
    tcase_add_test(tc, test_sweep_matches_plan);
    tcase_add_test(tc, test_min_total_error_variant);
    tcase_add_test(tc, test_svd_grouped_choice);
    tcase_add_test(tc, test_costs_are_the_chains);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
