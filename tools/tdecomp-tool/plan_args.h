/* What decompose and latency share: the method and rank-rule options, layer selection, and
 * planning a whole file. */
#ifndef TDECOMP_TOOL_PLAN_ARGS_H
#define TDECOMP_TOOL_PLAN_ARGS_H

#include "model_util.h"

typedef struct tool_plan_args {
    const char *cmd;                  /* "decompose", "latency": prefixes usage errors */
    td_plan_options po;
    const char *method_name, *rule_name;
    double rule_value;
    int nrules;
    tool_model_args model;            /* --layout, --layer-spec, --layers, --exclude */
} tool_plan_args;

void tool_plan_args_init(tool_plan_args *a, const char *cmd);
/* Consumes --method, a rank rule, --keep-larger, --svd-groups, --objective and the model options
 * (tool_model_option) at argv[*i]: 1 when consumed, 0 when not ours, -1 after printing a usage error (exit 2). */
int tool_plan_option(int argc, char **argv, int *i, tool_plan_args *a);
/* After parsing: "no rule" and "more than one rule" usage errors (0 when fine, else exit code). */
int tool_plan_args_check(const tool_plan_args *a);

/* The planner's view of layer i (selection applied). */
td_plan_layer tool_plan_layer(const td_model *m, size_t i, const tool_model_args *sel);

/* Reads every layer's kernel and bias into kernels/biases, its cost into before, and fills the
 * planner's view pl. 0 or the exit code (printed). */
int tool_plan_layers(const td_model *m, const char *in, const tool_model_args *sel, td_tensor *kernels,
                     td_tensor *biases, td_cost *before, td_plan_layer *pl);

/* Reads every layer's kernel and bias, applies the selection and decides each layer.
 * kernels, biases, before and dec have m->nlayers entries; kernels/biases are filled even on
 * failure (free them). 0 or the exit code (printed). */
int tool_plan_model(const td_model *m, const char *in, const tool_plan_args *a, td_tensor *kernels, td_tensor *biases,
                    td_cost *before, td_plan_decision *dec, td_plan_summary *sum);

/* The JSON "options" object of a report. */
json_t *tool_plan_args_json(const tool_plan_args *a);

#endif
