/* Multilinear kernels on the C-order block structure: X is L blocks of I_n x T (core.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"

td_status td_unfolding_of(const td_tensor *x, int mode, td_unfolding *u)
{
    if (!x || !u || mode < 0 || mode >= x->ndim) return TD_EINVAL;
    size_t l = 1, t = 1;
    for (int k = 0; k < mode; k++) l *= x->shape[k];
    for (int k = mode + 1; k < x->ndim; k++) t *= x->shape[k];
    u->left = l;
    u->rows = x->shape[mode];
    u->right = t;
    return TD_OK;
}

static int is_matrix(const td_tensor *m, size_t rows, size_t cols)
{
    return m && m->ndim == 2 && m->shape[0] == rows && m->shape[1] == cols;
}

/* Copies between a tensor's C-order layout and its mode unfolding (rows x left*right), either way. */
static void permute_unfolding(const td_unfolding *u, const double *src, double *dst, int to_matrix)
{
    const size_t lt = u->left * u->right, bytes = u->right * sizeof(double);
    for (size_t l = 0; l < u->left; l++)
        for (size_t i = 0; i < u->rows; i++) {
            const size_t t = (l * u->rows + i) * u->right, m = i * lt + l * u->right;
            if (to_matrix) memcpy(dst + m, src + t, bytes);
            else memcpy(dst + t, src + m, bytes);
        }
}

/* The checks both directions share: t is the tensor, mat its unfolding, dst the one written. */
static td_status unfolding_copy(const td_tensor *t, const td_tensor *mat, int mode, int to_matrix, double *dst)
{
    td_unfolding u;
    td_status st = td_unfolding_of(t, mode, &u);
    if (st != TD_OK) return st;
    if (!is_matrix(mat, u.rows, u.left * u.right) || t->data == mat->data) return TD_ESHAPE;
    if (t->size) permute_unfolding(&u, to_matrix ? t->data : mat->data, dst, to_matrix);
    return TD_OK;
}

td_status td_unfold(const td_tensor *x, int mode, td_tensor *out)
{
    return unfolding_copy(x, out, mode, 1, out ? out->data : NULL);
}

td_status td_fold(const td_tensor *mat, int mode, td_tensor *out)
{
    return unfolding_copy(out, mat, mode, 0, out ? out->data : NULL);
}

td_status td_ttm(const td_tensor *x, int mode, const td_tensor *m, int transpose, td_tensor *y)
{
    td_unfolding u;
    td_status st = td_unfolding_of(x, mode, &u);
    if (st != TD_OK) return st;
    if (!m || m->ndim != 2 || !y) return TD_EINVAL;
    const size_t j = transpose ? m->shape[1] : m->shape[0];
    const size_t in = transpose ? m->shape[0] : m->shape[1];
    if (in != u.rows || y->ndim != x->ndim) return TD_ESHAPE;
    for (int k = 0; k < x->ndim; k++)
        if (y->shape[k] != (k == mode ? j : x->shape[k])) return TD_ESHAPE;
    if (y->data == x->data && y->size) return TD_EINVAL;
    if (y->size == 0) return TD_OK;
    if (u.rows == 0) { /* empty contraction: the product is zero */
        memset(y->data, 0, y->size * sizeof(double));
        return TD_OK;
    }
    if (!td__fits_blas(j) || !td__fits_blas(u.rows) || !td__fits_blas(u.right) ||
        !td__fits_blas(u.left) || !td__fits_blas(u.left * u.rows))
        return TD_ERANGE;
    const int lda = (int)m->shape[1];
    const enum CBLAS_TRANSPOSE op = transpose ? CblasTrans : CblasNoTrans;
    if (u.right == 1) {
        /* Last mode: X viewed as (L x I_n) row-major, Y = X op(M)^T. */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasNoTrans : CblasTrans, (int)u.left,
                    (int)j, (int)u.rows, 1.0, x->data, (int)u.rows, m->data, lda, 0.0, y->data,
                    (int)j);
    } else if (u.left == 1) {
        cblas_dgemm(CblasRowMajor, op, CblasNoTrans, (int)j, (int)u.right, (int)u.rows, 1.0,
                    m->data, lda, x->data, (int)u.right, 0.0, y->data, (int)u.right);
    } else {
        /* One GEMM per contiguous block: op(M) (J x I_n) times block (I_n x T). */
        for (size_t l = 0; l < u.left; l++)
            cblas_dgemm(CblasRowMajor, op, CblasNoTrans, (int)j, (int)u.right, (int)u.rows, 1.0,
                        m->data, lda, x->data + l * u.rows * u.right, (int)u.right, 0.0,
                        y->data + l * j * u.right, (int)u.right);
    }
    return TD_OK;
}

