/* tdecomp.h - umbrella header of libtdecomp: dense tensor decomposition (CP, Tucker) for
 * compressing neural-network layers. Layers, bottom to top:
 *   core   tensors, unfoldings, n-mode products, Khatri-Rao, MTTKRP, Gram, norms
 *   decomp truncated SVD, HOSVD / ST-HOSVD / HOOI, CP-ALS
 *   rank   rank rules from spectra (fixed, ratio, energy, EVBMF)
 *   layer  conv/dense descriptions, rewrites, cost model, reference executor
 *   plan   per-layer decisions and the global budget allocator
 *   io     HDF5 weight files and plain tensors
 * Link with `pkg-config --cflags --libs tdecomp`. */
#ifndef TDECOMP_H
#define TDECOMP_H

#include "tdecomp/common.h"
#include "tdecomp/status.h"
#include "tdecomp/core.h"
#include "tdecomp/decomp.h"
#include "tdecomp/rank.h"
#include "tdecomp/layer.h"
#include "tdecomp/plan.h"
#include "tdecomp/io.h"

#endif
