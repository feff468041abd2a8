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

static json_t *pair(const size_t s[2]) { return tool_json_sizes(s, 2); }

/* Every adapter is kept until the file is written (frozen part + factors), plus the largest
 * layer's SVD workspace (its matrix, U, V^T and a copy: 4 kernels). Checked before any split, so
 * an absurd rank is refused by size. */
static double memory_need(const td_model *m, size_t rank)
{
    double kept = 0, largest = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        td_cost c;
        size_t as[2], bs[2];
        if (td_layer_cost(&m->layers[i].desc, &c) != TD_OK) continue;
        const int fits = td_adapter_shapes(&m->layers[i].desc, rank, as, bs) == TD_OK;
        kept += (double)c.params + (fits ? (double)as[0] * (double)as[1] + (double)bs[0] * (double)bs[1] : 0);
        if ((double)c.params > largest) largest = (double)c.params;
    }
    return 8.0 * (kept + 4.0 * largest);
}

int cmd_adapters(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *v;
    int force = 0, json = 0, r, have_alpha = 0;
    tool_model_args ma = {0};
    size_t rank = 0;
    double alpha = 0;
    td_adapter_mode mode = TD_ADAPTER_PRINCIPAL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(cmd_adapters_usage, stdout); return TOOL_OK; }
        if (!strcmp(a, "--force")) { force = 1; continue; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if ((r = tool_model_option(argc, argv, &i, "adapters", &ma))) {
            if (r < 0) return TOOL_EUSAGE;
        } else if ((r = tool_opt_value(argc, argv, &i, "-o", &v)) || (r = tool_opt_value(argc, argv, &i, "--output", &v))) {
            if (r < 0) return tool_usage_error("adapters: -o needs a file name");
            out = v;
        } else if ((r = tool_opt_value(argc, argv, &i, "--rank", &v))) {
            if (r < 0 || tool_parse_size(v, 1, 1000000, &rank))
                return tool_usage_error("adapters: --rank needs a whole number >= 1, got '%s'", r < 0 ? "" : v);
        } else if ((r = tool_opt_value(argc, argv, &i, "--mode", &v))) {
            if (r < 0 || (strcmp(v, "principal") && strcmp(v, "residual")))
                return tool_usage_error("adapters: --mode must be principal or residual");
            mode = strcmp(v, "principal") ? TD_ADAPTER_RESIDUAL : TD_ADAPTER_PRINCIPAL;
        } else if ((r = tool_opt_value(argc, argv, &i, "--alpha", &v))) {
            if (r < 0 || tool_parse_double(v, &alpha) || !(alpha > 0) || !isfinite(alpha))
                return tool_usage_error("adapters: --alpha needs a number > 0, got '%s'", r < 0 ? "" : v);
            have_alpha = 1;
        } else if (a[0] == '-' && a[1]) {
            return tool_usage_error("adapters: unknown option '%s' (see 'tdecomp-tool adapters --help')", a);
        } else if (!in) in = a;
        else return tool_usage_error("adapters: unexpected argument '%s'", a);
    }
    if (!in) return tool_usage_error("adapters: missing input file");
    if (!rank) return tool_usage_error("adapters: --rank r is required");
    if (!out) return tool_usage_error("adapters: missing -o OUT");
    if (!have_alpha) alpha = (double)rank;

    td_error err;
    td_error_clear(&err);
    td_status st;
    tool_outputs g;
    memset(&g, 0, sizeof g);
    g.force = force;
    tool_protect(&g, in);
    tool_protect(&g, ma.spec);
    int rc = tool_output_check(&g, out, TD_OUTPUT_HDF5);
    if (rc) return rc;
    td_model m;
    rc = tool_open_model(&m, in, &ma, &g);
    if (rc) return rc;
    const size_t n = m.nlayers;
    if (n == 0) tool_warn("%s has no conv or dense layers (cp and tucker take any dataset as a tensor)", in);
    td_adapter *ad = calloc(n ? n : 1, sizeof *ad);
    td_model_adapter *list = calloc(n ? n : 1, sizeof *list);
    const char **reason = calloc(n ? n : 1, sizeof *reason);
    uint64_t *lparams = calloc(n ? n : 1, sizeof *lparams);
    json_t *rep = NULL;
    int code = TOOL_OK;
    size_t nad = 0;
    if (!ad || !list || !reason || !lparams) { code = tool_fail(TOOL_ERESOURCE, in, NULL, "out of memory"); goto done; }
    if (tool_memory_check(memory_need(&m, rank), tool_memory_default(), in, NULL)) { code = TOOL_ERESOURCE; goto done; }
    tool_core_warning();
    for (size_t i = 0; i < n; i++) {
        const td_model_layer *ml = &m.layers[i];
        td_cost c;
        if (td_layer_cost(&ml->desc, &c) != TD_OK) { code = tool_fail(TOOL_EINPUT, in, ml->name, "invalid layer geometry"); goto done; }
        lparams[i] = c.params;
        if (!tool_layer_selected(&ma, ml->name)) { reason[i] = "excluded"; continue; }
        if (ml->maybe_depthwise) { reason[i] = "possibly depthwise: groups unknown (state them in --layer-spec)"; continue; }
        if (ml->cls == TD_CLASS_GROUPED && ml->desc.groups <= 1) { reason[i] = "grouped: groups unknown (state them in --layer-spec)"; continue; }
        if (ml->desc.kind == TD_LAYER_CONV2D && ml->desc.kh != ml->desc.kw) { reason[i] = "non-square kernel (loralib's conv layout needs kh == kw)"; continue; }
        td_tensor k, b;
        if ((st = td_model_read_layer(&m, i, &k, &b, &err)) != TD_OK) { code = tool_fail_status(st, &err, in, ml->name); goto done; }
        st = td_layer_adapter(&ml->desc, &k, rank, mode, alpha, &ad[i]);
        /* the error of what is written: rounded to the file's dtype, composed back */
        const td_dtype dt = m.tensors[ml->kernel].dtype;
        if (st == TD_OK && (st = td_tensor_round(&ad[i].frozen, dt)) == TD_OK && (st = td_tensor_round(&ad[i].a, dt)) == TD_OK &&
            (st = td_tensor_round(&ad[i].b, dt)) == TD_OK)
            st = td_adapter_rel_error(&ad[i], &k, &ad[i].rel_error);
        td_tensor_free(&k);
        td_tensor_free(&b);
        if (st != TD_OK) { code = tool_fail(tool_exit_for(st), in, ml->name, "adapter split failed: %s", td_strerror(st)); goto done; }
        list[nad].layer = i;
        list[nad++].adapter = &ad[i];
    }
    {
        td_outfile *of;
        /* adapters keep the input's format (a safetensors file's metadata is written by the library) */
        const int st_out = td_format_choose(TD_FORMAT_AUTO, out, &m) == TD_FORMAT_SAFETENSORS;
        if (st_out != (m.layout == TD_LAYOUT_SAFETENSORS)) {
            code = tool_fail(TOOL_EINPUT, out, NULL, "adapters keep the input's format: HDF5 from HDF5, safetensors from safetensors");
            goto done;
        }
        if ((code = tool_output_open(&g, out, st_out ? TD_OUTPUT_BYTES : TD_OUTPUT_HDF5, &of))) goto done;
        tool_set_phase(TOOL_PHASE_WRITING);
        st = td_model_write_adapters(&m, of, st_out ? TD_FORMAT_SAFETENSORS : TD_FORMAT_HDF5, list, nad, &err);
        if (st == TD_OK && !st_out) st = tool_stamp(of, &err);
        if (st == TD_OK && !st_out) st = td_outfile_attr_number(of, "/", "tdecomp_adapters_rank", (double)rank, 1, &err);
        if (st == TD_OK && !st_out) st = td_outfile_attr_number(of, "/", "tdecomp_adapters_alpha", alpha, 0, &err);
        if (st == TD_OK && !st_out) st = td_outfile_attr_string(of, "/", "tdecomp_adapters_mode", mode ? "residual" : "principal", &err);
        if (st != TD_OK) { code = tool_fail_status(st, &err, out, NULL); goto done; }
        if ((code = tool_outputs_commit(&g))) goto done;
    }
    /* report */
    const uint64_t total = td_model_total_elements(&m); /* the model's parameters, biases included (as docs/maths.md's MLP example counts) */
    uint64_t added = 0;
    size_t nskip = 0;
    json_t *layers = json_array();
    if (!json)
        printf("%-28s %-9s %-18s %-14s %-14s %10s %10s %9s %9s  %s\n", "layer", "kind", "shape", "lora_A", "lora_B", "params",
               "adapter", "trunc_err", "rel_err", "note");
    for (size_t i = 0; i < n; i++) {
        const td_model_layer *ml = &m.layers[i];
        const td_adapter *a = &ad[i];
        const int ok = a->a.data != NULL;
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(ml->name));
        json_object_set_new(x, "kind", json_string(tool_kind_name(ml)));
        json_object_set_new(x, "shape", tool_layer_shape(ml));
        json_object_set_new(x, "dtype", json_string(m.tensors[ml->kernel].dtype_name));
        json_object_set_new(x, "params", json_integer((json_int_t)lparams[i]));
        json_object_set_new(x, "lora_A_shape", ok ? pair(a->a.shape) : json_null());
        json_object_set_new(x, "lora_B_shape", ok ? pair(a->b.shape) : json_null());
        json_object_set_new(x, "inner_rank", ok ? json_integer((json_int_t)a->inner) : json_null());
        json_object_set_new(x, "effective_rank", ok ? json_integer((json_int_t)a->effective) : json_null());
        json_object_set_new(x, "adapter_params", json_integer(ok ? (json_int_t)a->params : 0));
        json_object_set_new(x, "rel_error_truncated", ok ? tool_json_real(a->rel_error_truncated) : json_null());
        json_object_set_new(x, "rel_error", ok ? tool_json_real(a->rel_error) : json_null());
        json_object_set_new(x, "skipped", json_boolean(!ok));
        json_object_set_new(x, "reason", ok ? json_null() : json_string(reason[i]));
        json_array_append_new(layers, x);
        if (ok) added += a->params;
        else nskip++;
        if (!json) {
            char sh[40], as[32] = "-", bs[32] = "-";
            if (ml->desc.kind == TD_LAYER_DENSE) snprintf(sh, sizeof sh, "(%zu,%zu)", ml->desc.cout, ml->desc.cin);
            else snprintf(sh, sizeof sh, "(%zu,%zu,%zu,%zu)", ml->desc.cout, ml->desc.cin / (ml->desc.groups ? ml->desc.groups : 1), ml->desc.kh, ml->desc.kw);
            if (ok) {
                snprintf(as, sizeof as, "(%zu,%zu)", a->a.shape[0], a->a.shape[1]);
                snprintf(bs, sizeof bs, "(%zu,%zu)", a->b.shape[0], a->b.shape[1]);
            }
            char note[120] = "";
            if (!ok) snprintf(note, sizeof note, "%s", reason[i]);
            else if (a->effective < a->inner) snprintf(note, sizeof note, "only %zu of %zu triplets exist", a->effective, a->inner);
            printf("%-28.28s %-9s %-18s %-14s %-14s %10llu %10llu %9.4g %9.3g  %s\n", ml->name, tool_kind_name(ml), sh, as, bs,
                   (unsigned long long)lparams[i], (unsigned long long)(ok ? a->params : 0), ok ? a->rel_error_truncated : 0.0,
                   ok ? a->rel_error : 0.0, note);
        }
    }
    if (!json)
        printf("adapters (%s, rank %zu, alpha %g, scaling %g): %zu layers, %llu adapter parameters added to %llu (%.3f%%); %zu skipped\n",
               mode ? "residual" : "principal", rank, alpha, alpha / (double)rank, nad, (unsigned long long)added,
               (unsigned long long)total, 100.0 * (double)added / (double)(total ? total : 1), nskip);
    rep = json_object();
    json_t *opts = json_object(), *tot = json_object();
    json_object_set_new(opts, "rank", json_integer((json_int_t)rank));
    json_object_set_new(opts, "mode", json_string(mode ? "residual" : "principal"));
    json_object_set_new(opts, "alpha", json_real(alpha));
    json_object_set_new(opts, "scaling", json_real(alpha / (double)rank));
    json_object_set_new(tot, "params", json_integer((json_int_t)total));
    json_object_set_new(tot, "adapter_params", json_integer((json_int_t)added));
    json_object_set_new(tot, "adapter_fraction", json_real((double)added / (double)(total ? total : 1)));
    json_object_set_new(tot, "layers_adapted", json_integer((json_int_t)nad));
    json_object_set_new(tot, "layers_skipped", json_integer((json_int_t)nskip));
    json_object_set_new(rep, "tdecomp_adapters", json_integer(1));
    json_object_set_new(rep, "version", json_string(td_version()));
    json_object_set_new(rep, "input", json_string(in));
    json_object_set_new(rep, "output", json_string(out));
    json_object_set_new(rep, "layout", json_string(td_layout_name(m.layout)));
    json_object_set_new(rep, "options", opts);
    json_object_set_new(rep, "layers", layers);
    json_object_set_new(rep, "totals", tot);
    if (json) { tool_print_json(rep); rep = NULL; }
done:
    tool_outputs_abort(&g);
    json_decref(rep);
    for (size_t i = 0; ad && i < n; i++) td_adapter_free(&ad[i]);
    free(ad);
    free(list);
    free(reason);
    free(lparams);
    td_model_free(&m);
    return code;
}
