/* tdecomp/io.h - HDF5 in and out: plain tensors, weight files (Keras 2, Keras 3, torch-style),
 * atomic output files. No HDF5 header is included here; HDF5's own error printing is saved,
 * silenced and restored around every call that uses HDF5. Failures fill the caller's td_error
 * record with "FILE: DATASET: problem".
 * Thread-safety: the functions below call libhdf5, or save, silence and restore its error printer
 * (process-wide in a libhdf5 built without thread-safety, the calling thread's in a thread-safe
 * build such as Debian's 1.10.8). The library relies on neither: call them from one thread at a
 * time, not concurrently with any other HDF5 use in the process. They are td_h5_read_tensor,
 * td_h5_dataset_shape, td_model_open and the reads of an open model (td_model_read_layer,
 * _read_tensor, _read_chain) whatever its format; td_model_records and td_model_free of an HDF5
 * model; td_outfile_create, _write, _attr_string, _attr_number, _commit, _commit_all and _abort
 * of an HDF5 output; the model writers (td_model_writer_open, _put, _attr, _finish,
 * td_model_write, td_model_write_adapters) when the input or the output is HDF5;
 * td_calibration_open, _read and _free. The other functions keep no global state. A td_model,
 * td_outfile, td_model_writer or td_calibration is used by one thread at a time. */
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

/* Reads the float dataset `dataset` (absolute or relative to the root) of the HDF5 file `path`
 * into a new owning tensor `out` (double, C order, any rank 0..TD_MAX_MODES), and its stored type
 * into *dtype (may be NULL). Floats are recognised by bit layout: IEEE half, bfloat16, float32,
 * float64 (any other layout is TD_EDTYPE, named). The file is opened read-only.
 * Failures fill err with "PATH: DATASET: problem" and return: TD_ENOTFOUND (no file, no such
 * dataset, or a group), TD_EFORMAT (not an HDF5 file, unreadable or truncated data, a declared
 * size the file does not store (elements never written), a soft, external or user-defined link
 * anywhere on the path, external raw storage or a virtual dataset: all refused before any data
 * is read), TD_EDTYPE (not a float dataset: names the stored type), TD_EINVAL (empty dataset),
 * TD_ERANGE (too many modes), TD_ELIMIT (more than 2^32 elements), TD_EOVERFLOW, TD_ENOMEM.
 * Values are not checked for NaN/Inf here (td_tensor_check_finite).
 * Cost: reads the dataset's metadata (the links on its path, its storage layout, at most its
 * chunk index), then its values once into out: 8 bytes per element, half and bfloat16 widened
 * in place (no buffer of the library's own besides out; libhdf5 may use its conversion buffer). */
TD_API TD_WUR td_status td_h5_read_tensor(const char *path, const char *dataset, td_tensor *out,
                                          td_dtype *dtype, td_error *err);

/* The shape and stored type of a dataset without reading its values (for memory checks made
 * before any allocation). Statuses as td_h5_read_tensor. Reads only metadata (the links on the
 * path, the dataset's header, at most its chunk index); no allocation of the library's own. */
TD_API TD_WUR td_status td_h5_dataset_shape(const char *path, const char *dataset, int *ndim, size_t *shape,
                                            td_dtype *dtype, td_error *err);

/* --- outputs ----------------------------------------------------------------------------
 * Every file or folder the library and the tool create goes through td_outfile: a temporary
 * beside the final path, created exclusively (O_EXCL | O_NOFOLLOW, a random name
 * ".<name>.tdtmp.<pid>.<random>", the name part shortened when the whole would pass NAME_MAX),
 * with the permissions the umask allows, written, flushed to disk (fsync), then renamed into
 * place, so the final path appears complete or not at all.
 * Protected paths (the command's inputs: weights, layer spec, statistics) are compared by
 * identity (device and inode), never by spelling: an output that is one of them is refused, and
 * a folder replaced with force must not contain one.
 * Thread-safety: an outfile is used by one thread at a time; distinct outfiles are independent.
 * HDF5 calls are serialised by the caller (the library does not rely on a thread-safe libhdf5);
 * the HDF5 error printer (process-wide in a libhdf5 built without thread-safety) is saved and
 * restored around every io call that touches HDF5 (the header's preamble lists them), so those
 * must not run concurrently with other HDF5 users in the process. */
