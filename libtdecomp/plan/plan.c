/* The planner: every decision about a model's layers (skip or not, method, ranks) from rank
 * rules, and the global allocators: min-max (ALDS objective: every decomposed layer cut at one
 * common relative-error level, the smallest whose total cost meets the budget) and min-sum
 * (Lagrangian over each layer's Pareto frontier). Costs are td_chain_cost_for's, errors come
 * from spectra only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plan/internal.h"
#include "tdecomp/rank.h"

/* Bisection steps: the min-max level (relative error in [0, 1]) to ~1e-18; the Lagrange
 * multiplier over a range doubled until feasible, to relative precision ~1e-60. */
#define LEVEL_STEPS 60
#define LAMBDA_STEPS 200
/* The min-max search looks for a common level in [0, LEVEL_MAX]: a projection's relative error
 * never exceeds 1. */
#define LEVEL_MAX 1.0

void td_plan_options_init(td_plan_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->method_auto = 1;
}

static int is_global(td_rule_kind r)
{
    return r == TD_RULE_TARGET_PARAMS || r == TD_RULE_TARGET_FLOPS || r == TD_RULE_MAX_ERROR;
}

/* The reason a layer is skipped before its values matter, or NULL. */
static const char *early_reason(const td_plan_layer *l, const td_plan_options *opt)
{
    if (l->excluded) return "excluded";
    const td_method m = td__plan_method(&l->desc, opt);
    if (m <= TD_METHOD_NONE || m >= TD_METHOD_COUNT) return "method none does not apply";
    if (l->admits.mask & TD_METHOD_BIT(m)) return NULL;
    return l->admits.why_not[m] ? l->admits.why_not[m] : "method does not apply";
}

void td_plan_keep_head(td_plan_layer *layers, size_t n)
{
    size_t head = n;
    for (size_t i = 0; layers && i < n; i++)
        if (layers[i].desc.kind == TD_LAYER_DENSE) head = i;
    if (head == n) return;
    for (int k = TD_METHOD_NONE + 1; k < TD_METHOD_COUNT; k++)
        td_admission_refuse(&layers[head].admits, (td_method)k, TD_PLAN_HEAD_REASON);
}

int td_plan_needs_curve(const td_plan_layer *l, const td_plan_options *opt)
{
    if (!l || !opt || early_reason(l, opt)) return 0;
    if (opt->estimate_errors || is_global(opt->rule) || opt->rule == TD_RULE_ENERGY || opt->rule == TD_RULE_VBMF) return 1;
    return td__plan_method(&l->desc, opt) == TD_METHOD_SVD_GROUPED && !opt->svd_groups;
}

static void skip(td_plan_decision *o, const char *why)
{
    o->skipped = 1;
    o->method = TD_METHOD_NONE;
    o->nranks = 0;
    o->ranks[0] = o->ranks[1] = 0;
    snprintf(o->reason, sizeof o->reason, "%s", why);
    o->params_after = o->params_before;
    o->flops_after = o->flops_before;
    o->est_error = 0;
}

static size_t clampz(size_t v, size_t hi, int *cl)
{
    if (v <= hi) return v;
    *cl = 1;
    return hi;
}

/* The decision for configuration (a, b) of method m, with the chain's exact cost. */
static td_status set_decision(const td_plan_layer *l, const td_plan_curve *c, td_method m, size_t a, size_t b,
                              int keep_larger, td_plan_decision *o)
{
    size_t r[2] = {a, b};
    if (m == TD_METHOD_SVD_GROUPED && a == 1) { m = TD_METHOD_SVD; r[0] = b; r[1] = 0; }
    td_cost cost;
    td_status st = td_chain_cost_for(&l->desc, m, r, &cost);
    if (st != TD_OK) return st;
    o->method = m;
    o->ranks[0] = r[0];
    o->ranks[1] = r[1];
    o->nranks = m == TD_METHOD_TUCKER2 || m == TD_METHOD_SVD_GROUPED ? 2 : 1;
    o->params_after = cost.params;
    o->flops_after = cost.known ? cost.flops : 0;
    o->est_known = c != NULL;
    o->est_error = c ? td__curve_est(c, a, b) : 0;
    if (o->params_after >= o->params_before && !keep_larger) skip(o, "would not shrink");
    return TD_OK;
}

