#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

void tt_random(td_tensor *t, int ndim, const size_t *shape, uint64_t seed)
{
    ck_assert_int_eq(td_tensor_alloc(t, ndim, shape), TD_OK);
    td_rng rng;
    td_rng_seed(&rng, seed);
    for (size_t i = 0; i < t->size; i++) t->data[i] = td_rng_normal(&rng);
}

void tt_random_matrix(td_tensor *t, size_t rows, size_t cols, uint64_t seed)
{
    size_t shape[2] = {rows, cols};
    tt_random(t, 2, shape, seed);
}

double tt_maxdiff(const td_tensor *a, const td_tensor *b)
{
    ck_assert(td_tensor_same_shape(a, b));
    double m = 0;
    for (size_t i = 0; i < a->size; i++) {
        double d = fabs(a->data[i] - b->data[i]);
        if (d > m || isnan(d)) m = d;
    }
    return m;
}

double tt_relerr(const td_tensor *a, const td_tensor *b)
{
    ck_assert(td_tensor_same_shape(a, b));
    double num = 0, den = 0;
    for (size_t i = 0; i < a->size; i++) {
        double d = a->data[i] - b->data[i];
        num += d * d;
        den += b->data[i] * b->data[i];
    }
    if (den == 0) return sqrt(num);
    return sqrt(num / den);
}

int tt_bitequal(const td_tensor *a, const td_tensor *b)
{
    if (!td_tensor_same_shape(a, b)) return 0;
    return a->size == 0 || memcmp(a->data, b->data, a->size * sizeof(double)) == 0;
}

int tt_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

td_plan_layer tt_plan_layer(const char *name, td_layer_desc d)
{
    td_plan_layer l;
    memset(&l, 0, sizeof l);
    l.name = name;
    l.desc = d;
    ck_assert_int_eq(td_layer_admission(&d, &l.admits), TD_OK);
    return l;
}
