/* tdecomp-tool: dispatch, and the supervisor every subcommand runs under. */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "channel.h"
#include "tool.h"

int cmd_cp(int argc, char **argv);
int cmd_tucker(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_decompose(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_adapters(int argc, char **argv);
int cmd_spectrum(int argc, char **argv);
int cmd_latency(int argc, char **argv);
extern const char cmd_cp_usage[], cmd_tucker_usage[], cmd_inspect_usage[], cmd_decompose_usage[], cmd_verify_usage[],
    cmd_adapters_usage[], cmd_spectrum_usage[], cmd_latency_usage[];

static const tool_cmd commands[] = {
    {"cp", cmd_cp, "CP-ALS of one dataset", cmd_cp_usage},
    {"tucker", cmd_tucker, "Tucker (HOSVD, ST-HOSVD, HOOI) of one dataset on chosen modes", cmd_tucker_usage},
    {"inspect", cmd_inspect, "the layers and tensors of a weight file", cmd_inspect_usage},
    {"decompose", cmd_decompose, "decompose the conv and dense layers of a weight file", cmd_decompose_usage},
    {"verify", cmd_verify, "recompose a decomposed file's chains and measure them against the original", cmd_verify_usage},
    {"adapters", cmd_adapters, "split layers into frozen weights and SVD-initialised LoRA adapters", cmd_adapters_usage},
    {"spectrum", cmd_spectrum, "singular values and error-vs-rank curves per layer, error-vs-budget for the model (CSV, SVG)", cmd_spectrum_usage},
    {"latency", cmd_latency, "time each layer and its rewritten chain on the CPU beside the FLOP ratio", cmd_latency_usage},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

const char *tool_command_line = "";

static void help(void)
{
    printf("usage: tdecomp-tool SUBCOMMAND [options]   (tdecomp-tool SUBCOMMAND --help)\n"
           "       tdecomp-tool --help | --version\n\n"
           "Dense tensor decomposition (CP, Tucker) for compressing neural-network layers.\n\n"
           "subcommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\nexit status: 0 success, 1 bad input, 2 usage error, 3 resource or internal error\n");
}

static char *join_args(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n), *p = s;
    for (int i = 0; s && i < argc; i++) p += sprintf(p, "%s%s", i ? " " : "", argv[i]);
    return s;
}

/* Under an address-space or data limit, multi-threaded OpenBLAS spins forever retrying its
 * buffers (even at exit): such runs re-execute themselves with one BLAS thread, set before the
 * library initialises. */
static void limit_blas_threads(char **argv)
{
    struct rlimit as, data;
    const int limited = (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) ||
                        (getrlimit(RLIMIT_DATA, &data) == 0 && data.rlim_cur != RLIM_INFINITY);
    if (!limited || getenv("OPENBLAS_NUM_THREADS") || getenv("TDECOMP_LIMITED")) return;
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    setenv("TDECOMP_LIMITED", "1", 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* no /proc: go on with what we have */
}

static pid_t worker_pid;

static void forward(int sig)
{
    if (worker_pid > 0) kill(worker_pid, sig);
}

/* The input a subcommand names first: for messages about a worker that died reading it. */
static const char *first_input(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (argv[i][0] != '-') return argv[i];
    return NULL;
}

/* One line for a worker killed by sig, by what it was doing: reading is the input's fault,
 * anything later a resource's (a full disk, a file size limit, a closed pipe, the OOM killer). */
static int report_signal(int sig, const tool_report *r, const char *in)
{
    if (sig == SIGALRM)
        return tool_fail(TOOL_EINPUT, in, NULL, "malformed input: reading its structure did not finish within "
                         "TDECOMP_OPEN_TIMEOUT (%ld s); nothing was written", tool_open_timeout());
    if (r->phase == TOOL_PHASE_COMMITTED)
        return tool_fail(TOOL_ERESOURCE, NULL, NULL, "the output was written completely, then the process was killed by "
                         "signal %d (%s)%s", sig, strsignal(sig), sig == SIGPIPE ? ": standard output was closed" : "");
    if (r->phase == TOOL_PHASE_WRITING || sig == SIGKILL || sig == SIGXFSZ || sig == SIGPIPE)
        return tool_fail(TOOL_ERESOURCE, in, NULL, "killed by signal %d (%s)%s; the output was not written", sig, strsignal(sig),
                         sig == SIGKILL ? " (out of memory?)" : sig == SIGXFSZ ? " (file size limit)" :
                         r->phase == TOOL_PHASE_WRITING ? " while writing (disk full?)" : "");
    return tool_fail(TOOL_EINPUT, in, NULL, "malformed input: the process working on it was killed by signal %d (%s); "
                     "nothing was written", sig, strsignal(sig));
}

/* Malformed files can crash libhdf5 in ways no caller can prevent in-process, so the command
 * runs in a forked worker: a crash there becomes one line and an exit status, never a signal,
 * and the temporaries it announced are removed. */
static int run_contained(const tool_cmd *cmd, int argc, char **argv)
{
    int fds[2];
    if (pipe(fds) != 0) return tool_fail(TOOL_ERESOURCE, NULL, NULL, "cannot create a pipe: %s", strerror(errno));
    fflush(NULL);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) return tool_fail(TOOL_ERESOURCE, NULL, NULL, "cannot fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        char *line = join_args(argc, argv);
        tool_command_line = line ? line : "tdecomp-tool";
        tool_worker_init(fds[1], parent);
        const int rc = cmd->run(argc - 1, argv + 1);
        fflush(NULL);
        _exit(rc); /* not exit: libhdf5's exit handlers would print after our last line */
    }
    close(fds[1]);
    worker_pid = pid;
    tool_on_stop_signals(forward);
    signal(SIGQUIT, forward);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    tool_report r;
    tool_channel_drain(fds[0], pid, &r);
    close(fds[0]);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    return report_signal(sig, &r, first_input(argc, argv));
}

/* Buffers from this size on are mapped and unmapped, never kept in the heap once freed. glibc's
 * default threshold rises to the largest freed block (up to 32 MiB), after which a layer's
 * buffers of that size stay in the heap: peak RSS then carried up to 32 MiB more than the
 * largest layer needs from one layer to the next. */
#define TOOL_MMAP_THRESHOLD (4 << 20)

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, TOOL_MMAP_THRESHOLD);
#endif
    limit_blas_threads(argv);
    if (argc < 2) return tool_usage_error("missing subcommand (see 'tdecomp-tool --help')");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) { help(); return TOOL_OK; }
    if (!strcmp(sub, "--version")) { printf("tdecomp-tool %s\n", td_version()); return TOOL_OK; }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(sub, commands[i].name) != 0) continue;
        if (!strcmp(argv[argc - 1], "--help") || !strcmp(argv[argc - 1], "-h") || argc == 2)
            return commands[i].run(argc - 1, argv + 1); /* nothing to contain */
        return run_contained(&commands[i], argc, argv);
    }
    if (sub[0] == '-') return tool_usage_error("unknown option '%s' (see 'tdecomp-tool --help')", sub);
    return tool_usage_error("unknown subcommand '%s' (see 'tdecomp-tool --help')", sub);
}
