/* safetensors writer: every entry declared first, then the header, then the data by pwrite at
 * each entry's offset (any order). The header JSON is produced by jansson, entry by entry, so
 * memory stays O(header text). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "io/st_internal.h"

#define LEN_BYTES 8
#define DATA_ALIGN 8             /* the data section starts at a multiple of this */
#define CHUNK_BYTES (1u << 20)
#define METADATA_KEY "__metadata__"
#define HASH_MIN 64
#define FNV_OFFSET UINT64_C(14695981039346656037)
#define FNV_PRIME UINT64_C(1099511628211)

enum { W_DECLARING = 0, W_DATA = 1, W_FINISHED = 2 };

td_status td__st_writer_init(td__st_writer *w, int fd, const char *label, td_error *err)
{
    if (!w) return TD_EINVAL;
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (fd < 0) return td__error_set(err, TD_EINVAL, label, NULL, "no file descriptor to write to");
    if (label && !(w->label = td__strdup(label))) return td__error_set(err, TD_ENOMEM, label, NULL, "out of memory");
    w->fd = fd;
    return TD_OK;
}

void td__st_writer_free(td__st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->entries[i].name);
        free(w->entries[i].shape);
    }
    for (size_t i = 0; i < 2 * w->nmeta; i++) free(w->meta_kv[i]);
    free(w->entries);
    free(w->meta_kv);
    free(w->hash_);
    free(w->label);
    memset(w, 0, sizeof *w);
    w->fd = -1;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = FNV_OFFSET;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * FNV_PRIME;
    return h;
}

/* The slot holding name, or the empty slot where it would go (capacity a power of two). */
static size_t *hash_slot(size_t *tab, size_t cap, const td__st_wentry *e, const char *name)
{
    size_t i = (size_t)hash_name(name) & (cap - 1);
    while (tab[i] && strcmp(e[tab[i] - 1].name, name) != 0) i = (i + 1) & (cap - 1);
    return &tab[i];
}

/* Keeps the load factor at most 1/2 for one more entry. */
static int hash_reserve(td__st_writer *w)
{
    if (2 * (w->n + 1) <= w->hashcap_) return 1;
    size_t cap = w->hashcap_ ? 2 * w->hashcap_ : HASH_MIN;
    if (cap < w->hashcap_ || cap > SIZE_MAX / sizeof(size_t)) return 0;
    size_t *tab = calloc(cap, sizeof *tab);
    if (!tab) return 0;
    for (size_t i = 0; i < w->n; i++) *hash_slot(tab, cap, w->entries, w->entries[i].name) = i + 1;
    free(w->hash_);
    w->hash_ = tab;
    w->hashcap_ = cap;
    return 1;
}

