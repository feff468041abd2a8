/* Which rewrites a layer admits, and the shape of a chain before any data: the one place that
 * says what each piece is, so the planner's predicted cost is the written chain's cost. */
#include <string.h>
#include "core/internal.h"
#include "layer/internal.h"

/* Reason texts are the report's: "method M does not apply" names the method. */
static const char *const not_applicable[TD_METHOD_COUNT] = {
    "method none does not apply", "method tucker2 does not apply", "method cp does not apply",
    "method svd does not apply", "method svd-grouped does not apply"};

td_status td_layer_admission(const td_layer_desc *d, td_admission *a)
{
    if (!a) return TD_EINVAL;
    memset(a, 0, sizeof *a);
    td_status st = td_layer_check(d);
    if (st != TD_OK) return st;
    const char *all = NULL;
    if (d->kind == TD_LAYER_CONV2D && d->groups > 1) all = d->groups == d->cin ? "depthwise" : "grouped";
    const int kxk = d->kind == TD_LAYER_CONV2D && d->kh * d->kw > 1;
    for (int m = TD_METHOD_TUCKER2; m < TD_METHOD_COUNT; m++) {
        const int fits = m == TD_METHOD_SVD || kxk;
        if (!all && fits) a->mask |= TD_METHOD_BIT(m);
        else a->why_not[m] = all ? all : not_applicable[m];
    }
    a->why_not[TD_METHOD_NONE] = not_applicable[TD_METHOD_NONE];
    return TD_OK;
}

void td_admission_refuse(td_admission *a, td_method m, const char *why)
{
    if (!a || m <= TD_METHOD_NONE || m >= TD_METHOD_COUNT || !(a->mask & TD_METHOD_BIT(m))) return;
    a->mask &= ~TD_METHOD_BIT(m);
    a->why_not[m] = why;
}

/* A shape-only kernel: the layout says its extents, td__chain_alloc gives it storage. */
static void shape4(td_tensor *t, size_t a, size_t b, size_t c, size_t e)
{
    memset(t, 0, sizeof *t);
    t->ndim = 4;
    t->shape[0] = a;
    t->shape[1] = b;
    t->shape[2] = c;
    t->shape[3] = e;
    t->size = a * b * c * e;
}

static void shape2(td_tensor *t, size_t a, size_t b)
{
    memset(t, 0, sizeof *t);
    t->ndim = 2;
    t->shape[0] = a;
    t->shape[1] = b;
    t->size = a * b;
}

/* The input a piece after `prev` sees: prev's output size when known. */
static void input_after(const td_layer_desc *prev, td_layer_desc *n)
{
    size_t ho, wo;
    n->input_known = prev->input_known && td_layer_output_size(prev, prev->in_h, prev->in_w, &ho, &wo) == TD_OK;
    n->in_h = n->input_known ? ho : 0;
    n->in_w = n->input_known ? wo : 0;
}

/* A 1x1 conv cin -> cout with stride 1 and no padding, on d's input (after = 0) or output. */
static void piece_1x1(td_chain_piece *p, const td_layer_desc *d, size_t cout, size_t cin, int after)
{
    td_layer_desc *q = &p->desc;
    memset(q, 0, sizeof *q);
    q->kind = TD_LAYER_CONV2D;
    q->cout = cout;
    q->cin = cin;
    q->kh = q->kw = 1;
    q->groups = 1;
    q->stride[0] = q->stride[1] = q->dilation[0] = q->dilation[1] = 1;
    q->pad_mode = TD_PAD_EXPLICIT;
    if (after) input_after(d, q);
    else { q->input_known = d->input_known; q->in_h = d->in_h; q->in_w = d->in_w; }
    shape4(&p->kernel, cout, cin, 1, 1);
}

/* The spatial piece: d's geometry with new channel counts and groups. */
static void piece_spatial(td_chain_piece *p, const td_layer_desc *d, size_t cout, size_t cin, size_t groups)
{
    p->desc = *d;
    p->desc.cout = cout;
    p->desc.cin = cin;
    p->desc.groups = groups;
    p->desc.has_bias = 0;
    if (d->kind == TD_LAYER_DENSE) shape2(&p->kernel, cout, cin);
    else shape4(&p->kernel, cout, cin / groups, d->kh, d->kw);
}

static void layout_tucker2(const td_layer_desc *d, size_t r_out, size_t r_in, td_chain *c)
{
    piece_1x1(&c->pieces[0], d, r_in, d->cin, 0);
    piece_spatial(&c->pieces[1], d, r_out, r_in, 1);
    piece_1x1(&c->pieces[2], d, d->cout, r_out, 1);
    c->npieces = 3;
}

