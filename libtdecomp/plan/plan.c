/* The planner: per-layer decisions from rank rules, and the global min-max allocator (ALDS
 * objective): every decomposed layer is cut at one common relative-error level, the smallest
 * level whose total cost meets the budget, using spectral error curves only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "tdecomp/plan.h"
#include "tdecomp/rank.h"

void td_plan_options_init(td_plan_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->method_auto = 1;
}

#define MAXK 8
typedef struct curve {
    td_method method;
    size_t cout, cin, kh, kw, hw, howo, how; /* pixels: input, output, (Ho x W) for CP */
    int flops_known;
    double nw2;
    double *tail0, *tail1;                   /* tail[r] = sum_{i >= r} s2[i] */
    size_t r0max, r1max;                     /* ranks available per mode */
    size_t kopt[MAXK];
    int nk;
    double *gtail[MAXK];                     /* grouped SVD: summed group tails, index j */
    size_t jmax[MAXK];
    uint64_t params_before, flops_before;
} curve;

typedef struct config {
    size_t a, b;     /* tucker2 (R_out, R_in); cp (R, -); svd (j, -); grouped (k, j) */
    uint64_t params, flops;
    double err2;     /* predicted squared error (absolute) */
} config;

static void curve_free(curve *c)
{
    free(c->tail0);
    free(c->tail1);
    for (int i = 0; i < MAXK; i++) free(c->gtail[i]);
    memset(c, 0, sizeof *c);
}

/* tails of a spectrum of n values, rank-limited to rmax; returns NULL on allocation failure */
static double *tails(const double *s2, size_t n)
{
    double *t = malloc((n + 1) * sizeof(double));
    if (!t) return NULL;
    t[n] = 0;
    for (size_t i = n; i-- > 0;) t[i] = t[i + 1] + (s2[i] > 0 ? s2[i] : 0);
    return t;
}

static td_status mode_tails(const td_tensor *w, int mode, double **out, size_t *n)
{
    size_t m = w->shape[mode];
    double *s2 = malloc(m * sizeof(double));
    if (!s2) return TD_ENOMEM;
    td_status st = td_mode_spectrum(w, mode, 0, NULL, s2);
    if (st == TD_OK) {
        *out = tails(s2, m);
        if (!*out) st = TD_ENOMEM;
        size_t cols = w->size / m;
        *n = m < cols ? m : cols;
    }
    free(s2);
    return st;
}

static uint64_t cfg_params(const curve *c, size_t a, size_t b)
{
    switch (c->method) {
    case TD_METHOD_TUCKER2: return (uint64_t)b * c->cin + (uint64_t)a * b * c->kh * c->kw + (uint64_t)c->cout * a;
    case TD_METHOD_CP: return (uint64_t)a * (c->cin + c->kh + c->kw + c->cout);
    case TD_METHOD_SVD: return (uint64_t)a * (c->cin * c->kh * c->kw + c->cout);
    case TD_METHOD_SVD_GROUPED: return (uint64_t)b * c->cin * c->kh * c->kw + (uint64_t)c->cout * a * b;
    default: return c->params_before;
    }
}

/* FLOPs = 2 MACs, each piece at the size it sees (layer.h's convention). */
static uint64_t cfg_flops(const curve *c, size_t a, size_t b)
{
    if (!c->flops_known) return 0;
    uint64_t m;
    switch (c->method) {
    case TD_METHOD_TUCKER2:
        m = (uint64_t)c->hw * b * c->cin + (uint64_t)c->howo * ((uint64_t)a * b * c->kh * c->kw + (uint64_t)c->cout * a);
        break;
    case TD_METHOD_CP:
        m = (uint64_t)c->hw * a * c->cin + (uint64_t)c->how * a * c->kh + (uint64_t)c->howo * a * (c->kw + c->cout);
        break;
    default: m = (uint64_t)c->howo * cfg_params(c, a, b); break;
    }
    return 2 * m;
}

static config make_cfg(const curve *c, size_t a, size_t b, double err2)
{
    config g = {a, b, cfg_params(c, a, b), cfg_flops(c, a, b), err2};
    return g;
}

