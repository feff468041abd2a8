/* Weight files in safetensors (torch key naming): one file, or shards through their index. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "io/model_internal.h"
#include "io/st_internal.h"

/* The open source: one file, or an index with its shards; tensor i of the model lives at
 * (shard[i], index[i]). */
typedef struct st_source {
    int sharded;
    td__st_file single;
    td__st_index ix;
    size_t *shard, *index;
} st_source;

static const td__st_file *file_of(const st_source *s, size_t shard) { return s->sharded ? &s->ix.shards[shard] : &s->single; }

void td__model_close_st(void *p)
{
    st_source *s = p;
    if (!s) return;
    if (s->sharded) td__st_index_close(&s->ix);
    else td__st_close(&s->single);
    free(s->shard);
    free(s->index);
    free(s);
}

/* torch-style names of the dtypes: "float32", "int64", ... */
static const char *dtype_name(td__st_dtype dt)
{
    static const struct { td__st_dtype dt; const char *name; } names[] = {
        {TD__ST_BOOL, "bool"}, {TD__ST_U8, "uint8"}, {TD__ST_I8, "int8"}, {TD__ST_I16, "int16"}, {TD__ST_U16, "uint16"},
        {TD__ST_F16, "float16"}, {TD__ST_BF16, "bfloat16"}, {TD__ST_I32, "int32"}, {TD__ST_U32, "uint32"},
        {TD__ST_F32, "float32"}, {TD__ST_F64, "float64"}, {TD__ST_I64, "int64"}, {TD__ST_U64, "uint64"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].dt == dt) return names[i].name;
    return td__st_dtype_name(dt);
}

static td_status add_tensor(td_model *m, size_t cap, const td__st_tensor *t)
{
    if (m->ntensors == cap) return TD_EINTERNAL;
    td_model_tensor *mt = &m->tensors[m->ntensors];
    memset(mt, 0, sizeof *mt);
    if (!(mt->path = td__model_str(m, t->name))) return TD_ENOMEM;
    mt->name = mt->path;
    mt->ndim = t->ndim;
    mt->elements = t->nelem;
    for (int k = 0; k < t->ndim && k < TD_MAX_MODES; k++) mt->shape[k] = (size_t)t->shape[k];
    mt->dtype = t->ndim <= TD_MAX_MODES ? td__st_dtype_to_td(t->dtype) : TD_DTYPE_OTHER;
    snprintf(mt->dtype_name, sizeof mt->dtype_name, "%s", dtype_name(t->dtype));
    m->ntensors++;
    return TD_OK;
}

static td_status list_tensors(td_model *m, st_source *s)
{
    const size_t nfiles = s->sharded ? s->ix.nshards : 1;
    size_t total = 0;
    for (size_t f = 0; f < nfiles; f++) total += file_of(s, f)->ntensors;
    m->tensors = calloc(total ? total : 1, sizeof *m->tensors);
    s->shard = calloc(total ? total : 1, sizeof *s->shard);
    s->index = calloc(total ? total : 1, sizeof *s->index);
    if (!m->tensors || !s->shard || !s->index) return TD_ENOMEM;
    td_status st = TD_OK;
    for (size_t f = 0; f < nfiles && st == TD_OK; f++)
        for (size_t i = 0; i < file_of(s, f)->ntensors && st == TD_OK; i++) {
            s->shard[m->ntensors] = f;
            s->index[m->ntensors] = i;
            st = add_tensor(m, total, &file_of(s, f)->tensors[i]);
        }
    return st;
}

