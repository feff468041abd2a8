/* tdecomp/layer.h - conv and dense layer descriptions, rewrites into chains of thinner layers,
 * the cost model (parameters, MACs, FLOPs) and a reference executor.
 *
 * Shapes are always OIHW for convs: kernel (Cout, Cin/groups, kh, kw); dense (out, in).
 * The fields of td_layer_desc below are shared with io and plan: add fields, never change these.
 * Thread-safety: no global state; any of these functions may run in several threads at once on
 * distinct outputs (inputs are only read). Progress callbacks run in the calling thread. */
#ifndef TDECOMP_LAYER_H
#define TDECOMP_LAYER_H

#include "core.h"
#include "decomp.h"
#include "rank.h"

TD_BEGIN_DECLS

typedef enum td_layer_kind {
    TD_LAYER_DENSE = 0,     /* y = W x + b, W (out, in) */
    TD_LAYER_CONV2D = 1     /* 2-D convolution, kernel OIHW; groups in desc.groups */
} td_layer_kind;

typedef enum td_padding_mode {
    TD_PAD_EXPLICIT = 0,    /* pad[] holds top, bottom, left, right */
    TD_PAD_SAME = 1,        /* framework 'same' (TF/Keras rule: total = max((ceil(H/s)-1)*s +
                               (k-1)*d + 1 - H, 0), extra pixel at bottom/right); resolved against
                               the input size */
    TD_PAD_VALID = 2        /* no padding */
} td_padding_mode;

typedef struct td_layer_desc {
    td_layer_kind kind;
    size_t cout;            /* output channels (dense: out features) */
    size_t cin;             /* input channels of the whole layer (dense: in features) */
    size_t kh, kw;          /* kernel size (dense: 1, 1) */
    size_t groups;          /* 1 for ordinary convs; cin == groups == cout for depthwise */
    size_t stride[2];       /* (sh, sw), >= 1 */
    size_t dilation[2];     /* (dh, dw), >= 1 */
    td_padding_mode pad_mode;
    size_t pad[4];          /* top, bottom, left, right (TD_PAD_EXPLICIT) */
    int has_bias;
    int input_known;        /* 1 when in_h, in_w are the spatial size this layer sees */
    size_t in_h, in_w;
} td_layer_desc;

/* --- geometry and cost model -------------------------------------------------------------------
 * Convention (one for the whole library, as fvcore / thop count MACs):
 *   MACs  = Ho * Wo * Cout * (Cin / groups) * kh * kw   per image (dense: out * in),
 *   FLOPs = 2 * MACs;  bias additions, activations and padding are not counted.
 * Parameters count the kernel (or dense matrix) only; the bias is carried unchanged and left out.
 * Dense layers count as one 1 x 1 "pixel" and their cost is always known.
 * Output size (PyTorch's formula, per axis): Ho = floor((H + pt + pb - d (k - 1) - 1) / s) + 1;
 * 'valid' is the same with no padding; 'same' gives Ho = ceil(H / s).
 * Worked (docs/maths.md, cost model): a 3x3 conv 64 -> 128 on (64, 100, 100), no padding: 73,728 parameters,
 * 708,083,712 MACs, 1,416,167,424 FLOPs; its Tucker-2 chain at rank 32: 15,360 parameters,
 * 296,656,896 FLOPs (1x1 64 -> 32 on 100 x 100, 3x3 32 -> 32 and 1x1 32 -> 128 on 98 x 98).
 * The notes' "2 K - 1 per output" convention (1,414.94 -> 294.80 MFLOPs) is not used. */

/* The one validity check of a description, used by every function below: TD_OK, or TD_EINVAL for
 * NULL, a zero size, a dense layer with kh or kw other than 1, an unknown kind or padding mode,
 * groups 0 or not dividing Cin and Cout, a stride or dilation 0, or input_known with a 0 extent.
 * Whether the kernel fits a known input is td_layer_output_size's question. Thread-safe, O(1),
 * no allocation. */
TD_API TD_WUR td_status td_layer_check(const td_layer_desc *d);

/* Resolves the padding of d for an input of h x w into pad[4] = top, bottom, left, right.
 * Explicit: d->pad; valid and dense: zeros; 'same' (TF/Keras): out = ceil(H / s),
 * total = max((out - 1) s + (k - 1) d + 1 - H, 0), top = total / 2, bottom = the rest (the odd
 * pixel at the bottom/right). TD_EINVAL for an invalid description (zero sizes, stride/dilation 0,
 * groups not dividing Cin and Cout), an empty input (h or w 0) or a NULL pointer. O(1), no
 * allocation. */
TD_API TD_WUR td_status td_layer_padding(const td_layer_desc *d, size_t h, size_t w, size_t pad[4]);

/* Output spatial size for an input of h x w after td_layer_padding (dense: 1 x 1).
 * TD_EINVAL when the dilated kernel does not fit the padded input, or as td_layer_padding.
 * O(1), no allocation. */
