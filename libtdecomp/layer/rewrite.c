/* Rewrites of conv and dense layers into chains of thinner layers. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "layer/internal.h"

void td_chain_free(td_chain *c)
{
    if (!c) return;
    for (int p = 0; p < TD_CHAIN_MAX; p++) {
        td_tensor_free(&c->pieces[p].kernel);
        td_tensor_free(&c->pieces[p].bias);
    }
    memset(c, 0, sizeof *c);
}

int td__kernel_matches(const td_layer_desc *d, const td_tensor *k)
{
    if (!d || !k) return 0;
    if (d->kind == TD_LAYER_DENSE) return k->ndim == 2 && k->shape[0] == d->cout && k->shape[1] == d->cin;
    size_t g = d->groups ? d->groups : 1;
    return k->ndim == 4 && k->shape[0] == d->cout && k->shape[1] == d->cin / g && k->shape[2] == d->kh &&
           k->shape[3] == d->kw;
}

static td_status check_layer(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias)
{
    if (!d || !kernel) return TD_EINVAL;
    td_cost c;
    td_status st = td_layer_cost(d, &c); /* validates the geometry (and a known input size) */
    if (st != TD_OK) return st;
    if (!td__kernel_matches(d, kernel)) return TD_ESHAPE;
    if (bias && bias->size && (bias->ndim != 1 || bias->shape[0] != d->cout)) return TD_ESHAPE;
    return td_tensor_check_values(kernel);
}

td_status td_chain_rel_error(const td_chain *c, const td_tensor *kernel, double *rel_error)
{
    if (!c || !kernel || !rel_error) return TD_EINVAL;
    td_tensor w = {0};
    td_status st = td_tensor_alloc(&w, kernel->ndim, kernel->shape);
    if (st == TD_OK) st = td_chain_compose(c, &w);
    if (st == TD_OK) st = td_rel_diff(&w, kernel, rel_error);
    td_tensor_free(&w);
    return st;
}

/* The shared start of every rewrite: checks, the chain laid out by td_chain_layout (the one
 * definition of the pieces), storage, and the bias on the last piece. */
static td_status begin(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, td_method m,
                       const size_t ranks[2], td_chain *out)
{
    td_status st = check_layer(d, kernel, bias);
    if (st == TD_OK) st = td_chain_layout(d, m, ranks, out);
    if (st == TD_OK) st = td__chain_alloc(out);
    td_chain_piece *last = &out->pieces[out->npieces ? out->npieces - 1 : 0];
    if (st == TD_OK) last->desc.has_bias = bias && bias->size;
    if (st == TD_OK && last->desc.has_bias) st = td_tensor_copy(&last->bias, bias);
    return st;
}

/* Rows per block of the blocked measure: blocks of at most 4 Mi values (32 MiB). */
#define MEASURE_BLOCK_VALUES ((size_t)1 << 22)

td_status td__svd_chain_rel_error(const td_chain *c, const td_tensor *kernel, size_t block_values, double *rel)
{
    const td_tensor *b = &c->pieces[1].kernel;
    if (c->npieces != 2 || kernel->ndim < 2 || b->ndim < 2 || !b->data || !kernel->data ||
        b->shape[0] != kernel->shape[0] || kernel->shape[0] == 0)
        return TD_ESHAPE;
    const size_t rows = kernel->shape[0], cols = kernel->size / rows, bcols = b->size / rows;
    const size_t rb = cols >= block_values ? 1 : block_values / cols;
    double *buf = malloc((rb < rows ? rb : rows) * cols * sizeof(double) + 1);
    if (!buf) return TD_ENOMEM;
    td_chain part = *c; /* shallow: its second piece becomes a view of B's rows; never freed */
    double nd = 0, nr = 0;
    td_status st = TD_OK;
    for (size_t r0 = 0; r0 < rows && st == TD_OK; r0 += rb) {
        const size_t n = rows - r0 < rb ? rows - r0 : rb;
        size_t ws[4], bs[4];
        memcpy(ws, kernel->shape, (size_t)kernel->ndim * sizeof(size_t));
        memcpy(bs, b->shape, (size_t)b->ndim * sizeof(size_t));
        ws[0] = bs[0] = n;
        td_tensor w;
        if ((st = td_tensor_view(&part.pieces[1].kernel, b->ndim, bs, b->data + r0 * bcols)) != TD_OK) break;
        if ((st = td_tensor_view(&w, kernel->ndim, ws, buf)) != TD_OK) break;
        if ((st = td_chain_compose(&part, &w)) != TD_OK) break;
        nd = hypot(nd, td__diff_norm(buf, kernel->data + r0 * cols, n * cols));
        nr = hypot(nr, td__diff_norm(NULL, kernel->data + r0 * cols, n * cols));
    }
    free(buf);
    if (st == TD_OK) *rel = nr > 0 ? nd / nr : nd;
    return st;
}

