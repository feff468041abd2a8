/* tdecomp-tool decompose: plan, rewrite and write a whole weight file, layer by layer. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "plan_args.h"

const char cmd_decompose_usage[] =
    "usage: tdecomp-tool decompose IN -o OUT [--method auto|tucker2|cp|svd|svd-grouped]\n"
    "         (--rank N | --ranks R_OUT,R_IN | --rank-ratio F | --energy F | --vbmf |\n"
    "          --target-params F | --target-flops F | --max-error E)\n"
    "         [--layers GLOB]... [--exclude GLOB]... [--keep-larger] [--dry-run] [--svd-groups K]\n"
    "         [--objective minmax|sum] [--jobs auto|N] [--max-memory SIZE] [--layout L] [--layer-spec SPEC.json]\n"
    "         [--format h5|safetensors] [--calibration STATS.h5 [--include-head]] [--report REPORT.json]\n"
    "         [--json] [--force]\n"
    "Decomposes every conv and dense layer the method applies to, with exactly one rank rule, and\n"
    "writes a loadable file of the same layout (or --format; by default the output's extension).\n"
    "Rank rules (docs/rank-rules.md):\n"
    "  --rank N           Tucker-2 (N, N), CP rank N, SVD rank N; ranks above a mode are clamped\n"
    "  --ranks R_OUT,R_IN Tucker-2 ranks in OIHW order; SVD min of the two, CP max\n"
    "  --rank-ratio F     per mode max(1, round(F * channels)); SVD F * min(rows, cols)\n"
    "  --energy F         per mode the smallest rank keeping fraction F of the squared singular values\n"
    "  --vbmf             EVBMF's rank per mode (rank 0 skips the layer)\n"
    "  --target-params F  keep at most F of the kernel parameters, smallest largest per-layer error\n"
    "  --target-flops F   the same for FLOPs (needs every conv's input size)\n"
    "  --max-error E      the smallest model whose every decomposed layer has rel_error <= E\n"
    "--keep-larger keeps chains that have more parameters than their layer (otherwise skipped: \"would\n"
    "not shrink\"). --objective sum (global targets) minimises the sum of squared errors instead of the\n"
    "largest. --json prints the report (the --report object) instead of the table. --dry-run plans\n"
    "and reports without writing. --jobs N decomposes N layers at a time with one BLAS thread each,\n"
    "the largest first; the output is byte-identical for every N. The default, --jobs auto, runs one\n"
    "job per BLAS thread (OPENBLAS_NUM_THREADS, else the cores) when every layer's working set is\n"
    "under 512 MiB and they fit --max-memory together, else one job on all threads.\n"
    "--calibration STATS.h5 (statistics of your inputs, from tdecomp.torch.calibrate; docs/formats.md)\n"
    "minimises each layer's output error on that data instead of its weight error: every rule then\n"
    "works on whitened spectra and the report gives output_rel_error per layer. With it, the last\n"
    "dense layer (the classifier head) is left alone unless --include-head.\n";

typedef struct lay {
    td_tensor kernel, bias;
    td_chain chain;
    int done;
    td_cost after;
    double rel_error;
    int has_out;
    double out_error;           /* relative output error of what was written (with statistics) */
} lay;

typedef struct options {
    const char *in, *out, *report, *format;
    int dry, jobs, json;
    tool_plan_args plan;
    tool_outputs g;
} options;