/* Cheapest configuration (by params, or flops when by_flops) with predicted error^2 <= e2. */
static config cheapest(const curve *c, double e2, int by_flops)
{
    config best = {0, 0, UINT64_MAX, UINT64_MAX, 0};
#define COST(g) (by_flops ? (g).flops : (g).params)
    switch (c->method) {
    case TD_METHOD_TUCKER2:
    case TD_METHOD_CP:
        for (size_t a = 1; a <= c->r0max; a++) {
            if (c->tail0[a] > e2 * (1 + 1e-12)) continue;
            size_t lo = 1, hi = c->r1max; /* smallest b with tail0[a] + tail1[b] <= e2 */
            if (c->tail0[a] + c->tail1[hi] > e2 * (1 + 1e-12)) continue;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (c->tail0[a] + c->tail1[mid] <= e2 * (1 + 1e-12)) hi = mid; else lo = mid + 1;
            }
            config g = c->method == TD_METHOD_CP ? make_cfg(c, a > lo ? a : lo, 0, c->tail0[a] + c->tail1[lo])
                                                 : make_cfg(c, a, lo, c->tail0[a] + c->tail1[lo]);
            if (COST(g) < COST(best)) best = g;
        }
        break;
    case TD_METHOD_SVD:
        for (size_t j = 1; j <= c->r0max; j++)
            if (c->tail0[j] <= e2 * (1 + 1e-12)) { best = make_cfg(c, j, 0, c->tail0[j]); break; }
        break;
    case TD_METHOD_SVD_GROUPED:
        for (int i = 0; i < c->nk; i++)
            for (size_t j = 1; j <= c->jmax[i]; j++)
                if (c->gtail[i][j] <= e2 * (1 + 1e-12)) {
                    config g = make_cfg(c, c->kopt[i], j, c->gtail[i][j]);
                    if (COST(g) < COST(best)) best = g;
                    break;
                }
        break;
    default: break;
    }
#undef COST
    return best;
}

static double cfg_err2(const curve *c, size_t a, size_t b);

/* Pareto frontier of a layer: configurations sorted by cost with strictly decreasing relative
 * squared error; the whole layer (cost before, error 0) closes it unless keep_larger. */
typedef struct front {
    config *v;
    size_t n;
} front;

static int cmp_cost(const void *a, const void *b)
{
    const config *x = a, *y = b;
    if (x->flops != y->flops) return x->flops < y->flops ? -1 : 1; /* flops holds the sort key */
    return x->err2 < y->err2 ? -1 : (x->err2 > y->err2);
}

static td_status build_front(const curve *c, int by_flops, int keep_larger, front *f)
{
    size_t cap = 0;
    switch (c->method) {
    case TD_METHOD_TUCKER2: cap = c->r0max * c->r1max; break;
    case TD_METHOD_CP: case TD_METHOD_SVD: cap = c->r0max; break;
    case TD_METHOD_SVD_GROUPED: for (int i = 0; i < c->nk; i++) cap += c->jmax[i]; break;
    default: break;
    }
    config *all = malloc((cap + 1) * sizeof(config));
    if (!all) return TD_ENOMEM;
    size_t m = 0;
    const uint64_t whole = by_flops ? c->flops_before : c->params_before;
    for (size_t a = 1; c->method == TD_METHOD_TUCKER2 && a <= c->r0max; a++)
        for (size_t b = 1; b <= c->r1max; b++) all[m++] = make_cfg(c, a, b, cfg_err2(c, a, b));
    for (size_t a = 1; (c->method == TD_METHOD_CP || c->method == TD_METHOD_SVD) && a <= c->r0max; a++)
        all[m++] = make_cfg(c, a, 0, cfg_err2(c, a, 0));
    for (int i = 0; c->method == TD_METHOD_SVD_GROUPED && i < c->nk; i++)
        for (size_t j = 1; j <= c->jmax[i]; j++) all[m++] = make_cfg(c, c->kopt[i], j, c->gtail[i][j]);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        uint64_t cost = by_flops ? all[i].flops : all[i].params;
        if (cost >= whole && !keep_larger) continue;
        all[k] = all[i];
        all[k++].flops = cost; /* sort key; restored from make_cfg when chosen */
    }
    qsort(all, k, sizeof(config), cmp_cost);
    size_t n = 0;
    double best = INFINITY;
    for (size_t i = 0; i < k; i++)
        if (all[i].err2 < best) { best = all[i].err2; all[n++] = all[i]; }
    if (!keep_larger) { /* staying whole: error 0 at the original cost */
        config w = {0, 0, c->params_before, whole, 0};
        all[n++] = w;
    }
    f->v = all;
    f->n = n;
    return TD_OK;
}

