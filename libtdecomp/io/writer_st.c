/* The streaming writer's safetensors backend (torch naming). Every entry is declared when the
 * writer opens; the header keeps room for the self-description written last; tensors that stay
 * are copied byte for byte from a safetensors input, or converted from an HDF5 one. */
#include <stdlib.h>
#include <string.h>
#include "io/convert_internal.h"
#include "io/model_internal.h"
#include "io/writer_internal.h"

/* Header room kept for tdecomp_layers: a fixed part, and per layer and per piece more than their
 * JSON can take (names counted separately). */
#define ROOM_FIXED 4096
#define ROOM_PER_LAYER 400
#define ROOM_PER_PIECE 360

typedef struct st_out {
    td__st_writer sw;
    size_t *entry;       /* per input tensor: its entry, or SIZE_MAX when not copied */
    int begun;
} st_out;

static st_out *out_of(td_model_writer *w) { return w->st; }

void td__writer_st_free(td_model_writer *w)
{
    st_out *o = out_of(w);
    if (!o) return;
    td__st_writer_free(&o->sw);
    free(o->entry);
    free(o);
    w->st = NULL;
}

/* The safetensors type of input tensor i: its own, or the HDF5 type's counterpart. */
static td_status input_dtype(const td_model *m, size_t i, td__st_dtype *dt, td_error *err)
{
    if (m->impl->backend == TD__BACKEND_ST) { *dt = (td__st_dtype)td__model_st_dtype(m, i); return TD_OK; }
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t d = H5Dopen2(m->impl->h5, m->tensors[i].path, H5P_DEFAULT), t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    const int ok = t >= 0 && td__st_dtype_of_h5(t, dt);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    td__h5_quiet_end(&q);
    return ok ? TD_OK : td__error_set(err, TD_EUNSUPPORTED, m->file, m->tensors[i].path, "%s has no safetensors type", m->tensors[i].dtype_name);
}

static td_status add(st_out *o, const char *name, td__st_dtype dt, int ndim, const size_t *shape, size_t *index, td_error *err)
{
    uint64_t sh[TD_MAX_MODES];
    for (int k = 0; k < ndim; k++) sh[k] = shape[k];
    return td__st_writer_add(&o->sw, name, dt, ndim, sh, index, err);
}

static int skipped_tensor(const td_model_writer *w, size_t i)
{
    for (size_t k = 0; k < w->nslots; k++) {
        const td_model_layer *l = &w->m->layers[w->slots[k].layer];
        if ((size_t)l->kernel == i || (l->bias >= 0 && (size_t)l->bias == i)) return 1;
    }
    return 0;
}

/* The pieces: <layer>.<i>.weight / .bias in the kernel's and the bias's dtype. */
static td_status declare_pieces(td_model_writer *w, td__slot *s, td_error *err)
{
    const td_model *m = w->m;
    const td_model_layer *l = &m->layers[s->layer];
    td__st_dtype kd, bd = TD__ST_F32;
    td_status st = input_dtype(m, (size_t)l->kernel, &kd, err);
    if (st == TD_OK && l->bias >= 0) st = input_dtype(m, (size_t)l->bias, &bd, err);
    for (int p = 0; p < s->layout.npieces && st == TD_OK; p++) {
        const size_t len = strlen(l->name) + 32;
        s->piece_layer[p] = malloc(len);
        s->kernel_path[p] = malloc(len);
        if (s->layout.pieces[p].desc.has_bias) s->bias_path[p] = malloc(len);
        if (!s->piece_layer[p] || !s->kernel_path[p] || (s->layout.pieces[p].desc.has_bias && !s->bias_path[p])) return TD_ENOMEM;
        snprintf(s->piece_layer[p], len, "%s.%d", l->name, p);
        snprintf(s->kernel_path[p], len, "%s.%d.weight", l->name, p);
        if (s->bias_path[p]) snprintf(s->bias_path[p], len, "%s.%d.bias", l->name, p);
        const char *clash = td__model_find_tensor_named(m, s->kernel_path[p]) >= 0 ? s->kernel_path[p]
                          : s->bias_path[p] && td__model_find_tensor_named(m, s->bias_path[p]) >= 0 ? s->bias_path[p] : NULL;
        if (clash) return td__error_set(err, TD_EFORMAT, m->file, clash, "already exists in the input: the rewrite of %s cannot be written", l->name);
        size_t idx;
        const td_tensor *k = &s->layout.pieces[p].kernel;
        st = add(out_of(w), s->kernel_path[p], kd, k->ndim, k->shape, &idx, err);
        s->st_kernel[p] = (int)idx;
        const size_t bs[1] = {s->layout.pieces[p].desc.cout};
        if (st == TD_OK && s->bias_path[p]) { st = add(out_of(w), s->bias_path[p], bd, 1, bs, &idx, err); s->st_bias[p] = (int)idx; }
    }
    return st;
}

