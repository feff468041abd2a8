/* tdecomp/decomp.h - truncated SVD, Tucker (HOSVD, ST-HOSVD, HOOI on any set of modes), CP-ALS.
 *
 * Results are plain structs, zeroed on failure and freed by one call (td_tucker_free,
 * td_cp_free), so freeing is always safe. Options structs have init functions; NULL options
 * mean the defaults. Deterministic for a given seed and BLAS thread count.
 * Stopping rule (TensorLy's): an iterative method stops when the absolute change of the relative
 * error between two sweeps is below tol, or after max_iter sweeps. tol = 0 runs exactly max_iter.
 * Not converging is a result (converged = 0), not an error.
 * Progress callbacks return 0 to continue, non-zero to cancel (the call then returns TD_ECANCELED
 * and the result is zeroed). */
#ifndef TDECOMP_DECOMP_H
#define TDECOMP_DECOMP_H

#include "core.h"

TD_BEGIN_DECLS

/* Called after each sweep with the 1-based iteration and the relative error after it. */
typedef int (*td_progress_fn)(void *ctx, int iteration, double rel_error);

/* --- truncated SVD --------------------------------------------------------------------------- */

typedef enum td_svd_method {
    TD_SVD_AUTO = 0,     /* the cheapest by a flop estimate: randomised when k + oversample is at
                            most a quarter of the short side and its estimate is lowest, else
                            the cheaper of Gram + eigensolver and dgesdd; on a near-square matrix
                            (short side > 1/4 of the long one) the Gram route is kept only when
                            s_k / s_1 >= 1e-4 (its squared condition number then costs at most
                            ~1e-8 of the kept vectors' accuracy), else dgesdd runs instead */
    TD_SVD_GRAM,         /* eigen-decomposition of A A^T or A^T A (the smaller); squares the
                            condition number: singular values below ~1e-8 * s_max lose accuracy.
                            With float32 allowed (float_passes), the Gram is summed from float
                            blocks (SSYRK, 2048 columns or rows at a time, added in double) and
                            its k leading vectors found by ssyevr, when lambda_k >= 1e-4
                            lambda_1 (else the double route); the vectors are then
                            orthonormalised into Q and the exact SVD of Q^T A taken in double
                            (its k x k Gram), so the result is the exact SVD of Q Q^T A and
                            ||A - U S V^T||_F^2 = ||A||_F^2 - sum s^2 holds for it too */
    TD_SVD_GESDD,        /* LAPACK divide and conquer on a copy */
    TD_SVD_RANDOMIZED    /* Halko-Martinsson-Tropp range finder: uniform (sub-Gaussian) test matrix,
                            l = k + oversample columns, power iterations with QR between them,
                            chosen adaptively (see power_tol), then an exact SVD of the projected
                            matrix B = Q^T A (from a QR of B^T and an l x l SVD). Cost
                            ~(2 + 2q) 2 m n l flops in 2 + 2q passes over A (all but the last may
                            be float32, see float_passes), plus per iteration ~4 (m + n) l^2 for
                            the QRs and Grams and an l x l eigensolve, and a residual check of
                            5 thin passes. A tall A is worked on as A^T (the range and its QRs on
                            the short side). A slowly converging tail grows the range once by
                            max(k/2, oversample) columns. When the tail converges too slowly to
                            reach power_tol by the cap (flat spectra) or the residual check finds
                            a direction larger than the k-th kept value, the exact route (GRAM or
                            GESDD) runs instead. The result is the exact SVD of P P^T A, P
                            orthonormal in double: P = Q, or, when the last pass was float32,
                            P = the k leading directions of Q^T A, with P^T A then computed in
                            double on those k columns. So ||A - U S V^T||_F^2 = ||A||_F^2 - sum s^2
                            holds for what is returned, to rounding. */
} td_svd_method;