td_status td_chain_measure(td_chain *c, const td_layer_desc *d, const td_layer_stats *stats, const td_tensor *kernel)
{
    if (!c || !d || !kernel) return TD_EINVAL;
    if (!stats && (c->method == TD_METHOD_SVD || c->method == TD_METHOD_SVD_GROUPED)) {
        c->has_output_error = 0;
        return td__svd_chain_rel_error(c, kernel, MEASURE_BLOCK_VALUES, &c->rel_error);
    }
    td_tensor w = {0};
    td_status st = td_tensor_alloc(&w, kernel->ndim, kernel->shape);
    if (st == TD_OK) st = td_chain_compose(c, &w);
    if (st == TD_OK) st = td_rel_diff(&w, kernel, &c->rel_error);
    if (st == TD_OK && stats) st = td_chain_output_error(d, stats, kernel, &w, &c->output_rel_error);
    c->has_output_error = st == TD_OK && stats;
    td_tensor_free(&w);
    return st;
}

/* rel_error (and with statistics the output error) of the chain, unless the caller measures it
 * after rounding the pieces. */
static td_status finish(td_chain *c, const td_layer_desc *d, const td_tensor *kernel, const td_rewrite_options *opt,
                        double t0)
{
    const td_status st = opt->defer_measure ? TD_OK : td_chain_measure(c, d, opt->stats, kernel);
    c->seconds = td__now() - t0;
    return st;
}

/* dst (rows x cols) = src^T where src is cols x rows, both row-major. */
static void transpose_into(double *dst, const double *src, size_t rows, size_t cols)
{
    for (size_t a = 0; a < rows; a++)
        for (size_t c = 0; c < cols; c++) dst[a * cols + c] = src[c * rows + a];
}

static td_status tucker2(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, const size_t r[2],
                         const td_tucker_options *opt, td_chain *out)
{
    td_tucker_options o = *opt;
    o.truncate = NULL;
    o.clamp = 0;
    int modes[2] = {0, 1};
    td_tucker_result tr;
    memset(&tr, 0, sizeof tr);
    td_status st = begin(d, kernel, bias, TD_METHOD_TUCKER2, r, out);
    if (st == TD_OK) st = td_tucker(kernel, 2, modes, r, &o, &tr);
    if (st != TD_OK) goto done;
    td_chain_piece *p = out->pieces;
    transpose_into(p[0].kernel.data, tr.factors[1].data, r[1], d->cin);   /* U_in^T */
    memcpy(p[1].kernel.data, tr.core.data, tr.core.size * sizeof(double));
    memcpy(p[2].kernel.data, tr.factors[0].data, d->cout * r[0] * sizeof(double));
done:
    td_tucker_free(&tr);
    return st;
}

