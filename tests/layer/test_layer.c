/* Layer rewrites and the cost model: BRIEF.md's worked numbers; every rewrite at full rank
 * reproduces the original layer under a naive direct convolution. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "common/testutil.h"

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

int main(void)
{
    Suite *s = suite_create("layer");
    TCase *tc = tcase_create("layer");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_brief_worked_numbers);
    tcase_add_test(tc, test_dense_svd_brief);
    tcase_add_test(tc, test_full_rank_rewrites_exact);
    tcase_add_test(tc, test_refusals_and_clamp);
    tcase_add_test(tc, test_cost_model_geometry);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
