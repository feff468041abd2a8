#!/usr/bin/python3
"""CLI tests of `tdecomp-tool latency`: the plan matches decompose's, FLOPs match closed forms at
the sizes the layers are timed at (stated sizes scaled to the requested input), a full-rank chain
reproduces the layer's output, the timing fields are consistent with each other, and errors.
Speed itself is not asserted (that belongs in benchmarks).
usage: test_latency.py TOOL DATA_DIR"""
import json, os, sys, tempfile
import numpy as np, h5py

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Suite, digest  # noqa: E402

TOOL, DATA = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
S = Suite(TOOL)
check = S.check
W = tempfile.mkdtemp(prefix="tdlatency-")
rng = np.random.default_rng(5)

def run(*a): return S.run(*a, timeout=600)

def out_size(h, k, s, pt, pb): return (h + pt + pb - (k - 1) - 1) // s + 1

demo, spec_path = os.path.join(DATA, "demo.torch.h5"), os.path.join(DATA, "demo.layer_spec.json")
spec = json.load(open(spec_path))
p = run("latency", demo, "--input-size", "16x16", "--layer-spec", spec_path, "--repeat", 3, "--json")
if check(p.returncode == 0, f"demo latency: {p.stderr}"):
    rep = json.loads(p.stdout)
    check(rep["tdecomp_latency"] == 1 and rep["input_size"] == [16, 16] and rep["repeats"] == 3, "header")
    check(rep["options"]["rule"] == "rank-ratio" and rep["options"]["value"] == 0.5, "default rule --rank-ratio 0.5")
    q = run("decompose", demo, "--dry-run", "--rank-ratio", "0.5", "--layer-spec", spec_path, "--report", os.path.join(W, "r.json"))
    dec = {l["name"]: l for l in json.load(open(os.path.join(W, "r.json")))["layers"]} if q.returncode == 0 else {}
    with h5py.File(demo, "r") as f:
        for l in rep["layers"]:
            n = l["name"]
            check(l["method"] == dec[n]["method"] and l["ranks"] == dec[n]["ranks"], f"{n}: same plan as decompose")
            if l["skipped"]:
                check(l["reason"] == dec[n]["reason"] and l["seconds_before"] is None, f"{n}: skipped like decompose")
                continue
            w = f[n + ".weight"][()]
            if w.ndim == 2:
                co, ci = w.shape
                r = l["ranks"][0]
                check(l["flops_before"] == 2 * co * ci and l["flops_after"] == 2 * r * (co + ci), f"{n}: dense FLOPs")
            else:
                s = spec[n]
                h = s["input_size"][0] * 16 // 8      # stated sizes scaled by 16 / 8 (the largest stated)
                check(l["input_hw"] == [h, h], f"{n}: timed at {l['input_hw']}, want {h}")
                co, ci, k, _ = w.shape
                st, (pt, pb, _, _) = s["stride"][0], s["padding"]
                ho = out_size(h, k, st, pt, pb)
                check(l["flops_before"] == 2 * ho * ho * co * ci * k * k, f"{n}: FLOPs before")
                ro, ri = l["ranks"]
                check(l["flops_after"] == 2 * (h * h * ci * ri + ho * ho * (ro * ri * k * k + co * ro)), f"{n}: Tucker-2 FLOPs after")
            check(abs(l["flop_ratio"] - l["flops_before"] / l["flops_after"]) < 1e-12, f"{n}: flop_ratio")
            check(l["seconds_before"] > 0 and l["seconds_after"] > 0 and abs(l["speedup"] - l["seconds_before"] / l["seconds_after"]) < 1e-9,
                  f"{n}: timing fields")
            check(abs(l["gflops_before"] - l["flops_before"] / l["seconds_before"] / 1e9) < 1e-6 * l["gflops_before"], f"{n}: GFLOP/s")
            check(0 < l["output_rel_diff"] < 1.5 and abs(l["rel_error"] - dec[n]["rel_error"]) < 1e-5, f"{n}: output diff {l['output_rel_diff']}")
    t = rep["totals"]
    timed = [l for l in rep["layers"] if not l["skipped"]]
    check(t["layers_timed"] == len(timed) and t["flops_before"] == sum(l["flops_before"] for l in timed), "totals")

# full rank (kept although larger): the chain reproduces the layer's output on the executor
p = run("latency", demo, "--input-size", "8x8", "--layer-spec", spec_path, "--rank-ratio", "1", "--keep-larger", "--repeat", 1, "--json")
if check(p.returncode == 0, f"full rank: {p.stderr}"):
    for l in json.loads(p.stdout)["layers"]:
        check(not l["skipped"] and l["output_rel_diff"] < 1e-10, f"{l['name']}: full-rank output diff {l['output_rel_diff']}")

# no stated sizes: every conv at HxW; a kernel that does not fit is skipped with the reason; methods
plain = os.path.join(W, "plain.h5")
with h5py.File(plain, "w") as f:
    f["c1.weight"] = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    f["c2.weight"] = rng.standard_normal((24, 16, 5, 5)).astype(np.float32)
    f["fc.weight"] = rng.standard_normal((10, 40)).astype(np.float32)
for method in ("tucker2", "cp", "svd"):
    p = run("latency", plain, "--input-size", "4x3", "--method", method, "--rank", 4, "--repeat", 1, "--json")
    if check(p.returncode == 0, f"plain {method}: {p.stderr}"):
        by = {l["name"]: l for l in json.loads(p.stdout)["layers"]}
        check(by["c1"]["input_hw"] == [4, 3] and by["c1"]["method"] == method, f"{method}: c1 at HxW")
        check(by["c1"]["flops_before"] == 2 * 2 * 1 * 24 * 16 * 9, f"{method}: c1 FLOPs at 4x3 (valid: 2x1 output)")
        check(by["c2"]["skipped"] and "does not fit" in by["c2"]["reason"], f"{method}: 5x5 kernel on 4x3 skipped: {by['c2']['reason']}")
p = run("latency", os.path.join(DATA, "demo.keras.h5"), "--input-size", "8x8", "--repeat", 1)
check(p.returncode == 0 and "total over" in p.stdout, f"keras demo: {p.stderr}")

# errors: usage before input
for args, code, text in ((["latency", demo], 2, "--input-size"), (["latency", demo, "--input-size", "16"], 2, "HxW"),
                         (["latency", demo, "--input-size", "0x8"], 2, "HxW"), (["latency", demo, "--input-size", "8x8", "--repeat", 0], 2, "--repeat"),
                         (["latency", demo, "--input-size", "8x8", "--rank", 2, "--energy", 0.9], 2, "exactly one"),
                         (["latency", os.path.join(W, "nope.h5"), "--input-size", "8x8"], 1, "nope.h5")):
    p = run(*args)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    check(p.returncode == code and text in last, f"{args[1:]}: rc {p.returncode} '{last}'")
# a plain tensor file has no layers: a warning, exit 0 (the same in adapters and spectrum)
cp3 = os.path.join(DATA, "tensors", "cp3.h5")
for args in (["latency", cp3, "--input-size", "8x8"], ["adapters", cp3, "--rank", 1, "-o", os.path.join(W, "cp3.h5")],
             ["spectrum", cp3, "-o", os.path.join(W, "cp3")]):
    p = run(*args)
    check(p.returncode == 0 and "warning" in p.stderr and "no conv or dense layers" in p.stderr, f"{args[0]} on a plain tensor: {p.stderr}")
p = run("latency", "--help")
check(p.returncode == 0 and "im2col" in p.stdout, "latency --help")

S.finish()
