/* Every output: an exclusive temporary beside the final path, fsync, rename; inputs protected by
 * identity. */
#define _GNU_SOURCE /* renameat2, RENAME_EXCHANGE, O_NOFOLLOW, getrandom */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/io_internal.h"

#define TEMP_TAG ".tdtmp."
#define RANDOM_CHARS 12
/* How deep a folder replaced with force is searched for protected inputs. */
#define MAX_WALK_FDS 32

struct td_outfile {
    td_output_kind kind;
    char *final_path, *temp_path, *dir;
    int fd;           /* bytes: the temporary; folder: the temporary folder */
    hid_t h5;         /* HDF5: the temporary file */
    dev_t dev;
    ino_t ino;
    int replace;      /* the final path exists and is replaced (force) */
};

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return td__strdup(".");
    if (slash == path) return td__strdup("/");
    return td__strndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* 1 when (dev, ino) is one of the protected paths' identities. */
static int protected_id(dev_t dev, ino_t ino, const char *const *protect, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct stat s;
        if (protect[i] && stat(protect[i], &s) == 0 && s.st_dev == dev && s.st_ino == ino) return 1;
    }
    return 0;
}

/* 1 when the folder (searched recursively, without following links) holds a protected path.
 * nftw is not used: it passes no user pointer, so its state would have to be global. */
static int folder_holds(const char *dir, const char *const *protect, size_t n, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int hit = 0;
    struct dirent *e;
    while (!hit && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) { hit = 1; break; } /* cannot tell: refuse rather than risk an input */
        snprintf(p, len, "%s/%s", dir, e->d_name);
        struct stat s;
        if (lstat(p, &s) == 0) {
            hit = protected_id(s.st_dev, s.st_ino, protect, n);
            if (!hit && S_ISDIR(s.st_mode) && depth < MAX_WALK_FDS) hit = folder_holds(p, protect, n, depth + 1);
        }
        free(p);
    }
    closedir(d);
    return hit;
}

static td_status check_final(const char *path, td_output_kind kind, const char *const *protect, size_t n, int force,
                             int *replace, td_error *err)
{
    struct stat fs;
    *replace = 0;
    if (lstat(path, &fs) != 0) {
        if (errno == ENOENT) return TD_OK;
        return td__error_set(err, errno == ELOOP ? TD_EPATH : TD_EIO, path, NULL, "%s", strerror(errno));
    }
    struct stat ts;
    if (stat(path, &ts) != 0) /* a dangling or looping symlink */
        return td__error_set(err, TD_EPATH, path, NULL, "is a symbolic link that leads nowhere (%s)", strerror(errno));
    if (protected_id(ts.st_dev, ts.st_ino, protect, n))
        return td__error_set(err, TD_EEXIST, path, NULL, "is an input of this command (refusing to overwrite it)");
    if (S_ISDIR(ts.st_mode) && kind != TD_OUTPUT_FOLDER)
        return td__error_set(err, TD_EPATH, path, NULL, "is a folder, not a file");
    if (!S_ISDIR(ts.st_mode) && !S_ISREG(ts.st_mode))
        return td__error_set(err, TD_EPATH, path, NULL, "is a device, FIFO or socket; only regular files are replaced");
    if (kind == TD_OUTPUT_FOLDER && !S_ISDIR(ts.st_mode))
        return td__error_set(err, TD_EEXIST, path, NULL, "exists and is not a folder; not replaced");
    if (!force) return td__error_set(err, TD_EEXIST, path, NULL, "already exists (use --force to replace it)");
    if (kind == TD_OUTPUT_FOLDER && folder_holds(path, protect, n, 0))
        return td__error_set(err, TD_EEXIST, path, NULL, "contains an input of this command; not replaced");
    *replace = 1;
    return TD_OK;
}

