#!/usr/bin/python3
"""No layer includes a header of a layer above it (the layering of docs/library.md, 'Layers'); HDF5 only in io;
CBLAS/LAPACKE only in core, decomp and layer; library sources never include the umbrella header;
the tool (tools/tdecomp-tool) uses the public API only: no library-internal header, HDF5, CBLAS or LAPACKE.
Runs itself first on a synthetic tree with violations, so it cannot pass vacuously.
usage: check_layers.py REPO_ROOT"""
import os, re, sys, tempfile

RANK = {"core": 0, "common": 0, "status": 0, "decomp": 1, "rank": 2, "layer": 3, "plan": 4, "io": 4}
INC = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)

def layer_of_include(name):
    m = re.match(r"(?:tdecomp/)?([a-z_]+)\.h$", name)
    if name.startswith("tdecomp/") and m: return m.group(1)
    m = re.match(r"([a-z]+)/[A-Za-z0-9_]+\.h$", name)  # "core/internal.h"
    if m and m.group(1) in RANK: return m.group(1)
    return None

def check(root):
    problems = []
    files = []
    for layer in ("core", "decomp", "rank", "layer", "plan", "io"):
        d = os.path.join(root, "libtdecomp", layer)
        if os.path.isdir(d):
            files += [(layer, os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith((".c", ".h"))]
        h = os.path.join(root, "include", "tdecomp", layer + ".h")
        if os.path.exists(h): files.append((layer, h))
    for f in ("common.h", "status.h"):
        h = os.path.join(root, "include", "tdecomp", f)
        if os.path.exists(h): files.append(("core", h))
    for layer, path in files:
        for inc in INC.findall(open(path, encoding="utf-8").read()):
            rel = os.path.relpath(path, root)
            if inc == "tdecomp.h": problems.append(f"{rel}: includes the umbrella tdecomp.h")
            if re.match(r"(hdf5|H5)", inc) and layer != "io": problems.append(f"{rel}: HDF5 outside io ({inc})")
            if re.match(r"(cblas|lapacke)", inc) and layer not in ("core", "decomp", "layer"):
                problems.append(f"{rel}: BLAS/LAPACK outside core/decomp/layer ({inc})")
            tgt = layer_of_include(inc)
            if tgt is None: continue
            if RANK[tgt] > RANK[layer] or (RANK[tgt] == RANK[layer] == 4 and tgt != layer):
                problems.append(f"{rel}: layer {layer} includes {inc} of layer {tgt}")
    tool = os.path.join(root, "tools", "tdecomp-tool")
    if os.path.isdir(tool):
        own = set(os.listdir(tool))
        for f in sorted(own):
            if not f.endswith((".c", ".h")): continue
            path = os.path.join(tool, f)
            files.append(("tool", path))
            for inc in INC.findall(open(path, encoding="utf-8").read()):
                rel = os.path.relpath(path, root)
                if re.match(r"(hdf5|H5|cblas|lapacke|openblas)", inc):
                    problems.append(f"{rel}: the tool calls {inc} directly (the library owns it)")
                elif "/" in inc and not inc.startswith(("tdecomp/", "sys/")) or layer_of_include(inc) and not inc.startswith("tdecomp/"):
                    problems.append(f"{rel}: the tool includes the library-internal {inc}")
    return problems, len(files)

def self_test():
    with tempfile.TemporaryDirectory() as t:
        for d in ("libtdecomp/core", "libtdecomp/plan", "libtdecomp/io", "include/tdecomp"):
            os.makedirs(os.path.join(t, d))
        open(os.path.join(t, "libtdecomp/core/a.c"), "w").write('#include "tdecomp/layer.h"\n')
        open(os.path.join(t, "libtdecomp/plan/b.c"), "w").write('#include "tdecomp/io.h"\n#include <hdf5.h>\n')
        open(os.path.join(t, "libtdecomp/io/c.c"), "w").write('#include "tdecomp/core.h"\n#include <hdf5.h>\n')
        os.makedirs(os.path.join(t, "tools/tdecomp-tool"))
        open(os.path.join(t, "tools/tdecomp-tool/d.c"), "w").write(
            '#include <cblas.h>\n#include "core/internal.h"\n#include "tdecomp/io.h"\n#include <sys/stat.h>\n#include "tool.h"\n')
        p, _ = check(t)
        assert len(p) == 5, p  # core->layer, plan->io, hdf5 in plan, cblas and an internal header in the tool

self_test()
problems, n = check(sys.argv[1])
for p in problems: print("FAIL", p)
print(f"{n} files checked, {len(problems)} layering problems")
sys.exit(1 if problems or n < 10 else 0)
