/* safetensors reader: the header is read and validated at open; tensor data later, by pread of
 * exactly one tensor's bytes. JSON by jansson. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "io/st_internal.h"

#define LEN_BYTES 8              /* the u64 header length */
#define CHUNK_BYTES (1u << 20)   /* bounded buffer for converting reads */
#define SHAPE_TEXT 96            /* "(3, 4)" in messages, truncated with "..." */
#define METADATA_KEY "__metadata__"

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static void shape_text(char *buf, size_t cap, const uint64_t *shape, int ndim)
{
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int k = 0; k < ndim && n < cap; k++) {
        int w = snprintf(buf + n, cap - n, k ? ", %" PRIu64 : "%" PRIu64, shape[k]);
        if (w < 0) return;
        n += (size_t)w;
    }
    if (n + 2 < cap) {
        snprintf(buf + n, cap - n, ")");
    } else { /* too long: end in "...)" */
        snprintf(buf + cap - 5, 5, "...)");
    }
}

/* Reads N and the N header bytes (NUL-terminated copy in *hdr). */
static td_status read_header(const char *path, int fd, uint64_t size, unsigned char **hdr, uint64_t *n_out,
                             td_error *err)
{
    unsigned char len[LEN_BYTES];
    *hdr = NULL;
    if (size < LEN_BYTES)
        return td__error_set(err, TD_EFORMAT, path, NULL, "file is %" PRIu64 " bytes, too short for the 8-byte header length", size);
    int r = td__pread_full(fd, len, LEN_BYTES, 0);
    if (r != 0) return td__error_set(err, r < 0 ? TD_EIO : TD_EFORMAT, path, NULL, "cannot read the header length");
    uint64_t n = 0;
    for (int i = LEN_BYTES - 1; i >= 0; i--) n = (n << 8) | len[i];
    if (n > TD__ST_HEADER_MAX)
        return td__error_set(err, TD_EFORMAT, path, NULL, "header length %" PRIu64 " exceeds the format's limit of %u bytes",
                             n, TD__ST_HEADER_MAX);
    if (n > size - LEN_BYTES)
        return td__error_set(err, TD_EFORMAT, path, NULL, "header length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)",
                             n, size);
    if (n == 0) return td__error_set(err, TD_EFORMAT, path, NULL, "header is empty (length 0)");
    unsigned char *h = malloc((size_t)n + 1);
    if (!h) return td__error_set(err, TD_ENOMEM, path, NULL, "no memory for a %" PRIu64 "-byte header", n);
    r = td__pread_full(fd, h, (size_t)n, LEN_BYTES);
    if (r != 0) {
        free(h);
        return td__error_set(err, r < 0 ? TD_EIO : TD_EFORMAT, path, NULL, "cannot read the header");
    }
    h[n] = '\0';
    *hdr = h;
    *n_out = n;
    return TD_OK;
}

static td_status parse_json(const char *path, const unsigned char *h, uint64_t n, json_t **root, td_error *err)
{
    *root = NULL;
    if (h[0] != '{') return td__error_set(err, TD_EFORMAT, path, NULL, "header does not start with '{'");
    size_t bad = td__utf8_check(h, (size_t)n);
    if (bad != n) return td__error_set(err, TD_EFORMAT, path, NULL, "header is not valid UTF-8 (byte %zu of the header)", bad);
    json_error_t je;
    json_t *j = json_loadb((const char *)h, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        enum json_error_code code = json_error_code(&je);
        if (code == json_error_out_of_memory) return td__error_set(err, TD_ENOMEM, path, NULL, "no memory to parse the header");
        if (code == json_error_duplicate_key) /* jansson's text is "duplicate object key near ..." */
            return td__error_set(err, TD_EFORMAT, path, NULL, "header has a duplicate key%s (byte %d of the header)",
                                 strstr(je.text, " near ") ? strstr(je.text, " near ") : "", je.position);
        return td__error_set(err, TD_EFORMAT, path, NULL, "header is not valid JSON: %s (byte %d of the header)", je.text,
                             je.position);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return td__error_set(err, TD_EFORMAT, path, NULL, "header is not a JSON object");
    }
    *root = j;
    return TD_OK;
}

