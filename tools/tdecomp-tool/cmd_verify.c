/* tdecomp-tool verify: every layer of the original against what the decomposed file says it wrote
 * (its tdecomp_layers record), recomposed from the file itself, independently of any report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_util.h"

const char cmd_verify_usage[] =
    "usage: tdecomp-tool verify ORIGINAL DECOMPOSED [--json] [--max-error E] [--calibration STATS.h5]\n"
    "For every layer of ORIGINAL, reads its chain (or the unchanged layer) from DECOMPOSED as the\n"
    "file's own record describes it, composes the chain back and prints the relative Frobenius\n"
    "error; exit 1 if any exceeds --max-error. With --calibration, also each layer's relative output\n"
    "error on the statistics' data, recomputed from the two files.\n";

static const td_model_record *find_record(const td_model_record *r, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(r[i].name, name)) return &r[i];
    return NULL;
}

static int find_layer(const td_model *m, const char *name)
{
    for (size_t i = 0; i < m->nlayers; i++)
        if (!strcmp(m->layers[i].name, name)) return (int)i;
    return -1;
}

/* W_hat of one original layer: the composed chain, or the layer as it stands in the output. */
static td_status recompose(const td_model *md, const td_model_record *r, const td_tensor *w, td_tensor *what, td_error *err)
{
    td_tensor b = {0};
    td_status st;
    if (r->method == TD_METHOD_NONE) {
        const int k = find_layer(md, r->target);
        if (k < 0) {
            if (err) {
                err->status = TD_EFORMAT;
                snprintf(err->message, sizeof err->message, "%s: %s: layer named by the record is missing", md->file, r->target);
            }
            return TD_EFORMAT;
        }
        st = td_model_read_layer(md, (size_t)k, what, &b, err);
        td_tensor_free(&b);
        return st == TD_OK && !td_tensor_same_shape(what, w) ? TD_ESHAPE : st;
    }
    td_chain c;
    if ((st = td_model_read_chain(md, r, &c, err)) != TD_OK) return st;
    if ((st = td_tensor_alloc(what, w->ndim, w->shape)) == TD_OK) st = td_chain_compose(&c, what);
    td_chain_free(&c);
    return st;
}

typedef struct verdict {
    json_t *layers;
    double worst, worst_out;
    int over;
    const td_calibration *cal;
} verdict;

/* The relative output error of what against w on the statistics' data; *has 0 when the file has
 * no statistics for the layer. */
static td_status output_error(const verdict *v, const td_model *mo, size_t i, const td_tensor *w, const td_tensor *what,
                              int *has, double *e, td_error *err)
{
    *has = 0;
    if (!v->cal) return TD_OK;
    td_layer_calibration lc;
    td_status st = td_calibration_read(v->cal, mo, i, &lc, has, err);
    if (st == TD_OK && *has) st = td_chain_output_error(&mo->layers[i].desc, &lc.stats, w, what, e);
    td_layer_calibration_free(&lc);
    return st;
}

static int verify_layer(const td_model *mo, size_t i, const td_model *md, const td_model_record *recs, size_t nrec,
                        int json, int have_max, double maxerr, verdict *v)
{
    const td_model_layer *l = &mo->layers[i];
    const td_model_record *r = find_record(recs, nrec, l->name);
    if (!r) return tool_fail(TOOL_EINPUT, md->file, l->name, "layer not in the file's tdecomp_layers record");
    td_error err;
    td_error_clear(&err);
    td_tensor w = {0}, b = {0}, what = {0};
    td_status st = td_model_read_layer(mo, i, &w, &b, &err);
    td_tensor_free(&b);
    if (st != TD_OK) return tool_fail_status(st, &err, mo->file, l->name);
    double e = 0, oe = 0;
    int has_oe = 0;
    if ((st = recompose(md, r, &w, &what, &err)) == TD_OK) st = td_rel_diff(&what, &w, &e);
    if (st != TD_OK) {
        td_tensor_free(&w);
        td_tensor_free(&what);
        return tool_fail(TOOL_EINPUT, md->file, l->name, "chain cannot be composed back: %s", err.message[0] ? err.message : td_strerror(st));
    }
    st = output_error(v, mo, i, &w, &what, &has_oe, &oe, &err);
    td_tensor_free(&w);
    td_tensor_free(&what);
    if (st != TD_OK) return tool_fail_status(st, &err, NULL, l->name);
    if (has_oe && oe > v->worst_out) v->worst_out = oe;
    if (e > v->worst) v->worst = e;
    if (have_max && e > maxerr) v->over = 1;
    json_t *x = json_object();
    json_object_set_new(x, "name", json_string(l->name));
    json_object_set_new(x, "method", json_string(td_method_name(r->method)));
    json_object_set_new(x, "rel_error", json_real(e));
    if (has_oe) json_object_set_new(x, "output_rel_error", json_real(oe));
    json_array_append_new(v->layers, x);
    char os[32] = "";
    if (v->cal && has_oe) snprintf(os, sizeof os, " %16.6g", oe);
    else if (v->cal) snprintf(os, sizeof os, " %16s", "-");
    if (!json) printf("%-32s %-12s %12.6g%s%s\n", l->name, td_method_name(r->method), e, os, have_max && e > maxerr ? "  > max-error" : "");
    return TOOL_OK;
}

