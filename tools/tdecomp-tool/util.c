#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "tool.h"



static void vline(const char *prefix, const char *file, const char *dataset, const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("tdecomp-tool: ", stderr);
    if (prefix) fputs(prefix, stderr);
    if (file && *file) fprintf(stderr, "%s: ", file);
    if (dataset && *dataset) fprintf(stderr, "%s: ", dataset);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int tool_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(NULL, NULL, NULL, fmt, ap);
    va_end(ap);
    return TOOL_EUSAGE;
}

int tool_fail(int code, const char *file, const char *dataset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(NULL, file, dataset, fmt, ap);
    va_end(ap);
    return code;
}

void tool_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline("warning: ", NULL, NULL, fmt, ap);
    va_end(ap);
}

int tool_exit_for(td_status st)
{
    switch (st) {
    case TD_OK: return TOOL_OK;
    case TD_ENOMEM: case TD_EIO: case TD_EINTERNAL: case TD_ELIMIT: return TOOL_ERESOURCE;
    case TD_EPATH: return TOOL_EUSAGE;
    default: return TOOL_EINPUT;
    }
}

int tool_fail_status(td_status st, const td_error *err, const char *file, const char *dataset)
{
    if (err && err->status != TD_OK && err->message[0]) {
        /* a record that names no file (the planner's) gets the command's input in front */
        const int named = file && !strncmp(err->message, file, strlen(file));
        return tool_fail(tool_exit_for(st), named ? NULL : file, NULL, "%s", err->message);
    }
    return tool_fail(tool_exit_for(st), file, dataset, "%s", td_strerror(st));
}

void tool_core_warning(void)
{
    const char *off = getenv("TDECOMP_NO_CORE_WARNING");
    if (off && strcmp(off, "1") == 0) return;
    const char *core = td_blas_core();
    if (!core) return;
    static const char *slow[] = {"Prescott", "generic", "Core2", "Penryn", "Dunnington", "Nehalem",
                                 "Atom", "Katmai", "Coppermine", "Northwood", "Banias", "Opteron",
                                 "Athlon", "unknown"};
    int is_slow = 0;
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++)
        if (strcasecmp(core, slow[i]) == 0) is_slow = 1;
    __builtin_cpu_init();
    if (is_slow && __builtin_cpu_supports("avx2"))
        tool_warn("OpenBLAS runs its slow '%s' kernels on a CPU with AVX2 or better; set "
                  "OPENBLAS_CORETYPE (e.g. Haswell or SkylakeX) for speed "
                  "(TDECOMP_NO_CORE_WARNING=1 silences this)", core);
}

int tool_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = (uint64_t)v;
    return 0;
}

int tool_parse_size(const char *s, size_t min, size_t max, size_t *out)
{
    uint64_t v;
    if (tool_parse_u64(s, &v) || v < min || v > max) return -1;
    *out = (size_t)v;
    return 0;
}

int tool_parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int tool_parse_double(const char *s, double *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    /* ERANGE on underflow still gives the nearest (subnormal or zero) value: keep it */
    if ((errno && !(errno == ERANGE && fabs(v) < 1)) || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int tool_parse_size_list(const char *s, size_t *out, int max, int *n)
{
    char buf[1024];
    if (!s || !*s || strlen(s) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", s);
    int k = 0;
    char *save = NULL;
    if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,")) return -1;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (k >= max) return -1;
        if (tool_parse_size(tok, 0, (size_t)1 << 40, &out[k])) return -1;
        k++;
    }
    *n = k;
    return k > 0 ? 0 : -1;
}

int tool_opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') { *value = a + n + 1; return 1; }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *value = argv[++*i];
    return 1;
}

char *tool_json_text(const json_t *obj) { return json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(17)); }

void tool_print_json(json_t *obj)
{
    char *s = tool_json_text(obj);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(obj);
}

json_t *tool_json_sizes(const size_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

json_t *tool_json_shape(const td_tensor *t) { return tool_json_sizes(t->shape, t->ndim); }

json_t *tool_json_real(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *tool_json_doubles(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, tool_json_real(v[i]));
    return a;
}

int tool_parse_memsize(const char *s, double *bytes)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || !isfinite(v)) return -1;
    double mul = 1;
    if (*end) {
        switch (*end) {
        case 'K': case 'k': mul = 1024.0; break;
        case 'M': case 'm': mul = 1024.0 * 1024; break;
        case 'G': case 'g': mul = 1024.0 * 1024 * 1024; break;
        case 'T': case 't': mul = 1024.0 * 1024 * 1024 * 1024; break;
        default: return -1;
        }
        if (end[1] && !((end[1] == 'B' || end[1] == 'b' || end[1] == 'i') && (!end[2] || ((end[2] == 'B') && !end[3]))))
            return -1;
    }
    *bytes = v * mul;
    return 0;
}

double tool_memory_default(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0) return 1e300;
    return 0.8 * (double)pages * (double)size;
}

