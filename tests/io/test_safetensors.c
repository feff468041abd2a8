/* safetensors: conversions against closed forms, the writer's refusals, writer -> reader
 * round trips, the index, and that reading one tensor reads only its bytes. Value truths from
 * numpy and an independent writer/reader are in test_safetensors.py. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/testutil.h"
#include "io/st_internal.h"

#define F16_MAX 65504.0
#define BF16_MAX_BITS 0x7F7Fu
#define PI 3.14159265358979323846

static char tmpdir[64];

static int make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tdst-XXXXXX");
    return mkdtemp(tmpdir) != NULL;
}

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static int is_quiet_nan16(uint16_t h, int ebits)
{
    int mbits = 15 - ebits;
    uint16_t exp = (uint16_t)(((1u << ebits) - 1u) << mbits);
    return (h & exp) == exp && (h & (1u << (mbits - 1)));
}

START_TEST(test_f16_closed_forms)
{
    ck_assert(td__f16_to_double(0x3C00) == 1.0);
    ck_assert(td__f16_to_double(0xC000) == -2.0);
    ck_assert(td__f16_to_double(0x7BFF) == F16_MAX);
    ck_assert(td__f16_to_double(0x0001) == ldexp(1.0, -24));
    ck_assert(td__f16_to_double(0x03FF) == ldexp(1023.0, -24));
    ck_assert(td__f16_to_double(0x0400) == ldexp(1.0, -14));
    ck_assert(isinf(td__f16_to_double(0x7C00)) && td__f16_to_double(0x7C00) > 0);
    ck_assert(signbit(td__f16_to_double(0x8000)) && td__f16_to_double(0x8000) == 0.0);
    ck_assert(isnan(td__f16_to_double(0x7E00)));
    /* round to nearest, ties to even (ulp at 1 is 2^-10) */
    ck_assert_uint_eq(td__double_to_f16(1.0 + ldexp(1, -11)), 0x3C00);
    ck_assert_uint_eq(td__double_to_f16(1.0 + 3 * ldexp(1, -11)), 0x3C02);
    ck_assert_uint_eq(td__double_to_f16(1.0 + ldexp(1, -11) + ldexp(1, -40)), 0x3C01);
    ck_assert_uint_eq(td__double_to_f16(65519.99), 0x7BFF);
    ck_assert_uint_eq(td__double_to_f16(65520.0), 0x7C00); /* the tie above the max goes to inf */
    ck_assert_uint_eq(td__double_to_f16(-1e300), 0xFC00);
    /* subnormals: half the smallest is a tie to 0; a hair above rounds up */
    ck_assert_uint_eq(td__double_to_f16(ldexp(1, -25)), 0x0000);
    ck_assert_uint_eq(td__double_to_f16(ldexp(1, -25) * (1 + ldexp(1, -30))), 0x0001);
    ck_assert_uint_eq(td__double_to_f16(3 * ldexp(1, -25)), 0x0002);
    ck_assert_uint_eq(td__double_to_f16(ldexp(1, -14) - ldexp(1, -25)), 0x0400); /* carry into the normals */
    ck_assert_uint_eq(td__double_to_f16(1e-300), 0x0000);
    ck_assert_uint_eq(td__double_to_f16(-4.9e-324), 0x8000);
    ck_assert_uint_eq(td__double_to_f16(-0.0), 0x8000);
    ck_assert(is_quiet_nan16(td__double_to_f16(NAN), 5));
}
END_TEST

