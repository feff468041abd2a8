/* Tucker on any set of modes: HOSVD, ST-HOSVD, HOOI. Leading singular vectors come from the
 * Gram of the unfolding (SYRK on the C-order blocks) and dsyevd; no unfolding is copied. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "decomp/decomp_internal.h"

void td_tucker_options_init(td_tucker_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->method = TD_TUCKER_HOOI;
    opt->tol = 1e-4;
    opt->max_iter = 100;
    opt->float_sweeps = 1;
}

void td_tucker_free(td_tucker_result *res)
{
    if (!res) return;
    td_tensor_free(&res->core);
    for (int i = 0; i < TD_MAX_MODES; i++) td_tensor_free(&res->factors[i]);
    free(res->history);
    memset(res, 0, sizeof *res);
}

/* Decides the rank of one mode from its spectrum (callback) or the request, applying clamp. */
static td_status decide_rank(const td_tucker_options *o, int mode, const double *s2, size_t n,
                             size_t requested, size_t *rank, int *clamped)
{
    *clamped = 0;
    if (o->truncate) {
        size_t r = 0;
        td_status st = o->truncate(o->truncate_ctx, mode, s2, n, &r);
        if (st != TD_OK) return st;
        if (r == 0) return TD_EINFEASIBLE;
        if (r > n) { r = n; *clamped = 1; }
        *rank = r;
        return TD_OK;
    }
    if (requested == 0) return TD_EINVAL;
    if (requested > n) {
        if (!o->clamp) return TD_EINVAL;
        *rank = n;
        *clamped = 1;
        return TD_OK;
    }
    *rank = requested;
    return TD_OK;
}

/* A truncation rule sees the whole spectrum: below this size one dsyevd with all vectors beats a
 * values-only pass followed by a second one for the chosen rank. */
#define ALL_VECTORS_MAX_N 1024

/* Spectrum (values only, or with all vectors when that is cheaper) for the truncation rule, then
 * the rank decision, then the vectors for that rank. */
static td_status truncated_factor(const td_tucker_options *o, const double *g, size_t n, size_t cols,
                                  int mode, size_t *rank, int *clamped, td_tensor *u)
{
    const int all = n < ALL_VECTORS_MAX_N;
    double *ev = malloc((n ? n : 1) * sizeof(double)), *vec = all ? malloc(n * n * sizeof(double) + 1) : NULL;
    td_status st = TD_OK;
    if (!ev || (all && !vec)) { st = TD_ENOMEM; goto done; }
    if ((st = td__sym_eig_leading(g, n, all ? n : 0, vec, ev)) != TD_OK) goto done;
    const size_t rk = n < cols ? n : cols;
    for (size_t i = 0; i < n; i++) ev[i] = (i < rk && ev[i] > 0) ? ev[i] : 0.0;
    if ((st = decide_rank(o, mode, ev, n, 0, rank, clamped)) != TD_OK) goto done;
    if ((st = td_matrix_alloc(u, n, *rank)) != TD_OK) goto done;
    if (!all) {
        st = td__sym_eig_top(g, n, *rank, u->data, NULL);
        goto done;
    }
    for (size_t i = 0; i < n; i++) memcpy(u->data + i * *rank, vec + i * n, *rank * sizeof(double));
done:
    free(ev);
    free(vec);
    return st;
}

/* Leading r left singular vectors of y's mode unfolding into u (allocated here), with the
 * spectrum handed to the rank decision first. */
static td_status mode_factor(const td_tucker_options *o, const td_tensor *y, int mode,
                             size_t requested, size_t *rank, int *clamped, td_tensor *u)
{
    const size_t n = y->shape[mode];
    td_tensor g = {0};
    td_status st = td_matrix_alloc(&g, n, n);
    if (st != TD_OK) return st;
    if ((st = td_gram(y, mode, &g)) != TD_OK) goto done;
    if (o->truncate) {
        st = truncated_factor(o, g.data, n, n ? y->size / n : 0, mode, rank, clamped, u);
        goto done;
    }
    if ((st = decide_rank(o, mode, NULL, n, requested, rank, clamped)) != TD_OK) goto done;
    if ((st = td_matrix_alloc(u, n, *rank)) != TD_OK) goto done;
    st = td__sym_eig_top(g.data, n, *rank, u->data, NULL);
done:
    if (st != TD_OK) td_tensor_free(u); /* the caller's factor stays empty on failure */
    td_tensor_free(&g);
    return st;
}

