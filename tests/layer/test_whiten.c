/* Data-aware rewrites against truths computed here: output errors by naive loops over the data
 * (dense products, a direct convolution), exact recovery of low-rank kernels, identity statistics
 * against the data-free chains, and every refusal of td_layer_stats_check. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/naive.h"
#include "common/testutil.h"

/* X = A Z with A mixing and decaying columns: strongly anisotropic, correlated inputs. */
static void correlated(double *x, size_t n, size_t count, uint64_t seed, size_t dead)
{
    td_rng rng;
    td_rng_seed(&rng, seed);
    double *a = malloc(n * n * sizeof *a), *z = malloc(n * sizeof *z);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) a[i * n + j] = td_rng_normal(&rng) * pow(0.5, (double)j);
    for (size_t s = 0; s < count; s++) {
        for (size_t j = 0; j < n; j++) z[j] = td_rng_normal(&rng);
        for (size_t i = 0; i < n; i++) {
            double v = 0;
            for (size_t j = 0; j < n; j++) v += a[i * n + j] * z[j];
            x[s * n + i] = i + 1 == dead ? 0.0 : v;   /* dead: 1-based index of a dead channel */
        }
    }
    free(a);
    free(z);
}

/* cov = sum_s x_s x_s^T / count for count row vectors of length n. */
static void covariance(const double *x, size_t n, size_t count, td_tensor *cov)
{
    ck_assert_int_eq(td_matrix_alloc(cov, n, n), TD_OK);
    for (size_t s = 0; s < count; s++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) cov->data[i * n + j] += x[s * n + i] * x[s * n + j] / (double)count;
}

/* ||(W - V) X|| / ||W X|| over count samples (rows of x), W and V (m x n). */
static double dense_output_error(const td_tensor *w, const td_tensor *v, const double *x, size_t count)
{
    const size_t m = w->shape[0], n = w->shape[1];
    double num = 0, den = 0;
    for (size_t s = 0; s < count; s++)
        for (size_t o = 0; o < m; o++) {
            double a = 0, b = 0;
            for (size_t i = 0; i < n; i++) {
                a += w->data[o * n + i] * x[s * n + i];
                b += (w->data[o * n + i] - v->data[o * n + i]) * x[s * n + i];
            }
            num += b * b;
            den += a * a;
        }
    return sqrt(num / den);
}

static td_layer_desc dense_desc(size_t out, size_t in)
{
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = TD_LAYER_DENSE;
    d.cout = out;
    d.cin = in;
    d.kh = d.kw = d.groups = 1;
    d.stride[0] = d.stride[1] = d.dilation[0] = d.dilation[1] = 1;
    return d;
}

static td_layer_desc conv_desc(size_t cout, size_t cin, size_t k)
{
    td_layer_desc d = dense_desc(cout, cin);
    d.kind = TD_LAYER_CONV2D;
    d.kh = d.kw = k;
    d.pad_mode = TD_PAD_VALID;
    return d;
}

/* The chain composed back to a kernel of w's shape. */
static void composed(const td_chain *c, const td_tensor *w, td_tensor *out)
{
    ck_assert_int_eq(td_tensor_alloc(out, w->ndim, w->shape), TD_OK);
    ck_assert_int_eq(td_chain_compose(c, out), TD_OK);
}

static td_rewrite_options with_stats(const td_layer_stats *s)
{
    td_rewrite_options o;
    td_rewrite_options_init(&o);
    o.stats = s;
    return o;
}

START_TEST(test_dense_whitened_svd_exact_and_optimal)
{
    const size_t m = 9, n = 7, count = 200;
    for (size_t dead = 0; dead <= 3; dead += 3) { /* also with a dead input channel */
        double *x = malloc(count * n * sizeof *x);
        correlated(x, n, count, 11 + dead, dead);
        td_tensor w = {0}, cov = {0};
        tt_random_matrix(&w, m, n, 5);
        covariance(x, n, count, &cov);
        td_layer_stats st = {&cov, NULL, NULL, NULL, (double)count};
        td_layer_desc d = dense_desc(m, n);
        for (size_t r = 1; r < n; r++) {
            td_chain cw, cp;
            const size_t ranks[2] = {r, 0};
            td_rewrite_options o = with_stats(&st);
            ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, TD_METHOD_SVD, ranks, &o, &cw), TD_OK);
            ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, TD_METHOD_SVD, ranks, NULL, &cp), TD_OK);
            td_tensor vw = {0}, vp = {0};
            composed(&cw, &w, &vw);
            composed(&cp, &w, &vp);
            ck_assert(td_tensor_check_finite(&vw) == TD_OK);
            const double ew = dense_output_error(&w, &vw, x, count), ep = dense_output_error(&w, &vp, x, count);
            ck_assert(cw.has_output_error && !cp.has_output_error);
            ck_assert_msg(fabs(cw.output_rel_error - ew) < 1e-10, "rank %zu: reported %g, measured %g", r,
                          cw.output_rel_error, ew);
            ck_assert_msg(ew <= ep + 1e-12, "rank %zu: whitened %g > plain %g", r, ew, ep);
            ck_assert(fabs(cw.rel_error - tt_relerr(&vw, &w)) < 1e-12);
            td_tensor_free(&vw);
            td_tensor_free(&vp);
            td_chain_free(&cw);
            td_chain_free(&cp);
        }
        td_tensor_free(&w);
        td_tensor_free(&cov);
        free(x);
    }
}
END_TEST

