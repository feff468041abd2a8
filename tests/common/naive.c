#include "naive.h"

size_t nv_index(int ndim, const size_t *shape, const size_t *idx)
{
    size_t lin = 0;
    for (int k = 0; k < ndim; k++) lin = lin * shape[k] + idx[k];
    return lin;
}

int nv_next(int ndim, const size_t *shape, size_t *idx)
{
    for (int k = ndim - 1; k >= 0; k--) {
        if (++idx[k] < shape[k]) return 1;
        idx[k] = 0;
    }
    return 0;
}

void nv_unfold(const td_tensor *x, int mode, td_tensor *out)
{
    size_t idx[TD_MAX_MODES] = {0}, rest[TD_MAX_MODES], rshape[TD_MAX_MODES];
    int nr = 0;
    for (int k = 0; k < x->ndim; k++)
        if (k != mode) rshape[nr++] = x->shape[k];
    const size_t cols = out->shape[1];
    if (x->size == 0) return;
    do {
        nr = 0;
        for (int k = 0; k < x->ndim; k++)
            if (k != mode) rest[nr++] = idx[k];
        size_t col = nv_index(nr, rshape, rest);
        out->data[idx[mode] * cols + col] = x->data[nv_index(x->ndim, x->shape, idx)];
    } while (nv_next(x->ndim, x->shape, idx));
}

void nv_ttm(const td_tensor *x, int mode, const td_tensor *m, int transpose, td_tensor *y)
{
    size_t idx[TD_MAX_MODES] = {0};
    for (size_t i = 0; i < y->size; i++) y->data[i] = 0;
    if (x->size == 0) return;
    const size_t j = y->shape[mode];
    do {
        double v = x->data[nv_index(x->ndim, x->shape, idx)];
        size_t in = idx[mode], yidx[TD_MAX_MODES];
        for (int k = 0; k < x->ndim; k++) yidx[k] = idx[k];
        for (size_t a = 0; a < j; a++) {
            yidx[mode] = a;
            double mv = transpose ? m->data[in * m->shape[1] + a] : m->data[a * m->shape[1] + in];
            y->data[nv_index(y->ndim, y->shape, yidx)] += mv * v;
        }
    } while (nv_next(x->ndim, x->shape, idx));
}

void nv_khatri_rao(const td_tensor *const *mats, int n, int skip, td_tensor *out)
{
    size_t shape[TD_MAX_MODES], idx[TD_MAX_MODES] = {0};
    const td_tensor *use[TD_MAX_MODES];
    int m = 0;
    for (int k = 0; k < n; k++)
        if (k != skip) { use[m] = mats[k]; shape[m++] = mats[k]->shape[0]; }
    const size_t r = out->shape[1];
    do {
        size_t row = nv_index(m, shape, idx);
        for (size_t c = 0; c < r; c++) {
            double p = 1;
            for (int k = 0; k < m; k++) p *= use[k]->data[idx[k] * r + c];
            out->data[row * r + c] = p;
        }
    } while (nv_next(m, shape, idx));
}

void nv_mttkrp(const td_tensor *x, const td_tensor *const *factors, int mode, td_tensor *out)
{
    size_t idx[TD_MAX_MODES] = {0};
    const size_t r = out->shape[1];
    for (size_t i = 0; i < out->size; i++) out->data[i] = 0;
    if (x->size == 0) return;
    do {
        double v = x->data[nv_index(x->ndim, x->shape, idx)];
        for (size_t c = 0; c < r; c++) {
            double p = v;
            for (int k = 0; k < x->ndim; k++)
                if (k != mode) p *= factors[k]->data[idx[k] * r + c];
            out->data[idx[mode] * r + c] += p;
        }
    } while (nv_next(x->ndim, x->shape, idx));
}

void nv_gram(const td_tensor *x, int mode, td_tensor *g)
{
    size_t n = x->shape[mode], cols = n ? x->size / n : 0;
    td_tensor u;
    size_t shape[2] = {n, cols};
    for (size_t i = 0; i < g->size; i++) g->data[i] = 0;
    if (td_tensor_alloc(&u, 2, shape) != TD_OK) return;
    nv_unfold(x, mode, &u);
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            double s = 0;
            for (size_t c = 0; c < cols; c++) s += u.data[a * cols + c] * u.data[b * cols + c];
            g->data[a * n + b] = s;
        }
    td_tensor_free(&u);
}
