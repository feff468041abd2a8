/* tdecomp/rank.h - rank rules: pure functions of a spectrum (fixed, ratio, energy, EVBMF), each
 * also usable as a td_truncate_fn for td_tucker through td_rank_truncate. */
#ifndef TDECOMP_RANK_H
#define TDECOMP_RANK_H

#include "core.h"
#include "decomp.h"

TD_BEGIN_DECLS

/* R = max(1, round_half_up(f * c)) for 0 < f <= 1 (0 when c == 0). The product is rounded with
 * a 1e-9 guard so that exact decimal products (0.25 * 128 = 32, 0.5 * 3 = 1.5 -> 2) are not
 * lost to binary rounding. */
TD_API size_t td_rank_ratio(double f, size_t c);

/* Smallest r with sum_{i<r} s2[i] >= f * sum_i s2[i] (s2 descending squared singular values,
 * 0 < f <= 1). An all-zero spectrum gives 1. TD_EINVAL for f outside (0, 1] or n == 0. */
TD_API TD_WUR td_status td_rank_energy(const double *s2, size_t n, double f, size_t *rank);

/* EVBMF (Nakajima, Sugiyama, Babacan & Tomioka, JMLR 2013): the rank the empirical variational
 * Bayesian matrix factorisation keeps for a rows x cols matrix with the given singular values
 * (s, descending, n of them; missing ones are taken as 0). The matrix is transposed internally
 * so that L = min(rows, cols) <= M; the noise variance is found by minimising the EVB free
 * energy over [lower, upper] on a normalised problem (singular values divided by
 * ||Y||_F / sqrt(L M)), so the rank is invariant to scaling the matrix. Rank 0 (pure noise) is
 * possible. *sigma2 (may be NULL) receives the noise variance in the input's scale.
 * Cost O(n) per objective evaluation, a few thousand evaluations. */
TD_API TD_WUR td_status td_rank_evbmf(const double *s, size_t n, size_t rows, size_t cols,
                                      size_t *rank, double *sigma2);

typedef enum td_rank_kind {
    TD_RANK_FIXED = 0,   /* fixed[mode] (or fixed[0] for every mode when nfixed == 1) */
    TD_RANK_RATIO,       /* td_rank_ratio(value, I_mode) */
    TD_RANK_ENERGY,      /* td_rank_energy(spectrum, value) */
    TD_RANK_EVBMF        /* td_rank_evbmf on the unfolding (I_mode x size / I_mode) */
} td_rank_kind;

/* Context of td_rank_truncate. tensor_size is the element count of the tensor being truncated
 * (EVBMF needs the unfolding's column count size / I_mode). Fixed and ratio ranks above the mode
 * are lowered to it (the caller compares to detect clamping). */
typedef struct td_rank_rule {
    td_rank_kind kind;
    double value;                  /* ratio or energy fraction */
    size_t fixed[TD_MAX_MODES];    /* fixed ranks, indexed by mode */
    size_t tensor_size;
} td_rank_rule;

/* td_truncate_fn adapter: ctx is a const td_rank_rule *. Squared singular values in, rank out. */
TD_API TD_WUR td_status td_rank_truncate(void *ctx, int mode, const double *sv2, size_t n,
                                         size_t *rank);

TD_END_DECLS

#endif
