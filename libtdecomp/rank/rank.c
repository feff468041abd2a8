/* Rank rules from spectra. */
#include <math.h>
#include <stdlib.h>
#include "core/internal.h"
#include "tdecomp/rank.h"

/* Decimal ratios times channel counts land just below .5 in binary (0.29 * 50): this guard keeps
 * round-half-up exact for them. */
#define RATIO_ROUND_GUARD 1e-9
/* Energy: a relative guard so that f = 1 gives the numerical rank. */
#define ENERGY_GUARD 1e-12
/* EVBMF's noise-variance search on the normalised problem: a grid in log sigma2, then golden
 * section to this width in log sigma2 (or this many steps); the lower bound's floor. */
#define EVB_GRID 2000
#define EVB_GOLDEN_STEPS 200
#define EVB_GOLDEN_WIDTH 1e-12
#define EVB_LOWER_FLOOR 1e-12
#define GOLDEN_RATIO_CONJ 0.6180339887498949

size_t td_rank_ratio(double f, size_t c)
{
    if (c == 0 || !(f > 0)) return 0;
    double r = floor(f * (double)c + 0.5 + RATIO_ROUND_GUARD);
    if (r < 1) r = 1;
    if (r > (double)c) r = (double)c;
    return (size_t)r;
}

void td_rank_tails(const double *s2, size_t n, double *tails)
{
    if (!s2 || !tails) return;
    tails[n] = 0;
    for (size_t i = n; i-- > 0;) tails[i] = tails[i + 1] + (s2[i] > 0 ? s2[i] : 0);
}

td_status td_rank_energy(const double *s2, size_t n, double f, size_t *rank)
{
    if (!s2 || !rank || n == 0 || !(f > 0 && f <= 1)) return TD_EINVAL;
    double tot = 0, acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(s2[i])) return TD_ENOTFINITE;
        tot += s2[i] > 0 ? s2[i] : 0;
    }
    if (tot == 0) { *rank = 1; return TD_OK; }
    for (size_t i = 0; i < n; i++) {
        acc += s2[i] > 0 ? s2[i] : 0;
        /* relative guard: f = 1 must give the numerical rank, not fail on rounding */
        if (acc >= f * tot * (1 - ENERGY_GUARD)) { *rank = i + 1; return TD_OK; }
    }
    *rank = n;
    return TD_OK;
}

/* EVB free energy (up to constants) as a function of the normalised noise variance. s2 holds
 * squared normalised singular values, L <= M, H = L (no residual term). */
static double evb_objective(double sigma2, const double *s2, size_t l, double m, double alpha, double xbar)
{
    double f = 0;
    for (size_t h = 0; h < l; h++) {
        double x = s2[h] / (m * sigma2);
        if (x > xbar) {
            double b = x - (1 + alpha);
            double tau = 0.5 * (b + sqrt(fmax(b * b - 4 * alpha, 0)));
            f += x - tau + log((tau + 1) / x) + alpha * log(tau / alpha + 1);
        } else if (s2[h] > 0) {
            f += x - log(x);
        } else {
            /* s = 0 stays in this branch for every sigma2: its -ln s2 is a constant (infinite)
             * and is dropped so the objective stays finite */
            f += log(m * sigma2);
        }
    }
    return f;
}

