/* Layer geometry from a file's own record (tdecomp_geometry) and from a --layer-spec: one parser
 * for both (jansson), field by field, each layer remembering where its geometry came from. */
#include <jansson.h>
#include <string.h>
#include "io/model_internal.h"

/* Largest extent, stride, dilation or padding accepted: far beyond any real layer, small enough
 * that cost products stay exact. */
#define MAX_GEOMETRY 1000000

static int pair(json_t *v, size_t out[2], size_t min)
{
    if (!json_is_array(v) || json_array_size(v) != 2) return 0;
    for (int i = 0; i < 2; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < (json_int_t)min || json_integer_value(e) > MAX_GEOMETRY) return 0;
        out[i] = (size_t)json_integer_value(e);
    }
    return 1;
}

static int padding(td_layer_desc *d, json_t *v)
{
    if (json_is_string(v) && !strcmp(json_string_value(v), "same")) { d->pad_mode = TD_PAD_SAME; return 1; }
    if (json_is_string(v) && !strcmp(json_string_value(v), "valid")) { d->pad_mode = TD_PAD_VALID; return 1; }
    if (!json_is_array(v) || json_array_size(v) != 4) return 0;
    size_t p[4];
    for (size_t i = 0; i < 4; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > MAX_GEOMETRY) return 0;
        p[i] = (size_t)json_integer_value(e);
    }
    memcpy(d->pad, p, sizeof p);
    d->pad_mode = TD_PAD_EXPLICIT;
    return 1;
}

/* groups g: the kernel stores Cin/groups input channels. */
static int groups(const td_model *m, td_model_layer *l, json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_GEOMETRY) return 0;
    const size_t g = (size_t)json_integer_value(v);
    if (l->desc.kind != TD_LAYER_CONV2D) return g == 1;
    if (l->cls == TD_CLASS_DEPTHWISE && !l->maybe_depthwise) return 1; /* Keras says so already */
    const td_model_tensor *k = &m->tensors[l->kernel];
    const size_t cin_g = m->layout == TD_LAYOUT_KERAS2 || m->layout == TD_LAYOUT_KERAS3 ? k->shape[2] : k->shape[1];
    if (l->desc.cout % g) return 0;
    l->maybe_depthwise = 0;
    l->desc.groups = g;
    l->desc.cin = cin_g * g;
    l->cls = g == 1 ? TD_CLASS_CONV2D : (g == l->desc.cin ? TD_CLASS_DEPTHWISE : TD_CLASS_GROUPED);
    return 1;
}

/* One known field of a layer's geometry; 1 applied, 0 malformed, -1 not a geometry field. */
static int field(const td_model *m, td_model_layer *l, const char *f, json_t *v, td_geometry_source src)
{
    size_t p2[2];
    if (!strcmp(f, "stride")) {
        if (!pair(v, p2, 1)) return 0;
        l->desc.stride[0] = p2[0];
        l->desc.stride[1] = p2[1];
    } else if (!strcmp(f, "dilation")) {
        if (!pair(v, p2, 1)) return 0;
        l->desc.dilation[0] = p2[0];
        l->desc.dilation[1] = p2[1];
    } else if (!strcmp(f, "input_size")) {
        if (json_is_null(v)) return 1;
        if (!pair(v, p2, 1)) return 0;
        l->desc.input_known = 1;
        l->desc.in_h = p2[0];
        l->desc.in_w = p2[1];
        l->input_size = src;
        return 1;
    } else if (!strcmp(f, "padding")) {
        if (!padding(&l->desc, v)) return 0;
    } else if (!strcmp(f, "groups")) {
        if (!groups(m, l, v)) return 0;
    } else {
        return -1;
    }
    l->geometry = src;
    return 1;
}

/* The record's extras: padding_mode and the BatchNorm that follows. */
static int record_extras(td_model *m, td_model_layer *l, const char *f, json_t *v)
{
    if (!strcmp(f, "padding_mode")) {
        static const char *const modes[] = {"zeros", "reflect", "replicate", "circular"};
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (json_is_string(v) && !strcmp(json_string_value(v), modes[i])) { l->padding_mode = modes[i]; return 1; }
        return 0;
    }
    if (!strcmp(f, "batchnorm")) {
        if (json_is_null(v)) return 1;
        const char *name = json_string_value(json_object_get(v, "name"));
        json_t *eps = json_object_get(v, "eps");
        if (!name || !json_is_number(eps) || !(json_number_value(eps) >= 0)) return 0;
        size_t n = strlen(name);
        char *key = malloc(n + 16);
        if (!key) return 0;
        snprintf(key, n + 16, "%s.weight", name);
        l->bn_scale = td__model_find_tensor_named(m, key);
        snprintf(key, n + 16, "%s.running_var", name);
        l->bn_var = td__model_find_tensor_named(m, key);
        free(key);
        l->bn_eps = json_number_value(eps);
        return l->bn_scale >= 0 && l->bn_var >= 0;
    }
    return 1; /* other keys (name, kind, ...) are the record's own or future: ignored */
}

