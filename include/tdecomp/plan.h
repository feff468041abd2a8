/* tdecomp/plan.h - a model's decisions (which layers, method, ranks) from rank rules, per-layer
 * error curves and the cost model; the global budget allocator. */
#ifndef TDECOMP_PLAN_H
#define TDECOMP_PLAN_H

#include "core.h"
#include "layer.h"

TD_BEGIN_DECLS

TD_END_DECLS

#endif