START_TEST(test_bf16_closed_forms)
{
    ck_assert(td__bf16_to_double(0x3F80) == 1.0);
    ck_assert(td__bf16_to_double(BF16_MAX_BITS) == ldexp(2.0 - ldexp(1, -7), 127));
    ck_assert(td__bf16_to_double(0x0001) == ldexp(1.0, -133));
    ck_assert_uint_eq(td__double_to_bf16(1.0 + ldexp(1, -8)), 0x3F80);
    ck_assert_uint_eq(td__double_to_bf16(1.0 + 3 * ldexp(1, -8)), 0x3F82);
    /* one rounding from the double: through float this would tie and go to 0x3F80 */
    ck_assert_uint_eq(td__double_to_bf16(1.0 + ldexp(1, -8) + ldexp(1, -30)), 0x3F81);
    ck_assert_uint_eq(td__double_to_bf16(ldexp(2.0 - ldexp(1, -8), 127)), 0x7F80);
    ck_assert_uint_eq(td__double_to_bf16(nextafter(ldexp(2.0 - ldexp(1, -8), 127), 0)), BF16_MAX_BITS);
    ck_assert_uint_eq(td__double_to_bf16(-INFINITY), 0xFF80);
    ck_assert(is_quiet_nan16(td__double_to_bf16(-NAN), 8) && (td__double_to_bf16(-NAN) & 0x8000));
}
END_TEST

/* Every 16-bit pattern widens exactly and narrows back to itself (NaNs to quiet NaNs). */
START_TEST(test_half_exhaustive_roundtrip)
{
    for (uint32_t h = 0; h <= 0xFFFFu; h++) {
        double a = td__f16_to_double((uint16_t)h), b = td__bf16_to_double((uint16_t)h);
        if (isnan(a)) ck_assert(is_quiet_nan16(td__double_to_f16(a), 5));
        else ck_assert_uint_eq(td__double_to_f16(a), h);
        if (isnan(b)) ck_assert(is_quiet_nan16(td__double_to_bf16(b), 8));
        else ck_assert_uint_eq(td__double_to_bf16(b), h);
        /* bf16 is the top half of a float32 */
        uint32_t u = h << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        ck_assert(isnan(b) ? isnan(f) : (double)f == b);
    }
}
END_TEST

START_TEST(test_round_in_place)
{
    double x[4] = {1.0 / 3.0, 1e10, -0.1, 70000.0};
    double y[4];
    memcpy(y, x, sizeof x);
    TT_OK(td__st_round(TD__ST_F64, y, 4));
    ck_assert(memcmp(x, y, sizeof x) == 0);
    TT_OK(td__st_round(TD__ST_F32, y, 4));
    for (int i = 0; i < 4; i++) ck_assert(y[i] == (double)(float)x[i]);
    memcpy(y, x, sizeof x);
    TT_OK(td__st_round(TD__ST_F16, y, 4));
    ck_assert(y[0] == 0x1.554p-2 && isinf(y[1]) && y[3] > 0 && isinf(y[3]));
    ck_assert_int_eq(td__st_round(TD__ST_I32, y, 4), TD_EDTYPE);
    ck_assert_int_eq(td__st_round(TD__ST_F16, NULL, 4), TD_EINVAL);
}
END_TEST

START_TEST(test_dtype_table)
{
    td__st_dtype dt;
    ck_assert(td__st_dtype_parse("BF16", &dt) && dt == TD__ST_BF16);
    ck_assert(td__st_dtype_parse("F8_E8M0", &dt) && td__st_dtype_bits(dt) == 8);
    ck_assert(td__st_dtype_parse("C64", &dt) && td__st_dtype_bits(dt) == 64);
    ck_assert(td__st_dtype_parse("F6_E3M2", &dt) && td__st_dtype_bits(dt) == 6);
    ck_assert(!td__st_dtype_parse("bf16", &dt) && !td__st_dtype_parse("F8", &dt));
    for (int i = 0; i < TD__ST_NDTYPES; i++) {
        ck_assert(td__st_dtype_parse(td__st_dtype_name((td__st_dtype)i), &dt) && dt == (td__st_dtype)i);
        td__st_dtype back;
        td_dtype t = td__st_dtype_to_td((td__st_dtype)i);
        ck_assert_int_eq(td__st_dtype_is_float((td__st_dtype)i), t != TD_DTYPE_OTHER);
        if (t != TD_DTYPE_OTHER) ck_assert(td__st_dtype_from_td(t, &back) && back == (td__st_dtype)i);
    }
    ck_assert(!td__st_dtype_from_td(TD_DTYPE_OTHER, &dt));
}
END_TEST

static int open_out(const char *name, char *path, size_t cap)
{
    tmp_path(path, cap, name);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    return fd;
}

