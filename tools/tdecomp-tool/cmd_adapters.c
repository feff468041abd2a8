/* tdecomp-tool adapters: split every dense and conv layer into a frozen part and an SVD-initialised
 * LoRA adapter (docs/maths.md, LoRA adapters; loralib's layout), and write them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_util.h"

const char cmd_adapters_usage[] =
    "usage: tdecomp-tool adapters IN --rank r [--mode principal|residual] [--alpha a] -o OUT [--force] [--json]\n"
    "         [--layers GLOB]... [--exclude GLOB]... [--layout L] [--layer-spec SPEC.json]\n"
    "Splits each dense and conv layer's weight W by truncated SVD into W_r and W - W_r and writes\n"
    "LoRA factors in PyTorch's layout: dense A (r, in), B (out, r); conv A (r*k, Cin*k),\n"
    "B (Cout/groups*k, r*k), whose product reshapes (row-major) to the kernel. The layer's weight\n"
    "becomes the frozen part, so that W = frozen + (alpha/r) B A:\n"
    "  principal (default): the adapter holds W_r, the residual W - W_r stays frozen;\n"
    "  residual:            W_r stays frozen, the adapter starts from the best rank-r fit of W - W_r.\n"
    "--alpha defaults to r (scaling 1). torch files get <name>.lora_A and <name>.lora_B beside\n"
    "<name>.weight; Keras files keep their kernel layout and get /tdecomp_adapters/<name>.lora_A/_B.\n"
    "Non-square kernels (no loralib layout) and possibly-depthwise kernels whose groups no layer spec\n"
    "states are copied unchanged and reported skipped.\n";

typedef struct adapters_opts {
    const char *in, *out;
    int force, json;
    tool_model_args ma;
    size_t rank;
    double alpha;
    td_adapter_mode mode;
} adapters_opts;

static const char *mode_name(td_adapter_mode m) { return m == TD_ADAPTER_RESIDUAL ? "residual" : "principal"; }

/* 0, -1 (help printed) or the usage error's exit code. */
static int parse(int argc, char **argv, adapters_opts *o)
{
    const char *v;
    int r, have_alpha = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_adapters_usage, stdout); return -1; }
        if (!strcmp(a, "--force")) { o->force = 1; continue; }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if ((r = tool_model_option(argc, argv, &i, "adapters", &o->ma))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "-o", &v)) || (r = tool_opt_value(argc, argv, &i, "--output", &v))) {
            if (r < 0) return tool_usage_error("adapters: -o needs a file name");
            o->out = v;
        } else if ((r = tool_opt_value(argc, argv, &i, "--rank", &v))) {
            if (r < 0 || tool_parse_size(v, 1, 1000000, &o->rank))
                return tool_usage_error("adapters: --rank needs a whole number >= 1, got '%s'", r < 0 ? "" : v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--mode", &v))) {
            if (r < 0 || (strcmp(v, "principal") && strcmp(v, "residual")))
                return tool_usage_error("adapters: --mode must be principal or residual");
            o->mode = strcmp(v, "principal") ? TD_ADAPTER_RESIDUAL : TD_ADAPTER_PRINCIPAL;
        } else if ((r = tool_opt_value(argc, argv, &i, "--alpha", &v))) {
            if (r < 0 || tool_parse_double(v, &o->alpha) || !(o->alpha > 0) || !isfinite(o->alpha))
                return tool_usage_error("adapters: --alpha needs a number > 0, got '%s'", r < 0 ? "" : v);
            have_alpha = 1;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("adapters: unknown option '%s' (see 'tdecomp-tool adapters --help')", a);
        } else if (!o->in) o->in = a;
        else return tool_usage_error("adapters: unexpected argument '%s'", a);
    }
    if (!o->in) return tool_usage_error("adapters: missing input file");
    if (!o->rank) return tool_usage_error("adapters: --rank r is required");
    if (!o->out) return tool_usage_error("adapters: missing -o OUT");
    if (!have_alpha) o->alpha = (double)o->rank;
    return 0;
}

/* Every adapter is kept until the file is written (frozen part + factors); the largest layer's
 * split needs its kernel and the library's workspace besides. Checked before any split, so an
 * absurd rank is refused by size. */
