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

typedef struct latency_opts {
    tool_plan_args args;
    const char *in;
    size_t h, w;                /* the network's input size */
    long repeat, threads;
    int json;
} latency_opts;

/* What was measured of one layer; the chain itself is dropped once timed. */
typedef struct timing {
    int done;
    const char *why;            /* why not timed */
    size_t h, w;                /* the input size it was timed at */
    double t_before, t_after, out_diff, rel_error;
    td_cost before, after;
    td_method method;
    size_t ranks[2];
    int nranks;
} timing;

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

/* A seeded input image (or vector) at the size t says. */
static td_status random_input(const td_layer_desc *d, const timing *t, uint64_t seed, td_tensor *x)
{
    size_t s[3] = {d->cin, t->h, t->w};
    td_status st = d->kind == TD_LAYER_DENSE ? td_tensor_alloc(x, 1, s) : td_tensor_alloc(x, 3, s);
    td_rng rng;
    td_rng_seed(&rng, seed);
    for (size_t i = 0; st == TD_OK && i < x->size; i++) x->data[i] = td_rng_normal(&rng);
    return st;
}

/* Times the layer against its chain: a warm-up whose outputs are compared, then alternating
 * runs, medians. */
static td_status time_layer(const td_layer_desc *d, const td_tensor *kernel, const td_tensor *bias, const td_chain *c,
                            timing *t, int repeat, uint64_t seed)
{
    td_tensor x = {0}, y0 = {0}, y1 = {0};
    double *tb = malloc((size_t)repeat * sizeof *tb), *ta = malloc((size_t)repeat * sizeof *ta);
    td_status st = tb && ta ? random_input(d, t, seed, &x) : TD_ENOMEM;
    if (st == TD_OK) st = td_layer_apply_gemm(d, kernel, bias, &x, &y0);
    if (st == TD_OK) st = td_chain_apply(c, &x, 1, &y1);
    if (st == TD_OK) st = td_rel_diff(&y1, &y0, &t->out_diff);
    for (int r = 0; r < repeat && st == TD_OK; r++) {
        td_tensor_free(&y0);
        td_tensor_free(&y1);
        const double t0 = now();
        st = td_layer_apply_gemm(d, kernel, bias, &x, &y0);
        const double t1 = now();
        if (st == TD_OK) st = td_chain_apply(c, &x, 1, &y1);
        tb[r] = t1 - t0;
        ta[r] = now() - t1;
    }
    if (st == TD_OK) {
        t->t_before = median(tb, repeat);
        t->t_after = median(ta, repeat);
    }
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

/* 0, -1 (help printed) or the usage error's exit code. */
static int parse(int argc, char **argv, latency_opts *o)
{
    const char *v;
    int r, have_size = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_latency_usage, stdout); return -1; }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if ((r = tool_plan_option(argc, argv, &i, &o->args))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "--input-size", &v))) {
            if (r < 0 || parse_hw(v, &o->h, &o->w)) return tool_usage_error("latency: --input-size needs HxW (e.g. 224x224), got '%s'", r < 0 ? "" : v);
            have_size = 1;
        } else if ((r = tool_opt_value(argc, argv, &i, "--repeat", &v))) {
            if (r < 0 || tool_parse_int(v, 1, 100000, &o->repeat)) return tool_usage_error("latency: --repeat needs a whole number from 1 to 100000");
        } else if ((r = tool_opt_value(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || tool_parse_int(v, 1, 1024, &o->threads)) return tool_usage_error("latency: --threads needs a whole number from 1 to 1024");
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("latency: unknown option '%s' (see 'tdecomp-tool latency --help')", a);
        } else if (!o->in) o->in = a;
        else return tool_usage_error("latency: unexpected argument '%s'", a);
    }
    if (!o->in) return tool_usage_error("latency: missing input file");
    if (!have_size) return tool_usage_error("latency: --input-size HxW is required");
    if (o->args.nrules == 0) { /* the contract's default rule */
        o->args.po.rule = TD_RULE_RATIO;
        o->args.po.value = o->args.rule_value = 0.5;
        o->args.rule_name = "rank-ratio";
        o->args.nrules = 1;
    }
    return tool_plan_args_check(&o->args);
}

/* Each layer's input size at the network's H x W: a stated size scaled by H / (largest stated
 * height), W likewise; HxW itself where none is stated. The descriptions take that size, so FLOPs
 * (and --target-flops) are at the timed size. */
