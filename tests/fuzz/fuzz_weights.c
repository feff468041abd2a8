/* libFuzzer harness: a fuzzed *description* of a weight file (layout, layers, shapes, dtypes,
 * Keras attribute forms, deliberate damage, a layer spec) is written as a valid HDF5 file, then
 * read, planned, decomposed and rewritten by the library. Any status is fine; crashes, sanitizer
 * reports and leaks are findings. HDF5 is used directly here (a test), never by library users.
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tdecomp.h"

typedef struct rd { const uint8_t *p; size_t n; } rd;
static unsigned take(rd *r, unsigned mod)
{
    if (!r->n || !mod) return 0;
    unsigned v = r->p[0] % mod;
    r->p++;
    r->n--;
    return v;
}

static void write_ds(hid_t loc, const char *name, int nd, const hsize_t *dims, int dtype, int nan, unsigned seed)
{
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    hid_t ft = dtype == 0 ? H5Tcopy(H5T_IEEE_F32LE) : (dtype == 1 ? H5Tcopy(H5T_IEEE_F64LE) : H5Tcopy(H5T_STD_I32LE));
    hsize_t n = 1;
    for (int k = 0; k < nd; k++) n *= dims[k];
    double *buf = malloc((n ? n : 1) * sizeof(double));
    for (hsize_t i = 0; i < n; i++) buf[i] = (double)((seed * 2654435761u + i * 40503u) % 2001) / 1000.0 - 1.0;
    if (nan && n) buf[n / 2] = nan == 1 ? 0.0 / 0.0 : 1.0 / 0.0;
    hid_t d = H5Dcreate2(loc, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) { H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); H5Dclose(d); }
    free(buf);
    H5Tclose(ft);
    H5Sclose(sp);
}

static void str_list(hid_t loc, const char *name, char names[][64], int n, int form)
{
    hsize_t dims[1] = {(hsize_t)n};
    if (form == 3) { /* empty list as a float64 array */
        hsize_t z[1] = {0};
        hid_t sp = H5Screate_simple(1, z, NULL);
        hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Aclose(a);
        H5Sclose(sp);
        return;
    }
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate_simple(1, dims, NULL);
    if (form == 0) {
        const char *ptr[16];
        for (int i = 0; i < n; i++) ptr[i] = names[i];
        H5Tset_size(t, H5T_VARIABLE);
        hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) { H5Awrite(a, t, ptr); H5Aclose(a); }
    } else {
        char buf[16 * 64] = {0};
        size_t w = 8; /* fixed width, names may fill it with no NUL */
        for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * w, names[i], strnlen(names[i], w));
        H5Tset_size(t, w);
        H5Tset_strpad(t, H5T_STR_NULLPAD);
        hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) { H5Awrite(a, t, buf); H5Aclose(a); }
    }
    H5Tclose(t);
    H5Sclose(sp);
}

