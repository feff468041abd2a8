#!/usr/bin/python3
"""Every file in tests/data/bad/ is refused: exit 1, one last stderr line in docs/cli.md's format
naming the file (and, for the hostile-storage files, the problem), the input byte-identical
afterwards, no output and no temporary file. valid_bf16.h5 is the exception: bfloat16 weights
that must decompose to what numpy's SVD of the same bfloat16 values gives.
usage: test_bad_corpus.py TOOL BAD_DIR"""
import hashlib, json, os, shutil, subprocess, sys, tempfile
import numpy as np, h5py

TOOL, BAD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
W = tempfile.mkdtemp(prefix="tdbad-")
fails, passed = [], 0
def check(c, what):
    global passed
    if c: passed += 1
    else: fails.append(what)
def digest(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()

def case(name, args, watch, mention, problem=""):
    out = os.path.join(W, "out.h5")
    before = {p: digest(p) for p in watch}
    # fuzz_hdf5_heap_loop.h5 makes libhdf5 loop while its structure is read: the tool's deadline
    # (3 s here, 60 s by default) must end it with exit 1 and the one-line message
    # a failed allocation returns NULL under ASan too, as it does in an uninstrumented build
    # (fuzz_vlen_alloc.h5's 9 GiB is refused by the cap; ASan would abort instead)
    asan = (os.environ.get("ASAN_OPTIONS", "") + ":allocator_may_return_null=1").lstrip(":")
    r = subprocess.run([TOOL] + args, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TDECOMP_OPEN_TIMEOUT="3", ASAN_OPTIONS=asan))
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 1, f"{name}: exit {r.returncode}, expected 1: {r.stderr[-200:]}")
    check(bool(lines) and lines[-1].startswith("tdecomp-tool: ") and mention in lines[-1] and problem in lines[-1],
          f"{name}: last line {lines[-1:]} lacks {mention!r} or {problem!r}")
    check(all(digest(p) == h for p, h in before.items()), f"{name}: an input changed")
    check(not os.path.exists(out) and not os.path.exists(os.path.join(W, "outdir")) and
          not [f for f in os.listdir(W) if ".tdtmp." in f], f"{name}: output or temporary file left")

VALID = {"spec_target.h5", "valid_bf16.h5"}
files = sorted(f for f in os.listdir(BAD) if f.endswith(".h5") and f not in VALID)
specs = sorted(f for f in os.listdir(BAD) if f.startswith("spec_") and f.endswith(".json"))
check(len(files) + len(specs) >= 20, f"corpus too small: {len(files)} files, {len(specs)} specs")
# which commands must refuse: structure-level damage is refused by all; bad values only by the
# commands that read values; a non-float tensor in a torch file is an ordinary copied tensor,
# refused only where a float tensor is required (cp)
VALUES = {"nan_weights.h5", "inf_bias.h5"}
CP_ONLY = {"int_kernel.h5"}
# data outside the file, links, storage never written, float layouts: the problem is named too;
# each refused by the plain-tensor commands as well (dataset given)
HOSTILE = {"external_storage.h5": ("/fc.bias", "external raw storage"),
           "vds_missing_source.h5": ("/fc.weight", "virtual dataset"),
           "vds_self.h5": ("/fc.weight", "virtual dataset"),
           "external_link.h5": ("/a.weight", "external link"),
           "external_link_weight.h5": ("/features.0.weight", "external link"),
           "soft_link.h5": ("/b.weight", "soft link"),
           "unwritten_chunked.h5": ("/fc.weight", "declares 249600000 bytes but the file stores 0"),
           "custom_float16.h5": ("/features.0.weight", "custom 2-byte float (6-bit exponent, 9-bit mantissa")}
# structural damage whose problem is named too (refused by the model commands only)
# fuzz_vlen_alloc.h5: a corrupt vlen length makes libhdf5 allocate and fill 9 GiB while layer_names
# is read; the cap on the worker's address space while it reads structure makes that allocation
# fail (without it the same file reads garbage names after ~9 GB and half a minute)
NAMED = {"keras_layer_names_huge.h5": "malformed attributes",
         "fuzz_vlen_alloc.h5": "malformed layer_names attribute"}
