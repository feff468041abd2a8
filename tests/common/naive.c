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
