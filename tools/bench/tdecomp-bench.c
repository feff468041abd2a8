/* tdecomp-bench: measures the library's kernels and decompositions against this machine's own
 * limits (DGEMM of comparable shapes, read bandwidth), in one run, and writes JSON.
 * Speed is reported as ratios measured in the same process; absolute times are for orientation.
 * Usage: tdecomp-bench [--quick] [--json FILE] [--tool TDECOMP-TOOL] [--peer]
 *        tdecomp-bench --svd-raw FILE M N K [auto|gesdd|gram|randomized] [POWER_TOL] [FLOAT_PASSES]
 *   --svd-raw  times td_svd_trunc of the M x N float64 matrix in FILE (raw C-order bytes) at rank
 *           K and prints one JSON line (seconds, route, power iterations, the error from the
 *           recomposition); POWER_TOL and FLOAT_PASSES (0/1) override the defaults;
 *           tools/bench/svd_bench.py drives it against numpy
 *   --tool  also times a whole-file `decompose` of a model with many 3x3 convs (serial, --jobs 2)
 *   --peer  also runs tools/bench/peer_compare.py (TensorLy, same inputs, fixed sweeps; needs
 *           --tool and a TensorLy checkout, see docs/perf.md); run from the repo root */
#include <cblas.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tdecomp.h"
#include "decomp/decomp_internal.h"


static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak-RSS tracking: writing 5 to clear_refs resets VmHWM (Linux >= 4.0). */
static long vm_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) { v = atol(line + n + 1); break; }
    fclose(f);
    return v;
}
static long mem_mark(void)
{
    /* freed heap pages stay resident and would hide a later case's allocations */
    malloc_trim(0);
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) { fputs("5", f); fclose(f); }
    return vm_kib("VmRSS");
}
/* Peak resident growth since mem_mark (VmHWM - VmRSS at the mark): an upper-bound proxy for the
 * decomposition's extra memory (the library has no workspace query yet). */
static double mem_extra_mib(long mark) { return (double)(vm_kib("VmHWM") - mark) / 1024.0; }

static void fill(td_tensor *t, uint64_t seed)
{
    td_rng r;
    td_rng_seed(&r, seed);
    for (size_t i = 0; i < t->size; i++) t->data[i] = td_rng_normal(&r);
}

#define CHECK(x) do { td_status st_ = (x); if (st_ != TD_OK) { \
    fprintf(stderr, "tdecomp-bench: %s: %s\n", #x, td_strerror(st_)); exit(3); } } while (0)

static FILE *jf;

typedef struct target { char what[96]; double value, goal; int lower_is_better; } target;
static target targets[16];
static int ntargets;
static void add_target(const char *what, double value, double goal, int lower)
{
    if (ntargets >= 16) return;
    target *t = &targets[ntargets++];
    snprintf(t->what, sizeof t->what, "%s", what);
    t->value = value;
    t->goal = goal;
    t->lower_is_better = lower;
}
static int jfirst = 1;
static void jrow(const char *name, double seconds, double gflops, double frac, const char *frac_of,
                 double mem_mib)
{
    printf("%-34s %9.4f s  %7.1f GF/s  %5.2f of %-8s", name, seconds, gflops, frac, frac_of);
    if (mem_mib >= 0) printf("  extra mem %.1f MiB", mem_mib);
    printf("\n");
    if (!jf) return;
    fprintf(jf, "%s\n    {\"case\": \"%s\", \"seconds\": %.6g, \"gflops\": %.6g, \"fraction\": %.4g, "
                "\"fraction_of\": \"%s\", \"extra_mem_mib\": %.4g}",
            jfirst ? "" : ",", name, seconds, gflops, frac, frac_of, mem_mib);
    jfirst = 0;
}

/* Best of `reps` runs of a GEMM C(m x n) = A(m x k) B(k x n). */
static double dgemm_rate(int m, int n, int k, int reps)
{
    double *a = malloc(sizeof(double) * (size_t)m * k), *b = malloc(sizeof(double) * (size_t)k * n),
           *c = malloc(sizeof(double) * (size_t)m * n), best = 1e30;
    if (!a || !b || !c) exit(3);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = 1.0 / (double)(i % 7 + 1);
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = 1.0 / (double)(i % 5 + 1);
    for (int r = 0; r < reps; r++) {
        double t = now();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, k, b, n, 0.0, c, n);
        t = now() - t;
        if (t < best) best = t;
    }
    free(a); free(b); free(c);
    return 2.0 * m * n * k / best / 1e9;
}

