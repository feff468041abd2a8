/* Layer rewrites and the cost model: docs/maths.md's worked numbers; every rewrite at full rank
 * reproduces the original layer under a naive direct convolution. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "common/testutil.h"
#include "layer/internal.h"

static td_layer_desc conv(size_t cout, size_t cin, size_t kh, size_t kw)
{
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = TD_LAYER_CONV2D;
    d.cout = cout;
    d.cin = cin;
    d.kh = kh;
    d.kw = kw;
    d.groups = 1;
    d.stride[0] = d.stride[1] = 1;
    d.dilation[0] = d.dilation[1] = 1;
    d.pad_mode = TD_PAD_EXPLICIT;
    return d;
}

/* Naive convolution written out here, independent of the library's executor. */
static void naive_conv(const td_layer_desc *d, const td_tensor *k, const double *bias, const td_tensor *in,
                       const size_t pad[4], size_t ho, size_t wo, double *out)
{
    size_t h = in->shape[1], w = in->shape[2];
    for (size_t o = 0; o < d->cout; o++)
        for (size_t y = 0; y < ho; y++)
            for (size_t x = 0; x < wo; x++) {
                double s = bias ? bias[o] : 0;
                for (size_t c = 0; c < d->cin; c++)
                    for (size_t i = 0; i < d->kh; i++)
                        for (size_t j = 0; j < d->kw; j++) {
                            long iy = (long)(y * d->stride[0] + i * d->dilation[0]) - (long)pad[0];
                            long ix = (long)(x * d->stride[1] + j * d->dilation[1]) - (long)pad[2];
                            if (iy >= 0 && iy < (long)h && ix >= 0 && ix < (long)w)
                                s += k->data[((o * d->cin + c) * d->kh + i) * d->kw + j] * in->data[(c * h + iy) * w + ix];
                        }
                out[(o * ho + y) * wo + x] = s;
            }
}

START_TEST(test_brief_worked_numbers)
{
    td_layer_desc d = conv(128, 64, 3, 3);
    d.input_known = 1;
    d.in_h = d.in_w = 100;
    td_cost c;
    TT_OK(td_layer_cost(&d, &c));
    ck_assert_uint_eq(c.params, 73728);
    ck_assert_uint_eq(c.macs, 708083712ULL);         /* 98*98*128*64*9 */
    ck_assert_uint_eq(c.flops, 1416167424ULL);       /* 1,416.17 MFLOPs */
    td_tensor k;
    size_t ks[4] = {128, 64, 3, 3};
    tt_random(&k, 4, ks, 1);
    td_chain ch;
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.max_iter = 2;
    TT_OK(td_conv_tucker2(&d, &k, NULL, 32, 32, &o, &ch));
    td_cost cc;
    TT_OK(td_chain_cost(&ch, &cc));
    ck_assert_uint_eq(cc.params, 15360);             /* 2,048 + 9,216 + 4,096 */
    ck_assert_uint_eq(cc.flops, 296656896ULL);       /* 296.66 MFLOPs */
    td_cost p0, p2;
    TT_OK(td_layer_cost(&ch.pieces[0].desc, &p0));
    TT_OK(td_layer_cost(&ch.pieces[2].desc, &p2));
    ck_assert_uint_eq(p0.macs, 10000ULL * 32 * 64);   /* the first 1x1 runs on the full 100x100 */
    ck_assert_uint_eq(p2.macs, 9604ULL * 128 * 32);   /* the last on the 98x98 output */
    /* the notes' inconsistent terms are not reproduced: 40.32 and 162.56 MFLOPs */
    ck_assert(fabs(p0.flops / 1e6 - 40.32) > 0.5 && fabs(p2.flops / 1e6 - 162.56) > 0.5);
    /* the notes' own convention (2 Cin kh kw - 1 per output) gives 294.80 for the chain */
    double notes = 10000.0 * 32 * (2 * 64 - 1) + 9604.0 * 32 * (2 * 288 - 1) + 9604.0 * 128 * (2 * 32 - 1);
    ck_assert(fabs(notes / 1e6 - 294.80) < 0.01);
    td_chain_free(&ch);
    td_tensor_free(&k);
}
END_TEST

START_TEST(test_dense_svd_brief)
{
    /* a 10 x 10 matrix of rank 2: 100 parameters become 40, outputs identical */
    td_tensor a, b, w, bias, x, y0, y1;
    tt_random_matrix(&a, 10, 2, 2);
    tt_random_matrix(&b, 2, 10, 3);
    ck_assert_int_eq(td_matrix_alloc(&w, 10, 10), TD_OK);
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++)
            w.data[i * 10 + j] = a.data[i * 2] * b.data[j] + a.data[i * 2 + 1] * b.data[10 + j];
    size_t s10[1] = {10};
    tt_random(&bias, 1, s10, 4);
    tt_random(&x, 1, s10, 5);
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = TD_LAYER_DENSE;
    d.cout = d.cin = 10;
    d.kh = d.kw = 1;
    d.has_bias = 1;
    td_chain ch;
    TT_OK(td_layer_svd(&d, &w, &bias, 2, 0, &ch));
    td_cost c;
    TT_OK(td_chain_cost(&ch, &c));
    ck_assert_uint_eq(c.params, 40);
    ck_assert_uint_eq(ch.pieces[0].kernel.shape[0], 2);
    ck_assert_uint_eq(ch.pieces[1].kernel.shape[1], 2);
    ck_assert(ch.rel_error < 1e-14);
    TT_OK(td_layer_apply_direct(&d, &w, &bias, &x, &y0));
    TT_OK(td_chain_apply(&ch, &x, 0, &y1));
    ck_assert(tt_relerr(&y1, &y0) < 1e-13);
    td_tensor_free(&y1);
    TT_OK(td_chain_apply(&ch, &x, 1, &y1));
    ck_assert(tt_relerr(&y1, &y0) < 1e-13);
    td_chain_free(&ch);
    ck_assert_int_eq(td_layer_svd(&d, &w, &bias, 11, 0, &ch), TD_EINVAL);
    TT_OK(td_layer_svd(&d, &w, &bias, 11, 1, &ch));
    ck_assert_int_eq(ch.clamped, 1);
    ck_assert_uint_eq(ch.ranks[0], 10);
    td_chain_free(&ch);
    td_tensor_free(&a); td_tensor_free(&b); td_tensor_free(&w); td_tensor_free(&bias);
    td_tensor_free(&x); td_tensor_free(&y0); td_tensor_free(&y1);
}
END_TEST

