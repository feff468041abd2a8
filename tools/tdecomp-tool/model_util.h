/* Helpers shared by inspect, decompose and verify. */
#ifndef TDECOMP_TOOL_MODEL_UTIL_H
#define TDECOMP_TOOL_MODEL_UTIL_H

#include "tool.h"

/* "conv2d", "dense", "depthwise", "grouped". */
const char *tool_kind_name(const td_model_layer *l);
/* OIHW (Cout, Cin/groups, kh, kw) or dense (out, in) as a JSON array. */
json_t *tool_layer_shape(const td_model_layer *l);
/* Fills methods (JSON array) and returns 1 when decomposable, else 0 with *reason set. */
int tool_layer_methods(const td_model_layer *l, json_t *methods, const char **reason);
/* Opens IN with --layout/--layer-spec applied; prints the error and returns an exit code != 0
 * on failure. */
int tool_open_model(td_model *m, const char *in, const char *layout, const char *spec);

#endif
