/* Sharded checkpoints: model.safetensors.index.json and the shards it names, checked both ways
 * (every mapped tensor in its shard, every shard tensor mapped to that shard). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "io/st_internal.h"

typedef struct pool {
    char *p;
} pool;

static const char *pool_put(pool *pl, const char *s, size_t n)
{
    char *d = pl->p;
    memcpy(d, s, n);
    d[n] = '\0';
    pl->p += n + 1;
    return d;
}

static const char *json_kind(const json_t *v)
{
    if (json_is_object(v)) return "object";
    if (json_is_array(v)) return "array";
    if (json_is_string(v)) return "string";
    if (json_is_number(v)) return "number";
    if (json_is_boolean(v)) return "boolean";
    return "null";
}

static td_status load_json(const char *path, json_t **root, td_error *err)
{
    int fd;
    uint64_t size;
    char *text = NULL;
    *root = NULL;
    td_status st = td__open_regular(path, &fd, &size, err);
    if (st != TD_OK) return st;
    st = td__read_text(path, fd, size, TD__ST_INDEX_MAX, &text, err);
    close(fd);
    if (st != TD_OK) return st;
    size_t bad = td__utf8_check((const unsigned char *)text, (size_t)size);
    json_error_t je;
    if (bad != size) {
        st = td__error_set(err, TD_EFORMAT, path, NULL, "index is not valid UTF-8 (byte %zu)", bad);
    } else if (!(*root = json_loadb(text, (size_t)size, JSON_REJECT_DUPLICATES, &je))) {
        enum json_error_code c = json_error_code(&je);
        const char *near = strstr(je.text, " near ");
        if (c == json_error_out_of_memory) st = td__error_set(err, TD_ENOMEM, path, NULL, "no memory to parse the index");
        else if (c == json_error_duplicate_key)
            st = td__error_set(err, TD_EFORMAT, path, NULL, "index has a duplicate key%s (byte %d)", near ? near : "", je.position);
        else st = td__error_set(err, TD_EFORMAT, path, NULL, "index is not valid JSON: %s (byte %d)", je.text, je.position);
    } else if (!json_is_object(*root)) {
        st = td__error_set(err, TD_EFORMAT, path, NULL, "index is a JSON %s, not an object", json_kind(*root));
    }
    free(text);
    return st;
}

/* A plain file name: the index may only name files in its own folder. */
static const char *bad_shard_name(const char *s)
{
    if (!*s) return "is empty";
    if (strchr(s, '/')) return "contains '/' (shards must be plain file names in the index's folder)";
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return "is not a file name";
    return NULL;
}

/* The metadata value as text: strings as they are, anything else as compact JSON. */
static char *meta_text(json_t *v)
{
    return json_is_string(v) ? td__strdup(json_string_value(v)) : td__json_text(v);
}

static td_status parse_metadata(td__st_index *ix, json_t *md, pool *pl, td_error *err)
{
    const char *k;
    json_t *v;
    ix->meta = calloc(json_object_size(md) ? json_object_size(md) : 1, sizeof *ix->meta);
    if (!ix->meta) return td__error_set(err, TD_ENOMEM, ix->path, NULL, "out of memory");
    json_object_foreach(md, k, v) {
        char *t = meta_text(v);
        if (!t) return td__error_set(err, TD_ENOMEM, ix->path, NULL, "out of memory");
        ix->meta[ix->nmeta].key = pool_put(pl, k, strlen(k));
        ix->meta[ix->nmeta].value = pool_put(pl, t, strlen(t));
        ix->nmeta++;
        free(t);
    }
    return TD_OK;
}