/* Warm start: one Chebyshev-filtered subspace step on the mode Gram from the previous factor,
 * then Rayleigh-Ritz. The filter T_2(2 G / b - 1) damps the eigenvalues in [0, b] (G is PSD) and
 * grows those above b quadratically. With b just below the smallest Rayleigh quotient of the
 * previous factor, measured on Gaussian kernels, the error trailed the dense sweep's by up to
 * ~1e-4 after the second sweep and was lower from the third on (the dense eigensolver maximises
 * one factor at a time, not the sweep; 0.95 was ahead more consistently than 1.0), for three G
 * products, one CholeskyQR and an R x R eigensolve instead of dsyevd on n x n (~9 n^3). */
#define WARM_FILTER_EDGE 0.95 /* b = this x the smallest Rayleigh quotient of the previous columns */

/* y = T_2(2 G / b - 1) prev = 2 (2/b G - I) y1 - prev, y1 = (2/b) G prev - prev; w: work.
 * *before = tr(prev^T G prev). */
static td_status filter_step(const td_tensor *g, const td_tensor *prev, double *w, double *y, double *before)
{
    const size_t n = prev->shape[0], r = prev->shape[1], nr = n * r;
    const int N = (int)n, R = (int)r;
    const double *p = prev->data;
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, N, R, 1.0, g->data, N, p, R, 0.0, w, R);
    double lo = INFINITY;
    *before = 0;
    for (size_t c = 0; c < r; c++) {
        double q = 0;
        for (size_t i = 0; i < n; i++) q += p[i * r + c] * w[i * r + c];
        lo = fmin(lo, q);
        *before += q;
    }
    if (!(lo > 0)) return TD_ERANGE; /* a column in G's null space: the caller goes dense */
    const double s = 2.0 / (WARM_FILTER_EDGE * lo);
    for (size_t i = 0; i < nr; i++) y[i] = s * w[i] - p[i];
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, N, R, 2.0 * s, g->data, N, y, R, 0.0, w, R);
    for (size_t i = 0; i < nr; i++) y[i] = w[i] - 2.0 * y[i] - p[i];
    return TD_OK;
}

/* u = leading r-dimensional invariant subspace estimate of G = Y_(mode) Y_(mode)^T from prev
 * (orthonormal, n x r): filter_step, orthonormalisation, then Rayleigh-Ritz on the r x r
 * projection, so the columns come ordered and signed as the dense route's. *trace = tr(U^T G U).
 * TD_ERANGE: the filter does not apply, or the result would capture less of G than prev (the
 * caller uses the dense eigensolver), so every warm step is an ascent step and HOOI's error
 * never rises. */
static td_status warm_factor(const td_tensor *g, const td_tensor *prev, td_tensor *u, double *trace)
{
    const size_t n = prev->shape[0], r = prev->shape[1];
    const int N = (int)n, R = (int)r;
    double *q = malloc(n * r * sizeof(double)), *w = malloc(n * r * sizeof(double)),
           *h = malloc(r * r * sizeof(double)), *v = malloc(r * r * sizeof(double));
    td_status st = TD_OK;
    double before = 0;
    if (!q || !w || !h || !v) { st = TD_ENOMEM; goto done; }
    if ((st = filter_step(g, prev, w, q, &before)) != TD_OK) goto done;
    if ((st = td__orthonormalise(q, n, r)) != TD_OK) goto done;
    /* Rayleigh-Ritz: H = Q^T G Q = Q^T W, eigenvectors V, u = Q V */
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, N, R, 1.0, g->data, N, q, R, 0.0, w, R);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, R, N, 1.0, q, R, w, R, 0.0, h, R);
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < i; j++) h[i * r + j] = h[j * r + i] = 0.5 * (h[i * r + j] + h[j * r + i]);
    *trace = 0;
    for (size_t i = 0; i < r; i++) *trace += h[i * r + i]; /* = tr(U^T G U) for u = Q V */
    if (!(*trace >= before)) { st = TD_ERANGE; goto done; }
    if ((st = td__sym_eig_leading(h, r, r, v, NULL)) != TD_OK) goto done;
    if ((st = td_matrix_alloc(u, n, r)) != TD_OK) goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, R, 1.0, q, R, v, R, 0.0, u->data, R);
    td__sign_flip_columns(u->data, n, r, NULL);
done:
    if (st != TD_OK) td_tensor_free(u);
    free(q);
    free(w);
    free(h);
    free(v);
    return st;
}

