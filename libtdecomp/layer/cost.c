/* Geometry and the cost model (MACs = Ho Wo Cout Cin/g kh kw, FLOPs = 2 MACs, bias excluded). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "core/internal.h"
#include "tdecomp/layer.h"

const char *td_method_name(td_method m)
{
    switch (m) {
    case TD_METHOD_TUCKER2: return "tucker2";
    case TD_METHOD_CP: return "cp";
    case TD_METHOD_SVD: return "svd";
    case TD_METHOD_SVD_GROUPED: return "svd-grouped";
    default: return "none";
    }
}

td_status td_layer_check(const td_layer_desc *d)
{
    if (!d || d->cout == 0 || d->cin == 0 || d->kh == 0 || d->kw == 0) return TD_EINVAL;
    if (d->kind == TD_LAYER_DENSE) return d->kh == 1 && d->kw == 1 ? TD_OK : TD_EINVAL;
    if (d->kind != TD_LAYER_CONV2D || d->groups < 1 || d->cin % d->groups || d->cout % d->groups) return TD_EINVAL;
    if (d->stride[0] < 1 || d->stride[1] < 1 || d->dilation[0] < 1 || d->dilation[1] < 1) return TD_EINVAL;
    if (d->pad_mode != TD_PAD_EXPLICIT && d->pad_mode != TD_PAD_SAME && d->pad_mode != TD_PAD_VALID) return TD_EINVAL;
    if (d->input_known && (d->in_h == 0 || d->in_w == 0)) return TD_EINVAL;
    return TD_OK;
}

static int valid(const td_layer_desc *d) { return td_layer_check(d) == TD_OK; }

/* a * b into *out; 0 on uint64 overflow (absurd input sizes from a layer spec). */
static int mul64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

td_status td_layer_padding(const td_layer_desc *d, size_t h, size_t w, size_t pad[4])
{
    if (!valid(d) || !pad) return TD_EINVAL;
    if (d->kind == TD_LAYER_CONV2D && (h == 0 || w == 0)) return TD_EINVAL;
    if (d->kind == TD_LAYER_DENSE || d->pad_mode == TD_PAD_VALID) {
        memset(pad, 0, 4 * sizeof pad[0]);
        return TD_OK;
    }
    if (d->pad_mode == TD_PAD_EXPLICIT) {
        memcpy(pad, d->pad, 4 * sizeof pad[0]);
        return TD_OK;
    }
    const size_t in[2] = {h, w}, k[2] = {d->kh, d->kw};
    for (int a = 0; a < 2; a++) {
        size_t s = d->stride[a], out = (in[a] + s - 1) / s, eff = (k[a] - 1) * d->dilation[a] + 1;
        size_t need = (out - 1) * s + eff, total = need > in[a] ? need - in[a] : 0;
        pad[2 * a] = total / 2;
        pad[2 * a + 1] = total - total / 2;
    }
    return TD_OK;
}

td_status td_layer_output_size(const td_layer_desc *d, size_t h, size_t w, size_t *ho, size_t *wo)
{
    if (!valid(d) || !ho || !wo) return TD_EINVAL;
    if (d->kind == TD_LAYER_DENSE) { *ho = *wo = 1; return TD_OK; }
    size_t pad[4];
    td_status st = td_layer_padding(d, h, w, pad);
    if (st != TD_OK) return st;
    const size_t in[2] = {h + pad[0] + pad[1], w + pad[2] + pad[3]}, k[2] = {d->kh, d->kw};
    size_t out[2];
    for (int a = 0; a < 2; a++) {
        size_t eff = (k[a] - 1) * d->dilation[a] + 1;
        if (in[a] < eff) return TD_EINVAL;
        out[a] = (in[a] - eff) / d->stride[a] + 1;
    }
    *ho = out[0];
    *wo = out[1];
    return TD_OK;
}

td_status td_layer_cost(const td_layer_desc *d, td_cost *c)
{
    if (!valid(d) || !c) return TD_EINVAL;
    memset(c, 0, sizeof *c);
    const size_t g = d->kind == TD_LAYER_DENSE ? 1 : d->groups;
    uint64_t per;
    if (!mul64((uint64_t)d->cout, (uint64_t)(d->cin / g), &per) || !mul64(per, (uint64_t)d->kh, &per) ||
        !mul64(per, (uint64_t)d->kw, &per) || per > UINT64_MAX / 2)
        return TD_EOVERFLOW;
    c->params = per;
    c->flops_per_pixel = 2.0 * (double)per;
    if (d->kind == TD_LAYER_DENSE) {
        c->known = 1;
        c->macs = per;
        c->flops = 2 * per;
        return TD_OK;
    }
    if (d->input_known) {
        size_t ho, wo;
        td_status st = td_layer_output_size(d, d->in_h, d->in_w, &ho, &wo);
        if (st != TD_OK) return st;
        uint64_t m;
        if (!mul64((uint64_t)ho, (uint64_t)wo, &m) || !mul64(m, per, &m) || m > UINT64_MAX / 2) {
            memset(c, 0, sizeof *c);
            return TD_EOVERFLOW;
        }
        c->known = 1;
        c->macs = m;
        c->flops = 2 * m;
    }
    return TD_OK;
}

