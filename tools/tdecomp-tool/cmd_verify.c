/* tdecomp-tool verify: recompose every chain found in the decomposed file and measure it
 * against the original kernels, independently of any report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_util.h"

const char cmd_verify_usage[] =
    "usage: tdecomp-tool verify ORIGINAL DECOMPOSED [--json] [--max-error E]\n"
    "For every layer of ORIGINAL, finds its chain (or the unchanged layer) in DECOMPOSED, composes the\n"
    "chain back and prints the relative Frobenius error; exit 1 if any exceeds --max-error.\n";

static int find_layer(const td_model *m, const char *name)
{
    for (size_t i = 0; i < m->nlayers; i++)
        if (!strcmp(m->layers[i].name, name)) return (int)i;
    return -1;
}

/* Keras 3: "conv2d_3" -> class "conv2d", index 3. */
static void split_name(const char *name, char *cls, size_t len, long *idx)
{
    snprintf(cls, len, "%s", name);
    *idx = 0;
    char *us = strrchr(cls, '_');
    if (us && us[1]) {
        char *end;
        long v = strtol(us + 1, &end, 10);
        if (!*end && v > 0) { *us = '\0'; *idx = v; }
    }
}

/* Layers of m with class cls, in numeric order: index list into m->layers. */
static size_t class_seq(const td_model *m, const char *cls, int *out, size_t cap)
{
    size_t n = 0;
    for (long want = 0; want < 100000 && n < cap; want++) {
        int found = -1;
        for (size_t i = 0; i < m->nlayers; i++) {
            char c[256];
            long idx;
            split_name(m->layers[i].name, c, sizeof c, &idx);
            if (!strcmp(c, cls) && idx == want) found = (int)i;
        }
        if (found < 0) break;
        out[n++] = found;
    }
    return n;
}

/* Pieces of layer `i` of the original in the decomposed model, as indices; returns the count
 * (0 when not found). For Keras 3, *cursor walks the class sequence. */
static int find_pieces(const td_model *o, size_t i, const td_model *d, int *pieces, int *unchanged, size_t *cursor)
{
    const td_model_layer *l = &o->layers[i];
    char nm[600];
    *unchanged = 0;
    if (o->layout == TD_LAYOUT_TORCH || o->layout == TD_LAYOUT_KERAS2) {
        static const char *const t2[] = {"t2_in", "t2_core", "t2_out"}, *const cp[] = {"cp_0", "cp_1", "cp_2", "cp_3"},
                                 *const sv[] = {"svd_0", "svd_1"};
        if (o->layout == TD_LAYOUT_TORCH) {
            int n = 0;
            for (int p = 0; p < 4; p++) {
                snprintf(nm, sizeof nm, "%s.%d", l->name, p);
                int k = find_layer(d, nm);
                if (k < 0) break;
                pieces[n++] = k;
            }
            if (n >= 2) return n;
        } else {
            const char *const *sets[3] = {t2, cp, sv};
            const int counts[3] = {3, 4, 2};
            for (int s = 0; s < 3; s++) {
                int n = 0;
                for (int p = 0; p < counts[s]; p++) {
                    snprintf(nm, sizeof nm, "%s_%s", l->name, sets[s][p]);
                    int k = find_layer(d, nm);
                    if (k < 0) break;
                    pieces[n++] = k;
                }
                if (n == counts[s]) return n;
            }
        }
        int k = find_layer(d, l->name);
        if (k >= 0) { *unchanged = 1; pieces[0] = k; return 1; }
        return 0;
    }
    /* Keras 3: walk this class's sequence in the decomposed file */
    char cls[256];
    long idx;
    split_name(l->name, cls, sizeof cls, &idx);
    int seq[4096];
    size_t ns = class_seq(d, cls, seq, 4096);
    if (*cursor >= ns) return 0;
    const td_model_layer *a = &d->layers[seq[*cursor]];
    if (a->desc.cout == l->desc.cout && a->desc.cin == l->desc.cin && a->desc.kh == l->desc.kh && a->desc.kw == l->desc.kw) {
        *unchanged = 1;
        pieces[0] = seq[(*cursor)++];
        return 1;
    }
    /* tucker2: 1x1 Cin->a, kxk, 1x1 ->Cout; svd: kxk (or dense) then 1x1 (or dense) ->Cout */
    if (*cursor + 2 < ns) {
        const td_model_layer *b = &d->layers[seq[*cursor + 1]], *c = &d->layers[seq[*cursor + 2]];
        if (a->desc.kh == 1 && a->desc.kw == 1 && a->desc.cin == l->desc.cin && b->desc.kh == l->desc.kh &&
            b->desc.kw == l->desc.kw && c->desc.cout == l->desc.cout && l->desc.kh * l->desc.kw > 1) {
            for (int p = 0; p < 3; p++) pieces[p] = seq[(*cursor)++];
            return 3;
        }
    }
    if (*cursor + 1 < ns) {
        const td_model_layer *b = &d->layers[seq[*cursor + 1]];
        if (b->desc.cout == l->desc.cout && a->desc.kh == l->desc.kh && a->desc.kw == l->desc.kw) {
            for (int p = 0; p < 2; p++) pieces[p] = seq[(*cursor)++];
            return 2;
        }
    }
    return 0;
}

