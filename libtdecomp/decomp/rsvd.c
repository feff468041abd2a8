/* Randomised truncated SVD (Halko, Martinsson & Tropp 2011, Alg. 4.4 with adaptive q).
 *
 * Y = A Omega, Q = qr(Y); each power iteration Z = A^T Q, Q = qr(A qr(Z)). Z = A^T Q is also
 * B^T = (Q^T A)^T, so the tail of B's rank-k truncation is cheap at every step (an l x l Gram,
 * reused by the QR of Z), and the last Z is the projected matrix: no extra pass. B's SVD comes
 * from Z = Qz R and the SVD of the l x l R^T (no dgesdd of the l x n B). The SVD of B is exact,
 * so the returned triplets are the exact SVD of Q Q^T A and ||A - U S V^T||^2 = ||A||^2 - sum s^2
 * for what is returned, whatever precision found Q.
 *
 * Passes over A that only find the range may run in float32 (SGEMM, about twice DGEMM's rate)
 * on a float copy of A: rounding then perturbs Q by ~1e-7, which changes the captured energy
 * only to second order; the estimate of the tail moved by ~4e-10 ||A||^2 on a 4096 x 11008
 * matrix. The projection that is returned is always double: when the last Z came from a float
 * pass, its k leading directions U_k are taken and Z = A^T U_k is computed again in double on k
 * columns only (narrow_to_top). */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "decomp/decomp_internal.h"

/* Tail change below this fraction of ||A||^2 counts as converged (rounding floor of the estimate). */
#define RSVD_TAIL_FLOOR 1e-12
/* The same floor for estimates from float32 passes, 25x the noise measured on the tail (above).
 * Float32 passes stop once power_tol * tail falls below it (the estimate could no longer tell
 * convergence), and on near-exact low rank, where only double finds the range to ~1e-15. */
#define RSVD_FLOAT_FLOOR 1e-8
/* ... and while the tail is at least this fraction of ||A||^2 (relative error >= 1 %). */
#define RSVD_FLOAT_MIN_TAIL 1e-4
/* On "large" matrices (RSVD_LARGE_SIZE, decomp_internal.h) float32 passes may run by default,
 * and the automatic power_tol is 1e-4 (the error within ~5e-5 of the
 * optimum's on the decaying, slowly decaying and flat spectra of svd_bench, where 1e-3 saved no
 * iteration on the LLM case and 1e-5 sent flat spectra to the exact route). Below, 1e-6 in double,
 * the former default: the iterations cost little there, and callers that compare with an exact
 * SVD at ~1e-5 (LoRA adapters of a 2000 x 1000 layer: 5.5e-5 off at 1e-4) keep that. */
#define RSVD_TOL_LARGE 1e-4
#define RSVD_TOL_SMALL 1e-6
/* Below this power_tol the stopping rule also asks the last change itself to be below it. */
#define RSVD_STRICT_TOL 1e-5
/* kappa(Z)^2 below 1 / this: one Cholesky-QR pass leaves Z orthonormal to ~1e-4. */
#define RSVD_SPAN_RCOND2 1e-12
/* Stall: when the gain predicted to remain at the cap still exceeds RSVD_ACCEPT_FACTOR *
 * power_tol of the tail, as on flat spectra, iterating does not pay and the exact route is taken. */
#define RSVD_ACCEPT_FACTOR 10.0
/* Growth on a slow tail: k / this more columns, up to the short side / RSVD_GROW_LIMIT. */
#define RSVD_GROW_DIVISOR 2
#define RSVD_GROW_LIMIT 2
/* New directions of a growth further from orthogonal to Q than this: the whole block is redone. */
#define RSVD_GROW_ORTH 1e-10
/* A-posteriori check: a few block-power steps on the residual A - Q Q^T A. */
#define RSVD_CHECK_VECS 4
#define RSVD_CHECK_STEPS 2
/* The range missed a direction when the residual's norm exceeds the k-th kept value this much. */
#define RSVD_CHECK_RATIO 1.5
/* Floor of the check's estimate in float32, as a fraction of ||A||_F: float rounding of A x is
 * ~1e-7 of it. Float passes last only while the tail is >= 1e-4 ||A||^2, so s_k >= ~5e-5 ||A||_F
 * there (up to 46000 values share the tail), and the floor stays well below the test. */
#define RSVD_CHECK_FLOAT_FLOOR 1e-5