TD_API TD_WUR td_status td_layer_output_size(const td_layer_desc *d, size_t h, size_t w, size_t *ho,
                                             size_t *wo);

typedef struct td_cost {
    uint64_t params;            /* kernel / matrix elements, bias excluded */
    int known;                  /* 1 when macs and flops are known (input size known) */
    uint64_t macs;              /* 0 when !known */
    uint64_t flops;             /* 2 * macs; 0 when !known */
    double flops_per_pixel;     /* FLOPs per output pixel of the (original) layer; always set */
} td_cost;

/* Cost of one layer: params, and MACs/FLOPs at d->in_h x d->in_w when d->input_known (dense:
 * always). flops_per_pixel = 2 * Cout * Cin/g * kh * kw. TD_EINVAL as td_layer_output_size;
 * TD_EOVERFLOW when a count does not fit 63 bits (c is then zeroed). O(1), no allocation. */
TD_API TD_WUR td_status td_layer_cost(const td_layer_desc *d, td_cost *c);

/* --- calibration statistics (data-aware rewrites) ---------------------------------------------
 * What a layer's inputs and outputs look like on the user's data (docs/formats.md section 3).
 * Every pointer is a view the caller keeps alive; the struct owns nothing. With statistics, a
 * rewrite minimises the error of the layer's output on that data instead of the weight error. */
typedef struct td_layer_stats {
    const td_tensor *input_cov;  /* E[x x^T], required: (Cin, Cin) for a conv (per channel, pooled
                                    over positions), (in, in) for a dense layer */
    const td_tensor *output_cov; /* E[y y^T] of the output without bias, (Cout, Cout); NULL if absent */
    const td_tensor *patch_cov;  /* (Cin kh kw, Cin kh kw) im2col patch covariance; NULL if absent */
    const double *out_scale;     /* Cout weights of the output error (a following BatchNorm's
                                    gamma / sqrt(var + eps)); NULL means all 1 */
    double count;                /* vectors averaged in input_cov, > 0 */
} td_layer_stats;

/* --- rewrites into chains ------------------------------------------------------------------
 * Every rewrite takes the layer's description d, its kernel (OIHW (Cout, Cin, kh, kw) for a conv,
 * (out, in) for a dense layer; shapes must match d exactly, else TD_ESHAPE) and an optional bias
 * (NULL or an empty tensor for none; else shape (Cout), TD_ESHAPE otherwise), and fills a
 * td_chain. The chain owns copies of everything: kernel and bias may be freed afterwards.
 * Only groups = 1 is rewritten: grouped and depthwise convs are refused with TD_EUNSUPPORTED
 * (never treated as ordinary convs). Only the spatial piece(s) carry d's stride, padding (mode
 * and values) and dilation; 1x1 pieces have stride 1, padding 0; the bias goes on the last piece.
 * Each piece's desc says the input size it sees when d->input_known (the first 1x1 runs on the
 * full input, pieces after a strided one on the reduced size), so td_chain_cost is exact.
 * rel_error is always ||W - W_hat||_F / ||W||_F with W_hat = td_chain_compose of the pieces in
 * double (a caller that rounds the pieces to float32/float16 recomputes it after rounding).
 * Statuses common to all: TD_EINVAL (NULL pointers, rank 0, rank above its limit without clamp,
 * wrong layer kind), TD_ESHAPE, TD_EUNSUPPORTED, TD_ENOTFINITE (NaN/Inf in the kernel), TD_ENOMEM,
 * TD_ERANGE (a dimension beyond 32-bit BLAS), TD_ELAPACK, and those of td_tucker / td_cp_als.
 * On failure the chain is zeroed; td_chain_free is always safe on it. */

typedef enum td_method {
    TD_METHOD_NONE = 0,
    TD_METHOD_TUCKER2,      /* 1x1 Cin->R_in, kh x kw R_in->R_out, 1x1 R_out->Cout */
    TD_METHOD_CP,           /* 1x1 Cin->R, kh x 1 depthwise, 1 x kw depthwise, 1x1 R->Cout */
    TD_METHOD_SVD,          /* dense: (r, in), (out, r); conv: kh x kw Cin->j, 1x1 j->Cout */
    TD_METHOD_SVD_GROUPED   /* ALDS: grouped kh x kw conv Cin->k*j (groups k), 1x1 k*j->Cout */
} td_method;
#define TD_METHOD_COUNT 5               /* one past the largest td_method */
#define TD_METHOD_BIT(m) (1u << (m))    /* a td_method in a td_admission mask */

/* "none", "tucker2", "cp", "svd", "svd-grouped" (the report's names); "none" for unknown values. */
TD_API const char *td_method_name(td_method m);