static td_status cp(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, size_t rank,
                    const td_cp_options *opt, td_chain *out)
{
    const size_t r = rank, kh = d->kh, kw = d->kw, ranks[2] = {rank, 0};
    td_cp_result f;
    memset(&f, 0, sizeof f);
    td_status st = begin(d, kernel, bias, TD_METHOD_CP, ranks, out);
    if (st == TD_OK) st = td_cp_als(kernel, rank, opt, &f);
    if (st != TD_OK) goto done;
    td_chain_piece *p = out->pieces;
    transpose_into(p[0].kernel.data, f.factors[1].data, r, d->cin);
    transpose_into(p[1].kernel.data, f.factors[2].data, r, kh);
    transpose_into(p[2].kernel.data, f.factors[3].data, r, kw);
    for (size_t o = 0; o < d->cout; o++)   /* the weights folded into the last piece */
        for (size_t a = 0; a < r; a++) p[3].kernel.data[o * r + a] = f.factors[0].data[o * r + a] * f.weights[a];
done:
    td_cp_free(&f);
    return st;
}

/* Rank-j SVD of a rows x cols block into u_s (rows x j, singular values folded in) and vt. */
static td_status svd_block(const td_tensor *m, size_t j, td_tensor *us, td_tensor *vt)
{
    double *s = malloc(j * sizeof(double));
    if (!s) return TD_ENOMEM;
    td_status st = td_matrix_alloc(us, m->shape[0], j);
    if (st == TD_OK) st = td_matrix_alloc(vt, j, m->shape[1]);
    if (st == TD_OK) st = td_svd_trunc(m, j, NULL, us, s, vt);
    if (st == TD_OK)
        for (size_t i = 0; i < m->shape[0]; i++)
            for (size_t c = 0; c < j; c++) us->data[i * j + c] *= s[c];
    free(s);
    return st;
}

/* (Grouped) SVD of the lowering: group g's (Cout, Cin/k kh kw) slice gets a rank-j SVD. */
static td_status svd(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, size_t k, size_t j,
                     td_chain *out)
{
    const size_t sp = d->kh * d->kw, cols = d->cin / k * sp, kj = k * j;
    const size_t ranks[2] = {k > 1 ? k : j, k > 1 ? j : 0};
    td_tensor m = {0}, us = {0}, vt = {0};
    const size_t ms[2] = {d->cout, cols};
    td_status st = begin(d, kernel, bias, k > 1 ? TD_METHOD_SVD_GROUPED : TD_METHOD_SVD, ranks, out);
    /* one group: the kernel is the (Cout, Cin kh kw) matrix already (no copy of an LLM-sized layer) */
    if (st == TD_OK) st = k == 1 ? td_tensor_view(&m, 2, ms, kernel->data) : td_matrix_alloc(&m, d->cout, cols);
    td_chain_piece *p = out->pieces;
    for (size_t g = 0; g < k && st == TD_OK; g++) {
        for (size_t o = 0; o < d->cout && k > 1; o++)
            memcpy(m.data + o * cols, kernel->data + o * d->cin * sp + g * cols, cols * sizeof(double));
        if ((st = svd_block(&m, j, &us, &vt)) == TD_OK) {
            memcpy(p[0].kernel.data + g * j * cols, vt.data, j * cols * sizeof(double));
            for (size_t o = 0; o < d->cout; o++)
                memcpy(p[1].kernel.data + o * kj + g * j, us.data + o * j, j * sizeof(double));
        }
        td_tensor_free(&us);
        td_tensor_free(&vt);
    }
    td_tensor_free(&m);
    return st;
}

/* Tucker-2 in the whitened metric with the output factor from the output covariance (Zhang et
 * al. 2015): U_out = leading eigenvectors of D C_y D, U_in the best input factor given U_out (the
 * leading left singular vectors of W~ x_0 U_out^T on mode 1), the core by projection. */
