/* The planner's per-layer curves, shared by plan.c and curve.c (not installed). */
#ifndef TDECOMP_PLAN_INTERNAL_H
#define TDECOMP_PLAN_INTERNAL_H

#include "core/internal.h"
#include "tdecomp/plan.h"

/* A configuration's predicted error is compared with a level scaled by this slack, so that a
 * level computed from the same tails is never missed by rounding. */
#define TD__ERR_SLACK (1 + 1e-12)

/* Cost of a configuration as c0 + ca a + cb b + cab a b: td_chain_cost_for is exactly bilinear in
 * the ranks for every method (a test checks it on a grid), so four evaluations per layer give
 * every configuration's cost without a second formula. */
typedef struct td__bilinear {
    double c0, ca, cb, cab;
} td__bilinear;

struct td_plan_curve {
    td_method method;
    td_layer_desc desc;
    double nw2;                    /* the energy errors are relative to */
    size_t size;                   /* elements of the matrix or tensor the spectra come from */
    size_t len[2];                 /* entries of s2[m]: the full mode size (zeros past the rank) */
    size_t n[2];                   /* ranks that change the error, per mode (tucker2/cp: Cout, Cin
                                      sides; svd: n[0]) */
    double *s2[2];                 /* squared singular values, descending, n[m] of them */
    double *tail[2];               /* tail[m][r] = sum_{i >= r} s2[m][i], n[m] + 1 entries */
    int nk;                        /* svd-grouped: candidate group counts */
    size_t k[TD_PLAN_MAX_GROUPS];
    size_t jmax[TD_PLAN_MAX_GROUPS];
    double *gtail[TD_PLAN_MAX_GROUPS]; /* summed group tails, index j = 0 .. jmax */
    td__bilinear params[TD_PLAN_MAX_GROUPS], flops[TD_PLAN_MAX_GROUPS]; /* [0] unless grouped */
    uint64_t params_before, flops_before;
    int flops_known;
};

/* One configuration: tucker2 (a, b) = (R_out, R_in); cp (R, 0); svd (j, 0); svd-grouped
 * (index into k[], j). cost in the allocator's unit (params or FLOPs). */
typedef struct td__config {
    size_t a, b;
    double cost;
    double err2;   /* predicted squared error (absolute, in the curve's energy) */
} td__config;

/* The method a layer gets under opt (auto: Tucker-2 for k x k convs, SVD otherwise). */
td_method td__plan_method(const td_layer_desc *d, const td_plan_options *opt);

/* Cost and predicted error of a configuration. */
double td__curve_cost(const struct td_plan_curve *c, size_t a, size_t b, int by_flops);
double td__curve_err2(const struct td_plan_curve *c, size_t a, size_t b);
/* The relative error the planner predicts: sqrt(err2 / ||W||^2) (0 for a zero kernel). */
double td__curve_est(const struct td_plan_curve *c, size_t a, size_t b);

/* The cheapest configuration with err2 <= e2 (cost INFINITY when none). */
td__config td__curve_cheapest(const struct td_plan_curve *c, double e2, int by_flops);

/* Pareto frontier by cost (strictly decreasing error); the whole layer (a = 0: cost before,
 * error 0) closes it unless keep_larger. *out is malloc'ed. */
td_status td__curve_frontier(const struct td_plan_curve *c, int by_flops, int keep_larger, td__config **out,
                             size_t *n);

#endif
