/* Rank-rule options and whole-file planning shared by decompose and latency. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plan_args.h"

void tool_plan_args_init(tool_plan_args *a, const char *cmd)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->method_name = "auto";
    td_plan_options_init(&a->po);
}

int tool_plan_option(int argc, char **argv, int *i, tool_plan_args *a)
{
    const char *arg = argv[*i], *v, *c = a->cmd;
    td_plan_options *po = &a->po;
    int r;
    if (!strcmp(arg, "--keep-larger")) { po->keep_larger = 1; return 1; }
    if (!strcmp(arg, "--include-head")) { a->include_head = 1; return 1; }
    if (!strcmp(arg, "--vbmf")) { po->rule = TD_RULE_VBMF; a->rule_name = "vbmf"; a->nrules++; return 1; }
    if ((r = tool_opt_value(argc, argv, i, "--method", &v))) {
        if (r < 0) { tool_usage_error("%s: --method needs a value", c); return -1; }
        a->method_name = v;
        if (!strcmp(v, "auto")) { po->method_auto = 1; return 1; }
        po->method_auto = 0;
        if (!strcmp(v, "tucker2")) po->method = TD_METHOD_TUCKER2;
        else if (!strcmp(v, "cp")) po->method = TD_METHOD_CP;
        else if (!strcmp(v, "svd")) po->method = TD_METHOD_SVD;
        else if (!strcmp(v, "svd-grouped")) po->method = TD_METHOD_SVD_GROUPED;
        else { tool_usage_error("%s: --method must be auto, tucker2, cp, svd or svd-grouped, got '%s'", c, v); return -1; }
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--rank", &v))) {
        if (r < 0 || tool_parse_size(v, 1, 1000000, &po->rank)) {
            tool_usage_error("%s: --rank needs a whole number >= 1, got '%s'", c, r < 0 ? "" : v);
            return -1;
        }
        po->rule = TD_RULE_RANK; a->rule_name = "rank"; a->rule_value = (double)po->rank; a->nrules++;
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--ranks", &v))) {
        int n = 0;
        if (r < 0 || tool_parse_size_list(v, po->ranks, 2, &n) || n != 2 || !po->ranks[0] || !po->ranks[1]) {
            tool_usage_error("%s: --ranks needs R_OUT,R_IN (two whole numbers >= 1), got '%s'", c, r < 0 ? "" : v);
            return -1;
        }
        po->rule = TD_RULE_RANKS; a->rule_name = "ranks"; a->nrules++;
        return 1;
    }
    static const struct { const char *opt; td_rule_kind rule; const char *name; } valued[] = {
        {"--rank-ratio", TD_RULE_RATIO, "rank-ratio"}, {"--energy", TD_RULE_ENERGY, "energy"},
        {"--target-params", TD_RULE_TARGET_PARAMS, "target-params"}, {"--target-flops", TD_RULE_TARGET_FLOPS, "target-flops"},
        {"--max-error", TD_RULE_MAX_ERROR, "max-error"}};
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
        if (!(r = tool_opt_value(argc, argv, i, valued[k].opt, &v))) continue;
        if (r < 0) { tool_usage_error("%s: %s needs a value", c, valued[k].opt); return -1; }
        double x;
        const int is_err = valued[k].rule == TD_RULE_MAX_ERROR;
        if (tool_parse_double(v, &x) || (is_err ? x < 0 : !(x > 0 && x <= 1))) {
            tool_usage_error("%s: %s needs a number in %s, got '%s'", c, valued[k].opt, is_err ? "[0, inf)" : "(0, 1]", v);
            return -1;
        }
        po->value = a->rule_value = x;
        po->rule = valued[k].rule;
        a->rule_name = valued[k].name;
        a->nrules++;
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--svd-groups", &v))) {
        if (r < 0 || tool_parse_size(v, 1, 4096, &po->svd_groups)) {
            tool_usage_error("%s: --svd-groups needs a whole number >= 1, got '%s'", c, r < 0 ? "" : v);
            return -1;
        }
        return 1;
    }
    if ((r = tool_opt_value(argc, argv, i, "--objective", &v))) {
        if (r < 0 || (strcmp(v, "minmax") && strcmp(v, "sum"))) { tool_usage_error("%s: --objective must be minmax or sum", c); return -1; }
        po->min_total_error = !strcmp(v, "sum");
        return 1;
    }
    return tool_model_option(argc, argv, i, c, &a->model);
}

int tool_plan_args_check(const tool_plan_args *a)
{
    if (a->nrules == 0)
        return tool_usage_error("%s: a rank rule is required: --rank N, --ranks R_OUT,R_IN, --rank-ratio F, --energy F, "
                                "--vbmf, --target-params F, --target-flops F or --max-error E", a->cmd);
    if (a->nrules > 1) return tool_usage_error("%s: give exactly one rank rule", a->cmd);
    return TOOL_OK;
}

void tool_plan_free(tool_plan *p)
{
    for (size_t i = 0; p->curves && i < p->n; i++) td_plan_curve_free(p->curves[i]);
    for (size_t i = 0; p->cal && i < p->n; i++) td_layer_calibration_free(&p->cal[i]);
    free(p->cal);
    free(p->has_cal);
    free(p->curves);
    free(p->layers);
    free(p->dec);
    memset(p, 0, sizeof *p);
}

/* The curve of layer i, from its kernel read for the purpose and dropped after. */
static int curve_of(const td_model *m, size_t i, const tool_plan_args *a, tool_plan *p)
{
    if (!td_plan_needs_curve(&p->layers[i], &a->po)) return TOOL_OK;
    td_error err;
    td_error_clear(&err);
    td_tensor k = {0}, b = {0};
    td_status st = td_model_read_layer(m, i, &k, &b, &err);
    if (st == TD_OK) st = td_plan_curve_new(&p->layers[i], &k, &a->po, &p->curves[i], &err);
    td_tensor_free(&k);
    td_tensor_free(&b);
    return st == TD_OK ? TOOL_OK : tool_fail_status(st, &err, m->file, m->layers[i].name);
}