/* A, its optional float32 copy and the float operands of the passes. The route works on the
 * wide one of A and A^T (t = 1: A is tall): m <= n below, the range Q is on the short side and the
 * QRs of its iterates cost m l^2, not n l^2. */
typedef struct rs_work {
    const double *a;
    float *af, *fx, *fy; /* af NULL: double passes only; fx, fy: max(m, n) x lmax */
    size_t m, n;         /* the worked-on matrix: A, or A^T when t */
    size_t pm, pn;       /* A as stored, row-major */
    int t;
    double na2;          /* ||A||_F^2 */
    int gauss;           /* Gaussian test matrices (small A), else uniform */
    int fexp;            /* af = A 2^-fexp (td__float_exponent) */
} rs_work;

/* Test-matrix entries: on large matrices uniform with unit variance. Sub-Gaussian entries keep the
 * range finder's behaviour (the tail estimate and the residual check judge the result anyway), and
 * Box-Muller's log and cos per entry cost ~10x more: 0.8 s for the 11008 x 522 test matrix, a
 * float pass. Small matrices keep the Gaussian stream of before (gauss), so their results, which
 * callers compare with exact SVDs, stay what they were. */
static void test_matrix(double *x, size_t n, int gauss, td_rng *rng)
{
    if (gauss)
        for (size_t i = 0; i < n; i++) x[i] = td_rng_normal(rng);
    else
        for (size_t i = 0; i < n; i++) x[i] = 1.7320508075688772 * (2.0 * td_rng_uniform(rng) - 1.0);
}

static double sumsq(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

/* out = A x (x n x l, out m x l) or, trans, A^T x (x m x l, out n x l), A the worked-on matrix;
 * single: by SGEMM on the float copy, operands rounded to float and the product widened back. */
static void pass(const rs_work *w, int single, int trans, const double *x, size_t l, double *out)
{
    const int M = (int)w->pm, N = (int)w->pn, L = (int)l, tr = trans ^ w->t;
    const CBLAS_TRANSPOSE t = tr ? CblasTrans : CblasNoTrans;
    const int rows = tr ? N : M, depth = tr ? M : N;
    if (!single) {
        cblas_dgemm(CblasRowMajor, t, CblasNoTrans, rows, L, depth, 1.0, w->a, N, x, L, 0.0, out, L);
        return;
    }
    for (size_t i = 0; i < (size_t)depth * l; i++) w->fx[i] = (float)x[i];
    cblas_sgemm(CblasRowMajor, t, CblasNoTrans, rows, L, depth, 1.0f, w->af, N, w->fx, L, 0.0f, w->fy, L);
    for (size_t i = 0; i < (size_t)rows * l; i++) out[i] = ldexp((double)w->fy[i], w->fexp);
}

/* ||A||^2 - ||(Q^T A)_k||^2, the error^2 the rank-k result would have, from the k leading
 * eigenvalues of Z^T Z; gw (l x l, then l values) keeps the Gram for the QR of Z. */
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

/* y (m x g) <- (I - Q Q^T) y, with t (l x g) as workspace. */
static void project_out(const double *q, size_t m, size_t l, double *y, size_t g, double *t)
{
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)g, (int)m, 1.0, q, (int)l, y, (int)g, 0.0,
                t, (int)g);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)g, (int)l, -1.0, q, (int)l, t, (int)g, 1.0,
                y, (int)g);
}

/* Adds g random directions A Omega to the range: q (m x l, orthonormal) becomes orthonormal
 * m x (l + g) and z (A^T q on entry) becomes A^T q, n x (l + g). The new directions are made
 * orthogonal to Q (projected out twice, orthonormalised, once more), so Q stays the leading block
 * and only the g new columns of z need a pass; when that fails to leave them orthogonal to Q
 * (A of rank below l + g), the whole block is orthonormalised and z recomputed. */
