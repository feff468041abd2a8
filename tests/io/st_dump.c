/* Test driver of the safetensors code, for the Python tests (which hold the truths):
 *   st_dump sniff PATH          the format name
 *   st_dump read PATH           JSON: metadata, tensors (name, dtype, shape, offsets, values as
 *                               hex doubles via td__st_read_double, raw bytes as hex)
 *   st_dump index PATH          JSON: shards, metadata, every mapped tensor as above
 *   st_dump tensor PATH NAME    the values of one tensor, one hex double a line (reads nothing else)
 *   st_dump write SPEC OUT      writes OUT with the writer from a JSON spec
 *                               {"metadata": {k: v}, "tensors": [{"name", "dtype", "shape",
 *                                "values": ["0x1p+0", ...] | "raw": "hex"}], "order": [i, ...]}
 * Failures print the error record's message on stderr and exit 1. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include "io/st_internal.h"

static int fail(const td_error *e)
{
    fprintf(stderr, "%s\n", e->message);
    return 1;
}

static json_t *hex_of(const unsigned char *p, uint64_t n)
{
    char *s = malloc(2 * n + 1);
    for (uint64_t i = 0; i < n; i++) snprintf(s + 2 * i, 3, "%02x", p[i]);
    s[2 * n] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* One tensor as JSON; 1 on a read failure (err filled). */
static json_t *tensor_json(const td__st_file *f, size_t i, td_error *err)
{
    const td__st_tensor *t = &f->tensors[i];
    json_t *o = json_object(), *sh = json_array();
    for (int k = 0; k < t->ndim; k++) json_array_append_new(sh, json_integer((json_int_t)t->shape[k]));
    size_t found = (size_t)-1;
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "dtype", json_string(td__st_dtype_name(t->dtype)));
    json_object_set_new(o, "shape", sh);
    json_object_set_new(o, "begin", json_integer((json_int_t)t->begin));
    json_object_set_new(o, "end", json_integer((json_int_t)t->end));
    json_object_set_new(o, "found", json_integer(td__st_find(f, t->name, &found) ? (json_int_t)found : -1));
    unsigned char *raw = malloc(t->nbytes ? t->nbytes : 1);
    if (td__st_read_raw(f, i, raw, err) != TD_OK) {
        free(raw);
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "raw", hex_of(raw, t->nbytes));
    free(raw);
    if (td__st_dtype_is_float(t->dtype)) {
        td_tensor x;
        if (td__st_read_double(f, i, &x, err) != TD_OK) {
            json_decref(o);
            return NULL;
        }
        json_t *vals = json_array();
        char buf[64];
        for (size_t k = 0; k < x.size; k++) {
            snprintf(buf, sizeof buf, "%a", x.data[k]);
            json_array_append_new(vals, json_string(buf));
        }
        json_object_set_new(o, "values", vals);
        json_object_set_new(o, "td_ndim", json_integer(x.ndim));
        td_tensor_free(&x);
    } else {
        td_tensor x;
        td_status st = td__st_read_double(f, i, &x, err);
        json_object_set_new(o, "read_double", json_string(st == TD_EDTYPE ? err->message : "not refused"));
        if (st == TD_OK) td_tensor_free(&x);
    }
    return o;
}

static json_t *meta_json(const td__st_meta *m, size_t n, int check_get, const td__st_file *f)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(o, m[i].key, json_string(m[i].value));
        if (check_get && td__st_metadata_get(f, m[i].key) != m[i].value) json_object_set_new(o, "GET_MISMATCH", json_true());
    }
    return o;
}

static int cmd_read(const char *path)
{
    td__st_file f;
    td_error err;
    if (td__st_open(path, &f, &err) != TD_OK) return fail(&err);
    json_t *o = json_object(), *ts = json_array();
    json_object_set_new(o, "header_len", json_integer((json_int_t)f.header_len));
    json_object_set_new(o, "data_start", json_integer((json_int_t)f.data_start));
    json_object_set_new(o, "metadata", meta_json(f.meta, f.nmeta, 1, &f));
    for (size_t i = 0; i < f.ntensors; i++) {
        json_t *t = tensor_json(&f, i, &err);
        if (!t) {
            json_decref(ts);
            json_decref(o);
            td__st_close(&f);
            return fail(&err);
        }
        json_array_append_new(ts, t);
    }
    json_object_set_new(o, "tensors", ts);
    json_dumpf(o, stdout, JSON_INDENT(1));
    json_decref(o);
    td__st_close(&f);
    return 0;
}

static int cmd_index(const char *path)
{
    td__st_index ix;
    td_error err;
    if (td__st_index_open(path, &ix, &err) != TD_OK) return fail(&err);
    json_t *o = json_object(), *sh = json_array(), *ts = json_array();
    for (size_t s = 0; s < ix.nshards; s++) json_array_append_new(sh, json_string(ix.shard_names[s]));
    json_object_set_new(o, "shards", sh);
    json_t *md = json_object();
    for (size_t i = 0; i < ix.nmeta; i++) json_object_set_new(md, ix.meta[i].key, json_string(ix.meta[i].value));
    json_object_set_new(o, "metadata", md);
    int rc = 0;
    for (size_t i = 0; i < ix.nentries && !rc; i++) {
        size_t s, t;
        if (!td__st_index_find(&ix, ix.entries[i].name, &s, &t) || s != ix.entries[i].shard || t != ix.entries[i].tensor) {
            fprintf(stderr, "lookup of %s disagrees with the entry\n", ix.entries[i].name);
            rc = 2;
            break;
        }
        json_t *j = tensor_json(&ix.shards[s], t, &err);
        if (!j) rc = fail(&err);
        else {
            json_object_set_new(j, "shard", json_string(ix.shard_names[s]));
            json_array_append_new(ts, j);
        }
    }
    json_object_set_new(o, "tensors", ts);
    if (!rc) json_dumpf(o, stdout, JSON_INDENT(1));
    json_decref(o);
    td__st_index_close(&ix);
    return rc;
}

