/* Reference executor: direct convolution in plain loops, and im2col + GEMM per group. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "internal.h"

static td_status prepare(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                         const td_tensor *in, td_tensor *out, size_t pad[4], size_t *ho, size_t *wo)
{
    if (!d || !kernel || !in || !out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    /* the cost model's own validity and kernel checks, before anything divides by groups */
    td_status st = td_layer_check(d);
    if (st != TD_OK) return st;
    if (!td__kernel_matches(d, kernel) || (bias && bias->size && bias->size != d->cout)) return TD_ESHAPE;
    if (d->kind == TD_LAYER_DENSE) {
        if (in->size != d->cin) return TD_ESHAPE;
        size_t s[1] = {d->cout};
        return td_tensor_alloc(out, 1, s);
    }
    if (in->ndim != 3 || in->shape[0] != d->cin) return TD_ESHAPE;
    st = td_layer_padding(d, in->shape[1], in->shape[2], pad);
    if (st == TD_OK) st = td_layer_output_size(d, in->shape[1], in->shape[2], ho, wo);
    if (st != TD_OK) return st;
    size_t s[3] = {d->cout, *ho, *wo};
    return td_tensor_alloc(out, 3, s);
}

static td_status dense(const td_layer_desc *d, const td_tensor *k, const td_tensor *b, const td_tensor *in,
                       td_tensor *out)
{
    for (size_t o = 0; o < d->cout; o++) {
        double s = b && b->size ? b->data[o] : 0.0;
        for (size_t i = 0; i < d->cin; i++) s += k->data[o * d->cin + i] * in->data[i];
        out->data[o] = s;
    }
    return TD_OK;
}

td_status td_layer_apply_direct(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                                const td_tensor *input, td_tensor *output)
{
    size_t pad[4], ho = 1, wo = 1;
    td_status st = prepare(d, kernel, bias, input, output, pad, &ho, &wo);
    if (st != TD_OK || d->kind == TD_LAYER_DENSE) return st == TD_OK ? dense(d, kernel, bias, input, output) : st;
    const size_t h = input->shape[1], w = input->shape[2], g = d->groups, cig = d->cin / g, cog = d->cout / g;
    for (size_t o = 0; o < d->cout; o++) {
        const size_t grp = o / cog;
        for (size_t y = 0; y < ho; y++)
            for (size_t x = 0; x < wo; x++) {
                double s = bias && bias->size ? bias->data[o] : 0.0;
                for (size_t c = 0; c < cig; c++)
                    for (size_t i = 0; i < d->kh; i++) {
                        long iy = (long)(y * d->stride[0] + i * d->dilation[0]) - (long)pad[0];
                        if (iy < 0 || iy >= (long)h) continue;
                        for (size_t j = 0; j < d->kw; j++) {
                            long ix = (long)(x * d->stride[1] + j * d->dilation[1]) - (long)pad[2];
                            if (ix < 0 || ix >= (long)w) continue;
                            s += kernel->data[((o * cig + c) * d->kh + i) * d->kw + j] *
                                 input->data[((grp * cig + c) * h + (size_t)iy) * w + (size_t)ix];
                        }
                    }
                output->data[(o * ho + y) * wo + x] = s;
            }
    }
    return TD_OK;
}

td_status td_layer_apply_gemm(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                              const td_tensor *input, td_tensor *output)
{
    size_t pad[4], ho = 1, wo = 1;
    td_status st = prepare(d, kernel, bias, input, output, pad, &ho, &wo);
    if (st != TD_OK) return st;
    double *col = NULL;
    if (d->kind == TD_LAYER_DENSE) {
        if (!td__fits_blas(d->cout) || !td__fits_blas(d->cin)) { st = TD_ERANGE; goto done; }
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d->cout, (int)d->cin, 1.0, kernel->data, (int)d->cin,
                    input->data, 1, 0.0, output->data, 1);
        if (bias && bias->size)
            for (size_t o = 0; o < d->cout; o++) output->data[o] += bias->data[o];
        goto done;
    }
    const size_t h = input->shape[1], w = input->shape[2], g = d->groups, cig = d->cin / g, cog = d->cout / g;
    const size_t rows = cig * d->kh * d->kw, npix = ho * wo;
    size_t colsize;
    if (!td__fits_blas(rows) || !td__fits_blas(npix) || !td__fits_blas(cog)) { st = TD_ERANGE; goto done; }
    if (!td__mul_ok(rows, npix, &colsize) || !td__mul_ok(colsize, sizeof(double), &colsize)) { st = TD_EOVERFLOW; goto done; }
    /* a 1x1 conv with stride 1 and no padding reads its input as the column matrix itself */
    const int direct = d->kh == 1 && d->kw == 1 && d->stride[0] == 1 && d->stride[1] == 1 && !pad[0] && !pad[1] &&
                       !pad[2] && !pad[3];
    if (direct) {
        for (size_t grp = 0; grp < g; grp++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cog, (int)npix, (int)rows, 1.0,
                        kernel->data + grp * cog * rows, (int)rows, input->data + grp * cig * npix, (int)npix, 0.0,
                        output->data + grp * cog * npix, (int)npix);
        goto bias;
    }
    if (!(col = malloc(colsize ? colsize : 1))) { st = TD_ENOMEM; goto done; }
    for (size_t grp = 0; grp < g; grp++) {
        /* im2col: row (c, i, j), column (y, x) */
        for (size_t c = 0; c < cig; c++)
            for (size_t i = 0; i < d->kh; i++)
                for (size_t j = 0; j < d->kw; j++) {
                    double *dst = col + ((c * d->kh + i) * d->kw + j) * npix;
                    const double *src = input->data + (grp * cig + c) * h * w;
                    for (size_t y = 0; y < ho; y++) {
                        long iy = (long)(y * d->stride[0] + i * d->dilation[0]) - (long)pad[0];
                        for (size_t x = 0; x < wo; x++) {
                            long ix = (long)(x * d->stride[1] + j * d->dilation[1]) - (long)pad[2];
                            dst[y * wo + x] = (iy < 0 || iy >= (long)h || ix < 0 || ix >= (long)w)
                                                  ? 0.0 : src[(size_t)iy * w + (size_t)ix];
                        }
                    }
                }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cog, (int)npix, (int)rows, 1.0,
                    kernel->data + grp * cog * rows, (int)rows, col, (int)npix, 0.0,
                    output->data + grp * cog * npix, (int)npix);
    }
