/* CP-ALS: normal equations from the Hadamard product of Grams, MTTKRP without the full
 * Khatri-Rao product, error from Grams and the last MTTKRP, exact final error. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "decomp/decomp_internal.h"

/* n*n of an R x R system must fit LAPACK's 32-bit int: R <= floor(sqrt(INT_MAX)). */
#define CP_RANK_MAX 46340
/* Below this relative error the Gram form of the fit cancels (~1e-8 floor): use the exact residual. */
#define CP_EXACT_FIT_BELOW 1e-6
/* Rows of mode 0 per GEMM block of exact_residual. */
#define CP_RESIDUAL_BLOCK 32

void td_cp_options_init(td_cp_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->init = TD_CP_INIT_SVD;
    opt->tol = 1e-8;
    opt->max_iter = 100;
    opt->normalize = 1;
}

void td_cp_free(td_cp_result *res)
{
    if (!res) return;
    for (int i = 0; i < TD_MAX_MODES; i++) td_tensor_free(&res->factors[i]);
    free(res->weights);
    free(res->history);
    memset(res, 0, sizeof *res);
}

/* g = A^T A (R x R, both triangles). */
static void gram_of(const td_tensor *a, double *g)
{
    const int r = (int)a->shape[1];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, r, (int)a->shape[0], 1.0, a->data, r, 0.0, g, r);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < i; j++) g[i * r + j] = g[j * r + i];
}

/* Solves A V = M for A (I x R, row-major) with V symmetric positive semi-definite (R x R).
 * Row-major A is column-major A^T, so V A^T = M^T is solved with nrhs = I and no transposes.
 * Falls back to the pseudo-inverse (eigen-decomposition, rcond R*eps) when V is singular. */
static td_status solve_normal(const double *v, size_t r, const double *m, size_t rows, double *a,
                              double *work /* >= 2 r*r + r */)
{
    double *c = work;
    memcpy(c, v, r * r * sizeof(double));
    memcpy(a, m, rows * r * sizeof(double));
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)r, c, (lapack_int)r);
    if (info == 0) {
        info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', (lapack_int)r, (lapack_int)rows, c,
                              (lapack_int)r, a, (lapack_int)r);
        return info == 0 ? TD_OK : TD_ELAPACK;
    }
    if (info < 0) return TD_EINTERNAL;
    /* V = Q diag(w) Q^T, V^+ = Q diag(1/w, w > tol) Q^T */
    double *w = work + r * r, *p = work + r * r + r;
    memcpy(c, v, r * r * sizeof(double));
    info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)r, c, (lapack_int)r, w);
    if (info != 0) return info < 0 ? TD_EINTERNAL : TD_ELAPACK;
    double wmax = 0;
    for (size_t i = 0; i < r; i++) wmax = fmax(wmax, fabs(w[i]));
    const double cut = (double)r * 2.220446049250313e-16 * wmax;
    /* p = Q diag(1/w) Q^T; column-major c: vector j at c + j*r */
    memset(p, 0, r * r * sizeof(double));
    for (size_t j = 0; j < r; j++) {
        if (w[j] <= cut) continue;
        const double inv = 1.0 / w[j], *q = c + j * r;
        for (size_t i = 0; i < r; i++)
            for (size_t k = 0; k < r; k++) p[i * r + k] += q[i] * q[k] * inv;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)r, (int)r, 1.0, m,
                (int)r, p, (int)r, 0.0, a, (int)r);
    return TD_OK;
}

/* Residual ||x - model|| computed exactly, in blocks of rows along mode 0: each block of the
 * model is one GEMM (A_0 diag(w))[rows] KR^T with KR the Khatri-Rao product of modes 1..N-1
 * (T x R). Memory T*R + 32*T doubles. */
