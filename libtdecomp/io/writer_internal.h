/* The streaming writer's state, shared by its format backends (not installed). */
#ifndef TDECOMP_IO_WRITER_INTERNAL_H
#define TDECOMP_IO_WRITER_INTERNAL_H

#include "io/model_internal.h"

/* One rewritten layer: its layout and where each piece goes. */
typedef struct td__slot {
    size_t layer;
    td_chain layout;
    char *piece_layer[TD_CHAIN_MAX];   /* the piece's layer name in the output */
    char *kernel_path[TD_CHAIN_MAX];   /* HDF5 dataset path or safetensors key */
    char *bias_path[TD_CHAIN_MAX];     /* NULL when the piece has no bias */
    int st_kernel[TD_CHAIN_MAX], st_bias[TD_CHAIN_MAX];  /* safetensors entries */
    int done;
} td__slot;

struct td_model_writer {
    const td_model *m;
    td_outfile *o;
    td_format fmt;
    td__slot *slots;
    size_t nslots;
    char **target;          /* per input layer: its name in the output */
    td__strlist k2_names;   /* keras2: the output's layer_names */
    void *st;               /* safetensors output state */
    td_error *err;
};

/* The slot of layer, or NULL. */
td__slot *td__writer_slot(td_model_writer *w, size_t layer);

/* HDF5 outputs: copy what stays and lay out the pieces; write a chain; finish. */
td_status td__writer_h5_open(td_model_writer *w, td_error *err);
td_status td__writer_h5_put(td_model_writer *w, td__slot *s, const td_chain *c, td_error *err);
td_status td__writer_h5_attr(td_model_writer *w, const char *key, const char *value, td_error *err);
td_status td__writer_h5_finish(td_model_writer *w, td_error *err);

/* safetensors outputs (torch naming). */
td_status td__writer_st_open(td_model_writer *w, td_error *err);
td_status td__writer_st_put(td_model_writer *w, td__slot *s, const td_chain *c, td_error *err);
td_status td__writer_st_attr(td_model_writer *w, const char *key, const char *value, td_error *err);
td_status td__writer_st_finish(td_model_writer *w, td_error *err);
void td__writer_st_free(td_model_writer *w);
/* td_model_write_adapters for a safetensors input (the output is safetensors). */
td_status td__adapters_st_write(const td_model *m, td_outfile *o, const td_model_adapter *ad, size_t n,
                                const td_adapter_meta *meta, td_error *err);
/* "principal" or "residual". */
const char *td__adapter_mode_name(td_adapter_mode mode);

/* OIHW -> HWIO ((C, 1, kh, kw) depthwise pieces -> (kh, kw, C, 1)); dense (out, in) -> (in, out). */
td_status td__to_keras(const td_tensor *k, int depthwise, td_tensor *out);

#endif