typedef enum td_output_kind {
    TD_OUTPUT_HDF5 = 0,     /* an HDF5 file (td_outfile_write, td_outfile_attr_*) */
    TD_OUTPUT_BYTES = 1,    /* any other file: td_outfile_write_bytes or td_outfile_fd */
    TD_OUTPUT_FOLDER = 2    /* a folder of files: td_outfile_folder_file */
} td_output_kind;

typedef struct td_outfile td_outfile;   /* opaque */

/* Refusals, made before any work: the path empty, too long, ending in '/', or naming an existing
 * device, FIFO, socket or (for files) folder, or a symlink loop (TD_EPATH: a usage error); its
 * folder missing, not a folder or not writable (TD_ENOTFOUND, TD_EINVAL, TD_EIO); the path one
 * of the protect[0 .. nprotect-1] paths (TD_EEXIST; entries may be NULL); the path existing,
 * unless force (TD_EEXIST); with force, an existing folder that contains a protected path
 * (TD_EEXIST). Only regular files (and, for TD_OUTPUT_FOLDER, folders) are ever replaced.
 * Cost: stat calls on the path, its folder and each protected path (O(nprotect)); with force on an
 * existing folder, a walk of its tree (one lstat per entry, O(entries nprotect) stats; subfolders
 * searched to a depth of 32). Nothing is created; HDF5 is not called. */
TD_API TD_WUR td_status td_outfile_check(const char *final_path, td_output_kind kind, const char *const *protect,
                                         size_t nprotect, int force, td_error *err);

/* td_outfile_check, then creates the temporary (removing stale temporaries of processes that no
 * longer exist in that folder first). *o is NULL on failure. Statuses as td_outfile_check, plus
 * TD_EIO (cannot create), TD_ENOMEM. Cost: td_outfile_check's checks (twice: again right before
 * creating), one scan of the folder's entries for stale temporaries, the exclusive create (and
 * H5Fcreate for HDF5 outputs); memory: the paths. */
TD_API TD_WUR td_status td_outfile_create(td_outfile **o, const char *final_path, td_output_kind kind,
                                          const char *const *protect, size_t nprotect, int force, td_error *err);

/* The temporary's path and identity, for a supervisor that removes it if this process dies.
 * Statuses: TD_EINVAL (NULL arguments). Every outfile has its temporary from td_outfile_create
 * on (a folder output's is the temporary folder). O(1), no allocation; *path is o's. */
TD_API TD_WUR td_status td_outfile_temp(const td_outfile *o, const char **path, uint64_t *dev, uint64_t *ino);

/* The final path. */
TD_API const char *td_outfile_path(const td_outfile *o);

/* HDF5 outputs: writes t as dataset `path` ("/a/b/c": missing groups are created) in the given
 * float type, values rounded to it (bfloat16 and float16 to nearest even); a 0-d tensor gives a
 * scalar. TD_EINVAL (wrong kind, bad path), TD_EIO (write failed: disk full), TD_ENOMEM.
 * Cost: t's values written once; any type but float64 is first encoded into a buffer of
 * size(t) elements of that type (2 or 4 bytes each). */
TD_API TD_WUR td_status td_outfile_write(td_outfile *o, const char *path, const td_tensor *t,
                                         td_dtype dtype, td_error *err);

/* HDF5 outputs: a variable-length UTF-8 string attribute on the object at obj_path ("/" for the
 * root); one of that name is replaced. Statuses as td_outfile_write. Cost: O(1) metadata writes
 * (and value's length). */
