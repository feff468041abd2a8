/* Writing a decomposed weight file: everything not rewritten is copied object by object
 * (dtype, attributes, groups), rewritten layers become their chain's pieces. */
#include <stdlib.h>
#include <string.h>
#include "io/weights_internal.h"

typedef struct wctx {
    const td_model *m;
    hid_t src, dst;
    const char **skip;     /* HDF5 paths not copied (objects and whole subtrees) */
    size_t nskip;
    td_error *err;
} wctx;

static int is_skipped(const wctx *w, const char *path)
{
    for (size_t i = 0; i < w->nskip; i++)
        if (!strcmp(w->skip[i], path)) return 1;
    return 0;
}

/* 1 when some skipped path lies strictly below path. */
static int has_skipped_below(const wctx *w, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < w->nskip; i++) {
        const char *s = w->skip[i];
        if (!strcmp(path, "/") ? s[0] == '/' && s[1] : (!strncmp(s, path, n) && s[n] == '/')) return 1;
    }
    return 0;
}

static herr_t copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    hid_t dst = *(hid_t *)data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = H5Aget_type(a), s = H5Aget_space(a), b = H5I_INVALID_HID;
    herr_t rc = -1;
    if (a < 0 || t < 0 || s < 0) goto done;
    size_t sz = H5Tget_size(t);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    if (n < 0) goto done;
    void *buf = calloc((size_t)(n ? n : 1), sz ? sz : 1);
    if (!buf) goto done;
    if (H5Aread(a, t, buf) >= 0) {
        if (H5Aexists(dst, name) > 0) H5Adelete(dst, name);
        b = H5Acreate2(dst, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
        if (b >= 0 && H5Awrite(b, t, buf) >= 0) rc = 0;
        if (H5Tdetect_class(t, H5T_VLEN) > 0 || H5Tis_variable_str(t) > 0) H5Dvlen_reclaim(t, s, H5P_DEFAULT, buf);
    }
    free(buf);
done:
    if (b >= 0) H5Aclose(b);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static td_status copy_attrs(hid_t src_obj, hid_t dst_obj)
{
    hsize_t idx = 0;
    return H5Aiterate2(src_obj, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_attr, &dst_obj) < 0 ? TD_EIO : TD_OK;
}

static td_status copy_tree(wctx *w, const char *path);

typedef struct lctx { wctx *w; const char *parent; td_status st; } lctx;

static herr_t copy_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    lctx *c = data;
    if (info->type != H5L_TYPE_HARD) return 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", strcmp(c->parent, "/") ? c->parent : "", name);
    if (is_skipped(c->w, path)) return 0;
    H5O_info_t oi;
    if (H5Oget_info_by_name(c->w->src, path, &oi, H5P_DEFAULT) < 0) { c->st = TD_EFORMAT; return -1; }
    if (oi.type == H5O_TYPE_GROUP && has_skipped_below(c->w, path)) {
        hid_t sg = H5Gopen2(c->w->src, path, H5P_DEFAULT);
        hid_t dg = H5Gcreate2(c->w->dst, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        td_status st = (sg < 0 || dg < 0) ? TD_EIO : copy_attrs(sg, dg);
        if (sg >= 0) H5Gclose(sg);
        if (dg >= 0) H5Gclose(dg);
        if (st == TD_OK) st = copy_tree(c->w, path);
        if (st != TD_OK) { c->st = st; return -1; }
        return 0;
    }
    if (H5Ocopy(c->w->src, path, c->w->dst, path, H5P_DEFAULT, H5P_DEFAULT) < 0) {
        c->st = td__error_set(c->w->err, TD_EIO, c->w->m->file, path, "cannot be copied to the output");
        return -1;
    }
    return 0;
}

static td_status copy_tree(wctx *w, const char *path)
{
    lctx c = {w, path, TD_OK};
    hsize_t idx = 0;
    if (H5Literate_by_name(w->src, path, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_link, &c, H5P_DEFAULT) < 0)
        return c.st != TD_OK ? c.st : TD_EIO;
    return TD_OK;
}

/* Rounds data to dtype through HDF5's own conversion (float16 included), in place. */
static td_status round_to(td_tensor *t, td_dtype dt)
{
    if (dt == TD_DTYPE_F64 || t->size == 0) return TD_OK;
    hid_t ft = td__h5_float_type(dt);
    if (ft < 0) return TD_EINVAL;
    herr_t a = H5Tconvert(H5T_NATIVE_DOUBLE, ft, t->size, t->data, NULL, H5P_DEFAULT);
    herr_t b = a >= 0 ? H5Tconvert(ft, H5T_NATIVE_DOUBLE, t->size, t->data, NULL, H5P_DEFAULT) : -1;
    H5Tclose(ft);
    return (a < 0 || b < 0) ? TD_EIO : TD_OK;
}

td_status td_chain_round(td_chain *c, td_dtype dtype, td_dtype bias_dtype)
{
    if (!c) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = TD_OK;
    for (int p = 0; p < c->npieces && st == TD_OK; p++) {
        st = round_to(&c->pieces[p].kernel, dtype);
        if (st == TD_OK && c->pieces[p].bias.size) st = round_to(&c->pieces[p].bias, bias_dtype);
    }
    td__h5_quiet_end(&q);
    return st;
}

/* OIHW -> HWIO (depthwise pieces (C,1,kh,kw) -> (kh,kw,C,1)); dense (out,in) -> (in,out). */
static td_status to_keras(const td_tensor *k, td_tensor *out)
{
    if (k->ndim == 2) {
        td_status st = td_matrix_alloc(out, k->shape[1], k->shape[0]);
        if (st == TD_OK)
            for (size_t o = 0; o < k->shape[0]; o++)
                for (size_t i = 0; i < k->shape[1]; i++) out->data[i * k->shape[0] + o] = k->data[o * k->shape[1] + i];
        return st;
    }
    size_t co = k->shape[0], ci = k->shape[1], kh = k->shape[2], kw = k->shape[3];
    size_t shape[4] = {kh, kw, ci, co};
    td_status st = td_tensor_alloc(out, 4, shape);
    if (st == TD_OK)
        for (size_t o = 0; o < co; o++)
            for (size_t c = 0; c < ci; c++)
                for (size_t i = 0; i < kh; i++)
                    for (size_t j = 0; j < kw; j++)
                        out->data[((i * kw + j) * ci + c) * co + o] = k->data[((o * ci + c) * kh + i) * kw + j];
    return st;
}

static td_status write_ds(wctx *w, td_outfile *o, const char *path, const td_tensor *t, td_dtype dt)
{
    td_status st = td__h5_make_parents(w->dst, path);
    if (st == TD_OK) st = td_outfile_write(o, path, t, dt, w->err);
    return st;
}

static const char *piece_suffix(td_method m, int p)
{
    /* char arrays, not pointer tables: they stay in .rodata even in PIC builds */
    static const char t2[3][8] = {"t2_in", "t2_core", "t2_out"}, cp[4][5] = {"cp_0", "cp_1", "cp_2", "cp_3"},
                      sv[2][6] = {"svd_0", "svd_1"};
    if (m == TD_METHOD_TUCKER2) return t2[p];
    if (m == TD_METHOD_CP) return cp[p];
    return sv[p];
}

static td_status write_torch(wctx *w, td_outfile *o, const td_model_rewrite *rw, size_t nrw)
{
    td_status st = TD_OK;
    for (size_t r = 0; r < nrw && st == TD_OK; r++) {
        const td_model_layer *l = &w->m->layers[rw[r].layer];
        const td_model_tensor *kt = &w->m->tensors[l->kernel];
        const td_chain *c = rw[r].chain;
        char prefix[600];
        size_t n = strlen(kt->path) - strlen("weight");
        memcpy(prefix, kt->path, n - 1);
        prefix[n - 1] = '\0';
        const char sep = kt->path[n - 1]; /* '.' for flat keys, '/' for nested groups */
        for (int p = 0; p < c->npieces && st == TD_OK; p++) {
            char path[700];
            snprintf(path, sizeof path, "%s%c%d%cweight", prefix, sep, p, sep);
            st = write_ds(w, o, path, &c->pieces[p].kernel, kt->dtype);
            if (st == TD_OK && c->pieces[p].bias.size) {
                snprintf(path, sizeof path, "%s%c%d%cbias", prefix, sep, p, sep);
                st = write_ds(w, o, path, &c->pieces[p].bias, w->m->tensors[l->bias].dtype);
            }
        }
    }
    return st;
}

/* Keras 2: new layer groups with weight_names, layer_names rewritten in place of the old layer. */
static td_status write_keras2(wctx *w, td_outfile *o, const td_model_rewrite *rw, size_t nrw)
{
    const td_model *m = w->m;
    const char *root = strcmp(m->weights_root, "/") ? m->weights_root : "";
    size_t cap = m->keras_nlayer_names + 4 * nrw + 1, n = 0;
    char (*names)[256] = calloc(cap, sizeof *names);
    if (!names) return TD_ENOMEM;
    td_status st = TD_OK;
    for (size_t i = 0; i < m->keras_nlayer_names && st == TD_OK; i++) {
        const td_model_rewrite *hit = NULL;
        for (size_t r = 0; r < nrw; r++)
            if (m->layers[rw[r].layer].group_pos == (int)i) hit = &rw[r];
        if (!hit) { snprintf(names[n++], 256, "%s", m->keras_layer_names[i]); continue; }
        const td_model_layer *l = &m->layers[hit->layer];
        const td_dtype dt = m->tensors[l->kernel].dtype;
        for (int p = 0; p < hit->chain->npieces && st == TD_OK; p++) {
            const td_chain_piece *pc = &hit->chain->pieces[p];
            char ln[256], gpath[700], wn[2][256], dpath[1400];
            snprintf(ln, sizeof ln, "%.200s_%s", l->name, piece_suffix(hit->chain->method, p));
            snprintf(names[n++], 256, "%s", ln);
            const int dw = pc->desc.kind == TD_LAYER_CONV2D && pc->desc.groups > 1 && pc->desc.groups == pc->desc.cin &&
                           pc->kernel.shape[1] == 1 && hit->chain->method == TD_METHOD_CP;
            const char *colon = m->keras_colon_names ? ":0" : "";
            snprintf(wn[0], 256, "%.200s/%s%s", ln, dw ? "depthwise_kernel" : "kernel", colon);
            snprintf(wn[1], 256, "%.200s/bias%s", ln, colon);
            snprintf(gpath, sizeof gpath, "%s/%s", root, ln);
            td_tensor hwio = {0};
            if ((st = to_keras(&pc->kernel, &hwio)) != TD_OK) break;
            snprintf(dpath, sizeof dpath, "%s/%s", gpath, wn[0]);
            st = write_ds(w, o, dpath, &hwio, dt);
            td_tensor_free(&hwio);
            if (st == TD_OK && pc->bias.size) {
                snprintf(dpath, sizeof dpath, "%s/%s", gpath, wn[1]);
                st = write_ds(w, o, dpath, &pc->bias, m->tensors[l->bias].dtype);
            }
            if (st == TD_OK) {
                hid_t g = H5Gopen2(w->dst, gpath, H5P_DEFAULT);
                st = g < 0 ? TD_EIO : td__h5_write_str_list(g, "weight_names", wn, pc->bias.size ? 2 : 1, m->keras_vlen_names);
                if (g >= 0) H5Gclose(g);
            }
        }
    }
    if (st == TD_OK) {
        hid_t g = H5Gopen2(w->dst, m->weights_root, H5P_DEFAULT);
        if (g < 0) st = TD_EIO;
        else {
            for (int k = 0; k < 1000; k++) { /* drop a split form; the list is written whole */
                char nm[32];
                snprintf(nm, sizeof nm, "layer_names%d", k);
                if (H5Aexists(g, nm) <= 0) break;
                H5Adelete(g, nm);
            }
            st = td__h5_write_str_list(g, "layer_names", names, n, m->keras_vlen_names);
            H5Gclose(g);
        }
    }
    free(names);
    return st;
}

/* Keras 3: paths are class name plus a per-class counter, so pieces shift later paths. */
static td_status write_keras3(wctx *w, td_outfile *o, const td_model_rewrite *rw, size_t nrw)
{
    const td_model *m = w->m;
    /* every child of /layers: (class, index) from "class" or "class_<n>" */
    typedef struct entry { char cls[200]; long idx; char src[256]; int rw; } entry;
    size_t cap = 256, n = 0;
    entry *e = calloc(cap, sizeof *e);
    if (!e) return TD_ENOMEM;
    hid_t lg = H5Gopen2(w->src, "/layers", H5P_DEFAULT);
    H5G_info_t gi;
    td_status st = TD_OK;
    if (lg < 0 || H5Gget_info(lg, &gi) < 0) { st = TD_EFORMAT; goto done; }
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char nm[256];
        if (H5Lget_name_by_idx(lg, ".", H5_INDEX_NAME, H5_ITER_INC, i, nm, sizeof nm, H5P_DEFAULT) < 0) { st = TD_EFORMAT; goto done; }
        if (n == cap) {
            entry *ne = realloc(e, 2 * cap * sizeof *e);
            if (!ne) { st = TD_ENOMEM; goto done; }
            e = ne;
            cap *= 2;
        }
        entry *x = &e[n++];
        memset(x, 0, sizeof *x);
        snprintf(x->src, sizeof x->src, "%s", nm);
        snprintf(x->cls, sizeof x->cls, "%.190s", nm);
        x->idx = 0;
        char *us = strrchr(x->cls, '_');
        if (us && us[1]) {
            char *end;
            long v = strtol(us + 1, &end, 10);
            if (!*end && v > 0) { *us = '\0'; x->idx = v; }
        }
        x->rw = -1;
        for (size_t r = 0; r < nrw; r++)
            if (!strcmp(m->layers[rw[r].layer].name, nm)) x->rw = (int)r;
    }
    /* per class, walk entries in numeric order assigning new counters */
    for (size_t a = 0; a < n && st == TD_OK; a++) {
        if (e[a].idx < 0) continue; /* done */
        char cls[200];
        snprintf(cls, sizeof cls, "%s", e[a].cls);
        long next = 0;
        for (;;) {
            long best = -1;
            size_t bi = 0;
            for (size_t b = 0; b < n; b++)
                if (e[b].idx >= 0 && !strcmp(e[b].cls, cls) && (best < 0 || e[b].idx < best)) { best = e[b].idx; bi = b; }
            if (best < 0) break;
            entry *x = &e[bi];
            x->idx = -1;
            char dst[512];
            if (x->rw < 0) {
                if (next == 0) snprintf(dst, sizeof dst, "/layers/%s", cls);
                else snprintf(dst, sizeof dst, "/layers/%s_%ld", cls, next);
                char src[512];
                snprintf(src, sizeof src, "/layers/%s", x->src);
                if (H5Ocopy(w->src, src, w->dst, dst, H5P_DEFAULT, H5P_DEFAULT) < 0) { st = TD_EIO; break; }
                next++;
                continue;
            }
            const td_model_rewrite *hit = &rw[x->rw];
            const td_model_layer *l = &m->layers[hit->layer];
            const td_dtype dt = m->tensors[l->kernel].dtype;
            for (int p = 0; p < hit->chain->npieces && st == TD_OK; p++) {
                const td_chain_piece *pc = &hit->chain->pieces[p];
                if (next == 0) snprintf(dst, sizeof dst, "/layers/%s", cls);
                else snprintf(dst, sizeof dst, "/layers/%s_%ld", cls, next);
                next++;
                char dp[600];
                td_tensor hw = {0};
                if ((st = to_keras(&pc->kernel, &hw)) != TD_OK) break;
                snprintf(dp, sizeof dp, "%s/vars/0", dst);
                st = write_ds(w, o, dp, &hw, dt);
                td_tensor_free(&hw);
                if (st == TD_OK && pc->bias.size) {
                    snprintf(dp, sizeof dp, "%s/vars/1", dst);
                    st = write_ds(w, o, dp, &pc->bias, m->tensors[l->bias].dtype);
                }
            }
        }
    }
done:
    if (lg >= 0) H5Gclose(lg);
    free(e);
    return st;
}

