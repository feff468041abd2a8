/* libFuzzer harness: the input bytes as a file, sniffed, opened as safetensors (every tensor read
 * raw and as doubles), and opened as a sharded index next to a valid shard "s.safetensors"
 * (tensors "a" and "b"). Any status is fine; crashes, sanitizer reports, leaks and broken
 * invariants (abort) are findings. Invariants on every file the reader accepts: the writer
 * accepts its declarations and a copy through td__st_writer_put_raw reads back byte for byte;
 * float values decoded then encoded give the stored bytes back (NaNs aside).
 * Seeds: tests/fuzz/st_seeds and tests/data/bad/st_*.safetensors.
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "io/st_internal.h"

static char dir[96];

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void put_file(const char *name, const void *data, size_t n)
{
    char p[160];
    path_in(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void cleanup(void)
{
    const char *names[] = {"in.safetensors", "in.index.json", "copy.safetensors", "s.safetensors"};
    char p[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/dev/shm/tdfuzzst-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
    static const char shard[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    unsigned char buf[8 + sizeof shard - 1 + 8] = {0};
    buf[0] = (unsigned char)(sizeof shard - 1);
    memcpy(buf + 8, shard, sizeof shard - 1);
    put_file("s.safetensors", buf, sizeof buf);
    return 0;
}

/* Stored bytes -> double -> bytes is the identity, except for NaNs (made quiet). */
static void check_float(const td__st_file *f, size_t i, const unsigned char *raw)
{
    const td__st_tensor *t = &f->tensors[i];
    td_tensor x;
    td_error err;
    if (td__st_read_double(f, i, &x, &err) != TD_OK) {
        if (t->ndim <= TD_MAX_MODES && err.status != TD_ENOMEM) abort();
        return;
    }
    size_t es = td__st_dtype_bits(t->dtype) / 8;
    unsigned char b[8];
    for (size_t k = 0; k < x.size; k++) {
        td__st_encode(t->dtype, x.data[k], b);
        if (!isnan(x.data[k]) && memcmp(b, raw + k * es, es) != 0) abort();
        if (td__st_decode(t->dtype, raw + k * es) != x.data[k] && !isnan(x.data[k])) abort();
    }
    td_tensor_free(&x);
}

/* A copy of an accepted file through the writer reads back the same. */
static void check_copy(const td__st_file *f)
{
    char p[160];
    path_in(p, sizeof p, "copy.safetensors");
    int fd = open(p, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0) abort();
    td__st_writer w;
    td_error err;
    if (td__st_writer_init(&w, fd, p, &err) != TD_OK) abort();
    for (size_t i = 0; i < f->ntensors; i++) {
        const td__st_tensor *t = &f->tensors[i];
        if (td__st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, NULL, &err) != TD_OK) abort();
    }
    for (size_t i = 0; i < f->nmeta; i++)
        if (td__st_writer_set_metadata(&w, f->meta[i].key, f->meta[i].value, &err) != TD_OK) abort();
    if (td__st_writer_begin_data(&w, &err) != TD_OK) abort();
    for (size_t i = f->ntensors; i-- > 0;)
        if (td__st_writer_put_raw(&w, i, f->fd, td__st_tensor_offset(f, i), &err) != TD_OK) abort();
    if (td__st_writer_finish(&w, &err) != TD_OK) abort();
    td__st_writer_free(&w);
    close(fd);
    td__st_file g;
    if (td__st_open(p, &g, &err) != TD_OK || g.ntensors != f->ntensors || g.nmeta != f->nmeta) abort();
    for (size_t i = 0; i < f->ntensors; i++) {
        size_t j;
        if (!td__st_find(&g, f->tensors[i].name, &j) || j != i || g.tensors[i].nbytes != f->tensors[i].nbytes) abort();
        unsigned char *a = malloc(f->tensors[i].nbytes + 1), *b = malloc(f->tensors[i].nbytes + 1);
        if (td__st_read_raw(f, i, a, &err) != TD_OK || td__st_read_raw(&g, i, b, &err) != TD_OK ||
            memcmp(a, b, f->tensors[i].nbytes) != 0)
            abort();
        free(a);
        free(b);
    }
    for (size_t i = 0; i < f->nmeta; i++) {
        const char *v = td__st_metadata_get(&g, f->meta[i].key);
        if (!v || strcmp(v, f->meta[i].value) != 0) abort();
    }
    td__st_close(&g);
}

static void fuzz_file(const char *p)
{
    td__st_file f;
    td_error err;
    if (td__st_open(p, &f, &err) != TD_OK) return;
    for (size_t i = 0; i < f.ntensors; i++) {
        unsigned char *raw = malloc(f.tensors[i].nbytes + 1);
        if (!raw) continue;
        if (td__st_read_raw(&f, i, raw, &err) != TD_OK) abort();
        if (td__st_dtype_is_float(f.tensors[i].dtype)) check_float(&f, i, raw);
        free(raw);
    }
    check_copy(&f);
    td__st_close(&f);
}

static void fuzz_index(const char *p)
{
    td__st_index ix;
    td_error err;
    if (td__st_index_open(p, &ix, &err) != TD_OK) return;
    for (size_t i = 0; i < ix.nentries; i++) {
        size_t s, t;
        if (!td__st_index_find(&ix, ix.entries[i].name, &s, &t) || s != ix.entries[i].shard) abort();
        td_tensor x;
        if (td__st_read_double(&ix.shards[s], t, &x, &err) == TD_OK) td_tensor_free(&x);
    }
    (void)td__st_index_metadata_get(&ix, "total_size");
    td__st_index_close(&ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char p[160];
    td__file_kind k;
    td_error err;
    put_file("in.safetensors", data, size);
    path_in(p, sizeof p, "in.safetensors");
    if (td__sniff(p, &k, &err) != TD_OK && err.status != TD_ENOMEM) abort();
    fuzz_file(p);
    put_file("in.index.json", data, size);
    path_in(p, sizeof p, "in.index.json");
    fuzz_index(p);
    return 0;
}
