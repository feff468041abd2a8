/* Hostile HDF5 storage and links, built here with the HDF5 C API: every one is refused by the
 * plain-tensor readers and by td_model_open, naming file, dataset and problem, before any data
 * is read (external storage on a FIFO would block forever if it were read: the test case's
 * timeout is the witness). Storage that does not hold every declared element is refused; the
 * same datasets fully written are read back exactly. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/testutil.h"

#define UD_CLASS ((H5L_type_t)77) /* a user-defined link class, registered only to create one */

static char tmpdir[64];

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmpdir, name); }

static hid_t new_file(const char *name, char *path, size_t cap)
{
    tmp_path(path, cap, name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    return f;
}

/* A 2-D float64 dataset name of dims rows x cols with creation properties dcpl, data written when
 * data != NULL. */
static void add_dataset(hid_t loc, const char *name, hsize_t rows, hsize_t cols, hid_t dcpl, const double *data)
{
    hsize_t dims[2] = {rows, cols};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    if (data) ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(d);
    H5Sclose(sp);
}

/* Both readers and td_model_open refuse path:dataset with status want and a message naming the
 * file, the offending object and `words`. */
static void assert_refused(const char *path, const char *dataset, const char *object, td_status want, const char *words)
{
    td_tensor t;
    td_error err;
    int nd = 0;
    size_t shape[TD_MAX_MODES];
    ck_assert_int_eq(td_h5_read_tensor(path, dataset, &t, NULL, &err), want);
    ck_assert_ptr_null(t.data);
    ck_assert_msg(strstr(err.message, path) && strstr(err.message, object) && strstr(err.message, words), "%s", err.message);
    ck_assert_int_eq(td_h5_dataset_shape(path, dataset, &nd, shape, NULL, &err), want);
    ck_assert_msg(strstr(err.message, object) && strstr(err.message, words), "%s", err.message);
    td_model m;
    ck_assert_int_eq(td_model_open(&m, path, TD_LAYOUT_AUTO, &err), want);
    ck_assert_msg(strstr(err.message, path) && strstr(err.message, object) && strstr(err.message, words), "%s", err.message);
}

static void assert_reads(const char *path, const char *dataset, const double *want, size_t n)
{
    td_tensor t;
    td_error err;
    TT_OK(td_h5_read_tensor(path, dataset, &t, NULL, &err));
    ck_assert_uint_eq(t.size, n);
    ck_assert(memcmp(t.data, want, n * sizeof *want) == 0);
    td_tensor_free(&t);
}

START_TEST(test_external_storage)
{
    char path[128], secret[128], fifo[128];
    const double w[4] = {1, 2, 3, 4};
    tmp_path(secret, sizeof secret, "secret.bin");
    FILE *s = fopen(secret, "wb");
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fwrite(w, sizeof w, 1, s), 1);
    fclose(s);
    tmp_path(fifo, sizeof fifo, "pipe");
    ck_assert(mkfifo(fifo, 0600) == 0 || errno == EEXIST);
    const char *targets[2] = {secret, fifo};
    for (int i = 0; i < 2; i++) {
        hid_t f = new_file(i ? "ext_fifo.h5" : "ext_file.h5", path, sizeof path);
        add_dataset(f, "fc.weight", 2, 2, H5P_DEFAULT, w);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        ck_assert_int_ge(H5Pset_external(dcpl, targets[i], 0, sizeof w), 0);
        add_dataset(f, "fc.bias", 2, 2, dcpl, NULL); /* its bytes are the target's */
        H5Pclose(dcpl);
        H5Fclose(f);
        assert_refused(path, "/fc.bias", "/fc.bias", TD_EFORMAT, "external raw storage");
    }
}
END_TEST

/* A virtual dataset mapping all of it from src_file:src_dset. */
static void add_vds(hid_t f, const char *name, const char *src_file, const char *src_dset)
{
    hsize_t dims[2] = {2, 2};
    hid_t sp = H5Screate_simple(2, dims, NULL), src = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    ck_assert_int_ge(H5Pset_virtual(dcpl, sp, src_file, src_dset, src), 0);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(src);
    H5Sclose(sp);
}

START_TEST(test_virtual_datasets)
{
    char path[128];
    hid_t f = new_file("vds_missing.h5", path, sizeof path);
    add_vds(f, "fc.weight", "no_such_source.h5", "/w");
    H5Fclose(f);
    assert_refused(path, "fc.weight", "fc.weight", TD_EFORMAT, "virtual dataset");
    f = new_file("vds_self.h5", path, sizeof path); /* reading it recurses in libhdf5 */
    add_vds(f, "fc.weight", ".", "/fc.weight");
    H5Fclose(f);
    assert_refused(path, "/fc.weight", "/fc.weight", TD_EFORMAT, "virtual dataset");
}
END_TEST

static hid_t ud_traverse(const char *name, hid_t cur_group, const void *buf, size_t size, hid_t lapl, hid_t dxpl)
{
    (void)name; (void)cur_group; (void)buf; (void)size; (void)lapl; (void)dxpl;
    return H5I_INVALID_HID;
}

