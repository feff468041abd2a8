/* Test driver of the HDF5 float conversions, for test_h5_float.py (which holds the truths):
 *   h5_float_drive round DTYPE IN OUT     td_tensor_round of IN's doubles into OUT
 *   h5_float_drive write DTYPE IN OUT.h5  IN's doubles written as dataset /x through td_outfile
 *   h5_float_drive read FILE DATASET OUT  td_h5_read_tensor into OUT; prints the stored dtype
 * IN and OUT are raw native doubles. DTYPE is float16, bfloat16, float32 or float64.
 * Failures print the error record's message on stderr and exit 1; bad usage exits 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tdecomp/io.h"

static int parse_dtype(const char *s, td_dtype *dt)
{
    static const td_dtype all[] = {TD_DTYPE_F16, TD_DTYPE_BF16, TD_DTYPE_F32, TD_DTYPE_F64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, td_dtype_name(all[i]))) { *dt = all[i]; return 1; }
    return 0;
}

/* The doubles of a raw file as a 1-D tensor. */
static int load(const char *path, td_tensor *t)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    size_t count = n > 0 ? (size_t)n / sizeof(double) : 0;
    int ok = n >= 0 && td_tensor_alloc(t, 1, &count) == TD_OK && fread(t->data, sizeof(double), count, f) == count;
    fclose(f);
    return ok;
}

static int save(const char *path, const td_tensor *t)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(t->data, sizeof(double), t->size, f) == t->size;
    return fclose(f) == 0 && ok;
}

static int fail(const td_error *e, td_status st)
{
    fprintf(stderr, "%s [%s]\n", e->message, td_status_name(st));
    return 1;
}

static int cmd_write(td_dtype dt, const td_tensor *t, const char *out)
{
    td_outfile *o;
    td_error err;
    td_status st = td_outfile_create(&o, out, TD_OUTPUT_HDF5, NULL, 0, 1, &err);
    if (st != TD_OK) return fail(&err, st);
    if ((st = td_outfile_write(o, "/x", t, dt, &err)) != TD_OK) {
        td_outfile_abort(o);
        return fail(&err, st);
    }
    return (st = td_outfile_commit(o, &err)) == TD_OK ? 0 : fail(&err, st);
}

int main(int argc, char **argv)
{
    td_dtype dt;
    td_tensor t = {0};
    td_error err;
    int rc;
    if (argc == 5 && !strcmp(argv[1], "read")) {
        td_status st = td_h5_read_tensor(argv[2], argv[3], &t, &dt, &err);
        if (st != TD_OK) return fail(&err, st);
        rc = save(argv[4], &t) ? 0 : 1;
        printf("%s\n", td_dtype_name(dt));
    } else if (argc == 5 && parse_dtype(argv[2], &dt) && (!strcmp(argv[1], "round") || !strcmp(argv[1], "write"))) {
        if (!load(argv[3], &t)) { fprintf(stderr, "cannot read %s\n", argv[3]); return 1; }
        if (!strcmp(argv[1], "write")) rc = cmd_write(dt, &t, argv[4]);
        else rc = td_tensor_round(&t, dt) == TD_OK && save(argv[4], &t) ? 0 : 1;
    } else {
        fprintf(stderr, "usage: h5_float_drive round|write DTYPE IN OUT | read FILE DATASET OUT\n");
        return 2;
    }
    td_tensor_free(&t);
    return rc;
}