/* Conv data: count images (Cin, h, h), channels correlated, positions independent. */
typedef struct conv_data {
    size_t count, cin, h;
    double *x;   /* (count, cin, h, h) */
} conv_data;

static conv_data make_images(size_t count, size_t cin, size_t h, uint64_t seed)
{
    conv_data c = {count, cin, h, malloc(count * cin * h * h * sizeof(double))};
    double *v = malloc(count * h * h * cin * sizeof *v);
    correlated(v, cin, count * h * h, seed, 0);
    for (size_t s = 0; s < count; s++)
        for (size_t p = 0; p < h * h; p++)
            for (size_t ch = 0; ch < cin; ch++) c.x[(s * cin + ch) * h * h + p] = v[(s * h * h + p) * cin + ch];
    free(v);
    return c;
}

/* Valid, stride-1 convolution of the data by w into y (count, cout, ho, ho), optionally scaled
 * per output channel. */
static void conv_valid(const conv_data *c, const td_tensor *w, const double *scale, double *y)
{
    const size_t cout = w->shape[0], k = w->shape[2], h = c->h, ho = h - k + 1;
    for (size_t s = 0; s < c->count; s++)
        for (size_t o = 0; o < cout; o++)
            for (size_t p = 0; p < ho; p++)
                for (size_t q = 0; q < ho; q++) {
                    double v = 0;
                    for (size_t ch = 0; ch < c->cin; ch++)
                        for (size_t i = 0; i < k; i++)
                            for (size_t j = 0; j < k; j++)
                                v += w->data[((o * c->cin + ch) * k + i) * k + j] *
                                     c->x[((s * c->cin + ch) * h + p + i) * h + q + j];
                    y[((s * cout + o) * ho + p) * ho + q] = v * (scale ? scale[o] : 1.0);
                }
}

static double conv_output_error(const conv_data *c, const td_tensor *w, const td_tensor *v, const double *scale)
{
    const size_t cout = w->shape[0], ho = c->h - w->shape[2] + 1, ny = c->count * cout * ho * ho;
    double *y = malloc(ny * sizeof *y), *z = malloc(ny * sizeof *z), num = 0, den = 0;
    td_tensor diff = {0};
    ck_assert_int_eq(td_tensor_copy(&diff, w), TD_OK);
    for (size_t i = 0; i < w->size; i++) diff.data[i] -= v->data[i];
    conv_valid(c, w, scale, y);
    conv_valid(c, &diff, scale, z);
    for (size_t i = 0; i < ny; i++) {
        num += z[i] * z[i];
        den += y[i] * y[i];
    }
    free(y);
    free(z);
    td_tensor_free(&diff);
    return sqrt(num / den);
}

/* The statistics of the data: input_cov over every input position, patch_cov over the valid
 * output positions' patches (index order c, i, j), output_cov of w's response. */
static void conv_stats(const conv_data *c, const td_tensor *w, td_tensor *icov, td_tensor *pcov, td_tensor *ocov)
{
    const size_t k = w->shape[2], h = c->h, ho = h - k + 1, np = c->cin * k * k, cout = w->shape[0];
    double *v = malloc(c->count * h * h * c->cin * sizeof *v), *p = malloc(c->count * ho * ho * np * sizeof *p);
    for (size_t s = 0; s < c->count; s++)
        for (size_t q = 0; q < h * h; q++)
            for (size_t ch = 0; ch < c->cin; ch++) v[(s * h * h + q) * c->cin + ch] = c->x[(s * c->cin + ch) * h * h + q];
    covariance(v, c->cin, c->count * h * h, icov);
    size_t row = 0;
    for (size_t s = 0; s < c->count; s++)
        for (size_t a = 0; a < ho; a++)
            for (size_t b = 0; b < ho; b++, row++)
                for (size_t ch = 0; ch < c->cin; ch++)
                    for (size_t i = 0; i < k; i++)
                        for (size_t j = 0; j < k; j++)
                            p[row * np + (ch * k + i) * k + j] = c->x[((s * c->cin + ch) * h + a + i) * h + b + j];
    covariance(p, np, row, pcov);
    double *y = malloc(c->count * cout * ho * ho * sizeof *y), *yt = malloc(c->count * ho * ho * cout * sizeof *yt);
    conv_valid(c, w, NULL, y);
    for (size_t s = 0; s < c->count; s++)
        for (size_t o = 0; o < cout; o++)
            for (size_t q = 0; q < ho * ho; q++) yt[(s * ho * ho + q) * cout + o] = y[(s * cout + o) * ho * ho + q];
    covariance(yt, cout, c->count * ho * ho, ocov);
    free(v);
    free(p);
    free(y);
    free(yt);
}

