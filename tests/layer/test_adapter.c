/* LoRA adapters from an SVD split: docs/maths.md's MLP numbers, the loralib conv layout (grouped and
 * depthwise included) and the exact identities, against singular values from LAPACK's dgesvd
 * called here (not the library's SVD). */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/testutil.h"

static td_layer_desc layer(td_layer_kind kind, size_t cout, size_t cin, size_t kh, size_t kw, size_t groups)
{
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    d.cout = cout;
    d.cin = cin;
    d.kh = kh;
    d.kw = kw;
    d.groups = groups;
    d.stride[0] = d.stride[1] = 1;
    d.dilation[0] = d.dilation[1] = 1;
    return d;
}

/* All singular values of the rows x cols matrix stored in x (dgesvd on a copy). */
static double *lapack_sv(const td_tensor *x, size_t rows, size_t cols)
{
    size_t n = rows < cols ? rows : cols;
    double *a = malloc(x->size * sizeof *a), *s = calloc(n, sizeof *s), *sup = calloc(n, sizeof *sup);
    ck_assert(a && s && sup);
    memcpy(a, x->data, x->size * sizeof *a);
    ck_assert_int_eq(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', (int)rows, (int)cols, a, (int)cols, s, NULL, 1, NULL, 1, sup), 0);
    free(a);
    free(sup);
    return s;
}

static double tail(const double *s, size_t n, size_t from)
{
    double t = 0;
    for (size_t i = from; i < n; i++) t += s[i] * s[i];
    return sqrt(t);
}

/* W_hat = frozen + s B A by plain loops, B A laid over the kernel's flat C-order buffer. */
static void naive_compose(const td_adapter *ad, td_tensor *out)
{
    TT_OK(td_tensor_copy(out, &ad->frozen));
    const size_t rows = ad->b.shape[0], cols = ad->a.shape[1], inner = ad->a.shape[0];
    for (size_t p = 0; p < rows; p++)
        for (size_t q = 0; q < cols; q++) {
            double v = 0;
            for (size_t c = 0; c < inner; c++) v += ad->b.data[p * inner + c] * ad->a.data[c * cols + q];
            out->data[p * cols + q] += ad->scaling * v;
        }
}

START_TEST(test_brief_mlp_adapter_size)
{
    /* docs/maths.md, LoRA adapters: MLP 784-1000-2000-10, rank 1 adds 1784 + 3000 + 2010 = 6,794 (0.242 %) */
    const size_t dims[4] = {784, 1000, 2000, 10};
    const uint64_t expect[3] = {1784, 3000, 2010};
    uint64_t total = 0, added = 0;
    for (int l = 0; l < 3; l++) {
        td_layer_desc d = layer(TD_LAYER_DENSE, dims[l + 1], dims[l], 1, 1, 1);
        size_t as[2], bs[2];
        TT_OK(td_adapter_shapes(&d, 1, as, bs));
        ck_assert_uint_eq(as[0], 1);
        ck_assert_uint_eq(as[1], dims[l]);
        ck_assert_uint_eq(bs[0], dims[l + 1]);
        ck_assert_uint_eq(bs[1], 1);
        ck_assert_uint_eq(as[0] * as[1] + bs[0] * bs[1], expect[l]);
        added += as[0] * as[1] + bs[0] * bs[1];
        total += dims[l] * dims[l + 1] + dims[l + 1];
    }
    ck_assert_uint_eq(total, 2807010);
    ck_assert_uint_eq(added, 6794);
    ck_assert(fabs(100.0 * (double)added / (double)total - 0.242) < 5e-4);
    /* the same count from a real split of a (smaller) layer */
    td_layer_desc d = layer(TD_LAYER_DENSE, 40, 30, 1, 1, 1);
    td_tensor w;
    tt_random_matrix(&w, 40, 30, 5);
    td_adapter ad;
    TT_OK(td_layer_adapter(&d, &w, 3, TD_ADAPTER_PRINCIPAL, 3.0, &ad));
    ck_assert_uint_eq(ad.params, 3 * (40 + 30));
    td_adapter_free(&ad);
    td_tensor_free(&w);
}
END_TEST

/* principal: frozen + s B A == W exactly; s B A is the Eckart-Young truncation, orthogonal to the
 * frozen residual; residual: frozen + s B A is the rank-2R truncation. Dense, conv, grouped,
 * depthwise and 1x1, at scalings 1 and != 1. */
START_TEST(test_identities)
{
    struct { td_layer_kind kind; size_t cout, cin, k, g, r; double alpha; } C[] = {
        {TD_LAYER_DENSE, 12, 9, 1, 1, 2, 2.0},
        {TD_LAYER_DENSE, 7, 15, 1, 1, 3, 16.0},
        {TD_LAYER_CONV2D, 6, 4, 3, 1, 1, 1.0},
        {TD_LAYER_CONV2D, 8, 5, 3, 1, 2, 0.5},
        {TD_LAYER_CONV2D, 8, 8, 3, 4, 1, 4.0},     /* grouped: Cout/g = 2 */
        {TD_LAYER_CONV2D, 5, 5, 3, 5, 1, 1.0},     /* depthwise */
        {TD_LAYER_CONV2D, 9, 6, 1, 1, 2, 2.0},     /* 1x1 */
        {TD_LAYER_CONV2D, 4, 6, 5, 2, 1, 3.0},
    };
    for (size_t t = 0; t < sizeof C / sizeof C[0]; t++) {
        td_layer_desc d = layer(C[t].kind, C[t].cout, C[t].cin, C[t].k, C[t].k, C[t].g);
        td_tensor w;
        if (C[t].kind == TD_LAYER_DENSE) tt_random_matrix(&w, C[t].cout, C[t].cin, 100 + t);
        else {
            size_t ks[4] = {C[t].cout, C[t].cin / C[t].g, C[t].k, C[t].k};
            tt_random(&w, 4, ks, 100 + t);
        }
        const size_t k = C[t].kind == TD_LAYER_DENSE ? 1 : C[t].k;
        const size_t rows = C[t].kind == TD_LAYER_DENSE ? C[t].cout : C[t].cout / C[t].g * k;
        const size_t cols = C[t].kind == TD_LAYER_DENSE ? C[t].cin : C[t].cin * k;
        const size_t R = C[t].r * k, full = rows < cols ? rows : cols;
        ck_assert_uint_eq(rows * cols, w.size);
        double *s = lapack_sv(&w, rows, cols);
        const double nw = td_norm(&w);
        for (int mode = 0; mode < 2; mode++) {
            td_adapter ad;
            TT_OK(td_layer_adapter(&d, &w, C[t].r, mode ? TD_ADAPTER_RESIDUAL : TD_ADAPTER_PRINCIPAL, C[t].alpha, &ad));
            ck_assert_uint_eq(ad.a.shape[0], R);
            ck_assert_uint_eq(ad.a.shape[1], cols);
            ck_assert_uint_eq(ad.b.shape[0], rows);
            ck_assert_uint_eq(ad.b.shape[1], R);
            ck_assert(td_tensor_same_shape(&ad.frozen, &w));
            ck_assert(fabs(ad.scaling - C[t].alpha / (double)C[t].r) < 1e-15);
            td_tensor what, sba;
            naive_compose(&ad, &what);
            TT_OK(td_tensor_copy(&sba, &what));
            for (size_t i = 0; i < sba.size; i++) sba.data[i] -= ad.frozen.data[i];
            const size_t kept = R < full ? R : full;
            if (mode == 0) {
                ck_assert_msg(tt_relerr(&what, &w) < 1e-13, "case %zu principal: %g", t, tt_relerr(&what, &w));
                ck_assert(ad.rel_error < 1e-13);
                /* s B A = W_R: its error is the Eckart-Young tail, and W_R is orthogonal to W - W_R */
                ck_assert(fabs(tt_relerr(&sba, &w) - tail(s, full, kept) / nw) < 1e-10);
                ck_assert(fabs(ad.rel_error_truncated - tail(s, full, kept) / nw) < 1e-10);
                double ip;
                TT_OK(td_inner(&sba, &ad.frozen, &ip));
                ck_assert(fabs(ip) < 1e-10 * nw * nw);
                ck_assert_uint_eq(ad.effective, kept);
            } else {
                const size_t two = 2 * R < full ? 2 * R : full;
                ck_assert(fabs(tt_relerr(&what, &w) - tail(s, full, two) / nw) < 1e-10);
                ck_assert(fabs(ad.rel_error - tail(s, full, two) / nw) < 1e-10);
                /* the frozen part is W_R: error = tail beyond R */
                ck_assert(fabs(tt_relerr(&ad.frozen, &w) - tail(s, full, kept) / nw) < 1e-10);
                ck_assert(fabs(ad.rel_error_truncated - tail(s, full, kept) / nw) < 1e-10);
                /* and the adapter starts from the next R triplets: ||s B A||^2 = sum s_R..s_2R-1 ^2 */
                double a2 = 0;
                for (size_t i = kept; i < two; i++) a2 += s[i] * s[i];
                ck_assert(fabs(td_norm(&sba) - sqrt(a2)) < 1e-10 * nw);
                ck_assert_uint_eq(ad.effective, two - kept);
            }
            double re;
            TT_OK(td_adapter_rel_error(&ad, &w, &re));
            ck_assert(fabs(re - ad.rel_error) < 1e-14);
            td_tensor_free(&what);
            td_tensor_free(&sba);
            td_adapter_free(&ad);
        }
        free(s);
        td_tensor_free(&w);
    }
}
END_TEST

/* An adapter rank past the matrix: the missing triplets are zero rows/columns, and a full-rank
 * principal adapter leaves nothing frozen. */
START_TEST(test_rank_beyond_matrix)
{
    td_layer_desc d = layer(TD_LAYER_DENSE, 3, 5, 1, 1, 1);
    td_tensor w;
    tt_random_matrix(&w, 3, 5, 9);
    td_adapter ad;
    TT_OK(td_layer_adapter(&d, &w, 4, TD_ADAPTER_PRINCIPAL, 4.0, &ad));
    ck_assert_uint_eq(ad.effective, 3);
    ck_assert_uint_eq(ad.a.shape[0], 4);
    /* the missing triplet: B's column zero, A's row loralib-initialised (can still train) */
    double amax = 0;
    for (size_t j = 0; j < 5; j++) amax = fmax(amax, fabs(ad.a.data[3 * 5 + j]));
    ck_assert(amax > 0 && amax <= 1.0 / sqrt(5.0));
    for (size_t i = 0; i < 3; i++) ck_assert(ad.b.data[i * 4 + 3] == 0.0);
    ck_assert(ad.rel_error < 1e-13);
    ck_assert(td_norm(&ad.frozen) < 1e-12 * td_norm(&w));
    ck_assert(ad.rel_error_truncated < 1e-12);
    td_adapter_free(&ad);
    TT_OK(td_layer_adapter(&d, &w, 2, TD_ADAPTER_RESIDUAL, 2.0, &ad));
    ck_assert_uint_eq(ad.effective, 1);     /* only one triplet left after W_2 */
    ck_assert(ad.rel_error < 1e-12);        /* W_2 + the last triplet is W */
    for (size_t j = 0; j < 5; j++) ck_assert(ad.a.data[1 * 5 + j] != 0.0);
    for (size_t i = 0; i < 3; i++) ck_assert(ad.b.data[i * 2 + 1] == 0.0);
    td_adapter_free(&ad);
    td_tensor_free(&w);
}
END_TEST

START_TEST(test_refusals)
{
    td_layer_desc d = layer(TD_LAYER_CONV2D, 4, 3, 3, 1, 1);
    size_t ks[4] = {4, 3, 3, 1};
    td_tensor w;
    tt_random(&w, 4, ks, 1);
    td_adapter ad;
    size_t as[2], bs[2];
    ck_assert_int_eq(td_layer_adapter(&d, &w, 1, TD_ADAPTER_PRINCIPAL, 1.0, &ad), TD_EUNSUPPORTED); /* kh != kw */
    ck_assert(ad.a.data == NULL && ad.frozen.data == NULL);
    ck_assert_int_eq(td_adapter_shapes(&d, 1, as, bs), TD_EUNSUPPORTED);
    td_tensor_free(&w);
    d = layer(TD_LAYER_CONV2D, 4, 3, 3, 3, 1);
    size_t ks2[4] = {4, 3, 3, 3};
    tt_random(&w, 4, ks2, 2);
    ck_assert_int_eq(td_layer_adapter(&d, &w, 0, TD_ADAPTER_PRINCIPAL, 1.0, &ad), TD_EINVAL);
    ck_assert_int_eq(td_layer_adapter(&d, &w, 1, TD_ADAPTER_PRINCIPAL, 0.0, &ad), TD_EINVAL);
    ck_assert_int_eq(td_layer_adapter(&d, &w, 1, TD_ADAPTER_PRINCIPAL, NAN, &ad), TD_EINVAL);
    ck_assert_int_eq(td_layer_adapter(&d, &w, 1, (td_adapter_mode)7, 1.0, &ad), TD_EINVAL);
    ck_assert_int_eq(td_layer_adapter(NULL, &w, 1, TD_ADAPTER_PRINCIPAL, 1.0, &ad), TD_EINVAL);
    d.cin = 6; /* kernel no longer matches */
    ck_assert_int_eq(td_layer_adapter(&d, &w, 1, TD_ADAPTER_PRINCIPAL, 1.0, &ad), TD_ESHAPE);
    d.cin = 3;
    w.data[5] = NAN;
    ck_assert_int_eq(td_layer_adapter(&d, &w, 1, TD_ADAPTER_PRINCIPAL, 1.0, &ad), TD_ENOTFINITE);
    ck_assert(ad.a.data == NULL && ad.b.data == NULL && ad.frozen.data == NULL);
    td_adapter_free(&ad); /* safe on a zeroed adapter */
    td_tensor_free(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adapter");
    TCase *tc = tcase_create("adapter");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_brief_mlp_adapter_size);
    tcase_add_test(tc, test_identities);
    tcase_add_test(tc, test_rank_beyond_matrix);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
