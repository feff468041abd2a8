/* tdecomp/plan.h - a model's decisions (which layers, method, ranks) from rank rules, per-layer
 * error curves and the cost model; the global budget allocator.
 *
 * Error curves come from spectra, never from trial decompositions: for Tucker-2 the truncated-
 * HOSVD bound sqrt(tail_0(R_out) + tail_1(R_in)) / ||W|| (an upper bound of the HOOI result,
 * which starts from HOSVD and never increases the error); for SVD the exact Eckart-Young tail;
 * for grouped SVD the sum of the groups' tails. CP has no spectral curve: under global targets it
 * uses the Tucker-2 curve at (R, R) as a proxy (documented; the final error is measured). */
#ifndef TDECOMP_PLAN_H
#define TDECOMP_PLAN_H

#include "core.h"
#include "layer.h"

TD_BEGIN_DECLS

typedef enum td_rule_kind {
    TD_RULE_NONE = 0,
    TD_RULE_RANK,            /* rank: Tucker-2 (N, N), CP N, SVD N */
    TD_RULE_RANKS,           /* ranks[0] = R_out, ranks[1] = R_in */
    TD_RULE_RATIO,           /* value = F, per mode max(1, round_half_up(F C)) */
    TD_RULE_ENERGY,          /* value = fraction of squared singular values kept, per mode */
    TD_RULE_VBMF,            /* EVBMF on the mode-0 and mode-1 unfoldings */
    TD_RULE_TARGET_PARAMS,   /* value = fraction of the whole file's parameters to keep */
    TD_RULE_TARGET_FLOPS,    /* value = fraction of the conv/dense FLOPs to keep */
    TD_RULE_MAX_ERROR        /* value = largest per-layer relative error allowed */
} td_rule_kind;

typedef struct td_plan_options {
    int method_auto;        /* 1 (default): Tucker-2 for kxk convs, SVD for dense and 1x1 */
    td_method method;       /* the named method when method_auto is 0 */
    td_rule_kind rule;      /* required */
    size_t rank;
    size_t ranks[2];
    double value;
    int keep_larger;        /* keep chains that do not shrink the layer */
    size_t svd_groups;      /* svd-grouped: k; 0 = best divisor of Cin up to 8 */
    int min_total_error;    /* global targets: 0 (default) minimise the largest per-layer
                               relative error (ALDS); 1 minimise the sum of squared relative
                               errors (Lagrangian over each layer's Pareto frontier: optimal for
                               the cost it reaches, which is at most the target) */
} td_plan_options;

TD_API void td_plan_options_init(td_plan_options *opt);

typedef struct td_plan_layer {
    const char *name;
    td_layer_desc desc;
    const td_tensor *kernel;   /* OIHW, or (out, in) for dense; double */
    int excluded;              /* by --layers / --exclude */
    int maybe_depthwise;       /* (C, 1, kh, kw) kernel whose groups the file does not say */
} td_plan_layer;

typedef struct td_plan_decision {
    td_method method;          /* TD_METHOD_NONE when skipped */
    size_t ranks[2];           /* tucker2 (R_out, R_in); cp (R); svd (r); svd-grouped (k, j) */
    int nranks;
    int clamped;
    int skipped;
    char reason[96];           /* why skipped: "excluded", "depthwise", "grouped",
                                  "method M does not apply", "rank 0 (EVBMF)", "would not shrink" */
    double est_error;          /* relative error predicted from spectra (bound) */
    uint64_t params_before, params_after;
    uint64_t flops_before, flops_after;   /* 0 when the input size is unknown */
} td_plan_decision;

typedef struct td_plan_summary {
    uint64_t params_total;     /* whole file (every dataset), before */
    uint64_t params_after;
    double target_error;       /* the allocator's common error level (global rules) */
} td_plan_summary;

/* Decides every layer. other_params counts the file's parameters outside these layers' kernels
 * (biases, norms, ...), so that --target-params is a fraction of the whole file. out has n
 * entries. An infeasible target is TD_EINFEASIBLE with a message in err saying what is
 * reachable; --target-flops with an unknown input size is TD_EINVAL naming the layer. */
TD_API TD_WUR td_status td_plan(const td_plan_layer *layers, size_t n, uint64_t other_params,
                                const td_plan_options *opt, td_plan_decision *out,
                                td_plan_summary *summary, td_error *err);

/* One point of a sweep: the plan at one value of the rule. */
typedef struct td_plan_point {
    double value;
    int feasible;              /* 0 where the value is below what the layers can reach */
    uint64_t params_after;     /* whole file */
    double max_est_error;      /* largest est_error of the decomposed layers */
    size_t layers_decomposed;
} td_plan_point;

/* td_plan at each of values[0 .. nvalues-1] (opt's rule: one taking a value, i.e. not rank,
 * ranks or vbmf), computing the spectra once: a model-level error-vs-budget curve. scratch has n
 * entries (the decisions of the last value are left there). Infeasible values give points with
 * feasible 0; other failures as td_plan. */
TD_API TD_WUR td_status td_plan_sweep(const td_plan_layer *layers, size_t n, uint64_t other_params,
                                      const td_plan_options *opt, const double *values, size_t nvalues,
                                      td_plan_decision *scratch, td_plan_point *points, td_error *err);

TD_END_DECLS

#endif
