/* Reading a decomposed file's self-description (tdecomp_layers) and its chains back. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "io/model_internal.h"

#define LAYERS_VERSION 1
/* Extents accepted in a record: the file's tensors are checked against them anyway. */
#define MAX_EXTENT ((json_int_t)1 << 40)

static int ints(json_t *v, size_t *out, size_t n, json_int_t min)
{
    if (!json_is_array(v) || json_array_size(v) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < min || json_integer_value(e) > MAX_EXTENT) return 0;
        out[i] = (size_t)json_integer_value(e);
    }
    return 1;
}

static int method_of(const char *s, td_method *m)
{
    for (int k = TD_METHOD_NONE; k < TD_METHOD_COUNT; k++)
        if (s && !strcmp(s, td_method_name((td_method)k))) { *m = (td_method)k; return 1; }
    return 0;
}

/* A piece's geometry and kernel shape from its record. */
static int piece_desc(json_t *p, td_chain_piece *pc)
{
    td_layer_desc *d = &pc->desc;
    memset(pc, 0, sizeof *pc);
    const char *kind = json_string_value(json_object_get(p, "kind"));
    size_t s[4];
    d->has_bias = json_is_true(json_object_get(p, "bias"));
    d->stride[0] = d->stride[1] = d->dilation[0] = d->dilation[1] = d->groups = 1;
    if (kind && !strcmp(kind, "dense")) {
        if (!ints(json_object_get(p, "shape"), s, 2, 1)) return 0;
        d->kind = TD_LAYER_DENSE;
        d->cout = s[0];
        d->cin = s[1];
        d->kh = d->kw = 1;
        pc->kernel.ndim = 2;
    } else if (kind && !strcmp(kind, "conv2d")) {
        if (!ints(json_object_get(p, "shape"), s, 4, 1) || !ints(json_object_get(p, "stride"), d->stride, 2, 1) ||
            !ints(json_object_get(p, "dilation"), d->dilation, 2, 1) || !json_is_integer(json_object_get(p, "groups")))
            return 0;
        json_int_t g = json_integer_value(json_object_get(p, "groups"));
        json_t *pad = json_object_get(p, "padding");
        if (g < 1 || g > MAX_EXTENT) return 0;
        if (json_is_string(pad) && !strcmp(json_string_value(pad), "same")) d->pad_mode = TD_PAD_SAME;
        else if (!ints(pad, d->pad, 4, 0)) return 0;
        d->kind = TD_LAYER_CONV2D;
        d->groups = (size_t)g;
        d->cout = s[0];
        d->cin = s[1] * d->groups;
        d->kh = s[2];
        d->kw = s[3];
        pc->kernel.ndim = 4;
    } else {
        return 0;
    }
    memcpy(pc->kernel.shape, s, sizeof s);
    pc->kernel.size = 1;
    for (int k = 0; k < pc->kernel.ndim; k++) pc->kernel.size *= s[k];
    return td_layer_check(d) == TD_OK;
}

static char *dup_string(json_t *v) { return json_is_string(v) ? td__strdup(json_string_value(v)) : NULL; }

static td_status parse_record(const td_model *m, json_t *e, td_model_record *r, td_error *err)
{
    memset(r, 0, sizeof *r);
    if (!(r->name = dup_string(json_object_get(e, "name"))) ||
        !method_of(json_string_value(json_object_get(e, "method")), &r->method))
        return td__error_set(err, TD_EFORMAT, m->file, "tdecomp_layers", "an entry lacks a name or a known method");
    json_t *shape = json_object_get(e, "shape");
    r->ndim = (int)json_array_size(shape);
    if ((r->ndim != 2 && r->ndim != 4) || !ints(shape, r->shape, (size_t)r->ndim, 1))
        return td__error_set(err, TD_EFORMAT, m->file, r->name, "tdecomp_layers: malformed shape");
    json_t *re = json_object_get(e, "rel_error"), *oe = json_object_get(e, "output_rel_error");
    r->rel_error = json_is_number(re) ? json_number_value(re) : NAN;
    r->has_output_error = json_is_number(oe);
    r->output_rel_error = r->has_output_error ? json_number_value(oe) : NAN;
    if (r->method == TD_METHOD_NONE) {
        if (!(r->target = dup_string(json_object_get(e, "layer"))))
            return td__error_set(err, TD_EFORMAT, m->file, r->name, "tdecomp_layers: a layer left alone must name its output layer");
        return TD_OK;
    }
    json_t *ranks = json_object_get(e, "ranks"), *pieces = json_object_get(e, "pieces");
    r->nranks = (int)json_array_size(ranks);
    const size_t np = json_array_size(pieces);
    if (r->nranks < 1 || r->nranks > 2 || !ints(ranks, r->ranks, (size_t)r->nranks, 1) || np < 1 || np > TD_CHAIN_MAX)
        return td__error_set(err, TD_EFORMAT, m->file, r->name, "tdecomp_layers: malformed ranks or pieces");
    r->layout.method = r->method;
    r->layout.npieces = (int)np;
    r->layout.nranks = r->nranks;
    memcpy(r->layout.ranks, r->ranks, sizeof r->ranks);
    for (size_t p = 0; p < np; p++) {
        json_t *pe = json_array_get(pieces, p);
        if (!piece_desc(pe, &r->layout.pieces[p]) || !(r->piece_layer[p] = dup_string(json_object_get(pe, "layer"))))
            return td__error_set(err, TD_EFORMAT, m->file, r->name, "tdecomp_layers: malformed piece %zu", p);
    }
    return TD_OK;
}