/* Per-mode ranks of an energy or EVBMF rule, from the curve's spectra (td_rank_truncate). */
static td_status spectral_ranks(const td_plan_curve *c, const td_plan_options *opt, int nmode, size_t r[2])
{
    td_rank_rule rule;
    memset(&rule, 0, sizeof rule);
    rule.kind = opt->rule == TD_RULE_ENERGY ? TD_RANK_ENERGY : TD_RANK_EVBMF;
    rule.value = opt->value;
    rule.tensor_size = c->size;
    td_status st = TD_OK;
    for (int md = 0; md < nmode && st == TD_OK; md++) st = td_rank_truncate(&rule, md, c->s2[md], c->len[md], &r[md]);
    if (nmode == 1) r[1] = r[0];
    return st;
}

/* ALDS' local step: j from the rule as for plain SVD, then k the divisor with the smallest error
 * at the parameter count that j implies (or --svd-groups). */
static void grouped_ranks(const td_plan_layer *l, const td_plan_curve *c, const td_plan_options *opt, size_t j,
                          size_t *a, size_t *b, int *cl)
{
    const td_layer_desc *d = &l->desc;
    if (!c) { /* k fixed, no spectra needed */
        *a = opt->svd_groups;
        *b = clampz(j, td_svd_rank_limit(d, opt->svd_groups), cl);
        return;
    }
    td_cost plain;
    const size_t r[2] = {j, 0};
    const double budget = td_chain_cost_for(d, TD_METHOD_SVD, r, &plain) == TD_OK ? (double)plain.params : 0;
    double best = INFINITY;
    for (int i = 0; i < c->nk; i++) {
        const double c1 = td__curve_cost(c, c->k[i], 1, 0), step = td__curve_cost(c, c->k[i], 2, 0) - c1;
        /* the largest j whose chain costs at most the budget */
        size_t jk = j;
        if (!opt->svd_groups) jk = step > 0 ? (size_t)fmin((double)c->jmax[i], fmax(1.0, floor((budget - c1) / step) + 1)) : c->jmax[i];
        if (jk > c->jmax[i]) { jk = c->jmax[i]; if (opt->svd_groups) *cl = 1; }
        if (c->gtail[i][jk] < best) { best = c->gtail[i][jk]; *a = c->k[i]; *b = jk; }
    }
}

/* Ranks from a per-layer rule (not a global target); *skip_why set for EVBMF's rank 0. */
static td_status local_ranks(const td_plan_layer *l, const td_plan_curve *c, const td_plan_options *opt, td_method m,
                             size_t *a, size_t *b, int *cl, const char **skip_why)
{
    const td_layer_desc *d = &l->desc;
    const size_t mn = td_svd_rank_limit(d, 1);
    size_t r[2] = {0, 0};
    switch (opt->rule) {
    case TD_RULE_RANK: r[0] = r[1] = opt->rank; break;
    case TD_RULE_RANKS: r[0] = opt->ranks[0]; r[1] = opt->ranks[1]; break;
    case TD_RULE_RATIO: r[0] = td_rank_ratio(opt->value, d->cout); r[1] = td_rank_ratio(opt->value, d->cin); break;
    case TD_RULE_ENERGY:
    case TD_RULE_VBMF: {
        if (!c) return TD_EINVAL;
        td_status st = spectral_ranks(c, opt, m == TD_METHOD_TUCKER2 || m == TD_METHOD_CP ? 2 : 1, r);
        if (st != TD_OK) return st;
        if (r[0] == 0 || r[1] == 0) { *skip_why = "rank 0 (EVBMF)"; return TD_OK; }
        break;
    }
    default: return TD_EINVAL;
    }
    const int ratio = opt->rule == TD_RULE_RATIO, pair = opt->rule == TD_RULE_RANKS;
    const size_t j = ratio ? td_rank_ratio(opt->value, mn) : pair ? (r[0] < r[1] ? r[0] : r[1]) : r[0];
    *b = 0;
    switch (m) {
    case TD_METHOD_TUCKER2:
        *a = clampz(r[0], d->cout, cl);
        *b = clampz(r[1], d->cin, cl);
        break;
    case TD_METHOD_CP:
        *a = ratio ? td_rank_ratio(opt->value, d->cout > d->cin ? d->cout : d->cin) : r[0] > r[1] ? r[0] : r[1];
        break;
    case TD_METHOD_SVD: *a = clampz(j, mn, cl); break;
    case TD_METHOD_SVD_GROUPED: grouped_ranks(l, c, opt, clampz(j, mn, cl), a, b, cl); break;
    default: return TD_EINVAL;
    }
    return TD_OK;
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
    if (!opt->method_auto && (opt->method <= TD_METHOD_NONE || opt->method >= TD_METHOD_COUNT))
        return td__error_set(err, TD_EINVAL, NULL, NULL, "unknown method");
    return TD_OK;
}

