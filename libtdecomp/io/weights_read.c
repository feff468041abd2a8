/* Reading weight files: torch-style state dicts, Keras 2 legacy .h5, Keras 3 .weights.h5. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "io/weights_internal.h"

const char *td_layout_name(td_layout l)
{
    switch (l) {
    case TD_LAYOUT_TORCH: return "torch";
    case TD_LAYOUT_KERAS2: return "keras2";
    case TD_LAYOUT_KERAS3: return "keras3";
    default: return "auto";
    }
}

td_status td_layout_parse(const char *s, td_layout *l)
{
    if (!s || !l) return TD_EINVAL;
    if (!strcmp(s, "auto")) *l = TD_LAYOUT_AUTO;
    else if (!strcmp(s, "torch")) *l = TD_LAYOUT_TORCH;
    else if (!strcmp(s, "keras2")) *l = TD_LAYOUT_KERAS2;
    else if (!strcmp(s, "keras3")) *l = TD_LAYOUT_KERAS3;
    else return TD_EINVAL;
    return TD_OK;
}

void td_model_free(td_model *m)
{
    if (!m) return;
    free(m->tensors);
    free(m->layers);
    free(m->keras_layer_names);
    memset(m, 0, sizeof *m);
}

uint64_t td_model_total_params(const td_model *m)
{
    uint64_t t = 0;
    for (size_t i = 0; i < m->ntensors; i++) {
        uint64_t c = 1;
        for (int k = 0; k < m->tensors[i].ndim; k++) c *= m->tensors[i].shape[k];
        t += c;
    }
    return t;
}

typedef struct visit_ctx {
    td_model *m;
    size_t cap;
    td_status st;
    td_error *err;
} visit_ctx;

static herr_t visit_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    visit_ctx *v = data;
    char path[600];
    snprintf(path, sizeof path, "/%s", name);
    if (info->type == H5L_TYPE_SOFT || info->type == H5L_TYPE_EXTERNAL) {
        v->st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "%s links are not allowed in weight files",
                              info->type == H5L_TYPE_SOFT ? "soft" : "external");
        return -1;
    }
    if (info->type != H5L_TYPE_HARD) return 0;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) {
        v->st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "unreadable object header");
        return -1;
    }
    if (oi.type != H5O_TYPE_DATASET) return 0;
    if (strlen(path) >= sizeof v->m->tensors[0].path) {
        v->st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "dataset path too long");
        return -1;
    }
    if (v->m->ntensors == v->cap) {
        size_t nc = v->cap ? 2 * v->cap : 64;
        td_model_tensor *t = realloc(v->m->tensors, nc * sizeof *t);
        if (!t) { v->st = TD_ENOMEM; return -1; }
        v->m->tensors = t;
        v->cap = nc;
    }
    td_model_tensor *t = &v->m->tensors[v->m->ntensors];
    memset(t, 0, sizeof *t);
    memcpy(t->path, path, strlen(path) + 1); /* length checked above */
    size_t nl = strlen(name);
    if (nl >= sizeof t->name) nl = sizeof t->name - 1;
    memcpy(t->name, name, nl);
    t->name[nl] = '\0';
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) { v->st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "cannot be opened"); return -1; }
    hid_t ty = H5Dget_type(d), sp = H5Dget_space(d);
    int ok = ty >= 0 && sp >= 0;
    if (ok) {
        t->dtype = td__h5_dtype_of(ty, t->dtype_name, sizeof t->dtype_name);
        int nd = H5Sget_simple_extent_ndims(sp);
        hsize_t dims[TD_MAX_MODES];
        if (nd < 0 || nd > TD_MAX_MODES || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) ok = 0;
        else if ((v->st = td__h5_check_extent(d, v->m->file, path, nd, dims, ty, NULL, v->err)) != TD_OK) {
            H5Sclose(sp);
            H5Tclose(ty);
            H5Dclose(d);
            return -1;
        } else {
            t->ndim = nd;
            for (int k = 0; k < nd; k++) t->shape[k] = (size_t)dims[k];
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    H5Dclose(d);
    if (!ok) { v->st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "unreadable type or dataspace"); return -1; }
    v->m->ntensors++;
    return 0;
}

