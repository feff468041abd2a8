/* The BLAS thread count, for programs that set it through the public API (core.h). */
#include <cblas.h>
#include "tdecomp/core.h"

td_status td_blas_set_threads(int n)
{
    if (n < 1) return TD_EINVAL;
    openblas_set_num_threads(n);
    return TD_OK;
}

int td_blas_threads(void) { return openblas_get_num_threads(); }

const char *td_blas_core(void) { return openblas_get_corename(); }