/* Layers: every 2-D or 4-D float "<name>.weight", with "<name>.bias" when it fits. */
static td_status list_layers(td_model *m)
{
    for (size_t i = 0; i < m->ntensors; i++) {
        const td_model_tensor *t = &m->tensors[i];
        const size_t len = strlen(t->name);
        if (len < 7 || strcmp(t->name + len - 7, ".weight") || (t->ndim != 2 && t->ndim != 4) || t->dtype == TD_DTYPE_OTHER) continue;
        char *base = malloc(len + 1);
        if (!base) return TD_ENOMEM;
        memcpy(base, t->name, len - 7);
        base[len - 7] = '\0';
        td_model_layer *l = td__model_new_layer(m);
        if (!l || !(l->name = td__model_str(m, base))) { free(base); return TD_ENOMEM; }
        l->kernel = (int)i;
        if (!td__model_describe(l, t, 0, 0)) { m->nlayers--; free(base); continue; }
        strcat(base, ".bias");
        const int b = td__model_find_tensor_named(m, base);
        if (b >= 0 && m->tensors[b].ndim == 1 && m->tensors[b].shape[0] == l->desc.cout && m->tensors[b].dtype != TD_DTYPE_OTHER)
            l->bias = b;
        l->desc.has_bias = l->bias >= 0;
        free(base);
    }
    return TD_OK;
}

/* The geometry record: the file's metadata, or the index's, or its first shard's. */
static const char *geometry_text(const st_source *s)
{
    if (!s->sharded) return td__st_metadata_get(&s->single, "tdecomp_geometry");
    const char *g = td__st_index_metadata_get(&s->ix, "tdecomp_geometry");
    return g ? g : s->ix.nshards ? td__st_metadata_get(&s->ix.shards[0], "tdecomp_geometry") : NULL;
}

td_status td__model_open_st(td_model *m, const char *path, int sharded, td_error *err)
{
    st_source *s = calloc(1, sizeof *s);
    if (!s) return TD_ENOMEM;
    m->impl->backend = TD__BACKEND_ST;
    m->impl->st = s;
    s->sharded = sharded;
    td_status st = sharded ? td__st_index_open(path, &s->ix, err) : td__st_open(path, &s->single, err);
    struct stat sb;
    if (st == TD_OK && !sharded && fstat(s->single.fd, &sb) == 0) { m->impl->dev = sb.st_dev; m->impl->ino = sb.st_ino; }
    m->layout = TD_LAYOUT_SAFETENSORS;
    if (st == TD_OK) st = list_tensors(m, s);
    if (st == TD_OK) st = list_layers(m);
    const char *g = st == TD_OK ? geometry_text(s) : NULL;
    if (g) st = td__model_apply_record(m, g, err);
    return st;
}

td_status td__model_read_st(const td_model *m, size_t i, td_tensor *out, td_error *err)
{
    const st_source *s = m->impl->st;
    const td__st_file *f = file_of(s, s->shard[i]);
    td_status st = td__st_read_double(f, s->index[i], out, err);
    if (st != TD_OK) return st;
    int same = out->ndim == m->tensors[i].ndim;
    for (int k = 0; same && k < out->ndim; k++) same = out->shape[k] == m->tensors[i].shape[k];
    if (!same) { td_tensor_free(out); return td__error_set(err, TD_EFORMAT, m->file, m->tensors[i].path, "changed since the file was opened"); }
    return TD_OK;
}

td_status td__model_st_raw(const td_model *m, size_t i, int *fd, uint64_t *offset)
{
    const st_source *s = m->impl->st;
    if (!s) return TD_EINVAL;
    const td__st_file *f = file_of(s, s->shard[i]);
    *fd = f->fd;
    *offset = td__st_tensor_offset(f, s->index[i]);
    return TD_OK;
}

const char *td__model_st_metadata(const td_model *m, size_t k, const char **value)
{
    const st_source *s = m->impl->st;
    if (!s || s->sharded || k >= s->single.nmeta) return NULL;
    *value = s->single.meta[k].value;
    return s->single.meta[k].key;
}

int td__model_st_dtype(const td_model *m, size_t i)
{
    const st_source *s = m->impl->st;
    return (int)file_of(s, s->shard[i])->tensors[s->index[i]].dtype;
}