#define TD_CHAIN_MAX 4
typedef struct td_chain_piece {
    td_layer_desc desc;     /* geometry; input_known/in_h/in_w as this piece sees them */
    td_tensor kernel;       /* OIHW (Cout, Cin/groups, kh, kw), or dense (out, in) */
    td_tensor bias;         /* (Cout) on the last piece when the layer has a bias; else empty */
} td_chain_piece;

/* A rewritten layer: pieces[0 .. npieces-1] applied in order. Piece shapes (the torch keys
 * <name>.0, <name>.1, ... of docs/cli.md 'Outputs', in this order):
 *   tucker2      (R_in, Cin, 1, 1), (R_out, R_in, kh, kw), (Cout, R_out, 1, 1) + bias
 *   cp           (R, Cin, 1, 1), (R, 1, kh, 1) groups R, (R, 1, 1, kw) groups R, (Cout, R, 1, 1) + bias
 *   svd (conv)   (j, Cin, kh, kw), (Cout, j, 1, 1) + bias          (a 1x1 conv: both 1x1)
 *   svd (dense)  (r, in), (out, r) + bias
 *   svd-grouped  (k j, Cin/k, kh, kw) groups k, (Cout, k j, 1, 1) + bias */
typedef struct td_chain {
    td_method method;
    int npieces;
    td_chain_piece pieces[TD_CHAIN_MAX];
    size_t ranks[2];        /* tucker2 (R_out, R_in); cp (R); svd (r); svd-grouped (k, j) */
    int nranks;
    int clamped;            /* 1 when a requested rank was above its mode and lowered */
    double rel_error;       /* ||W - W_hat||_F / ||W||_F of the composed kernel (double) */
    double seconds;         /* wall time of the decomposition and the chain's assembly */
    int has_output_error;   /* 1 when the rewrite had calibration statistics */
    double output_rel_error;/* predicted relative error of the layer's output on that data */
} td_chain;

/* --- what a layer admits, and chains by shape alone ---------------------------------------------
 * Which methods apply to a layer, and why not the others. A layer's geometry decides first
 * (td_layer_admission); whoever knows more narrows it (io: what a file format can store, e.g. no
 * CP chain in Keras with stride > 1) with td_admission_refuse; the planner decides only among
 * what is admitted, so a budget is never spent on a layer that cannot be written. */
typedef struct td_admission {
    unsigned mask;                           /* TD_METHOD_BIT(m) for every admitted method */
    const char *why_not[TD_METHOD_COUNT];    /* static text for each method not admitted, NULL for
                                                admitted ones: the report's skip reason */
} td_admission;

/* From the geometry alone: a k x k conv (kh kw > 1) with groups 1 admits tucker2, cp, svd and
 * svd-grouped; a 1x1 conv and a dense layer svd only ("method M does not apply" for the others);
 * a depthwise conv (1 < groups = Cin) nothing ("depthwise"), another grouped conv nothing
 * ("grouped"). TD_EINVAL as td_layer_check (a is then zeroed). Thread-safe, no allocation. */
TD_API TD_WUR td_status td_layer_admission(const td_layer_desc *d, td_admission *a);

/* Removes m from a's mask with the reason why (static storage, the caller's); no effect when m is
 * not admitted (the first reason stays, as the report's order of reasons requires). O(1). */
TD_API void td_admission_refuse(td_admission *a, td_method m, const char *why);

/* The chain a rewrite of d by method m at ranks would produce, without data: method, npieces,
 * ranks, and every piece's desc (geometry, the input size it sees, has_bias on the last piece as
 * d says) and kernel shape (ndim, shape, size set; data NULL, owner 0). Ranks as td_chain's:
 * tucker2 (R_out, R_in) with 1 <= R_out <= Cout, 1 <= R_in <= Cin; cp (R >= 1); svd (j) with
 * 1 <= j <= min(Cout, Cin kh kw); svd-grouped (k, j), 2 <= k dividing Cin, 1 <= j <= min(Cout,
 * Cin/k kh kw). Statuses: TD_EINVAL (invalid d or ranks, m none), TD_EUNSUPPORTED (m not admitted
 * by d's geometry). c is zeroed on failure and needs no td_chain_free. Thread-safe, O(1), no
 * allocation. */
TD_API TD_WUR td_status td_chain_layout(const td_layer_desc *d, td_method m, const size_t ranks[2], td_chain *c);

/* min(Cout, (Cin / k) kh kw): the largest useful rank j of a (grouped, k groups) SVD of d's
 * lowering (dense: min(out, in)). d must be valid and k >= 1. O(1). */
TD_API size_t td_svd_rank_limit(const td_layer_desc *d, size_t k);

/* td_chain_cost of td_chain_layout(d, m, ranks): the cost of the chain a rewrite would write,
 * computed from shapes only; the planner's one cost model. Statuses as td_chain_layout, plus
 * td_chain_cost's TD_EOVERFLOW. Cost: O(1). */
TD_API TD_WUR td_status td_chain_cost_for(const td_layer_desc *d, td_method m, const size_t ranks[2], td_cost *cost);

