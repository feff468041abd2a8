#!/usr/bin/python3
"""Interop: decomposed files load and compute in PyTorch, and Keras files follow Keras 2's
loading rules. Uses Debian's python3-torch, python3-sklearn, python3-numpy, python3-h5py.
usage: test_interop.py TOOL REPO_ROOT"""
import json, os, subprocess, sys, tempfile
import numpy as np, h5py, torch

TOOL, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(ROOT, "tools", "examples"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.dont_write_bytecode = True
import demo_model  # noqa: E402
from save_h5 import load_state_dict_h5  # noqa: E402
from train_demo import conv_nhwc  # noqa: E402

D = os.path.join(ROOT, "tests", "data")
W = tempfile.mkdtemp(prefix="tdinterop-")
SPEC = json.load(open(os.path.join(D, "demo.layer_spec.json")))
fails, passed = [], 0
torch.set_num_threads(1)

def check(c, what):
    global passed
    if c: passed += 1
    else: fails.append(what)

def decompose(src, out, *args):
    rep = out + ".json"
    r = subprocess.run([TOOL, "decompose", src, "-o", out, "--report", rep, *args], capture_output=True, text=True)
    if r.returncode != 0: sys.exit(f"decompose {args} failed: {r.stderr}")
    return json.load(open(rep))

x_tr, x_te, y_tr, y_te = demo_model.load_data()
orig = demo_model.model_from_state_dict(load_state_dict_h5(os.path.join(D, "demo.torch.h5")), SPEC)
orig.eval()
with torch.no_grad(): ref = orig(x_te)
acc0 = demo_model.accuracy(orig, x_te, y_te)

# 1. full rank: the rewritten model computes the original function (float32)
full = os.path.join(W, "full.h5")
rep = decompose(os.path.join(D, "demo.torch.h5"), full, "--layer-spec", os.path.join(D, "demo.layer_spec.json"),
                "--rank-ratio", "1", "--keep-larger")
check(rep["totals"]["layers_decomposed"] == 6, f"full rank: {rep['totals']['layers_decomposed']} layers decomposed, want 6")
m = demo_model.model_from_state_dict(load_state_dict_h5(full), SPEC)
m.eval()
with torch.no_grad(): out = m(x_te)
diff = float((out - ref).abs().max())
print(f"full rank: max |logit difference| {diff:.3g} over {len(x_te)} test images")
check(diff < 1e-5 * max(1.0, float(ref.abs().max())), f"full rank: outputs differ by {diff}")

# 2. the demo setting: accuracy without fine-tuning, against a floor. A wiring or layout error
# (a transposed or misplaced piece) gives chance-level accuracy (~0.1); 0.70 leaves margin under
# the 0.787 measured at --rank-ratio 0.5 (43 % of the parameters) while catching such errors.
demo = os.path.join(W, "demo.h5")
rep = decompose(os.path.join(D, "demo.torch.h5"), demo, "--layer-spec", os.path.join(D, "demo.layer_spec.json"),
                "--rank-ratio", "0.5")
m = demo_model.model_from_state_dict(load_state_dict_h5(demo), SPEC)
acc = demo_model.accuracy(m, x_te, y_te)
print(f"demo setting (--rank-ratio 0.5): test accuracy {acc:.4f} (original {acc0:.4f}), "
      f"{rep['totals']['params_after']} of {rep['totals']['params_before']} parameters")
check(acc >= 0.70, f"demo accuracy {acc} below the 0.70 floor")

# 3. each layer's rel_error equals a numpy recomputation from the two files
with h5py.File(os.path.join(D, "demo.torch.h5")) as fo, h5py.File(demo) as fd:
    for L in rep["layers"]:
        n = L["name"]
        w = np.asarray(fo[n + ".weight"], np.float64)
        if L["skipped"]:
            check(n + ".weight" in fd and np.array_equal(np.asarray(fd[n + ".weight"]), np.asarray(fo[n + ".weight"])),
                  f"{n}: skipped layer not copied unchanged")
            continue
        p = [np.asarray(fd[f"{n}.{i}.weight"], np.float64) for i in range(4) if f"{n}.{i}.weight" in fd]
        if L["method"] == "tucker2":
            wh = np.einsum("ab,bchw,cd->adhw", p[2][:, :, 0, 0], p[1], p[0][:, :, 0, 0])
        elif L["method"] == "svd" and w.ndim == 2:
            wh = p[1] @ p[0]
        else:
            continue
        e = np.linalg.norm(w - wh) / np.linalg.norm(w)
        check(abs(e - L["rel_error"]) < 1e-9, f"{n}: report rel_error {L['rel_error']} vs numpy {e}")
        b = f"{n}.{len(p) - 1}.bias"
        if n + ".bias" in fo: check(b in fd and np.array_equal(np.asarray(fd[b]), np.asarray(fo[n + ".bias"])), f"{n}: bias not carried to {b}")

# 4. Keras 2: loading rules (layer order, weight_names, HWIO shapes) and one chain's output
kout = os.path.join(W, "k.h5")
rep = decompose(os.path.join(D, "demo.keras.h5"), kout, "--rank-ratio", "0.5")
strs = lambda a: [s.decode() if isinstance(s, bytes) else str(s) for s in a]
with h5py.File(os.path.join(D, "demo.keras.h5")) as fo, h5py.File(kout) as fd:
    before, after = strs(fo.attrs["layer_names"]), strs(fd.attrs["layer_names"])
    expect = []
    for n in before:
        L = next((l for l in rep["layers"] if l["name"] == n), None)
        if L and not L["skipped"]:
            expect += [f"{n}_t2_in", f"{n}_t2_core", f"{n}_t2_out"] if L["method"] == "tucker2" else [f"{n}_svd_0", f"{n}_svd_1"]
        else:
            expect.append(n)
    check(after == expect, f"keras layer_names {after} != {expect}")
    for n in after:
        wn = fd[n].attrs["weight_names"]
        names = strs(wn) if wn.dtype.kind != "f" else []
        for w_ in names:
            check(w_.startswith(n + "/") and w_ in fd[n], f"keras {n}: weight {w_} missing or misnamed")
    # one Tucker-2 chain, computed in NHWC with numpy, against the original layer
    n = next(l["name"] for l in rep["layers"] if l["method"] == "tucker2")
    k = lambda g, w_: np.asarray(fd[g][f"{g}/{w_}:0"], np.float64)
    kin, kcore, kou = k(n + "_t2_in", "kernel"), k(n + "_t2_core", "kernel"), k(n + "_t2_out", "kernel")
    bias = k(n + "_t2_out", "bias") if f"{n}_t2_out/bias:0" in fd[n + "_t2_out"] else None
    check((bias is not None) == (f"{n}/bias:0" in fo[n]), f"keras {n}: bias presence differs from the original")
    check(kin.shape[:2] == (1, 1) and kou.shape[:2] == (1, 1) and kcore.shape[:2] == (3, 3), f"keras {n}: pieces not HWIO")
    ko = np.asarray(fo[n][f"{n}/kernel:0"], np.float64)
    xin = np.random.default_rng(0).standard_normal((2, 8, 8, ko.shape[2]))
    y_chain = conv_nhwc(conv_nhwc(conv_nhwc(xin, kin, None, 1, "valid"), kcore, None, 1, "same"), kou, bias, 1, "valid")
    kw = np.einsum("hwab,ia,bj->hwij", kcore, kin[0, 0], kou[0, 0])  # composed HWIO kernel
    y_comp = conv_nhwc(xin, kw, bias, 1, "same")
    check(np.abs(y_chain - y_comp).max() < 1e-9, f"keras {n}: chain output differs from its composed kernel")
    L = next(l for l in rep["layers"] if l["name"] == n)
    e = np.linalg.norm(ko - kw) / np.linalg.norm(ko)
    check(abs(e - L["rel_error"]) < 1e-9, f"keras {n}: rel_error {L['rel_error']} vs numpy {e}")
    check("model_config" not in fd.attrs or "optimizer_weights" not in fd, "keras: model_config/optimizer_weights handling")

print(f"{passed} passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
sys.exit(1 if fails else 0)