static td_status tucker2_outcov(const td_layer_desc *d, const td_tensor *wt, const td_tensor *bias,
                                const td_tensor *ocov, const td__metric *mt, const size_t r[2], td_chain *out)
{
    const size_t n = d->cout;
    td_tensor uo = {0}, t = {0};
    td_tucker_result tr;
    memset(&tr, 0, sizeof tr);
    double *a = malloc(n * n * sizeof *a), *ev = malloc(n * sizeof *ev);
    td_status st = a && ev ? begin(d, wt, bias, TD_METHOD_TUCKER2, r, out) : TD_ENOMEM;
    if (st == TD_OK) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                a[i * n + j] = ocov->data[i * n + j] * (mt->d ? mt->d[i] * mt->d[j] : 1.0);
        if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, a, (lapack_int)n, ev) != 0) st = TD_ELAPACK;
    }
    if (st == TD_OK) st = td_matrix_alloc(&uo, n, r[0]);
    if (st == TD_OK)
        for (size_t i = 0; i < n; i++)   /* eigenvalues ascending: the last r[0] columns, reversed */
            for (size_t c = 0; c < r[0]; c++) uo.data[i * r[0] + c] = a[i * n + (n - 1 - c)];
    const size_t ts[4] = {r[0], d->cin, d->kh, d->kw};
    if (st == TD_OK) st = td_tensor_alloc(&t, 4, ts);
    if (st == TD_OK) st = td_ttm(wt, 0, &uo, 1, &t);
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.method = TD_TUCKER_HOSVD;
    const int mode1 = 1;
    if (st == TD_OK) st = td_tucker(&t, 1, &mode1, &r[1], &o, &tr);
    if (st == TD_OK) {
        td_chain_piece *p = out->pieces;
        transpose_into(p[0].kernel.data, tr.factors[0].data, r[1], d->cin);
        memcpy(p[1].kernel.data, tr.core.data, tr.core.size * sizeof(double));
        memcpy(p[2].kernel.data, uo.data, n * r[0] * sizeof(double));
    }
    td_tucker_free(&tr);
    td_tensor_free(&t);
    td_tensor_free(&uo);
    free(a);
    free(ev);
    return st;
}

/* Maps a chain of the whitened kernel back: the input side through S^-1, the output side D^-1. */
static td_status unwhiten(td_chain *c, const td__metric *mt, size_t rep)
{
    td_chain_piece *p = c->pieces;
    td_tensor *first = &p[0].kernel, *last = &p[c->npieces - 1].kernel;
    const size_t rows = first->shape[0], cols = first->size / rows, lcols = last->size / last->shape[0];
    td_status st = TD_OK;
    if (c->method == TD_METHOD_SVD_GROUPED) {
        const size_t k = c->ranks[0], j = c->ranks[1];
        for (size_t g = 0; g < k && st == TD_OK; g++)
            st = td__metric_apply(mt, g, 1, first->data + g * j * cols, j, cols, rep);
    } else {
        st = td__metric_apply(mt, 0, 1, first->data, rows, cols, c->method == TD_METHOD_SVD ? rep : 1);
    }
    td__metric_scale_rows(mt, 1, last->data, lcols, lcols);
    return st;
}

/* Data-aware rewrite: the data-free method on W~ = D W S, mapped back. */
static td_status rewrite_whitened(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                                  td_method m, const size_t r[2], const td_rewrite_options *opt, td_chain *out)
{
    const size_t k = m == TD_METHOD_SVD_GROUPED ? r[0] : 1;
    td__metric mt;
    size_t rep;
    td_tensor wt = {0};
    td_status st = td__metric_for(d, opt->stats, m, k, &mt, &rep);
    if (st != TD_OK) return st;
    st = td__whiten_with(&mt, rep, kernel, &wt);   /* one metric (eigendecomposition) for both ways */
    if (st == TD_OK) {
        if (m == TD_METHOD_TUCKER2 && opt->stats->output_cov && !opt->ignore_output_cov)
            st = tucker2_outcov(d, &wt, bias, opt->stats->output_cov, &mt, r, out);
        else if (m == TD_METHOD_TUCKER2) st = tucker2(d, &wt, bias, r, &opt->tucker, out);
        else if (m == TD_METHOD_CP) st = cp(d, &wt, bias, r[0], &opt->cp, out);
        else st = svd(d, &wt, bias, k, m == TD_METHOD_SVD ? r[0] : r[1], out);
    }
    if (st == TD_OK) st = unwhiten(out, &mt, rep);
    td_tensor_free(&wt);
    td__metric_free(&mt);
    return st;
}