TD_API TD_WUR td_status td_outfile_attr_string(td_outfile *o, const char *obj_path, const char *name,
                                               const char *value, td_error *err);

/* HDF5 outputs: a scalar numeric attribute, int64 when integer (value must be whole), else
 * float64; one of that name is replaced. Statuses as td_outfile_write. Cost: O(1) metadata
 * writes. */
TD_API TD_WUR td_status td_outfile_attr_number(td_outfile *o, const char *obj_path, const char *name,
                                               double value, int integer, td_error *err);

/* Byte outputs: appends n bytes (retrying short writes). TD_EIO names the system error.
 * Cost: write(2) calls until n bytes are written; no allocation. */
TD_API TD_WUR td_status td_outfile_write_bytes(td_outfile *o, const void *buf, size_t n, td_error *err);

/* Byte outputs: the temporary's file descriptor (positioned writes are fine); -1 otherwise. O(1). */
TD_API int td_outfile_fd(const td_outfile *o);

/* Folder outputs: creates file `name` (a plain name: no '/', not "." or "..") inside the
 * temporary folder, exclusively, and returns its descriptor in *fd (the caller writes and closes
 * it). TD_EINVAL (a bad name, wrong kind), TD_EEXIST (twice), TD_EIO. Cost: one openat, no
 * allocation. */
TD_API TD_WUR td_status td_outfile_folder_file(td_outfile *o, const char *name, int *fd, td_error *err);

/* Flushes, closes and renames the temporary into place (a folder replaced with force is swapped
 * in atomically and the old one removed). On failure the temporary is removed. Either way o is
 * freed. TD_EIO with err naming the system error (disk full: ENOSPC).
 * Cost: no data is copied: an HDF5 output is closed (libhdf5 writes what it still holds), then
 * one fsync of the file (a folder: of every file in it, then of the folder), one rename and one
 * fsync of the parent folder; a folder replaced with force is exchanged and its old tree removed. */
TD_API TD_WUR td_status td_outfile_commit(td_outfile *o, td_error *err);

/* Both or neither: every output is flushed and closed first; only when all succeeded are they
 * renamed into place, in order (a crash between two renames is the only way to see one without
 * the other). Every outfile is freed. Statuses as td_outfile_commit. Cost: td_outfile_commit's
 * for each. */
TD_API TD_WUR td_status td_outfile_commit_all(td_outfile **o, size_t n, td_error *err);

/* Closes and removes the temporary and frees o; safe on NULL. Cost: a close and an unlink (a
 * folder output: its tree is removed); no fsync. */
TD_API void td_outfile_abort(td_outfile *o);

/* ==== End of section A ==== */

/* ==== Section B: weight files ==== */

typedef enum td_layout {
    TD_LAYOUT_AUTO = 0,   /* detect: safetensors by content; HDF5 keras2 (layer_names attribute
                             at / or /model_weights), keras3 (/layers/<name>/vars/<i>), else torch */
    TD_LAYOUT_TORCH,      /* one dataset per state-dict key (dots in names, or nested groups) */
    TD_LAYOUT_KERAS2,     /* legacy .h5 from save_weights or model.save */
    TD_LAYOUT_KERAS3,     /* .weights.h5 */
    TD_LAYOUT_SAFETENSORS /* a .safetensors file (torch key naming), detected by content */
} td_layout;

/* "auto", "torch", "keras2", "keras3", "safetensors". */
TD_API const char *td_layout_name(td_layout l);
/* Parses a layout name; TD_EINVAL for anything else. O(1), no allocation. */
TD_API TD_WUR td_status td_layout_parse(const char *s, td_layout *l);

