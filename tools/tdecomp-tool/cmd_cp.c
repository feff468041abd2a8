/* tdecomp-tool cp: CP-ALS of one HDF5 dataset. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tool.h"


const char cmd_cp_usage[] =
    "usage: tdecomp-tool cp IN --dataset PATH --rank R [--init svd|random] [--seed N]\n"
    "                      [--tol T] [--max-iter N] [-o OUT] [--force] [--json] [--max-memory SIZE]\n"
    "CP-ALS of the float dataset PATH. Defaults: --init svd, --seed 0, --tol 1e-8 (absolute change\n"
    "of the relative error between sweeps; 0 runs exactly --max-iter sweeps), --max-iter 100.\n"
    "-o writes float64 /weights (R) and /factors/0 .. /factors/{N-1} (I_n x R).\n";

/* The tensor and the library's workspace for CP-ALS at that rank (its query). */
static double need(int nd, const size_t *sh, void *ctx)
{
    const size_t rank = *(const size_t *)ctx;
    double elems = 1;
    uint64_t ws;
    for (int k = 0; k < nd; k++) elems *= (double)sh[k];
    const td_status st = td_cp_als_workspace(nd, sh, rank, NULL, &ws);
    /* a scalar or an empty dataset is refused after reading, by what it is */
    return st == TD_OK ? 8.0 * elems + (double)ws : st == TD_EINVAL ? 8.0 * elems : INFINITY;
}

int cmd_cp(int argc, char **argv)
{
    tool_plain pl = {.cmd = "cp", .tol = -1};
    const char *v;
    int r;
    size_t rank = 0;
    td_cp_options opt;
    td_cp_options_init(&opt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_cp_usage, stdout); return TOOL_OK; }
        if ((r = tool_plain_option(argc, argv, &i, &pl))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "--rank", &v))) {
            if (r < 0 || tool_parse_size(v, 1, 1000000, &rank))
                return tool_usage_error("cp: --rank needs a whole number >= 1, got '%s'", r < 0 ? "" : v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--init", &v))) {
            if (r < 0) return tool_usage_error("cp: --init needs a value (svd or random)");
            if (!strcmp(v, "svd")) opt.init = TD_CP_INIT_SVD;
            else if (!strcmp(v, "random")) opt.init = TD_CP_INIT_RANDOM;
            else return tool_usage_error("cp: --init must be svd or random, got '%s'", v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--seed", &v))) {
            if (r < 0 || tool_parse_u64(v, &opt.seed))
                return tool_usage_error("cp: --seed needs a whole number >= 0, got '%s'", r < 0 ? "" : v);
        } else {
            return tool_usage_error("cp: unknown option '%s' (see 'tdecomp-tool cp --help')", a);
        }
    }
    if (!pl.in) return tool_usage_error("cp: missing input file (see 'tdecomp-tool cp --help')");
    if (!pl.dataset) return tool_usage_error("cp: missing --dataset PATH");
    if (!rank) return tool_usage_error("cp: missing --rank R");
    if (pl.tol >= 0) opt.tol = pl.tol;
    if (pl.max_iter) opt.max_iter = (int)pl.max_iter;
    const char *in = pl.in, *dataset = pl.dataset, *out = pl.out;
    const int json = pl.json;

    td_status st;
    td_tensor x;
    td_dtype dt;
    tool_outputs g = {0};
    int code = tool_plain_read(&pl, &g, need, &rank, &x, &dt);
    if (code) return code;
    td_cp_result res;
    memset(&res, 0, sizeof res);
    tool_core_warning();
    if ((st = td_cp_als(&x, rank, &opt, &res)) != TD_OK) {
        code = tool_fail(tool_exit_for(st), in, dataset, "CP-ALS failed: %s", td_strerror(st));
        goto done;
    }
    if (out) {
        td_tensor w;
        size_t rs[1] = {rank};
        char names[TD_MAX_MODES + 1][32];
        const char *np[TD_MAX_MODES + 1];
        const td_tensor *tp[TD_MAX_MODES + 1];
        if ((st = td_tensor_view(&w, 1, rs, res.weights)) != TD_OK) { code = tool_fail_status(st, NULL, in, dataset); goto done; }
        np[0] = "/weights";
        tp[0] = &w;
        for (int k = 0; k < x.ndim; k++) {
            snprintf(names[k], sizeof names[k], "/factors/%d", k);
            np[k + 1] = names[k];
            tp[k + 1] = &res.factors[k];
        }
        if ((code = tool_plain_write(&pl, &g, np, tp, (size_t)x.ndim + 1)) != TOOL_OK) goto done;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "shape", tool_json_shape(&x));
        json_object_set_new(o, "rank", json_integer((json_int_t)rank));
        json_object_set_new(o, "method", json_string("cp-als"));
        json_object_set_new(o, "init", json_string(opt.init == TD_CP_INIT_SVD ? "svd" : "random"));
        json_object_set_new(o, "seed", json_integer((json_int_t)opt.seed));
        json_object_set_new(o, "dtype", json_string(td_dtype_name(dt)));
        json_object_set_new(o, "rel_error", tool_json_real(res.rel_error));
        json_object_set_new(o, "iterations", json_integer(res.iterations));
        json_object_set_new(o, "converged", json_boolean(res.converged));
        json_object_set_new(o, "seconds", json_real(res.seconds));
        json_object_set_new(o, "history", tool_json_doubles(res.history, res.iterations));
        if (out) json_object_set_new(o, "output", json_string(out));
        tool_print_json(o);
    } else {
        printf("CP-ALS of %s:%s, rank %zu: relative error %.6g after %d sweeps (%s) in %.3f s\n", in,
               dataset, rank, res.rel_error, res.iterations, res.converged ? "converged" : "not converged",
               res.seconds);
        if (out) printf("wrote %s\n", out);
    }
done:
    tool_outputs_abort(&g);
    td_cp_free(&res);
    td_tensor_free(&x);
    return code;
}
