/* Workspace queries against the heap the calls really take: the static library's malloc, calloc,
 * realloc and free are wrapped at link time and the peak of live bytes during a call is measured;
 * every query must be at least that peak (it may be more: it also counts LAPACKE's and LAPACK's
 * own buffers, which live in shared libraries and are not seen here). Plain C (no Check: its own
 * allocations would be counted). Not built with sanitizers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tdecomp.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

/* Requested sizes by pointer (open addressing), so that live counts the bytes asked for, not
 * the allocator's rounding. */
#define SLOTS (1u << 16)
static void *slot_p[SLOTS];
static size_t slot_n[SLOTS];
static size_t live, peak;
static size_t slot_of(const void *p)
{
    size_t h = ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull % SLOTS;
    while (slot_p[h] && slot_p[h] != p) h = (h + 1) % SLOTS;
    return h;
}
static void track(void *p, size_t n)
{
    if (!p) return;
    const size_t h = slot_of(p);
    slot_p[h] = p;
    slot_n[h] = n;
    live += n;
    if (live > peak) peak = live;
}
static void untrack(void *p)
{
    if (!p) return;
    size_t h = slot_of(p);
    if (!slot_p[h]) return; /* not ours */
    live -= slot_n[h];
    /* delete by re-inserting the rest of the cluster */
    slot_p[h] = NULL;
    for (size_t j = (h + 1) % SLOTS; slot_p[j]; j = (j + 1) % SLOTS) {
        void *q = slot_p[j];
        const size_t n = slot_n[j];
        slot_p[j] = NULL;
        const size_t k = slot_of(q);
        slot_p[k] = q;
        slot_n[k] = n;
    }
}
void *__wrap_malloc(size_t n)
{
    void *p = __real_malloc(n);
    track(p, n);
    return p;
}
void *__wrap_calloc(size_t a, size_t b)
{
    void *p = __real_calloc(a, b);
    track(p, a * b);
    return p;
}
void *__wrap_realloc(void *p, size_t n)
{
    untrack(p);
    void *q = __real_realloc(p, n);
    track(q, n);
    return q;
}
void __wrap_free(void *p)
{
    untrack(p);
    __real_free(p);
}

static int failures, checks;
/* Starts a measurement: the peak is counted from the live bytes now. */
static size_t mark(void) { peak = live; return live; }
static void expect_bound(const char *what, td_status qst, uint64_t bound, td_status st, size_t base)
{
    checks++;
    const size_t used = peak - base;
    if (qst != TD_OK || st != TD_OK) {
        failures++;
        fprintf(stderr, "FAIL %s: query %s, call %s\n", what, td_status_name(qst), td_status_name(st));
        return;
    }
    if (used > bound) {
        failures++;
        fprintf(stderr, "FAIL %s: the call took %zu bytes, the query said %llu\n", what, used, (unsigned long long)bound);
        return;
    }
    printf("%-44s peak %10zu bytes, bound %10llu (%.2fx)\n", what, used, (unsigned long long)bound,
           used ? (double)bound / (double)used : 0.0);
}

static void fill(td_tensor *t, uint64_t seed)
{
    td_rng r;
    td_rng_seed(&r, seed);
    for (size_t i = 0; i < t->size; i++) t->data[i] = td_rng_normal(&r);
}

static void svd_cases(void)
{
    const size_t cases[][3] = {{60, 300, 5}, {300, 60, 5}, {80, 90, 20}, {200, 400, 10}, {50, 400, 10}, {400, 50, 12}};
    const td_svd_method methods[] = {TD_SVD_AUTO, TD_SVD_GRAM, TD_SVD_GESDD, TD_SVD_RANDOMIZED};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int mi = 0; mi < 6; mi++) {   /* the last two: AUTO and GRAM with float32 at any size */
            const size_t m = cases[c][0], n = cases[c][1], k = cases[c][2];
            td_tensor a, u, vt;
            double *s = malloc(k * sizeof *s);
            if (td_matrix_alloc(&a, m, n) || td_matrix_alloc(&u, m, k) || td_matrix_alloc(&vt, k, n) || !s) exit(3);
            fill(&a, 10 + c);
            td_svd_options o;
            td_svd_options_init(&o);
            o.method = methods[mi < 4 ? mi : mi - 4];
            o.float_passes = mi < 4 ? 1 : 2;
            uint64_t bound;
            const td_status q = td_svd_trunc_workspace(m, n, k, &o, &bound);
            const size_t base = mark();
            const td_status st = td_svd_trunc(&a, k, &o, &u, s, &vt);
            char what[80];
            snprintf(what, sizeof what, "svd (%zu, %zu) k %zu route %d", m, n, k, mi);
            expect_bound(what, q, bound, st, base);
            td_tensor_free(&a); td_tensor_free(&u); td_tensor_free(&vt); free(s);
        }
}