typedef struct td_svd_options {
    td_svd_method method;   /* default TD_SVD_AUTO */
    int oversample;         /* randomised: extra columns, default 10 */
    int power_iters;        /* randomised: minimum number of power iterations, default 1 */
    uint64_t seed;          /* randomised: test-matrix seed, default 0 */
    int max_power_iters;    /* randomised: cap on power iterations, default 8 (>= power_iters) */
    double power_tol;       /* randomised: stop iterating once the gain still to come in the
                               estimated tail ||A||_F^2 - ||(Q^T A)_k||_F^2 (the result's squared
                               error), extrapolated geometrically from its last changes, is below
                               power_tol times the tail (or 1e-12 ||A||_F^2); the exact route runs
                               instead when the gain predicted to remain at the cap exceeds
                               10 power_tol of the tail. Default -1, automatic: 1e-4 when A has
                               at least 2^22 entries (the error then ends within ~power_tol / 2 of
                               the optimum's on decaying spectra, and within 5 power_tol = 5e-4
                               when the cap is reached; measured gaps on decaying, slowly decaying
                               and flat spectra were 1e-7 to 1.2e-4, tools/bench/svd_bench.py),
                               1e-6 below (cheap there; near-exact for callers that compare with
                               an exact SVD); 0 runs max_power_iters */
    int float_passes;       /* randomised: 1 (default) lets the passes that only find the range
                               run in float32 (SGEMM, ~2x DGEMM's rate) on a float copy of A when
                               A has at least 2^22 entries, while the tail is >= 1e-4 ||A||_F^2
                               and >= 1e-8 / power_tol ||A||_F^2 (below, float rounding could hide
                               convergence, or limit a near-exact low-rank fit to ~1e-7: the
                               passes turn double); 2: the same at any size; 0: double throughout.
                               The projection returned is double in every case. The same setting
                               lets the GRAM route form its Gram and eigenvectors in float32
                               (TD_SVD_GRAM above) */
} td_svd_options;

/* Sets the defaults above (AUTO, oversample 10, power_iters 1, max_power_iters 8, seed 0,
 * automatic power_tol, float_passes 1); NULL is ignored. O(1). */
TD_API void td_svd_options_init(td_svd_options *opt);

/* Leading k singular triplets of the m x n matrix a: a ~= u diag(s) vt.
 * u (m x k), s (k), vt (k x n) are caller-allocated; u or vt may be NULL when not wanted.
 * k <= min(m, n), else TD_EINVAL. Singular values descending. Sign convention (TensorLy's
 * u-based svd_flip): each column of u has its largest-magnitude entry positive (first such entry
 * on ties), the matching row of vt flipped with it. Statuses: TD_EINVAL, TD_ESHAPE (u/vt shapes),
 * TD_ERANGE (a dimension past BLAS's int), TD_ENOTFINITE (NaN/Inf input), TD_ENOMEM, TD_ELAPACK.
 * Workspace beyond the outputs: GESDD ~(m n + min(m,n) (m + n)) doubles; GRAM min(m,n)^2 + its
 * eigenvectors (in float32: that Gram in double and the float block, Gram and eigensolver copies,
 * about 2 min(m,n)^2 + (m + n) k doubles); RANDOMIZED ~(m + 2n) l + 3 l^2 doubles with l = k + oversample (up to 1.5 k +
 * oversample after a growth), plus, with float32 passes, m n + 2 max(m, n) l floats.
 * Thread safety: no shared state; concurrent calls on distinct outputs are safe. BLAS threading
 * is the caller's (the library never sets it); results are deterministic for a given seed and
 * BLAS thread count. */
TD_API TD_WUR td_status td_svd_trunc(const td_tensor *a, size_t k, const td_svd_options *opt,
                                     td_tensor *u, double *s, td_tensor *vt);

/* An upper bound (bytes) of the heap td_svd_trunc of an m x n matrix at rank k with opt (NULL:
 * defaults) allocates besides a, u, s and vt: its own buffers, LAPACKE's transposed copies and
 * LAPACK's work arrays, for the route opt->method (AUTO: the route it would take, and the exact
 * route the randomised one may fall back to). For callers that enforce a memory limit before
 * reading data. Statuses: TD_EINVAL (NULL bytes, a zero extent, k outside [1, min(m, n)]),
 * TD_EOVERFLOW. O(1), thread-safe. */
TD_API TD_WUR td_status td_svd_trunc_workspace(size_t m, size_t n, size_t k, const td_svd_options *opt, uint64_t *bytes);

/* Leading k left singular vectors of the mode-n unfolding of x (I_n x k, into u) and, if s is not
 * NULL, all min(I_n, size/I_n) squared singular values in descending order into s2 (length I_n;
 * entries past the rank are 0). Uses the Gram (SYRK on blocks) + dsyevd route; sign convention as
 * td_svd_trunc. u may be NULL to get only the spectrum: then the values come from dsyevd 'N'
 * (no vectors) on the smaller of the two Grams (I_n^2 or (size/I_n)^2 entries; the latter copies
 * the unfolding when the mode is interior), which is the route rank rules should use.
 * Statuses: TD_EINVAL (NULL, mode out of range, k > I_n), TD_ESHAPE (u), TD_ENOMEM, TD_ERANGE, TD_ELAPACK.
 * Cost: the Gram, ~size p flops (p the smaller of I_n and size / I_n), and a p x p symmetric
 * eigensolve (values only ~(4/3) p^3; with vectors ~9 I_n^3, or dsyevr on the leading k for large
 * I_n); memory td_mode_spectrum_workspace. Thread-safe for distinct outputs. */
