#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>
#include "io/io_internal.h"
#include "io/st_internal.h"

void td__h5_quiet_begin(td__h5quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void td__h5_quiet_end(const td__h5quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

void td__h5_close_quiet(hid_t file)
{
    if (file < 0) return;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    H5Fclose(file);
    td__h5_quiet_end(&q);
}

td_status td__h5_open_ro(const char *path, hid_t *file, td_error *err)
{
    struct stat sb;
    *file = H5I_INVALID_HID;
    if (!path || !*path) return td__error_set(err, TD_EINVAL, NULL, NULL, "no input file given");
    if (stat(path, &sb) != 0)
        return td__error_set(err, errno == ENOENT ? TD_ENOTFOUND : TD_EIO, path, NULL, "%s",
                             errno == ENOENT ? "no such file" : strerror(errno));
    if (S_ISDIR(sb.st_mode)) return td__error_set(err, TD_EFORMAT, path, NULL, "is a directory, not an HDF5 file");
    if (!S_ISREG(sb.st_mode)) return td__error_set(err, TD_EFORMAT, path, NULL, "is not a regular file");
    if (sb.st_size == 0) return td__error_set(err, TD_EFORMAT, path, NULL, "is empty, not an HDF5 file");
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return td__error_set(err, TD_EFORMAT, path, NULL, "not an HDF5 file (or truncated)");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return td__error_set(err, TD_EFORMAT, path, NULL, "cannot be opened as HDF5 (malformed or truncated)");
    *file = f;
    return TD_OK;
}

/* Names a link kind for messages. */
static const char *link_kind(H5L_type_t t)
{
    if (t == H5L_TYPE_SOFT) return "a soft link";
    if (t == H5L_TYPE_EXTERNAL) return "an external link (to another file)";
    return "a user-defined link";
}

td_status td__h5_link_refusal(H5L_type_t type, const char *file_name, const char *link_path, td_error *err)
{
    if (type == H5L_TYPE_HARD) return TD_OK;
    /* the target may be any file or object (a secret, a FIFO, the file itself): never followed */
    return td__error_set(err, TD_EFORMAT, file_name, link_path, "is %s; links are refused, their targets are never read",
                         link_kind(type));
}

td_status td__h5_check_path(hid_t loc, const char *file_name, const char *path, td_error *err)
{
    char buf[4096];
    const size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return td__error_set(err, TD_ENOTFOUND, file_name, path, "no such dataset");
    if (strcmp(path, "/") == 0) return TD_OK;
    memcpy(buf, path, n + 1);
    /* each prefix in turn: H5Lexists and H5Lget_info look at a link without following it, and
     * every earlier component is by then known to be a hard link to a group */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        const char c = buf[i];
        buf[i] = '\0';
        if (!(i == 1 && buf[0] == '/') && buf[i - 1] != '/') {
            H5L_info_t li;
            H5O_info_t oi;
            if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0 || H5Lget_info(loc, buf, &li, H5P_DEFAULT) < 0)
                return td__error_set(err, TD_ENOTFOUND, file_name, path, "no such dataset");
            const td_status st = td__h5_link_refusal(li.type, file_name, buf, err);
            if (st != TD_OK) return st;
            if (c != '\0' && (H5Oget_info_by_name(loc, buf, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP))
                return td__error_set(err, TD_ENOTFOUND, file_name, path, "no such dataset (%s is not a group)", buf);
        }
        buf[i] = c;
    }
    return TD_OK;
}

int td__h5_path_exists(hid_t loc, const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return 0;
    if (strcmp(path, "/") == 0) return 1;
    memcpy(buf, path, n + 1);
    /* check each prefix: H5Lexists fails (rather than returning 0) on a missing intermediate */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (i > 0 && !(i == 1 && buf[0] == '/')) {
                if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
                if (c != '\0' && H5Oexists_by_name(loc, buf, H5P_DEFAULT) <= 0) return 0;
            }
            buf[i] = c;
        }
    }
    return H5Oexists_by_name(loc, path, H5P_DEFAULT) > 0;
}

