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

/* ==== End of section A ==== */

/* ==== Section B: weight files ==== */

/* ==== End of section B ==== */

TD_END_DECLS

#endif