/* Pool sizes: tensors, shape extents, string bytes (names, metadata keys and values). */
static void count_entries(json_t *root, size_t *ntensors, size_t *ndims, size_t *nmeta, size_t *nstr)
{
    const char *key;
    json_t *v;
    *ntensors = *ndims = *nmeta = *nstr = 0;
    json_object_foreach(root, key, v) {
        if (strcmp(key, METADATA_KEY) == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) continue;
            json_object_foreach(v, mk, mv) {
                (*nmeta)++;
                *nstr += strlen(mk) + 1 + (json_is_string(mv) ? json_string_length(mv) + 1 : 0);
            }
            continue;
        }
        (*ntensors)++;
        *nstr += strlen(key) + 1;
        json_t *sh = json_is_object(v) ? json_object_get(v, "shape") : NULL;
        if (json_is_array(sh)) *ndims += json_array_size(sh);
    }
}

static char *pool_copy(char **pool, const char *s, size_t len)
{
    char *dst = *pool;
    memcpy(dst, s, len);
    dst[len] = '\0';
    *pool += len + 1;
    return dst;
}

static td_status parse_metadata(td__st_file *f, json_t *v, char **pool, td_error *err)
{
    if (!json_is_object(v))
        return td__error_set(err, TD_EFORMAT, f->path, METADATA_KEY, "is a JSON %s, not an object of strings", json_kind(v));
    const char *k;
    json_t *mv;
    json_object_foreach(v, k, mv) {
        if (!json_is_string(mv))
            return td__error_set(err, TD_EFORMAT, f->path, METADATA_KEY, "value of \"%s\" is a JSON %s, not a string", k,
                                 json_kind(mv));
        td__st_meta *m = &f->meta[f->nmeta++];
        m->key = pool_copy(pool, k, strlen(k));
        m->value = pool_copy(pool, json_string_value(mv), json_string_length(mv));
    }
    return TD_OK;
}

/* The entry's three members, refusing missing and unknown ones. */
static td_status entry_fields(const char *path, const char *name, json_t *v, json_t **dt, json_t **sh, json_t **off,
                              td_error *err)
{
    if (!json_is_object(v)) return td__error_set(err, TD_EFORMAT, path, name, "entry is a JSON %s, not an object", json_kind(v));
    const char *k;
    json_t *x;
    *dt = *sh = *off = NULL;
    json_object_foreach(v, k, x) {
        if (strcmp(k, "dtype") == 0) *dt = x;
        else if (strcmp(k, "shape") == 0) *sh = x;
        else if (strcmp(k, "data_offsets") == 0) *off = x;
        else return td__error_set(err, TD_EFORMAT, path, name, "entry has an unknown field \"%s\"", k);
    }
    const char *missing = !*dt ? "dtype" : (!*sh ? "shape" : (!*off ? "data_offsets" : NULL));
    if (missing) return td__error_set(err, TD_EFORMAT, path, name, "entry has no \"%s\"", missing);
    if (!json_is_string(*dt))
        return td__error_set(err, TD_EFORMAT, path, name, "\"dtype\" is a JSON %s, not a string", json_kind(*dt));
    if (!json_is_array(*sh))
        return td__error_set(err, TD_EFORMAT, path, name, "\"shape\" is a JSON %s, not an array", json_kind(*sh));
    if (!json_is_array(*off) || json_array_size(*off) != 2)
        return td__error_set(err, TD_EFORMAT, path, name, "\"data_offsets\" is not an array of two integers");
    return TD_OK;
}

static td_status parse_shape(const char *path, const char *name, json_t *sh, td__st_tensor *t, uint64_t *dims,
                             td_error *err)
{
    size_t nd = json_array_size(sh);
    uint64_t count = 1;
    int overflow = 0;
    for (size_t k = 0; k < nd; k++) {
        json_t *d = json_array_get(sh, k);
        if (!json_is_integer(d))
            return td__error_set(err, TD_EFORMAT, path, name, "shape entry %zu is a JSON %s, not an integer", k, json_kind(d));
        json_int_t v = json_integer_value(d);
        if (v < 0) return td__error_set(err, TD_EFORMAT, path, name, "shape entry %zu is negative (%lld)", k, (long long)v);
        dims[k] = (uint64_t)v;
        if (dims[k] != 0 && count > UINT64_MAX / dims[k]) overflow = 1;
        count *= dims[k];
    }
    t->ndim = (int)nd;
    t->shape = nd ? dims : NULL;
    if (overflow) {
        char s[SHAPE_TEXT];
        shape_text(s, sizeof s, dims, (int)nd);
        return td__error_set(err, TD_EOVERFLOW, path, name, "element count of shape %s overflows 64 bits", s);
    }
    t->nelem = count;
    return TD_OK;
}

