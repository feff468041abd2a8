/* Naive reference loops: element-by-element definitions, the truths the kernels are tested against. */
#ifndef TDTEST_NAIVE_H
#define TDTEST_NAIVE_H

#include "tdecomp.h"

/* Linear C-order index of the multi-index idx in shape. */
size_t nv_index(int ndim, const size_t *shape, const size_t *idx);
/* Advances idx to the next C-order multi-index; returns 0 after the last. */
int nv_next(int ndim, const size_t *shape, size_t *idx);

#endif
