#!/usr/bin/python3
"""decompose / verify / spectrum / latency --calibration on the demo model: every output error the
tool reports is recomputed here with numpy from the files (the chain pieces per the output's own
tdecomp_layers record, and the statistics), the data-aware SVD is never worse than the plain one
on the data, identity statistics give the data-free result, and every malformed statistics file
is refused naming the file, the layer and the problem.

usage: test_calibration.py TDECOMP-TOOL DATA-DIR"""
import json
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Suite, digest  # noqa: E402

S = Suite(sys.argv[1])
DATA = sys.argv[2]
DEMO = os.path.join(DATA, "demo.torch.h5")
SPEC = os.path.join(DATA, "demo.layer_spec.json")
W = tempfile.mkdtemp(prefix="tdcal-")
check = S.check
rng = np.random.default_rng(0)

with h5py.File(DEMO, "r") as f:
    KERNELS = {k[:-len(".weight")]: f[k][()].astype(np.float64) for k in f if k.endswith(".weight") and f[k].ndim in (2, 4)}


def lowering(w):
    return w.reshape(w.shape[0], -1)


def metric(c, w):
    """C (x) I over the kernel positions: the metric of the output error with a channel covariance."""
    sp = 1 if w.ndim == 2 else w.shape[2] * w.shape[3]
    return np.kron(c, np.eye(sp))


def out_err(w, v, c):
    m = metric(c, w)
    d, x = lowering(w - v), lowering(w)
    return float(np.sqrt(np.trace(d @ m @ d.T) / np.trace(x @ m @ x.T)))


def make_stats(path, covs=None, skip=(), version=1, mutate=None, output_cov=True):
    """Anisotropic, correlated input covariances (A A^T, columns decaying); output_cov exact."""
    with h5py.File(path, "w") as f:
        f.attrs["tdecomp_calibration_version"] = version
        f.attrs["samples"] = 100
        f.attrs["provenance"] = "test_calibration.py"
        for name, w in KERNELS.items():
            if name in skip:
                continue
            cin = w.shape[1]
            if covs is not None:
                c = covs(cin)
            else:
                a = rng.standard_normal((cin, cin)) * 0.7 ** np.arange(cin)
                c = a @ a.T / cin
            g = f.create_group(name)
            g["input_cov"] = c
            if output_cov:
                g["output_cov"] = lowering(w) @ metric(c, w) @ lowering(w).T
            g.attrs["count"] = 640
        if mutate:
            mutate(f)
    return path


def compose(rec, f):
    """W' of one tdecomp_layers record, by numpy from the output file's pieces."""
    p = [f[q["layer"] + ".weight"][()].astype(np.float64) for q in rec["pieces"]]
    m = rec["method"]
    if m == "tucker2":
        return np.einsum("oa,abhw,bi->oihw", p[2][:, :, 0, 0], p[1], p[0][:, :, 0, 0])
    if m == "svd" and p[0].ndim == 2:
        return p[1] @ p[0]
    if m == "svd":
        return np.einsum("oj,jihw->oihw", p[1][:, :, 0, 0], p[0])
    raise AssertionError(f"method {m} not composed here")


def records(path):
    with h5py.File(path, "r") as f:
        a = f.attrs["tdecomp_layers"]
        return json.loads(a.decode() if isinstance(a, bytes) else a)["layers"]


def decompose(out, *args):
    r = S.run("decompose", DEMO, "-o", out, "--force", "--layer-spec", SPEC, "--json", *args)
    return r, (json.loads(r.stdout) if r.returncode == 0 else None)


stats = make_stats(os.path.join(W, "stats.h5"))
before = (digest(DEMO), digest(stats))
covs = {}
with h5py.File(stats, "r") as f:
    for k in f:
        covs[k] = f[k]["input_cov"][()]

