#!/usr/bin/python3
"""CLI tests of `tdecomp-tool spectrum`: the files it writes, the CSV values against numpy's SVD
of the unfoldings, every SVG valid XML with one polyline point per CSV value, the model curve
against `decompose --dry-run`, the output folder's rules (parent must exist, --force, atomic
replacement, nothing left after a crash), and a PNG rendering with rsvg-convert when installed.
usage: test_spectrum.py TOOL DATA_DIR"""
import csv, json, os, shutil, subprocess, sys, tempfile
import xml.etree.ElementTree as ET
import numpy as np, h5py

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Suite, digest  # noqa: E402

TOOL, DATA = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
S = Suite(TOOL)
check = S.check
W = tempfile.mkdtemp(prefix="tdspectrum-")
rng = np.random.default_rng(3)
SVG = "{http://www.w3.org/2000/svg}"

def run(*a, env=None): return S.run(*a, env=env)
def read_csv(p):
    with open(p) as f: return list(csv.DictReader(f))
def col(rows, name): return [float(r[name]) for r in rows if r[name] != ""]
def tail(s, k): return float(np.sqrt(np.sum(s[k:] ** 2)))

def polylines(path):
    root = ET.parse(path).getroot()          # raises on invalid XML
    check(root.tag == SVG + "svg", f"{path}: root is <svg>")
    return {p.get("data-label"): len(p.get("points").split()) for p in root.iter(SVG + "polyline")}

def check_layer(d, fname, w, kind):
    rows = read_csv(os.path.join(d, fname + ".csv"))
    w = w.astype(np.float64)
    nw = np.linalg.norm(w)
    s0 = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)
    s1 = np.linalg.svd(np.moveaxis(w, 1, 0).reshape(w.shape[1], -1), compute_uv=False)
    I0, I1 = w.shape[0], w.shape[1]
    check(len(rows) == max(I0, I1), f"{fname}: one row per rank")
    sv0, sv1 = col(rows, "sv_mode0"), col(rows, "sv_mode1")
    check(len(sv0) == I0 and len(sv1) == I1, f"{fname}: {I0} and {I1} singular values")
    ref0 = np.concatenate([s0, np.zeros(I0 - len(s0))])
    ref1 = np.concatenate([s1, np.zeros(I1 - len(s1))])
    check(np.allclose(sv0, ref0, atol=1e-7 * ref0[0]) and np.allclose(sv1, ref1, atol=1e-7 * ref1[0]), f"{fname}: singular values = numpy's")
    e0 = col(rows, "rel_error_mode0")
    check(np.allclose(e0, [tail(ref0, r) / nw for r in range(1, I0 + 1)], atol=1e-7), f"{fname}: mode-0 error curve")
    ea = [float(r["rel_error_auto"]) if r["rel_error_auto"] else None for r in rows]
    if kind == "tucker2":
        want = [min(1.0, np.sqrt(tail(ref0, min(r, I0)) ** 2 + tail(ref1, min(r, I1)) ** 2) / nw) for r in range(1, len(rows) + 1)]
        check(np.allclose(ea, want, atol=1e-7), f"{fname}: tucker2 bound curve")
        co, ci, kh, kw = w.shape
        r0, r1 = min(2, I0), min(2, I1)
        check(int(rows[1]["params_auto"]) == ci * r1 + r0 * r1 * kh * kw + r0 * co, f"{fname}: tucker2 params at R=2")
    elif kind == "svd":
        check(np.allclose([x for x in ea if x is not None], e0[:len([x for x in ea if x is not None])], atol=1e-12), f"{fname}: svd curve")
    lines = polylines(os.path.join(d, fname + ".svg"))
    check(lines.get("mode 0 (Cout)", lines.get("mode 0 (out)")) == I0, f"{fname}: svg mode-0 points {lines}")
    check(lines.get("mode 0 truncation") == len(e0), f"{fname}: svg error points {lines}")
    if kind != "none":
        check(sum(1 for x in ea if x is not None) == lines.get("tucker2 (R,R) bound", lines.get("svd (exact)")), f"{fname}: svg auto points")