int cmd_verify(int argc, char **argv)
{
    const char *orig = NULL, *dec = NULL, *v;
    int json = 0, r, have_max = 0;
    double maxerr = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_verify_usage, stdout); return TOOL_OK; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((r = tool_opt_value(argc, argv, &i, "--max-error", &v))) {
            if (r < 0 || tool_parse_double(v, &maxerr) || maxerr < 0) return tool_usage_error("verify: --max-error needs a number >= 0");
            have_max = 1;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("verify: unknown option '%s' (see 'tdecomp-tool verify --help')", a);
        } else if (!orig) orig = a;
        else if (!dec) dec = a;
        else return tool_usage_error("verify: unexpected argument '%s'", a);
    }
    if (!orig || !dec) return tool_usage_error("verify: needs ORIGINAL and DECOMPOSED files");
    td_model mo, md;
    int rc = tool_open_model(&mo, orig, NULL, NULL);
    if (rc) return rc;
    td_error err;
    td_error_clear(&err);
    tool_deadline_begin();
    td_status st = td_model_open(&md, dec, mo.layout, &err);
    tool_deadline_end();
    if (st != TD_OK) { td_model_free(&mo); return tool_fail_status(st, &err, dec, NULL); }
    json_t *layers = json_array();
    double worst = 0;
    int code = TOOL_OK, over = 0;
    char cursor_cls[64][256];
    size_t cursors[64] = {0};
    int ncls = 0;
    if (!json) printf("%-32s %-12s %12s\n", "layer", "method", "rel_error");
    for (size_t i = 0; i < mo.nlayers && code == TOOL_OK; i++) {
        const td_model_layer *l = &mo.layers[i];
        size_t *cur = &cursors[0];
        if (mo.layout == TD_LAYOUT_KERAS3) {
            char cls[256];
            long idx;
            split_name(l->name, cls, sizeof cls, &idx);
            int c = -1;
            for (int k = 0; k < ncls; k++) if (!strcmp(cursor_cls[k], cls)) c = k;
            if (c < 0 && ncls < 64) { c = ncls++; snprintf(cursor_cls[c], 256, "%s", cls); }
            cur = &cursors[c < 0 ? 0 : c];
        }
        int pieces[4], unchanged;
        int np = find_pieces(&mo, i, &md, pieces, &unchanged, cur);
        if (np == 0) { code = tool_fail(TOOL_EINPUT, dec, l->name, "layer not found (neither unchanged nor as a chain)"); break; }
        td_tensor w = {0}, b = {0}, what = {0};
        if ((st = td_model_read_layer(&mo, i, &w, &b, &err)) != TD_OK) { code = tool_fail_status(st, &err, orig, l->name); break; }
        td_tensor_free(&b);
        td_chain c;
        memset(&c, 0, sizeof c);
        const char *method = "none";
        if (unchanged) {
            st = td_model_read_layer(&md, (size_t)pieces[0], &what, &b, &err);
            td_tensor_free(&b);
            if (st == TD_OK && !td_tensor_same_shape(&what, &w)) st = TD_ESHAPE;
        } else {
            c.npieces = np;
            for (int p = 0; p < np && st == TD_OK; p++) {
                st = td_model_read_layer(&md, (size_t)pieces[p], &c.pieces[p].kernel, &b, &err);
                td_tensor_free(&b);
            }
            if (st == TD_OK) {
                if (np == 3) c.method = TD_METHOD_TUCKER2;
                else if (np == 4) c.method = TD_METHOD_CP;
                else {
                    size_t k = l->desc.kind == TD_LAYER_CONV2D && c.pieces[0].kernel.ndim == 4 && c.pieces[0].kernel.shape[1]
                                   ? l->desc.cin / c.pieces[0].kernel.shape[1] : 1;
                    c.method = k > 1 ? TD_METHOD_SVD_GROUPED : TD_METHOD_SVD;
                    c.ranks[0] = k;
                }
                method = td_method_name(c.method);
                if ((st = td_tensor_alloc(&what, w.ndim, w.shape)) == TD_OK) st = td_chain_compose(&c, &what);
            }
        }
        if (st != TD_OK) {
            code = tool_fail(TOOL_EINPUT, dec, l->name, "chain cannot be composed back: %s", err.message[0] ? err.message : td_strerror(st));
        } else {
            double nw = td_norm(&w);
            for (size_t k = 0; k < w.size; k++) what.data[k] -= w.data[k];
            double e = nw > 0 ? td_norm(&what) / nw : td_norm(&what);
            if (e > worst) worst = e;
            if (have_max && e > maxerr) over = 1;
            json_t *x = json_object();
            json_object_set_new(x, "name", json_string(l->name));
            json_object_set_new(x, "method", json_string(method));
            json_object_set_new(x, "rel_error", json_real(e));
            json_array_append_new(layers, x);
            if (!json) printf("%-32s %-12s %12.6g%s\n", l->name, method, e, have_max && e > maxerr ? "  > max-error" : "");
        }
        td_chain_free(&c);
        td_tensor_free(&w);
        td_tensor_free(&what);
    }
    if (code == TOOL_OK) {
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "tdecomp_verify", json_integer(1));
            json_object_set_new(o, "original", json_string(orig));
            json_object_set_new(o, "decomposed", json_string(dec));
            json_object_set_new(o, "layers", layers);
            json_object_set_new(o, "max_rel_error", json_real(worst));
            tool_print_json(o);
            layers = NULL;
        } else {
            printf("max rel_error %.6g\n", worst);
        }
        if (over) code = tool_fail(TOOL_EINPUT, dec, NULL, "a layer's relative error exceeds --max-error %g (largest %.6g)", maxerr, worst);
    }
    json_decref(layers);
    td_model_free(&mo);
    td_model_free(&md);
    return code;
}