TD_API TD_WUR td_status td_mode_spectrum(const td_tensor *x, int mode, size_t k, td_tensor *u,
                                         double *s2);

/* An upper bound (bytes) of the heap td_mode_spectrum of a tensor of that shape allocates besides
 * x, u and s2: k = 0 for values only (u NULL), else the number of vectors. Statuses: TD_EINVAL
 * (NULL, ndim outside [1, TD_MAX_MODES], mode out of range, k > I_mode), TD_EOVERFLOW. O(ndim),
 * thread-safe. */
TD_API TD_WUR td_status td_mode_spectrum_workspace(int ndim, const size_t *shape, int mode, size_t k, uint64_t *bytes);

/* --- Tucker ---------------------------------------------------------------------------------- */

typedef enum td_tucker_method {
    TD_TUCKER_HOSVD = 0,  /* each factor from the full unfolding of x */
    TD_TUCKER_STHOSVD,    /* sequentially truncated, modes ordered by cost */
    TD_TUCKER_HOOI        /* initialised from HOSVD, then alternating sweeps (warm-started, see
                             td_tucker_options.hooi_exact) */
} td_tucker_method;

/* Rank-decision callback: given mode (index into x's modes) and the squared singular values of
 * the current unfolding (descending, n of them, n = I_mode), set *rank in [0, n] and return TD_OK,
 * or return an error status to abort. A rank of 0 is returned as TD_EINFEASIBLE by td_tucker. */
typedef td_status (*td_truncate_fn)(void *ctx, int mode, const double *sv2, size_t n, size_t *rank);

typedef struct td_tucker_options {
    td_tucker_method method;  /* default TD_TUCKER_HOOI */
    double tol;               /* default 1e-4 (HOOI only) */
    int max_iter;             /* default 100 (HOOI only) */
    int clamp;                /* 0 (default): a rank above its mode is TD_EINVAL; 1: lowered,
                                 and the result's clamped[] says which */
    td_truncate_fn truncate;  /* if set, decides ranks (the ranks argument may then be NULL) */
    void *truncate_ctx;
    td_progress_fn progress;  /* optional, HOOI sweeps */
    void *progress_ctx;
    int hooi_exact;           /* 0 (default): HOOI sweeps after the first start from the previous
                                 factors: one Chebyshev-filtered subspace step on the mode Gram
                                 (T_2 on [0, 0.95 x the smallest Rayleigh quotient of the previous
                                 columns]: three I_n^2 R_n products), CholeskyQR and Rayleigh-Ritz
                                 on the R_n x R_n projection, instead of a dense eigensolver
                                 (~9 I_n^3). Each such step captures at least as much of the Gram
                                 as the previous factor (else the dense route runs), so the error
                                 never rises; it is not the sweep TensorLy takes: on Gaussian
                                 kernels it trailed the dense sweep by up to ~1e-4 after the second
                                 sweep and led it from the third (the Tucker-2 (512,512,3,3) case
                                 reaches the dense 10-sweep error in 8). A warm sweep whose error
                                 change falls below tol is followed by a dense sweep, and the run
                                 stops only when a dense sweep's change is below tol (a small
                                 change of an inexact step does not certify convergence). 1: every
                                 sweep dense (TensorLy's steps and trajectory) */
    int float_sweeps;         /* 1 (default): the warm sweeps of a Tucker-2 over modes {0, 1} of a
                                 tensor of at least 2^20 entries form their projections and Grams
                                 in float32 (SGEMM and SSYRK on a float copy of x, ~2x DGEMM's
                                 rate) while the previous sweep's error is >= 1e-2; the rest of
                                 the step (filter, Rayleigh-Ritz, any dense fallback) is double.
                                 Rounding perturbs each Gram by ~1e-6 of its norm: the history of
                                 those sweeps carries that, the factors stay orthonormal in
                                 double, dense sweeps (the first, confirmations) are double, and
                                 the core and rel_error are computed from x in double. 2: the same
                                 at any size; 0: double throughout */
} td_tucker_options;