/* An upper estimate of the memory (bytes) td_layer_rewrite of d by m at ranks needs besides the
 * kernel itself: the composed kernel, the pieces, the method's intermediates, and with statistics
 * (with_stats 1) the whitened kernel and the metric's square roots (patch_cov's size bounds
 * them). For callers that enforce a memory limit before reading any data. Statuses as
 * td_chain_cost_for. O(1), thread-safe. */
TD_API TD_WUR td_status td_rewrite_workspace(const td_layer_desc *d, td_method m, const size_t ranks[2], int with_stats,
                                             uint64_t *bytes);

/* Frees every piece and zeroes the chain. Safe on a zeroed chain; pieces that are views (owner 0)
 * are only reset, so a chain of views over a file's buffers may be freed too. O(pieces). */
TD_API void td_chain_free(td_chain *c);

/* --- data-aware rewrites ----------------------------------------------------------------------
 * With statistics s, the error that matters is the layer's output error on the data:
 *   E ||D (W - W') x||^2 = ||D (W - W') S||_F^2,  S S^T = C,
 * C the metric of the layer's inputs (dense and 1x1: input_cov; a k x k conv: input_cov per
 * channel, repeated over the kh kw positions, i.e. C (x) I, which assumes spatially uncorrelated
 * inputs; the SVD lowering uses patch_cov instead when given, which is exact), D = diag(out_scale)
 * (a following BatchNorm's gamma / sqrt(var + eps)). S is the symmetric square root of C with every
 * eigenvalue below 1e-6 times the block's mean eigenvalue raised to that floor (dead channels make
 * C singular; nothing is inverted blindly; an all-zero block is taken as the identity); D's entries
 * are floored at 1e-6 of the largest. A rewrite with statistics decomposes W~ = D W S by the
 * data-free method and maps the pieces back (first piece times S^-1, last piece's rows times
 * D^-1):
 *   svd / svd-grouped: the truncated SVD of W~ (per group with the group's block of C): the exact
 *     optimum of the output error on the data (SVD-LLM, Wang et al. 2025);
 *   tucker2: with output_cov, U_out = the leading eigenvectors of D C_y D (Zhang et al. 2015),
 *     U_in the best input factor given U_out, the core by projection; without it (or with
 *     ignore_output_cov), HOOI/HOSVD of W~ in that metric;
 *   cp: CP-ALS of W~.
 * Identity statistics without output_cov give the data-free chain (to rounding). chain.output_rel_error =
 * ||D (W - W') S0|| / ||D W S0|| with the unfloored metric S0 (td_chain_output_error), exact for
 * the chain written; chain.rel_error stays the weight error. */

/* TD_OK when s fits d: input_cov (Cin, Cin) (dense: (in, in)), output_cov (Cout, Cout) and
 * patch_cov (Cin kh kw)^2 when given, every entry finite, diagonals >= 0, symmetric to 1e-8 of the
 * largest diagonal entry, count > 0, out_scale finite. Else TD_EINVAL (NULL, no input_cov, count),
 * TD_ESHAPE (a shape, NaN/Inf, a negative diagonal, asymmetry) or TD_ENOTFINITE (out_scale), with
 * *why (static text, may be NULL) saying which. Thread-safe, no allocation. */
TD_API TD_WUR td_status td_layer_stats_check(const td_layer_desc *d, const td_layer_stats *s, const char **why);

/* The relative output error ||D (W - approx) S0||_F / ||D W S0||_F of approx against kernel (both
 * d's kernel shape), with the metric above (patch_cov when given, else input_cov (x) I); 0 when
 * the layer's inputs are all zero on the data. Statuses: those of td_layer_stats_check, TD_ESHAPE,
 * TD_ENOMEM, TD_ERANGE. Cost: O(Cout n^2 kh kw), n = Cin (or n^2 Cout with patch_cov). */
TD_API TD_WUR td_status td_chain_output_error(const td_layer_desc *d, const td_layer_stats *s,
                                              const td_tensor *kernel, const td_tensor *approx, double *rel);

/* W~ = D W S in the metric method m works in (svd-grouped with k groups: per group its block),
 * same shape as the kernel (groups 1 only): the spectra of its unfoldings are the output-error
 * spectra the planner allocates by. Statuses: td_layer_stats_check's, TD_ESHAPE (kernel, grouped
 * layer), TD_EINVAL (k not dividing Cin), TD_ENOMEM, TD_ELAPACK. out is zeroed on failure.
 * Cost: per metric block of size n (Cin / k channels; Cin kh kw / k with patch_cov for an SVD
 * lowering) one symmetric eigen-decomposition (O(n^3)) and 4 n^3 flops for S and S^-1, then
 * 2 Cout Cin kh kw n flops to apply S; heap at most td_layer_whiten_workspace's bound. */
