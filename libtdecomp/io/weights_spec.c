/* --layer-spec: per-layer geometry from a JSON file (parsed with jansson). */
#include <jansson.h>
#include <string.h>
#include "io/weights_internal.h"

static int pair(json_t *v, size_t out[2], size_t min)
{
    if (!json_is_array(v) || json_array_size(v) != 2) return 0;
    for (int i = 0; i < 2; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < (json_int_t)min || json_integer_value(e) > 1000000) return 0;
        out[i] = (size_t)json_integer_value(e);
    }
    return 1;
}

td_status td_model_apply_spec(td_model *m, const char *spec_path, td_error *err)
{
    if (!m || !spec_path) return TD_EINVAL;
    json_error_t je;
    json_t *root = json_load_file(spec_path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        return td__error_set(err, TD_EFORMAT, spec_path, NULL, "not valid JSON (line %d: %s)", je.line, je.text);
    }
    td_status st = TD_OK;
    if (!json_is_object(root)) { st = td__error_set(err, TD_EFORMAT, spec_path, NULL, "must be a JSON object keyed by layer name"); goto done; }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        td_model_layer *l = NULL;
        for (size_t i = 0; i < m->nlayers; i++)
            if (!strcmp(m->layers[i].name, key)) l = &m->layers[i];
        if (!l) {
            /* layers without a decomposable kernel (pooling, ...) may appear in generated specs */
            int known = 0;
            for (size_t i = 0; i < m->ntensors && !known; i++) {
                size_t n = strlen(key);
                known = !strncmp(m->tensors[i].name, key, n) && m->tensors[i].name[n] == '.';
            }
            if (!known) { st = td__error_set(err, TD_EFORMAT, spec_path, key, "no such layer in %s", m->file); goto done; }
            continue;
        }
        if (!json_is_object(val)) { st = td__error_set(err, TD_EFORMAT, spec_path, key, "value must be an object"); goto done; }
        const char *f;
        json_t *v;
        json_object_foreach(val, f, v) {
            size_t p2[2];
            if (!strcmp(f, "stride")) {
                if (!pair(v, p2, 1)) goto bad;
                l->desc.stride[0] = p2[0]; l->desc.stride[1] = p2[1];
            } else if (!strcmp(f, "dilation")) {
                if (!pair(v, p2, 1)) goto bad;
                l->desc.dilation[0] = p2[0]; l->desc.dilation[1] = p2[1];
            } else if (!strcmp(f, "input_size")) {
                if (json_is_null(v)) continue;
                if (!pair(v, p2, 1)) goto bad;
                l->desc.input_known = 1;
                l->desc.in_h = p2[0]; l->desc.in_w = p2[1];
            } else if (!strcmp(f, "padding")) {
                if (json_is_string(v) && !strcmp(json_string_value(v), "same")) l->desc.pad_mode = TD_PAD_SAME;
                else if (json_is_string(v) && !strcmp(json_string_value(v), "valid")) l->desc.pad_mode = TD_PAD_VALID;
                else if (json_is_array(v) && json_array_size(v) == 4) {
                    for (size_t i = 0; i < 4; i++) {
                        json_t *e = json_array_get(v, i);
                        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 100000) goto bad;
                        l->desc.pad[i] = (size_t)json_integer_value(e);
                    }
                    l->desc.pad_mode = TD_PAD_EXPLICIT;
                } else goto bad;
            } else if (!strcmp(f, "groups")) {
                if (!json_is_integer(v) || json_integer_value(v) < 1) goto bad;
                size_t g = (size_t)json_integer_value(v);
                if (l->desc.kind != TD_LAYER_CONV2D) { if (g != 1) goto bad; continue; }
                /* the kernel stores Cin/groups input channels */
                const td_model_tensor *k = &m->tensors[l->kernel];
                size_t cin_g = m->layout == TD_LAYOUT_TORCH ? k->shape[1] : k->shape[2];
                if (l->cls == TD_CLASS_DEPTHWISE && !l->maybe_depthwise) continue; /* Keras says so already */
                if (l->desc.cout % g) goto bad;
                l->maybe_depthwise = 0;
                l->desc.groups = g;
                l->desc.cin = cin_g * g;
                l->cls = g == 1 ? TD_CLASS_CONV2D : (g == l->desc.cin ? TD_CLASS_DEPTHWISE : TD_CLASS_GROUPED);
            } else {
                st = td__error_set(err, TD_EFORMAT, spec_path, key, "unknown key \"%s\" (stride, padding, dilation, groups, input_size)", f);
                goto done;
            }
            continue;
        bad:
            st = td__error_set(err, TD_EFORMAT, spec_path, key, "malformed \"%s\"", f);
            goto done;
        }
    }
done:
    json_decref(root);
    return st == TD_OK ? td__model_admissions(m, err) : st;
}
