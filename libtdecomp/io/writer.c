/* Writing a decomposed file: the format-neutral part of the streaming writer and the file's
 * self-description (tdecomp_layers, docs/formats.md section 2). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "io/writer_internal.h"

/* Version of the tdecomp_layers record this writer produces (and the reader accepts). */
#define LAYERS_VERSION 1

const char *td_format_name(td_format f)
{
    switch (f) {
    case TD_FORMAT_HDF5: return "h5";
    case TD_FORMAT_SAFETENSORS: return "safetensors";
    default: return "auto";
    }
}

static int has_suffix(const char *s, const char *suf)
{
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

td_format td_format_choose(td_format explicit_format, const char *path, const td_model *input)
{
    if (explicit_format != TD_FORMAT_AUTO) return explicit_format;
    if (path && has_suffix(path, ".safetensors")) return TD_FORMAT_SAFETENSORS;
    if (path && (has_suffix(path, ".h5") || has_suffix(path, ".hdf5"))) return TD_FORMAT_HDF5;
    return input && input->layout == TD_LAYOUT_SAFETENSORS ? TD_FORMAT_SAFETENSORS : TD_FORMAT_HDF5;
}

td_output_kind td_format_output_kind(td_format f) { return f == TD_FORMAT_SAFETENSORS ? TD_OUTPUT_BYTES : TD_OUTPUT_HDF5; }

td__slot *td__writer_slot(td_model_writer *w, size_t layer)
{
    for (size_t i = 0; i < w->nslots; i++)
        if (w->slots[i].layer == layer) return &w->slots[i];
    return NULL;
}

void td_model_writer_free(td_model_writer *w)
{
    if (!w) return;
    td__writer_st_free(w);
    for (size_t i = 0; w->slots && i < w->nslots; i++)
        for (int p = 0; p < TD_CHAIN_MAX; p++) {
            free(w->slots[i].piece_layer[p]);
            free(w->slots[i].kernel_path[p]);
            free(w->slots[i].bias_path[p]);
        }
    free(w->slots);
    for (size_t i = 0; w->target && i < w->m->nlayers; i++) free(w->target[i]);
    free(w->target);
    td__strlist_free(&w->k2_names);
    free(w);
}

static td_status check_rewrites(const td_model *m, const td_model_rewrite *rw, size_t nrw, td_error *err)
{
    for (size_t r = 0; r < nrw; r++) {
        if (rw[r].layer >= m->nlayers || !rw[r].layout || rw[r].layout->npieces < 1) return TD_EINVAL;
        const td_model_layer *l = &m->layers[rw[r].layer];
        const td_method meth = rw[r].layout->method;
        if (meth <= TD_METHOD_NONE || meth >= TD_METHOD_COUNT || !(l->admits.mask & TD_METHOD_BIT(meth)))
            return td__error_set(err, TD_EUNSUPPORTED, m->file, l->name, "%s",
                                 meth > TD_METHOD_NONE && meth < TD_METHOD_COUNT && l->admits.why_not[meth]
                                     ? l->admits.why_not[meth] : "the layer does not admit this rewrite");
        for (size_t q = 0; q < r; q++)
            if (rw[q].layer == rw[r].layer) return TD_EINVAL;
    }
    return TD_OK;
}

td_status td_model_writer_open(td_model_writer **out, const td_model *m, td_outfile *o, td_format fmt,
                               const td_model_rewrite *rw, size_t nrw, td_error *err)
{
    td_error_clear(err);
    if (!out) return TD_EINVAL;
    *out = NULL;
    if (!m || !m->impl || !o || (!rw && nrw)) return TD_EINVAL;
    if (fmt == TD_FORMAT_AUTO) fmt = td_format_choose(TD_FORMAT_AUTO, NULL, m);
    td_status st = check_rewrites(m, rw, nrw, err);
    if (st != TD_OK) return st;
    if ((fmt == TD_FORMAT_SAFETENSORS) != (td_outfile_fd(o) >= 0))
        return td__error_set(err, TD_EINVAL, td_outfile_path(o), NULL, "the output's kind does not match the format %s", td_format_name(fmt));
    td_model_writer *w = calloc(1, sizeof *w);
    if (!w) return TD_ENOMEM;
    w->m = m;
    w->o = o;
    w->fmt = fmt;
    w->err = err;
    w->slots = calloc(nrw ? nrw : 1, sizeof *w->slots);
    w->target = calloc(m->nlayers ? m->nlayers : 1, sizeof *w->target);
    if (!w->slots || !w->target) st = TD_ENOMEM;
    for (size_t r = 0; r < nrw && st == TD_OK; r++) {
        w->slots[r].layer = rw[r].layer;
        w->slots[r].layout = *rw[r].layout;
        for (int p = 0; p < TD_CHAIN_MAX; p++) { /* shapes only: no data is owned */
            w->slots[r].layout.pieces[p].kernel.data = NULL;
            w->slots[r].layout.pieces[p].kernel.owner = 0;
            memset(&w->slots[r].layout.pieces[p].bias, 0, sizeof(td_tensor));
        }
        w->nslots++;
    }
    if (st == TD_OK) st = fmt == TD_FORMAT_SAFETENSORS ? td__writer_st_open(w, err) : td__writer_h5_open(w, err);
    if (st != TD_OK) { td_model_writer_free(w); return st; }
    *out = w;
    return TD_OK;
}

/* The chain must be the layout given at open, piece by piece. */
static int matches_layout(const td__slot *s, const td_chain *c)
{
    if (c->method != s->layout.method || c->npieces != s->layout.npieces) return 0;
    for (int p = 0; p < c->npieces; p++)
        if (!td_tensor_same_shape(&c->pieces[p].kernel, &s->layout.pieces[p].kernel) || !c->pieces[p].kernel.data)
            return 0;
    return 1;
}

td_status td_model_writer_put(td_model_writer *w, size_t layer, const td_chain *chain, td_error *err)
{
    if (!w || !chain) return TD_EINVAL;
    td__slot *s = td__writer_slot(w, layer);
    if (!s || s->done) return TD_EINVAL;
    if (!matches_layout(s, chain))
        return td__error_set(err, TD_ESHAPE, td_outfile_path(w->o), w->m->layers[layer].name, "chain does not match its layout");
    td_status st = w->fmt == TD_FORMAT_SAFETENSORS ? td__writer_st_put(w, s, chain, err) : td__writer_h5_put(w, s, chain, err);
    if (st == TD_OK) {
        s->done = 1;
        memcpy(s->layout.ranks, chain->ranks, sizeof chain->ranks); /* the ranks after clamping */
        s->layout.nranks = chain->nranks;
    }
    return st;
}

td_status td_model_writer_attr(td_model_writer *w, const char *key, const char *value, td_error *err)
{
    if (!w || !key || !value) return TD_EINVAL;
    return w->fmt == TD_FORMAT_SAFETENSORS ? td__writer_st_attr(w, key, value, err) : td__writer_h5_attr(w, key, value, err);
}

static json_t *sizes(const size_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

static json_t *kernel_shape(const td_layer_desc *d)
{
    if (d->kind == TD_LAYER_DENSE) { const size_t s[2] = {d->cout, d->cin}; return sizes(s, 2); }
    const size_t s[4] = {d->cout, d->cin / d->groups, d->kh, d->kw};
    return sizes(s, 4);
}

static json_t *piece_json(const td_model_layer *l, const td__slot *s, int p)
{
    const td_layer_desc *d = &s->layout.pieces[p].desc;
    json_t *o = json_object();
    json_object_set_new(o, "layer", json_string(s->piece_layer[p]));
    json_object_set_new(o, "kind", json_string(d->kind == TD_LAYER_DENSE ? "dense" : "conv2d"));
    json_object_set_new(o, "shape", kernel_shape(d));
    json_object_set_new(o, "bias", json_boolean(s->bias_path[p] != NULL));
    if (d->kind == TD_LAYER_DENSE) return o;
    const size_t zero[4] = {0, 0, 0, 0};
    json_object_set_new(o, "stride", sizes(d->stride, 2));
    if (d->pad_mode == TD_PAD_SAME) json_object_set_new(o, "padding", json_string("same"));
    else json_object_set_new(o, "padding", sizes(d->pad_mode == TD_PAD_VALID ? zero : d->pad, 4));
    json_object_set_new(o, "dilation", sizes(d->dilation, 2));
    json_object_set_new(o, "groups", json_integer((json_int_t)d->groups));
    const int padded = d->pad_mode == TD_PAD_SAME || d->pad[0] || d->pad[1] || d->pad[2] || d->pad[3];
    json_object_set_new(o, "padding_mode", json_string(padded && l->padding_mode ? l->padding_mode : "zeros"));
    return o;
}

static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *record_json(td_model_writer *w, const td_layer_record *r)
{
    const td_model_layer *l = &w->m->layers[r->layer];
    const td__slot *s = td__writer_slot(w, r->layer);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(l->name));
    json_object_set_new(o, "method", json_string(s ? td_method_name(s->layout.method) : "none"));
    json_object_set_new(o, "kind", json_string(l->desc.kind == TD_LAYER_DENSE ? "dense" : "conv2d"));
    json_object_set_new(o, "shape", kernel_shape(&l->desc));
    if (!s) {
        json_object_set_new(o, "reason", json_string(r->reason ? r->reason : ""));
        json_object_set_new(o, "layer", json_string(w->target[r->layer] ? w->target[r->layer] : l->name));
        return o;
    }
    json_object_set_new(o, "ranks", sizes(s->layout.ranks, s->layout.nranks));
    json_object_set_new(o, "rel_error", real_or_null(r->rel_error));
    if (r->has_output_error) json_object_set_new(o, "output_rel_error", real_or_null(r->output_rel_error));
    json_t *pieces = json_array();
    for (int p = 0; p < s->layout.npieces; p++) json_array_append_new(pieces, piece_json(l, s, p));
    json_object_set_new(o, "pieces", pieces);
    return o;
}

td_status td_model_writer_finish(td_model_writer *w, const td_layer_record *rec, size_t n, td_error *err)
{
    if (!w || (!rec && n)) return TD_EINVAL;
    for (size_t i = 0; i < w->nslots; i++)
        if (!w->slots[i].done) return td__error_set(err, TD_EINVAL, td_outfile_path(w->o), w->m->layers[w->slots[i].layer].name, "never written");
    json_t *root = json_object(), *layers = json_array();
    json_object_set_new(root, "tdecomp_layers", json_integer(LAYERS_VERSION));
    json_object_set_new(root, "layout", json_string(td_layout_name(w->m->layout)));
    for (size_t i = 0; i < n; i++)
        if (rec[i].layer < w->m->nlayers) json_array_append_new(layers, record_json(w, &rec[i]));
    json_object_set_new(root, "layers", layers);
    /* into a buffer of ours (jansson's own allocations are not ours to free) */
    const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(17), len = json_dumpb(root, NULL, 0, flags);
    char *text = len ? malloc(len + 1) : NULL;
    if (text && json_dumpb(root, text, len, flags) == len) text[len] = '\0';
    else { free(text); text = NULL; }
    json_decref(root);
    td_status st = text ? td_model_writer_attr(w, "tdecomp_layers", text, err) : TD_ENOMEM;
    free(text);
    if (st == TD_OK) st = w->fmt == TD_FORMAT_SAFETENSORS ? td__writer_st_finish(w, err) : td__writer_h5_finish(w, err);
    return st;
}

td_status td_model_round_chain(const td_model *m, size_t layer, td_chain *c)
{
    if (!m || !c || layer >= m->nlayers) return TD_EINVAL;
    const td_model_layer *l = &m->layers[layer];
    const td_dtype kd = m->tensors[l->kernel].dtype, bd = l->bias >= 0 ? m->tensors[l->bias].dtype : kd;
    td_status st = TD_OK;
    for (int p = 0; p < c->npieces && st == TD_OK; p++) {
        st = td_tensor_round(&c->pieces[p].kernel, kd);
        if (st == TD_OK && c->pieces[p].bias.size) st = td_tensor_round(&c->pieces[p].bias, bd);
    }
    return st;
}

td_status td_model_write(const td_model *m, td_outfile *o, td_format fmt, const td_model_rewrite *rw, size_t n, td_error *err)
{
    if (!m || (!rw && n)) return TD_EINVAL;
    td_model_writer *w = NULL;
    td_layer_record *rec = calloc(m->nlayers ? m->nlayers : 1, sizeof *rec);
    td_status st = rec ? td_model_writer_open(&w, m, o, fmt, rw, n, err) : TD_ENOMEM;
    for (size_t i = 0; i < n && st == TD_OK; i++) st = td_model_writer_put(w, rw[i].layer, rw[i].layout, err);
    for (size_t i = 0; rec && i < m->nlayers; i++) {
        rec[i].layer = i;
        rec[i].reason = "not rewritten";
        for (size_t r = 0; r < n; r++)
            if (rw[r].layer == i) { rec[i].reason = NULL; rec[i].rel_error = rw[r].layout->rel_error; }
    }
    if (st == TD_OK) st = td_model_writer_finish(w, rec, m->nlayers, err);
    td_model_writer_free(w);
    free(rec);
    return st;
}
