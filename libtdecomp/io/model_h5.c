/* Weight files in HDF5: torch-style state dicts, Keras 2 legacy .h5, Keras 3 .weights.h5. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "io/model_internal.h"

typedef struct visit_ctx {
    td_model *m;
    size_t cap;
    td_status st;
    td_error *err;
} visit_ctx;

static td_model_tensor *new_tensor(visit_ctx *v)
{
    td_model *m = v->m;
    if (m->ntensors == v->cap) {
        size_t nc = v->cap ? 2 * v->cap : 64;
        td_model_tensor *t = realloc(m->tensors, nc * sizeof *t);
        if (!t) return NULL;
        m->tensors = t;
        v->cap = nc;
    }
    td_model_tensor *t = &m->tensors[m->ntensors];
    memset(t, 0, sizeof *t);
    return t;
}

/* Type and extent of an open dataset into t (a tensor of more than TD_MAX_MODES modes is listed
 * with its type, never read as a float tensor). */
static td_status describe_dataset(visit_ctx *v, hid_t d, const char *path, td_model_tensor *t)
{
    td_status st = td__h5_check_storage(d, v->m->file, path, v->err); /* any dataset, read or copied */
    if (st != TD_OK) return st;
    hid_t ty = H5Dget_type(d), sp = H5Dget_space(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t *dims = nd > 0 ? malloc((size_t)nd * sizeof *dims) : NULL;
    if (ty < 0 || nd < 0 || (nd > 0 && (!dims || H5Sget_simple_extent_dims(sp, dims, NULL) < 0))) {
        st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "unreadable type or dataspace");
        goto done;
    }
    t->dtype = td__h5_dtype_of(ty, t->dtype_name, sizeof t->dtype_name);
    if (td__h5_is_custom_float(ty)) { /* numbers that would be misread, or copied as if understood */
        st = td__error_set(v->err, TD_EDTYPE, v->m->file, path, "is a %s; only IEEE half, bfloat16, float32 and float64 are read",
                           t->dtype_name);
        goto done;
    }
    t->ndim = nd;
    t->elements = 1;
    for (int k = 0; k < nd; k++) {
        if (k < TD_MAX_MODES) t->shape[k] = (size_t)dims[k];
        t->elements = dims[k] && t->elements > UINT64_MAX / dims[k] ? UINT64_MAX : t->elements * dims[k];
    }
    if (nd > TD_MAX_MODES) {
        char dn[sizeof t->dtype_name];
        snprintf(dn, sizeof dn, "%.40s, %d-D", t->dtype_name, nd);
        memcpy(t->dtype_name, dn, sizeof dn);
        t->dtype = TD_DTYPE_OTHER;
    } else if ((st = td__h5_check_extent(d, v->m->file, path, nd, dims, ty, NULL, v->err)) != TD_OK) {
        goto done;
    }
done:
    free(dims);
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    return st;
}

static herr_t visit_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    visit_ctx *v = data;
    size_t nl = strlen(name);
    char *path = malloc(nl + 2);
    if (!path) { v->st = TD_ENOMEM; return -1; }
    path[0] = '/';
    memcpy(path + 1, name, nl + 1);
    herr_t rc = -1;
    H5O_info_t oi;
    hid_t d = H5I_INVALID_HID;
    /* soft, external and user-defined links alike: H5Lvisit itself follows none of them */
    if ((v->st = td__h5_link_refusal(info->type, v->m->file, path, v->err)) != TD_OK) goto done;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) {
        v->st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "unreadable object header");
        goto done;
    }
    rc = 0;
    if (oi.type != H5O_TYPE_DATASET) goto done;
    rc = -1;
    td_model_tensor *t = new_tensor(v);
    if (!t) { v->st = TD_ENOMEM; goto done; }
    if ((d = H5Dopen2(g, name, H5P_DEFAULT)) < 0) { v->st = td__error_set(v->err, TD_EFORMAT, v->m->file, path, "cannot be opened"); goto done; }
    if ((v->st = describe_dataset(v, d, path, t)) != TD_OK) goto done;
    if (!(t->path = td__model_str(v->m, path)) || !(t->name = td__model_str(v->m, name))) { v->st = TD_ENOMEM; goto done; }
    v->m->ntensors++;
    rc = 0;