static td_status grow_range(const rs_work *w, int single, size_t l, size_t g, td_rng *rng, double **q,
                            double **z, int *how)
{
    const size_t m = w->m, n = w->n, l2 = l + g;
    double *q2 = malloc(m * l2 * sizeof(double)), *z2 = malloc(n * l2 * sizeof(double)),
           *y = malloc(m * g * sizeof(double)), *x = malloc(n * g * sizeof(double)),
           *t = malloc(l * g * sizeof(double));
    td_status st = TD_OK;
    if (!q2 || !z2 || !y || !x || !t) { st = TD_ENOMEM; goto done; }
    test_matrix(x, n * g, w->gauss, rng);
    pass(w, single, 0, x, g, y);
    project_out(*q, m, l, y, g, t);
    project_out(*q, m, l, y, g, t);
    if ((st = td__orthonormalise(y, m, g)) != TD_OK) goto done;
    project_out(*q, m, l, y, g, t);
    if ((st = td__orthonormalise(y, m, g)) != TD_OK) goto done;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)g, (int)m, 1.0, *q, (int)l, y, (int)g, 0.0,
                t, (int)g);
    double off = 0;
    for (size_t i = 0; i < l * g; i++) off = fmax(off, fabs(t[i]));
    for (size_t i = 0; i < m; i++) {
        memcpy(q2 + i * l2, *q + i * l, l * sizeof(double));
        memcpy(q2 + i * l2 + l, y + i * g, g * sizeof(double));
    }
    *how = off <= RSVD_GROW_ORTH ? 1 : 2;
    if (*how == 1) {
        pass(w, single, 1, y, g, x);
        for (size_t j = 0; j < n; j++) {
            memcpy(z2 + j * l2, *z + j * l, l * sizeof(double));
            memcpy(z2 + j * l2 + l, x + j * g, g * sizeof(double));
        }
    } else {
        if ((st = td__orthonormalise(q2, m, l2)) != TD_OK) goto done;
        pass(w, single, 1, q2, l2, z2);
    }
    free(*q);
    free(*z);
    *q = q2;
    *z = z2;
    q2 = z2 = NULL;
done:
    free(q2);
    free(z2);
    free(y);
    free(x);
    free(t);
    return st;
}

/* Convergence state of the tail between power iterations. */
typedef struct rs_track {
    double prev, dprev; /* last tail and last change (0: none yet) */
    int since;          /* iterations since the start or the last growth */
} rs_track;

/* Is the tail converged (*conv), or too slow to converge by the cap (return 1)? The remaining
 * gain is extrapolated geometrically from the last change d with rate r = max(observed d/dprev,
 * (sigma_l/sigma_k)^4 estimated): a subspace iteration shrinks the angle to the k-th direction by
 * (sigma_{l+1}/sigma_k)^2 a step, the energy it misses by the square of that. On the first
 * iterate only the estimated rate is known. */
static int tail_slow(const rs_track *t, double tail, double ratio, double tol, double floor, int left,
                     int *conv)
{
    const double d = fabs(t->prev - tail);
    double r = ratio * ratio * ratio * ratio;
    if (t->since >= 2 && t->dprev > 0) r = fmax(r, d / t->dprev);
    const double rest = r < 1 ? d * r / (1 - r) : INFINITY;
    /* at tight tolerances (the small-matrix default) also the last change itself, the former rule:
     * callers there compare subspaces with an exact SVD's, and those converge slower than the tail */
    const double gauge = tol < RSVD_STRICT_TOL ? fmax(rest, d) : rest;
    *conv = tol > 0 && t->since > 0 && gauge <= tol * fmax(tail, floor);
    if (*conv || tol <= 0) return 0;
    /* before a rate is observed, a pessimistic ratio^2 a step decides growth: the first Ritz
     * values understate sigma_l, and a wider range pays off on most spectra (measured) */
    if (t->since <= 1)
        return ratio >= 1 || (ratio > 0 && log(tol) / (2.0 * log(ratio)) > (double)left);
    return rest * pow(r, left) > RSVD_ACCEPT_FACTOR * tol * tail;
}

/* Q (m x *l, orthonormal) from the power iteration, stopped once the rank-k tail of the projected
 * matrix settles (the l-column tail would keep moving in a noise floor past k); z = A^T Q and gw
 * its Gram (with its eigenvalues after it), from a float32 pass when *zfloat; w->af freed when the
 * passes left float32.
 * When the tail converges too slowly the range grows once by max(k/2, oversample) columns (the
 * convergence factor is sigma_{l+1}/sigma_k); if it still stalls, info->stalled is set. */