static td_status alloc_projected(const td_tensor *x, const td_tensor *const *mats, int skip,
                                 td_tensor *out)
{
    size_t shape[TD_MAX_MODES];
    for (int k = 0; k < x->ndim; k++)
        shape[k] = (k != skip && mats[k]) ? mats[k]->shape[1] : x->shape[k];
    return td_tensor_alloc(out, x->ndim, shape);
}

/* y = x x_m U_m^T over the modes with mats[m] != NULL, except skip. */
static td_status project(const td_tensor *x, const td_tensor *const *mats, int skip, td_tensor *y)
{
    td_status st = alloc_projected(x, mats, skip, y);
    if (st != TD_OK) return st;
    st = td_ttm_multi(x, mats, skip, 1, y);
    if (st != TD_OK) td_tensor_free(y);
    return st;
}

td_status td_tucker_full(const td_tucker_result *res, td_tensor *out)
{
    if (!res || !out || res->core.ndim != out->ndim) return TD_EINVAL;
    const td_tensor *mats[TD_MAX_MODES] = {0};
    for (int i = 0; i < res->nmodes; i++) mats[res->modes[i]] = &res->factors[i];
    return td_ttm_multi(&res->core, mats, -1, 0, out);
}

/* Estimated cost of ST-HOSVD in a given mode order: Gram + projection on a shrinking tensor. */
static double sthosvd_cost(const td_tensor *x, const int *order, int n, const size_t *rank_of)
{
    double size = (double)x->size, cost = 0;
    for (int i = 0; i < n; i++) {
        double in = (double)x->shape[order[i]], r = (double)rank_of[order[i]];
        cost += size * in + 2.0 * size * r + 9.0 * in * in * in;
        size = size / in * r;
    }
    return cost;
}

static void best_order(const td_tensor *x, int *order, int n, const size_t *rank_of)
{
    /* Exhaustive for small n (n! orders, each O(n)), greedy most-shrinking first otherwise. */
    int perm[TD_MAX_MODES], best[TD_MAX_MODES];
    memcpy(perm, order, (size_t)n * sizeof(int));
    memcpy(best, order, (size_t)n * sizeof(int));
    if (n <= 7) {
        double bc = sthosvd_cost(x, perm, n, rank_of);
        int c[TD_MAX_MODES] = {0}, i = 0; /* Heap's algorithm */
        while (i < n) {
            if (c[i] < i) {
                int j = (i % 2 == 0) ? 0 : c[i], t = perm[j];
                perm[j] = perm[i];
                perm[i] = t;
                double cc = sthosvd_cost(x, perm, n, rank_of);
                if (cc < bc) { bc = cc; memcpy(best, perm, (size_t)n * sizeof(int)); }
                c[i]++;
                i = 0;
            } else {
                c[i++] = 0;
            }
        }
    } else {
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0; b--) {
                int p = best[b - 1], q = best[b];
                if ((double)rank_of[q] / (double)x->shape[q] < (double)rank_of[p] / (double)x->shape[p]) {
                    best[b - 1] = q;
                    best[b] = p;
                }
            }
    }
    memcpy(order, best, (size_t)n * sizeof(int));
}

/* ||x - full||/||x||: from ||x||^2 - ||core||^2 (orthonormal factors) where that is well
 * conditioned, else from the reconstruction, since the difference form has a ~1e-8 floor. */
static td_status exact_error(const td_tensor *x, double nx, td_tucker_result *res, double *err)
{
    double ng = td_norm(&res->core);
    if (nx == 0) { *err = 0; return TD_OK; }
    double est = sqrt(fmax(nx * nx - ng * ng, 0.0)) / nx;
    if (est > 1e-5) { *err = est; return TD_OK; }
    td_tensor full = {0};
    td_status st = td_tensor_alloc(&full, x->ndim, x->shape);
    if (st != TD_OK) return st;
    if ((st = td_tucker_full(res, &full)) == TD_OK) {
        for (size_t i = 0; i < full.size; i++) full.data[i] -= x->data[i];
        *err = td_norm(&full) / nx;
    }
    td_tensor_free(&full);
    return st;
}

/* Tucker-2 shortcut: when the only other decomposed mode b is interior with a short trailing
 * extent, x x_b U_b^T is a loop of thin GEMMs (measured 3x slower than one GEMM at T = 9). With x
 * copied once to xp (mode b moved last), it is one GEMM, and the Gram over mode a is the same
 * because it does not depend on the order of the other indices. */
