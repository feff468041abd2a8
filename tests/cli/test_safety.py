#!/usr/bin/python3
"""What a hostile or careless user found (the reliability issue), one case each: paths with
newlines, device and FIFO outputs, planted symlinks, inputs given again as outputs, an input
changed during a run, exit codes by cause (full disk, file size limit, closed pipe, address-space
limit), an orphaned worker, huge values, clashing output names. Cases needing root (mknod, tmpfs)
are skipped with a reason otherwise; the real /dev nodes are never touched.
usage: test_safety.py TOOL"""
import json, os, signal, stat, subprocess, sys, tempfile, time
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Suite, digest

S = Suite(sys.argv[1])
W = tempfile.mkdtemp(prefix="tdsafety-")
ROOT = os.geteuid() == 0
rng = np.random.default_rng(3)


def model(path, convs=2, c=16):
    with h5py.File(path, "w") as f:
        for i in range(convs):
            f[f"features.{i}.weight"] = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
            f[f"features.{i}.bias"] = rng.standard_normal(c).astype(np.float32)
    return path


def temps(d):
    return [f for f in os.listdir(d) if ".tdtmp." in f]


def last(r):
    lines = r.stderr.strip().splitlines()
    return lines[-1] if lines else ""


IN = model(os.path.join(W, "in.h5"))
HIN = digest(IN)

# 1. a newline in -o: the worker's temporary name travels whole; nothing else is removed
os.mkdir(os.path.join(W, ".git"))
open(os.path.join(W, ".git", "keep"), "w").write("x")
nl = os.path.join(W, "git\nx.h5")
r = S.run("decompose", IN, "-o", nl, "--rank-ratio", "0.5")
S.check(r.returncode == 0 and os.path.exists(nl), f"newline output: {r.returncode} {last(r)}")
S.check(os.path.exists(os.path.join(W, ".git", "keep")), "newline output: ./.git was removed")
r = S.run("decompose", IN, "-o", os.path.join(W, "notes\ny.h5"), "--rank-ratio", "0.5", env={"TDECOMP_TEST_CRASH": "after-create"})
S.check(r.returncode != 0 and temps(W) == [] and os.path.exists(os.path.join(W, ".git", "keep")),
        f"crash with a newline output: {r.returncode} temps {temps(W)}")

# 2. devices, FIFOs and folders are never outputs, not even with --force (exit 2)
fifo = os.path.join(W, "fifo")
os.mkfifo(fifo)
r = S.run("decompose", IN, "-o", fifo, "--rank-ratio", "0.5", "--force", timeout=60)
S.check(r.returncode == 2 and stat.S_ISFIFO(os.lstat(fifo).st_mode), f"FIFO output: {r.returncode} {last(r)}")
if ROOT:
    dev = os.path.join(W, "null")
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    r = S.run("decompose", IN, "-o", dev, "--rank-ratio", "0.5", "--force")
    S.check(r.returncode == 2 and stat.S_ISCHR(os.lstat(dev).st_mode), f"device output: {r.returncode} {last(r)}")
else:
    print("skipped: device output (needs root for mknod)")
r = S.run("cp", IN, "--dataset", "/features.0.weight", "--rank", "2", "-o", W, "--force")
S.check(r.returncode == 2, f"folder output: {r.returncode} {last(r)}")

# 3. an input changed between planning and reading: refused, never a crash (ASan build too)
chg = model(os.path.join(W, "chg.h5"))
p = subprocess.Popen([S.tool, "decompose", chg, "-o", os.path.join(W, "chg.out.h5"), "--target-params", "0.5"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, TDECOMP_TEST_HOOK="stop-after-plan"))
worker = None
for _ in range(200):  # the worker stops itself after planning
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                st = open(f"/proc/{pid}/stat").read().split()
                if int(st[3]) == p.pid and st[2] == "T": worker = int(pid)
            except OSError: pass
    if worker: break
    time.sleep(0.05)
S.check(worker is not None, "input change: the worker did not stop after planning")
other = model(os.path.join(W, "other.h5"), convs=2, c=4)  # other shapes, written over the same inode
with open(chg, "r+b") as f:
    f.write(open(other, "rb").read())
    f.truncate()
if worker: os.kill(worker, signal.SIGCONT)
out, err = p.communicate(timeout=120)
S.check(p.returncode in (0, 1) and "AddressSanitizer" not in err and "runtime error" not in err,
        f"input change: {p.returncode} {err[-300:]}")
S.check(p.returncode == 0 or "changed" in err or "cannot be opened" in err, f"input change message: {err[-200:]}")

# 4. planted symlinks, other spellings of an output, inputs as outputs
victim = os.path.join(W, "victim.txt")
open(victim, "w").write("precious")
for pid in range(os.getpid(), os.getpid() + 200):
    try: os.symlink(victim, os.path.join(W, f"rep.json.tdtmp.{pid}"))
    except FileExistsError: pass
