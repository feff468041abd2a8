/* tdecomp-tool latency: times each layer and its rewritten chain on the CPU (the library's
 * im2col + GEMM executor, one image) and sets the measured speedup beside the FLOP ratio. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "plan_args.h"

const char cmd_latency_usage[] =
    "usage: tdecomp-tool latency IN --input-size HxW [--layer-spec SPEC.json] [--layout L]\n"
    "         [--method auto|tucker2|cp|svd|svd-grouped] [rank rule as decompose; default --rank-ratio 0.5]\n"
    "         [--layers GLOB]... [--exclude GLOB]... [--repeat N] [--threads N] [--calibration STATS.h5] [--json]\n"
    "Decomposes each layer as decompose would, then times the original layer and its chain on one\n"
    "image with the im2col + GEMM executor (double precision; median of N runs, default 9, after a\n"
    "warm-up; original and chain alternate) and reports the measured speedup beside the FLOP ratio.\n"
    "HxW is the network's input: a layer whose input size the file or the spec states is timed at\n"
    "that size scaled by H / (the largest stated height) and W / (the largest stated width), i.e.\n"
    "its size at an HxW input; other convs are timed at HxW. Dense layers run as one vector.\n"
    "--threads N sets OpenBLAS's thread count (default: OpenBLAS's own). FLOPs follow the report's\n"
    "convention (2 x MACs); GFLOP/s = FLOPs / median time.\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct timing {
    int done;
    size_t h, w;
    double t_before, t_after, out_diff, rel_error;
    td_cost before, after;
    td_chain chain;
} timing;

/* Times layer (d, kernel, bias) against its chain: alternating runs, medians. */
static td_status time_layer(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, timing *t, int repeat,
                            uint64_t seed)
{
    td_tensor x = {0}, y0 = {0}, y1 = {0};
    double *tb = malloc((size_t)repeat * sizeof *tb), *ta = malloc((size_t)repeat * sizeof *ta);
    td_status st = TD_OK;
    if (!tb || !ta) { st = TD_ENOMEM; goto done; }
    if (d->kind == TD_LAYER_DENSE) {
        size_t s[1] = {d->cin};
        st = td_tensor_alloc(&x, 1, s);
    } else {
        size_t s[3] = {d->cin, t->h, t->w};
        st = td_tensor_alloc(&x, 3, s);
    }
    if (st != TD_OK) goto done;
    td_rng rng;
    td_rng_seed(&rng, seed);
    for (size_t i = 0; i < x.size; i++) x.data[i] = td_rng_normal(&rng);
    /* warm-up, and the outputs compared */
    if ((st = td_layer_apply_gemm(d, kernel, bias, &x, &y0)) != TD_OK) goto done;
    if ((st = td_chain_apply(&t->chain, &x, 1, &y1)) != TD_OK) goto done;
    if (y0.size != y1.size) { st = TD_ESHAPE; goto done; }
    {
        double num = 0, den = 0;
        for (size_t i = 0; i < y0.size; i++) {
            const double e = y1.data[i] - y0.data[i];
            num += e * e;
            den += y0.data[i] * y0.data[i];
        }
        t->out_diff = den > 0 ? sqrt(num / den) : sqrt(num);
    }
    for (int r = 0; r < repeat && st == TD_OK; r++) {
        td_tensor_free(&y0);
        td_tensor_free(&y1);
        double t0 = now();
        st = td_layer_apply_gemm(d, kernel, bias, &x, &y0);
        double t1 = now();
        if (st == TD_OK) st = td_chain_apply(&t->chain, &x, 1, &y1);
        double t2 = now();
        tb[r] = t1 - t0;
        ta[r] = t2 - t1;
    }
    if (st == TD_OK) {
        t->t_before = median(tb, repeat);
        t->t_after = median(ta, repeat);
    }
done:
    free(tb);
    free(ta);
    td_tensor_free(&x);
    td_tensor_free(&y0);
    td_tensor_free(&y1);
    return st;
}

static int parse_hw(const char *s, size_t *h, size_t *w)
{
    const char *x = strchr(s, 'x');
    if (!x) return -1;
    char a[32];
    if ((size_t)(x - s) >= sizeof a) return -1;
    memcpy(a, s, (size_t)(x - s));
    a[x - s] = '\0';
    return tool_parse_size(a, 1, 65536, h) || tool_parse_size(x + 1, 1, 65536, w) ? -1 : 0;
}