td_status td__model_apply_record(td_model *m, const char *text, td_error *err)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    const char *attr = "tdecomp_geometry";
    td_status st = TD_OK;
    td__strlist order;
    memset(&order, 0, sizeof order);
    json_t *layers = json_object_get(root, "layers");
    if (!root) { st = td__error_set(err, TD_EFORMAT, m->file, attr, "not valid JSON (line %d: %s)", je.line, je.text); goto done; }
    if (json_integer_value(json_object_get(root, "tdecomp_geometry")) != 1 || !json_is_array(layers)) {
        st = td__error_set(err, TD_EFORMAT, m->file, attr, "not a version-1 geometry record");
        goto done;
    }
    size_t idx;
    json_t *e;
    json_array_foreach(layers, idx, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name) { st = td__error_set(err, TD_EFORMAT, m->file, attr, "entry %zu has no name", idx); goto done; }
        if ((st = td__strlist_push(&order, name)) != TD_OK) goto done;
        const int li = td__model_find_layer(m, name);
        if (li < 0) continue; /* a module without a decomposable kernel here */
        td_model_layer *l = &m->layers[li];
        const char *f;
        json_t *v;
        json_object_foreach(e, f, v) {
            int r = field(m, l, f, v, TD_GEOMETRY_FILE);
            if (r < 0) r = record_extras(m, l, f, v);
            if (!r) { st = td__error_set(err, TD_EFORMAT, m->file, name, "geometry record: malformed \"%s\"", f); goto done; }
        }
    }
    m->has_geometry = 1;
    st = td__model_order(m, &order);
done:
    td__strlist_free(&order);
    json_decref(root);
    return st;
}

/* 1 when some tensor belongs to module key (a pooling layer's name in a generated spec). */
static int known_module(const td_model *m, const char *key)
{
    const size_t n = strlen(key);
    for (size_t i = 0; i < m->ntensors; i++)
        if (!strncmp(m->tensors[i].name, key, n) && m->tensors[i].name[n] == '.') return 1;
    return 0;
}

static td_status apply_spec_layer(td_model *m, const char *spec_path, const char *key, json_t *val, td_error *err)
{
    const int li = td__model_find_layer(m, key);
    if (li < 0) {
        if (!known_module(m, key)) return td__error_set(err, TD_EFORMAT, spec_path, key, "no such layer in %s", m->file);
        return TD_OK;
    }
    if (!json_is_object(val)) return td__error_set(err, TD_EFORMAT, spec_path, key, "value must be an object");
    const char *f;
    json_t *v;
    json_object_foreach(val, f, v) {
        const int r = field(m, &m->layers[li], f, v, TD_GEOMETRY_SPEC);
        if (r < 0)
            return td__error_set(err, TD_EFORMAT, spec_path, key,
                                 "unknown key \"%s\" (stride, padding, dilation, groups, input_size)", f);
        if (!r) return td__error_set(err, TD_EFORMAT, spec_path, key, "malformed \"%s\"", f);
    }
    return TD_OK;
}

td_status td_model_apply_spec(td_model *m, const char *spec_path, td_error *err)
{
    if (!m || !spec_path) return TD_EINVAL;
    json_error_t je;
    json_t *root = json_load_file(spec_path, JSON_REJECT_DUPLICATES, &je);
    if (!root) return td__error_set(err, TD_EFORMAT, spec_path, NULL, "not valid JSON (line %d: %s)", je.line, je.text);
    td_status st = TD_OK;
    if (!json_is_object(root)) st = td__error_set(err, TD_EFORMAT, spec_path, NULL, "must be a JSON object keyed by layer name");
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (st != TD_OK) break;
        st = apply_spec_layer(m, spec_path, key, val, err);
    }
    json_decref(root);
    return st == TD_OK ? td__model_admissions(m, err) : st;
}