TD_API TD_WUR td_status td_layer_whiten(const td_layer_desc *d, const td_layer_stats *s, td_method m, size_t k,
                                        const td_tensor *kernel, td_tensor *out);

/* An upper bound (bytes) of the heap td_layer_whiten of d by m (k groups) allocates, the output
 * included: the metric's square roots (patch_cov's (Cin kh kw)^2 when with_patch_cov and m is an
 * SVD lowering, else Cin^2 per group), their eigen-decomposition, and two kernel-sized buffers.
 * Statuses: TD_EINVAL (NULL, invalid d, k not dividing Cin), TD_EOVERFLOW. O(1), thread-safe. */
TD_API TD_WUR td_status td_layer_whiten_workspace(const td_layer_desc *d, int with_patch_cov, td_method m, size_t k,
                                                  uint64_t *bytes);

/* Options of td_layer_rewrite; td_rewrite_options_init sets the defaults. */
typedef struct td_rewrite_options {
    int clamp;                  /* 0 (default): a rank above its limit is TD_EINVAL; 1: it is
                                   lowered to the limit and chain.clamped says so */
    td_tucker_options tucker;   /* Tucker-2: method (default HOOI), tol, max_iter, progress;
                                   its clamp and truncate fields are ignored */
    td_cp_options cp;           /* CP-ALS options (defaults of td_cp_options_init) */
    const td_layer_stats *stats;/* calibration statistics (NULL, the default: data-free). With
                                   them the rewrite minimises the output error (below) */
    int ignore_output_cov;      /* 1: Tucker-2's output factor from the whitened HOSVD/HOOI even
                                   when stats->output_cov is given */
    int defer_measure;          /* 1: the chain's rel_error and output error are left at 0 (one
                                   composition saved) for a caller that rounds the pieces and then
                                   measures them with td_chain_measure; 0 (default): measured */
} td_rewrite_options;

/* Defaults: clamp 0, td_tucker_options_init's and td_cp_options_init's options, no statistics,
 * ignore_output_cov 0. NULL is ignored. O(1). */
TD_API void td_rewrite_options_init(td_rewrite_options *opt);

/* The one entry point of every rewrite: layer d (kernel, optional bias) by method m at ranks
 * (td_chain's convention: tucker2 (R_out, R_in), cp (R), svd (j), svd-grouped (k, j)); opt NULL
 * for the defaults. The chain's pieces are td_chain_layout(d, m, ranks) (after clamping), so
 * td_chain_cost of the result equals td_chain_cost_for. Statuses: TD_EINVAL (NULL, invalid d,
 * method none or not fitting the geometry, a rank 0, a rank above its limit without clamp, k not
 * dividing Cin), TD_EUNSUPPORTED (grouped or depthwise convs), TD_ESHAPE, TD_ENOTFINITE,
 * TD_ENOMEM, TD_ERANGE, TD_ELAPACK, TD_ECANCELED (a progress callback). out is zeroed on
 * failure. Cost: the method's decomposition (below) plus one composition of the chain for
 * rel_error. Thread-safe: distinct outputs may be computed concurrently. */
TD_API TD_WUR td_status td_layer_rewrite(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                                         td_method m, const size_t ranks[2], const td_rewrite_options *opt,
                                         td_chain *out);

/* Tucker-2 of a conv kernel (Kim et al. 2015): W ~= G x_0 U_out x_1 U_in on modes {0, 1} of OIHW
 * (spatial modes kept whole), ranks (r_out, r_in) in mode order; r_out != r_in is fine.
 * Pieces: U_in^T (r_in, Cin, 1, 1); the core G (r_out, r_in, kh, kw) with d's stride, padding and
 * dilation; U_out (Cout, r_out, 1, 1) with the bias. U_in, U_out have orthonormal columns.
 * opt: NULL for td_tucker_options_init's defaults (HOOI, tol 1e-4, max 100 sweeps); its method,
 * tol, max_iter and progress are used, its truncate callback ignored (ranks are given).
 * opt->clamp lowers r_out above Cout / r_in above Cin (chain.clamped = 1); without it they are
 * TD_EINVAL. Parameters: Cin r_in + r_out r_in kh kw + r_out Cout.
 * Cost: td_tucker's, plus O(Cout Cin kh kw (r_out + r_in)) for the composition. */
TD_API TD_WUR td_status td_conv_tucker2(const td_layer_desc *d, const td_tensor *kernel,
                                        const td_tensor *bias, size_t r_out, size_t r_in,
                                        const td_tucker_options *opt, td_chain *out);

