/* tdecomp-tool spectrum: per layer the singular values of the mode-0 and mode-1 unfoldings and
 * the error-vs-rank curves (CSV + SVG), and the planner's model-level error-vs-budget curve. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "plan_args.h"
#include "svg.h"

const char cmd_spectrum_usage[] =
    "usage: tdecomp-tool spectrum IN [--layers GLOB]... [--exclude GLOB]... -o DIR [--layer-spec SPEC.json]\n"
    "         [--layout L] [--calibration STATS.h5] [--force]\n"
    "Creates DIR (its parent must exist; an existing DIR needs --force) with, per layer, <layer>.csv\n"
    "and <layer>.svg: the singular values of the mode-0 (Cout) and mode-1 (Cin) unfoldings and the\n"
    "relative error against rank (each mode's truncation, and what --method auto would give: the\n"
    "Tucker-2 HOSVD bound at ranks (R, R) for kxk convs, the exact SVD error for dense and 1x1 layers);\n"
    "and model.csv, model.svg: the planner's largest per-layer error against the parameters kept, for\n"
    "the min-max allocator (--target-params) and for uniform ratios (--rank-ratio). Layer names are\n"
    "made file-safe (characters other than letters, digits, '.', '-', '_' become '_').\n"
    "--calibration STATS.h5: the spectra and errors are those of each layer's output on that data.\n";

#define NBUDGET 25

typedef struct spec_layer {
    double *s2[2];   /* squared singular values per mode, descending */
    size_t n[2];
    const td_plan_curve *curve;  /* the planner's, for the auto method's curve (NULL: none applies) */
    int selected;
    char file[300];
} spec_layer;

static double *suffix_tail(const double *s2, size_t n)
{
    double *t = calloc(n + 1, sizeof *t);
    if (t) td_rank_tails(s2, n, t);
    return t;
}

/* A new file in the output folder, as a stdio stream. */
static FILE *folder_file(td_outfile *o, const char *name)
{
    int fd;
    td_error err;
    if (td_outfile_folder_file(o, name, &fd, &err) != TD_OK) return NULL;
    FILE *f = fdopen(fd, "w");
    if (!f) close(fd);
    return f;
}

static int write_layer_files(td_outfile *dir, const td_model_layer *ml, spec_layer *L)
{
    const size_t n0 = L->n[0], n1 = L->n[1], nmax = n0 > n1 ? n0 : n1;
    double *t0 = suffix_tail(L->s2[0], n0), *t1 = suffix_tail(L->s2[1], n1);
    double *buf = calloc(6 * (nmax ? nmax : 1), sizeof *buf);
    int rc = -1;
    if (!t0 || !t1 || !buf) goto done;
    double *x = buf, *sv0 = buf + nmax, *sv1 = buf + 2 * nmax, *e0 = buf + 3 * nmax, *e1 = buf + 4 * nmax, *ea = buf + 5 * nmax;
    const double nw2 = t0[0] > 0 ? t0[0] : 1.0;
    char path[400];
    snprintf(path, sizeof path, "%s.csv", L->file);
    FILE *f = folder_file(dir, path);
    if (!f) goto done;
    fprintf(f, "rank,sv_mode0,sv_mode1,rel_error_mode0,rel_error_mode1,rel_error_auto,params_auto\n");
    const td_layer_desc *d = &ml->desc;
    for (size_t r = 1; r <= nmax; r++) {
        const size_t i = r - 1, r0 = r < n0 ? r : n0, r1 = r < n1 ? r : n1;
        x[i] = (double)r;
        sv0[i] = r <= n0 ? sqrt(L->s2[0][i]) : NAN;
        sv1[i] = r <= n1 ? sqrt(L->s2[1][i]) : NAN;
        e0[i] = r <= n0 ? sqrt(t0[r] / nw2) : NAN;
        e1[i] = r <= n1 ? sqrt(t1[r] / nw2) : NAN;
        /* the planner's prediction for the auto method: Tucker-2 at (R, R), SVD at R; the
         * HOSVD bound can pass 1, a projection never does (||W - W_hat|| <= ||W||) */
        double pa = NAN, est;
        td_cost cc;
        const int tucker = td_plan_curve_method(L->curve) == TD_METHOD_TUCKER2;
        const size_t rk[2] = {tucker ? r0 : r, tucker ? r1 : 0};
        ea[i] = NAN;
        if (L->curve && (tucker || r <= n0) && td_plan_curve_eval(L->curve, rk, &est, &cc) == TD_OK) {
            ea[i] = fmin(1.0, est);
            pa = (double)cc.params;
        }
        fprintf(f, "%zu,", r);
        const double cols[5] = {sv0[i], sv1[i], e0[i], e1[i], ea[i]};
        for (int c = 0; c < 5; c++) {
            if (isfinite(cols[c])) fprintf(f, "%.17g", cols[c]);
            fputc(',', f);
        }
        if (isfinite(pa)) fprintf(f, "%.0f", pa);
        fputc('\n', f);
    }
    if (fclose(f) != 0) goto done;
    snprintf(path, sizeof path, "%s.svg", L->file);
    if (!(f = folder_file(dir, path))) goto done;
    svg_series sv[2] = {{"mode 0 (Cout)", x, sv0, n0}, {"mode 1 (Cin)", x, sv1, n1}};
    if (d->kind == TD_LAYER_DENSE) { sv[0].label = "mode 0 (out)"; sv[1].label = "mode 1 (in)"; }
    svg_series er[3] = {{"mode 0 truncation", x, e0, n0}, {"mode 1 truncation", x, e1, n1},
                        {td_plan_curve_method(L->curve) == TD_METHOD_TUCKER2 ? "tucker2 (R,R) bound" : "svd (exact)", x, ea, nmax}};
    svg_panel panels[2] = {{"singular values of the unfoldings", "index", "singular value", 1, sv, 2},
                           {"relative error vs rank", "rank R", "||W - W_R|| / ||W||", 0, er, L->curve ? 3 : 2}};
    char title[400];
    if (d->kind == TD_LAYER_DENSE) snprintf(title, sizeof title, "%s: dense (%zu, %zu)", ml->name, d->cout, d->cin);
    else snprintf(title, sizeof title, "%s: %s (%zu, %zu, %zu, %zu)", ml->name, tool_kind_name(ml), d->cout,
                  d->cin / (d->groups ? d->groups : 1), d->kh, d->kw);
    int w = svg_write(f, title, panels, 2);
    if (fclose(f) != 0 || w != 0) goto done;
    rc = 0;
done:
    free(t0);
    free(t1);
    free(buf);
    return rc;
}