START_TEST(test_writer_refusals)
{
    char path[128];
    int fd = open_out("refuse.safetensors", path, sizeof path);
    td__st_writer w;
    td_error err;
    uint64_t s2[1] = {2}, s3[1] = {3}, big[2] = {UINT64_C(1) << 40, UINT64_C(1) << 40};
    size_t a, b, c;
    TT_OK(td__st_writer_init(&w, fd, "out.safetensors", &err));
    TT_OK(td__st_writer_add(&w, "a", TD__ST_F32, 1, s2, &a, &err));
    ck_assert_int_eq(td__st_writer_add(&w, "a", TD__ST_F16, 1, s2, NULL, &err), TD_EINVAL);
    ck_assert_str_eq(err.message, "out.safetensors: a: tensor declared twice");
    ck_assert_int_eq(td__st_writer_add(&w, "__metadata__", TD__ST_F32, 1, s2, NULL, &err), TD_EINVAL);
    ck_assert_int_eq(td__st_writer_add(&w, "bad\xff", TD__ST_F32, 1, s2, NULL, &err), TD_EINVAL);
    ck_assert_int_eq(td__st_writer_add(&w, "odd", TD__ST_F4, 1, s3, NULL, &err), TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "not a whole number of bytes"));
    ck_assert_int_eq(td__st_writer_add(&w, "huge", TD__ST_F64, 2, big, NULL, &err), TD_EOVERFLOW);
    TT_OK(td__st_writer_add(&w, "i", TD__ST_I64, 1, s2, &b, &err));
    TT_OK(td__st_writer_add(&w, "z", TD__ST_F16, 0, NULL, &c, &err));
    ck_assert_uint_eq(a, 0);
    ck_assert_uint_eq(b, 1);
    ck_assert_uint_eq(c, 2);
    ck_assert_int_eq(td__st_writer_set_metadata(&w, "k\xc0", "v", &err), TD_EINVAL);
    double v[2] = {1, 2};
    ck_assert_int_eq(td__st_writer_put_double(&w, a, v, &err), TD_EINVAL); /* before the header */
    ck_assert_int_eq(td__st_writer_finish(&w, &err), TD_EINVAL);
    TT_OK(td__st_writer_begin_data(&w, &err));
    ck_assert_int_eq(td__st_writer_begin_data(&w, &err), TD_EINVAL);
    ck_assert_int_eq(td__st_writer_add(&w, "late", TD__ST_F32, 1, s2, NULL, &err), TD_EINVAL);
    /* metadata may change while the data is written; the header is rewritten in place only
     * into the room reserved before begin_data (none here) */
    TT_OK(td__st_writer_set_metadata(&w, "k", "v", &err));
    ck_assert_int_eq(td__st_writer_rewrite_header(&w, &err), TD_EINTERNAL);
    ck_assert_int_eq(td__st_writer_put_double(&w, b, v, &err), TD_EDTYPE);
    ck_assert_str_eq(err.message, "out.safetensors: i: dtype I64 is not a float type");
    ck_assert_int_eq(td__st_writer_put_double(&w, 7, v, &err), TD_EINVAL);
    TT_OK(td__st_writer_put_double(&w, a, v, &err));
    ck_assert_int_eq(td__st_writer_put_double(&w, a, v, &err), TD_EINVAL);
    ck_assert_str_eq(err.message, "out.safetensors: a: written twice");
    TT_OK(td__st_writer_put_double(&w, c, v, &err));
    ck_assert_int_eq(td__st_writer_finish(&w, &err), TD_EINVAL);
    ck_assert_str_eq(err.message, "out.safetensors: i: declared but never written");
    /* a source that ends early */
    int src = open(path, O_RDONLY);
    ck_assert_int_eq(td__st_writer_put_raw(&w, b, src, (uint64_t)lseek(src, 0, SEEK_END) - 3, &err), TD_EFORMAT);
    close(src);
    td__st_writer_free(&w);
    td__st_writer_free(&w);
    close(fd);
}
END_TEST