/* For multiplier lam, each layer's frontier point minimising err2/nw2 + lam * cost. */
static uint64_t lagrange_pick(const curve *cv, const front *fr, const int *active, size_t n, double lam,
                              size_t *pick)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!active[i]) continue;
        double best = INFINITY;
        size_t bi = 0;
        for (size_t q = 0; q < fr[i].n; q++) {
            double v = (cv[i].nw2 > 0 ? fr[i].v[q].err2 / cv[i].nw2 : 0) + lam * (double)fr[i].v[q].flops;
            if (v < best) { best = v; bi = q; }
        }
        pick[i] = bi;
        total += fr[i].v[bi].flops;
    }
    return total;
}

static int applies(const td_layer_desc *d, td_method m)
{
    const int kxk = d->kind == TD_LAYER_CONV2D && d->kh * d->kw > 1;
    switch (m) {
    case TD_METHOD_TUCKER2: case TD_METHOD_CP: case TD_METHOD_SVD_GROUPED: return kxk;
    case TD_METHOD_SVD: return 1;
    default: return 0;
    }
}

static td_status build_curve(const td_plan_layer *l, td_method m, size_t kfixed, curve *c)
{
    const td_layer_desc *d = &l->desc;
    memset(c, 0, sizeof *c);
    c->method = m;
    c->cout = d->cout;
    c->cin = d->cin;
    c->kh = d->kh;
    c->kw = d->kw;
    td_cost cost;
    td_status st = td_layer_cost(d, &cost);
    if (st != TD_OK) return st;
    c->params_before = cost.params;
    c->flops_before = cost.known ? cost.flops : 0;
    if (d->kind == TD_LAYER_DENSE) {
        c->flops_known = 1;
        c->hw = c->howo = c->how = 1;
    } else if (d->input_known) {
        size_t ho, wo;
        if ((st = td_layer_output_size(d, d->in_h, d->in_w, &ho, &wo)) != TD_OK) return st;
        c->flops_known = 1;
        c->hw = d->in_h * d->in_w;
        c->howo = ho * wo;
        c->how = ho * d->in_w;
    }
    double nw = td_norm(l->kernel);
    c->nw2 = nw * nw;
    if (m == TD_METHOD_SVD_GROUPED) {
        const size_t sp = d->kh * d->kw;
        for (size_t k = 1; k <= MAXK && c->nk < MAXK; k++) {
            if (d->cin % k || (kfixed && k != kfixed)) continue;
            const size_t cg = d->cin / k, cols = cg * sp, jm = d->cout < cols ? d->cout : cols;
            td_tensor slice = {0};
            double *s2 = malloc(d->cout * sizeof(double)), *sum = calloc(jm + 1, sizeof(double));
            if (!s2 || !sum || (st = td_matrix_alloc(&slice, d->cout, cols)) != TD_OK) {
                free(s2); free(sum); td_tensor_free(&slice);
                return st != TD_OK ? st : TD_ENOMEM;
            }
            for (size_t g = 0; g < k && st == TD_OK; g++) {
                for (size_t o = 0; o < d->cout; o++)
                    memcpy(slice.data + o * cols, l->kernel->data + o * d->cin * sp + g * cols, cols * sizeof(double));
                if ((st = td_mode_spectrum(&slice, 0, 0, NULL, s2)) == TD_OK) {
                    double t = 0;
                    for (size_t i = d->cout; i-- > 0;) {
                        t += s2[i];
                        if (i <= jm) sum[i] += t;
                    }
                }
            }
            td_tensor_free(&slice);
            free(s2);
            if (st != TD_OK) { free(sum); return st; }
            c->kopt[c->nk] = k;
            c->jmax[c->nk] = jm;
            c->gtail[c->nk++] = sum;
        }
        if (c->nk == 0) return TD_EINVAL;
        return TD_OK;
    }
    size_t n0, n1;
    if ((st = mode_tails(l->kernel, 0, &c->tail0, &n0)) != TD_OK) return st;
    c->r0max = n0;
    if (m == TD_METHOD_TUCKER2 || m == TD_METHOD_CP) {
        if ((st = mode_tails(l->kernel, 1, &c->tail1, &n1)) != TD_OK) return st;
        c->r1max = n1;
    }
    return TD_OK;
}