static td_status range_finder(rs_work *w, size_t *lp, size_t grow, size_t k, const td_svd_options *o,
                              td_rng *rng, double **qp, double **zp, double *gw, int *zfloat,
                              td__svd_info *info)
{
    const size_t m = w->m, n = w->n;
    size_t l = *lp;
    const int lo = o->power_iters > 0 ? o->power_iters : 0;
    const int hi = o->max_power_iters > lo ? o->max_power_iters : lo;
    double *q = *qp, *z = *zp;
    int single = w->af != NULL;
    test_matrix(z, n * l, w->gauss, rng);
    pass(w, single, 0, z, l, q);
    td_status st = td__orthonormalise(q, m, l);
    rs_track t = {0, 0, 0};
    int have_z = 0; /* z = A^T q already (after a growth) */
    for (int it = 0; st == TD_OK; it++, t.since++) {
        const int zsingle = single;
        if (!have_z) pass(w, single, 1, q, l, z);
        have_z = 0;
        double tail = 0, ratio = 0;
        if ((st = rank_k_tail(z, n, l, k, w->na2, gw, &tail, &ratio)) != TD_OK) break;
        info->power_iters = it;
        if (single && (o->power_tol * tail < RSVD_FLOAT_FLOOR * w->na2 || tail < RSVD_FLOAT_MIN_TAIL * w->na2)) {
            single = 0; /* the estimate can no longer tell convergence: double from here on */
            t.since = -1;
        }
        int conv = 0;
        const double floor = (single ? RSVD_FLOAT_FLOOR : RSVD_TAIL_FLOOR) * w->na2;
        const int slow = t.since >= 0 && tail_slow(&t, tail, ratio, o->power_tol, floor, hi - it, &conv);
        if (slow && grow > 0 && it < hi) {
            if ((st = grow_range(w, single, l, grow, rng, &q, &z, &info->grew)) != TD_OK) break;
            l += grow;
            grow = 0;
            have_z = 1;
            t = (rs_track){0, 0, -1};
            continue;
        }
        if (slow && t.since >= 2) { info->stalled = 1; break; }
        if ((it >= lo && conv) || it >= hi) {
            *zfloat = zsingle;
            break;
        }
        t.dprev = t.since > 0 ? fabs(t.prev - tail) : 0;
        t.prev = tail;
        /* Z only spans the next product: one Cholesky-QR pass on the Gram at hand when Z is
         * well-conditioned (gw + l l holds its eigenvalues, descending) */
        const double *ev = gw + l * l;
        if (ev[l - 1] > RSVD_SPAN_RCOND2 * ev[0]) st = td__orthonormalise_span(z, n, l, gw);
        else st = td__orthonormalise(z, n, l);
        if (st != TD_OK) break;
        pass(w, single, 0, z, l, q);
        st = td__orthonormalise(q, m, l);
    }
    *qp = q;
    *zp = z;
    *lp = l;
    if (!single) {
        free(w->af);
        w->af = NULL;
    }
    return st;
}

/* Lower estimate of ||R||_2, R = A - Q B with B = R_z^T Q_z^T (qz n x l, rz l x l): block power
 * on R^T R. The products with A in float32 when w->af is set: a few thin passes, bound by memory,
 * cost about what the matrix weighs. */
static td_status residual_norm(const rs_work *w, const double *q, const double *qz, const double *rz,
                               size_t l, td_rng *rng, double *est)
{
    const size_t m = w->m, n = w->n, b = RSVD_CHECK_VECS;
    const int N = (int)n, L = (int)l, B = (int)b;
    double *x = malloc(n * b * sizeof(double)), *y = malloc(m * b * sizeof(double)),
           *t = malloc(2 * l * b * sizeof(double));
    td_status st = TD_OK;
    if (!x || !y || !t) { st = TD_ENOMEM; goto done; }
    double *t2 = t + l * b;
    test_matrix(x, n * b, w->gauss, rng);
    if ((st = td__orthonormalise(x, n, b)) != TD_OK) goto done;
    for (int step = 0;; step++) {
        /* y = A x - Q R_z^T (Q_z^T x) */
        pass(w, w->af != NULL, 0, x, b, y);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, B, N, 1.0, qz, L, x, B, 0.0, t, B);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, B, L, 1.0, rz, L, t, B, 0.0, t2, B);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, B, L, -1.0, q, L, t2, B, 1.0, y, B);
        if (step == RSVD_CHECK_STEPS) break;
        /* x = A^T y - Q_z R_z (Q^T y), re-orthonormalised */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, B, (int)m, 1.0, q, L, y, B, 0.0, t, B);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, B, L, 1.0, rz, L, t, B, 0.0, t2, B);
        pass(w, w->af != NULL, 1, y, b, x);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, B, L, -1.0, qz, L, t2, B, 1.0, x, B);
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