START_TEST(test_conv_reported_error_is_measured_error)
{
    const size_t cout = 6, cin = 4, k = 3;
    conv_data data = make_images(5, cin, 7, 21);
    td_tensor w = {0}, icov = {0}, pcov = {0}, ocov = {0};
    const size_t shape[4] = {cout, cin, k, k};
    tt_random(&w, 4, shape, 3);
    conv_stats(&data, &w, &icov, &pcov, &ocov);
    const double scale[6] = {1.0, 0.5, 2.0, -1.5, 0.25, 3.0};   /* a following BatchNorm */
    td_layer_stats st = {&icov, &ocov, &pcov, scale, 245.0};
    td_layer_desc d = conv_desc(cout, cin, k);
    const td_method ms[4] = {TD_METHOD_TUCKER2, TD_METHOD_CP, TD_METHOD_SVD, TD_METHOD_SVD_GROUPED};
    const size_t rs[4][2] = {{3, 2}, {4, 0}, {5, 0}, {2, 3}};
    for (int i = 0; i < 4; i++) {
        td_chain c;
        td_rewrite_options o = with_stats(&st);
        ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, ms[i], rs[i], &o, &c), TD_OK);
        td_tensor v = {0};
        composed(&c, &w, &v);
        const double measured = conv_output_error(&data, &w, &v, scale);
        ck_assert_msg(fabs(c.output_rel_error - measured) < 1e-10, "%s: reported %.12g, measured %.12g",
                      td_method_name(ms[i]), c.output_rel_error, measured);
        td_tensor_free(&v);
        td_chain_free(&c);
    }
    td_tensor_free(&w);
    td_tensor_free(&icov);
    td_tensor_free(&pcov);
    td_tensor_free(&ocov);
    free(data.x);
}
END_TEST

/* Whitened rewrites keep the output better than data-free ones on anisotropic inputs, measured on
 * the data by the convolution itself. */
START_TEST(test_conv_whitened_beats_data_free)
{
    const size_t cout = 8, cin = 6, k = 3;
    conv_data data = make_images(4, cin, 8, 31);
    td_tensor w = {0}, icov = {0}, pcov = {0}, ocov = {0};
    const size_t shape[4] = {cout, cin, k, k};
    tt_random(&w, 4, shape, 7);
    conv_stats(&data, &w, &icov, &pcov, &ocov);
    td_layer_desc d = conv_desc(cout, cin, k);
    td_layer_stats variants[3] = {{&icov, NULL, NULL, NULL, 256}, {&icov, &ocov, NULL, NULL, 256},
                                  {&icov, NULL, &pcov, NULL, 256}};
    const td_method ms[3] = {TD_METHOD_TUCKER2, TD_METHOD_SVD, TD_METHOD_CP};
    const size_t rs[3][2] = {{4, 2}, {4, 0}, {5, 0}};
    for (int mi = 0; mi < 3; mi++) {
        td_chain plain;
        ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, ms[mi], rs[mi], NULL, &plain), TD_OK);
        td_tensor vp = {0};
        composed(&plain, &w, &vp);
        const double ep = conv_output_error(&data, &w, &vp, NULL);
        for (int v = 0; v < 3; v++) {
            td_chain c;
            td_rewrite_options o = with_stats(&variants[v]);
            ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, ms[mi], rs[mi], &o, &c), TD_OK);
            td_tensor vw = {0};
            composed(&c, &w, &vw);
            const double ew = conv_output_error(&data, &w, &vw, NULL);
            ck_assert_msg(ew < ep, "%s, statistics %d: whitened %g vs data-free %g", td_method_name(ms[mi]), v, ew, ep);
            td_tensor_free(&vw);
            td_chain_free(&c);
        }
        td_tensor_free(&vp);
        td_chain_free(&plain);
    }
    td_tensor_free(&w);
    td_tensor_free(&icov);
    td_tensor_free(&pcov);
    td_tensor_free(&ocov);
    free(data.x);
}
END_TEST

