/* Tensors between HDF5 and safetensors (not installed). */
#ifndef TDECOMP_IO_CONVERT_INTERNAL_H
#define TDECOMP_IO_CONVERT_INTERNAL_H

#include "io/io_internal.h"
#include "io/st_internal.h"

/* The safetensors type of an HDF5 type (floats, integers, h5py's bool enum): 1, or 0 when none. */
int td__st_dtype_of_h5(hid_t type, td__st_dtype *dt);
/* The HDF5 little-endian file type of a safetensors type (bool as uint8); caller closes it. */
hid_t td__h5_type_of_st(td__st_dtype dt);
/* A dataset's elements as little-endian bytes of type dt (malloc'ed into *buf, *n bytes). */
td_status td__h5_read_bytes(hid_t file, const char *fname, const char *path, td__st_dtype dt, void **buf, size_t *n,
                            td_error *err);
/* A dataset of type dt from little-endian bytes, missing groups created. */
td_status td__h5_write_bytes(hid_t file, const char *fname, const char *path, td__st_dtype dt, int ndim, const size_t *shape,
                             const void *buf, td_error *err);

#endif