/* The planner's curves: largest per-layer estimated error against the fraction of the file's
 * parameters kept, by the min-max allocator and by uniform rank ratios. */
static int write_model_files(td_outfile *dir, const char *in, const td_model *m, td_plan_layer *pl,
                             td_plan_curve *const *curves, td_plan_decision *dec, uint64_t total)
{
    double x[2][NBUDGET], y[2][NBUDGET];
    size_t cnt[2] = {0, 0};
    FILE *f = folder_file(dir, "model.csv");
    if (!f) return -1;
    fprintf(f, "rule,value,params_after,params_fraction,max_est_error,layers_decomposed\n");
    double values[NBUDGET];
    td_plan_point pts[NBUDGET];
    for (int b = 0; b < NBUDGET; b++) values[b] = (double)(b + 1) / NBUDGET;
    for (int rule = 0; rule < 2; rule++) {
        td_plan_options po;
        td_plan_options_init(&po);
        po.rule = rule ? TD_RULE_RATIO : TD_RULE_TARGET_PARAMS;
        td_error err;
        td_error_clear(&err);
        td_status st = td_plan_sweep(pl, curves, m->nlayers, &po, values, NBUDGET, dec, pts, &err);
        if (st != TD_OK) { fclose(f); tool_fail_status(st, &err, in, NULL); return -2; }
        for (int b = 0; b < NBUDGET; b++) {
            if (!pts[b].feasible) continue; /* below what the layers can reach */
            /* the HOSVD bound can pass 1; a projection never does (||W - W_hat|| <= ||W||) */
            const double maxe = pts[b].max_est_error > 1 ? 1 : pts[b].max_est_error;
            const double frac = (double)pts[b].params_after / (double)(total ? total : 1);
            fprintf(f, "%s,%.4g,%llu,%.17g,%.17g,%zu\n", rule ? "rank-ratio" : "target-params", values[b],
                    (unsigned long long)pts[b].params_after, frac, maxe, pts[b].layers_decomposed);
            x[rule][cnt[rule]] = frac;
            y[rule][cnt[rule]++] = maxe;
        }
    }
    if (fclose(f) != 0) return -1;
    if (!(f = folder_file(dir, "model.svg"))) return -1;
    svg_series s[2] = {{"min-max allocator (--target-params)", x[0], y[0], cnt[0]},
                       {"uniform (--rank-ratio)", x[1], y[1], cnt[1]}};
    svg_panel p = {"largest per-layer error (spectral bound) vs size", "fraction of the file's parameters kept",
                   "max relative error", 0, s, 2};
    char title[1200];
    snprintf(title, sizeof title, "%.1000s: error vs budget", in);
    int w = svg_write(f, title, &p, 1);
    return (fclose(f) != 0 || w != 0) ? -1 : 0;
}