/* The decomposed file read back as verify does: its records, each chain composed. */
static void read_back(const char *path)
{
    td_model d;
    td_error err;
    if (td_model_open(&d, path, TD_LAYOUT_AUTO, &err) != TD_OK) return;
    td_model_record *r = NULL;
    size_t n = 0;
    if (td_model_records(&d, &r, &n, &err) == TD_OK)
        for (size_t i = 0; i < n; i++) {
            td_chain c;
            if (r[i].method == TD_METHOD_NONE || td_model_read_chain(&d, &r[i], &c, &err) != TD_OK) continue;
            td_tensor w;
            if (td_tensor_alloc(&w, r[i].ndim, r[i].shape) == TD_OK && td_chain_compose(&c, &w) != TD_OK) { /* a mismatch is refused */ }
            td_tensor_free(&w);
            td_chain_free(&c);
        }
    td_model_records_free(r, n);
    td_model_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    char path[64], out[64], spec[64];
    snprintf(path, sizeof path, "/dev/shm/tdfuzz-%d.h5", (int)getpid());
    snprintf(out, sizeof out, "/dev/shm/tdfuzz-%d-out.h5", (int)getpid());
    snprintf(spec, sizeof spec, "/dev/shm/tdfuzz-%d.json", (int)getpid());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 0;
    const unsigned layout = take(&r, 3), nl = 1 + take(&r, 4);
    char names[16][64];
    for (unsigned l = 0; l < nl; l++) {
        const unsigned conv = take(&r, 4) != 0, co = 1 + take(&r, 7), ci = 1 + take(&r, 7), kh = 1 + take(&r, 3),
                       kw = 1 + take(&r, 3), bias = take(&r, 2), dtype = take(&r, 5) == 0 ? 2 : take(&r, 2),
                       nan = take(&r, 9) == 0 ? 1 + take(&r, 2) : 0, damage = take(&r, 8);
        if (l && take(&r, 6) == 0) memcpy(names[l], names[l - 1], 64); /* a duplicate name */
        else snprintf(names[l], 64, "layer_%u", l);
        hsize_t kd[4], bd[1] = {damage == 1 ? co + 1 : co};
        int nd = conv ? 4 : 2;
        if (layout == 0) { /* torch: OIHW, dotted keys */
            if (conv) { kd[0] = co; kd[1] = ci; kd[2] = kh; kd[3] = kw; } else { kd[0] = co; kd[1] = ci; }
            char k[96];
            snprintf(k, sizeof k, "%s.weight", names[l]);
            if (damage != 2) write_ds(f, k, nd, kd, dtype, nan, l);
            snprintf(k, sizeof k, "%s.bias", names[l]);
            if (bias) write_ds(f, k, 1, bd, 0, 0, l + 7);
        } else if (layout == 1) { /* keras 2 */
            if (conv) { kd[0] = kh; kd[1] = kw; kd[2] = ci; kd[3] = co; } else { kd[0] = ci; kd[1] = co; }
            hid_t g = H5Gcreate2(f, names[l], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0) continue;
            char wn[2][64];
            snprintf(wn[0], 64, "%s/kernel:0", names[l]);
            snprintf(wn[1], 64, "%s/bias:0", names[l]);
            if (damage != 2) {
                hid_t lc = H5Pcreate(H5P_LINK_CREATE);
                H5Pset_create_intermediate_group(lc, 1);
                hid_t sp = H5Screate_simple(nd, kd, NULL);
                hid_t d = H5Dcreate2(g, wn[0], dtype == 2 ? H5T_STD_I32LE : H5T_IEEE_F32LE, sp, lc, H5P_DEFAULT, H5P_DEFAULT);
                if (d >= 0) H5Dclose(d);
                H5Sclose(sp);
                if (bias) {
                    sp = H5Screate_simple(1, bd, NULL);
                    d = H5Dcreate2(g, wn[1], H5T_IEEE_F32LE, sp, lc, H5P_DEFAULT, H5P_DEFAULT);
                    if (d >= 0) H5Dclose(d);
                    H5Sclose(sp);
                }
                H5Pclose(lc);
            }
            str_list(g, "weight_names", wn, bias ? 2 : 1, (int)take(&r, 4));
            H5Gclose(g);
        } else { /* keras 3 */
            if (conv) { kd[0] = kh; kd[1] = kw; kd[2] = ci; kd[3] = co; } else { kd[0] = ci; kd[1] = co; }
            char k[128];
            snprintf(k, sizeof k, "/layers/%s/vars/0", names[l]);
            hid_t lc = H5Pcreate(H5P_LINK_CREATE);
            H5Pset_create_intermediate_group(lc, 1);
            hid_t sp = H5Screate_simple(nd, kd, NULL);
            hid_t d = damage == 2 ? -1 : H5Dcreate2(f, k, H5T_IEEE_F32LE, sp, lc, H5P_DEFAULT, H5P_DEFAULT);
            if (d >= 0) H5Dclose(d);
            H5Sclose(sp);
            H5Pclose(lc);
        }
    }
    if (layout == 1) str_list(f, "layer_names", names, (int)nl, (int)take(&r, 2));
    H5Fclose(f);
    /* the rest of the input is a layer spec, half of the time */
    const int use_spec = take(&r, 2);
    if (use_spec) {
        FILE *s = fopen(spec, "wb");
        if (s) { fwrite(r.p, 1, r.n, s); fclose(s); }
    }
    td_model m;
    td_error err;
    if (td_model_open(&m, path, TD_LAYOUT_AUTO, &err) == TD_OK) {
        td_status st = use_spec ? td_model_apply_spec(&m, spec, &err) : TD_OK;
        td_tensor k[16] = {{0}}, b[16] = {{0}};
        td_plan_layer pl[16];
        td_plan_decision dec[16];
        const td_tensor *kp[16];
        size_t n = 0;
        for (size_t i = 0; st == TD_OK && i < m.nlayers && i < 16; i++, n++) {
            st = td_model_read_layer(&m, i, &k[i], &b[i], &err);
            memset(&pl[i], 0, sizeof pl[i]);
            pl[i].name = m.layers[i].name;
            pl[i].desc = m.layers[i].desc;
            pl[i].admits = m.layers[i].admits;
            pl[i].excluded = (size >> 3) % 5 == 0;
            kp[i] = &k[i];
        }
        if (st == TD_OK && n) {
            td_plan_options o;
            td_plan_options_init(&o);
            o.rule = (td_rule_kind)(1 + (size % 8));
            o.rank = 1 + size % 3;
            o.ranks[0] = o.ranks[1] = 2;
            o.value = 0.5;
            td_plan_summary ps;
            if (td_plan_kernels(pl, kp, n, &o, dec, &ps, &err) == TD_OK) {
                td_chain ch[16];
                td_model_rewrite rw[16];
                size_t nrw = 0;
                memset(ch, 0, sizeof ch);
                for (size_t i = 0; i < n; i++) {
                    if (dec[i].skipped) continue;
                    td_status s2 = td_plan_build(&pl[i], &k[i], &b[i], &dec[i], NULL, &ch[i]);
                    if (s2 == TD_OK) { rw[nrw].layer = i; rw[nrw++].layout = &ch[i]; }
                }
                td_outfile *of;
                for (size_t i = 0; i < nrw; i++)
                    if (td_model_round_chain(&m, rw[i].layer, &ch[rw[i].layer]) != TD_OK) nrw = i;
                if (td_outfile_create(&of, out, TD_OUTPUT_HDF5, NULL, 0, 1, &err) == TD_OK) {
                    if (td_model_write(&m, of, TD_FORMAT_HDF5, rw, nrw, &err) == TD_OK) {
                        if (td_outfile_commit(of, &err) == TD_OK) read_back(out);
                    } else {
                        td_outfile_abort(of);
                    }
                }
                for (size_t i = 0; i < n; i++) td_chain_free(&ch[i]);
            }
        }
        if (st == TD_OK && n) {
            /* the same layers through the adapter split and the adapters writer */
            td_adapter ad[16];
            td_model_adapter ma[16];
            size_t na = 0;
            memset(ad, 0, sizeof ad);
            for (size_t i = 0; i < n; i++)
                if (!m.layers[i].maybe_depthwise &&
                    td_layer_adapter(&m.layers[i].desc, &k[i], 1 + size % 2, (td_adapter_mode)(size % 2), 2.0, &ad[i]) == TD_OK) {
                    ma[na].layer = i;
                    ma[na++].adapter = &ad[i];
                }
            td_outfile *of;
            if (td_outfile_create(&of, out, TD_OUTPUT_HDF5, NULL, 0, 1, &err) == TD_OK) {
                if (td_model_write_adapters(&m, of, TD_FORMAT_HDF5, ma, na, NULL, &err) == TD_OK) {
                    if (td_outfile_commit(of, &err) != TD_OK) { /* freed either way */ }
                } else {
                    td_outfile_abort(of);
                }
            }
            for (size_t i = 0; i < n; i++) td_adapter_free(&ad[i]);
        }
        for (size_t i = 0; i < 16; i++) { td_tensor_free(&k[i]); td_tensor_free(&b[i]); }
        td_model_free(&m);
    }
    unlink(path);
    unlink(out);
    unlink(spec);
    return 0;
}
