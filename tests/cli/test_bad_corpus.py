#!/usr/bin/python3
"""Every file in tests/data/bad/ is refused: exit 1, one last stderr line in DESIGN.md's format
naming the file, the input byte-identical afterwards, no output and no temporary file.
usage: test_bad_corpus.py TOOL BAD_DIR"""
import hashlib, os, shutil, subprocess, sys, tempfile

TOOL, BAD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
W = tempfile.mkdtemp(prefix="tdbad-")
fails, passed = [], 0
def check(c, what):
    global passed
    if c: passed += 1
    else: fails.append(what)
def digest(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()

def case(name, args, watch, mention):
    out = os.path.join(W, "out.h5")
    before = {p: digest(p) for p in watch}
    # fuzz_hdf5_heap_loop.h5 makes libhdf5 loop while its structure is read: the tool's deadline
    # (3 s here, 60 s by default) must end it with exit 1 and the one-line message
    r = subprocess.run([TOOL] + args, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TDECOMP_OPEN_TIMEOUT="3"))
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 1, f"{name}: exit {r.returncode}, expected 1: {r.stderr[-200:]}")
    check(bool(lines) and lines[-1].startswith("tdecomp-tool: ") and mention in lines[-1], f"{name}: last line {lines[-1:]} lacks {mention!r}")
    check(all(digest(p) == h for p, h in before.items()), f"{name}: an input changed")
    check(not os.path.exists(out) and not os.path.exists(os.path.join(W, "outdir")) and
          not [f for f in os.listdir(W) if ".tdtmp." in f], f"{name}: output or temporary file left")

files = sorted(f for f in os.listdir(BAD) if f.endswith(".h5") and f != "spec_target.h5")
specs = sorted(f for f in os.listdir(BAD) if f.startswith("spec_") and f.endswith(".json"))
check(len(files) + len(specs) >= 20, f"corpus too small: {len(files)} files, {len(specs)} specs")
# which commands must refuse: structure-level damage is refused by all; bad values only by the
# commands that read values; a non-float tensor in a torch file is an ordinary copied tensor,
# refused only where a float tensor is required (cp)
VALUES = {"nan_weights.h5", "inf_bias.h5"}
CP_ONLY = {"int_kernel.h5"}
for f in files:
    p = os.path.join(BAD, f)
    subs = [] if f in CP_ONLY else ([["decompose", p, "--rank-ratio", "0.5", "-o", os.path.join(W, "out.h5")]] +
                                     ([] if f in VALUES else [["inspect", p]]))
    if f not in CP_ONLY:   # the commands that read every layer's values
        subs += [["adapters", p, "--rank", "1", "-o", os.path.join(W, "out.h5")],
                 ["spectrum", p, "-o", os.path.join(W, "outdir")],
                 ["latency", p, "--input-size", "8x8", "--repeat", "1"]]
    for sub in subs:
        case(f"{f} ({sub[0]})", sub, [p], f)
    if f in ("int_kernel.h5", "nan_weights.h5", "absurd_size.h5", "overflow_dims.h5"):
        ds = "/x.weight" if "size" in f or "dims" in f else "/conv.weight"
        case(f"{f} (cp)", ["cp", p, "--dataset", ds, "--rank", "2", "-o", os.path.join(W, "out.h5")], [p], f)
target = os.path.join(BAD, "spec_target.h5")
for s in specs:
    sp = os.path.join(BAD, s)
    case(f"{s}", ["decompose", target, "--layer-spec", sp, "--rank", "2", "-o", os.path.join(W, "out.h5")], [target, sp], s)
    case(f"{s} (adapters)", ["adapters", target, "--layer-spec", sp, "--rank", "1", "-o", os.path.join(W, "out.h5")], [target, sp], s)
print(f"{len(files)} bad files, {len(specs)} bad specs: {passed} passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
shutil.rmtree(W, ignore_errors=True)
sys.exit(1 if fails else 0)
