/* Helpers shared inside the layer folder (td__ prefix, hidden). Not installed. */
#ifndef TDECOMP_LAYER_INTERNAL_H
#define TDECOMP_LAYER_INTERNAL_H

#include "tdecomp/layer.h"

/* 1 when k is d's kernel: OIHW (Cout, Cin/groups, kh, kw), or (out, in) for a dense layer. */
int td__kernel_matches(const td_layer_desc *d, const td_tensor *k);

/* td_chain_rel_error of an SVD chain (grouped or not) by blocks of output rows of at most
 * block_values values: W_hat's rows r0..r1 are B[r0:r1] A, composed by td_chain_compose on a
 * shallow copy of the chain whose last piece is a view of those rows, so no W-sized buffer is
 * taken (360 MiB for an LLM projection); the blocks' norms combine by hypot. */
td_status td__svd_chain_rel_error(const td_chain *c, const td_tensor *kernel, size_t block_values, double *rel);

/* Allocates (zero-filled) the kernel of every piece of a chain laid out by td_chain_layout. */
td_status td__chain_alloc(td_chain *c);

/* A whitening metric: per diagonal block g (blocks of n), S_g = the symmetric square root of the
 * floored covariance block and S_g^-1; d / dinv the floored output weights (NULL: all 1). */
typedef struct td__metric {
    size_t n, blocks, cout;
    double *s, *sinv, *d, *dinv;
} td__metric;

td_status td__metric_new(const td_tensor *cov, size_t blocks, const double *out_scale, size_t cout, td__metric *m);
/* The metric a method works in, for k groups; *rep = kernel columns per metric index. */
td_status td__metric_for(const td_layer_desc *d, const td_layer_stats *s, td_method m, size_t k, td__metric *out,
                         size_t *rep);
void td__metric_free(td__metric *m);
td_status td__metric_apply(const td__metric *m, size_t g, int inverse, double *x, size_t rows, size_t ld, size_t rep);
void td__metric_scale_rows(const td__metric *m, int inverse, double *x, size_t ld, size_t cols);
/* out = D kernel S (per block), a new tensor; the kernel is the metric's layer's. */
td_status td__whiten_with(const td__metric *mt, size_t rep, const td_tensor *kernel, td_tensor *out);

#endif