static void skip(td_plan_decision *o, const char *why)
{
    o->skipped = 1;
    o->method = TD_METHOD_NONE;
    o->nranks = 0;
    snprintf(o->reason, sizeof o->reason, "%s", why);
    o->params_after = o->params_before;
    o->flops_after = o->flops_before;
    o->est_error = 0;
}

static size_t clampz(size_t v, size_t hi, int *cl)
{
    if (v > hi) { *cl = 1; return hi; }
    return v;
}

/* Ranks from a per-layer rule (not a global target). */
static td_status local_ranks(const td_plan_layer *l, const curve *c, const td_plan_options *opt,
                             td_plan_decision *o, size_t *a, size_t *b)
{
    const td_layer_desc *d = &l->desc;
    const size_t mn = c->r0max; /* SVD: min(rows, cols) */
    size_t r0 = 0, r1 = 0;
    int cl = 0;
    td_status st = TD_OK;
    switch (opt->rule) {
    case TD_RULE_RANK: r0 = r1 = opt->rank; break;
    case TD_RULE_RANKS: r0 = opt->ranks[0]; r1 = opt->ranks[1]; break;
    case TD_RULE_RATIO:
        r0 = td_rank_ratio(opt->value, d->cout);
        r1 = td_rank_ratio(opt->value, d->cin);
        break;
    case TD_RULE_ENERGY:
    case TD_RULE_VBMF: {
        /* per mode from the unfolding spectra (tails give the spectrum back) */
        const int nmode = (c->method == TD_METHOD_TUCKER2 || c->method == TD_METHOD_CP) ? 2 : 1;
        for (int md = 0; md < nmode && st == TD_OK; md++) {
            const double *t = md == 0 ? c->tail0 : c->tail1;
            const size_t n = md == 0 ? c->r0max : c->r1max;
            double *s2 = malloc((n ? n : 1) * sizeof(double));
            if (!s2) return TD_ENOMEM;
            for (size_t i = 0; i < n; i++) s2[i] = t[i] - t[i + 1];
            size_t r = 0;
            if (opt->rule == TD_RULE_ENERGY) {
                st = td_rank_energy(s2, n, opt->value, &r);
            } else {
                for (size_t i = 0; i < n; i++) s2[i] = sqrt(s2[i] > 0 ? s2[i] : 0);
                size_t rows = l->kernel->shape[md], cols = l->kernel->size / rows;
                st = td_rank_evbmf(s2, n, rows, cols, &r, NULL);
            }
            free(s2);
            if (md == 0) r0 = r; else r1 = r;
        }
        if (st != TD_OK) return st;
        if (nmode == 1) r1 = r0;
        if (r0 == 0 || r1 == 0) { skip(o, "rank 0 (EVBMF)"); return TD_OK; }
        break;
    }
    default: return TD_EINVAL;
    }
    switch (c->method) {
    case TD_METHOD_TUCKER2:
        *a = clampz(r0, d->cout, &cl);
        *b = clampz(r1, d->cin, &cl);
        break;
    case TD_METHOD_CP:
        if (opt->rule == TD_RULE_RATIO) *a = td_rank_ratio(opt->value, d->cout > d->cin ? d->cout : d->cin);
        else *a = r0 > r1 ? r0 : r1;
        *b = 0;
        break;
    case TD_METHOD_SVD: {
        size_t r = opt->rule == TD_RULE_RATIO ? td_rank_ratio(opt->value, mn)
                 : opt->rule == TD_RULE_RANKS ? (r0 < r1 ? r0 : r1) : r0;
        *a = clampz(r, mn, &cl);
        *b = 0;
        break;
    }
    case TD_METHOD_SVD_GROUPED: {
        /* the rank rule sets j as for plain SVD; k: the divisor with the smallest error at the
         * parameter count that j implies (ALDS' local step), unless --svd-groups fixes it */
        const size_t sp = d->kh * d->kw, cols1 = d->cin * sp, mn1 = d->cout < cols1 ? d->cout : cols1;
        size_t j = opt->rule == TD_RULE_RATIO ? td_rank_ratio(opt->value, mn1)
                 : opt->rule == TD_RULE_RANKS ? (r0 < r1 ? r0 : r1) : r0;
        j = clampz(j, mn1, &cl);
        const uint64_t budget = (uint64_t)j * (cols1 + d->cout);
        double best = INFINITY;
        for (int i = 0; i < c->nk; i++) {
            size_t k = c->kopt[i], jk = (size_t)(budget / (cols1 + (uint64_t)d->cout * k));
            if (opt->svd_groups) jk = j;
            if (jk < 1) jk = 1;
            if (jk > c->jmax[i]) { jk = c->jmax[i]; if (opt->svd_groups) cl = 1; }
            if (c->gtail[i][jk] < best) { best = c->gtail[i][jk]; *a = k; *b = jk; }
        }
        break;
    }
    default: return TD_EINVAL;
    }
    o->clamped = cl;
    return TD_OK;
}

