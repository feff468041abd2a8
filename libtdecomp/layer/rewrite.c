/* Rewrites of conv and dense layers into chains of thinner layers. */
#include <cblas.h>
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
    return td_tensor_check_finite(kernel);
}

/* Output geometry of d as the next piece's input. */
static void next_input(const td_layer_desc *d, td_layer_desc *n)
{
    n->input_known = 0;
    size_t ho, wo;
    if (d->input_known && td_layer_output_size(d, d->in_h, d->in_w, &ho, &wo) == TD_OK) {
        n->input_known = 1;
        n->in_h = ho;
        n->in_w = wo;
    }
}

static td_status piece_1x1(td_chain_piece *p, size_t cout, size_t cin, const td_layer_desc *in_of,
                           int after)
{
    memset(&p->desc, 0, sizeof p->desc);
    p->desc.kind = TD_LAYER_CONV2D;
    p->desc.cout = cout;
    p->desc.cin = cin;
    p->desc.kh = p->desc.kw = 1;
    p->desc.groups = 1;
    p->desc.stride[0] = p->desc.stride[1] = 1;
    p->desc.dilation[0] = p->desc.dilation[1] = 1;
    p->desc.pad_mode = TD_PAD_EXPLICIT;
    if (after) {
        next_input(in_of, &p->desc);
    } else {
        p->desc.input_known = in_of->input_known;
        p->desc.in_h = in_of->in_h;
        p->desc.in_w = in_of->in_w;
    }
    size_t shape[4] = {cout, cin, 1, 1};
    return td_tensor_alloc(&p->kernel, 4, shape);
}

static td_status set_bias(td_chain_piece *p, const td_tensor *bias)
{
    if (!bias || bias->size == 0) return TD_OK;
    p->desc.has_bias = 1;
    return td_tensor_copy(&p->bias, bias);
}

td_status td_chain_rel_error(const td_chain *c, const td_tensor *kernel, double *rel_error)
{
    if (!c || !kernel || !rel_error) return TD_EINVAL;
    td_tensor w = {0};
    td_status st = td_tensor_alloc(&w, kernel->ndim, kernel->shape);
    if (st == TD_OK) st = td_chain_compose(c, &w);
    if (st == TD_OK) {
        const double nk = td_norm(kernel);
        for (size_t i = 0; i < w.size; i++) w.data[i] -= kernel->data[i];
        const double nd = td_norm(&w);
        *rel_error = nk > 0 ? nd / nk : nd;
    }
    td_tensor_free(&w);
    return st;
}

static td_status finish(td_chain *c, const td_tensor *kernel, double t0)
{
    td_status st = td_chain_rel_error(c, kernel, &c->rel_error);
    c->seconds = td__now() - t0;
    return st;
}

td_status td_conv_tucker2(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias,
                          size_t r_out, size_t r_in, const td_tucker_options *opt, td_chain *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!d || d->kind != TD_LAYER_CONV2D) return TD_EINVAL;
    if (d->groups != 1) return TD_EUNSUPPORTED;
    td_status st = check_layer(d, kernel, bias);
    if (st != TD_OK) return st;
    if (r_out == 0 || r_in == 0) return TD_EINVAL;
    td_tucker_options o;
    if (opt) o = *opt;
    else td_tucker_options_init(&o);
    o.truncate = NULL;
    int clamped = 0;
    if (r_out > d->cout) { if (!o.clamp) return TD_EINVAL; r_out = d->cout; clamped = 1; }
    if (r_in > d->cin) { if (!o.clamp) return TD_EINVAL; r_in = d->cin; clamped = 1; }
    const double t0 = td__now();
    int modes[2] = {0, 1};
    size_t ranks[2] = {r_out, r_in};
    td_tucker_result tr;
    if ((st = td_tucker(kernel, 2, modes, ranks, &o, &tr)) != TD_OK) return st;
    out->method = TD_METHOD_TUCKER2;
    out->npieces = 3;
    out->ranks[0] = r_out;
    out->ranks[1] = r_in;
    out->nranks = 2;
    out->clamped = clamped;
    const td_tensor *uo = &tr.factors[0], *ui = &tr.factors[1];
    td_chain_piece *p = out->pieces;
    if ((st = piece_1x1(&p[0], r_in, d->cin, d, 0)) != TD_OK) goto done;
    for (size_t a = 0; a < r_in; a++)
        for (size_t c = 0; c < d->cin; c++) p[0].kernel.data[a * d->cin + c] = ui->data[c * r_in + a];
    p[1].desc = *d;
    p[1].desc.cout = r_out;
    p[1].desc.cin = r_in;
    p[1].desc.has_bias = 0;
    p[1].kernel = tr.core;
    memset(&tr.core, 0, sizeof tr.core);
    if ((st = piece_1x1(&p[2], d->cout, r_out, d, 1)) != TD_OK) goto done;
    memcpy(p[2].kernel.data, uo->data, d->cout * r_out * sizeof(double));
    if ((st = set_bias(&p[2], bias)) != TD_OK) goto done;
    st = finish(out, kernel, t0);
