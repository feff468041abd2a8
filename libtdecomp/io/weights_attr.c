/* String attributes in the forms Keras and h5py write them. */
#include <stdlib.h>
#include <string.h>
#include "io/weights_internal.h"

/* Reads one attribute (not split) into a growing list. */
static int read_one(hid_t obj, const char *name, char (**out)[256], size_t *n, int *vlen)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5I_INVALID_HID, s = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    int rc = -1;
    if (a < 0) return -1;
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    if (t < 0 || s < 0) goto done;
    hssize_t cnt = H5Sget_simple_extent_npoints(s);
    if (cnt < 0 || cnt > 10000000) goto done;
    if (H5Tget_class(t) == H5T_FLOAT || H5Tget_class(t) == H5T_INTEGER) {
        rc = cnt == 0 ? 1 : -1; /* an empty list is stored as a 0-element float64 array */
        goto done;
    }
    if (H5Tget_class(t) != H5T_STRING) goto done;
    char (*list)[256] = realloc(*out, (*n + (size_t)cnt + 1) * sizeof *list);
    if (!list) goto done;
    *out = list;
    if (H5Tis_variable_str(t) > 0) {
        *vlen = 1;
        char **buf = calloc((size_t)cnt + 1, sizeof(char *));
        mt = H5Tcopy(H5T_C_S1);
        if (!buf || mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0 ||
            H5Aread(a, mt, buf) < 0) {
            free(buf);
            goto done;
        }
        for (hssize_t i = 0; i < cnt; i++) snprintf(list[*n + (size_t)i], 256, "%s", buf[i] ? buf[i] : "");
        H5Dvlen_reclaim(mt, s, H5P_DEFAULT, buf);
        free(buf);
    } else {
        *vlen = 0;
        size_t sz = H5Tget_size(t);
        if (sz == 0 || sz > 65536) goto done;
        char *buf = calloc((size_t)cnt, sz);
        mt = H5Tcopy(t);
        if (!buf || mt < 0 || H5Aread(a, mt, buf) < 0) { free(buf); goto done; }
        for (hssize_t i = 0; i < cnt; i++) {
            size_t len = strnlen(buf + (size_t)i * sz, sz); /* NULLPAD names need not end in NUL */
            if (len > 255) len = 255;
            memcpy(list[*n + (size_t)i], buf + (size_t)i * sz, len);
            list[*n + (size_t)i][len] = '\0';
        }
        free(buf);
    }
    *n += (size_t)cnt;
    rc = 1;
done:
    if (mt >= 0) H5Tclose(mt);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int td__h5_read_str_list(hid_t obj, const char *name, char (**out)[256], size_t *n, int *vlen)
{
    *out = NULL;
    *n = 0;
    *vlen = 1;
    if (H5Aexists(obj, name) > 0) return read_one(obj, name, out, n, vlen);
    /* split form: name0, name1, ... until one is missing */
    int found = 0;
    for (int k = 0; k < 100000; k++) {
        char nm[300];
        snprintf(nm, sizeof nm, "%s%d", name, k);
        if (H5Aexists(obj, nm) <= 0) break;
        if (read_one(obj, nm, out, n, vlen) < 0) return -1;
        found = 1;
    }
    return found;
}

int td__h5_read_str_attr(hid_t obj, const char *name, char *buf, size_t len)
{
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    int rc = -1;
    if (a < 0 || t < 0 || H5Tget_class(t) != H5T_STRING) goto done;
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &v) >= 0 && v) {
            snprintf(buf, len, "%s", v);
            H5free_memory(v);
            rc = 1;
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
        char *tmp = calloc(sz + 1, 1);
        if (tmp && H5Aread(a, t, tmp) >= 0) {
            snprintf(buf, len, "%s", tmp);
            rc = 1;
        }
        free(tmp);
    }
done:
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

td_status td__h5_write_str_list(hid_t obj, const char *name, char (*list)[256], size_t n, int vlen)
{
    hid_t t = H5Tcopy(H5T_C_S1), s = H5I_INVALID_HID, a = H5I_INVALID_HID;
    td_status st = TD_EIO;
    hsize_t dims[1] = {n};
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    s = H5Screate_simple(1, dims, NULL);
    if (t < 0 || s < 0) goto done;
    if (vlen) {
        const char **ptr = malloc((n + 1) * sizeof(char *));
        if (!ptr) { st = TD_ENOMEM; goto done; }
        for (size_t i = 0; i < n; i++) ptr[i] = list[i];
        H5Tset_size(t, H5T_VARIABLE);
        a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0 && H5Awrite(a, t, ptr) >= 0) st = TD_OK;
        free(ptr);
    } else {
        size_t w = 1;
        for (size_t i = 0; i < n; i++) if (strlen(list[i]) > w) w = strlen(list[i]);
        char *buf = calloc(n ? n : 1, w);
        if (!buf) { st = TD_ENOMEM; goto done; }
        for (size_t i = 0; i < n; i++) memcpy(buf + i * w, list[i], strlen(list[i]));
        H5Tset_size(t, w);
        H5Tset_strpad(t, H5T_STR_NULLPAD);
        a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0 && H5Awrite(a, t, buf) >= 0) st = TD_OK;
        free(buf);
    }
done:
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return st;
}