# --- the demo model (torch + spec) ---
demo, spec = os.path.join(DATA, "demo.torch.h5"), os.path.join(DATA, "demo.layer_spec.json")
d = os.path.join(W, "demo")
before = digest(demo)
p = run("spectrum", demo, "-o", d, "--layer-spec", spec)
if check(p.returncode == 0, f"demo spectrum: {p.stderr}"):
    names = ["classifier.1", "classifier.3", "features.0", "features.2", "features.5", "features.8"]
    check(sorted(os.listdir(d)) == sorted([n + e for n in names for e in (".csv", ".svg")] + ["model.csv", "model.svg"]),
          f"demo files {sorted(os.listdir(d))}")
    with h5py.File(demo, "r") as f:
        for n in names:
            w = f[n + ".weight"][()]
            check_layer(d, n, w, "svd" if w.ndim == 2 else "tucker2")
    rows = read_csv(os.path.join(d, "model.csv"))
    lines = polylines(os.path.join(d, "model.svg"))
    for rule, label in (("target-params", "min-max allocator (--target-params)"), ("rank-ratio", "uniform (--rank-ratio)")):
        rr = [r for r in rows if r["rule"] == rule]
        check(len(rr) > 10 and lines.get(label) == len(rr), f"model.svg {label}: {lines.get(label)} points for {len(rr)} rows")
        check(all(0 <= float(r["max_est_error"]) <= 1 for r in rr), f"{rule}: errors in [0, 1]")
        if rule == "target-params":
            check(all(float(r["params_fraction"]) <= float(r["value"]) + 1e-9 for r in rr), "target-params rows within budget")
    # one point of the curve is exactly what decompose plans
    r = [r for r in rows if r["rule"] == "target-params" and r["value"] == "0.4"][0]
    rep = os.path.join(W, "rep.json")
    q = run("decompose", demo, "--dry-run", "--target-params", "0.4", "--layer-spec", spec, "--report", rep)
    if check(q.returncode == 0, f"decompose dry-run: {q.stderr}"):
        tot = json.load(open(rep))["totals"]
        check(tot["params_after"] == int(r["params_after"]), f"model.csv params_after {r['params_after']} vs decompose {tot['params_after']}")
check(digest(demo) == before, "input untouched")

# --- existing folder: refused, then replaced with --force (old content gone) ---
open(os.path.join(d, "marker"), "w").write("old")
p = run("spectrum", demo, "-o", d)
check(p.returncode == 1 and "exists" in p.stderr and os.path.exists(os.path.join(d, "marker")), f"existing DIR refused: {p.stderr}")
p = run("spectrum", demo, "-o", d, "--force", "--layers", "features.*")
check(p.returncode == 0 and not os.path.exists(os.path.join(d, "marker")), f"--force replaces: {p.stderr}")
check(sorted(x for x in os.listdir(d) if x.endswith(".csv")) == ["features.0.csv", "features.2.csv", "features.5.csv", "features.8.csv", "model.csv"],
      f"--layers selects {sorted(os.listdir(d))}")

# --- Keras demo, odd names, grouped and 1x1 layers ---
p = run("spectrum", os.path.join(DATA, "demo.keras.h5"), "-o", os.path.join(W, "keras"))
check(p.returncode == 0 and os.path.exists(os.path.join(W, "keras", "conv2d_3.svg")), f"keras demo: {p.stderr}")
odd = os.path.join(W, "odd.h5")
K = {"a&b<c": rng.standard_normal((6, 4, 3, 3)), "model": rng.standard_normal((5, 8)), "g": rng.standard_normal((8, 2, 3, 3)),
     "pw": rng.standard_normal((7, 5, 1, 1))}