td_status td_outfile_check(const char *final_path, td_output_kind kind, const char *const *protect, size_t nprotect,
                           int force, td_error *err)
{
    if (!final_path || !*final_path) return td__error_set(err, TD_EPATH, NULL, NULL, "empty output path");
    const size_t len = strlen(final_path);
    if (len >= PATH_MAX) return td__error_set(err, TD_EPATH, final_path, NULL, "output path too long");
    if (final_path[len - 1] == '/') return td__error_set(err, TD_EPATH, final_path, NULL, "output path ends in '/'");
    const char *base = base_of(final_path);
    if (!strcmp(base, ".") || !strcmp(base, "..")) return td__error_set(err, TD_EPATH, final_path, NULL, "not a usable name");
    if (strlen(base) > NAME_MAX) return td__error_set(err, TD_EPATH, final_path, NULL, "name longer than %d bytes", NAME_MAX);
    char *dir = dir_of(final_path);
    if (!dir) return TD_ENOMEM;
    struct stat ds;
    td_status st = TD_OK;
    if (stat(dir, &ds) != 0)
        st = td__error_set(err, errno == ELOOP ? TD_EPATH : TD_ENOTFOUND, final_path, NULL, "output folder %s does not exist", dir);
    else if (!S_ISDIR(ds.st_mode)) st = td__error_set(err, TD_EINVAL, final_path, NULL, "%s is not a folder", dir);
    else if (access(dir, W_OK | X_OK) != 0) st = td__error_set(err, TD_EIO, final_path, NULL, "output folder %s is not writable", dir);
    free(dir);
    int replace;
    if (st == TD_OK) st = check_final(final_path, kind, protect, nprotect, force, &replace, err);
    return st;
}

/* Removes "<x>.tdtmp.<pid>.<r>" entries in dir whose process no longer exists. */
static void remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *p = strstr(e->d_name, TEMP_TAG);
        if (e->d_name[0] != '.' || !p) continue;
        char *end = NULL;
        const long pid = strtol(p + strlen(TEMP_TAG), &end, 10);
        if (pid <= 0 || !end || *end != '.' || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        const int dfd = dirfd(d);
        struct stat s;
        if (fstatat(dfd, e->d_name, &s, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISREG(s.st_mode)) unlinkat(dfd, e->d_name, 0);
        /* stale temporary folders are left: removing a tree by name pattern alone is not safe */
    }
    closedir(d);
}

/* ".<base>.tdtmp.<pid>.<random>", the base shortened so the whole fits NAME_MAX. */
static char *temp_name(const char *dir, const char *base)
{
    char rnd[RANDOM_CHARS + 1];
    unsigned char bytes[RANDOM_CHARS];
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) return NULL;
    for (int i = 0; i < RANDOM_CHARS; i++) rnd[i] = alphabet[bytes[i] % (sizeof alphabet - 1)];
    rnd[RANDOM_CHARS] = '\0';
    char tail[64];
    snprintf(tail, sizeof tail, TEMP_TAG "%ld.%s", (long)getpid(), rnd);
    size_t keep = strlen(base);
    if (1 + keep + strlen(tail) > NAME_MAX) keep = NAME_MAX - 1 - strlen(tail);
    const size_t len = strlen(dir) + keep + strlen(tail) + 3;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/.%.*s%s", dir, (int)keep, base, tail);
    return p;
}