/* Bytes of the string pool; 0 when out of memory (a pool sized short would be overrun). */
static size_t strings_size(json_t *wm, json_t *md)
{
    size_t n = 1;
    const char *k;
    json_t *v;
    json_object_foreach(wm, k, v) n += strlen(k) + 1 + (json_is_string(v) ? json_string_length(v) + 1 : 0);
    json_object_foreach(md, k, v) {
        char *t = meta_text(v);
        if (!t) return 0;
        n += strlen(k) + 1 + strlen(t) + 1;
        free(t);
    }
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* weight_map's entries; shard_names becomes the sorted distinct shard names. */
static td_status parse_map(td__st_index *ix, json_t *wm, pool *pl, td_error *err)
{
    size_t n = json_object_size(wm);
    const char **shard_of = calloc(n ? n : 1, sizeof *shard_of);
    ix->entries = calloc(n ? n : 1, sizeof *ix->entries);
    ix->shard_names = calloc(n ? n : 1, sizeof *ix->shard_names);
    if (!shard_of || !ix->entries || !ix->shard_names) {
        free(shard_of);
        return td__error_set(err, TD_ENOMEM, ix->path, NULL, "out of memory");
    }
    const char *k;
    json_t *v;
    td_status st = TD_OK;
    json_object_foreach(wm, k, v) {
        if (!json_is_string(v)) {
            st = td__error_set(err, TD_EFORMAT, ix->path, k, "weight_map value is a JSON %s, not a shard file name", json_kind(v));
            break;
        }
        const char *why = bad_shard_name(json_string_value(v));
        if (why) {
            st = td__error_set(err, TD_EFORMAT, ix->path, k, "shard name \"%s\" %s", json_string_value(v), why);
            break;
        }
        ix->entries[ix->nentries].name = pool_put(pl, k, strlen(k));
        shard_of[ix->nentries++] = pool_put(pl, json_string_value(v), json_string_length(v));
    }
    if (st == TD_OK) {
        memcpy(ix->shard_names, shard_of, n * sizeof *shard_of);
        if (n) qsort(ix->shard_names, n, sizeof *ix->shard_names, cmp_str);
        for (size_t i = 0; i < n; i++)
            if (ix->nshards == 0 || strcmp(ix->shard_names[ix->nshards - 1], ix->shard_names[i]) != 0)
                ix->shard_names[ix->nshards++] = ix->shard_names[i];
        for (size_t i = 0; i < n; i++) {
            const char *const *s = bsearch(&shard_of[i], ix->shard_names, ix->nshards, sizeof *ix->shard_names, cmp_str);
            ix->entries[i].shard = (size_t)(s - (const char *const *)ix->shard_names);
        }
    }
    free(shard_of);
    return st;
}

static td_status open_shards(td__st_index *ix, td_error *err)
{
    const char *slash = strrchr(ix->path, '/');
    size_t dirlen = slash ? (size_t)(slash - ix->path) + 1 : 0;
    ix->shards = calloc(ix->nshards ? ix->nshards : 1, sizeof *ix->shards);
    if (!ix->shards) return td__error_set(err, TD_ENOMEM, ix->path, NULL, "out of memory");
    for (size_t i = 0; i < ix->nshards; i++) ix->shards[i].fd = -1;
    for (size_t i = 0; i < ix->nshards; i++) {
        size_t nl = strlen(ix->shard_names[i]);
        char *p = malloc(dirlen + nl + 1);
        if (!p) return td__error_set(err, TD_ENOMEM, ix->path, NULL, "out of memory");
        memcpy(p, ix->path, dirlen);
        memcpy(p + dirlen, ix->shard_names[i], nl + 1);
        td_status st = td__st_open(p, &ix->shards[i], err);
        free(p);
        if (st != TD_OK) return st;
    }
    return TD_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp((*(const td__st_index_entry *const *)a)->name, (*(const td__st_index_entry *const *)b)->name);
}

static int entry_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(const td__st_index_entry *const *)elem)->name);
}

static const td__st_index_entry *entry_find(const td__st_index *ix, const char *name)
{
    if (!ix->nentries) return NULL;
    const td__st_index_entry *const *p = bsearch(name, ix->by_name_, ix->nentries, sizeof *ix->by_name_, entry_key);
    return p ? *p : NULL;
}