/* Sets the defaults above (HOOI, tol 1e-4, max_iter 100, no clamp, no truncation rule, warm
 * sweeps); NULL is ignored. O(1). */
TD_API void td_tucker_options_init(td_tucker_options *opt);

typedef struct td_tucker_result {
    td_tensor core;                      /* x's shape with each decomposed I_m replaced by R_m */
    int nmodes;                          /* number of decomposed modes */
    int modes[TD_MAX_MODES];             /* decomposed modes, increasing */
    size_t ranks[TD_MAX_MODES];          /* ranks[i] for modes[i] */
    int clamped[TD_MAX_MODES];           /* 1 when ranks[i] was lowered to the mode size */
    td_tensor factors[TD_MAX_MODES];     /* factors[i]: I_{modes[i]} x ranks[i], orthonormal cols */
    int iterations;                      /* HOOI sweeps run; 0 for HOSVD / ST-HOSVD */
    int converged;                       /* 1 for HOSVD / ST-HOSVD */
    double rel_error;                    /* ||x - full|| / ||x||, computed exactly */
    double seconds;                      /* wall time of the decomposition */
    double *history;                     /* rel. error after each sweep, `iterations` entries */
    int order[TD_MAX_MODES];             /* ST-HOSVD: modes in the order processed (cheapest
                                            first); otherwise modes[] */
    int float_sweeps;                    /* HOOI sweeps whose Grams were float32 (float_sweeps) */
} td_tucker_result;

/* Tucker decomposition of x on the nmodes modes listed (any order, no repeats; they are sorted
 * in the result), with ranks[i] for modes[i] unless opt->truncate decides them.
 * x = core x_{m} U_m over the decomposed modes. Tucker-2 of an OIHW conv kernel is modes {0,1}.
 * Cost (HOOI, per sweep and decomposed mode n): the projection of x on the other factors
 * (2 size R_m / I_m flops for each other mode m, applied in turn) and its Gram (size_proj I_n
 * flops), then the warm step (~6 I_n^2 R_n + 4 I_n R_n^2 + 9 R_n^3) or, on the first sweep and
 * confirmations, the dense eigensolver (~9 I_n^3). The initialisation is an HOSVD without the
 * first mode's factor (the first sweep recomputes it) unless a truncation rule needs its spectrum;
 * the core is one product from the last mode's projection.
 * Memory: the largest projection plus one I_n^2 Gram and a few I_n x R_n blocks; HOOI on two
 * modes whose second is interior with a trailing extent < 64 (Tucker-2 of a conv kernel) also
 * keeps one permuted copy of x (x->size doubles) for its sweeps, and with float32 sweeps one in
 * float (x->size floats) and a float projection and Gram.
 * Thread-safety: no shared state; concurrent calls on different results are safe (x is only read).
 * Statuses: TD_EINVAL (bad modes/ranks, rank 0, rank > mode without clamp), TD_ENOTFINITE,
 * TD_ENOMEM, TD_ERANGE, TD_ELAPACK, TD_ECANCELED, TD_EINFEASIBLE (truncation chose 0). */
TD_API TD_WUR td_status td_tucker(const td_tensor *x, int nmodes, const int *modes,
                                  const size_t *ranks, const td_tucker_options *opt,
                                  td_tucker_result *res);

/* Frees the core, the factors and the history and zeroes res; safe on a zeroed result. O(1). */
TD_API void td_tucker_free(td_tucker_result *res);

/* An upper bound (bytes) of the heap td_tucker of a tensor of that shape on those modes and ranks
 * (NULL or 0 entries: the whole mode, as a truncation rule may decide) with opt allocates besides
 * x, the result included: the factors, core and history, per mode a Gram and its
 * eigen-decomposition, and at most five tensors of x's size at once (HOOI's permuted copy, a
 * projection with td_ttm_multi's intermediates, the kept last projection, the exact error's
 * reconstruction). Statuses: TD_EINVAL (NULL, ndim or nmodes out of range, a mode out of range),
 * TD_EOVERFLOW. O(ndim), thread-safe. */
TD_API TD_WUR td_status td_tucker_workspace(int ndim, const size_t *shape, int nmodes, const int *modes,
                                            const size_t *ranks, const td_tucker_options *opt, uint64_t *bytes);