int cmd_verify(int argc, char **argv)
{
    const char *orig = NULL, *dec = NULL, *v, *calpath = NULL;
    int json = 0, r, have_max = 0;
    double maxerr = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_verify_usage, stdout); return TOOL_OK; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((r = tool_opt_value(argc, argv, &i, "--max-error", &v))) {
            if (r < 0 || tool_parse_double(v, &maxerr) || maxerr < 0) return tool_usage_error("verify: --max-error needs a number >= 0");
            have_max = 1;
        } else if ((r = tool_opt_value(argc, argv, &i, "--calibration", &v))) {
            if (r < 0) return tool_usage_error("verify: --calibration needs a statistics file");
            calpath = v;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("verify: unknown option '%s' (see 'tdecomp-tool verify --help')", a);
        } else if (!orig) orig = a;
        else if (!dec) dec = a;
        else return tool_usage_error("verify: unexpected argument '%s'", a);
    }
    if (!orig || !dec) return tool_usage_error("verify: needs ORIGINAL and DECOMPOSED files");
    td_model mo, md;
    tool_model_args none;
    memset(&none, 0, sizeof none);
    int code = tool_open_model(&mo, orig, &none, NULL);
    if (code) return code;
    if ((code = tool_open_model(&md, dec, &none, NULL))) { td_model_free(&mo); return code; }
    td_error err;
    td_error_clear(&err);
    td_model_record *recs = NULL;
    size_t nrec = 0;
    td_calibration *cal = NULL;
    verdict vd = {json_array(), 0, 0, 0, NULL};
    td_status st = td_model_records(&md, &recs, &nrec, &err);
    if (st != TD_OK) code = tool_fail_status(st, &err, dec, NULL);
    if (!code && calpath && (st = td_calibration_open(&cal, calpath, &err)) != TD_OK) code = tool_fail_status(st, &err, calpath, NULL);
    vd.cal = cal;
    if (!code && !json) printf("%-32s %-12s %12s%s\n", "layer", "method", "rel_error", cal ? "  output_rel_error" : "");
    for (size_t i = 0; i < mo.nlayers && code == TOOL_OK; i++) code = verify_layer(&mo, i, &md, recs, nrec, json, have_max, maxerr, &vd);
    if (code == TOOL_OK) {
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "tdecomp_verify", json_integer(1));
            json_object_set_new(o, "original", json_string(orig));
            json_object_set_new(o, "decomposed", json_string(dec));
            json_object_set_new(o, "layers", json_incref(vd.layers));
            json_object_set_new(o, "max_rel_error", json_real(vd.worst));
            if (cal) json_object_set_new(o, "max_output_rel_error", json_real(vd.worst_out));
            tool_print_json(o);
        } else {
            printf("max rel_error %.6g", vd.worst);
            if (cal) printf(", max output_rel_error %.6g", vd.worst_out);
            printf("\n");
        }
        if (vd.over) code = tool_fail(TOOL_EINPUT, dec, NULL, "a layer's relative error exceeds --max-error %g (largest %.6g)", maxerr, vd.worst);
    }
    json_decref(vd.layers);
    td_calibration_free(cal);
    td_model_records_free(recs, nrec);
    td_model_free(&mo);
    td_model_free(&md);
    return code;
}
