/* The worker's side of the supervisor (main.c): the channel, signals, deadlines, outputs. */
#define _GNU_SOURCE /* prctl */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "channel.h"
#include "tool.h"

/* Process-wide state is the tool's, never the library's: the channel to the supervisor and, for
 * the signal handler, the temporaries to remove (fixed buffers: async-signal-safe unlink). */
static int channel_fd = -1;
static pid_t supervisor;
static char temps[TOOL_MAX_OUTPUTS][4096];
static int ntemps;

static void send_record(const void *rec, size_t n)
{
    if (channel_fd >= 0 && write(channel_fd, rec, n) != (ssize_t)n) { /* the supervisor is gone */ }
}

void tool_set_phase(tool_phase p)
{
    unsigned char rec[2] = {TOOL_CH_PHASE, (unsigned char)p};
    send_record(rec, sizeof rec);
}

static void on_signal(int sig)
{
    for (int i = 0; i < ntemps; i++)
        if (temps[i][0]) unlink(temps[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void tool_on_stop_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

void tool_worker_init(int fd, pid_t parent)
{
    channel_fd = fd;
    supervisor = parent;
    tool_on_stop_signals(on_signal);
    /* the worker dies with the process the user started; the check closes the race with a parent
     * that died before prctl */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) raise(SIGTERM);
}

long tool_open_timeout(void)
{
    const char *e = getenv("TDECOMP_OPEN_TIMEOUT");
    long secs = TOOL_OPEN_TIMEOUT_DEFAULT;
    if (e && tool_parse_int(e, 1, 86400, &secs) != 0) secs = TOOL_OPEN_TIMEOUT_DEFAULT;
    return secs;
}

/* Reading a file's structure (names, shapes, attributes) needs little memory, but a malformed
 * file can make libhdf5 allocate and fill whatever a corrupt length says (fuzz_raw: 9 GiB touched
 * converting one vlen attribute of a 64 KB file). While the deadline runs, the address space may
 * grow by at most this much plus 4 times the input's size: such an allocation fails and the read
 * ends as an error. The soft limit is put back afterwards (always allowed up to the hard one). */
#define TOOL_OPEN_MEMORY ((rlim_t)1 << 30)
static struct rlimit open_saved;
static int open_limited;

static rlim_t address_space_now(void)
{
    char buf[64] = "";
    const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    const ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    const unsigned long long pages = n > 0 ? strtoull(buf, NULL, 10) : 0;
    return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

void tool_deadline_begin(const char *input)
{
    signal(SIGALRM, SIG_DFL);
    alarm((unsigned)tool_open_timeout());
    struct stat sb;
    const rlim_t fsize = input && stat(input, &sb) == 0 && S_ISREG(sb.st_mode) ? (rlim_t)sb.st_size : 0;
    const rlim_t now = address_space_now();
    open_limited = 0;
    if (!now || fsize > (RLIM_INFINITY - now - TOOL_OPEN_MEMORY) / 4 || getrlimit(RLIMIT_AS, &open_saved) != 0) return;
    struct rlimit cap = open_saved;
    cap.rlim_cur = now + TOOL_OPEN_MEMORY + 4 * fsize;
    if (open_saved.rlim_cur != RLIM_INFINITY && open_saved.rlim_cur <= cap.rlim_cur) return;
    open_limited = setrlimit(RLIMIT_AS, &cap) == 0;
}

void tool_deadline_end(void)
{
    alarm(0);
    if (open_limited) setrlimit(RLIMIT_AS, &open_saved);
    open_limited = 0;
}

/* Announces a temporary (path and identity) so the supervisor can remove exactly it. */
static void announce(const td_outfile *o)
{
    const char *path;
    uint64_t dev, ino;
    if (td_outfile_temp(o, &path, &dev, &ino) != TD_OK) return;
    if (ntemps < TOOL_MAX_OUTPUTS && strlen(path) < sizeof temps[0]) memcpy(temps[ntemps++], path, strlen(path) + 1);
    tool_channel_send_temp(channel_fd, path, dev, ino);
    /* test hook: a crash with a temporary file on disk (tests/cli/test_robust.py) */
    const char *crash = getenv("TDECOMP_TEST_CRASH");
    if (crash && !strcmp(crash, "after-create")) raise(SIGSEGV);
}

void tool_protect(tool_outputs *g, const char *input)
{
    for (size_t i = 0; input && i < g->nprotect; i++)
        if (g->protect[i] == input) return;
    if (input && g->nprotect < TOOL_MAX_INPUTS) g->protect[g->nprotect++] = input;
}

/* 1 when a and b name the same file (existing: by identity; else the same folder and name). */
static int same_target(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    int same = ra && rb && !strcmp(ra, rb);
    free(ra);
    free(rb);
    if (same) return 1;
    const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
    na = na ? na + 1 : a;
    nb = nb ? nb + 1 : b;
    if (strcmp(na, nb)) return 0;
    char da[4096], db[4096];
    snprintf(da, sizeof da, "%.*s", na == a ? 1 : (int)(na - a), na == a ? "." : a);
    snprintf(db, sizeof db, "%.*s", nb == b ? 1 : (int)(nb - b), nb == b ? "." : b);
    return stat(da, &sa) == 0 && stat(db, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int tool_output_check(tool_outputs *g, const char *path, td_output_kind kind)
{
    td_error err;
    td_error_clear(&err);
    td_status st = td_outfile_check(path, kind, g->protect, g->nprotect, g->force, &err);
    if (st != TD_OK) return tool_fail_status(st, &err, path, NULL);
    for (size_t i = 0; i < g->n; i++)
        if (same_target(g->paths[i], path)) return tool_usage_error("%s and %s name the same output", g->paths[i], path);
    if (g->n < TOOL_MAX_OUTPUTS) g->paths[g->n++] = path;
    return TOOL_OK;
}

int tool_output_open(tool_outputs *g, const char *path, td_output_kind kind, td_outfile **o)
{
    size_t slot = 0;
    while (slot < g->n && strcmp(g->paths[slot], path)) slot++;
    if (slot == g->n) {
        int rc = tool_output_check(g, path, kind);
        if (rc) return rc;
    }
    td_error err;
    td_error_clear(&err);
    td_status st = td_outfile_create(&g->o[slot], path, kind, g->protect, g->nprotect, g->force, &err);
    if (st != TD_OK) return tool_fail_status(st, &err, path, NULL);
    announce(g->o[slot]);
    *o = g->o[slot];
    return TOOL_OK;
}

int tool_output_json(tool_outputs *g, const char *path, json_t *obj)
{
    td_outfile *o;
    int rc = tool_output_open(g, path, TD_OUTPUT_BYTES, &o);
    if (rc) return rc;
    char *text = tool_json_text(obj);
    td_error err;
    td_error_clear(&err);
    tool_set_phase(TOOL_PHASE_WRITING);
    td_status st = text ? td_outfile_write_bytes(o, text, strlen(text), &err) : TD_ENOMEM;
    if (st == TD_OK) st = td_outfile_write_bytes(o, "\n", 1, &err);
    free(text);
    return st == TD_OK ? TOOL_OK : tool_fail_status(st, &err, path, NULL);
}

td_status tool_stamp(td_outfile *o, td_error *err)
{
    td_status st = td_outfile_attr_string(o, "/", "tdecomp_version", td_version(), err);
    if (st == TD_OK) st = td_outfile_attr_string(o, "/", "tdecomp_command", tool_command_line, err);
    return st;
}

int tool_outputs_commit(tool_outputs *g)
{
    td_outfile *list[TOOL_MAX_OUTPUTS];
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        if (g->o[i]) list[n++] = g->o[i];
    /* an orphaned worker (its supervisor gone) never puts anything into place */
    if (getppid() != supervisor && supervisor > 0) { tool_outputs_abort(g); raise(SIGTERM); }
    td_error err;
    td_error_clear(&err);
    tool_set_phase(TOOL_PHASE_WRITING);
    td_status st = td_outfile_commit_all(list, n, &err);
    memset(g->o, 0, sizeof g->o);
    ntemps = 0;
    if (st != TD_OK) return tool_fail_status(st, &err, NULL, NULL);
    tool_set_phase(TOOL_PHASE_COMMITTED);
    return TOOL_OK;
}

void tool_outputs_abort(tool_outputs *g)
{
    for (size_t i = 0; i < g->n; i++) {
        td_outfile_abort(g->o[i]);
        g->o[i] = NULL;
    }
    ntemps = 0;
}
