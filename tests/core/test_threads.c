/* Several threads decomposing different layers at once give bit-identical results to a serial
 * run at the same BLAS thread count (one here: the test sets it, the library never does).
 * Built and run under ThreadSanitizer by the test command as well. Plain C: pthreads. */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "tdecomp.h"

#define NL 6
static td_tensor K[NL];
static td_layer_desc D[NL];
static td_chain serial[NL], parallel[NL];
static td_status pst[NL];

static td_status work(int i, td_chain *out)
{
    if (i % 3 == 0) return td_conv_tucker2(&D[i], &K[i], NULL, 4, 3, NULL, out);
    if (i % 3 == 1) {
        td_cp_options o;
        td_cp_options_init(&o);
        o.max_iter = 15;
        return td_conv_cp(&D[i], &K[i], NULL, 5, &o, out);
    }
    return td_conv_svd_grouped(&D[i], &K[i], NULL, 2, 3, 0, out);
}

static void *thread_main(void *arg)
{
    int i = (int)(size_t)arg;
    pst[i] = work(i, &parallel[i]);
    return NULL;
}

static int same(const td_chain *a, const td_chain *b)
{
    if (a->npieces != b->npieces || a->rel_error != b->rel_error) return 0;
    for (int p = 0; p < a->npieces; p++)
        if (a->pieces[p].kernel.size != b->pieces[p].kernel.size ||
            memcmp(a->pieces[p].kernel.data, b->pieces[p].kernel.data, a->pieces[p].kernel.size * sizeof(double)))
            return 0;
    return 1;
}

int main(void)
{
    /* the public setter reaches OpenBLAS itself; invalid counts are refused and change nothing */
    const int before = openblas_get_num_threads();
    if (td_blas_set_threads(0) != TD_EINVAL || td_blas_set_threads(-3) != TD_EINVAL ||
        td_blas_threads() != before) { fprintf(stderr, "td_blas_set_threads accepted a bad count\n"); return 1; }
    if (td_blas_set_threads(1) != TD_OK || openblas_get_num_threads() != 1 || td_blas_threads() != 1) {
        fprintf(stderr, "td_blas_set_threads(1) did not reach OpenBLAS\n");
        return 1;
    }
    if (!td_blas_core() || strcmp(td_blas_core(), openblas_get_corename()) != 0) {
        fprintf(stderr, "td_blas_core is not OpenBLAS's core name\n");
        return 1;
    }
    for (int i = 0; i < NL; i++) {
        size_t co = 8 + 2 * (size_t)i, ci = 6 + (size_t)i, shape[4] = {co, ci, 3, 3};
        if (td_tensor_alloc(&K[i], 4, shape) != TD_OK) return 99;
        td_rng r;
        td_rng_seed(&r, 100 + (uint64_t)i);
        for (size_t k = 0; k < K[i].size; k++) K[i].data[k] = td_rng_normal(&r);
        memset(&D[i], 0, sizeof D[i]);
        D[i].kind = TD_LAYER_CONV2D;
        D[i].cout = co; D[i].cin = ci; D[i].kh = D[i].kw = 3; D[i].groups = 1;
        D[i].stride[0] = D[i].stride[1] = D[i].dilation[0] = D[i].dilation[1] = 1;
        if (i % 3 == 2 && ci % 2) D[i].cin = ci; /* grouped SVD needs k | Cin: k = 2 below */
    }
    int bad = 0;
    for (int i = 0; i < NL; i++) {
        if (i % 3 == 2 && D[i].cin % 2) continue;
        if (work(i, &serial[i]) != TD_OK) { fprintf(stderr, "serial layer %d failed\n", i); bad++; }
    }
    pthread_t th[NL];
    int started[NL] = {0};
    for (int i = 0; i < NL; i++) {
        if (i % 3 == 2 && D[i].cin % 2) continue;
        started[i] = pthread_create(&th[i], NULL, thread_main, (void *)(size_t)i) == 0;
    }
    for (int i = 0; i < NL; i++) {
        if (!started[i]) continue;
        pthread_join(th[i], NULL);
        if (pst[i] != TD_OK || !same(&serial[i], &parallel[i])) { fprintf(stderr, "layer %d differs from serial\n", i); bad++; }
    }
    for (int i = 0; i < NL; i++) {
        td_chain_free(&serial[i]);
        td_chain_free(&parallel[i]);
        td_tensor_free(&K[i]);
    }
    printf("%d passed, %d failed\n", bad ? 0 : 1, bad ? 1 : 0);
    return bad ? 1 : 0;
}
