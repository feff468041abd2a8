/* tdecomp/io.h - HDF5 in and out: plain tensors, weight files (Keras 2, Keras 3, torch-style),
 * atomic output files. No HDF5 header is included here; HDF5's own error printing is saved,
 * silenced and restored around every call. Failures fill the caller's td_error record with
 * "FILE: DATASET: problem". */
#ifndef TDECOMP_IO_H
#define TDECOMP_IO_H

#include "core.h"
#include "layer.h"

TD_BEGIN_DECLS

/* ==== Section A: plain tensors and output files ==== */

/* Element types of file datasets. Computation is always in double; outputs are written in the
 * input's own float type unless a function says otherwise. */
typedef enum td_dtype {
    TD_DTYPE_F16 = 0,
    TD_DTYPE_F32 = 1,
    TD_DTYPE_F64 = 2,
    TD_DTYPE_OTHER = 3   /* integers, strings, compounds, ...: never read as a tensor */
} td_dtype;

/* "float16", "float32", "float64" or "other". */
TD_API const char *td_dtype_name(td_dtype dtype);

/* Reads the float16/32/64 dataset `dataset` (absolute or relative to the root) of the HDF5 file
 * `path` into a new owning tensor `out` (double, C order, any rank 0..TD_MAX_MODES), and its
 * stored type into *dtype (may be NULL). The file is opened read-only.
 * Failures fill err with "PATH: DATASET: problem" and return: TD_ENOTFOUND (no file, no such
 * dataset, or a group), TD_EFORMAT (not an HDF5 file, unreadable or truncated data, a declared
 * size the file cannot hold), TD_EDTYPE (not a float dataset: names the stored type),
 * TD_EINVAL (empty dataset), TD_ERANGE (too many modes), TD_EOVERFLOW, TD_ENOMEM.
 * Values are not checked for NaN/Inf here (td_tensor_check_finite). */
TD_API TD_WUR td_status td_h5_read_tensor(const char *path, const char *dataset, td_tensor *out,
                                          td_dtype *dtype, td_error *err);

/* An output file written atomically: created as a temporary file in the final path's folder,
 * named ".<name>.tdtmp.<pid>.XXXXXX", and renamed into place by td_outfile_commit, so the final
 * path appears complete or not at all. Stack-allocatable; no global state. */
typedef struct td_outfile {
    char final_path[4096];
    char temp_path[4096];
    int64_t file_id;      /* HDF5 file handle, -1 when closed */
    int active;           /* 1 between create and commit/abort */
} td_outfile;

/* Refusals, checked before any work: the final path's folder missing, not a folder or not
 * writable; the final path the same file as input_path (same device and inode, so also through
 * hard and symbolic links; input_path may be NULL); the final path existing, unless force (a
 * directory is refused even with force). TD_EEXIST, TD_ENOTFOUND, TD_EINVAL or TD_EIO, with err. */
TD_API TD_WUR td_status td_outfile_check(const char *final_path, const char *input_path, int force,
                                         td_error *err);

/* td_outfile_check, then creates the temporary HDF5 file. Also removes stale temporary files of
 * the same name pattern left in that folder by processes that no longer exist. */
TD_API TD_WUR td_status td_outfile_create(td_outfile *o, const char *final_path,
                                          const char *input_path, int force, td_error *err);

/* Writes t as dataset `path` ("/a/b/c": missing groups are created) in the given float type
 * (values converted from double by HDF5). Shape = t's shape (a 0-d tensor gives a scalar). */
TD_API TD_WUR td_status td_outfile_write(td_outfile *o, const char *path, const td_tensor *t,
                                         td_dtype dtype, td_error *err);

/* Sets a variable-length UTF-8 string attribute on the object at obj_path ("/" for the root). */
TD_API TD_WUR td_status td_outfile_attr_string(td_outfile *o, const char *obj_path, const char *name,
                                               const char *value, td_error *err);

/* The HDF5 file handle (an hid_t) of the temporary file, for io functions that copy objects. */
TD_API int64_t td_outfile_handle(const td_outfile *o);

/* Closes, flushes to disk and renames the temporary file onto the final path. On failure the
 * temporary file is removed. */
TD_API TD_WUR td_status td_outfile_commit(td_outfile *o, td_error *err);

/* Closes and removes the temporary file; safe to call in any state (also after commit). */
TD_API void td_outfile_abort(td_outfile *o);

/* ==== End of section A ==== */

/* ==== Section B: weight files ==== */

/* ==== End of section B ==== */

TD_END_DECLS

#endif