/* What does not depend on the rule's value: costs, early skips, which layers are active. */
typedef struct state {
    const td_plan_layer *layers;
    td_plan_curve *const *curves;
    size_t n;
    const td_plan_options *opt;
    int by_flops;
    double total, fixed;    /* allocator unit: the planned layers' cost, and the skipped ones' */
} state;

static td_status prepare(state *s, td_plan_decision *out, td_error *err)
{
    s->by_flops = s->opt->rule == TD_RULE_TARGET_FLOPS;
    s->total = s->fixed = 0;
    for (size_t i = 0; i < s->n; i++) {
        const td_plan_layer *l = &s->layers[i];
        td_plan_decision *o = &out[i];
        memset(o, 0, sizeof *o);
        td_cost cost;
        td_status st = td_layer_cost(&l->desc, &cost);
        if (st != TD_OK) return td__error_set(err, st, NULL, l->name, "invalid layer geometry");
        if (s->by_flops && !cost.known)
            return td__error_set(err, TD_EINVAL, NULL, l->name,
                                 "--target-flops needs every conv layer's input size (give it with --layer-spec)");
        o->params_before = cost.params;
        o->flops_before = cost.known ? cost.flops : 0;
        const double unit = s->by_flops ? (double)o->flops_before : (double)o->params_before;
        s->total += unit;
        const char *why = early_reason(l, s->opt);
        char fixed_k[96];
        if (!why && td__plan_method(&l->desc, s->opt) == TD_METHOD_SVD_GROUPED && s->opt->svd_groups &&
            l->desc.cin % s->opt->svd_groups) {
            snprintf(fixed_k, sizeof fixed_k, "--svd-groups %zu does not divide its %zu input channels", s->opt->svd_groups, l->desc.cin);
            why = fixed_k;
        }
        if (why) { skip(o, why); s->fixed += unit; continue; }
        if (td_plan_needs_curve(l, s->opt) && !(s->curves && s->curves[i]))
            return td__error_set(err, TD_EINVAL, NULL, l->name, "the plan needs this layer's curve (td_plan_curve_new)");
    }
    return TD_OK;
}

static int active(const td_plan_decision *out, size_t i) { return !out[i].skipped; }

static td_status plan_local(const state *s, td_plan_decision *out, td_error *err)
{
    for (size_t i = 0; i < s->n; i++) {
        if (!active(out, i)) continue;
        const td_plan_layer *l = &s->layers[i];
        const td_plan_curve *c = s->curves ? s->curves[i] : NULL;
        const td_method m = td__plan_method(&l->desc, s->opt);
        size_t a = 0, b = 0;
        int cl = 0;
        const char *why = NULL;
        td_status st = local_ranks(l, c, s->opt, m, &a, &b, &cl, &why);
        if (st == TD_OK && why) { skip(&out[i], why); continue; }
        if (st == TD_OK) st = set_decision(l, c, m, a, b, s->opt->keep_larger, &out[i]);
        if (st != TD_OK) return td__error_set(err, st, NULL, l->name, "rank rule failed: %s", td_strerror(st));
        if (!out[i].skipped) out[i].clamped = cl;
    }
    return TD_OK;
}

static td_status infeasible(const state *s, double reach, td_error *err)
{
    return td__error_set(err, TD_EINFEASIBLE, NULL, NULL,
                         "target %s %g is not reachable: the smallest decomposition keeps %.4f of the %s",
                         s->by_flops ? "--target-flops" : "--target-params", s->opt->value,
                         reach / (s->total > 0 ? s->total : 1), s->by_flops ? "FLOPs" : "parameters");
}

/* Cost of the model when every active layer takes its cheapest configuration with relative
 * error <= e, or stays whole when that is not smaller (non-increasing in e). */
static double cost_at_level(const state *s, const td_plan_decision *out, double e)
{
    double sum = s->fixed;
    for (size_t i = 0; i < s->n; i++) {
        if (!active(out, i)) continue;
        const td_plan_curve *c = s->curves[i];
        const td__config g = td__curve_cheapest(c, e * e * c->nw2, s->by_flops);
        const double whole = s->by_flops ? (double)out[i].flops_before : (double)out[i].params_before;
        sum += (g.cost == INFINITY || (g.cost >= whole && !s->opt->keep_larger)) ? whole : g.cost;
    }
    return sum;
}

