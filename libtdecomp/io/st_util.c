/* Small helpers of the safetensors code: UTF-8 validation, exact pread/pwrite, opening. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/st_internal.h"

size_t td__utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1Fu; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0Fu; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07u; min = 0x10000; }
        else return i; /* continuation byte, overlong 2-byte lead, or beyond U+10FFFF */
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0u) != 0x80u) return i;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return n;
}

/* pread or pwrite all n bytes at off, resuming after EINTR and short transfers; a zero-byte
 * transfer is the end of the file (1) when reading, an error (EIO) when writing. */
static int transfer_full(int fd, unsigned char *p, size_t n, uint64_t off, int write)
{
    while (n > 0) {
        if (off > (uint64_t)INT64_MAX) { errno = EOVERFLOW; return -1; }
        ssize_t r = write ? pwrite(fd, p, n, (off_t)off) : pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            if (!write) return 1;
            errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int td__pread_full(int fd, void *buf, size_t n, uint64_t off) { return transfer_full(fd, buf, n, off, 0); }

/* pwrite never stores through p: the cast only lets both directions share one loop */
int td__pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    return transfer_full(fd, (unsigned char *)(uintptr_t)buf, n, off, 1);
}

const char *td__st_meta_find(const td__st_meta *meta, size_t n, const char *key)
{
    for (size_t i = 0; meta && key && i < n; i++)
        if (strcmp(meta[i].key, key) == 0) return meta[i].value;
    return NULL;
}

td_status td__open_regular(const char *path, int *fd, uint64_t *size, td_error *err)
{
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below) */
    int d = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (d < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) return td__error_set(err, TD_ENOTFOUND, path, NULL, "no such file");
        return td__error_set(err, TD_EIO, path, NULL, "cannot open: %s", strerror(e));
    }
    struct stat sb;
    if (fstat(d, &sb) != 0) {
        int e = errno;
        close(d);
        return td__error_set(err, TD_EIO, path, NULL, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(d);
        return td__error_set(err, TD_EINVAL, path, NULL, "not a regular file");
    }
    int fl = fcntl(d, F_GETFL);
    if (fl >= 0) (void)fcntl(d, F_SETFL, fl & ~O_NONBLOCK);
    *fd = d;
    *size = (uint64_t)sb.st_size;
    return TD_OK;
}

td_status td__read_text(const char *path, int fd, uint64_t size, uint64_t limit, char **out, td_error *err)
{
    *out = NULL;
    if (size > limit)
        return td__error_set(err, TD_EFORMAT, path, NULL, "file of %" PRIu64 " bytes exceeds the %" PRIu64 "-byte limit for a JSON file",
                             size, limit);
    char *buf = malloc((size_t)size + 1);
    if (!buf) return td__error_set(err, TD_ENOMEM, path, NULL, "no memory for %" PRIu64 " bytes", size);
    int r = td__pread_full(fd, buf, (size_t)size, 0);
    if (r != 0) {
        free(buf);
        return td__error_set(err, r < 0 ? TD_EIO : TD_EFORMAT, path, NULL, "cannot read the file");
    }
    buf[size] = '\0';
    *out = buf;
    return TD_OK;
}

char *td__json_text(const struct json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    char *s = n ? malloc(n + 1) : NULL;
    if (!s) return NULL;
    if (json_dumpb(v, s, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    return s;
}