static void safe_name(const char *name, char *out, size_t cap)
{
    size_t j = 0;
    for (const char *c = name; *c && j + 1 < cap; c++)
        out[j++] = ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                    *c == '-' || *c == '_') ? *c : '_';
    out[j] = '\0';
    if (!j || !strcmp(out, ".") || !strcmp(out, "..")) snprintf(out, cap, "layer");
}

/* File names: file-safe, unique, never "model". */
static void name_files(const td_model *m, spec_layer *L, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!L[i].selected) continue;
        char nm[256];
        safe_name(m->layers[i].name, nm, sizeof nm);
        snprintf(L[i].file, sizeof L[i].file, "%s", nm);
        for (int k = 2;; k++) {
            int clash = !strcmp(L[i].file, "model");
            for (size_t j = 0; j < i && !clash; j++) clash = L[j].selected && !strcmp(L[j].file, L[i].file);
            if (!clash) break;
            snprintf(L[i].file, sizeof L[i].file, "%.250s_%d", nm, k);
        }
        if (strcmp(L[i].file, m->layers[i].name)) tool_warn("layer %s is written as %s.csv and %s.svg", m->layers[i].name, L[i].file, L[i].file);
    }
}

/* A spectrum the curve holds, copied zero-padded to len entries (mode 1 of a matrix: its mode 0's
 * values, which are the same singular values). */
static int copy_spectrum(const td_plan_curve *c, int mode, size_t len, double **out)
{
    size_t n;
    const double *s2 = td_plan_curve_spectrum(c, mode, &n);
    if (!s2 && mode == 1) s2 = td_plan_curve_spectrum(c, 0, &n);
    if (!s2 || !(*out = calloc(len ? len : 1, sizeof **out))) return -1;
    memcpy(*out, s2, (n < len ? n : len) * sizeof **out);
    return 0;
}

/* One layer: its planner curve (spectra of both modes, in the statistics' metric when given),
 * from the kernel read once; a layer no method applies to gets its raw mode spectra. */
static int layer_spectra(const td_model *m, size_t i, const td_plan_layer *pl, const td_plan_options *po, spec_layer *l,
                         td_plan_curve **curve)
{
    const td_model_layer *ml = &m->layers[i];
    td_error err;
    td_error_clear(&err);
    td_tensor k = {0}, b = {0};
    td_status st = td_model_read_layer(m, i, &k, &b, &err);
    if (st == TD_OK) st = td_plan_curve_new(pl, &k, po, curve, &err);
    l->curve = *curve;
    for (int md = 0; md < 2 && st == TD_OK; md++) {
        l->n[md] = k.shape[md];
        if (*curve) st = copy_spectrum(*curve, md, l->n[md], &l->s2[md]) ? TD_ENOMEM : TD_OK;
        else if (!(l->s2[md] = calloc(l->n[md] ? l->n[md] : 1, sizeof(double)))) st = TD_ENOMEM;
        else st = td_mode_spectrum(&k, md, 0, NULL, l->s2[md]);
    }
    td_tensor_free(&k);
    td_tensor_free(&b);
    return st == TD_OK ? TOOL_OK : tool_fail_status(st, &err, m->file, ml->name);
}

static void print_summary(const td_model *m, const spec_layer *L, const char *dir)
{
    size_t nsel = 0;
    printf("%-28s %-9s %8s %8s %12s %12s  %s\n", "layer", "kind", "I_0", "I_1", "R_0 @90%", "R_1 @90%", "files");
    for (size_t i = 0; i < m->nlayers; i++) {
        if (!L[i].selected) continue;
        nsel++;
        size_t r90[2];
        for (int md = 0; md < 2; md++)
            if (td_rank_energy(L[i].s2[md], L[i].n[md], 0.9, &r90[md]) != TD_OK) r90[md] = L[i].n[md];
        printf("%-28.28s %-9s %8zu %8zu %12zu %12zu  %s.csv, %s.svg\n", m->layers[i].name, tool_kind_name(&m->layers[i]), L[i].n[0],
               L[i].n[1], r90[0], r90[1], L[i].file, L[i].file);
    }
    printf("spectrum: %zu layers and model.csv, model.svg written to %s (R @90%%: smallest rank keeping 90%% of the squared singular values)\n", nsel, dir);
}

static int write_all(td_outfile *dir, const char *in, const td_model *m, spec_layer *L, td_plan_layer *pl, td_plan_curve **curves,
                     td_plan_decision *dec, uint64_t total)
{
    tool_set_phase(TOOL_PHASE_WRITING);
    for (size_t i = 0; i < m->nlayers; i++)
        if (L[i].selected && write_layer_files(dir, &m->layers[i], &L[i]) != 0)
            return tool_fail(TOOL_ERESOURCE, td_outfile_path(dir), m->layers[i].name, "cannot write the layer's files: %s", strerror(errno));
    /* test hook: a crash with a half-written temporary folder (tests/cli/test_spectrum.py) */
    const char *crash = getenv("TDECOMP_TEST_CRASH");
    if (crash && !strcmp(crash, "spectrum-after-layers")) raise(SIGSEGV);
    const int w = write_model_files(dir, in, m, pl, curves, dec, total);
    if (w == -2) return TOOL_EINPUT;
    if (w != 0) return tool_fail(TOOL_ERESOURCE, td_outfile_path(dir), NULL, "cannot write model.csv/model.svg: %s", strerror(errno));
    return TOOL_OK;
}

