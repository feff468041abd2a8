/* Calibration statistics files (docs/formats.md section 3): opened once, read per layer, every
 * dataset checked against the layer before use. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/internal.h"
#include "io/io_internal.h"
#include "tdecomp/io.h"

#define TD_CALIBRATION_VERSION 1

struct td_calibration {
    char *path;
    hid_t file;
};

void td_calibration_free(td_calibration *c)
{
    if (!c) return;
    td__h5_close_quiet(c->file);
    free(c->path);
    free(c);
}

/* An integer-valued attribute (any numeric type) of obj; 0 when absent or not numeric. */
static int read_number_attr(hid_t obj, const char *name, double *v)
{
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    const H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    const int ok = (cls == H5T_INTEGER || cls == H5T_FLOAT) && s >= 0 && H5Sget_simple_extent_npoints(s) == 1 &&
                   H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    H5Aclose(a);
    return ok;
}

td_status td_calibration_open(td_calibration **out, const char *path, td_error *err)
{
    if (!out) return TD_EINVAL;
    *out = NULL;
    if (!path) return TD_EINVAL;
    td_calibration *c = calloc(1, sizeof *c);
    if (!c || !(c->path = td__strdup(path))) {
        free(c);
        return td__error_set(err, TD_ENOMEM, path, NULL, "out of memory");
    }
    c->file = H5I_INVALID_HID;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = td__h5_open_ro(path, &c->file, err);
    double version = 0;
    if (st == TD_OK && !read_number_attr(c->file, "tdecomp_calibration_version", &version))
        st = td__error_set(err, TD_EFORMAT, path, NULL,
                           "not a calibration statistics file (no tdecomp_calibration_version attribute)");
    else if (st == TD_OK && version != TD_CALIBRATION_VERSION)
        st = td__error_set(err, TD_EFORMAT, path, NULL, "calibration statistics version %g is not supported (only %d)",
                           version, TD_CALIBRATION_VERSION);
    td__h5_quiet_end(&q);
    if (st != TD_OK) {
        td_calibration_free(c);
        return st;
    }
    *out = c;
    return TD_OK;
}

void td_layer_calibration_free(td_layer_calibration *lc)
{
    if (!lc) return;
    td_tensor_free(&lc->input_cov);
    td_tensor_free(&lc->output_cov);
    td_tensor_free(&lc->patch_cov);
    free(lc->out_scale);
    memset(lc, 0, sizeof *lc);
}