START_TEST(test_writer_many_names)
{
    /* the duplicate-name set grows: every name found once, a repeat of any refused */
    char path[128], name[32];
    int fd = open_out("many.safetensors", path, sizeof path);
    td__st_writer w;
    td_error err;
    uint64_t one[1] = {1};
    TT_OK(td__st_writer_init(&w, fd, NULL, &err));
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "layer.%d.weight", i);
        TT_OK(td__st_writer_add(&w, name, TD__ST_U8, 1, one, NULL, &err));
    }
    for (int i = 0; i < 5000; i += 499) {
        snprintf(name, sizeof name, "layer.%d.weight", i);
        ck_assert_int_eq(td__st_writer_add(&w, name, TD__ST_U8, 1, one, NULL, &err), TD_EINVAL);
    }
    ck_assert_uint_eq(w.n, 5000);
    td__st_writer_free(&w);
    close(fd);
}
END_TEST

/* Writes: f64 scalar, f16 (3), i32 (2,2) raw, bf16 (2,3), f32 empty (0,4), u8 (5); reads back. */
START_TEST(test_roundtrip)
{
    char path[128], src_path[128];
    int fd = open_out("rt.safetensors", path, sizeof path);
    td__st_writer w;
    td_error err;
    uint64_t s0[1] = {0}, s3[1] = {3}, s22[2] = {2, 2}, s23[2] = {2, 3}, s04[2] = {0, 4}, s5[1] = {5};
    TT_OK(td__st_writer_init(&w, fd, path, &err));
    TT_OK(td__st_writer_add(&w, "scalar", TD__ST_F64, 0, s0, NULL, &err));
    TT_OK(td__st_writer_add(&w, "h", TD__ST_F16, 1, s3, NULL, &err));
    TT_OK(td__st_writer_add(&w, "ints", TD__ST_I32, 2, s22, NULL, &err));
    TT_OK(td__st_writer_add(&w, "caf\xc3\xa9 \"q\"", TD__ST_BF16, 2, s23, NULL, &err));
    TT_OK(td__st_writer_add(&w, "empty", TD__ST_F32, 2, s04, NULL, &err));
    TT_OK(td__st_writer_add(&w, "bytes", TD__ST_U8, 1, s5, NULL, &err));
    TT_OK(td__st_writer_set_metadata(&w, "format", "pt", &err));
    TT_OK(td__st_writer_set_metadata(&w, "tdecomp_layers", "{\"x\": 1}", &err));
    TT_OK(td__st_writer_set_metadata(&w, "format", "np", &err)); /* set twice: the last wins */
    TT_OK(td__st_writer_begin_data(&w, &err));
    double sc = PI, h[3] = {0.1, -65519.0, 1e-7}, bf[6] = {1.0 / 3, -2.5, 1e30, -1e-30, 7.0, 0.0};
    TT_OK(td__st_writer_put_double(&w, 3, bf, &err)); /* any order */
    TT_OK(td__st_writer_put_double(&w, 0, &sc, &err));
    TT_OK(td__st_writer_put_double(&w, 1, h, &err));
    TT_OK(td__st_writer_put_double(&w, 4, NULL, &err));
    int src = open_out("src.bin", src_path, sizeof src_path);
    const unsigned char raw[21] = {9, 9, 9, 9, 1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF, 3, 0, 0, 0, 4, 0, 0, 0, 42};
    ck_assert_int_eq(write(src, raw, sizeof raw), (ssize_t)sizeof raw);
    TT_OK(td__st_writer_put_raw(&w, 2, src, 4, &err));
    TT_OK(td__st_writer_put_raw(&w, 5, src, 16, &err));
    close(src);
    TT_OK(td__st_writer_finish(&w, &err));
    td__st_writer_free(&w);
    close(fd);

    td__st_file f;
    TT_OK(td__st_open(path, &f, &err));
    ck_assert_uint_eq(f.ntensors, 6);
    ck_assert_uint_eq(f.data_start % 8, 0);
    ck_assert_str_eq(f.tensors[3].name, "caf\xc3\xa9 \"q\""); /* header order = declaration order */
    ck_assert_str_eq(td__st_metadata_get(&f, "format"), "np");
    ck_assert_str_eq(td__st_metadata_get(&f, "tdecomp_layers"), "{\"x\": 1}");
    ck_assert_ptr_null(td__st_metadata_get(&f, "nope"));
    ck_assert_uint_eq(f.nmeta, 2);
    for (size_t i = 0; i < f.ntensors; i++) { /* each tensor aligned to its element size */
        size_t k;
        ck_assert(td__st_find(&f, f.tensors[i].name, &k) && k == i);
        ck_assert_uint_eq(td__st_tensor_offset(&f, i) % (td__st_dtype_bits(f.tensors[i].dtype) / 8), 0);
    }
    ck_assert(!td__st_find(&f, "missing", NULL));
    td_tensor t;
    TT_OK(td__st_read_double(&f, 0, &t, &err));
    ck_assert(t.ndim == 0 && t.size == 1 && t.data[0] == PI);
    td_tensor_free(&t);
    TT_OK(td__st_read_double(&f, 1, &t, &err));
    double hr[3];
    memcpy(hr, h, sizeof h);
    TT_OK(td__st_round(TD__ST_F16, hr, 3));
    ck_assert(t.size == 3 && memcmp(t.data, hr, sizeof hr) == 0 && hr[1] == -65504.0);
    td_tensor_free(&t);
    TT_OK(td__st_read_double(&f, 3, &t, &err));
    double br[6];
    memcpy(br, bf, sizeof bf);
    TT_OK(td__st_round(TD__ST_BF16, br, 6));
    ck_assert(t.ndim == 2 && t.shape[1] == 3 && memcmp(t.data, br, sizeof br) == 0 && br[4] == 7.0);
    td_tensor_free(&t);
    TT_OK(td__st_read_double(&f, 4, &t, &err));
    ck_assert(t.ndim == 2 && t.size == 0 && t.data == NULL);
    td_tensor_free(&t);
    unsigned char ib[16];
    TT_OK(td__st_read_raw(&f, 2, ib, &err));
    ck_assert(memcmp(ib, raw + 4, 16) == 0);
    ck_assert_int_eq(td__st_read_double(&f, 2, &t, &err), TD_EDTYPE);
    ck_assert_str_eq(strstr(err.message, "ints: "), "ints: dtype I32 is not a float type");
    ck_assert_int_eq(td__st_read_double(&f, 99, &t, &err), TD_EINVAL);
    td__st_close(&f);
    td__st_close(&f);
}
END_TEST