/* CP of a conv kernel (Lebedev et al. 2014): W[o,i,h,w] ~= sum_r l_r A[o,r] B[i,r] C[h,r] D[w,r] by
 * td_cp_als (opt NULL for its defaults; any rank >= 1, also above the modes). Pieces: B^T
 * (R, Cin, 1, 1); C as a kh x 1 depthwise conv (R, 1, kh, 1) with the height stride, dilation and
 * padding (top, bottom); D as a 1 x kw depthwise conv (R, 1, 1, kw) with the width ones (left,
 * right) - so the kh x 1 piece outputs Ho x W and the 1 x kw piece Ho x Wo; A diag(l)
 * (Cout, R, 1, 1) with the bias (the weights l folded in there). 'same' padding stays 'same' on
 * both spatial pieces, which resolves to the original per-axis padding. Parameters:
 * R (Cin + kh + kw + Cout). chain.ranks = (R).
 * Statuses as td_layer_rewrite. Cost: td_cp_als's, plus the composition for rel_error
 * (2 Cout R Cin kh kw flops, a temporary of R Cin kh kw doubles and one kernel-sized tensor). */
TD_API TD_WUR td_status td_conv_cp(const td_layer_desc *d, const td_tensor *kernel,
                                   const td_tensor *bias, size_t rank, const td_cp_options *opt,
                                   td_chain *out);

/* Truncated SVD (Eckart-Young: rel_error = sqrt(sum_{i>r} s_i^2) / ||W||_F) of a dense layer
 * (out, in), or of a conv lowered to the (Cout, Cin kh kw) matrix (a 1x1 conv is the (Cout, Cin)
 * matrix). M = U S V^T; pieces: S_r V_r^T as (r, in) or (r, Cin, kh, kw) with d's stride, padding
 * and dilation; U_r as (out, r) or (Cout, r, 1, 1) with the bias. rank above min(rows, cols) is
 * lowered when clamp (chain.clamped = 1), else TD_EINVAL. Parameters: r (rows + cols).
 * Statuses as td_layer_rewrite. Cost: one td_svd_trunc (default options) of the rows x cols
 * matrix, plus 2 rows cols r flops for the composition; memory besides the chain: a copy of the
 * matrix, its rank-r factors, td_svd_trunc's workspace and one kernel-sized composition. */
TD_API TD_WUR td_status td_layer_svd(const td_layer_desc *d, const td_tensor *kernel,
                                     const td_tensor *bias, size_t rank, int clamp, td_chain *out);

/* ALDS grouped SVD (Liebenwein et al. 2021, torchprune's KERNEL_ENCODE scheme): Cin split into k
 * contiguous groups (k must divide Cin, else TD_EINVAL), each group g's (Cout, (Cin/k) kh kw)
 * slice of the lowering gets a rank-j SVD U_g S_g V_g^T. Pieces: a grouped kh x kw conv
 * (k j, Cin/k, kh, kw), groups k, rows g j .. g j + j - 1 = S_g V_g^T, with d's stride, padding and
 * dilation; a dense 1x1 conv (Cout, k j, 1, 1) = [U_0 | ... | U_{k-1}] with the bias. j above
 * min(Cout, (Cin/k) kh kw) is lowered when clamp, else TD_EINVAL. k = 1 is td_layer_svd (method
 * TD_METHOD_SVD, ranks (j)); otherwise ranks (k, j). Dense layers: only k = 1.
 * Parameters: j (Cin kh kw + k Cout). Statuses as td_layer_rewrite.
 * Cost: k td_svd_trunc (default options) of Cout x (Cin/k) kh kw slices, one at a time, plus
 * 2 Cout Cin kh kw j flops for the composition; memory besides the chain: one slice and its
 * factors (and td_svd_trunc's workspace) at a time, and one kernel-sized composition. */
TD_API TD_WUR td_status td_conv_svd_grouped(const td_layer_desc *d, const td_tensor *kernel,
                                            const td_tensor *bias, size_t k, size_t j, int clamp,
                                            td_chain *out);

/* Composes the chain's kernels back into the original layer's kernel W_hat: out caller-allocated
 * with the original kernel's shape (4-D OIHW, or 2-D for a dense SVD chain). Exact algebra, no
 * convolution: Tucker-2 core x_0 U_out x_1 U_in; CP the sum of R outer products; SVD and grouped
 * SVD the (per-group) matrix products, k read from the shapes (k = Cin / encoder's shape[1]).
 * Only c->method, c->npieces and the pieces' kernels are read, so `verify` may build a chain of
 * views over a decomposed file's datasets. Every piece's shape is checked against out first:
 * TD_ESHAPE on any mismatch (also a wrong npieces), TD_EINVAL for an unknown method or NULL,
 * TD_ERANGE, TD_ENOMEM (Tucker-2 uses one temporary of Cout r_in kh kw, CP one of R Cin kh kw;
 * the SVDs none). Cost: Tucker-2 2 Cout r_in kh kw (r_out + Cin) flops, CP 2 Cout R Cin kh kw
 * (plus 2 R Cin kh kw multiplications), SVD and grouped SVD 2 Cout j Cin kh kw, whatever k. */
TD_API TD_WUR td_status td_chain_compose(const td_chain *c, td_tensor *out);

