/* Weight files inside io: the private part of td_model and the format backends (not installed). */
#ifndef TDECOMP_IO_MODEL_INTERNAL_H
#define TDECOMP_IO_MODEL_INTERNAL_H

#include <sys/types.h>
#include "io/io_internal.h"

/* A growable list of owned strings. */
typedef struct td__strlist {
    char **v;
    size_t n, cap;
} td__strlist;

td_status td__strlist_push(td__strlist *l, const char *s);
void td__strlist_free(td__strlist *l);

typedef enum td__backend { TD__BACKEND_HDF5 = 0, TD__BACKEND_ST = 1 } td__backend;

struct td_model_impl {
    td__backend backend;
    hid_t h5;                  /* HDF5: the input, open read-only for the model's life */
    dev_t dev;                 /* identity of the input as opened */
    ino_t ino;
    void *st;                  /* safetensors: the open file(s) */
    /* strings owned by the model (tensor paths and names, layer names) */
    td__strlist strings;
    /* Keras */
    char weights_root[64];     /* keras2: "/" or "/model_weights"; keras3: "/layers" */
    int keras_vlen_names;      /* keras2: layer_names stored as variable-length strings */
    int keras_colon_names;     /* keras2: weight names in the "kernel:0" style */
    td__strlist keras_layer_names;  /* keras2: layer_names in file order */
    char **group;              /* per layer: the Keras group path ("" for torch) */
    int *group_pos;            /* per layer: keras2 position in layer_names, else -1 */
    size_t layer_cap;
};

/* Keeps a copy of s owned by the model; NULL on allocation failure. */
const char *td__model_str(td_model *m, const char *s);

/* A new layer with the contract's default geometry (NULL on allocation failure). */
td_model_layer *td__model_new_layer(td_model *m);

/* Index of the tensor with that path / display name, or -1. */
int td__model_find_tensor(const td_model *m, const char *path);
int td__model_find_tensor_named(const td_model *m, const char *name);
int td__model_find_layer(const td_model *m, const char *name);

/* Fills desc and cls from an OIHW (or Keras HWIO, keras = 1) 4-D or a 2-D kernel; 0 when the
 * tensor is not a usable kernel. */
int td__model_describe(td_model_layer *l, const td_model_tensor *k, int keras, int depthwise);

/* HDF5 backend: lists every dataset, then the layout's layers. */
td_status td__model_open_h5(td_model *m, const char *path, td_layout layout, td_error *err);
/* Reads tensor i through the open handle, checking shape and type against what was listed. */
td_status td__model_read_h5(const td_model *m, size_t i, td_tensor *out, td_error *err);

/* safetensors backend (model_st.c): one file, or shards through their index. */
td_status td__model_open_st(td_model *m, const char *path, int sharded, td_error *err);
td_status td__model_read_st(const td_model *m, size_t i, td_tensor *out, td_error *err);
void td__model_close_st(void *st);
/* Where tensor i's bytes are (for byte-for-byte copies), its safetensors dtype, and the k-th
 * __metadata__ pair of a single file (NULL past the end). */
td_status td__model_st_raw(const td_model *m, size_t i, int *fd, uint64_t *offset);
int td__model_st_dtype(const td_model *m, size_t i);
const char *td__model_st_metadata(const td_model *m, size_t k, const char **value);

/* The geometry record and the layer spec (geometry.c). */
td_status td__model_apply_record(td_model *m, const char *json, td_error *err);
/* Fills every layer's admits (after reading the structure and after a layer spec). */
td_status td__model_admissions(td_model *m, td_error *err);
/* Keras kernel (kh, kw, ci, co) <-> (co, ci, kh, kw), or depthwise (kh, kw, C, M) <-> (C M, 1, kh, kw),
 * in the direction to_keras says; a dense (in, out) <-> (out, in) is the kh = kw = 1 case. */
void td__keras_kernel_copy(const double *src, double *dst, size_t kh, size_t kw, size_t ci, size_t co,
                           int depthwise, int to_keras);

/* Puts layers in model order: the record's order when there is one, else natural key order. */
td_status td__model_order(td_model *m, const td__strlist *record_order);

/* String attributes in the forms Keras and h5py write them: a list (variable- or fixed-length
 * strings, an empty float array, or split into name0, name1, ...): 1 read, 0 absent, -1 malformed;
 * *vlen says the form. */
int td__h5_read_strings(hid_t obj, const char *name, td__strlist *out, int *vlen);
/* A scalar string attribute, malloc'ed into *out: 1 read, 0 absent, -1 malformed. */
int td__h5_read_string(hid_t obj, const char *name, char **out);
td_status td__h5_write_strings(hid_t obj, const char *name, char *const *list, size_t n, int vlen);

#endif