# --- the report's output errors are what numpy measures on the written chains ---
out = os.path.join(W, "aware.h5")
r, rep = decompose(out, "--rank-ratio", "0.5", "--calibration", stats)
if check(r.returncode == 0, f"decompose --calibration: {r.stderr}"):
    layers = {x["name"]: x for x in rep["layers"]}
    recs = {x["name"]: x for x in records(out)}
    with h5py.File(out, "r") as f:
        for name, x in layers.items():
            check(x["has_calibration"] is True, f"{name}: has_calibration")
            if x["skipped"]:
                check("output_rel_error" not in x, f"{name}: skipped layer has no output_rel_error")
                continue
            e = out_err(KERNELS[name], compose(recs[name], f), covs[name])
            check(abs(x["output_rel_error"] - e) <= 1e-6 * max(e, 1e-3), f"{name}: reported {x['output_rel_error']} vs numpy {e}")
            check(abs(recs[name]["output_rel_error"] - x["output_rel_error"]) < 1e-12, f"{name}: file record vs report")
    check("classifier head" in (layers["classifier.3"]["reason"] or ""), f"head kept: {layers['classifier.3']['reason']}")
    t = rep["totals"]
    dec = [x["output_rel_error"] for x in rep["layers"] if not x["skipped"]]
    check(abs(t["max_output_rel_error"] - max(dec)) < 1e-15 and abs(t["mean_output_rel_error"] - np.mean(dec)) < 1e-12,
          f"totals max/mean output error {t}")
    check(t["layers_with_calibration"] == 6, f"layers_with_calibration {t['layers_with_calibration']}")
    check(rep["options"]["calibration"] == stats, "options.calibration")
    v = S.run("verify", DEMO, out, "--calibration", stats, "--json")
    if check(v.returncode == 0, f"verify --calibration: {v.stderr}"):
        vl = {x["name"]: x for x in json.loads(v.stdout)["layers"]}
        for name, x in layers.items():
            if not x["skipped"]:
                check(abs(vl[name]["output_rel_error"] - x["output_rel_error"]) < 1e-9, f"verify {name}: {vl[name]} vs {x}")

    # the plain chains at the same ranks, measured on the same data: whitened SVD is the optimum
    plain = os.path.join(W, "plain.h5")
    r2, rep2 = decompose(plain, "--rank-ratio", "0.5")
    if check(r2.returncode == 0, f"data-free decompose: {r2.stderr}"):
        check(all("output_rel_error" not in x and x["has_calibration"] is False for x in rep2["layers"]), "no statistics: no output errors")
        check(rep2["totals"]["max_output_rel_error"] is None, "no statistics: totals null")
        precs = {x["name"]: x for x in records(plain)}
        with h5py.File(plain, "r") as f:
            ep = {n: out_err(KERNELS[n], compose(precs[n], f), covs[n]) for n, x in layers.items() if not x["skipped"]}
        check(layers["classifier.1"]["output_rel_error"] <= ep["classifier.1"] + 1e-9,
              f"whitened SVD {layers['classifier.1']['output_rel_error']} > plain {ep['classifier.1']}")
        wins = sum(layers[n]["output_rel_error"] < ep[n] for n in ep)
        check(wins == len(ep), f"data-aware output error lower on {wins} of {len(ep)} layers: {ep}")

# --include-head decomposes the head too
r, rep = decompose(os.path.join(W, "head.h5"), "--rank-ratio", "0.5", "--calibration", stats, "--include-head")
check(r.returncode == 0 and not {x["name"]: x for x in rep["layers"]}["classifier.3"]["skipped"], f"--include-head: {r.stderr}")

# --- identity statistics (no output_cov): the data-free chains, and output error = weight error ---
ident = make_stats(os.path.join(W, "ident.h5"), covs=lambda n: np.eye(n), output_cov=False)
r, rep = decompose(os.path.join(W, "ident_out.h5"), "--rank-ratio", "0.5", "--calibration", ident, "--include-head")
r2, rep2 = decompose(os.path.join(W, "free_out.h5"), "--rank-ratio", "0.5")
if check(r.returncode == 0 and r2.returncode == 0, f"identity statistics: {r.stderr}"):
    for a, b in zip(rep["layers"], rep2["layers"]):
        check(a["ranks"] == b["ranks"] and abs(a["rel_error"] - b["rel_error"]) < 1e-5, f"identity {a['name']}: {a['rel_error']} vs {b['rel_error']}")
        if not a["skipped"]:
            check(abs(a["output_rel_error"] - a["rel_error"]) < 1e-6, f"identity {a['name']}: output error {a['output_rel_error']}")