/* SVD of B = Z^T = R^T Q_z^T from the l x l R: R row-major is R^T column-major, whose SVD
 * U_r S V_r^T gives B = U_r S (Q_z V_r)^T. u = Q U_r (m x k), vt = V_r^T Q_z^T (k x n), with the
 * sign convention set on u. */
static td_status small_svd(const double *rz, const double *qz, const double *q, size_t m, size_t n,
                           size_t l, size_t k, double *u, double *s, double *vt)
{
    double *rc = malloc(l * l * sizeof(double)), *ub = malloc(l * l * sizeof(double)),
           *sb = malloc(l * sizeof(double)), *vb = malloc(l * l * sizeof(double)),
           *fl = malloc(k * sizeof(double));
    td_status st = TD_OK;
    if (!rc || !ub || !sb || !vb || !fl) { st = TD_ENOMEM; goto done; }
    memcpy(rc, rz, l * l * sizeof(double));
    const lapack_int L = (lapack_int)l;
    lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', L, L, rc, L, sb, ub, L, vb, L);
    if (info != 0) { st = info < 0 ? TD_EINTERNAL : TD_ELAPACK; goto done; }
    memcpy(s, sb, k * sizeof(double));
    /* ub is U_r column-major, i.e. U_r^T row-major: u = Q (first k rows of ub)^T */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)l, 1.0, q, (int)l,
                ub, (int)l, 0.0, u, (int)k);
    td__sign_flip_columns(u, m, k, fl);
    if (vt) {
        /* vb is V_r^T column-major, i.e. V_r row-major: vt = (first k columns of vb)^T Q_z^T */
        for (size_t i = 0; i < l; i++)
            for (size_t c = 0; c < k; c++) vb[i * l + c] *= fl[c];
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)n, (int)l, 1.0, vb, (int)l,
                    qz, (int)l, 0.0, vt, (int)n);
    }
done:
    free(rc);
    free(ub);
    free(sb);
    free(vb);
    free(fl);
    return st;
}

/* Workspace of the float32 passes: the copy of A and the operands (NULL af when not used). */
static td_status float_work(rs_work *w, const td_svd_options *o, size_t lmax)
{
    const size_t size = w->m * w->n, big = w->m > w->n ? w->m : w->n;
    if (o->float_passes <= 0 || (o->float_passes == 1 && size < RSVD_FLOAT_MIN_SIZE) || o->power_tol <= 0)
        return TD_OK;
    w->af = malloc(size * sizeof(float));
    w->fx = malloc(big * lmax * sizeof(float));
    w->fy = malloc(big * lmax * sizeof(float));
    if (!w->af || !w->fx || !w->fy) return TD_ENOMEM;
    w->fexp = td__float_exponent(w->a, size);
    const double sc = ldexp(1.0, -w->fexp);
    for (size_t i = 0; i < size; i++) w->af[i] = (float)(sc * w->a[i]);
    return TD_OK;
}

double td__svd_power_tol(const td_svd_options *o, size_t m, size_t n)
{
    if (o->power_tol >= 0) return o->power_tol;
    return m * n >= RSVD_LARGE_SIZE ? RSVD_TOL_LARGE : RSVD_TOL_SMALL;
}

/* The last Z came from a float32 pass. Instead of repeating it in double on all l columns, the k
 * leading left singular vectors of B = Z^T (eigenvectors of its Gram gw, at hand) give
 * U_k = Q V_b (m x k, orthonormal), and one double pass z = A^T U_k on k columns gives U_k^T A
 * exactly: the result is then the exact SVD of U_k U_k^T A, an orthogonal projection, and the
 * identity ||A - U S V^T||^2 = ||A||^2 - sum s^2 holds for what is returned. Float rounding only
 * perturbs which subspace U_k is (to second order in the energy it captures). */
static td_status narrow_to_top(const rs_work *w, double **qp, double *z, const double *gw, size_t l, size_t k)
{
    const size_t m = w->m;
    double *vecs = malloc(l * k * sizeof(double)), *uk = malloc(m * k * sizeof(double));
    td_status st = TD_OK;
    if (!vecs || !uk) { st = TD_ENOMEM; goto done; }
    if ((st = td__sym_eig_top(gw, l, k, vecs, NULL)) != TD_OK) goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)l, 1.0, *qp, (int)l, vecs,
                (int)k, 0.0, uk, (int)k);
    pass(w, 0, 1, uk, k, z);
    free(*qp);
    *qp = uk;
    uk = NULL;
