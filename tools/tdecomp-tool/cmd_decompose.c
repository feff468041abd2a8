/* tdecomp-tool decompose: plan, rewrite and write a whole weight file. */
#include <cblas.h>
#include <pthread.h>
#include <math.h>
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
    "         [--objective minmax|sum] [--jobs N] [--max-memory SIZE] [--layout L] [--layer-spec SPEC.json] [--report REPORT.json] [--force]\n"
    "Decomposes every conv and dense layer the method applies to, with exactly one rank rule, and\n"
    "writes a loadable file of the same layout. --dry-run plans and reports without writing.\n"
    "--objective sum (global targets) minimises the sum of squared errors instead of the largest.\n"
    "--jobs N decomposes N layers at a time, each with one BLAS thread; the output is byte-identical\n"
    "for every N >= 2 and to a serial run with OPENBLAS_NUM_THREADS=1.\n";

typedef struct lay {
    td_tensor kernel, bias;
    td_chain chain;
    int has_chain;
    double rel_error, seconds;
    td_cost before, after;
} lay;

/* Layers are independent and the library keeps no global state, so workers take layers from a
 * shared counter; every result depends only on its layer, hence --jobs gives the serial output. */
typedef struct work {
    const td_model *m;
    const td_plan_decision *dec;
    lay *L;
    size_t n, next, done_count;
    int tty;
    td_status st;
    size_t failed;
    pthread_mutex_t mu;
} work;

static td_status one_layer(const td_model *m, const td_plan_decision *d, size_t i, lay *l)
{
    const td_model_layer *ml = &m->layers[i];
    td_chain *c = &l->chain;
    const td_plan_layer pl = {ml->name, ml->desc, ml->admits, 0, NULL};
    td_status st = td_plan_build(&pl, &l->kernel, &l->bias, d, NULL, c);
    if (st != TD_OK) return st;
    l->has_chain = 1;
    l->seconds = c->seconds;
    const td_dtype kd = m->tensors[ml->kernel].dtype, bd = ml->bias >= 0 ? m->tensors[ml->bias].dtype : kd;
    if ((st = td_chain_round(c, kd, bd)) != TD_OK) return st;
    /* the error of what is written: the rounded pieces composed back */
    if ((st = td_chain_rel_error(c, &l->kernel, &l->rel_error)) != TD_OK) return st;
    return td_chain_cost(c, &l->after);
}

static void *worker(void *arg)
{
    work *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        size_t i = w->next++;
        int stop = w->st != TD_OK;
        pthread_mutex_unlock(&w->mu);
        if (stop || i >= w->n) return NULL;
        if (w->dec[i].skipped) continue;
        td_status st = one_layer(w->m, &w->dec[i], i, &w->L[i]);
        pthread_mutex_lock(&w->mu);
        w->done_count++;
        if (w->tty) fprintf(stderr, "\rtdecomp-tool: [%zu/%zu] %-40.40s", w->done_count, w->n, w->m->layers[i].name);
        if (st != TD_OK && w->st == TD_OK) { w->st = st; w->failed = i; }
        pthread_mutex_unlock(&w->mu);
    }
}

static json_t *cost_json(const td_cost *c, int after, json_t *o)
{
    json_object_set_new(o, after ? "params_after" : "params_before", json_integer((json_int_t)c->params));
    json_object_set_new(o, after ? "macs_after" : "macs_before", c->known ? json_integer((json_int_t)c->macs) : json_null());
    json_object_set_new(o, after ? "flops_after" : "flops_before", c->known ? json_integer((json_int_t)c->flops) : json_null());
    if (!c->known)
        json_object_set_new(o, after ? "flops_per_pixel_after" : "flops_per_pixel_before", json_real(c->flops_per_pixel));
    return o;
}