bias:
    if (bias && bias->size)
        for (size_t o = 0; o < d->cout; o++)
            for (size_t p = 0; p < npix; p++) output->data[o * npix + p] += bias->data[o];
done:
    free(col);
    if (st != TD_OK) td_tensor_free(output);
    return st;
}

td_status td_chain_apply(const td_chain *c, const td_tensor *input, int gemm, td_tensor *output)
{
    if (!c || !input || !output || c->npieces < 1) return TD_EINVAL;
    memset(output, 0, sizeof *output);
    td_tensor cur = {0};
    const td_tensor *in = input;
    td_status st = TD_OK;
    for (int p = 0; p < c->npieces; p++) {
        const td_chain_piece *pc = &c->pieces[p];
        td_tensor next;
        st = gemm ? td_layer_apply_gemm(&pc->desc, &pc->kernel, &pc->bias, in, &next)
                  : td_layer_apply_direct(&pc->desc, &pc->kernel, &pc->bias, in, &next);
        td_tensor_free(&cur);
        if (st != TD_OK) return st;
        cur = next;
        in = &cur;
    }
    *output = cur;
    return TD_OK;
}

/* Output and im2col bytes of one layer at an h x w input; the output size into *ho, *wo. */
static td_status apply_bytes(const td_layer_desc *d, size_t h, size_t w, size_t *ho, size_t *wo, uint64_t *bytes)
{
    td_status st = td_layer_check(d);
    if (st != TD_OK) return st;
    *ho = *wo = 1;
    if (d->kind == TD_LAYER_DENSE) { *bytes = (uint64_t)d->cout * sizeof(double); return TD_OK; }
    size_t pad[4];
    if ((st = td_layer_padding(d, h, w, pad)) != TD_OK || (st = td_layer_output_size(d, h, w, ho, wo)) != TD_OK) return st;
    const double npix = (double)*ho * (double)*wo, out = (double)d->cout * npix;
    const int direct = d->kh == 1 && d->kw == 1 && d->stride[0] == 1 && d->stride[1] == 1 && !pad[0] && !pad[1] && !pad[2] &&
                       !pad[3];
    const double col = direct ? 0 : (double)(d->cin / d->groups) * (double)d->kh * (double)d->kw * npix;
    const double b = 8.0 * (out + col);
    if (!(b < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)b;
    return TD_OK;
}

td_status td_layer_apply_workspace(const td_layer_desc *d, size_t h, size_t w, uint64_t *bytes)
{
    size_t ho, wo;
    if (!bytes) return TD_EINVAL;
    return apply_bytes(d, h, w, &ho, &wo, bytes);
}

td_status td_chain_apply_workspace(const td_chain *c, size_t h, size_t w, uint64_t *bytes)
{
    if (!c || !bytes || c->npieces < 1 || c->npieces > TD_CHAIN_MAX) return TD_EINVAL;
    /* piece p holds its input (the previous output) and its own output and im2col buffer */
    uint64_t peak = 0, prev_out = 0;
    for (int p = 0; p < c->npieces; p++) {
        const td_layer_desc *d = &c->pieces[p].desc;
        uint64_t b;
        size_t ho, wo;
        td_status st = apply_bytes(d, h, w, &ho, &wo, &b);
        if (st != TD_OK) return st;
        if (prev_out + b > peak) peak = prev_out + b;
        prev_out = (uint64_t)d->cout * ho * wo * sizeof(double);
        h = ho;
        w = wo;
    }
    *bytes = peak;
    return TD_OK;
}