done:
    free(vecs);
    free(uk);
    return st;
}

td_status td__svd_random(const td_tensor *a, size_t k, const td_svd_options *opt, double *u, double *s,
                         double *vt, int *check_ok, td__svd_info *info)
{
    const size_t pm = a->shape[0], pn = a->shape[1], p = pm < pn ? pm : pn;
    const int tr = pm > pn;
    const size_t m = tr ? pn : pm, n = tr ? pm : pn; /* the wide one of A and A^T */
    td_svd_options oo = *opt;
    const td_svd_options *o = &oo;
    oo.power_tol = td__svd_power_tol(opt, pm, pn);
    const size_t over = (size_t)(o->oversample > 0 ? o->oversample : 0);
    size_t l = k + over < p ? k + over : p, grow = k / RSVD_GROW_DIVISOR;
    if (grow < (over ? over : 1)) grow = over ? over : 1;
    if (l + grow > p / RSVD_GROW_LIMIT) grow = l < p / RSVD_GROW_LIMIT ? p / RSVD_GROW_LIMIT - l : 0;
    const size_t lmax = l + grow;
    *check_ok = 1;
    rs_work w = {a->data, NULL, NULL, NULL, m, n, pm, pn, tr, sumsq(a->data, a->size), pm * pn < RSVD_LARGE_SIZE, 0};
    /* the worked-on matrix's U (m x k) and V^T (k x n): the caller's, or transposed into them */
    double *q = malloc(m * l * sizeof(double)), *z = malloc(n * l * sizeof(double)),
           *gw = malloc((lmax * lmax + lmax) * sizeof(double)), *rz = malloc(lmax * lmax * sizeof(double)),
           *uu = u && !tr ? u : malloc(m * k * sizeof(double)),
           *vv = tr ? malloc(k * n * sizeof(double)) : vt;
    td_status st = TD_OK;
    if (!q || !z || !gw || !rz || !uu || (tr && !vv)) { st = TD_ENOMEM; goto done; }
    if ((st = float_work(&w, o, lmax)) != TD_OK) goto done;
    td_rng rng;
    td_rng_seed(&rng, o->seed);
    int zfloat = 0;
    if ((st = range_finder(&w, &l, grow, k, o, &rng, &q, &z, gw, &zfloat, info)) != TD_OK) goto done;
    if (info->stalled) { *check_ok = 0; goto done; }
    info->columns = l;
    size_t c = l; /* columns of the final basis */
    if (zfloat) {
        if ((st = narrow_to_top(&w, &q, z, gw, l, k)) != TD_OK) goto done;
        c = k;
    }
    info->basis = c;
    /* after narrowing, z is n x k: its k x k Gram is cheaper than a QR of z and a k x k SVD */
    int ill = 1;
    if (zfloat && (st = td__svd_from_basis(q, z, m, n, k, uu, s, vv, rz, &ill)) != TD_OK) goto done;
    info->gram_final = !ill;
    if (ill && (st = td__orthonormalise_r(z, n, c, zfloat ? NULL : gw, rz)) != TD_OK) goto done;
    if (ill && (st = small_svd(rz, z, q, m, n, c, k, uu, s, vv)) != TD_OK) goto done;
    if (tr) {
        double *pu = u ? u : malloc(pm * k * sizeof(double));
        if (!pu) { st = TD_ENOMEM; goto done; }
        st = td__untranspose(uu, vv, pm, pn, k, pu, vt);
        if (!u) free(pu);
        if (st != TD_OK) goto done;
    }
    info->tail = fmax(w.na2 - sumsq(s, k), 0.0);
    double res = 0;
    if ((st = residual_norm(&w, q, z, rz, c, &rng, &res)) != TD_OK) goto done;
    info->residual = res;
    const double floor = (w.af ? RSVD_CHECK_FLOAT_FLOOR : RSVD_TAIL_FLOOR) * sqrt(w.na2);
    if (c < p && res > RSVD_CHECK_RATIO * s[k - 1] + floor) *check_ok = 0;
done:
    free(q);
    free(z);
    free(gw);
    free(rz);
    free(w.af);
    free(w.fx);
    free(w.fy);
    if (uu != u) free(uu);
    if (vv != vt) free(vv);
    return st;
}
