/* Naive reference loops: element-by-element definitions, the truths the kernels are tested against. */
#ifndef TDTEST_NAIVE_H
#define TDTEST_NAIVE_H

#include "tdecomp.h"

/* Linear C-order index of the multi-index idx in shape. */
size_t nv_index(int ndim, const size_t *shape, const size_t *idx);
/* Advances idx to the next C-order multi-index; returns 0 after the last. */
int nv_next(int ndim, const size_t *shape, size_t *idx);

/* The mode-n unfolding by its element-wise definition (TensorLy's C-order convention):
 * column = C-order linear index of the remaining indices. out must be I_n x (size/I_n). */
void nv_unfold(const td_tensor *x, int mode, td_tensor *out);
/* y = x x_n op(m), element by element. y pre-allocated with the result shape. */
void nv_ttm(const td_tensor *x, int mode, const td_tensor *m, int transpose, td_tensor *y);
/* Khatri-Rao by definition: row index = C-order index over the non-skipped matrices. */
void nv_khatri_rao(const td_tensor *const *mats, int n, int skip, td_tensor *out);
/* out[i, r] = sum over all entries with i_n = i of x * prod_{k != n} A_k[i_k, r]. */
void nv_mttkrp(const td_tensor *x, const td_tensor *const *factors, int mode, td_tensor *out);
/* G = X_(n) X_(n)^T by summing over entries pairs sharing all other indices. */
void nv_gram(const td_tensor *x, int mode, td_tensor *g);

#endif
