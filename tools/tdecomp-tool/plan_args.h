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
    tool_model_args model;            /* --layout, --layer-spec, --layers, --exclude, --calibration */
    int include_head;                 /* --include-head: with --calibration, the classifier head too */
    double maxmem;                    /* --max-memory (decompose), 0: 80 % of physical memory */
} tool_plan_args;

void tool_plan_args_init(tool_plan_args *a, const char *cmd);
/* Consumes --method, a rank rule, --keep-larger, --svd-groups, --objective and the model options
 * (tool_model_option) at argv[*i]: 1 when consumed, 0 when not ours, -1 after printing a usage error (exit 2). */
int tool_plan_option(int argc, char **argv, int *i, tool_plan_args *a);
/* After parsing: "no rule" and "more than one rule" usage errors (0 when fine, else exit code). */
int tool_plan_args_check(const tool_plan_args *a);

/* A whole file's plan: the planner's view of every layer, the curves it needed (built one kernel
 * at a time, then the kernel dropped), its decisions and totals. */
typedef struct tool_plan {
    size_t n;
    td_plan_layer *layers;
    td_plan_curve **curves;
    td_plan_decision *dec;
    td_plan_summary sum;
    td_layer_calibration *cal;        /* with --calibration: each layer's statistics */
    int *has_cal;                     /* 1 where the file had statistics for the layer */
    size_t ncal;                      /* layers with statistics */
} tool_plan;

/* Plans every layer of m (selection applied) by a's rule, with --calibration's statistics when
 * given (layers without are planned data-free, with one warning). 0 or the exit code (printed). */
int tool_plan_model(const td_model *m, const tool_plan_args *a, tool_plan *p);
void tool_plan_free(tool_plan *p);

/* The JSON "options" object of a report. */
json_t *tool_plan_args_json(const tool_plan_args *a);

#endif
