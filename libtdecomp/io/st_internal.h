/* safetensors in and out, and sniffing of weight-file formats (internal to the library, td__
 * prefix, not installed). No HDF5 here.
 *
 * Format (huggingface/safetensors): 8 bytes N (u64 little-endian), N bytes of UTF-8 JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [BEGIN, END]}, ...,
 *  "__metadata__": {string: string}}, then the data section: little-endian, C order, offsets
 * relative to its first byte, no gaps, no overlaps, ending exactly at the end of the file.
 *
 * Errors: every fallible function returns td_status and, when given one, fills err with
 * "FILE: TENSOR: problem" (TENSOR left out when none applies).
 * Thread-safety: no global state. An open td__st_file / td__st_index is read-only after open
 * (reads use pread on its descriptor), so several threads may read tensors of one file at once;
 * a writer is used from one thread at a time. */
#ifndef TDECOMP_IO_ST_INTERNAL_H
#define TDECOMP_IO_ST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "core/internal.h"
#include "tdecomp/io.h"

/* ==== Sniffing ==== */

typedef enum td__file_kind {
    TD__FILE_UNKNOWN = 0,
    TD__FILE_HDF5,              /* HDF5 signature at 0 or at a user-block offset 512 * 2^k */
    TD__FILE_SAFETENSORS,       /* plausible N (<= limit, 8 + N <= size) and '{' at byte 8 */
    TD__FILE_SAFETENSORS_INDEX, /* a JSON object with a "weight_map" member */
    TD__FILE_PYTORCH_ZIP,       /* torch.save: a zip with a ".../data.pkl" (or "data.pkl") entry */
    TD__FILE_PYTORCH_PICKLE     /* legacy torch.save: a pickle (0x80, protocol 2..5) */
} td__file_kind;

/* "unknown", "hdf5", "safetensors", "safetensors-index", "pytorch-zip", "pytorch-pickle". */
const char *td__file_kind_name(td__file_kind kind);

/* Classifies path by content, never by its name. Reads the first bytes; for a zip, its first
 * local header and if needed its central directory's names; for a JSON candidate (first
 * non-blank byte '{', at most TD__ST_INDEX_MAX bytes) the whole file. Nothing is validated
 * beyond what classification needs (td__st_open / td__st_index_open do that).
 * TD_OK with *kind set (TD__FILE_UNKNOWN for anything else, including empty files);
 * TD_ENOTFOUND (no such file), TD_EINVAL (not a regular file), TD_EIO, TD_ENOMEM. */
TD_WUR td_status td__sniff(const char *path, td__file_kind *kind, td_error *err);

/* ==== Element types ==== */

typedef enum td__st_dtype {
    TD__ST_BOOL = 0, TD__ST_U8, TD__ST_I8, TD__ST_I16, TD__ST_U16, TD__ST_F16, TD__ST_BF16,
    TD__ST_I32, TD__ST_U32, TD__ST_F32, TD__ST_F64, TD__ST_I64, TD__ST_U64, TD__ST_C64,
    TD__ST_F8_E5M2, TD__ST_F8_E4M3, TD__ST_F8_E8M0,
    TD__ST_F4, TD__ST_F6_E2M3, TD__ST_F6_E3M2, /* sub-byte: passthrough only */
    TD__ST_NDTYPES
} td__st_dtype;

/* The format's name ("F32", "BF16", ...). */
const char *td__st_dtype_name(td__st_dtype dt);
/* Parses a format dtype name (exact, case-sensitive); 1 when known. */
int td__st_dtype_parse(const char *name, td__st_dtype *dt);
/* Bits per element (4, 6, 8, ..., 64). */
unsigned td__st_dtype_bits(td__st_dtype dt);
/* 1 for the types read and written as doubles: F16, BF16, F32, F64. */
int td__st_dtype_is_float(td__st_dtype dt);
/* TD_DTYPE_F16/BF16/F32/F64 for those, TD_DTYPE_OTHER for the rest. */
td_dtype td__st_dtype_to_td(td__st_dtype dt);
/* The safetensors type of a float td_dtype; 0 for TD_DTYPE_OTHER (or anything else). */
int td__st_dtype_from_td(td_dtype dtype, td__st_dtype *dt);

/* ==== Conversions (st_half.c): exact widening, round-to-nearest-even narrowing ==== */

double td__f16_to_double(uint16_t h);
double td__bf16_to_double(uint16_t h);
/* Correctly rounded (one rounding from the double, ties to even, independent of the FPU
 * rounding mode): subnormals kept, too large -> inf, NaN -> a quiet NaN of the same sign.
 * (PyTorch's double -> bfloat16 goes through float, rounding twice; the two can differ only on
 * inputs within 2^-24 relative of a bf16 tie.) */