/* A matrix of 2^22 entries takes the randomised route with float32 passes (a float copy of A). */
static void svd_large_case(void)
{
    td_tensor a, u, vt;
    double s[16];
    if (td_matrix_alloc(&a, 2048, 2048) || td_matrix_alloc(&u, 2048, 16) || td_matrix_alloc(&vt, 16, 2048)) exit(3);
    fill(&a, 15);
    uint64_t bound;
    const td_status q = td_svd_trunc_workspace(2048, 2048, 16, NULL, &bound);
    const size_t base = mark();
    const td_status st = td_svd_trunc(&a, 16, NULL, &u, s, &vt);
    expect_bound("svd (2048, 2048) k 16 (float passes)", q, bound, st, base);
    td_tensor_free(&a); td_tensor_free(&u); td_tensor_free(&vt);
}

static void spectrum_cases(void)
{
    const size_t shapes[][4] = {{8, 6, 3, 3}, {30, 5, 3, 3}, {40, 70, 1, 1}, {5, 90, 2, 2}};
    for (size_t c = 0; c < 4; c++)
        for (int mode = 0; mode < 2; mode++)
            for (size_t k = 0; k <= 2; k += 2) {
                td_tensor x, u = {0};
                double *s2 = malloc(shapes[c][mode] * sizeof *s2);
                if (td_tensor_alloc(&x, 4, shapes[c]) || !s2 || (k && td_matrix_alloc(&u, shapes[c][mode], k))) exit(3);
                fill(&x, 20 + c);
                uint64_t bound;
                const td_status q = td_mode_spectrum_workspace(4, shapes[c], mode, k, &bound);
                const size_t base = mark();
                const td_status st = td_mode_spectrum(&x, mode, k, k ? &u : NULL, s2);
                char what[80];
                snprintf(what, sizeof what, "mode spectrum (%zu,%zu,%zu,%zu) mode %d k %zu", shapes[c][0], shapes[c][1],
                         shapes[c][2], shapes[c][3], mode, k);
                expect_bound(what, q, bound, st, base);
                td_tensor_free(&x); td_tensor_free(&u); free(s2);
            }
}

static void cp_cases(void)
{
    const size_t shapes[][4] = {{12, 10, 8, 1}, {6, 5, 4, 3}, {30, 4, 5, 1}, {7, 40, 1, 1}};
    const int nds[] = {3, 4, 3, 2};
    const size_t ranks[] = {3, 7, 2, 9};
    for (int c = 0; c < 4; c++)
        for (int init = 0; init < 2; init++) {
            td_tensor x;
            if (td_tensor_alloc(&x, nds[c], shapes[c])) exit(3);
            fill(&x, 30 + (uint64_t)c);
            td_cp_options o;
            td_cp_options_init(&o);
            o.init = init ? TD_CP_INIT_RANDOM : TD_CP_INIT_SVD;
            o.max_iter = 5;
            uint64_t bound;
            const td_status q = td_cp_als_workspace(nds[c], shapes[c], ranks[c], &o, &bound);
            td_cp_result r;
            const size_t base = mark();
            const td_status st = td_cp_als(&x, ranks[c], &o, &r);
            char what[80];
            snprintf(what, sizeof what, "cp-als %d-way rank %zu init %s", nds[c], ranks[c], init ? "random" : "svd");
            expect_bound(what, q, bound, st, base);
            td_cp_free(&r);
            td_tensor_free(&x);
        }
}

static td_layer_desc conv(size_t cout, size_t cin, size_t k)
{
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = TD_LAYER_CONV2D;
    d.cout = cout; d.cin = cin; d.kh = d.kw = k; d.groups = 1;
    d.stride[0] = d.stride[1] = d.dilation[0] = d.dilation[1] = 1;
    d.pad[0] = d.pad[1] = d.pad[2] = d.pad[3] = k / 2;
    return d;
}