static td_status exact_residual(const td_tensor *x, const td_tensor *f, const double *w, size_t r,
                                double *out)
{
    const int nd = x->ndim;
    const size_t i0 = x->shape[0], t = x->size / (i0 ? i0 : 1), blk = CP_RESIDUAL_BLOCK;
    td_tensor kr = {0};
    double *coef = malloc(blk * r * sizeof(double)), *slab = malloc(blk * (t ? t : 1) * sizeof(double));
    td_status st = TD_OK;
    if (!coef || !slab) { st = TD_ENOMEM; goto done; }
    if ((st = td_matrix_alloc(&kr, t, r)) != TD_OK) goto done;
    if (nd > 1) {
        const td_tensor *mats[TD_MAX_MODES];
        for (int k = 1; k < nd; k++) mats[k - 1] = &f[k];
        if ((st = td_khatri_rao(mats, nd - 1, -1, &kr)) != TD_OK) goto done;
    } else {
        for (size_t c = 0; c < r; c++) kr.data[c] = 1.0;
    }
    double scale = 0, plain = 0;
    for (size_t i = 0; i < i0; i += blk) {
        const size_t nb = i0 - i < blk ? i0 - i : blk;
        for (size_t b = 0; b < nb; b++)
            for (size_t c = 0; c < r; c++) coef[b * r + c] = w[c] * f[0].data[(i + b) * r + c];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)t, (int)r, 1.0, coef, (int)r, kr.data,
                    (int)r, 0.0, slab, (int)t);
        const double *xs = x->data + i * t;
        for (size_t j = 0; j < nb * t; j++) {
            double d = xs[j] - slab[j];
            plain += d * d;
            d = fabs(d);
            if (d > scale) scale = d;
        }
    }
    if (isfinite(plain) && (scale == 0 || scale > 1e-140)) {
        *out = sqrt(plain);
    } else {
        /* extreme magnitudes: a second, scaled pass (inputs are finite, so scale is) */
        double s2 = 0;
        for (size_t i = 0; i < i0; i += blk) {
            const size_t nb = i0 - i < blk ? i0 - i : blk;
            for (size_t b = 0; b < nb; b++)
                for (size_t c = 0; c < r; c++) coef[b * r + c] = w[c] * f[0].data[(i + b) * r + c];
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)t, (int)r, 1.0, coef, (int)r,
                        kr.data, (int)r, 0.0, slab, (int)t);
            for (size_t j = 0; j < nb * t; j++) {
                double d = (x->data[i * t + j] - slab[j]) / scale;
                s2 += d * d;
            }
        }
        *out = scale * sqrt(s2);
    }
done:
    td_tensor_free(&kr);
    free(coef);
    free(slab);
    return st;
}

