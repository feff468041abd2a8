#!/usr/bin/python3
"""CLI tests of `tdecomp-tool adapters`: docs/maths.md's MLP (rank 1 adds 6,794 parameters), the exact
identities frozen + (alpha/r) B A == W (principal) and == the rank-2R truncation (residual, truth
from numpy's SVD), loralib's conv layout with grouped and depthwise convs, Keras 2 and 3 files,
the demo models, skips, usage and input errors.
usage: test_adapters.py TOOL DATA_DIR"""
import json, os, sys, tempfile
import numpy as np, h5py

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Suite, digest  # noqa: E402

TOOL, DATA = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
S = Suite(TOOL)
check = S.check
W = tempfile.mkdtemp(prefix="tdadapters-")
rng = np.random.default_rng(11)

def run(*a): return S.run(*a, timeout=300)
def out(name): return os.path.join(W, name)

def loralib_matrix(w, groups=1):
    """W.reshape(Cout/g k, Cin k) (conv) or W itself (dense): the matrix B A stands for."""
    if w.ndim == 2: return w
    co, cig, k, _ = w.shape
    return w.reshape(co // groups * k, cig * groups * k)

def tail(s, frm): return float(np.sqrt(np.sum(s[frm:] ** 2)))

def check_layer(f, key, w, r, alpha, mode, groups=1, tol=2e-6, where=""):
    """f: output file; key: torch prefix; w: the original float32 weight (OIHW or (out,in))."""
    frozen, A, B = (np.asarray(f[f"{key}.{s}"], np.float64) for s in ("weight", "lora_A", "lora_B"))
    k = 1 if w.ndim == 2 else w.shape[2]
    co, ci = w.shape[0], (w.shape[1] * groups if w.ndim == 4 else w.shape[1])
    check(A.shape == (r * k, ci * k) and B.shape == ((co // groups) * k, r * k), f"{where}{key}: A {A.shape} B {B.shape}")
    check(frozen.shape == w.shape and f[f"{key}.weight"].dtype == np.float32, f"{where}{key}: frozen shape/dtype")
    what = frozen + (alpha / r) * (B @ A).reshape(w.shape)
    w64 = w.astype(np.float64)
    M = loralib_matrix(w64, groups)
    s = np.linalg.svd(M, compute_uv=False)
    R = min(r * k, len(s))
    nw = np.linalg.norm(w64)
    if mode == "principal":
        check(np.linalg.norm(what - w64) / nw < tol, f"{where}{key}: principal identity {np.linalg.norm(what - w64) / nw}")
        # the adapter is the Eckart-Young truncation: its error is the tail of the spectrum
        e = np.linalg.norm(w64 - (alpha / r) * (B @ A).reshape(w.shape)) / nw
        check(abs(e - tail(s, R) / nw) < 1e-5, f"{where}{key}: adapter = W_R ({e} vs {tail(s, R) / nw})")
    else:
        R2 = min(2 * r * k, len(s))
        e = np.linalg.norm(what - w64) / nw
        check(abs(e - tail(s, R2) / nw) < 1e-5, f"{where}{key}: residual rank-2R truncation ({e} vs {tail(s, R2) / nw})")
        e0 = np.linalg.norm(frozen - w64) / nw
        check(abs(e0 - tail(s, R) / nw) < 1e-5, f"{where}{key}: frozen = W_R ({e0} vs {tail(s, R) / nw})")

# --- docs/maths.md, LoRA adapters: MLP 784-1000-2000-10, rank 1 adds 6,794 (0.242 %) ---
mlp = out("mlp.h5")
dims = [784, 1000, 2000, 10]
mlp_w = {}
with h5py.File(mlp, "w") as f:
    for i in range(3):
        mlp_w[f"fc{i + 1}"] = (rng.standard_normal((dims[i + 1], dims[i])) / 30).astype(np.float32)
        f[f"fc{i + 1}.weight"] = mlp_w[f"fc{i + 1}"]
        f[f"fc{i + 1}.bias"] = rng.standard_normal(dims[i + 1]).astype(np.float32)
before = digest(mlp)
p = run("adapters", mlp, "--rank", 1, "-o", out("mlp_ad.h5"), "--json")
check(p.returncode == 0, f"mlp adapters: {p.stderr}")
if p.returncode == 0:
    rep = json.loads(p.stdout)
    check(len(p.stdout.strip().splitlines()) == 1, "--json prints exactly one line")
    check(rep["tdecomp_adapters"] == 1 and rep["options"] == {"rank": 1, "mode": "principal", "alpha": 1.0, "scaling": 1.0},
          f"options {rep['options']}")
    check(rep["totals"]["params"] == 2807010, f"MLP params {rep['totals']['params']}")
    check(rep["totals"]["adapter_params"] == 6794, f"MLP rank-1 adapters {rep['totals']['adapter_params']}")
    check(abs(100 * rep["totals"]["adapter_fraction"] - 0.242) < 5e-4, "0.242 %")
    check([l["adapter_params"] for l in rep["layers"]] == [1784, 3000, 2010], f"per layer {[l['adapter_params'] for l in rep['layers']]}")
    with h5py.File(out("mlp_ad.h5"), "r") as f:
        for name, w in mlp_w.items():
            check_layer(f, name, w, 1, 1.0, "principal", where="mlp ")
            check(np.array_equal(f[f"{name}.bias"][()], h5py.File(mlp, "r")[f"{name}.bias"][()]), f"{name}.bias copied")
        check(int(f.attrs["tdecomp_adapters_rank"]) == 1 and float(f.attrs["tdecomp_adapters_alpha"]) == 1.0
              and f.attrs["tdecomp_adapters_mode"] == "principal" and "tdecomp_version" in f.attrs, "root attributes")
check(digest(mlp) == before, "input untouched")
p = run("adapters", mlp, "--rank", 1)
check(p.returncode == 2 and "missing -o" in p.stderr, "missing -o is a usage error")

# --- convs: plain, grouped and depthwise (groups from a layer spec), 1x1, non-square, alpha != r ---
convs = {"plain": (rng.standard_normal((12, 6, 3, 3)), 1), "grouped": (rng.standard_normal((8, 2, 3, 3)), 4),
         "dw": (rng.standard_normal((6, 1, 3, 3)), 6), "pw": (rng.standard_normal((10, 7, 1, 1)), 1),
         "big": (rng.standard_normal((8, 4, 5, 5)), 2)}
cf = out("convs.h5")
spec = out("convs.spec.json")
with h5py.File(cf, "w") as f:
    for n, (w, g) in convs.items():
        f[f"{n}.weight"] = w.astype(np.float32)
    f["nonsq.weight"] = rng.standard_normal((4, 3, 3, 1)).astype(np.float32)
    f["maybe_dw.weight"] = rng.standard_normal((5, 1, 3, 3)).astype(np.float32)
with open(spec, "w") as s:
    json.dump({n: {"groups": g} for n, (w, g) in convs.items()}, s)
for mode, r, alpha in (("principal", 1, None), ("residual", 1, 3.0), ("principal", 2, 0.5)):
    o = out(f"convs_{mode}_{r}.h5")
    args = ["adapters", cf, "--rank", r, "--mode", mode, "-o", o, "--layer-spec", spec, "--json"]
    if alpha: args += ["--alpha", alpha]
    p = run(*args)
    if not check(p.returncode == 0, f"convs {mode}: {p.stderr}"): continue
    rep = json.loads(p.stdout)
    by = {l["name"]: l for l in rep["layers"]}
    a = alpha if alpha else float(r)
    with h5py.File(o, "r") as f:
        for n, (w, g) in convs.items():
            check_layer(f, n, w.astype(np.float32), r, a, mode, groups=g, where=f"{mode} r{r} ")
            k = w.shape[2]
            check(by[n]["adapter_params"] == r * k * k * (w.shape[1] * g + w.shape[0] // g), f"{n} adapter params")
        check(by["nonsq"]["skipped"] and "non-square" in by["nonsq"]["reason"] and "nonsq.lora_A" not in f, "non-square skipped")
        check(by["maybe_dw"]["skipped"] and "depthwise" in by["maybe_dw"]["reason"], "possibly-depthwise skipped")
        src = h5py.File(cf, "r")
        check(np.array_equal(f["nonsq.weight"][()], src["nonsq.weight"][()]), "skipped layer copied unchanged")

# --- the demo models: torch (with its spec) and Keras 2; a Keras 3 file ---
demo = os.path.join(DATA, "demo.torch.h5")
p = run("adapters", demo, "--rank", 2, "-o", out("demo_ad.h5"), "--layer-spec", os.path.join(DATA, "demo.layer_spec.json"), "--json")
if check(p.returncode == 0, f"demo torch: {p.stderr}"):
    rep = json.loads(p.stdout)
    check(rep["totals"]["layers_adapted"] == 6 and rep["totals"]["layers_skipped"] == 0, "demo: 6 layers adapted")
    with h5py.File(out("demo_ad.h5"), "r") as f, h5py.File(demo, "r") as src:
        for l in rep["layers"]:
            check_layer(f, l["name"], src[l["name"] + ".weight"][()], 2, 2.0, "principal", where="demo ")
            check(l["rel_error"] < 1e-6, f"demo {l['name']} reported rel_error {l['rel_error']}")
        # everything else (BatchNorm buffers, biases) copied
        for key in src:
            if not key.endswith(".weight") or key.replace(".weight", "") not in {l["name"] for l in rep["layers"]}:
                check(np.array_equal(f[key][()], src[key][()]), f"demo {key} copied")

def hwio_to_oihw(k): return k.transpose(3, 2, 0, 1) if k.ndim == 4 else k.T

kd = os.path.join(DATA, "demo.keras.h5")
p = run("adapters", kd, "--rank", 1, "--mode", "residual", "-o", out("demo_k_ad.h5"), "--json")
if check(p.returncode == 0, f"demo keras: {p.stderr}"):
    rep = json.loads(p.stdout)
    with h5py.File(out("demo_k_ad.h5"), "r") as f, h5py.File(kd, "r") as src:
        check(list(f.attrs["layer_names"]) == list(src.attrs["layer_names"]), "keras layer_names kept")
        for l in rep["layers"]:
            n = l["name"]
            kpath = f"{n}/{n}/kernel:0"
            check(f[kpath].shape == src[kpath].shape and f[kpath].dtype == src[kpath].dtype, f"keras {n}: kernel layout kept")
            w = hwio_to_oihw(src[kpath][()])
            frozen = hwio_to_oihw(f[kpath][()]).astype(np.float64)
            A, B = (np.asarray(f[f"tdecomp_adapters/{n}.{s}"], np.float64) for s in ("lora_A", "lora_B"))
            k = 1 if w.ndim == 2 else w.shape[2]
            M = loralib_matrix(w.astype(np.float64))
            s = np.linalg.svd(M, compute_uv=False)
            e = np.linalg.norm(frozen + 1.0 * (B @ A).reshape(w.shape) - w) / np.linalg.norm(w)
            check(abs(e - tail(s, min(2 * k, len(s))) / np.linalg.norm(w)) < 1e-5, f"keras {n}: residual identity")

k3 = out("k3.weights.h5")
K3 = {"conv2d": rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "dense": rng.standard_normal((6, 20)).astype(np.float32)}
with h5py.File(k3, "w") as f:
    f.create_group("vars")
    f["layers/conv2d/vars/0"] = np.ascontiguousarray(K3["conv2d"].transpose(2, 3, 1, 0))
    f["layers/dense/vars/0"] = np.ascontiguousarray(K3["dense"].T)
    f["layers/dense/vars/1"] = np.zeros(6, np.float32)
p = run("adapters", k3, "--rank", 1, "-o", out("k3_ad.weights.h5"))
if check(p.returncode == 0, f"keras3: {p.stderr}"):
    with h5py.File(out("k3_ad.weights.h5"), "r") as f:
        for n, path in (("conv2d", "layers/conv2d/vars/0"), ("dense", "layers/dense/vars/0")):
            w = K3[n].astype(np.float64)
            frozen = hwio_to_oihw(f[path][()]).astype(np.float64)
            A, B = (np.asarray(f[f"tdecomp_adapters/{n}.{s}"], np.float64) for s in ("lora_A", "lora_B"))
            check(np.linalg.norm(frozen + (B @ A).reshape(w.shape) - w) / np.linalg.norm(w) < 2e-6, f"keras3 {n}: identity")

# --- errors: usage (2) before input (1); existing output refused and untouched ---
for args, code, text in ((["adapters", mlp, "-o", out("x.h5")], 2, "--rank"),
                         (["adapters", mlp, "--rank", 0, "-o", out("x.h5")], 2, "--rank"),
                         (["adapters", mlp, "--rank", 1, "--mode", "both", "-o", out("x.h5")], 2, "--mode"),
                         (["adapters", mlp, "--rank", 1, "--alpha", "-1", "-o", out("x.h5")], 2, "--alpha"),
                         (["adapters", out("missing.h5"), "--rank", 1, "-o", out("x.h5")], 1, "missing.h5"),
                         (["adapters", mlp, "--rank", 1, "-o", out("mlp_ad.h5")], 1, "exists")):
    p = run(*args)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    check(p.returncode == code and text in last and last.startswith("tdecomp-tool: "), f"{args[1:]}: rc {p.returncode} '{last}'")
check(not os.path.exists(out("x.h5")), "no output after errors")
check(sorted(n for n in os.listdir(W) if ".tdtmp" in n) == [], "no temporary files left")
p = run("adapters", "--help")
check(p.returncode == 0 and "principal" in p.stdout, "adapters --help")

# --- safetensors in, safetensors out: written and read here with numpy + struct + json ---
import struct  # noqa: E402


def st_write(path, tensors, meta=None):
    hdr, off, blobs = {}, 0, []
    for k, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        hdr[k] = {"dtype": {"float32": "F32", "int64": "I64"}[a.dtype.name], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    dt = {"F32": np.float32, "I64": np.int64}
    return {k: np.frombuffer(b[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]], dt[e["dtype"]]).reshape(e["shape"])
            for k, e in h.items()}, meta


rs = np.random.default_rng(5)
tens = {"fc1.weight": rs.standard_normal((12, 20)).astype(np.float32), "fc1.bias": rs.standard_normal(12).astype(np.float32),
        "conv.weight": rs.standard_normal((6, 4, 3, 3)).astype(np.float32), "steps": np.arange(3, dtype=np.int64)}
src = out("in.safetensors")
st_write(src, tens, {"note": "kept"})
before = digest(src)
p = run("adapters", src, "--rank", 2, "--alpha", 4, "-o", out("ad.safetensors"))
if check(p.returncode == 0, f"adapters on safetensors: {p.stderr}"):
    got, meta = st_read(out("ad.safetensors"))
    check(meta.get("note") == "kept" and meta.get("tdecomp_adapters_rank") == "2", f"metadata kept and extended: {meta}")
    check(float(meta.get("tdecomp_adapters_alpha", "nan")) == 4.0 and meta.get("tdecomp_adapters_mode") == "principal"
          and "adapters" in meta.get("tdecomp_command", "") and meta.get("tdecomp_version"),
          f"the same self-description as an HDF5 output (alpha, mode, command, version): {meta}")
    check(np.array_equal(got["fc1.bias"], tens["fc1.bias"]) and np.array_equal(got["steps"], tens["steps"]), "other tensors copied exactly")
    w = tens["fc1.weight"].astype(np.float64)
    a, b = got["fc1.lora_A"].astype(np.float64), got["fc1.lora_B"].astype(np.float64)
    e = np.linalg.norm(got["fc1.weight"] + (4 / 2) * b @ a - w) / np.linalg.norm(w)
    check(a.shape == (2, 20) and b.shape == (12, 2) and e < 1e-6, f"frozen + s B A = W: {e} {a.shape} {b.shape}")
    cw = tens["conv.weight"].astype(np.float64)
    ca, cb = got["conv.lora_A"].astype(np.float64), got["conv.lora_B"].astype(np.float64)
    # loralib's conv layout: A (r k, Cin k), B (Cout k, r k), delta = (B A).view(W.shape)
    ec = np.linalg.norm(got["conv.weight"] + 2 * (cb @ ca).reshape(cw.shape) - cw) / np.linalg.norm(cw)
    check(ec < 1e-6, f"conv frozen + s B A = W: {ec}")
check(digest(src) == before, "safetensors input untouched")
p = run("adapters", src, "--rank", 2, "-o", out("ad2.h5"))
check(p.returncode != 0 and not os.path.exists(out("ad2.h5")), f"safetensors in, HDF5 out refused: {p.returncode} {p.stderr[-200:]}")

S.finish()