done:
    if (d >= 0) H5Dclose(d);
    free(path);
    return rc;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The bias of layer l: tensor `name` when it is a float vector of Cout entries. */
static void attach_bias(td_model *m, td_model_layer *l, int b)
{
    if (b >= 0 && m->tensors[b].ndim == 1 && m->tensors[b].shape[0] == l->desc.cout && m->tensors[b].dtype != TD_DTYPE_OTHER)
        l->bias = b;
    l->desc.has_bias = l->bias >= 0;
}

static td_status read_torch(td_model *m)
{
    for (size_t i = 0; i < m->ntensors; i++) { /* nested groups read as dotted keys */
        char *nm = td__strdup(m->tensors[i].name);
        if (!nm) return TD_ENOMEM;
        for (char *p = nm; *p; p++) if (*p == '/') *p = '.';
        m->tensors[i].name = td__model_str(m, nm);
        free(nm);
        if (!m->tensors[i].name) return TD_ENOMEM;
    }
    for (size_t i = 0; i < m->ntensors; i++) {
        const td_model_tensor *t = &m->tensors[i];
        if (!ends_with(t->name, ".weight") || (t->ndim != 4 && t->ndim != 2) || t->dtype == TD_DTYPE_OTHER) continue;
        size_t nl = strlen(t->name) - strlen(".weight");
        char *base = malloc(nl + 6);
        if (!base) return TD_ENOMEM;
        memcpy(base, t->name, nl);
        base[nl] = '\0';
        td_model_layer *l = td__model_new_layer(m);
        if (!l || !(l->name = td__model_str(m, base))) { free(base); return TD_ENOMEM; }
        l->kernel = (int)i;
        if (!td__model_describe(l, t, 0, 0)) { m->nlayers--; free(base); continue; }
        memcpy(base + nl, ".bias", 6);
        attach_bias(m, l, td__model_find_tensor_named(m, base));
        free(base);
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

/* A pooling layer's output size (td_layer_output_size of an equivalent window). */
static int pool_out(size_t *h, size_t *w, const size_t k[2], const size_t s[2], int same)
{
    td_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = TD_LAYER_CONV2D;
    d.cout = d.cin = d.groups = 1;
    d.kh = k[0]; d.kw = k[1];
    d.stride[0] = s[0]; d.stride[1] = s[1];
    d.dilation[0] = d.dilation[1] = 1;
    d.pad_mode = same ? TD_PAD_SAME : TD_PAD_VALID;
    return td_layer_output_size(&d, *h, *w, h, w) == TD_OK;
}

/* Sequential Keras models: the input size from batch_input_shape (NHWC), carried through convs
 * (their own descriptions), zero padding and pooling, so --target-flops works without a spec. */
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
            const int i = td__model_find_layer(m, json_string_value(json_object_get(cfg, "name")));
            td_layer_desc *d = i >= 0 ? &m->layers[i].desc : NULL;
            if (!d || d->kind != TD_LAYER_CONV2D) { known = 0; continue; }
            d->input_known = 1;
            d->in_h = h;
            d->in_w = w;
            m->layers[i].input_size = TD_GEOMETRY_CONFIG;
            known = td_layer_output_size(d, h, w, &h, &w) == TD_OK;
        } else if (!strcmp(lc, "ZeroPadding2D")) {
            json_t *p = json_object_get(cfg, "padding");
            size_t a[2], b[2];
            if (json_pair(p, a)) { h += 2 * a[0]; w += 2 * a[1]; }
            else if (json_array_size(p) == 2 && json_pair(json_array_get(p, 0), a) && json_pair(json_array_get(p, 1), b)) {
                h += a[0] + a[1];
                w += b[0] + b[1];
            } else known = 0;
        } else if (!strcmp(lc, "MaxPooling2D") || !strcmp(lc, "AveragePooling2D")) {
            size_t k[2] = {2, 2}, st[2];
            json_pair(json_object_get(cfg, "pool_size"), k);
            if (!json_pair(json_object_get(cfg, "strides"), st)) { st[0] = k[0]; st[1] = k[1]; }
            const char *pad = json_string_value(json_object_get(cfg, "padding"));
            known = pool_out(&h, &w, k, st, pad && !strcmp(pad, "same"));
        } else if (!strcmp(lc, "Flatten") || !strcmp(lc, "Dense") || !strncmp(lc, "Global", 6) || !strcmp(lc, "Reshape")) {
            known = 0;
        }
    }
}