/* The data-free method on the kernel itself. */
static td_status rewrite_plain(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, td_method m,
                               const size_t r[2], const td_rewrite_options *opt, td_chain *out)
{
    switch (m) {
    case TD_METHOD_TUCKER2: return tucker2(d, kernel, bias, r, &opt->tucker, out);
    case TD_METHOD_CP: return cp(d, kernel, bias, r[0], &opt->cp, out);
    case TD_METHOD_SVD: return svd(d, kernel, bias, 1, r[0], out);
    default: return svd(d, kernel, bias, r[0], r[1], out);
    }
}

void td_rewrite_options_init(td_rewrite_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    td_tucker_options_init(&opt->tucker);
    td_cp_options_init(&opt->cp);
}

/* Lowers r to hi when clamping is allowed; 0 (refused) otherwise. */
static int fit_rank(size_t *r, size_t hi, int clamp, int *clamped)
{
    if (*r <= hi) return 1;
    if (!clamp) return 0;
    *r = hi;
    *clamped = 1;
    return 1;
}

td_status td_layer_rewrite(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, td_method m,
                           const size_t ranks[2], const td_rewrite_options *opt, td_chain *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    td_rewrite_options defaults;
    if (!opt) { td_rewrite_options_init(&defaults); opt = &defaults; }
    td_admission a;
    td_status st = td_layer_admission(d, &a);
    if (st != TD_OK || !ranks) return TD_EINVAL;
    if (m <= TD_METHOD_NONE || m >= TD_METHOD_COUNT) return TD_EINVAL;
    if (!(a.mask & TD_METHOD_BIT(m))) return d->kind == TD_LAYER_CONV2D && d->groups > 1 ? TD_EUNSUPPORTED : TD_EINVAL;
    size_t r0 = ranks[0], r1 = ranks[1];
    int clamped = 0, ok = r0 >= 1;
    switch (m) {
    case TD_METHOD_TUCKER2:
        ok = ok && r1 >= 1 && fit_rank(&r0, d->cout, opt->clamp, &clamped) && fit_rank(&r1, d->cin, opt->clamp, &clamped);
        break;
    case TD_METHOD_SVD: ok = ok && fit_rank(&r0, td_svd_rank_limit(d, 1), opt->clamp, &clamped); break;
    case TD_METHOD_SVD_GROUPED:
        ok = ok && r1 >= 1 && d->cin % r0 == 0 && fit_rank(&r1, td_svd_rank_limit(d, r0), opt->clamp, &clamped);
        break;
    default: break;
    }
    if (!ok) return TD_EINVAL;
    const size_t r[2] = {r0, r1};
    const double t0 = td__now();
    if (opt->stats && (st = td_layer_stats_check(d, opt->stats, NULL)) != TD_OK) return st;
    if (opt->stats && (st = check_layer(d, kernel, bias)) != TD_OK) return st;
    st = opt->stats ? rewrite_whitened(d, kernel, bias, m, r, opt, out) : rewrite_plain(d, kernel, bias, m, r, opt, out);
    if (st == TD_OK) st = finish(out, d, kernel, opt, t0);
    if (st != TD_OK) { td_chain_free(out); return st; }
    out->clamped = clamped;
    return TD_OK;
}

/* The conv-only convenience entry points: out is zeroed first, whatever the outcome. */
static td_status conv_rewrite(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                              td_method method, const size_t r[2], const td_rewrite_options *o, td_chain *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!d || d->kind != TD_LAYER_CONV2D) return TD_EINVAL;
    return td_layer_rewrite(d, kernel, bias, method, r, o, out);
}

td_status td_conv_tucker2(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                          size_t r_out, size_t r_in, const td_tucker_options *opt, td_chain *out)
{
    td_rewrite_options o;
    td_rewrite_options_init(&o);
    if (opt) o.tucker = *opt;
    o.clamp = o.tucker.clamp;
    const size_t r[2] = {r_out, r_in};
    return conv_rewrite(d, kernel, bias, TD_METHOD_TUCKER2, r, &o, out);
}