/* Room for the self-description written at finish. */
static size_t room(const td_model_writer *w)
{
    size_t r = ROOM_FIXED;
    for (size_t i = 0; i < w->m->nlayers; i++) r += ROOM_PER_LAYER + 3 * strlen(w->m->layers[i].name);
    for (size_t k = 0; k < w->nslots; k++)
        r += (size_t)w->slots[k].layout.npieces * (ROOM_PER_PIECE + strlen(w->m->layers[w->slots[k].layer].name));
    return r;
}

td_status td__writer_st_open(td_model_writer *w, td_error *err)
{
    const td_model *m = w->m;
    if (m->layout != TD_LAYOUT_TORCH && m->layout != TD_LAYOUT_SAFETENSORS)
        return td__error_set(err, TD_EUNSUPPORTED, m->file, NULL, "a %s file cannot be written as safetensors (torch naming only)", td_layout_name(m->layout));
    st_out *o = calloc(1, sizeof *o);
    if (!o) return TD_ENOMEM;
    w->st = o;
    o->entry = malloc((m->ntensors ? m->ntensors : 1) * sizeof *o->entry);
    td_status st = o->entry ? td__st_writer_init(&o->sw, td_outfile_fd(w->o), td_outfile_path(w->o), err) : TD_ENOMEM;
    for (size_t i = 0; i < m->ntensors && st == TD_OK; i++) {
        o->entry[i] = SIZE_MAX;
        if (skipped_tensor(w, i)) continue;
        const td_model_tensor *t = &m->tensors[i];
        td__st_dtype dt;
        if (t->ndim > TD_MAX_MODES) st = td__error_set(err, TD_EUNSUPPORTED, m->file, t->path, "has more than %d dimensions", TD_MAX_MODES);
        if (st == TD_OK) st = input_dtype(m, i, &dt, err);
        if (st == TD_OK) st = add(o, t->name, dt, t->ndim, t->shape, &o->entry[i], err);
    }
    for (size_t k = 0; k < w->nslots && st == TD_OK; k++) st = declare_pieces(w, &w->slots[k], err);
    const char *v, *key;
    for (size_t k = 0; st == TD_OK && m->impl->backend == TD__BACKEND_ST && (key = td__model_st_metadata(m, k, &v)); k++)
        st = td__st_writer_set_metadata(&o->sw, key, v, err);
    for (size_t i = 0; i < m->nlayers && st == TD_OK; i++)
        if (!td__writer_slot(w, i) && !(w->target[i] = td__strdup(m->layers[i].name))) st = TD_ENOMEM;
    td__st_writer_reserve(&o->sw, room(w));
    return st;
}

/* One tensor that stays: bytes as they are from safetensors, through double or raw from HDF5. */
static td_status copy_tensor(td_model_writer *w, size_t i, td_error *err)
{
    const td_model *m = w->m;
    st_out *o = out_of(w);
    if (m->impl->backend == TD__BACKEND_ST) {
        int fd;
        uint64_t off;
        td_status st = td__model_st_raw(m, i, &fd, &off);
        return st == TD_OK ? td__st_writer_put_raw(&o->sw, o->entry[i], fd, off, err) : st;
    }
    const td__st_dtype dt = o->sw.entries[o->entry[i]].dtype;
    if (td__st_dtype_is_float(dt)) {
        td_tensor t;
        td__h5quiet q;
        td__h5_quiet_begin(&q);
        td_status st = td__model_read_h5(m, i, &t, err); /* values as they are, NaN included */
        td__h5_quiet_end(&q);
        if (st == TD_OK) st = td__st_writer_put_double(&o->sw, o->entry[i], t.data, err);
        td_tensor_free(&t);
        return st;
    }
    void *buf;
    size_t n;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = td__h5_read_bytes(m->impl->h5, m->file, m->tensors[i].path, dt, &buf, &n, err);
    td__h5_quiet_end(&q);
    if (st == TD_OK) st = td__st_writer_put_bytes(&o->sw, o->entry[i], buf, err);
    free(buf);
    return st;
}

