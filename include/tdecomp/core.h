/* tdecomp/core.h - dense N-way tensors in C order and the multilinear kernels built on them.
 *
 * Conventions (binding, TensorLy's):
 *  - A td_tensor of shape (I_0, ..., I_{N-1}) stores element (i_0, ..., i_{N-1}) at linear index
 *    sum_k i_k * prod_{m>k} I_m (C / row-major order, last index fastest). Matrices are 2-D
 *    tensors, row-major.
 *  - Mode-n unfolding X_(n) is the I_n x (prod_{k!=n} I_k) matrix whose row i_n holds every entry
 *    with that index, the remaining indices running in C order (last fastest). This is NOT Kolda &
 *    Bader's Fortran-order unfolding: rows agree, columns are permuted.
 *  - Block structure: with L = prod_{k<n} I_k and T = prod_{k>n} I_k, the tensor is L contiguous
 *    row-major blocks of size I_n x T, and X_(n) = [B_0 | B_1 | ... | B_{L-1}]. Kernels work on
 *    these blocks directly; no unfolding is copied.
 *  - n-mode product Y = X x_n M with M of shape (J, I_n): Y has I_n replaced by J and
 *    Y_(n) = M X_(n).
 *  - Khatri-Rao KR(A, B)[i*J + j, r] = A[i, r] * B[j, r] (first matrix's row index slowest).
 *    With CP factors A_k in increasing mode order, X_(n) = A_n diag(w) KR(A_k, k != n)^T.
 *
 * Ownership: a tensor either owns its data (owner = 1; td_tensor_free releases it) or is a view of
 * caller memory (owner = 0; td_tensor_free only resets the struct). Output tensors passed to
 * kernels are caller-allocated with the exact result shape (TD_ESHAPE otherwise), and must not
 * alias any input unless a function says so.
 * Sizes: every element-count product is overflow-checked (TD_EOVERFLOW); a dimension handed to
 * BLAS/LAPACK must fit a 32-bit int (TD_ERANGE), checked before the call.
 * Thread-safety: no global state; distinct outputs may be computed from several threads at once.
 * BLAS settings (threads, core) are never changed by the library. */
#ifndef TDECOMP_CORE_H
#define TDECOMP_CORE_H

#include "common.h"
#include "status.h"

TD_BEGIN_DECLS

typedef struct td_tensor {
    int ndim;                     /* number of modes, 0 <= ndim <= TD_MAX_MODES (0 = scalar) */
    size_t shape[TD_MAX_MODES];   /* extents; entries >= ndim are 0 */
    size_t size;                  /* number of elements = product of shape (1 for a scalar) */
    double *data;                 /* contiguous C-order storage, NULL only when size == 0 */
    int owner;                    /* 1 when td_tensor_free must release data */
} td_tensor;

/* Product of n extents into *out, TD_EOVERFLOW if it does not fit in size_t (or in
 * SIZE_MAX / sizeof(double) elements, so byte counts never overflow either). n may be 0 (*out = 1).
 * TD_EINVAL for n < 0 or a NULL pointer. O(n), no allocation. */
TD_API TD_WUR td_status td_size_product(int n, const size_t *dims, size_t *out);

/* Allocates a zero-filled owning tensor. t is overwritten (not freed first); on failure it is zeroed.
 * TD_EINVAL for ndim outside [0, TD_MAX_MODES] or a NULL shape with ndim > 0; TD_EOVERFLOW; TD_ENOMEM.
 * Zero-size extents are allowed (size 0, data NULL). Cost: one calloc. */
TD_API TD_WUR td_status td_tensor_alloc(td_tensor *t, int ndim, const size_t *shape);

/* Convenience for matrices: td_tensor_alloc(t, 2, {rows, cols}).
 * Statuses as td_tensor_alloc. Cost: one calloc. */
TD_API TD_WUR td_status td_matrix_alloc(td_tensor *t, size_t rows, size_t cols);

/* Describes caller memory as a tensor without allocating; t->owner = 0. data may be NULL only when
 * the size is 0. Statuses as td_tensor_alloc except TD_ENOMEM. O(ndim), no allocation. */
TD_API TD_WUR td_status td_tensor_view(td_tensor *t, int ndim, const size_t *shape, double *data);

/* Deep copy into a new owning tensor dst (overwritten, zeroed on failure).
 * Statuses: TD_EINVAL (NULL, dst == src), td_tensor_alloc's. Cost: one calloc and one memcpy of
 * size doubles. */