static int find_tensor(const td_model *m, const char *path)
{
    for (size_t i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].path, path)) return (int)i;
    return -1;
}

static td_model_layer *new_layer(td_model *m, size_t *cap)
{
    if (m->nlayers == *cap) {
        size_t nc = *cap ? 2 * *cap : 32;
        td_model_layer *l = realloc(m->layers, nc * sizeof *l);
        if (!l) return NULL;
        m->layers = l;
        *cap = nc;
    }
    td_model_layer *l = &m->layers[m->nlayers++];
    memset(l, 0, sizeof *l);
    l->bias = -1;
    l->group_pos = -1;
    l->desc.groups = 1;
    l->desc.stride[0] = l->desc.stride[1] = 1;
    l->desc.dilation[0] = l->desc.dilation[1] = 1;
    l->desc.pad_mode = TD_PAD_EXPLICIT;
    return l;
}

/* Fills desc from an OIHW/HWIO 4-D or a 2-D kernel. */
static int describe(td_model_layer *l, const td_model_tensor *k, int keras, int depthwise)
{
    if (k->dtype == TD_DTYPE_OTHER) return 0;
    if (k->ndim == 4) {
        l->desc.kind = TD_LAYER_CONV2D;
        if (keras) { /* HWIO: (kh, kw, Cin/groups, Cout); depthwise (kh, kw, Cin, dm) */
            l->desc.kh = k->shape[0];
            l->desc.kw = k->shape[1];
            if (depthwise) {
                l->desc.cin = k->shape[2];
                l->desc.cout = k->shape[2] * k->shape[3];
                l->desc.groups = k->shape[2];
                l->cls = TD_CLASS_DEPTHWISE;
            } else {
                l->desc.cin = k->shape[2];
                l->desc.cout = k->shape[3];
                l->cls = TD_CLASS_CONV2D;
            }
        } else {
            l->desc.cout = k->shape[0];
            l->desc.cin = k->shape[1];
            l->desc.kh = k->shape[2];
            l->desc.kw = k->shape[3];
            l->cls = TD_CLASS_CONV2D;
            if (k->shape[1] == 1 && k->shape[0] > 1) { l->maybe_depthwise = 1; l->cls = TD_CLASS_DEPTHWISE; }
        }
        return l->desc.cout && l->desc.cin && l->desc.kh && l->desc.kw;
    }
    if (k->ndim == 2) {
        l->desc.kind = TD_LAYER_DENSE;
        l->desc.cout = keras ? k->shape[1] : k->shape[0];
        l->desc.cin = keras ? k->shape[0] : k->shape[1];
        l->desc.kh = l->desc.kw = 1;
        l->cls = TD_CLASS_DENSE;
        return l->desc.cout && l->desc.cin;
    }
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static td_status read_torch(td_model *m, td_error *err)
{
    size_t cap = 0;
    for (size_t i = 0; i < m->ntensors; i++) {
        td_model_tensor *t = &m->tensors[i];
        for (char *p = t->name; *p; p++) if (*p == '/') *p = '.';
    }
    for (size_t i = 0; i < m->ntensors; i++) {
        const td_model_tensor *t = &m->tensors[i];
        if (!ends_with(t->name, ".weight") || (t->ndim != 4 && t->ndim != 2) || t->dtype == TD_DTYPE_OTHER) continue;
        td_model_layer *l = new_layer(m, &cap);
        if (!l) return TD_ENOMEM;
        size_t nl = strlen(t->name) - strlen(".weight");
        if (nl >= sizeof l->name) return td__error_set(err, TD_EFORMAT, m->file, t->path, "key too long");
        memcpy(l->name, t->name, nl);
        l->name[nl] = '\0';
        l->kernel = (int)i;
        if (!describe(l, t, 0, 0)) { m->nlayers--; continue; }
        char bname[600];
        snprintf(bname, sizeof bname, "%s.bias", l->name);
        for (size_t j = 0; j < m->ntensors; j++)
            if (!strcmp(m->tensors[j].name, bname) && m->tensors[j].ndim == 1 && m->tensors[j].shape[0] == l->desc.cout &&
                m->tensors[j].dtype != TD_DTYPE_OTHER)
                l->bias = (int)j;
        l->desc.has_bias = l->bias >= 0;
    }
    return TD_OK;
}

static int json_pair(json_t *v, size_t out[2])
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) { out[0] = out[1] = (size_t)json_integer_value(v); return 1; }
    if (json_array_size(v) != 2) return 0;
    for (int i = 0; i < 2; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < 0) return 0;
        out[i] = (size_t)json_integer_value(e);
    }
    return 1;
}

