/* Tucker on any set of modes: HOSVD, ST-HOSVD, HOOI. Leading singular vectors come from the
 * Gram of the unfolding (SYRK on the C-order blocks) and dsyevd; no unfolding is copied. */
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

/* Leading r left singular vectors of y's mode unfolding into u (allocated here), with the
 * spectrum handed to the rank decision first. */
static td_status mode_factor(const td_tucker_options *o, const td_tensor *y, int mode,
                             size_t requested, size_t *rank, int *clamped, td_tensor *u)
{
    const size_t n = y->shape[mode];
    td_tensor g = {0};
    double *ev = malloc((n ? n : 1) * sizeof(double));
    td_status st = TD_OK;
    if (!ev) return TD_ENOMEM;
    if ((st = td_matrix_alloc(&g, n, n)) != TD_OK) goto done;
    if ((st = td_gram(y, mode, &g)) != TD_OK) goto done;
    if (o->truncate) {
        /* spectrum first, then the vectors for the chosen rank */
        if ((st = td__sym_eig_leading(g.data, n, 0, NULL, ev)) != TD_OK) goto done;
        size_t cols = n ? y->size / n : 0, rk = n < cols ? n : cols;
        for (size_t i = 0; i < n; i++) ev[i] = (i < rk && ev[i] > 0) ? ev[i] : 0.0;
    }
    if ((st = decide_rank(o, mode, ev, n, requested, rank, clamped)) != TD_OK) goto done;
    if ((st = td_matrix_alloc(u, n, *rank)) != TD_OK) goto done;
    st = td__sym_eig_leading(g.data, n, *rank, u->data, NULL);
done:
    if (st != TD_OK) td_tensor_free(u); /* the caller's factor stays empty on failure */
    td_tensor_free(&g);
    free(ev);
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

td_status td_tucker(const td_tensor *x, int nmodes, const int *modes, const size_t *ranks,
                    const td_tucker_options *opt, td_tucker_result *res)
{
    if (!res) return TD_EINVAL;
    memset(res, 0, sizeof *res);
    td_tucker_options def;
    if (!opt) { td_tucker_options_init(&def); opt = &def; }
    if (!x || !modes || nmodes < 1 || nmodes > x->ndim || (!ranks && !opt->truncate)) return TD_EINVAL;
    if (opt->method < TD_TUCKER_HOSVD || opt->method > TD_TUCKER_HOOI) return TD_EINVAL;
    if (opt->method == TD_TUCKER_HOOI && (opt->max_iter < 0 || !(opt->tol >= 0))) return TD_EINVAL;
    size_t req[TD_MAX_MODES] = {0};
    int used[TD_MAX_MODES] = {0};
    for (int i = 0; i < nmodes; i++) {
        int m = modes[i];
        if (m < 0 || m >= x->ndim || used[m]) return TD_EINVAL;
        used[m] = 1;
        req[m] = ranks ? ranks[i] : 0;
        if (ranks && ranks[i] == 0 && !opt->truncate) return TD_EINVAL;
        if (ranks && !opt->truncate && ranks[i] > x->shape[m] && !opt->clamp) return TD_EINVAL;
    }
    if (x->size == 0) return TD_EINVAL;
    td_status st = td_tensor_check_finite(x);
    if (st != TD_OK) return st;

    const double t0 = td__now();
    const double nx = td_norm(x);
    int order[TD_MAX_MODES] = {0}, n = 0;
    for (int m = 0; m < x->ndim; m++)
        if (used[m]) order[n++] = m;
    res->nmodes = n;
    for (int i = 0; i < n; i++) res->modes[i] = res->order[i] = order[i];

    td_tensor fac[TD_MAX_MODES] = {{0}};
    size_t rank_of[TD_MAX_MODES] = {0};
    int clamped_of[TD_MAX_MODES] = {0};
    const td_tensor *mats[TD_MAX_MODES] = {0};
    td_tensor y = {0}, y2 = {0};

    if (opt->method == TD_TUCKER_STHOSVD) {
        for (int m = 0; m < x->ndim; m++)
            rank_of[m] = used[m] ? (req[m] && req[m] <= x->shape[m] ? req[m] : x->shape[m]) : x->shape[m];
        int ord[TD_MAX_MODES];
        memcpy(ord, order, sizeof ord);
        best_order(x, ord, n, rank_of);
        for (int i = 0; i < n; i++) res->order[i] = ord[i];
        const td_tensor *cur = x;
        for (int i = 0; i < n; i++) {
            int m = ord[i];
            if ((st = mode_factor(opt, cur, m, req[m], &rank_of[m], &clamped_of[m], &fac[m])) != TD_OK) goto fail;
            const td_tensor *one[TD_MAX_MODES] = {0};
            one[m] = &fac[m];
            if ((st = project(cur, one, -1, &y2)) != TD_OK) goto fail;
            td_tensor_free(&y);
            y = y2;
            memset(&y2, 0, sizeof y2);
            cur = &y;
        }
        res->core = y;
        memset(&y, 0, sizeof y);
        res->converged = 1;
    } else {
        /* HOSVD, also HOOI's initialisation: every factor from the original x. */
        for (int i = 0; i < n; i++) {
            int m = order[i];
            if ((st = mode_factor(opt, x, m, req[m], &rank_of[m], &clamped_of[m], &fac[m])) != TD_OK) goto fail;
        }
        for (int i = 0; i < n; i++) mats[order[i]] = &fac[order[i]];
        if ((st = project(x, mats, -1, &res->core)) != TD_OK) goto fail;
        res->converged = 1;
        if (opt->method == TD_TUCKER_HOOI && opt->max_iter > 0 && nx > 0) {
            res->history = malloc((size_t)opt->max_iter * sizeof(double));
            if (!res->history) { st = TD_ENOMEM; goto fail; }
            res->converged = 0;
            double prev = 0;
            td_tucker_options fixed = *opt;
            fixed.truncate = NULL; /* ranks are fixed after the initialisation */
            for (int it = 0; it < opt->max_iter; it++) {
                int last = order[n - 1];
                for (int i = 0; i < n; i++) {
                    int m = order[i];
                    if ((st = project(x, mats, m, &y)) != TD_OK) goto fail;
                    td_tensor nu = {0};
                    int cl;
                    size_t r;
                    st = mode_factor(&fixed, &y, m, rank_of[m], &r, &cl, &nu);
                    if (st != TD_OK) goto fail;
                    td_tensor_free(&fac[m]);
                    fac[m] = nu;
                    mats[m] = &fac[m];
                    if (m == last) {
                        /* core = Y x_last U_last^T: Y already carries every other projection */
                        const td_tensor *one[TD_MAX_MODES] = {0};
                        one[m] = &fac[m];
                        td_tensor_free(&res->core);
                        if ((st = project(&y, one, -1, &res->core)) != TD_OK) goto fail;
                    }
                    td_tensor_free(&y);
                }
                double ng = td_norm(&res->core);
                double e = sqrt(fmax(nx * nx - ng * ng, 0.0)) / nx;
                res->history[it] = e;
                res->iterations = it + 1;
                if (opt->progress && opt->progress(opt->progress_ctx, it + 1, e)) {
                    st = TD_ECANCELED;
                    goto fail;
                }
                if (it > 0 && fabs(prev - e) < opt->tol) { res->converged = 1; break; }
                prev = e;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        int m = order[i];
        res->factors[i] = fac[m];
        memset(&fac[m], 0, sizeof fac[m]);
        res->ranks[i] = rank_of[m];
        res->clamped[i] = clamped_of[m];
    }
    if ((st = exact_error(x, nx, res, &res->rel_error)) != TD_OK) goto fail;
    res->seconds = td__now() - t0;
    return TD_OK;
fail:
    for (int m = 0; m < TD_MAX_MODES; m++) td_tensor_free(&fac[m]);
    td_tensor_free(&y);
    td_tensor_free(&y2);
    td_tucker_free(res);
    return st;
}