td_status td_model_write(const td_model *m, td_outfile *o, td_model_rewrite *rw, size_t nrw, td_error *err)
{
    if (!m || !o || (!rw && nrw)) return TD_EINVAL;
    for (size_t r = 0; r < nrw; r++) {
        if (rw[r].layer >= m->nlayers || !rw[r].chain) return TD_EINVAL;
        if (m->layout == TD_LAYOUT_KERAS3 && rw[r].chain->method == TD_METHOD_CP)
            return td__error_set(err, TD_EUNSUPPORTED, m->file, m->layers[rw[r].layer].name,
                                 "CP is refused on Keras 3 weights-only files (new DepthwiseConv2D paths cannot be placed)");
    }
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t src;
    td_status st = td__h5_open_ro(m->file, &src, err);
    if (st != TD_OK) { td__h5_quiet_end(&q); return st; }
    const char **skip = calloc(2 * nrw + 4, sizeof(char *));
    size_t ns = 0;
    if (!skip) { st = TD_ENOMEM; goto done; }
    for (size_t r = 0; r < nrw; r++) {
        const td_model_layer *l = &m->layers[rw[r].layer];
        /* rounding the pieces to the file's dtype: what is written is what gets measured */
        const td_dtype dt = m->tensors[l->kernel].dtype;
        for (int p = 0; p < rw[r].chain->npieces && st == TD_OK; p++) {
            st = round_to(&rw[r].chain->pieces[p].kernel, dt);
            if (st == TD_OK && rw[r].chain->pieces[p].bias.size) st = round_to(&rw[r].chain->pieces[p].bias, m->tensors[l->bias].dtype);
        }
        if (m->layout == TD_LAYOUT_TORCH) {
            skip[ns++] = m->tensors[l->kernel].path;
            if (l->bias >= 0) skip[ns++] = m->tensors[l->bias].path;
        } else if (m->layout == TD_LAYOUT_KERAS2) {
            skip[ns++] = l->group;
        }
    }
    if (st != TD_OK) goto done;
    if (m->layout == TD_LAYOUT_KERAS2) skip[ns++] = "/optimizer_weights";
    if (m->layout == TD_LAYOUT_KERAS3) { skip[ns++] = "/layers"; skip[ns++] = "/optimizer"; }
    wctx w = {m, src, (hid_t)td_outfile_handle(o), skip, ns, err};
    if (copy_attrs(src, w.dst) != TD_OK) { st = td__error_set(err, TD_EIO, m->file, "/", "root attributes cannot be copied"); goto done; }
    if ((st = copy_tree(&w, "/")) != TD_OK) {
        if (err && err->status == TD_OK) td__error_set(err, st, m->file, NULL, "cannot copy the file's objects");
        goto done;
    }
    if (m->layout == TD_LAYOUT_TORCH) st = write_torch(&w, o, rw, nrw);
    else if (m->layout == TD_LAYOUT_KERAS2) {
        /* the architecture JSON no longer matches: dropped (README says how to rebuild) */
        if (H5Aexists(w.dst, "model_config") > 0) H5Adelete(w.dst, "model_config");
        st = write_keras2(&w, o, rw, nrw);
    } else {
        hid_t sg = H5Gopen2(src, "/layers", H5P_DEFAULT), dg = H5Gcreate2(w.dst, "/layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (sg < 0 || dg < 0) st = TD_EIO;
        else st = copy_attrs(sg, dg);
        if (sg >= 0) H5Gclose(sg);
        if (dg >= 0) H5Gclose(dg);
        if (st == TD_OK) st = write_keras3(&w, o, rw, nrw);
    }
    if (st != TD_OK && err && err->status == TD_OK) td__error_set(err, st, o->final_path, NULL, "writing the decomposed layers failed");
done:
    free(skip);
    H5Fclose(src);
    td__h5_quiet_end(&q);
    return st;
}

td_status td_tensor_round(td_tensor *t, td_dtype dtype)
{
    if (!t) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = round_to(t, dtype);
    td__h5_quiet_end(&q);
    return st;
}

/* Writes t (same element count) at src's path with src's shape, dtype and attributes. */
static td_status replace_ds(wctx *w, td_outfile *o, const td_model_tensor *src, const td_tensor *t)
{
    td_tensor view;
    td_status st = td_tensor_view(&view, src->ndim, src->shape, t->data);
    if (st == TD_OK && view.size != t->size) st = TD_ESHAPE;
    if (st == TD_OK) st = write_ds(w, o, src->path, &view, src->dtype);
    if (st != TD_OK) return st;
    hid_t s = H5Dopen2(w->src, src->path, H5P_DEFAULT), d = H5Dopen2(w->dst, src->path, H5P_DEFAULT);
    st = (s < 0 || d < 0) ? TD_EIO : copy_attrs(s, d);
    if (s >= 0) H5Dclose(s);
    if (d >= 0) H5Dclose(d);
    return st;
}

td_status td_model_write_adapters(const td_model *m, td_outfile *o, td_model_adapter *ad, size_t n, td_error *err)
{
    if (!m || !o || (!ad && n)) return TD_EINVAL;
    for (size_t r = 0; r < n; r++)
        if (ad[r].layer >= m->nlayers || !ad[r].adapter || !ad[r].adapter->a.data) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t src;
    td_status st = td__h5_open_ro(m->file, &src, err);
    if (st != TD_OK) { td__h5_quiet_end(&q); return st; }
    const char **skip = calloc(n + 1, sizeof(char *));
    if (!skip) { st = TD_ENOMEM; goto done; }
    for (size_t r = 0; r < n && st == TD_OK; r++) {
        const td_model_layer *l = &m->layers[ad[r].layer];
        const td_dtype dt = m->tensors[l->kernel].dtype;
        td_adapter *a = ad[r].adapter;
        /* what is written is what gets measured */
        if ((st = round_to(&a->frozen, dt)) == TD_OK && (st = round_to(&a->a, dt)) == TD_OK) st = round_to(&a->b, dt);
        skip[r] = m->tensors[l->kernel].path;
    }
    if (st != TD_OK) goto done;
    wctx w = {m, src, (hid_t)td_outfile_handle(o), skip, n, err};
    if (copy_attrs(src, w.dst) != TD_OK) { st = td__error_set(err, TD_EIO, m->file, "/", "root attributes cannot be copied"); goto done; }
    if ((st = copy_tree(&w, "/")) != TD_OK) {
        if (err && err->status == TD_OK) td__error_set(err, st, m->file, NULL, "cannot copy the file's objects");
        goto done;
    }
    for (size_t r = 0; r < n && st == TD_OK; r++) {
        const td_model_layer *l = &m->layers[ad[r].layer];
        const td_model_tensor *kt = &m->tensors[l->kernel];
        const td_adapter *a = ad[r].adapter;
        char pa[1200], pb[1200];
        if (m->layout == TD_LAYOUT_TORCH) {
            /* <prefix>.weight -> <prefix>.lora_A (or <prefix>/lora_A for nested groups) */
            size_t k = strlen(kt->path) - strlen("weight");
            snprintf(pa, sizeof pa, "%.*slora_A", (int)k, kt->path);
            snprintf(pb, sizeof pb, "%.*slora_B", (int)k, kt->path);
            st = replace_ds(&w, o, kt, &a->frozen);
        } else {
            td_tensor kk = {0};
            st = to_keras(&a->frozen, &kk);
            if (st == TD_OK) st = replace_ds(&w, o, kt, &kk);
            td_tensor_free(&kk);
            snprintf(pa, sizeof pa, "/tdecomp_adapters/%.500s.lora_A", l->name);
            snprintf(pb, sizeof pb, "/tdecomp_adapters/%.500s.lora_B", l->name);
        }
        if (st == TD_OK) st = write_ds(&w, o, pa, &a->a, kt->dtype);
        if (st == TD_OK) st = write_ds(&w, o, pb, &a->b, kt->dtype);
        if (st != TD_OK && err && err->status == TD_OK)
            td__error_set(err, st, o->final_path, l->name, "writing the adapter failed");
    }
done:
    free(skip);
    H5Fclose(src);
    td__h5_quiet_end(&q);
    return st;
}