# --- a layer without statistics: data-free, said per layer and in one warning ---
part = make_stats(os.path.join(W, "part.h5"), skip=("features.2",))
r, rep = decompose(os.path.join(W, "part_out.h5"), "--rank-ratio", "0.5", "--calibration", part)
if check(r.returncode == 0, f"partial statistics: {r.stderr}"):
    x = {x["name"]: x for x in rep["layers"]}["features.2"]
    check(x["has_calibration"] is False and "output_rel_error" not in x, f"features.2 without statistics: {x}")
    warn = [ln for ln in r.stderr.splitlines() if "no statistics" in ln]
    check(len(warn) == 1 and "features.2" in warn[0] and part in warn[0], f"one warning: {r.stderr}")

# --- a global budget with statistics is met ---
r, rep = decompose(os.path.join(W, "tp.h5"), "--target-params", "0.3", "--calibration", stats)
if check(r.returncode == 0, f"--target-params 0.3 --calibration: {r.stderr}"):
    t = rep["totals"]
    check(t["params_after"] <= 0.3 * t["params_before"], f"budget: {t['params_after']} of {t['params_before']}")
    check(t["params_after"] == sum(x["params_after"] for x in rep["layers"]), "totals are the layers' sum")


# --- refusals: exit 1, one line naming the file, the layer and the problem, no output ---
def bad(name, mutate, word, version=1, layer="features.5"):
    p = make_stats(os.path.join(W, name + ".h5"), version=version, mutate=mutate)
    o = os.path.join(W, name + "_out.h5")
    r = S.run("decompose", DEMO, "-o", o, "--layer-spec", SPEC, "--rank-ratio", "0.5", "--calibration", p)
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    ok = r.returncode == 1 and last.startswith("tdecomp-tool: ") and p in last and word in last
    if layer:
        ok = ok and layer in last
    check(ok and not os.path.exists(o), f"{name}: {r.returncode} {last!r}")


def replace(ds, value):
    def m(f):
        del f[ds]
        f[ds] = value
    return m


c5 = KERNELS["features.5"].shape[1]
bad("version2", None, "version", version=2, layer=None)
bad("no_input_cov", lambda f: f["features.5"].__delitem__("input_cov"), "input_cov")
bad("wrong_shape", replace("features.5/input_cov", np.eye(c5 + 1)), "does not fit")
bad("nan", replace("features.5/input_cov", np.full((c5, c5), np.nan)), "NaN")
bad("negative", replace("features.5/input_cov", -np.eye(c5)), "negative")
bad("count0", lambda f: f["features.5"].attrs.__setitem__("count", 0), "count")
bad("no_count", lambda f: f["features.5"].attrs.__delitem__("count"), "count")
bad("ints", replace("features.5/input_cov", np.eye(c5, dtype=np.int32)), "not a float")
bad("asym", replace("features.5/input_cov", np.triu(np.ones((c5, c5)))), "symmetric")
bad("out_shape", replace("features.5/output_cov", np.eye(3)), "output_cov")
notstats = os.path.join(W, "plain_file.h5")
with h5py.File(notstats, "w") as f:
    f["x"] = np.ones(3)
r = S.run("decompose", DEMO, "-o", os.path.join(W, "ns.h5"), "--rank-ratio", "0.5", "--calibration", notstats)
check(r.returncode == 1 and "tdecomp_calibration_version" in r.stderr, f"not a statistics file: {r.stderr}")
r = S.run("decompose", DEMO, "-o", os.path.join(W, "ns.h5"), "--rank-ratio", "0.5", "--calibration", os.path.join(W, "missing.h5"))
check(r.returncode == 1 and "missing.h5" in r.stderr, f"missing statistics file: {r.stderr}")

# the statistics file is an input: never an output, even with --force
r = S.run("decompose", DEMO, "-o", stats, "--force", "--rank-ratio", "0.5", "--calibration", stats)
check(r.returncode == 1 and digest(stats) == before[1], f"statistics as output refused: {r.returncode}")
# refused before any work: the refusal is the only thing on stderr (no warning from planning)
check(r.stderr.strip().count("\n") == 0 and "is an input" in r.stderr, f"refused before any work: {r.stderr!r}")
r = S.run("spectrum", DEMO, "-o", stats, "--force", "--calibration", stats)
check(r.returncode == 1 and digest(stats) == before[1] and "is an input" in r.stderr, f"spectrum: statistics as output refused: {r.stderr}")