check(all(h in files for h in HOSTILE), f"hostile files missing: {set(HOSTILE) - set(files)}")
for f in files:
    p = os.path.join(BAD, f)
    subs = [] if f in CP_ONLY else ([["decompose", p, "--rank-ratio", "0.5", "-o", os.path.join(W, "out.h5")]] +
                                     ([] if f in VALUES else [["inspect", p]]))
    if f not in CP_ONLY:   # the commands that read every layer's values
        subs += [["adapters", p, "--rank", "1", "-o", os.path.join(W, "out.h5")],
                 ["spectrum", p, "-o", os.path.join(W, "outdir")],
                 ["latency", p, "--input-size", "8x8", "--repeat", "1"]]
    problem = HOSTILE.get(f, ("", ""))[1] or NAMED.get(f, "")
    for sub in subs:
        case(f"{f} ({sub[0]})", sub, [p], f, problem)
    if f in HOSTILE:
        ds = HOSTILE[f][0]
        for cmd in ("cp", "tucker"):
            rank = ["--rank", "1"] if cmd == "cp" else ["--modes", "0", "--ranks", "1"]
            case(f"{f} ({cmd})", [cmd, p, "--dataset", ds] + rank + ["-o", os.path.join(W, "out.h5")], [p], f, problem)
    if f in ("int_kernel.h5", "nan_weights.h5", "absurd_size.h5", "overflow_dims.h5"):
        ds = "/x.weight" if "size" in f or "dims" in f else "/conv.weight"
        case(f"{f} (cp)", ["cp", p, "--dataset", ds, "--rank", "2", "-o", os.path.join(W, "out.h5")], [p], f)
target = os.path.join(BAD, "spec_target.h5")
for s in specs:
    sp = os.path.join(BAD, s)
    case(f"{s}", ["decompose", target, "--layer-spec", sp, "--rank", "2", "-o", os.path.join(W, "out.h5")], [target, sp], s)
    case(f"{s} (adapters)", ["adapters", target, "--layer-spec", sp, "--rank", "1", "-o", os.path.join(W, "out.h5")], [target, sp], s)

def bf16_values(d):
    """A bfloat16 dataset's stored bits, widened exactly (the pattern is a float32's top half)."""
    t = d.id.get_type()
    check(t.get_size() == 2 and t.get_fields() == (15, 7, 8, 0, 7) and t.get_ebias() == 127, f"{d.name}: not bfloat16")
    bits = np.zeros(d.shape, "<u2")
    d.id.read(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=t)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)

# bfloat16 weights decompose as what they are: the dense layer's error is numpy's optimal rank-r
# error of the same bfloat16 values, and the bfloat16 factors written reproduce it
vb, out, rep = os.path.join(BAD, "valid_bf16.h5"), os.path.join(W, "out.h5"), os.path.join(W, "report.json")
r = subprocess.run([TOOL, "decompose", vb, "--rank-ratio", "0.5", "-o", out, "--report", rep], capture_output=True, text=True, timeout=120)
check(r.returncode == 0, f"valid_bf16.h5: exit {r.returncode}: {r.stderr[-300:]}")
if r.returncode == 0:
    layers = {l["name"]: l for l in json.load(open(rep))["layers"]}
    check(all(l["dtype"] == "bfloat16" and np.isfinite(l["rel_error"]) and not l["skipped"] for l in layers.values()),
          f"valid_bf16.h5: layers {layers}")
    with h5py.File(vb, "r") as f: w = bf16_values(f["classifier.weight"])
    k = layers["classifier"]["ranks"][0]
    s = np.linalg.svd(w, compute_uv=False)
    best = np.sqrt(np.sum(s[k:] ** 2) / np.sum(s ** 2))
    rel = layers["classifier"]["rel_error"]
    with h5py.File(out, "r") as f:
        a, b = bf16_values(f["classifier.0.weight"]), bf16_values(f["classifier.1.weight"])
        check(np.array_equal(bf16_values(f["classifier.1.bias"]), bf16_values(h5py.File(vb, "r")["classifier.bias"])),
              "valid_bf16.h5: bias not kept bit for bit")
    got = np.linalg.norm(b @ a - w) / np.linalg.norm(w)
    # the reported error is the written (bfloat16-rounded) factors' own; rounding them costs
    # little next to the truncation (bfloat16 keeps 8 significant bits: ~0.4% per entry)
    check(abs(rel - got) < 1e-9 * max(1.0, got) or abs(rel - best) < 1e-9, f"valid_bf16.h5: reported {rel}, written factors {got}")
    check(best <= got + 1e-12 and got - best < 0.01, f"valid_bf16.h5: the written factors give {got}, numpy's optimum {best}")
print(f"{len(files)} bad files, {len(specs)} bad specs: {passed} passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
shutil.rmtree(W, ignore_errors=True)
sys.exit(1 if fails else 0)
