/* Shared pieces of tdecomp-tool: exit codes and the one-line error format, option parsing, the
 * supervisor channel, outputs, JSON (jansson). The tool uses libtdecomp's public API only. */
#ifndef TDECOMP_TOOL_H
#define TDECOMP_TOOL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include "tdecomp.h"

/* Exit statuses (the contract, docs/tool.md). */
enum { TOOL_OK = 0, TOOL_EINPUT = 1, TOOL_EUSAGE = 2, TOOL_ERESOURCE = 3 };

typedef struct tool_cmd {
    const char *name;
    int (*run)(int argc, char **argv);   /* argv[0] is the subcommand name */
    const char *summary;
    const char *usage;                   /* full usage text for SUBCOMMAND --help */
} tool_cmd;

/* The command line joined by spaces, for the tdecomp_command attribute. */
extern const char *tool_command_line;

/* --- messages ------------------------------------------------------------------------------ */
/* Prints "tdecomp-tool: problem" and returns TOOL_EUSAGE. */
int tool_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "tdecomp-tool: FILE: DATASET: problem" (parts left out when NULL) and returns code. */
int tool_fail(int code, const char *file, const char *dataset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prints the library's error record (or the status' message with file) and returns the exit
 * code for the status (tool_exit_for). */
int tool_fail_status(td_status st, const td_error *err, const char *file, const char *dataset);
/* 0 for TD_OK; 3 for resource and internal failures; 2 for unusable output paths; else 1. */
int tool_exit_for(td_status st);
/* "tdecomp-tool: warning: ..." */
void tool_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Warns once when OpenBLAS runs a generic/old core on an AVX2-capable CPU, unless
 * TDECOMP_NO_CORE_WARNING=1. */
void tool_core_warning(void);

/* --- parsing ------------------------------------------------------------------------------- */
/* Strict parsers; 0 on success, -1 on malformed input (no partial numbers). */
int tool_parse_u64(const char *s, uint64_t *out);
int tool_parse_size(const char *s, size_t min, size_t max, size_t *out);
int tool_parse_int(const char *s, long min, long max, long *out);
/* A finite double; subnormal values are accepted (strtod's ERANGE for them is not an error). */
int tool_parse_double(const char *s, double *out);
/* Comma-separated list of sizes, at most max entries; *n receives the count. */
int tool_parse_size_list(const char *s, size_t *out, int max, int *n);
/* "SIZE" in bytes with an optional K, M, G or T suffix (powers of 1024). */
int tool_parse_memsize(const char *s, double *bytes);
/* "--name VALUE" or "--name=VALUE": 1 when argv[*i] is the option (advancing *i past a separate
 * value; *value set), 0 when not, -1 when the value is missing. */
int tool_opt_value(int argc, char **argv, int *i, const char *name, const char **value);

/* --- memory -------------------------------------------------------------------------------- */
/* 80 % of physical memory: --max-memory's default. */
double tool_memory_default(void);
/* Prints the refusal (exit 3) when need > limit, else returns 0. */
int tool_memory_check(double need, double limit, const char *file, const char *dataset);

/* --- the supervisor (main.c runs every subcommand in a forked worker) ----------------------- */
typedef enum tool_phase { TOOL_PHASE_READING = 0, TOOL_PHASE_WRITING = 1, TOOL_PHASE_COMMITTED = 2 } tool_phase;
/* Tells the supervisor what the worker is doing, so a crash is reported for what it is. */
void tool_set_phase(tool_phase p);
/* A deadline (alarm) around reading a file's structure: TDECOMP_OPEN_TIMEOUT seconds, default 60;
 * with it a cap on the address space's growth (1 GiB + 4 x the input's size; worker.c). */
#define TOOL_OPEN_TIMEOUT_DEFAULT 60
long tool_open_timeout(void);
void tool_deadline_begin(const char *input);
void tool_deadline_end(void);
/* Installs handler for SIGINT, SIGTERM and SIGHUP (the supervisor forwards them, the worker
 * reports them). */
void tool_on_stop_signals(void (*handler)(int));
/* Worker side of main.c: the channel and the signal handlers. */
void tool_worker_init(int channel_fd, pid_t parent);

/* --- outputs ------------------------------------------------------------------------------- */
/* The outputs of one command, committed together (both or neither), never any of the inputs. */
#define TOOL_MAX_OUTPUTS 4
#define TOOL_MAX_INPUTS 8
typedef struct tool_outputs {
    const char *protect[TOOL_MAX_INPUTS];   /* the command's input files */
    size_t nprotect;
    int force;
    td_outfile *o[TOOL_MAX_OUTPUTS];
    const char *paths[TOOL_MAX_OUTPUTS];
    size_t n;
} tool_outputs;

/* Adds an input to protect (NULL ignored). */
void tool_protect(tool_outputs *g, const char *input);
/* Refuses an output path before any work (prints; returns the exit code, 0 when fine). Two
 * outputs naming the same file (in any spelling) are refused too. */
int tool_output_check(tool_outputs *g, const char *path, td_output_kind kind);
/* Creates an output, announced to the supervisor; *o stays owned by g. */
int tool_output_open(tool_outputs *g, const char *path, td_output_kind kind, td_outfile **o);
/* An output holding one JSON object (a report). */
int tool_output_json(tool_outputs *g, const char *path, json_t *obj);
/* Stamps HDF5 outputs with tdecomp_version and tdecomp_command. */
td_status tool_stamp(td_outfile *o, td_error *err);
/* Commits every output (both or neither); 0 or the exit code (printed). */
int tool_outputs_commit(tool_outputs *g);
/* Removes every uncommitted output. */
void tool_outputs_abort(tool_outputs *g);

/* --- JSON ---------------------------------------------------------------------------------- */
/* Prints a JSON object as one line on stdout (and nothing else). Steals the reference. */
void tool_print_json(json_t *obj);
/* The compact text of obj (malloc'ed), the form written to files and stdout. */
char *tool_json_text(const json_t *obj);
json_t *tool_json_shape(const td_tensor *t);
json_t *tool_json_sizes(const size_t *v, int n);
json_t *tool_json_doubles(const double *v, int n);
/* Finite doubles as numbers; NaN/Inf as null (JSON has no such numbers). */
json_t *tool_json_real(double v);

/* --- cp and tucker: one dataset as a plain tensor -------------------------------------------- */
typedef struct tool_plain {
    const char *cmd, *in, *dataset, *out;
    int force, json;
    double tol, maxmem;   /* tol < 0 and maxmem <= 0 mean "not given" */
    long max_iter;        /* 0 means "not given" */
} tool_plain;

/* Consumes one shared option (or the positional input) at argv[*i]: 1 when consumed, 0 when not
 * ours, -1 after printing a usage error (exit 2). */
int tool_plain_option(int argc, char **argv, int *i, tool_plain *p);
/* The shared prologue: refuses the output, checks the memory need (need_of is called with the
 * dataset's shape before any value is read), reads the dataset, refuses scalars and NaN/Inf.
 * 0 or the exit code (printed). */
int tool_plain_read(const tool_plain *p, tool_outputs *g, double (*need_of)(int ndim, const size_t *shape, void *ctx),
                    void *ctx, td_tensor *x, td_dtype *dt);
/* Writes named float64 datasets to -o (stamped, committed). 0 or the exit code. */
int tool_plain_write(const tool_plain *p, tool_outputs *g, const char *const *names, const td_tensor *const *t, size_t n);

#endif