td_status td_cp_full(const td_cp_result *res, td_tensor *out)
{
    if (!res || !out || out->ndim != res->ndim || res->rank == 0) return TD_EINVAL;
    const int nd = res->ndim;
    const size_t r = res->rank;
    for (int k = 0; k < nd; k++)
        if (res->factors[k].shape[0] != out->shape[k] || res->factors[k].shape[1] != r) return TD_ESHAPE;
    if (out->size == 0) return TD_OK;
    const size_t i0 = out->shape[0], t = out->size / i0;
    if (!td__fits_blas(t) || !td__fits_blas(i0) || !td__fits_blas(r)) return TD_ERANGE;
    td_tensor kr = {0}, aw = {0};
    td_status st = td_matrix_alloc(&kr, t, r);
    if (st != TD_OK) return st;
    if ((st = td_matrix_alloc(&aw, i0, r)) != TD_OK) goto done;
    if (nd > 1) {
        const td_tensor *mats[TD_MAX_MODES];
        for (int k = 1; k < nd; k++) mats[k - 1] = &res->factors[k];
        if ((st = td_khatri_rao(mats, nd - 1, -1, &kr)) != TD_OK) goto done;
    } else {
        for (size_t c = 0; c < r; c++) kr.data[c] = 1.0;
    }
    for (size_t i = 0; i < i0; i++)
        for (size_t c = 0; c < r; c++)
            aw.data[i * r + c] = res->factors[0].data[i * r + c] * (res->weights ? res->weights[c] : 1.0);
    /* X_(0) = (A_0 diag(w)) KR^T, and X_(0) is x itself in C order. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)i0, (int)t, (int)r, 1.0, aw.data,
                (int)r, kr.data, (int)r, 0.0, out->data, (int)t);
done:
    td_tensor_free(&kr);
    td_tensor_free(&aw);
    return st;
}

/* M_n (I_n x R) for n >= 1 from P = A_0^T X_(0): column r of M_n is the mode-(n-1) MTTKRP of
 * the (N-1)-way tensor P[r, :] with the r-th columns of the other factors. Cost ~2 T R per mode
 * (T = size / I_0), no pass over x. buf holds T + N*Imax + Imax doubles. */
static td_status mttkrp_from_partial(const td_tensor *x, const double *p, const td_tensor *f, int n, size_t r,
                                     double *buf, double *out)
{
    const int nd = x->ndim;
    const size_t tail = x->size / x->shape[0];
    size_t imax = 0;
    for (int k = 0; k < nd; k++) imax = x->shape[k] > imax ? x->shape[k] : imax;
    double *cols = buf + tail, *res = cols + (size_t)nd * imax;
    td_tensor pr, fk[TD_MAX_MODES], o;
    const td_tensor *fp[TD_MAX_MODES] = {0};
    td_status st;
    for (size_t c = 0; c < r; c++) {
        memcpy(buf, p + c * tail, tail * sizeof(double));
        if ((st = td_tensor_view(&pr, nd - 1, x->shape + 1, buf)) != TD_OK) return st;
        for (int k = 1; k < nd; k++) {
            double *col = cols + (size_t)k * imax;
            for (size_t i = 0; i < x->shape[k]; i++) col[i] = f[k].data[i * r + c];
            size_t sh[2] = {x->shape[k], 1};
            if ((st = td_tensor_view(&fk[k - 1], 2, sh, col)) != TD_OK) return st;
            fp[k - 1] = &fk[k - 1];
        }
        size_t os[2] = {x->shape[n], 1};
        if ((st = td_tensor_view(&o, 2, os, res)) != TD_OK) return st;
        if ((st = td_mttkrp(&pr, fp, n - 1, &o)) != TD_OK) return st;
        for (size_t i = 0; i < x->shape[n]; i++) out[i * r + c] = res[i];
    }
    return TD_OK;
}

static td_status init_factors(const td_tensor *x, size_t r, const td_cp_options *o, td_tensor *f)
{
    const int nd = x->ndim;
    td_status st = TD_OK;
    td_rng rng;
    td_rng_seed(&rng, o->seed);
    for (int k = 0; k < nd; k++)
        if ((st = td_matrix_alloc(&f[k], x->shape[k], r)) != TD_OK) return st;
    if (o->init == TD_CP_INIT_GIVEN) {
        if (!o->init_factors) return TD_EINVAL;
        for (int k = 0; k < nd; k++) {
            const td_tensor *g = &o->init_factors[k];
            if (g->ndim != 2 || g->shape[0] != x->shape[k] || g->shape[1] != r) return TD_ESHAPE;
            if ((st = td_tensor_check_finite(g)) != TD_OK) return st;
            memcpy(f[k].data, g->data, f[k].size * sizeof(double));
        }
        return TD_OK;
    }
    if (o->init == TD_CP_INIT_RANDOM) {
        for (int k = 0; k < nd; k++)
            for (size_t i = 0; i < f[k].size; i++) f[k].data[i] = td_rng_uniform(&rng);
        return TD_OK;
    }
    if (o->init != TD_CP_INIT_SVD) return TD_EINVAL;
    for (int k = 0; k < nd; k++) {
        const size_t n = x->shape[k], kk = r < n ? r : n;
        td_tensor u = {0};
        double *s2 = malloc(n * sizeof(double));
        if (!s2) return TD_ENOMEM;
        if ((st = td_matrix_alloc(&u, n, kk)) != TD_OK) { free(s2); return st; }
        st = td_mode_spectrum(x, k, kk, &u, s2);
        if (st == TD_OK) {
            for (size_t i = 0; i < n; i++) {
                for (size_t c = 0; c < kk; c++)
                    f[k].data[i * r + c] = u.data[i * kk + c] * (k == 0 ? sqrt(s2[c]) : 1.0);
            }
            /* columns past a short mode: seeded uniform [0,1), as TensorLy */
            for (size_t i = 0; i < n; i++)
                for (size_t c = kk; c < r; c++) f[k].data[i * r + c] = td_rng_uniform(&rng);
        }
        td_tensor_free(&u);
        free(s2);
        if (st != TD_OK) return st;
    }
    return TD_OK;
}

/* What one CP-ALS run keeps between sweeps; sizes from cp_layout, shared with the workspace query. */
typedef struct cp_ws {
    size_t r, imax, tail;
    int dtree;                 /* dimension tree: P = A_0^T X_(0) serves modes >= 1 */
    double *grams, *v, *m, *work, *pdata, *colbuf;
} cp_ws;

/* Sizes (in doubles) of the persistent buffers of cp_ws for x at rank r. */
static void cp_layout(int nd, const size_t *shape, size_t size, size_t r, cp_ws *w, size_t n[6])
{
    w->r = r;
    w->imax = 0;
    for (int k = 0; k < nd; k++) w->imax = shape[k] > w->imax ? shape[k] : w->imax;
    w->tail = size / shape[0];
    /* two passes over x per sweep instead of N, when P is not much larger than x */
    w->dtree = nd >= 3 && td__fits_blas(w->tail) && r * w->tail <= size * 2;
    n[0] = (size_t)nd * r * r;
    n[1] = r * r;
    n[2] = w->imax * r;
    n[3] = 2 * r * r + r;
    n[4] = w->dtree ? r * w->tail : 0;
    n[5] = w->dtree ? w->tail + (size_t)nd * w->imax + w->imax : 0;
}

static void cp_ws_free(cp_ws *w)
{
    free(w->grams); free(w->v); free(w->m); free(w->work); free(w->pdata); free(w->colbuf);
    memset(w, 0, sizeof *w);
}

static td_status cp_ws_alloc(const td_tensor *x, size_t r, cp_ws *w)
{
    size_t n[6];
    memset(w, 0, sizeof *w);
    cp_layout(x->ndim, x->shape, x->size, r, w, n);
    double **bufs[6] = {&w->grams, &w->v, &w->m, &w->work, &w->pdata, &w->colbuf};
    for (int i = 0; i < 6; i++)
        if (n[i] && !(*bufs[i] = malloc(n[i] * sizeof(double)))) { cp_ws_free(w); return TD_ENOMEM; }
    return TD_OK;
}

/* One ALS sweep over every mode; leaves mode N-1's MTTKRP in w->m. */
static td_status cp_sweep(const td_tensor *x, td_tensor *f, cp_ws *w)
{
    const int nd = x->ndim;
    const size_t r = w->r, rr = r * r;
    const td_tensor *fp[TD_MAX_MODES];
    for (int k = 0; k < nd; k++) fp[k] = &f[k];
    td_status st = TD_OK;
    for (int n = 0; n < nd && st == TD_OK; n++) {
        for (size_t i = 0; i < rr; i++) w->v[i] = 1.0;
        for (int k = 0; k < nd; k++)
            if (k != n)
                for (size_t i = 0; i < rr; i++) w->v[i] *= w->grams[(size_t)k * rr + i];
        td_tensor mt;
        size_t ms[2] = {x->shape[n], r};
        st = td_tensor_view(&mt, 2, ms, w->m);
        if (st == TD_OK)
            st = (n == 0 || !w->dtree) ? td_mttkrp(x, fp, n, &mt) : mttkrp_from_partial(x, w->pdata, f, n, r, w->colbuf, w->m);
        if (st == TD_OK) st = solve_normal(w->v, r, w->m, x->shape[n], f[n].data, w->work);
        if (st != TD_OK) break;
        gram_of(&f[n], w->grams + (size_t)n * rr);
        if (n == 0 && w->dtree)
            /* P = A_0^T X_(0) (R x T): every later MTTKRP of this sweep is a cheap contraction of
             * P, since P depends on A_0 only */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)w->tail, (int)x->shape[0], 1.0,
                        f[0].data, (int)r, x->data, (int)w->tail, 0.0, w->pdata, (int)w->tail);
    }
    return st;
}

