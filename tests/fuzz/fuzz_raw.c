/* libFuzzer harness: raw mutated files (seeded from tests/data) read through a forked child, as
 * tdecomp-tool does. A crash whose top sanitizer frame is inside libhdf5 is contained by design
 * and listed in $TDFUZZ_HDF5_LOG (default /tmp/tdfuzz-hdf5-crashes.txt) with the input kept;
 * a crash or sanitizer report anywhere else is a finding (abort).
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tdecomp.h"

static void child(const char *path)
{
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], rep[64];
    snprintf(path, sizeof path, "/dev/shm/tdfuzzraw-%d.h5", (int)getpid());
    snprintf(rep, sizeof rep, "/dev/shm/tdfuzzraw-%d.txt", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(rep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) { dup2(fd, 2); close(fd); }
        child(path);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        /* whose crash? the first stack frame of the sanitizer report */
        char line[1024], frame[1024] = "";
        FILE *r = fopen(rep, "r");
        while (r && fgets(line, sizeof line, r))
            if (strstr(line, "#0 ")) { snprintf(frame, sizeof frame, "%s", line); break; }
        if (r) fclose(r);
        int in_hdf5 = strstr(frame, "libhdf5") || strstr(frame, " H5") || strstr(frame, "in H5");
        if (!in_hdf5) {
            fprintf(stderr, "tdfuzz: finding outside libhdf5 (status %d): %s\n", status, frame);
            abort();
        }
        const char *logp = getenv("TDFUZZ_HDF5_LOG");
        FILE *lg = fopen(logp ? logp : "/tmp/tdfuzz-hdf5-crashes.txt", "a");
        if (lg) {
            char keep[96];
            snprintf(keep, sizeof keep, "/tmp/tdfuzz-hdf5-crash-%ld.h5", (long)random());
            FILE *k = fopen(keep, "wb");
            if (k) { fwrite(data, 1, size, k); fclose(k); }
            fprintf(lg, "%s: %s", keep, frame);
            fclose(lg);
        }
    }
    unlink(path);
    unlink(rep);
    return 0;
}