/* Element count and byte size of a declared shape. */
static td_status entry_size(const td__st_writer *w, const char *name, td__st_dtype dt, int ndim, const uint64_t *shape,
                            uint64_t *nelem, uint64_t *nbytes, td_error *err)
{
    uint64_t n = 1;
    unsigned bits = td__st_dtype_bits(dt);
    for (int k = 0; k < ndim; k++) {
        if (shape[k] > (uint64_t)INT64_MAX)
            return td__error_set(err, TD_EOVERFLOW, w->label, name, "extent %" PRIu64 " does not fit a JSON integer", shape[k]);
        if (shape[k] && n > UINT64_MAX / shape[k])
            return td__error_set(err, TD_EOVERFLOW, w->label, name, "element count overflows 64 bits");
        n *= shape[k];
    }
    if (n > (uint64_t)INT64_MAX / bits) return td__error_set(err, TD_EOVERFLOW, w->label, name, "byte size overflows");
    if (n * bits % 8)
        return td__error_set(err, TD_EINVAL, w->label, name, "%" PRIu64 " elements of %s are not a whole number of bytes", n,
                             td__st_dtype_name(dt));
    *nelem = n;
    *nbytes = n * bits / 8;
    return TD_OK;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? 2 * *cap : 16;
    if (c < need) c = need;
    if (c > SIZE_MAX / elem) return 0;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

td_status td__st_writer_add(td__st_writer *w, const char *name, td__st_dtype dtype, int ndim, const uint64_t *shape,
                            size_t *index, td_error *err)
{
    if (!w || !name || ndim < 0 || (ndim > 0 && !shape) || (unsigned)dtype >= TD__ST_NDTYPES)
        return td__error_set(err, TD_EINVAL, w ? w->label : NULL, name, "invalid tensor declaration");
    if (w->state != W_DECLARING)
        return td__error_set(err, TD_EINVAL, w->label, name, "declared after the data was started");
    size_t len = strlen(name);
    if (td__utf8_check((const unsigned char *)name, len) != len)
        return td__error_set(err, TD_EINVAL, w->label, NULL, "a tensor name is not valid UTF-8");
    if (strcmp(name, METADATA_KEY) == 0) return td__error_set(err, TD_EINVAL, w->label, name, "the name is reserved");
    uint64_t nelem = 0, nbytes = 0;
    td_status st = entry_size(w, name, dtype, ndim, shape, &nelem, &nbytes, err);
    if (st != TD_OK) return st;
    if (!hash_reserve(w) || !grow((void **)&w->entries, &w->cap, w->n + 1, sizeof *w->entries))
        return td__error_set(err, TD_ENOMEM, w->label, name, "out of memory");
    size_t *slot = hash_slot(w->hash_, w->hashcap_, w->entries, name);
    if (*slot) return td__error_set(err, TD_EINVAL, w->label, name, "tensor declared twice");
    td__st_wentry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    e->name = td__strdup(name);
    e->shape = malloc((ndim ? (size_t)ndim : 1) * sizeof *e->shape);
    if (!e->name || !e->shape) {
        free(e->name);
        free(e->shape);
        return td__error_set(err, TD_ENOMEM, w->label, name, "out of memory");
    }
    if (ndim) memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->dtype = dtype;
    e->ndim = ndim;
    e->nelem = nelem;
    e->nbytes = nbytes;
    *slot = ++w->n;
    if (index) *index = w->n - 1;
    return TD_OK;
}

td_status td__st_writer_set_metadata(td__st_writer *w, const char *key, const char *value, td_error *err)
{
    if (!w || !key || !value) return td__error_set(err, TD_EINVAL, w ? w->label : NULL, METADATA_KEY, "no key or value");
    if (w->state == W_FINISHED) return td__error_set(err, TD_EINVAL, w->label, METADATA_KEY, "set after finish");
    size_t kl = strlen(key), vl = strlen(value);
    if (td__utf8_check((const unsigned char *)key, kl) != kl || td__utf8_check((const unsigned char *)value, vl) != vl)
        return td__error_set(err, TD_EINVAL, w->label, METADATA_KEY, "key or value is not valid UTF-8");
    char *v = td__strdup(value);
    if (!v) return td__error_set(err, TD_ENOMEM, w->label, METADATA_KEY, "out of memory");
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_kv[2 * i], key) == 0) {
            free(w->meta_kv[2 * i + 1]);
            w->meta_kv[2 * i + 1] = v;
            return TD_OK;
        }
    char *k = td__strdup(key);
    if (!k || !grow((void **)&w->meta_kv, &w->metacap, 2 * (w->nmeta + 1), sizeof *w->meta_kv)) {
        free(k);
        free(v);
        return td__error_set(err, TD_ENOMEM, w->label, METADATA_KEY, "out of memory");
    }
    w->meta_kv[2 * w->nmeta] = k;
    w->meta_kv[2 * w->nmeta + 1] = v;
    w->nmeta++;
    return TD_OK;
}

/* Largest element first; declaration order among equals (pointers into one array). */
static int by_size_desc(const void *a, const void *b)
{
    const td__st_wentry *x = *(const td__st_wentry *const *)a, *y = *(const td__st_wentry *const *)b;
    unsigned bx = td__st_dtype_bits(x->dtype), by = td__st_dtype_bits(y->dtype);
    if (bx != by) return bx > by ? -1 : 1;
    return x < y ? -1 : (x > y);
}