TD_API TD_WUR td_status td_tensor_copy(td_tensor *dst, const td_tensor *src);

/* Releases owned data and zeroes the struct. Safe on a zeroed struct, a view, or NULL. */
TD_API void td_tensor_free(td_tensor *t);

/* 1 when both have the same ndim and extents. */
TD_API int td_tensor_same_shape(const td_tensor *a, const td_tensor *b);

/* TD_OK when every entry is finite, TD_ENOTFINITE otherwise; TD_EINVAL for NULL.
 * One pass, stopping at the first NaN/Inf; no allocation. */
TD_API TD_WUR td_status td_tensor_check_finite(const td_tensor *t);

/* Largest magnitude a decomposition accepts: Grams and norms square the entries, and 1e150^2 is
 * still far from double's overflow at 1.8e308. */
#define TD_VALUE_MAX 1e150

/* td_tensor_check_finite, then TD_EVALUE when some |entry| > TD_VALUE_MAX. One pass over the
 * entries, no allocation. */
TD_API TD_WUR td_status td_tensor_check_values(const td_tensor *t);

/* --- unfoldings ------------------------------------------------------------------------------ */

/* Zero-copy description of X_(n): left = L = prod_{k<n} I_k blocks, each rows = I_n by right =
 * T = prod_{k>n} I_k, contiguous and row-major; block l starts at data + l * I_n * T.
 * Column j = l*T + t of X_(n) is column t of block l. */
typedef struct td_unfolding {
    size_t left;
    size_t rows;
    size_t right;
} td_unfolding;

/* Fills *u for mode n of x. TD_EINVAL if n is out of range (or a pointer is NULL).
 * O(ndim), no allocation. */
TD_API TD_WUR td_status td_unfolding_of(const td_tensor *x, int mode, td_unfolding *u);

/* Copies X_(n) into out, a caller-allocated I_n x (size / I_n) matrix (any 2-D tensor of that
 * shape). Bit-for-bit equal to TensorLy's unfold. TD_EINVAL bad mode, TD_ESHAPE bad out.
 * Cost: one copy of size(x) doubles (L I_n runs of T contiguous doubles); no allocation. */
TD_API TD_WUR td_status td_unfold(const td_tensor *x, int mode, td_tensor *out);

/* Inverse of td_unfold: writes into out (caller-allocated with the folded shape) the tensor whose
 * mode-n unfolding is mat. fold(unfold(X, n), n) == X exactly.
 * Statuses: TD_EINVAL (NULL, mode out of range), TD_ESHAPE (mat is not out's mode-n unfolding).
 * Cost: one copy of size(out) doubles; no allocation. */
TD_API TD_WUR td_status td_fold(const td_tensor *mat, int mode, td_tensor *out);

/* --- products -------------------------------------------------------------------------------- */

/* n-mode product y = x x_n op(m), op(m) = m (J x I_n) or, with transpose != 0, m^T where m is
 * (I_n x J). y must be caller-allocated with x's shape but I_n replaced by J.
 * One GEMM for mode 0 and mode N-1, otherwise one GEMM per contiguous block; no copies.
 * Cost: 2 * J * size(x) flops. Works for any ndim >= 1; a 1-D x gives y = op(m) x.
 * Statuses: TD_EINVAL (NULL, mode out of range), TD_ESHAPE (m or y does not fit), TD_ERANGE (an extent beyond 32-bit BLAS). */
TD_API TD_WUR td_status td_ttm(const td_tensor *x, int mode, const td_tensor *m, int transpose,
                               td_tensor *y);

/* Multi-mode product y = x x_0 op(m[0]) x_1 op(m[1]) ... over every mode k < x->ndim with
 * mats[k] != NULL and k != skip (skip = -1 skips none). Modes are applied most-shrinking first.
 * y caller-allocated with the final shape. Allocates at most two intermediates internally.
 * If no mode is applied, y receives a copy of x.
 * Cost: one td_ttm per applied mode, 2 * J_k * size(that step's input) flops each; memory: the
 * intermediates of the steps before the last (none for one mode, one for two, two alternating
 * buffers for more), each of that step's result size.
 * Statuses: TD_EINVAL (NULL, skip out of range), TD_ESHAPE, TD_ENOMEM, and td_ttm's. */
TD_API TD_WUR td_status td_ttm_multi(const td_tensor *x, const td_tensor *const *mats, int skip,
                                     int transpose, td_tensor *y);