/* Reads group/name when present (*present = 0 otherwise); a non-float dataset is refused. */
static td_status read_cov(const td_calibration *c, hid_t grp, const char *layer, const char *name, td_tensor *t,
                          int *present, td_error *err)
{
    *present = H5Lexists(grp, name, H5P_DEFAULT) > 0;
    if (!*present) return TD_OK;
    H5L_info_t li;
    if (H5Lget_info(grp, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD)
        return td__error_set(err, TD_EFORMAT, c->path, layer, "%s is a link, not a dataset (links are refused)", name);
    hid_t d = H5Dopen2(grp, name, H5P_DEFAULT);
    if (d < 0) return td__error_set(err, TD_EFORMAT, c->path, layer, "%s is not a dataset", name);
    hid_t type = H5Dget_type(d);
    const int is_float = type >= 0 && H5Tget_class(type) == H5T_FLOAT;
    if (type >= 0) H5Tclose(type);
    td_status st = TD_OK;
    if (!is_float) st = td__error_set(err, TD_EFORMAT, c->path, layer, "%s is not a float dataset", name);
    td_dtype dt;
    char dname[TD_ERROR_MSG_MAX];
    snprintf(dname, sizeof dname, "%s/%s", layer, name);
    if (st == TD_OK) st = td__h5_read_dataset(d, c->path, dname, t, &dt, err);
    H5Dclose(d);
    return st;
}

/* gamma / sqrt(running_var + eps) of the BatchNorm the model's geometry names after the layer. */
static td_status bn_scale(const td_model *m, const td_model_layer *l, double **out, td_error *err)
{
    *out = NULL;
    if (l->bn_scale < 0 || l->bn_var < 0) return TD_OK;
    td_tensor g = {0}, v = {0};
    td_status st = td_model_read_tensor(m, (size_t)l->bn_scale, &g, err);
    if (st == TD_OK) st = td_model_read_tensor(m, (size_t)l->bn_var, &v, err);
    const size_t n = l->desc.cout;
    if (st == TD_OK && (g.size != n || v.size != n))
        st = td__error_set(err, TD_EFORMAT, m->file, l->name, "its BatchNorm's weight or running_var is not (%zu)", n);
    if (st == TD_OK && !(*out = malloc(n * sizeof **out))) st = TD_ENOMEM;
    for (size_t i = 0; st == TD_OK && i < n; i++) {
        const double s = g.data[i] / sqrt(fmax(v.data[i], 0) + l->bn_eps);
        if (!isfinite(s)) st = td__error_set(err, TD_EFORMAT, m->file, l->name, "its BatchNorm's scale is not finite");
        (*out)[i] = s;
    }
    if (st != TD_OK) { free(*out); *out = NULL; }
    td_tensor_free(&g);
    td_tensor_free(&v);
    return st;
}

static td_status read_group(const td_calibration *c, const td_model *m, const td_model_layer *l, hid_t grp,
                            td_layer_calibration *lc, td_error *err)
{
    int has_in, has_out, has_patch;
    double count = 0;
    td_status st = read_cov(c, grp, l->name, "input_cov", &lc->input_cov, &has_in, err);
    if (st == TD_OK) st = read_cov(c, grp, l->name, "output_cov", &lc->output_cov, &has_out, err);
    if (st == TD_OK) st = read_cov(c, grp, l->name, "patch_cov", &lc->patch_cov, &has_patch, err);
    if (st != TD_OK) return st;
    if (!has_in) return td__error_set(err, TD_EFORMAT, c->path, l->name, "no input_cov dataset");
    if (!read_number_attr(grp, "count", &count))
        return td__error_set(err, TD_EFORMAT, c->path, l->name, "no count attribute");
    if ((st = bn_scale(m, l, &lc->out_scale, err)) != TD_OK) return st;
    lc->stats = (td_layer_stats){&lc->input_cov, has_out ? &lc->output_cov : NULL, has_patch ? &lc->patch_cov : NULL,
                                 lc->out_scale, count};
    const char *why = NULL;
    if (td_layer_stats_check(&l->desc, &lc->stats, &why) != TD_OK)
        return td__error_set(err, TD_EFORMAT, c->path, l->name, "%s", why ? why : "statistics do not fit the layer");
    return TD_OK;
}

td_status td_calibration_read(const td_calibration *c, const td_model *m, size_t layer, td_layer_calibration *out,
                              int *found, td_error *err)
{
    if (!out || !found) return TD_EINVAL;
    memset(out, 0, sizeof *out);
    *found = 0;
    if (!c || !m || layer >= m->nlayers) return TD_EINVAL;
    const td_model_layer *l = &m->layers[layer];
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = TD_OK;
    if (H5Lexists(c->file, l->name, H5P_DEFAULT) > 0) {
        H5L_info_t li;
        H5O_info_t oi;
        hid_t grp = H5I_INVALID_HID;
        if (H5Lget_info(c->file, l->name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD)
            st = td__error_set(err, TD_EFORMAT, c->path, l->name, "is a link (links are refused)");
        else if (H5Oget_info_by_name(c->file, l->name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
            st = td__error_set(err, TD_EFORMAT, c->path, l->name, "is not a group");
        else if ((grp = H5Gopen2(c->file, l->name, H5P_DEFAULT)) < 0)
            st = td__error_set(err, TD_EFORMAT, c->path, l->name, "cannot be opened");
        else {
            *found = 1;
            st = read_group(c, m, l, grp, out, err);
        }
        if (grp >= 0) H5Gclose(grp);
    }
    td__h5_quiet_end(&q);
    if (st != TD_OK) {
        td_layer_calibration_free(out);
        *found = 0;
    }
    return st;
}
