/* Randomised truncated SVD (Halko, Martinsson & Tropp 2011, Alg. 4.4 with adaptive q).
 *
 * Y = A Omega, Q = qr(Y); each power iteration Z = A^T Q, Q = qr(A qr(Z)). Z = A^T Q is also
 * B^T = (Q^T A)^T, so the tail of B's rank-k truncation is cheap at every step (an l x l Gram),
 * and the last Z is the projected matrix: no extra pass. The SVD of B is exact, so the returned
 * triplets are the exact SVD of Q Q^T A and ||A - U S V^T||^2 = ||A||^2 - sum s^2 for what is
 * returned. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "decomp/decomp_internal.h"

/* Tail change below this fraction of ||A||^2 counts as converged (rounding floor of the estimate). */
#define RSVD_TAIL_FLOOR 1e-12
/* Stall: the tail's changes shrink geometrically, by rho per iteration; when the gain predicted to
 * remain at the cap still exceeds RSVD_ACCEPT_FACTOR * power_tol of the tail, as on flat spectra,
 * iterating does not pay and the exact route is taken at once. */
#define RSVD_ACCEPT_FACTOR 10.0
/* Growth on a slow tail: k / this more columns, up to the short side / RSVD_GROW_LIMIT. */
#define RSVD_GROW_DIVISOR 2
#define RSVD_GROW_LIMIT 2
/* A-posteriori check: a few block-power steps on the residual A - Q Q^T A. */
#define RSVD_CHECK_VECS 4
#define RSVD_CHECK_STEPS 2
/* The range missed a direction when the residual's norm exceeds the k-th kept value this much. */
#define RSVD_CHECK_RATIO 1.5

static double sumsq(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

/* ||A||^2 - ||(Q^T A)_k||^2, the error^2 the rank-k result would have: from the k leading
 * eigenvalues of Z^T Z (l x l; SYRK n l^2 + a values-only eig, small against a pass over A). */
static td_status rank_k_tail(const double *z, size_t n, size_t l, size_t k, double na2, double *gw,
                             double *tail, double *ratio)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)l, (int)n, 1.0, z, (int)l, 0.0, gw, (int)l);
    for (size_t i = 0; i < l; i++)
        for (size_t j = 0; j < i; j++) gw[i * l + j] = gw[j * l + i];
    double *ev = gw + l * l;
    td_status st = td__sym_eig_leading(gw, l, 0, NULL, ev);
    if (st != TD_OK) return st;
    double kept = 0;
    for (size_t i = 0; i < k; i++) kept += ev[i] > 0 ? ev[i] : 0;
    *tail = fmax(na2 - kept, 0.0);
    /* sigma_l / sigma_k estimated: the power iteration's convergence factor */
    *ratio = ev[k - 1] > 0 ? sqrt(fmax(ev[l - 1], 0.0) / ev[k - 1]) : 0.0;
    return TD_OK;
}

/* Adds g Gaussian directions A Omega to the range: q (m x l) becomes orthonormal m x (l + g), z is
 * reallocated to n x (l + g). */
static td_status grow_range(const td_tensor *a, size_t l, size_t g, td_rng *rng, double **q, double **z)
{
    const size_t m = a->shape[0], n = a->shape[1], l2 = l + g;
    double *q2 = malloc(m * l2 * sizeof(double)), *z2 = malloc(n * l2 * sizeof(double)),
           *y = malloc(m * g * sizeof(double));
    td_status st = TD_OK;
    if (!q2 || !z2 || !y) { st = TD_ENOMEM; goto done; }
    for (size_t i = 0; i < n * g; i++) z2[i] = td_rng_normal(rng);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)g, (int)n, 1.0, a->data, (int)n, z2,
                (int)g, 0.0, y, (int)g);
    for (size_t i = 0; i < m; i++) {
        memcpy(q2 + i * l2, *q + i * l, l * sizeof(double));
        memcpy(q2 + i * l2 + l, y + i * g, g * sizeof(double));
    }
    if ((st = td__orthonormalise(q2, m, l2)) != TD_OK) goto done;
    free(*q);
    free(*z);
    *q = q2;
    *z = z2;
    q2 = z2 = NULL;
done:
    free(q2);
    free(z2);
    free(y);
    return st;
}

/* Q (m x *l, orthonormal) from the power iteration, stopped once the rank-k tail of the projected
 * matrix settles (the l-column tail would keep moving in a noise floor past k); z = A^T Q. When
 * the tail converges too slowly the range grows once by max(k/2, oversample) columns (the
 * convergence factor is sigma_{l+1}/sigma_k); if it still stalls, info->stalled is set. */
