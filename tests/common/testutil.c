#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lapacke.h>
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

double tt_orth_defect(const double *x, size_t r, size_t c, int rows)
{
    const size_t len = rows ? c : r, cnt = rows ? r : c;
    double worst = 0;
    for (size_t a = 0; a < cnt; a++)
        for (size_t b = a; b < cnt; b++) {
            double d = 0;
            for (size_t i = 0; i < len; i++)
                d += rows ? x[a * c + i] * x[b * c + i] : x[i * c + a] * x[i * c + b];
            worst = fmax(worst, fabs(d - (a == b ? 1.0 : 0.0)));
        }
    return worst;
}

double tt_orth_cols(const td_tensor *u) { return tt_orth_defect(u->data, u->shape[0], u->shape[1], 0); }

void tt_orth_basis(td_tensor *q, size_t m, size_t p, uint64_t seed)
{
    double *tau = malloc(p * sizeof(double));
    ck_assert(tau != NULL);
    tt_random_matrix(q, m, p, seed);
    ck_assert_int_eq(LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)p, q->data, (lapack_int)p, tau), 0);
    ck_assert_int_eq(LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)p, (lapack_int)p, q->data,
                                    (lapack_int)p, tau), 0);
    free(tau);
}

void tt_matrix_with_spectrum(td_tensor *a, size_t m, size_t n, const double *sv, size_t p, double noise,
                             uint64_t seed)
{
    td_tensor q1, q2;
    tt_orth_basis(&q1, m, p, seed);
    tt_orth_basis(&q2, n, p, seed + 1);
    ck_assert_int_eq(td_matrix_alloc(a, m, n), TD_OK);
    td_rng g;
    td_rng_seed(&g, seed + 2);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double v = 0;
            for (size_t k = 0; k < p; k++) v += q1.data[i * p + k] * sv[k] * q2.data[j * p + k];
            a->data[i * n + j] = v + noise * td_rng_normal(&g);
        }
    td_tensor_free(&q1);
    td_tensor_free(&q2);
}

double tt_tucker_err(const td_tensor *x, const td_tucker_result *r)
{
    td_tensor full;
    ck_assert_int_eq(td_tensor_alloc(&full, x->ndim, x->shape), TD_OK);
    TT_OK(td_tucker_full(r, &full));
    double e = tt_relerr(&full, x);
    td_tensor_free(&full);
    return e;
}
