/* Per-layer curves: spectra (values only) and what configurations cost, from td_chain_cost_for. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "plan/internal.h"
#include "tdecomp/rank.h"

td_method td__plan_method(const td_layer_desc *d, const td_plan_options *opt)
{
    if (!opt->method_auto) return opt->method;
    return d->kind == TD_LAYER_CONV2D && d->kh * d->kw > 1 ? TD_METHOD_TUCKER2 : TD_METHOD_SVD;
}

void td_plan_curve_free(td_plan_curve *c)
{
    if (!c) return;
    for (int m = 0; m < 2; m++) {
        free(c->s2[m]);
        free(c->tail[m]);
    }
    for (int i = 0; i < TD_PLAN_MAX_GROUPS; i++) free(c->gtail[i]);
    free(c);
}

/* The chain method and ranks a configuration stands for (grouped with k = 1 is plain SVD). */
static void config_ranks(const td_plan_curve *c, size_t a, size_t b, td_method *m, size_t r[2])
{
    *m = c->method;
    r[0] = a;
    r[1] = b;
    if (c->method == TD_METHOD_SVD_GROUPED && a == 1) { *m = TD_METHOD_SVD; r[0] = b; r[1] = 0; }
}

static td_status cost_at(const td_plan_curve *c, size_t a, size_t b, double *params, double *flops)
{
    td_method m;
    size_t r[2];
    config_ranks(c, a, b, &m, r);
    td_cost cost;
    td_status st = td_chain_cost_for(&c->desc, m, r, &cost);
    *params = (double)cost.params;
    *flops = (double)cost.flops;
    return st;
}

/* Fits the bilinear cost over ranks (a, b) from td_chain_cost_for at (a1, 1), (a1 + 1, 1),
 * (a1, 2), (a1 + 1, 2), as far as amax and bmax allow (a rank that cannot vary gets no term).
 * For grouped SVD a is the fixed k (a1 = amax) and only j varies. */
static td_status fit_costs(td_plan_curve *c, size_t a1, size_t amax, size_t bmax, td__bilinear *p, td__bilinear *f)
{
    const int da = amax > a1, db = bmax > 1;
    double v[2][4];   /* [params, flops][(a1,1), (a1+1,1), (a1,2), (a1+1,2)] */
    const size_t as[4] = {a1, a1 + da, a1, a1 + da}, bs[4] = {1, 1, 1 + db, 1 + db};
    for (int q = 0; q < 4; q++) {
        td_status st = cost_at(c, as[q], bs[q], &v[0][q], &v[1][q]);
        if (st != TD_OK) return st;
    }
    td__bilinear *out[2] = {p, f};
    for (int k = 0; k < 2; k++) {
        const double *x = v[k];
        td__bilinear *o = out[k];
        o->cab = da && db ? x[3] - x[2] - x[1] + x[0] : 0;
        o->ca = da ? x[1] - x[0] - o->cab : 0;
        o->cb = db ? x[2] - x[0] - o->cab * (double)a1 : 0;
        o->c0 = x[0] - o->ca * (double)a1 - o->cb - o->cab * (double)a1;
    }
    return TD_OK;
}

double td__curve_cost(const td_plan_curve *c, size_t a, size_t b, int by_flops)
{
    int i = 0;
    if (c->method == TD_METHOD_SVD_GROUPED)
        while (i < c->nk - 1 && c->k[i] != a) i++;
    const td__bilinear *q = by_flops ? &c->flops[i] : &c->params[i];
    return q->c0 + q->ca * (double)a + q->cb * (double)b + q->cab * (double)a * (double)b;
}

/* The tail at rank a: ranks past the unfolding's rank n keep everything (tail n). */
static double tail_at(const td_plan_curve *c, int slot, size_t a)
{
    return c->tail[slot][a < c->n[slot] ? a : c->n[slot]];
}