td_status td_ttm_multi(const td_tensor *x, const td_tensor *const *mats, int skip, int transpose,
                       td_tensor *y)
{
    if (!x || !mats || !y || skip < -1 || skip >= x->ndim) return TD_EINVAL;
    size_t shape[TD_MAX_MODES];
    int pending[TD_MAX_MODES], npending = 0;
    for (int k = 0; k < x->ndim; k++) {
        shape[k] = x->shape[k];
        if (k == skip || !mats[k]) continue;
        const td_tensor *m = mats[k];
        if (m->ndim != 2) return TD_EINVAL;
        if ((transpose ? m->shape[0] : m->shape[1]) != x->shape[k]) return TD_ESHAPE;
        shape[k] = transpose ? m->shape[1] : m->shape[0];
        pending[npending++] = k;
    }
    if (y->ndim != x->ndim) return TD_ESHAPE;
    for (int k = 0; k < x->ndim; k++)
        if (y->shape[k] != shape[k]) return TD_ESHAPE;
    if (npending == 0) {
        if (x->size) memcpy(y->data, x->data, x->size * sizeof(double));
        return TD_OK;
    }
    /* Most-shrinking first (smallest J / I_n) keeps the intermediates small. */
    for (int a = 1; a < npending; a++)
        for (int b = a; b > 0; b--) {
            int p = pending[b - 1], q = pending[b];
            double rp = (double)shape[p] / (double)(x->shape[p] ? x->shape[p] : 1);
            double rq = (double)shape[q] / (double)(x->shape[q] ? x->shape[q] : 1);
            if (rq < rp) { pending[b - 1] = q; pending[b] = p; }
        }
    td_tensor buf[2] = {{0}, {0}};
    const td_tensor *cur = x;
    size_t cs[TD_MAX_MODES];
    memcpy(cs, x->shape, sizeof cs);
    td_status st = TD_OK;
    for (int s = 0; s < npending; s++) {
        int k = pending[s];
        cs[k] = shape[k];
        td_tensor *dst = (s == npending - 1) ? y : &buf[s & 1];
        if (dst != y) {
            td_tensor_free(dst);
            if ((st = td_tensor_alloc(dst, x->ndim, cs)) != TD_OK) goto done;
        }
        if ((st = td_ttm(cur, k, mats[k], transpose, dst)) != TD_OK) goto done;
        cur = dst;
    }
done:
    td_tensor_free(&buf[0]);
    td_tensor_free(&buf[1]);
    return st;
}

td_status td_khatri_rao(const td_tensor *const *mats, int n, int skip, td_tensor *out)
{
    if (!mats || !out || n < 1 || n > TD_MAX_MODES || skip < -1 || skip >= n) return TD_EINVAL;
    size_t r = 0, rows = 1;
    int first = 1;
    for (int k = 0; k < n; k++) {
        if (k == skip) continue;
        if (!mats[k] || mats[k]->ndim != 2) return TD_EINVAL;
        if (first) r = mats[k]->shape[1];
        else if (mats[k]->shape[1] != r) return TD_ESHAPE;
        first = 0;
        if (!td__mul_ok(rows, mats[k]->shape[0], &rows)) return TD_EOVERFLOW;
    }
    if (first) return TD_EINVAL;
    if (!is_matrix(out, rows, r)) return TD_ESHAPE;
    if (out->size == 0) return TD_OK;
    /* Build in place: after processing matrices 0..k the first (prod rows) rows hold KR so far.
     * Expanding from the back keeps the not-yet-read rows intact. */
    size_t cur = 1;
    for (size_t c = 0; c < r; c++) out->data[c] = 1.0;
    for (int k = 0; k < n; k++) {
        if (k == skip) continue;
        const td_tensor *m = mats[k];
        const size_t ik = m->shape[0];
        for (size_t a = cur; a-- > 0;) {
            const double *src = out->data + a * r;
            for (size_t b = ik; b-- > 0;) {
                double *dst = out->data + (a * ik + b) * r;
                const double *mr = m->data + b * r;
                for (size_t c = 0; c < r; c++) dst[c] = src[c] * mr[c];
            }
        }
        cur *= ik;
    }
    return TD_OK;
}