r = S.run("decompose", IN, "-o", os.path.join(W, "o1.h5"), "--rank-ratio", "0.5", "--report", os.path.join(W, "rep.json"))
S.check(r.returncode == 0 and open(victim).read() == "precious", f"planted report links: {r.returncode} {last(r)}")
S.check(json.load(open(os.path.join(W, "rep.json")))["tdecomp_report"] == 1, "report written")
for name in temps(W):  # the planted links are the test's own
    if os.path.islink(os.path.join(W, name)): os.remove(os.path.join(W, name))
same = os.path.join(W, "same.h5")
r = S.run("decompose", IN, "-o", same, "--rank-ratio", "0.5", "--report", os.path.join(W, ".", "same.h5"))
S.check(r.returncode == 2 and not os.path.exists(same), f"report = output in another spelling: {r.returncode} {last(r)}")
spec = os.path.join(W, "spec.json")
json.dump({"features.0": {"padding": [1, 1, 1, 1]}}, open(spec, "w"))
hs = digest(spec)
for args in (["--report", spec, "-o", os.path.join(W, "o2.h5")], ["-o", spec]):
    r = S.run("decompose", IN, "--layer-spec", spec, "--rank-ratio", "0.5", "--force", *args)
    S.check(r.returncode == 1 and digest(spec) == hs, f"spec as an output {args[:1]}: {r.returncode} {last(r)}")
sdir = os.path.join(W, "specdir")
os.mkdir(sdir)
spec2 = os.path.join(sdir, "spec.json")
json.dump({"features.0": {"padding": [1, 1, 1, 1]}}, open(spec2, "w"))
r = S.run("spectrum", IN, "--layer-spec", spec2, "-o", sdir, "--force")
S.check(r.returncode == 1 and os.path.exists(spec2), f"spectrum --force over the spec's folder: {r.returncode} {last(r)}")
S.check(digest(IN) == HIN, "the input changed")