td_status td_conv_cp(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, size_t rank,
                     const td_cp_options *opt, td_chain *out)
{
    td_rewrite_options o;
    td_rewrite_options_init(&o);
    if (opt) o.cp = *opt;
    const size_t r[2] = {rank, 0};
    return conv_rewrite(d, kernel, bias, TD_METHOD_CP, r, &o, out);
}

td_status td_layer_svd(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, size_t rank,
                       int clamp, td_chain *out)
{
    return td_conv_svd_grouped(d, kernel, bias, 1, rank, clamp, out);
}

td_status td_conv_svd_grouped(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                              size_t k, size_t j, int clamp, td_chain *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!d || k == 0 || j == 0 || (d->kind == TD_LAYER_DENSE && k != 1)) return TD_EINVAL;
    td_rewrite_options o;
    td_rewrite_options_init(&o);
    o.clamp = clamp;
    const size_t r[2] = {k > 1 ? k : j, k > 1 ? j : 0};
    return td_layer_rewrite(d, kernel, bias, k > 1 ? TD_METHOD_SVD_GROUPED : TD_METHOD_SVD, r, &o, out);
}

static int is_shape4(const td_tensor *t, size_t a, size_t b, size_t c, size_t d)
{
    return t->ndim == 4 && t->shape[0] == a && t->shape[1] == b && t->shape[2] == c && t->shape[3] == d &&
           t->data != NULL;
}

/* Only the method and the pieces' kernels are read (a chain rebuilt from a file's datasets as
 * views works); every shape is checked against out before any element is touched. */