/* One tensor of the file (every dataset or safetensors entry is listed, whatever its type). */
typedef struct td_model_tensor {
    const char *path;          /* where it is: the HDF5 path ("/features.0.weight",
                                  "/model_weights/c/c/kernel:0") or the safetensors key */
    const char *name;          /* display name: the torch key (groups joined by '.'), or the path */
    int ndim;                  /* as stored; above TD_MAX_MODES only the first TD_MAX_MODES extents
                                  are in shape and the tensor is never read as a float tensor */
    size_t shape[TD_MAX_MODES];
    uint64_t elements;         /* product of every extent (saturating at UINT64_MAX) */
    td_dtype dtype;            /* TD_DTYPE_OTHER for integers, strings, exotic floats, ... */
    char dtype_name[64];       /* "float32", "int64", "bfloat16", ... */
} td_model_tensor;

typedef enum td_layer_class {
    TD_CLASS_CONV2D = 0,       /* ordinary conv, groups 1 */
    TD_CLASS_DENSE,
    TD_CLASS_DEPTHWISE,        /* known depthwise, or a (C,1,kh,kw) torch kernel without geometry */
    TD_CLASS_GROUPED           /* 1 < groups < Cin */
} td_layer_class;

/* Where a layer's geometry came from, as inspect reports it. */
typedef enum td_geometry_source {
    TD_GEOMETRY_ASSUMED = 0,   /* the contract's defaults: groups 1, stride 1, dilation 1, padding 0;
                                  for the input size: unknown */
    TD_GEOMETRY_FILE,          /* the file's own geometry record (tdecomp_geometry, docs/formats.md) */
    TD_GEOMETRY_CONFIG,        /* a Keras model config stored in the file */
    TD_GEOMETRY_SPEC           /* a --layer-spec file */
} td_geometry_source;

/* "assumed", "file", "model config", "spec". */
TD_API const char *td_geometry_source_name(td_geometry_source s);

/* A conv or dense layer: a kernel with an optional bias. Shapes in desc are OIHW / (out, in)
 * whatever the file stores. Layers are in model order: the geometry record's order, the Keras
 * layer_names order, else key order with numbers compared as numbers ("features.10" after
 * "features.9"). */
typedef struct td_model_layer {
    const char *name;          /* Keras layer name or torch module path (key without .weight) */
    td_layer_class cls;
    td_layer_desc desc;
    int kernel;                /* index into tensors */
    int bias;                  /* index into tensors, or -1 */
    int maybe_depthwise;       /* torch (C,1,kh,kw) kernel whose groups nothing states */
    td_admission admits;       /* methods this layer admits in this file and why not the others:
                                  td_layer_admission narrowed by the format (Keras has no CP chain
                                  for stride > 1; Keras 3 weights-only files none at all) */
    const char *adapter_refusal; /* why td_layer_adapter cannot split this layer in this file (static
                                  text: groups unknown, a non-square kernel), NULL when it can */
    td_geometry_source geometry;   /* of stride, padding, dilation and groups */
    td_geometry_source input_size; /* of desc.in_h / in_w (ASSUMED: unknown) */
    const char *padding_mode;  /* "zeros", or the geometry record's ("reflect", "replicate",
                                  "circular"): the spatial pieces of a rewrite keep it */
    int bn_scale, bn_var;      /* tensors of the BatchNorm the geometry record says follows
                                  (gamma, running_var), or -1 */
    double bn_eps;
} td_model_layer;

/* A weight file as read: its tensors and layers. The file stays open (read-only) until
 * td_model_free: every read goes through that one handle, and each read checks that the tensor
 * still has the shape and type recorded at open. Free with td_model_free. */
typedef struct td_model {
    const char *file;
    td_layout layout;
    td_model_tensor *tensors;
    size_t ntensors;
    td_model_layer *layers;
    size_t nlayers;
    int has_geometry;           /* the file carries a geometry record */
    struct td_model_impl *impl; /* private */
} td_model;