/* Spatial output of a window op (conv or pooling) in Keras's 'same'/'valid' semantics. */
static int window_out(size_t in, size_t k, size_t s, size_t d, int same, size_t *out)
{
    if (s == 0) return 0;
    if (same) { *out = (in + s - 1) / s; return 1; }
    size_t eff = (k - 1) * d + 1;
    if (in < eff) return 0;
    *out = (in - eff) / s + 1;
    return 1;
}

/* Sequential models: the input size from batch_input_shape (NHWC), carried through convs,
 * zero padding and pooling, so --target-flops works without a layer spec. Other topologies are
 * left alone (a spec gives their sizes). */
static void propagate_sizes(td_model *m, json_t *root, json_t *layers)
{
    const char *cls = json_string_value(json_object_get(root, "class_name"));
    if (!cls || strcmp(cls, "Sequential")) return;
    size_t h = 0, w = 0, idx;
    int known = 0;
    json_t *jl;
    json_array_foreach(layers, idx, jl) {
        const char *lc = json_string_value(json_object_get(jl, "class_name"));
        json_t *cfg = json_object_get(jl, "config");
        json_t *bis = json_object_get(cfg, "batch_input_shape");
        if (!bis) bis = json_object_get(cfg, "batch_shape");
        if (json_array_size(bis) == 4 && json_is_integer(json_array_get(bis, 1)) && json_is_integer(json_array_get(bis, 2))) {
            h = (size_t)json_integer_value(json_array_get(bis, 1));
            w = (size_t)json_integer_value(json_array_get(bis, 2));
            known = h > 0 && w > 0;
        }
        if (!known || !lc) continue;
        if (!strcmp(lc, "Conv2D") || !strcmp(lc, "DepthwiseConv2D")) {
            const char *name = json_string_value(json_object_get(cfg, "name"));
            for (size_t i = 0; name && i < m->nlayers; i++)
                if (!strcmp(m->layers[i].name, name) && m->layers[i].desc.kind == TD_LAYER_CONV2D) {
                    m->layers[i].desc.input_known = 1;
                    m->layers[i].desc.in_h = h;
                    m->layers[i].desc.in_w = w;
                }
            size_t k[2], st[2] = {1, 1}, d[2] = {1, 1};
            const char *pad = json_string_value(json_object_get(cfg, "padding"));
            if (!json_pair(json_object_get(cfg, "kernel_size"), k)) { known = 0; continue; }
            json_pair(json_object_get(cfg, "strides"), st);
            json_pair(json_object_get(cfg, "dilation_rate"), d);
            int same = pad && !strcmp(pad, "same");
            known = window_out(h, k[0], st[0], d[0], same, &h) && window_out(w, k[1], st[1], d[1], same, &w);
        } else if (!strcmp(lc, "ZeroPadding2D")) {
            json_t *p = json_object_get(cfg, "padding");
            size_t a[2];
            if (json_pair(p, a)) { h += 2 * a[0]; w += 2 * a[1]; }
            else if (json_array_size(p) == 2 && json_pair(json_array_get(p, 0), a)) {
                size_t b[2];
                h += a[0] + a[1];
                if (json_pair(json_array_get(p, 1), b)) w += b[0] + b[1];
                else known = 0;
            } else known = 0;
        } else if (!strcmp(lc, "MaxPooling2D") || !strcmp(lc, "AveragePooling2D")) {
            size_t k[2] = {2, 2}, st[2];
            json_pair(json_object_get(cfg, "pool_size"), k);
            if (!json_pair(json_object_get(cfg, "strides"), st)) { st[0] = k[0]; st[1] = k[1]; }
            const char *pad = json_string_value(json_object_get(cfg, "padding"));
            int same = pad && !strcmp(pad, "same");
            known = window_out(h, k[0], st[0], 1, same, &h) && window_out(w, k[1], st[1], 1, same, &w);
        } else if (!strcmp(lc, "Flatten") || !strcmp(lc, "Dense") || !strncmp(lc, "Global", 6) || !strcmp(lc, "Reshape")) {
            known = 0;
        }
    }
}

