/* Allocation-failure sweep of the safetensors code: the library's malloc/calloc/realloc calls
 * (wrapped at link time, static library) fail at the k-th call, for every k, through opening
 * and reading a file, writing one, opening a sharded index and sniffing. Each run must return
 * TD_ENOMEM, leave its object closed, and free every block it allocated. (jansson's own
 * allocations happen inside libjansson and are not wrapped.) Plain C, no Check. Not under ASan. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "io/st_internal.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

static long calls, fail_at, live;

static int should_fail(void)
{
    if (!fail_at) { calls++; return 0; }
    return ++calls == fail_at;
}
void *__wrap_malloc(size_t n)
{
    if (should_fail()) return NULL;
    void *p = __real_malloc(n);
    live += p != NULL;
    return p;
}
void *__wrap_calloc(size_t a, size_t b)
{
    if (should_fail()) return NULL;
    void *p = __real_calloc(a, b);
    live += p != NULL;
    return p;
}
void *__wrap_realloc(void *p, size_t n)
{
    if (should_fail()) return NULL;
    void *q = __real_realloc(p, n);
    live += q && !p;
    return q;
}
void __wrap_free(void *p)
{
    live -= p != NULL;
    __real_free(p);
}

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { failures++; fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static char dir[64], st_path[128], index_path[128], out_path[128], zip_path[128];

typedef td_status (*scenario)(void);

static void sweep(const char *name, scenario s, long min_allocs)
{
    calls = 0; fail_at = 0; live = 0;
    td_status st = s();
    EXPECT(st == TD_OK, "%s: baseline run failed: %s", name, td_status_name(st));
    EXPECT(live == 0, "%s: baseline leaks %ld blocks", name, live);
    const long n = calls;
    int enomem = 0;
    for (long k = 1; k <= n; k++) {
        calls = 0; fail_at = k; live = 0;
        st = s();
        fail_at = 0;
        EXPECT(st == TD_ENOMEM, "%s: allocation %ld of %ld failed, the call returned %s", name, k, n, td_status_name(st));
        EXPECT(live == 0, "%s: allocation %ld of %ld failed: %ld blocks leaked", name, k, n, live);
        enomem += st == TD_ENOMEM;
    }
    EXPECT(n >= min_allocs, "%s: only %ld allocations: the sweep misses some", name, n);
    printf("%-12s %4ld allocations, each failed in turn: %d x TD_ENOMEM\n", name, n, enomem);
}

static td_status s_read(void)
{
    td__st_file f;
    td_error err;
    td_status st = td__st_open(st_path, &f, &err);
    if (st != TD_OK) return f.fd == -1 && !f.tensors ? st : TD_EINTERNAL;
    for (size_t i = 0; i < f.ntensors && st == TD_OK; i++) {
        td_tensor t;
        if (td__st_dtype_is_float(f.tensors[i].dtype)) {
            st = td__st_read_double(&f, i, &t, &err);
            if (st == TD_OK) td_tensor_free(&t);
            else if (t.data) st = TD_EINTERNAL;
        }
    }
    td__st_close(&f);
    return st;
}

static td_status write_file(const char *path, int with_index_names)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0) return TD_EIO;
    td__st_writer w;
    td_error err;
    uint64_t s23[2] = {2, 3}, s4[1] = {4};
    double v[6] = {1, -2, 3.5, 1e-3, 0, 7};
    td_status st = td__st_writer_init(&w, fd, path, &err);
    if (st == TD_OK) st = td__st_writer_add(&w, with_index_names ? "a" : "layer.weight", TD__ST_BF16, 2, s23, NULL, &err);
    if (st == TD_OK) st = td__st_writer_add(&w, with_index_names ? "b" : "layer.bias", TD__ST_F16, 1, s4, NULL, &err);
    if (st == TD_OK && !with_index_names) st = td__st_writer_add(&w, "steps", TD__ST_F64, 0, NULL, NULL, &err);
    if (st == TD_OK) st = td__st_writer_set_metadata(&w, "format", "pt", &err);
    if (st == TD_OK) st = td__st_writer_set_metadata(&w, "tdecomp_layers", "{}", &err);
    if (st == TD_OK) st = td__st_writer_begin_data(&w, &err);
    for (size_t i = 0; st == TD_OK && i < w.n; i++) st = td__st_writer_put_double(&w, i, v, &err);
    if (st == TD_OK) st = td__st_writer_finish(&w, &err);
    td__st_writer_free(&w);
    close(fd);
    return st;
}

static td_status s_write(void) { return write_file(out_path, 0); }

static td_status s_index(void)
{
    td__st_index ix;
    td_error err;
    td_status st = td__st_index_open(index_path, &ix, &err);
    if (st != TD_OK) return ix.nshards == 0 && !ix.entries ? st : TD_EINTERNAL;
    size_t s, t;
    if (!td__st_index_find(&ix, "b", &s, &t)) st = TD_EINTERNAL;
    td__st_index_close(&ix);
    return st;
}

static td_status s_sniff(void)
{
    td__file_kind k;
    td_error err;
    td_status st = td__sniff(index_path, &k, &err);
    if (st == TD_OK && k != TD__FILE_SAFETENSORS_INDEX) st = TD_EINTERNAL;
    if (st == TD_OK) st = td__sniff(zip_path, &k, &err);
    if (st == TD_OK && k != TD__FILE_PYTORCH_ZIP) st = TD_EINTERNAL;
    return st;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/tdstalloc-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(st_path, sizeof st_path, "%s/m.safetensors", dir);
    snprintf(out_path, sizeof out_path, "%s/out.safetensors", dir);
    snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    snprintf(zip_path, sizeof zip_path, "%s/model.pt", dir);
    /* a zip's first local header naming archive/data.pkl, as torch.save writes it */
    static const unsigned char zip[46] = {'P', 'K', 3, 4, [26] = 16, [30] = 'a', 'r', 'c', 'h', 'i', 'v', 'e', '/',
                                          'd', 'a', 't', 'a', '.', 'p', 'k', 'l'};
    FILE *z = fopen(zip_path, "wb");
    if (!z || fwrite(zip, 1, sizeof zip, z) != sizeof zip) return 1;
    fclose(z);
    char shard[160];
    snprintf(shard, sizeof shard, "%s/s1.safetensors", dir);
    FILE *ix = fopen(index_path, "w");
    if (write_file(st_path, 0) != TD_OK || write_file(shard, 1) != TD_OK || !ix) return 1;
    fputs("{\"metadata\": {\"total_size\": 20, \"note\": [1, 2]}, \"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\"}}", ix);
    fclose(ix);
    sweep("read", s_read, 10);
    sweep("write", s_write, 20);
    sweep("index", s_index, 15);
    sweep("sniff", s_sniff, 2);
    unlink(st_path);
    unlink(out_path);
    unlink(index_path);
    unlink(shard);
    unlink(zip_path);
    rmdir(dir);
    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
