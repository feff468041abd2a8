/* tdecomp/layer.h - conv and dense layer descriptions, rewrites into chains of thinner layers,
 * the cost model (parameters, MACs, FLOPs) and a reference executor.
 *
 * Shapes are always OIHW for convs: kernel (Cout, Cin/groups, kh, kw); dense (out, in).
 * The fields of td_layer_desc below are shared with io and plan: add fields, never change these. */
#ifndef TDECOMP_LAYER_H
#define TDECOMP_LAYER_H

#include "core.h"
#include "decomp.h"
#include "rank.h"

TD_BEGIN_DECLS

typedef enum td_layer_kind {
    TD_LAYER_DENSE = 0,     /* y = W x + b, W (out, in) */
    TD_LAYER_CONV2D = 1     /* 2-D convolution, kernel OIHW; groups in desc.groups */
} td_layer_kind;

typedef enum td_padding_mode {
    TD_PAD_EXPLICIT = 0,    /* pad[] holds top, bottom, left, right */
    TD_PAD_SAME = 1,        /* framework 'same' (TF/Keras rule: total = max((ceil(H/s)-1)*s +
                               (k-1)*d + 1 - H, 0), extra pixel at bottom/right); resolved against
                               the input size */
    TD_PAD_VALID = 2        /* no padding */
} td_padding_mode;

typedef struct td_layer_desc {
    td_layer_kind kind;
    size_t cout;            /* output channels (dense: out features) */
    size_t cin;             /* input channels of the whole layer (dense: in features) */
    size_t kh, kw;          /* kernel size (dense: 1, 1) */
    size_t groups;          /* 1 for ordinary convs; cin == groups == cout for depthwise */
    size_t stride[2];       /* (sh, sw), >= 1 */
    size_t dilation[2];     /* (dh, dw), >= 1 */
    td_padding_mode pad_mode;
    size_t pad[4];          /* top, bottom, left, right (TD_PAD_EXPLICIT) */
    int has_bias;
    int input_known;        /* 1 when in_h, in_w are the spatial size this layer sees */
    size_t in_h, in_w;
} td_layer_desc;

TD_END_DECLS

#endif