static double read_bandwidth(size_t mib)
{
    size_t n = mib * 1024 * 1024 / sizeof(double);
    double *x = malloc(n * sizeof(double)), best = 1e30, sink = 0;
    if (!x) exit(3);
    for (size_t i = 0; i < n; i++) x[i] = (double)(i & 1023);
    for (int r = 0; r < 5; r++) {
        double t = now(), s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 3 < n; i += 4) { s0 += x[i]; s1 += x[i + 1]; s2 += x[i + 2]; s3 += x[i + 3]; }
        t = now() - t;
        sink += s0 + s1 + s2 + s3;
        if (t < best) best = t;
    }
    free(x);
    if (sink == 42.0) fprintf(stderr, " ");
    return (double)n * sizeof(double) / best / 1e9;
}

/* --svd-raw: one truncated SVD of a matrix read from raw float64 bytes, as JSON. */
static int svd_raw(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: tdecomp-bench --svd-raw FILE M N K [auto|gesdd|gram|randomized] [POWER_TOL] [FLOAT_PASSES]\n");
        return 2;
    }
    const size_t m = (size_t)atol(argv[3]), n = (size_t)atol(argv[4]), k = (size_t)atol(argv[5]);
    const char *meth = argc > 6 ? argv[6] : "auto";
    td_svd_options o;
    td_svd_options_init(&o);
    if (!strcmp(meth, "gesdd")) o.method = TD_SVD_GESDD;
    else if (!strcmp(meth, "gram")) o.method = TD_SVD_GRAM;
    else if (!strcmp(meth, "randomized")) o.method = TD_SVD_RANDOMIZED;
    else if (strcmp(meth, "auto")) { fprintf(stderr, "tdecomp-bench: unknown method %s\n", meth); return 2; }
    if (argc > 7) o.power_tol = atof(argv[7]);
    if (argc > 8) o.float_passes = atoi(argv[8]);
    td_tensor a, u, vt;
    CHECK(td_matrix_alloc(&a, m, n));
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(a.data, sizeof(double), a.size, f) != a.size) { fprintf(stderr, "tdecomp-bench: cannot read %s\n", argv[2]); return 3; }
    fclose(f);
    CHECK(td_matrix_alloc(&u, m, k));
    CHECK(td_matrix_alloc(&vt, k, n));
    double *s = malloc(k * sizeof(double));
    if (!s) return 3;
    td__svd_info info;
    long mark = mem_mark();
    double t = now();
    CHECK(td__svd_trunc_ex(&a, k, &o, &u, s, &vt, &info));
    t = now() - t;
    double mem = mem_extra_mib(mark);
    /* the error of what was returned, by recomposition (outside the timing) */
    for (size_t i = 0; i < m; i++)
        for (size_t c = 0; c < k; c++) u.data[i * k + c] *= s[c];
    const double na = td_norm(&a);
    double kept = 0;
    for (size_t c = 0; c < k; c++) kept += s[c] * s[c];
    /* the identity ||A - U S V^T||^2 = ||A||^2 - sum s^2, which the route must make exact */
    const double formula = sqrt(fmax(na * na - kept, 0.0)) / na;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, -1.0, u.data, (int)k, vt.data,
                (int)n, 1.0, a.data, (int)n);
    const double err = td_norm(&a) / na;
    static const char *names[] = {"auto", "gram", "gesdd", "randomized"};
    printf("{\"seconds\": %.6g, \"route\": \"%s\", \"power_iters\": %d, \"fell_back\": %d, \"stalled\": %d, "
           "\"columns\": %zu, \"rel_error\": %.12g, \"formula_rel_error\": %.12g, \"extra_mem_mib\": %.1f, "
           "\"power_tol\": %g, \"float_passes\": %d, \"float_gram\": %d, \"openblas_core\": \"%s\", \"threads\": %d}\n",
           t, names[info.method], info.power_iters, info.fell_back, info.stalled, info.columns, err, formula, mem,
           td__svd_power_tol(&o, m, n), o.float_passes, info.float_gram, openblas_get_corename(), openblas_get_num_threads());
    free(s);
    td_tensor_free(&a); td_tensor_free(&u); td_tensor_free(&vt);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--svd-raw")) return svd_raw(argc, argv);
    int quick = 0, peer = 0;
    const char *json_path = NULL, *tool = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--tool") && i + 1 < argc) tool = argv[++i];
        else if (!strcmp(argv[i], "--peer")) peer = 1;
        else if (!strcmp(argv[i], "--help")) {
            printf("usage: tdecomp-bench [--quick] [--json FILE] [--tool TDECOMP-TOOL] [--peer]\n");
            return 0;
        } else {
            fprintf(stderr, "tdecomp-bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (json_path && !(jf = fopen(json_path, "w"))) {
        fprintf(stderr, "tdecomp-bench: %s: cannot write\n", json_path);
        return 3;
    }
    const char *core = openblas_get_corename();
    int threads = openblas_get_num_threads();
    const char *forced = getenv("OPENBLAS_CORETYPE");
    printf("OpenBLAS core %s, %d threads, OPENBLAS_CORETYPE=%s\n", core, threads, forced ? forced : "(unset)");
    if (jf) fprintf(jf, "{\"tdecomp_bench\": 1, \"version\": \"%s\", \"openblas_core\": \"%s\", "
                        "\"threads\": %d, \"quick\": %s, \"cases\": [",
                    TD_VERSION_STRING, core, threads, quick ? "true" : "false");

    const size_t E = quick ? 128 : 256;
    double p2000 = dgemm_rate(2000, 2000, 2000, 3);
    double pttm = dgemm_rate((int)E, (int)(E * E), (int)E, 3); /* J x E times E x E^2 */
    double bw = read_bandwidth(quick ? 128 : 512);
    jrow("dgemm 2000^3", 2.0 * 8e9 / p2000 / 1e9, p2000, 1.0, "dgemm", -1);
    jrow("dgemm ttm-shape", 0, pttm, pttm / p2000, "dgemm", -1);
    printf("%-34s %9.2f GB/s\n", "read bandwidth", bw);
    if (jf) { fprintf(jf, ",\n    {\"case\": \"read bandwidth\", \"gbytes_per_s\": %.4g}", bw); }

    /* TTM and Gram on every mode of an E^3 tensor. */
    {
        size_t shape[3] = {E, E, E};
        td_tensor x, m, y, g;
        CHECK(td_tensor_alloc(&x, 3, shape));
        fill(&x, 1);
        CHECK(td_matrix_alloc(&m, E, E));
        fill(&m, 2);
        CHECK(td_tensor_alloc(&y, 3, shape));
        CHECK(td_matrix_alloc(&g, E, E));
        double ttm_min = 1e30, gram_min = 1e30;
        for (int mode = 0; mode < 3; mode++) {
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t = now();
                CHECK(td_ttm(&x, mode, &m, 0, &y));
                t = now() - t;
                if (t < best) best = t;
            }
            double gf = 2.0 * (double)E * (double)x.size / best / 1e9;
            char name[64];
            snprintf(name, sizeof name, "ttm %zu^3 J=%zu mode %d", E, E, mode);
            jrow(name, best, gf, gf / p2000, "dgemm", -1);
            if (gf / p2000 < ttm_min) ttm_min = gf / p2000;
        }
        for (int mode = 0; mode < 3; mode++) {
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t = now();
                CHECK(td_gram(&x, mode, &g));
                t = now() - t;
                if (t < best) best = t;
            }
            double gf = (double)E * (double)x.size / best / 1e9; /* SYRK: one triangle */
            char name[64];
            snprintf(name, sizeof name, "gram %zu^3 mode %d", E, mode);
            jrow(name, best, gf, gf / p2000, "dgemm", -1);
            if (gf / p2000 < gram_min) gram_min = gf / p2000;
        }
        add_target("TTM on every mode, fraction of DGEMM (worst mode)", ttm_min, 0.8, 0);
        add_target("Gram of an unfolding, fraction of DGEMM (worst mode)", gram_min, 0.6, 0);
        td_tensor_free(&x); td_tensor_free(&m); td_tensor_free(&y); td_tensor_free(&g);
    }

    /* MTTKRP and CP-ALS, 200^3 rank 16. */
    const size_t C = quick ? 100 : 200, R = 16;
    {
        size_t shape[3] = {C, C, C};
        td_tensor x, f[3], out;
        CHECK(td_tensor_alloc(&x, 3, shape));
        fill(&x, 3);
        for (int k = 0; k < 3; k++) { CHECK(td_matrix_alloc(&f[k], C, R)); fill(&f[k], 10 + (uint64_t)k); }
        CHECK(td_matrix_alloc(&out, C, R));
        const td_tensor *fp[3] = {&f[0], &f[1], &f[2]};
        double roof = fmin(p2000, (double)R / 4.0 * bw);
        double sum_mttkrp = 0;
        for (int mode = 0; mode < 3; mode++) {
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t = now();
                CHECK(td_mttkrp(&x, fp, mode, &out));
                t = now() - t;
                if (t < best) best = t;
            }
            sum_mttkrp += best;
            double gf = 2.0 * (double)x.size * R / best / 1e9;
            char name[64];
            snprintf(name, sizeof name, "mttkrp %zu^3 R=%zu mode %d", C, R, mode);
            jrow(name, best, gf, gf / roof, "roofline", -1);
        }
        td_cp_options o;
        td_cp_options_init(&o);
        o.tol = 0;
        td_cp_result res;
        double t1, t11;
        o.max_iter = 1;
        long mark = mem_mark();
        CHECK(td_cp_als(&x, R, &o, &res));
        double mem = mem_extra_mib(mark);
        t1 = res.seconds;
        td_cp_free(&res);
        o.max_iter = 11;
        CHECK(td_cp_als(&x, R, &o, &res));
        t11 = res.seconds;
        td_cp_free(&res);
        double sweep = (t11 - t1) / 10.0, init = t1 - sweep;
        char name[64];
        snprintf(name, sizeof name, "cp %zu^3 R=%zu svd init", C, R);
        jrow(name, init, 0, 0, "-", mem);
        snprintf(name, sizeof name, "cp %zu^3 R=%zu sweep", C, R);
        jrow(name, sweep, 6.0 * (double)x.size * R / sweep / 1e9, sweep / sum_mttkrp, "mttkrps", -1);
        const double in_mib = (double)x.size * 8 / 1048576.0;
        add_target("CP-ALS sweep time / its MTTKRPs", sweep / sum_mttkrp, 1.3, 1);
        add_target("CP peak extra memory / input size", mem / in_mib, 1.5, 1);
        for (int k = 0; k < 3; k++) td_tensor_free(&f[k]);
        td_tensor_free(&out);

        /* Tucker 200^3 ranks 20: HOSVD and HOOI sweeps. */
        size_t ranks[3] = {20, 20, 20};
        int modes[3] = {0, 1, 2};
        td_tucker_options to;
        td_tucker_options_init(&to);
        td_tucker_result tr;
        to.method = TD_TUCKER_HOSVD;
        mark = mem_mark();
        CHECK(td_tucker(&x, 3, modes, ranks, &to, &tr));
        mem = mem_extra_mib(mark);
        double th = tr.seconds;
        td_tucker_free(&tr);
        snprintf(name, sizeof name, "hosvd %zu^3 r=20", C);
        jrow(name, th, 0, 0, "-", mem);
        add_target("Tucker (HOSVD) peak extra memory / input size", mem / in_mib, 1.5, 1);
        to.method = TD_TUCKER_HOOI;
        to.tol = 0;
        to.max_iter = 10;
        CHECK(td_tucker(&x, 3, modes, ranks, &to, &tr));
        snprintf(name, sizeof name, "hooi %zu^3 r=20 10 sweeps", C);
        jrow(name, tr.seconds, 0, 0, "-", -1);
        td_tucker_free(&tr);
        td_tensor_free(&x);
    }

    /* Tucker-2 of a (512, 512, 3, 3) kernel at ranks (128, 128). */
    {
        size_t co = quick ? 256 : 512;
        size_t shape[4] = {co, co, 3, 3};
        size_t ranks[2] = {co / 4, co / 4};
        int modes[2] = {0, 1};
        td_tensor w;
        CHECK(td_tensor_alloc(&w, 4, shape));
        fill(&w, 5);
        td_tucker_options to;
        td_tucker_options_init(&to);
        td_tucker_result tr;
        to.method = TD_TUCKER_HOSVD;
        CHECK(td_tucker(&w, 2, modes, ranks, &to, &tr));
        double th = tr.seconds;
        td_tucker_free(&tr);
        to.method = TD_TUCKER_HOOI;
        to.tol = 0;
        to.max_iter = 10;
        long mark = mem_mark();
        CHECK(td_tucker(&w, 2, modes, ranks, &to, &tr));
        double mem = mem_extra_mib(mark);
        char name[64];
        snprintf(name, sizeof name, "tucker2 (%zu,%zu,3,3) hosvd", co, co);
        jrow(name, th, 0, 0, "-", -1);
        snprintf(name, sizeof name, "tucker2 (%zu,%zu,3,3) hooi x10", co, co);
        jrow(name, tr.seconds, 0, 0, "-", mem);
        td_tucker_free(&tr);
        td_tensor_free(&w);
    }
    /* Whole-file decompose of a model with many 3x3 convs, through the tool. */
    if (tool) {
        char dir[] = "/tmp/tdbenchXXXXXX";
        if (!mkdtemp(dir)) { fprintf(stderr, "tdecomp-bench: cannot create a temporary folder\n"); return 3; }
        char in[256], out[256], cmd[1024];
        snprintf(in, sizeof in, "%s/model.h5", dir);
        td_outfile *of;
        td_error err;
        CHECK(td_outfile_create(&of, in, TD_OUTPUT_HDF5, NULL, 0, 0, &err));
        const int nconv = quick ? 4 : 8;
        const size_t ch = quick ? 128 : 256;
        for (int l = 0; l < nconv; l++) {
            size_t shape[4] = {ch, ch, 3, 3};
            td_tensor w;
            CHECK(td_tensor_alloc(&w, 4, shape));
            fill(&w, 100 + (uint64_t)l);
            char path[64];
            snprintf(path, sizeof path, "/features.%d.weight", 2 * l);
            CHECK(td_outfile_write(of, path, &w, TD_DTYPE_F32, &err));
            td_tensor_free(&w);
        }
        CHECK(td_outfile_commit(of, &err));
        double t_serial = 0, t_jobs = 0;
        for (int j = 1; j <= 2; j++) {
            snprintf(out, sizeof out, "%s/out%d.h5", dir, j);
            snprintf(cmd, sizeof cmd, "'%s' decompose '%s' -o '%s' --rank-ratio 0.25 --jobs %d > /dev/null", tool, in, out, j);
            double t = now();
            if (system(cmd) != 0) { fprintf(stderr, "tdecomp-bench: %s failed\n", cmd); return 3; }
            t = now() - t;
            if (j == 1) t_serial = t; else t_jobs = t;
        }
        char name[96];
        snprintf(name, sizeof name, "decompose %d x (%zu,%zu,3,3) file", nconv, ch, ch);
        jrow(name, t_serial, 0, 0, "-", -1);
        snprintf(name, sizeof name, "decompose %d x (%zu,%zu,3,3) --jobs 2", nconv, ch, ch);
        jrow(name, t_jobs, 0, t_serial / t_jobs, "serial", -1);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "tdecomp-bench: could not remove %s\n", dir);
    }
    printf("\ntargets (measured in this run):\n");
    if (jf) fprintf(jf, "\n], \"targets\": [");
    for (int i = 0; i < ntargets; i++) {
        const target *t = &targets[i];
        int met = t->lower_is_better ? t->value <= t->goal : t->value >= t->goal;
        printf("  %-56s %7.2f  (%s %.2f)  %s\n", t->what, t->value, t->lower_is_better ? "<=" : ">=", t->goal, met ? "met" : "NOT met");
        if (jf) fprintf(jf, "%s\n    {\"target\": \"%s\", \"value\": %.4g, \"goal\": %.4g, \"op\": \"%s\", \"met\": %s}",
                        i ? "," : "", t->what, t->value, t->goal, t->lower_is_better ? "<=" : ">=", met ? "true" : "false");
    }
    if (jf) { fprintf(jf, "\n]}\n"); fclose(jf); }
    if (peer) {
        if (!tool) { fprintf(stderr, "tdecomp-bench: --peer needs --tool\n"); return 2; }
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/bench/peer_compare.py --tool '%s'%s", tool, quick ? " --quick" : "");
        printf("\nTensorLy side by side (%s):\n", cmd);
        fflush(stdout);
        if (system(cmd) != 0) { fprintf(stderr, "tdecomp-bench: the peer comparison failed\n"); return 3; }
    }
    return 0;
}