static void timed_sizes(td_model *m, size_t H, size_t W, timing *T)
{
    size_t maxh = 0, maxw = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const td_layer_desc *d = &m->layers[i].desc;
        if (d->kind != TD_LAYER_CONV2D || !d->input_known) continue;
        if (d->in_h > maxh) maxh = d->in_h;
        if (d->in_w > maxw) maxw = d->in_w;
    }
    for (size_t i = 0; i < m->nlayers; i++) {
        td_layer_desc *d = &m->layers[i].desc;
        if (d->kind == TD_LAYER_DENSE) { T[i].h = T[i].w = 1; continue; }
        const int scaled = d->input_known && maxh && maxw;
        T[i].h = scaled ? (size_t)fmax(1.0, floor((double)d->in_h * (double)H / (double)maxh + 0.5)) : H;
        T[i].w = scaled ? (size_t)fmax(1.0, floor((double)d->in_w * (double)W / (double)maxw + 0.5)) : W;
        size_t ho, wo;
        d->input_known = td_layer_output_size(d, T[i].h, T[i].w, &ho, &wo) == TD_OK;
        d->in_h = T[i].h;
        d->in_w = T[i].w;
        if (!d->input_known) T[i].why = "the kernel does not fit the input at this size";
    }
}

/* Layers are timed one at a time: the need is the largest layer's kernel, its rewrite's
 * workspace and chain, and what the executor holds for the layer or its chain (library queries). */
static double memory_need(const td_model *m, const tool_plan *p, const timing *T)
{
    double largest = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const td_plan_decision *d = &p->dec[i];
        if (T[i].why || d->skipped) continue;
        const td_layer_desc *ld = &m->layers[i].desc;
        td_chain lay;
        td_cost c, cc;
        uint64_t ws = UINT64_MAX, run0 = UINT64_MAX, run1 = UINT64_MAX;
        if (td_layer_cost(ld, &c) != TD_OK || td_chain_layout(ld, d->method, d->ranks, &lay) != TD_OK ||
            td_chain_cost(&lay, &cc) != TD_OK || td_rewrite_workspace(ld, d->method, d->ranks, p->layers[i].stats != NULL, &ws) != TD_OK ||
            td_layer_apply_workspace(ld, T[i].h, T[i].w, &run0) != TD_OK || td_chain_apply_workspace(&lay, T[i].h, T[i].w, &run1) != TD_OK)
            return INFINITY;
        const double input = (double)ld->cin * (double)T[i].h * (double)T[i].w;
        const double need = 8.0 * ((double)c.params + (double)cc.params + input) + (double)ws + (double)run0 + (double)run1;
        if (need > largest) largest = need;
    }
    return largest;
}

/* Decomposes and times every planned layer, one at a time. */
static int time_all(const td_model *m, const tool_plan *p, timing *T, long repeat)
{
    for (size_t i = 0; i < m->nlayers; i++) {
        const td_model_layer *ml = &m->layers[i];
        if (T[i].why) continue;
        if (p->dec[i].skipped) { T[i].why = p->dec[i].reason; continue; }
        td_tensor k = {0}, b = {0};
        td_chain c = {0};
        td_error err;
        td_error_clear(&err);
        td_status st = td_layer_cost(&ml->desc, &T[i].before);
        if (st == TD_OK && (st = td_model_read_layer(m, i, &k, &b, &err)) != TD_OK) return tool_fail_status(st, &err, m->file, ml->name);
        if (st == TD_OK) st = td_plan_build(&p->layers[i], &k, &b, &p->dec[i], NULL, &c);
        if (st == TD_OK) st = td_chain_cost(&c, &T[i].after);
        if (st == TD_OK) st = time_layer(&ml->desc, &k, &b, &c, &T[i], (int)repeat, 1000 + i);
        T[i].done = st == TD_OK;
        T[i].rel_error = c.rel_error;
        T[i].method = c.method;
        T[i].nranks = c.nranks;
        memcpy(T[i].ranks, c.ranks, sizeof T[i].ranks);
        td_chain_free(&c);
        td_tensor_free(&k);
        td_tensor_free(&b);
        if (st != TD_OK) return tool_fail(tool_exit_for(st), m->file, ml->name, "timing failed: %s", td_strerror(st));
    }
    return TOOL_OK;
}

static json_t *jnum_or_null(int ok, double v) { return ok ? tool_json_real(v) : json_null(); }