static double memory_need(const td_model *m, const adapters_opts *o)
{
    double kept = 0, largest = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const td_model_layer *ml = &m->layers[i];
        td_cost c;
        size_t as[2], bs[2];
        uint64_t ws;
        if (ml->adapter_refusal || !tool_layer_selected(&o->ma, ml->name)) continue;
        if (td_layer_cost(&ml->desc, &c) != TD_OK || td_adapter_shapes(&ml->desc, o->rank, as, bs) != TD_OK ||
            td_adapter_workspace(&ml->desc, o->rank, o->mode, &ws) != TD_OK)
            return INFINITY;
        kept += 8.0 * ((double)c.params + (double)as[0] * (double)as[1] + (double)bs[0] * (double)bs[1]);
        if (8.0 * (double)c.params + (double)ws > largest) largest = 8.0 * (double)c.params + (double)ws;
    }
    return kept + largest;
}

/* Splits every selected layer that admits an adapter; reason[i] says why another was left. The
 * error reported is that of what is written: the pieces rounded to the file's dtype. */
static int split_all(const td_model *m, const adapters_opts *o, td_adapter *ad, const char **reason)
{
    for (size_t i = 0; i < m->nlayers; i++) {
        const td_model_layer *ml = &m->layers[i];
        reason[i] = !tool_layer_selected(&o->ma, ml->name) ? "excluded" : ml->adapter_refusal;
        if (reason[i]) continue;
        td_tensor k, b;
        td_error err;
        td_error_clear(&err);
        td_status st = td_model_read_layer(m, i, &k, &b, &err);
        if (st != TD_OK) return tool_fail_status(st, &err, m->file, ml->name);
        st = td_layer_adapter(&ml->desc, &k, o->rank, o->mode, o->alpha, &ad[i]);
        const td_dtype dt = m->tensors[ml->kernel].dtype;
        if (st == TD_OK && (st = td_tensor_round(&ad[i].frozen, dt)) == TD_OK && (st = td_tensor_round(&ad[i].a, dt)) == TD_OK &&
            (st = td_tensor_round(&ad[i].b, dt)) == TD_OK)
            st = td_adapter_rel_error(&ad[i], &k, &ad[i].rel_error);
        td_tensor_free(&k);
        td_tensor_free(&b);
        if (st != TD_OK) return tool_fail(tool_exit_for(st), m->file, ml->name, "adapter split failed: %s", td_strerror(st));
    }
    return TOOL_OK;
}

/* Writes the adapted copy (the input's format) and commits it. */
static int write_output(const td_model *m, const adapters_opts *o, tool_outputs *g, td_adapter *ad)
{
    td_model_adapter *list = calloc(m->nlayers ? m->nlayers : 1, sizeof *list);
    size_t nad = 0;
    if (!list) return tool_fail(TOOL_ERESOURCE, m->file, NULL, "out of memory");
    for (size_t i = 0; i < m->nlayers; i++)
        if (ad[i].a.data) list[nad++] = (td_model_adapter){i, &ad[i]};
    /* adapters keep the input's format (a safetensors file's metadata is written by the library) */
    const int st_out = td_format_choose(TD_FORMAT_AUTO, o->out, m) == TD_FORMAT_SAFETENSORS;
    td_outfile *of;
    td_error err;
    td_error_clear(&err);
    int code = st_out != (m->layout == TD_LAYOUT_SAFETENSORS)
                   ? tool_fail(TOOL_EINPUT, o->out, NULL, "adapters keep the input's format: HDF5 from HDF5, safetensors from safetensors")
                   : tool_output_open(g, o->out, st_out ? TD_OUTPUT_BYTES : TD_OUTPUT_HDF5, &of);
    if (!code) {
        tool_set_phase(TOOL_PHASE_WRITING);
        const td_adapter_meta meta = {o->rank, o->alpha, o->mode, tool_command_line};
        td_status st = td_model_write_adapters(m, of, st_out ? TD_FORMAT_SAFETENSORS : TD_FORMAT_HDF5, list, nad, &meta, &err);
        code = st != TD_OK ? tool_fail_status(st, &err, o->out, NULL) : tool_outputs_commit(g);
    }
    free(list);
    return code;
}

