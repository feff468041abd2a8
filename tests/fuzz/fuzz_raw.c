/* libFuzzer harness: raw mutated files (seeded from tests/data) through the library's readers,
 * in-process so that coverage guides the mutations. Run it under libFuzzer's fork mode
 * (-fork=1 -ignore_crashes=1 -artifact_prefix=DIR/), as tools/test.sh does: a crash (in libhdf5
 * or ours) is saved as an artifact instead of ending the run, and the stage fails when any
 * artifact appears, so every crash is examined (libhdf5 ones are contained by tdecomp-tool's
 * forked child and listed in the closing note).
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hdf5.h>
#include "tdecomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/tdfuzzraw-%d.h5", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    td_model m;
    td_error err;
    if (td_model_open(&m, path, TD_LAYOUT_AUTO, &err) == TD_OK) {
        for (size_t i = 0; i < m.nlayers; i++) {
            td_tensor k, b;
            if (td_model_read_layer(&m, i, &k, &b, &err) == TD_OK) {
                td_tensor_free(&k);
                td_tensor_free(&b);
            }
        }
        td_model_free(&m);
    }
    td_tensor t;
    if (td_h5_read_tensor(path, "/tensor", &t, NULL, &err) == TD_OK) td_tensor_free(&t);
    unlink(path);
    /* every reader closes what it opened, failed or not: an identifier left open keeps libhdf5's
     * file open (weak close degree), and the next input at this path could meet its stale state */
    const ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_ids != 0) {
        fprintf(stderr, "fuzz_raw: %zd HDF5 identifiers left open after one input\n", open_ids);
        abort();
    }
    return 0;
}
