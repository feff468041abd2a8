/* Atomic output files: temporary file in the final folder, fsync, rename. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/io_internal.h"

static void dir_of(const char *path, char *dir, size_t len)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, len, "%s", dirname(tmp));
}

static void base_of(const char *path, char *base, size_t len)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(base, len, "%s", basename(tmp));
}

td_status td_outfile_check(const char *final_path, const char *input_path, int force, td_error *err)
{
    if (!final_path || !*final_path) return td__error_set(err, TD_EINVAL, NULL, NULL, "empty output path");
    if (strlen(final_path) >= 4000) return td__error_set(err, TD_EINVAL, final_path, NULL, "output path too long");
    char dir[4096];
    struct stat ds, fs, is;
    dir_of(final_path, dir, sizeof dir);
    if (stat(dir, &ds) != 0)
        return td__error_set(err, TD_ENOTFOUND, final_path, NULL, "output folder %s does not exist", dir);
    if (!S_ISDIR(ds.st_mode)) return td__error_set(err, TD_EINVAL, final_path, NULL, "%s is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return td__error_set(err, TD_EIO, final_path, NULL, "output folder %s is not writable", dir);
    if (stat(final_path, &fs) == 0) {
        if (input_path && stat(input_path, &is) == 0 && is.st_dev == fs.st_dev && is.st_ino == fs.st_ino)
            return td__error_set(err, TD_EEXIST, final_path, NULL, "is the input file (refusing to overwrite the input)");
        if (S_ISDIR(fs.st_mode)) return td__error_set(err, TD_EEXIST, final_path, NULL, "is a directory");
        if (!force) return td__error_set(err, TD_EEXIST, final_path, NULL, "already exists (use --force to replace it)");
    } else if (errno != ENOENT) {
        /* e.g. a symlink loop: refuse rather than guess */
        return td__error_set(err, TD_EIO, final_path, NULL, "%s", strerror(errno));
    }
    return TD_OK;
}

/* Removes ".*.tdtmp.<pid>.*" files in dir whose process no longer exists. */
static void remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *p = strstr(e->d_name, ".tdtmp.");
        if (e->d_name[0] != '.' || !p) continue;
        char *end = NULL;
        long pid = strtol(p + 7, &end, 10);
        if (pid <= 0 || !end || *end != '.') continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char full[4096 + 256];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        unlink(full);
    }
    closedir(d);
}