static int parse(int argc, char **argv, options *o)
{
    const char *v;
    int r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force")) { o->g.force = 1; continue; }
        if (!strcmp(a, "--dry-run")) { o->dry = 1; continue; }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if ((r = tool_plan_option(argc, argv, &i, &o->plan))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "-o", &v)) || (r = tool_opt_value(argc, argv, &i, "--output", &v))) {
            if (r < 0) return tool_usage_error("decompose: -o needs a file name");
            o->out = v;
        } else if ((r = tool_opt_value(argc, argv, &i, "--jobs", &v)) || (r = tool_opt_value(argc, argv, &i, "-j", &v))) {
            long j;
            if (r > 0 && !strcmp(v, "auto")) o->jobs = 0;
            else if (r < 0 || tool_parse_int(v, 1, 64, &j)) return tool_usage_error("decompose: --jobs needs auto or a whole number from 1 to 64");
            else o->jobs = (int)j;
        } else if ((r = tool_opt_value(argc, argv, &i, "--max-memory", &v))) {
            if (r < 0 || tool_parse_memsize(v, &o->plan.maxmem)) return tool_usage_error("decompose: --max-memory needs a size such as 512M or 4G");
        } else if ((r = tool_opt_value(argc, argv, &i, "--report", &v))) {
            if (r < 0) return tool_usage_error("decompose: --report needs a file");
            o->report = v;
        } else if ((r = tool_opt_value(argc, argv, &i, "--format", &v))) {
            if (r < 0 || (strcmp(v, "h5") && strcmp(v, "safetensors"))) return tool_usage_error("decompose: --format must be h5 or safetensors");
            o->format = v;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("decompose: unknown option '%s' (see 'tdecomp-tool decompose --help')", a);
        } else if (!o->in) o->in = a;
        else return tool_usage_error("decompose: unexpected argument '%s'", a);
    }
    if (!o->in) return tool_usage_error("decompose: missing input file");
    if ((r = tool_plan_args_check(&o->plan)) != TOOL_OK) return r;
    if (!o->out && !o->dry) return tool_usage_error("decompose: missing -o OUT (or --dry-run)");
    return TOOL_OK;
}

/* --- running the chains: `jobs` workers take the next layer as soon as they are free; each
 * reads its kernel, decomposes, rounds, measures and writes it. Reads and writes (HDF5 is not
 * used from two threads at once) and failure reports hold io_mu; at most `jobs` kernels are in
 * memory. ------------------------------------------------------------------------------------ */

typedef struct pool {
    const td_model *m;
    const tool_plan *p;
    lay *L;
    td_model_writer *w;
    const size_t *idx;
    size_t n, next, finished;
    int code;                   /* the first failure's exit code (printed), 0 while none */
    int tty;
    pthread_mutex_t io_mu;
} pool;

/* Decomposes layer i (kernel in l), rounds the pieces to the file's dtype and measures what will
 * be written: the rounded pieces composed back. */
static td_status decompose_layer(const pool *P, size_t i, lay *l)
{
    td_rewrite_options o;
    td_rewrite_options_init(&o);
    o.defer_measure = 1; /* measured once, after rounding */
    td_status st = td_plan_build(&P->p->layers[i], &l->kernel, &l->bias, &P->p->dec[i], &o, &l->chain);
    if (st == TD_OK) st = td_model_round_chain(P->m, i, &l->chain);
    if (st == TD_OK) st = td_chain_measure(&l->chain, &P->m->layers[i].desc, P->p->layers[i].stats, &l->kernel);
    if (st == TD_OK) st = td_chain_cost(&l->chain, &l->after);
    l->rel_error = l->chain.rel_error;
    l->has_out = st == TD_OK && l->chain.has_output_error;
    l->out_error = l->chain.output_rel_error;
    td_tensor_free(&l->kernel);
    td_tensor_free(&l->bias);
    return st;
}

/* One layer from reading to writing; 0, or -1 after a failure (the first one is printed and its
 * exit code kept in P->code, both under io_mu). */
static int one_layer(pool *P, size_t i)
{
    const td_model_layer *ml = &P->m->layers[i];
    lay *l = &P->L[i];
    td_error err;
    td_error_clear(&err);
    pthread_mutex_lock(&P->io_mu);
    td_status st = P->code ? TD_ECANCELED : td_model_read_layer(P->m, i, &l->kernel, &l->bias, &err);
    if (st != TD_OK && !P->code) P->code = tool_fail_status(st, &err, P->m->file, ml->name);
    pthread_mutex_unlock(&P->io_mu);
    if (st != TD_OK) return -1;
    st = decompose_layer(P, i, l);
    pthread_mutex_lock(&P->io_mu);
    if (P->code) st = TD_ECANCELED;
    else if (st != TD_OK) P->code = tool_fail(tool_exit_for(st), P->m->file, ml->name, "decomposition failed: %s", td_strerror(st));
    else if (P->w) {
        tool_set_phase(TOOL_PHASE_WRITING);
        if ((st = td_model_writer_put(P->w, i, &l->chain, &err)) != TD_OK) P->code = tool_fail_status(st, &err, NULL, NULL);
        tool_set_phase(TOOL_PHASE_READING);
    }
    l->done = st == TD_OK;
    if (l->done && P->tty) fprintf(stderr, "\rtdecomp-tool: [%zu/%zu] %-40.40s", ++P->finished, P->n, ml->name);
    pthread_mutex_unlock(&P->io_mu);
    /* only the metadata stays: the pieces are in the file */
    for (int q = 0; q < l->chain.npieces; q++) { td_tensor_free(&l->chain.pieces[q].kernel); td_tensor_free(&l->chain.pieces[q].bias); }
    return st == TD_OK ? TOOL_OK : -1;
}