with h5py.File(odd, "w") as f:
    for n, w in K.items(): f[n + ".weight"] = w.astype(np.float32)
ospec = os.path.join(W, "odd.spec.json")
json.dump({"g": {"groups": 4}}, open(ospec, "w"))
p = run("spectrum", odd, "-o", os.path.join(W, "odd"), "--layer-spec", ospec)
if check(p.returncode == 0, f"odd names: {p.stderr}"):
    files = sorted(os.listdir(os.path.join(W, "odd")))
    check(files == sorted(["a_b_c.csv", "a_b_c.svg", "model_2.csv", "model_2.svg", "g.csv", "g.svg", "pw.csv", "pw.svg", "model.csv", "model.svg"]),
          f"odd file names {files}")
    check("warning" in p.stderr and "a&b<c" in p.stderr, "renamed layers are reported")
    check_layer(os.path.join(W, "odd"), "a_b_c", K["a&b<c"].astype(np.float32), "tucker2")
    check_layer(os.path.join(W, "odd"), "g", K["g"].astype(np.float32), "none")
    check_layer(os.path.join(W, "odd"), "pw", K["pw"].astype(np.float32), "svd")
    check(any(e.get("data-label") == "a&b<c" or "a&b<c" in (e.text or "") for e in ET.parse(os.path.join(W, "odd", "a_b_c.svg")).getroot().iter()),
          "the title keeps the real name, escaped")

# --- refusals: usage before input; parent missing; DIR a file; input inside DIR ---
for args, code, text in ((["spectrum", demo], 2, "-o"), (["spectrum", demo, "-o", d, "--bogus"], 2, "--bogus"),
                         (["spectrum", demo, "-o", os.path.join(W, "no", "such")], 1, "does not exist"),
                         (["spectrum", os.path.join(W, "missing.h5"), "-o", os.path.join(W, "m")], 1, "missing.h5")):
    p = run(*args)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    check(p.returncode == code and text in last, f"{args[1:]}: rc {p.returncode} '{last}'")
afile = os.path.join(W, "afile")
open(afile, "w").write("x")
p = run("spectrum", demo, "-o", afile, "--force")
check(p.returncode == 1 and open(afile).read() == "x", f"a file is not replaced by a folder: {p.stderr}")
inner = os.path.join(W, "holder")
os.mkdir(inner)
shutil.copy(demo, os.path.join(inner, "m.h5"))
p = run("spectrum", os.path.join(inner, "m.h5"), "-o", inner, "--force")
check(p.returncode == 1 and os.path.exists(os.path.join(inner, "m.h5")), f"folder holding the input not replaced: {p.stderr}")

# --- a crash after some files were written leaves no temporary folder ---
p = run("spectrum", demo, "-o", os.path.join(W, "crash"), env={"TDECOMP_TEST_CRASH": "spectrum-after-layers", "ASAN_OPTIONS": "handle_segv=0:detect_leaks=0"})
# a crash while the files are being written is a resource failure (exit 3), not the input's
check(p.returncode == 3 and "signal" in p.stderr and "not written" in p.stderr, f"crash reported: {p.returncode} {p.stderr}")
check(not os.path.exists(os.path.join(W, "crash")), "no output after a crash")
check([x for x in os.listdir(W) if "tdtmp" in x] == [], f"no temporary folder left: {os.listdir(W)}")

# --- a rendered PNG (docs/cli.md shows how) ---
rsvg = shutil.which("rsvg-convert")
if rsvg:
    png = os.path.join(W, "f5.png")
    q = subprocess.run([rsvg, os.path.join(W, "keras", "conv2d_2.svg"), "-o", png], capture_output=True)
    data = open(png, "rb").read() if q.returncode == 0 else b""
    check(data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") > 500, "rsvg-convert renders the SVG")
else:
    print("note: rsvg-convert not installed; PNG rendering not checked")

S.finish()
