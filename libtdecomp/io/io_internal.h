/* HDF5 helpers shared by the io layer (not installed). */
#ifndef TDECOMP_IO_INTERNAL_H
#define TDECOMP_IO_INTERNAL_H

#include <hdf5.h>
#include "core/internal.h"
#include "tdecomp/io.h"

/* HDF5 prints its error stack by default; every io entry point silences it and restores the
 * caller's handler on the way out. */
typedef struct td__h5quiet {
    H5E_auto2_t func;
    void *data;
} td__h5quiet;
void td__h5_quiet_begin(td__h5quiet *q);
void td__h5_quiet_end(const td__h5quiet *q);
/* H5Fclose with the error stack silenced (cleanup paths: nothing useful to report). */
void td__h5_close_quiet(hid_t file);

/* Opens path read-only after checking it exists, is a regular file and is HDF5. */
td_status td__h5_open_ro(const char *path, hid_t *file, td_error *err);

/* TD_OK for a hard link; otherwise TD_EFORMAT naming the link and its kind (soft, external,
 * user-defined): links are never followed. */
td_status td__h5_link_refusal(H5L_type_t type, const char *file_name, const char *link_path, td_error *err);

/* TD_OK when every component of path exists as a hard link (intermediates to groups), without
 * following any link; TD_ENOTFOUND when one is missing, TD_EFORMAT (td__h5_link_refusal) when
 * one is a link. Call before anything that resolves the path. */
td_status td__h5_check_path(hid_t loc, const char *file_name, const char *path, td_error *err);

/* Refuses (TD_EFORMAT) a dataset whose data is not in the file: a virtual dataset or external
 * raw storage. Reads only the creation properties, never data. */
td_status td__h5_check_storage(hid_t dset, const char *file_name, const char *dset_name, td_error *err);

/* 1 when every component of the link path exists (no error stack noise), else 0. */
int td__h5_path_exists(hid_t loc, const char *path);

/* Maps a stored datatype to td_dtype, floats by their bit layout; writes a readable description
 * ("int32", "string", "custom 2-byte float (...)", ...). */
td_dtype td__h5_dtype_of(hid_t type, char *desc, size_t desc_len);

/* 1 for an H5T_FLOAT type of a layout other than IEEE half, bfloat16, float32 and float64. */
int td__h5_is_custom_float(hid_t type);

/* Reads all n elements of a float dataset of type dt into out; 2-byte floats as their bits,
 * widened exactly here. TD_EFORMAT when libhdf5 cannot read the data. */
td_status td__h5_read_floats(hid_t dset, td_dtype dt, double *out, size_t n);

/* Writes n doubles into a dataset created with td__h5_float_type(dt): rounded once to nearest
 * even here (half and bfloat16 with subnormals, overflow to inf), then written as the file's
 * bits. TD_EIO on a write failure, TD_ENOMEM. */
td_status td__h5_write_floats(hid_t dset, td_dtype dt, const double *data, size_t n);

/* The HDF5 memory/file type for a float td_dtype (little-endian). Caller closes it. */
hid_t td__h5_float_type(td_dtype dtype);

/* Reads an open dataset (already known to be float) into a new tensor, with size checks against
 * the file size. file_name/dset_name only for messages. */
td_status td__h5_read_dataset(hid_t dset, const char *file_name, const char *dset_name,
                              td_tensor *out, td_dtype *dtype, td_error *err);

/* Element count of a dataset's dims, refusing overflowing products (TD_EOVERFLOW) and declared
 * sizes absurd next to the file or larger than its contiguous storage (TD_EFORMAT). */
td_status td__h5_check_extent(hid_t dset, const char *file_name, const char *dset_name, int nd, const hsize_t *dims,
                              hid_t type, size_t *count_out, td_error *err);

/* The HDF5 handle of an HDF5 output (H5I_INVALID_HID for other kinds). */
hid_t td__outfile_h5(const td_outfile *o);

/* Creates the groups of an absolute path's parent ("/a/b" for "/a/b/c"). */
td_status td__h5_make_parents(hid_t file, const char *path);

#endif
