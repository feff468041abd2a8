/* tdecomp-tool: dispatch. One file per subcommand (cmd_*.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tool.h"

int cmd_cp(int argc, char **argv);
int cmd_tucker(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_decompose(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_adapters(int argc, char **argv);
int cmd_spectrum(int argc, char **argv);
int cmd_latency(int argc, char **argv);
extern const char cmd_cp_usage[], cmd_tucker_usage[], cmd_inspect_usage[], cmd_decompose_usage[], cmd_verify_usage[], cmd_adapters_usage[], cmd_spectrum_usage[], cmd_latency_usage[];

/* Subcommands that exist; `X --help` exits 0 only for these. */
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
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i) strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

/* Malformed files can crash libhdf5 in ways no caller can prevent in-process, so the command
 * runs in a forked child: a crash there becomes exit status 1 and one line, never a signal, and
 * the temporary output the child announced through a pipe is removed. */
static pid_t child_pid;

static void forward(int sig)
{
    if (child_pid > 0) kill(child_pid, sig);
}

static int run_contained(const tool_cmd *cmd, int argc, char **argv)
{
    int fds[2];
    if (pipe(fds) != 0) return tool_fail(TOOL_ERESOURCE, NULL, NULL, "cannot create a pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return tool_fail(TOOL_ERESOURCE, NULL, NULL, "cannot fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        tool_temp_report_fd = fds[1];
        char *line = join_args(argc, argv);
        tool_command_line = line ? line : "tdecomp-tool";
        tool_install_signal_handlers();
        int rc = cmd->run(argc - 1, argv + 1);
        free(line);
        exit(rc);
    }
    close(fds[1]);
    child_pid = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    /* remove the temporary files it announced (one path per line): after a commit or a clean
     * failure they are already gone, and their names are unique to the child */
    char buf[8192];
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - (size_t)n)) > 0) n += r;
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    for (char *save = NULL, *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
        if (unlink(tok) != 0 && (errno == EISDIR || errno == EPERM)) tool_remove_tree(tok); /* a temporary folder */
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    const char *in = argc > 2 ? argv[2] : NULL;
    if (sig == SIGALRM)
        return tool_fail(TOOL_EINPUT, in, NULL, "malformed input: reading its structure did not finish within "
                         "TDECOMP_OPEN_TIMEOUT (default %d s); nothing was written", TOOL_OPEN_TIMEOUT_DEFAULT);
    return tool_fail(TOOL_EINPUT, in, NULL, "malformed input: the process working on it was killed by signal %d (%s); "
                     "nothing was written", sig, strsignal(sig));
}

int main(int argc, char **argv)
{
    if (argc < 2) return tool_usage_error("missing subcommand (see 'tdecomp-tool --help')");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) { help(); return TOOL_OK; }
    if (!strcmp(sub, "--version")) { printf("tdecomp-tool %s\n", TD_VERSION_STRING); return TOOL_OK; }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(sub, commands[i].name) != 0) continue;
        if (!strcmp(argv[argc - 1], "--help") || !strcmp(argv[argc - 1], "-h") || argc == 2)
            return commands[i].run(argc - 1, argv + 1); /* nothing to contain */
        return run_contained(&commands[i], argc, argv);
    }
    if (sub[0] == '-') return tool_usage_error("unknown option '%s' (see 'tdecomp-tool --help')", sub);
    return tool_usage_error("unknown subcommand '%s' (see 'tdecomp-tool --help')", sub);
}