static json_t *layer_json(const td_model *m, const td_model_layer *ml, const td_adapter *a, const char *reason)
{
    const int ok = a->a.data != NULL;
    td_cost c;
    json_t *x = json_object();
    json_object_set_new(x, "name", json_string(ml->name));
    json_object_set_new(x, "kind", json_string(tool_kind_name(ml)));
    json_object_set_new(x, "shape", tool_layer_shape(ml));
    json_object_set_new(x, "dtype", json_string(m->tensors[ml->kernel].dtype_name));
    json_object_set_new(x, "params", json_integer(td_layer_cost(&ml->desc, &c) == TD_OK ? (json_int_t)c.params : 0));
    json_object_set_new(x, "lora_A_shape", ok ? tool_json_sizes(a->a.shape, 2) : json_null());
    json_object_set_new(x, "lora_B_shape", ok ? tool_json_sizes(a->b.shape, 2) : json_null());
    json_object_set_new(x, "inner_rank", ok ? json_integer((json_int_t)a->inner) : json_null());
    json_object_set_new(x, "effective_rank", ok ? json_integer((json_int_t)a->effective) : json_null());
    json_object_set_new(x, "adapter_params", json_integer(ok ? (json_int_t)a->params : 0));
    json_object_set_new(x, "rel_error_truncated", ok ? tool_json_real(a->rel_error_truncated) : json_null());
    json_object_set_new(x, "rel_error", ok ? tool_json_real(a->rel_error) : json_null());
    json_object_set_new(x, "skipped", json_boolean(!ok));
    json_object_set_new(x, "reason", ok ? json_null() : json_string(reason));
    return x;
}

/* The one report: text is rendered from it (report_text). */
static json_t *report_json(const td_model *m, const adapters_opts *o, const td_adapter *ad, const char **reason)
{
    /* the model's parameters, biases included (as docs/maths.md's MLP example counts) */
    const uint64_t total = td_model_total_elements(m);
    uint64_t added = 0;
    size_t nad = 0;
    json_t *layers = json_array(), *opts = json_object(), *tot = json_object(), *rep = json_object();
    for (size_t i = 0; i < m->nlayers; i++) {
        json_array_append_new(layers, layer_json(m, &m->layers[i], &ad[i], reason[i]));
        if (ad[i].a.data) { nad++; added += ad[i].params; }
    }
    json_object_set_new(opts, "rank", json_integer((json_int_t)o->rank));
    json_object_set_new(opts, "mode", json_string(mode_name(o->mode)));
    json_object_set_new(opts, "alpha", json_real(o->alpha));
    json_object_set_new(opts, "scaling", json_real(o->alpha / (double)o->rank));
    json_object_set_new(tot, "params", json_integer((json_int_t)total));
    json_object_set_new(tot, "adapter_params", json_integer((json_int_t)added));
    json_object_set_new(tot, "adapter_fraction", json_real((double)added / (double)(total ? total : 1)));
    json_object_set_new(tot, "layers_adapted", json_integer((json_int_t)nad));
    json_object_set_new(tot, "layers_skipped", json_integer((json_int_t)(m->nlayers - nad)));
    json_object_set_new(rep, "tdecomp_adapters", json_integer(1));
    json_object_set_new(rep, "version", json_string(td_version()));
    json_object_set_new(rep, "input", json_string(o->in));
    json_object_set_new(rep, "output", json_string(o->out));
    json_object_set_new(rep, "layout", json_string(td_layout_name(m->layout)));
    json_object_set_new(rep, "options", opts);
    json_object_set_new(rep, "layers", layers);
    json_object_set_new(rep, "totals", tot);
    return rep;
}

static long long jint(const json_t *o, const char *key) { return json_integer_value(json_object_get(o, key)); }

