/* Allocation-failure sweep: the library's own malloc/calloc/realloc calls (wrapped at link
 * time, static library) fail at the k-th call, for every k, through whole decompositions, a
 * layer rewrite, the planner and a whole weight-file rewrite. Each run must return TD_ENOMEM
 * (or the error it maps to), leave its result zeroed, and free every block it allocated.
 * Plain C (no Check: its own allocations would be wrapped too). Not built with ASan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tdecomp.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

static long calls, fail_at, live;
/* where the live blocks came from, to name a leak's allocation site */
#define TRACK 4096
static void *track_p[TRACK], *track_site[TRACK];
static void track_add(void *p, void *site)
{
    for (int i = 0; i < TRACK; i++)
        if (!track_p[i]) { track_p[i] = p; track_site[i] = site; return; }
}
static void track_del(void *p)
{
    for (int i = 0; i < TRACK; i++)
        if (track_p[i] == p) { track_p[i] = NULL; return; }
}

static int should_fail(void) { return fail_at && ++calls == fail_at; }
void *__wrap_malloc(size_t n)
{
    if (should_fail()) return NULL;
    if (!fail_at) calls++;
    void *p = __real_malloc(n);
    if (p) { live++; track_add(p, __builtin_return_address(0)); }
    return p;
}
void *__wrap_calloc(size_t a, size_t b)
{
    if (should_fail()) return NULL;
    if (!fail_at) calls++;
    void *p = __real_calloc(a, b);
    if (p) { live++; track_add(p, __builtin_return_address(0)); }
    return p;
}
void *__wrap_realloc(void *p, size_t n)
{
    if (should_fail()) return NULL;
    if (!fail_at) calls++;
    void *q = __real_realloc(p, n);
    if (q && !p) live++;
    if (q) { if (p) track_del(p); track_add(q, __builtin_return_address(0)); }
    return q;
}
void __wrap_free(void *p)
{
    if (p) { live--; track_del(p); }
    __real_free(p);
}

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { failures++; fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void fill(td_tensor *t, uint64_t seed)
{
    td_rng r;
    td_rng_seed(&r, seed);
    for (size_t i = 0; i < t->size; i++) t->data[i] = td_rng_normal(&r);
}

typedef td_status (*scenario)(void *ctx);

/* Runs s once to count allocations, then once per k failing the k-th. */
static void sweep(const char *name, scenario s, void *ctx)
{
    calls = 0; fail_at = 0; live = 0;
    td_status st = s(ctx);
    EXPECT(st == TD_OK, "%s: baseline run failed: %s", name, td_status_name(st));
    EXPECT(live == 0, "%s: baseline leaks %ld blocks", name, live);
    const long n = calls;
    int enomem = 0, leaks = 0;
    memset(track_p, 0, sizeof track_p);
    for (long k = 1; k <= n; k++) {
        calls = 0; fail_at = k; live = 0;
        st = s(ctx);
        fail_at = 0;
        EXPECT(st != TD_OK, "%s: allocation %ld of %ld failed but the call returned TD_OK", name, k, n);
        EXPECT(live == 0, "%s: allocation %ld of %ld failed: %ld blocks leaked (%s)", name, k, n, live, td_status_name(st));
        if (live) {
            leaks++;
            for (int i = 0; i < TRACK; i++)
                if (track_p[i]) { fprintf(stderr, "  leaked block allocated at %p\n", track_site[i]); track_p[i] = NULL; }
        }
        enomem += st == TD_ENOMEM;
    }
    printf("%-28s %4ld allocations, each failed in turn: %d x TD_ENOMEM, %ld x another status, %d runs leaking\n", name,
           n, enomem, n - enomem, leaks);
}

static td_tensor X3, W4, D2;

static td_status s_cp(void *ctx)
{
    (void)ctx;
    td_cp_options o;
    td_cp_options_init(&o);
    o.max_iter = 3;
    td_cp_result r;
    td_status st = td_cp_als(&X3, 3, &o, &r);
    if (st != TD_OK && r.weights) return TD_EINTERNAL; /* result must be zeroed */
    td_cp_free(&r);
    return st;
}

static td_status s_tucker(void *ctx)
{
    (void)ctx;
    int modes[3] = {0, 1, 2};
    size_t ranks[3] = {2, 2, 2};
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.max_iter = 3;
    o.tol = 0;
    o.method = *(td_tucker_method *)ctx;
    td_tucker_result r;
    td_status st = td_tucker(&X3, 3, modes, ranks, &o, &r);
    if (st != TD_OK && r.core.data) return TD_EINTERNAL;
    td_tucker_free(&r);
    return st;
}

/* Tucker-2 of W4 with float32 warm sweeps at any size (their copy, projection and Gram). */
static td_status s_tucker2_float(void *ctx)
{
    (void)ctx;
    int modes[2] = {0, 1};
    size_t ranks[2] = {3, 2};
    td_tucker_options o;
    td_tucker_options_init(&o);
    o.max_iter = 3;
    o.tol = 0;
    o.float_sweeps = 2;
    td_tucker_result r;
    td_status st = td_tucker(&W4, 2, modes, ranks, &o, &r);
    if (st != TD_OK && r.core.data) return TD_EINTERNAL;
    if (st == TD_OK && r.float_sweeps != 2) st = TD_EINTERNAL;
    td_tucker_free(&r);
    return st;
}

static td_layer_desc conv(size_t co, size_t ci, size_t k)
{
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = TD_LAYER_CONV2D;
    d.cout = co; d.cin = ci; d.kh = d.kw = k; d.groups = 1;
    d.stride[0] = d.stride[1] = d.dilation[0] = d.dilation[1] = 1;
    d.input_known = 1;
    d.in_h = d.in_w = 6;
    return d;
}

static td_status s_rewrites(void *ctx)
{
    (void)ctx;
    td_layer_desc d = conv(6, 4, 3);
    td_chain c;
    td_status st = td_conv_tucker2(&d, &W4, NULL, 3, 2, NULL, &c);
    if (st != TD_OK) return st;
    td_tensor in = {0}, out = {0};
    size_t is[3] = {4, 6, 6};
    if ((st = td_tensor_alloc(&in, 3, is)) == TD_OK) st = td_chain_apply(&c, &in, 1, &out);
    td_tensor_free(&in);
    td_tensor_free(&out);
    td_chain_free(&c);
    if (st != TD_OK) return st;
    td_cp_options co;
    td_cp_options_init(&co);
    co.max_iter = 2;
    if ((st = td_conv_cp(&d, &W4, NULL, 2, &co, &c)) != TD_OK) return st;
    td_chain_free(&c);
    if ((st = td_conv_svd_grouped(&d, &W4, NULL, 2, 2, 0, &c)) != TD_OK) return st;
    td_chain_free(&c);
    return TD_OK;
}

static td_status s_plan(void *ctx)
{
    (void)ctx;
    td_layer_desc dd;
    memset(&dd, 0, sizeof dd);
    dd.kind = TD_LAYER_DENSE; dd.cout = 7; dd.cin = 5; dd.kh = dd.kw = 1;
    td_plan_layer l[2];
    memset(l, 0, sizeof l);
    l[0].name = "a"; l[0].desc = conv(6, 4, 3);
    l[1].name = "b"; l[1].desc = dd;
    for (int i = 0; i < 2; i++)
        if (td_layer_admission(&l[i].desc, &l[i].admits) != TD_OK) return TD_EINVAL;
    const td_tensor *kernels[2] = {&W4, &D2};
    td_plan_options o;
    td_plan_options_init(&o);
    td_plan_decision d[2];
    td_plan_summary s;
    td_status st = TD_OK;
    for (int variant = 0; variant < 3 && st == TD_OK; variant++) {
        o.rule = variant == 0 ? TD_RULE_TARGET_PARAMS : (variant == 1 ? TD_RULE_VBMF : TD_RULE_TARGET_PARAMS);
        o.value = 0.6;
        o.min_total_error = variant == 2;
        st = td_plan_kernels(l, kernels, 2, &o, d, &s, NULL);
    }
    return st;
}

static char in_path[256], out_path[256];

/* The file's conv rewritten (ctx NULL: a Tucker-2 chain; else: a principal adapter). */
static td_status s_file(void *ctx)
{
    td_model m;
    td_error err;
    td_status st = td_model_open(&m, in_path, TD_LAYOUT_AUTO, &err);
    if (st != TD_OK) return st;
    td_tensor k = {0}, b = {0};
    td_chain c;
    td_adapter a;
    memset(&c, 0, sizeof c);
    memset(&a, 0, sizeof a);
    td_outfile *of = NULL;
    const char *protect[1] = {in_path};
    if ((st = td_model_read_layer(&m, 0, &k, &b, &err)) != TD_OK) goto done;
    st = ctx ? td_layer_adapter(&m.layers[0].desc, &k, 1, TD_ADAPTER_PRINCIPAL, 1.0, &a)
             : td_conv_tucker2(&m.layers[0].desc, &k, &b, 2, 2, NULL, &c);
    if (st != TD_OK) goto done;
    if ((st = td_outfile_create(&of, out_path, TD_OUTPUT_HDF5, protect, 1, 1, &err)) != TD_OK) goto done;
    td_model_rewrite rw = {0, &c};
    td_model_adapter ma = {0, &a};
    if (!ctx) st = td_model_round_chain(&m, 0, &c);
    if (st == TD_OK) st = ctx ? td_model_write_adapters(&m, of, TD_FORMAT_HDF5, &ma, 1, NULL, &err) : td_model_write(&m, of, TD_FORMAT_HDF5, &rw, 1, &err);
    if (st == TD_OK) st = td_outfile_commit(of, &err);
    else td_outfile_abort(of);
done:
    td_chain_free(&c);
    td_adapter_free(&a);
    td_tensor_free(&k);
    td_tensor_free(&b);
    td_model_free(&m);
    return st;
}

/* Adapter splits (both modes, conv and dense) and their rel_error. */
static td_status s_adapters(void *ctx)
{
    (void)ctx;
    td_layer_desc d = conv(6, 4, 3);
    td_layer_desc dd;
    memset(&dd, 0, sizeof dd);
    dd.kind = TD_LAYER_DENSE; dd.cout = 7; dd.cin = 5; dd.kh = dd.kw = 1; dd.groups = 1;
    dd.stride[0] = dd.stride[1] = dd.dilation[0] = dd.dilation[1] = 1;
    td_status st = TD_OK;
    for (int mode = 0; mode < 2 && st == TD_OK; mode++) {
        td_adapter a;
        st = td_layer_adapter(&d, &W4, 1, (td_adapter_mode)mode, 2.0, &a);
        if (st != TD_OK && (a.a.data || a.frozen.data)) return TD_EINTERNAL; /* zeroed on failure */
        double re;
        if (st == TD_OK) st = td_adapter_rel_error(&a, &W4, &re);
        td_adapter_free(&a);
        if (st == TD_OK) st = td_layer_adapter(&dd, &D2, 2, (td_adapter_mode)mode, 1.0, &a);
        td_adapter_free(&a);
    }
    return st;
}

int main(void)
{
    size_t s3[3] = {6, 5, 4}, s4[4] = {6, 4, 3, 3}, s2[2] = {7, 5};
    if (td_tensor_alloc(&X3, 3, s3) || td_tensor_alloc(&W4, 4, s4) || td_tensor_alloc(&D2, 2, s2)) return 99;
    fill(&X3, 1);
    fill(&W4, 2);
    fill(&D2, 3);
    sweep("cp_als (svd init)", s_cp, NULL);
    td_tucker_method m = TD_TUCKER_HOOI;
    sweep("tucker hooi", s_tucker, &m);
    m = TD_TUCKER_STHOSVD;
    sweep("tucker st-hosvd", s_tucker, &m);
    sweep("tucker-2 float sweeps", s_tucker2_float, NULL);
    sweep("conv rewrites + executor", s_rewrites, NULL);
    sweep("planner", s_plan, NULL);
    sweep("adapter splits", s_adapters, NULL);
    /* a small torch-style weight file, then a whole rewrite of it */
    snprintf(in_path, sizeof in_path, "/tmp/tdalloc-%ld-in.h5", (long)getpid());
    snprintf(out_path, sizeof out_path, "/tmp/tdalloc-%ld-out.h5", (long)getpid());
    td_outfile *of;
    td_error err;
    td_tensor bias;
    size_t bs[1] = {6};
    if (td_outfile_create(&of, in_path, TD_OUTPUT_HDF5, NULL, 0, 1, &err) || td_outfile_write(of, "/conv.weight", &W4, TD_DTYPE_F32, &err) ||
        td_tensor_alloc(&bias, 1, bs) || td_outfile_write(of, "/conv.bias", &bias, TD_DTYPE_F32, &err) ||
        td_outfile_write(of, "/bn.running_mean", &bias, TD_DTYPE_F32, &err) || td_outfile_commit(of, &err)) {
        fprintf(stderr, "cannot create the input file: %s\n", err.message);
        return 99;
    }
    td_tensor_free(&bias);
    sweep("whole file rewrite", s_file, NULL);
    int adapters = 1;
    sweep("whole file adapters", s_file, &adapters);
    unlink(in_path);
    unlink(out_path);
    td_tensor_free(&X3);
    td_tensor_free(&W4);
    td_tensor_free(&D2);
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures ? 1 : 0;
}