done:
    td_tucker_free(&tr);
    if (st != TD_OK) td_chain_free(out);
    return st;
}

td_status td_conv_cp(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, size_t rank,
                     const td_cp_options *opt, td_chain *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!d || d->kind != TD_LAYER_CONV2D) return TD_EINVAL;
    if (d->groups != 1) return TD_EUNSUPPORTED;
    td_status st = check_layer(d, kernel, bias);
    if (st != TD_OK) return st;
    if (rank == 0) return TD_EINVAL;
    const double t0 = td__now();
    td_cp_result cp;
    if ((st = td_cp_als(kernel, rank, opt, &cp)) != TD_OK) return st;
    const size_t r = rank, kh = d->kh, kw = d->kw;
    out->method = TD_METHOD_CP;
    out->npieces = 4;
    out->ranks[0] = r;
    out->nranks = 1;
    td_chain_piece *p = out->pieces;
    if ((st = piece_1x1(&p[0], r, d->cin, d, 0)) != TD_OK) goto done;
    for (size_t a = 0; a < r; a++)
        for (size_t c = 0; c < d->cin; c++) p[0].kernel.data[a * d->cin + c] = cp.factors[1].data[c * r + a];
    /* kh x 1 depthwise: height stride, dilation, padding */
    p[1].desc = *d;
    p[1].desc.cout = p[1].desc.cin = p[1].desc.groups = r;
    p[1].desc.kw = 1;
    p[1].desc.stride[1] = 1;
    p[1].desc.dilation[1] = 1;
    p[1].desc.pad[2] = p[1].desc.pad[3] = 0;
    p[1].desc.has_bias = 0;
    size_t s1[4] = {r, 1, kh, 1};
    if ((st = td_tensor_alloc(&p[1].kernel, 4, s1)) != TD_OK) goto done;
    for (size_t a = 0; a < r; a++)
        for (size_t i = 0; i < kh; i++) p[1].kernel.data[a * kh + i] = cp.factors[2].data[i * r + a];
    /* 1 x kw depthwise: width ones, on the height-reduced input */
    p[2].desc = *d;
    p[2].desc.cout = p[2].desc.cin = p[2].desc.groups = r;
    p[2].desc.kh = 1;
    p[2].desc.stride[0] = 1;
    p[2].desc.dilation[0] = 1;
    p[2].desc.pad[0] = p[2].desc.pad[1] = 0;
    p[2].desc.has_bias = 0;
    next_input(&p[1].desc, &p[2].desc);
    if (p[2].desc.input_known) p[2].desc.in_w = d->in_w;
    size_t s2[4] = {r, 1, 1, kw};
    if ((st = td_tensor_alloc(&p[2].kernel, 4, s2)) != TD_OK) goto done;
    for (size_t a = 0; a < r; a++)
        for (size_t j = 0; j < kw; j++) p[2].kernel.data[a * kw + j] = cp.factors[3].data[j * r + a];
    if ((st = piece_1x1(&p[3], d->cout, r, d, 1)) != TD_OK) goto done;
    for (size_t o = 0; o < d->cout; o++)
        for (size_t a = 0; a < r; a++) p[3].kernel.data[o * r + a] = cp.factors[0].data[o * r + a] * cp.weights[a];
    if ((st = set_bias(&p[3], bias)) != TD_OK) goto done;
    st = finish(out, kernel, t0);