START_TEST(test_links)
{
    char path[128], other[128];
    const double w[4] = {1, 2, 3, 4};
    hid_t f = new_file("target.h5", other, sizeof other);
    add_dataset(f, "w", 2, 2, H5P_DEFAULT, w);
    H5Fclose(f);
    /* soft, external, user-defined: as the weight itself and as a group on the way to it */
    f = new_file("soft.h5", path, sizeof path);
    hid_t g = H5Gcreate2(f, "real", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    add_dataset(g, "fc.weight", 2, 2, H5P_DEFAULT, w);
    H5Gclose(g);
    ck_assert_int_ge(H5Lcreate_soft("/real", f, "alias", H5P_DEFAULT, H5P_DEFAULT), 0);
    H5Fclose(f);
    assert_refused(path, "/alias/fc.weight", "/alias", TD_EFORMAT, "soft link");
    assert_reads(path, "/real/fc.weight", w, 4); /* the hard path is fine for the plain reader */
    f = new_file("external.h5", path, sizeof path);
    ck_assert_int_ge(H5Lcreate_external(other, "/w", f, "fc.weight", H5P_DEFAULT, H5P_DEFAULT), 0);
    H5Fclose(f);
    assert_refused(path, "fc.weight", "fc.weight", TD_EFORMAT, "external link");
    const H5L_class_t cls = {H5L_LINK_CLASS_T_VERS, UD_CLASS, "test class", NULL, NULL, NULL, ud_traverse, NULL, NULL};
    ck_assert_int_ge(H5Lregister(&cls), 0);
    f = new_file("user_link.h5", path, sizeof path);
    ck_assert_int_ge(H5Lcreate_ud(f, "fc.weight", UD_CLASS, "x", 1, H5P_DEFAULT, H5P_DEFAULT), 0);
    H5Fclose(f);
    ck_assert_int_ge(H5Lunregister(UD_CLASS), 0); /* as a reader that does not know the class */
    assert_refused(path, "/fc.weight", "/fc.weight", TD_EFORMAT, "user-defined link");
}
END_TEST

START_TEST(test_unwritten_storage)
{
    char path[128];
    enum { ROWS = 40, COLS = 30 };
    static double w[ROWS * COLS];
    for (size_t i = 0; i < ROWS * COLS; i++) w[i] = (double)i - 7.25;
    hsize_t chunk[2] = {10, 10};
    hid_t plain = H5Pcreate(H5P_DATASET_CREATE), zipped = H5Pcreate(H5P_DATASET_CREATE);
    ck_assert_int_ge(H5Pset_chunk(plain, 2, chunk), 0);
    ck_assert_int_ge(H5Pset_chunk(zipped, 2, chunk), 0);
    const int deflate = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0;
    if (deflate) ck_assert_int_ge(H5Pset_deflate(zipped, 9), 0);
    hid_t f = new_file("unwritten.h5", path, sizeof path);
    add_dataset(f, "contiguous", ROWS, COLS, H5P_DEFAULT, NULL);
    add_dataset(f, "chunked", ROWS, COLS, plain, NULL);
    add_dataset(f, "zipped", ROWS, COLS, zipped, NULL);
    add_dataset(f, "chunked_full", ROWS, COLS, plain, w);
    add_dataset(f, "zipped_full", ROWS, COLS, zipped, w);
    /* one chunk of twelve written: 800 of 9600 bytes (the zeros compress to far less) */
    hsize_t dims[2] = {ROWS, COLS}, start[2] = {0, 0}, count[2] = {10, 10};
    add_dataset(f, "zipped_part", ROWS, COLS, zipped, NULL);
    hid_t d = H5Dopen2(f, "zipped_part", H5P_DEFAULT);
    hid_t fs = H5Screate_simple(2, dims, NULL), ms = H5Screate_simple(2, count, NULL);
    ck_assert_int_ge(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL), 0);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, w), 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    H5Pclose(plain);
    H5Pclose(zipped);
    char want[96];
    snprintf(want, sizeof want, "declares %u bytes but the file stores 0", (unsigned)(ROWS * COLS * sizeof(double)));
    td_tensor t;
    td_error err;
    const char *never[3] = {"contiguous", "chunked", "zipped"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(td_h5_read_tensor(path, never[i], &t, NULL, &err), TD_EFORMAT);
        ck_assert_msg(strstr(err.message, path) && strstr(err.message, never[i]) && strstr(err.message, want), "%s", err.message);
    }
    ck_assert_int_eq(td_h5_read_tensor(path, "zipped_part", &t, NULL, &err), TD_EFORMAT);
    ck_assert_msg(strstr(err.message, "1 of its 12 chunks"), "%s", err.message);
    td_model m;
    ck_assert_int_eq(td_model_open(&m, path, TD_LAYOUT_AUTO, &err), TD_EFORMAT);
    ck_assert_msg(strstr(err.message, "declares") && strstr(err.message, path), "%s", err.message);
    assert_reads(path, "chunked_full", w, ROWS * COLS);
    if (deflate) assert_reads(path, "zipped_full", w, ROWS * COLS);
}
END_TEST

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tdh5h-XXXXXX");
    if (!mkdtemp(tmpdir)) return EXIT_FAILURE;
    Suite *s = suite_create("io_h5_hostile");
    TCase *tc = tcase_create("h5_hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_external_storage);
    tcase_add_test(tc, test_virtual_datasets);
    tcase_add_test(tc, test_links);
    tcase_add_test(tc, test_unwritten_storage);
    suite_add_tcase(s, tc);
    int rc = tt_run(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) rc = EXIT_FAILURE;
    return rc;
}
