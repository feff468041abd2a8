#!/usr/bin/python3
"""Robustness of tdecomp-tool: a crash while working (contained in a child process), SIGTERM
during a write, SIGKILL at random moments during a large write (the final path is absent or
complete; a later run removes the dead process's temporary file), and hostile files.
usage: test_robust.py TOOL"""
import hashlib, os, random, signal, subprocess, sys, tempfile, time
import numpy as np, h5py

TOOL = os.path.abspath(sys.argv[1])
W = tempfile.mkdtemp(prefix="tdrobust-")
rng = np.random.default_rng(3)
fails, passed = [], 0

def check(c, what):
    global passed
    if c: passed += 1
    else: fails.append(what)
    return c

def run(*a, env=None):
    return subprocess.run([TOOL] + [str(x) for x in a], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))
def digest(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()
def temps(d): return [f for f in os.listdir(d) if ".tdtmp." in f]

def one_line_error(name, r, code, mention=None):
    lines = r.stderr.strip().splitlines()
    check(r.returncode == code, f"{name}: exit {r.returncode}, expected {code}: {r.stderr[-300:]}")
    check(bool(lines) and lines[-1].startswith("tdecomp-tool: "), f"{name}: last line {lines[-1:]}")
    if mention: check(bool(lines) and mention in lines[-1], f"{name}: lacks {mention!r}: {lines[-1:]}")

small = os.path.join(W, "small.h5")
with h5py.File(small, "w") as f:
    f["tensor"] = rng.standard_normal((10, 9, 8))
    f["c.weight"] = rng.standard_normal((8, 6, 3, 3)).astype(np.float32)

# 1. a crash inside the working process: exit 1, one line, no output, no temporary file
h = digest(small)
for sub in (["cp", small, "--dataset", "/tensor", "--rank", "2"], ["decompose", small, "--rank", "2"]):
    out = os.path.join(W, "crash.h5")
    # (sanitizer builds: let the signal kill the process instead of ASan's own SEGV report)
    r = run(*sub, "-o", out, env={"TDECOMP_TEST_CRASH": "after-create", "ASAN_OPTIONS": "handle_segv=0:detect_leaks=0"})
    one_line_error(f"contained crash ({sub[0]})", r, 1, "signal 11")
    check(not os.path.exists(out) and temps(W) == [], f"contained crash ({sub[0]}): output or temporary file left")
check(digest(small) == h, "crash: input changed")

# a large model: 12 convs (160,160,3,3) float32, ~0.4 MB written per layer after decomposition
# (large enough for the kills below to land in every phase, small enough to run quickly)
big = os.path.join(W, "big.h5")
with h5py.File(big, "w") as f:
    for l in range(12):
        f[f"features.{2 * l}.weight"] = rng.standard_normal((160, 160, 3, 3)).astype(np.float32)
        f[f"features.{2 * l}.bias"] = rng.standard_normal(160).astype(np.float32)
hb = digest(big)
expected = {f"features.{2 * l}.{p}.weight" for l in range(12) for p in range(3)}

# 2. SIGTERM during the run: the process ends by the signal, no output, no temporary file
for delay in (0.2, 0.6):
    out = os.path.join(W, "term.h5")
    p = subprocess.Popen([TOOL, "decompose", big, "-o", out, "--rank-ratio", "0.5"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    if p.returncode == 0:
        check(os.path.exists(out), "SIGTERM after completion but no output")
        os.remove(out)
    else:
        check(p.returncode == -signal.SIGTERM, f"SIGTERM: returncode {p.returncode}")
        check(not os.path.exists(out), "SIGTERM: a partial output exists")
    check(temps(W) == [], f"SIGTERM after {delay}s: temporary file left {temps(W)}")

# 3. SIGKILL (the whole process group) at random moments: the final path is absent or complete
random.seed(5)
t0 = time.time()
check(run("decompose", big, "-o", os.path.join(W, "timing.h5"), "--rank-ratio", "0.5").returncode == 0, "timing run failed")
T = time.time() - t0
os.remove(os.path.join(W, "timing.h5"))
complete = absent = 0
for trial in range(8):
    out = os.path.join(W, f"kill{trial}.h5")
    p = subprocess.Popen([TOOL, "decompose", big, "-o", out, "--rank-ratio", "0.5"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(random.uniform(0.3 * T, 1.05 * T))  # spans the decomposition, the write and the rename
    try: os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    p.wait(timeout=60)
    if os.path.exists(out):
        with h5py.File(out) as f:
            check(expected <= set(f.keys()), f"SIGKILL trial {trial}: the final file is incomplete")
        complete += 1
    else:
        absent += 1
print(f"SIGKILL trials (run time {T:.2f} s): {complete} complete outputs, {absent} absent, "
      f"{len(temps(W))} temporary files of killed processes")
check(digest(big) == hb, "SIGKILL: input changed")
# a SIGKILLed worker may take a moment to exit (freeing its memory): wait for the pids the
# temporary names carry, so "gone" is true when the next run looks
for name in temps(W):
    pid = int(name.split(".tdtmp.")[1].split(".")[0])
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"): break
        time.sleep(0.05)
# a later run in the same folder removes temporary files whose process is gone (one planted
# with a pid that cannot exist, beyond pid_max), and keeps those of live processes
open(os.path.join(W, ".old.h5.tdtmp.4194305.AbCdEf"), "w").write("partial")
live = os.path.join(W, f".mine.h5.tdtmp.{os.getpid()}.XyZ123")
open(live, "w").write("in use")
r = run("cp", small, "--dataset", "/tensor", "--rank", "2", "-o", os.path.join(W, "later.h5"))
check(r.returncode == 0 and temps(W) == [os.path.basename(live)], f"stale temporary files: {temps(W)}")
os.remove(live)

# 4. hostile files
def make(name, fn):
    p = os.path.join(W, name)
    with h5py.File(p, "w") as f: fn(f)
    return p
raw = open(big, "rb").read()
for cut in (512, 4096, len(raw) // 3, len(raw) - 100):
    t = os.path.join(W, f"trunc{cut}.h5"); open(t, "wb").write(raw[:cut])
    h = digest(t)
    r = run("decompose", t, "--dry-run", "--rank", "2")
    one_line_error(f"truncated at {cut}", r, 1)
    check(digest(t) == h, f"truncated at {cut}: input changed")
absurd = make("absurd.h5", lambda f: f.create_dataset("x.weight", shape=(1 << 16, 1 << 16, 3, 3), dtype="f4", chunks=(1, 1, 3, 3)))
one_line_error("declared size absurd next to the file", run("decompose", absurd, "--dry-run", "--rank", "2"), 1, "x.weight")
over = make("overflow.h5", lambda f: f.create_dataset("t", shape=(1 << 40, 1 << 40), dtype="f8", chunks=(1, 1)))
one_line_error("dimensions whose product overflows", run("cp", over, "--dataset", "/t", "--rank", "2"), 1, "overflow")
ext = make("external.h5", lambda f: f.__setitem__("a.weight", h5py.ExternalLink("other.h5", "/w")))
one_line_error("external link", run("inspect", ext), 1, "external link")
def dup(f):
    f.attrs["layer_names"] = [b"conv2d", b"conv2d"]
    g = f.create_group("conv2d"); g.attrs["weight_names"] = [b"conv2d/kernel:0"]
    g["conv2d/kernel:0"] = np.ones((3, 3, 2, 2), np.float32)
one_line_error("duplicate layer names", run("inspect", make("dup.h5", dup)), 1, "twice")
def badwn(f):
    f.attrs["layer_names"] = [b"conv2d"]
    g = f.create_group("conv2d"); g.attrs["weight_names"] = np.arange(3, dtype=np.int32)
one_line_error("weight_names of integers", run("inspect", make("badwn.h5", badwn)), 1, "weight_names")
five = make("five.h5", lambda f: f.__setitem__("c.weight", np.ones((2, 2, 2, 2, 2), np.float32)))
r = run("inspect", five, "--json")
check(r.returncode == 0 and '"layers":[]' in r.stdout.replace(" ", ""), f"a 5-d weight is not a layer: {r.stdout[:200]}")
zero = make("zero.h5", lambda f: f.__setitem__("c.weight", np.ones((0, 4, 3, 3), np.float32)))
r = run("decompose", zero, "--dry-run", "--rank", "2")
check(r.returncode in (0, 1) and (r.returncode == 0 or r.stderr.strip().splitlines()[-1].startswith("tdecomp-tool: ")),
      f"zero-size kernel: {r.returncode} {r.stderr[-200:]}")
# --max-memory: refused before reading or allocating, with how much is needed (exit 3)
for args in (["cp", small, "--dataset", "/tensor", "--rank", "2"], ["tucker", small, "--dataset", "/tensor", "--ranks", "2,2,2"],
             ["decompose", big, "--rank-ratio", "0.5"]):
    out = os.path.join(W, "mem.h5")
    r = run(*args, "-o", out, "--max-memory", "4K")
    one_line_error(f"--max-memory ({args[0]})", r, 3, "needs about")
    check(not os.path.exists(out), f"--max-memory ({args[0]}): output written")
    check(run(*args, "-o", out, "--max-memory", "2G").returncode == 0, f"--max-memory 2G ({args[0]}) refused")
    os.remove(out)
one_line_error("--max-memory malformed", run("cp", small, "--dataset", "/tensor", "--rank", "2", "--max-memory", "lots"), 2)
check(temps(W) == [], f"temporary files left at the end: {temps(W)}")

print(f"{passed} passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
sys.exit(1 if fails else 0)
