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
    if (l->cls == TD_CLASS_DEPTHWISE) { *reason = l->maybe_depthwise ? "depthwise (possibly; a layer spec with groups 1 says otherwise)" : "depthwise"; return 0; }
    if (l->cls == TD_CLASS_GROUPED) { *reason = "grouped"; return 0; }
    if (l->desc.kind == TD_LAYER_CONV2D && l->desc.kh * l->desc.kw > 1) {
        json_array_append_new(methods, json_string("tucker2"));
        json_array_append_new(methods, json_string("cp"));
        json_array_append_new(methods, json_string("svd"));
        json_array_append_new(methods, json_string("svd-grouped"));
    } else {
        json_array_append_new(methods, json_string("svd"));
    }
    return 1;
}

int tool_open_model(td_model *m, const char *in, const char *layout, const char *spec)
{
    td_layout lay = TD_LAYOUT_AUTO;
    if (layout && td_layout_parse(layout, &lay) != TD_OK)
        return tool_usage_error("--layout must be keras2, keras3, torch or auto, got '%s'", layout);
    td_error err;
    td_error_clear(&err);
    td_status st = td_model_open(m, in, lay, &err);
    if (st != TD_OK) return tool_fail_status(st, &err, in, NULL);
    if (spec && (st = td_model_apply_spec(m, spec, &err)) != TD_OK) {
        td_model_free(m);
        return tool_fail_status(st, &err, spec, NULL);
    }
    return TOOL_OK;
}
