/* The streaming writer's HDF5 backend: everything that stays is copied object by object from the
 * open input (dtype, attributes, groups) when the writer opens; pieces are written as they come. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/convert_internal.h"
#include "io/writer_internal.h"

typedef struct copy_ctx {
    const td_model *m;
    hid_t src, dst;
    const char **skip;     /* HDF5 paths not copied (objects and whole subtrees) */
    size_t nskip;
    const char *skip_attr; /* a root attribute not copied, or NULL */
    td_error *err;
    td_status st;
} copy_ctx;

static int is_skipped(const copy_ctx *c, const char *path)
{
    for (size_t i = 0; i < c->nskip; i++)
        if (!strcmp(c->skip[i], path)) return 1;
    return 0;
}

/* 1 when some skipped path lies strictly below path. */
static int has_skipped_below(const copy_ctx *c, const char *path)
{
    const size_t n = strlen(path);
    for (size_t i = 0; i < c->nskip; i++) {
        const char *s = c->skip[i];
        if (!strcmp(path, "/") ? s[0] == '/' && s[1] : (!strncmp(s, path, n) && s[n] == '/')) return 1;
    }
    return 0;
}

typedef struct attr_ctx { hid_t dst; const char *skip; } attr_ctx;

static herr_t copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    const attr_ctx *ac = data;
    if (ac->skip && !strcmp(name, ac->skip)) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = H5Aget_type(a), s = H5Aget_space(a), b = H5I_INVALID_HID;
    herr_t rc = -1;
    const size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    const hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    void *buf = a >= 0 && n >= 0 ? calloc((size_t)(n ? n : 1), sz ? sz : 1) : NULL;
    if (buf && H5Aread(a, t, buf) >= 0) {
        if (H5Aexists(ac->dst, name) > 0) H5Adelete(ac->dst, name);
        b = H5Acreate2(ac->dst, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
        if (b >= 0 && H5Awrite(b, t, buf) >= 0) rc = 0;
        if (H5Tdetect_class(t, H5T_VLEN) > 0 || H5Tis_variable_str(t) > 0) H5Dvlen_reclaim(t, s, H5P_DEFAULT, buf);
    }
    free(buf);
    if (b >= 0) H5Aclose(b);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static td_status copy_attrs(hid_t src_obj, hid_t dst_obj, const char *skip)
{
    hsize_t idx = 0;
    attr_ctx ac = {dst_obj, skip};
    return H5Aiterate2(src_obj, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_attr, &ac) < 0 ? TD_EIO : TD_OK;
}

static td_status copy_tree(copy_ctx *c, const char *path);

typedef struct link_ctx { copy_ctx *c; const char *parent; } link_ctx;

static herr_t copy_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    link_ctx *lc = data;
    copy_ctx *c = lc->c;
    if (info->type != H5L_TYPE_HARD) return 0;
    const size_t len = strlen(lc->parent) + strlen(name) + 2;
    char *path = malloc(len);
    if (!path) { c->st = TD_ENOMEM; return -1; }
    snprintf(path, len, "%s/%s", strcmp(lc->parent, "/") ? lc->parent : "", name);
    herr_t rc = 0;
    H5O_info_t oi;
    if (is_skipped(c, path)) goto done;
    rc = -1;
    if (H5Oget_info_by_name(c->src, path, &oi, H5P_DEFAULT) < 0) { c->st = TD_EFORMAT; goto done; }
    if (oi.type == H5O_TYPE_GROUP && has_skipped_below(c, path)) {
        hid_t sg = H5Gopen2(c->src, path, H5P_DEFAULT), dg = H5Gcreate2(c->dst, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        td_status st = (sg < 0 || dg < 0) ? TD_EIO : copy_attrs(sg, dg, NULL);
        if (sg >= 0) H5Gclose(sg);
        if (dg >= 0) H5Gclose(dg);
        if (st == TD_OK) st = copy_tree(c, path);
        if (st != TD_OK) { c->st = st; goto done; }
        rc = 0;
        goto done;
    }
    if (H5Ocopy(c->src, path, c->dst, path, H5P_DEFAULT, H5P_DEFAULT) < 0) {
        c->st = td__error_set(c->err, TD_EIO, c->m->file, path, "cannot be copied to the output (disk full?)");
        goto done;
    }
    rc = 0;
done:
    free(path);
    return rc;
}

static td_status copy_tree(copy_ctx *c, const char *path)
{
    link_ctx lc = {c, path};
    hsize_t idx = 0;
    if (H5Literate_by_name(c->src, path, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_link, &lc, H5P_DEFAULT) < 0)
        return c->st != TD_OK ? c->st : TD_EIO;
    return TD_OK;
}

td_status td__to_keras(const td_tensor *k, int depthwise, td_tensor *out)
{
    const int dense = k->ndim == 2;
    const size_t co = k->shape[0], ci = k->shape[1], kh = dense ? 1 : k->shape[2], kw = dense ? 1 : k->shape[3];
    /* depthwise (C, 1, kh, kw): Keras (kh, kw, C, multiplier 1) */
    const size_t kci = depthwise ? co : ci, kco = depthwise ? 1 : co;
    size_t shape[4] = {kh, kw, kci, kco};
    td_status st = dense ? td_matrix_alloc(out, ci, co) : td_tensor_alloc(out, 4, shape);
    if (st == TD_OK) td__keras_kernel_copy(k->data, out->data, kh, kw, kci, kco, depthwise && !dense, 1);
    return st;
}

static char *joined(const char *a, const char *b, const char *c)
{
    const size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

static const char *piece_suffix(td_method m, int p)
{
    static const char t2[3][8] = {"t2_in", "t2_core", "t2_out"}, cp[4][5] = {"cp_0", "cp_1", "cp_2", "cp_3"},
                      sv[2][6] = {"svd_0", "svd_1"};
    if (m == TD_METHOD_TUCKER2) return t2[p];
    if (m == TD_METHOD_CP) return cp[p];
    return sv[p];
}

/* CP's spatial pieces are depthwise layers. */
static int is_depthwise_piece(const td__slot *s, int p) { return s->layout.method == TD_METHOD_CP && (p == 1 || p == 2); }

/* torch: <prefix><sep><i><sep>weight beside the layer's own key (sep '.' for flat keys, '/' for
 * nested groups); an output name the input already has is refused. */
static td_status layout_torch(td_model_writer *w, td__slot *s, td_error *err)
{
    const td_model *m = w->m;
    const td_model_layer *l = &m->layers[s->layer];
    const char *kp = m->tensors[l->kernel].path;
    const size_t n = strlen(kp) - strlen("weight");
    const char sep = kp[n - 1];
    for (int p = 0; p < s->layout.npieces; p++) {
        const size_t len = n + 34;
        char num[24];
        snprintf(num, sizeof num, "%d", p);
        s->piece_layer[p] = joined(l->name, ".", num);
        s->kernel_path[p] = malloc(len);
        if (s->layout.pieces[p].desc.has_bias) s->bias_path[p] = malloc(len);
        if (!s->piece_layer[p] || !s->kernel_path[p] || (s->layout.pieces[p].desc.has_bias && !s->bias_path[p])) return TD_ENOMEM;
        const char *lead = kp[0] == '/' ? "" : "/"; /* safetensors keys become root datasets */
        snprintf(s->kernel_path[p], len, "%s%.*s%d%cweight", lead, (int)n, kp, p, sep);
        if (s->bias_path[p]) snprintf(s->bias_path[p], len, "%s%.*s%d%cbias", lead, (int)n, kp, p, sep);
        const char *clash = td__model_find_tensor(m, s->kernel_path[p]) >= 0 ? s->kernel_path[p]
                          : s->bias_path[p] && td__model_find_tensor(m, s->bias_path[p]) >= 0 ? s->bias_path[p] : NULL;
        if (clash) return td__error_set(err, TD_EFORMAT, m->file, clash, "already exists in the input: the rewrite of %s cannot be written", l->name);
    }
    return TD_OK;
}

/* keras2: new layers <L>_<suffix> at the old position in layer_names. */
static td_status layout_keras2(td_model_writer *w, td_error *err)
{
    const td_model *m = w->m;
    const struct td_model_impl *p = m->impl;
    const char *root = strcmp(p->weights_root, "/") ? p->weights_root : "";
    td_status st = TD_OK;
    for (size_t i = 0; i < p->keras_layer_names.n && st == TD_OK; i++) {
        td__slot *s = NULL;
        for (size_t k = 0; k < w->nslots; k++)
            if (p->group_pos[w->slots[k].layer] == (int)i) s = &w->slots[k];
        if (!s) { st = td__strlist_push(&w->k2_names, p->keras_layer_names.v[i]); continue; }
        const char *ln = m->layers[s->layer].name, *colon = p->keras_colon_names ? ":0" : "";
        for (int q = 0; q < s->layout.npieces && st == TD_OK; q++) {
            char *name = joined(ln, "_", piece_suffix(s->layout.method, q));
            if (!name) return TD_ENOMEM;
            for (size_t j = 0; j < p->keras_layer_names.n; j++)
                if (!strcmp(p->keras_layer_names.v[j], name)) st = td__error_set(err, TD_EFORMAT, m->file, name, "layer already exists in the input: the rewrite of %s cannot be written", ln);
            s->piece_layer[q] = name;
            char *g = joined(root, "/", name), *leaf = joined(name, "/", is_depthwise_piece(s, q) ? "depthwise_kernel" : "kernel");
            s->kernel_path[q] = g && leaf ? joined(g, "/", leaf) : NULL;
            free(leaf);
            if (s->layout.pieces[q].desc.has_bias) {
                char *b = joined(name, "/bias", colon);
                s->bias_path[q] = g && b ? joined(g, "/", b) : NULL;
                free(b);
            }
            if (s->kernel_path[q]) { char *k = joined(s->kernel_path[q], colon, ""); free(s->kernel_path[q]); s->kernel_path[q] = k; }
            free(g);
            if (st == TD_OK && (!s->kernel_path[q] || (s->layout.pieces[q].desc.has_bias && !s->bias_path[q]))) st = TD_ENOMEM;
            if (st == TD_OK) st = td__strlist_push(&w->k2_names, name);
        }
    }
    return st;
}

/* keras3: "class" or "class_<n>" under /layers; a class's later layers are renumbered in numeric
 * order after the pieces take their places. */
typedef struct k3entry { char *cls; long idx; const char *src; int slot; } k3entry;

static void split_class(const char *name, k3entry *e)
{
    e->idx = 0;
    char *us = strrchr(e->cls, '_');
    if (us && us[1]) {
        char *end;
        const long v = strtol(us + 1, &end, 10);
        if (!*end && v > 0) { *us = '\0'; e->idx = v; }
    }
    (void)name;
}

static char *k3_name(const char *cls, long n)
{
    char num[24] = "";
    if (n) snprintf(num, sizeof num, "_%ld", n);
    return joined(cls, num, "");
}

/* Lays out one class's entries in numeric order: copies unchanged ones, names the pieces. */
static td_status k3_class(td_model_writer *w, k3entry *e, size_t ne, const char *cls, copy_ctx *c)
{
    long next = 0;
    td_status st = TD_OK;
    for (;;) {
        long best = -1;
        size_t bi = 0;
        for (size_t b = 0; b < ne; b++)
            if (e[b].idx >= 0 && !strcmp(e[b].cls, cls) && (best < 0 || e[b].idx < best)) { best = e[b].idx; bi = b; }
        if (best < 0 || st != TD_OK) return st;
        k3entry *x = &e[bi];
        x->idx = -1;
        if (x->slot < 0) {
            char *nn = k3_name(cls, next++), *sp = joined("/layers/", x->src, ""), *dp = nn ? joined("/layers/", nn, "") : NULL;
            const int li = td__model_find_layer(w->m, x->src);
            if (!nn || !sp || !dp) st = TD_ENOMEM;
            else if (H5Ocopy(c->src, sp, c->dst, dp, H5P_DEFAULT, H5P_DEFAULT) < 0)
                st = td__error_set(c->err, TD_EIO, w->m->file, sp, "cannot be copied to the output (disk full?)");
            if (st == TD_OK && li >= 0) { w->target[li] = nn; nn = NULL; }
            free(nn);
            free(sp);
            free(dp);
            continue;
        }
        td__slot *s = &w->slots[x->slot];
        for (int q = 0; q < s->layout.npieces && st == TD_OK; q++) {
            s->piece_layer[q] = k3_name(cls, next++);
            s->kernel_path[q] = s->piece_layer[q] ? joined("/layers/", s->piece_layer[q], "/vars/0") : NULL;
            if (s->layout.pieces[q].desc.has_bias) s->bias_path[q] = joined("/layers/", s->piece_layer[q], "/vars/1");
            if (!s->kernel_path[q] || (s->layout.pieces[q].desc.has_bias && !s->bias_path[q])) st = TD_ENOMEM;
        }
    }
}

static td_status layout_keras3(td_model_writer *w, copy_ctx *c)
{
    hid_t lg = H5Gopen2(c->src, "/layers", H5P_DEFAULT), dg = H5I_INVALID_HID;
    H5G_info_t gi;
    k3entry *e = NULL;
    size_t ne = 0;
    td_status st = lg >= 0 && H5Gget_info(lg, &gi) >= 0 ? TD_OK : TD_EFORMAT;
    if (st == TD_OK && !(e = calloc(gi.nlinks ? gi.nlinks : 1, sizeof *e))) st = TD_ENOMEM;
    td__strlist names;
    memset(&names, 0, sizeof names);
    for (hsize_t i = 0; st == TD_OK && i < gi.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(lg, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        char *nm = len >= 0 ? malloc((size_t)len + 1) : NULL;
        if (!nm || H5Lget_name_by_idx(lg, ".", H5_INDEX_NAME, H5_ITER_INC, i, nm, (size_t)len + 1, H5P_DEFAULT) < 0) st = TD_EFORMAT;
        if (st == TD_OK) st = td__strlist_push(&names, nm);
        free(nm);
        if (st != TD_OK) break;
        k3entry *x = &e[ne++];
        x->src = names.v[names.n - 1];
        if (!(x->cls = td__strdup(x->src))) { st = TD_ENOMEM; break; }
        split_class(x->src, x);
        x->slot = -1;
        for (size_t r = 0; r < w->nslots; r++)
            if (!strcmp(w->m->layers[w->slots[r].layer].name, x->src)) x->slot = (int)r;
    }
    if (st == TD_OK && (dg = H5Gcreate2(c->dst, "/layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) st = TD_EIO;
    if (st == TD_OK) st = copy_attrs(lg, dg, NULL);
    for (size_t a = 0; a < ne && st == TD_OK; a++) {
        if (e[a].idx < 0) continue;
        char *cls = td__strdup(e[a].cls);
        st = cls ? k3_class(w, e, ne, cls, c) : TD_ENOMEM;
        free(cls);
    }
    for (size_t a = 0; e && a < ne; a++) free(e[a].cls);
    free(e);
    td__strlist_free(&names);
    if (dg >= 0) H5Gclose(dg);
    if (lg >= 0) H5Gclose(lg);
    return st;
}

/* What is not copied: the rewritten layers' objects and what no longer fits the file. */
static td_status skip_list(td_model_writer *w, const char ***skip, size_t *n)
{
    const td_model *m = w->m;
    const char **s = calloc(2 * w->nslots + 4, sizeof *s);
    if (!s) return TD_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < w->nslots; i++) {
        const td_model_layer *l = &m->layers[w->slots[i].layer];
        if (m->layout == TD_LAYOUT_TORCH || m->layout == TD_LAYOUT_SAFETENSORS) {
            s[k++] = m->tensors[l->kernel].path;
            if (l->bias >= 0) s[k++] = m->tensors[l->bias].path;
        } else if (m->layout == TD_LAYOUT_KERAS2) {
            s[k++] = m->impl->group[w->slots[i].layer];
        }
    }
    if (m->layout == TD_LAYOUT_KERAS2) s[k++] = "/optimizer_weights";
    if (m->layout == TD_LAYOUT_KERAS3) { s[k++] = "/layers"; s[k++] = "/optimizer"; }
    *skip = s;
    *n = k;
    return TD_OK;
}

/* A safetensors input's tensors as root datasets ("/features.0.weight"): floats through double
 * in their own type, integers and bools as bytes. */
static td_status write_st_tensors(td_model_writer *w, const char *const *skip, size_t nskip, td_error *err)
{
    const td_model *m = w->m;
    td_status st = TD_OK;
    for (size_t i = 0; i < m->ntensors && st == TD_OK; i++) {
        const td_model_tensor *t = &m->tensors[i];
        int skipped = 0;
        for (size_t k = 0; k < nskip; k++) skipped |= !strcmp(skip[k], t->path);
        if (skipped) continue;
        char *path = joined("/", t->name, "");
        if (!path) return TD_ENOMEM;
        if (t->ndim > TD_MAX_MODES) st = td__error_set(err, TD_EUNSUPPORTED, m->file, t->name, "has more than %d dimensions", TD_MAX_MODES);
        else if (t->dtype != TD_DTYPE_OTHER) {
            td_tensor v;
            if ((st = td__model_read_st(m, i, &v, err)) == TD_OK) st = td_outfile_write(w->o, path, &v, t->dtype, err);
            td_tensor_free(&v);
        } else {
            int fd;
            uint64_t off;
            void *buf = malloc(t->elements * 8 + 1);
            const td__st_dtype dt = (td__st_dtype)td__model_st_dtype(m, i);
            st = buf ? td__model_st_raw(m, i, &fd, &off) : TD_ENOMEM;
            if (st == TD_OK && td__pread_full(fd, buf, (size_t)(t->elements * td__st_dtype_bits(dt) / 8), off) != 0) st = TD_EIO;
            td__h5quiet q;
            td__h5_quiet_begin(&q);
            if (st == TD_OK) st = td__h5_write_bytes(td__outfile_h5(w->o), td_outfile_path(w->o), path, dt, t->ndim, t->shape, buf, err);
            td__h5_quiet_end(&q);
            free(buf);
        }
        free(path);
    }
    return st;
}

td_status td__writer_h5_open(td_model_writer *w, td_error *err)
{
    const td_model *m = w->m;
    hid_t dst = td__outfile_h5(w->o);
    if (dst < 0 || w->fmt != TD_FORMAT_HDF5) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    copy_ctx c = {m, m->impl->h5, dst, NULL, 0, m->layout == TD_LAYOUT_KERAS2 ? "model_config" : NULL, err, TD_OK};
    td_status st = skip_list(w, &c.skip, &c.nskip);
    const int torch = m->layout == TD_LAYOUT_TORCH || m->layout == TD_LAYOUT_SAFETENSORS;
    for (size_t i = 0; i < w->nslots && st == TD_OK && torch; i++) st = layout_torch(w, &w->slots[i], err);
    if (st == TD_OK && m->layout == TD_LAYOUT_KERAS2) st = layout_keras2(w, err);
    /* the architecture JSON of Keras 2 no longer matches: dropped (README says how to rebuild) */
    if (m->impl->backend == TD__BACKEND_ST) {
        td__h5_quiet_end(&q);
        if (st == TD_OK) st = write_st_tensors(w, c.skip, c.nskip, err);
        const char *k, *v;
        for (size_t i = 0; st == TD_OK && (k = td__model_st_metadata(m, i, &v)); i++) st = td_outfile_attr_string(w->o, "/", k, v, err);
        td__h5_quiet_begin(&q);
    } else {
        if (st == TD_OK && copy_attrs(c.src, dst, c.skip_attr) != TD_OK) st = td__error_set(err, TD_EIO, m->file, "/", "root attributes cannot be copied");
        if (st == TD_OK && (st = copy_tree(&c, "/")) != TD_OK && err && err->status == TD_OK)
            td__error_set(err, st, m->file, NULL, "cannot copy the file's objects");
    }
    if (st == TD_OK && m->layout == TD_LAYOUT_KERAS3) st = layout_keras3(w, &c);
    for (size_t i = 0; i < m->nlayers && st == TD_OK; i++)
        if (!w->target[i] && !td__writer_slot(w, i) && !(w->target[i] = td__strdup(m->layers[i].name))) st = TD_ENOMEM;
    free(c.skip);
    td__h5_quiet_end(&q);
    return st;
}

static td_status write_ds(td_model_writer *w, const char *path, const td_tensor *t, td_dtype dt, td_error *err)
{
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = td__h5_make_parents(td__outfile_h5(w->o), path);
    td__h5_quiet_end(&q);
    if (st != TD_OK) return td__error_set(err, TD_EIO, td_outfile_path(w->o), path, "cannot create its groups");
    return td_outfile_write(w->o, path, t, dt, err);
}

/* keras2: the piece's group lists its weights. */
static td_status weight_names(td_model_writer *w, const td__slot *s, int p, td_error *err)
{
    const struct td_model_impl *impl = w->m->impl;
    const char *root = strcmp(impl->weights_root, "/") ? impl->weights_root : "";
    char *g = joined(root, "/", s->piece_layer[p]);
    if (!g) return TD_ENOMEM;
    const size_t off = strlen(g) + 1; /* weight_names are relative to the layer's group */
    char *names[2] = {s->kernel_path[p] + off, s->bias_path[p] ? s->bias_path[p] + off : NULL};
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t gid = H5Gopen2(td__outfile_h5(w->o), g, H5P_DEFAULT);
    td_status st = gid < 0 ? TD_EIO : td__h5_write_strings(gid, "weight_names", names, names[1] ? 2 : 1, impl->keras_vlen_names);
    if (gid >= 0) H5Gclose(gid);
    td__h5_quiet_end(&q);
    if (st != TD_OK) td__error_set(err, st, td_outfile_path(w->o), g, "cannot write weight_names");
    free(g);
    return st;
}

td_status td__writer_h5_put(td_model_writer *w, td__slot *s, const td_chain *c, td_error *err)
{
    const td_model *m = w->m;
    const td_model_layer *l = &m->layers[s->layer];
    const td_dtype kd = m->tensors[l->kernel].dtype, bd = l->bias >= 0 ? m->tensors[l->bias].dtype : kd;
    const int keras = m->layout == TD_LAYOUT_KERAS2 || m->layout == TD_LAYOUT_KERAS3;
    td_status st = TD_OK;
    for (int p = 0; p < c->npieces && st == TD_OK; p++) {
        td_tensor hwio = {0};
        const td_tensor *k = &c->pieces[p].kernel;
        if (keras && (st = td__to_keras(k, is_depthwise_piece(s, p), &hwio)) == TD_OK) k = &hwio;
        if (st == TD_OK) st = write_ds(w, s->kernel_path[p], k, kd, err);
        td_tensor_free(&hwio);
        if (st == TD_OK && s->bias_path[p]) st = write_ds(w, s->bias_path[p], &c->pieces[p].bias, bd, err);
        if (st == TD_OK && m->layout == TD_LAYOUT_KERAS2) st = weight_names(w, s, p, err);
    }
    return st;
}

td_status td__writer_h5_attr(td_model_writer *w, const char *key, const char *value, td_error *err)
{
    return td_outfile_attr_string(w->o, "/", key, value, err);
}

td_status td__writer_h5_finish(td_model_writer *w, td_error *err)
{
    if (w->m->layout != TD_LAYOUT_KERAS2) return TD_OK;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t g = H5Gopen2(td__outfile_h5(w->o), w->m->impl->weights_root, H5P_DEFAULT);
    td_status st = g < 0 ? TD_EIO : TD_OK;
    for (int k = 0; st == TD_OK && k < 100000; k++) { /* drop a split form; the list is written whole */
        char nm[32];
        snprintf(nm, sizeof nm, "layer_names%d", k);
        if (H5Aexists(g, nm) <= 0) break;
        H5Adelete(g, nm);
    }
    if (st == TD_OK) st = td__h5_write_strings(g, "layer_names", w->k2_names.v, w->k2_names.n, w->m->impl->keras_vlen_names);
    if (g >= 0) H5Gclose(g);
    td__h5_quiet_end(&q);
    if (st != TD_OK) td__error_set(err, st, td_outfile_path(w->o), w->m->impl->weights_root, "cannot write layer_names");
    return st;
}

/* Rounds data to dtype in place, once, to nearest even (st_half.c; not libhdf5's conversion,
 * which rounds half and bfloat16 wrongly), exactly as td_outfile_write stores it. */
td_status td_tensor_round(td_tensor *t, td_dtype dtype)
{
    if (!t) return TD_EINVAL;
    td__st_dtype sd;
    if (!td__st_dtype_from_td(dtype, &sd)) return TD_EINVAL;
    return td__st_round(sd, t->data, t->size);
}

/* Writes t (same element count) at src's path with src's shape, dtype and attributes. */
static td_status replace_ds(td_outfile *o, hid_t src, const td_model_tensor *t, const td_tensor *v, td_error *err)
{
    td_tensor view;
    td_status st = td_tensor_view(&view, t->ndim, t->shape, v->data);
    if (st == TD_OK && view.size != v->size) st = TD_ESHAPE;
    if (st == TD_OK) st = td_outfile_write(o, t->path, &view, t->dtype, err);
    if (st != TD_OK) return st;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t s = H5Dopen2(src, t->path, H5P_DEFAULT), d = H5Dopen2(td__outfile_h5(o), t->path, H5P_DEFAULT);
    st = (s < 0 || d < 0) ? TD_EIO : copy_attrs(s, d, NULL);
    if (s >= 0) H5Dclose(s);
    if (d >= 0) H5Dclose(d);
    td__h5_quiet_end(&q);
    return st;
}

static td_status write_adapter(const td_model *m, td_outfile *o, const td_model_adapter *ad, td_error *err)
{
    const td_model_layer *l = &m->layers[ad->layer];
    const td_model_tensor *kt = &m->tensors[l->kernel];
    const td_adapter *a = ad->adapter;
    char *pa, *pb;
    td_status st;
    if (m->layout == TD_LAYOUT_TORCH) { /* <prefix>.weight -> <prefix>.lora_A (or <prefix>/lora_A) */
        const int k = (int)(strlen(kt->path) - strlen("weight"));
        pa = malloc((size_t)k + 8);
        pb = malloc((size_t)k + 8);
        if (pa) snprintf(pa, (size_t)k + 8, "%.*slora_A", k, kt->path);
        if (pb) snprintf(pb, (size_t)k + 8, "%.*slora_B", k, kt->path);
        st = replace_ds(o, m->impl->h5, kt, &a->frozen, err);
    } else {
        td_tensor kk = {0};
        st = td__to_keras(&a->frozen, l->cls == TD_CLASS_DEPTHWISE, &kk);
        if (st == TD_OK) st = replace_ds(o, m->impl->h5, kt, &kk, err);
        td_tensor_free(&kk);
        pa = joined("/tdecomp_adapters/", l->name, ".lora_A");
        pb = joined("/tdecomp_adapters/", l->name, ".lora_B");
    }
    if (st == TD_OK && (!pa || !pb)) st = TD_ENOMEM;
    if (st == TD_OK) st = td_outfile_write(o, pa, &a->a, kt->dtype, err);
    if (st == TD_OK) st = td_outfile_write(o, pb, &a->b, kt->dtype, err);
    if (st != TD_OK && err && err->status == TD_OK) td__error_set(err, st, td_outfile_path(o), l->name, "writing the adapter failed");
    free(pa);
    free(pb);
    return st;
}

const char *td__adapter_mode_name(td_adapter_mode mode) { return mode == TD_ADAPTER_RESIDUAL ? "residual" : "principal"; }

/* The adapters file's root attributes (td_adapter_meta). */
static td_status stamp_adapters(td_outfile *o, const td_adapter_meta *meta, td_error *err)
{
    td_status st = td_outfile_attr_string(o, "/", "tdecomp_version", td_version(), err);
    if (st != TD_OK || !meta) return st;
    if (meta->command) st = td_outfile_attr_string(o, "/", "tdecomp_command", meta->command, err);
    if (st == TD_OK) st = td_outfile_attr_number(o, "/", "tdecomp_adapters_rank", (double)meta->rank, 1, err);
    if (st == TD_OK) st = td_outfile_attr_number(o, "/", "tdecomp_adapters_alpha", meta->alpha, 0, err);
    if (st == TD_OK) st = td_outfile_attr_string(o, "/", "tdecomp_adapters_mode", td__adapter_mode_name(meta->mode), err);
    return st;
}

td_status td_model_write_adapters(const td_model *m, td_outfile *o, td_format fmt, td_model_adapter *ad, size_t n,
                                  const td_adapter_meta *meta, td_error *err)
{
    td_error_clear(err);
    if (!m || !m->impl || !o || (!ad && n)) return TD_EINVAL;
    if (fmt == TD_FORMAT_AUTO) fmt = td_format_choose(TD_FORMAT_AUTO, NULL, m);
    for (size_t r = 0; r < n; r++)
        if (ad[r].layer >= m->nlayers || !ad[r].adapter || !ad[r].adapter->a.data) return TD_EINVAL;
    const int st_in = m->impl->backend == TD__BACKEND_ST;
    if (st_in && fmt == TD_FORMAT_SAFETENSORS && td_outfile_fd(o) >= 0) {
        for (size_t r = 0; r < n; r++) { /* what is written is what gets measured */
            const td_dtype dt = m->tensors[m->layers[ad[r].layer].kernel].dtype;
            td_adapter *a = ad[r].adapter;
            td_status st = td_tensor_round(&a->frozen, dt);
            if (st == TD_OK) st = td_tensor_round(&a->a, dt);
            if (st == TD_OK) st = td_tensor_round(&a->b, dt);
            if (st != TD_OK) return st;
        }
        return td__adapters_st_write(m, o, ad, n, meta, err);
    }
    if (st_in || fmt != TD_FORMAT_HDF5 || td__outfile_h5(o) < 0)
        return td__error_set(err, TD_EUNSUPPORTED, td_outfile_path(o), NULL,
                             "adapters keep the input's format: HDF5 from HDF5, safetensors from safetensors");
    const char **skip = calloc(n + 1, sizeof *skip);
    if (!skip) return TD_ENOMEM;
    td_status st = TD_OK;
    for (size_t r = 0; r < n && st == TD_OK; r++) {
        const td_model_layer *l = &m->layers[ad[r].layer];
        const td_dtype dt = m->tensors[l->kernel].dtype;
        td_adapter *a = ad[r].adapter;
        /* what is written is what gets measured */
        if ((st = td_tensor_round(&a->frozen, dt)) == TD_OK && (st = td_tensor_round(&a->a, dt)) == TD_OK)
            st = td_tensor_round(&a->b, dt);
        skip[r] = m->tensors[l->kernel].path;
    }
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    copy_ctx c = {m, m->impl->h5, td__outfile_h5(o), skip, n, NULL, err, TD_OK};
    if (st == TD_OK && copy_attrs(c.src, c.dst, NULL) != TD_OK) st = td__error_set(err, TD_EIO, m->file, "/", "root attributes cannot be copied");
    if (st == TD_OK && (st = copy_tree(&c, "/")) != TD_OK && err && err->status == TD_OK)
        td__error_set(err, st, m->file, NULL, "cannot copy the file's objects");
    td__h5_quiet_end(&q);
    for (size_t r = 0; r < n && st == TD_OK; r++) st = write_adapter(m, o, &ad[r], err);
    if (st == TD_OK) st = stamp_adapters(o, meta, err);
    free(skip);
    return st;
}