START_TEST(test_identity_stats_give_data_free_chains)
{
    const size_t cout = 6, cin = 5, k = 3;
    td_tensor w = {0}, eye = {0};
    const size_t shape[4] = {cout, cin, k, k};
    tt_random(&w, 4, shape, 9);
    ck_assert_int_eq(td_matrix_alloc(&eye, cin, cin), TD_OK);
    for (size_t i = 0; i < cin; i++) eye.data[i * cin + i] = 1.0;
    td_layer_stats st = {&eye, NULL, NULL, NULL, 1.0};
    td_layer_desc d = conv_desc(cout, cin, k);
    const td_method ms[4] = {TD_METHOD_TUCKER2, TD_METHOD_CP, TD_METHOD_SVD, TD_METHOD_SVD_GROUPED};
    const size_t rs[4][2] = {{3, 2}, {3, 0}, {4, 0}, {5, 2}};
    const double tol[4] = {1e-10, 1e-6, 1e-10, 1e-10};
    for (int i = 0; i < 4; i++) {
        td_chain a, b;
        td_rewrite_options o = with_stats(&st);
        ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, ms[i], rs[i], &o, &a), TD_OK);
        ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, ms[i], rs[i], NULL, &b), TD_OK);
        td_tensor va = {0}, vb = {0};
        composed(&a, &w, &va);
        composed(&b, &w, &vb);
        ck_assert_msg(tt_maxdiff(&va, &vb) < tol[i] * td_norm(&w), "%s: %g", td_method_name(ms[i]), tt_maxdiff(&va, &vb));
        /* with white inputs the output error is the weight error (C (x) I = I) */
        ck_assert(fabs(a.output_rel_error - a.rel_error) < 1e-10);
        td_tensor_free(&va);
        td_tensor_free(&vb);
        td_chain_free(&a);
        td_chain_free(&b);
    }
    td_tensor_free(&w);
    td_tensor_free(&eye);
}
END_TEST

/* A kernel of exact multilinear rank (2, 3) (and an exact rank-2 CP) is recovered exactly in any
 * metric: the whitened kernel has the same ranks. */
START_TEST(test_exact_recovery_whitened)
{
    const size_t cout = 7, cin = 6, k = 3;
    td_tensor g = {0}, u = {0}, v = {0}, t = {0}, w = {0}, icov = {0}, pcov = {0}, ocov = {0};
    const size_t gs[4] = {2, 3, k, k}, ts[4] = {cout, 3, k, k}, ws[4] = {cout, cin, k, k};
    tt_random(&g, 4, gs, 1);
    tt_random_matrix(&u, cout, 2, 2);
    tt_random_matrix(&v, cin, 3, 3);
    ck_assert_int_eq(td_tensor_alloc(&t, 4, ts), TD_OK);
    ck_assert_int_eq(td_tensor_alloc(&w, 4, ws), TD_OK);
    nv_ttm(&g, 0, &u, 0, &t);
    nv_ttm(&t, 1, &v, 0, &w);
    conv_data data = make_images(3, cin, 6, 41);
    conv_stats(&data, &w, &icov, &pcov, &ocov);
    td_layer_desc d = conv_desc(cout, cin, k);
    td_layer_stats variants[2] = {{&icov, NULL, NULL, NULL, 108}, {&icov, &ocov, NULL, NULL, 108}};
    for (int i = 0; i < 2; i++) {
        td_chain c;
        const size_t r[2] = {2, 3};
        td_rewrite_options o = with_stats(&variants[i]);
        ck_assert_int_eq(td_layer_rewrite(&d, &w, NULL, TD_METHOD_TUCKER2, r, &o, &c), TD_OK);
        ck_assert_msg(c.rel_error < 1e-10 && c.output_rel_error < 1e-10, "variant %d: %g %g", i, c.rel_error,
                      c.output_rel_error);
        td_chain_free(&c);
    }
    /* rank-2 CP: w2 = sum_r a_r o b_r o c_r o d_r */
    td_tensor w2 = {0};
    ck_assert_int_eq(td_tensor_alloc(&w2, 4, ws), TD_OK);
    td_rng rng;
    td_rng_seed(&rng, 77);
    double fa[2][7], fb[2][6], fc[2][3], fd[2][3];
    for (int r = 0; r < 2; r++) {
        for (size_t i = 0; i < cout; i++) fa[r][i] = td_rng_normal(&rng);
        for (size_t i = 0; i < cin; i++) fb[r][i] = td_rng_normal(&rng);
        for (size_t i = 0; i < k; i++) { fc[r][i] = td_rng_normal(&rng); fd[r][i] = td_rng_normal(&rng); }
    }
    for (size_t o = 0; o < cout; o++)
        for (size_t ch = 0; ch < cin; ch++)
            for (size_t i = 0; i < k; i++)
                for (size_t j = 0; j < k; j++)
                    for (int r = 0; r < 2; r++) w2.data[((o * cin + ch) * k + i) * k + j] += fa[r][o] * fb[r][ch] * fc[r][i] * fd[r][j];
    td_chain c;
    const size_t r2[2] = {2, 0};
    td_rewrite_options o = with_stats(&variants[0]);
    o.cp.tol = 1e-14;
    o.cp.max_iter = 2000;
    ck_assert_int_eq(td_layer_rewrite(&d, &w2, NULL, TD_METHOD_CP, r2, &o, &c), TD_OK);
    ck_assert_msg(c.rel_error < 1e-6 && c.output_rel_error < 1e-6, "cp: %g %g", c.rel_error, c.output_rel_error);
    td_chain_free(&c);
    td_tensor *all[9] = {&g, &u, &v, &t, &w, &icov, &pcov, &ocov, &w2};
    for (int i = 0; i < 9; i++) td_tensor_free(all[i]);
    free(data.x);
}
END_TEST

