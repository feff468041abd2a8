/* Shared pieces of tdecomp-tool: exit codes, the one-line error format, option parsing,
 * JSON output (jansson), output files with signal-safe cleanup. */
#ifndef TDECOMP_TOOL_H
#define TDECOMP_TOOL_H

#include <jansson.h>
#include <stdint.h>
#include "tdecomp.h"

/* Exit statuses (DESIGN.md, binding). */
enum { TOOL_OK = 0, TOOL_EINPUT = 1, TOOL_EUSAGE = 2, TOOL_ERESOURCE = 3 };

typedef struct tool_cmd {
    const char *name;
    int (*run)(int argc, char **argv);   /* argv[0] is the subcommand name */
    const char *summary;
    const char *usage;                   /* full usage text for SUBCOMMAND --help */
} tool_cmd;

/* The command line joined by spaces, for the tdecomp_command attribute. */
extern const char *tool_command_line;

/* Prints "tdecomp-tool: problem" and returns TOOL_EUSAGE. */
int tool_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "tdecomp-tool: FILE: DATASET: problem" (parts left out when NULL) and returns code. */
int tool_fail(int code, const char *file, const char *dataset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prints the library's error record (or the status' message with file) and returns the exit
 * code for the status: resource and internal failures give 3, everything else 1. */
int tool_fail_status(td_status st, const td_error *err, const char *file, const char *dataset);
int tool_exit_for(td_status st);
/* "tdecomp-tool: warning: ..." */
void tool_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Warns once when OpenBLAS runs a generic/old core on an AVX2-capable CPU, unless
 * TDECOMP_NO_CORE_WARNING=1. */
void tool_core_warning(void);

/* --max-memory: "SIZE" in bytes with an optional K, M, G or T suffix (powers of 1024).
 * tool_memory_default() is 80 % of physical memory. tool_memory_check prints the refusal
 * (exit 3) when need > limit, else returns 0. */
int tool_parse_memsize(const char *s, double *bytes);
double tool_memory_default(void);
int tool_memory_check(double need, double limit, const char *file, const char *dataset);

/* Strict parsers; return 0 on success, -1 on malformed input (no partial numbers). */
int tool_parse_u64(const char *s, uint64_t *out);
int tool_parse_size(const char *s, size_t min, size_t max, size_t *out);
int tool_parse_int(const char *s, long min, long max, long *out);
int tool_parse_double(const char *s, double *out);
/* Comma-separated list of sizes, at most max entries; *n receives the count. */
int tool_parse_size_list(const char *s, size_t *out, int max, int *n);

/* Option scanning: "--name VALUE" or "--name=VALUE". Returns 1 when argv[*i] is the option
 * (advancing *i past a separate value; *value set), 0 when not, -1 when the value is missing. */
int tool_opt_value(int argc, char **argv, int *i, const char *name, const char **value);

/* The pipe to the supervising parent (main.c), or -1: temporary paths are announced there so
 * that a crash of this process cannot leave them behind. */
extern int tool_temp_report_fd;

/* Announces a temporary path (file or folder) to the supervising parent, which removes it if
 * this process dies; tool_remove_tree removes a folder and everything below it (0 on success). */
void tool_announce_temp(const char *path);
int tool_remove_tree(const char *path);

/* A deadline (alarm) around reading a file's structure: TDECOMP_OPEN_TIMEOUT seconds, default 60.
 * SIGALRM ends the process; the supervising parent reports it as stuck input. */
#define TOOL_OPEN_TIMEOUT_DEFAULT 60
void tool_deadline_begin(void);
void tool_deadline_end(void);

/* Output file registered for cleanup on SIGINT/SIGTERM (the temporary file is removed). */
void tool_track_outfile(td_outfile *o);
void tool_untrack_outfile(void);
void tool_install_signal_handlers(void);

/* Writes the root attributes tdecomp_version and tdecomp_command. */
td_status tool_stamp(td_outfile *o, td_error *err);

/* What cp and tucker share: the input dataset, output, stopping rule and memory limit. */
typedef struct tool_plain {
    const char *cmd, *in, *dataset, *out;
    int force, json;
    double tol, maxmem;   /* tol < 0 and maxmem <= 0 mean "not given" */
    long max_iter;        /* 0 means "not given" */
} tool_plain;

/* Consumes one shared option (or the positional input) at argv[*i]: 1 when consumed, 0 when not
 * ours, -1 after printing a usage error (exit 2). */
int tool_plain_option(int argc, char **argv, int *i, tool_plain *p);
/* The shared prologue, before any decomposition: refuses the output, checks memory
 * (8 bytes x elements x (base + per_min / smallest extent)) before reading, reads the dataset
 * and refuses scalars and NaN/Inf. 0 on success, else the exit code (message printed). */
int tool_plain_read(const tool_plain *p, double base, double per_min, td_tensor *x, td_dtype *dt);

/* Prints a JSON object as one line on stdout (and nothing else). Steals the reference. */
void tool_print_json(json_t *obj);
json_t *tool_json_shape(const td_tensor *t);
json_t *tool_json_sizes(const size_t *v, int n);
json_t *tool_json_doubles(const double *v, int n);
/* Finite doubles as numbers; NaN/Inf as null (JSON has no such numbers). */
json_t *tool_json_real(double v);

#endif
