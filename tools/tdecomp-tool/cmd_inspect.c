/* tdecomp-tool inspect: the tensors and layers of a weight file. */
#include <stdio.h>
#include <string.h>
#include "model_util.h"

const char cmd_inspect_usage[] =
    "usage: tdecomp-tool inspect IN [--json] [--layout keras2|keras3|torch] [--layer-spec SPEC.json]\n"
    "Lists every layer (name, kind, OIHW shape, dtype, parameters, how it can be decomposed or why\n"
    "not) and every tensor of a Keras 2, Keras 3 or torch-style HDF5 weight file.\n";

static json_t *tensor_json(const td_model_tensor *t)
{
    json_t *x = json_object();
    json_object_set_new(x, "name", json_string(t->name));
    json_object_set_new(x, "shape", tool_json_sizes(t->shape, t->ndim < TD_MAX_MODES ? t->ndim : TD_MAX_MODES));
    json_object_set_new(x, "dtype", json_string(t->dtype_name));
    return x;
}

/* A layer with its geometry and where each part came from. */
static json_t *layer_json(const td_model_layer *l, const char *dtype)
{
    const td_layer_desc *d = &l->desc;
    const char *reason;
    json_t *x = json_object(), *methods = tool_layer_methods(l, &reason);
    td_cost c;
    json_object_set_new(x, "name", json_string(l->name));
    json_object_set_new(x, "kind", json_string(tool_kind_name(l)));
    json_object_set_new(x, "shape", tool_layer_shape(l));
    json_object_set_new(x, "dtype", json_string(dtype));
    json_object_set_new(x, "params", json_integer(td_layer_cost(d, &c) == TD_OK ? (json_int_t)c.params : 0));
    json_object_set_new(x, "decomposable", json_boolean(l->admits.mask != 0));
    json_object_set_new(x, "methods", methods);
    json_object_set_new(x, "reason", reason ? json_string(reason) : json_null());
    if (d->kind == TD_LAYER_CONV2D) {
        json_object_set_new(x, "stride", tool_json_sizes(d->stride, 2));
        json_object_set_new(x, "dilation", tool_json_sizes(d->dilation, 2));
        json_object_set_new(x, "padding", d->pad_mode == TD_PAD_SAME ? json_string("same") : d->pad_mode == TD_PAD_VALID
                                              ? json_string("valid") : tool_json_sizes(d->pad, 4));
        json_object_set_new(x, "groups", json_integer((json_int_t)d->groups));
        json_object_set_new(x, "geometry", json_string(td_geometry_source_name(l->geometry)));
        const size_t hw[2] = {d->in_h, d->in_w};
        json_object_set_new(x, "input_size", d->input_known ? tool_json_sizes(hw, 2) : json_null());
        json_object_set_new(x, "input_size_source", json_string(d->input_known ? td_geometry_source_name(l->input_size) : "unknown"));
    }
    return x;
}

static void geometry_text(json_t *x, char *buf, size_t len)
{
    json_t *st = json_object_get(x, "stride"), *pd = json_object_get(x, "padding"), *in = json_object_get(x, "input_size");
    if (!st) { snprintf(buf, len, "-"); return; }
    char pads[48];
    if (json_is_string(pd)) snprintf(pads, sizeof pads, "%s", json_string_value(pd));
    else snprintf(pads, sizeof pads, "%lld,%lld,%lld,%lld", (long long)json_integer_value(json_array_get(pd, 0)),
                  (long long)json_integer_value(json_array_get(pd, 1)), (long long)json_integer_value(json_array_get(pd, 2)),
                  (long long)json_integer_value(json_array_get(pd, 3)));
    char ins[32] = "?";
    if (json_is_array(in)) snprintf(ins, sizeof ins, "%lldx%lld", (long long)json_integer_value(json_array_get(in, 0)), (long long)json_integer_value(json_array_get(in, 1)));
    snprintf(buf, len, "s%lld,%lld p%s g%lld in %s (%s; input %s)", (long long)json_integer_value(json_array_get(st, 0)),
             (long long)json_integer_value(json_array_get(st, 1)), pads, (long long)json_integer_value(json_object_get(x, "groups")), ins,
             json_string_value(json_object_get(x, "geometry")), json_string_value(json_object_get(x, "input_size_source")));
}