void td_model_records_free(td_model_record *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].name);
        free(r[i].target);
        for (int p = 0; p < TD_CHAIN_MAX; p++) free(r[i].piece_layer[p]);
    }
    free(r);
}

/* The record's text: the HDF5 root attribute. */
static td_status record_text(const td_model *m, char **text, td_error *err)
{
    if (m->impl->backend == TD__BACKEND_ST) {
        const char *v = NULL, *k;
        for (size_t i = 0; (k = td__model_st_metadata(m, i, &v)) != NULL; i++)
            if (!strcmp(k, "tdecomp_layers")) return (*text = td__strdup(v)) ? TD_OK : TD_ENOMEM;
        return td__error_set(err, TD_ENOTFOUND, m->file, NULL, "has no tdecomp_layers record (not written by tdecomp-tool decompose 0.2 or later)");
    }
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    const int rc = td__h5_read_string(m->impl->h5, "tdecomp_layers", text);
    td__h5_quiet_end(&q);
    if (rc == 0) return td__error_set(err, TD_ENOTFOUND, m->file, NULL, "has no tdecomp_layers record (not written by tdecomp-tool decompose 0.2 or later)");
    if (rc < 0) return td__error_set(err, TD_EFORMAT, m->file, "tdecomp_layers", "malformed attribute (not one string)");
    return TD_OK;
}

td_status td_model_records(const td_model *m, td_model_record **out, size_t *n, td_error *err)
{
    if (!m || !m->impl || !out || !n) return TD_EINVAL;
    *out = NULL;
    *n = 0;
    char *text = NULL;
    td_status st = record_text(m, &text, err);
    if (st != TD_OK) return st;
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    free(text);
    json_t *layers = json_object_get(root, "layers");
    if (!root || json_integer_value(json_object_get(root, "tdecomp_layers")) != LAYERS_VERSION || !json_is_array(layers)) {
        json_decref(root);
        return td__error_set(err, TD_EFORMAT, m->file, "tdecomp_layers", "not a version-%d record", LAYERS_VERSION);
    }
    const size_t cnt = json_array_size(layers);
    td_model_record *r = calloc(cnt ? cnt : 1, sizeof *r);
    if (!r) st = TD_ENOMEM;
    for (size_t i = 0; i < cnt && st == TD_OK; i++, (*n)++) st = parse_record(m, json_array_get(layers, i), &r[i], err);
    json_decref(root);
    if (st != TD_OK) { td_model_records_free(r, *n); *n = 0; return st; }
    *out = r;
    return TD_OK;
}

td_status td_model_read_chain(const td_model *m, const td_model_record *r, td_chain *out, td_error *err)
{
    if (!m || !r || !out || r->method == TD_METHOD_NONE) return TD_EINVAL;
    *out = r->layout;
    td_status st = TD_OK;
    for (int p = 0; p < out->npieces; p++) memset(&out->pieces[p].kernel, 0, sizeof(td_tensor));
    for (int p = 0; p < out->npieces && st == TD_OK; p++) {
        const int li = td__model_find_layer(m, r->piece_layer[p]);
        td_chain_piece *pc = &out->pieces[p];
        if (li < 0) { st = td__error_set(err, TD_EFORMAT, m->file, r->piece_layer[p], "piece of %s is missing", r->name); break; }
        st = td_model_read_layer(m, (size_t)li, &pc->kernel, &pc->bias, err);
        if (st == TD_OK && !td_tensor_same_shape(&pc->kernel, &r->layout.pieces[p].kernel))
            st = td__error_set(err, TD_EFORMAT, m->file, r->piece_layer[p], "piece of %s does not have the recorded shape", r->name);
    }
    if (st != TD_OK) td_chain_free(out);
    return st;
}