double td__curve_err2(const td_plan_curve *c, size_t a, size_t b)
{
    switch (c->method) {
    case TD_METHOD_TUCKER2:
    case TD_METHOD_CP: return tail_at(c, 0, a) + tail_at(c, 1, c->method == TD_METHOD_CP ? a : b);
    case TD_METHOD_SVD: return tail_at(c, 0, a);
    default:
        for (int i = 0; i < c->nk; i++)
            if (c->k[i] == a) return c->gtail[i][b < c->jmax[i] ? b : c->jmax[i]];
        return INFINITY;
    }
}

double td__curve_est(const td_plan_curve *c, size_t a, size_t b)
{
    return c->nw2 > 0 ? sqrt(td__curve_err2(c, a, b) / c->nw2) : 0;
}

static double *tails_of(const double *s2, size_t n)
{
    double *t = malloc((n + 1) * sizeof *t);
    if (t) td_rank_tails(s2, n, t);
    return t;
}

/* Spectrum of one unfolding, cut to the ranks that matter: min(I_mode, size / I_mode). */
static td_status mode_curve(td_plan_curve *c, const td_tensor *w, int mode, int slot)
{
    const size_t im = w->shape[mode], cols = w->size / im;
    c->n[slot] = im < cols ? im : cols;
    c->len[slot] = im;
    c->size = w->size;
    if (!(c->s2[slot] = malloc(im * sizeof(double)))) return TD_ENOMEM;
    td_status st = td_mode_spectrum(w, mode, 0, NULL, c->s2[slot]);
    if (st == TD_OK && !(c->tail[slot] = tails_of(c->s2[slot], c->n[slot]))) st = TD_ENOMEM;
    return st;
}

/* ALDS' grouped SVD: for each k dividing Cin (up to TD_PLAN_MAX_GROUPS, or just kfixed), the
 * summed tails of the groups' (Cout, Cin/k kh kw) slices. */
static td_status group_curves(td_plan_curve *c, const td_tensor *kernel, const td_layer_stats *stats, size_t kfixed)
{
    const td_layer_desc *d = &c->desc;
    const size_t sp = d->kh * d->kw;
    td_status st = TD_OK;
    for (size_t k = 1; k <= TD_PLAN_MAX_GROUPS && st == TD_OK; k++) {
        if (d->cin % k || (kfixed && k != kfixed)) continue;
        td_tensor wt = {0};   /* with statistics, each k whitens with its own diagonal blocks */
        if (stats && (st = td_layer_whiten(d, stats, TD_METHOD_SVD_GROUPED, k, kernel, &wt)) != TD_OK) break;
        const td_tensor *w = stats ? &wt : kernel;
        const size_t cols = d->cin / k * sp, jm = d->cout < cols ? d->cout : cols;
        td_tensor slice = {0};
        double *s2 = malloc(d->cout * sizeof(double)), *sum = calloc(jm + 1, sizeof(double));
        if (!s2 || !sum) st = TD_ENOMEM;
        if (st == TD_OK) st = td_matrix_alloc(&slice, d->cout, cols);
        for (size_t g = 0; g < k && st == TD_OK; g++) {
            for (size_t o = 0; o < d->cout; o++)
                memcpy(slice.data + o * cols, w->data + o * d->cin * sp + g * cols, cols * sizeof(double));
            if ((st = td_mode_spectrum(&slice, 0, 0, NULL, s2)) != TD_OK) break;
            double t = 0;
            for (size_t i = d->cout; i-- > 0;) {
                t += s2[i] > 0 ? s2[i] : 0;
                if (i <= jm) sum[i] += t;
            }
        }
        td_tensor_free(&slice);
        td_tensor_free(&wt);
        free(s2);
        if (st != TD_OK) { free(sum); break; }
        c->k[c->nk] = k;
        c->jmax[c->nk] = jm;
        c->gtail[c->nk++] = sum;
    }
    return st == TD_OK && c->nk == 0 ? TD_EINVAL : st;
}