/* CP: the kh x 1 piece takes the height stride, dilation and padding, the 1 x kw piece the
 * width ones; 'same' stays 'same' on both, which resolves to the original per-axis padding. */
static void layout_cp(const td_layer_desc *d, size_t r, td_chain *c)
{
    td_chain_piece *p = c->pieces;
    piece_1x1(&p[0], d, r, d->cin, 0);
    piece_spatial(&p[1], d, r, r, r);
    p[1].desc.kw = 1;
    p[1].desc.stride[1] = p[1].desc.dilation[1] = 1;
    p[1].desc.pad[2] = p[1].desc.pad[3] = 0;
    shape4(&p[1].kernel, r, 1, d->kh, 1);
    piece_spatial(&p[2], d, r, r, r);
    p[2].desc.kh = 1;
    p[2].desc.stride[0] = p[2].desc.dilation[0] = 1;
    p[2].desc.pad[0] = p[2].desc.pad[1] = 0;
    input_after(&p[1].desc, &p[2].desc);
    if (p[2].desc.input_known) p[2].desc.in_w = d->in_w; /* (Ho, W): only the height was reduced */
    shape4(&p[2].kernel, r, 1, 1, d->kw);
    piece_1x1(&p[3], d, d->cout, r, 1);
    c->npieces = 4;
}

static void layout_svd(const td_layer_desc *d, size_t k, size_t j, td_chain *c)
{
    const int dense = d->kind == TD_LAYER_DENSE;
    piece_spatial(&c->pieces[0], d, k * j, d->cin, dense ? 1 : k);
    if (dense) piece_spatial(&c->pieces[1], d, d->cout, j, 1);
    else piece_1x1(&c->pieces[1], d, d->cout, k * j, 1);
    c->npieces = 2;
}

size_t td_svd_rank_limit(const td_layer_desc *d, size_t k)
{
    const size_t cols = (d->cin / (k ? k : 1)) * d->kh * d->kw;
    return d->cout < cols ? d->cout : cols;
}

td_status td_chain_layout(const td_layer_desc *d, td_method m, const size_t ranks[2], td_chain *c)
{
    if (!c) return TD_EINVAL;
    memset(c, 0, sizeof *c);
    td_admission a;
    td_status st = td_layer_admission(d, &a);
    if (st != TD_OK) return st;
    if (!ranks || m <= TD_METHOD_NONE || m >= TD_METHOD_COUNT) return TD_EINVAL;
    if (!(a.mask & TD_METHOD_BIT(m))) return TD_EUNSUPPORTED;
    const size_t r0 = ranks[0], r1 = ranks[1];
    switch (m) {
    case TD_METHOD_TUCKER2:
        if (r0 < 1 || r1 < 1 || r0 > d->cout || r1 > d->cin) return TD_EINVAL;
        layout_tucker2(d, r0, r1, c);
        c->nranks = 2;
        break;
    case TD_METHOD_CP:
        if (r0 < 1) return TD_EINVAL;
        layout_cp(d, r0, c);
        c->nranks = 1;
        break;
    case TD_METHOD_SVD:
        if (r0 < 1 || r0 > td_svd_rank_limit(d, 1)) return TD_EINVAL;
        layout_svd(d, 1, r0, c);
        c->nranks = 1;
        break;
    default: /* TD_METHOD_SVD_GROUPED: (k, j) */
        if (r0 < 2 || d->cin % r0 || r1 < 1 || r1 > td_svd_rank_limit(d, r0)) return TD_EINVAL;
        layout_svd(d, r0, r1, c);
        c->nranks = 2;
        break;
    }
    c->method = m;
    c->ranks[0] = r0;
    c->ranks[1] = c->nranks == 2 ? r1 : 0;
    c->pieces[c->npieces - 1].desc.has_bias = d->has_bias;
    for (int p = 0; p < c->npieces; p++)
        if (td_layer_check(&c->pieces[p].desc) != TD_OK) { memset(c, 0, sizeof *c); return TD_EINVAL; }
    return TD_OK;
}

td_status td_chain_cost_for(const td_layer_desc *d, td_method m, const size_t ranks[2], td_cost *cost)
{
    if (!cost) return TD_EINVAL;
    memset(cost, 0, sizeof *cost);
    td_chain c;
    td_status st = td_chain_layout(d, m, ranks, &c);
    return st == TD_OK ? td_chain_cost(&c, cost) : st;
}

td_status td__chain_alloc(td_chain *c)
{
    td_status st = TD_OK;
    for (int p = 0; p < c->npieces && st == TD_OK; p++) {
        td_tensor *k = &c->pieces[p].kernel;
        size_t shape[TD_MAX_MODES];
        memcpy(shape, k->shape, sizeof shape);
        st = td_tensor_alloc(k, k->ndim, shape);
    }
    return st;
}