uint16_t td__double_to_f16(double x);
uint16_t td__double_to_bf16(double x);

/* Rounds n doubles in place to what a file of type dt stores (F64: unchanged; F32: IEEE
 * round-to-nearest-even; F16 and BF16 as above): exactly what td__st_writer_put_double writes,
 * so errors can be measured on what is written. TD_EDTYPE for a non-float dt, TD_EINVAL for
 * data NULL with n > 0. Cost: O(n), no allocation. */
TD_WUR td_status td__st_round(td__st_dtype dt, double *data, size_t n);

/* Element i of little-endian bytes of type dt (a float type) as a double; bytes -> double and
 * back, whatever the host's byte order. */
double td__st_decode(td__st_dtype dt, const unsigned char *p);
void td__st_encode(td__st_dtype dt, double x, unsigned char *p);

/* ==== Reader ==== */

/* The format's limit on N, the header length (the reference reader's MAX_HEADER_SIZE). */
#define TD__ST_HEADER_MAX 100000000u
/* Largest index file read (a JSON text; 1.3 M tensor names take about 80 MB). */
#define TD__ST_INDEX_MAX (256u * 1024u * 1024u)

typedef struct td__st_tensor {
    const char *name;        /* UTF-8, NUL-terminated (the format forbids no byte, but a name
                                with "\u0000" is refused at open); owned by the file */
    td__st_dtype dtype;
    int ndim;                /* any rank >= 0 (td__st_read_double needs <= TD_MAX_MODES) */
    const uint64_t *shape;   /* ndim extents (NULL when ndim == 0); owned by the file */
    uint64_t nelem;          /* product of shape; 1 for rank 0 */
    uint64_t nbytes;         /* END - BEGIN = nelem * bits / 8 */
    uint64_t begin, end;     /* data_offsets, relative to the data section */
} td__st_tensor;

typedef struct td__st_meta {
    const char *key;
    const char *value;       /* both UTF-8, NUL-terminated, owned by the file/index */
} td__st_meta;

typedef struct td__st_file {
    char *path;              /* copy of the path opened, for messages */
    int fd;                  /* read-only descriptor, -1 when closed */
    uint64_t file_size;
    uint64_t header_len;     /* N */
    uint64_t data_start;     /* 8 + N: file offset of the data section */
    size_t ntensors;
    td__st_tensor *tensors;  /* in header order */
    size_t nmeta;
    td__st_meta *meta;       /* __metadata__ pairs in header order */
    /* private */
    const td__st_tensor **by_name_; /* sorted by name, for td__st_find */
    char *strings_;          /* pool of names, keys and values */
    uint64_t *dims_;         /* pool of shapes */
} td__st_file;

/* Opens and validates a safetensors file: everything the reference reader checks, and more:
 * N <= TD__ST_HEADER_MAX and 8 + N <= file size; the header starts with '{', is UTF-8 and one
 * JSON object (trailing blanks allowed) without duplicate keys at any depth; each entry is an
 * object with exactly "dtype" (a known name), "shape" (array of non-negative integers) and
 * "data_offsets" (two non-negative integers); element count and byte size overflow-checked
 * (TD_EOVERFLOW) and equal to END - BEGIN (sub-byte types: a whole number of bytes); sorted by
 * BEGIN the tensors tile the data section from 0 to its end (file size - 8 - N) with no gap or
 * overlap; "__metadata__", when present, an object of string values.
 * Only the header is read (one pread of 8 bytes, one of N bytes); memory O(N).
 * f is overwritten; on failure it is left closed (td__st_close is still safe).
 * TD_ENOTFOUND (no such file), TD_EINVAL (not a regular file, NULL arguments), TD_EFORMAT,
 * TD_EOVERFLOW, TD_ENOMEM, TD_EIO. */
TD_WUR td_status td__st_open(const char *path, td__st_file *f, td_error *err);

/* Releases everything; safe on a zeroed, closed or failed-open file, and on NULL. */
void td__st_close(td__st_file *f);

/* The index (in header order) of tensor `name`; 1 when found, else 0. O(log n). */
int td__st_find(const td__st_file *f, const char *name, size_t *index);

/* The value of __metadata__ key `key`, or NULL. O(nmeta). */
const char *td__st_metadata_get(const td__st_file *f, const char *key);

/* File offset of tensor i's first byte (for td__st_writer_put_raw from f->fd). */
uint64_t td__st_tensor_offset(const td__st_file *f, size_t index);