/* One Conv2D's strides, dilation, padding and groups from its config. */
static void apply_conv_config(td_model_layer *l, json_t *cfg)
{
    size_t p[2];
    if (json_pair(json_object_get(cfg, "strides"), p) && p[0] && p[1]) { l->desc.stride[0] = p[0]; l->desc.stride[1] = p[1]; }
    if (json_pair(json_object_get(cfg, "dilation_rate"), p) && p[0] && p[1]) { l->desc.dilation[0] = p[0]; l->desc.dilation[1] = p[1]; }
    const char *pad = json_string_value(json_object_get(cfg, "padding"));
    if (pad && !strcmp(pad, "same")) l->desc.pad_mode = TD_PAD_SAME;
    else if (pad && !strcmp(pad, "valid")) l->desc.pad_mode = TD_PAD_VALID;
    json_int_t g = json_integer_value(json_object_get(cfg, "groups"));
    if (g > 1 && l->cls == TD_CLASS_CONV2D && l->desc.cout % (size_t)g == 0) {
        l->desc.groups = (size_t)g;
        l->desc.cin *= (size_t)g; /* the kernel stores Cin/groups */
        l->cls = TD_CLASS_GROUPED;
    }
    l->geometry = TD_GEOMETRY_CONFIG;
}

/* The tensor of Keras layer `layer` whose name ends in "/" suffix ("<layer>/<layer>/gamma:0"). */
static int keras_tensor(const td_model *m, const char *layer, const char *suffix)
{
    const size_t nl = strlen(layer), ns = strlen(suffix);
    for (size_t i = 0; layer && i < m->ntensors; i++) {
        const char *t = m->tensors[i].name;
        const size_t n = strlen(t);
        if (n > nl + ns + 1 && !strncmp(t, layer, nl) && t[nl] == '/' && !strcmp(t + n - ns, suffix) && t[n - ns - 1] == '/')
            return (int)i;
    }
    return -1;
}

/* A BatchNormalization right after a conv or dense layer of a Sequential model weights that
 * layer's output error by gamma / sqrt(moving_variance + epsilon) (as the torch geometry record's
 * "batchnorm" does). */
static void pair_batchnorm(td_model *m, json_t *root, json_t *layers)
{
    const char *cls = json_string_value(json_object_get(root, "class_name"));
    if (!cls || strcmp(cls, "Sequential")) return;
    for (size_t idx = 0; idx + 1 < json_array_size(layers); idx++) {
        json_t *cfg = json_object_get(json_array_get(layers, idx), "config");
        json_t *next = json_array_get(layers, idx + 1), *ncfg = json_object_get(next, "config");
        const char *nc = json_string_value(json_object_get(next, "class_name"));
        const int i = td__model_find_layer(m, json_string_value(json_object_get(cfg, "name")));
        if (i < 0 || !nc || strcmp(nc, "BatchNormalization")) continue;
        const char *bn = json_string_value(json_object_get(ncfg, "name"));
        json_t *eps = json_object_get(ncfg, "epsilon");
        const int g = keras_tensor(m, bn, "gamma:0"), v = keras_tensor(m, bn, "moving_variance:0");
        if (g < 0 || v < 0 || !json_is_number(eps)) continue;
        m->layers[i].bn_scale = g;
        m->layers[i].bn_var = v;
        m->layers[i].bn_eps = json_number_value(eps);
    }
}