/* The float layouts read and written: sign in the top bit, exponent above the mantissa, the
 * usual bias, an implied leading bit. HDF5 describes any other layout equally well (a 2-byte
 * float with an 8-bit exponent is bfloat16, not half), so the size alone says nothing. */
static const struct float_layout {
    size_t size, esize, msize;
    td_dtype dtype;
} FLOATS[] = {
    {2, 5, 10, TD_DTYPE_F16}, {2, 8, 7, TD_DTYPE_BF16}, {4, 8, 23, TD_DTYPE_F32}, {8, 11, 52, TD_DTYPE_F64}};

/* td_dtype of an H5T_FLOAT type by its bit layout; TD_DTYPE_OTHER with a description naming the
 * layout for anything else. */
static td_dtype float_dtype(hid_t type, char *desc, size_t desc_len)
{
    const size_t sz = H5Tget_size(type), prec = H5Tget_precision(type);
    size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
    const H5T_order_t order = H5Tget_order(type);
    const int fields = H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) >= 0;
    const size_t ebias = H5Tget_ebias(type);
    const int plain = fields && prec == 8 * sz && H5Tget_offset(type) == 0 && H5Tget_norm(type) == H5T_NORM_IMPLIED &&
                      (order == H5T_ORDER_LE || order == H5T_ORDER_BE) && spos == 8 * sz - 1 && mpos == 0 &&
                      epos == msize && esize + msize + 1 == 8 * sz && esize >= 2 && esize < 16 &&
                      ebias == ((size_t)1 << (esize - 1)) - 1;
    for (size_t i = 0; plain && i < sizeof FLOATS / sizeof FLOATS[0]; i++)
        if (FLOATS[i].size == sz && FLOATS[i].esize == esize && FLOATS[i].msize == msize) {
            snprintf(desc, desc_len, "%s", td_dtype_name(FLOATS[i].dtype));
            return FLOATS[i].dtype;
        }
    if (fields)
        snprintf(desc, desc_len, "custom %zu-byte float (%zu-bit exponent, %zu-bit mantissa, bias %zu)", sz, esize, msize, ebias);
    else
        snprintf(desc, desc_len, "custom %zu-byte float", sz);
    return TD_DTYPE_OTHER;
}

int td__h5_is_custom_float(hid_t type)
{
    char desc[8];
    return H5Tget_class(type) == H5T_FLOAT && float_dtype(type, desc, sizeof desc) == TD_DTYPE_OTHER;
}

td_dtype td__h5_dtype_of(hid_t type, char *desc, size_t desc_len)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t sz = H5Tget_size(type);
    switch (cls) {
    case H5T_FLOAT: return float_dtype(type, desc, desc_len);
    case H5T_INTEGER:
        snprintf(desc, desc_len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", sz * 8);
        return TD_DTYPE_OTHER;
    case H5T_STRING: snprintf(desc, desc_len, "string"); return TD_DTYPE_OTHER;
    case H5T_COMPOUND: snprintf(desc, desc_len, "compound"); return TD_DTYPE_OTHER;
    case H5T_ENUM: snprintf(desc, desc_len, "enum"); return TD_DTYPE_OTHER;
    case H5T_ARRAY: snprintf(desc, desc_len, "array"); return TD_DTYPE_OTHER;
    case H5T_VLEN: snprintf(desc, desc_len, "variable-length"); return TD_DTYPE_OTHER;
    case H5T_OPAQUE: snprintf(desc, desc_len, "opaque"); return TD_DTYPE_OTHER;
    case H5T_BITFIELD: snprintf(desc, desc_len, "bitfield"); return TD_DTYPE_OTHER;
    case H5T_REFERENCE: snprintf(desc, desc_len, "reference"); return TD_DTYPE_OTHER;
    default: snprintf(desc, desc_len, "unknown type"); return TD_DTYPE_OTHER;
    }
}

/* A little-endian 2-byte float with an esize-bit exponent (IEEE half: 5, bfloat16: 8). */
static hid_t narrow_type(size_t esize)
{
    const size_t msize = 15 - esize;
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, msize, esize, 0, msize) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_precision(t, 16) < 0 ||
        H5Tset_ebias(t, ((size_t)1 << (esize - 1)) - 1) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