static td_status plan_minmax(const state *s, td_plan_decision *out, double *level, td_error *err)
{
    double e = s->opt->value > LEVEL_MAX ? LEVEL_MAX : s->opt->value;
    if (s->opt->rule != TD_RULE_MAX_ERROR) {
        const double target = s->opt->value * s->total, smallest = cost_at_level(s, out, LEVEL_MAX);
        if (smallest > target) return infeasible(s, smallest, err);
        double lo = 0, hi = LEVEL_MAX;
        if (cost_at_level(s, out, 0) <= target) hi = 0;
        for (int it = 0; it < LEVEL_STEPS && hi > 0; it++) {
            const double mid = 0.5 * (lo + hi);
            if (cost_at_level(s, out, mid) <= target) hi = mid;
            else lo = mid;
        }
        e = hi;
    }
    *level = e;
    for (size_t i = 0; i < s->n; i++) {
        if (!active(out, i)) continue;
        const td_plan_curve *c = s->curves[i];
        const td__config g = td__curve_cheapest(c, e * e * c->nw2, s->by_flops);
        const double whole = s->by_flops ? (double)out[i].flops_before : (double)out[i].params_before;
        /* exactly what cost_at_level counted: a layer that does not get cheaper stays whole */
        if (g.cost == INFINITY || (g.cost >= whole && !s->opt->keep_larger)) { skip(&out[i], "would not shrink"); continue; }
        td_status st = set_decision(&s->layers[i], c, c->method, g.a, g.b, s->opt->keep_larger, &out[i]);
        if (st != TD_OK) return td__error_set(err, st, NULL, s->layers[i].name, "%s", td_strerror(st));
    }
    return TD_OK;
}

/* For multiplier lam, each layer's frontier point minimising err2/nw2 + lam * cost. */
static double lagrange_pick(const state *s, const td_plan_decision *out, td__config *const *fr, const size_t *nf,
                            double lam, size_t *pick)
{
    double total = s->fixed;
    for (size_t i = 0; i < s->n; i++) {
        if (!active(out, i)) continue;
        const double nw2 = s->curves[i]->nw2;
        double best = INFINITY;
        pick[i] = 0;
        if (!nf[i]) continue;
        for (size_t q = 0; q < nf[i]; q++) {
            const double v = (nw2 > 0 ? fr[i][q].err2 / nw2 : 0) + lam * fr[i][q].cost;
            if (v < best) { best = v; pick[i] = q; }
        }
        total += fr[i][pick[i]].cost;
    }
    return total;
}

static td_status lagrange_decide(const state *s, td_plan_decision *out, td__config *const *fr, const size_t *nf,
                                 size_t *pick, double *level, td_error *err)
{
    const double target = s->opt->value * s->total;
    double floor_cost = s->fixed;
    for (size_t i = 0; i < s->n; i++)
        if (active(out, i) && nf[i]) floor_cost += fr[i][0].cost;
    if (floor_cost > target) return infeasible(s, floor_cost, err);
    double lo = 0, hi = 1;
    while (lagrange_pick(s, out, fr, nf, hi, pick) > target && hi < 1e300) hi *= 4;
    for (int it = 0; it < LAMBDA_STEPS; it++) {
        const double mid = 0.5 * (lo + hi);
        if (lagrange_pick(s, out, fr, nf, mid, pick) > target) lo = mid;
        else hi = mid;
    }
    lagrange_pick(s, out, fr, nf, hi, pick);
    for (size_t i = 0; i < s->n; i++) {
        if (!active(out, i)) continue;
        const td__config *g = nf[i] ? &fr[i][pick[i]] : NULL;
        td_status st = TD_OK;
        if (!g || g->a == 0) skip(&out[i], "would not shrink");
        else st = set_decision(&s->layers[i], s->curves[i], s->curves[i]->method, g->a, g->b, s->opt->keep_larger, &out[i]);
        if (st != TD_OK) return td__error_set(err, st, NULL, s->layers[i].name, "%s", td_strerror(st));
        if (out[i].est_error > *level) *level = out[i].est_error;
    }
    return TD_OK;
}

static td_status plan_lagrange(const state *s, td_plan_decision *out, double *level, td_error *err)
{
    td__config **fr = calloc(s->n ? s->n : 1, sizeof *fr);
    size_t *nf = calloc(s->n ? s->n : 1, sizeof *nf), *pick = calloc(s->n ? s->n : 1, sizeof *pick);
    td_status st = fr && nf && pick ? TD_OK : TD_ENOMEM;
    for (size_t i = 0; i < s->n && st == TD_OK; i++)
        if (active(out, i)) st = td__curve_frontier(s->curves[i], s->by_flops, s->opt->keep_larger, &fr[i], &nf[i]);
    if (st == TD_OK) st = lagrange_decide(s, out, fr, nf, pick, level, err);
    for (size_t i = 0; fr && i < s->n; i++) free(fr[i]);
    free(fr);
    free(nf);
    free(pick);
    return st;
}