/* Relative error after a sweep: ||model||^2 = sum(hadamard of all Grams), <x, model> =
 * sum(M_last .* A_last); the exact residual near an exact fit, where that form cancels. */
static td_status cp_fit(const td_tensor *x, const td_tensor *f, const double *weights, const cp_ws *w, double nx,
                        double *e)
{
    const int nd = x->ndim;
    const size_t rr = w->r * w->r;
    double nm2 = 0, ip = 0;
    for (size_t i = 0; i < rr; i++) {
        double p = 1;
        for (int k = 0; k < nd; k++) p *= w->grams[(size_t)k * rr + i];
        nm2 += p;
    }
    const td_tensor *al = &f[nd - 1];
    for (size_t i = 0; i < al->size; i++) ip += w->m[i] * al->data[i];
    *e = nx > 0 ? sqrt(fmax(nx * nx + nm2 - 2 * ip, 0.0)) / nx : 0.0;
    if (!(*e < CP_EXACT_FIT_BELOW && nx > 0)) return TD_OK;
    double resid;
    td_status st = exact_residual(x, f, weights, w->r, &resid);
    if (st == TD_OK) *e = resid / nx;
    return st;
}

/* Moves each column's norms into the weights (factor columns of unit norm). */
static void normalize_columns(td_tensor *f, int nd, size_t r, double *weights)
{
    for (size_t c = 0; c < r; c++) {
        double w = 1;
        for (int k = 0; k < nd; k++) {
            double s = 0;
            for (size_t i = 0; i < f[k].shape[0]; i++) s += f[k].data[i * r + c] * f[k].data[i * r + c];
            s = sqrt(s);
            if (s > 0)
                for (size_t i = 0; i < f[k].shape[0]; i++) f[k].data[i * r + c] /= s;
            w *= s;
        }
        weights[c] = w;
    }
}

static td_status cp_check(const td_tensor *x, size_t rank, const td_cp_options *opt)
{
    if (!x || x->ndim < 1 || rank < 1 || opt->max_iter < 0 || !(opt->tol >= 0) || x->size == 0) return TD_EINVAL;
    size_t imax = 0;
    for (int k = 0; k < x->ndim; k++) imax = x->shape[k] > imax ? x->shape[k] : imax;
    if (!td__fits_blas(rank) || !td__fits_blas(imax) || rank > CP_RANK_MAX) return TD_ERANGE;
    return td_tensor_check_finite(x);
}

