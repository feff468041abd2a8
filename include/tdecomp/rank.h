/* tdecomp/rank.h - rank rules: pure functions of a spectrum (fixed, ratio, energy, EVBMF). */
#ifndef TDECOMP_RANK_H
#define TDECOMP_RANK_H

#include "core.h"
#include "decomp.h"

TD_BEGIN_DECLS

TD_END_DECLS

#endif