# --- spectrum and latency take the statistics too ---
sp = os.path.join(W, "spec")
r = S.run("spectrum", DEMO, "-o", sp, "--layer-spec", SPEC, "--calibration", stats)
r2 = S.run("spectrum", DEMO, "-o", sp + "2", "--layer-spec", SPEC)
if check(r.returncode == 0 and r2.returncode == 0, f"spectrum --calibration: {r.stderr}"):
    a = open(os.path.join(sp, "classifier.1.csv")).read()
    b = open(os.path.join(sp + "2", "classifier.1.csv")).read()
    check(a != b, "spectrum --calibration plots the whitened spectra")
r = S.run("latency", DEMO, "--input-size", "8x8", "--layer-spec", SPEC, "--rank-ratio", "0.5", "--repeat", "1",
          "--calibration", stats, "--json")
check(r.returncode == 0, f"latency --calibration: {r.stderr}")


# --- Keras: a BatchNormalization after the conv weights its output error by gamma / sqrt(var + eps) ---
KERAS = os.path.join(W, "demo_config.keras.h5")   # the demo's weights with the Sequential config naming the BatchNorm
shutil.copy(os.path.join(DATA, "demo.keras.h5"), KERAS)
with h5py.File(KERAS, "a") as f:
    cfg = {"class_name": "Sequential", "config": {"name": "demo", "layers": [
        {"class_name": "Conv2D", "config": {"name": "conv2d", "filters": 16, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same"}},
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "filters": 32, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same"}},
        {"class_name": "BatchNormalization", "config": {"name": "batch_normalization", "epsilon": 1e-3}}]}}
    f.attrs["model_config"] = json.dumps(cfg)
with h5py.File(KERAS, "r") as f:
    kw = f["conv2d_1/conv2d_1/kernel:0"][()].astype(np.float64).transpose(3, 2, 0, 1)   # HWIO -> OIHW
    gamma = f["batch_normalization/batch_normalization/gamma:0"][()].astype(np.float64)
    var = f["batch_normalization/batch_normalization/moving_variance:0"][()].astype(np.float64)
dscale = gamma / np.sqrt(var + 1e-3)   # the demo's BatchNormalization epsilon
kst = os.path.join(W, "keras_stats.h5")
with h5py.File(kst, "w") as f:
    f.attrs["tdecomp_calibration_version"] = 1
    a = rng.standard_normal((16, 16)) * 0.7 ** np.arange(16)
    g = f.create_group("conv2d_1")
    g["input_cov"] = a @ a.T / 16
    g.attrs["count"] = 100
    kcov = g["input_cov"][()]
kout = os.path.join(W, "keras_out.h5")
r = S.run("decompose", KERAS, "-o", kout, "--rank-ratio", "0.5", "--layers", "conv2d_1", "--calibration", kst, "--json")
if check(r.returncode == 0, f"keras --calibration: {r.stderr}"):
    x = {x["name"]: x for x in json.loads(r.stdout)["layers"]}["conv2d_1"]
    rec = {x["name"]: x for x in records(kout)}["conv2d_1"]
    with h5py.File(kout, "r") as f:
        p = [f[f"{q['layer']}/{q['layer']}/kernel:0"][()].astype(np.float64).transpose(3, 2, 0, 1) for q in rec["pieces"]]
    v = np.einsum("oa,abhw,bi->oihw", p[2][:, :, 0, 0], p[1], p[0][:, :, 0, 0])
    m = metric(kcov, kw)
    d, w = np.diag(dscale) @ lowering(kw - v), np.diag(dscale) @ lowering(kw)
    e = float(np.sqrt(np.trace(d @ m @ d.T) / np.trace(w @ m @ w.T)))
    check(abs(x["output_rel_error"] - e) <= 1e-6 * e, f"keras BN-weighted output error: reported {x['output_rel_error']} vs numpy {e} (unweighted {out_err(kw, v, kcov)}, rel_error {x['rel_error']} vs {np.linalg.norm(kw - v) / np.linalg.norm(kw)})")
    check(abs(out_err(kw, v, kcov) - e) > 1e-3 * e, "the BatchNorm's scale changes the error (it is applied)")
check((digest(DEMO), digest(stats)) == before, "inputs untouched")
shutil.rmtree(W)
S.finish("calibration: ")
