/* tdecomp/plan.h - a model's decisions (which layers, method, ranks) from rank rules, per-layer
 * error curves and the cost model; the global budget allocator.
 *
 * Error curves come from spectra, never from trial decompositions: for Tucker-2 the truncated-
 * HOSVD bound sqrt(tail_0(R_out) + tail_1(R_in)) / ||W|| (an upper bound of the HOOI result,
 * which starts from HOSVD and never increases the error); for SVD the exact Eckart-Young tail;
 * for grouped SVD the sum of the groups' tails. CP has no spectral curve: under global targets it
 * uses the Tucker-2 curve at (R, R) as a proxy (documented; the final error is measured).
 * Thread-safety: no global state; calls on distinct outputs may run in several threads at once
 * (layers, curves and kernels are only read). */
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
    TD_RULE_TARGET_PARAMS,   /* value = fraction of the planned layers' kernel parameters to keep
                                (excluded and skipped layers count whole; the tool plans every
                                layer of the file) */
    TD_RULE_TARGET_FLOPS,    /* value = fraction of the conv/dense FLOPs to keep */
    TD_RULE_MAX_ERROR        /* value = largest per-layer relative error allowed */
} td_rule_kind;

typedef struct td_plan_options {
    int method_auto;        /* 1 (default): Tucker-2 for kxk convs, SVD for dense and 1x1 */
    td_method method;       /* the named method when method_auto is 0 */
    td_rule_kind rule;      /* required */
    size_t rank;            /* TD_RULE_RANK */
    size_t ranks[2];        /* TD_RULE_RANKS: R_out, R_in */
    double value;           /* ratio, energy fraction, budget fraction or error bound */
    int keep_larger;        /* 1: keep chains that do not shrink the layer */
    size_t svd_groups;      /* svd-grouped: k; 0 = the best divisor of Cin up to TD_PLAN_MAX_GROUPS */
    int min_total_error;    /* global targets: 0 (default) minimise the largest per-layer
                               relative error (ALDS); 1 minimise the sum of squared relative
                               errors (Lagrangian over each layer's Pareto frontier: optimal for
                               the cost it reaches, which is at most the target) */
    int estimate_errors;    /* 1: compute spectra for every rule, so est_error is known for
                               fixed ranks too; 0 (default): only rules that need them do */
} td_plan_options;

/* Largest number of input-channel groups svd-grouped tries (ALDS' k). */
#define TD_PLAN_MAX_GROUPS 8

/* Defaults above; a rule must still be set. */
TD_API void td_plan_options_init(td_plan_options *opt);

/* A layer as the planner sees it. admits comes from the layer's description in io (the methods
 * its geometry and the file format allow, td_model_layer.admits) or td_layer_admission. */
typedef struct td_plan_layer {
    const char *name;
    td_layer_desc desc;
    td_admission admits;           /* the planner decides only among these */
    int excluded;                  /* by --layers / --exclude: skipped with reason "excluded" */
    const td_layer_stats *stats;   /* calibration statistics (NULL: data-free) */
} td_plan_layer;

typedef struct td_plan_decision {
    td_method method;          /* TD_METHOD_NONE when skipped */
    size_t ranks[2];           /* tucker2 (R_out, R_in); cp (R); svd (r); svd-grouped (k, j) */
    int nranks;
    int clamped;               /* a requested rank was above its limit and lowered */
    int skipped;
    char reason[96];           /* why skipped, the first that applies, in this order: "excluded",
                                  the admission's reason ("depthwise", "grouped", "method M does
                                  not apply", or a file format's), "rank 0 (EVBMF)", "would not
                                  shrink" */
    int est_known;             /* 1 when est_error was computed (spectra were needed or asked) */
    double est_error;          /* relative error predicted from spectra (an upper bound for
                                  Tucker-2, exact for SVD); of the output when the layer had
                                  statistics, of the weights otherwise; 0 when skipped */
    uint64_t params_before, params_after;   /* kernel parameters; after = the chain's, exactly */
    uint64_t flops_before, flops_after;     /* 0 when the input size is unknown */
} td_plan_decision;

