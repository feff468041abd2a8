/* Data-aware metrics: the layer's output error on calibration data as a weighted Frobenius norm.
 *
 * With C = E[x x^T] of the inputs and D the per-output weights, E||D (W - W') x||^2 =
 * ||D (W - W') S||_F^2 for any S with S S^T = C. S is the symmetric square root of C after a
 * floor on its eigenvalues (dead channels make C singular; never invert blindly): a rewrite of
 * W~ = D W S mapped back by S^-1 and D^-1 minimises the output error; the error reported is
 * recomputed with the unfloored C, so it is exact for what was written. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "layer/internal.h"

/* An eigenvalue below this fraction of the block's mean eigenvalue is raised to it. */
#define TD_STATS_EIG_FLOOR 1e-6
/* An output weight below this fraction of the largest is raised to it (D must be invertible). */
#define TD_STATS_SCALE_FLOOR 1e-6
/* Symmetry tolerance of a covariance, relative to its largest diagonal entry. */
#define TD_STATS_SYM_TOL 1e-8

void td__metric_free(td__metric *m)
{
    if (!m) return;
    free(m->s);
    free(m->sinv);
    free(m->d);
    free(m->dinv);
    memset(m, 0, sizeof *m);
}

/* The floored square root (and its inverse) of the n x n block at a (leading dimension ld). */
static td_status block_sqrt(const double *a, size_t ld, size_t n, double *s, double *sinv)
{
    double *q = malloc(n * n * sizeof *q), *w = malloc(n * sizeof *w), *t = malloc(n * n * sizeof *t);
    td_status st = q && w && t ? TD_OK : TD_ENOMEM;
    for (size_t i = 0; st == TD_OK && i < n; i++) memcpy(q + i * n, a + i * ld, n * sizeof *q);
    if (st == TD_OK && LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, q, (lapack_int)n, w) != 0)
        st = TD_ELAPACK;
    if (st == TD_OK) {
        double mean = 0;
        for (size_t i = 0; i < n; i++) mean += w[i] > 0 ? w[i] : 0;
        mean /= (double)n;
        const double floor = mean > 0 ? TD_STATS_EIG_FLOOR * mean : 1.0; /* all zero: identity */
        for (int inv = 0; inv < 2; inv++) {
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                    const double l = mean > 0 ? (w[j] > floor ? w[j] : floor) : 1.0;
                    t[i * n + j] = q[i * n + j] * (inv ? 1.0 / sqrt(l) : sqrt(l));
                }
            /* S = Q diag(f(l)) Q^T */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1.0, t, (int)n, q, (int)n,
                        0.0, inv ? sinv : s, (int)n);
        }
    }
    free(q);
    free(w);
    free(t);
    return st;
}

td_status td__metric_new(const td_tensor *cov, size_t blocks, const double *out_scale, size_t cout, td__metric *m)
{
    memset(m, 0, sizeof *m);
    const size_t total = cov->shape[0], n = total / blocks;
    if (!td__fits_blas(total)) return TD_ERANGE;
    m->n = n;
    m->blocks = blocks;
    m->cout = cout;
    m->s = malloc(blocks * n * n * sizeof(double));
    m->sinv = malloc(blocks * n * n * sizeof(double));
    td_status st = m->s && m->sinv ? TD_OK : TD_ENOMEM;
    for (size_t g = 0; g < blocks && st == TD_OK; g++)
        st = block_sqrt(cov->data + g * n * total + g * n, total, n, m->s + g * n * n, m->sinv + g * n * n);
    if (st == TD_OK && out_scale) {
        m->d = malloc(cout * sizeof(double));
        m->dinv = malloc(cout * sizeof(double));
        if (!m->d || !m->dinv) st = TD_ENOMEM;
        double top = 0;
        for (size_t o = 0; st == TD_OK && o < cout; o++) top = fmax(top, fabs(out_scale[o]));
        for (size_t o = 0; st == TD_OK && o < cout; o++) {
            const double v = top > 0 ? fmax(fabs(out_scale[o]), TD_STATS_SCALE_FLOOR * top) : 1.0;
            m->d[o] = v;
            m->dinv[o] = 1.0 / v;
        }
    }
    if (st != TD_OK) td__metric_free(m);
    return st;
}

/* x (rows x n rep, leading dimension ld): each row, seen as an n x rep matrix, becomes M x_r with
 * M = block g of S (or of S^-1 with inverse). M is symmetric. */