/* Byte size from element count and dtype, checked against END - BEGIN and the data section. */
static td_status check_size(const char *path, const char *name, td__st_tensor *t, uint64_t datalen, td_error *err)
{
    unsigned bits = td__st_dtype_bits(t->dtype);
    const char *dn = td__st_dtype_name(t->dtype);
    char s[SHAPE_TEXT];
    shape_text(s, sizeof s, t->shape, t->ndim);
    uint64_t nbytes;
    if (bits % 8 == 0) {
        if (t->nelem > UINT64_MAX / (bits / 8))
            return td__error_set(err, TD_EOVERFLOW, path, name, "byte size of shape %s x %s overflows 64 bits", s, dn);
        nbytes = t->nelem * (bits / 8);
    } else {
        if (t->nelem > UINT64_MAX / bits)
            return td__error_set(err, TD_EOVERFLOW, path, name, "bit size of shape %s x %s overflows 64 bits", s, dn);
        if (t->nelem * bits % 8)
            return td__error_set(err, TD_EFORMAT, path, name, "%" PRIu64 " elements of %s (%u bits each) are not a whole number of bytes",
                                 t->nelem, dn, bits);
        nbytes = t->nelem * bits / 8;
    }
    if (t->end < t->begin)
        return td__error_set(err, TD_EFORMAT, path, name, "data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", t->begin, t->end);
    if (t->end - t->begin != nbytes)
        return td__error_set(err, TD_EFORMAT, path, name, "data_offsets [%" PRIu64 ", %" PRIu64 "] do not match shape %s x %s = %" PRIu64 " bytes",
                             t->begin, t->end, s, dn, nbytes);
    if (t->end > datalen)
        return td__error_set(err, TD_EFORMAT, path, name, "data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data section (%" PRIu64 " bytes)",
                             t->begin, t->end, datalen);
    t->nbytes = nbytes;
    return TD_OK;
}

static td_status parse_entry(td__st_file *f, const char *name, json_t *v, uint64_t *dims, char **pool, td_error *err)
{
    json_t *dt = NULL, *sh = NULL, *off = NULL;
    td__st_tensor *t = &f->tensors[f->ntensors];
    td_status st = entry_fields(f->path, name, v, &dt, &sh, &off, err);
    if (st != TD_OK) return st;
    if (!td__st_dtype_parse(json_string_value(dt), &t->dtype))
        return td__error_set(err, TD_EFORMAT, f->path, name, "unknown dtype \"%s\"", json_string_value(dt));
    if ((st = parse_shape(f->path, name, sh, t, dims, err)) != TD_OK) return st;
    json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
    if (!json_is_integer(b) || !json_is_integer(e))
        return td__error_set(err, TD_EFORMAT, f->path, name, "\"data_offsets\" is not an array of two integers");
    if (json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return td__error_set(err, TD_EFORMAT, f->path, name, "data_offsets [%lld, %lld] are negative",
                             (long long)json_integer_value(b), (long long)json_integer_value(e));
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(e);
    if ((st = check_size(f->path, name, t, f->file_size - f->data_start, err)) != TD_OK) return st;
    t->name = pool_copy(pool, name, strlen(name));
    f->ntensors++;
    return TD_OK;
}

static int by_offsets(const void *a, const void *b)
{
    const td__st_tensor *x = *(const td__st_tensor *const *)a, *y = *(const td__st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x < y ? -1 : (x > y);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const td__st_tensor *const *)a)->name, (*(const td__st_tensor *const *)b)->name);
}