typedef struct td_plan_summary {
    uint64_t params_before;    /* kernel parameters of every planned layer */
    uint64_t params_after;     /* what the chains written from the decisions will have */
    int flops_known;           /* 1 when every layer's input size is known */
    uint64_t flops_before, flops_after;
    double target_error;       /* the allocator's common error level (global rules), else 0 */
} td_plan_summary;

/* The data-aware default for classifiers: matching logits in mean square is not keeping the argmax,
 * so a small head cut by output error loses accuracy out of proportion to its saving. Refuses
 * every method on the last dense layer of layers[0 .. n-1] (model order) with the reason
 * TD_PLAN_HEAD_REASON; no effect without a dense layer. O(n), thread-safe for distinct arrays. */
#define TD_PLAN_HEAD_REASON "classifier head (data-aware default; --include-head decomposes it)"
TD_API void td_plan_keep_head(td_plan_layer *layers, size_t n);

/* --- what the planner needs of a layer's weights -------------------------------------------
 * A layer's spectra, computed from its kernel alone (values only: Gram + symmetric eigenvalues
 * per mode), so that kernels are read one at a time and dropped before the plan is made. */
typedef struct td_plan_curve td_plan_curve;

/* 1 when td_plan needs a curve of layer l under opt (read its kernel and call td_plan_curve_new
 * before td_plan); 0 when the layer is skipped whatever its values, or the rule needs no
 * spectra (fixed ranks and ratios without estimate_errors; svd-grouped without svd_groups needs
 * them to choose k). O(1), no allocation. */
TD_API int td_plan_needs_curve(const td_plan_layer *l, const td_plan_options *opt);

/* The spectra of layer l (kernel OIHW or (out, in), double, matching l->desc) for the method
 * opt chooses, in l->stats' metric when set. *out is NULL (and TD_OK) when no curve is needed.
 * Statuses: TD_EINVAL (NULL pointers, an invalid description), TD_ESHAPE (kernel not matching),
 * TD_ENOTFINITE, TD_ENOMEM, TD_ERANGE, TD_ELAPACK, with err naming the layer. Cost: one Gram and
 * one symmetric eigenvalue problem per mode (svd-grouped: per group and candidate k); memory
 * O(Cout^2 + Cin^2) while it runs, O(Cout + Cin) kept. Thread-safe for distinct outputs. */
TD_API TD_WUR td_status td_plan_curve_new(const td_plan_layer *l, const td_tensor *kernel, const td_plan_options *opt,
                                          td_plan_curve **out, td_error *err);

/* What a curve holds, for plots and reports (tdecomp-tool spectrum): the method it was built for
 * (opt's method for the layer: Tucker-2 for k x k convs under auto, else SVD) ... */
TD_API td_method td_plan_curve_method(const td_plan_curve *c);

/* ... the squared singular values of one unfolding, descending, zero-padded to *len entries (the
 * mode's extent): tucker2 and cp mode 0 (Cout) and mode 1 (Cin) of the kernel, svd mode 0 of the
 * matrix factorised (Cout rows); in the statistics' metric when the layer had them. NULL (and
 * *len 0) when the curve has no such spectrum (svd mode 1, svd-grouped). The curve owns it.
 * O(1), no allocation. */
TD_API const double *td_plan_curve_spectrum(const td_plan_curve *c, int mode, size_t *len);

/* ... and the planner's prediction at ranks (td_chain's convention for the curve's method): the
 * estimated relative error (the truncated-HOSVD bound for Tucker-2, which may exceed 1; exact
 * for SVD) and the chain's cost (td_chain_cost_for). The one formula plan decisions use.
 * Statuses: TD_EINVAL (NULL, ranks the curve has no tails for), td_chain_cost_for's. O(1). */
TD_API TD_WUR td_status td_plan_curve_eval(const td_plan_curve *c, const size_t ranks[2], double *est_error, td_cost *cost);