/* Reads the structure of a weight file (no weight values yet): HDF5 (torch, Keras 2, Keras 3) or
 * safetensors (a file, or a sharded set through its model.safetensors.index.json), detected by
 * content unless layout forces one. Refused, with err naming the file and dataset: non-regular
 * files; a PyTorch pickle or torch.save zip (the message names the export command); soft,
 * external and user-defined links, external storage, virtual datasets, datasets that do not
 * store every element they declare and floats of any layout but IEEE half, bfloat16, float32
 * and float64 (HDF5, all before any data is read); malformed Keras attributes,
 * geometry records and safetensors headers. Statuses: TD_ENOTFOUND, TD_EFORMAT, TD_EDTYPE,
 * TD_EOVERFLOW, TD_ENOMEM, TD_EIO. *m is zeroed on failure. Not thread-safe with other HDF5 use.
 * Reads only the file's structure: HDF5, every object's header (each dataset's type, shape,
 * storage layout and chunk index) and the Keras and geometry attributes; safetensors, each file's
 * JSON header (and the index); the first bytes (and a zip's directory) to detect the format. No
 * weight value is read. Memory: O(tensors + layers) records and their names. */
TD_API TD_WUR td_status td_model_open(td_model *m, const char *path, td_layout layout, td_error *err);

/* Applies a layer spec (JSON object keyed by layer name; values with optional "stride",
 * "padding" ([t,b,l,r], "same" or "valid"), "dilation", "groups", "input_size"); it overrides the
 * file's geometry field by field. Unknown layer names and malformed values are TD_EFORMAT naming
 * the spec file and the key; a missing or unreadable file is TD_EFORMAT too (the message says
 * why: "not valid JSON (line -1: unable to open ...)"). Cost: reads the spec file once (parsed
 * whole); O(keys (layers + tensors)) name comparisons, then td_layer_admission for every layer.
 * No HDF5 call. */
TD_API TD_WUR td_status td_model_apply_spec(td_model *m, const char *spec_path, td_error *err);

/* Reads a layer's kernel as an OIHW (or (out, in)) double tensor and its bias (empty when the
 * layer has none). Statuses: TD_ENOTFINITE (NaN/Inf values, naming the dataset), TD_EFORMAT (the
 * file changed since it was opened, or unreadable data), TD_ENOMEM, TD_EINVAL. Reads only that
 * layer's bytes, once, plus one pass over the values for NaN/Inf. Memory: the kernel and bias as
 * doubles (a Keras kernel also its HWIO copy while it is transposed; safetensors reads go
 * through a 1 MiB buffer). */
TD_API TD_WUR td_status td_model_read_layer(const td_model *m, size_t layer, td_tensor *kernel,
                                            td_tensor *bias, td_error *err);

/* Reads tensor i (a float tensor) in its stored shape as double. Statuses as td_model_read_layer,
 * plus TD_EDTYPE for a non-float tensor. Reads only that tensor's bytes, once, plus one pass for
 * NaN/Inf; memory: out, 8 bytes per element (safetensors: and a 1 MiB buffer). */
TD_API TD_WUR td_status td_model_read_tensor(const td_model *m, size_t i, td_tensor *out, td_error *err);

/* Kernel parameters of every layer (what --target-params and the report's totals count), and
 * every element of every tensor (the difference is the report's other_elements). From the
 * structure in memory: O(layers), O(tensors); no file access, no allocation. */
TD_API uint64_t td_model_kernel_params(const td_model *m);
TD_API uint64_t td_model_total_elements(const td_model *m);

/* Closes the file and frees everything; safe on a zeroed model. */
TD_API void td_model_free(td_model *m);

/* --- writing a decomposed file -------------------------------------------------------------
 * Streaming: td_model_writer_open copies everything that stays and lays out the new layers (from
 * chains laid out by td_chain_layout or td_plan), then each layer's chain is put as soon as it is
 * computed, so only the layers being worked on are in memory; td_model_writer_finish writes the
 * self-description (tdecomp_layers, docs/formats.md section 2). Formats: HDF5 in the input's
 * layout (torch: <name>.<i>.weight / .bias; Keras 2: <L>_t2_in/_core/_out, <L>_svd_0/1,
 * <L>_cp_0..3 at the old position in layer_names, HWIO kernels, weight_names in the input's style,
 * /optimizer_weights and model_config dropped; Keras 3 the same under /layers with later
 * same-class paths renumbered), or safetensors (torch naming; the input's __metadata__ kept and
 * extended). Kernels keep the file's float dtype; tensors not rewritten are copied unchanged (byte
 * for byte where both sides are the same format). */
