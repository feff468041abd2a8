/* Weight files, format-neutral: opening by content, layers in model order, admissions, reads. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "io/model_internal.h"
#include "io/st_internal.h"

const char *td_layout_name(td_layout l)
{
    switch (l) {
    case TD_LAYOUT_TORCH: return "torch";
    case TD_LAYOUT_KERAS2: return "keras2";
    case TD_LAYOUT_KERAS3: return "keras3";
    case TD_LAYOUT_SAFETENSORS: return "safetensors";
    default: return "auto";
    }
}

td_status td_layout_parse(const char *s, td_layout *l)
{
    static const td_layout all[] = {TD_LAYOUT_AUTO, TD_LAYOUT_TORCH, TD_LAYOUT_KERAS2, TD_LAYOUT_KERAS3, TD_LAYOUT_SAFETENSORS};
    if (!s || !l) return TD_EINVAL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, td_layout_name(all[i]))) { *l = all[i]; return TD_OK; }
    return TD_EINVAL;
}

const char *td_geometry_source_name(td_geometry_source s)
{
    switch (s) {
    case TD_GEOMETRY_FILE: return "file";
    case TD_GEOMETRY_CONFIG: return "model config";
    case TD_GEOMETRY_SPEC: return "spec";
    default: return "assumed";
    }
}

const char *td__model_str(td_model *m, const char *s)
{
    td__strlist *l = &m->impl->strings;
    return td__strlist_push(l, s) == TD_OK ? l->v[l->n - 1] : NULL;
}

td_model_layer *td__model_new_layer(td_model *m)
{
    struct td_model_impl *p = m->impl;
    if (m->nlayers == p->layer_cap) {
        const size_t nc = p->layer_cap ? 2 * p->layer_cap : 32;
        td_model_layer *l = realloc(m->layers, nc * sizeof *l);
        if (l) m->layers = l;
        char **g = realloc(p->group, nc * sizeof *g);
        if (g) p->group = g;
        int *gp = realloc(p->group_pos, nc * sizeof *gp);
        if (gp) p->group_pos = gp;
        if (!l || !g || !gp) return NULL;
        p->layer_cap = nc;
    }
    const size_t i = m->nlayers++;
    td_model_layer *l = &m->layers[i];
    memset(l, 0, sizeof *l);
    p->group[i] = NULL;
    p->group_pos[i] = -1;
    l->bias = l->bn_scale = l->bn_var = -1;
    l->desc.groups = 1;
    l->desc.stride[0] = l->desc.stride[1] = 1;
    l->desc.dilation[0] = l->desc.dilation[1] = 1;
    l->desc.pad_mode = TD_PAD_EXPLICIT;
    return l;
}

int td__model_find_tensor(const td_model *m, const char *path)
{
    for (size_t i = 0; path && i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].path, path)) return (int)i;
    return -1;
}

int td__model_find_tensor_named(const td_model *m, const char *name)
{
    for (size_t i = 0; name && i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return (int)i;
    return -1;
}

int td__model_find_layer(const td_model *m, const char *name)
{
    for (size_t i = 0; name && i < m->nlayers; i++)
        if (!strcmp(m->layers[i].name, name)) return (int)i;
    return -1;
}

int td__model_describe(td_model_layer *l, const td_model_tensor *k, int keras, int depthwise)
{
    td_layer_desc *d = &l->desc;
    if (k->dtype == TD_DTYPE_OTHER) return 0;
    if (k->ndim == 2) {
        d->kind = TD_LAYER_DENSE;
        d->cout = keras ? k->shape[1] : k->shape[0];
        d->cin = keras ? k->shape[0] : k->shape[1];
        d->kh = d->kw = 1;
        l->cls = TD_CLASS_DENSE;
        return d->cout && d->cin;
    }
    if (k->ndim != 4) return 0;
    d->kind = TD_LAYER_CONV2D;
    l->cls = TD_CLASS_CONV2D;
    if (keras) { /* HWIO: (kh, kw, Cin/groups, Cout); depthwise (kh, kw, Cin, multiplier) */
        d->kh = k->shape[0];
        d->kw = k->shape[1];
        d->cin = k->shape[2];
        d->cout = depthwise ? k->shape[2] * k->shape[3] : k->shape[3];
        if (depthwise) { d->groups = k->shape[2]; l->cls = TD_CLASS_DEPTHWISE; }
    } else {
        d->cout = k->shape[0];
        d->cin = k->shape[1];
        d->kh = k->shape[2];
        d->kw = k->shape[3];
        if (k->shape[1] == 1 && k->shape[0] > 1) { l->maybe_depthwise = 1; l->cls = TD_CLASS_DEPTHWISE; }
    }
    return d->cout && d->cin && d->kh && d->kw;
}

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
        size_t as[2], bs[2];
        l->adapter_refusal = l->maybe_depthwise ? "possibly depthwise: groups unknown (state them in --layer-spec)"
                             : l->cls == TD_CLASS_GROUPED && l->desc.groups <= 1 ? "grouped: groups unknown (state them in --layer-spec)"
                             : td_adapter_shapes(&l->desc, 1, as, bs) == TD_EUNSUPPORTED ? "non-square kernel (loralib's conv layout needs kh == kw)"
                                                                                          : NULL;
    }
    return TD_OK;
}

