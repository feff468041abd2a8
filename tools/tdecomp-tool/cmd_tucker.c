/* tdecomp-tool tucker: HOSVD / ST-HOSVD / HOOI of one HDF5 dataset on chosen modes. */
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

/* The tensor, its projections (bounded by it) and a reconstruction for the error. */
static double need(int nd, const size_t *sh, void *ctx)
{
    (void)ctx;
    double elems = 1;
    for (int k = 0; k < nd; k++) elems *= (double)sh[k];
    return 8.0 * elems * 3.0;
}

int cmd_tucker(int argc, char **argv)
{
    tool_plain pl = {.cmd = "tucker", .tol = -1};
    const char *v, *mname = "hooi";
    int r, nranks = 0, nmodes = -1;
    size_t ranks[TD_MAX_MODES], mlist[TD_MAX_MODES];
    td_tucker_options opt;
    td_tucker_options_init(&opt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_tucker_usage, stdout); return TOOL_OK; }
        if ((r = tool_plain_option(argc, argv, &i, &pl))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "--ranks", &v))) {
            if (r < 0 || tool_parse_size_list(v, ranks, TD_MAX_MODES, &nranks))
                return tool_usage_error("tucker: --ranks needs comma-separated whole numbers, got '%s'", r < 0 ? "" : v);
            for (int k = 0; k < nranks; k++)
                if (ranks[k] == 0) return tool_usage_error("tucker: --ranks entries must be >= 1, got '%s'", v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--modes", &v))) {
            if (r < 0 || tool_parse_size_list(v, mlist, TD_MAX_MODES, &nmodes))
                return tool_usage_error("tucker: --modes needs comma-separated mode numbers, got '%s'", r < 0 ? "" : v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--method", &v))) {
            if (r < 0) return tool_usage_error("tucker: --method needs a value");
            if (!strcmp(v, "hosvd")) opt.method = TD_TUCKER_HOSVD;
            else if (!strcmp(v, "sthosvd")) opt.method = TD_TUCKER_STHOSVD;
            else if (!strcmp(v, "hooi")) opt.method = TD_TUCKER_HOOI;
            else return tool_usage_error("tucker: --method must be hosvd, sthosvd or hooi, got '%s'", v);
            mname = v;
        } else {
            return tool_usage_error("tucker: unknown option '%s' (see 'tdecomp-tool tucker --help')", a);
        }
    }
    if (!pl.in) return tool_usage_error("tucker: missing input file (see 'tdecomp-tool tucker --help')");
    if (!pl.dataset) return tool_usage_error("tucker: missing --dataset PATH");
    if (!nranks) return tool_usage_error("tucker: missing --ranks r0,r1,...");
    if (nmodes >= 0 && nmodes != nranks)
        return tool_usage_error("tucker: %d ranks given for %d modes", nranks, nmodes);
    for (int a = 0; a < nmodes; a++)
        for (int b = 0; b < a; b++)
            if (mlist[a] == mlist[b]) return tool_usage_error("tucker: mode %zu listed twice in --modes", mlist[a]);
    if (pl.tol >= 0) opt.tol = pl.tol;
    if (pl.max_iter) opt.max_iter = (int)pl.max_iter;
    const char *in = pl.in, *dataset = pl.dataset, *out = pl.out;
    const int json = pl.json;

    td_status st;
    td_tensor x;
    td_dtype dt;
    tool_outputs g = {0};
    int code = tool_plain_read(&pl, &g, need, NULL, &x, &dt);
    if (code) return code;
    int modes[TD_MAX_MODES];
    td_tucker_result res;
    memset(&res, 0, sizeof res);
    if (nmodes < 0) {
        if (nranks != x.ndim) {
            code = tool_fail(TOOL_EINPUT, in, dataset, "has %d modes but %d ranks were given", x.ndim, nranks);
            goto done;
        }
        nmodes = x.ndim;
        for (int k = 0; k < nmodes; k++) modes[k] = k;
    } else {
        for (int k = 0; k < nmodes; k++) {
            if (mlist[k] >= (size_t)x.ndim) {
                code = tool_fail(TOOL_EINPUT, in, dataset, "has %d modes; mode %zu does not exist", x.ndim, mlist[k]);
                goto done;
            }
            modes[k] = (int)mlist[k];
        }
    }
    for (int k = 0; k < nmodes; k++)
        if (ranks[k] > x.shape[modes[k]]) {
            code = tool_fail(TOOL_EINPUT, in, dataset, "rank %zu for mode %d exceeds its size %zu", ranks[k], modes[k],
                             x.shape[modes[k]]);
            goto done;
        }
    tool_core_warning();
    if ((st = td_tucker(&x, nmodes, modes, ranks, &opt, &res)) != TD_OK) {
        code = tool_fail(tool_exit_for(st), in, dataset, "Tucker failed: %s", td_strerror(st));
        goto done;
    }
    if (out) {
        char names[TD_MAX_MODES][32];
        const char *np[TD_MAX_MODES + 1] = {"/core"};
        const td_tensor *tp[TD_MAX_MODES + 1] = {&res.core};
        for (int k = 0; k < res.nmodes; k++) {
            snprintf(names[k], sizeof names[k], "/factors/%d", res.modes[k]);
            np[k + 1] = names[k];
            tp[k + 1] = &res.factors[k];
        }
        if ((code = tool_plain_write(&pl, &g, np, tp, (size_t)res.nmodes + 1)) != TOOL_OK) goto done;
    }
    if (json) {
        json_t *o = json_object(), *ms = json_array(), *cl = json_array();
        for (int k = 0; k < res.nmodes; k++) {
            json_array_append_new(ms, json_integer(res.modes[k]));
            json_array_append_new(cl, json_boolean(res.clamped[k]));
        }
        json_object_set_new(o, "shape", tool_json_shape(&x));
        json_object_set_new(o, "ranks", tool_json_sizes(res.ranks, res.nmodes));
        json_object_set_new(o, "modes", ms);
        json_object_set_new(o, "clamped", cl);
        json_object_set_new(o, "method", json_string(mname));
        json_object_set_new(o, "dtype", json_string(td_dtype_name(dt)));
        json_object_set_new(o, "core_shape", tool_json_shape(&res.core));
        json_object_set_new(o, "rel_error", tool_json_real(res.rel_error));
        json_object_set_new(o, "iterations", json_integer(res.iterations));
        json_object_set_new(o, "converged", json_boolean(res.converged));
        json_object_set_new(o, "seconds", json_real(res.seconds));
        json_object_set_new(o, "history", tool_json_doubles(res.history, res.iterations));
        if (out) json_object_set_new(o, "output", json_string(out));
        tool_print_json(o);
    } else {
        printf("Tucker (%s) of %s:%s: relative error %.6g, %d sweeps (%s), %.3f s\n", mname, in, dataset,
               res.rel_error, res.iterations, res.converged ? "converged" : "not converged", res.seconds);
        if (out) printf("wrote %s\n", out);
    }
done:
    tool_outputs_abort(&g);
    td_tucker_free(&res);
    td_tensor_free(&x);
    return code;
}
