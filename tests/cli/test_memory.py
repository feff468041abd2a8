#!/usr/bin/python3
"""decompose streams: it reads, decomposes and writes one layer at a time, so its peak RSS must
not grow with the number of layers. Files of 8 dense (2048, 2048) float32 layers (16 MiB each,
128 MiB in all; one low-rank-plus-noise matrix scaled per layer, so the decomposition is quick), HDF5 and safetensors:
  - peak RSS of decompose on the 8-layer file < baseline + 3 x one layer's working set, where the
    baseline is the tool's peak RSS for `inspect` of the same file and the working set is what
    the tool's --max-memory check counts for the largest layer (the kernel as double + the
    library's td_rewrite_workspace, read from the tool's refusal under --max-memory 1K) plus the
    chain as double (8 bytes x the report's params_after);
  - the same run's peak RSS exceeds that of a 1-layer file by less than one layer's float32 size
    (both with --jobs 1: one layer at a time);
  - --jobs auto (the default) with 2 BLAS threads runs 2 jobs on the 8-layer file (each working
    set is under 512 MiB), within the same bound; under a --max-memory that one working set fits
    and two do not, it runs 1.
Peak RSS is the kernel's ru_maxrss of the tool's process (and its forked worker), read with
os.wait4. Linux keeps the high-water RSS across exec, so a child cannot read below this test
process's own RSS: this process imports neither numpy nor h5py (a child writes the files).
Skipped on a sanitizer build (shadow memory and quarantine make RSS meaningless there).
usage: test_memory.py TOOL"""
import json, os, re, resource, shutil, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Suite

S = Suite(sys.argv[1])
MIB = 1024.0 * 1024.0
LAYERS, SIDE, RANK = 8, 2048, 16

if b"__asan_init" in open(S.tool, "rb").read() or b"__tsan_init" in open(S.tool, "rb").read() or \
        subprocess.run(["sh", "-c", f"ldd '{S.tool}' | grep -q -E 'asan|tsan'"]).returncode == 0:
    print("SKIP: peak RSS means nothing on a sanitizer build (shadow memory, quarantine)")
    S.finish()

# Written by a child with numpy and h5py, so that this process stays small (see the docstring).
GEN = r"""
import json, struct, sys
import numpy as np, h5py
side, rank, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(7)
a = rng.standard_normal((side, rank)) @ rng.standard_normal((rank, side))
a = (a + 1e-3 * rng.standard_normal((side, side))).astype(np.float32)
for n in map(int, sys.argv[4:]):
    ws = {f"fc{i}.weight": a * np.float32(1 + i) for i in range(n)}
    with h5py.File(f"{folder}/m{n}.h5", "w") as f:
        for k, v in ws.items():
            f.create_dataset(k, data=v)
    hdr, off = {}, 0
    for k, v in ws.items():
        hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
        off += v.nbytes
    t = json.dumps(hdr).encode()
    t += b" " * (-len(t) % 8)
    with open(f"{folder}/m{n}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(t)))
        f.write(t)
        for v in ws.values():
            f.write(v.tobytes())
"""


def peak(args, env=None):
    """(exit code, peak RSS in MiB, stdout, stderr) of one run of the tool."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([S.tool] + [str(x) for x in args], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return p.returncode, ru.ru_maxrss / 1024.0, out.read().decode(), err.read().decode()


def need_bytes(text):
    """The tool's 'needs about X MiB of memory' as bytes."""
    m = re.search(r"needs about ([0-9.]+) (bytes|KiB|MiB|GiB|TiB)", text)
    if not m:
        return None
    return float(m.group(1)) * 1024.0 ** ["bytes", "KiB", "MiB", "GiB", "TiB"].index(m.group(2))


W = tempfile.mkdtemp(prefix="tdmemory-")
t0 = time.time()
try:
    r = subprocess.run([sys.executable, "-c", GEN, str(SIDE), str(RANK), W, "1", str(LAYERS)], capture_output=True, text=True)
    if not S.check(r.returncode == 0, f"writing the files: {r.stderr[-300:]}"):
        S.finish()
    for ext in ("h5", "safetensors"):
        files = {n: os.path.join(W, f"m{n}.{ext}") for n in (1, LAYERS)}
        big = files[LAYERS]
        code, base, _, e = peak(["inspect", big])
        S.check(code == 0, f"{ext}: inspect: exit {code}: {e[-300:]}")
        code, _, _, e = peak(["decompose", big, "-o", os.path.join(W, "no." + ext), "--rank", RANK, "--max-memory", "1K"])
        need = need_bytes(e)
        S.check(code == 3 and need is not None, f"{ext}: --max-memory 1K: exit {code}, {e.strip()[-300:]}")
        rss = {}
        for n, path in files.items():
            out = os.path.join(W, f"out{n}.{ext}")
            code, rss[n], o, e = peak(["decompose", path, "-o", out, "--rank", RANK, "--force", "--json", "--jobs", "1"])
            if not S.check(code == 0, f"{ext}: decompose of {n} layer(s): exit {code}: {e[-300:]}"):
                continue
            rep = json.loads(o)
            S.check(rep["totals"]["layers_decomposed"] == n, f"{ext}: {n} layer(s): {rep['totals']}")
            chain = 8.0 * max(l["params_after"] for l in rep["layers"])
            os.remove(out)
        if need is None or len(rss) < 2:
            continue
        ws = need + chain
        bound = base + 3 * ws / MIB
        layer = SIDE * SIDE * 4 / MIB
        print(f"{ext}: peak RSS inspect {base:.1f} MiB, decompose 1 layer {rss[1]:.1f} MiB, {LAYERS} layers "
              f"{rss[LAYERS]:.1f} MiB ({LAYERS * layer:.0f} MiB of kernels); one layer's working set "
              f"{ws / MIB:.1f} MiB (tool's need {need / MIB:.1f} + chain {chain / MIB:.1f}); bound {bound:.1f} MiB")
        S.check(rss[LAYERS] < bound, f"{ext}: peak RSS {rss[LAYERS]:.1f} MiB >= baseline {base:.1f} + 3 x {ws / MIB:.1f} MiB")
        S.check(rss[LAYERS] - rss[1] < layer,
                f"{ext}: peak RSS grows with the layers: {rss[1]:.1f} MiB for 1, {rss[LAYERS]:.1f} MiB for {LAYERS}")
        env2 = dict(os.environ, OPENBLAS_NUM_THREADS="2")
        out = os.path.join(W, f"auto.{ext}")
        for maxmem, jobs in ((None, 2), (f"{int(1.5 * need / 1024)}K", 1)):
            code, r, o, e = peak(["decompose", big, "-o", out, "--rank", RANK, "--force", "--json"] +
                                 (["--max-memory", maxmem] if maxmem else []), env2)
            if S.check(code == 0, f"{ext}: --jobs auto, --max-memory {maxmem}: exit {code}: {e[-300:]}"):
                got = json.loads(o)["options"]["jobs"]
                S.check(got == jobs, f"{ext}: --jobs auto under --max-memory {maxmem} ran {got} jobs, not {jobs}")
                S.check(r < bound, f"{ext}: --jobs auto: peak RSS {r:.1f} MiB >= {bound:.1f} MiB")
                print(f"{ext}: --jobs auto, --max-memory {maxmem}: {got} jobs, peak RSS {r:.1f} MiB")
                os.remove(out)
        for path in files.values():
            os.remove(path)
finally:
    shutil.rmtree(W, ignore_errors=True)
print(f"this process's own peak RSS (the floor of every reading): "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0:.1f} MiB; {time.time() - t0:.1f} s")
S.finish()