/* Reads tensor `index` (F16, BF16, F32 or F64) into a new owning double tensor out (C order,
 * the file's shape; rank 0 gives a scalar), reading exactly that tensor's bytes (bounded
 * chunks of pread, no buffer of the whole tensor's raw bytes). Values are not checked for
 * NaN/Inf. out is zeroed on failure.
 * TD_EDTYPE (other dtypes, named), TD_ERANGE (rank > TD_MAX_MODES), TD_EOVERFLOW, TD_ENOMEM,
 * TD_EIO, TD_EFORMAT (the file shrank since open), TD_EINVAL (bad index).
 * Memory: 8 bytes per element plus a 1 MiB chunk. */
TD_WUR td_status td__st_read_double(const td__st_file *f, size_t index, td_tensor *out, td_error *err);

/* The same into caller memory: dst holds tensors[index].nelem doubles (may be NULL when 0). */
TD_WUR td_status td__st_read_doubles(const td__st_file *f, size_t index, double *dst, td_error *err);

/* Copies tensor `index`'s bytes as stored (little-endian) into buf, which holds at least
 * tensors[index].nbytes bytes (may be NULL when that is 0). Any dtype.
 * TD_EIO, TD_EFORMAT (file shrank), TD_EINVAL. */
TD_WUR td_status td__st_read_raw(const td__st_file *f, size_t index, void *buf, td_error *err);

/* ==== Sharded checkpoints (model.safetensors.index.json) ==== */

typedef struct td__st_index_entry {
    const char *name;        /* tensor name, owned by the index */
    size_t shard;            /* index into shards */
    size_t tensor;           /* index into shards[shard].tensors */
} td__st_index_entry;

typedef struct td__st_index {
    char *path;              /* copy of the index path */
    size_t nshards;
    const char **shard_names; /* plain file names as the index gives them, sorted, distinct */
    td__st_file *shards;     /* each opened and validated; shards[i].path = folder + name */
    size_t nentries;
    td__st_index_entry *entries; /* weight_map in file order */
    size_t nmeta;
    td__st_meta *meta;       /* "metadata": string values as they are, other values as compact
                                JSON text ("total_size" -> "123") */
    /* private */
    const td__st_index_entry **by_name_;
    char *strings_;
} td__st_index;

/* Opens an index {"metadata": {...}, "weight_map": {tensor: shard}} and every shard it names.
 * Shard names must be plain file names (not empty, no '/', not "." or "..") and are opened in
 * the index's own folder only (a hostile index cannot point elsewhere; symbolic links in that
 * folder, as in the Hugging Face cache, are followed). Every tensor of the map must be in its
 * shard, and every tensor of every shard listed in the map under that shard.
 * One descriptor stays open per shard. ix is overwritten; on failure it is left closed.
 * Statuses: as td__st_open for the index and each shard (a shard's problem names the shard). */
TD_WUR td_status td__st_index_open(const char *path, td__st_index *ix, td_error *err);

void td__st_index_close(td__st_index *ix);

/* Shard and tensor index of `name`; 1 when found. O(log n). */
int td__st_index_find(const td__st_index *ix, const char *name, size_t *shard, size_t *tensor);

/* The value of "metadata" key `key` (see td__st_index.meta), or NULL. */
const char *td__st_index_metadata_get(const td__st_index *ix, const char *key);

/* ==== Writer ==== */

typedef struct td__st_wentry {
    char *name;
    td__st_dtype dtype;
    int ndim;
    uint64_t *shape;
    uint64_t nelem, nbytes;
    uint64_t begin;          /* set by td__st_writer_begin_data */
    int written;
} td__st_wentry;

typedef struct td__st_writer {
    int fd;                  /* not owned: the caller creates, syncs, closes and renames */
    char *label;             /* file name used in messages */
    size_t n, cap;
    td__st_wentry *entries;  /* in declaration order */
    size_t nmeta, metacap;
    char **meta_kv;          /* key, value, key, value, ... */
    int state;               /* private: 0 declaring, 1 writing data, 2 finished */
    uint64_t data_start;     /* 8 + N once begin_data has run */
    uint64_t data_len;
    size_t reserve_;         /* private: header bytes kept for metadata set later */
    /* private: open-addressing set of entry indices + 1, for duplicate names */
    size_t *hash_;
    size_t hashcap_;
} td__st_writer;

/* Starts a writer on fd (an already created, writable, seekable file; its old content is
 * replaced). label names the file in messages (copied; may be NULL). TD_ENOMEM, TD_EINVAL. */
TD_WUR td_status td__st_writer_init(td__st_writer *w, int fd, const char *label, td_error *err);

/* Declares a tensor; *index (may be NULL) receives its number (declaration order, from 0).
 * name: valid UTF-8, no NUL, not "__metadata__", not declared before; shape extents below
 * 2^63 with an overflow-free byte size (sub-byte types: a whole number of bytes).
 * TD_EINVAL (duplicate or bad name, after begin_data), TD_EOVERFLOW, TD_ENOMEM. */