#define PERMUTED_MAX_TRAILING 64

/* xp = x with mode b moved last: (L, I_b, T) -> (L, T, I_b). */
static td_status move_mode_last(const td_tensor *x, int b, td_tensor *xp)
{
    size_t shape[TD_MAX_MODES], k = 0, left = 1, right = 1;
    const size_t ib = x->shape[b];
    for (int d = 0; d < x->ndim; d++) {
        if (d != b) shape[k++] = x->shape[d];
        if (d < b) left *= x->shape[d];
        if (d > b) right *= x->shape[d];
    }
    shape[k] = ib;
    td_status st = td_tensor_alloc(xp, x->ndim, shape);
    if (st != TD_OK) return st;
    for (size_t l = 0; l < left; l++)
        for (size_t i = 0; i < ib; i++) {
            const double *src = x->data + (l * ib + i) * right;
            double *dst = xp->data + l * right * ib + i;
            for (size_t t = 0; t < right; t++) dst[t * ib] = src[t];
        }
    return TD_OK;
}

/* Gram of x x_b U_b^T over mode a from xp (move_mode_last(x, b)): one GEMM, then td_gram. */
static td_status permuted_gram(const td_tensor *xp, int a, int b, const td_tensor *ub, td_tensor *g)
{
    const size_t ib = ub->shape[0], rb = ub->shape[1], rows = xp->size / ib;
    if (!td__fits_blas(rows) || !td__fits_blas(ib) || !td__fits_blas(rb)) return TD_ERANGE;
    size_t shape[TD_MAX_MODES];
    memcpy(shape, xp->shape, (size_t)xp->ndim * sizeof(size_t));
    shape[xp->ndim - 1] = rb;
    td_tensor y = {0};
    td_status st = td_tensor_alloc(&y, xp->ndim, shape);
    if (st != TD_OK) return st;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)rb, (int)ib, 1.0, xp->data, (int)ib,
                ub->data, (int)rb, 0.0, y.data, (int)rb);
    st = td_gram(&y, a < b ? a : a - 1, g);
    td_tensor_free(&y);
    return st;
}

/* Whether the Tucker-2 shortcut applies to updating order[0] (the other mode is order[1]). */
static int use_permuted(const td_tensor *x, const int *order, int n)
{
    if (n != 2) return 0;
    const int b = order[1];
    if (b == 0 || b == x->ndim - 1) return 0;
    size_t right = 1;
    for (int d = b + 1; d < x->ndim; d++) right *= x->shape[d];
    return right < PERMUTED_MAX_TRAILING;
}

/* The new factor of one mode from its Gram g (in x in): warm from prev when asked and it applies,
 * else the r leading eigenvectors by the dense eigensolver. *captured = tr(U^T G U). */
static td_status new_factor(const td_tensor *g, const td_tensor *prev, int warm, size_t r, td_tensor *nu,
                            double *captured)
{
    const size_t in = g->shape[0];
    if (warm && prev->data && r < in) {
        td_status st = warm_factor(g, prev, nu, captured);
        if (st != TD_ERANGE) return st;
    }
    double *top = malloc(r * sizeof(double));
    td_status st = top ? td_matrix_alloc(nu, in, r) : TD_ENOMEM;
    if (st == TD_OK) st = td__sym_eig_top(g->data, in, r, nu->data, top);
    *captured = 0;
    for (size_t c = 0; st == TD_OK && c < r; c++) *captured += top[c];
    if (st != TD_OK) td_tensor_free(nu);
    free(top);
    return st;
}

/* Float32 warm sweeps of a Tucker-2 over modes {0, 1}: x seen as (I0, I1, S) is copied once as
 * float xp = (I0, S, I1) (mode 1 last). Then both projections are one SGEMM and their Grams one
 * SSYRK: Y0 = xp U1 is I0 x (S R1), G0 = Y0 Y0^T; Y1 = U0^T xp is (R0 S) x I1, G1 = Y1^T Y1 (a
 * Gram does not depend on the order of the other indices). Only while the error is large:
 * float rounding (~1e-6 of the Gram) must stay far below the energy the sweeps still move. */
#define HOOI_FLOAT_MIN_SIZE (1u << 20)
#define HOOI_FLOAT_MIN_ERROR 1e-2

typedef struct t2_float {
    float *xp, *u, *y, *g; /* the copy (of x 2^-e); a factor, a projection and a Gram in float */
    size_t i0, i1, s;
    int e;                 /* td__float_exponent of x: Grams are scaled back by 2^(2e) */
} t2_float;