typedef enum td_format {
    TD_FORMAT_AUTO = 0,        /* the input's format */
    TD_FORMAT_HDF5 = 1,
    TD_FORMAT_SAFETENSORS = 2
} td_format;

/* "auto", "h5", "safetensors". */
TD_API const char *td_format_name(td_format f);

/* The output format for path: explicit (not AUTO) wins; else ".safetensors" gives safetensors,
 * ".h5"/".hdf5" HDF5, anything else the input model's format. O(length of path), no file access. */
TD_API td_format td_format_choose(td_format explicit_format, const char *path, const td_model *input);

/* The td_output_kind an output of format f needs. O(1). */
TD_API td_output_kind td_format_output_kind(td_format f);

/* One layer to be replaced: its index and its chain's layout (pieces' descs and kernel shapes;
 * data not needed). The same layout must be put later. */
typedef struct td_model_rewrite {
    size_t layer;
    const td_chain *layout;
} td_model_rewrite;

typedef struct td_model_writer td_model_writer;   /* opaque */

/* Starts the output o (created with td_format_output_kind(fmt)). Statuses: TD_EINVAL (bad
 * arguments), TD_EUNSUPPORTED (a rewrite the layout cannot store: a method the layer does not
 * admit; safetensors output from a Keras file), TD_EFORMAT (an output name that already exists in
 * the input), TD_EIO, TD_ENOMEM. *w is NULL on failure.
 * Cost: HDF5 output: every object that stays is copied now, once (from HDF5 by H5Ocopy, the
 * stored bytes as they are; from safetensors each float tensor read as double and written in its
 * type, one tensor at a time). safetensors output: the entries are only declared here; the first
 * put (or finish) writes the header and copies every tensor that stays, byte for byte from
 * safetensors through a 1 MiB buffer, through double (one tensor at a time) from HDF5. */
TD_API TD_WUR td_status td_model_writer_open(td_model_writer **w, const td_model *m, td_outfile *o, td_format fmt,
                                             const td_model_rewrite *rw, size_t nrw, td_error *err);

/* Writes layer's chain (its pieces as they are: round them first with td_model_round_chain, so
 * what is measured is what is written). The chain must match the layout given at open
 * (TD_ESHAPE). TD_EIO when the write fails. Cost: the chain's values written once in the file's
 * dtypes (Keras: each kernel through an HWIO copy; HDF5: non-float64 values through an encoded
 * copy; safetensors: a 1 MiB buffer), after, for safetensors, the first put's copy (see open). */
TD_API TD_WUR td_status td_model_writer_put(td_model_writer *w, size_t layer, const td_chain *chain, td_error *err);

/* A string attribute of the output: an HDF5 root attribute, or a safetensors __metadata__ entry.
 * Statuses: TD_EINVAL (NULL, after finish), TD_EIO, TD_ENOMEM; safetensors: TD_EINTERNAL when the header room is spent.
 * Cost: HDF5 one attribute; safetensors the entry is added to the header, which is rewritten in
 * place (O(header)) once tensor data has been written. */
TD_API TD_WUR td_status td_model_writer_attr(td_model_writer *w, const char *key, const char *value, td_error *err);

/* What the self-description says of each layer: every layer of the input, rewritten or not. */
typedef struct td_layer_record {
    size_t layer;
    const char *reason;        /* why it was left alone (NULL for rewritten layers) */
    double rel_error;          /* of what was written */
    int has_output_error;
    double output_rel_error;
} td_layer_record;