int cmd_spectrum(int argc, char **argv)
{
    const char *in = NULL, *dir = NULL, *v;
    int r;
    tool_model_args ma;
    tool_outputs g;
    memset(&ma, 0, sizeof ma);
    memset(&g, 0, sizeof g);
    ma.takes_calibration = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_spectrum_usage, stdout); return TOOL_OK; }
        if (!strcmp(a, "--force")) { g.force = 1; continue; }
        if ((r = tool_model_option(argc, argv, &i, "spectrum", &ma))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "-o", &v)) || (r = tool_opt_value(argc, argv, &i, "--output", &v))) {
            if (r < 0) return tool_usage_error("spectrum: -o needs a folder name");
            dir = v;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("spectrum: unknown option '%s' (see 'tdecomp-tool spectrum --help')", a);
        } else if (!in) in = a;
        else return tool_usage_error("spectrum: unexpected argument '%s'", a);
    }
    if (!in) return tool_usage_error("spectrum: missing input file");
    if (!dir) return tool_usage_error("spectrum: missing -o DIR");
    tool_protect_model_inputs(&g, in, &ma);
    int code = tool_output_check(&g, dir, TD_OUTPUT_FOLDER);
    if (code) return code;
    td_model m;
    if ((code = tool_open_model(&m, in, &ma, &g))) return code;
    const size_t n = m.nlayers;
    if (n == 0) tool_warn("%s has no conv or dense layers (cp and tucker take any dataset as a tensor)", in);
    spec_layer *L = calloc(n ? n : 1, sizeof *L);
    td_plan_layer *pl = calloc(n ? n : 1, sizeof *pl);
    td_plan_decision *dec = calloc(n ? n : 1, sizeof *dec);
    td_plan_curve **curves = calloc(n ? n : 1, sizeof *curves);
    td_layer_calibration *cal = calloc(n ? n : 1, sizeof *cal);
    td_calibration *cf = NULL;
    td_plan_options po;
    td_plan_options_init(&po);
    po.rule = TD_RULE_TARGET_PARAMS;
    po.estimate_errors = 1;
    if (!L || !pl || !dec || !curves || !cal) { code = tool_fail(TOOL_ERESOURCE, in, NULL, "out of memory"); goto done; }
    td_error cerr;
    td_error_clear(&cerr);
    if (ma.calibration && td_calibration_open(&cf, ma.calibration, &cerr) != TD_OK) {
        code = tool_fail_status(cerr.status, &cerr, ma.calibration, NULL);
        goto done;
    }
    uint64_t total = td_model_kernel_params(&m);
    tool_core_warning();
    for (size_t i = 0; i < n && code == TOOL_OK; i++) {
        const td_model_layer *ml = &m.layers[i];
        pl[i] = (td_plan_layer){ml->name, ml->desc, ml->admits, !tool_layer_selected(&ma, ml->name), NULL};
        int found = 0;
        if (cf && !pl[i].excluded && ml->admits.mask) {
            if (td_calibration_read(cf, &m, i, &cal[i], &found, &cerr) != TD_OK) { code = tool_fail_status(cerr.status, &cerr, ma.calibration, NULL); break; }
            if (found) pl[i].stats = &cal[i].stats;
        }
        if ((L[i].selected = !pl[i].excluded)) code = layer_spectra(&m, i, &pl[i], &po, &L[i], &curves[i]);
    }
    if (code) goto done;
    name_files(&m, L, n);
    td_outfile *o;
    if ((code = tool_output_open(&g, dir, TD_OUTPUT_FOLDER, &o))) goto done;
    if ((code = write_all(o, in, &m, L, pl, curves, dec, total))) goto done;
    if ((code = tool_outputs_commit(&g))) goto done;
    print_summary(&m, L, dir);
done:
    tool_outputs_abort(&g);
    for (size_t i = 0; L && i < n; i++) { free(L[i].s2[0]); free(L[i].s2[1]); }
    for (size_t i = 0; curves && i < n; i++) td_plan_curve_free(curves[i]);
    free(curves);
    for (size_t i = 0; cal && i < n; i++) td_layer_calibration_free(&cal[i]);
    free(cal);
    td_calibration_free(cf);
    free(L);
    free(pl);
    free(dec);
    td_model_free(&m);
    return code;
}
