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

typedef struct cp_args {
    tool_plain pl;
    size_t rank;
    td_cp_options opt;
} cp_args;

/* 0 when parsed, -1 after --help, else the usage error's exit code. */
static int parse(int argc, char **argv, cp_args *c)
{
    const char *v;
    int r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_cp_usage, stdout); return -1; }
        if ((r = tool_plain_option(argc, argv, &i, &c->pl))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "--rank", &v))) {
            if (r < 0 || tool_parse_size(v, 1, 1000000, &c->rank))
                return tool_usage_error("cp: --rank needs a whole number >= 1, got '%s'", r < 0 ? "" : v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--init", &v))) {
            if (r < 0) return tool_usage_error("cp: --init needs a value (svd or random)");
            if (!strcmp(v, "svd")) c->opt.init = TD_CP_INIT_SVD;
            else if (!strcmp(v, "random")) c->opt.init = TD_CP_INIT_RANDOM;
            else return tool_usage_error("cp: --init must be svd or random, got '%s'", v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--seed", &v))) {
            if (r < 0 || tool_parse_u64(v, &c->opt.seed))
                return tool_usage_error("cp: --seed needs a whole number >= 0, got '%s'", r < 0 ? "" : v);
        } else {
            return tool_usage_error("cp: unknown option '%s' (see 'tdecomp-tool cp --help')", a);
        }
    }
    if (!c->pl.in) return tool_usage_error("cp: missing input file (see 'tdecomp-tool cp --help')");
    if (!c->pl.dataset) return tool_usage_error("cp: missing --dataset PATH");
    if (!c->rank) return tool_usage_error("cp: missing --rank R");
    if (c->pl.tol >= 0) c->opt.tol = c->pl.tol;
    if (c->pl.max_iter) c->opt.max_iter = (int)c->pl.max_iter;
    return TOOL_OK;
}

/* -o: float64 /weights and /factors/0 .. /factors/{N-1}. */
static int write_result(const cp_args *c, tool_outputs *g, const td_cp_result *res)
{
    td_tensor w;
    size_t rs[1] = {c->rank};
    char names[TD_MAX_MODES][32];
    const char *np[TD_MAX_MODES + 1] = {"/weights"};
    const td_tensor *tp[TD_MAX_MODES + 1] = {&w};
    td_status st = td_tensor_view(&w, 1, rs, res->weights);
    if (st != TD_OK) return tool_fail_status(st, NULL, c->pl.in, c->pl.dataset);
    for (int k = 0; k < res->ndim; k++) {
        snprintf(names[k], sizeof names[k], "/factors/%d", k);
        np[k + 1] = names[k];
        tp[k + 1] = &res->factors[k];
    }
    return tool_plain_write(&c->pl, g, np, tp, (size_t)res->ndim + 1);
}

/* One JSON object; the text line is rendered from it. */
static void report(const cp_args *c, const td_tensor *x, td_dtype dt, const td_cp_result *res)
{
    json_t *o = json_object();
    json_object_set_new(o, "shape", tool_json_shape(x));
    json_object_set_new(o, "rank", json_integer((json_int_t)c->rank));
    json_object_set_new(o, "method", json_string("cp-als"));
    json_object_set_new(o, "init", json_string(c->opt.init == TD_CP_INIT_SVD ? "svd" : "random"));
    json_object_set_new(o, "seed", json_integer((json_int_t)c->opt.seed));
    json_object_set_new(o, "dtype", json_string(td_dtype_name(dt)));
    json_object_set_new(o, "rel_error", tool_json_real(res->rel_error));
    json_object_set_new(o, "iterations", json_integer(res->iterations));
    json_object_set_new(o, "converged", json_boolean(res->converged));
    json_object_set_new(o, "seconds", json_real(res->seconds));
    json_object_set_new(o, "history", tool_json_doubles(res->history, res->iterations));
    if (c->pl.out) json_object_set_new(o, "output", json_string(c->pl.out));
    if (c->pl.json) { tool_print_json(o); return; }
    printf("CP-ALS of %s:%s, rank %lld: relative error %.6g after %lld sweeps (%s) in %.3f s\n", c->pl.in, c->pl.dataset,
           json_integer_value(json_object_get(o, "rank")), json_number_value(json_object_get(o, "rel_error")),
           json_integer_value(json_object_get(o, "iterations")),
           json_is_true(json_object_get(o, "converged")) ? "converged" : "not converged",
           json_number_value(json_object_get(o, "seconds")));
    if (c->pl.out) printf("wrote %s\n", c->pl.out);
    json_decref(o);
}

int cmd_cp(int argc, char **argv)
{
    cp_args c = {.pl = {.cmd = "cp", .tol = -1}};
    td_cp_options_init(&c.opt);
    int code = parse(argc, argv, &c);
    if (code) return code < 0 ? TOOL_OK : code;
    td_tensor x;
    td_dtype dt;
    tool_outputs g = {0};
    if ((code = tool_plain_read(&c.pl, &g, need, &c.rank, &x, &dt))) return code;
    td_cp_result res;
    tool_core_warning();
    td_status st = td_cp_als(&x, c.rank, &c.opt, &res);
    if (st != TD_OK) code = tool_fail(tool_exit_for(st), c.pl.in, c.pl.dataset, "CP-ALS failed: %s", td_strerror(st));
    else if (!c.pl.out || (code = write_result(&c, &g, &res)) == TOOL_OK) report(&c, &x, dt, &res);
    tool_outputs_abort(&g);
    td_cp_free(&res);
    td_tensor_free(&x);
    return code;
}
