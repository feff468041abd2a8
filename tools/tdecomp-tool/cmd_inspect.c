/* tdecomp-tool inspect: the tensors and layers of a weight file. */
#include <stdio.h>
#include <string.h>
#include "model_util.h"

const char cmd_inspect_usage[] =
    "usage: tdecomp-tool inspect IN [--json] [--layout keras2|keras3|torch] [--layer-spec SPEC.json]\n"
    "Lists every layer (name, kind, OIHW shape, dtype, parameters, how it can be decomposed or why\n"
    "not) and every tensor of a Keras 2, Keras 3 or torch-style HDF5 weight file.\n";

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
        if (td_layout_parse(layout, &l) != TD_OK) return tool_usage_error("inspect: --layout must be keras2, keras3, torch or auto, got '%s'", layout);
    }
    td_model m;
    int rc = tool_open_model(&m, in, layout, spec);
    if (rc) return rc;
    json_t *o = json_object(), *tensors = json_array(), *layers = json_array();
    uint64_t lparams = 0;
    size_t ndec = 0;
    for (size_t i = 0; i < m.ntensors; i++) {
        const td_model_tensor *t = &m.tensors[i];
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(t->name));
        json_object_set_new(x, "shape", tool_json_sizes(t->shape, t->ndim));
        json_object_set_new(x, "dtype", json_string(t->dtype_name));
        json_array_append_new(tensors, x);
    }
    if (!json) printf("%-32s %-10s %-20s %-8s %10s  %s\n", "layer", "kind", "shape (OIHW)", "dtype", "params", "decomposable");
    for (size_t i = 0; i < m.nlayers; i++) {
        const td_model_layer *l = &m.layers[i];
        json_t *x = json_object(), *methods = json_array();
        const char *reason;
        int dec = tool_layer_methods(l, methods, &reason);
        td_cost c;
        uint64_t params = td_layer_cost(&l->desc, &c) == TD_OK ? c.params : 0;
        lparams += params;
        ndec += dec;
        json_object_set_new(x, "name", json_string(l->name));
        json_object_set_new(x, "kind", json_string(tool_kind_name(l)));
        json_object_set_new(x, "shape", tool_layer_shape(l));
        json_object_set_new(x, "dtype", json_string(m.tensors[l->kernel].dtype_name));
        json_object_set_new(x, "params", json_integer((json_int_t)params));
        json_object_set_new(x, "decomposable", json_boolean(dec));
        if (!json) {
            char shape[64], meth[96] = "";
            if (l->desc.kind == TD_LAYER_DENSE) snprintf(shape, sizeof shape, "(%zu, %zu)", l->desc.cout, l->desc.cin);
            else snprintf(shape, sizeof shape, "(%zu, %zu, %zu, %zu)", l->desc.cout, l->desc.cin / l->desc.groups, l->desc.kh, l->desc.kw);
            size_t k;
            json_t *e;
            json_array_foreach(methods, k, e) {
                strncat(meth, k ? ", " : "", sizeof meth - strlen(meth) - 1);
                strncat(meth, json_string_value(e), sizeof meth - strlen(meth) - 1);
            }
            printf("%-32s %-10s %-20s %-8s %10llu  %s\n", l->name, tool_kind_name(l), shape, m.tensors[l->kernel].dtype_name,
                   (unsigned long long)params, dec ? meth : reason);
        }
        json_object_set_new(x, "methods", methods);
        json_object_set_new(x, "reason", reason ? json_string(reason) : json_null());
        json_array_append_new(layers, x);
    }
    uint64_t total = td_model_total_params(&m);
    if (json) {
        json_t *tot = json_object();
        json_object_set_new(tot, "params", json_integer((json_int_t)total));
        json_object_set_new(tot, "layer_params", json_integer((json_int_t)lparams));
        json_object_set_new(tot, "tensors", json_integer((json_int_t)m.ntensors));
        json_object_set_new(tot, "layers", json_integer((json_int_t)m.nlayers));
        json_object_set_new(tot, "decomposable_layers", json_integer((json_int_t)ndec));
        json_object_set_new(o, "tdecomp_inspect", json_integer(1));
        json_object_set_new(o, "file", json_string(in));
        json_object_set_new(o, "layout", json_string(td_layout_name(m.layout)));
        json_object_set_new(o, "tensors", tensors);
        json_object_set_new(o, "layers", layers);
        json_object_set_new(o, "totals", tot);
        tool_print_json(o);
    } else {
        printf("\n%-48s %-22s %s\n", "tensor", "shape", "dtype");
        for (size_t i = 0; i < m.ntensors; i++) {
            const td_model_tensor *t = &m.tensors[i];
            char shape[96] = "(";
            for (int k = 0; k < t->ndim; k++) {
                char b[24];
                snprintf(b, sizeof b, "%s%zu", k ? ", " : "", t->shape[k]);
                strncat(shape, b, sizeof shape - strlen(shape) - 1);
            }
            strncat(shape, ")", sizeof shape - strlen(shape) - 1);
            printf("%-48s %-22s %s\n", t->name, shape, t->dtype_name);
        }
        printf("\nlayout %s: %zu layers (%zu decomposable), %zu tensors, %llu parameters (%llu in layer kernels)\n",
               td_layout_name(m.layout), m.nlayers, ndec, m.ntensors, (unsigned long long)total, (unsigned long long)lparams);
        json_decref(tensors);
        json_decref(layers);
        json_decref(o);
    }
    td_model_free(&m);
    return TOOL_OK;
}