/* Rank above TD_MAX_MODES is a valid file but not a td_tensor. */
/* Metadata set after the data started lands in the reserved header room; the file reads back
 * with it and the data where it was. */
START_TEST(test_late_metadata)
{
    char path[128];
    int fd = open_out("late.safetensors", path, sizeof path);
    td__st_writer w;
    td_error err;
    uint64_t s3[1] = {3};
    TT_OK(td__st_writer_init(&w, fd, path, &err));
    TT_OK(td__st_writer_add(&w, "x", TD__ST_F32, 1, s3, NULL, &err));
    td__st_writer_reserve(&w, 64);
    TT_OK(td__st_writer_begin_data(&w, &err));
    const double v[3] = {1.5, -2, 3};
    TT_OK(td__st_writer_put_double(&w, 0, v, &err));
    TT_OK(td__st_writer_set_metadata(&w, "late", "written after the data", &err));
    TT_OK(td__st_writer_rewrite_header(&w, &err));
    TT_OK(td__st_writer_finish(&w, &err));
    td__st_writer_free(&w);
    close(fd);
    td__st_file f;
    TT_OK(td__st_open(path, &f, &err));
    ck_assert_str_eq(td__st_metadata_get(&f, "late"), "written after the data");
    td_tensor t;
    TT_OK(td__st_read_double(&f, 0, &t, &err));
    ck_assert(t.data[0] == 1.5 && t.data[1] == -2 && t.data[2] == 3);
    td_tensor_free(&t);
    td__st_close(&f);
}
END_TEST