static json_t *layer_json(const td_model_layer *ml, const timing *t)
{
    const int ok = t->done;
    const double ratio = ok && t->after.flops ? (double)t->before.flops / (double)t->after.flops : 0;
    const size_t hw[2] = {t->h, t->w};
    json_t *x = json_object();
    json_object_set_new(x, "name", json_string(ml->name));
    json_object_set_new(x, "kind", json_string(tool_kind_name(ml)));
    json_object_set_new(x, "shape", tool_layer_shape(ml));
    json_object_set_new(x, "method", json_string(ok ? td_method_name(t->method) : "none"));
    json_object_set_new(x, "ranks", ok ? tool_json_sizes(t->ranks, t->nranks) : json_null());
    json_object_set_new(x, "input_hw", ml->desc.kind == TD_LAYER_DENSE ? json_null() : tool_json_sizes(hw, 2));
    json_object_set_new(x, "flops_before", ok ? json_integer((json_int_t)t->before.flops) : json_null());
    json_object_set_new(x, "flops_after", ok ? json_integer((json_int_t)t->after.flops) : json_null());
    json_object_set_new(x, "flop_ratio", jnum_or_null(ok, ratio));
    json_object_set_new(x, "seconds_before", jnum_or_null(ok, t->t_before));
    json_object_set_new(x, "seconds_after", jnum_or_null(ok, t->t_after));
    json_object_set_new(x, "speedup", jnum_or_null(ok && t->t_after > 0, ok && t->t_after > 0 ? t->t_before / t->t_after : 0));
    json_object_set_new(x, "gflops_before", jnum_or_null(ok, ok ? (double)t->before.flops / t->t_before / 1e9 : 0));
    json_object_set_new(x, "gflops_after", jnum_or_null(ok, ok ? (double)t->after.flops / t->t_after / 1e9 : 0));
    json_object_set_new(x, "output_rel_diff", jnum_or_null(ok, t->out_diff));
    json_object_set_new(x, "rel_error", jnum_or_null(ok, t->rel_error));
    json_object_set_new(x, "skipped", json_boolean(!ok));
    json_object_set_new(x, "reason", ok ? json_null() : json_string(t->why ? t->why : ""));
    return x;
}

/* The one report: text is rendered from it (report_text), never computed again. */
static json_t *report_json(const latency_opts *o, const td_model *m, const timing *T)
{
    json_t *layers = json_array(), *tot = json_object(), *rep = json_object();
    double sb = 0, sa = 0, fb = 0, fa = 0;
    size_t nt = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        json_array_append_new(layers, layer_json(&m->layers[i], &T[i]));
        if (!T[i].done) continue;
        nt++;
        sb += T[i].t_before;
        sa += T[i].t_after;
        fb += (double)T[i].before.flops;
        fa += (double)T[i].after.flops;
    }
    json_object_set_new(tot, "layers_timed", json_integer((json_int_t)nt));
    json_object_set_new(tot, "flops_before", json_integer((json_int_t)fb));
    json_object_set_new(tot, "flops_after", json_integer((json_int_t)fa));
    json_object_set_new(tot, "flop_ratio", jnum_or_null(fa > 0, fa > 0 ? fb / fa : 0));
    json_object_set_new(tot, "seconds_before", tool_json_real(sb));
    json_object_set_new(tot, "seconds_after", tool_json_real(sa));
    json_object_set_new(tot, "speedup", jnum_or_null(sa > 0, sa > 0 ? sb / sa : 0));
    const size_t hw[2] = {o->h, o->w};
    json_object_set_new(rep, "tdecomp_latency", json_integer(1));
    json_object_set_new(rep, "version", json_string(td_version()));
    json_object_set_new(rep, "input", json_string(o->in));
    json_object_set_new(rep, "layout", json_string(td_layout_name(m->layout)));
    json_object_set_new(rep, "input_size", tool_json_sizes(hw, 2));
    json_object_set_new(rep, "repeats", json_integer(o->repeat));
    json_object_set_new(rep, "threads", json_integer(td_blas_threads()));
    json_object_set_new(rep, "options", tool_plan_args_json(&o->args));
    json_object_set_new(rep, "layers", layers);
    json_object_set_new(rep, "totals", tot);
    return rep;
}