typedef struct { size_t cout, cin, kh, kw, sh, sw, dh, dw; int mode; size_t pad[4]; size_t h, w; int bias; } geo;

static const geo GEOS[] = {
    {6, 5, 3, 3, 1, 1, 1, 1, TD_PAD_EXPLICIT, {1, 1, 1, 1}, 7, 8, 1},
    {6, 4, 3, 3, 2, 2, 1, 1, TD_PAD_EXPLICIT, {1, 0, 2, 1}, 9, 8, 0},   /* stride 2, unequal pads */
    {4, 6, 3, 5, 1, 2, 1, 1, TD_PAD_EXPLICIT, {0, 2, 2, 1}, 8, 9, 1},   /* non-square kernel */
    {5, 3, 3, 3, 1, 1, 2, 2, TD_PAD_EXPLICIT, {2, 2, 2, 2}, 8, 8, 1},   /* dilation 2 */
    {6, 4, 3, 3, 2, 2, 1, 1, TD_PAD_SAME, {0}, 8, 6, 1},                /* 'same', even sizes, stride 2 */
    {4, 4, 5, 3, 1, 1, 1, 2, TD_PAD_SAME, {0}, 6, 10, 0},               /* 'same', dilation on width */
    {3, 5, 2, 2, 2, 1, 1, 1, TD_PAD_VALID, {0}, 7, 6, 1},               /* even kernel, valid */
};

static td_layer_desc from_geo(const geo *g)
{
    td_layer_desc d = conv(g->cout, g->cin, g->kh, g->kw);
    d.stride[0] = g->sh; d.stride[1] = g->sw;
    d.dilation[0] = g->dh; d.dilation[1] = g->dw;
    d.pad_mode = (td_padding_mode)g->mode;
    memcpy(d.pad, g->pad, sizeof d.pad);
    d.has_bias = g->bias;
    d.input_known = 1;
    d.in_h = g->h;
    d.in_w = g->w;
    return d;
}

/* Checks chain == naive conv of the original kernel, for both executors. */
static void check_chain(const td_layer_desc *d, const td_tensor *k, const td_tensor *bias, const td_chain *ch,
                        const td_tensor *x, double tol, const char *what)
{
    size_t pad[4], ho, wo;
    TT_OK(td_layer_padding(d, x->shape[1], x->shape[2], pad));
    TT_OK(td_layer_output_size(d, x->shape[1], x->shape[2], &ho, &wo));
    td_tensor ref, y, yd;
    size_t rs[3] = {d->cout, ho, wo};
    ck_assert_int_eq(td_tensor_alloc(&ref, 3, rs), TD_OK);
    naive_conv(d, k, bias ? bias->data : NULL, x, pad, ho, wo, ref.data);
    TT_OK(td_layer_apply_direct(d, k, bias, x, &yd));
    ck_assert_msg(tt_relerr(&yd, &ref) < 1e-13, "%s: direct executor", what);
    td_tensor_free(&yd);
    TT_OK(td_chain_apply(ch, x, 0, &y));
    ck_assert_msg(td_tensor_same_shape(&y, &ref), "%s: chain output shape", what);
    ck_assert_msg(tt_relerr(&y, &ref) < tol, "%s: chain (direct) err %g", what, tt_relerr(&y, &ref));
    td_tensor_free(&y);
    TT_OK(td_chain_apply(ch, x, 1, &y));
    ck_assert_msg(tt_relerr(&y, &ref) < tol, "%s: chain (gemm) err %g", what, tt_relerr(&y, &ref));
    td_tensor_free(&y);
    td_tensor_free(&ref);
}

START_TEST(test_full_rank_rewrites_exact)
{
    for (size_t gi = 0; gi < sizeof GEOS / sizeof GEOS[0]; gi++) {
        const geo *g = &GEOS[gi];
        td_layer_desc d = from_geo(g);
        td_tensor k, bias, x;
        size_t ks[4] = {g->cout, g->cin, g->kh, g->kw}, bs[1] = {g->cout}, xs[3] = {g->cin, g->h, g->w};
        tt_random(&k, 4, ks, 10 + gi);
        tt_random(&bias, 1, bs, 20 + gi);
        tt_random(&x, 3, xs, 30 + gi);
        const td_tensor *b = g->bias ? &bias : NULL;
        td_chain ch;
        char what[64];
        /* Tucker-2 at full rank, R_in != R_out */
        TT_OK(td_conv_tucker2(&d, &k, b, g->cout, g->cin, NULL, &ch));
        ck_assert(ch.rel_error < 1e-13);
        ck_assert_uint_eq(ch.pieces[0].kernel.shape[0], g->cin);
        snprintf(what, sizeof what, "tucker2 geo %zu", gi);
        check_chain(&d, &k, b, &ch, &x, 1e-12, what);
        td_chain_free(&ch);
        /* SVD of the lowering at full rank */
        size_t full = g->cout < g->cin * g->kh * g->kw ? g->cout : g->cin * g->kh * g->kw;
        TT_OK(td_layer_svd(&d, &k, b, full, 0, &ch));
        snprintf(what, sizeof what, "svd geo %zu", gi);
        check_chain(&d, &k, b, &ch, &x, 1e-12, what);
        td_chain_free(&ch);
        /* grouped SVD with k groups (a divisor of Cin) at full rank */
        size_t kg = g->cin % 2 == 0 ? 2 : (g->cin % 3 == 0 ? 3 : g->cin);
        size_t cols = g->cin / kg * g->kh * g->kw, jf = g->cout < cols ? g->cout : cols;
        TT_OK(td_conv_svd_grouped(&d, &k, b, kg, jf, 0, &ch));
        ck_assert_int_eq(ch.method, TD_METHOD_SVD_GROUPED);
        ck_assert_uint_eq(ch.pieces[0].desc.groups, kg);
        snprintf(what, sizeof what, "svd-grouped geo %zu", gi);
        check_chain(&d, &k, b, &ch, &x, 1e-12, what);
        td_chain_free(&ch);
        /* CP of an exact rank-2 CP kernel */
        td_tensor kcp;
        td_cp_result m;
        memset(&m, 0, sizeof m);
        m.ndim = 4;
        m.rank = 2;
        for (int q = 0; q < 4; q++) tt_random_matrix(&m.factors[q], ks[q], 2, 40 + gi * 4 + (uint64_t)q);
        ck_assert_int_eq(td_tensor_alloc(&kcp, 4, ks), TD_OK);
        TT_OK(td_cp_full(&m, &kcp));
        td_cp_options co;
        td_cp_options_init(&co);
        co.max_iter = 2000;
        co.tol = 1e-14;
        TT_OK(td_conv_cp(&d, &kcp, b, 2, &co, &ch));
        ck_assert_msg(ch.rel_error < 1e-8, "cp geo %zu rel_error %g", gi, ch.rel_error);
        ck_assert_uint_eq(ch.pieces[1].kernel.shape[2], g->kh);
        ck_assert_uint_eq(ch.pieces[2].kernel.shape[3], g->kw);
        snprintf(what, sizeof what, "cp geo %zu", gi);
        check_chain(&d, &kcp, b, &ch, &x, 1e-7, what);
        td_chain_free(&ch);
        td_cp_free(&m);
        td_tensor_free(&kcp);
        td_tensor_free(&k);
        td_tensor_free(&bias);
        td_tensor_free(&x);
    }
}
END_TEST