static void human(double b, char *buf, size_t len)
{
    const char *u[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

int tool_memory_check(double need, double limit, const char *file, const char *dataset)
{
    if (need <= limit) return 0;
    char n[32], l[32];
    human(need, n, sizeof n);
    human(limit, l, sizeof l);
    return tool_fail(TOOL_ERESOURCE, file, dataset, "needs about %s of memory, more than --max-memory %s "
                     "(default: 80 %% of physical memory)", n, l);
}

int tool_plain_option(int argc, char **argv, int *i, tool_plain *p)
{
    const char *a = argv[*i], *v;
    int r;
    if (!strcmp(a, "--force")) { p->force = 1; return 1; }
    if (!strcmp(a, "--json")) { p->json = 1; return 1; }
    if ((r = tool_opt_value(argc, argv, i, "--dataset", &v))) {
        if (r < 0) { tool_usage_error("%s: --dataset needs a value", p->cmd); return -1; }
        p->dataset = v;
    } else if ((r = tool_opt_value(argc, argv, i, "--tol", &v))) {
        if (r < 0 || tool_parse_double(v, &p->tol) || p->tol < 0) {
            tool_usage_error("%s: --tol needs a number >= 0, got '%s'", p->cmd, r < 0 ? "" : v);
            return -1;
        }
    } else if ((r = tool_opt_value(argc, argv, i, "--max-iter", &v))) {
        if (r < 0 || tool_parse_int(v, 1, 100000000, &p->max_iter)) {
            tool_usage_error("%s: --max-iter needs a whole number >= 1, got '%s'", p->cmd, r < 0 ? "" : v);
            return -1;
        }
    } else if ((r = tool_opt_value(argc, argv, i, "--max-memory", &v))) {
        if (r < 0 || tool_parse_memsize(v, &p->maxmem)) {
            tool_usage_error("%s: --max-memory needs a size such as 512M or 4G", p->cmd);
            return -1;
        }
    } else if ((r = tool_opt_value(argc, argv, i, "-o", &v)) || (r = tool_opt_value(argc, argv, i, "--output", &v))) {
        if (r < 0) { tool_usage_error("%s: -o needs a file name", p->cmd); return -1; }
        p->out = v;
    } else if (a[0] == '-' && a[1] != '\0') {
        return 0; /* maybe the command's own option */
    } else if (!p->in) {
        p->in = a;
    } else {
        tool_usage_error("%s: unexpected argument '%s'", p->cmd, a);
        return -1;
    }
    return 1;
}


int tool_plain_read(const tool_plain *p, tool_outputs *g, double (*need_of)(int ndim, const size_t *shape, void *ctx),
                    void *ctx, td_tensor *x, td_dtype *dt)
{
    td_error err;
    td_error_clear(&err);
    td_status st;
    int rc;
    tool_protect(g, p->in);
    g->force = p->force;
    if (p->out && (rc = tool_output_check(g, p->out, TD_OUTPUT_HDF5)) != TOOL_OK) return rc;
    int nd;
    size_t sh[TD_MAX_MODES];
    tool_deadline_begin(p->in);
    st = td_h5_dataset_shape(p->in, p->dataset, &nd, sh, NULL, &err);
    tool_deadline_end();
    if (st != TD_OK) return tool_fail_status(st, &err, p->in, p->dataset);
    if (tool_memory_check(need_of(nd, sh, ctx), p->maxmem > 0 ? p->maxmem : tool_memory_default(), p->in, p->dataset))
        return TOOL_ERESOURCE;
    if ((st = td_h5_read_tensor(p->in, p->dataset, x, dt, &err)) != TD_OK) return tool_fail_status(st, &err, p->in, p->dataset);
    int code = 0;
    if (x->ndim < 1) code = tool_fail(TOOL_EINPUT, p->in, p->dataset, "is a scalar; %s needs at least 1 mode", p->cmd);
    else if ((st = td_tensor_check_values(x)) != TD_OK)
        code = tool_fail(TOOL_EINPUT, p->in, p->dataset, "%s", st == TD_EVALUE ? "has entries above 1e150 in magnitude (their squares overflow)" : "contains NaN or Inf entries");
    if (code) td_tensor_free(x);
    return code;
}

int tool_plain_write(const tool_plain *p, tool_outputs *g, const char *const *names, const td_tensor *const *t, size_t n)
{
    td_outfile *o;
    int rc = tool_output_open(g, p->out, TD_OUTPUT_HDF5, &o);
    if (rc) return rc;
    td_error err;
    td_error_clear(&err);
    tool_set_phase(TOOL_PHASE_WRITING);
    td_status st = TD_OK;
    for (size_t i = 0; i < n && st == TD_OK; i++) st = td_outfile_write(o, names[i], t[i], TD_DTYPE_F64, &err);
    if (st == TD_OK) st = tool_stamp(o, &err);
    if (st != TD_OK) { tool_outputs_abort(g); return tool_fail_status(st, &err, p->out, NULL); }
    return tool_outputs_commit(g);
}