/* The header, then every tensor that stays. */
static td_status begin(td_model_writer *w, td_error *err)
{
    st_out *o = out_of(w);
    if (o->begun) return TD_OK;
    td_status st = td__st_writer_begin_data(&o->sw, err);
    for (size_t i = 0; i < w->m->ntensors && st == TD_OK; i++)
        if (o->entry[i] != SIZE_MAX) st = copy_tensor(w, i, err);
    o->begun = st == TD_OK;
    return st;
}

td_status td__writer_st_put(td_model_writer *w, td__slot *s, const td_chain *c, td_error *err)
{
    st_out *o = out_of(w);
    td_status st = begin(w, err);
    for (int p = 0; p < c->npieces && st == TD_OK; p++) {
        st = td__st_writer_put_double(&o->sw, (size_t)s->st_kernel[p], c->pieces[p].kernel.data, err);
        if (st == TD_OK && s->bias_path[p]) st = td__st_writer_put_double(&o->sw, (size_t)s->st_bias[p], c->pieces[p].bias.data, err);
    }
    return st;
}

td_status td__writer_st_attr(td_model_writer *w, const char *key, const char *value, td_error *err)
{
    st_out *o = out_of(w);
    td_status st = td__st_writer_set_metadata(&o->sw, key, value, err);
    if (st == TD_OK && o->begun) st = td__st_writer_rewrite_header(&o->sw, err);
    return st;
}

td_status td__writer_st_finish(td_model_writer *w, td_error *err)
{
    td_status st = begin(w, err);
    if (st == TD_OK) st = td__st_writer_rewrite_header(&out_of(w)->sw, err);
    if (st == TD_OK) st = td__st_writer_finish(&out_of(w)->sw, err);
    return st;
}

/* --- adapters of a safetensors input, as safetensors ------------------------------------------
 * Every tensor stays byte for byte except each adapted kernel (its frozen part, same name, dtype
 * and shape); <prefix>.lora_A and <prefix>.lora_B follow in the kernel's dtype; the input's
 * __metadata__ is kept and extended as td_adapter_meta says. */

static const td_model_adapter *adapter_of_tensor(const td_model *m, const td_model_adapter *ad, size_t n, size_t i)
{
    for (size_t k = 0; k < n; k++)
        if ((size_t)m->layers[ad[k].layer].kernel == i) return &ad[k];
    return NULL;
}

/* "<prefix>.lora_A" for a kernel named "<prefix>.weight" (else "<name>.lora_A"). */
static char *lora_name(const char *kernel, const char *suffix)
{
    const size_t n = strlen(kernel), w = strlen("weight");
    const int torch = n > w && !strcmp(kernel + n - w, "weight");
    const size_t len = n + strlen(suffix) + 2;
    char *s = malloc(len);
    if (!s) return NULL;
    if (torch) snprintf(s, len, "%.*s%s", (int)(n - w), kernel, suffix);
    else snprintf(s, len, "%s.%s", kernel, suffix);
    return s;
}