static void kernel_of(const td_layer_desc *d, td_tensor *k, uint64_t seed)
{
    const size_t s4[4] = {d->cout, d->cin, d->kh, d->kw};
    if (d->kind == TD_LAYER_DENSE ? td_matrix_alloc(k, d->cout, d->cin) : td_tensor_alloc(k, 4, s4)) exit(3);
    fill(k, seed);
}

static void tucker_cases(void)
{
    const size_t shapes[][4] = {{16, 12, 3, 3}, {10, 9, 8, 1}, {30, 20, 5, 5}, {6, 40, 1, 1}};
    const int nds[] = {4, 3, 4, 2}, nms[] = {2, 3, 2, 2};
    const int modes[][3] = {{0, 1, 0}, {0, 1, 2}, {0, 1, 0}, {0, 1, 0}};
    const size_t ranks[][3] = {{5, 4, 0}, {3, 2, 2}, {10, 8, 0}, {3, 3, 0}};
    const td_tucker_method methods[] = {TD_TUCKER_HOSVD, TD_TUCKER_STHOSVD, TD_TUCKER_HOOI};
    for (int c = 0; c < 4; c++)
        for (int mi = 0; mi < 4; mi++)   /* the last: HOOI with float32 warm sweeps at any size */
            for (int rule = 0; rule < 2; rule++) {
                td_tensor x;
                if (td_tensor_alloc(&x, nds[c], shapes[c])) exit(3);
                fill(&x, 80 + (uint64_t)c);
                td_tucker_options o;
                td_tucker_options_init(&o);
                o.method = methods[mi < 3 ? mi : 2];
                o.float_sweeps = mi == 3 ? 2 : 1;
                o.max_iter = 6;
                td_rank_rule rr;
                memset(&rr, 0, sizeof rr);
                rr.kind = TD_RANK_ENERGY;
                rr.value = 0.8;
                if (rule) { o.truncate = td_rank_truncate; o.truncate_ctx = &rr; }
                uint64_t bound;
                const td_status q = td_tucker_workspace(nds[c], shapes[c], nms[c], modes[c], rule ? NULL : ranks[c], &o, &bound);
                td_tucker_result r;
                const size_t base = mark();
                const td_status st = td_tucker(&x, nms[c], modes[c], rule ? NULL : ranks[c], &o, &r);
                char what[80];
                snprintf(what, sizeof what, "tucker %d-way on %d modes method %d%s", nds[c], nms[c], mi, rule ? " energy" : "");
                expect_bound(what, q, bound, st, base);
                td_tucker_free(&r);
                td_tensor_free(&x);
            }
}

static void adapter_cases(void)
{
    td_layer_desc ds[3] = {conv(8, 6, 3), conv(12, 5, 1), conv(20, 30, 1)};
    ds[2].kind = TD_LAYER_DENSE;
    ds[2].pad[0] = ds[2].pad[1] = ds[2].pad[2] = ds[2].pad[3] = 0;
    for (int c = 0; c < 3; c++)
        for (int mode = 0; mode < 2; mode++) {
            td_tensor k;
            kernel_of(&ds[c], &k, 40 + (uint64_t)c);
            uint64_t bound;
            const td_status q = td_adapter_workspace(&ds[c], 2, (td_adapter_mode)mode, &bound);
            td_adapter a;
            const size_t base = mark();
            const td_status st = td_layer_adapter(&ds[c], &k, 2, (td_adapter_mode)mode, 2.0, &a);
            char what[80];
            snprintf(what, sizeof what, "adapter layer %d mode %d", c, mode);
            expect_bound(what, q, bound, st, base);
            td_adapter_free(&a);
            td_tensor_free(&k);
        }
}

/* Identity-like statistics (a random SPD covariance) for the data-aware cases. */
static void stats_of(const td_layer_desc *d, td_tensor *cov, td_tensor *patch, td_layer_stats *s)
{
    const size_t n = d->cin, np = d->cin * d->kh * d->kw;
    if (td_matrix_alloc(cov, n, n) || td_matrix_alloc(patch, np, np)) exit(3);
    for (size_t i = 0; i < n; i++) cov->data[i * n + i] = 1.0 + (double)i / (double)n;
    for (size_t i = 0; i < np; i++) patch->data[i * np + i] = 1.0 + (double)i / (double)np;
    memset(s, 0, sizeof *s);
    s->input_cov = cov;
    s->patch_cov = patch;
    s->count = 10;
}