static td_status build_curves(td_plan_curve *c, const td_plan_layer *l, const td_tensor *w, const td_plan_options *opt)
{
    td_cost before;
    td_status st = td_layer_cost(&l->desc, &before);
    if (st != TD_OK) return st;
    c->desc = l->desc;
    c->method = td__plan_method(&l->desc, opt);
    c->params_before = before.params;
    c->flops_before = before.flops;
    c->flops_known = before.known;
    const double nw = td_norm(w);
    c->nw2 = nw * nw;
    if (c->method == TD_METHOD_SVD_GROUPED) {
        if ((st = group_curves(c, w, l->stats, opt->svd_groups)) != TD_OK) return st;
        if (l->stats) { /* relative to the whitened kernel's norm (k = 1: the same for every k) */
            td_tensor wt = {0};
            if ((st = td_layer_whiten(&l->desc, l->stats, TD_METHOD_SVD, 1, w, &wt)) != TD_OK) return st;
            const double n2 = td_norm(&wt);
            c->nw2 = n2 * n2;
            td_tensor_free(&wt);
        }
        for (int i = 0; i < c->nk && st == TD_OK; i++)
            st = fit_costs(c, c->k[i], c->k[i], c->jmax[i], &c->params[i], &c->flops[i]);
        return st;
    }
    const int two = c->method == TD_METHOD_TUCKER2 || c->method == TD_METHOD_CP;
    td_tensor mat = *w;
    if (c->method == TD_METHOD_SVD && w->ndim == 4) { /* the lowering (Cout, Cin kh kw) */
        size_t shape[2] = {w->shape[0], w->size / w->shape[0]};
        if ((st = td_tensor_view(&mat, 2, shape, w->data)) != TD_OK) return st;
    }
    if ((st = mode_curve(c, &mat, 0, 0)) != TD_OK) return st;
    if (two && (st = mode_curve(c, w, 1, 1)) != TD_OK) return st;
    /* the ranks a configuration may take: Tucker-2 up to the channels, CP any, SVD its limit */
    const size_t amax = c->method == TD_METHOD_TUCKER2 ? l->desc.cout : c->method == TD_METHOD_CP ? SIZE_MAX : c->n[0];
    return fit_costs(c, 1, amax, c->method == TD_METHOD_TUCKER2 ? l->desc.cin : 1, &c->params[0], &c->flops[0]);
}

/* With statistics the spectra are those of the whitened kernel: the planner's errors are then
 * relative output errors (svd-grouped whitens per k in group_curves). */
static td_status build(td_plan_curve *c, const td_plan_layer *l, const td_tensor *w, const td_plan_options *opt)
{
    const td_method m = td__plan_method(&l->desc, opt);
    if (!l->stats || m == TD_METHOD_SVD_GROUPED) return build_curves(c, l, w, opt);
    td_tensor wt = {0};
    td_status st = td_layer_whiten(&l->desc, l->stats, m, 1, w, &wt);
    if (st == TD_OK) st = build_curves(c, l, &wt, opt);
    td_tensor_free(&wt);
    return st;
}

td_status td_plan_curve_new(const td_plan_layer *l, const td_tensor *kernel, const td_plan_options *opt,
                            td_plan_curve **out, td_error *err)
{
    if (!out) return TD_EINVAL;
    *out = NULL;
    if (!l || !opt) return TD_EINVAL;
    if (!td_plan_needs_curve(l, opt)) return TD_OK;
    if (!kernel || !kernel->data) return td__error_set(err, TD_EINVAL, NULL, l->name, "no kernel given");
    td_plan_curve *c = calloc(1, sizeof *c);
    if (!c) return td__error_set(err, TD_ENOMEM, NULL, l->name, "out of memory");
    td_status st = td_tensor_check_values(kernel);
    if (st == TD_OK) st = build(c, l, kernel, opt);
    if (st != TD_OK) {
        td_plan_curve_free(c);
        return td__error_set(err, st, NULL, l->name, "cannot compute its spectra: %s", td_strerror(st));
    }
    *out = c;
    return TD_OK;
}

