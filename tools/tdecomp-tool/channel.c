/* The worker -> supervisor channel (records: 'P' phase; 'T' dev ino length path). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "channel.h"

/* Longest path a record may carry. */
#define MAX_PATH_BYTES 65536

void tool_channel_send_temp(int fd, const char *path, uint64_t dev, uint64_t ino)
{
    const uint32_t len = (uint32_t)strlen(path);
    if (fd < 0 || len > MAX_PATH_BYTES) return;
    unsigned char head[21];
    head[0] = TOOL_CH_TEMP;
    memcpy(head + 1, &dev, 8);
    memcpy(head + 9, &ino, 8);
    memcpy(head + 17, &len, 4);
    /* one write keeps the record whole (well under PIPE_BUF for any real path) */
    unsigned char *rec = malloc(sizeof head + len);
    if (!rec) return;
    memcpy(rec, head, sizeof head);
    memcpy(rec + sizeof head, path, len);
    if (write(fd, rec, sizeof head + len) < 0) { /* the supervisor is gone: nothing to tell */ }
    free(rec);
}

static int read_full(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes path only when it is still what the worker created. */
static int remove_if_ours(const char *path, uint64_t dev, uint64_t ino, pid_t worker)
{
    char tag[48];
    snprintf(tag, sizeof tag, ".tdtmp.%ld.", (long)worker);
    const char *base = strrchr(path, '/');
    struct stat s;
    if (!strstr(base ? base + 1 : path, tag) || lstat(path, &s) != 0) return 0;
    if ((uint64_t)s.st_dev != dev || (uint64_t)s.st_ino != ino) return 0;
    if (S_ISDIR(s.st_mode)) return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0;
    return S_ISREG(s.st_mode) && unlink(path) == 0;
}

void tool_channel_drain(int fd, pid_t worker, tool_report *r)
{
    memset(r, 0, sizeof *r);
    unsigned char type;
    while (read_full(fd, &type, 1) == 0) {
        if (type == TOOL_CH_PHASE) {
            unsigned char p;
            if (read_full(fd, &p, 1) != 0) return;
            r->phase = p;
            continue;
        }
        if (type != TOOL_CH_TEMP) return;
        uint64_t dev, ino;
        uint32_t len;
        if (read_full(fd, &dev, 8) || read_full(fd, &ino, 8) || read_full(fd, &len, 4) || len > MAX_PATH_BYTES) return;
        char *path = malloc((size_t)len + 1);
        if (!path || read_full(fd, path, len)) { free(path); return; }
        path[len] = '\0';
        if (strlen(path) == len) r->removed += (size_t)remove_if_ours(path, dev, ino, worker); /* no NUL inside */
        free(path);
    }
}
