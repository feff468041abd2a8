/* Tensors between HDF5 and safetensors: the element types both can hold, and raw reads. */
#include <stdlib.h>
#include <string.h>
#include "io/convert_internal.h"

/* Integer and boolean types by size and signedness (floats go through double). */
static const struct { td__st_dtype st; size_t size; int sign; } ints[] = {
    {TD__ST_I8, 1, 1}, {TD__ST_U8, 1, 0}, {TD__ST_I16, 2, 1}, {TD__ST_U16, 2, 0},
    {TD__ST_I32, 4, 1}, {TD__ST_U32, 4, 0}, {TD__ST_I64, 8, 1}, {TD__ST_U64, 8, 0}};

int td__st_dtype_of_h5(hid_t type, td__st_dtype *dt)
{
    char desc[64];
    const td_dtype f = td__h5_dtype_of(type, desc, sizeof desc);
    if (f != TD_DTYPE_OTHER) return td__st_dtype_from_td(f, dt);
    H5T_class_t cls = H5Tget_class(type);
    if (cls == H5T_ENUM) { /* h5py's bool: an enum over int8 */
        hid_t base = H5Tget_super(type);
        const int ok = base >= 0 && H5Tget_size(base) == 1;
        if (base >= 0) H5Tclose(base);
        if (ok && H5Tget_nmembers(type) == 2) { *dt = TD__ST_BOOL; return 1; }
        return 0;
    }
    if (cls != H5T_INTEGER) return 0;
    const size_t size = H5Tget_size(type);
    const int sign = H5Tget_sign(type) != H5T_SGN_NONE;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].size == size && ints[i].sign == sign) { *dt = ints[i].st; return 1; }
    return 0;
}

hid_t td__h5_type_of_st(td__st_dtype dt)
{
    if (td__st_dtype_is_float(dt)) return td__h5_float_type(td__st_dtype_to_td(dt));
    switch (dt) {
    case TD__ST_BOOL: case TD__ST_U8: return H5Tcopy(H5T_STD_U8LE); /* bool as uint8 0/1 */
    case TD__ST_I8: return H5Tcopy(H5T_STD_I8LE);
    case TD__ST_I16: return H5Tcopy(H5T_STD_I16LE);
    case TD__ST_U16: return H5Tcopy(H5T_STD_U16LE);
    case TD__ST_I32: return H5Tcopy(H5T_STD_I32LE);
    case TD__ST_U32: return H5Tcopy(H5T_STD_U32LE);
    case TD__ST_I64: return H5Tcopy(H5T_STD_I64LE);
    case TD__ST_U64: return H5Tcopy(H5T_STD_U64LE);
    default: return H5I_INVALID_HID;
    }
}

td_status td__h5_read_bytes(hid_t file, const char *fname, const char *path, td__st_dtype dt, void **buf, size_t *n,
                            td_error *err)
{
    *buf = NULL;
    *n = 0;
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hid_t mt = td__h5_type_of_st(dt);
    const hssize_t cnt = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    td_status st = d < 0 || cnt < 0 || mt < 0 ? td__error_set(err, TD_EFORMAT, fname, path, "cannot be read") : TD_OK;
    const size_t size = mt >= 0 ? H5Tget_size(mt) : 0;
    if (st == TD_OK && (size_t)cnt > SIZE_MAX / (size ? size : 1)) st = TD_EOVERFLOW;
    const size_t bytes = (size_t)(cnt > 0 ? cnt : 0) * size;
    if (st == TD_OK && !(*buf = malloc(bytes ? bytes : 1))) st = TD_ENOMEM;
    if (st == TD_OK && cnt && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) < 0)
        st = td__error_set(err, TD_EFORMAT, fname, path, "data cannot be read (truncated or malformed file)");
    if (st == TD_OK) *n = (size_t)cnt * size;
    else { free(*buf); *buf = NULL; }
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return st;
}

td_status td__h5_write_bytes(hid_t file, const char *fname, const char *path, td__st_dtype dt, int ndim, const size_t *shape,
                             const void *buf, td_error *err)
{
    hsize_t dims[TD_MAX_MODES];
    for (int k = 0; k < ndim; k++) dims[k] = (hsize_t)shape[k];
    hid_t ft = td__h5_type_of_st(dt), sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR), d = H5I_INVALID_HID;
    td_status st = ft < 0 || sp < 0 ? td__error_set(err, TD_EUNSUPPORTED, fname, path, "has no HDF5 type here") : TD_OK;
    if (st == TD_OK && td__h5_make_parents(file, path) != TD_OK) st = TD_EIO;
    if (st == TD_OK && (d = H5Dcreate2(file, path, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) st = TD_EIO;
    if (st == TD_OK && H5Dwrite(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) st = TD_EIO;
    if (st == TD_EIO) td__error_set(err, st, fname, path, "cannot be written (disk full?)");
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    return st;
}
