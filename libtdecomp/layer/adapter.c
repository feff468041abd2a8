/* LoRA adapters initialised from an SVD split of the layer's weight (docs/maths.md, LoRA adapters). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "layer/internal.h"

void td_adapter_free(td_adapter *a)
{
    if (!a) return;
    td_tensor_free(&a->frozen);
    td_tensor_free(&a->a);
    td_tensor_free(&a->b);
    memset(a, 0, sizeof *a);
}

/* The loralib matrix M = W.reshape(rows, cols) and the adapter rank R = r k. */
static td_status layout(const td_layer_desc *d, size_t rank, size_t *rows, size_t *cols, size_t *inner)
{
    if (!d || rank == 0) return TD_EINVAL;
    td_cost c;
    td_status st = td_layer_cost(d, &c); /* validates the description */
    if (st != TD_OK) return st;
    size_t k = 1;
    if (d->kind == TD_LAYER_CONV2D) {
        if (d->kh != d->kw) return TD_EUNSUPPORTED;
        k = d->kh;
    }
    size_t r = 0, c0 = 0, c1 = 0;
    if (!td__mul_ok(rank, k, &r) || !td__mul_ok(d->cout / d->groups, k, &c0) || !td__mul_ok(d->cin, k, &c1))
        return TD_EOVERFLOW;
    if (d->kind == TD_LAYER_DENSE) { c0 = d->cout; c1 = d->cin; }
    *rows = c0;
    *cols = c1;
    *inner = r;
    return TD_OK;
}

td_status td_adapter_shapes(const td_layer_desc *d, size_t rank, size_t a_shape[2], size_t b_shape[2])
{
    size_t rows, cols, inner;
    if (!a_shape || !b_shape) return TD_EINVAL;
    td_status st = layout(d, rank, &rows, &cols, &inner);
    if (st != TD_OK) return st;
    a_shape[0] = inner;
    a_shape[1] = cols;
    b_shape[0] = rows;
    b_shape[1] = inner;
    return TD_OK;
}

/* out = frozen + s B A (the flat buffers of frozen and the rows x cols product coincide). */
static td_status compose(const td_adapter *a, td_tensor *out)
{
    td_status st = td_tensor_copy(out, &a->frozen);
    if (st != TD_OK) return st;
    const size_t rows = a->b.shape[0], cols = a->a.shape[1], inner = a->a.shape[0];
    if (!td__fits_blas(rows) || !td__fits_blas(cols) || !td__fits_blas(inner)) { td_tensor_free(out); return TD_ERANGE; }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)inner, a->scaling, a->b.data,
                (int)inner, a->a.data, (int)cols, 1.0, out->data, (int)cols);
    return TD_OK;
}

td_status td_adapter_rel_error(const td_adapter *a, const td_tensor *kernel, double *rel_error)
{
    if (!a || !kernel || !rel_error || !a->a.data || !a->b.data) return TD_EINVAL;
    if (!td_tensor_same_shape(kernel, &a->frozen) || a->a.shape[0] != a->b.shape[1] ||
        a->b.shape[0] * a->a.shape[1] != kernel->size)
        return TD_ESHAPE;
    td_tensor w;
    td_status st = compose(a, &w);
    if (st == TD_OK) st = td_rel_diff(&w, kernel, rel_error);
    td_tensor_free(&w);
    return st;
}

/* Which singular triplets an adapter of inner rank R needs from an rows x cols matrix: want
 * computed, kept in W_R, the adapter's from lo, n_ad of them. */
typedef struct split_plan {
    size_t want, kept, lo, n_ad;
} split_plan;

static split_plan plan_split(size_t rows, size_t cols, size_t inner, td_adapter_mode mode)
{
    const size_t full = rows < cols ? rows : cols;
    split_plan p;
    /* principal needs triplets 0..R-1, residual 0..2R-1 */
    p.want = mode == TD_ADAPTER_PRINCIPAL ? inner : 2 * inner;
    if (p.want > full) p.want = full;
    p.kept = inner < full ? inner : full;
    p.lo = mode == TD_ADAPTER_PRINCIPAL ? 0 : p.kept;
    p.n_ad = mode == TD_ADAPTER_PRINCIPAL ? p.kept : p.want - p.kept;
    return p;
}

/* A (R x cols) and B (rows x R) from the triplets, sqrt(s / scaling) on each side. Triplets the
 * matrix does not have: B's column stays 0 (the identity holds) and A's row gets loralib's init,
 * uniform in +-1/sqrt(cols), so the pair still receives gradients; fixed seed, reproducible. */
static void fill_factors(td_adapter *out, const split_plan *p, const double *u, const double *s, const double *vt)
{
    const size_t rows = out->b.shape[0], cols = out->a.shape[1], inner = out->inner;
    for (size_t c = 0; c < p->n_ad; c++) {
        const double f = sqrt(s[p->lo + c] / out->scaling);
        for (size_t j = 0; j < cols; j++) out->a.data[c * cols + j] = f * vt[(p->lo + c) * cols + j];
        for (size_t i = 0; i < rows; i++) out->b.data[i * inner + c] = f * u[i * p->want + p->lo + c];
    }
    td_rng rng;
    td_rng_seed(&rng, 0x10a);
    const double bound = 1.0 / sqrt((double)cols);
    for (size_t c = p->n_ad; c < inner; c++)
        for (size_t j = 0; j < cols; j++) out->a.data[c * cols + j] = bound * (2.0 * td_rng_uniform(&rng) - 1.0);
}