static td_status declare_adapters(const td_model *m, td__st_writer *sw, const td_model_adapter *ad, size_t n,
                                  size_t *entry, size_t *lora, td_error *err)
{
    td_status st = TD_OK;
    for (size_t i = 0; i < m->ntensors && st == TD_OK; i++) {
        const td_model_tensor *t = &m->tensors[i];
        uint64_t sh[TD_MAX_MODES];
        for (int k = 0; k < t->ndim && k < TD_MAX_MODES; k++) sh[k] = t->shape[k];
        if (t->ndim > TD_MAX_MODES) st = td__error_set(err, TD_EUNSUPPORTED, m->file, t->path, "has more than %d dimensions", TD_MAX_MODES);
        if (st == TD_OK) st = td__st_writer_add(sw, t->name, (td__st_dtype)td__model_st_dtype(m, i), t->ndim, sh, &entry[i], err);
    }
    for (size_t k = 0; k < n && st == TD_OK; k++) {
        const td_model_tensor *t = &m->tensors[m->layers[ad[k].layer].kernel];
        const td_tensor *ab[2] = {&ad[k].adapter->a, &ad[k].adapter->b};
        for (int q = 0; q < 2 && st == TD_OK; q++) {
            char *name = lora_name(t->name, q ? "lora_B" : "lora_A");
            if (!name) return TD_ENOMEM;
            if (td__model_find_tensor_named(m, name) >= 0)
                st = td__error_set(err, TD_EFORMAT, m->file, name, "already exists in the input: the adapter cannot be written");
            const uint64_t sh[2] = {ab[q]->shape[0], ab[q]->shape[1]};
            if (st == TD_OK) st = td__st_writer_add(sw, name, (td__st_dtype)td__model_st_dtype(m, (size_t)m->layers[ad[k].layer].kernel), 2, sh, &lora[2 * k + q], err);
            free(name);
        }
    }
    return st;
}

td_status td__adapters_st_write(const td_model *m, td_outfile *o, const td_model_adapter *ad, size_t n,
                                const td_adapter_meta *meta, td_error *err)
{
    td__st_writer sw;
    memset(&sw, 0, sizeof sw);
    size_t *entry = malloc((m->ntensors ? m->ntensors : 1) * sizeof *entry), *lora = malloc((2 * n + 1) * sizeof *lora);
    td_status st = entry && lora ? td__st_writer_init(&sw, td_outfile_fd(o), td_outfile_path(o), err) : TD_ENOMEM;
    if (st == TD_OK) st = declare_adapters(m, &sw, ad, n, entry, lora, err);
    const char *key, *v;
    for (size_t k = 0; st == TD_OK && (key = td__model_st_metadata(m, k, &v)); k++) st = td__st_writer_set_metadata(&sw, key, v, err);
    char num[64];
    if (st == TD_OK && meta) {
        snprintf(num, sizeof num, "%zu", meta->rank);
        st = td__st_writer_set_metadata(&sw, "tdecomp_adapters_rank", num, err);
        snprintf(num, sizeof num, "%.17g", meta->alpha);
        if (st == TD_OK) st = td__st_writer_set_metadata(&sw, "tdecomp_adapters_alpha", num, err);
        if (st == TD_OK) st = td__st_writer_set_metadata(&sw, "tdecomp_adapters_mode", td__adapter_mode_name(meta->mode), err);
        if (st == TD_OK && meta->command) st = td__st_writer_set_metadata(&sw, "tdecomp_command", meta->command, err);
    }
    if (st == TD_OK) st = td__st_writer_set_metadata(&sw, "tdecomp_version", td_version(), err);
    if (st == TD_OK) st = td__st_writer_begin_data(&sw, err);
    for (size_t i = 0; i < m->ntensors && st == TD_OK; i++) {
        const td_model_adapter *a = adapter_of_tensor(m, ad, n, i);
        int fd;
        uint64_t off;
        if (a) st = td__st_writer_put_double(&sw, entry[i], a->adapter->frozen.data, err);
        else if ((st = td__model_st_raw(m, i, &fd, &off)) == TD_OK) st = td__st_writer_put_raw(&sw, entry[i], fd, off, err);
    }
    for (size_t k = 0; k < n && st == TD_OK; k++) {
        st = td__st_writer_put_double(&sw, lora[2 * k], ad[k].adapter->a.data, err);
        if (st == TD_OK) st = td__st_writer_put_double(&sw, lora[2 * k + 1], ad[k].adapter->b.data, err);
    }
    if (st == TD_OK) st = td__st_writer_finish(&sw, err);
    td__st_writer_free(&sw);
    free(entry);
    free(lora);
    return st;
}