static void *worker(void *arg)
{
    pool *P = arg;
    for (;;) {
        pthread_mutex_lock(&P->io_mu);
        const size_t k = P->code ? P->n : P->next++;
        pthread_mutex_unlock(&P->io_mu);
        if (k >= P->n || one_layer(P, P->idx[k]) != TOOL_OK) return NULL;
    }
}

typedef struct by_size {
    double params;
    size_t i;
} by_size;

static int larger_first(const void *a, const void *b)
{
    const by_size *x = a, *y = b;
    if (x->params != y->params) return x->params < y->params ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The layers to decompose, in file order; with several jobs the largest first, so that no large
 * layer starts last while the other workers idle (the output does not depend on the order). */
static size_t work_order(const td_model *m, const tool_plan *p, int jobs, size_t *idx)
{
    size_t n = 0;
    by_size *b = jobs > 1 ? malloc((m->nlayers ? m->nlayers : 1) * sizeof *b) : NULL;
    for (size_t i = 0; i < m->nlayers; i++) {
        if (p->dec[i].skipped) continue;
        td_cost c;
        if (b) b[n] = (by_size){td_layer_cost(&m->layers[i].desc, &c) == TD_OK ? (double)c.params : 0.0, i};
        idx[n++] = i;
    }
    if (b) {
        qsort(b, n, sizeof *b, larger_first);
        for (size_t k = 0; k < n; k++) idx[k] = b[k].i;
    }
    free(b);
    return n;
}

static int run(const td_model *m, const tool_plan *p, lay *L, int jobs, td_model_writer *w)
{
    size_t *idx = malloc((m->nlayers ? m->nlayers : 1) * sizeof *idx);
    if (!idx) return tool_fail(TOOL_ERESOURCE, m->file, NULL, "out of memory");
    const size_t n = work_order(m, p, jobs, idx);
    pool P = {m, p, L, w, idx, n, 0, 0, 0, isatty(2), PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < jobs && (size_t)t < n; t++)
        if (pthread_create(&th[started], NULL, worker, &P) == 0) started++;
    worker(&P);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    if (P.tty) fprintf(stderr, "\r%-70s\r", "");
    free(idx);
    return P.code;
}

/* --- the report: one structure, rendered as text or JSON -------------------------------------- */

typedef struct totals {
    uint64_t params_before, params_after, other, flops_before, flops_after;
    int flops_known;
    size_t decomposed, skipped, with_out;
    double max_rel_error, max_out, sum_out;
} totals;

static totals sum_up(const td_model *m, const tool_plan *p, const lay *L)
{
    totals t = {0, 0, td_model_total_elements(m) - td_model_kernel_params(m), 0, 0, 1, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < m->nlayers; i++) {
        const td_plan_decision *d = &p->dec[i];
        const int ok = L[i].done;
        t.params_before += d->params_before;
        t.params_after += ok ? L[i].after.params : d->params_before;
        t.flops_before += d->flops_before;
        t.flops_after += ok ? L[i].after.flops : d->flops_before;
        td_cost c;
        t.flops_known &= td_layer_cost(&m->layers[i].desc, &c) == TD_OK && c.known;
        if (ok) { t.decomposed++; if (L[i].rel_error > t.max_rel_error) t.max_rel_error = L[i].rel_error; }
        else t.skipped++;
        if (ok && L[i].has_out) { t.with_out++; t.sum_out += L[i].out_error; if (L[i].out_error > t.max_out) t.max_out = L[i].out_error; }
    }
    return t;
}

static void cost_json(json_t *o, const td_cost *c, const char *when)
{
    char k[32];
    snprintf(k, sizeof k, "params_%s", when);
    json_object_set_new(o, k, json_integer((json_int_t)c->params));
    snprintf(k, sizeof k, "macs_%s", when);
    json_object_set_new(o, k, c->known ? json_integer((json_int_t)c->macs) : json_null());
    snprintf(k, sizeof k, "flops_%s", when);
    json_object_set_new(o, k, c->known ? json_integer((json_int_t)c->flops) : json_null());
    snprintf(k, sizeof k, "flops_per_pixel_%s", when);
    if (!c->known) json_object_set_new(o, k, json_real(c->flops_per_pixel));
}

static json_t *layer_json(const td_model *m, size_t i, const tool_plan *p, const lay *l)
{
    const td_model_layer *ml = &m->layers[i];
    const td_plan_decision *d = &p->dec[i];
    const int ok = l->done;
    td_cost before;
    if (td_layer_cost(&ml->desc, &before) != TD_OK) memset(&before, 0, sizeof before);
    json_t *x = json_object();
    json_object_set_new(x, "name", json_string(ml->name));
    json_object_set_new(x, "kind", json_string(tool_kind_name(ml)));
    json_object_set_new(x, "shape", tool_layer_shape(ml));
    json_object_set_new(x, "dtype", json_string(m->tensors[ml->kernel].dtype_name));
    json_object_set_new(x, "method", json_string(ok ? td_method_name(l->chain.method) : "none"));
    json_object_set_new(x, "ranks", ok ? tool_json_sizes(l->chain.ranks, l->chain.nranks) : json_null());
    json_object_set_new(x, "clamped", json_boolean(ok && (l->chain.clamped || d->clamped)));
    cost_json(x, &before, "before");
    cost_json(x, ok ? &l->after : &before, "after");
    json_object_set_new(x, "rel_error", json_real(ok ? l->rel_error : 0.0));
    if (ok && l->has_out) json_object_set_new(x, "output_rel_error", json_real(l->out_error));
    json_object_set_new(x, "has_calibration", json_boolean(p->has_cal && p->has_cal[i]));
    json_object_set_new(x, "est_error", ok && d->est_known ? json_real(d->est_error) : json_null());
    json_object_set_new(x, "seconds", json_real(ok ? l->chain.seconds : 0.0));
    json_object_set_new(x, "skipped", json_boolean(!ok));
    json_object_set_new(x, "reason", ok ? json_null() : json_string(d->reason));
    json_object_set_new(x, "geometry", json_string(td_geometry_source_name(ml->geometry)));
    return x;
}

static json_t *report_json(const options *o, const td_model *m, const tool_plan *p, const lay *L, const totals *t)
{
    json_t *rep = json_object(), *layers = json_array(), *opts = tool_plan_args_json(&o->plan), *tot = json_object();
    for (size_t i = 0; i < m->nlayers; i++) json_array_append_new(layers, layer_json(m, i, p, &L[i]));
    json_object_set_new(opts, "dry_run", json_boolean(o->dry));
    json_object_set_new(opts, "jobs", json_integer(o->jobs));
    json_object_set_new(tot, "params_before", json_integer((json_int_t)t->params_before));
    json_object_set_new(tot, "params_after", json_integer((json_int_t)t->params_after));
    json_object_set_new(tot, "other_elements", json_integer((json_int_t)t->other));
    json_object_set_new(tot, "flops_before", t->flops_known ? json_integer((json_int_t)t->flops_before) : json_null());
    json_object_set_new(tot, "flops_after", t->flops_known ? json_integer((json_int_t)t->flops_after) : json_null());
    json_object_set_new(tot, "layers_decomposed", json_integer((json_int_t)t->decomposed));
    json_object_set_new(tot, "layers_skipped", json_integer((json_int_t)t->skipped));
    json_object_set_new(tot, "max_rel_error", json_real(t->max_rel_error));
    /* over the decomposed layers that had statistics; null when none had */
    json_object_set_new(tot, "max_output_rel_error", t->with_out ? json_real(t->max_out) : json_null());
    json_object_set_new(tot, "mean_output_rel_error", t->with_out ? json_real(t->sum_out / (double)t->with_out) : json_null());
    json_object_set_new(tot, "layers_with_calibration", json_integer((json_int_t)p->ncal));
    json_object_set_new(rep, "tdecomp_report", json_integer(1));
    json_object_set_new(rep, "version", json_string(td_version()));
    json_object_set_new(rep, "input", json_string(o->in));
    json_object_set_new(rep, "output", o->out && !o->dry ? json_string(o->out) : json_null());
    json_object_set_new(rep, "layout", json_string(td_layout_name(m->layout)));
    json_object_set_new(rep, "options", opts);
    json_object_set_new(rep, "layers", layers);
    json_object_set_new(rep, "totals", tot);
    return rep;
}

/* The text table renders the JSON report, so no figure is computed twice. */
static void report_text(const json_t *rep, int only_selected)
{
    printf("%-28s %-11s %-12s %10s %10s %12s %12s %9s  %s\n", "layer", "method", "ranks", "params", "after", "MFLOPs", "after",
           "rel_err", "note");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(rep, "layers"), i, x) {
        const char *reason = json_string_value(json_object_get(x, "reason"));
        if (only_selected && reason && !strcmp(reason, "excluded")) continue;
        json_t *rk = json_object_get(x, "ranks"), *fb = json_object_get(x, "flops_before"), *fa = json_object_get(x, "flops_after");
        char rs[32] = "-", fbs[24] = "?", fas[24] = "?";
        if (json_array_size(rk) == 2) snprintf(rs, sizeof rs, "%lld,%lld", (long long)json_integer_value(json_array_get(rk, 0)), (long long)json_integer_value(json_array_get(rk, 1)));
        else if (json_array_size(rk) == 1) snprintf(rs, sizeof rs, "%lld", (long long)json_integer_value(json_array_get(rk, 0)));
        if (json_is_integer(fb)) snprintf(fbs, sizeof fbs, "%.3f", (double)json_integer_value(fb) / 1e6);
        if (json_is_integer(fa)) snprintf(fas, sizeof fas, "%.3f", (double)json_integer_value(fa) / 1e6);
        char note[128];
        json_t *oe = json_object_get(x, "output_rel_error");
        snprintf(note, sizeof note, "%s%s%s", reason ? reason : json_is_true(json_object_get(x, "clamped")) ? "clamped" : "",
                 oe ? (reason || json_is_true(json_object_get(x, "clamped")) ? "; " : "") : "", "");
        if (oe) snprintf(note + strlen(note), sizeof note - strlen(note), "output error %.4g", json_real_value(oe));
        printf("%-28.28s %-11s %-12s %10lld %10lld %12s %12s %9.4g  %s\n", json_string_value(json_object_get(x, "name")),
               json_string_value(json_object_get(x, "method")), rs, (long long)json_integer_value(json_object_get(x, "params_before")),
               (long long)json_integer_value(json_object_get(x, "params_after")), fbs, fas,
               json_real_value(json_object_get(x, "rel_error")), note);
    }
    json_t *t = json_object_get(rep, "totals");
    const double pb = (double)json_integer_value(json_object_get(t, "params_before")), pa = (double)json_integer_value(json_object_get(t, "params_after"));
    printf("total: %.0f -> %.0f kernel parameters (%.1f%%)", pb, pa, 100.0 * pa / (pb > 0 ? pb : 1));
    if (json_is_integer(json_object_get(t, "flops_before"))) {
        const double fb = (double)json_integer_value(json_object_get(t, "flops_before")), fa = (double)json_integer_value(json_object_get(t, "flops_after"));
        printf(", %.3f -> %.3f MFLOPs (%.1f%%)", fb / 1e6, fa / 1e6, 100.0 * fa / (fb > 0 ? fb : 1));
    }
    printf("; %lld layers decomposed, %lld skipped, max rel_error %.4g", (long long)json_integer_value(json_object_get(t, "layers_decomposed")),
           (long long)json_integer_value(json_object_get(t, "layers_skipped")), json_real_value(json_object_get(t, "max_rel_error")));
    json_t *mo = json_object_get(t, "max_output_rel_error");
    if (json_is_number(mo))
        printf(", output error max %.4g mean %.4g", json_number_value(mo), json_number_value(json_object_get(t, "mean_output_rel_error")));
    printf("%s\n", json_is_true(json_object_get(json_object_get(rep, "options"), "dry_run")) ? " (dry run: nothing written)" : "");
}