/* "(a,b,...)" of a JSON array of integers, or "-" for null. */
static void jshape(const json_t *a, char *buf, size_t len)
{
    size_t i, n = 0;
    json_t *v;
    if (!json_is_array(a)) { snprintf(buf, len, "-"); return; }
    buf[0] = '\0';
    json_array_foreach(a, i, v) n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%lld", i ? "," : "(", json_integer_value(v));
    if (n + 1 < len) snprintf(buf + n, len - n, ")");
}

static void report_text(const json_t *rep)
{
    printf("%-28s %-9s %-18s %-14s %-14s %10s %10s %9s %9s  %s\n", "layer", "kind", "shape", "lora_A", "lora_B", "params", "adapter",
           "trunc_err", "rel_err", "note");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(rep, "layers"), i, x) {
        char sh[64], as[32], bs[32], note[120] = "";
        jshape(json_object_get(x, "shape"), sh, sizeof sh);
        jshape(json_object_get(x, "lora_A_shape"), as, sizeof as);
        jshape(json_object_get(x, "lora_B_shape"), bs, sizeof bs);
        const int ok = !json_is_true(json_object_get(x, "skipped"));
        if (!ok) snprintf(note, sizeof note, "%s", json_string_value(json_object_get(x, "reason")));
        else if (jint(x, "effective_rank") < jint(x, "inner_rank"))
            snprintf(note, sizeof note, "only %lld of %lld triplets exist", jint(x, "effective_rank"), jint(x, "inner_rank"));
        printf("%-28.28s %-9s %-18s %-14s %-14s %10lld %10lld %9.4g %9.3g  %s\n", json_string_value(json_object_get(x, "name")),
               json_string_value(json_object_get(x, "kind")), sh, as, bs, jint(x, "params"), jint(x, "adapter_params"),
               ok ? json_real_value(json_object_get(x, "rel_error_truncated")) : 0.0,
               ok ? json_real_value(json_object_get(x, "rel_error")) : 0.0, note);
    }
    const json_t *o = json_object_get(rep, "options"), *t = json_object_get(rep, "totals");
    printf("adapters (%s, rank %lld, alpha %g, scaling %g): %lld layers, %lld adapter parameters added to %lld (%.3f%%); %lld skipped\n",
           json_string_value(json_object_get(o, "mode")), jint(o, "rank"), json_real_value(json_object_get(o, "alpha")),
           json_real_value(json_object_get(o, "scaling")), jint(t, "layers_adapted"), jint(t, "adapter_params"), jint(t, "params"),
           100.0 * json_real_value(json_object_get(t, "adapter_fraction")), jint(t, "layers_skipped"));
}

int cmd_adapters(int argc, char **argv)
{
    adapters_opts o = {.mode = TD_ADAPTER_PRINCIPAL};
    int code = parse(argc, argv, &o);
    if (code) return code < 0 ? TOOL_OK : code;
    tool_outputs g;
    memset(&g, 0, sizeof g);
    g.force = o.force;
    tool_protect_model_inputs(&g, o.in, &o.ma);
    if ((code = tool_output_check(&g, o.out, TD_OUTPUT_HDF5))) return code;
    td_model m;
    if ((code = tool_open_model(&m, o.in, &o.ma, &g))) return code;
    if (m.nlayers == 0) tool_warn("%s has no conv or dense layers (cp and tucker take any dataset as a tensor)", o.in);
    td_adapter *ad = calloc(m.nlayers ? m.nlayers : 1, sizeof *ad);
    const char **reason = calloc(m.nlayers ? m.nlayers : 1, sizeof *reason);
    if (!ad || !reason) code = tool_fail(TOOL_ERESOURCE, o.in, NULL, "out of memory");
    else if (tool_memory_check(memory_need(&m, &o), tool_memory_default(), o.in, NULL)) code = TOOL_ERESOURCE;
    if (!code) {
        tool_core_warning();
        code = split_all(&m, &o, ad, reason);
    }
    if (!code) code = write_output(&m, &o, &g, ad);
    if (!code) {
        json_t *rep = report_json(&m, &o, ad, reason);
        if (o.json) tool_print_json(rep);
        else { report_text(rep); json_decref(rep); }
    }
    tool_outputs_abort(&g);
    for (size_t i = 0; ad && i < m.nlayers; i++) td_adapter_free(&ad[i]);
    free(ad);
    free(reason);
    td_model_free(&m);
    return code;
}