/* frozen = W - W_R (principal) or W_R (residual) for the rows x cols matrix M of the kernel,
 * W_R = (U_R S_R) V_R^T by one GEMM; us is rows x max(kept, 1) scratch. */
static td_status frozen_part(const td_tensor *kernel, size_t rows, size_t cols, const split_plan *p, td_adapter_mode mode,
                             const double *u, const double *s, const double *vt, double *us, td_tensor *frozen)
{
    const size_t kept = p->kept;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = 0; c < kept; c++) us[i * kept + c] = u[i * p->want + c] * s[c];
    td_status st = mode == TD_ADAPTER_PRINCIPAL ? td_tensor_copy(frozen, kernel) : td_tensor_alloc(frozen, kernel->ndim, kernel->shape);
    if (st == TD_OK && kept)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)kept, mode == TD_ADAPTER_PRINCIPAL ? -1.0 : 1.0,
                    us, (int)kept, vt, (int)cols, mode == TD_ADAPTER_PRINCIPAL ? 1.0 : 0.0, frozen->data, (int)cols);
    return st;
}

td_status td_layer_adapter(const td_layer_desc *d, const td_tensor *kernel, size_t rank, td_adapter_mode mode,
                           double alpha, td_adapter *out)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!d || !kernel || !(alpha > 0) || !isfinite(alpha) || (mode != TD_ADAPTER_PRINCIPAL && mode != TD_ADAPTER_RESIDUAL))
        return TD_EINVAL;
    size_t rows, cols, inner;
    td_status st = layout(d, rank, &rows, &cols, &inner);
    if (st != TD_OK) return st;
    if (!td__kernel_matches(d, kernel)) return TD_ESHAPE;
    if ((st = td_tensor_check_finite(kernel)) != TD_OK) return st;
    if (!td__fits_blas(rows) || !td__fits_blas(cols) || !td__fits_blas(inner)) return TD_ERANGE;

    const split_plan p = plan_split(rows, cols, inner, mode);
    td_tensor m, u = {0}, vt = {0}, us = {0};
    double *s = malloc((p.want ? p.want : 1) * sizeof *s);
    size_t shape[2] = {rows, cols};
    out->rank = rank;
    out->inner = inner;
    out->effective = p.n_ad;
    out->scaling = alpha / (double)rank;
    st = s ? td_tensor_view(&m, 2, shape, kernel->data) : TD_ENOMEM;
    if (st == TD_OK && (st = td_matrix_alloc(&u, rows, p.want)) == TD_OK && (st = td_matrix_alloc(&vt, p.want, cols)) == TD_OK)
        st = td_svd_trunc(&m, p.want, NULL, &u, s, &vt);
    if (st == TD_OK && (st = td_matrix_alloc(&us, rows, p.kept ? p.kept : 1)) == TD_OK)
        st = frozen_part(kernel, rows, cols, &p, mode, u.data, s, vt.data, us.data, &out->frozen);
    if (st == TD_OK && (st = td_matrix_alloc(&out->a, inner, cols)) == TD_OK && (st = td_matrix_alloc(&out->b, rows, inner)) == TD_OK) {
        fill_factors(out, &p, u.data, s, vt.data);
        out->params = (uint64_t)out->a.size + (uint64_t)out->b.size;
        /* ||W - W_R||: the frozen residual itself (principal) or W - frozen (residual) */
        const double nw = td_norm(kernel);
        if (mode == TD_ADAPTER_PRINCIPAL) out->rel_error_truncated = nw > 0 ? td_norm(&out->frozen) / nw : 0.0;
        else st = td_rel_diff(&out->frozen, kernel, &out->rel_error_truncated);
    }
    if (st == TD_OK) st = td_adapter_rel_error(out, kernel, &out->rel_error);
    free(s);
    td_tensor_free(&u);
    td_tensor_free(&vt);
    td_tensor_free(&us);
    if (st != TD_OK) td_adapter_free(out);
    return st;
}

td_status td_adapter_workspace(const td_layer_desc *d, size_t rank, td_adapter_mode mode, uint64_t *bytes)
{
    size_t rows, cols, inner;
    if (!bytes || (mode != TD_ADAPTER_PRINCIPAL && mode != TD_ADAPTER_RESIDUAL)) return TD_EINVAL;
    td_status st = layout(d, rank, &rows, &cols, &inner);
    if (st != TD_OK) return st;
    const split_plan p = plan_split(rows, cols, inner, mode);
    uint64_t svd = 0;
    if (p.want && (st = td_svd_trunc_workspace(rows, cols, p.want, NULL, &svd)) != TD_OK) return st;
    const double nr = (double)rows, nc = (double)cols, nw = (double)p.want, ni = (double)inner;
    /* s, U, V^T, U S, then the adapter (frozen, A, B) and the composed kernel of its error */
    const double b = 8.0 * (nw + nr * nw + nw * nc + nr * fmax((double)p.kept, 1.0) + 2.0 * nr * nc + ni * nc + nr * ni) + (double)svd;
    if (!(b < 9.2e18)) return TD_EOVERFLOW;
    *bytes = (uint64_t)b;
    return TD_OK;
}