static void t2_float_free(t2_float *f)
{
    free(f->xp);
    free(f->u);
    free(f->y);
    free(f->g);
    memset(f, 0, sizeof *f);
}

/* Whether float sweeps may run on this call (by options, shape and size). */
static int t2_float_applies(const td_tensor *x, const td_tucker_options *opt, const int *order, int n)
{
    if (opt->float_sweeps <= 0 || opt->hooi_exact || n != 2 || order[0] != 0 || order[1] != 1) return 0;
    if (opt->float_sweeps == 1 && x->size < HOOI_FLOAT_MIN_SIZE) return 0;
    const size_t i0 = x->shape[0], i1 = x->shape[1], s = x->size / (i0 * i1);
    return td__fits_blas(i0 * s) && td__fits_blas(i1 * s) && td__fits_blas(i0) && td__fits_blas(i1) && td__fits_blas(s);
}

static td_status t2_float_begin(const td_tensor *x, const size_t *rank_of, t2_float *f)
{
    f->i0 = x->shape[0];
    f->i1 = x->shape[1];
    f->s = x->size / (f->i0 * f->i1);
    const size_t r0 = rank_of[0], r1 = rank_of[1], in = f->i0 > f->i1 ? f->i0 : f->i1;
    const size_t yn = (f->i0 * r1 > r0 * f->i1 ? f->i0 * r1 : r0 * f->i1) * f->s;
    f->xp = malloc(x->size * sizeof(float));
    f->u = malloc(in * (r0 > r1 ? r0 : r1) * sizeof(float));
    f->y = malloc(yn * sizeof(float));
    f->g = malloc(in * in * sizeof(float));
    if (!f->xp || !f->u || !f->y || !f->g) { t2_float_free(f); return TD_ENOMEM; }
    const size_t i1 = f->i1, s = f->s;
    f->e = td__float_exponent(x->data, x->size);
    const double sc = ldexp(1.0, -f->e);
    for (size_t a = 0; a < f->i0; a++)
        for (size_t b = 0; b < i1; b++) {
            const double *src = x->data + (a * i1 + b) * s;
            float *dst = f->xp + a * s * i1 + b;
            for (size_t t = 0; t < s; t++) dst[t * i1] = (float)(sc * src[t]);
        }
    return TD_OK;
}

/* g (double, both triangles) = the float Gram over mode m of x projected on the other factor. */
static void t2_float_gram(t2_float *f, int m, const td_tensor *other, td_tensor *g)
{
    const size_t in = m == 0 ? f->i0 : f->i1, ro = other->shape[1], s = f->s;
    for (size_t i = 0; i < other->size; i++) f->u[i] = (float)other->data[i];
    const int I0 = (int)f->i0, I1 = (int)f->i1, R = (int)ro, S = (int)s;
    if (m == 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I0 * S, R, I1, 1.0f, f->xp, I1, f->u, R, 0.0f, f->y, R);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, I0, S * R, 1.0f, f->y, S * R, 0.0f, f->g, I0);
    } else {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, S * I1, I0, 1.0f, f->u, R, f->xp, S * I1, 0.0f, f->y, S * I1);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, I1, R * S, 1.0f, f->y, I1, 0.0f, f->g, I1);
    }
    for (size_t i = 0; i < in; i++)
        for (size_t j = i; j < in; j++) g->data[i * in + j] = g->data[j * in + i] = ldexp((double)f->g[i * in + j], 2 * f->e);
}

/* One HOOI sweep over the decomposed modes; warm: each factor by warm_factor from its previous
 * value instead of the dense eigensolver. *captured = ||x x_m U_m^T (all m)||^2, which is
 * tr(U^T G U) for the last mode's Gram G: the core is not formed per sweep. xp: NULL, or x with
 * order[1] moved last (use_permuted). fl: NULL, or the float copy (a warm float sweep). *last:
 * the last mode's projection x x_m U_m^T (m not that mode), from which the core is one product
 * (replaced each double sweep, freed by a float one). */