static void summarise(const state *s, const td_plan_decision *out, double level, td_plan_summary *sum)
{
    if (!sum) return;
    memset(sum, 0, sizeof *sum);
    sum->flops_known = 1;
    for (size_t i = 0; i < s->n; i++) {
        td_cost c;
        sum->params_before += out[i].params_before;
        sum->params_after += out[i].params_after;
        sum->flops_before += out[i].flops_before;
        sum->flops_after += out[i].flops_after;
        if (td_layer_cost(&s->layers[i].desc, &c) != TD_OK || !c.known) sum->flops_known = 0;
    }
    if (!sum->flops_known) sum->flops_before = sum->flops_after = 0;
    sum->target_error = level;
}

/* The rule applied; out holds prepare's decisions on entry. */
static td_status decide(const state *s, td_plan_decision *out, td_plan_summary *sum, td_error *err)
{
    double level = 0;
    td_status st;
    if (!is_global(s->opt->rule)) st = plan_local(s, out, err);
    else if (s->opt->min_total_error && s->opt->rule != TD_RULE_MAX_ERROR) st = plan_lagrange(s, out, &level, err);
    else st = plan_minmax(s, out, &level, err);
    if (st == TD_OK) summarise(s, out, level, sum);
    return st;
}

td_status td_plan(const td_plan_layer *layers, td_plan_curve *const *curves, size_t n, const td_plan_options *opt,
                  td_plan_decision *out, td_plan_summary *summary, td_error *err)
{
    if ((!layers && n) || (!out && n) || !opt) return TD_EINVAL;
    td_status st = check_options(opt, err);
    if (st != TD_OK) return st;
    state s = {layers, curves, n, opt, 0, 0, 0};
    st = prepare(&s, out, err);
    return st == TD_OK ? decide(&s, out, summary, err) : st;
}

td_status td_plan_kernels(const td_plan_layer *layers, const td_tensor *const *kernels, size_t n,
                          const td_plan_options *opt, td_plan_decision *out, td_plan_summary *summary, td_error *err)
{
    if ((!layers || !kernels) && n) return TD_EINVAL;
    td_plan_curve **cv = calloc(n ? n : 1, sizeof *cv);
    if (!cv) return TD_ENOMEM;
    td_status st = TD_OK;
    for (size_t i = 0; i < n && st == TD_OK; i++) st = td_plan_curve_new(&layers[i], kernels[i], opt, &cv[i], err);
    if (st == TD_OK) st = td_plan(layers, cv, n, opt, out, summary, err);
    for (size_t i = 0; i < n; i++) td_plan_curve_free(cv[i]);
    free(cv);
    return st;
}

td_status td_plan_sweep(const td_plan_layer *layers, td_plan_curve *const *curves, size_t n, const td_plan_options *opt,
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
    td_plan_decision *tmpl = malloc((n ? n : 1) * sizeof *tmpl);
    if (st == TD_OK && !tmpl) st = TD_ENOMEM;
    state s = {layers, curves, n, &o, 0, 0, 0};
    if (st == TD_OK) st = prepare(&s, tmpl, err);
    for (size_t k = 0; k < nvalues && st == TD_OK; k++) {
        td_plan_point *pt = &points[k];
        memset(pt, 0, sizeof *pt);
        pt->value = o.value = values[k];
        memcpy(scratch, tmpl, n * sizeof *tmpl);
        td_plan_summary sum;
        st = decide(&s, scratch, &sum, err);
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
    free(tmpl);
    return st;
}

td_status td_plan_build(const td_plan_layer *l, const td_tensor *kernel, const td_tensor *bias,
                        const td_plan_decision *dec, const td_rewrite_options *opt, td_chain *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!l || !dec || dec->skipped || dec->method == TD_METHOD_NONE) return TD_EINVAL;
    td_rewrite_options o;
    if (opt) o = *opt;
    else td_rewrite_options_init(&o);
    o.clamp = 0; /* the decision's ranks are within their limits */
    o.stats = l->stats;
    return td_layer_rewrite(&l->desc, kernel, bias, dec->method, dec->ranks, &o, out);
}