td_status td_cp_als(const td_tensor *x, size_t rank, const td_cp_options *opt, td_cp_result *res)
{
    if (!res) return TD_EINVAL;
    memset(res, 0, sizeof *res);
    td_cp_options def;
    if (!opt) { td_cp_options_init(&def); opt = &def; }
    td_status st = cp_check(x, rank, opt);
    if (st != TD_OK) return st;
    const double t0 = td__now(), nx = td_norm(x);
    const size_t r = rank;
    td_tensor *f = res->factors;
    cp_ws w;
    res->ndim = x->ndim;
    res->rank = r;
    res->weights = malloc(r * sizeof(double));
    res->history = malloc(((size_t)opt->max_iter + 1) * sizeof(double));
    st = res->weights && res->history ? cp_ws_alloc(x, r, &w) : TD_ENOMEM;
    if (st != TD_OK) { td_cp_free(res); return st; }
    for (size_t c = 0; c < r; c++) res->weights[c] = 1.0;
    st = init_factors(x, r, opt, f);
    for (int k = 0; k < x->ndim && st == TD_OK; k++) gram_of(&f[k], w.grams + (size_t)k * r * r);
    double prev = 0;
    for (int it = 0; it < opt->max_iter && st == TD_OK; it++) {
        double e = 0;
        if ((st = cp_sweep(x, f, &w)) != TD_OK || (st = cp_fit(x, f, res->weights, &w, nx, &e)) != TD_OK) break;
        res->history[it] = e;
        res->iterations = it + 1;
        if (opt->progress && opt->progress(opt->progress_ctx, it + 1, e)) st = TD_ECANCELED;
        else if (it > 0 && fabs(prev - e) < opt->tol) { res->converged = 1; break; }
        prev = e;
    }
    if (st == TD_OK && opt->normalize) normalize_columns(f, x->ndim, r, res->weights);
    double resid = 0;
    if (st == TD_OK) st = exact_residual(x, f, res->weights, r, &resid);
    res->rel_error = nx > 0 ? resid / nx : 0.0;
    res->seconds = td__now() - t0;
    cp_ws_free(&w);
    if (st != TD_OK) td_cp_free(res);
    return st;
}

td_status td_cp_als_workspace(int ndim, const size_t *shape, size_t rank, const td_cp_options *opt, uint64_t *bytes)
{
    td_cp_options def;
    if (!opt) { td_cp_options_init(&def); opt = &def; }
    if (!shape || !bytes || ndim < 1 || ndim > TD_MAX_MODES || rank < 1 || opt->max_iter < 0) return TD_EINVAL;
    size_t size;
    td_status st = td_size_product(ndim, shape, &size);
    if (st != TD_OK) return st;
    if (size == 0) return TD_EINVAL;
    cp_ws w;
    size_t n[6];
    cp_layout(ndim, shape, size, rank, &w, n);
    const double R = (double)rank, S = (double)size, T = (double)w.tail;
    /* the result (factors, weights, history) and what the sweeps keep */
    double d = R + (double)opt->max_iter + 1;
    for (int k = 0; k < ndim; k++) d += (double)shape[k] * R;
    for (int i = 0; i < 6; i++) d += (double)n[i];
    /* plus the largest transient: one mode's SVD initialisation (Gram, eigenvectors, LAPACK
     * work, a chunked copy for thin blocks), one MTTKRP's partial Khatri-Rao products and
     * intermediate, or the exact residual's Khatri-Rao product and row block */
    double transient = T * R + CP_RESIDUAL_BLOCK * (T + R);
    size_t left = 1;
    for (int k = 0; k < ndim; k++) {
        const double ik = (double)shape[k], right = S / (double)left / ik;
        uint64_t spec = 0;
        const size_t kk = rank < shape[k] ? rank : shape[k];
        if (opt->init == TD_CP_INIT_SVD && (st = td_mode_spectrum_workspace(ndim, shape, k, kk, &spec)) != TD_OK) return st;
        const double init = opt->init == TD_CP_INIT_SVD ? (double)spec / 8.0 + ik * R + ik : 0;
        const double mttkrp = ((double)left + right + ik * right + ik) * R;
        transient = fmax(transient, fmax(init, mttkrp));
        left *= shape[k];
    }
    const double b = 8.0 * (d + transient);
    if (!(b < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)b;
    return TD_OK;
}
