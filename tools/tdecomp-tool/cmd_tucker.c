/* tdecomp-tool tucker: HOSVD / ST-HOSVD / HOOI of one HDF5 dataset on chosen modes. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tool.h"


const char cmd_tucker_usage[] =
    "usage: tdecomp-tool tucker IN --dataset PATH --ranks r0,r1,... [--modes m0,m1,...]\n"
    "                          [--method hosvd|sthosvd|hooi] [--tol T] [--max-iter N]\n"
    "                          [-o OUT] [--force] [--json] [--max-memory SIZE]\n"
    "Tucker decomposition of the float dataset PATH on the given modes (default: all), one rank\n"
    "per mode. Defaults: --method hooi, --tol 1e-4, --max-iter 100. -o writes float64 /core and\n"
    "/factors/<mode> (I_mode x R_mode) for each decomposed mode.\n";

typedef struct tucker_args {
    tool_plain pl;
    const char *mname;
    int nranks, nmodes;
    size_t ranks[TD_MAX_MODES], mlist[TD_MAX_MODES];
    td_tucker_options opt;
} tucker_args;

/* The tensor and the library's workspace for this Tucker call (its query; --modes absent: all). */
static double need(int nd, const size_t *sh, void *ctx)
{
    const tucker_args *t = ctx;
    double elems = 1;
    int modes[TD_MAX_MODES], nm = t->nmodes < 0 ? nd : t->nmodes;
    for (int k = 0; k < nd; k++) elems *= (double)sh[k];
    for (int k = 0; k < nm && k < TD_MAX_MODES; k++) modes[k] = t->nmodes < 0 ? k : (int)t->mlist[k];
    uint64_t ws;
    const td_status st = td_tucker_workspace(nd, sh, nm, modes, nm == t->nranks ? t->ranks : NULL, &t->opt, &ws);
    /* a scalar, an empty dataset or a mode out of range is refused after reading, by what it is */
    return st == TD_OK ? 8.0 * elems + (double)ws : st == TD_EINVAL ? 8.0 * elems : INFINITY;
}

/* 0 when parsed, -1 after --help, else the usage error's exit code. */
static int parse(int argc, char **argv, tucker_args *t)
{
    const char *v;
    int r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_tucker_usage, stdout); return -1; }
        if ((r = tool_plain_option(argc, argv, &i, &t->pl))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "--ranks", &v))) {
            if (r < 0 || tool_parse_size_list(v, t->ranks, TD_MAX_MODES, &t->nranks))
                return tool_usage_error("tucker: --ranks needs comma-separated whole numbers, got '%s'", r < 0 ? "" : v);
            for (int k = 0; k < t->nranks; k++)
                if (t->ranks[k] == 0) return tool_usage_error("tucker: --ranks entries must be >= 1, got '%s'", v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--modes", &v))) {
            if (r < 0 || tool_parse_size_list(v, t->mlist, TD_MAX_MODES, &t->nmodes))
                return tool_usage_error("tucker: --modes needs comma-separated mode numbers, got '%s'", r < 0 ? "" : v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--method", &v))) {
            if (r < 0) return tool_usage_error("tucker: --method needs a value");
            if (!strcmp(v, "hosvd")) t->opt.method = TD_TUCKER_HOSVD;
            else if (!strcmp(v, "sthosvd")) t->opt.method = TD_TUCKER_STHOSVD;
            else if (!strcmp(v, "hooi")) t->opt.method = TD_TUCKER_HOOI;
            else return tool_usage_error("tucker: --method must be hosvd, sthosvd or hooi, got '%s'", v);
            t->mname = v;
        } else {
            return tool_usage_error("tucker: unknown option '%s' (see 'tdecomp-tool tucker --help')", a);
        }
    }
    if (!t->pl.in) return tool_usage_error("tucker: missing input file (see 'tdecomp-tool tucker --help')");
    if (!t->pl.dataset) return tool_usage_error("tucker: missing --dataset PATH");
    if (!t->nranks) return tool_usage_error("tucker: missing --ranks r0,r1,...");
    if (t->nmodes >= 0 && t->nmodes != t->nranks)
        return tool_usage_error("tucker: %d ranks given for %d modes", t->nranks, t->nmodes);
    for (int a = 0; a < t->nmodes; a++)
        for (int b = 0; b < a; b++)
            if (t->mlist[a] == t->mlist[b]) return tool_usage_error("tucker: mode %zu listed twice in --modes", t->mlist[a]);
    if (t->pl.tol >= 0) t->opt.tol = t->pl.tol;
    if (t->pl.max_iter) t->opt.max_iter = (int)t->pl.max_iter;
    return TOOL_OK;
}