td_status td__metric_apply(const td__metric *m, size_t g, int inverse, double *x, size_t rows, size_t ld, size_t rep)
{
    const size_t n = m->n, cols = n * rep;
    const double *mat = (inverse ? m->sinv : m->s) + g * n * n;
    if (rows == 0 || cols == 0) return TD_OK;
    if (!td__fits_blas(rows) || !td__fits_blas(ld) || !td__fits_blas(cols)) return TD_ERANGE;
    double *t = malloc((rep == 1 ? rows : 1) * cols * sizeof *t);
    if (!t) return TD_ENOMEM;
    if (rep == 1) { /* all rows in one GEMM: X M */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)n, 1.0, x, (int)ld, mat,
                    (int)n, 0.0, t, (int)n);
        for (size_t r = 0; r < rows; r++) memcpy(x + r * ld, t + r * n, n * sizeof *t);
    } else {
        for (size_t r = 0; r < rows; r++) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)rep, (int)n, 1.0, mat, (int)n,
                        x + r * ld, (int)rep, 0.0, t, (int)rep);
            memcpy(x + r * ld, t, cols * sizeof *t);
        }
    }
    free(t);
    return TD_OK;
}

void td__metric_scale_rows(const td__metric *m, int inverse, double *x, size_t ld, size_t cols)
{
    if (!m->d) return;
    for (size_t o = 0; o < m->cout; o++) {
        const double f = inverse ? m->dinv[o] : m->d[o];
        for (size_t c = 0; c < cols; c++) x[o * ld + c] *= f;
    }
}

/* sum over rows r of w_r^2 x_r (C (x) I_rep) x_r^T for the rows x (n rep) matrix x and the n x n
 * covariance C; w NULL means 1. */
static td_status quad_form(const td_tensor *cov, size_t rep, const double *x, size_t rows, const double *w,
                           double *out)
{
    const size_t n = cov->shape[0], cols = n * rep;
    *out = 0;
    if (!td__fits_blas(rows) || !td__fits_blas(cols)) return TD_ERANGE;
    double *t = malloc(cols * sizeof *t);
    if (!t) return TD_ENOMEM;
    double sum = 0;
    for (size_t r = 0; r < rows; r++) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)rep, (int)n, 1.0, cov->data, (int)n,
                    x + r * cols, (int)rep, 0.0, t, (int)rep);
        const double q = cblas_ddot((int)cols, t, 1, x + r * cols, 1);
        sum += (w ? w[r] * w[r] : 1.0) * q;
    }
    free(t);
    *out = sum;
    return TD_OK;
}

/* The metric of the output error: the patch covariance when given (exact for the lowering), else
 * the channel covariance repeated over the kernel's positions (spatially uncorrelated inputs). */
static const td_tensor *error_metric(const td_layer_desc *d, const td_layer_stats *s, size_t *rep)
{
    *rep = s->patch_cov ? 1 : d->kh * d->kw;
    return s->patch_cov ? s->patch_cov : s->input_cov;
}

td_status td_chain_output_error(const td_layer_desc *d, const td_layer_stats *s, const td_tensor *kernel,
                                const td_tensor *approx, double *rel)
{
    if (!rel) return TD_EINVAL;
    *rel = NAN;
    td_status st = td_layer_stats_check(d, s, NULL);
    if (st != TD_OK) return st;
    if (!kernel || !approx || !td__kernel_matches(d, kernel) || !td_tensor_same_shape(kernel, approx))
        return TD_ESHAPE;
    size_t rep;
    const td_tensor *cov = error_metric(d, s, &rep);
    double *diff = malloc(kernel->size * sizeof *diff);
    if (!diff) return TD_ENOMEM;
    for (size_t i = 0; i < kernel->size; i++) diff[i] = kernel->data[i] - approx->data[i];
    double num = 0, den = 0;
    st = quad_form(cov, rep, diff, d->cout, s->out_scale, &num);
    if (st == TD_OK) st = quad_form(cov, rep, kernel->data, d->cout, s->out_scale, &den);
    free(diff);
    if (st != TD_OK) return st;
    /* a layer whose inputs were all zero on the data outputs zero whatever the weights */
    *rel = den > 0 ? sqrt(fmax(num, 0) / den) : 0.0;
    return TD_OK;
}