/* Writes tdecomp_layers (records for the layers; rewritten ones take method, ranks and pieces from
 * their chains) and completes the file. Every rewritten layer must have been put (TD_EINVAL).
 * The outfile is not committed here (the caller commits it, possibly with others).
 * Cost: the records serialised as JSON once (O(records + pieces)); safetensors: the header
 * rewritten, after the copy of what stays if no put came first; Keras 2: layer_names rewritten. */
TD_API TD_WUR td_status td_model_writer_finish(td_model_writer *w, const td_layer_record *rec, size_t n,
                                               td_error *err);

/* Safe on NULL; does not touch the outfile. */
TD_API void td_model_writer_free(td_model_writer *w);

/* The whole write at once, for chains held in memory: td_model_writer_open with rw (whose
 * layouts are the complete chains, written as they are: round them first), a put of each, and
 * finish with records saying each other layer was "not rewritten". Statuses as those calls.
 * Cost: those calls'; memory besides: one record per layer. */
TD_API TD_WUR td_status td_model_write(const td_model *m, td_outfile *o, td_format fmt, const td_model_rewrite *rw,
                                       size_t n, td_error *err);

/* Rounds every piece of a chain for layer to the file's dtypes (the kernel's for kernels, the
 * bias's for the bias), in place: what the writer stores.
 * Statuses: TD_EINVAL (NULL, layer out of range), td_tensor_round's. One pass over every piece's
 * kernel and bias, no allocation, no file access. */
TD_API TD_WUR td_status td_model_round_chain(const td_model *m, size_t layer, td_chain *c);

/* Rounds t to dtype (float16/32/64, bfloat16; to nearest even) in place.
 * Statuses: TD_EINVAL (NULL, a dtype that is not a float type). One pass over t (none for
 * float64), no allocation. */
TD_API TD_WUR td_status td_tensor_round(td_tensor *t, td_dtype dtype);

/* --- reading a decomposed file back ------------------------------------------------------- */

/* One entry of a decomposed file's tdecomp_layers. */
typedef struct td_model_record {
    char *name;                /* the original layer */
    td_method method;          /* TD_METHOD_NONE: left alone */
    int ndim;                  /* the original kernel's shape: OIHW (4) or (out, in) (2) */
    size_t shape[4];
    size_t ranks[2];
    int nranks;
    char *target;              /* left alone: its name in the output */
    td_chain layout;           /* rewritten: method, pieces' descs and kernel shapes (no data) */
    char *piece_layer[TD_CHAIN_MAX];
    double rel_error;
    int has_output_error;
    double output_rel_error;
} td_model_record;

/* Parses the file's tdecomp_layers. TD_ENOTFOUND when it has none (not written by decompose),
 * TD_EFORMAT for a malformed or unknown-version record naming the key. Free with
 * td_model_records_free. Reads only the tdecomp_layers attribute (a safetensors header is already
 * in memory) and parses it once: O(its length); memory: one record per entry, names copied. */
TD_API TD_WUR td_status td_model_records(const td_model *m, td_model_record **out, size_t *n, td_error *err);
TD_API void td_model_records_free(td_model_record *r, size_t n);

/* Reads a rewritten record's pieces from the decomposed model m into out (descs from the record,
 * kernels and biases from the file, shapes checked against the record: TD_EFORMAT naming the
 * piece), and td_model_read_layer's. For td_chain_compose, td_chain_rel_error and
 * td_chain_apply. Reads only the record's pieces, each as td_model_read_layer; memory: the pieces
 * as doubles (out owns them: td_chain_free). */
TD_API TD_WUR td_status td_model_read_chain(const td_model *m, const td_model_record *r, td_chain *out, td_error *err);

/* --- LoRA adapters ------------------------------------------------------------------------ */

/* One layer given a LoRA adapter, for td_model_write_adapters. */
typedef struct td_model_adapter {
    size_t layer;              /* index into m->layers */
    td_adapter *adapter;       /* rounded to the layer's dtype in place */
} td_model_adapter;