td_status td_rank_evbmf(const double *s, size_t n, size_t rows, size_t cols, size_t *rank, double *sigma2)
{
    if (!s || !rank || rows == 0 || cols == 0) return TD_EINVAL;
    const size_t l = rows < cols ? rows : cols, mm = rows < cols ? cols : rows;
    const double m = (double)mm, alpha = (double)l / m;
    const double taubar = 2.5129 * sqrt(alpha), xbar = (1 + taubar) * (1 + alpha / taubar);
    double *s2 = calloc(l, sizeof(double));
    if (!s2) return TD_ENOMEM;
    double tot = 0;
    for (size_t i = 0; i < l && i < n; i++) {
        if (!isfinite(s[i])) { free(s2); return TD_ENOTFINITE; }
        s2[i] = s[i] * s[i];
        tot += s2[i];
    }
    if (tot == 0) {
        free(s2);
        *rank = 0;
        if (sigma2) *sigma2 = 0;
        return TD_OK;
    }
    /* Normalise so that upper = ||Y||^2 / (L M) = 1: the search then works at one scale. */
    const double scale = tot / ((double)l * m);
    for (size_t i = 0; i < l; i++) s2[i] /= scale;
    double upper = 1.0;
    long ub = (long)ceil((double)l / (1 + alpha)) - 1;
    if (ub > (long)l) ub = (long)l;
    ub -= 1;
    size_t k0 = (size_t)(ub + 1 < 0 ? 0 : ub + 1);
    if (k0 >= l) k0 = l - 1;
    double mean = 0;
    for (size_t i = k0; i < l; i++) mean += s2[i];
    mean /= (double)(l - k0);
    double lower = fmax(s2[k0] / (m * xbar), mean / m);
    if (!(lower > 0)) lower = EVB_LOWER_FLOOR;
    if (lower > upper) lower = upper;
    /* Grid in log sigma2, then golden-section refinement around the best point. */
    double best = upper, fbest = evb_objective(upper, s2, l, m, alpha, xbar);
    const int grid = EVB_GRID;
    double ll = log(lower), lu = log(upper);
    for (int g = 0; g <= grid; g++) {
        double v = exp(ll + (lu - ll) * g / grid), fv = evb_objective(v, s2, l, m, alpha, xbar);
        if (fv < fbest) { fbest = fv; best = v; }
    }
    double step = (lu - ll) / grid, a = fmax(ll, log(best) - step), b = fmin(lu, log(best) + step);
    const double gr = GOLDEN_RATIO_CONJ;
    double c = b - gr * (b - a), d = a + gr * (b - a);
    double fc = evb_objective(exp(c), s2, l, m, alpha, xbar), fd = evb_objective(exp(d), s2, l, m, alpha, xbar);
    for (int it = 0; it < EVB_GOLDEN_STEPS && b - a > EVB_GOLDEN_WIDTH; it++) {
        if (fc < fd) { b = d; d = c; fd = fc; c = b - gr * (b - a); fc = evb_objective(exp(c), s2, l, m, alpha, xbar); }
        else { a = c; c = d; fc = fd; d = a + gr * (b - a); fd = evb_objective(exp(d), s2, l, m, alpha, xbar); }
    }
    double cand = exp(0.5 * (a + b));
    if (evb_objective(cand, s2, l, m, alpha, xbar) < fbest) best = cand;
    const double gamma2 = m * best * xbar;
    size_t r = 0;
    for (size_t i = 0; i < l; i++)
        if (s2[i] > gamma2) r++;
    free(s2);
    *rank = r;
    if (sigma2) *sigma2 = best * scale;
    return TD_OK;
}

td_status td_rank_truncate(void *ctx, int mode, const double *sv2, size_t n, size_t *rank)
{
    const td_rank_rule *rule = ctx;
    if (!rule || !sv2 || !rank || mode < 0 || mode >= TD_MAX_MODES || n == 0) return TD_EINVAL;
    switch (rule->kind) {
    case TD_RANK_FIXED:
        if (rule->fixed[mode] == 0) return TD_EINVAL;
        *rank = rule->fixed[mode] < n ? rule->fixed[mode] : n;
        return TD_OK;
    case TD_RANK_RATIO:
        if (!(rule->value > 0 && rule->value <= 1)) return TD_EINVAL;
        *rank = td_rank_ratio(rule->value, n);
        return TD_OK;
    case TD_RANK_ENERGY: return td_rank_energy(sv2, n, rule->value, rank);
    case TD_RANK_EVBMF: {
        if (rule->tensor_size == 0 || rule->tensor_size % n != 0) return TD_EINVAL;
        double *s = malloc(n * sizeof(double));
        if (!s) return TD_ENOMEM;
        for (size_t i = 0; i < n; i++) s[i] = sqrt(sv2[i] > 0 ? sv2[i] : 0);
        td_status st = td_rank_evbmf(s, n, n, rule->tensor_size / n, rank, NULL);
        free(s);
        return st;
    }
    default: return TD_EINVAL;
    }
}