static td_status layout(td__st_writer *w, td_error *err)
{
    const td__st_wentry **v = malloc((w->n ? w->n : 1) * sizeof *v);
    if (!v) return td__error_set(err, TD_ENOMEM, w->label, NULL, "out of memory");
    for (size_t i = 0; i < w->n; i++) v[i] = &w->entries[i];
    if (w->n) qsort(v, w->n, sizeof *v, by_size_desc);
    uint64_t pos = 0;
    td_status st = TD_OK;
    for (size_t i = 0; i < w->n; i++) {
        td__st_wentry *e = &w->entries[v[i] - w->entries];
        if (e->nbytes > (uint64_t)INT64_MAX - pos) {
            st = td__error_set(err, TD_EOVERFLOW, w->label, NULL, "the tensors' total size overflows");
            break;
        }
        e->begin = pos;
        pos += e->nbytes;
    }
    free(v);
    w->data_len = pos;
    return st;
}

typedef struct text {
    char *p;
    size_t n, cap;
} text;

static int text_add(text *t, const char *s, size_t len)
{
    if (len > SIZE_MAX - t->n - 1 || !grow((void **)&t->p, &t->cap, t->n + len + 1, 1)) return 0;
    memcpy(t->p + t->n, s, len);
    t->n += len;
    t->p[t->n] = '\0';
    return 1;
}

/* Appends the compact JSON of v (stolen). */
static int text_json(text *t, json_t *v)
{
    char *s = v ? td__json_text(v) : NULL;
    json_decref(v);
    int ok = s && text_add(t, s, strlen(s));
    free(s);
    return ok;
}