/* Smallest b in [1, bmax] with tail0 + tail1[b] <= e2 (tails are non-increasing). */
static size_t smallest_b(const double *tail1, size_t bmax, double t0, double e2)
{
    size_t lo = 1, hi = bmax;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (t0 + tail1[mid] <= e2 * TD__ERR_SLACK) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static void consider(td__config *best, const td_plan_curve *c, size_t a, size_t b, int by_flops)
{
    const double cost = td__curve_cost(c, a, b, by_flops);
    if (cost < best->cost) *best = (td__config){a, b, cost, td__curve_err2(c, a, b)};
}

td__config td__curve_cheapest(const td_plan_curve *c, double e2, int by_flops)
{
    td__config best = {0, 0, INFINITY, 0};
    if (c->method == TD_METHOD_SVD_GROUPED) {
        for (int i = 0; i < c->nk; i++)
            for (size_t j = 1; j <= c->jmax[i]; j++)
                if (c->gtail[i][j] <= e2 * TD__ERR_SLACK) { consider(&best, c, c->k[i], j, by_flops); break; }
        return best;
    }
    if (c->method == TD_METHOD_SVD) {
        for (size_t j = 1; j <= c->n[0]; j++)
            if (c->tail[0][j] <= e2 * TD__ERR_SLACK) { consider(&best, c, j, 0, by_flops); break; }
        return best;
    }
    for (size_t a = 1; a <= c->n[0]; a++) {   /* tucker2 and cp (cp: R = max(a, b)) */
        const double t0 = c->tail[0][a];
        if (t0 > e2 * TD__ERR_SLACK || t0 + c->tail[1][c->n[1]] > e2 * TD__ERR_SLACK) continue;
        const size_t b = smallest_b(c->tail[1], c->n[1], t0, e2);
        if (c->method == TD_METHOD_CP) consider(&best, c, a > b ? a : b, 0, by_flops);
        else consider(&best, c, a, b, by_flops);
    }
    return best;
}

static int cmp_config(const void *x, const void *y)
{
    const td__config *p = x, *q = y;
    if (p->cost != q->cost) return p->cost < q->cost ? -1 : 1;
    return p->err2 < q->err2 ? -1 : (p->err2 > q->err2);
}

td_status td__curve_frontier(const td_plan_curve *c, int by_flops, int keep_larger, td__config **out, size_t *n)
{
    size_t cap = 1;
    if (c->method == TD_METHOD_TUCKER2) cap += c->n[0] * c->n[1];
    else if (c->method == TD_METHOD_SVD_GROUPED) for (int i = 0; i < c->nk; i++) cap += c->jmax[i];
    else cap += c->n[0];
    td__config *v = malloc(cap * sizeof *v);
    if (!v) return TD_ENOMEM;
    const double whole = by_flops ? (double)c->flops_before : (double)c->params_before;
    size_t m = 0;
    if (c->method == TD_METHOD_TUCKER2) {
        for (size_t a = 1; a <= c->n[0]; a++)
            for (size_t b = 1; b <= c->n[1]; b++) v[m++] = (td__config){a, b, td__curve_cost(c, a, b, by_flops), td__curve_err2(c, a, b)};
    } else if (c->method == TD_METHOD_SVD_GROUPED) {
        for (int i = 0; i < c->nk; i++)
            for (size_t j = 1; j <= c->jmax[i]; j++)
                v[m++] = (td__config){c->k[i], j, td__curve_cost(c, c->k[i], j, by_flops), c->gtail[i][j]};
    } else {
        for (size_t a = 1; a <= c->n[0]; a++) v[m++] = (td__config){a, 0, td__curve_cost(c, a, 0, by_flops), td__curve_err2(c, a, 0)};
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (keep_larger || v[i].cost < whole) v[k++] = v[i];
    qsort(v, k, sizeof *v, cmp_config);
    size_t f = 0;
    double best = INFINITY;
    for (size_t i = 0; i < k; i++)
        if (v[i].err2 < best) { best = v[i].err2; v[f++] = v[i]; }
    if (!keep_larger) v[f++] = (td__config){0, 0, whole, 0}; /* staying whole */
    *out = v;
    *n = f;
    return TD_OK;
}

/* Bytes of one values-only spectrum of mode `mode` of a tensor of shape (nd modes), as double. */
static double spectrum_bytes(int nd, const size_t *shape, int mode)
{
    uint64_t b;
    return td_mode_spectrum_workspace(nd, shape, mode, 0, &b) == TD_OK ? (double)b : INFINITY;
}

td_status td_plan_curve_workspace(const td_plan_layer *l, const td_plan_options *opt, uint64_t *bytes)
{
    if (!l || !opt || !bytes) return TD_EINVAL;
    *bytes = 0;
    td_cost c;
    td_status st = td_layer_cost(&l->desc, &c);
    if (st != TD_OK || !td_plan_needs_curve(l, opt)) return st;
    const td_layer_desc *d = &l->desc;
    const td_method m = td__plan_method(d, opt);
    const int patch = l->stats && l->stats->patch_cov;
    const size_t kshape[4] = {d->cout, d->cin / d->groups, d->kh, d->kw}, cols = (size_t)c.params / d->cout;
    const size_t mat[2] = {d->cout, cols};
    uint64_t wb = 0;
    double need = 0;
    if (m == TD_METHOD_SVD_GROUPED) {
        for (size_t k = 1; k <= TD_PLAN_MAX_GROUPS; k++) {
            if (d->cin % k || (opt->svd_groups && k != opt->svd_groups)) continue;
            const size_t slice[2] = {d->cout, cols / k};
            if (l->stats && (st = td_layer_whiten_workspace(d, patch, m, k, &wb)) != TD_OK) return st;
            need = fmax(need, (double)wb + 8.0 * ((double)c.params / (double)k + 2.0 * (double)d->cout) + spectrum_bytes(2, slice, 0));
        }
    } else {
        if (l->stats && (st = td_layer_whiten_workspace(d, patch, m, 1, &wb)) != TD_OK) return st;
        double spec = m == TD_METHOD_SVD ? spectrum_bytes(2, mat, 0) : spectrum_bytes(4, kshape, 0);
        if (m == TD_METHOD_TUCKER2 || m == TD_METHOD_CP) spec = fmax(spec, spectrum_bytes(4, kshape, 1));
        need = (double)wb + spec;
    }
    /* the curve itself: spectra and tails of both modes, the grouped tails */
    need += 8.0 * (4.0 * (double)(d->cout + d->cin) + TD_PLAN_MAX_GROUPS * ((double)d->cout + 1)) + sizeof(td_plan_curve);
    if (!(need < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)need;
    return TD_OK;
}

const double *td_plan_curve_spectrum(const td_plan_curve *c, int mode, size_t *len)
{
    if (len) *len = 0;
    if (!c || mode < 0 || mode > 1 || !c->s2[mode]) return NULL;
    if (len) *len = c->len[mode];
    return c->s2[mode];
}

td_method td_plan_curve_method(const td_plan_curve *c) { return c ? c->method : TD_METHOD_NONE; }

td_status td_plan_curve_eval(const td_plan_curve *c, const size_t ranks[2], double *est_error, td_cost *cost)
{
    if (!c || !ranks || !est_error || !cost) return TD_EINVAL;
    /* the curve's configuration (a, b) for the chain's ranks: svd-grouped (k, j), else as given */
    const size_t a = ranks[0], b = c->method == TD_METHOD_TUCKER2 || c->method == TD_METHOD_SVD_GROUPED ? ranks[1] : 0;
    td_status st = td_chain_cost_for(&c->desc, c->method, ranks, cost);
    if (st != TD_OK) return st;
    if (!isfinite(td__curve_err2(c, a, b))) return TD_EINVAL; /* a group count the curve has no tails for */
    *est_error = td__curve_est(c, a, b);
    return TD_OK;
}