/* rel_error = ||W - W_hat||_F / ||W||_F with W = kernel and W_hat = td_chain_compose(c) (the
 * absolute error ||W_hat||_F when W is zero). For the report's figure after the pieces were
 * rounded to the file's dtype (round them, then call this), and for `verify`. Statuses as
 * td_chain_compose (TD_ESHAPE when kernel's shape does not match the chain). Memory: one tensor of
 * kernel's size, plus td_chain_compose's temporary. Cost: td_chain_compose's and two passes over
 * each kernel (td_rel_diff). */
TD_API TD_WUR td_status td_chain_rel_error(const td_chain *c, const td_tensor *kernel, double *rel_error);

/* Measures the chain c against the kernel it replaces (d's, shapes as td_chain_compose) from one
 * composition: c->rel_error, and with statistics c->output_rel_error (td_chain_output_error) and
 * has_output_error. For the figures of what is written: round the pieces, then measure.
 * Statuses as td_chain_compose and td_chain_output_error. Memory: one kernel-sized tensor; cost:
 * one composition. */
TD_API TD_WUR td_status td_chain_measure(td_chain *c, const td_layer_desc *d, const td_layer_stats *stats,
                                         const td_tensor *kernel);

/* Summed cost of the pieces, each at the spatial size it sees (from the pieces' descs;
 * statuses as td_layer_cost);
 * known only when every piece's input size is known. flops_per_pixel is per output pixel of the
 * original layer: a piece followed by pieces with strides s (per axis) counts the product of
 * those s_h s_w pixels per output pixel (the first 1x1 of a stride-2 Tucker-2 chain counts 4).
 * Tucker-2: H W Cin R_in + Ho Wo (R_out R_in kh kw + Cout R_out) MACs; CP: H W Cin R +
 * Ho W R kh + Ho Wo R kw + Ho Wo R Cout; (grouped) SVD: Ho Wo j Cin kh kw + Ho Wo Cout k j.
 * O(pieces^2), no allocation. */
TD_API TD_WUR td_status td_chain_cost(const td_chain *c, td_cost *cost);

/* --- LoRA adapters from an SVD split (docs/maths.md, LoRA adapters) ------------------------------
 * W' = frozen + (alpha / r) B A, in the common PyTorch layout (microsoft/loralib):
 *   dense (out, in):               A (r, in),         B (out, r)
 *   conv (Cout, Cin/g, k, k):      A (r k, Cin k),    B (Cout/g k, r k)
 * B A is the row-major reshape M = W.reshape(Cout/g k, Cin k) (not a mode unfolding), so the
 * adapter's rank in that layout is R = r k (r for dense). M = U S V^T; W_R = its rank-R truncation.
 *   principal: B A = W_R / s (s = alpha / r), frozen = W - W_R: frozen + s B A == W exactly.
 *   residual:  frozen = W_R, B A = the best rank-R fit of W - W_R (triplets R .. 2R-1) / s:
 *              frozen + s B A is the rank-2R truncation of M.
 * The factors split sqrt(S / s) evenly between B and A. When M has fewer than the triplets a
 * mode needs (`effective` says how many are filled), the missing columns of B are zero and the
 * matching rows of A get loralib's initialisation (uniform in +-1/sqrt(cols), fixed seed), so the
 * identity holds and every pair can still train. Only square kernels (kh == kw) have this layout:
 * others are TD_EUNSUPPORTED. */
typedef enum td_adapter_mode {
    TD_ADAPTER_PRINCIPAL = 0,
    TD_ADAPTER_RESIDUAL = 1
} td_adapter_mode;

typedef struct td_adapter {
    td_tensor frozen;       /* the kernel's shape */
    td_tensor a, b;         /* lora_A, lora_B */
    size_t rank;            /* r */
    size_t inner;           /* R = r k (dense: r) */
    size_t effective;       /* singular triplets actually in B A (<= inner) */
    double scaling;         /* alpha / r */
    double rel_error_truncated; /* ||W - W_R||_F / ||W||_F: what dropping the residual costs */
    double rel_error;       /* ||W - (frozen + s B A)||_F / ||W||_F, in double */
    uint64_t params;        /* elements of A and B */
} td_adapter;

/* A's and B's shapes for rank r on layer d (no data needed): TD_EUNSUPPORTED for kh != kw,
 * TD_EINVAL for r = 0 or an invalid description, TD_EOVERFLOW. O(1), no allocation. */
TD_API TD_WUR td_status td_adapter_shapes(const td_layer_desc *d, size_t rank, size_t a_shape[2],
                                          size_t b_shape[2]);

/* Splits kernel (shape as td_layer_svd's) into frozen part and adapter. alpha > 0 and finite.
 * Statuses: TD_EINVAL, TD_ESHAPE, TD_EUNSUPPORTED, TD_ENOTFINITE, TD_ENOMEM, TD_ERANGE,
 * TD_ELAPACK. On failure out is zeroed. Cost: one SVD of the (Cout/g k) x (Cin k) matrix. */