/* Keras config (model.save): strides, padding, dilation, groups per layer name. */
static void apply_keras_config(td_model *m, hid_t file)
{
    char *text = NULL;
    if (td__h5_read_string(file, "model_config", &text) != 1) { free(text); return; }
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    free(text);
    if (!root) return;
    json_t *layers = json_object_get(json_object_get(root, "config"), "layers");
    size_t idx;
    json_t *jl;
    json_array_foreach(layers, idx, jl) {
        json_t *cfg = json_object_get(jl, "config");
        const int i = td__model_find_layer(m, json_string_value(json_object_get(cfg, "name")));
        if (i >= 0 && m->layers[i].desc.kind == TD_LAYER_CONV2D) apply_conv_config(&m->layers[i], cfg);
    }
    propagate_sizes(m, root, layers);
    pair_batchnorm(m, root, layers);
    json_decref(root);
}

/* The Keras 2 weights root: /model_weights (model.save) or / (save_weights). */
static hid_t keras2_root(td_model *m, hid_t file)
{
    const char *roots[2] = {"/model_weights", "/"};
    for (int r = 0; r < 2; r++) {
        if (r == 0 && H5Lexists(file, "model_weights", H5P_DEFAULT) <= 0) continue;
        hid_t c = H5Gopen2(file, roots[r], H5P_DEFAULT);
        if (c < 0) continue;
        if (H5Aexists(c, "layer_names") > 0 || H5Aexists(c, "layer_names0") > 0) {
            snprintf(m->impl->weights_root, sizeof m->impl->weights_root, "%s", roots[r]);
            return c;
        }
        H5Gclose(c);
    }
    return H5I_INVALID_HID;
}

/* One Keras 2 layer group: its kernel and bias from weight_names. */
static td_status keras2_layer(td_model *m, hid_t file, size_t pos, const char *gpath, td_error *err)
{
    const char *ln = m->impl->keras_layer_names.v[pos];
    if (H5Lexists(file, gpath, H5P_DEFAULT) <= 0)
        return td__error_set(err, TD_EFORMAT, m->file, gpath, "layer %s is listed in layer_names but has no group", ln);
    hid_t lg = H5Gopen2(file, gpath, H5P_DEFAULT);
    if (lg < 0) return td__error_set(err, TD_EFORMAT, m->file, gpath, "is not a group");
    td__strlist wn;
    int wv, kernel = -1, bias = -1, depthwise = 0;
    int rc = td__h5_read_strings(lg, "weight_names", &wn, &wv);
    H5Gclose(lg);
    td_status st = rc < 0 ? td__error_set(err, TD_EFORMAT, m->file, gpath, "malformed weight_names attribute") : TD_OK;
    for (size_t w = 0; w < wn.n && st == TD_OK; w++) {
        size_t need = strlen(gpath) + strlen(wn.v[w]) + 2;
        char *dpath = malloc(need);
        if (!dpath) { st = TD_ENOMEM; break; }
        snprintf(dpath, need, "%s/%s", gpath, wn.v[w]);
        const int ti = td__model_find_tensor(m, dpath);
        if (ti < 0) st = td__error_set(err, TD_EFORMAT, m->file, dpath, "listed in weight_names but missing");
        free(dpath);
        if (st != TD_OK) break;
        const char *base = strrchr(wn.v[w], '/') ? strrchr(wn.v[w], '/') + 1 : wn.v[w];
        if (!strstr(base, ":")) m->impl->keras_colon_names = 0;
        if (!strncmp(base, "depthwise_kernel", 16)) { kernel = ti; depthwise = 1; }
        else if (!strncmp(base, "kernel", 6) && (base[6] == '\0' || base[6] == ':')) kernel = ti;
        else if (!strncmp(base, "bias", 4) && (base[4] == '\0' || base[4] == ':')) bias = ti;
    }
    td__strlist_free(&wn);
    if (st != TD_OK || kernel < 0) return st;
    if (m->tensors[kernel].dtype == TD_DTYPE_OTHER)
        return td__error_set(err, TD_EDTYPE, m->file, m->tensors[kernel].path, "is %s, expected a float kernel",
                             m->tensors[kernel].dtype_name);
    td_model_layer *l = td__model_new_layer(m);
    const size_t li = m->nlayers - 1;
    if (!l || !(l->name = td__model_str(m, ln)) || !(m->impl->group[li] = td__strdup(gpath))) return TD_ENOMEM;
    m->impl->group_pos[li] = (int)pos;
    l->kernel = kernel;
    if (!td__model_describe(l, &m->tensors[kernel], 1, depthwise)) {
        free(m->impl->group[li]);
        m->impl->group[li] = NULL;
        m->nlayers--;
        return TD_OK;
    }
    attach_bias(m, l, bias);
    return TD_OK;
}