static td_status hooi_sweep(const td_tensor *x, const td_tensor *xp, t2_float *fl, const int *order, int n,
                            const size_t *rank_of, td_tensor *fac, int warm, double *captured,
                            td_tensor *last)
{
    const td_tensor *mats[TD_MAX_MODES] = {0};
    for (int i = 0; i < n; i++) mats[order[i]] = &fac[order[i]];
    td_tensor y = {0}, g = {0};
    td_status st = TD_OK;
    if (fl) td_tensor_free(last);
    for (int i = 0; i < n && st == TD_OK; i++) {
        const int m = order[i];
        if ((st = td_matrix_alloc(&g, x->shape[m], x->shape[m])) != TD_OK) break;
        if (fl) {
            t2_float_gram(fl, m, &fac[order[1 - i]], &g);
        } else if (xp && i == 0) {
            st = permuted_gram(xp, m, order[1], &fac[order[1]], &g);
        } else if ((st = project(x, mats, m, &y)) == TD_OK) {
            st = td_gram(&y, m, &g);
            if (i == n - 1) {
                td_tensor_free(last);
                *last = y;
                memset(&y, 0, sizeof y);
            }
            td_tensor_free(&y);
        }
        td_tensor nu = {0};
        if (st == TD_OK) st = new_factor(&g, &fac[m], warm, rank_of[m], &nu, captured);
        td_tensor_free(&g);
        if (st == TD_OK) {
            td_tensor_free(&fac[m]);
            fac[m] = nu;
        }
    }
    return st;
}

/* HOOI sweeps after the HOSVD initialisation. Sweeps after the first are warm (unless
 * opt->hooi_exact); the stopping rule is TensorLy's, but a warm sweep whose change falls below
 * tol only triggers a dense sweep, and the run stops when that dense sweep's change is below tol
 * too: inexact steps cannot stop the run early. A warm sweep that raised the error is followed
 * by a dense one as well. Warm sweeps run in float32 while t2_float allows (dense ones never). */
static td_status hooi_sweeps(const td_tensor *x, double nx, const td_tucker_options *opt, const int *order,
                             int n, const size_t *rank_of, td_tensor *fac, td_tucker_result *res)
{
    res->history = malloc((size_t)opt->max_iter * sizeof(double));
    if (!res->history) return TD_ENOMEM;
    res->converged = 0;
    td_tensor xp = {0}, last = {0};
    t2_float fl = {0};
    const int perm = use_permuted(x, order, n);
    int single = t2_float_applies(x, opt, order, n);
    td_status st = perm ? move_mode_last(x, order[1], &xp) : TD_OK;
    double prev = 0;
    int dense_next = 1;
    for (int it = 0; it < opt->max_iter && st == TD_OK; it++) {
        const int warm = !dense_next && !opt->hooi_exact;
        if (single && warm && prev < HOOI_FLOAT_MIN_ERROR) {
            single = 0; /* from here on double: rounding would blur what the sweeps still move */
            t2_float_free(&fl);
        }
        const int use_float = single && warm;
        if (use_float && !fl.xp && (st = t2_float_begin(x, rank_of, &fl)) != TD_OK) break;
        double ng2 = 0;
        st = hooi_sweep(x, perm ? &xp : NULL, use_float ? &fl : NULL, order, n, rank_of, fac, warm, &ng2, &last);
        if (st != TD_OK) break;
        res->float_sweeps += use_float;
        double e = sqrt(fmax(nx * nx - ng2, 0.0)) / nx;
        res->history[it] = e;
        res->iterations = it + 1;
        if (opt->progress && opt->progress(opt->progress_ctx, it + 1, e)) { st = TD_ECANCELED; break; }
        const int small = it > 0 && fabs(prev - e) < opt->tol;
        if (small && !warm) { res->converged = 1; break; }
        dense_next = warm && (small || e > prev);
        prev = e;
    }
    td_tensor_free(&xp);
    t2_float_free(&fl);
    const td_tensor *mats[TD_MAX_MODES] = {0};
    if (st == TD_OK && !last.data) { /* the last sweep was float: the core from x itself, in double */
        for (int i = 0; i < n; i++) mats[order[i]] = &fac[order[i]];
        st = project(x, mats, -1, &res->core);
    } else if (st == TD_OK) {
        mats[order[n - 1]] = &fac[order[n - 1]]; /* last = x projected on every other final factor */
        st = project(&last, mats, -1, &res->core);
    }
    td_tensor_free(&last);
    return st;
}

/* What td_tucker validated and the methods share: the decomposed modes in increasing order,
 * the requested ranks by mode, the factors and ranks as decided. */