hid_t td__h5_float_type(td_dtype dtype)
{
    if (dtype == TD_DTYPE_F32) return H5Tcopy(H5T_IEEE_F32LE);
    if (dtype == TD_DTYPE_F64) return H5Tcopy(H5T_IEEE_F64LE);
    if (dtype == TD_DTYPE_F16) return narrow_type(5); /* as numpy/h5py write float16 */
    if (dtype == TD_DTYPE_BF16) return narrow_type(8);
    return H5I_INVALID_HID;
}

/* 2-byte floats are moved as their bits (libhdf5 1.10's conversions to and from them round
 * wrongly: ties away from zero, subnormals, 65520 -> 32768) and converted here, exactly when
 * widening and with one round-to-nearest-even when narrowing (st_half.c). */
static int is_narrow(td_dtype dt) { return dt == TD_DTYPE_F16 || dt == TD_DTYPE_BF16; }

static double widen(td_dtype dt, uint16_t h) { return dt == TD_DTYPE_BF16 ? td__bf16_to_double(h) : td__f16_to_double(h); }

td_status td__h5_read_floats(hid_t dset, td_dtype dt, double *out, size_t n)
{
    if (!is_narrow(dt)) return H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0 ? TD_EFORMAT : TD_OK;
    hid_t mt = td__h5_float_type(dt);
    if (mt < 0) return TD_ENOMEM;
    /* the bits land in the first 2n bytes of out and are widened from the last element down:
     * element i's double (bytes 8i..8i+7) only covers bits of elements >= i, already widened */
    const herr_t rc = H5Dread(dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Tclose(mt);
    if (rc < 0) return TD_EFORMAT;
    unsigned char *bytes = (unsigned char *)out;
    for (size_t i = n; i-- > 0;) {
        uint16_t h;
        memcpy(&h, bytes + 2 * i, sizeof h);
        const double x = widen(dt, h);
        memcpy(bytes + 8 * i, &x, sizeof x);
    }
    return TD_OK;
}

td_status td__h5_write_floats(hid_t dset, td_dtype dt, const double *data, size_t n)
{
    if (n == 0) return TD_OK;
    if (dt == TD_DTYPE_F64) return H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? TD_EIO : TD_OK;
    td__st_dtype sd;
    if (!td__st_dtype_from_td(dt, &sd)) return TD_EINVAL;
    const size_t width = td__st_dtype_bits(sd) / 8;
    unsigned char *buf = n <= SIZE_MAX / width ? malloc(n * width) : NULL;
    hid_t mt = td__h5_float_type(dt); /* the file's own type: libhdf5 converts nothing */
    td_status st = buf && mt >= 0 ? TD_OK : TD_ENOMEM;
    for (size_t i = 0; st == TD_OK && i < n; i++) td__st_encode(sd, data[i], buf + i * width);
    if (st == TD_OK && H5Dwrite(dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) st = TD_EIO;
    if (mt >= 0) H5Tclose(mt);
    free(buf);
    return st;
}

td_status td__h5_check_storage(hid_t dset, const char *file_name, const char *dset_name, td_error *err)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return td__error_set(err, TD_EFORMAT, file_name, dset_name, "unreadable creation properties");
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    const int next = H5Pget_external_count(dcpl);
    td_status st = TD_OK;
    /* both keep the data outside this file (any path: a secret, /dev/zero, a FIFO, the file
     * itself); libhdf5 reads them only when the data is, so refusing here reads nothing */
    if (layout == H5D_VIRTUAL)
        st = td__error_set(err, TD_EFORMAT, file_name, dset_name,
                           "is a virtual dataset (its data is in other datasets or files); refused");
    else if (next != 0)
        st = td__error_set(err, TD_EFORMAT, file_name, dset_name,
                           "has external raw storage (its data is in another file); refused");
    else if (layout < 0)
        st = td__error_set(err, TD_EFORMAT, file_name, dset_name, "unreadable storage layout");
    H5Pclose(dcpl);
    return st;
}

/* Above this declared size a dataset must be stored in at least 1/ABSURD_RATIO of the file's
 * bytes: compression rarely exceeds that ratio on weights (deflate cannot exceed ~1032:1). */
#define ABSURD_BYTES ((hsize_t)1 << 28)
#define ABSURD_RATIO 1024

/* Elements read into one tensor at most (32 GiB as doubles): the library has no memory budget
 * of its own (the tool checks --max-memory from the shape first); this bounds what a declared
 * size alone can make it allocate. */
#define MAX_READ_ELEMENTS ((size_t)1 << 32)

/* Chunks a chunked dataset of these dims needs: the product of ceil(dims[k] / chunk[k]). */
static hsize_t chunks_needed(int nd, const hsize_t *dims, const hsize_t *chunk)
{
    hsize_t n = 1;
    for (int k = 0; k < nd; k++) n *= chunk[k] ? (dims[k] + chunk[k] - 1) / chunk[k] : 0;
    return n; /* no overflow: at most the element count, already checked */
}

/* Storage never written reads as fill values: numbers that are not in the file (and, for a
 * huge declared size in a tiny file, unbounded time and memory). Every element must be stored:
 * without filters the allocated bytes cover the declared ones; a chunked dataset (filtered or
 * not: compressed bytes say nothing about coverage) has every chunk allocated. Compact storage
 * is always whole. Reads metadata only (the chunk index at most). 1 when whole, 0 when not
 * (*have and *need: chunks allocated and needed, 0 for other layouts), -1 when unreadable. */
static int storage_whole(hid_t dset, int nd, const hsize_t *dims, hsize_t raw, hsize_t *have, hsize_t *need)
{
    *have = *need = 0;
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return -1;
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    const int nfilters = H5Pget_nfilters(dcpl);
    hsize_t chunk[TD_MAX_MODES];
    const int chunked = layout == H5D_CHUNKED && nd > 0 && nd <= TD_MAX_MODES && H5Pget_chunk(dcpl, nd, chunk) == nd;
    H5Pclose(dcpl);
    if (layout < 0 || nfilters < 0 || (layout == H5D_CHUNKED && !chunked)) return -1;
    if (layout == H5D_COMPACT || raw == 0) return 1;
    if (chunked) {
        *need = chunks_needed(nd, dims, chunk);
        hid_t space = H5Dget_space(dset); /* libhdf5 1.10 refuses H5S_ALL here */
        const herr_t rc = space >= 0 ? H5Dget_num_chunks(dset, space, have) : -1;
        if (space >= 0) H5Sclose(space);
        if (rc < 0) return -1;
    }
    return (nfilters > 0 || H5Dget_storage_size(dset) >= raw) && *have >= *need;
}

static td_status check_extent(hid_t dset, const char *file_name, const char *dset_name, int nd, const hsize_t *dims,
                              hid_t type, size_t *count_out, td_error *err)
{
    size_t count = 1;
    td_status st = td__h5_check_storage(dset, file_name, dset_name, err);
    if (st != TD_OK) return st;
    for (int k = 0; k < nd; k++) {
        size_t e = (size_t)dims[k];
        if ((hsize_t)e != dims[k] || !td__mul_ok(count, e, &count) || count > SIZE_MAX / sizeof(double))
            return td__error_set(err, TD_EOVERFLOW, file_name, dset_name, "dimensions overflow the address space");
    }
    const hsize_t raw = (hsize_t)count * H5Tget_size(type);
    hsize_t fsize = 0;
    hid_t fid = H5Iget_file_id(dset);
    if (fid >= 0) { H5Fget_filesize(fid, &fsize); H5Fclose(fid); }
    hsize_t have, need;
    const int whole = storage_whole(dset, nd, dims, raw, &have, &need);
    if (whole < 0) return td__error_set(err, TD_EFORMAT, file_name, dset_name, "unreadable storage layout or chunk index");
    if (!whole) {
        char chunks[96] = "";
        if (need) snprintf(chunks, sizeof chunks, ", %llu of its %llu chunks", (unsigned long long)have, (unsigned long long)need);
        return td__error_set(err, TD_EFORMAT, file_name, dset_name,
                             "declares %llu bytes but the file stores %llu%s (never written, truncated or malformed); refused",
                             (unsigned long long)raw, (unsigned long long)H5Dget_storage_size(dset), chunks);
    }
    if (raw > ABSURD_BYTES && raw / ABSURD_RATIO > fsize)
        return td__error_set(err, TD_EFORMAT, file_name, dset_name, "declares %llu bytes, absurd for a %llu-byte file",
                             (unsigned long long)raw, (unsigned long long)fsize);
    if (count_out) *count_out = count;
    return TD_OK;
}

td_status td__h5_check_extent(hid_t dset, const char *file_name, const char *dset_name, int nd, const hsize_t *dims,
                              hid_t type, size_t *count_out, td_error *err)
{
    return check_extent(dset, file_name, dset_name, nd, dims, type, count_out, err);
}

td_status td__h5_read_dataset(hid_t dset, const char *file_name, const char *dset_name,
                              td_tensor *out, td_dtype *dtype, td_error *err)
{
    memset(out, 0, sizeof *out);
    hid_t type = H5Dget_type(dset), space = H5I_INVALID_HID;
    td_status st = TD_OK;
    char desc[64];
    if (type < 0) { st = td__error_set(err, TD_EFORMAT, file_name, dset_name, "unreadable datatype"); goto done; }
    td_dtype dt = td__h5_dtype_of(type, desc, sizeof desc);
    if (dtype) *dtype = dt;
    if (dt == TD_DTYPE_OTHER) {
        st = td__error_set(err, TD_EDTYPE, file_name, dset_name, "is %s, expected a float16, bfloat16, float32 or float64 dataset", desc);
        goto done;
    }
    space = H5Dget_space(dset);
    if (space < 0) { st = td__error_set(err, TD_EFORMAT, file_name, dset_name, "unreadable dataspace"); goto done; }
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    if (sc == H5S_NULL) { st = td__error_set(err, TD_EINVAL, file_name, dset_name, "is empty (null dataspace)"); goto done; }
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd < 0) { st = td__error_set(err, TD_EFORMAT, file_name, dset_name, "unreadable dataspace"); goto done; }
    if (nd > TD_MAX_MODES) { st = td__error_set(err, TD_ERANGE, file_name, dset_name, "has %d dimensions; at most %d are supported", nd, TD_MAX_MODES); goto done; }
    hsize_t dims[TD_MAX_MODES];
    size_t shape[TD_MAX_MODES];
    if (H5Sget_simple_extent_dims(space, dims, NULL) < 0) { st = td__error_set(err, TD_EFORMAT, file_name, dset_name, "unreadable dimensions"); goto done; }
    size_t count = 1;
    if ((st = td__h5_check_extent(dset, file_name, dset_name, nd, dims, type, &count, err)) != TD_OK) goto done;
    for (int k = 0; k < nd; k++) shape[k] = (size_t)dims[k];
    if (count == 0) { st = td__error_set(err, TD_EINVAL, file_name, dset_name, "is empty (a dimension is 0)"); goto done; }
    if (count > MAX_READ_ELEMENTS) {
        st = td__error_set(err, TD_ELIMIT, file_name, dset_name, "declares %zu elements, more than the %zu read at most",
                           count, (size_t)MAX_READ_ELEMENTS);
        goto done;
    }
    if ((st = td_tensor_alloc(out, nd, shape)) != TD_OK) {
        td__error_set(err, st, file_name, dset_name, "cannot allocate %zu elements", count);
        goto done;
    }
    if (td__h5_read_floats(dset, dt, out->data, count) != TD_OK) {
        td_tensor_free(out);
        st = td__error_set(err, TD_EFORMAT, file_name, dset_name, "data cannot be read (truncated or malformed file)");
        goto done;
    }
done:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return st;
}

td_status td__h5_make_parents(hid_t file, const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return TD_EINVAL;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/') continue;
        buf[i] = '\0';
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0) return TD_EIO;
            H5Gclose(g);
        }
        buf[i] = '/';
    }
    return TD_OK;
}