START_TEST(test_refusals_and_clamp)
{
    td_layer_desc d = conv(8, 8, 3, 3);
    d.groups = 2;
    td_tensor k, k2;
    size_t ks[4] = {8, 4, 3, 3}, ks2[4] = {8, 8, 3, 3};
    tt_random(&k, 4, ks, 1);
    tt_random(&k2, 4, ks2, 2);
    td_chain ch;
    ck_assert_int_eq(td_conv_tucker2(&d, &k, NULL, 2, 2, NULL, &ch), TD_EUNSUPPORTED);
    ck_assert_int_eq(td_conv_cp(&d, &k, NULL, 2, NULL, &ch), TD_EUNSUPPORTED);
    ck_assert_int_eq(td_layer_svd(&d, &k, NULL, 2, 0, &ch), TD_EUNSUPPORTED);
    d.groups = 1;
    ck_assert_int_eq(td_conv_tucker2(&d, &k, NULL, 2, 2, NULL, &ch), TD_ESHAPE); /* kernel (8,4,3,3) */
    ck_assert_int_eq(td_conv_tucker2(&d, &k2, NULL, 9, 2, NULL, &ch), TD_EINVAL);
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.clamp = 1;
    TT_OK(td_conv_tucker2(&d, &k2, NULL, 9, 2, &o, &ch));
    ck_assert_int_eq(ch.clamped, 1);
    ck_assert_uint_eq(ch.ranks[0], 8);
    td_chain_free(&ch);
    ck_assert_int_eq(td_conv_svd_grouped(&d, &k2, NULL, 3, 2, 0, &ch), TD_EINVAL); /* 3 does not divide 8 */
    d.stride[1] = 0;
    ck_assert_int_eq(td_conv_tucker2(&d, &k2, NULL, 2, 2, NULL, &ch), TD_EINVAL); /* bad geometry */
    d.stride[1] = 1;
    td_tensor nb;
    size_t nbs[1] = {7};
    tt_random(&nb, 1, nbs, 3);
    ck_assert_int_eq(td_conv_cp(&d, &k2, &nb, 2, NULL, &ch), TD_ESHAPE); /* bias of 7 for 8 outputs */
    td_tensor_free(&nb);
    k2.data[5] = NAN;
    ck_assert_int_eq(td_conv_tucker2(&d, &k2, NULL, 2, 2, NULL, &ch), TD_ENOTFINITE);
    td_tensor_free(&k);
    td_tensor_free(&k2);
}
END_TEST

START_TEST(test_cost_model_geometry)
{
    td_layer_desc d = conv(16, 8, 3, 3);
    size_t ho, wo, pad[4];
    d.pad_mode = TD_PAD_SAME;
    d.stride[0] = d.stride[1] = 2;
    TT_OK(td_layer_output_size(&d, 8, 7, &ho, &wo));
    ck_assert_uint_eq(ho, 4);
    ck_assert_uint_eq(wo, 4); /* ceil(7/2) */
    TT_OK(td_layer_padding(&d, 8, 8, pad));
    ck_assert_uint_eq(pad[0], 0); /* total 1: TF puts the odd pixel at the bottom */
    ck_assert_uint_eq(pad[1], 1);
    d.pad_mode = TD_PAD_VALID;
    TT_OK(td_layer_output_size(&d, 8, 7, &ho, &wo));
    ck_assert_uint_eq(ho, 3);
    ck_assert_uint_eq(wo, 3);
    d.pad_mode = TD_PAD_EXPLICIT;
    ck_assert_int_eq(td_layer_output_size(&d, 2, 2, &ho, &wo), TD_EINVAL); /* kernel does not fit */
    ck_assert_int_eq(td_layer_output_size(&d, 0, 5, &ho, &wo), TD_EINVAL); /* empty input */
    td_cost big;
    td_layer_desc huge = d;
    huge.input_known = 1;
    huge.in_h = huge.in_w = (size_t)1 << 31; /* 2^60 output pixels x 1152 MACs: over 63 bits */
    ck_assert_int_eq(td_layer_cost(&huge, &big), TD_EOVERFLOW);
    /* unknown input: per-output-pixel FLOPs; pieces before the stride count s*s pixels */
    td_tensor k;
    size_t ks[4] = {16, 8, 3, 3};
    tt_random(&k, 4, ks, 3);
    td_chain ch;
    TT_OK(td_conv_tucker2(&d, &k, NULL, 4, 2, NULL, &ch));
    td_cost c, o;
    TT_OK(td_chain_cost(&ch, &c));
    TT_OK(td_layer_cost(&d, &o));
    ck_assert_int_eq(c.known, 0);
    ck_assert(o.flops_per_pixel == 2.0 * 16 * 8 * 9);
    ck_assert(c.flops_per_pixel == 2.0 * (2 * 8 * 4 + 4 * 2 * 9 + 16 * 4));
    ck_assert_uint_eq(c.params, 2 * 8 + 4 * 2 * 9 + 16 * 4);
    td_chain_free(&ch);
    td_tensor_free(&k);
}
END_TEST