static double cfg_err2(const curve *c, size_t a, size_t b)
{
    switch (c->method) {
    case TD_METHOD_TUCKER2: return c->tail0[a] + c->tail1[b];
    case TD_METHOD_CP: {
        size_t r0 = a < c->r0max ? a : c->r0max, r1 = a < c->r1max ? a : c->r1max;
        return c->tail0[r0] + c->tail1[r1];
    }
    case TD_METHOD_SVD: return c->tail0[a];
    case TD_METHOD_SVD_GROUPED:
        for (int i = 0; i < c->nk; i++)
            if (c->kopt[i] == a) return c->gtail[i][b];
        return 0;
    default: return 0;
    }
}

static void set_decision(const curve *c, td_plan_decision *o, size_t a, size_t b, int keep_larger)
{
    o->method = c->method;
    o->ranks[0] = a;
    o->ranks[1] = b;
    o->nranks = (c->method == TD_METHOD_TUCKER2 || c->method == TD_METHOD_SVD_GROUPED) ? 2 : 1;
    o->params_after = cfg_params(c, a, b);
    o->flops_after = cfg_flops(c, a, b);
    o->est_error = c->nw2 > 0 ? sqrt(cfg_err2(c, a, b) / c->nw2) : 0;
    if (o->params_after >= o->params_before && !keep_larger) skip(o, "would not shrink");
}

static td_status check_options(const td_plan_options *opt, td_error *err)
{
    if (opt->rule == TD_RULE_NONE) return td__error_set(err, TD_EINVAL, NULL, NULL, "no rank rule given");
    if ((opt->rule == TD_RULE_RATIO || opt->rule == TD_RULE_ENERGY || opt->rule == TD_RULE_TARGET_PARAMS ||
         opt->rule == TD_RULE_TARGET_FLOPS) && !(opt->value > 0 && opt->value <= 1))
        return td__error_set(err, TD_EINVAL, NULL, NULL, "the rule's fraction must be in (0, 1], got %g", opt->value);
    if (opt->rule == TD_RULE_MAX_ERROR && !(opt->value >= 0)) return td__error_set(err, TD_EINVAL, NULL, NULL, "--max-error must be >= 0");
    if (opt->rule == TD_RULE_RANK && opt->rank == 0) return td__error_set(err, TD_EINVAL, NULL, NULL, "rank must be >= 1");
    if (opt->rule == TD_RULE_RANKS && (opt->ranks[0] == 0 || opt->ranks[1] == 0))
        return td__error_set(err, TD_EINVAL, NULL, NULL, "ranks must be >= 1");
    return TD_OK;
}