/* Reconstruction core x_m U_m into out (caller-allocated with the original shape).
 * Statuses: TD_EINVAL (NULL, an empty result), td_ttm_multi's (TD_ESHAPE when out does not fit).
 * Cost: td_ttm_multi's, ~2 sum_m I_m R_m (size of the partial products) flops, at most two
 * intermediates. */
TD_API TD_WUR td_status td_tucker_full(const td_tucker_result *res, td_tensor *out);

/* --- CP -------------------------------------------------------------------------------------- */

typedef enum td_cp_init {
    TD_CP_INIT_SVD = 0,   /* leading left singular vectors of each unfolding (mode 0 scaled by
                             the singular values); columns past a short mode filled with seeded
                             uniform [0,1) values, as TensorLy, without its memory blow-up */
    TD_CP_INIT_RANDOM,    /* seeded uniform [0,1) */
    TD_CP_INIT_GIVEN      /* opt->init_factors */
} td_cp_init;

typedef struct td_cp_options {
    td_cp_init init;                  /* default TD_CP_INIT_SVD */
    uint64_t seed;                    /* default 0 */
    double tol;                       /* default 1e-8 */
    int max_iter;                     /* default 100 */
    int normalize;                    /* 1: column norms moved into weights at the end; default 1 */
    const td_tensor *init_factors;    /* TD_CP_INIT_GIVEN: ndim matrices I_n x R */
    td_progress_fn progress;
    void *progress_ctx;
} td_cp_options;

/* Sets the defaults above (SVD init, seed 0, tol 1e-8, max_iter 100, normalize); NULL is
 * ignored. O(1). */
TD_API void td_cp_options_init(td_cp_options *opt);

typedef struct td_cp_result {
    int ndim;
    size_t rank;
    double *weights;                    /* rank entries */
    td_tensor factors[TD_MAX_MODES];    /* factors[n]: I_n x rank */
    int iterations;
    int converged;
    double rel_error;                   /* final, recomputed exactly from the reconstruction */
    double seconds;
    double *history;                    /* per-sweep relative error: the Gram form, or the exact
                                           residual once that form falls below 1e-6 */
} td_cp_result;

/* CP-ALS: x ~= sum_r w_r a_r^(0) o ... o a_r^(N-1). Any rank >= 1 (rank above a mode allowed).
 * Normal equations from the Hadamard product of Grams, solved by Cholesky with a pivoted
 * least-squares fallback when singular. Statuses: TD_EINVAL, TD_ENOTFINITE, TD_ENOMEM, TD_ERANGE,
 * TD_ELAPACK, TD_ECANCELED. Cost per sweep: a dimension tree (N >= 3 and R (size / I_0) <= 2
 * size) makes two passes over x, ~4 size R flops, else one MTTKRP per mode, ~2 N size R; plus
 * O(N R^2 max I + N R^3) for the Grams and solves; the SVD initialisation one Gram and
 * eigen-decomposition per mode; the final exact residual ~2 size R. Memory: td_cp_als_workspace.
 * Thread-safe: distinct results may be computed concurrently. */
TD_API TD_WUR td_status td_cp_als(const td_tensor *x, size_t rank, const td_cp_options *opt,
                                  td_cp_result *res);

/* Frees the weights, factors and history and zeroes res; safe on a zeroed result. O(1). */
TD_API void td_cp_free(td_cp_result *res);

/* An upper bound (bytes) of the heap td_cp_als of a tensor of that shape at rank allocates
 * besides x, the result included: factors, Grams, the dimension tree's R x (size / I_0) partial
 * product when it is used (N >= 3 and R (size / I_0) <= 2 size), and the largest transient (an
 * SVD initialisation, an MTTKRP, the exact residual's R x (size / I_0) Khatri-Rao product).
 * Statuses: TD_EINVAL (NULL, ndim outside [1, TD_MAX_MODES], rank 0, an empty shape),
 * TD_EOVERFLOW. O(ndim), thread-safe. */
TD_API TD_WUR td_status td_cp_als_workspace(int ndim, const size_t *shape, size_t rank, const td_cp_options *opt,
                                            uint64_t *bytes);

/* Reconstruction into out (caller-allocated with the original shape).
 * Statuses: TD_EINVAL (NULL, an empty result), TD_ESHAPE (out does not fit), TD_ERANGE, TD_ENOMEM.
 * Cost: ~2 size R flops (one GEMM with the Khatri-Rao product of modes 1..N-1, (size / I_0) R
 * doubles). */
TD_API TD_WUR td_status td_cp_full(const td_cp_result *res, td_tensor *out);

TD_END_DECLS

#endif