/* What an adapters file says of itself, in both formats (HDF5 root attributes, safetensors
 * __metadata__ entries): tdecomp_version always; tdecomp_command when command is not NULL;
 * tdecomp_adapters_rank (HDF5 int64), tdecomp_adapters_alpha (HDF5 float64) and
 * tdecomp_adapters_mode ("principal" or "residual"). */
typedef struct td_adapter_meta {
    size_t rank;
    double alpha;
    td_adapter_mode mode;
    const char *command;       /* the command line that made the file, or NULL */
} td_adapter_meta;

/* Copies the input into o (an HDF5 or byte output as td_format_output_kind(fmt)), replacing each
 * adapted layer's kernel by the adapter's frozen part (same path, shape, dtype and attributes:
 * the file loads as before) and adding the factors in PyTorch's LoRA layout, in the kernel's
 * dtype: torch and safetensors <name>.lora_A and <name>.lora_B beside <name>.weight; Keras 2 and 3
 * (whose kernel keeps its HWIO layout) /tdecomp_adapters/<name>.lora_A and .lora_B. Statuses as
 * td_model_writer_open and _put. Cost: one pass over each adapter's frozen part, A and B (rounded
 * in place), then every other tensor copied once (HDF5: H5Ocopy of every object but the adapted
 * kernels; safetensors: byte for byte through a 1 MiB buffer) and each frozen part, A and B
 * written once (Keras: the frozen part through one HWIO copy). meta (NULL: tdecomp_version alone)
 * is written as td_adapter_meta says. */
TD_API TD_WUR td_status td_model_write_adapters(const td_model *m, td_outfile *o, td_format fmt, td_model_adapter *ad,
                                                size_t n, const td_adapter_meta *meta, td_error *err);

/* --- calibration statistics (docs/formats.md section 3) ----------------------------------- */

typedef struct td_calibration td_calibration;   /* opaque: the open statistics file */

/* Opens path read-only (kept open until td_calibration_free) and checks the root attribute
 * tdecomp_calibration_version (1). Statuses: TD_ENOTFOUND, TD_EFORMAT (not HDF5, no or another
 * version), TD_ENOMEM; err names the file and the problem. Not thread-safe on one handle.
 * Reads only the file's root attribute (no statistics); memory: the handle and the path. */
TD_API TD_WUR td_status td_calibration_open(td_calibration **c, const char *path, td_error *err);
TD_API void td_calibration_free(td_calibration *c);

/* One layer's statistics, read and validated (td_layer_stats_check), with its BatchNorm's
 * per-channel scale when the model's geometry names one. */
typedef struct td_layer_calibration {
    td_layer_stats stats;      /* views into the tensors below */
    td_tensor input_cov, output_cov, patch_cov;
    double *out_scale;
} td_layer_calibration;

/* *found = 0 (and TD_OK) when the file has no group for the layer. Statuses: TD_EFORMAT (a shape
 * that does not fit the layer, a missing dataset, NaN, a negative diagonal, count 0, ...: err
 * names the file, the layer and the problem), TD_ENOMEM, td_h5_read_tensor's for a dataset and
 * td_model_read_tensor's for the BatchNorm's tensors. Free with td_layer_calibration_free.
 * Reads only that layer's group (input_cov, and output_cov and patch_cov when present: Cin^2,
 * Cout^2 and (Cin kh kw)^2 doubles; dense in^2, out^2) and the BatchNorm's gamma and running_var
 * from the model; validation O(n^2) per matrix. Memory: those tensors as doubles (out owns them). */
TD_API TD_WUR td_status td_calibration_read(const td_calibration *c, const td_model *m, size_t layer,
                                            td_layer_calibration *out, int *found, td_error *err);
TD_API void td_layer_calibration_free(td_layer_calibration *lc);

/* ==== End of section B ==== */

TD_END_DECLS

#endif