td_status td_outfile_create(td_outfile *o, const char *final_path, const char *input_path, int force,
                            td_error *err)
{
    if (!o) return TD_EINVAL;
    memset(o, 0, sizeof *o);
    o->file_id = -1;
    td_status st = td_outfile_check(final_path, input_path, force, err);
    if (st != TD_OK) return st;
    char dir[4096], base[1024];
    dir_of(final_path, dir, sizeof dir);
    base_of(final_path, base, sizeof base);
    remove_stale(dir);
    snprintf(o->final_path, sizeof o->final_path, "%s", final_path);
    int n = snprintf(o->temp_path, sizeof o->temp_path, "%s/.%s.tdtmp.%ld.XXXXXX", dir, base, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof o->temp_path) return td__error_set(err, TD_EINVAL, final_path, NULL, "output path too long");
    int fd = mkstemp(o->temp_path);
    if (fd < 0) return td__error_set(err, TD_EIO, final_path, NULL, "cannot create a temporary file in %s: %s", dir, strerror(errno));
    close(fd);
    o->active = 1;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t f = H5Fcreate(o->temp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    td__h5_quiet_end(&q);
    if (f < 0) {
        td_outfile_abort(o);
        return td__error_set(err, TD_EIO, final_path, NULL, "cannot create the HDF5 output");
    }
    o->file_id = f;
    return TD_OK;
}

td_status td_outfile_write(td_outfile *o, const char *path, const td_tensor *t, td_dtype dtype, td_error *err)
{
    if (!o || !o->active || o->file_id < 0 || !path || path[0] != '/' || !t) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t ftype = td__h5_float_type(dtype), space = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    td_status st = TD_OK;
    hsize_t dims[TD_MAX_MODES];
    for (int k = 0; k < t->ndim; k++) dims[k] = (hsize_t)t->shape[k];
    if (ftype < 0) { st = td__error_set(err, TD_EINVAL, o->final_path, path, "unsupported output type"); goto done; }
    if (td__h5_make_parents(o->file_id, path) != TD_OK) { st = td__error_set(err, TD_EIO, o->final_path, path, "cannot create its groups"); goto done; }
    space = t->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(t->ndim, dims, NULL);
    if (space < 0) { st = td__error_set(err, TD_EIO, o->final_path, path, "cannot create a dataspace"); goto done; }
    dset = H5Dcreate2(o->file_id, path, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dset < 0) { st = td__error_set(err, TD_EIO, o->final_path, path, "cannot create the dataset"); goto done; }
    if (t->size && H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
        st = td__error_set(err, TD_EIO, o->final_path, path, "write failed");
done:
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    td__h5_quiet_end(&q);
    return st;
}

td_status td_outfile_attr_string(td_outfile *o, const char *obj_path, const char *name, const char *value,
                                 td_error *err)
{
    if (!o || !o->active || o->file_id < 0 || !obj_path || !name || !value) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = TD_OK;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    if (type < 0 || space < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        st = td__error_set(err, TD_EIO, o->final_path, obj_path, "cannot create attribute %s", name);
        goto done;
    }
    if (H5Aexists_by_name(o->file_id, obj_path, name, H5P_DEFAULT) > 0)
        H5Adelete_by_name(o->file_id, obj_path, name, H5P_DEFAULT);
    attr = H5Acreate_by_name(o->file_id, obj_path, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, &value) < 0)
        st = td__error_set(err, TD_EIO, o->final_path, obj_path, "cannot write attribute %s", name);
done:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    td__h5_quiet_end(&q);
    return st;
}

td_status td_outfile_attr_number(td_outfile *o, const char *obj_path, const char *name, double value, int integer,
                                 td_error *err)
{
    if (!o || !o->active || o->file_id < 0 || !obj_path || !name) return TD_EINVAL;
    if (integer && !(value >= -9.2e18 && value <= 9.2e18)) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st = TD_OK;
    const long long iv = integer ? (long long)value : 0;
    hid_t type = integer ? H5T_NATIVE_LLONG : H5T_NATIVE_DOUBLE, space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    if (H5Aexists_by_name(o->file_id, obj_path, name, H5P_DEFAULT) > 0)
        H5Adelete_by_name(o->file_id, obj_path, name, H5P_DEFAULT);
    if (space >= 0)
        attr = H5Acreate_by_name(o->file_id, obj_path, name, integer ? H5T_STD_I64LE : H5T_IEEE_F64LE, space,
                                 H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (space < 0 || attr < 0 || H5Awrite(attr, type, integer ? (const void *)&iv : (const void *)&value) < 0)
        st = td__error_set(err, TD_EIO, o->final_path, obj_path, "cannot write attribute %s", name);
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    td__h5_quiet_end(&q);
    return st;
}

int64_t td_outfile_handle(const td_outfile *o) { return o && o->active ? o->file_id : -1; }

td_status td_outfile_commit(td_outfile *o, td_error *err)
{
    if (!o || !o->active) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    herr_t hr = H5Fclose((hid_t)o->file_id);
    td__h5_quiet_end(&q);
    o->file_id = -1;
    if (hr < 0) {
        td_outfile_abort(o);
        return td__error_set(err, TD_EIO, o->final_path, NULL, "closing the output failed (disk full?)");
    }
    int fd = open(o->temp_path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        td_outfile_abort(o);
        return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot flush the output: %s", strerror(e));
    }
    close(fd);
    if (rename(o->temp_path, o->final_path) != 0) {
        int e = errno;
        td_outfile_abort(o);
        return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot move the output into place: %s", strerror(e));
    }
    char dir[4096];
    dir_of(o->final_path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    o->active = 0;
    o->temp_path[0] = '\0';
    return TD_OK;
}

void td_outfile_abort(td_outfile *o)
{
    if (!o) return;
    if (o->file_id >= 0) {
        td__h5quiet q;
        td__h5_quiet_begin(&q);
        H5Fclose((hid_t)o->file_id);
        td__h5_quiet_end(&q);
        o->file_id = -1;
    }
    if (o->active && o->temp_path[0]) unlink(o->temp_path);
    o->active = 0;
    o->temp_path[0] = '\0';
}
