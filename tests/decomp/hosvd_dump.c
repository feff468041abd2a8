/* Prints, as JSON lines, HOSVD/ST-HOSVD relative errors of fixed closed-form tensors, for the
 * numpy cross-check in numpy_hosvd.py (which builds the same tensors independently). */
#include <math.h>
#include <stdio.h>
#include "tdecomp.h"

static double entry(int which, const size_t *i)
{
    switch (which) {
    case 0: return sin(1.0 + (double)i[0] + 2.0 * (double)i[1] + 3.0 * (double)(i[2] * i[2]));
    case 1: return 1.0 / (1.0 + (double)i[0] + (double)i[1] + (double)i[2]);
    default: return cos(0.3 * (double)(i[0] * i[1]) + 0.7 * (double)i[2]) + 0.1 * (double)i[3];
    }
}

int main(void)
{
    static const size_t shapes[3][4] = {{7, 6, 5, 0}, {9, 8, 7, 0}, {6, 5, 4, 3}};
    static const int ndims[3] = {3, 3, 4};
    static const size_t ranks[3][4] = {{3, 2, 4, 0}, {2, 2, 2, 0}, {2, 3, 2, 2}};
    for (int w = 0; w < 3; w++) {
        td_tensor x;
        if (td_tensor_alloc(&x, ndims[w], shapes[w]) != TD_OK) return 3;
        size_t idx[4] = {0};
        for (size_t lin = 0; lin < x.size; lin++) {
            x.data[lin] = entry(w, idx);
            for (int k = ndims[w] - 1; k >= 0; k--) {
                if (++idx[k] < shapes[w][k]) break;
                idx[k] = 0;
            }
        }
        int modes[4] = {0, 1, 2, 3};
        for (int m = 0; m < 2; m++) {
            td_tucker_options o;
            td_tucker_options_init(&o);
            o.method = m == 0 ? TD_TUCKER_HOSVD : TD_TUCKER_STHOSVD;
            td_tucker_result r;
            if (td_tucker(&x, ndims[w], modes, ranks[w], &o, &r) != TD_OK) return 1;
            printf("{\"tensor\": %d, \"method\": \"%s\", \"rel_error\": %.17g, \"order\": [", w,
                   m == 0 ? "hosvd" : "sthosvd", r.rel_error);
            for (int k = 0; k < r.nmodes; k++) printf("%s%d", k ? ", " : "", r.order[k]);
            printf("]}\n");
            td_tucker_free(&r);
        }
        td_tensor_free(&x);
    }
    return 0;
}