TD_API TD_WUR td_status td_layer_adapter(const td_layer_desc *d, const td_tensor *kernel, size_t rank,
                                         td_adapter_mode mode, double alpha, td_adapter *out);

/* An upper bound (bytes) of the heap td_layer_adapter of d at rank r in mode allocates besides the
 * kernel, the returned adapter included (its SVD by td_svd_trunc_workspace, U, V^T, the frozen
 * part, A, B and the composed kernel of its error). Statuses as td_adapter_shapes, TD_EINVAL for
 * an unknown mode, TD_EOVERFLOW. O(1), thread-safe. */
TD_API TD_WUR td_status td_adapter_workspace(const td_layer_desc *d, size_t rank, td_adapter_mode mode, uint64_t *bytes);

/* rel_error of frozen + scaling B A against kernel (after the caller rounded the factors).
 * Statuses: TD_EINVAL (NULL), TD_ESHAPE (kernel is not the adapter's), TD_ENOMEM, TD_ERANGE.
 * Cost: one copy of the frozen part, one GEMM (2 size(kernel) R flops, R = inner) and
 * td_rel_diff's two passes; memory: one kernel-sized tensor. */
TD_API TD_WUR td_status td_adapter_rel_error(const td_adapter *a, const td_tensor *kernel, double *rel_error);

/* Frees frozen, a and b and zeroes the struct; safe on a zeroed adapter or NULL. */
TD_API void td_adapter_free(td_adapter *a);

/* --- reference executor -------------------------------------------------------------------
 * Single image, NCHW without the N: input (Cin, H, W) -> output (Cout, Ho, Wo), allocated here
 * (output is overwritten, not freed first; zeroed on failure). Cross-correlation as PyTorch's
 * conv2d: y[o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] in[g Cin/g + c, y sh + i dh - pt,
 * x sw + j dw - pl] over the group g of o, zero outside the input. Groups, stride, dilation,
 * explicit padding and 'same'/'valid' (resolved against the input) are supported. Dense layers:
 * input (in) -> output (out), y = W x + b. bias may be NULL or empty. Statuses: TD_EINVAL,
 * TD_ESHAPE (input or kernel not matching d), TD_ENOMEM, TD_ERANGE (gemm only). */

/* The reference: plain loops, O(Ho Wo Cout Cin/g kh kw).
 * Statuses as above: TD_EINVAL (NULL, invalid description), TD_ESHAPE. */
TD_API TD_WUR td_status td_layer_apply_direct(const td_layer_desc *d, const td_tensor *kernel,
                                              const td_tensor *bias, const td_tensor *input,
                                              td_tensor *output);

/* The same by im2col + one DGEMM per group (dense: one DGEMV), for timing real CPU speed.
 * Workspace: (Cin/g) kh kw Ho Wo doubles, allocated per call; none for a 1x1 conv with stride 1 and
 * no padding, whose input is already the column matrix.
 * Statuses as above, plus TD_ENOMEM, TD_EOVERFLOW, TD_ERANGE (the im2col buffer). */
TD_API TD_WUR td_status td_layer_apply_gemm(const td_layer_desc *d, const td_tensor *kernel,
                                            const td_tensor *bias, const td_tensor *input,
                                            td_tensor *output);

/* Heap bytes td_layer_apply_gemm of d allocates at an h x w input (dense: ignored): the output
 * and the im2col matrix ((Cin/g) kh kw Ho Wo doubles; none for a stride-1 unpadded 1x1 conv).
 * Statuses: TD_EINVAL (NULL, invalid d, a kernel that does not fit the input), TD_EOVERFLOW.
 * O(1), thread-safe. */
TD_API TD_WUR td_status td_layer_apply_workspace(const td_layer_desc *d, size_t h, size_t w, uint64_t *bytes);

/* The most heap td_chain_apply(c, input of h x w, gemm 1) holds at once: a piece's input, its
 * output and im2col matrix, from the pieces' descs alone (a layout from td_chain_layout will do).
 * Statuses as td_layer_apply_workspace, TD_EINVAL for an empty chain. O(pieces), thread-safe. */
TD_API TD_WUR td_status td_chain_apply_workspace(const td_chain *c, size_t h, size_t w, uint64_t *bytes);

/* Runs every piece of the chain in turn (gemm = 0: direct, 1: im2col + GEMM); the pieces' own
 * padding modes are resolved against the size each sees.
 * Statuses: TD_EINVAL (NULL, an empty chain), and those of the executor for each piece.
 * Cost: the executor's for each piece (about 2 MACs flops each: td_chain_cost's FLOPs); heap
 * as td_chain_apply_workspace: at most one piece's input, output and im2col matrix at once. */
TD_API TD_WUR td_status td_chain_apply(const td_chain *c, const td_tensor *input, int gemm,
                                       td_tensor *output);

TD_END_DECLS

#endif