START_TEST(test_high_rank)
{
    char path[128];
    int fd = open_out("rank.safetensors", path, sizeof path);
    td__st_writer w;
    td_error err;
    uint64_t shape[TD_MAX_MODES + 1];
    for (int k = 0; k <= TD_MAX_MODES; k++) shape[k] = 1;
    TT_OK(td__st_writer_init(&w, fd, path, &err));
    TT_OK(td__st_writer_add(&w, "r17", TD__ST_F32, TD_MAX_MODES + 1, shape, NULL, &err));
    TT_OK(td__st_writer_begin_data(&w, &err));
    double one = 1.0;
    TT_OK(td__st_writer_put_double(&w, 0, &one, &err));
    TT_OK(td__st_writer_finish(&w, &err));
    td__st_writer_free(&w);
    close(fd);
    td__st_file f;
    TT_OK(td__st_open(path, &f, &err));
    ck_assert_int_eq(f.tensors[0].ndim, TD_MAX_MODES + 1);
    td_tensor t;
    ck_assert_int_eq(td__st_read_double(&f, 0, &t, &err), TD_ERANGE);
    double d = 0;
    TT_OK(td__st_read_doubles(&f, 0, &d, &err));
    ck_assert(d == 1.0);
    td__st_close(&f);
}
END_TEST

/* Every pread64 of the library, logged while `logging` (the test links with --wrap=pread64:
 * exact whatever runs the test, valgrind included). */
ssize_t __real_pread64(int fd, void *buf, size_t n, off_t off);
#define PREAD_LOG 16
static int logging, nlog;
static struct { size_t n; off_t off; } plog[PREAD_LOG];
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off)
{
    if (logging && nlog < PREAD_LOG) {
        plog[nlog].n = n;
        plog[nlog].off = off;
        nlog++;
    }
    return __real_pread64(fd, buf, n, off);
}

/* A 1 GiB F32 tensor next to a small one (sparse file): opening reads the 8-byte length and the
 * header, reading the small tensor exactly its 64 bytes at its offset; the big one is never
 * touched. */
START_TEST(test_reads_only_one_tensor)
{
    char path[128];
    int fd = open_out("big.safetensors", path, sizeof path);
    td__st_writer w;
    td_error err;
    uint64_t big[2] = {16384, 16384}, small[1] = {16};
    TT_OK(td__st_writer_init(&w, fd, path, &err));
    TT_OK(td__st_writer_add(&w, "big", TD__ST_F32, 2, big, NULL, &err));
    TT_OK(td__st_writer_add(&w, "small", TD__ST_F32, 1, small, NULL, &err));
    TT_OK(td__st_writer_begin_data(&w, &err)); /* sizes the file; the big tensor stays a hole */
    double v[16];
    for (int i = 0; i < 16; i++) v[i] = i + 0.5;
    TT_OK(td__st_writer_put_double(&w, 1, v, &err));
    td__st_writer_free(&w);
    close(fd);
    td__st_file f;
    td_tensor t;
    nlog = 0;
    logging = 1;
    td_status st1 = td__st_open(path, &f, &err);
    int after_open = nlog;
    td_status st2 = st1 == TD_OK ? td__st_read_double(&f, 1, &t, &err) : st1;
    logging = 0;
    TT_OK(st1);
    TT_OK(st2);
    const uint64_t gib = UINT64_C(1) << 30;
    ck_assert_uint_eq(f.file_size, f.data_start + gib + 64);
    ck_assert_int_eq(after_open, 2);
    ck_assert_int_eq(nlog, 3);
    ck_assert(plog[0].n == 8 && plog[0].off == 0);
    ck_assert(plog[1].n == f.header_len && plog[1].off == 8);
    ck_assert(plog[2].n == 64 && (uint64_t)plog[2].off == f.data_start + gib);
    for (int i = 0; i < 16; i++) ck_assert(t.data[i] == i + 0.5);
    td_tensor_free(&t);
    td__st_close(&f);
    unlink(path);
}
END_TEST