/* Curves are built one kernel at a time: the need is the largest kernel and its curve's
 * workspace (library queries), before any kernel is read. */
static int curve_memory_check(const td_model *m, const tool_plan_args *a, const tool_plan *p)
{
    double need = 0;
    for (size_t i = 0; i < p->n; i++) {
        td_cost c;
        uint64_t ws;
        if (!td_plan_needs_curve(&p->layers[i], &a->po)) continue;
        if (td_layer_cost(&p->layers[i].desc, &c) != TD_OK || td_plan_curve_workspace(&p->layers[i], &a->po, &ws) != TD_OK)
            return tool_fail(TOOL_EINPUT, m->file, m->layers[i].name, "invalid layer geometry");
        need = fmax(need, 8.0 * (double)c.params + (double)ws);
    }
    return tool_memory_check(need, a->maxmem > 0 ? a->maxmem : tool_memory_default(), m->file, NULL) ? TOOL_ERESOURCE : TOOL_OK;
}

/* Reads --calibration's statistics for every selected layer; warns once for those it lacks. */
static int read_calibration(const td_model *m, const tool_plan_args *a, tool_plan *p)
{
    const char *path = a->model.calibration;
    td_error err;
    td_error_clear(&err);
    td_calibration *c = NULL;
    td_status st = td_calibration_open(&c, path, &err);
    if (st != TD_OK) return tool_fail_status(st, &err, path, NULL);
    p->cal = calloc(p->n ? p->n : 1, sizeof *p->cal);
    p->has_cal = calloc(p->n ? p->n : 1, sizeof *p->has_cal);
    if (!p->cal || !p->has_cal) { td_calibration_free(c); return tool_fail(TOOL_ERESOURCE, path, NULL, "out of memory"); }
    size_t missing = 0;
    const char *first = NULL;
    for (size_t i = 0; i < p->n && st == TD_OK; i++) {
        if (p->layers[i].excluded) continue;
        st = td_calibration_read(c, m, i, &p->cal[i], &p->has_cal[i], &err);
        if (st == TD_OK && p->has_cal[i]) { p->layers[i].stats = &p->cal[i].stats; p->ncal++; }
        else if (st == TD_OK) { missing++; if (!first) first = m->layers[i].name; }
    }
    td_calibration_free(c);
    if (st != TD_OK) return tool_fail_status(st, &err, path, NULL);
    if (missing)
        tool_warn("%s: no statistics for %zu layer%s (%s%s): decomposed data-free", path, missing, missing == 1 ? "" : "s",
                  first, missing > 1 ? ", ..." : "");
    return TOOL_OK;
}

int tool_plan_model(const td_model *m, const tool_plan_args *a, tool_plan *p)
{
    memset(p, 0, sizeof *p);
    const size_t n = m->nlayers;
    p->n = n;
    p->layers = calloc(n ? n : 1, sizeof *p->layers);
    p->curves = calloc(n ? n : 1, sizeof *p->curves);
    p->dec = calloc(n ? n : 1, sizeof *p->dec);
    if (!p->layers || !p->curves || !p->dec) return tool_fail(TOOL_ERESOURCE, m->file, NULL, "out of memory");
    int code = TOOL_OK;
    for (size_t i = 0; i < n; i++) {
        const td_model_layer *ml = &m->layers[i];
        p->layers[i] = (td_plan_layer){ml->name, ml->desc, ml->admits, !tool_layer_selected(&a->model, ml->name), NULL};
    }
    if (a->model.calibration && !a->include_head) td_plan_keep_head(p->layers, n);
    if (a->model.calibration && (code = read_calibration(m, a, p))) return code;
    if ((code = curve_memory_check(m, a, p))) return code;
    for (size_t i = 0; i < n && code == TOOL_OK; i++) code = curve_of(m, i, a, p);
    if (code) return code;
    td_error err;
    td_error_clear(&err);
    td_status st = td_plan(p->layers, p->curves, n, &a->po, p->dec, &p->sum, &err);
    return st == TD_OK ? TOOL_OK : tool_fail_status(st, &err, m->file, NULL);
}

json_t *tool_plan_args_json(const tool_plan_args *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(a->method_name));
    json_object_set_new(o, "rule", json_string(a->rule_name));
    if (a->po.rule == TD_RULE_RANKS) json_object_set_new(o, "value", tool_json_sizes(a->po.ranks, 2));
    else if (a->po.rule != TD_RULE_VBMF) json_object_set_new(o, "value", json_real(a->rule_value));
    json_object_set_new(o, "keep_larger", json_boolean(a->po.keep_larger));
    json_object_set_new(o, "objective", json_string(a->po.min_total_error ? "sum" : "minmax"));
    if (a->po.svd_groups) json_object_set_new(o, "svd_groups", json_integer((json_int_t)a->po.svd_groups));
    json_object_set_new(o, "calibration", a->model.calibration ? json_string(a->model.calibration) : json_null());
    if (a->model.calibration) json_object_set_new(o, "include_head", json_boolean(a->include_head));
    return o;
}