/* Keras config (model.save): strides, padding, dilation, groups per layer name. */
static void apply_keras_config(td_model *m, hid_t file)
{
    char *buf = malloc(1 << 22);
    if (!buf) return;
    if (td__h5_read_str_attr(file, "model_config", buf, 1 << 22) != 1) { free(buf); return; }
    json_error_t je;
    json_t *root = json_loads(buf, 0, &je);
    free(buf);
    if (!root) return;
    json_t *layers = json_object_get(json_object_get(root, "config"), "layers");
    size_t idx;
    json_t *jl;
    propagate_sizes(m, root, layers);
    json_array_foreach(layers, idx, jl) {
        json_t *cfg = json_object_get(jl, "config");
        const char *name = json_string_value(json_object_get(cfg, "name"));
        if (!name) continue;
        for (size_t i = 0; i < m->nlayers; i++) {
            td_model_layer *l = &m->layers[i];
            if (strcmp(l->name, name) || l->desc.kind != TD_LAYER_CONV2D) continue;
            json_t *s = json_object_get(cfg, "strides"), *d = json_object_get(cfg, "dilation_rate");
            if (json_array_size(s) == 2) {
                l->desc.stride[0] = (size_t)json_integer_value(json_array_get(s, 0));
                l->desc.stride[1] = (size_t)json_integer_value(json_array_get(s, 1));
            }
            if (json_array_size(d) == 2) {
                l->desc.dilation[0] = (size_t)json_integer_value(json_array_get(d, 0));
                l->desc.dilation[1] = (size_t)json_integer_value(json_array_get(d, 1));
            }
            const char *pad = json_string_value(json_object_get(cfg, "padding"));
            if (pad && !strcmp(pad, "same")) l->desc.pad_mode = TD_PAD_SAME;
            else if (pad && !strcmp(pad, "valid")) l->desc.pad_mode = TD_PAD_VALID;
            json_int_t g = json_integer_value(json_object_get(cfg, "groups"));
            if (g > 1 && l->cls == TD_CLASS_CONV2D) {
                l->desc.groups = (size_t)g;
                l->desc.cin *= (size_t)g; /* the kernel stores Cin/groups */
                l->cls = TD_CLASS_GROUPED;
            }
        }
    }
    json_decref(root);
}