/* Sorted by BEGIN, the tensors tile [0, datalen) exactly; also builds the name index. */
static td_status check_layout(td__st_file *f, td_error *err)
{
    uint64_t datalen = f->file_size - f->data_start, pos = 0;
    const td__st_tensor **v = f->by_name_;
    for (size_t i = 0; i < f->ntensors; i++) v[i] = &f->tensors[i];
    if (f->ntensors) qsort(v, f->ntensors, sizeof *v, by_offsets);
    for (size_t i = 0; i < f->ntensors; i++) {
        const td__st_tensor *t = v[i];
        if (i == 0 && t->begin != 0)
            return td__error_set(err, TD_EFORMAT, f->path, t->name, "data_offsets [%" PRIu64 ", %" PRIu64 "] leave %" PRIu64 " unused bytes at the start of the data section",
                                 t->begin, t->end, t->begin);
        if (t->begin < pos)
            return td__error_set(err, TD_EFORMAT, f->path, t->name, "data_offsets [%" PRIu64 ", %" PRIu64 "] overlap those of %s [%" PRIu64 ", %" PRIu64 "]",
                                 t->begin, t->end, v[i - 1]->name, v[i - 1]->begin, v[i - 1]->end);
        if (t->begin > pos)
            return td__error_set(err, TD_EFORMAT, f->path, t->name, "data_offsets [%" PRIu64 ", %" PRIu64 "] leave a gap of %" PRIu64 " bytes after %s (which ends at %" PRIu64 ")",
                                 t->begin, t->end, t->begin - pos, v[i - 1]->name, pos);
        pos = t->end;
    }
    if (pos != datalen)
        return td__error_set(err, TD_EFORMAT, f->path, NULL, "tensors end at byte %" PRIu64 " of the data section, which holds %" PRIu64 " bytes (%" PRIu64 " trailing bytes)",
                             pos, datalen, datalen - pos);
    if (f->ntensors) qsort(v, f->ntensors, sizeof *v, by_name);
    for (size_t i = 1; i < f->ntensors; i++) /* jansson refused duplicate keys already: a second guard */
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            return td__error_set(err, TD_EFORMAT, f->path, v[i]->name, "tensor name appears twice in the header");
    return TD_OK;
}

static td_status parse_entries(td__st_file *f, json_t *root, td_error *err)
{
    size_t nt, nd, nm, ns;
    count_entries(root, &nt, &nd, &nm, &ns);
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    f->by_name_ = calloc(nt ? nt : 1, sizeof *f->by_name_);
    f->meta = calloc(nm ? nm : 1, sizeof *f->meta);
    f->dims_ = malloc((nd ? nd : 1) * sizeof *f->dims_);
    f->strings_ = malloc(ns ? ns : 1);
    if (!f->tensors || !f->by_name_ || !f->meta || !f->dims_ || !f->strings_)
        return td__error_set(err, TD_ENOMEM, f->path, NULL, "no memory for the header's %zu tensors", nt);
    char *pool = f->strings_;
    uint64_t *dims = f->dims_;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        td_status st;
        if (strcmp(key, METADATA_KEY) == 0) {
            st = parse_metadata(f, v, &pool, err);
        } else {
            st = parse_entry(f, key, v, dims, &pool, err);
            if (st == TD_OK) dims += f->tensors[f->ntensors - 1].ndim;
        }
        if (st != TD_OK) return st;
    }
    return check_layout(f, err);
}

td_status td__st_open(const char *path, td__st_file *f, td_error *err)
{
    if (!f) return TD_EINVAL;
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (!path) return td__error_set(err, TD_EINVAL, NULL, NULL, "no file given");
    unsigned char *hdr = NULL;
    json_t *root = NULL;
    td_status st = TD_ENOMEM;
    f->path = td__strdup(path);
    if (!f->path) {
        st = td__error_set(err, TD_ENOMEM, path, NULL, "out of memory");
        goto done;
    }
    if ((st = td__open_regular(path, &f->fd, &f->file_size, err)) != TD_OK) goto done;
    if ((st = read_header(path, f->fd, f->file_size, &hdr, &f->header_len, err)) != TD_OK) goto done;
    f->data_start = LEN_BYTES + f->header_len;
    if ((st = parse_json(path, hdr, f->header_len, &root, err)) != TD_OK) goto done;
    st = parse_entries(f, root, err);
done:
    json_decref(root);
    free(hdr);
    if (st != TD_OK) td__st_close(f);
    return st;
}

void td__st_close(td__st_file *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    free(f->path);
    free(f->tensors);
    free(f->meta);
    free(f->by_name_);
    free(f->strings_);
    free(f->dims_);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int name_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(const td__st_tensor *const *)elem)->name);
}

int td__st_find(const td__st_file *f, const char *name, size_t *index)
{
    if (!f || !name || !f->ntensors) return 0;
    const td__st_tensor *const *p = bsearch(name, f->by_name_, f->ntensors, sizeof *f->by_name_, name_key);
    if (!p) return 0;
    if (index) *index = (size_t)(*p - f->tensors);
    return 1;
}

