/* tdecomp-tool: dispatch. One file per subcommand (cmd_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tool.h"

int cmd_cp(int argc, char **argv);
int cmd_tucker(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_decompose(int argc, char **argv);
int cmd_verify(int argc, char **argv);
extern const char cmd_cp_usage[], cmd_tucker_usage[], cmd_inspect_usage[], cmd_decompose_usage[], cmd_verify_usage[];

/* Subcommands that exist; `X --help` exits 0 only for these. */
static const tool_cmd commands[] = {
    {"cp", cmd_cp, "CP-ALS of one dataset", cmd_cp_usage},
    {"tucker", cmd_tucker, "Tucker (HOSVD, ST-HOSVD, HOOI) of one dataset on chosen modes", cmd_tucker_usage},
    {"inspect", cmd_inspect, "the layers and tensors of a weight file", cmd_inspect_usage},
    {"decompose", cmd_decompose, "decompose the conv and dense layers of a weight file", cmd_decompose_usage},
    {"verify", cmd_verify, "recompose a decomposed file's chains and measure them against the original", cmd_verify_usage},
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

int main(int argc, char **argv)
{
    if (argc < 2) return tool_usage_error("missing subcommand (see 'tdecomp-tool --help')");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) { help(); return TOOL_OK; }
    if (!strcmp(sub, "--version")) { printf("tdecomp-tool %s\n", TD_VERSION_STRING); return TOOL_OK; }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(sub, commands[i].name) != 0) continue;
        char *line = join_args(argc, argv);
        tool_command_line = line ? line : "tdecomp-tool";
        tool_install_signal_handlers();
        int rc = commands[i].run(argc - 1, argv + 1);
        free(line);
        return rc;
    }
    if (sub[0] == '-') return tool_usage_error("unknown option '%s' (see 'tdecomp-tool --help')", sub);
    return tool_usage_error("unknown subcommand '%s' (see 'tdecomp-tool --help')", sub);
}