td_status td_chain_cost(const td_chain *ch, td_cost *cost)
{
    if (!ch || !cost || ch->npieces < 1) return TD_EINVAL;
    memset(cost, 0, sizeof *cost);
    cost->known = 1;
    for (int p = 0; p < ch->npieces; p++) {
        td_cost pc;
        td_status st = td_layer_cost(&ch->pieces[p].desc, &pc);
        if (st != TD_OK) return st;
        /* pieces before a strided piece run on s*s pixels per output pixel */
        double mult = 1;
        for (int q = p + 1; q < ch->npieces; q++)
            if (ch->pieces[q].desc.kind == TD_LAYER_CONV2D)
                mult *= (double)(ch->pieces[q].desc.stride[0] * ch->pieces[q].desc.stride[1]);
        if (pc.params > UINT64_MAX / 2 - cost->params || pc.flops > UINT64_MAX / 2 - cost->flops) {
            memset(cost, 0, sizeof *cost);
            return TD_EOVERFLOW;
        }
        cost->params += pc.params;
        cost->flops_per_pixel += pc.flops_per_pixel * mult;
        cost->known = cost->known && pc.known;
        cost->macs += pc.macs;
        cost->flops += pc.flops;
    }
    if (!cost->known) cost->macs = cost->flops = 0;
    return TD_OK;
}

/* The method's decomposition of d's kernel (or of the whitened copy), from the decompositions'
 * own workspace queries, plus the factors it returns, in bytes. */
static td_status decomposition_bytes(const td_layer_desc *d, td_method m, const size_t ranks[2], double kern, double *out)
{
    const size_t cols = (size_t)kern / d->cout, shape[4] = {d->cout, d->cin, d->kh, d->kw};
    uint64_t b = 0;
    td_status st = TD_OK;
    switch (m) {
    case TD_METHOD_TUCKER2: {
        const int modes[2] = {0, 1};
        const size_t r[2] = {ranks[0], ranks[1]};
        st = td_tucker_workspace(4, shape, 2, modes, r, NULL, &b);
        break;
    }
    case TD_METHOD_CP: st = td_cp_als_workspace(4, shape, ranks[0], NULL, &b); break;
    case TD_METHOD_SVD: /* the lowering's SVD and U, s, V^T */
        st = td_svd_trunc_workspace(d->cout, cols, ranks[0], NULL, &b);
        b += 8 * (uint64_t)ranks[0] * (d->cout + cols + 1);
        break;
    default: { /* one group's slice at a time, its SVD and factors */
        const size_t gc = cols / ranks[0], j = ranks[1];
        st = td_svd_trunc_workspace(d->cout, gc, j, NULL, &b);
        b += 8 * ((uint64_t)j * (d->cout + gc + 1) + (uint64_t)d->cout * gc);
        break;
    }
    }
    *out = (double)b;
    return st;
}

/* What a rewrite holds at its peak besides the kernel: the chain's pieces (and bias), the composed
 * kernel of rel_error (with CP's Khatri-Rao matrix), the method's decomposition, and with
 * statistics the whitening (metric and whitened copy, td_layer_whiten_workspace, patch_cov assumed
 * given) and a second composed kernel for the output error. */
td_status td_rewrite_workspace(const td_layer_desc *d, td_method m, const size_t ranks[2], int with_stats,
                               uint64_t *bytes)
{
    if (!bytes) return TD_EINVAL;
    *bytes = 0;
    td_cost c, whole;
    td_status st = td_chain_cost_for(d, m, ranks, &c);
    if (st == TD_OK) st = td_layer_cost(d, &whole);
    const double kern = (double)whole.params;
    double dec = 0;
    if (st == TD_OK) st = decomposition_bytes(d, m, ranks, kern, &dec);
    uint64_t wb = 0;
    if (st == TD_OK && with_stats) st = td_layer_whiten_workspace(d, 1, m, m == TD_METHOD_SVD_GROUPED ? ranks[0] : 1, &wb);
    if (st != TD_OK) return st;
    /* the composed kernel, with CP's Khatri-Rao matrix or Tucker-2's two permuted intermediates */
    const double sp = (double)(d->kh * d->kw), t2 = (double)d->cin * (double)ranks[0] * sp,
                 core = (double)ranks[0] * (double)ranks[1] * sp;
    const double compose = kern + (m == TD_METHOD_CP ? (double)ranks[0] * kern / (double)d->cout : 0) +
                           (m == TD_METHOD_TUCKER2 ? t2 + fmax(t2, core) : 0);
    const double total = 8.0 * ((double)c.params + (double)d->cout + compose * (with_stats ? 2 : 1)) + dec + (double)wb;
    if (!(total < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)total;
    return TD_OK;
}