static td_status read_keras2(td_model *m, hid_t file, td_error *err)
{
    const char *roots[2] = {"/model_weights", "/"};
    hid_t g = H5I_INVALID_HID;
    for (int r = 0; r < 2 && g < 0; r++) {
        if (r == 0 && H5Lexists(file, "model_weights", H5P_DEFAULT) <= 0) continue;
        hid_t c = H5Gopen2(file, roots[r], H5P_DEFAULT);
        if (c < 0) continue;
        if (H5Aexists(c, "layer_names") > 0 || H5Aexists(c, "layer_names0") > 0) {
            g = c;
            snprintf(m->weights_root, sizeof m->weights_root, "%s", roots[r]);
        } else {
            H5Gclose(c);
        }
    }
    if (g < 0) return td__error_set(err, TD_EFORMAT, m->file, NULL, "no Keras layer_names attribute");
    size_t n = 0;
    int vlen = 1;
    int rc = td__h5_read_str_list(g, "layer_names", &m->keras_layer_names, &n, &vlen);
    m->keras_nlayer_names = n;
    m->keras_vlen_names = vlen;
    td_status st = TD_OK;
    if (rc < 0) { st = td__error_set(err, TD_EFORMAT, m->file, m->weights_root, "malformed layer_names attribute"); goto done; }
    size_t cap = 0;
    m->keras_colon_names = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->keras_layer_names[i], m->keras_layer_names[j])) {
                st = td__error_set(err, TD_EFORMAT, m->file, m->weights_root, "layer %s is listed twice in layer_names",
                                   m->keras_layer_names[i]);
                goto done;
            }
    for (size_t i = 0; i < n; i++) {
        const char *ln = m->keras_layer_names[i];
        char gpath[600];
        snprintf(gpath, sizeof gpath, "%s%s%s", strcmp(m->weights_root, "/") ? m->weights_root : "", "/", ln);
        if (H5Lexists(file, gpath, H5P_DEFAULT) <= 0) {
            st = td__error_set(err, TD_EFORMAT, m->file, gpath, "layer %s is listed in layer_names but has no group", ln);
            goto done;
        }
        hid_t lg = H5Gopen2(file, gpath, H5P_DEFAULT);
        if (lg < 0) { st = td__error_set(err, TD_EFORMAT, m->file, gpath, "is not a group"); goto done; }
        char (*wn)[256] = NULL;
        size_t nw = 0;
        int wv;
        rc = td__h5_read_str_list(lg, "weight_names", &wn, &nw, &wv);
        H5Gclose(lg);
        if (rc < 0) { free(wn); st = td__error_set(err, TD_EFORMAT, m->file, gpath, "malformed weight_names attribute"); goto done; }
        int kernel = -1, bias = -1, depthwise = 0;
        for (size_t w = 0; w < nw; w++) {
            char dpath[1200];
            snprintf(dpath, sizeof dpath, "%s/%s", gpath, wn[w]);
            int ti = find_tensor(m, dpath);
            if (ti < 0) {
                st = td__error_set(err, TD_EFORMAT, m->file, dpath, "listed in weight_names but missing");
                free(wn);
                goto done;
            }
            const char *base = strrchr(wn[w], '/') ? strrchr(wn[w], '/') + 1 : wn[w];
            if (!strstr(base, ":")) m->keras_colon_names = 0;
            if (!strncmp(base, "depthwise_kernel", 16)) { kernel = ti; depthwise = 1; }
            else if (!strncmp(base, "kernel", 6) && (base[6] == '\0' || base[6] == ':')) kernel = ti;
            else if (!strncmp(base, "bias", 4) && (base[4] == '\0' || base[4] == ':')) bias = ti;
        }
        free(wn);
        if (kernel < 0) continue;
        if (m->tensors[kernel].dtype == TD_DTYPE_OTHER) {
            st = td__error_set(err, TD_EDTYPE, m->file, m->tensors[kernel].path, "is %s, expected a float kernel",
                               m->tensors[kernel].dtype_name);
            goto done;
        }
        td_model_layer *l = new_layer(m, &cap);
        if (!l) { st = TD_ENOMEM; goto done; }
        snprintf(l->name, sizeof l->name, "%s", ln);
        snprintf(l->group, sizeof l->group, "%.500s", gpath);
        l->group_pos = (int)i;
        l->kernel = kernel;
        if (!describe(l, &m->tensors[kernel], 1, depthwise)) { m->nlayers--; continue; }
        if (bias >= 0 && m->tensors[bias].ndim == 1 && m->tensors[bias].shape[0] == l->desc.cout) l->bias = bias;
        l->desc.has_bias = l->bias >= 0;
    }
    apply_keras_config(m, file);
done:
    H5Gclose(g);
    return st;
}

