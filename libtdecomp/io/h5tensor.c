/* Plain tensors from any HDF5 dataset. */
#include <string.h>
#include "io/io_internal.h"

const char *td_dtype_name(td_dtype dtype)
{
    switch (dtype) {
    case TD_DTYPE_F16: return "float16";
    case TD_DTYPE_F32: return "float32";
    case TD_DTYPE_F64: return "float64";
    case TD_DTYPE_BF16: return "bfloat16";
    default: return "other";
    }
}

td_status td_h5_read_tensor(const char *path, const char *dataset, td_tensor *out, td_dtype *dtype,
                            td_error *err)
{
    if (!out) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!dataset || !*dataset) return td__error_set(err, TD_EINVAL, path, NULL, "no dataset given");
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    td_status st = td__h5_open_ro(path, &file, err);
    if (st != TD_OK) goto done;
    if ((st = td__h5_check_path(file, path, dataset, err)) != TD_OK) goto done;
    if (!td__h5_path_exists(file, dataset)) {
        st = td__error_set(err, TD_ENOTFOUND, path, dataset, "no such dataset");
        goto done;
    }
    H5O_info_t info;
    if (H5Oget_info_by_name(file, dataset, &info, H5P_DEFAULT) < 0) {
        st = td__error_set(err, TD_EFORMAT, path, dataset, "cannot be read (malformed object header)");
        goto done;
    }
    if (info.type != H5O_TYPE_DATASET) {
        st = td__error_set(err, TD_ENOTFOUND, path, dataset, "is a %s, not a dataset",
                           info.type == H5O_TYPE_GROUP ? "group" : "named datatype");
        goto done;
    }
    dset = H5Dopen2(file, dataset, H5P_DEFAULT);
    if (dset < 0) {
        st = td__error_set(err, TD_EFORMAT, path, dataset, "cannot be opened (malformed, or an external link)");
        goto done;
    }
    st = td__h5_read_dataset(dset, path, dataset, out, dtype, err);
done:
    if (dset >= 0) H5Dclose(dset);
    if (file >= 0) H5Fclose(file);
    td__h5_quiet_end(&q);
    return st;
}

td_status td_h5_dataset_shape(const char *path, const char *dataset, int *ndim, size_t *shape, td_dtype *dtype,
                              td_error *err)
{
    if (!ndim || !shape) return TD_EINVAL;
    if (!dataset || !*dataset) return td__error_set(err, TD_EINVAL, path, NULL, "no dataset given");
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    td_status st = td__h5_open_ro(path, &file, err);
    if (st != TD_OK) goto done;
    if ((st = td__h5_check_path(file, path, dataset, err)) != TD_OK) goto done;
    if (!td__h5_path_exists(file, dataset)) { st = td__error_set(err, TD_ENOTFOUND, path, dataset, "no such dataset"); goto done; }
    dset = H5Dopen2(file, dataset, H5P_DEFAULT);
    if (dset < 0) { st = td__error_set(err, TD_ENOTFOUND, path, dataset, "is not a dataset (or cannot be opened)"); goto done; }
    type = H5Dget_type(dset);
    space = H5Dget_space(dset);
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[TD_MAX_MODES];
    if (type < 0 || nd < 0 || nd > TD_MAX_MODES || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        st = td__error_set(err, nd > TD_MAX_MODES ? TD_ERANGE : TD_EFORMAT, path, dataset, "unreadable or unsupported dataspace");
        goto done;
    }
    if ((st = td__h5_check_extent(dset, path, dataset, nd, dims, type, NULL, err)) != TD_OK) goto done;
    char desc[64];
    td_dtype dt = td__h5_dtype_of(type, desc, sizeof desc);
    if (dtype) *dtype = dt;
    *ndim = nd;
    for (int k = 0; k < nd; k++) shape[k] = (size_t)dims[k];
done:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (dset >= 0) H5Dclose(dset);
    if (file >= 0) H5Fclose(file);
    td__h5_quiet_end(&q);
    return st;
}