/* Naive grouped convolution (groups g), again independent of the executor. */
static void naive_conv_g(const td_layer_desc *d, const td_tensor *k, const td_tensor *in, const size_t pad[4],
                         size_t ho, size_t wo, double *out)
{
    size_t h = in->shape[1], w = in->shape[2], cig = d->cin / d->groups, cog = d->cout / d->groups;
    for (size_t o = 0; o < d->cout; o++)
        for (size_t y = 0; y < ho; y++)
            for (size_t x = 0; x < wo; x++) {
                double s = 0;
                for (size_t c = 0; c < cig; c++)
                    for (size_t i = 0; i < d->kh; i++)
                        for (size_t j = 0; j < d->kw; j++) {
                            long iy = (long)(y * d->stride[0] + i * d->dilation[0]) - (long)pad[0];
                            long ix = (long)(x * d->stride[1] + j * d->dilation[1]) - (long)pad[2];
                            if (iy >= 0 && iy < (long)h && ix >= 0 && ix < (long)w)
                                s += k->data[((o * cig + c) * d->kh + i) * d->kw + j] *
                                     in->data[(((o / cog) * cig + c) * h + iy) * w + ix];
                        }
                out[(o * ho + y) * wo + x] = s;
            }
}

/* ||a - b||_F / ||a||_F written out. */
static double frob_rel(const td_tensor *a, const td_tensor *b)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < a->size; i++) {
        num += (a->data[i] - b->data[i]) * (a->data[i] - b->data[i]);
        den += a->data[i] * a->data[i];
    }
    return sqrt(num / den);
}

/* Squared tail sum_{i >= j} s_i^2 of the (rows x cols) block of the lowering starting at column c0. */
static double svd_tail(const td_tensor *k, size_t c0, size_t cols, size_t j)
{
    const size_t rows = k->shape[0], ld = k->size / rows, n = rows < cols ? rows : cols;
    td_tensor m;
    double s[64], t = 0;
    ck_assert(n <= 64);
    ck_assert_int_eq(td_matrix_alloc(&m, rows, cols), TD_OK);
    for (size_t r = 0; r < rows; r++) memcpy(m.data + r * cols, k->data + r * ld + c0, cols * sizeof(double));
    TT_OK(td_svd_trunc(&m, n, NULL, NULL, s, NULL));
    for (size_t i = j; i < n; i++) t += s[i] * s[i];
    td_tensor_free(&m);
    return t;
}

/* At a truncated rank the chain is the conv of its composed kernel W_hat (linearity), and
 * rel_error matches the decomposition's own error. */
START_TEST(test_truncated_rank_consistency)
{
    const geo g = {8, 6, 3, 3, 2, 2, 1, 1, TD_PAD_EXPLICIT, {1, 0, 2, 1}, 9, 10, 1};
    td_layer_desc d = from_geo(&g);
    td_tensor k, bias, x, wh;
    size_t ks[4] = {8, 6, 3, 3}, bs[1] = {8}, xs[3] = {6, 9, 10};
    tt_random(&k, 4, ks, 101);
    tt_random(&bias, 1, bs, 102);
    tt_random(&x, 3, xs, 103);
    ck_assert_int_eq(td_tensor_alloc(&wh, 4, ks), TD_OK);
    const double nw2 = td_norm(&k) * td_norm(&k);
    for (int m = 0; m < 4; m++) {
        td_chain ch;
        double expect = -1;
        if (m == 0) {
            td_tucker_options o;
            td_tucker_options_init(&o);
            TT_OK(td_conv_tucker2(&d, &k, &bias, 3, 4, &o, &ch));
            int modes[2] = {0, 1};
            size_t r[2] = {3, 4};
            td_tucker_result tr;
            TT_OK(td_tucker(&k, 2, modes, r, &o, &tr));
            expect = tr.rel_error;
            td_tucker_free(&tr);
            ck_assert_uint_eq(ch.pieces[0].kernel.shape[0], 4);
            ck_assert_uint_eq(ch.pieces[1].kernel.shape[0], 3);
            ck_assert_uint_eq(ch.pieces[1].kernel.shape[1], 4);
        } else if (m == 1) {
            td_cp_options o;
            td_cp_options_init(&o);
            TT_OK(td_conv_cp(&d, &k, &bias, 5, &o, &ch));
            td_cp_result cr;
            TT_OK(td_cp_als(&k, 5, &o, &cr));
            expect = cr.rel_error;
            td_cp_free(&cr);
        } else if (m == 2) {
            TT_OK(td_layer_svd(&d, &k, &bias, 5, 0, &ch));
            expect = sqrt(svd_tail(&k, 0, 54, 5) / nw2); /* Eckart-Young */
        } else {
            TT_OK(td_conv_svd_grouped(&d, &k, &bias, 2, 4, 0, &ch));
            expect = sqrt((svd_tail(&k, 0, 27, 4) + svd_tail(&k, 27, 27, 4)) / nw2);
            ck_assert_uint_eq(ch.ranks[0], 2);
            ck_assert_uint_eq(ch.ranks[1], 4);
        }
        TT_OK(td_chain_compose(&ch, &wh));
        ck_assert_msg(fabs(ch.rel_error - frob_rel(&k, &wh)) < 1e-12, "method %d: rel_error vs composed", m);
        ck_assert_msg(fabs(ch.rel_error - expect) < 1e-9, "method %d: rel_error %g expected %g", m, ch.rel_error, expect);
        ck_assert(ch.rel_error > 0.05 && ch.rel_error < 1);
        char what[32];
        snprintf(what, sizeof what, "truncated method %d", m);
        check_chain(&d, &wh, &bias, &ch, &x, 1e-12, what);
        td_chain_free(&ch);
    }
    td_tensor_free(&k); td_tensor_free(&bias); td_tensor_free(&x); td_tensor_free(&wh);
}
END_TEST

