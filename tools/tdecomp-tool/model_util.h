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

/* The options every weight-file command shares: --layout, --layer-spec, --layers, --exclude. */
#define TOOL_MAXG 64
typedef struct tool_model_args {
    const char *layout, *spec;
    const char *globs[TOOL_MAXG], *excl[TOOL_MAXG];
    int nglobs, nexcl;
} tool_model_args;

/* Consumes one of them at argv[*i]: 1 when consumed, 0 when not ours, -1 after printing a usage
 * error prefixed with cmd. */
int tool_model_option(int argc, char **argv, int *i, const char *cmd, tool_model_args *a);
/* 1 when name passes --layers (any, or none given) and no --exclude. */
int tool_layer_selected(const tool_model_args *a, const char *name);
/* Kernel elements of every layer (*all) and of the largest (*largest), for memory checks. */
void tool_model_sizes(const td_model *m, double *all, double *largest);

#endif
