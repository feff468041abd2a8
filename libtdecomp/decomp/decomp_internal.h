/* Shared helpers of the decomp layer (not installed). */
#ifndef TDECOMP_DECOMP_INTERNAL_H
#define TDECOMP_DECOMP_INTERNAL_H

#include "core/internal.h"
#include "tdecomp/decomp.h"

/* Eigen-decomposition of the symmetric n x n matrix g (not modified): the k leading eigenvectors
 * into vecs (n x k row-major, may be NULL) and all n eigenvalues, descending, into evals (may be
 * NULL). Sign convention of td_svd_trunc applied to the vectors. */
td_status td__sym_eig_leading(const double *g, size_t n, size_t k, double *vecs, double *evals);

/* Flips each column c of the m x k row-major matrix u so its largest-|.| entry (first on ties)
 * is positive; if flips is not NULL, flips[c] = -1 or +1 records what was done. */
void td__sign_flip_columns(double *u, size_t m, size_t k, double *flips);

#endif