/* A chain rebuilt from views over bare buffers (as `verify` does from a file) composes the same;
 * every shape mismatch is TD_ESHAPE. */
START_TEST(test_compose_from_views)
{
    td_layer_desc d = conv(6, 4, 3, 2);
    td_tensor k, w1, w2;
    size_t ks[4] = {6, 4, 3, 2};
    tt_random(&k, 4, ks, 7);
    ck_assert_int_eq(td_tensor_alloc(&w1, 4, ks), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&w2, 4, ks), TD_OK);
    td_chain ch, v;
    for (int m = 0; m < 3; m++) {
        if (m == 0) TT_OK(td_conv_tucker2(&d, &k, NULL, 3, 2, NULL, &ch));
        else if (m == 1) TT_OK(td_conv_cp(&d, &k, NULL, 3, NULL, &ch));
        else TT_OK(td_conv_svd_grouped(&d, &k, NULL, 2, 3, 0, &ch));
        TT_OK(td_chain_compose(&ch, &w1));
        memset(&v, 0, sizeof v);
        v.method = ch.method;
        v.npieces = ch.npieces;
        for (int p = 0; p < ch.npieces; p++)
            TT_OK(td_tensor_view(&v.pieces[p].kernel, ch.pieces[p].kernel.ndim, ch.pieces[p].kernel.shape,
                                 ch.pieces[p].kernel.data));
        TT_OK(td_chain_compose(&v, &w2));
        ck_assert(tt_bitequal(&w1, &w2));
        /* wrong piece count, a wrong piece shape, a wrong output shape */
        v.npieces--;
        ck_assert_int_eq(td_chain_compose(&v, &w2), TD_ESHAPE);
        v.npieces++;
        v.pieces[0].kernel.shape[1]--;
        ck_assert_int_eq(td_chain_compose(&v, &w2), TD_ESHAPE);
        v.pieces[0].kernel.shape[1]++;
        td_tensor bad;
        size_t bs[4] = {6, 4, 2, 3};
        TT_OK(td_tensor_view(&bad, 4, bs, w2.data));
        ck_assert_int_eq(td_chain_compose(&v, &bad), TD_ESHAPE);
        td_chain_free(&v); /* views: only reset */
        /* rel_error after rounding the pieces to float32, as a float32 file would hold them */
        for (int p = 0; p < ch.npieces; p++)
            for (size_t i = 0; i < ch.pieces[p].kernel.size; i++)
                ch.pieces[p].kernel.data[i] = (double)(float)ch.pieces[p].kernel.data[i];
        double e;
        TT_OK(td_chain_rel_error(&ch, &k, &e));
        TT_OK(td_chain_compose(&ch, &w2));
        ck_assert(fabs(e - frob_rel(&k, &w2)) < 1e-15);
        ck_assert(fabs(e - ch.rel_error) < 1e-6 && e != ch.rel_error);
        ck_assert_int_eq(td_chain_rel_error(&ch, &bad, &e), TD_ESHAPE);
        td_chain_free(&ch);
    }
    memset(&v, 0, sizeof v);
    ck_assert_int_eq(td_chain_compose(&v, &w2), TD_EINVAL); /* method none */
    td_tensor_free(&k); td_tensor_free(&w1); td_tensor_free(&w2);
}
END_TEST

/* Tucker-2 composition against the defining sum W[o,c,i,j] = sum_ab U_out[o,a] U_in[c,b] G[a,b,i,j],
 * by naive loops, for a non-square kernel and unequal ranks. */
START_TEST(test_tucker2_compose_naive)
{
    td_layer_desc d = conv(7, 5, 3, 2);
    td_tensor k, w;
    size_t ks[4] = {7, 5, 3, 2};
    tt_random(&k, 4, ks, 81);
    td_chain ch;
    TT_OK(td_conv_tucker2(&d, &k, NULL, 4, 3, NULL, &ch));
    TT_OK(td_tensor_alloc(&w, 4, ks));
    TT_OK(td_chain_compose(&ch, &w));
    const double *uit = ch.pieces[0].kernel.data, *g = ch.pieces[1].kernel.data, *uo = ch.pieces[2].kernel.data;
    double worst = 0;
    for (size_t o = 0; o < 7; o++)
        for (size_t c = 0; c < 5; c++)
            for (size_t s = 0; s < 6; s++) {
                double v = 0;
                for (size_t a = 0; a < 4; a++)
                    for (size_t b = 0; b < 3; b++) v += uo[o * 4 + a] * uit[b * 5 + c] * g[(a * 3 + b) * 6 + s];
                worst = fmax(worst, fabs(v - w.data[(o * 5 + c) * 6 + s]));
            }
    ck_assert_msg(worst < 1e-13, "compose differs from the sum by %g", worst);
    td_chain_free(&ch);
    td_tensor_free(&k);
    td_tensor_free(&w);
}
END_TEST

/* The measure of SVD chains goes by blocks of output rows: the same rel_error as composing the
 * whole kernel (td_chain_rel_error), for any block size, dense and conv, grouped or not. */