td_status td_mttkrp(const td_tensor *x, const td_tensor *const *factors, int mode, td_tensor *out)
{
    td_unfolding u;
    td_status st = td_unfolding_of(x, mode, &u);
    if (st != TD_OK) return st;
    if (!factors || !out) return TD_EINVAL;
    size_t r = 0;
    int have = 0;
    for (int k = 0; k < x->ndim; k++) {
        if (k == mode) continue;
        const td_tensor *f = factors[k];
        if (!f || f->ndim != 2 || f->shape[0] != x->shape[k]) return TD_ESHAPE;
        if (have && f->shape[1] != r) return TD_ESHAPE;
        r = f->shape[1];
        have = 1;
    }
    if (!have) { /* 1-D: the Khatri-Rao product of nothing is a single row of ones */
        if (!out || out->ndim != 2 || out->shape[0] != u.rows) return TD_ESHAPE;
        r = out->shape[1];
        for (size_t i = 0; i < u.rows; i++)
            for (size_t c = 0; c < r; c++) out->data[i * r + c] = x->data[i];
        return TD_OK;
    }
    if (!is_matrix(out, u.rows, r)) return TD_ESHAPE;
    if (out->size == 0) return TD_OK;
    if (!td__fits_blas(u.rows) || !td__fits_blas(u.right) || !td__fits_blas(u.left) ||
        !td__fits_blas(r) || !td__fits_blas(u.rows * u.right))
        return TD_ERANGE;
    memset(out->data, 0, out->size * sizeof(double));
    if (x->size == 0) return TD_OK;

    td_tensor kl = {0}, kr = {0}, z = {0};
    /* Partial Khatri-Rao products: left modes (L x R) and right modes (T x R). */
    if (u.left > 1 || mode > 0) {
        if ((st = td_matrix_alloc(&kl, u.left, r)) != TD_OK) goto done;
        if (mode > 0 && (st = td_khatri_rao(factors, mode, -1, &kl)) != TD_OK) goto done;
    }
    if (mode < x->ndim - 1) {
        if ((st = td_matrix_alloc(&kr, u.right, r)) != TD_OK) goto done;
        if ((st = td_khatri_rao(factors + mode + 1, x->ndim - mode - 1, -1, &kr)) != TD_OK) goto done;
    }
    const int ir = (int)r;
    if (mode == 0) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)u.rows, ir, (int)u.right, 1.0,
                    x->data, (int)u.right, kr.data, ir, 0.0, out->data, ir);
    } else if (mode == x->ndim - 1) {
        /* X viewed as (L x I_n): out = X^T KL. */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)u.rows, ir, (int)u.left, 1.0,
                    x->data, (int)u.rows, kl.data, ir, 0.0, out->data, ir);
    } else if (u.left <= u.right) {
        /* Per block: Z = B_l KR (I_n x R), then out += Z .* KL[l,:]. Big GEMMs when T is large. */
        if ((st = td_matrix_alloc(&z, u.rows, r)) != TD_OK) goto done;
        for (size_t l = 0; l < u.left; l++) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)u.rows, ir, (int)u.right,
                        1.0, x->data + l * u.rows * u.right, (int)u.right, kr.data, ir, 0.0,
                        z.data, ir);
            const double *w = kl.data + l * r;
            for (size_t i = 0; i < u.rows; i++)
                for (size_t c = 0; c < r; c++) out->data[i * r + c] += z.data[i * r + c] * w[c];
        }
    } else {
        /* Left side first: Z = KL^T X (R x I_n*T) in one GEMM, then contract T with KR. */
        if (!td__fits_blas(u.rows * u.right)) { st = TD_ERANGE; goto done; }
        if ((st = td_matrix_alloc(&z, r, u.rows * u.right)) != TD_OK) goto done;
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ir, (int)(u.rows * u.right),
                    (int)u.left, 1.0, kl.data, ir, x->data, (int)(u.rows * u.right), 0.0, z.data,
                    (int)(u.rows * u.right));
        for (size_t c = 0; c < r; c++) {
            const double *zc = z.data + c * u.rows * u.right;
            for (size_t i = 0; i < u.rows; i++) {
                double s = 0;
                for (size_t t = 0; t < u.right; t++) s += zc[i * u.right + t] * kr.data[t * r + c];
                out->data[i * r + c] = s;
            }
        }
    }
done:
    td_tensor_free(&kl);
    td_tensor_free(&kr);
    td_tensor_free(&z);
    return st;
}

/* Chunk copies of the unfolding for SYRK when blocks are thin (T small): per-block SYRKs of
 * width T waste most of the kernel. Bounded workspace: at most ~4 MiB per chunk. */
#define TD_GRAM_THIN 64
#define TD_GRAM_CHUNK_BYTES ((size_t)4 << 20)

