/* The worker -> supervisor channel: length-prefixed records over a pipe, so any byte string
 * (a path with a newline, say) travels intact. */
#ifndef TDECOMP_TOOL_CHANNEL_H
#define TDECOMP_TOOL_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { TOOL_CH_PHASE = 'P', TOOL_CH_TEMP = 'T' };

/* A temporary the worker created: its path and identity. */
void tool_channel_send_temp(int fd, const char *path, uint64_t dev, uint64_t ino);

/* What the supervisor learnt from a finished worker. */
typedef struct tool_report {
    int phase;        /* the last tool_phase announced */
    size_t removed;   /* temporaries removed */
} tool_report;

/* Reads every record, removing each announced temporary that is still the very object the worker
 * created (same device and inode, and a name of worker pid's pattern). */
void tool_channel_drain(int fd, pid_t worker, tool_report *r);

#endif