static int check_cov(const td_tensor *c, size_t n, const char **why, const char *name)
{
    static const char *const shape_msg[3] = {"input_cov does not fit the layer", "output_cov does not fit the layer",
                                             "patch_cov does not fit the layer"};
    const int idx = name[0] == 'i' ? 0 : name[0] == 'o' ? 1 : 2;
    if (c->ndim != 2 || c->shape[0] != n || c->shape[1] != n || !c->data) {
        if (why) *why = shape_msg[idx];
        return 0;
    }
    double top = 0;
    for (size_t i = 0; i < n * n; i++)
        if (!isfinite(c->data[i])) {
            if (why) *why = "a covariance holds NaN or Inf";
            return 0;
        }
    for (size_t i = 0; i < n; i++) {
        if (c->data[i * n + i] < 0) {
            if (why) *why = "a covariance has a negative diagonal entry";
            return 0;
        }
        top = fmax(top, c->data[i * n + i]);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (fabs(c->data[i * n + j] - c->data[j * n + i]) > TD_STATS_SYM_TOL * (top > 0 ? top : 1)) {
                if (why) *why = "a covariance is not symmetric";
                return 0;
            }
    return 1;
}

td_status td_layer_stats_check(const td_layer_desc *d, const td_layer_stats *s, const char **why)
{
    if (why) *why = NULL;
    if (!d || !s || !s->input_cov) {
        if (why) *why = "no input_cov";
        return TD_EINVAL;
    }
    td_status st = td_layer_check(d);
    if (st != TD_OK) return st;
    if (!(s->count > 0) || !isfinite(s->count)) {
        if (why) *why = "count is not positive";
        return TD_EINVAL;
    }
    if (!check_cov(s->input_cov, d->cin, why, "input_cov")) return TD_ESHAPE;
    if (s->output_cov && !check_cov(s->output_cov, d->cout, why, "output_cov")) return TD_ESHAPE;
    if (s->patch_cov && !check_cov(s->patch_cov, d->cin * d->kh * d->kw, why, "patch_cov")) return TD_ESHAPE;
    if (s->out_scale)
        for (size_t o = 0; o < d->cout; o++)
            if (!isfinite(s->out_scale[o])) {
                if (why) *why = "an output scale is NaN or Inf";
                return TD_ENOTFINITE;
            }
    return TD_OK;
}

td_status td__metric_for(const td_layer_desc *d, const td_layer_stats *s, td_method m, size_t k, td__metric *out,
                         size_t *rep)
{
    /* SVD lowerings use the patch metric when given; Tucker-2 and CP act on channels only */
    const int patch = s->patch_cov && (m == TD_METHOD_SVD || m == TD_METHOD_SVD_GROUPED);
    *rep = patch ? 1 : d->kh * d->kw;
    return td__metric_new(patch ? s->patch_cov : s->input_cov, k ? k : 1, s->out_scale, d->cout, out);
}

td_status td__whiten_with(const td__metric *mt, size_t rep, const td_tensor *kernel, td_tensor *out)
{
    td_status st = td_tensor_copy(out, kernel);
    const size_t cols = kernel->size / mt->cout, bcols = cols / mt->blocks;
    for (size_t g = 0; g < mt->blocks && st == TD_OK; g++)
        st = td__metric_apply(mt, g, 0, out->data + g * bcols, mt->cout, cols, rep);
    if (st == TD_OK) td__metric_scale_rows(mt, 0, out->data, cols, cols);
    if (st != TD_OK) td_tensor_free(out);
    return st;
}

td_status td_layer_whiten(const td_layer_desc *d, const td_layer_stats *s, td_method m, size_t k,
                          const td_tensor *kernel, td_tensor *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    td_status st = td_layer_stats_check(d, s, NULL);
    if (st != TD_OK) return st;
    if (!kernel || !td__kernel_matches(d, kernel) || d->groups != 1) return TD_ESHAPE;
    if (m != TD_METHOD_SVD_GROUPED) k = 1;
    if (k == 0 || d->cin % k) return TD_EINVAL;
    td__metric mt;
    size_t rep;
    if ((st = td__metric_for(d, s, m, k, &mt, &rep)) != TD_OK) return st;
    st = td__whiten_with(&mt, rep, kernel, out);
    td__metric_free(&mt);
    return st;
}

td_status td_layer_whiten_workspace(const td_layer_desc *d, int with_patch_cov, td_method m, size_t k, uint64_t *bytes)
{
    td_cost c;
    if (!bytes) return TD_EINVAL;
    td_status st = td_layer_cost(d, &c);
    if (st != TD_OK) return st;
    if (m != TD_METHOD_SVD_GROUPED) k = 1;
    if (k == 0 || d->cin % k) return TD_EINVAL;
    const int patch = with_patch_cov && (m == TD_METHOD_SVD || m == TD_METHOD_SVD_GROUPED);
    const double sp = (double)(d->kh * d->kw), total = patch ? (double)d->cin * sp : (double)d->cin;
    const double n = patch ? total : total / (double)k, blocks = patch ? 1 : (double)k, kern = (double)c.params;
    /* S and S^-1 per block; one block's square root at a time (eigenvectors, a scaled copy,
     * dsyevd's 1 + 6n + 2n^2 work and ints); D, D^-1; the whitened kernel and one apply's copy */
    const double metric = 2.0 * blocks * n * n + 4.0 * n * n + 12.0 * n + 2.0 * (double)d->cout;
    const double b = 8.0 * (metric + 2.0 * kern);
    if (!(b < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)b;
    return TD_OK;
}