/* Both directions: map -> shard and shard -> map. */
static td_status cross_check(td__st_index *ix, td_error *err)
{
    for (size_t i = 0; i < ix->nentries; i++) {
        td__st_index_entry *e = &ix->entries[i];
        if (td__st_find(&ix->shards[e->shard], e->name, &e->tensor)) continue;
        const char *elsewhere = NULL;
        for (size_t s = 0; s < ix->nshards && !elsewhere; s++)
            if (td__st_find(&ix->shards[s], e->name, NULL)) elsewhere = ix->shard_names[s];
        return td__error_set(err, TD_EFORMAT, ix->path, e->name, "mapped to shard %s, which has no such tensor%s%s%s",
                             ix->shard_names[e->shard], elsewhere ? " (it is in " : "", elsewhere ? elsewhere : "",
                             elsewhere ? ")" : "");
    }
    for (size_t s = 0; s < ix->nshards; s++) {
        const td__st_file *f = &ix->shards[s];
        for (size_t t = 0; t < f->ntensors; t++) {
            const td__st_index_entry *e = entry_find(ix, f->tensors[t].name);
            if (!e)
                return td__error_set(err, TD_EFORMAT, f->path, f->tensors[t].name, "tensor not listed in the weight_map of %s",
                                     ix->path);
            if (e->shard != s)
                return td__error_set(err, TD_EFORMAT, f->path, f->tensors[t].name, "also stored here, but %s maps it to shard %s",
                                     ix->path, ix->shard_names[e->shard]);
        }
    }
    return TD_OK;
}

static td_status parse_index(td__st_index *ix, json_t *root, td_error *err)
{
    json_t *wm = json_object_get(root, "weight_map"), *md = json_object_get(root, "metadata");
    if (!wm) return td__error_set(err, TD_EFORMAT, ix->path, NULL, "index has no \"weight_map\"");
    if (!json_is_object(wm))
        return td__error_set(err, TD_EFORMAT, ix->path, "weight_map", "is a JSON %s, not an object", json_kind(wm));
    if (md && !json_is_object(md))
        return td__error_set(err, TD_EFORMAT, ix->path, "metadata", "is a JSON %s, not an object", json_kind(md));
    size_t pool_bytes = strings_size(wm, md);
    ix->strings_ = pool_bytes ? malloc(pool_bytes) : NULL;
    if (!ix->strings_) return td__error_set(err, TD_ENOMEM, ix->path, NULL, "out of memory");
    pool pl = {ix->strings_};
    td_status st = parse_map(ix, wm, &pl, err);
    if (st == TD_OK && md) st = parse_metadata(ix, md, &pl, err);
    if (st != TD_OK) return st;
    ix->by_name_ = calloc(ix->nentries ? ix->nentries : 1, sizeof *ix->by_name_);
    if (!ix->by_name_) return td__error_set(err, TD_ENOMEM, ix->path, NULL, "out of memory");
    for (size_t i = 0; i < ix->nentries; i++) ix->by_name_[i] = &ix->entries[i];
    if (ix->nentries) qsort(ix->by_name_, ix->nentries, sizeof *ix->by_name_, entry_cmp);
    if ((st = open_shards(ix, err)) != TD_OK) return st;
    return cross_check(ix, err);
}

td_status td__st_index_open(const char *path, td__st_index *ix, td_error *err)
{
    if (!ix) return TD_EINVAL;
    memset(ix, 0, sizeof *ix);
    if (!path) return td__error_set(err, TD_EINVAL, NULL, NULL, "no file given");
    json_t *root = NULL;
    td_status st;
    if (!(ix->path = td__strdup(path))) {
        st = td__error_set(err, TD_ENOMEM, path, NULL, "out of memory");
        goto done;
    }
    if ((st = load_json(path, &root, err)) != TD_OK) goto done;
    st = parse_index(ix, root, err);
done:
    json_decref(root);
    if (st != TD_OK) td__st_index_close(ix);
    return st;
}

void td__st_index_close(td__st_index *ix)
{
    if (!ix) return;
    if (ix->shards)
        for (size_t i = 0; i < ix->nshards; i++) td__st_close(&ix->shards[i]);
    free(ix->shards);
    free(ix->shard_names);
    free(ix->entries);
    free(ix->by_name_);
    free(ix->meta);
    free(ix->strings_);
    free(ix->path);
    memset(ix, 0, sizeof *ix);
}

int td__st_index_find(const td__st_index *ix, const char *name, size_t *shard, size_t *tensor)
{
    if (!ix || !name) return 0;
    const td__st_index_entry *e = entry_find(ix, name);
    if (!e) return 0;
    if (shard) *shard = e->shard;
    if (tensor) *tensor = e->tensor;
    return 1;
}

const char *td__st_index_metadata_get(const td__st_index *ix, const char *key)
{
    return ix ? td__st_meta_find(ix->meta, ix->nmeta, key) : NULL;
}
