/* What the weight-file commands share. */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include "model_util.h"

const char *tool_kind_name(const td_model_layer *l)
{
    switch (l->cls) {
    case TD_CLASS_DENSE: return "dense";
    case TD_CLASS_DEPTHWISE: return "depthwise";
    case TD_CLASS_GROUPED: return "grouped";
    default: return "conv2d";
    }
}

static int layer_shape(const td_model_layer *l, size_t s[4])
{
    const td_layer_desc *d = &l->desc;
    if (d->kind == TD_LAYER_DENSE) { s[0] = d->cout; s[1] = d->cin; return 2; }
    s[0] = d->cout;
    s[1] = d->cin / (d->groups ? d->groups : 1);
    s[2] = d->kh;
    s[3] = d->kw;
    return 4;
}

json_t *tool_layer_shape(const td_model_layer *l)
{
    size_t s[4];
    return tool_json_sizes(s, layer_shape(l, s));
}

void tool_layer_shape_text(const td_model_layer *l, char *buf, size_t len)
{
    size_t s[4];
    if (layer_shape(l, s) == 2) snprintf(buf, len, "(%zu, %zu)", s[0], s[1]);
    else snprintf(buf, len, "(%zu, %zu, %zu, %zu)", s[0], s[1], s[2], s[3]);
}

json_t *tool_layer_methods(const td_model_layer *l, const char **reason)
{
    json_t *methods = json_array();
    for (int k = TD_METHOD_TUCKER2; k < TD_METHOD_COUNT; k++)
        if (l->admits.mask & TD_METHOD_BIT(k)) json_array_append_new(methods, json_string(td_method_name((td_method)k)));
    *reason = NULL;
    if (!l->admits.mask)
        *reason = l->maybe_depthwise ? "depthwise (possibly: the file does not record its groups)" : l->admits.why_not[TD_METHOD_SVD];
    return methods;
}

int tool_model_option(int argc, char **argv, int *i, const char *cmd, tool_model_args *a)
{
    const char *v;
    int r;
    for (int excl = 0; excl < 2; excl++) {
        const char *opt = excl ? "--exclude" : "--layers";
        if (!(r = tool_opt_value(argc, argv, i, opt, &v))) continue;
        int *n = excl ? &a->nexcl : &a->nglobs;
        if (r < 0 || *n >= TOOL_MAXG) { tool_usage_error("%s: %s needs a glob (at most %d)", cmd, opt, TOOL_MAXG); return -1; }
        (excl ? a->excl : a->globs)[(*n)++] = v;
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--layout", &v))) {
        td_layout l;
        if (r < 0 || td_layout_parse(v, &l) != TD_OK) { tool_usage_error("%s: --layout must be keras2, keras3, torch, safetensors or auto", cmd); return -1; }
        a->layout = v;
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--layer-spec", &v))) {
        if (r < 0) { tool_usage_error("%s: --layer-spec needs a file", cmd); return -1; }
        a->spec = v;
        return 1;
    }
    if (a->takes_calibration && (r = tool_opt_value(argc, argv, i, "--calibration", &v))) {
        if (r < 0) { tool_usage_error("%s: --calibration needs a statistics file", cmd); return -1; }
        a->calibration = v;
        return 1;
    }
    return 0;
}

int tool_layer_selected(const tool_model_args *a, const char *name)
{
    int sel = a->nglobs == 0;
    for (int g = 0; g < a->nglobs; g++) sel |= fnmatch(a->globs[g], name, 0) == 0;
    for (int g = 0; g < a->nexcl; g++) sel &= fnmatch(a->excl[g], name, 0) != 0;
    return sel;
}

void tool_protect_model_inputs(tool_outputs *g, const char *in, const tool_model_args *a)
{
    tool_protect(g, in);
    tool_protect(g, a->spec);
    tool_protect(g, a->calibration);
}

int tool_open_model(td_model *m, const char *in, const tool_model_args *a, tool_outputs *g)
{
    td_layout lay = TD_LAYOUT_AUTO;
    if (a->layout && td_layout_parse(a->layout, &lay) != TD_OK)
        return tool_usage_error("--layout must be keras2, keras3, torch, safetensors or auto, got '%s'", a->layout);
    if (g) tool_protect_model_inputs(g, in, a);
    td_error err;
    td_error_clear(&err);
    /* a corrupt file can make libhdf5 loop forever while its structure is read (found by fuzz_raw:
     * H5HG_read under a vlen attribute read); a sound file reads in well under a second, so a
     * deadline ends the worker and main.c reports the SIGALRM as stuck input */
    tool_deadline_begin(in);
    td_status st = td_model_open(m, in, lay, &err);
    tool_deadline_end();
    if (st != TD_OK) return tool_fail_status(st, &err, in, NULL);
    if (a->spec && (st = td_model_apply_spec(m, a->spec, &err)) != TD_OK) {
        td_model_free(m);
        return tool_fail_status(st, &err, a->spec, NULL);
    }
    return TOOL_OK;
}

void tool_warn_assumed(const td_model *m)
{
    if (m->layout != TD_LAYOUT_TORCH && m->layout != TD_LAYOUT_SAFETENSORS) return;
    size_t n = 0;
    for (size_t i = 0; i < m->nlayers; i++)
        n += m->layers[i].desc.kind == TD_LAYER_CONV2D && m->layers[i].geometry == TD_GEOMETRY_ASSUMED;
    if (n)
        tool_warn("%s: %zu conv layer%s without recorded geometry were taken as groups 1, stride 1, padding 0; record it "
                  "with tdecomp.torch.export (or give a --layer-spec)", m->file, n, n == 1 ? "" : "s");
}