START_TEST(test_svd_measure_by_blocks)
{
    td_layer_desc dd = conv(37, 50, 1, 1), dc = conv(12, 8, 3, 3);
    dd.kind = TD_LAYER_DENSE;
    td_tensor kd, kc;
    size_t sd[2] = {37, 50}, sc[4] = {12, 8, 3, 3};
    tt_random(&kd, 2, sd, 71);
    tt_random(&kc, 4, sc, 72);
    for (int m = 0; m < 3; m++) {
        td_chain ch;
        const td_tensor *k = m == 0 ? &kd : &kc;
        if (m == 0) TT_OK(td_layer_svd(&dd, &kd, NULL, 9, 0, &ch));
        else if (m == 1) TT_OK(td_layer_svd(&dc, &kc, NULL, 5, 0, &ch));
        else TT_OK(td_conv_svd_grouped(&dc, &kc, NULL, 2, 3, 0, &ch));
        /* rounded to float32, as written: not the decomposition's own optimum */
        for (int p = 0; p < ch.npieces; p++)
            for (size_t i = 0; i < ch.pieces[p].kernel.size; i++)
                ch.pieces[p].kernel.data[i] = (double)(float)ch.pieces[p].kernel.data[i];
        double whole, e;
        TT_OK(td_chain_rel_error(&ch, k, &whole));
        ck_assert(whole > 0.01);
        const size_t blocks[4] = {1, 7, 100, (size_t)1 << 30};
        for (int b = 0; b < 4; b++) {
            TT_OK(td__svd_chain_rel_error(&ch, k, blocks[b], &e));
            ck_assert_msg(fabs(e - whole) <= 1e-14 * whole, "method %d block %zu: %.17g vs %.17g", m, blocks[b], e, whole);
        }
        TT_OK(td_chain_measure(&ch, m == 0 ? &dd : &dc, NULL, k));
        ck_assert(fabs(ch.rel_error - whole) <= 1e-14 * whole && !ch.has_output_error);
        /* a last piece that does not match the kernel's rows */
        ch.pieces[1].kernel.shape[0]--;
        ck_assert_int_eq(td__svd_chain_rel_error(&ch, k, 100, &e), TD_ESHAPE);
        ch.pieces[1].kernel.shape[0]++;
        td_chain_free(&ch);
    }
    td_tensor_free(&kd);
    td_tensor_free(&kc);
}
END_TEST

START_TEST(test_refuse_depthwise_and_grouped)
{
    td_layer_desc d = conv(4, 4, 3, 3);
    d.groups = 4; /* depthwise: kernel (4, 1, 3, 3) */
    td_tensor k;
    size_t ks[4] = {4, 1, 3, 3};
    tt_random(&k, 4, ks, 5);
    td_chain ch;
    ck_assert_int_eq(td_conv_tucker2(&d, &k, NULL, 2, 1, NULL, &ch), TD_EUNSUPPORTED);
    ck_assert_int_eq(td_conv_cp(&d, &k, NULL, 2, NULL, &ch), TD_EUNSUPPORTED);
    ck_assert_int_eq(td_layer_svd(&d, &k, NULL, 2, 1, &ch), TD_EUNSUPPORTED);
    ck_assert_int_eq(td_conv_svd_grouped(&d, &k, NULL, 2, 1, 1, &ch), TD_EUNSUPPORTED);
    ck_assert_int_eq(ch.npieces, 0); /* zeroed on failure */
    td_chain_free(&ch);
    td_tensor_free(&k);
    d.groups = 2;
    size_t ks2[4] = {4, 2, 3, 3};
    tt_random(&k, 4, ks2, 6);
    ck_assert_int_eq(td_conv_svd_grouped(&d, &k, NULL, 2, 1, 1, &ch), TD_EUNSUPPORTED);
    /* a dense layer is not a conv for Tucker-2 / CP */
    td_layer_desc dn;
    memset(&dn, 0, sizeof dn);
    dn.kind = TD_LAYER_DENSE;
    dn.cout = 4;
    dn.cin = 18;
    dn.kh = dn.kw = 1;
    td_tensor m;
    tt_random_matrix(&m, 4, 18, 8);
    ck_assert_int_eq(td_conv_tucker2(&dn, &m, NULL, 2, 2, NULL, &ch), TD_EINVAL);
    ck_assert_int_eq(td_conv_cp(&dn, &m, NULL, 2, NULL, &ch), TD_EINVAL);
    ck_assert_int_eq(td_conv_svd_grouped(&dn, &m, NULL, 2, 2, 0, &ch), TD_EINVAL);
    td_tensor_free(&m);
    td_tensor_free(&k);
}
END_TEST

/* The executors on grouped and depthwise convs (the chains' CP and ALDS pieces need them). */
START_TEST(test_executor_groups)
{
    const size_t G[3][4] = {{6, 4, 2, 3}, {5, 5, 5, 3}, {4, 6, 1, 1}}; /* cout, cin, groups, k */
    for (int t = 0; t < 3; t++) {
        td_layer_desc d = conv(G[t][0], G[t][1], G[t][3], G[t][3] == 1 ? 1 : 2);
        d.groups = G[t][2];
        d.stride[0] = 2;
        d.dilation[1] = 2;
        d.pad[0] = 1; d.pad[1] = 2; d.pad[2] = 0; d.pad[3] = 1;
        td_tensor k, x, ref, y1, y2;
        size_t ks[4] = {d.cout, d.cin / d.groups, d.kh, d.kw}, xs[3] = {d.cin, 7, 6};
        tt_random(&k, 4, ks, 60 + (uint64_t)t);
        tt_random(&x, 3, xs, 70 + (uint64_t)t);
        size_t pad[4], ho, wo;
        TT_OK(td_layer_padding(&d, 7, 6, pad));
        TT_OK(td_layer_output_size(&d, 7, 6, &ho, &wo));
        ck_assert_uint_eq(ho, (7 + 3 - (d.kh - 1) - 1) / 2 + 1);
        size_t rs[3] = {d.cout, ho, wo};
        ck_assert_int_eq(td_tensor_alloc(&ref, 3, rs), TD_OK);
        naive_conv_g(&d, &k, &x, pad, ho, wo, ref.data);
        TT_OK(td_layer_apply_direct(&d, &k, NULL, &x, &y1));
        TT_OK(td_layer_apply_gemm(&d, &k, NULL, &x, &y2));
        ck_assert(tt_relerr(&y1, &ref) < 1e-14);
        ck_assert(tt_relerr(&y2, &ref) < 1e-13);
        td_tensor_free(&y1);
        ck_assert_int_eq(td_layer_apply_direct(&d, &k, NULL, &k, &y1), TD_ESHAPE); /* 4-D input */
        /* an invalid description is refused as td_layer_cost refuses it (groups 0 once divided by zero) */
        td_layer_desc bad = d;
        bad.groups = 0;
        td_cost cost;
        ck_assert_int_eq(td_layer_cost(&bad, &cost), TD_EINVAL);
        ck_assert_int_eq(td_layer_apply_direct(&bad, &k, NULL, &x, &y1), TD_EINVAL);
        ck_assert_int_eq(td_layer_apply_gemm(&bad, &k, NULL, &x, &y1), TD_EINVAL);
        bad = d;
        bad.stride[1] = 0;
        ck_assert_int_eq(td_layer_apply_gemm(&bad, &k, NULL, &x, &y1), TD_EINVAL);
        td_tensor_free(&k); td_tensor_free(&x); td_tensor_free(&ref); td_tensor_free(&y2);
    }
}
END_TEST