td_status td_chain_compose(const td_chain *c, td_tensor *out)
{
    if (!c || !out || !out->data) return TD_EINVAL;
    const td_chain_piece *p = c->pieces;
    const int conv = out->ndim == 4;
    if (!conv && out->ndim != 2) return TD_ESHAPE;
    const size_t cout = out->shape[0], cin = out->shape[1], kh = conv ? out->shape[2] : 1, kw = conv ? out->shape[3] : 1;
    switch (c->method) {
    case TD_METHOD_TUCKER2: {
        /* core x_0 U_out x_1 U_in with U_out = piece 2 (Cout x R_out), U_in^T = piece 0 */
        if (c->npieces != 3 || !conv) return TD_ESHAPE;
        const td_tensor *core = &p[1].kernel;
        if (core->ndim != 4) return TD_ESHAPE;
        const size_t r_out = core->shape[0], r_in = core->shape[1];
        if (!is_shape4(core, r_out, r_in, kh, kw) || !is_shape4(&p[0].kernel, r_in, cin, 1, 1) ||
            !is_shape4(&p[2].kernel, cout, r_out, 1, 1))
            return TD_ESHAPE;
        /* Two GEMMs on permuted copies, not a mode-1 product (one thin GEMM per output channel,
         * kh kw columns each): H[c, (a, s)] = sum_b U_in[c, b] G[a, b, s], then
         * W[o, (c, s)] = sum_a U_out[o, a] H[c, a, s] with H laid out as (a, c, s). */
        const size_t sp = kh * kw, hsize = cin * r_out * sp, big = hsize > core->size ? hsize : core->size;
        if (!td__fits_blas(cout) || !td__fits_blas(cin * sp) || !td__fits_blas(r_out * sp) || !td__fits_blas(r_in))
            return TD_ERANGE;
        double *b1 = malloc(big * sizeof(double) + 1), *b2 = malloc(hsize * sizeof(double) + 1);
        if (!b1 || !b2) { free(b1); free(b2); return TD_ENOMEM; }
        for (size_t a = 0; a < r_out; a++) /* G (a, b, s) -> (b, a, s) */
            for (size_t b = 0; b < r_in; b++)
                memcpy(b1 + (b * r_out + a) * sp, core->data + (a * r_in + b) * sp, sp * sizeof(double));
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cin, (int)(r_out * sp), (int)r_in, 1.0,
                    p[0].kernel.data, (int)cin, b1, (int)(r_out * sp), 0.0, b2, (int)(r_out * sp));
        for (size_t c = 0; c < cin; c++) /* H (c, a, s) -> (a, c, s) */
            for (size_t a = 0; a < r_out; a++)
                memcpy(b1 + (a * cin + c) * sp, b2 + (c * r_out + a) * sp, sp * sizeof(double));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)(cin * sp), (int)r_out, 1.0,
                    p[2].kernel.data, (int)r_out, b1, (int)(cin * sp), 0.0, out->data, (int)(cin * sp));
        free(b1);
        free(b2);
        return TD_OK;
    }
    case TD_METHOD_CP: {
        if (c->npieces != 4 || !conv || p[0].kernel.ndim != 4) return TD_ESHAPE;
        const size_t r = p[0].kernel.shape[0];
        if (!is_shape4(&p[0].kernel, r, cin, 1, 1) || !is_shape4(&p[1].kernel, r, 1, kh, 1) ||
            !is_shape4(&p[2].kernel, r, 1, 1, kw) || !is_shape4(&p[3].kernel, cout, r, 1, 1))
            return TD_ESHAPE;
        /* out (Cout x Cin kh kw) = A (Cout x R) Z, Z[a, (ci, i, j)] = B^T[a, ci] C[a, i] D[a, j]:
         * one GEMM instead of an R-long loop per element */
        const size_t cols = cin * kh * kw;
        size_t zsize;
        if (!td__fits_blas(cout) || !td__fits_blas(cols) || !td__fits_blas(r)) return TD_ERANGE;
        if (!td__mul_ok(r, cols, &zsize) || !td__mul_ok(zsize, sizeof(double), &zsize)) return TD_EOVERFLOW;
        double *z = malloc(zsize ? zsize : 1);
        if (!z) return TD_ENOMEM;
        for (size_t a = 0; a < r; a++)
            for (size_t ci = 0; ci < cin; ci++)
                for (size_t i = 0; i < kh; i++)
                    for (size_t j = 0; j < kw; j++)
                        z[a * cols + (ci * kh + i) * kw + j] =
                            p[0].kernel.data[a * cin + ci] * p[1].kernel.data[a * kh + i] * p[2].kernel.data[a * kw + j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)cols, (int)r, 1.0, p[3].kernel.data,
                    (int)r, z, (int)cols, 0.0, out->data, (int)cols);
        free(z);
        return TD_OK;
    }
    case TD_METHOD_SVD:
    case TD_METHOD_SVD_GROUPED: {
        /* out[:, group g] = B[:, g j:(g+1) j] A[g j:(g+1) j, :]; k from the encoder's Cin / k */
        const td_tensor *a = &p[0].kernel, *b = &p[1].kernel;
        if (c->npieces != 2 || a->ndim != out->ndim || a->shape[1] == 0 || cin % a->shape[1] != 0) return TD_ESHAPE;
        const size_t k = cin / a->shape[1], kj = a->shape[0], j = k ? kj / k : 0, cols = a->shape[1] * kh * kw;
        if (j == 0 || kj % k != 0 || (c->method == TD_METHOD_SVD && k != 1)) return TD_ESHAPE;
        if (conv ? !is_shape4(a, kj, cin / k, kh, kw) || !is_shape4(b, cout, kj, 1, 1)
                 : b->ndim != 2 || b->shape[0] != cout || b->shape[1] != kj || !a->data || !b->data)
            return TD_ESHAPE;
        if (!td__fits_blas(cout) || !td__fits_blas(cols * k) || !td__fits_blas(kj)) return TD_ERANGE;
        for (size_t g = 0; g < k; g++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)cols, (int)j, 1.0,
                        b->data + g * j, (int)kj, a->data + g * j * cols, (int)cols, 0.0,
                        out->data + g * cols, (int)(cols * k));
        return TD_OK;
    }
    default: return TD_EINVAL;
    }
}