TD_WUR td_status td__st_writer_add(td__st_writer *w, const char *name, td__st_dtype dtype, int ndim,
                                   const uint64_t *shape, size_t *index, td_error *err);

/* Sets __metadata__ key to value (UTF-8 strings; a key set twice keeps the last value).
 * Before begin_data only. TD_EINVAL, TD_ENOMEM. */
TD_WUR td_status td__st_writer_set_metadata(td__st_writer *w, const char *key, const char *value,
                                            td_error *err);

/* Lays out the data and writes the header: the entries in declaration order in the JSON, the
 * "__metadata__" entry first; the header padded with spaces so that the data starts at a
 * multiple of 8; the data placed by decreasing element size (declaration order among equals:
 * as the reference writer, every tensor then starts at a multiple of its element size), and the
 * file sized to its final length (ftruncate). TD_EINVAL (header over TD__ST_HEADER_MAX, called
 * twice), TD_EIO, TD_ENOMEM. Memory: O(header). */
TD_WUR td_status td__st_writer_begin_data(td__st_writer *w, td_error *err);

/* Writes entry `index` (a float dtype) from nelem doubles in C order, converted as
 * td__st_round does, in bounded chunks at the entry's offset (entries in any order).
 * data may be NULL when nelem is 0. TD_EDTYPE (not a float type), TD_EINVAL (bad index, before
 * begin_data, written twice), TD_EIO, TD_ENOMEM. */
TD_WUR td_status td__st_writer_put_double(td__st_writer *w, size_t index, const double *data, td_error *err);

/* Writes entry `index` (any dtype) as a byte copy of nbytes from src_fd at src_offset (pread /
 * pwrite in 1 MiB chunks). TD_EFORMAT (the source ends early), TD_EIO, TD_EINVAL, TD_ENOMEM. */
TD_WUR td_status td__st_writer_put_raw(td__st_writer *w, size_t index, int src_fd, uint64_t src_offset,
                                       td_error *err);

/* Before begin_data: keeps `bytes` more header room (spaces) for metadata set while the data is
 * written; td__st_writer_rewrite_header then writes the header again in place with the metadata
 * as it is now (TD_EINTERNAL when it no longer fits the room). */
void td__st_writer_reserve(td__st_writer *w, size_t bytes);
TD_WUR td_status td__st_writer_rewrite_header(td__st_writer *w, td_error *err);

/* Writes entry `index` (any dtype) from nbytes of little-endian bytes in memory. */
TD_WUR td_status td__st_writer_put_bytes(td__st_writer *w, size_t index, const void *buf, td_error *err);

/* Checks that every entry was written. TD_EINVAL naming the first one missing. Does not sync or
 * close the descriptor. */
TD_WUR td_status td__st_writer_finish(td__st_writer *w, td_error *err);

/* Releases the writer's memory (not the descriptor). Safe on a zeroed writer and NULL. */
void td__st_writer_free(td__st_writer *w);

/* ==== Shared helpers (st_util.c) ==== */

/* Offset of the first invalid byte of a UTF-8 text (overlong forms, surrogates and code points
 * above U+10FFFF are invalid), or n when it is all valid. */
size_t td__utf8_check(const unsigned char *s, size_t n);

/* pread / pwrite of exactly n bytes at off, retrying short transfers and EINTR.
 * td__pread_full: 0 done, 1 end of file first, -1 error (errno set). td__pwrite_full: 0 / -1. */
int td__pread_full(int fd, void *buf, size_t n, uint64_t off);
int td__pwrite_full(int fd, const void *buf, size_t n, uint64_t off);

/* The value of key among n metadata pairs, or NULL. */
const char *td__st_meta_find(const td__st_meta *meta, size_t n, const char *key);

/* Opens path read-only (close-on-exec) as a regular file; size in *size. Fills err and returns
 * TD_ENOTFOUND / TD_EINVAL (not a regular file) / TD_EIO. */
TD_WUR td_status td__open_regular(const char *path, int *fd, uint64_t *size, td_error *err);

/* Reads a whole file of size bytes (refused above limit: TD_EFORMAT) into a new NUL-terminated
 * buffer *out (caller frees). TD_ENOMEM, TD_EIO, TD_EFORMAT (shorter than size). */
TD_WUR td_status td__read_text(const char *path, int fd, uint64_t size, uint64_t limit, char **out, td_error *err);

/* strdup and json_dumps through the library's own malloc (so that allocation-failure tests see
 * every block the library frees). td__json_text: compact JSON of any value, NULL on failure. */
struct json_t;
char *td__json_text(const struct json_t *v);

#endif