/* An upper bound (bytes) of the heap td_plan_curve_new of l under opt allocates besides the kernel,
 * the curve it returns included (0 when no curve is needed): the whitened kernel and metric with
 * statistics, and the largest mode's values-only spectrum (td_mode_spectrum_workspace).
 * Statuses: TD_EINVAL (NULL, an invalid description), TD_EOVERFLOW. O(1), thread-safe. */
TD_API TD_WUR td_status td_plan_curve_workspace(const td_plan_layer *l, const td_plan_options *opt, uint64_t *bytes);

/* Safe on NULL. */
TD_API void td_plan_curve_free(td_plan_curve *c);

/* Decides every layer: out[i] for layers[i], curves[i] from td_plan_curve_new (NULL where
 * td_plan_needs_curve is 0; curves may be NULL when no layer needs one). Budgets are fractions
 * of the planned layers' kernel parameters (--target-params) or FLOPs (--target-flops), spent only
 * on what the layers admit, so summary->params_after is what the written chains will have. An
 * infeasible target is TD_EINFEASIBLE with err saying what is reachable; --target-flops with an
 * unknown input size is TD_EINVAL naming the layer; a missing curve where one is needed is
 * TD_EINVAL. Cost: O(sum of the layers' rank pairs) per allocator step; no large allocation,
 * except with min_total_error (and a params or FLOPs target): each layer's Pareto frontier, built
 * once from all its rank pairs (Cout Cin for Tucker-2, 32 bytes each) and held during the call.
 * Thread-safe for distinct outputs. */
TD_API TD_WUR td_status td_plan(const td_plan_layer *layers, td_plan_curve *const *curves, size_t n,
                                const td_plan_options *opt, td_plan_decision *out, td_plan_summary *summary,
                                td_error *err);

/* td_plan for kernels held in memory (kernels[i] for layers[i]): builds and frees the curves
 * itself. Statuses as td_plan_curve_new and td_plan. Cost: td_plan_curve_new for every layer
 * that needs a curve, one after the other, then td_plan's; every curve is kept until td_plan
 * returns. */
TD_API TD_WUR td_status td_plan_kernels(const td_plan_layer *layers, const td_tensor *const *kernels, size_t n,
                                        const td_plan_options *opt, td_plan_decision *out, td_plan_summary *summary,
                                        td_error *err);

/* One point of a sweep: the plan at one value of the rule. */
typedef struct td_plan_point {
    double value;
    int feasible;              /* 0 where the value is below what the layers can reach */
    uint64_t params_after;     /* kernel parameters of the planned layers */
    double max_est_error;      /* largest est_error of the decomposed layers */
    size_t layers_decomposed;
} td_plan_point;

/* td_plan at each of values[0 .. nvalues-1] (opt's rule: one taking a value, i.e. not rank,
 * ranks or vbmf) from the same curves: a model-level error-vs-budget curve. scratch has n
 * entries (the decisions of the last value are left there). Infeasible values give points with
 * feasible 0; other failures as td_plan.
 * Statuses: TD_EINVAL (NULL, a rule without a value), TD_ENOMEM, and td_plan's other than TD_EINFEASIBLE.
 * Cost: td_plan's per value (the curves are not recomputed); memory: one copy of n decisions. */
TD_API TD_WUR td_status td_plan_sweep(const td_plan_layer *layers, td_plan_curve *const *curves, size_t n,
                                      const td_plan_options *opt, const double *values, size_t nvalues,
                                      td_plan_decision *scratch, td_plan_point *points, td_error *err);

/* The chain decision dec asks for, by td_layer_rewrite with l->stats: its td_chain_cost equals
 * dec's params_after and flops_after. opt may be NULL (the rewrite's defaults). Statuses as
 * td_layer_rewrite; TD_EINVAL for a skipped decision. Cost: td_layer_rewrite's for dec's method
 * and ranks. */
TD_API TD_WUR td_status td_plan_build(const td_plan_layer *l, const td_tensor *kernel, const td_tensor *bias,
                                      const td_plan_decision *dec, const td_rewrite_options *opt, td_chain *out);

TD_END_DECLS

#endif