/* A shard of F32 scalars-in-a-vector named names[0..n), valued 10 * shard_id + i. */
static void write_shard(const char *name, const char *const *names, int n, int shard_id)
{
    char path[128];
    int fd = open_out(name, path, sizeof path);
    td__st_writer w;
    td_error err;
    uint64_t one[1] = {1};
    TT_OK(td__st_writer_init(&w, fd, path, &err));
    for (int i = 0; i < n; i++) TT_OK(td__st_writer_add(&w, names[i], TD__ST_F32, 1, one, NULL, &err));
    TT_OK(td__st_writer_begin_data(&w, &err));
    for (int i = 0; i < n; i++) {
        double v = 10.0 * shard_id + i;
        TT_OK(td__st_writer_put_double(&w, (size_t)i, &v, &err));
    }
    TT_OK(td__st_writer_finish(&w, &err));
    td__st_writer_free(&w);
    close(fd);
}

static void write_text(const char *name, const char *text, char *path, size_t cap)
{
    tmp_path(path, cap, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static td_status open_index(const char *text, td__st_index *ix, td_error *err)
{
    char path[128];
    write_text("model.safetensors.index.json", text, path, sizeof path);
    return td__st_index_open(path, ix, err);
}

START_TEST(test_index)
{
    const char *a[] = {"x.weight", "x.bias"}, *b[] = {"y.weight"};
    write_shard("m-1.safetensors", a, 2, 1);
    write_shard("m-2.safetensors", b, 1, 2);
    td__st_index ix;
    td_error err;
    TT_OK(open_index("{\"metadata\": {\"total_size\": 12, \"who\": \"me\"}, \"weight_map\": {\"x.weight\": \"m-1.safetensors\","
                     " \"y.weight\": \"m-2.safetensors\", \"x.bias\": \"m-1.safetensors\"}}", &ix, &err));
    ck_assert_uint_eq(ix.nshards, 2);
    ck_assert_uint_eq(ix.nentries, 3);
    ck_assert_str_eq(td__st_index_metadata_get(&ix, "total_size"), "12");
    ck_assert_str_eq(td__st_index_metadata_get(&ix, "who"), "me");
    size_t s, t;
    ck_assert(td__st_index_find(&ix, "y.weight", &s, &t));
    ck_assert_str_eq(ix.shard_names[s], "m-2.safetensors");
    td_tensor x;
    TT_OK(td__st_read_double(&ix.shards[s], t, &x, &err));
    ck_assert(x.data[0] == 20.0);
    td_tensor_free(&x);
    ck_assert(td__st_index_find(&ix, "x.bias", &s, &t));
    TT_OK(td__st_read_double(&ix.shards[s], t, &x, &err));
    ck_assert(x.data[0] == 11.0);
    td_tensor_free(&x);
    ck_assert(!td__st_index_find(&ix, "z", &s, &t));
    td__st_index_close(&ix);

    static const struct { const char *text, *needle; } bad[] = {
        {"{\"weight_map\": {\"x.weight\": \"../m-1.safetensors\"}}", "contains '/'"},
        {"{\"weight_map\": {\"x.weight\": \"/etc/passwd\"}}", "contains '/'"},
        {"{\"weight_map\": {\"x.weight\": \"..\"}}", "is not a file name"},
        {"{\"weight_map\": {\"x.weight\": \"\"}}", "is empty"},
        {"{\"weight_map\": {\"x.weight\": 3}}", "not a shard file name"},
        {"{\"weight_map\": [\"x.weight\"]}", "weight_map: is a JSON array"},
        {"{\"metadata\": 3, \"weight_map\": {}}", "metadata: is a JSON number"},
        {"{\"metadata\": {}}", "has no \"weight_map\""},
        {"{\"weight_map\": {\"x.weight\": \"m-1.safetensors\", \"x.weight\": \"m-1.safetensors\"}}", "duplicate key"},
        {"{\"weight_map\": {\"x.weight\": \"m-1.safetensors\", \"x.bias\": \"m-1.safetensors\", \"y.weight\": \"m-1.safetensors\"}}",
         "y.weight: mapped to shard m-1.safetensors, which has no such tensor"},
        {"{\"weight_map\": {\"x.weight\": \"m-1.safetensors\", \"x.bias\": \"m-2.safetensors\", \"y.weight\": \"m-2.safetensors\"}}",
         "x.bias: mapped to shard m-2.safetensors, which has no such tensor (it is in m-1.safetensors)"},
        {"{\"weight_map\": {\"x.weight\": \"m-1.safetensors\"}}", "m-1.safetensors: x.bias: tensor not listed in the weight_map"},
        {"{\"weight_map\": {\"x.weight\": \"m-3.safetensors\"}}", "m-3.safetensors: no such file"},
        {"[1]", "index is a JSON array"},
        {"{\"weight_map\": {", "is not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_ne(open_index(bad[i].text, &ix, &err), TD_OK);
        ck_assert_msg(strstr(err.message, bad[i].needle), "case %zu: %s", i, err.message);
        ck_assert_uint_eq(ix.nshards, 0); /* left closed */
        td__st_index_close(&ix);
    }
    /* the same tensor in two shards: the one the map does not name is refused */
    const char *dup[] = {"x.weight", "x.bias", "y.weight"};
    write_shard("m-1.safetensors", dup, 3, 1);
    ck_assert_int_eq(open_index("{\"weight_map\": {\"x.weight\": \"m-1.safetensors\", \"x.bias\": \"m-1.safetensors\","
                                " \"y.weight\": \"m-2.safetensors\"}}", &ix, &err), TD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "m-1.safetensors: y.weight: also stored here, but"));
    ck_assert_ptr_nonnull(strstr(err.message, "maps it to shard m-2.safetensors"));
}
END_TEST

START_TEST(test_sniff_and_open_errors)
{
    char path[128];
    td__file_kind k;
    td_error err;
    const char *a[] = {"w"};
    write_shard("one.h5", a, 1, 0); /* content decides, not the name */
    tmp_path(path, sizeof path, "one.h5");
    TT_OK(td__sniff(path, &k, &err));
    ck_assert_str_eq(td__file_kind_name(k), "safetensors");
    write_text("idx.json", "\n {\"weight_map\": {}}", path, sizeof path);
    TT_OK(td__sniff(path, &k, &err));
    ck_assert_int_eq(k, TD__FILE_SAFETENSORS_INDEX);
    write_text("plain.json", "{\"weights\": {}}", path, sizeof path);
    TT_OK(td__sniff(path, &k, &err));
    ck_assert_int_eq(k, TD__FILE_UNKNOWN);
    write_text("empty", "", path, sizeof path);
    TT_OK(td__sniff(path, &k, &err));
    ck_assert_int_eq(k, TD__FILE_UNKNOWN);
    tmp_path(path, sizeof path, "absent");
    ck_assert_int_eq(td__sniff(path, &k, &err), TD_ENOTFOUND);
    ck_assert_int_eq(td__sniff(tmpdir, &k, &err), TD_EINVAL);
    td__st_file f;
    ck_assert_int_eq(td__st_open(path, &f, &err), TD_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.message, "absent: no such file"));
    ck_assert_int_eq(f.fd, -1);
    ck_assert_int_eq(td__st_open(tmpdir, &f, &err), TD_EINVAL);
    write_text("empty", "", path, sizeof path);
    ck_assert_int_eq(td__st_open(path, &f, &err), TD_EFORMAT);
    td__st_close(&f);
    td__st_close(NULL);
}
END_TEST

int main(void)
{
    if (!make_tmpdir()) return EXIT_FAILURE;
    Suite *s = suite_create("io_safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_f16_closed_forms);
    tcase_add_test(tc, test_bf16_closed_forms);
    tcase_add_test(tc, test_half_exhaustive_roundtrip);
    tcase_add_test(tc, test_round_in_place);
    tcase_add_test(tc, test_dtype_table);
    tcase_add_test(tc, test_writer_refusals);
    tcase_add_test(tc, test_writer_many_names);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_late_metadata);
    tcase_add_test(tc, test_high_rank);
    tcase_add_test(tc, test_reads_only_one_tensor);
    tcase_add_test(tc, test_index);
    tcase_add_test(tc, test_sniff_and_open_errors);
    suite_add_tcase(s, tc);
    int rc = tt_run(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) rc = EXIT_FAILURE;
    return rc;
}