typedef struct tucker_run {
    const td_tensor *x;
    const td_tucker_options *opt;
    double nx;
    int n, order[TD_MAX_MODES];
    size_t req[TD_MAX_MODES], rank_of[TD_MAX_MODES];
    int clamped_of[TD_MAX_MODES];
    td_tensor fac[TD_MAX_MODES];
} tucker_run;

/* ST-HOSVD: modes in the cheapest order, each factor from the tensor truncated so far. */
static td_status sthosvd(tucker_run *t, td_tucker_result *res)
{
    const td_tensor *x = t->x;
    for (int m = 0; m < x->ndim; m++) t->rank_of[m] = t->req[m] && t->req[m] <= x->shape[m] ? t->req[m] : x->shape[m];
    int ord[TD_MAX_MODES];
    memcpy(ord, t->order, sizeof ord);
    best_order(x, ord, t->n, t->rank_of);
    for (int i = 0; i < t->n; i++) res->order[i] = ord[i];
    td_tensor y = {0}, next = {0};
    const td_tensor *cur = x;
    td_status st = TD_OK;
    for (int i = 0; i < t->n && st == TD_OK; i++) {
        const int m = ord[i];
        const td_tensor *one[TD_MAX_MODES] = {0};
        one[m] = &t->fac[m];
        st = mode_factor(t->opt, cur, m, t->req[m], &t->rank_of[m], &t->clamped_of[m], &t->fac[m]);
        if (st == TD_OK && (st = project(cur, one, -1, &next)) == TD_OK) {
            td_tensor_free(&y);
            y = next;
            memset(&next, 0, sizeof next);
            cur = &y;
        }
    }
    if (st == TD_OK) res->core = y;
    else td_tensor_free(&y);
    res->converged = 1;
    return st;
}

/* HOSVD, also HOOI's initialisation: every factor from the original x. HOOI's first sweep
 * recomputes the first mode's factor before reading it: only its rank is decided then (unless a
 * truncation rule needs its spectrum). */
static td_status hosvd(tucker_run *t, int sweeps_follow, td_tucker_result *res)
{
    const td_tensor *x = t->x;
    td_status st = TD_OK;
    for (int i = 0; i < t->n && st == TD_OK; i++) {
        const int m = t->order[i];
        if (i == 0 && sweeps_follow && !t->opt->truncate)
            st = decide_rank(t->opt, m, NULL, x->shape[m], t->req[m], &t->rank_of[m], &t->clamped_of[m]);
        else
            st = mode_factor(t->opt, x, m, t->req[m], &t->rank_of[m], &t->clamped_of[m], &t->fac[m]);
    }
    const td_tensor *mats[TD_MAX_MODES] = {0};
    for (int i = 0; i < t->n; i++) mats[t->order[i]] = &t->fac[t->order[i]];
    /* HOOI's sweeps rebuild the core: the initial one is only needed without sweeps */
    if (st == TD_OK && !sweeps_follow) st = project(x, mats, -1, &res->core);
    res->converged = 1;
    return st;
}

/* HOOI: the HOSVD initialisation, then the sweeps. */
static td_status hooi(tucker_run *t, td_tucker_result *res)
{
    const int sweeps = t->opt->max_iter > 0 && t->nx > 0;
    td_status st = hosvd(t, sweeps, res);
    if (st == TD_OK && sweeps) st = hooi_sweeps(t->x, t->nx, t->opt, t->order, t->n, t->rank_of, t->fac, res);
    return st;
}

/* Validates the call and fills t (the modes in increasing order, the requested ranks). */
static td_status tucker_begin(const td_tensor *x, int nmodes, const int *modes, const size_t *ranks,
                              const td_tucker_options *opt, tucker_run *t)
{
    memset(t, 0, sizeof *t);
    if (!x || !modes || nmodes < 1 || nmodes > x->ndim || (!ranks && !opt->truncate)) return TD_EINVAL;
    if (opt->method < TD_TUCKER_HOSVD || opt->method > TD_TUCKER_HOOI) return TD_EINVAL;
    if (opt->method == TD_TUCKER_HOOI && (opt->max_iter < 0 || !(opt->tol >= 0))) return TD_EINVAL;
    int used[TD_MAX_MODES] = {0};
    for (int i = 0; i < nmodes; i++) {
        const int m = modes[i];
        if (m < 0 || m >= x->ndim || used[m]) return TD_EINVAL;
        used[m] = 1;
        t->req[m] = ranks ? ranks[i] : 0;
        if (ranks && ranks[i] == 0 && !opt->truncate) return TD_EINVAL;
        if (ranks && !opt->truncate && ranks[i] > x->shape[m] && !opt->clamp) return TD_EINVAL;
    }
    if (x->size == 0) return TD_EINVAL;
    for (int m = 0; m < x->ndim; m++)
        if (used[m]) t->order[t->n++] = m;
    t->x = x;
    t->opt = opt;
    return td_tensor_check_finite(x);
}