static td_status create_temp(td_outfile *o, td_error *err)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        free(o->temp_path);
        if (!(o->temp_path = temp_name(o->dir, base_of(o->final_path)))) return TD_ENOMEM;
        int rc;
        if (o->kind == TD_OUTPUT_FOLDER) rc = mkdir(o->temp_path, 0777);
        else rc = (o->fd = open(o->temp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666)) < 0 ? -1 : 0;
        if (rc == 0) break;
        if (errno != EEXIST)
            return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot create a temporary in %s: %s", o->dir, strerror(errno));
    }
    if (o->kind == TD_OUTPUT_FOLDER && (o->fd = open(o->temp_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot open the temporary folder: %s", strerror(errno));
    struct stat s;
    if (o->fd < 0 || fstat(o->fd, &s) != 0) return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot create a temporary");
    o->dev = s.st_dev;
    o->ino = s.st_ino;
    return TD_OK;
}

/* HDF5 opens by name: check that it opened the very file created exclusively. */
static td_status open_h5(td_outfile *o, td_error *err)
{
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    o->h5 = H5Fcreate(o->temp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    void *handle = NULL;
    struct stat s;
    const int same = o->h5 >= 0 && H5Fget_vfd_handle(o->h5, H5P_DEFAULT, &handle) >= 0 && handle &&
                     fstat(*(int *)handle, &s) == 0 && s.st_dev == o->dev && s.st_ino == o->ino;
    td__h5_quiet_end(&q);
    close(o->fd);
    o->fd = -1;
    if (!same) return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot create the HDF5 output");
    return TD_OK;
}

td_status td_outfile_create(td_outfile **out, const char *final_path, td_output_kind kind, const char *const *protect,
                            size_t nprotect, int force, td_error *err)
{
    if (!out) return TD_EINVAL;
    *out = NULL;
    td_status st = td_outfile_check(final_path, kind, protect, nprotect, force, err);
    if (st != TD_OK) return st;
    td_outfile *o = calloc(1, sizeof *o);
    if (!o) return TD_ENOMEM;
    o->kind = kind;
    o->fd = -1;
    o->h5 = H5I_INVALID_HID;
    if (!(o->final_path = td__strdup(final_path)) || !(o->dir = dir_of(final_path))) st = TD_ENOMEM;
    if (st == TD_OK) st = check_final(final_path, kind, protect, nprotect, force, &o->replace, err);
    if (st == TD_OK) remove_stale(o->dir);
    if (st == TD_OK) st = create_temp(o, err);
    if (st == TD_OK && kind == TD_OUTPUT_HDF5) st = open_h5(o, err);
    if (st != TD_OK) { td_outfile_abort(o); return st; }
    *out = o;
    return TD_OK;
}

td_status td_outfile_temp(const td_outfile *o, const char **path, uint64_t *dev, uint64_t *ino)
{
    if (!o || !path || !dev || !ino) return TD_EINVAL;
    *path = o->temp_path;
    *dev = (uint64_t)o->dev;
    *ino = (uint64_t)o->ino;
    return TD_OK;
}

const char *td_outfile_path(const td_outfile *o) { return o ? o->final_path : NULL; }

hid_t td__outfile_h5(const td_outfile *o) { return o && o->kind == TD_OUTPUT_HDF5 ? o->h5 : H5I_INVALID_HID; }

int td_outfile_fd(const td_outfile *o) { return o && o->kind == TD_OUTPUT_BYTES ? o->fd : -1; }

td_status td_outfile_write(td_outfile *o, const char *path, const td_tensor *t, td_dtype dtype, td_error *err)
{
    if (!o || o->kind != TD_OUTPUT_HDF5 || !path || path[0] != '/' || !t) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    hid_t ftype = td__h5_float_type(dtype), space = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    td_status st = TD_OK;
    hsize_t dims[TD_MAX_MODES];
    for (int k = 0; k < t->ndim; k++) dims[k] = (hsize_t)t->shape[k];
    if (ftype < 0) { st = td__error_set(err, TD_EINVAL, o->final_path, path, "unsupported output type"); goto done; }
    if (td__h5_make_parents(o->h5, path) != TD_OK) { st = td__error_set(err, TD_EIO, o->final_path, path, "cannot create its groups"); goto done; }
    space = t->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(t->ndim, dims, NULL);
    if (space < 0) { st = td__error_set(err, TD_EIO, o->final_path, path, "cannot create a dataspace"); goto done; }
    dset = H5Dcreate2(o->h5, path, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dset < 0) { st = td__error_set(err, TD_EIO, o->final_path, path, "cannot create the dataset"); goto done; }
    if ((st = td__h5_write_floats(dset, dtype, t->data, t->size)) != TD_OK)
        td__error_set(err, st, o->final_path, path, st == TD_ENOMEM ? "out of memory" : "write failed (disk full?)");
done:
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    td__h5_quiet_end(&q);
    return st;
}

/* A scalar attribute name on obj_path (replacing one of that name) of file type ftype, written
 * from buf in memory type mtype; the caller has silenced HDF5's error stack. */
static td_status write_scalar_attr(td_outfile *o, const char *obj_path, const char *name, hid_t ftype, hid_t mtype,
                                   const void *buf, td_error *err)
{
    td_status st = TD_OK;
    hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    if (H5Aexists_by_name(o->h5, obj_path, name, H5P_DEFAULT) > 0) H5Adelete_by_name(o->h5, obj_path, name, H5P_DEFAULT);
    if (space >= 0) attr = H5Acreate_by_name(o->h5, obj_path, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (space < 0 || attr < 0 || H5Awrite(attr, mtype, buf) < 0)
        st = td__error_set(err, TD_EIO, o->final_path, obj_path, "cannot write attribute %s", name);
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return st;
}

td_status td_outfile_attr_string(td_outfile *o, const char *obj_path, const char *name, const char *value, td_error *err)
{
    if (!o || o->kind != TD_OUTPUT_HDF5 || !obj_path || !name || !value) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    td_status st;
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0)
        st = td__error_set(err, TD_EIO, o->final_path, obj_path, "cannot create attribute %s", name);
    else st = write_scalar_attr(o, obj_path, name, type, type, &value, err);
    if (type >= 0) H5Tclose(type);
    td__h5_quiet_end(&q);
    return st;
}

td_status td_outfile_attr_number(td_outfile *o, const char *obj_path, const char *name, double value, int integer,
                                 td_error *err)
{
    if (!o || o->kind != TD_OUTPUT_HDF5 || !obj_path || !name) return TD_EINVAL;
    if (integer && !(value >= -9.2e18 && value <= 9.2e18 && value == (double)(long long)value)) return TD_EINVAL;
    td__h5quiet q;
    td__h5_quiet_begin(&q);
    const long long iv = integer ? (long long)value : 0;
    td_status st = integer ? write_scalar_attr(o, obj_path, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &iv, err)
                           : write_scalar_attr(o, obj_path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err);
    td__h5_quiet_end(&q);
    return st;
}

td_status td_outfile_write_bytes(td_outfile *o, const void *buf, size_t n, td_error *err)
{
    if (!o || o->kind != TD_OUTPUT_BYTES || (!buf && n)) return TD_EINVAL;
    const char *p = buf;
    while (n) {
        ssize_t w = write(o->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return td__error_set(err, TD_EIO, o->final_path, NULL, "write failed: %s", w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
    }
    return TD_OK;
}

td_status td_outfile_folder_file(td_outfile *o, const char *name, int *fd, td_error *err)
{
    if (!o || !fd || o->kind != TD_OUTPUT_FOLDER || !name || !*name || strchr(name, '/') || !strcmp(name, ".") ||
        !strcmp(name, ".."))
        return TD_EINVAL;
    *fd = openat(o->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (*fd >= 0) return TD_OK;
    return td__error_set(err, errno == EEXIST ? TD_EEXIST : TD_EIO, o->final_path, name, "cannot create: %s", strerror(errno));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes the temporary (a folder with what this process put in it). */
static void remove_temp(td_outfile *o)
{
    if (!o->temp_path) return;
    if (o->kind == TD_OUTPUT_FOLDER) nftw(o->temp_path, remove_entry, MAX_WALK_FDS, FTW_DEPTH | FTW_PHYS);
    else unlink(o->temp_path);
}

void td_outfile_abort(td_outfile *o)
{
    if (!o) return;
    td__h5_close_quiet(o->h5);
    if (o->fd >= 0) close(o->fd);
    remove_temp(o);
    free(o->final_path);
    free(o->temp_path);
    free(o->dir);
    free(o);
}

/* Flush and close, the temporary stays: the first half of a commit. */
static td_status seal(td_outfile *o, td_error *err)
{
    if (o->kind == TD_OUTPUT_HDF5) {
        td__h5quiet q;
        td__h5_quiet_begin(&q);
        const herr_t hr = H5Fclose(o->h5);
        td__h5_quiet_end(&q);
        o->h5 = H5I_INVALID_HID;
        if (hr < 0) return td__error_set(err, TD_EIO, o->final_path, NULL, "closing the output failed (disk full?)");
        o->fd = open(o->temp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    } else if (o->kind == TD_OUTPUT_FOLDER) {
        DIR *d = fdopendir(dup(o->fd)); /* every file inside, then the folder */
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            const int f = e->d_name[0] == '.' ? -1 : openat(o->fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            const int bad = f >= 0 && fsync(f) != 0;
            if (f >= 0) close(f);
            if (bad) { closedir(d); return td__error_set(err, TD_EIO, o->final_path, e->d_name, "cannot flush: %s", strerror(errno)); }
        }
        if (d) closedir(d);
    }
    if (o->fd < 0 || fsync(o->fd) != 0) {
        const int e = errno;
        return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot flush the output: %s", strerror(e));
    }
    close(o->fd);
    o->fd = -1;
    return TD_OK;
}

/* The second half: into place (a replaced folder swapped in atomically, then removed). */
static td_status place(td_outfile *o, td_error *err)
{
    if (o->kind == TD_OUTPUT_FOLDER && o->replace) {
        if (renameat2(AT_FDCWD, o->temp_path, AT_FDCWD, o->final_path, RENAME_EXCHANGE) != 0)
            return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot replace the folder: %s", strerror(errno));
        remove_temp(o); /* now the old folder */
    } else if (rename(o->temp_path, o->final_path) != 0) {
        return td__error_set(err, TD_EIO, o->final_path, NULL, "cannot move the output into place: %s", strerror(errno));
    }
    free(o->temp_path);
    o->temp_path = NULL;
    const int dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return TD_OK;
}

td_status td_outfile_commit_all(td_outfile **o, size_t n, td_error *err)
{
    td_status st = o || !n ? TD_OK : TD_EINVAL;
    for (size_t i = 0; i < n && st == TD_OK; i++) st = o[i] ? seal(o[i], err) : TD_EINVAL;
    for (size_t i = 0; i < n && st == TD_OK; i++) st = place(o[i], err);
    for (size_t i = 0; o && i < n; i++) td_outfile_abort(o[i]); /* frees; removes what was not placed */
    return st;
}

td_status td_outfile_commit(td_outfile *o, td_error *err) { return td_outfile_commit_all(&o, 1, err); }
