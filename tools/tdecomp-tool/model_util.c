#include <fnmatch.h>
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

json_t *tool_layer_shape(const td_model_layer *l)
{
    const td_layer_desc *d = &l->desc;
    if (d->kind == TD_LAYER_DENSE) {
        size_t s[2] = {d->cout, d->cin};
        return tool_json_sizes(s, 2);
    }
    size_t s[4] = {d->cout, d->cin / (d->groups ? d->groups : 1), d->kh, d->kw};
    return tool_json_sizes(s, 4);
}

int tool_layer_methods(const td_model_layer *l, json_t *methods, const char **reason)
{
    *reason = NULL;
    for (int k = TD_METHOD_TUCKER2; k < TD_METHOD_COUNT; k++)
        if (l->admits.mask & TD_METHOD_BIT(k)) json_array_append_new(methods, json_string(td_method_name((td_method)k)));
    if (l->admits.mask) return 1;
    *reason = l->maybe_depthwise ? "depthwise (possibly; a layer spec with groups 1 says otherwise)" : l->admits.why_not[TD_METHOD_SVD];
    return 0;
}

int tool_open_model(td_model *m, const char *in, const char *layout, const char *spec)
{
    td_layout lay = TD_LAYOUT_AUTO;
    if (layout && td_layout_parse(layout, &lay) != TD_OK)
        return tool_usage_error("--layout must be keras2, keras3, torch or auto, got '%s'", layout);
    td_error err;
    td_error_clear(&err);
    /* a corrupt file can make libhdf5 loop forever while we read its structure (found by fuzz_raw:
     * H5HG_read under a vlen attribute read); a sound file's structure reads in well under a second,
     * so a deadline ends the child, and main.c reports the SIGALRM as stuck input */
    tool_deadline_begin();
    td_status st = td_model_open(m, in, lay, &err);
    tool_deadline_end();
    if (st != TD_OK) return tool_fail_status(st, &err, in, NULL);
    if (spec && (st = td_model_apply_spec(m, spec, &err)) != TD_OK) {
        td_model_free(m);
        return tool_fail_status(st, &err, spec, NULL);
    }
    return TOOL_OK;
}

int tool_model_option(int argc, char **argv, int *i, const char *cmd, tool_model_args *a)
{
    const char *v;
    int r;
    if ((r = tool_opt_value(argc, argv, i, "--layers", &v))) {
        if (r < 0 || a->nglobs >= TOOL_MAXG) { tool_usage_error("%s: --layers needs a glob (at most %d)", cmd, TOOL_MAXG); return -1; }
        a->globs[a->nglobs++] = v;
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--exclude", &v))) {
        if (r < 0 || a->nexcl >= TOOL_MAXG) { tool_usage_error("%s: --exclude needs a glob (at most %d)", cmd, TOOL_MAXG); return -1; }
        a->excl[a->nexcl++] = v;
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--layout", &v))) {
        td_layout l;
        if (r < 0 || td_layout_parse(v, &l) != TD_OK) { tool_usage_error("%s: --layout must be keras2, keras3, torch or auto", cmd); return -1; }
        a->layout = v;
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--layer-spec", &v))) {
        if (r < 0) { tool_usage_error("%s: --layer-spec needs a file", cmd); return -1; }
        a->spec = v;
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

void tool_model_sizes(const td_model *m, double *all, double *largest)
{
    *all = *largest = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        td_cost c;
        if (td_layer_cost(&m->layers[i].desc, &c) != TD_OK) continue;
        *all += (double)c.params;
        if ((double)c.params > *largest) *largest = (double)c.params;
    }
}