static td_status read_keras2(td_model *m, hid_t file, td_error *err)
{
    hid_t g = keras2_root(m, file);
    if (g < 0) return td__error_set(err, TD_EFORMAT, m->file, NULL, "no Keras layer_names attribute");
    td__strlist *names = &m->impl->keras_layer_names;
    int vlen = 1;
    const int rc = td__h5_read_strings(g, "layer_names", names, &vlen);
    H5Gclose(g);
    m->impl->keras_vlen_names = vlen;
    m->impl->keras_colon_names = 1;
    const char *root = m->impl->weights_root;
    if (rc < 0) return td__error_set(err, TD_EFORMAT, m->file, root, "malformed layer_names attribute");
    for (size_t i = 0; i < names->n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(names->v[i], names->v[j]))
                return td__error_set(err, TD_EFORMAT, m->file, root, "layer %s is listed twice in layer_names", names->v[i]);
    td_status st = TD_OK;
    for (size_t i = 0; i < names->n && st == TD_OK; i++) {
        size_t need = strlen(root) + strlen(names->v[i]) + 2;
        char *gpath = malloc(need);
        if (!gpath) return TD_ENOMEM;
        snprintf(gpath, need, "%s/%s", strcmp(root, "/") ? root : "", names->v[i]);
        st = keras2_layer(m, file, i, gpath, err);
        free(gpath);
    }
    if (st == TD_OK) apply_keras_config(m, file);
    return st;
}

static td_status read_keras3(td_model *m, td_error *err)
{
    snprintf(m->impl->weights_root, sizeof m->impl->weights_root, "/layers");
    int any = 0;
    for (size_t i = 0; i < m->ntensors; i++) {
        const char *p = m->tensors[i].path;
        if (strncmp(p, "/layers/", 8) != 0 || !ends_with(p, "/vars/0")) continue;
        any = 1;
        const char *nm = p + 8, *end = strstr(nm, "/vars/0");
        if (!end || memchr(nm, '/', (size_t)(end - nm))) continue; /* nested models: not rewritten */
        const size_t nl = (size_t)(end - nm);
        char *name = malloc(nl + 16 + 8);
        if (!name) return TD_ENOMEM;
        memcpy(name, nm, nl);
        name[nl] = '\0';
        td_model_layer *l = td__model_new_layer(m);
        const size_t li = m->nlayers - 1;
        if (!l || !(l->name = td__model_str(m, name)) || !(m->impl->group[li] = malloc(nl + 9))) { free(name); return TD_ENOMEM; }
        snprintf(m->impl->group[li], nl + 9, "/layers/%s", name);
        l->kernel = (int)i;
        if (!td__model_describe(l, &m->tensors[i], 1, strncmp(name, "depthwise_conv2d", 16) == 0)) {
            free(m->impl->group[li]);
            m->impl->group[li] = NULL;
            m->nlayers--;
            free(name);
            continue;
        }
        char *bp = malloc(nl + 16);
        if (!bp) { free(name); return TD_ENOMEM; }
        snprintf(bp, nl + 16, "/layers/%s/vars/1", name);
        attach_bias(m, l, td__model_find_tensor(m, bp));
        free(bp);
        free(name);
    }
    if (!any && m->ntensors) return td__error_set(err, TD_EFORMAT, m->file, NULL, "not a Keras 3 file: no /layers/<name>/vars datasets");
    return TD_OK;
}

/* 1 when obj carries layer_names (whole or split), 0 when not, -1 when its attributes cannot
 * be decoded (a malformed header is an error, not a sign of another layout). */
static int has_layer_names(hid_t obj)
{
    const htri_t a = H5Aexists(obj, "layer_names"), b = a > 0 ? 0 : H5Aexists(obj, "layer_names0");
    return a > 0 || b > 0 ? 1 : a < 0 || b < 0 ? -1 : 0;
}