/* --- the command ------------------------------------------------------------------------------ */

/* Every kernel is read, decomposed and dropped a batch at a time: the need is the largest
 * layer's kernel and the library's workspace for its rewrite, times the jobs running at once. */
static double memory_need(const td_model *m, const tool_plan *p, int jobs)
{
    double largest = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const td_plan_decision *d = &p->dec[i];
        td_cost c;
        uint64_t ws = 0;
        if (d->skipped || td_layer_cost(&m->layers[i].desc, &c) != TD_OK) continue;
        if (td_rewrite_workspace(&m->layers[i].desc, d->method, d->ranks, p->layers[i].stats != NULL, &ws) != TD_OK) ws = UINT64_MAX;
        const double need = 8.0 * (double)c.params + (double)ws;
        if (need > largest) largest = need;
    }
    return largest * jobs;
}

/* --jobs auto: layers whose working set is at most this run one per core with one BLAS thread
 * each. Their time goes to eigensolvers (dsyevd, dsytrd) and thin GEMMs that two BLAS threads
 * barely speed up (ResNet-50 at --rank-ratio 0.5: 8.4 s serial on 2 threads, 5.0 s as 2 jobs);
 * larger layers are GEMM-bound and use every core serially, at one working set of memory. */
#define AUTO_JOBS_MAX_NEED (512.0 * 1024 * 1024)

