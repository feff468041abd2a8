/* Helpers shared inside the layer folder (td__ prefix, hidden). Not installed. */
#ifndef TDECOMP_LAYER_INTERNAL_H
#define TDECOMP_LAYER_INTERNAL_H

#include "tdecomp/layer.h"

/* 1 when k is d's kernel: OIHW (Cout, Cin/groups, kh, kw), or (out, in) for a dense layer. */
int td__kernel_matches(const td_layer_desc *d, const td_tensor *k);

/* Allocates (zero-filled) the kernel of every piece of a chain laid out by td_chain_layout. */
td_status td__chain_alloc(td_chain *c);

#endif
