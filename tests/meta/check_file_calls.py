#!/usr/bin/python3
"""Every file the library and the tool create, replace or remove goes through the one output
module (libtdecomp/io/outfile.c): no fopen(, rename(, unlink(, remove(, rmdir(, creat( or
open( with O_CREAT anywhere else, except the supervisor's removal of temporaries its worker
proved it created (tools/tdecomp-tool/channel.c: by device and inode) and the worker's
signal-time cleanup of its own announced temporaries (worker.c). Those are listed here by file
and call; anything new fails.

usage: check_file_calls.py REPO_ROOT"""
import os
import re
import sys

root = sys.argv[1]
CALLS = re.compile(r"\b(fopen|freopen|rename|renameat|unlink|unlinkat|remove|rmdir|creat|mkstemp|mkdtemp|tmpfile)\s*\(")
OCREAT = re.compile(r"\bO_CREAT\b")
ALLOWED = {
    ("libtdecomp/io/outfile.c", "*"),
    ("tools/tdecomp-tool/channel.c", "unlink"),   # a proven temporary (device + inode match)
    ("tools/tdecomp-tool/channel.c", "rmdir"),    # a proven temporary folder, depth first
    ("tools/tdecomp-tool/worker.c", "unlink"),    # its own temporaries, on a fatal signal
}
bad = []
for top in ("libtdecomp", "tools/tdecomp-tool"):
    for d, _, files in os.walk(os.path.join(root, top)):
        for fn in files:
            if not fn.endswith((".c", ".h")):
                continue
            path = os.path.join(d, fn)
            rel = os.path.relpath(path, root)
            for no, line in enumerate(open(path, encoding="utf-8"), 1):
                code = line.split("//")[0]
                if code.lstrip().startswith(("/*", "*")):
                    continue
                for m in CALLS.finditer(code):
                    if (rel, "*") not in ALLOWED and (rel, m.group(1)) not in ALLOWED:
                        bad.append(f"{rel}:{no}: {m.group(1)}(: {line.strip()}")
                if OCREAT.search(code) and (rel, "*") not in ALLOWED:
                    bad.append(f"{rel}:{no}: O_CREAT: {line.strip()}")
for b in bad:
    print("FAIL", b)
print(f"file-creating calls outside the output module: {len(bad)}")
sys.exit(1 if bad else 0)