/* The jobs auto takes: one per BLAS thread the process may use (OPENBLAS_NUM_THREADS or the
 * cores), at most one per layer, while the largest layer's need stays under AUTO_JOBS_MAX_NEED
 * and the need of all of them under the memory limit. */
static int auto_jobs(const td_model *m, const tool_plan *p, double limit)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nlayers; i++) n += !p->dec[i].skipped;
    const double one = memory_need(m, p, 1);
    int jobs = td_blas_threads();
    if (jobs < 1 || one > AUTO_JOBS_MAX_NEED) jobs = 1;
    if ((size_t)jobs > n) jobs = n > 0 ? (int)n : 1;
    while (jobs > 1 && memory_need(m, p, jobs) > limit) jobs--;
    return jobs;
}

static int open_writer(const options *o, const td_model *m, const tool_plan *p, tool_outputs *g, td_chain *layouts,
                       td_model_writer **w)
{
    td_model_rewrite *rw = calloc(m->nlayers ? m->nlayers : 1, sizeof *rw);
    size_t nrw = 0;
    td_error err;
    td_error_clear(&err);
    td_status st = rw ? TD_OK : TD_ENOMEM;
    for (size_t i = 0; i < m->nlayers && st == TD_OK; i++) {
        if (p->dec[i].skipped) continue;
        st = td_chain_layout(&p->layers[i].desc, p->dec[i].method, p->dec[i].ranks, &layouts[i]);
        rw[nrw].layer = i;
        rw[nrw++].layout = &layouts[i];
    }
    const td_format fmt = td_format_choose(o->format && !strcmp(o->format, "safetensors") ? TD_FORMAT_SAFETENSORS
                                           : o->format ? TD_FORMAT_HDF5 : TD_FORMAT_AUTO, o->out, m);
    td_outfile *of = NULL;
    int code = st == TD_OK ? tool_output_open(g, o->out, td_format_output_kind(fmt), &of) : tool_fail_status(st, &err, m->file, NULL);
    if (!code) {
        tool_set_phase(TOOL_PHASE_WRITING);
        st = td_model_writer_open(w, m, of, fmt, rw, nrw, &err);
        if (st == TD_OK) st = td_model_writer_attr(*w, "tdecomp_version", td_version(), &err);
        if (st == TD_OK) st = td_model_writer_attr(*w, "tdecomp_command", tool_command_line, &err);
        tool_set_phase(TOOL_PHASE_READING);
        if (st != TD_OK) code = tool_fail_status(st, &err, o->out, NULL);
    }
    free(rw);
    return code;
}

