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
    TD_DTYPE_OTHER = 3,  /* integers, strings, compounds, ...: never read as a tensor */
    TD_DTYPE_BF16 = 4    /* bfloat16 (1 sign, 8 exponent, 7 mantissa bits); rounded to nearest even */
} td_dtype;

/* "float16", "float32", "float64", "bfloat16" or "other". */
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

/* The shape and stored type of a dataset without reading its values (for memory checks made
 * before any allocation). Statuses as td_h5_read_tensor. */
TD_API TD_WUR td_status td_h5_dataset_shape(const char *path, const char *dataset, int *ndim, size_t *shape,
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

/* A scalar numeric attribute: int64 when integer (value must be whole), else float64. */
TD_API TD_WUR td_status td_outfile_attr_number(td_outfile *o, const char *obj_path, const char *name,
                                               double value, int integer, td_error *err);

/* The HDF5 file handle (an hid_t) of the temporary file, for io functions that copy objects. */
TD_API int64_t td_outfile_handle(const td_outfile *o);

/* Closes, flushes to disk and renames the temporary file onto the final path. On failure the
 * temporary file is removed. */
TD_API TD_WUR td_status td_outfile_commit(td_outfile *o, td_error *err);

/* Closes and removes the temporary file; safe to call in any state (also after commit). */
TD_API void td_outfile_abort(td_outfile *o);

/* ==== End of section A ==== */

/* ==== Section B: weight files ==== */

typedef enum td_layout {
    TD_LAYOUT_AUTO = 0,   /* detect: keras2 (layer_names attribute at / or /model_weights),
                             keras3 (/layers/<name>/vars/<i>), else torch */
    TD_LAYOUT_TORCH,      /* one dataset per state-dict key (dots in names, or nested groups) */
    TD_LAYOUT_KERAS2,     /* legacy .h5 from save_weights or model.save */
    TD_LAYOUT_KERAS3,     /* .weights.h5 */
    TD_LAYOUT_SAFETENSORS /* a .safetensors file (torch key naming), detected by content */
} td_layout;

/* "auto", "torch", "keras2", "keras3". */
TD_API const char *td_layout_name(td_layout l);
/* Parses a layout name; TD_EINVAL for anything else. */
TD_API TD_WUR td_status td_layout_parse(const char *s, td_layout *l);

/* One dataset of the file (every dataset is listed, whatever its type). */
typedef struct td_model_tensor {
    char path[512];            /* HDF5 path, "/features.0.weight" or "/model_weights/c/c/kernel:0" */
    char name[512];            /* display name: the torch key (groups joined by '.'), or the path */
    int ndim;                  /* 0 for scalars */
    size_t shape[TD_MAX_MODES];
    td_dtype dtype;            /* TD_DTYPE_OTHER for integers, strings, ... */
    char dtype_name[32];       /* "float32", "int64", ... */
} td_model_tensor;

typedef enum td_layer_class {
    TD_CLASS_CONV2D = 0,       /* ordinary conv, groups 1 */
    TD_CLASS_DENSE,
    TD_CLASS_DEPTHWISE,        /* known depthwise, or a (C,1,kh,kw) torch kernel without a spec */
    TD_CLASS_GROUPED           /* 1 < groups < Cin */
} td_layer_class;

/* A decomposable-looking layer: a conv or dense kernel with an optional bias. Shapes in desc are
 * OIHW / (out, in) whatever the file stores. */
typedef struct td_model_layer {
    char name[256];            /* Keras layer name or torch module path (key without .weight) */
    td_layer_class cls;
    td_layer_desc desc;
    int kernel;                /* index into tensors */
    int bias;                  /* index into tensors, or -1 */
    int maybe_depthwise;       /* torch (C,1,kh,kw) kernel whose groups nothing states */
    td_admission admits;       /* methods this layer admits in this file and why not the others:
                                  td_layer_admission narrowed by the format (Keras has no CP chain
                                  for stride > 1; Keras 3 weights-only files none at all) */
    int group_pos;             /* keras2: position in layer_names; keras3: -1 */
    char group[512];           /* keras: the layer's group path ("/model_weights/conv2d",
                                  "/layers/conv2d_1"); torch: "" */
} td_model_layer;

/* A weight file as read: its tensors and layers. Free with td_model_free. */
typedef struct td_model {
    char file[1024];
    td_layout layout;
    td_model_tensor *tensors;
    size_t ntensors;
    td_model_layer *layers;
    size_t nlayers;
    char weights_root[256];    /* keras2: "/" or "/model_weights"; keras3: "/layers" */
    int keras_vlen_names;      /* keras2: layer_names stored as variable-length strings */
    int keras_colon_names;     /* keras2: weight names in the "kernel:0" style */
    char (*keras_layer_names)[256]; /* keras2: layer_names in file order */
    size_t keras_nlayer_names;
} td_model;

/* Reads the structure of a weight file (no weight values yet), opened read-only. Refuses soft
 * and external links, non-HDF5 files, malformed Keras attributes, with err naming the file and
 * the dataset. */
TD_API TD_WUR td_status td_model_open(td_model *m, const char *path, td_layout layout, td_error *err);

/* Applies a layer spec (JSON object keyed by layer name; values with optional "stride",
 * "padding" ([t,b,l,r], "same" or "valid"), "dilation", "groups", "input_size"). Unknown
 * layer names and malformed values are TD_EFORMAT naming the spec file and the key. */
TD_API TD_WUR td_status td_model_apply_spec(td_model *m, const char *spec_path, td_error *err);

/* Reads a layer's kernel as an OIHW (or (out, in)) double tensor and its bias (empty when the
 * layer has none). NaN/Inf values are TD_ENOTFINITE naming the dataset. */
TD_API TD_WUR td_status td_model_read_layer(const td_model *m, size_t layer, td_tensor *kernel,
                                            td_tensor *bias, td_error *err);

/* Number of elements of every dataset, the whole file's "parameters". */
TD_API uint64_t td_model_total_params(const td_model *m);

TD_API void td_model_free(td_model *m);

/* One layer replaced by a chain, for td_model_write. */
typedef struct td_model_rewrite {
    size_t layer;              /* index into m->layers */
    td_chain *chain;           /* rounded to the file's dtype in place by td_model_write */
} td_model_rewrite;

/* Copies the input file into o (dtype, attributes and group structure of everything not
 * rewritten), replacing each rewritten layer by its chain's pieces in the layer's own float
 * dtype: torch keys <name>.<i>.weight / .bias; Keras 2 layers <L>_t2_in/_core/_out,
 * <L>_svd_0/1, <L>_cp_0..3 at the old position in layer_names, HWIO kernels, weight_names in
 * the input's style, /optimizer_weights dropped; Keras 3 the same under /layers with later
 * same-class paths renumbered (CP refused). The chains' kernels are rounded to that dtype in
 * place (so a caller can measure the error of what was written). */
/* Rounds every piece's kernel to dtype and its bias to bias_dtype (through HDF5's conversion,
 * float16 included), in place: what td_model_write stores. */
TD_API TD_WUR td_status td_chain_round(td_chain *c, td_dtype dtype, td_dtype bias_dtype);

TD_API TD_WUR td_status td_model_write(const td_model *m, td_outfile *o, td_model_rewrite *rw,
                                       size_t nrw, td_error *err);

/* Rounds t to dtype (float16/32/64) through HDF5's conversion, in place. */
TD_API TD_WUR td_status td_tensor_round(td_tensor *t, td_dtype dtype);

/* One layer given a LoRA adapter, for td_model_write_adapters. */
typedef struct td_model_adapter {
    size_t layer;              /* index into m->layers */
    td_adapter *adapter;       /* rounded to the layer's dtype in place */
} td_model_adapter;

/* Copies the input file into o, replacing each adapted layer's kernel by the adapter's frozen
 * part (same path, shape, dtype and attributes: the file loads as before) and adding the factors
 * in PyTorch's LoRA layout, in the kernel's dtype: torch <name>.lora_A and <name>.lora_B beside
 * <name>.weight; Keras 2 and 3 (whose kernel keeps its HWIO layout) /tdecomp_adapters/<name>.lora_A
 * and .lora_B. */
TD_API TD_WUR td_status td_model_write_adapters(const td_model *m, td_outfile *o, td_model_adapter *ad,
                                                size_t n, td_error *err);

/* ==== End of section B ==== */

TD_END_DECLS

#endif
