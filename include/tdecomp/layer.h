/* tdecomp/layer.h - conv and dense layer descriptions, rewrites into chains of thinner layers,
 * the cost model (parameters, MACs, FLOPs) and a reference executor.
 *
 * Shapes are always OIHW for convs: kernel (Cout, Cin/groups, kh, kw); dense (out, in).
 * The fields of td_layer_desc below are shared with io and plan: add fields, never change these. */
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
 * Convention (documented once, used everywhere): MACs = Ho * Wo * Cout * (Cin / groups) * kh * kw;
 * FLOPs = 2 * MACs; the bias is excluded. Parameters count the kernel (or dense matrix) only;
 * the bias is carried unchanged and left out. Dense layers count as 1 x 1 "pixels". */

/* Resolves the padding of d for an input of h x w into pad[4] = top, bottom, left, right.
 * 'same' follows TF/Keras: out = ceil(H / s), total = max((out - 1) s + (k - 1) d + 1 - H, 0),
 * the odd pixel at the bottom/right. */
TD_API TD_WUR td_status td_layer_padding(const td_layer_desc *d, size_t h, size_t w, size_t pad[4]);

/* Output spatial size for an input of h x w: floor((H + pt + pb - d (k - 1) - 1) / s) + 1.
 * TD_EINVAL when the kernel does not fit. */
TD_API TD_WUR td_status td_layer_output_size(const td_layer_desc *d, size_t h, size_t w, size_t *ho,
                                             size_t *wo);

typedef struct td_cost {
    uint64_t params;            /* kernel / matrix elements, bias excluded */
    int known;                  /* 1 when macs and flops are known (input size known) */
    uint64_t macs;
    uint64_t flops;             /* 2 * macs */
    double flops_per_pixel;     /* per output pixel of the (original) layer; always set */
} td_cost;

/* Cost of one layer. flops_per_pixel = 2 * Cout * Cin/g * kh * kw. */
TD_API TD_WUR td_status td_layer_cost(const td_layer_desc *d, td_cost *c);

/* --- rewrites into chains ------------------------------------------------------------------ */

typedef enum td_method {
    TD_METHOD_NONE = 0,
    TD_METHOD_TUCKER2,      /* 1x1 Cin->R_in, kh x kw R_in->R_out, 1x1 R_out->Cout */
    TD_METHOD_CP,           /* 1x1 Cin->R, kh x 1 depthwise, 1 x kw depthwise, 1x1 R->Cout */
    TD_METHOD_SVD,          /* dense: (r, in), (out, r); conv: kh x kw Cin->j, 1x1 j->Cout */
    TD_METHOD_SVD_GROUPED   /* ALDS: grouped kh x kw conv Cin->k*j (groups k), 1x1 k*j->Cout */
} td_method;

/* "none", "tucker2", "cp", "svd", "svd-grouped". */
TD_API const char *td_method_name(td_method m);

#define TD_CHAIN_MAX 4
typedef struct td_chain_piece {
    td_layer_desc desc;     /* geometry; input_known/in_h/in_w as this piece sees them */
    td_tensor kernel;       /* OIHW (Cout, Cin/groups, kh, kw), or dense (out, in) */
    td_tensor bias;         /* (Cout) on the last piece when the layer has a bias; else empty */
} td_chain_piece;

typedef struct td_chain {
    td_method method;
    int npieces;
    td_chain_piece pieces[TD_CHAIN_MAX];
    size_t ranks[2];        /* tucker2 (R_out, R_in); cp (R); svd (r); svd-grouped (k, j) */
    int nranks;
    int clamped;            /* 1 when a requested rank was above its mode and lowered */
    double rel_error;       /* ||W - W_hat||_F / ||W||_F of the composed kernel (double) */
    double seconds;
} td_chain;

/* Frees every piece and zeroes the chain. Safe on a zeroed chain. */
TD_API void td_chain_free(td_chain *c);

/* Tucker-2 of a conv kernel (Kim et al. 2015): modes {0, 1} of OIHW, ranks (r_out, r_in).
 * opt: NULL for HOOI defaults; opt->clamp lowers ranks above Cout/Cin (chain.clamped = 1),
 * otherwise they are TD_EINVAL. Grouped/depthwise convs: TD_EUNSUPPORTED. bias may be NULL. */
TD_API TD_WUR td_status td_conv_tucker2(const td_layer_desc *d, const td_tensor *kernel,
                                        const td_tensor *bias, size_t r_out, size_t r_in,
                                        const td_tucker_options *opt, td_chain *out);

/* CP of a conv kernel (Lebedev et al. 2014): weights folded into the last 1x1. The kh x 1 piece
 * carries the height stride, dilation and padding, the 1 x kw piece the width ones. */
TD_API TD_WUR td_status td_conv_cp(const td_layer_desc *d, const td_tensor *kernel,
                                   const td_tensor *bias, size_t rank, const td_cp_options *opt,
                                   td_chain *out);

/* Truncated SVD of a dense layer, a 1x1 conv, or a kh x kw conv lowered to (Cout, Cin kh kw):
 * the first piece takes the original stride/padding/dilation, the last the bias. rank above
 * min(rows, cols) is lowered when clamp, else TD_EINVAL. */
TD_API TD_WUR td_status td_layer_svd(const td_layer_desc *d, const td_tensor *kernel,
                                     const td_tensor *bias, size_t rank, int clamp, td_chain *out);

/* ALDS grouped SVD: Cin split into k contiguous groups (k must divide Cin), a rank-j SVD of each
 * group's (Cout, Cin/k kh kw) slice; j above its maximum lowered when clamp. */
TD_API TD_WUR td_status td_conv_svd_grouped(const td_layer_desc *d, const td_tensor *kernel,
                                            const td_tensor *bias, size_t k, size_t j, int clamp,
                                            td_chain *out);

/* Composes the chain's kernels back into the original layer's kernel shape (caller-allocated
 * out with the original kernel's shape). Exact algebra, no convolution: Tucker-2 core x_0 U_out
 * x_1 U_in; CP sum of outer products; SVD products. */
TD_API TD_WUR td_status td_chain_compose(const td_chain *c, td_tensor *out);

/* Summed cost of the pieces, each at the spatial size it sees; flops_per_pixel per output pixel
 * of the original layer, pieces before a stride s counting s*s pixels. */
TD_API TD_WUR td_status td_chain_cost(const td_chain *c, td_cost *cost);

/* --- reference executor ------------------------------------------------------------------- */

/* Direct convolution in plain loops (the reference): input (Cin, H, W) single image, output
 * allocated here (Cout, Ho, Wo). Dense layers take input (in) and give (out). */
TD_API TD_WUR td_status td_layer_apply_direct(const td_layer_desc *d, const td_tensor *kernel,
                                              const td_tensor *bias, const td_tensor *input,
                                              td_tensor *output);

/* The same by im2col + GEMM (per group), for timing real CPU speed. */
TD_API TD_WUR td_status td_layer_apply_gemm(const td_layer_desc *d, const td_tensor *kernel,
                                            const td_tensor *bias, const td_tensor *input,
                                            td_tensor *output);

/* Runs every piece of the chain in turn (gemm = 0: direct, 1: im2col + GEMM). */
TD_API TD_WUR td_status td_chain_apply(const td_chain *c, const td_tensor *input, int gemm,
                                       td_tensor *output);

TD_END_DECLS

#endif