const char *td__st_metadata_get(const td__st_file *f, const char *key)
{
    return f ? td__st_meta_find(f->meta, f->nmeta, key) : NULL;
}

uint64_t td__st_tensor_offset(const td__st_file *f, size_t index)
{
    return f->data_start + f->tensors[index].begin;
}

static td_status read_fail(const td__st_file *f, const td__st_tensor *t, int r, td_error *err)
{
    if (r < 0) return td__error_set(err, TD_EIO, f->path, t->name, "cannot read the data: %s", strerror(errno));
    return td__error_set(err, TD_EFORMAT, f->path, t->name, "data ends early (the file shrank after it was opened)");
}

td_status td__st_read_raw(const td__st_file *f, size_t index, void *buf, td_error *err)
{
    if (!f || index >= f->ntensors) return td__error_set(err, TD_EINVAL, f ? f->path : NULL, NULL, "tensor index out of range");
    const td__st_tensor *t = &f->tensors[index];
    if (t->nbytes == 0) return TD_OK;
    if (!buf) return td__error_set(err, TD_EINVAL, f->path, t->name, "no buffer given");
    if (t->nbytes > SIZE_MAX) return td__error_set(err, TD_EOVERFLOW, f->path, t->name, "too large for this machine");
    int r = td__pread_full(f->fd, buf, (size_t)t->nbytes, td__st_tensor_offset(f, index));
    return r ? read_fail(f, t, r, err) : TD_OK;
}

td_status td__st_read_doubles(const td__st_file *f, size_t index, double *dst, td_error *err)
{
    if (!f || index >= f->ntensors) return td__error_set(err, TD_EINVAL, f ? f->path : NULL, NULL, "tensor index out of range");
    const td__st_tensor *t = &f->tensors[index];
    if (!td__st_dtype_is_float(t->dtype))
        return td__error_set(err, TD_EDTYPE, f->path, t->name, "dtype %s is not a float type", td__st_dtype_name(t->dtype));
    if (t->nbytes == 0) return TD_OK;
    if (!dst) return td__error_set(err, TD_EINVAL, f->path, t->name, "no buffer given");
    size_t esize = td__st_dtype_bits(t->dtype) / 8, per = CHUNK_BYTES / esize;
    size_t chunk = t->nelem < per ? (size_t)t->nelem : per;
    unsigned char *buf = malloc(chunk * esize);
    if (!buf) return td__error_set(err, TD_ENOMEM, f->path, t->name, "out of memory");
    td_status st = TD_OK;
    uint64_t off = td__st_tensor_offset(f, index);
    for (uint64_t done = 0; done < t->nelem;) {
        size_t m = t->nelem - done < chunk ? (size_t)(t->nelem - done) : chunk;
        int r = td__pread_full(f->fd, buf, m * esize, off + done * esize);
        if (r) {
            st = read_fail(f, t, r, err);
            break;
        }
        for (size_t i = 0; i < m; i++) dst[done + i] = td__st_decode(t->dtype, buf + i * esize);
        done += m;
    }
    free(buf);
    return st;
}

td_status td__st_read_double(const td__st_file *f, size_t index, td_tensor *out, td_error *err)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!f || index >= f->ntensors) return td__error_set(err, TD_EINVAL, f ? f->path : NULL, NULL, "tensor index out of range");
    const td__st_tensor *t = &f->tensors[index];
    if (!td__st_dtype_is_float(t->dtype))
        return td__error_set(err, TD_EDTYPE, f->path, t->name, "dtype %s is not a float type", td__st_dtype_name(t->dtype));
    if (t->ndim > TD_MAX_MODES)
        return td__error_set(err, TD_ERANGE, f->path, t->name, "rank %d exceeds the %d modes a tensor can have", t->ndim, TD_MAX_MODES);
    size_t shape[TD_MAX_MODES];
    for (int k = 0; k < t->ndim; k++) {
        if (t->shape[k] > SIZE_MAX) return td__error_set(err, TD_EOVERFLOW, f->path, t->name, "too large for this machine");
        shape[k] = (size_t)t->shape[k];
    }
    td_status st = td_tensor_alloc(out, t->ndim, shape);
    if (st != TD_OK)
        return td__error_set(err, st, f->path, t->name, "cannot hold %" PRIu64 " doubles: %s", t->nelem, td_strerror(st));
    st = td__st_read_doubles(f, index, out->data, err);
    if (st != TD_OK) td_tensor_free(out);
    return st;
}