static json_t *entry_json(const td__st_wentry *e)
{
    json_t *o = json_object(), *sh = json_array(), *off = json_array();
    int ok = o && sh && off;
    for (int k = 0; ok && k < e->ndim; k++) ok = json_array_append_new(sh, json_integer((json_int_t)e->shape[k])) == 0;
    ok = ok && json_array_append_new(off, json_integer((json_int_t)e->begin)) == 0 &&
         json_array_append_new(off, json_integer((json_int_t)(e->begin + e->nbytes))) == 0;
    ok = ok && json_object_set_new(o, "dtype", json_string(td__st_dtype_name(e->dtype))) == 0;
    ok = ok && json_object_set(o, "shape", sh) == 0 && json_object_set(o, "data_offsets", off) == 0;
    json_decref(sh);
    json_decref(off);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* {"__metadata__": {...}, "name": {...}, ...} padded with spaces to a multiple of 8 bytes
 * after the length field. */
static int header_text(const td__st_writer *w, text *t)
{
    int ok = text_add(t, "{", 1);
    if (ok && w->nmeta) {
        json_t *m = json_object();
        for (size_t i = 0; ok && i < w->nmeta; i++)
            ok = m && json_object_set_new(m, w->meta_kv[2 * i], json_string(w->meta_kv[2 * i + 1])) == 0;
        ok = ok && text_add(t, "\"" METADATA_KEY "\":", strlen(METADATA_KEY) + 3) && text_json(t, m);
        if (!ok) json_decref(m);
    }
    for (size_t i = 0; ok && i < w->n; i++) {
        if (i || w->nmeta) ok = text_add(t, ",", 1);
        ok = ok && text_json(t, json_string(w->entries[i].name)) && text_add(t, ":", 1) &&
             text_json(t, entry_json(&w->entries[i]));
    }
    ok = ok && text_add(t, "}", 1);
    for (size_t i = 0; ok && i < w->reserve_; i++) ok = text_add(t, " ", 1); /* room for later metadata */
    while (ok && (LEN_BYTES + t->n) % DATA_ALIGN) ok = text_add(t, " ", 1);
    return ok;
}

td_status td__st_writer_begin_data(td__st_writer *w, td_error *err)
{
    if (!w || w->fd < 0) return TD_EINVAL;
    if (w->state != W_DECLARING) return td__error_set(err, TD_EINVAL, w->label, NULL, "the data was already started");
    td_status st = layout(w, err);
    if (st != TD_OK) return st;
    text t = {0};
    if (!header_text(w, &t)) {
        st = td__error_set(err, TD_ENOMEM, w->label, NULL, "out of memory for the header");
        goto done;
    }
    if (t.n > TD__ST_HEADER_MAX) {
        st = td__error_set(err, TD_EINVAL, w->label, NULL, "header of %zu bytes exceeds the format's limit of %u bytes", t.n,
                           TD__ST_HEADER_MAX);
        goto done;
    }
    unsigned char len[LEN_BYTES];
    uint64_t n = t.n;
    for (int i = 0; i < LEN_BYTES; i++) len[i] = (unsigned char)((n >> (8 * i)) & 0xFFu);
    w->data_start = LEN_BYTES + n;
    if (td__pwrite_full(w->fd, len, LEN_BYTES, 0) != 0 || td__pwrite_full(w->fd, t.p, t.n, LEN_BYTES) != 0 ||
        ftruncate(w->fd, (off_t)(w->data_start + w->data_len)) != 0) {
        st = td__error_set(err, TD_EIO, w->label, NULL, "cannot write the header: %s", strerror(errno));
        goto done;
    }
    w->state = W_DATA;
done:
    free(t.p);
    return st;
}

static td_status put_check(td__st_writer *w, size_t index, td_error *err)
{
    if (!w || w->fd < 0) return TD_EINVAL;
    if (index >= w->n) return td__error_set(err, TD_EINVAL, w->label, NULL, "tensor index %zu out of range", index);
    const td__st_wentry *e = &w->entries[index];
    if (w->state != W_DATA)
        return td__error_set(err, TD_EINVAL, w->label, e->name, w->state == W_DECLARING ? "written before the header" : "written after finish");
    if (e->written) return td__error_set(err, TD_EINVAL, w->label, e->name, "written twice");
    return TD_OK;
}

/* Fills buf with the m units from unit `done` on. */
typedef td_status (*chunk_fill)(void *ctx, unsigned char *buf, uint64_t done, size_t m, td_error *err);

/* Writes an entry's `units` units of `usize` bytes through a buffer of at most CHUNK_BYTES. */
static td_status write_chunked(td__st_writer *w, td__st_wentry *e, uint64_t units, size_t usize,
                               chunk_fill fill, void *ctx, td_error *err)
{
    const size_t per = CHUNK_BYTES / usize, chunk = units < per ? (size_t)units : per;
    unsigned char *buf = malloc(chunk ? chunk * usize : 1);
    if (!buf) return td__error_set(err, TD_ENOMEM, w->label, e->name, "out of memory");
    const uint64_t off = w->data_start + e->begin;
    td_status st = TD_OK;
    for (uint64_t done = 0; done < units && st == TD_OK;) {
        const size_t m = units - done < chunk ? (size_t)(units - done) : chunk;
        st = fill(ctx, buf, done, m, err);
        if (st == TD_OK && td__pwrite_full(w->fd, buf, m * usize, off + done * usize) != 0)
            st = td__error_set(err, TD_EIO, w->label, e->name, "cannot write: %s", strerror(errno));
        done += m;
    }
    free(buf);
    if (st == TD_OK) e->written = 1;
    return st;
}

typedef struct encode_ctx { td__st_dtype dtype; size_t esize; const double *data; } encode_ctx;

static td_status fill_encoded(void *ctx, unsigned char *buf, uint64_t done, size_t m, td_error *err)
{
    const encode_ctx *c = ctx;
    (void)err;
    for (size_t i = 0; i < m; i++) td__st_encode(c->dtype, c->data[done + i], buf + i * c->esize);
    return TD_OK;
}

td_status td__st_writer_put_double(td__st_writer *w, size_t index, const double *data, td_error *err)
{
    td_status st = put_check(w, index, err);
    if (st != TD_OK) return st;
    td__st_wentry *e = &w->entries[index];
    if (!td__st_dtype_is_float(e->dtype))
        return td__error_set(err, TD_EDTYPE, w->label, e->name, "dtype %s is not a float type", td__st_dtype_name(e->dtype));
    if (e->nelem && !data) return td__error_set(err, TD_EINVAL, w->label, e->name, "no data given");
    encode_ctx c = {e->dtype, td__st_dtype_bits(e->dtype) / 8, data};
    return write_chunked(w, e, e->nelem, c.esize, fill_encoded, &c, err);
}

typedef struct raw_ctx { const td__st_writer *w; const td__st_wentry *e; int fd; uint64_t offset; } raw_ctx;

static td_status fill_raw(void *ctx, unsigned char *buf, uint64_t done, size_t m, td_error *err)
{
    const raw_ctx *c = ctx;
    const int r = td__pread_full(c->fd, buf, m, c->offset + done);
    if (r < 0) return td__error_set(err, TD_EIO, c->w->label, c->e->name, "cannot read the source: %s", strerror(errno));
    if (r > 0)
        return td__error_set(err, TD_EFORMAT, c->w->label, c->e->name,
                             "the source ends before the tensor's %" PRIu64 " bytes", c->e->nbytes);
    return TD_OK;
}

td_status td__st_writer_put_raw(td__st_writer *w, size_t index, int src_fd, uint64_t src_offset, td_error *err)
{
    td_status st = put_check(w, index, err);
    if (st != TD_OK) return st;
    td__st_wentry *e = &w->entries[index];
    if (e->nbytes && src_fd < 0) return td__error_set(err, TD_EINVAL, w->label, e->name, "no source descriptor");
    if (e->nbytes > UINT64_MAX - src_offset) return td__error_set(err, TD_EINVAL, w->label, e->name, "source offset overflows");
    raw_ctx c = {w, e, src_fd, src_offset};
    return write_chunked(w, e, e->nbytes, 1, fill_raw, &c, err);
}

void td__st_writer_reserve(td__st_writer *w, size_t bytes)
{
    if (w && w->state == W_DECLARING) w->reserve_ = bytes;
}

td_status td__st_writer_rewrite_header(td__st_writer *w, td_error *err)
{
    if (!w || w->state != W_DATA) return TD_EINVAL;
    const size_t keep = w->reserve_;
    w->reserve_ = 0;
    text t = {0};
    td_status st = header_text(w, &t) ? TD_OK : td__error_set(err, TD_ENOMEM, w->label, NULL, "out of memory for the header");
    w->reserve_ = keep;
    const uint64_t room = w->data_start - LEN_BYTES;
    if (st == TD_OK && t.n > room)
        st = td__error_set(err, TD_EINTERNAL, w->label, METADATA_KEY, "metadata of %zu bytes exceed the %llu reserved", t.n,
                           (unsigned long long)room);
    while (st == TD_OK && t.n < room) st = text_add(&t, " ", 1) ? TD_OK : TD_ENOMEM;
    if (st == TD_OK && td__pwrite_full(w->fd, t.p, t.n, LEN_BYTES) != 0)
        st = td__error_set(err, TD_EIO, w->label, NULL, "cannot write the header: %s", strerror(errno));
    free(t.p);
    return st;
}

td_status td__st_writer_put_bytes(td__st_writer *w, size_t index, const void *buf, td_error *err)
{
    td_status st = put_check(w, index, err);
    if (st != TD_OK) return st;
    td__st_wentry *e = &w->entries[index];
    if (e->nbytes && !buf) return td__error_set(err, TD_EINVAL, w->label, e->name, "no data given");
    if (e->nbytes && td__pwrite_full(w->fd, buf, (size_t)e->nbytes, w->data_start + e->begin) != 0)
        return td__error_set(err, TD_EIO, w->label, e->name, "cannot write: %s", strerror(errno));
    e->written = 1;
    return TD_OK;
}

td_status td__st_writer_finish(td__st_writer *w, td_error *err)
{
    if (!w) return TD_EINVAL;
    if (w->state != W_DATA)
        return td__error_set(err, TD_EINVAL, w->label, NULL, w->state == W_DECLARING ? "finished before the header was written" : "finished twice");
    for (size_t i = 0; i < w->n; i++)
        if (!w->entries[i].written)
            return td__error_set(err, TD_EINVAL, w->label, w->entries[i].name, "declared but never written");
    w->state = W_FINISHED;
    return TD_OK;
}