done:
    td_cp_free(&cp);
    if (st != TD_OK) td_chain_free(out);
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
    if (!d) return TD_EINVAL;
    if (d->kind == TD_LAYER_CONV2D && d->groups != 1) return TD_EUNSUPPORTED;
    td_status st = check_layer(d, kernel, bias);
    if (st != TD_OK) return st;
    const int dense = d->kind == TD_LAYER_DENSE;
    if (k == 0 || j == 0 || d->cin % k != 0 || (dense && k != 1)) return TD_EINVAL;
    const size_t cg = d->cin / k, sp = d->kh * d->kw, cols = cg * sp, jmax = d->cout < cols ? d->cout : cols;
    if (j > jmax) { if (!clamp) return TD_EINVAL; j = jmax; out->clamped = 1; }
    const double t0 = td__now();
    const size_t kj = k * j;
    td_tensor m = {0}, us = {0}, vt = {0};
    out->method = k == 1 ? TD_METHOD_SVD : TD_METHOD_SVD_GROUPED;
    out->npieces = 2;
    if (k == 1) { out->ranks[0] = j; out->nranks = 1; }
    else { out->ranks[0] = k; out->ranks[1] = j; out->nranks = 2; }
    td_chain_piece *p = out->pieces;
    p[0].desc = *d;
    p[0].desc.cout = kj;
    p[0].desc.groups = dense ? 1 : k;
    p[0].desc.has_bias = 0;
    if (dense) {
        size_t s0[2] = {j, d->cin};
        st = td_tensor_alloc(&p[0].kernel, 2, s0);
    } else {
        size_t s0[4] = {kj, cg, d->kh, d->kw};
        st = td_tensor_alloc(&p[0].kernel, 4, s0);
    }
    if (st != TD_OK) goto done;
    if (dense) {
        p[1].desc = *d;
        p[1].desc.cin = j;
        p[1].desc.groups = 1;
        p[1].desc.has_bias = 0;
        size_t s1[2] = {d->cout, j};
        st = td_tensor_alloc(&p[1].kernel, 2, s1);
    } else {
        st = piece_1x1(&p[1], d->cout, kj, d, 1);
    }
    if (st != TD_OK) goto done;
    if ((st = set_bias(&p[1], bias)) != TD_OK) goto done;
    if ((st = td_matrix_alloc(&m, d->cout, cols)) != TD_OK) goto done;
    for (size_t g = 0; g < k && st == TD_OK; g++) {
        /* group g's slice of the (Cout, Cin kh kw) lowering */
        for (size_t o = 0; o < d->cout; o++)
            memcpy(m.data + o * cols, kernel->data + o * d->cin * sp + g * cols, cols * sizeof(double));
        if ((st = svd_block(&m, j, &us, &vt)) == TD_OK) {
            memcpy(p[0].kernel.data + g * j * cols, vt.data, j * cols * sizeof(double));
            for (size_t o = 0; o < d->cout; o++)
                memcpy(p[1].kernel.data + o * kj + g * j, us.data + o * j, j * sizeof(double));
        }
        td_tensor_free(&us);
        td_tensor_free(&vt);
    }
    if (st == TD_OK) st = finish(out, kernel, t0);
done:
    td_tensor_free(&m);
    if (st != TD_OK) td_chain_free(out);
    return st;
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
    td_status st = TD_OK;
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
        td_tensor uo, uit;
        size_t so[2] = {cout, r_out}, si[2] = {r_in, cin};
        if ((st = td_tensor_view(&uo, 2, so, p[2].kernel.data)) != TD_OK) return st;
        if ((st = td_tensor_view(&uit, 2, si, p[0].kernel.data)) != TD_OK) return st;
        size_t mid[4] = {cout, r_in, kh, kw};
        td_tensor t = {0};
        if ((st = td_tensor_alloc(&t, 4, mid)) != TD_OK) return st;
        st = td_ttm(core, 0, &uo, 0, &t);
        if (st == TD_OK) st = td_ttm(&t, 1, &uit, 1, out);
        td_tensor_free(&t);
        return st;
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