/* The layout, or TD_LAYOUT_AUTO when the attributes that decide it cannot be decoded. */
static td_layout detect(const td_model *m, hid_t f)
{
    int k2 = has_layer_names(f);
    if (k2 == 0 && H5Lexists(f, "model_weights", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "model_weights", H5P_DEFAULT);
        k2 = g >= 0 ? has_layer_names(g) : -1;
        if (g >= 0) H5Gclose(g);
    }
    if (k2 < 0) return TD_LAYOUT_AUTO;
    if (k2) return TD_LAYOUT_KERAS2;
    for (size_t i = 0; i < m->ntensors; i++)
        if (!strncmp(m->tensors[i].path, "/layers/", 8) && strstr(m->tensors[i].path, "/vars/")) return TD_LAYOUT_KERAS3;
    return TD_LAYOUT_TORCH;
}

/* The identity of the file HDF5 opened (not of whatever the path names now). */
static td_status identify(td_model *m, hid_t f, td_error *err)
{
    void *handle = NULL;
    struct stat sb;
    if (H5Fget_vfd_handle(f, H5P_DEFAULT, &handle) < 0 || !handle || fstat(*(int *)handle, &sb) != 0)
        return td__error_set(err, TD_EIO, m->file, NULL, "cannot identify the opened file");
    m->impl->dev = sb.st_dev;
    m->impl->ino = sb.st_ino;
    return TD_OK;
}

td_status td__model_open_h5(td_model *m, const char *path, td_layout layout, td_error *err)
{
    hid_t f;
    td_status st = td__h5_open_ro(path, &f, err);
    if (st != TD_OK) return st;
    m->impl->h5 = f;
    if ((st = identify(m, f, err)) != TD_OK) return st;
    visit_ctx v = {m, 0, TD_OK, err};
    if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_link, &v) < 0)
        return v.st != TD_OK ? v.st : td__error_set(err, TD_EFORMAT, m->file, NULL, "cannot walk the file (malformed)");
    m->layout = layout == TD_LAYOUT_AUTO ? detect(m, f) : layout;
    if (m->layout == TD_LAYOUT_AUTO)
        return td__error_set(err, TD_EFORMAT, m->file, NULL, "malformed attributes (libhdf5 cannot decode them)");
    if (m->layout == TD_LAYOUT_TORCH) st = read_torch(m);
    else if (m->layout == TD_LAYOUT_KERAS2) st = read_keras2(m, f, err);
    else if (m->layout == TD_LAYOUT_KERAS3) st = read_keras3(m, err);
    else st = td__error_set(err, TD_EFORMAT, m->file, NULL, "is an HDF5 file, not %s", td_layout_name(m->layout));
    if (st != TD_OK || m->layout != TD_LAYOUT_TORCH) return st;
    char *geometry = NULL;
    const int rc = td__h5_read_string(f, "tdecomp_geometry", &geometry);
    if (rc < 0) st = td__error_set(err, TD_EFORMAT, m->file, "tdecomp_geometry", "malformed attribute (not one string)");
    else if (rc == 1) st = td__model_apply_record(m, geometry, err);
    free(geometry);
    return st;
}

td_status td__model_read_h5(const td_model *m, size_t i, td_tensor *out, td_error *err)
{
    const td_model_tensor *t = &m->tensors[i];
    hid_t d = H5Dopen2(m->impl->h5, t->path, H5P_DEFAULT);
    if (d < 0) return td__error_set(err, TD_EFORMAT, m->file, t->path, "cannot be opened (the file changed?)");
    td_dtype dt;
    td_status st = td__h5_read_dataset(d, m->file, t->path, out, &dt, err);
    H5Dclose(d);
    if (st != TD_OK) return st;
    int same = out->ndim == t->ndim && dt == t->dtype;
    for (int k = 0; same && k < t->ndim; k++) same = out->shape[k] == t->shape[k];
    if (!same) {
        td_tensor_free(out);
        return td__error_set(err, TD_EFORMAT, m->file, t->path, "changed since the file was opened");
    }
    return TD_OK;
}