static td_status range_finder(const td_tensor *a, size_t *lp, size_t k, const td_svd_options *o,
                              td_rng *rng, double **qp, double **zp, td__svd_info *info)
{
    const size_t m = a->shape[0], n = a->shape[1], ps = m < n ? m : n;
    size_t l = *lp, grow = k / RSVD_GROW_DIVISOR;
    if (grow < (size_t)(o->oversample > 0 ? o->oversample : 1)) grow = (size_t)(o->oversample > 0 ? o->oversample : 1);
    if (l + grow > ps / RSVD_GROW_LIMIT) grow = l < ps / RSVD_GROW_LIMIT ? ps / RSVD_GROW_LIMIT - l : 0;
    const double na2 = sumsq(a->data, a->size);
    const int lo = o->power_iters > 0 ? o->power_iters : 0;
    const int hi = o->max_power_iters > lo ? o->max_power_iters : lo;
    double *gw = malloc(((l + grow) * (l + grow) + l + grow) * sizeof(double));
    if (!gw) return TD_ENOMEM;
    double *q = *qp, *z = *zp;
    for (size_t i = 0; i < n * l; i++) z[i] = td_rng_normal(rng);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)l, (int)n, 1.0, a->data, (int)n, z,
                (int)l, 0.0, q, (int)l);
    td_status st = td__orthonormalise(q, m, l);
    double prev = 0, dprev = 0;
    for (int it = 0, since = 0; st == TD_OK; it++, since++) {
        const int M = (int)m, N = (int)n, L = (int)l;
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, L, M, 1.0, a->data, N, q, L, 0.0, z, L);
        double tail = 0, ratio = 0;
        if (hi > lo && (st = rank_k_tail(z, n, l, k, na2, gw, &tail, &ratio)) != TD_OK) break;
        info->tail = tail;
        info->power_iters = it;
        const double d = fabs(prev - tail);
        const int conv = since > 0 && d <= o->power_tol * fmax(tail, RSVD_TAIL_FLOOR * na2);
        if (it >= lo && conv) break;
        int slow = 0;
        if (since <= 1 && !conv && o->power_tol > 0 && ratio > 0) {
            /* the tail's error shrinks ~ratio^2 per iteration: too slow to reach power_tol by the cap? */
            slow = ratio >= 1 || log(o->power_tol) / (2.0 * log(ratio)) > (double)(hi - it);
        } else if (since >= 2 && !conv && dprev > 0 && o->power_tol > 0) {
            /* remaining gain now ~ g = d rho / (1 - rho); at the cap ~ g rho^(hi - it) */
            const double rho = d / dprev;
            slow = rho >= 1 || d * rho / (1 - rho) * pow(rho, hi - it) > RSVD_ACCEPT_FACTOR * o->power_tol * tail;
        }
        if (slow && grow > 0 && it < hi) {
            if ((st = grow_range(a, l, grow, rng, &q, &z)) != TD_OK) break;
            l += grow;
            grow = 0;
            since = -1;
            prev = dprev = 0;
            continue;
        }
        if (slow && since >= 2) { info->stalled = 1; break; }
        if (it >= hi) break;
        prev = tail;
        dprev = since > 0 ? d : 0;
        if ((st = td__orthonormalise(z, n, l)) != TD_OK) break;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, L, N, 1.0, a->data, N, z, L, 0.0, q, L);
        st = td__orthonormalise(q, m, l);
    }
    *qp = q;
    *zp = z;
    *lp = l;
    free(gw);
    return st;
}