static int cmp_natural(const void *a, const void *b)
{
    const td_model_layer *x = a, *y = b;
    return strcmp(x->group, y->group);
}

static td_status read_keras3(td_model *m, td_error *err)
{
    size_t cap = 0;
    snprintf(m->weights_root, sizeof m->weights_root, "/layers");
    for (size_t i = 0; i < m->ntensors; i++) {
        const td_model_tensor *t = &m->tensors[i];
        const char *p = t->path;
        if (strncmp(p, "/layers/", 8) != 0 || !ends_with(p, "/vars/0")) continue;
        const char *nm = p + 8, *end = strstr(nm, "/vars/0");
        if (!end || memchr(nm, '/', (size_t)(end - nm))) continue; /* nested models: not rewritten */
        td_model_layer *l = new_layer(m, &cap);
        if (!l) return TD_ENOMEM;
        size_t nl = (size_t)(end - nm);
        if (nl >= sizeof l->name) return td__error_set(err, TD_EFORMAT, m->file, p, "name too long");
        memcpy(l->name, nm, nl);
        l->name[nl] = '\0';
        snprintf(l->group, sizeof l->group, "/layers/%s", l->name);
        l->kernel = (int)i;
        int dw = strncmp(l->name, "depthwise_conv2d", 16) == 0;
        if (!describe(l, t, 1, dw)) { m->nlayers--; continue; }
        char bp[700];
        snprintf(bp, sizeof bp, "/layers/%s/vars/1", l->name);
        int b = find_tensor(m, bp);
        if (b >= 0 && m->tensors[b].ndim == 1 && m->tensors[b].shape[0] == l->desc.cout) l->bias = b;
        l->desc.has_bias = l->bias >= 0;
    }
    qsort(m->layers, m->nlayers, sizeof *m->layers, cmp_natural);
    return TD_OK;
}

/* What each layer admits: its geometry's methods, narrowed by what the format can store. */
td_status td__model_admissions(td_model *m, td_error *err)
{
    for (size_t i = 0; i < m->nlayers; i++) {
        td_model_layer *l = &m->layers[i];
        if (td_layer_admission(&l->desc, &l->admits) != TD_OK)
            return td__error_set(err, TD_EFORMAT, m->file, l->name, "invalid layer geometry");
        if (l->maybe_depthwise)
            for (int k = TD_METHOD_TUCKER2; k < TD_METHOD_COUNT; k++) td_admission_refuse(&l->admits, (td_method)k, "depthwise");
        if (m->layout == TD_LAYOUT_KERAS3)
            td_admission_refuse(&l->admits, TD_METHOD_CP, "CP is refused on Keras 3 weights-only files (new DepthwiseConv2D paths cannot be placed)");
        else if (m->layout == TD_LAYOUT_KERAS2 && (l->desc.stride[0] > 1 || l->desc.stride[1] > 1))
            td_admission_refuse(&l->admits, TD_METHOD_CP, "cp chain cannot reproduce the padding exactly in Keras (stride > 1)");
    }
    return TD_OK;
}

td_status td_model_open(td_model *m, const char *path, td_layout layout, td_error *err)
{
    if (!m) return TD_EINVAL;
    memset(m, 0, sizeof *m);
    snprintf(m->file, sizeof m->file, "%s", path ? path : "");
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t f;
    td_status st = td__h5_open_ro(path, &f, err);
    if (st != TD_OK) goto out;
    visit_ctx v = {m, 0, TD_OK, err};
    if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_link, &v) < 0) {
        st = v.st != TD_OK ? v.st : td__error_set(err, TD_EFORMAT, m->file, NULL, "cannot walk the file (malformed)");
        goto close;
    }
    if (layout == TD_LAYOUT_AUTO) {
        int k2 = 0;
        if (H5Aexists(f, "layer_names") > 0 || H5Aexists(f, "layer_names0") > 0) k2 = 1;
        if (!k2 && H5Lexists(f, "model_weights", H5P_DEFAULT) > 0) {
            hid_t g = H5Gopen2(f, "model_weights", H5P_DEFAULT);
            if (g >= 0) { k2 = H5Aexists(g, "layer_names") > 0 || H5Aexists(g, "layer_names0") > 0; H5Gclose(g); }
        }
        int k3 = 0;
        for (size_t i = 0; i < m->ntensors && !k3; i++)
            k3 = !strncmp(m->tensors[i].path, "/layers/", 8) && strstr(m->tensors[i].path, "/vars/") != NULL;
        layout = k2 ? TD_LAYOUT_KERAS2 : (k3 ? TD_LAYOUT_KERAS3 : TD_LAYOUT_TORCH);
    }
    m->layout = layout;
    if (layout == TD_LAYOUT_TORCH) st = read_torch(m, err);
    else if (layout == TD_LAYOUT_KERAS2) st = read_keras2(m, f, err);
    else st = read_keras3(m, err);
    if (st == TD_OK) st = td__model_admissions(m, err);
