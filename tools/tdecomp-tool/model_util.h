/* What the weight-file commands share: model options, opening, selection, names. */
#ifndef TDECOMP_TOOL_MODEL_UTIL_H
#define TDECOMP_TOOL_MODEL_UTIL_H

#include "tool.h"

/* --layout, --layer-spec, --layers, --exclude (repeatable globs), --calibration. */
#define TOOL_MAXG 64
typedef struct tool_model_args {
    const char *layout, *spec, *calibration;
    const char *globs[TOOL_MAXG], *excl[TOOL_MAXG];
    int nglobs, nexcl;
    int takes_calibration;      /* set by commands that accept --calibration */
} tool_model_args;

/* Consumes one of them at argv[*i]: 1 when consumed, 0 when not ours, -1 after printing a usage
 * error prefixed with cmd. */
int tool_model_option(int argc, char **argv, int *i, const char *cmd, tool_model_args *a);
/* 1 when name passes --layers (any, or none given) and no --exclude. */
int tool_layer_selected(const tool_model_args *a, const char *name);
/* Protects the command's inputs (IN, --layer-spec, --calibration) from being an output; call it
 * before the outputs are checked, so that such an output is refused before any work. */
void tool_protect_model_inputs(tool_outputs *g, const char *in, const tool_model_args *a);
/* Opens IN (deadline on reading its structure) and applies the spec; protects both inputs in g
 * (may be NULL). Prints the error and returns the exit code on failure. */
int tool_open_model(td_model *m, const char *in, const tool_model_args *a, tool_outputs *g);
/* Warns once when a torch-style file has convs whose groups nothing states. */
void tool_warn_assumed(const td_model *m);

/* "conv2d", "dense", "depthwise", "grouped". */
const char *tool_kind_name(const td_model_layer *l);
/* OIHW (Cout, Cin/groups, kh, kw) or dense (out, in) as a JSON array, and as text. */
json_t *tool_layer_shape(const td_model_layer *l);
void tool_layer_shape_text(const td_model_layer *l, char *buf, size_t len);
/* The admitted methods (JSON array) and, when there are none, the reason. */
json_t *tool_layer_methods(const td_model_layer *l, const char **reason);

#endif