td_status td_tucker(const td_tensor *x, int nmodes, const int *modes, const size_t *ranks,
                    const td_tucker_options *opt, td_tucker_result *res)
{
    if (!res) return TD_EINVAL;
    memset(res, 0, sizeof *res);
    td_tucker_options def;
    if (!opt) { td_tucker_options_init(&def); opt = &def; }
    tucker_run t;
    td_status st = tucker_begin(x, nmodes, modes, ranks, opt, &t);
    if (st != TD_OK) return st;
    const double t0 = td__now();
    t.nx = td_norm(x);
    res->nmodes = t.n;
    for (int i = 0; i < t.n; i++) res->modes[i] = res->order[i] = t.order[i];
    st = opt->method == TD_TUCKER_STHOSVD ? sthosvd(&t, res) : opt->method == TD_TUCKER_HOOI ? hooi(&t, res) : hosvd(&t, 0, res);
    for (int i = 0; st == TD_OK && i < t.n; i++) {
        const int m = t.order[i];
        res->factors[i] = t.fac[m];
        memset(&t.fac[m], 0, sizeof t.fac[m]);
        res->ranks[i] = t.rank_of[m];
        res->clamped[i] = t.clamped_of[m];
    }
    if (st == TD_OK) st = exact_error(x, t.nx, res, &res->rel_error);
    res->seconds = td__now() - t0;
    for (int m = 0; m < TD_MAX_MODES; m++) td_tensor_free(&t.fac[m]);
    if (st != TD_OK) td_tucker_free(res);
    return st;
}

td_status td_tucker_workspace(int ndim, const size_t *shape, int nmodes, const int *modes, const size_t *ranks,
                              const td_tucker_options *opt, uint64_t *bytes)
{
    td_tucker_options def;
    if (!opt) { td_tucker_options_init(&def); opt = &def; }
    if (!shape || !modes || !bytes || ndim < 1 || ndim > TD_MAX_MODES || nmodes < 1 || nmodes > ndim) return TD_EINVAL;
    size_t size;
    td_status st = td_size_product(ndim, shape, &size);
    if (st != TD_OK) return st;
    const double S = (double)size;
    double core = S, result = opt->method == TD_TUCKER_HOOI && opt->max_iter > 0 ? (double)opt->max_iter : 0, mode = 0;
    for (int i = 0; i < nmodes; i++) {
        if (modes[i] < 0 || modes[i] >= ndim) return TD_EINVAL;
        const double n = (double)shape[modes[i]], r = ranks && ranks[i] && ranks[i] < shape[modes[i]] ? (double)ranks[i] : n;
        core = core / n * r;
        result += n * r;
        /* the Gram, one eigen-decomposition (copy, LAPACK work, all vectors for a truncation rule),
         * the new factor, the warm step's two n x r blocks and r x r matrices, td_gram's chunk */
        mode = fmax(mode, 6.0 * n * n + 5.0 * n * r + 2.0 * r * r + 16.0 * n + fmin(S, (double)(4u << 20) / 8.0));
    }
    /* besides: the permuted copy of x (Tucker-2 sweeps), a projection and td_ttm_multi's two
     * intermediates, the last projection kept for the core, and the reconstruction of the exact
     * error; each at most the size of x; float32 sweeps: x and a projection in float, and a
     * float Gram (counted as one more x and a Gram in double) */
    const double n0 = (double)shape[0], n1 = ndim > 1 ? (double)shape[1] : 0, gn = fmax(n0, n1);
    const int fl = nmodes == 2 && ndim >= 2 && opt->method == TD_TUCKER_HOOI && opt->max_iter > 0 && !opt->hooi_exact &&
                   (opt->float_sweeps >= 2 || (opt->float_sweeps == 1 && size >= HOOI_FLOAT_MIN_SIZE)) &&
                   ((modes[0] == 0 && modes[1] == 1) || (modes[0] == 1 && modes[1] == 0));
    const double b = 8.0 * (result + core + mode + 5.0 * S + (fl ? S + gn * gn : 0.0));
    if (!(b < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)b;
    return TD_OK;
}