static void rewrite_cases(void)
{
    const td_method ms[4] = {TD_METHOD_TUCKER2, TD_METHOD_CP, TD_METHOD_SVD, TD_METHOD_SVD_GROUPED};
    const size_t rk[4][2] = {{5, 4}, {6, 0}, {7, 0}, {2, 5}};
    for (int stats = 0; stats < 2; stats++)
        for (int i = 0; i < 4; i++) {
            td_layer_desc d = conv(16, 12, 3);
            td_tensor k, cov, patch;
            td_layer_stats s;
            kernel_of(&d, &k, 50 + (uint64_t)i);
            stats_of(&d, &cov, &patch, &s);
            td_rewrite_options o;
            td_rewrite_options_init(&o);
            o.cp.max_iter = 5;
            o.tucker.max_iter = 3;
            o.stats = stats ? &s : NULL;
            uint64_t bound;
            const td_status q = td_rewrite_workspace(&d, ms[i], rk[i], stats, &bound);
            td_chain c;
            const size_t base = mark();
            const td_status st = td_layer_rewrite(&d, &k, NULL, ms[i], rk[i], &o, &c);
            char what[80];
            snprintf(what, sizeof what, "rewrite %s%s", td_method_name(ms[i]), stats ? " with statistics" : "");
            expect_bound(what, q, bound, st, base);
            /* the executor on the original and on the chain, at 9 x 7 */
            const size_t xs[3] = {d.cin, 9, 7};
            td_tensor x, y;
            if (td_tensor_alloc(&x, 3, xs)) exit(3);
            fill(&x, 60);
            uint64_t b0, b1;
            const td_status q0 = td_layer_apply_workspace(&d, 9, 7, &b0), q1 = td_chain_apply_workspace(&c, 9, 7, &b1);
            size_t at = mark();
            td_status s0 = td_layer_apply_gemm(&d, &k, NULL, &x, &y);
            snprintf(what, sizeof what, "apply layer (%s case)", td_method_name(ms[i]));
            expect_bound(what, q0, b0, s0, at);
            td_tensor_free(&y);
            at = mark();
            s0 = td_chain_apply(&c, &x, 1, &y);
            snprintf(what, sizeof what, "apply %s chain", td_method_name(ms[i]));
            expect_bound(what, q1, b1, s0, at);
            td_tensor_free(&y);
            td_tensor_free(&x);
            td_chain_free(&c);
            td_tensor_free(&k); td_tensor_free(&cov); td_tensor_free(&patch);
        }
}

static void curve_cases(void)
{
    const int methods[3] = {-1, TD_METHOD_SVD, TD_METHOD_SVD_GROUPED};
    for (int stats = 0; stats < 2; stats++)
        for (int i = 0; i < 3; i++) {
            td_layer_desc d = conv(16, 12, 3);
            td_tensor k, cov, patch;
            td_layer_stats s;
            kernel_of(&d, &k, 70 + (uint64_t)i);
            stats_of(&d, &cov, &patch, &s);
            td_plan_layer l = {"x", d, {0, {0}}, 0, stats ? &s : NULL};
            if (td_layer_admission(&d, &l.admits)) exit(3);
            td_plan_options o;
            td_plan_options_init(&o);
            o.rule = TD_RULE_TARGET_PARAMS;
            o.value = 0.5;
            if (methods[i] >= 0) { o.method_auto = 0; o.method = (td_method)methods[i]; }
            uint64_t bound;
            const td_status q = td_plan_curve_workspace(&l, &o, &bound);
            td_plan_curve *c = NULL;
            const size_t base = mark();
            const td_status st = td_plan_curve_new(&l, &k, &o, &c, NULL);
            char what[80];
            snprintf(what, sizeof what, "planner curve %s%s", methods[i] < 0 ? "auto" : td_method_name((td_method)methods[i]),
                     stats ? " with statistics" : "");
            expect_bound(what, q, bound, st, base);
            td_plan_curve_free(c);
            td_tensor_free(&k); td_tensor_free(&cov); td_tensor_free(&patch);
        }
}

int main(void)
{
    svd_cases();
    svd_large_case();
    spectrum_cases();
    cp_cases();
    tucker_cases();
    adapter_cases();
    rewrite_cases();
    curve_cases();
    printf("%d workspace bounds checked, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