static int finish_writer(const td_model *m, const tool_plan *p, const lay *L, td_model_writer *w)
{
    td_layer_record *rec = calloc(m->nlayers ? m->nlayers : 1, sizeof *rec);
    if (!rec) return tool_fail(TOOL_ERESOURCE, m->file, NULL, "out of memory");
    for (size_t i = 0; i < m->nlayers; i++)
        rec[i] = (td_layer_record){i, L[i].done ? NULL : p->dec[i].reason, L[i].rel_error, L[i].done && L[i].has_out, L[i].out_error};
    td_error err;
    td_error_clear(&err);
    tool_set_phase(TOOL_PHASE_WRITING);
    td_status st = td_model_writer_finish(w, rec, m->nlayers, &err);
    free(rec);
    return st == TD_OK ? TOOL_OK : tool_fail_status(st, &err, NULL, NULL);
}

int cmd_decompose(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(cmd_decompose_usage, stdout); return TOOL_OK; }
    options o;
    memset(&o, 0, sizeof o);
    o.jobs = 0; /* auto */
    tool_plan_args_init(&o.plan, "decompose");
    o.plan.model.takes_calibration = 1;
    int code = parse(argc, argv, &o);
    if (code) return code;
    tool_protect_model_inputs(&o.g, o.in, &o.plan.model);
    if (o.out && !o.dry && (code = tool_output_check(&o.g, o.out, TD_OUTPUT_HDF5))) return code;
    if (o.report && (code = tool_output_check(&o.g, o.report, TD_OUTPUT_BYTES))) return code;
    td_model m;
    if ((code = tool_open_model(&m, o.in, &o.plan.model, &o.g))) return code;
    tool_plan p;
    lay *L = calloc(m.nlayers ? m.nlayers : 1, sizeof *L);
    td_chain *layouts = calloc(m.nlayers ? m.nlayers : 1, sizeof *layouts);
    td_model_writer *w = NULL;
    json_t *rep = NULL;
    memset(&p, 0, sizeof p);
    if (!L || !layouts) { code = tool_fail(TOOL_ERESOURCE, o.in, NULL, "out of memory"); goto done; }
    tool_warn_assumed(&m);
    tool_core_warning();
    if ((code = tool_plan_model(&m, &o.plan, &p))) goto done;
    /* after planning (shapes and spectra only), before any chain is computed or written */
    const double limit = o.plan.maxmem > 0 ? (double)o.plan.maxmem : (double)tool_memory_default();
    if (o.jobs == 0) o.jobs = auto_jobs(&m, &p, limit);
    if (tool_memory_check(memory_need(&m, &p, o.jobs), limit, o.in, NULL)) { code = TOOL_ERESOURCE; goto done; }
    /* test hook: a pause between planning and reading the kernels again (tests/cli/test_safety.py
     * changes the input meanwhile) */
    const char *hook = getenv("TDECOMP_TEST_HOOK");
    if (hook && !strcmp(hook, "stop-after-plan")) raise(SIGSTOP);
    if (!o.dry && (code = open_writer(&o, &m, &p, &o.g, layouts, &w))) goto done;
    /* N workers each running multi-threaded BLAS oversubscribe the cores: the tool (never the
     * library) gives each worker one BLAS thread */
    if (o.jobs > 1 && td_blas_set_threads(1) != TD_OK) {
        code = tool_fail(TOOL_ERESOURCE, o.in, NULL, "internal error: cannot set the BLAS thread count");
        goto done;
    }
    if ((code = run(&m, &p, L, o.jobs, w))) goto done;
    const totals t = sum_up(&m, &p, L);
    if (t.params_after != p.sum.params_after) { code = tool_fail(TOOL_ERESOURCE, o.in, NULL, "internal error: the chains' parameters differ from the plan's"); goto done; }
    if (w && (code = finish_writer(&m, &p, L, w))) goto done;
    rep = report_json(&o, &m, &p, L, &t);
    if (o.report && (code = tool_output_json(&o.g, o.report, rep))) goto done;
    if ((code = tool_outputs_commit(&o.g))) goto done;
    if (!t.decomposed && m.nlayers) tool_warn("no layer was decomposed (see each layer's reason); the output is a faithful copy");
    if (o.json) tool_print_json(json_incref(rep)); /* it takes a reference; rep is freed below */
    else report_text(rep, o.plan.model.nglobs > 0);
done:
    json_decref(rep);
    td_model_writer_free(w);
    tool_outputs_abort(&o.g);
    for (size_t i = 0; L && i < m.nlayers; i++) {
        td_tensor_free(&L[i].kernel);
        td_tensor_free(&L[i].bias);
        td_chain_free(&L[i].chain);
    }
    free(L);
    free(layouts);
    tool_plan_free(&p);
    td_model_free(&m);
    return code;
}