td_status td_gram(const td_tensor *x, int mode, td_tensor *g)
{
    td_unfolding u;
    td_status st = td_unfolding_of(x, mode, &u);
    if (st != TD_OK) return st;
    if (!is_matrix(g, u.rows, u.rows)) return TD_ESHAPE;
    if (g->size == 0) return TD_OK;
    memset(g->data, 0, g->size * sizeof(double));
    if (x->size == 0) return TD_OK;
    if (!td__fits_blas(u.rows) || !td__fits_blas(u.right) || !td__fits_blas(u.left) ||
        !td__fits_blas(u.left * u.right))
        return TD_ERANGE;
    const int n = (int)u.rows;
    if (u.right == 1) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, (int)u.left, 1.0, x->data, n, 0.0,
                    g->data, n);
    } else if (u.left == 1 || u.right >= TD_GRAM_THIN) {
        for (size_t l = 0; l < u.left; l++)
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, (int)u.right, 1.0,
                        x->data + l * u.rows * u.right, (int)u.right, 1.0, g->data, n);
    } else {
        size_t per = TD_GRAM_CHUNK_BYTES / sizeof(double) / (u.rows * u.right);
        if (per < 1) per = 1;
        if (per > u.left) per = u.left;
        const size_t w = per * u.right;
        double *buf = malloc(u.rows * w * sizeof(double));
        if (!buf) return TD_ENOMEM;
        for (size_t l0 = 0; l0 < u.left; l0 += per) {
            size_t nb = u.left - l0 < per ? u.left - l0 : per;
            for (size_t b = 0; b < nb; b++)
                for (size_t i = 0; i < u.rows; i++)
                    memcpy(buf + i * w + b * u.right, x->data + ((l0 + b) * u.rows + i) * u.right,
                           u.right * sizeof(double));
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, (int)(nb * u.right), 1.0, buf,
                        (int)w, 1.0, g->data, n);
        }
        free(buf);
    }
    for (size_t i = 0; i < u.rows; i++)
        for (size_t k = 0; k < i; k++) g->data[i * u.rows + k] = g->data[k * u.rows + i];
    return TD_OK;
}

double td_norm(const td_tensor *x)
{
    if (!x || x->size == 0) return 0.0;
    double amax = 0.0;
    for (size_t i = 0; i < x->size; i++) {
        double a = fabs(x->data[i]);
        if (!(a <= amax)) amax = a; /* also catches NaN */
    }
    if (isnan(amax) || isinf(amax)) return amax;
    if (amax == 0.0) return 0.0;
    /* Plain sum of squares is safe well inside the exponent range; otherwise scale by amax. */
    double s = 0.0;
    if (amax > 1e-140 && amax < 1e140) {
        for (size_t i = 0; i < x->size; i++) s += x->data[i] * x->data[i];
        return sqrt(s);
    }
    for (size_t i = 0; i < x->size; i++) {
        double v = x->data[i] / amax;
        s += v * v;
    }
    return amax * sqrt(s);
}

/* sqrt(sum (x - ref)^2) and sqrt(sum ref^2) by the scaled sums of td_norm, in one pass each. */
double td__diff_norm(const double *x, const double *ref, size_t n)
{
    double amax = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double a = fabs(x ? x[i] - ref[i] : ref[i]);
        if (!(a <= amax)) amax = a;
    }
    if (isnan(amax) || isinf(amax) || amax == 0.0) return amax;
    const double scale = amax > 1e-140 && amax < 1e140 ? 1.0 : amax;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double v = (x ? x[i] - ref[i] : ref[i]) / scale;
        s += v * v;
    }
    return scale * sqrt(s);
}

td_status td_rel_diff(const td_tensor *x, const td_tensor *ref, double *rel)
{
    if (!x || !ref || !rel) return TD_EINVAL;
    if (x->size != ref->size || (x->size && (!x->data || !ref->data))) return TD_ESHAPE;
    const double nd = td__diff_norm(x->data, ref->data, x->size), nr = td__diff_norm(NULL, ref->data, ref->size);
    *rel = nr > 0 ? nd / nr : nd;
    return TD_OK;
}

td_status td_inner(const td_tensor *a, const td_tensor *b, double *out)
{
    if (!a || !b || !out) return TD_EINVAL;
    if (!td_tensor_same_shape(a, b)) return TD_ESHAPE;
    double s = 0;
    for (size_t i = 0; i < a->size; i++) s += a->data[i] * b->data[i];
    *out = s;
    return TD_OK;
}
