/* String attributes in the forms Keras and h5py write them, and the model's owned strings. */
#include <stdlib.h>
#include <string.h>
#include "io/model_internal.h"

/* Keras splits layer_names into name0, name1, ... past 64 KiB; no real file has this many parts. */
#define MAX_SPLIT_PARTS 100000
/* Entries of a string list attribute, and bytes of one fixed-length entry, accepted at most. */
#define MAX_LIST_ENTRIES 10000000
#define MAX_FIXED_STRING 65536

td_status td__strlist_push(td__strlist *l, const char *s)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, nc * sizeof *v);
        if (!v) return TD_ENOMEM;
        l->v = v;
        l->cap = nc;
    }
    char *c = td__strdup(s ? s : "");
    if (!c) return TD_ENOMEM;
    l->v[l->n++] = c;
    return TD_OK;
}

void td__strlist_free(td__strlist *l)
{
    for (size_t i = 0; l && i < l->n; i++) free(l->v[i]);
    if (l) { free(l->v); memset(l, 0, sizeof *l); }
}

/* Appends fixed-length string i of buf (entries of sz bytes, NUL-padded, not always
 * NUL-terminated). */
static td_status push_fixed(td__strlist *out, const char *buf, size_t sz)
{
    char *tmp = malloc(sz + 1);
    if (!tmp) return TD_ENOMEM;
    size_t len = strnlen(buf, sz);
    memcpy(tmp, buf, len);
    tmp[len] = '\0';
    td_status st = td__strlist_push(out, tmp);
    free(tmp);
    return st;
}

static int read_vlen(hid_t a, hid_t t, hid_t s, hssize_t cnt, td__strlist *out)
{
    char **buf = calloc((size_t)cnt + 1, sizeof(char *));
    hid_t mt = H5Tcopy(H5T_C_S1);
    int rc = -1;
    if (buf && mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Tset_cset(mt, H5Tget_cset(t)) >= 0 &&
        H5Aread(a, mt, buf) >= 0) {
        rc = 1;
        for (hssize_t i = 0; i < cnt && rc == 1; i++)
            if (td__strlist_push(out, buf[i] ? buf[i] : "") != TD_OK) rc = -1;
        H5Dvlen_reclaim(mt, s, H5P_DEFAULT, buf);
    }
    if (mt >= 0) H5Tclose(mt);
    free(buf);
    return rc;
}

static int read_fixed(hid_t a, hid_t t, hssize_t cnt, td__strlist *out)
{
    size_t sz = H5Tget_size(t);
    if (sz == 0 || sz > MAX_FIXED_STRING) return -1;
    char *buf = calloc((size_t)cnt ? (size_t)cnt : 1, sz);
    hid_t mt = H5Tcopy(t);
    int rc = -1;
    if (buf && mt >= 0 && H5Aread(a, mt, buf) >= 0) {
        rc = 1;
        for (hssize_t i = 0; i < cnt && rc == 1; i++)
            if (push_fixed(out, buf + (size_t)i * sz, sz) != TD_OK) rc = -1;
    }
    if (mt >= 0) H5Tclose(mt);
    free(buf);
    return rc;
}

/* An attribute's data is stored whole in the file (a variable-length entry as a heap reference
 * of more than one byte): a declared size beyond the file's is malformed, refused before
 * anything of that size is allocated. */
static int fits_file(hid_t obj, hid_t t, hssize_t cnt)
{
    hsize_t fsize = 0;
    const hid_t fid = H5Iget_file_id(obj);
    const herr_t rc = fid >= 0 ? H5Fget_filesize(fid, &fsize) : -1;
    if (fid >= 0) H5Fclose(fid);
    const size_t sz = H5Tis_variable_str(t) > 0 ? 1 : H5Tget_size(t);
    return rc >= 0 && sz > 0 && (hsize_t)cnt <= fsize / sz;
}

/* Reads one attribute (not split) onto the list. */
static int read_one(hid_t obj, const char *name, td__strlist *out, int *vlen)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5I_INVALID_HID, s = H5I_INVALID_HID;
    int rc = -1;
    if (a < 0) return -1;
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    hssize_t cnt = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    if (t < 0 || cnt < 0 || cnt > MAX_LIST_ENTRIES || !fits_file(obj, t, cnt)) goto done;
    if (H5Tget_class(t) == H5T_FLOAT || H5Tget_class(t) == H5T_INTEGER) {
        rc = cnt == 0 ? 1 : -1; /* an empty list is stored as a 0-element float64 array */
        goto done;
    }
    if (H5Tget_class(t) != H5T_STRING) goto done;
    *vlen = H5Tis_variable_str(t) > 0;
    rc = *vlen ? read_vlen(a, t, s, cnt, out) : read_fixed(a, t, cnt, out);
done:
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int td__h5_read_strings(hid_t obj, const char *name, td__strlist *out, int *vlen)
{
    memset(out, 0, sizeof *out);
    *vlen = 1;
    if (H5Aexists(obj, name) > 0) return read_one(obj, name, out, vlen);
    int found = 0;
    for (int k = 0; k < MAX_SPLIT_PARTS; k++) {
        char nm[300];
        snprintf(nm, sizeof nm, "%.250s%d", name, k);
        if (H5Aexists(obj, nm) <= 0) break;
        if (read_one(obj, nm, out, vlen) < 0) return -1;
        found = 1;
    }
    return found;
}

int td__h5_read_string(hid_t obj, const char *name, char **out)
{
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) return 0;
    td__strlist l;
    int vlen;
    memset(&l, 0, sizeof l);
    int rc = read_one(obj, name, &l, &vlen);
    if (rc == 1 && l.n == 1) { *out = l.v[0]; l.v[0] = NULL; l.n = 0; }
    else if (rc == 1) rc = -1;
    td__strlist_free(&l);
    return rc;
}

td_status td__h5_write_strings(hid_t obj, const char *name, char *const *list, size_t n, int vlen)
{
    hid_t t = H5Tcopy(H5T_C_S1), s = H5I_INVALID_HID, a = H5I_INVALID_HID;
    td_status st = TD_EIO;
    hsize_t dims[1] = {n};
    char *buf = NULL;
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    s = H5Screate_simple(1, dims, NULL);
    if (t < 0 || s < 0) goto done;
    if (vlen) {
        H5Tset_size(t, H5T_VARIABLE);
        a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0 && H5Awrite(a, t, list) >= 0) st = TD_OK;
        goto done;
    }
    size_t w = 1;
    for (size_t i = 0; i < n; i++) if (strlen(list[i]) > w) w = strlen(list[i]);
    if (!(buf = calloc(n ? n : 1, w))) { st = TD_ENOMEM; goto done; }
    for (size_t i = 0; i < n; i++) memcpy(buf + i * w, list[i], strlen(list[i]));
    H5Tset_size(t, w);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0 && H5Awrite(a, t, buf) >= 0) st = TD_OK;
done:
    free(buf);
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return st;
}