/* The modes to decompose (all of x's without --modes), each rank within its mode. */
static int resolve_modes(tucker_args *t, const td_tensor *x, int *modes)
{
    const char *in = t->pl.in, *dataset = t->pl.dataset;
    if (t->nmodes < 0) {
        if (t->nranks != x->ndim) return tool_fail(TOOL_EINPUT, in, dataset, "has %d modes but %d ranks were given", x->ndim, t->nranks);
        t->nmodes = x->ndim;
        for (int k = 0; k < t->nmodes; k++) modes[k] = k;
    } else {
        for (int k = 0; k < t->nmodes; k++) {
            if (t->mlist[k] >= (size_t)x->ndim)
                return tool_fail(TOOL_EINPUT, in, dataset, "has %d modes; mode %zu does not exist", x->ndim, t->mlist[k]);
            modes[k] = (int)t->mlist[k];
        }
    }
    for (int k = 0; k < t->nmodes; k++)
        if (t->ranks[k] > x->shape[modes[k]])
            return tool_fail(TOOL_EINPUT, in, dataset, "rank %zu for mode %d exceeds its size %zu", t->ranks[k], modes[k],
                             x->shape[modes[k]]);
    return TOOL_OK;
}

static int write_result(tucker_args *t, tool_outputs *g, const td_tucker_result *res)
{
    char names[TD_MAX_MODES][32];
    const char *np[TD_MAX_MODES + 1] = {"/core"};
    const td_tensor *tp[TD_MAX_MODES + 1] = {&res->core};
    for (int k = 0; k < res->nmodes; k++) {
        snprintf(names[k], sizeof names[k], "/factors/%d", res->modes[k]);
        np[k + 1] = names[k];
        tp[k + 1] = &res->factors[k];
    }
    return tool_plain_write(&t->pl, g, np, tp, (size_t)res->nmodes + 1);
}

/* One JSON object; the text line is rendered from it. */
static void report(const tucker_args *t, const td_tensor *x, td_dtype dt, const td_tucker_result *res)
{
    const char *out = t->pl.out;
    json_t *o = json_object(), *ms = json_array(), *cl = json_array();
    for (int k = 0; k < res->nmodes; k++) {
        json_array_append_new(ms, json_integer(res->modes[k]));
        json_array_append_new(cl, json_boolean(res->clamped[k]));
    }
    json_object_set_new(o, "shape", tool_json_shape(x));
    json_object_set_new(o, "ranks", tool_json_sizes(res->ranks, res->nmodes));
    json_object_set_new(o, "modes", ms);
    json_object_set_new(o, "clamped", cl);
    json_object_set_new(o, "method", json_string(t->mname));
    json_object_set_new(o, "dtype", json_string(td_dtype_name(dt)));
    json_object_set_new(o, "core_shape", tool_json_shape(&res->core));
    json_object_set_new(o, "rel_error", tool_json_real(res->rel_error));
    json_object_set_new(o, "iterations", json_integer(res->iterations));
    json_object_set_new(o, "float_sweeps", json_integer(res->float_sweeps));
    json_object_set_new(o, "converged", json_boolean(res->converged));
    json_object_set_new(o, "seconds", json_real(res->seconds));
    json_object_set_new(o, "history", tool_json_doubles(res->history, res->iterations));
    if (out) json_object_set_new(o, "output", json_string(out));
    if (t->pl.json) { tool_print_json(o); return; }
    printf("Tucker (%s) of %s:%s: relative error %.6g, %lld sweeps (%s), %.3f s\n", t->mname, t->pl.in, t->pl.dataset,
           json_number_value(json_object_get(o, "rel_error")), json_integer_value(json_object_get(o, "iterations")),
           json_is_true(json_object_get(o, "converged")) ? "converged" : "not converged",
           json_number_value(json_object_get(o, "seconds")));
    if (out) printf("wrote %s\n", out);
    json_decref(o);
}

int cmd_tucker(int argc, char **argv)
{
    tucker_args t = {.pl = {.cmd = "tucker", .tol = -1}, .mname = "hooi", .nmodes = -1};
    td_tucker_options_init(&t.opt);
    int code = parse(argc, argv, &t);
    if (code) return code < 0 ? TOOL_OK : code;
    td_tensor x;
    td_dtype dt;
    tool_outputs g = {0};
    if ((code = tool_plain_read(&t.pl, &g, need, &t, &x, &dt))) return code;
    int modes[TD_MAX_MODES];
    td_tucker_result res;
    memset(&res, 0, sizeof res);
    if ((code = resolve_modes(&t, &x, modes))) goto done;
    tool_core_warning();
    td_status st = td_tucker(&x, t.nmodes, modes, t.ranks, &t.opt, &res);
    if (st != TD_OK) { code = tool_fail(tool_exit_for(st), t.pl.in, t.pl.dataset, "Tucker failed: %s", td_strerror(st)); goto done; }
    if (t.pl.out && (code = write_result(&t, &g, &res)) != TOOL_OK) goto done;
    report(&t, &x, dt, &res);
done:
    tool_outputs_abort(&g);
    td_tucker_free(&res);
    td_tensor_free(&x);
    return code;
}