/* Lower estimate of ||R||_2, R = A - Q B with B^T = zc (n x l): block power on R^T R. */
static td_status residual_norm(const td_tensor *a, const double *q, const double *zc, size_t l,
                               td_rng *rng, double *est)
{
    const size_t m = a->shape[0], n = a->shape[1], b = RSVD_CHECK_VECS;
    const int M = (int)m, N = (int)n, L = (int)l, B = (int)b;
    double *x = malloc(n * b * sizeof(double)), *y = malloc(m * b * sizeof(double)),
           *t = malloc(l * b * sizeof(double));
    td_status st = TD_OK;
    if (!x || !y || !t) { st = TD_ENOMEM; goto done; }
    for (size_t i = 0; i < n * b; i++) x[i] = td_rng_normal(rng);
    if ((st = td__orthonormalise(x, n, b)) != TD_OK) goto done;
    for (int step = 0;; step++) {
        /* y = A x - Q (Z^T x) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, B, N, 1.0, a->data, N, x, B, 0.0, y, B);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, B, N, 1.0, zc, L, x, B, 0.0, t, B);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, B, L, -1.0, q, L, t, B, 1.0, y, B);
        if (step == RSVD_CHECK_STEPS) break;
        /* x = A^T y - Z (Q^T y), re-orthonormalised */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, B, M, 1.0, q, L, y, B, 0.0, t, B);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, B, M, 1.0, a->data, N, y, B, 0.0, x, B);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, B, L, -1.0, zc, L, t, B, 1.0, x, B);
        if (sumsq(x, n * b) == 0) break; /* R vanishes on the block: exact range */
        if ((st = td__orthonormalise(x, n, b)) != TD_OK) goto done;
    }
    double best = 0;
    for (size_t c = 0; c < b; c++) {
        double s = 0;
        for (size_t i = 0; i < m; i++) s += y[i * b + c] * y[i * b + c];
        best = fmax(best, sqrt(s));
    }
    *est = best;
done:
    free(x);
    free(y);
    free(t);
    return st;
}

/* SVD of B = Z^T (l x n): Z row-major n x l is B column-major, so no transposed copy is made.
 * u = Q U_B (m x k), vt = leading k rows of V_B^T, with the sign convention set on u. */
static td_status small_svd(double *z, const double *q, size_t m, size_t n, size_t l, size_t k,
                           double *u, double *s, double *vt)
{
    double *ub = malloc(l * l * sizeof(double)), *sb = malloc(l * sizeof(double)),
           *vb = malloc(l * n * sizeof(double)), *fl = malloc(k * sizeof(double));
    td_status st = TD_OK;
    if (!ub || !sb || !vb || !fl) { st = TD_ENOMEM; goto done; }
    lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (lapack_int)l, (lapack_int)n, z,
                                     (lapack_int)l, sb, ub, (lapack_int)l, vb, (lapack_int)l);
    if (info != 0) { st = info < 0 ? TD_EINTERNAL : TD_ELAPACK; goto done; }
    memcpy(s, sb, k * sizeof(double));
    /* ub is U_B column-major, i.e. U_B^T row-major: u = Q (first k rows of ub)^T */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)l, 1.0, q, (int)l,
                ub, (int)l, 0.0, u, (int)k);
    td__sign_flip_columns(u, m, k, fl);
    if (vt)
        for (size_t c = 0; c < k; c++)
            for (size_t j = 0; j < n; j++) vt[c * n + j] = fl[c] * vb[j * l + c];
done:
    free(ub);
    free(sb);
    free(vb);
    free(fl);
    return st;
}

td_status td__svd_random(const td_tensor *a, size_t k, const td_svd_options *o, double *u, double *s,
                         double *vt, int *check_ok, td__svd_info *info)
{
    const size_t m = a->shape[0], n = a->shape[1], p = m < n ? m : n;
    size_t l = k + (size_t)(o->oversample > 0 ? o->oversample : 0);
    if (l > p) l = p;
    *check_ok = 1;
    double *q = malloc(m * l * sizeof(double)), *z = malloc(n * l * sizeof(double)), *zc = NULL,
           *uu = u ? u : malloc(m * k * sizeof(double));
    td_status st = TD_OK;
    if (!q || !z || !uu) { st = TD_ENOMEM; goto done; }
    td_rng rng;
    td_rng_seed(&rng, o->seed);
    if ((st = range_finder(a, &l, k, o, &rng, &q, &z, info)) != TD_OK) goto done;
    if (info->stalled) { *check_ok = 0; goto done; }
    info->columns = l;
    /* the check needs B after dgesdd overwrote it */
    if (!(zc = malloc(n * l * sizeof(double)))) { st = TD_ENOMEM; goto done; }
    memcpy(zc, z, n * l * sizeof(double));
    if ((st = small_svd(z, q, m, n, l, k, uu, s, vt)) != TD_OK) goto done;
    double res = 0;
    if ((st = residual_norm(a, q, zc, l, &rng, &res)) != TD_OK) goto done;
    info->residual = res;
    const double scale = sqrt(sumsq(a->data, a->size));
    if (l < p && res > RSVD_CHECK_RATIO * s[k - 1] + RSVD_TAIL_FLOOR * scale) *check_ok = 0;
done:
    free(q);
    free(z);
    free(zc);
    if (!u) free(uu);
    return st;
}