static json_t *jnum_or_null(int ok, double v) { return ok ? tool_json_real(v) : json_null(); }

int cmd_latency(int argc, char **argv)
{
    const char *in = NULL, *v;
    int json = 0, r, have_size = 0;
    long repeat = 9, threads = 0;
    size_t H = 0, Wd = 0;
    tool_plan_args args;
    tool_plan_args_init(&args, "latency");
    args.model.takes_calibration = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_latency_usage, stdout); return TOOL_OK; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((r = tool_plan_option(argc, argv, &i, &args))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "--input-size", &v))) {
            if (r < 0 || parse_hw(v, &H, &Wd)) return tool_usage_error("latency: --input-size needs HxW (e.g. 224x224), got '%s'", r < 0 ? "" : v);
            have_size = 1;
        } else if ((r = tool_opt_value(argc, argv, &i, "--repeat", &v))) {
            if (r < 0 || tool_parse_int(v, 1, 100000, &repeat)) return tool_usage_error("latency: --repeat needs a whole number from 1 to 100000");
        } else if ((r = tool_opt_value(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || tool_parse_int(v, 1, 1024, &threads)) return tool_usage_error("latency: --threads needs a whole number from 1 to 1024");
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("latency: unknown option '%s' (see 'tdecomp-tool latency --help')", a);
        } else if (!in) in = a;
        else return tool_usage_error("latency: unexpected argument '%s'", a);
    }
    if (!in) return tool_usage_error("latency: missing input file");
    if (!have_size) return tool_usage_error("latency: --input-size HxW is required");
    if (args.nrules == 0) { /* the contract's default rule */
        args.po.rule = TD_RULE_RATIO;
        args.po.value = args.rule_value = 0.5;
        args.rule_name = "rank-ratio";
        args.nrules = 1;
    }
    if ((r = tool_plan_args_check(&args)) != TOOL_OK) return r;
    if (threads > 0 && td_blas_set_threads((int)threads) != TD_OK) return tool_usage_error("latency: --threads must be at least 1");

    td_model m;
    int rc = tool_open_model(&m, in, &args.model, NULL);
    if (rc) return rc;
    const size_t n = m.nlayers;
    if (n == 0) tool_warn("%s has no conv or dense layers (cp and tucker take any dataset as a tensor)", in);
    /* each layer's input size at an HxW network input */
    size_t maxh = 0, maxw = 0;
    for (size_t i = 0; i < n; i++) {
        const td_layer_desc *d = &m.layers[i].desc;
        if (d->kind != TD_LAYER_CONV2D || !d->input_known) continue;
        if (d->in_h > maxh) maxh = d->in_h;
        if (d->in_w > maxw) maxw = d->in_w;
    }
    timing *T = calloc(n ? n : 1, sizeof *T);
    tool_plan P;
    memset(&P, 0, sizeof P);
    const char **why = calloc(n ? n : 1, sizeof *why);
    json_t *rep = NULL;
    int code = TOOL_OK;
    if (!T || !why) { code = tool_fail(TOOL_ERESOURCE, in, NULL, "out of memory"); goto done; }
    for (size_t i = 0; i < n; i++) {
        td_layer_desc *d = &m.layers[i].desc;
        if (d->kind == TD_LAYER_DENSE) { T[i].h = T[i].w = 1; continue; }
        if (d->input_known && maxh && maxw) {
            T[i].h = (size_t)fmax(1.0, floor((double)d->in_h * (double)H / (double)maxh + 0.5));
            T[i].w = (size_t)fmax(1.0, floor((double)d->in_w * (double)Wd / (double)maxw + 0.5));
        } else {
            T[i].h = H;
            T[i].w = Wd;
        }
        size_t ho, wo;
        const int fits = td_layer_output_size(d, T[i].h, T[i].w, &ho, &wo) == TD_OK;
        d->input_known = fits; /* FLOPs (and --target-flops) at the timed size */
        d->in_h = T[i].h;
        d->in_w = T[i].w;
        if (!fits) why[i] = "the kernel does not fit the input at this size";
    }
    {
        double all = 0, largest = 0;
        for (size_t i = 0; i < n; i++) {
            td_cost c;
            if (td_layer_cost(&m.layers[i].desc, &c) != TD_OK) continue;
            all += (double)c.params;
            const double act = (double)m.layers[i].desc.cin * (double)T[i].h * (double)T[i].w *
                               (double)(m.layers[i].desc.kh * m.layers[i].desc.kw + 2);
            if ((double)c.params + act > largest) largest = (double)c.params + act;
        }
        if (tool_memory_check(8.0 * (all + 4.0 * largest), tool_memory_default(), in, NULL)) { code = TOOL_ERESOURCE; goto done; }
    }
    if ((code = tool_plan_model(&m, &args, &P)) != TOOL_OK) goto done;
    const td_plan_decision *dec = P.dec;
    tool_core_warning();
    for (size_t i = 0; i < n; i++) {
        const td_model_layer *ml = &m.layers[i];
        if (why[i]) continue;
        if (dec[i].skipped) { why[i] = dec[i].reason; continue; }
        /* the planner's cost at the timed size */
        td_status st = td_layer_cost(&ml->desc, &T[i].before);
        td_tensor k = {0}, b = {0};
        td_error err;
        td_error_clear(&err);
        if (st == TD_OK && (st = td_model_read_layer(&m, i, &k, &b, &err)) != TD_OK) { code = tool_fail_status(st, &err, in, ml->name); goto done; }
        if (st == TD_OK) st = td_plan_build(&P.layers[i], &k, &b, &dec[i], NULL, &T[i].chain);
        if (st == TD_OK) st = td_chain_cost(&T[i].chain, &T[i].after);
        if (st == TD_OK) st = time_layer(&ml->desc, &k, &b, &T[i], (int)repeat, 1000 + i);
        td_tensor_free(&k);
        td_tensor_free(&b);
        if (st != TD_OK) { code = tool_fail(tool_exit_for(st), in, ml->name, "timing failed: %s", td_strerror(st)); goto done; }
        T[i].rel_error = T[i].chain.rel_error;
        T[i].done = 1;
    }
    /* report */
    json_t *layers = json_array();
    double sb = 0, sa = 0, fb = 0, fa = 0;
    size_t nt = 0;
    if (!json)
        printf("%-24s %-8s %-8s %-9s %10s %10s %6s %10s %10s %7s %7s %7s  %s\n", "layer", "method", "ranks", "input", "MFLOPs", "after",
               "ratio", "ms", "after", "speedup", "GF/s", "after", "note");
    for (size_t i = 0; i < n; i++) {
        const td_model_layer *ml = &m.layers[i];
        const timing *t = &T[i];
        const int ok = t->done;
        const double ratio = ok && t->after.flops ? (double)t->before.flops / (double)t->after.flops : 0;
        const double speed = ok && t->t_after > 0 ? t->t_before / t->t_after : 0;
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(ml->name));
        json_object_set_new(x, "kind", json_string(tool_kind_name(ml)));
        json_object_set_new(x, "shape", tool_layer_shape(ml));
        json_object_set_new(x, "method", json_string(ok ? td_method_name(t->chain.method) : "none"));
        json_object_set_new(x, "ranks", ok ? tool_json_sizes(t->chain.ranks, t->chain.nranks) : json_null());
        size_t hw[2] = {t->h, t->w};
        json_object_set_new(x, "input_hw", ml->desc.kind == TD_LAYER_DENSE ? json_null() : tool_json_sizes(hw, 2));
        json_object_set_new(x, "flops_before", ok ? json_integer((json_int_t)t->before.flops) : json_null());
        json_object_set_new(x, "flops_after", ok ? json_integer((json_int_t)t->after.flops) : json_null());
        json_object_set_new(x, "flop_ratio", jnum_or_null(ok, ratio));
        json_object_set_new(x, "seconds_before", jnum_or_null(ok, t->t_before));
        json_object_set_new(x, "seconds_after", jnum_or_null(ok, t->t_after));
        json_object_set_new(x, "speedup", jnum_or_null(ok, speed));
        json_object_set_new(x, "gflops_before", jnum_or_null(ok, ok ? (double)t->before.flops / t->t_before / 1e9 : 0));
        json_object_set_new(x, "gflops_after", jnum_or_null(ok, ok ? (double)t->after.flops / t->t_after / 1e9 : 0));
        json_object_set_new(x, "output_rel_diff", jnum_or_null(ok, t->out_diff));
        json_object_set_new(x, "rel_error", jnum_or_null(ok, t->rel_error));
        json_object_set_new(x, "skipped", json_boolean(!ok));
        json_object_set_new(x, "reason", ok ? json_null() : json_string(why[i] ? why[i] : ""));
        json_array_append_new(layers, x);
        if (ok) {
            nt++;
            sb += t->t_before;
            sa += t->t_after;
            fb += (double)t->before.flops;
            fa += (double)t->after.flops;
        }
        if (json) continue;
        char rk[32] = "-", ins[24] = "-";
        if (ok && t->chain.nranks == 2) snprintf(rk, sizeof rk, "%zu,%zu", t->chain.ranks[0], t->chain.ranks[1]);
        else if (ok) snprintf(rk, sizeof rk, "%zu", t->chain.ranks[0]);
        if (ml->desc.kind != TD_LAYER_DENSE) snprintf(ins, sizeof ins, "%zux%zu", t->h, t->w);
        const char *note = !ok ? (why[i] ? why[i] : "") : speed < 1 ? "slower: FLOPs mislead" : speed < ratio / 1.5 ? "FLOPs overstate the gain" : "";
        if (ok)
            printf("%-24.24s %-8s %-8s %-9s %10.3f %10.3f %6.2f %10.4f %10.4f %7.2f %7.2f %7.2f  %s\n", ml->name,
                   td_method_name(t->chain.method), rk, ins, (double)t->before.flops / 1e6, (double)t->after.flops / 1e6, ratio,
                   1e3 * t->t_before, 1e3 * t->t_after, speed, (double)t->before.flops / t->t_before / 1e9,
                   (double)t->after.flops / t->t_after / 1e9, note);
        else
            printf("%-24.24s %-8s %-8s %-9s %10s %10s %6s %10s %10s %7s %7s %7s  %s\n", ml->name, "none", "-", ins, "-", "-", "-", "-",
                   "-", "-", "-", "-", note);
    }
    if (!json)
        printf("total over %zu timed layers: %.3f -> %.3f MFLOPs (%.2fx fewer), %.4f -> %.4f ms (%.2fx faster); "
               "median of %ld runs, %d BLAS thread%s, double precision\n",
               nt, fb / 1e6, fa / 1e6, fa > 0 ? fb / fa : 0.0, 1e3 * sb, 1e3 * sa, sa > 0 ? sb / sa : 0.0, repeat,
               td_blas_threads(), td_blas_threads() == 1 ? "" : "s");
    rep = json_object();
    json_t *tot = json_object();
    json_object_set_new(tot, "layers_timed", json_integer((json_int_t)nt));
    json_object_set_new(tot, "flops_before", json_integer((json_int_t)fb));
    json_object_set_new(tot, "flops_after", json_integer((json_int_t)fa));
    json_object_set_new(tot, "flop_ratio", jnum_or_null(fa > 0, fa > 0 ? fb / fa : 0));
    json_object_set_new(tot, "seconds_before", tool_json_real(sb));
    json_object_set_new(tot, "seconds_after", tool_json_real(sa));
    json_object_set_new(tot, "speedup", jnum_or_null(sa > 0, sa > 0 ? sb / sa : 0));
    size_t hw[2] = {H, Wd};
    json_object_set_new(rep, "tdecomp_latency", json_integer(1));
    json_object_set_new(rep, "version", json_string(td_version()));
    json_object_set_new(rep, "input", json_string(in));
    json_object_set_new(rep, "layout", json_string(td_layout_name(m.layout)));
    json_object_set_new(rep, "input_size", tool_json_sizes(hw, 2));
    json_object_set_new(rep, "repeats", json_integer(repeat));
    json_object_set_new(rep, "threads", json_integer(td_blas_threads()));
    json_object_set_new(rep, "options", tool_plan_args_json(&args));
    json_object_set_new(rep, "layers", layers);
    json_object_set_new(rep, "totals", tot);
    if (json) { tool_print_json(rep); rep = NULL; }
done:
    json_decref(rep);
    for (size_t i = 0; i < n; i++) {
        if (T) td_chain_free(&T[i].chain);
    }
    free(T);
    tool_plan_free(&P);
    free(why);
    td_model_free(&m);
    return code;
}
