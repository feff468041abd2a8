/* CP-ALS: normal equations from the Hadamard product of Grams, MTTKRP without the full
 * Khatri-Rao product, error from Grams and the last MTTKRP, exact final error. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "decomp/decomp_internal.h"

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
    const size_t i0 = x->shape[0], t = x->size / (i0 ? i0 : 1), blk = 32;
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

td_status td_cp_als(const td_tensor *x, size_t rank, const td_cp_options *opt, td_cp_result *res)
{
    if (!res) return TD_EINVAL;
    memset(res, 0, sizeof *res);
    td_cp_options def;
    if (!opt) { td_cp_options_init(&def); opt = &def; }
    if (!x || x->ndim < 1 || rank < 1 || opt->max_iter < 0 || !(opt->tol >= 0)) return TD_EINVAL;
    if (x->size == 0) return TD_EINVAL;
    const int nd = x->ndim;
    const size_t r = rank;
    size_t imax = 0;
    for (int k = 0; k < nd; k++) imax = x->shape[k] > imax ? x->shape[k] : imax;
    if (!td__fits_blas(r) || !td__fits_blas(imax) || r > 46000) return TD_ERANGE;
    td_status st = td_tensor_check_finite(x);
    if (st != TD_OK) return st;
    const double t0 = td__now();

    td_tensor *f = res->factors;
    double *grams = NULL, *v = NULL, *m = NULL, *work = NULL, *pdata = NULL, *colbuf = NULL;
    res->ndim = nd;
    res->rank = r;
    res->weights = malloc(r * sizeof(double));
    res->history = malloc(((size_t)opt->max_iter + 1) * sizeof(double));
    grams = malloc((size_t)nd * r * r * sizeof(double));
    v = malloc(r * r * sizeof(double));
    m = malloc(imax * r * sizeof(double));
    work = malloc((2 * r * r + r) * sizeof(double));
    if (!res->weights || !res->history || !grams || !v || !m || !work) { st = TD_ENOMEM; goto fail; }
    for (size_t c = 0; c < r; c++) res->weights[c] = 1.0;
    if ((st = init_factors(x, r, opt, f)) != TD_OK) goto fail;
    for (int k = 0; k < nd; k++) gram_of(&f[k], grams + (size_t)k * r * r);

    /* Dimension tree (perf_anchors.md 3.2): two passes over x per sweep instead of N. */
    const size_t tail = x->size / x->shape[0];
    const int dtree = nd >= 3 && td__fits_blas(tail) && r * tail <= x->size * 2;
    if (dtree) {
        pdata = malloc(r * tail * sizeof(double));
        colbuf = malloc((tail + (size_t)nd * imax + imax) * sizeof(double));
        if (!pdata || !colbuf) { st = TD_ENOMEM; goto fail; }
    }
    const double nx = td_norm(x), nx2 = nx * nx;
    const td_tensor *fp[TD_MAX_MODES];
    for (int k = 0; k < nd; k++) fp[k] = &f[k];
    double prev = 0;
    for (int it = 0; it < opt->max_iter; it++) {
        for (int n = 0; n < nd; n++) {
            for (size_t i = 0; i < r * r; i++) v[i] = 1.0;
            for (int k = 0; k < nd; k++)
                if (k != n)
                    for (size_t i = 0; i < r * r; i++) v[i] *= grams[(size_t)k * r * r + i];
            td_tensor mt;
            size_t ms[2] = {x->shape[n], r};
            if ((st = td_tensor_view(&mt, 2, ms, m)) != TD_OK) goto fail;
            if (n == 0 || !dtree) {
                if ((st = td_mttkrp(x, fp, n, &mt)) != TD_OK) goto fail;
            } else if ((st = mttkrp_from_partial(x, pdata, f, n, r, colbuf, m)) != TD_OK) {
                goto fail;
            }
            if ((st = solve_normal(v, r, m, x->shape[n], f[n].data, work)) != TD_OK) goto fail;
            gram_of(&f[n], grams + (size_t)n * r * r);
            if (n == 0 && dtree)
                /* P = A_0^T X_(0) (R x T): every later MTTKRP of this sweep is a cheap
                 * contraction of P, since P depends on A_0 only */
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)tail, (int)x->shape[0], 1.0,
                            f[0].data, (int)r, x->data, (int)tail, 0.0, pdata, (int)tail);
        }
        /* ||model||^2 = sum(hadamard of all Grams); <x, model> = sum(M_last .* A_last). */
        double nm2 = 0, ip = 0;
        for (size_t i = 0; i < r * r; i++) {
            double p = 1;
            for (int k = 0; k < nd; k++) p *= grams[(size_t)k * r * r + i];
            nm2 += p;
        }
        const td_tensor *al = &f[nd - 1];
        for (size_t i = 0; i < al->size; i++) ip += m[i] * al->data[i];
        double e = nx > 0 ? sqrt(fmax(nx2 + nm2 - 2 * ip, 0.0)) / nx : 0.0;
        if (e < 1e-6 && nx > 0) {
            /* The Gram form cancels catastrophically near an exact fit (~1e-8 floor); there the
             * stopping test would fire on rounding noise, so use the exact residual. */
            double resid;
            if ((st = exact_residual(x, f, res->weights, r, &resid)) != TD_OK) goto fail;
            e = resid / nx;
        }
        res->history[it] = e;
        res->iterations = it + 1;
        if (opt->progress && opt->progress(opt->progress_ctx, it + 1, e)) { st = TD_ECANCELED; goto fail; }
        if (it > 0 && fabs(prev - e) < opt->tol) { res->converged = 1; break; }
        prev = e;
    }
    if (opt->normalize) {
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
            res->weights[c] = w;
        }
    }
    double resid;
    if ((st = exact_residual(x, f, res->weights, r, &resid)) != TD_OK) goto fail;
    res->rel_error = nx > 0 ? resid / nx : 0.0;
    res->seconds = td__now() - t0;
    free(grams);
    free(v);
    free(m);
    free(work);
    free(pdata);
    free(colbuf);
    return TD_OK;
fail:
    free(grams);
    free(v);
    free(m);
    free(work);
    free(pdata);
    free(colbuf);
    td_cp_free(res);
    return st;
}