close:
    H5Fclose(f);
out:
    td__h5_quiet_end(&q);
    if (st != TD_OK) td_model_free(m);
    return st;
}

td_status td_model_read_layer(const td_model *m, size_t layer, td_tensor *kernel, td_tensor *bias, td_error *err)
{
    if (!m || layer >= m->nlayers || !kernel || !bias) return TD_EINVAL;
    memset(kernel, 0, sizeof *kernel);
    memset(bias, 0, sizeof *bias);
    const td_model_layer *l = &m->layers[layer];
    const td_model_tensor *kt = &m->tensors[l->kernel];
    td_tensor raw;
    td_status st = td_h5_read_tensor(m->file, kt->path, &raw, NULL, err);
    if (st != TD_OK) return st;
    if (td_tensor_check_finite(&raw) != TD_OK) {
        td_tensor_free(&raw);
        return td__error_set(err, TD_ENOTFINITE, m->file, kt->path, "contains NaN or Inf weights");
    }
    const int keras = m->layout != TD_LAYOUT_TORCH;
    if (!keras) {
        *kernel = raw;
    } else if (raw.ndim == 2) { /* (in, out) -> (out, in) */
        if ((st = td_matrix_alloc(kernel, raw.shape[1], raw.shape[0])) == TD_OK)
            for (size_t i = 0; i < raw.shape[0]; i++)
                for (size_t o = 0; o < raw.shape[1]; o++) kernel->data[o * raw.shape[0] + i] = raw.data[i * raw.shape[1] + o];
        td_tensor_free(&raw);
    } else { /* HWIO (kh, kw, I, O) -> OIHW (O, I, kh, kw) */
        size_t kh = raw.shape[0], kw = raw.shape[1], ci = raw.shape[2], co = raw.shape[3];
        size_t shape[4] = {co, ci, kh, kw};
        if (l->cls == TD_CLASS_DEPTHWISE) { shape[0] = ci * co; shape[1] = 1; }
        if ((st = td_tensor_alloc(kernel, 4, shape)) == TD_OK)
            for (size_t i = 0; i < kh; i++)
                for (size_t j = 0; j < kw; j++)
                    for (size_t c = 0; c < ci; c++)
                        for (size_t o = 0; o < co; o++) {
                            double v = raw.data[((i * kw + j) * ci + c) * co + o];
                            if (l->cls == TD_CLASS_DEPTHWISE) kernel->data[((c * co + o) * kh + i) * kw + j] = v;
                            else kernel->data[((o * ci + c) * kh + i) * kw + j] = v;
                        }
        td_tensor_free(&raw);
    }
    if (st != TD_OK) return st;
    if (l->bias >= 0) {
        st = td_h5_read_tensor(m->file, m->tensors[l->bias].path, bias, NULL, err);
        if (st == TD_OK && td_tensor_check_finite(bias) != TD_OK)
            st = td__error_set(err, TD_ENOTFINITE, m->file, m->tensors[l->bias].path, "contains NaN or Inf weights");
        if (st != TD_OK) { td_tensor_free(kernel); td_tensor_free(bias); }
    }
    return st;
}
