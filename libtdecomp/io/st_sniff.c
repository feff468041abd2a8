/* Weight-file format by content: HDF5, safetensors (file or index), torch.save zip or pickle. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "io/st_internal.h"

#define HEAD_BYTES 64
#define HDF5_SIG_LEN 8
#define HDF5_USERBLOCK_MIN 512u          /* the superblock may follow a user block of 512 * 2^k */
#define PICKLE_PROTO 0x80                /* pickle protocol opcode, then the version */
#define PICKLE_MIN 2
#define PICKLE_MAX 5
#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_LOCAL_LEN 30
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_CENTRAL_LEN 46
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP_EOCD_LEN 22
#define ZIP_COMMENT_MAX 65535u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP64_LOCATOR_LEN 20
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP64_EOCD_LEN 56
#define ZIP_NAME_MAX 65535u
#define ZIP_MAX_ENTRIES (1u << 20)       /* central directory entries looked at */
#define U16_ALL 0xFFFFu
#define U32_ALL 0xFFFFFFFFu
#define PICKLE_ENTRY "data.pkl"

const char *td__file_kind_name(td__file_kind kind)
{
    switch (kind) {
    case TD__FILE_HDF5: return "hdf5";
    case TD__FILE_SAFETENSORS: return "safetensors";
    case TD__FILE_SAFETENSORS_INDEX: return "safetensors-index";
    case TD__FILE_PYTORCH_ZIP: return "pytorch-zip";
    case TD__FILE_PYTORCH_PICKLE: return "pytorch-pickle";
    default: return "unknown";
    }
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int is_hdf5_sig(const unsigned char *p)
{
    static const unsigned char sig[HDF5_SIG_LEN] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    return memcmp(p, sig, HDF5_SIG_LEN) == 0;
}

static int hdf5_after_userblock(int fd, uint64_t size)
{
    unsigned char b[HDF5_SIG_LEN];
    for (uint64_t off = HDF5_USERBLOCK_MIN; off <= size - HDF5_SIG_LEN && off < (UINT64_C(1) << 62); off *= 2)
        if (td__pread_full(fd, b, HDF5_SIG_LEN, off) == 0 && is_hdf5_sig(b)) return 1;
    return 0;
}

static int is_pickle_name(const unsigned char *s, size_t n)
{
    size_t k = strlen(PICKLE_ENTRY);
    if (n == k) return memcmp(s, PICKLE_ENTRY, k) == 0;
    return n > k && s[n - k - 1] == '/' && memcmp(s + n - k, PICKLE_ENTRY, k) == 0;
}

/* Central directory offset and entry count from the end records (zip64 when flagged). */
static int zip_directory(int fd, uint64_t size, unsigned char *buf, uint64_t *cd, uint64_t *count)
{
    uint64_t tail = size < ZIP_EOCD_LEN + ZIP_COMMENT_MAX ? size : ZIP_EOCD_LEN + ZIP_COMMENT_MAX;
    if (tail < ZIP_EOCD_LEN || td__pread_full(fd, buf, (size_t)tail, size - tail) != 0) return 0;
    for (uint64_t i = tail - ZIP_EOCD_LEN + 1; i-- > 0;) {
        if (le(buf + i, 4) != ZIP_EOCD_SIG) continue;
        *count = le(buf + i + 10, 2);
        *cd = le(buf + i + 16, 4);
        if (*cd != U32_ALL && *count != U16_ALL) return 1;
        uint64_t eocd = size - tail + i;
        unsigned char z[ZIP64_EOCD_LEN];
        if (eocd < ZIP64_LOCATOR_LEN || td__pread_full(fd, z, ZIP64_LOCATOR_LEN, eocd - ZIP64_LOCATOR_LEN) != 0 ||
            le(z, 4) != ZIP64_LOCATOR_SIG)
            return 0;
        uint64_t rec = le(z + 8, 8);
        if (td__pread_full(fd, z, ZIP64_EOCD_LEN, rec) != 0 || le(z, 4) != ZIP64_EOCD_SIG) return 0;
        *count = le(z + 32, 8);
        *cd = le(z + 48, 8);
        return 1;
    }
    return 0;
}

/* 1 when the zip's first local header, or an entry of its central directory, is a data.pkl. */
static td_status zip_has_pickle(int fd, uint64_t size, int *found, td_error *err, const char *path)
{
    unsigned char h[ZIP_CENTRAL_LEN];
    unsigned char *buf = malloc(ZIP_EOCD_LEN + ZIP_COMMENT_MAX);
    *found = 0;
    if (!buf) return td__error_set(err, TD_ENOMEM, path, NULL, "out of memory");
    if (td__pread_full(fd, h, ZIP_LOCAL_LEN, 0) == 0 && le(h, 4) == ZIP_LOCAL_SIG) {
        size_t n = (size_t)le(h + 26, 2);
        if (td__pread_full(fd, buf, n, ZIP_LOCAL_LEN) == 0 && is_pickle_name(buf, n)) *found = 1;
    }
    uint64_t cd, count;
    if (!*found && zip_directory(fd, size, buf, &cd, &count)) {
        for (uint64_t i = 0; i < count && i < ZIP_MAX_ENTRIES; i++) {
            if (td__pread_full(fd, h, ZIP_CENTRAL_LEN, cd) != 0 || le(h, 4) != ZIP_CENTRAL_SIG) break;
            size_t n = (size_t)le(h + 28, 2);
            if (td__pread_full(fd, buf, n, cd + ZIP_CENTRAL_LEN) != 0) break;
            if (is_pickle_name(buf, n)) {
                *found = 1;
                break;
            }
            cd += ZIP_CENTRAL_LEN + n + le(h + 30, 2) + le(h + 32, 2);
        }
    }
    free(buf);
    return TD_OK;
}

/* A JSON object with a "weight_map" member (duplicates tolerated here: the index reader
 * refuses them with a precise message). */
static td_status is_index(const char *path, int fd, uint64_t size, int *yes, td_error *err)
{
    char *text;
    *yes = 0;
    if (size > TD__ST_INDEX_MAX) return TD_OK;
    td_status st = td__read_text(path, fd, size, TD__ST_INDEX_MAX, &text, err);
    if (st != TD_OK) return st;
    json_t *j = json_loadb(text, (size_t)size, 0, NULL);
    *yes = json_is_object(j) && json_object_get(j, "weight_map") != NULL;
    json_decref(j);
    free(text);
    return TD_OK;
}

static int first_nonblank(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return p[i];
    return -1;
}

static td_status classify(const char *path, int fd, uint64_t size, td__file_kind *kind, td_error *err)
{
    unsigned char head[HEAD_BYTES];
    size_t n = size < HEAD_BYTES ? (size_t)size : HEAD_BYTES;
    if (td__pread_full(fd, head, n, 0) != 0) return td__error_set(err, TD_EIO, path, NULL, "cannot read the file");
    if (n >= HDF5_SIG_LEN && is_hdf5_sig(head)) { *kind = TD__FILE_HDF5; return TD_OK; }
    if (n > 8) {
        uint64_t hl = le(head, 8);
        if (hl <= TD__ST_HEADER_MAX && hl > 0 && hl <= size - 8 && head[8] == '{') { *kind = TD__FILE_SAFETENSORS; return TD_OK; }
    }
    if (n >= 4 && le(head, 4) == ZIP_LOCAL_SIG) {
        int found;
        td_status st = zip_has_pickle(fd, size, &found, err, path);
        if (st == TD_OK && found) *kind = TD__FILE_PYTORCH_ZIP;
        return st;
    }
    if (n >= 2 && head[0] == PICKLE_PROTO && head[1] >= PICKLE_MIN && head[1] <= PICKLE_MAX) {
        *kind = TD__FILE_PYTORCH_PICKLE;
        return TD_OK;
    }
    if (first_nonblank(head, n) == '{') {
        int yes;
        td_status st = is_index(path, fd, size, &yes, err);
        if (st == TD_OK && yes) *kind = TD__FILE_SAFETENSORS_INDEX;
        if (st != TD_OK || yes) return st;
    }
    if (size >= HDF5_USERBLOCK_MIN + HDF5_SIG_LEN && hdf5_after_userblock(fd, size)) *kind = TD__FILE_HDF5;
    return TD_OK;
}

td_status td__sniff(const char *path, td__file_kind *kind, td_error *err)
{
    if (!kind) return TD_EINVAL;
    *kind = TD__FILE_UNKNOWN;
    if (!path) return td__error_set(err, TD_EINVAL, NULL, NULL, "no file given");
    int fd;
    uint64_t size;
    td_status st = td__open_regular(path, &fd, &size, err);
    if (st != TD_OK) return st;
    st = classify(path, fd, size, kind, err);
    close(fd);
    return st;
}
