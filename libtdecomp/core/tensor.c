/* td_tensor lifecycle: allocation, views, copies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"

td_status td_size_product(int n, const size_t *dims, size_t *out)
{
    size_t p = 1;
    if (n < 0 || (n > 0 && !dims) || !out) return TD_EINVAL;
    for (int k = 0; k < n; k++)
        if (!td__mul_ok(p, dims[k], &p)) return TD_EOVERFLOW;
    if (p > SIZE_MAX / sizeof(double)) return TD_EOVERFLOW;
    *out = p;
    return TD_OK;
}

static td_status describe(td_tensor *t, int ndim, const size_t *shape)
{
    memset(t, 0, sizeof *t);
    if (ndim < 0 || ndim > TD_MAX_MODES || (ndim > 0 && !shape)) return TD_EINVAL;
    size_t size;
    td_status st = td_size_product(ndim, shape, &size);
    if (st != TD_OK) return st;
    t->ndim = ndim;
    for (int k = 0; k < ndim; k++) t->shape[k] = shape[k];
    t->size = size;
    return TD_OK;
}

td_status td_tensor_alloc(td_tensor *t, int ndim, const size_t *shape)
{
    if (!t) return TD_EINVAL;
    td_status st = describe(t, ndim, shape);
    if (st != TD_OK) return st;
    if (t->size > 0) {
        t->data = calloc(t->size, sizeof(double));
        if (!t->data) {
            memset(t, 0, sizeof *t);
            return TD_ENOMEM;
        }
        t->owner = 1;
    }
    return TD_OK;
}

td_status td_matrix_alloc(td_tensor *t, size_t rows, size_t cols)
{
    size_t shape[2] = {rows, cols};
    return td_tensor_alloc(t, 2, shape);
}

td_status td_tensor_view(td_tensor *t, int ndim, const size_t *shape, double *data)
{
    if (!t) return TD_EINVAL;
    td_status st = describe(t, ndim, shape);
    if (st != TD_OK) return st;
    if (t->size > 0 && !data) {
        memset(t, 0, sizeof *t);
        return TD_EINVAL;
    }
    t->data = t->size > 0 ? data : NULL;
    return TD_OK;
}

td_status td_tensor_copy(td_tensor *dst, const td_tensor *src)
{
    if (!dst || !src || dst == src) return TD_EINVAL;
    td_status st = td_tensor_alloc(dst, src->ndim, src->shape);
    if (st != TD_OK) return st;
    if (src->size) memcpy(dst->data, src->data, src->size * sizeof(double));
    return TD_OK;
}

void td_tensor_free(td_tensor *t)
{
    if (!t) return;
    if (t->owner) free(t->data);
    memset(t, 0, sizeof *t);
}

int td_tensor_same_shape(const td_tensor *a, const td_tensor *b)
{
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (int k = 0; k < a->ndim; k++)
        if (a->shape[k] != b->shape[k]) return 0;
    return 1;
}

td_status td_tensor_check_finite(const td_tensor *t)
{
    if (!t) return TD_EINVAL;
    for (size_t i = 0; i < t->size; i++)
        if (!isfinite(t->data[i])) return TD_ENOTFINITE;
    return TD_OK;
}

td_status td_tensor_check_values(const td_tensor *t)
{
    if (!t) return TD_EINVAL;
    td_status st = TD_OK;
    for (size_t i = 0; i < t->size && st != TD_ENOTFINITE; i++) {
        if (!isfinite(t->data[i])) st = TD_ENOTFINITE;
        else if (fabs(t->data[i]) > TD_VALUE_MAX) st = TD_EVALUE;
    }
    return st;
}