/* What does not depend on the rule's value: costs, skips, and the spectral curves. */
typedef struct prepared {
    curve *cv;
    int *active;
    uint64_t total, fixed, flops_total, flops_fixed;
} prepared;

static void prepared_free(prepared *p, size_t n)
{
    for (size_t i = 0; p->cv && i < n; i++) curve_free(&p->cv[i]);
    free(p->cv);
    free(p->active);
}

static td_status prepare(const td_plan_layer *layers, size_t n, uint64_t other_params, const td_plan_options *opt,
                         td_plan_decision *out, prepared *p, td_error *err)
{
    const int by_flops = opt->rule == TD_RULE_TARGET_FLOPS;
    memset(p, 0, sizeof *p);
    p->cv = calloc(n ? n : 1, sizeof(curve));
    p->active = calloc(n ? n : 1, sizeof(int));
    if (!p->cv || !p->active) return TD_ENOMEM;
    p->total = p->fixed = other_params;
    for (size_t i = 0; i < n; i++) {
        const td_plan_layer *l = &layers[i];
        const td_layer_desc *d = &l->desc;
        td_plan_decision *o = &out[i];
        memset(o, 0, sizeof *o);
        td_cost cost;
        td_status st = td_layer_cost(d, &cost);
        if (st != TD_OK) return td__error_set(err, st, NULL, l->name, "invalid layer geometry");
        o->params_before = cost.params;
        o->flops_before = cost.known ? cost.flops : 0;
        p->total += cost.params;
        if (by_flops && !cost.known)
            return td__error_set(err, TD_EINVAL, NULL, l->name,
                                 "--target-flops needs every conv layer's input size (give it with --layer-spec)");
        p->flops_total += o->flops_before;
        td_method m = opt->method_auto ? (d->kind == TD_LAYER_CONV2D && d->kh * d->kw > 1 ? TD_METHOD_TUCKER2 : TD_METHOD_SVD)
                                       : opt->method;
        if (l->excluded) skip(o, "excluded");
        else if (d->kind == TD_LAYER_CONV2D && (l->maybe_depthwise || (d->groups > 1 && d->groups == d->cin)))
            skip(o, "depthwise");
        else if (d->kind == TD_LAYER_CONV2D && d->groups > 1) skip(o, "grouped");
        else if (!applies(d, m)) {
            char why[64];
            snprintf(why, sizeof why, "method %s does not apply", td_method_name(m));
            skip(o, why);
        }
        if (o->skipped) { p->fixed += o->params_before; p->flops_fixed += o->flops_before; continue; }
        if ((st = build_curve(l, m, opt->svd_groups, &p->cv[i])) != TD_OK)
            return td__error_set(err, st, NULL, l->name, "cannot compute its spectra: %s", td_strerror(st));
        p->active[i] = 1;
    }
    return TD_OK;
}