/* Khatri-Rao product of the n matrices mats[k] (each I_k x R, same R), leaving out index skip
 * (-1 for none), in increasing k. out caller-allocated (prod I_k) x R. TensorLy's order.
 * Cost: R * sum_k prod_{m<=k} I_m multiplications over the matrices used (at most
 * 2 R prod I_k when every I_k >= 2), built in place in out; no allocation.
 * Statuses: TD_EINVAL (NULL, n < 1, skip out of range), TD_ESHAPE (different R, out's shape), TD_EOVERFLOW. */
TD_API TD_WUR td_status td_khatri_rao(const td_tensor *const *mats, int n, int skip, td_tensor *out);

/* MTTKRP: out = X_(n) KR(factors[k], k != n) (I_n x R), factors[k] of shape I_k x R for every
 * k < x->ndim (factors[n] is not read and may be NULL). The full Khatri-Rao product is never
 * formed: partial products over the modes right of n (and left of n) of size at most
 * max(prod_{k<n} I_k, prod_{k>n} I_k) x R are used. Cost ~2 * size(x) * R flops.
 * Statuses: TD_EINVAL (NULL, mode out of range), TD_ESHAPE (a factor or out does not fit), TD_ERANGE, TD_ENOMEM. */
TD_API TD_WUR td_status td_mttkrp(const td_tensor *x, const td_tensor *const *factors, int mode,
                                  td_tensor *out);

/* Gram matrix of the mode-n unfolding: g = X_(n) X_(n)^T (I_n x I_n, full symmetric, both
 * triangles filled). SYRK on the blocks. Cost ~size(x) * I_n flops.
 * Statuses: TD_EINVAL (NULL, mode out of range), TD_ESHAPE (g not I_n x I_n), TD_ERANGE, TD_ENOMEM. */
TD_API TD_WUR td_status td_gram(const td_tensor *x, int mode, td_tensor *g);

/* Frobenius norm sqrt(sum x^2), computed without overflow for large entries. 0 for an empty tensor.
 * At most two passes over x (the largest magnitude, then the sum of squares), no allocation. */
TD_API double td_norm(const td_tensor *x);

/* Relative difference ||x - ref||_F / ||ref||_F into *rel (the absolute ||x - ref||_F when ref is
 * zero), over the flat element order: x and ref must have the same element count (shapes may
 * differ, e.g. a kernel against its (rows, cols) view), else TD_ESHAPE; TD_EINVAL for NULL.
 * NaN/Inf entries give NaN/Inf. No allocation; two passes over each; thread-safe. */
TD_API TD_WUR td_status td_rel_diff(const td_tensor *x, const td_tensor *ref, double *rel);

/* Inner product sum a .* b into *out; TD_ESHAPE when shapes differ, TD_EINVAL for NULL.
 * One pass, 2 * size flops, no allocation. */
TD_API TD_WUR td_status td_inner(const td_tensor *a, const td_tensor *b, double *out);

/* --- deterministic random numbers (no global state) ------------------------------------------ */

/* xoshiro256** seeded through splitmix64; the same seed gives the same stream on every machine. */
typedef struct td_rng {
    uint64_t s[4];
} td_rng;

/* td_rng_seed: sets the state from seed (splitmix64 expands it to the four words); td_rng_next:
 * the next 64 random bits. O(1), no allocation. The state is the struct alone: one td_rng per
 * thread, or the caller serialises. */
TD_API void td_rng_seed(td_rng *rng, uint64_t seed);
TD_API uint64_t td_rng_next(td_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
TD_API double td_rng_uniform(td_rng *rng);
/* Standard normal (Box-Muller; two uniforms per value, no cached state). */
TD_API double td_rng_normal(td_rng *rng);

/* --- the BLAS thread pool -------------------------------------------------------------------- */

/* The library never changes BLAS settings by itself; these let a program (the tool's --threads,
 * --jobs) do it through the public API. td_blas_set_threads(n) sets OpenBLAS's process-wide
 * thread count (n >= 1; TD_EINVAL otherwise); td_blas_threads returns the current one. O(1).
 * Not thread-safe: call them only while no other thread is inside the library or BLAS. */
TD_API TD_WUR td_status td_blas_set_threads(int n);
TD_API int td_blas_threads(void);
/* The CPU kernel set OpenBLAS chose ("Zen", "Haswell", ...; OPENBLAS_CORETYPE overrides it), or
 * NULL when unknown; a static string. O(1), thread-safe. */
TD_API const char *td_blas_core(void);

TD_END_DECLS

#endif