int cmd_decompose(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *report = NULL, *v;
    int force = 0, dry = 0, r, jobs = 1;
    double maxmem = 0;
    tool_plan_args args;
    tool_plan_args_init(&args, "decompose");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_decompose_usage, stdout); return TOOL_OK; }
        if (!strcmp(a, "--force")) { force = 1; continue; }
        if (!strcmp(a, "--dry-run")) { dry = 1; continue; }
        if ((r = tool_plan_option(argc, argv, &i, &args))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "-o", &v)) || (r = tool_opt_value(argc, argv, &i, "--output", &v))) {
            if (r < 0) return tool_usage_error("decompose: -o needs a file name");
            out = v;
        } else if ((r = tool_opt_value(argc, argv, &i, "--jobs", &v)) || (r = tool_opt_value(argc, argv, &i, "-j", &v))) {
            long j;
            if (r < 0 || tool_parse_int(v, 1, 64, &j)) return tool_usage_error("decompose: --jobs needs a whole number from 1 to 64");
            jobs = (int)j;
        } else if ((r = tool_opt_value(argc, argv, &i, "--max-memory", &v))) {
            if (r < 0 || tool_parse_memsize(v, &maxmem)) return tool_usage_error("decompose: --max-memory needs a size such as 512M or 4G");
        } else if ((r = tool_opt_value(argc, argv, &i, "--report", &v))) {
            if (r < 0) return tool_usage_error("decompose: --report needs a file");
            report = v;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("decompose: unknown option '%s' (see 'tdecomp-tool decompose --help')", a);
        } else if (!in) in = a;
        else return tool_usage_error("decompose: unexpected argument '%s'", a);
    }
    if (!in) return tool_usage_error("decompose: missing input file");
    if ((r = tool_plan_args_check(&args)) != TOOL_OK) return r;
    if (!out && !dry) return tool_usage_error("decompose: missing -o OUT (or --dry-run)");

    td_error err;
    td_error_clear(&err);
    td_status st;
    if (out && !dry && (st = td_outfile_check(out, in, force, &err)) != TD_OK) return tool_fail_status(st, &err, out, NULL);
    if (report && (st = td_outfile_check(report, in, force, &err)) != TD_OK) return tool_fail_status(st, &err, report, NULL);
    if (report && out && !strcmp(report, out)) return tool_usage_error("decompose: --report and -o name the same file");

    td_model m;
    int rc = tool_open_model(&m, in, args.model.layout, args.model.spec);
    if (rc) return rc;
    const size_t n = m.nlayers;
    lay *L = calloc(n ? n : 1, sizeof *L);
    td_plan_decision *dec = calloc(n ? n : 1, sizeof *dec);
    td_model_rewrite *rw = calloc(n ? n : 1, sizeof *rw);
    json_t *rep = NULL;
    int code = TOOL_OK;
    if (!L || !dec || !rw) { code = tool_fail(TOOL_ERESOURCE, in, NULL, "out of memory"); goto done; }
    {
        /* memory, checked before reading any kernel: every kernel in double, plus per running job
         * the largest layer's workspace (Grams, projections, chain, composed kernel: < 5 kernels) */
        double all, largest;
        tool_model_sizes(&m, &all, &largest);
        if (maxmem <= 0) maxmem = tool_memory_default();
        if (tool_memory_check(8.0 * (all + 5.0 * largest * jobs), maxmem, in, NULL)) { code = TOOL_ERESOURCE; goto done; }
    }
    td_tensor *kernels = calloc(n ? n : 1, sizeof *kernels), *biases = calloc(n ? n : 1, sizeof *biases);
    td_cost *before = calloc(n ? n : 1, sizeof *before);
    td_plan_summary sum;
    if (!kernels || !biases || !before) code = tool_fail(TOOL_ERESOURCE, in, NULL, "out of memory");
    else code = tool_plan_model(&m, in, &args, kernels, biases, before, dec, &sum);
    for (size_t i = 0; kernels && biases && before && i < n; i++) {
        L[i].kernel = kernels[i];   /* ownership moves to L */
        L[i].bias = biases[i];
        L[i].before = before[i];
    }
    free(kernels);
    free(biases);
    free(before);
    if (code) goto done;
    const uint64_t total = sum.params_before;
    tool_core_warning();
    const int tty = isatty(2);
    /* N workers each running multi-threaded BLAS oversubscribe the cores: the tool (never the
     * library) gives each worker one BLAS thread */
    if (jobs > 1) openblas_set_num_threads(1);
    work w = {&m, dec, L, n, 0, 0, tty, TD_OK, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < jobs; t++)
        if (pthread_create(&th[started], NULL, worker, &w) == 0) started++;
    worker(&w);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    if (w.st != TD_OK) {
        code = tool_fail(tool_exit_for(w.st), in, m.layers[w.failed].name, "decomposition failed: %s", td_strerror(w.st));
        goto done;
    }
    size_t nrw = 0;
    for (size_t i = 0; i < n; i++)
        if (L[i].has_chain) { rw[nrw].layer = i; rw[nrw++].chain = &L[i].chain; }
    if (tty) fprintf(stderr, "\r%-70s\r", "");
    if (!dry) {
        td_outfile of;
        if ((st = td_outfile_create(&of, out, in, force, &err)) != TD_OK) { code = tool_fail_status(st, &err, out, NULL); goto done; }
        tool_track_outfile(&of);
        st = td_model_write(&m, &of, rw, nrw, &err);
        if (st == TD_OK) st = tool_stamp(&of, &err);
        if (st == TD_OK) st = td_outfile_commit(&of, &err);
        else td_outfile_abort(&of);
        tool_untrack_outfile();
        if (st != TD_OK) { code = tool_fail_status(st, &err, out, NULL); goto done; }
    }
    /* report */
    rep = json_object();
    json_t *layers = json_array(), *opts = tool_plan_args_json(&args);
    uint64_t pa = total, fb = 0, fa = 0;
    int fknown = 1;
    size_t ndec = 0, nskip = 0;
    double maxe = 0;
    printf("%-28s %-11s %-12s %10s %10s %12s %12s %9s  %s\n", "layer", "method", "ranks", "params", "after", "MFLOPs", "after", "rel_err", "note");
    for (size_t i = 0; i < n; i++) {
        const td_model_layer *ml = &m.layers[i];
        const td_plan_decision *d = &dec[i];
        const int ok = L[i].has_chain;
        const td_cost *after = ok ? &L[i].after : &L[i].before;
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(ml->name));
        json_object_set_new(x, "kind", json_string(tool_kind_name(ml)));
        json_object_set_new(x, "shape", tool_layer_shape(ml));
        json_object_set_new(x, "dtype", json_string(m.tensors[ml->kernel].dtype_name));
        json_object_set_new(x, "method", json_string(ok ? td_method_name(L[i].chain.method) : "none"));
        json_object_set_new(x, "ranks", ok ? tool_json_sizes(L[i].chain.ranks, L[i].chain.nranks) : json_null());
        json_object_set_new(x, "clamped", json_boolean(ok && (L[i].chain.clamped || d->clamped)));
        cost_json(&L[i].before, 0, x);
        cost_json(after, 1, x);
        json_object_set_new(x, "rel_error", json_real(ok ? L[i].rel_error : 0.0));
        json_object_set_new(x, "est_error", json_real(ok ? d->est_error : 0.0));
        json_object_set_new(x, "seconds", json_real(ok ? L[i].seconds : 0.0));
        json_object_set_new(x, "skipped", json_boolean(!ok));
        json_object_set_new(x, "reason", ok ? json_null() : json_string(d->reason));
        json_array_append_new(layers, x);
        pa -= L[i].before.params - after->params;
        fknown &= L[i].before.known;
        fb += L[i].before.flops;
        fa += after->flops;
        if (ok) { ndec++; if (L[i].rel_error > maxe) maxe = L[i].rel_error; } else nskip++;
        char rk[32] = "-";
        if (ok && L[i].chain.nranks == 2) snprintf(rk, sizeof rk, "%zu,%zu", L[i].chain.ranks[0], L[i].chain.ranks[1]);
        else if (ok) snprintf(rk, sizeof rk, "%zu", L[i].chain.ranks[0]);
        char fbs[24] = "?", fas[24] = "?";
        if (L[i].before.known) snprintf(fbs, sizeof fbs, "%.3f", L[i].before.flops / 1e6);
        if (after->known) snprintf(fas, sizeof fas, "%.3f", after->flops / 1e6);
        printf("%-28.28s %-11s %-12s %10llu %10llu %12s %12s %9.4g  %s\n", ml->name, ok ? td_method_name(L[i].chain.method) : "none", rk,
               (unsigned long long)L[i].before.params, (unsigned long long)after->params, fbs, fas, ok ? L[i].rel_error : 0.0,
               ok ? (L[i].chain.clamped ? "clamped" : "") : d->reason);
    }
    printf("total: %llu -> %llu parameters (%.1f%%)", (unsigned long long)total, (unsigned long long)pa, 100.0 * (double)pa / (double)(total ? total : 1));
    if (fknown && n) printf(", %.3f -> %.3f MFLOPs (%.1f%%)", fb / 1e6, fa / 1e6, 100.0 * (double)fa / (double)(fb ? fb : 1));
    printf("; %zu layers decomposed, %zu skipped, max rel_error %.4g%s\n", ndec, nskip, maxe, dry ? " (dry run: nothing written)" : "");
    json_object_set_new(opts, "dry_run", json_boolean(dry));
    json_t *tot = json_object();
    json_object_set_new(tot, "params_before", json_integer((json_int_t)total));
    json_object_set_new(tot, "params_after", json_integer((json_int_t)pa));
    json_object_set_new(tot, "flops_before", fknown ? json_integer((json_int_t)fb) : json_null());
    json_object_set_new(tot, "flops_after", fknown ? json_integer((json_int_t)fa) : json_null());
    json_object_set_new(tot, "layers_decomposed", json_integer((json_int_t)ndec));
    json_object_set_new(tot, "layers_skipped", json_integer((json_int_t)nskip));
    json_object_set_new(tot, "max_rel_error", json_real(maxe));
    json_object_set_new(rep, "tdecomp_report", json_integer(1));
    json_object_set_new(rep, "version", json_string(TD_VERSION_STRING));
    json_object_set_new(rep, "input", json_string(in));
    json_object_set_new(rep, "output", out && !dry ? json_string(out) : json_null());
    json_object_set_new(rep, "layout", json_string(td_layout_name(m.layout)));
    json_object_set_new(rep, "options", opts);
    json_object_set_new(rep, "layers", layers);
    json_object_set_new(rep, "totals", tot);
    if (report) {
        char *s = json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(17));
        /* the report is an output like any other: written to a temporary file, then renamed */
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tdtmp.%ld", report, (long)getpid());
        FILE *f = s ? fopen(tmp, "w") : NULL;
        int okw = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
        if (f && fclose(f) != 0) okw = 0;
        if (!okw || rename(tmp, report) != 0) {
            unlink(tmp);
            code = tool_fail(TOOL_ERESOURCE, report, NULL, "cannot write the report");
        }
        free(s);
    }
done:
    json_decref(rep);
    for (size_t i = 0; L && i < n; i++) {
        td_tensor_free(&L[i].kernel);
        td_tensor_free(&L[i].bias);
        td_chain_free(&L[i].chain);
    }
    free(L);
    free(dec);
    free(rw);
    td_model_free(&m);
    return code;
}