/* Names compared with runs of digits as numbers: "features.9" before "features.10". */
static int cmp_natural_str(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t na = 0, nb = 0;
            while (isdigit((unsigned char)a[na])) na++;
            while (isdigit((unsigned char)b[nb])) nb++;
            if (na != nb) return na < nb ? -1 : 1;
            const int c = strncmp(a, b, na);
            if (c) return c;
            a += na;
            b += nb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

typedef struct order_key {
    size_t index;
    long rank;            /* position in the geometry record, or -1 */
    const char *name;
    int keras_pos;
} order_key;

static int cmp_order(const void *x, const void *y)
{
    const order_key *a = x, *b = y;
    if (a->keras_pos >= 0 || b->keras_pos >= 0) return (a->keras_pos > b->keras_pos) - (a->keras_pos < b->keras_pos);
    if (a->rank >= 0 && b->rank >= 0) return (a->rank > b->rank) - (a->rank < b->rank);
    if ((a->rank >= 0) != (b->rank >= 0)) return a->rank >= 0 ? -1 : 1;
    return cmp_natural_str(a->name, b->name);
}

td_status td__model_order(td_model *m, const td__strlist *record_order)
{
    const size_t n = m->nlayers;
    order_key *k = malloc((n ? n : 1) * sizeof *k);
    td_model_layer *l = malloc((n ? n : 1) * sizeof *l);
    char **g = malloc((n ? n : 1) * sizeof *g);
    int *gp = malloc((n ? n : 1) * sizeof *gp);
    const td_status st = k && l && g && gp ? TD_OK : TD_ENOMEM;
    if (st == TD_OK && n > 0) {
        for (size_t i = 0; i < n; i++) {
            k[i] = (order_key){i, -1, m->layers[i].name, m->impl->group_pos[i]};
            for (size_t r = 0; record_order && r < record_order->n; r++)
                if (!strcmp(record_order->v[r], m->layers[i].name)) k[i].rank = (long)r;
        }
        qsort(k, n, sizeof *k, cmp_order);
        for (size_t i = 0; i < n; i++) {
            l[i] = m->layers[k[i].index];
            g[i] = m->impl->group[k[i].index];
            gp[i] = m->impl->group_pos[k[i].index];
        }
        memcpy(m->layers, l, n * sizeof *l);
        memcpy(m->impl->group, g, n * sizeof *g);
        memcpy(m->impl->group_pos, gp, n * sizeof *gp);
    }
    free(k);
    free(l);
    free(g);
    free(gp);
    return st;
}

td_status td_model_open(td_model *m, const char *path, td_layout layout, td_error *err)
{
    if (!m) return TD_EINVAL;
    memset(m, 0, sizeof *m);
    if (!(m->impl = calloc(1, sizeof *m->impl))) return TD_ENOMEM;
    m->impl->h5 = H5I_INVALID_HID;
    if (!path || !*path) { td_model_free(m); return td__error_set(err, TD_EINVAL, NULL, NULL, "no input file given"); }
    if (!(m->file = td__model_str(m, path))) { td_model_free(m); return TD_ENOMEM; }
    td__file_kind kind = TD__FILE_UNKNOWN;
    td_status st = td__sniff(path, &kind, err);
    if (st != TD_OK) { td_model_free(m); return st; }
    if (kind == TD__FILE_PYTORCH_ZIP || kind == TD__FILE_PYTORCH_PICKLE) {
        td_model_free(m);
        return td__error_set(err, TD_EFORMAT, path, NULL,
                             "is a PyTorch pickle (torch.save), which is never unpickled here; export it first: "
                             "/usr/bin/python3 -m tdecomp.torch export --model MODULE:FACTORY %s OUT.safetensors", path);
    }
    const int st_kind = kind == TD__FILE_SAFETENSORS || kind == TD__FILE_SAFETENSORS_INDEX;
    if (st_kind != (layout == TD_LAYOUT_SAFETENSORS) && layout != TD_LAYOUT_AUTO) {
        td_model_free(m);
        return td__error_set(err, TD_EFORMAT, path, NULL, "is not a %s file (its content is %s)", td_layout_name(layout),
                             td__file_kind_name(kind));
    }
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    st = st_kind ? td__model_open_st(m, path, kind == TD__FILE_SAFETENSORS_INDEX, err) : td__model_open_h5(m, path, layout, err);
    if (st == TD_OK && !m->has_geometry) st = td__model_order(m, NULL);
    if (st == TD_OK) st = td__model_admissions(m, err);
    td__h5_quiet_end(&q);
    if (st != TD_OK) td_model_free(m);
    return st;
}

void td_model_free(td_model *m)
{
    if (!m) return;
    struct td_model_impl *p = m->impl;
    if (p) {
        td__h5_close_quiet(p->h5);
        td__model_close_st(p->st);
        for (size_t i = 0; p->group && i < m->nlayers; i++) free(p->group[i]);
        free(p->group);
        free(p->group_pos);
        td__strlist_free(&p->keras_layer_names);
        td__strlist_free(&p->strings);
        free(p);
    }
    free(m->tensors);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

uint64_t td_model_total_elements(const td_model *m)
{
    uint64_t t = 0;
    for (size_t i = 0; m && i < m->ntensors; i++)
        t = m->tensors[i].elements > UINT64_MAX - t ? UINT64_MAX : t + m->tensors[i].elements;
    return t;
}

uint64_t td_model_kernel_params(const td_model *m)
{
    uint64_t t = 0;
    for (size_t i = 0; m && i < m->nlayers; i++) {
        td_cost c;
        if (td_layer_cost(&m->layers[i].desc, &c) == TD_OK) t += c.params;
    }
    return t;
}

static td_status read_raw(const td_model *m, size_t i, td_tensor *out, td_error *err)
{
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = m->impl->backend == TD__BACKEND_ST ? td__model_read_st(m, i, out, err) : td__model_read_h5(m, i, out, err);
    td__h5_quiet_end(&q);
    if (st == TD_OK && td_tensor_check_finite(out) != TD_OK) {
        td_tensor_free(out);
        st = td__error_set(err, TD_ENOTFINITE, m->file, m->tensors[i].path, "contains NaN or Inf weights");
    }
    return st;
}

td_status td_model_read_tensor(const td_model *m, size_t i, td_tensor *out, td_error *err)
{
    if (!m || !m->impl || i >= m->ntensors || !out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (m->tensors[i].dtype == TD_DTYPE_OTHER)
        return td__error_set(err, TD_EDTYPE, m->file, m->tensors[i].path, "is %s, not a float tensor", m->tensors[i].dtype_name);
    return read_raw(m, i, out, err);
}

void td__keras_kernel_copy(const double *src, double *dst, size_t kh, size_t kw, size_t ci, size_t co,
                           int depthwise, int to_keras)
{
    for (size_t i = 0; i < kh; i++)
        for (size_t j = 0; j < kw; j++)
            for (size_t c = 0; c < ci; c++)
                for (size_t o = 0; o < co; o++) {
                    const size_t k = ((i * kw + j) * ci + c) * co + o;
                    const size_t t = depthwise ? ((c * co + o) * kh + i) * kw + j : ((o * ci + c) * kh + i) * kw + j;
                    if (to_keras) dst[k] = src[t];
                    else dst[t] = src[k];
                }
}

/* Keras HWIO (kh, kw, I, O) -> OIHW (O, I, kh, kw); depthwise (kh, kw, C, M) -> (C M, 1, kh, kw);
 * dense (in, out) -> (out, in). */
static td_status from_keras(const td_model_layer *l, const td_tensor *raw, td_tensor *kernel)
{
    const int dense = raw->ndim == 2, dw = !dense && l->cls == TD_CLASS_DEPTHWISE;
    const size_t kh = dense ? 1 : raw->shape[0], kw = dense ? 1 : raw->shape[1];
    const size_t ci = raw->shape[dense ? 0 : 2], co = raw->shape[dense ? 1 : 3];
    size_t shape[4] = {dw ? ci * co : co, dw ? 1 : ci, kh, kw};
    td_status st = td_tensor_alloc(kernel, dense ? 2 : 4, shape);
    if (st == TD_OK) td__keras_kernel_copy(raw->data, kernel->data, kh, kw, ci, co, dw, 0);
    return st;
}

td_status td_model_read_layer(const td_model *m, size_t layer, td_tensor *kernel, td_tensor *bias, td_error *err)
{
    if (!m || !m->impl || layer >= m->nlayers || !kernel || !bias) return TD_EINVAL;
    memset(kernel, 0, sizeof *kernel);
    memset(bias, 0, sizeof *bias);
    const td_model_layer *l = &m->layers[layer];
    td_tensor raw;
    td_status st = read_raw(m, (size_t)l->kernel, &raw, err);
    if (st != TD_OK) return st;
    const int keras = m->layout == TD_LAYOUT_KERAS2 || m->layout == TD_LAYOUT_KERAS3;
    if (keras) {
        st = from_keras(l, &raw, kernel);
        td_tensor_free(&raw);
    } else {
        *kernel = raw;
    }
    if (st == TD_OK && l->bias >= 0) st = read_raw(m, (size_t)l->bias, bias, err);
    if (st != TD_OK) { td_tensor_free(kernel); td_tensor_free(bias); }
    return st;
}
