/* tdecomp/rank.h - rank rules: pure functions of a spectrum (fixed, ratio, energy, EVBMF), each
 * also usable as a td_truncate_fn for td_tucker through td_rank_truncate.
 * Thread-safety: no global state; every function is reentrant (memory, where any, is the call's own). */
#ifndef TDECOMP_RANK_H
#define TDECOMP_RANK_H

#include "core.h"
#include "decomp.h"

TD_BEGIN_DECLS

/* The --rank-ratio rule: R = max(1, round_half_up(f * c)) = floor(f c + 0.5 + 1e-9), at most c;
 * 0 when c == 0 or f is not positive. The 1e-9 guard keeps decimal products exact against binary
 * rounding (0.29 * 50 = 14.499999999999998 in binary still gives 15; 0.25 * 128 = 32). A (256, 128,
 * 3, 3) kernel at 0.25 gets (64, 32). O(1). */
TD_API size_t td_rank_ratio(double f, size_t c);

/* Spectral tails: tails[r] = sum_{i >= r} s2[i] for r = 0 .. n (tails[n] = 0), negative entries
 * (from rounding) counted as 0. tails[r] is the squared error of a rank-r truncation (exact for an
 * SVD, one mode's share of the HOSVD bound). tails has n + 1 entries; no allocation. */
TD_API void td_rank_tails(const double *s2, size_t n, double *tails);

/* The --energy rule: the smallest r with sum_{i<r} s2[i] >= f * sum_i s2[i], for s2 the n squared
 * singular values in descending order (negative entries, from rounding, count as 0) and
 * 0 < f <= 1. Equivalently the truncation error sqrt(sum_{i>=r} s2[i]) / ||Y||_F is at most
 * sqrt(1 - f). Squared values are summed (not sigma), as the Frobenius error is. A relative guard of
 * 1e-12 makes f = 1 give the numerical rank. An all-zero spectrum gives 1.
 * TD_EINVAL for NULL pointers, n == 0 or f outside (0, 1]; TD_ENOTFINITE for a NaN/Inf entry.
 * Cost: at most two passes over s2 (O(n)), no allocation. */
TD_API TD_WUR td_status td_rank_energy(const double *s2, size_t n, double f, size_t *rank);

/* EVBMF (Nakajima, Sugiyama, Babacan & Tomioka, JMLR 2013, "Global analytic solution of
 * fully-observed variational Bayesian matrix factorization"): the rank the empirical VB matrix
 * factorisation keeps for a rows x cols matrix Y with singular values s (descending, n of them;
 * missing ones are taken as 0, extra ones past min(rows, cols) ignored).
 * With L = min(rows, cols), M = max(rows, cols) (so the matrix is transposed when rows > cols, a
 * case the common Python copy silently gets wrong), alpha = L / M, tau = 2.5129 sqrt(alpha),
 * x = (1 + tau)(1 + alpha / tau):
 *   rank = #{h : s_h > sqrt(M sigma2 x)}  (strict),
 * with the noise variance sigma2 the global minimiser of the EVB free energy (H = L, no residual)
 * over [max(s_k^2 / (M x), mean_{h>=k} s_h^2 / M), ||Y||_F^2 / (L M)], k = ceil(L / (1 + alpha)) - 1
 * (0-based), exactly the bounds of VBMF.py. The search runs on the normalised problem (s divided
 * by ||Y||_F / sqrt(L M), so the upper bound is 1): a 2001-point grid in log sigma2 and a
 * golden-section refinement, hence the rank is invariant to scaling Y (VBMF.py's absolute tolerance
 * of 1e-5 makes it drift for small weights) and the global minimum is found even when the free
 * energy has several local minima. Rank 0 (a noise-like, flat spectrum) is a result the caller
 * must handle; a zero matrix gives rank 0, sigma2 0.
 * *sigma2 (may be NULL) receives the noise variance in the input's scale.
 * Statuses: TD_EINVAL (NULL s or rank, rows or cols 0), TD_ENOTFINITE, TD_ENOMEM.
 * Cost: O(L) per free-energy evaluation, at most 2,210 evaluations; memory L doubles. */
TD_API TD_WUR td_status td_rank_evbmf(const double *s, size_t n, size_t rows, size_t cols,
                                      size_t *rank, double *sigma2);

typedef enum td_rank_kind {
    TD_RANK_FIXED = 0,   /* fixed[mode], lowered to I_mode when above it; 0 is TD_EINVAL */
    TD_RANK_RATIO,       /* td_rank_ratio(value, I_mode) */
    TD_RANK_ENERGY,      /* td_rank_energy(spectrum, value) */
    TD_RANK_EVBMF        /* td_rank_evbmf on the unfolding, I_mode x (tensor_size / I_mode) */
} td_rank_kind;

/* Context of td_rank_truncate (a rank rule for td_tucker's callback). Fill it with a designated
 * initialiser or memset: unused fields must be 0.
 * tensor_size is the element count of the tensor whose unfoldings are truncated; EVBMF needs the
 * unfolding's column count tensor_size / I_mode (TD_EINVAL when tensor_size is 0). With
 * ST-HOSVD the later modes see an already truncated tensor, so EVBMF's column count (taken from
 * the full tensor) is then an approximation; HOSVD and HOOI decide every rank on the full
 * unfoldings, where it is exact. */
typedef struct td_rank_rule {
    td_rank_kind kind;
    double value;                  /* ratio (0, 1] or energy fraction (0, 1] */
    size_t fixed[TD_MAX_MODES];    /* fixed ranks, indexed by tensor mode */
    size_t tensor_size;
} td_rank_rule;

/* td_truncate_fn adapter: ctx is a const td_rank_rule *, mode the tensor mode, sv2 the n = I_mode
 * squared singular values of its unfolding (descending), *rank in [0, n] out (0 only from EVBMF:
 * td_tucker then fails with TD_EINFEASIBLE). Statuses: TD_EINVAL (NULL pointers, n == 0, mode
 * outside [0, TD_MAX_MODES), a bad value, fixed rank 0, EVBMF without tensor_size or with one
 * that is not a multiple of n), TD_ENOTFINITE, TD_ENOMEM.
 * Cost: O(1) for fixed ranks and ratios, td_rank_energy's O(n) for energy; EVBMF: a copy of the
 * n singular values, then td_rank_evbmf's. */
TD_API TD_WUR td_status td_rank_truncate(void *ctx, int mode, const double *sv2, size_t n,
                                         size_t *rank);

TD_END_DECLS

#endif