/* The rule applied to prepared curves; out holds prepare's state on entry. */
static td_status decide(const td_plan_layer *layers, size_t n, uint64_t other_params, const td_plan_options *opt,
                        const prepared *p, td_plan_decision *out, td_plan_summary *summary, td_error *err)
{
    const int global = opt->rule == TD_RULE_TARGET_PARAMS || opt->rule == TD_RULE_TARGET_FLOPS ||
                       opt->rule == TD_RULE_MAX_ERROR;
    const int by_flops = opt->rule == TD_RULE_TARGET_FLOPS;
    const curve *cv = p->cv;
    const int *active = p->active;
    const uint64_t total = p->total, fixed = p->fixed, flops_total = p->flops_total, flops_fixed = p->flops_fixed;
    td_status st = TD_OK;
    for (size_t i = 0; !global && i < n; i++) {
        if (!active[i]) continue;
        size_t a = 0, b = 0;
        if ((st = local_ranks(&layers[i], &cv[i], opt, &out[i], &a, &b)) != TD_OK)
            return td__error_set(err, st, NULL, layers[i].name, "rank rule failed: %s", td_strerror(st));
        if (!out[i].skipped) set_decision(&cv[i], &out[i], a, b, opt->keep_larger);
    }
    double level = 0;
    if (global && opt->min_total_error && opt->rule != TD_RULE_MAX_ERROR) {
        front *fr = calloc(n ? n : 1, sizeof(front));
        size_t *pick = calloc(n ? n : 1, sizeof(size_t));
        if (!fr || !pick) { free(fr); free(pick); return TD_ENOMEM; }
        for (size_t i = 0; i < n && st == TD_OK; i++)
            if (active[i]) st = build_front(&cv[i], by_flops, opt->keep_larger, &fr[i]);
        const uint64_t budget_total = by_flops ? flops_total : total;
        const double target = opt->value * (double)budget_total - (double)(by_flops ? flops_fixed : fixed);
        if (st == TD_OK) {
            /* the cheapest point of every frontier must fit */
            double floor_cost = 0;
            for (size_t i = 0; i < n; i++)
                if (active[i] && fr[i].n) floor_cost += (double)fr[i].v[0].flops;
            if (floor_cost > target) {
                st = td__error_set(err, TD_EINFEASIBLE, NULL, NULL,
                                   "target %s %g is not reachable: the smallest decomposition keeps %.4f of the %s",
                                   by_flops ? "--target-flops" : "--target-params", opt->value,
                                   (floor_cost + (double)(by_flops ? flops_fixed : fixed)) / (double)(budget_total ? budget_total : 1),
                                   by_flops ? "FLOPs" : "parameters");
            } else {
                double lo = 0, hi = 1;
                while ((double)lagrange_pick(cv, fr, active, n, hi, pick) > target && hi < 1e300) hi *= 4;
                for (int it = 0; it < 200; it++) {
                    double mid = 0.5 * (lo + hi);
                    if ((double)lagrange_pick(cv, fr, active, n, mid, pick) > target) lo = mid; else hi = mid;
                }
                lagrange_pick(cv, fr, active, n, hi, pick);
                for (size_t i = 0; i < n; i++) {
                    if (!active[i]) continue;
                    const config *g = &fr[i].v[pick[i]];
                    if (g->a == 0) skip(&out[i], "would not shrink");
                    else set_decision(&cv[i], &out[i], g->a, g->b, opt->keep_larger);
                    if (out[i].est_error > level) level = out[i].est_error;
                }
            }
        }
        for (size_t i = 0; i < n; i++) free(fr[i].v);
        free(fr);
        free(pick);
        if (st != TD_OK) return st;
    } else if (global) {
        /* S(e): cost when every active layer takes its cheapest configuration with relative
         * error <= e (or stays whole when that is not smaller). Non-increasing in e. */
        const uint64_t budget_total = by_flops ? flops_total : total;
        const uint64_t base = by_flops ? flops_fixed : fixed;
        double lo = 0, hi = 1;
#define S_OF(e, res) do { uint64_t s_ = base; \
        for (size_t i_ = 0; i_ < n; i_++) { if (!active[i_]) continue; \
            config g_ = cheapest(&cv[i_], (e) * (e) * cv[i_].nw2, by_flops); \
            uint64_t before_ = by_flops ? out[i_].flops_before : out[i_].params_before; \
            uint64_t after_ = by_flops ? g_.flops : g_.params; \
            s_ += (g_.params == UINT64_MAX || (after_ >= before_ && !opt->keep_larger)) ? before_ : after_; } \
        (res) = s_; } while (0)
        if (opt->rule == TD_RULE_MAX_ERROR) {
            level = opt->value > 1 ? 1 : opt->value;
        } else {
            const double target = opt->value * (double)budget_total;
            uint64_t s_hi;
            S_OF(1.0, s_hi);
            if ((double)s_hi > target) {
                st = td__error_set(err, TD_EINFEASIBLE, NULL, NULL,
                                   "target %s %g is not reachable: the smallest decomposition keeps %.4f of the %s",
                                   by_flops ? "--target-flops" : "--target-params", opt->value,
                                   (double)s_hi / (double)(budget_total ? budget_total : 1),
                                   by_flops ? "FLOPs" : "parameters");
                return st;
            }
            uint64_t s_lo;
            S_OF(0.0, s_lo);
            if ((double)s_lo <= target) {
                hi = 0;
            } else {
                for (int it = 0; it < 60; it++) {
                    double mid = 0.5 * (lo + hi);
                    uint64_t s;
                    S_OF(mid, s);
                    if ((double)s <= target) hi = mid; else lo = mid;
                }
            }
            level = hi;
        }
#undef S_OF
        for (size_t i = 0; i < n; i++) {
            if (!active[i]) continue;
            config g = cheapest(&cv[i], level * level * cv[i].nw2, by_flops);
            if (g.params == UINT64_MAX) { skip(&out[i], "would not shrink"); continue; }
            set_decision(&cv[i], &out[i], g.a, g.b, opt->keep_larger);
        }
    }
    if (summary) {
        summary->params_total = total;
        summary->params_after = other_params;
        for (size_t i = 0; i < n; i++) summary->params_after += out[i].params_after;
        summary->target_error = level;
    }
    if (summary) {
        summary->params_total = total;
        summary->params_after = other_params;
        for (size_t i = 0; i < n; i++) summary->params_after += out[i].params_after;
        summary->target_error = level;
    }
    return TD_OK;
}