/* 1x1 convs with stride 1 and no padding skip im2col in the GEMM executor (groups 1 and 3, bias). */
START_TEST(test_executor_pointwise)
{
    for (size_t g = 1; g <= 3; g += 2) {
        td_layer_desc d = conv(6, 9, 1, 1);
        d.groups = g;
        d.has_bias = 1;
        td_tensor k, x, b, ref, y;
        size_t ks[4] = {6, 9 / g, 1, 1}, xs[3] = {9, 5, 7}, bs[1] = {6};
        tt_random(&k, 4, ks, 80 + g);
        tt_random(&x, 3, xs, 90 + g);
        tt_random(&b, 1, bs, 95 + g);
        size_t pad[4] = {0, 0, 0, 0}, rs[3] = {6, 5, 7};
        ck_assert_int_eq(td_tensor_alloc(&ref, 3, rs), TD_OK);
        naive_conv_g(&d, &k, &x, pad, 5, 7, ref.data);
        for (size_t o = 0; o < 6; o++)
            for (size_t p = 0; p < 35; p++) ref.data[o * 35 + p] += b.data[o];
        TT_OK(td_layer_apply_gemm(&d, &k, &b, &x, &y));
        ck_assert(tt_relerr(&y, &ref) < 1e-14);
        td_tensor_free(&k); td_tensor_free(&x); td_tensor_free(&b); td_tensor_free(&ref); td_tensor_free(&y);
    }
}
END_TEST

/* Chain costs: every piece at the size it sees, against the closed forms of layer.h. */
START_TEST(test_chain_costs)
{
    td_layer_desc d = conv(16, 8, 3, 5);
    d.stride[0] = 2; d.stride[1] = 3;
    d.pad[0] = 1; d.pad[1] = 0; d.pad[2] = 2; d.pad[3] = 1;
    d.input_known = 1;
    d.in_h = 11; d.in_w = 14;
    const uint64_t H = 11, W = 14, Ho = (11 + 1 - 3) / 2 + 1, Wo = (14 + 3 - 5) / 3 + 1;
    td_tensor k;
    size_t ks[4] = {16, 8, 3, 5};
    tt_random(&k, 4, ks, 9);
    td_chain ch;
    td_cost c, orig;
    TT_OK(td_layer_cost(&d, &orig));
    ck_assert_uint_eq(orig.macs, Ho * Wo * 16 * 8 * 15);
    /* CP, per-axis stride: H W Cin R + Ho W R kh + Ho Wo R kw + Ho Wo R Cout */
    TT_OK(td_conv_cp(&d, &k, NULL, 3, NULL, &ch));
    ck_assert_uint_eq(ch.pieces[1].desc.in_h, H);
    ck_assert_uint_eq(ch.pieces[2].desc.in_h, Ho);
    ck_assert_uint_eq(ch.pieces[2].desc.in_w, W);
    ck_assert_uint_eq(ch.pieces[3].desc.in_w, Wo);
    TT_OK(td_chain_cost(&ch, &c));
    ck_assert_int_eq(c.known, 1);
    ck_assert_uint_eq(c.params, 3 * (8 + 3 + 5 + 16));
    ck_assert_uint_eq(c.macs, H * W * 8 * 3 + Ho * W * 3 * 3 + Ho * Wo * 3 * 5 + Ho * Wo * 3 * 16);
    ck_assert_uint_eq(c.flops, 2 * c.macs);
    td_chain_free(&ch);
    /* Tucker-2 with R_out != R_in (musco's swapped-rank pitfall) */
    TT_OK(td_conv_tucker2(&d, &k, NULL, 5, 2, NULL, &ch));
    TT_OK(td_chain_cost(&ch, &c));
    ck_assert_uint_eq(c.params, 8 * 2 + 5 * 2 * 15 + 5 * 16);
    ck_assert_uint_eq(c.macs, H * W * 8 * 2 + Ho * Wo * (5 * 2 * 15 + 16 * 5));
    td_chain_free(&ch);
    /* SVD of the lowering and ALDS: Ho Wo j Cin kh kw + Ho Wo Cout k j */
    TT_OK(td_layer_svd(&d, &k, NULL, 4, 0, &ch));
    TT_OK(td_chain_cost(&ch, &c));
    ck_assert_uint_eq(c.params, 4 * (8 * 15 + 16));
    ck_assert_uint_eq(c.macs, Ho * Wo * (4 * 8 * 15 + 16 * 4));
    td_chain_free(&ch);
    TT_OK(td_conv_svd_grouped(&d, &k, NULL, 4, 3, 0, &ch));
    TT_OK(td_chain_cost(&ch, &c));
    ck_assert_uint_eq(c.params, 3 * (8 * 15 + 4 * 16));
    ck_assert_uint_eq(c.macs, Ho * Wo * (3 * 8 * 15 + 16 * 4 * 3));
    td_chain_free(&ch);
    /* unknown input size: per output pixel, pieces before the strides count sh * sw pixels */
    d.input_known = 0;
    TT_OK(td_conv_cp(&d, &k, NULL, 3, NULL, &ch));
    TT_OK(td_chain_cost(&ch, &c));
    ck_assert_int_eq(c.known, 0);
    ck_assert_uint_eq(c.macs, 0);
    ck_assert(c.flops_per_pixel == 2.0 * (8 * 3 * 6 + 3 * 3 * 3 + 3 * 5 + 3 * 16));
    td_chain_free(&ch);
    /* dense: always known, r (in + out) */
    td_layer_desc dn;
    memset(&dn, 0, sizeof dn);
    dn.kind = TD_LAYER_DENSE;
    dn.cout = 7;
    dn.cin = 12;
    dn.kh = dn.kw = dn.groups = 1;
    td_tensor m;
    tt_random_matrix(&m, 7, 12, 10);
    TT_OK(td_layer_cost(&dn, &orig));
    ck_assert_int_eq(orig.known, 1);
    ck_assert_uint_eq(orig.flops, 2 * 7 * 12);
    TT_OK(td_layer_svd(&dn, &m, NULL, 3, 0, &ch));
    TT_OK(td_chain_cost(&ch, &c));
    ck_assert_int_eq(c.known, 1);
    ck_assert_uint_eq(c.macs, 3 * (12 + 7));
    ck_assert_uint_eq(c.params, 3 * (12 + 7));
    ck_assert(c.flops_per_pixel == 2.0 * 3 * (12 + 7));
    td_chain_free(&ch);
    td_tensor_free(&m);
    td_tensor_free(&k);
}
END_TEST