static int cmd_tensor(const char *path, const char *name)
{
    td__st_file f;
    td_error err;
    size_t i;
    td_tensor x;
    if (td__st_open(path, &f, &err) != TD_OK) return fail(&err);
    if (!td__st_find(&f, name, &i)) {
        fprintf(stderr, "%s: %s: no such tensor\n", path, name);
        td__st_close(&f);
        return 1;
    }
    int rc = td__st_read_double(&f, i, &x, &err) != TD_OK;
    if (rc) fail(&err);
    for (size_t k = 0; !rc && k < x.size; k++) printf("%a\n", x.data[k]);
    td_tensor_free(&x);
    td__st_close(&f);
    return rc;
}

static int cmd_sniff(const char *path)
{
    td__file_kind k;
    td_error err;
    if (td__sniff(path, &k, &err) != TD_OK) return fail(&err);
    printf("%s\n", td__file_kind_name(k));
    return 0;
}

/* Raw bytes for put_raw come from a temporary file, after 3 junk bytes (a non-zero offset). */
static int put_raw_hex(td__st_writer *w, size_t idx, const char *hex, td_error *err)
{
    size_t n = strlen(hex) / 2;
    FILE *tmp = tmpfile();
    if (!tmp) return 2;
    fputs("xyz", tmp);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        fputc((int)v, tmp);
    }
    fflush(tmp);
    int rc = td__st_writer_put_raw(w, idx, fileno(tmp), 3, err) == TD_OK ? 0 : 1;
    fclose(tmp);
    return rc;
}

static int put_values(td__st_writer *w, size_t idx, json_t *vals, td_error *err)
{
    size_t n = json_array_size(vals);
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = strtod(json_string_value(json_array_get(vals, i)), NULL);
    int rc = td__st_writer_put_double(w, idx, d, err) == TD_OK ? 0 : 1;
    free(d);
    return rc;
}

static int declare(td__st_writer *w, json_t *spec, td_error *err)
{
    json_t *ts = json_object_get(spec, "tensors"), *t;
    size_t i;
    json_array_foreach(ts, i, t) {
        td__st_dtype dt;
        if (!td__st_dtype_parse(json_string_value(json_object_get(t, "dtype")), &dt)) return 2;
        json_t *sh = json_object_get(t, "shape");
        uint64_t shape[64];
        int nd = (int)json_array_size(sh);
        for (int k = 0; k < nd && k < 64; k++) shape[k] = (uint64_t)json_integer_value(json_array_get(sh, (size_t)k));
        size_t idx;
        if (td__st_writer_add(w, json_string_value(json_object_get(t, "name")), dt, nd, shape, &idx, err) != TD_OK) return 1;
        if (idx != i) return 2;
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(spec, "metadata"), k, v)
        if (td__st_writer_set_metadata(w, k, json_string_value(v), err) != TD_OK) return 1;
    return 0;
}

static int cmd_write(const char *spec_path, const char *out)
{
    json_error_t je;
    json_t *spec = json_load_file(spec_path, 0, &je);
    if (!spec) {
        fprintf(stderr, "bad spec: %s\n", je.text);
        return 2;
    }
    int fd = open(out, O_CREAT | O_TRUNC | O_RDWR, 0644);
    td__st_writer w;
    td_error err;
    int rc = td__st_writer_init(&w, fd, out, &err) != TD_OK;
    if (!rc) rc = declare(&w, spec, &err);
    if (!rc) rc = td__st_writer_begin_data(&w, &err) != TD_OK;
    json_t *ts = json_object_get(spec, "tensors"), *o;
    size_t i;
    json_array_foreach(json_object_get(spec, "order"), i, o) {
        if (rc) break;
        size_t idx = (size_t)json_integer_value(o);
        json_t *t = json_array_get(ts, idx), *raw = json_object_get(t, "raw");
        rc = raw ? put_raw_hex(&w, idx, json_string_value(raw), &err) : put_values(&w, idx, json_object_get(t, "values"), &err);
    }
    if (!rc) rc = td__st_writer_finish(&w, &err) != TD_OK;
    if (rc == 1) fail(&err);
    td__st_writer_free(&w);
    if (fd >= 0) close(fd);
    json_decref(spec);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sniff") == 0) return cmd_sniff(argv[2]);
    if (argc == 3 && strcmp(argv[1], "read") == 0) return cmd_read(argv[2]);
    if (argc == 3 && strcmp(argv[1], "index") == 0) return cmd_index(argv[2]);
    if (argc == 4 && strcmp(argv[1], "tensor") == 0) return cmd_tensor(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "write") == 0) return cmd_write(argv[2], argv[3]);
    fprintf(stderr, "usage: st_dump sniff|read|index PATH | tensor PATH NAME | write SPEC OUT\n");
    return 2;
}