td_status td_plan(const td_plan_layer *layers, size_t n, uint64_t other_params, const td_plan_options *opt,
                  td_plan_decision *out, td_plan_summary *summary, td_error *err)
{
    if ((!layers && n) || (!out && n) || !opt) return TD_EINVAL;
    td_status st = check_options(opt, err);
    if (st != TD_OK) return st;
    prepared p;
    st = prepare(layers, n, other_params, opt, out, &p, err);
    if (st == TD_OK) st = decide(layers, n, other_params, opt, &p, out, summary, err);
    prepared_free(&p, n);
    return st;
}

td_status td_plan_sweep(const td_plan_layer *layers, size_t n, uint64_t other_params, const td_plan_options *opt,
                        const double *values, size_t nvalues, td_plan_decision *scratch, td_plan_point *points,
                        td_error *err)
{
    if ((!layers && n) || (!scratch && n) || !opt || (nvalues && (!values || !points))) return TD_EINVAL;
    if (opt->rule == TD_RULE_NONE || opt->rule == TD_RULE_RANK || opt->rule == TD_RULE_RANKS || opt->rule == TD_RULE_VBMF)
        return td__error_set(err, TD_EINVAL, NULL, NULL, "a sweep needs a rule with a value");
    td_plan_options o = *opt;
    td_status st = TD_OK;
    for (size_t k = 0; k < nvalues && st == TD_OK; k++) {
        o.value = values[k];
        st = check_options(&o, err);
    }
    if (st != TD_OK) return st;
    td_plan_decision *tmpl = malloc((n ? n : 1) * sizeof *tmpl);
    if (!tmpl) return TD_ENOMEM;
    prepared p;
    st = prepare(layers, n, other_params, opt, tmpl, &p, err);
    for (size_t k = 0; k < nvalues && st == TD_OK; k++) {
        td_plan_point *pt = &points[k];
        memset(pt, 0, sizeof *pt);
        pt->value = o.value = values[k];
        memcpy(scratch, tmpl, n * sizeof *tmpl);
        td_plan_summary sum;
        st = decide(layers, n, other_params, &o, &p, scratch, &sum, err);
        if (st == TD_EINFEASIBLE) { st = TD_OK; td_error_clear(err); continue; }
        if (st != TD_OK) break;
        pt->feasible = 1;
        pt->params_after = sum.params_after;
        for (size_t i = 0; i < n; i++) {
            if (scratch[i].skipped) continue;
            pt->layers_decomposed++;
            if (scratch[i].est_error > pt->max_est_error) pt->max_est_error = scratch[i].est_error;
        }
    }
    prepared_free(&p, n);
    free(tmpl);
    return st;
}