/* A strided 1x1 conv by SVD: two 1x1 pieces, the stride on the first; exact at full rank. */
/* The workspace estimate covers at least the pieces and the composed kernel, grows with the
 * rank, and grows with statistics. */
START_TEST(test_rewrite_workspace)
{
    td_layer_desc d = {0};
    d.kind = TD_LAYER_CONV2D;
    d.cout = 64; d.cin = 32; d.kh = d.kw = 3; d.groups = 1;
    d.stride[0] = d.stride[1] = d.dilation[0] = d.dilation[1] = 1;
    const td_method ms[4] = {TD_METHOD_TUCKER2, TD_METHOD_CP, TD_METHOD_SVD, TD_METHOD_SVD_GROUPED};
    const size_t lo[4][2] = {{4, 4}, {4, 0}, {4, 0}, {2, 4}}, hi[4][2] = {{32, 16}, {40, 0}, {64, 0}, {2, 64}};
    for (int i = 0; i < 4; i++) {
        uint64_t a, b, c;
        td_cost pc;
        ck_assert_int_eq(td_rewrite_workspace(&d, ms[i], lo[i], 0, &a), TD_OK);
        ck_assert_int_eq(td_rewrite_workspace(&d, ms[i], hi[i], 0, &b), TD_OK);
        ck_assert_int_eq(td_rewrite_workspace(&d, ms[i], hi[i], 1, &c), TD_OK);
        ck_assert_int_eq(td_chain_cost_for(&d, ms[i], hi[i], &pc), TD_OK);
        ck_assert(b >= 8 * (pc.params + 64 * 32 * 9) && b > a && c > b);
    }
    uint64_t x;
    const size_t bad[2] = {0, 0};
    ck_assert_int_eq(td_rewrite_workspace(&d, TD_METHOD_TUCKER2, bad, 0, &x), TD_EINVAL);
}
END_TEST

START_TEST(test_svd_1x1_strided)
{
    td_layer_desc d = conv(6, 4, 1, 1);
    d.stride[0] = d.stride[1] = 2;
    d.has_bias = 1;
    td_tensor k, b, x;
    size_t ks[4] = {6, 4, 1, 1}, bs[1] = {6}, xs[3] = {4, 7, 6};
    tt_random(&k, 4, ks, 11);
    tt_random(&b, 1, bs, 12);
    tt_random(&x, 3, xs, 13);
    td_chain ch;
    TT_OK(td_layer_svd(&d, &k, &b, 4, 0, &ch));
    ck_assert_int_eq(ch.npieces, 2);
    ck_assert_uint_eq(ch.pieces[0].kernel.shape[2] * ch.pieces[0].kernel.shape[3], 1);
    ck_assert_uint_eq(ch.pieces[0].desc.stride[0], 2);
    ck_assert_uint_eq(ch.pieces[1].desc.stride[0], 1);
    ck_assert_int_eq(ch.pieces[0].bias.size, 0);
    ck_assert_int_eq(ch.pieces[1].bias.size, 6);
    ck_assert(ch.rel_error < 1e-14);
    check_chain(&d, &k, &b, &ch, &x, 1e-13, "svd 1x1 strided");
    td_chain_free(&ch);
    td_tensor_free(&k); td_tensor_free(&b); td_tensor_free(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layer");
    TCase *tc = tcase_create("layer");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_brief_worked_numbers);
    tcase_add_test(tc, test_rewrite_workspace);
    tcase_add_test(tc, test_dense_svd_brief);
    tcase_add_test(tc, test_full_rank_rewrites_exact);
    tcase_add_test(tc, test_refusals_and_clamp);
    tcase_add_test(tc, test_cost_model_geometry);
    tcase_add_test(tc, test_truncated_rank_consistency);
    tcase_add_test(tc, test_compose_from_views);
    tcase_add_test(tc, test_svd_measure_by_blocks);
    tcase_add_test(tc, test_tucker2_compose_naive);
    tcase_add_test(tc, test_refuse_depthwise_and_grouped);
    tcase_add_test(tc, test_executor_groups);
    tcase_add_test(tc, test_executor_pointwise);
    tcase_add_test(tc, test_chain_costs);
    tcase_add_test(tc, test_svd_1x1_strided);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