START_TEST(test_stats_refused)
{
    const size_t cin = 3, cout = 4;
    td_layer_desc d = conv_desc(cout, cin, 3);
    td_tensor ok = {0}, small = {0}, nan = {0}, neg = {0}, asym = {0}, w = {0};
    ck_assert_int_eq(td_matrix_alloc(&ok, cin, cin), TD_OK);
    for (size_t i = 0; i < cin; i++) ok.data[i * cin + i] = 1.0;
    ck_assert_int_eq(td_matrix_alloc(&small, cin - 1, cin - 1), TD_OK);
    ck_assert_int_eq(td_tensor_copy(&nan, &ok), TD_OK);
    nan.data[1] = NAN;
    nan.data[3] = NAN;
    ck_assert_int_eq(td_tensor_copy(&neg, &ok), TD_OK);
    neg.data[4] = -1.0;
    ck_assert_int_eq(td_tensor_copy(&asym, &ok), TD_OK);
    asym.data[1] = 0.5;
    const char *why = NULL;
    td_layer_stats good = {&ok, NULL, NULL, NULL, 10};
    ck_assert_int_eq(td_layer_stats_check(&d, &good, &why), TD_OK);
    td_layer_stats bad[7] = {{&small, NULL, NULL, NULL, 10}, {&nan, NULL, NULL, NULL, 10}, {&neg, NULL, NULL, NULL, 10},
                             {&asym, NULL, NULL, NULL, 10}, {&ok, NULL, NULL, NULL, 0},   {&ok, &ok, NULL, NULL, 10},
                             {&ok, NULL, &ok, NULL, 10}};
    const char *words[7] = {"input_cov", "NaN", "negative", "symmetric", "count", "output_cov", "patch_cov"};
    const size_t shape[4] = {cout, cin, 3, 3};
    tt_random(&w, 4, shape, 1);
    for (int i = 0; i < 7; i++) {
        why = NULL;
        ck_assert_int_ne(td_layer_stats_check(&d, &bad[i], &why), TD_OK);
        ck_assert_msg(why && strstr(why, words[i]), "case %d: %s", i, why ? why : "(null)");
        td_chain c;
        const size_t r[2] = {2, 2};
        td_rewrite_options o = with_stats(&bad[i]);
        ck_assert_int_ne(td_layer_rewrite(&d, &w, NULL, TD_METHOD_TUCKER2, r, &o, &c), TD_OK);
        ck_assert_int_eq(c.npieces, 0);
    }
    td_tensor *all[6] = {&ok, &small, &nan, &neg, &asym, &w};
    for (int i = 0; i < 6; i++) td_tensor_free(all[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("whiten");
    TCase *tc = tcase_create("whiten");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dense_whitened_svd_exact_and_optimal);
    tcase_add_test(tc, test_conv_reported_error_is_measured_error);
    tcase_add_test(tc, test_conv_whitened_beats_data_free);
    tcase_add_test(tc, test_identity_stats_give_data_free_chains);
    tcase_add_test(tc, test_exact_recovery_whitened);
    tcase_add_test(tc, test_stats_refused);
    suite_add_tcase(s, tc);
    return tt_run(s);
}