# 5. an orphaned worker dies with the process the user started and leaves nothing
big = model(os.path.join(W, "big.h5"), convs=8, c=256)
od = os.path.join(W, "orphan")
os.mkdir(od)
p = subprocess.Popen([S.tool, "decompose", big, "-o", os.path.join(od, "o.h5"), "--rank-ratio", "0.5"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.3)
p.send_signal(signal.SIGKILL)
p.wait()
time.sleep(1.5)
alive = [pid for pid in os.listdir("/proc") if pid.isdigit() and os.path.exists(f"/proc/{pid}/cmdline") and
         os.path.join(od, "o.h5").encode() in open(f"/proc/{pid}/cmdline", "rb").read()]
S.check(not alive and temps(od) == [] and not os.path.exists(os.path.join(od, "o.h5")),
        f"orphaned worker: alive {alive}, temps {temps(od)}")

# 6. exit codes by cause: a closed pipe after the output was written, a file size limit,
#    an address-space limit (one BLAS thread instead of OpenBLAS's endless retries)
pp = subprocess.run(f"'{S.tool}' decompose '{IN}' -o '{W}/pipe.h5' --rank-ratio 0.5 | true", shell=True,
                    capture_output=True, text=True, timeout=120)
S.check(pp.returncode == 0, "pipe: the shell's status is true's")
S.check(os.path.exists(os.path.join(W, "pipe.h5")), "pipe: the output exists")
S.check("nothing was written" not in pp.stderr, f"pipe: says nothing was written though it was: {pp.stderr[-200:]}")
r = subprocess.run(["sh", "-c", f"ulimit -f 4; exec '{S.tool}' decompose '{big}' -o '{W}/fsz.h5' --rank-ratio 0.5"],
                   capture_output=True, text=True, timeout=120)
S.check(r.returncode == 3 and not os.path.exists(os.path.join(W, "fsz.h5")) and temps(W) == [],
        f"file size limit: {r.returncode} {last(r)} temps {temps(W)}")
t0 = time.time()
# An address-space limit cannot be tested on a sanitizer build: ASan reserves terabytes of
# shadow memory at start-up (the release build runs these).
asan = b"__asan_init" in open(S.tool, "rb").read() or subprocess.run(["sh", "-c", f"ldd '{S.tool}' | grep -q asan"]).returncode == 0
if asan:
    print("SKIP: ulimit -v cases on a sanitizer build")
else:
    r = subprocess.run(["sh", "-c", f"ulimit -v 250000; exec '{S.tool}' --version"], capture_output=True, text=True, timeout=60)
    S.check(r.returncode == 0 and "tdecomp-tool" in r.stdout and time.time() - t0 < 30, f"--version under ulimit -v: {r.returncode}")
    r = subprocess.run(["sh", "-c", f"ulimit -v 400000; exec '{S.tool}' decompose '{IN}' -o '{W}/lim.h5' --rank-ratio 0.5"],
                       capture_output=True, text=True, timeout=120)
    S.check(r.returncode in (0, 3), f"decompose under ulimit -v: {r.returncode} {last(r)}")
full = os.path.join(W, "full")
os.makedirs(full)
mounted = ROOT and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", full], capture_output=True).returncode == 0
if mounted:
    r = S.run("decompose", big, "-o", os.path.join(full, "o.h5"), "--rank-ratio", "0.5")
    S.check(r.returncode == 3 and not os.listdir(full), f"full disk: {r.returncode} {last(r)} left {os.listdir(full)}")
    S.check(last(r).startswith("tdecomp-tool: ") and "HDF5" not in last(r), f"full disk: last line {last(r)!r}")
    try:  # no room left at all (closing flushes, and fails, too)
        with open(os.path.join(full, "filler"), "wb") as f:
            while True: f.write(b"x" * 4096); f.flush()
    except OSError: pass
    # both or neither: the output would fit elsewhere, the report does not
    r = S.run("decompose", IN, "-o", os.path.join(W, "bn.h5"), "--rank-ratio", "0.5", "--report", os.path.join(full, "r.json"))
    S.check(r.returncode == 3 and not os.path.exists(os.path.join(W, "bn.h5")) and not os.path.exists(os.path.join(full, "r.json")),
            f"report on a full disk: {r.returncode} {last(r)}")
    subprocess.run(["umount", full])
else:
    print("skipped: full-disk cases (need root and a tmpfs mount)")

# 7. bad input is exit 1 with its cause: huge values, names the output would take
huge = os.path.join(W, "huge.h5")
with h5py.File(huge, "w") as f: f["c.weight"] = np.full((8, 8, 3, 3), 1e300)
r = S.run("decompose", huge, "-o", os.path.join(W, "h.h5"), "--rank-ratio", "0.5")
S.check(r.returncode == 1 and "huge.h5" in last(r) and "c" in last(r), f"1e300 weights: {r.returncode} {last(r)}")
taken = os.path.join(W, "taken.h5")
with h5py.File(taken, "w") as f:
    f["fc.weight"] = rng.standard_normal((40, 50)).astype(np.float32)
    f["fc.0.weight"] = rng.standard_normal((3, 3)).astype(np.float32)
r = S.run("decompose", taken, "-o", os.path.join(W, "t.h5"), "--rank", "4", "--layers", "fc")
S.check(r.returncode == 1 and "fc.0.weight" in last(r), f"output name taken: {r.returncode} {last(r)}")
r = S.run("decompose", IN, "--layout", "keras3", "-o", os.path.join(W, "k3.h5"), "--rank", "2")
S.check(r.returncode == 1 and "Keras 3" in last(r), f"--layout keras3 on a torch file: {r.returncode} {last(r)}")
r = S.run("decompose", IN, "-o", os.path.join(W, "tp.h5"), "--target-params", "1e-300")
S.check(r.returncode == 1 and "in.h5" in last(r) and "not reachable" in last(r), f"unreachable target names the file: {last(r)}")
r = S.run("decompose", IN, "-o", os.path.join(W, "sg.h5"), "--method", "svd-grouped", "--svd-groups", "4096", "--rank", "2", "--report", os.path.join(W, "sg.json"))
S.check(r.returncode == 0 and "does not divide" in json.load(open(os.path.join(W, "sg.json")))["layers"][0]["reason"], f"--svd-groups 4096: {last(r)}")
r = S.run("decompose", IN, "-o", os.path.join(W, "tiny.h5"), "--rank-ratio", "1e-320")
S.check(r.returncode == 0, f"--rank-ratio 1e-320 (a subnormal) is a valid ratio: {last(r)}")
r = S.run("decompose", IN, "-o", os.path.join(W, "x" * 240 + ".h5"), "--rank-ratio", "0.5")
S.check(r.returncode == 0, f"a 243-character output name (its temporary would pass NAME_MAX): {r.returncode} {last(r)}")
r = S.run("decompose", IN, "-o", os.path.join(W, "slash") + "/", "--rank-ratio", "0.5")
S.check(r.returncode == 2, f"trailing slash: {r.returncode}")
loop = os.path.join(W, "loop")
os.symlink(loop, loop)
r = S.run("decompose", IN, "-o", loop, "--rank-ratio", "0.5", "--force")
S.check(r.returncode == 2, f"symlink loop: {r.returncode} {last(r)}")
r = S.run("decompose", IN, "-o", os.path.join(W, "to.h5"), "--rank-ratio", "0.5", env={"TDECOMP_OPEN_TIMEOUT": "1"})
S.check(r.returncode == 0, "a 1 s structure deadline is enough for a small file")

# 8. outputs follow the umask
old = os.umask(0o027)
r = S.run("decompose", IN, "-o", os.path.join(W, "umask.h5"), "--rank-ratio", "0.5")
os.umask(old)
S.check(r.returncode == 0 and stat.S_IMODE(os.stat(os.path.join(W, "umask.h5")).st_mode) == 0o640, "umask 027 gives 0640")

S.check(digest(IN) == HIN, "the input changed")
S.finish("safety: ")