static void print_text(json_t *o)
{
    printf("%-32s %-10s %-20s %-8s %10s  %-44s %s\n", "layer", "kind", "shape (OIHW)", "dtype", "params", "geometry (source)", "decomposable");
    size_t i, k;
    json_t *x, *e;
    json_array_foreach(json_object_get(o, "layers"), i, x) {
        char shape[64] = "(", geo[160], meth[96] = "";
        json_array_foreach(json_object_get(x, "shape"), k, e) {
            char b[24];
            snprintf(b, sizeof b, "%s%lld", k ? ", " : "", (long long)json_integer_value(e));
            strncat(shape, b, sizeof shape - strlen(shape) - 2);
        }
        strcat(shape, ")");
        json_array_foreach(json_object_get(x, "methods"), k, e) {
            strncat(meth, k ? ", " : "", sizeof meth - strlen(meth) - 1);
            strncat(meth, json_string_value(e), sizeof meth - strlen(meth) - 1);
        }
        geometry_text(x, geo, sizeof geo);
        printf("%-32s %-10s %-20s %-8s %10lld  %-44s %s\n", json_string_value(json_object_get(x, "name")),
               json_string_value(json_object_get(x, "kind")), shape, json_string_value(json_object_get(x, "dtype")),
               (long long)json_integer_value(json_object_get(x, "params")), geo,
               json_is_true(json_object_get(x, "decomposable")) ? meth : json_string_value(json_object_get(x, "reason")));
    }
    printf("\n%-48s %-22s %s\n", "tensor", "shape", "dtype");
    json_array_foreach(json_object_get(o, "tensors"), i, x) {
        char shape[96] = "(";
        json_array_foreach(json_object_get(x, "shape"), k, e) {
            char b[24];
            snprintf(b, sizeof b, "%s%lld", k ? ", " : "", (long long)json_integer_value(e));
            strncat(shape, b, sizeof shape - strlen(shape) - 2);
        }
        strcat(shape, ")");
        printf("%-48s %-22s %s\n", json_string_value(json_object_get(x, "name")), shape, json_string_value(json_object_get(x, "dtype")));
    }
    json_t *t = json_object_get(o, "totals");
    printf("\nlayout %s: %lld layers (%lld decomposable), %lld tensors, %lld kernel parameters, %lld other elements\n",
           json_string_value(json_object_get(o, "layout")), (long long)json_integer_value(json_object_get(t, "layers")),
           (long long)json_integer_value(json_object_get(t, "decomposable_layers")), (long long)json_integer_value(json_object_get(t, "tensors")),
           (long long)json_integer_value(json_object_get(t, "params")), (long long)json_integer_value(json_object_get(t, "other_elements")));
}

int cmd_inspect(int argc, char **argv)
{
    const char *in = NULL, *layout = NULL, *spec = NULL, *v;
    int json = 0, r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_inspect_usage, stdout); return TOOL_OK; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((r = tool_opt_value(argc, argv, &i, "--layout", &v))) {
            if (r < 0) return tool_usage_error("inspect: --layout needs a value");
            layout = v;
        } else if ((r = tool_opt_value(argc, argv, &i, "--layer-spec", &v))) {
            if (r < 0) return tool_usage_error("inspect: --layer-spec needs a file");
            spec = v;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("inspect: unknown option '%s' (see 'tdecomp-tool inspect --help')", a);
        } else if (!in) in = a;
        else return tool_usage_error("inspect: unexpected argument '%s'", a);
    }
    if (!in) return tool_usage_error("inspect: missing input file");
    if (layout) {
        td_layout l;
        if (td_layout_parse(layout, &l) != TD_OK) return tool_usage_error("inspect: --layout must be keras2, keras3, torch, safetensors or auto, got '%s'", layout);
    }
    td_model m;
    tool_model_args ma;
    memset(&ma, 0, sizeof ma);
    ma.layout = layout;
    ma.spec = spec;
    int rc = tool_open_model(&m, in, &ma, NULL);
    if (rc) return rc;
    json_t *o = json_object(), *tensors = json_array(), *layers = json_array();
    size_t ndec = 0;
    for (size_t i = 0; i < m.ntensors; i++) json_array_append_new(tensors, tensor_json(&m.tensors[i]));
    for (size_t i = 0; i < m.nlayers; i++) {
        json_t *x = layer_json(&m.layers[i], m.tensors[m.layers[i].kernel].dtype_name);
        ndec += json_is_true(json_object_get(x, "decomposable"));
        json_array_append_new(layers, x);
    }
    json_t *tot = json_object();
    json_object_set_new(tot, "params", json_integer((json_int_t)td_model_kernel_params(&m)));
    json_object_set_new(tot, "layer_params", json_integer((json_int_t)td_model_kernel_params(&m)));
    json_object_set_new(tot, "other_elements", json_integer((json_int_t)(td_model_total_elements(&m) - td_model_kernel_params(&m))));
    json_object_set_new(tot, "tensors", json_integer((json_int_t)m.ntensors));
    json_object_set_new(tot, "layers", json_integer((json_int_t)m.nlayers));
    json_object_set_new(tot, "decomposable_layers", json_integer((json_int_t)ndec));
    json_object_set_new(o, "tdecomp_inspect", json_integer(1));
    json_object_set_new(o, "file", json_string(in));
    json_object_set_new(o, "layout", json_string(td_layout_name(m.layout)));
    json_object_set_new(o, "geometry_record", json_boolean(m.has_geometry));
    json_object_set_new(o, "tensors", tensors);
    json_object_set_new(o, "layers", layers);
    json_object_set_new(o, "totals", tot);
    if (json) tool_print_json(o);
    else { print_text(o); json_decref(o); }
    td_model_free(&m);
    return TOOL_OK;
}