static double jnum(const json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

static void report_text(const json_t *rep)
{
    printf("%-24s %-8s %-8s %-9s %10s %10s %6s %10s %10s %7s %7s %7s  %s\n", "layer", "method", "ranks", "input", "MFLOPs", "after",
           "ratio", "ms", "after", "speedup", "GF/s", "after", "note");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(rep, "layers"), i, x) {
        char rk[32] = "-", ins[24] = "-";
        const json_t *r = json_object_get(x, "ranks"), *hw = json_object_get(x, "input_hw");
        const int ok = !json_is_true(json_object_get(x, "skipped"));
        if (ok && json_array_size(r) == 2)
            snprintf(rk, sizeof rk, "%lld,%lld", json_integer_value(json_array_get(r, 0)), json_integer_value(json_array_get(r, 1)));
        else if (ok) snprintf(rk, sizeof rk, "%lld", json_integer_value(json_array_get(r, 0)));
        if (json_is_array(hw)) snprintf(ins, sizeof ins, "%lldx%lld", json_integer_value(json_array_get(hw, 0)), json_integer_value(json_array_get(hw, 1)));
        const char *name = json_string_value(json_object_get(x, "name"));
        if (!ok) {
            printf("%-24.24s %-8s %-8s %-9s %10s %10s %6s %10s %10s %7s %7s %7s  %s\n", name, "none", "-", ins, "-", "-", "-", "-", "-",
                   "-", "-", "-", json_string_value(json_object_get(x, "reason")));
            continue;
        }
        const double speed = jnum(x, "speedup"), ratio = jnum(x, "flop_ratio");
        const char *note = speed < 1 ? "slower: FLOPs mislead" : speed < ratio / 1.5 ? "FLOPs overstate the gain" : "";
        printf("%-24.24s %-8s %-8s %-9s %10.3f %10.3f %6.2f %10.4f %10.4f %7.2f %7.2f %7.2f  %s\n", name,
               json_string_value(json_object_get(x, "method")), rk, ins, jnum(x, "flops_before") / 1e6, jnum(x, "flops_after") / 1e6,
               ratio, 1e3 * jnum(x, "seconds_before"), 1e3 * jnum(x, "seconds_after"), speed, jnum(x, "gflops_before"),
               jnum(x, "gflops_after"), note);
    }
    const json_t *t = json_object_get(rep, "totals");
    const double fb = jnum(t, "flops_before"), fa = jnum(t, "flops_after"), sb = jnum(t, "seconds_before"), sa = jnum(t, "seconds_after");
    const long long threads = json_integer_value(json_object_get(rep, "threads"));
    printf("total over %lld timed layers: %.3f -> %.3f MFLOPs (%.2fx fewer), %.4f -> %.4f ms (%.2fx faster); "
           "median of %lld runs, %lld BLAS thread%s, double precision\n",
           json_integer_value(json_object_get(t, "layers_timed")), fb / 1e6, fa / 1e6, fa > 0 ? fb / fa : 0.0, 1e3 * sb, 1e3 * sa,
           sa > 0 ? sb / sa : 0.0, json_integer_value(json_object_get(rep, "repeats")), threads, threads == 1 ? "" : "s");
}

int cmd_latency(int argc, char **argv)
{
    latency_opts o = {.repeat = 9};
    tool_plan_args_init(&o.args, "latency");
    o.args.model.takes_calibration = 1;
    int code = parse(argc, argv, &o);
    if (code) return code < 0 ? TOOL_OK : code;
    if (o.threads > 0 && td_blas_set_threads((int)o.threads) != TD_OK) return tool_usage_error("latency: --threads must be at least 1");
    td_model m;
    if ((code = tool_open_model(&m, o.in, &o.args.model, NULL))) return code;
    if (m.nlayers == 0) tool_warn("%s has no conv or dense layers (cp and tucker take any dataset as a tensor)", o.in);
    timing *T = calloc(m.nlayers ? m.nlayers : 1, sizeof *T);
    tool_plan p;
    memset(&p, 0, sizeof p);
    if (!T) code = tool_fail(TOOL_ERESOURCE, o.in, NULL, "out of memory");
    else timed_sizes(&m, o.h, o.w, T);
    if (!code) code = tool_plan_model(&m, &o.args, &p);
    if (!code && tool_memory_check(memory_need(&m, &p, T), tool_memory_default(), o.in, NULL)) code = TOOL_ERESOURCE;
    if (!code) {
        tool_core_warning();
        code = time_all(&m, &p, T, o.repeat);
    }
    if (!code) {
        json_t *rep = report_json(&o, &m, T);
        if (o.json) tool_print_json(rep);
        else { report_text(rep); json_decref(rep); }
    }
    free(T);
    tool_plan_free(&p);
    td_model_free(&m);
    return code;
}
