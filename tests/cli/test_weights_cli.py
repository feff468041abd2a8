#!/usr/bin/python3
"""CLI tests of inspect, decompose and verify on every weight-file layout, built here with the
same h5py calls the writers make (docs/formats.md and docs/cli.md describe the layouts): Keras 2 save_weights (vlen names),
Keras 2 with fixed-length NULLPAD names split into layer_names0/1 and an empty weight_names,
Keras 2 model.save (model_weights, model_config, optimizer_weights), Keras 3 .weights.h5,
torch-style (module. prefix, nested groups, float16, int64 scalars). Also error cases.
usage: test_weights_cli.py TOOL"""
import hashlib, json, os, subprocess, sys, tempfile
import numpy as np, h5py

TOOL = os.path.abspath(sys.argv[1])
W = tempfile.mkdtemp(prefix="tdweights-")
rng = np.random.default_rng(7)
fails, passed = [], 0

def check(c, what):
    global passed
    if c: passed += 1
    else: fails.append(what)
    return c

def run(*a): return subprocess.run([TOOL] + [str(x) for x in a], capture_output=True, text=True, timeout=300)
def digest(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()

def lowrank_conv(co, ci, k, r):   # OIHW kernel of multilinear rank (r, r) in the channel modes
    core = rng.standard_normal((r, r, k, k))
    return np.einsum("abhw,ia,jb->ijhw", core, rng.standard_normal((co, r)), rng.standard_normal((ci, r))).astype(np.float32)

def hwio(w): return np.ascontiguousarray(w.transpose(2, 3, 1, 0))

K1, K2, DN = lowrank_conv(16, 8, 3, 4), lowrank_conv(24, 16, 3, 6), rng.standard_normal((10, 24)).astype(np.float32)
B1, B2, BD = (rng.standard_normal(n).astype(np.float32) for n in (16, 24, 10))

def keras2(path, fixed=False, split=False, save=False):
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if save else f
        names = ["conv2d", "conv2d_1", "flatten", "dense"]
        enc = [n.encode() for n in names]
        if split:
            root.attrs["layer_names0"] = np.array(enc[:2], dtype="S8")
            root.attrs["layer_names1"] = np.array(enc[2:], dtype="S8")
        elif fixed:
            root.attrs["layer_names"] = np.array(enc, dtype="S8")   # 'conv2d_1' fills S8: no NUL
        else:
            root.attrs["layer_names"] = enc
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.15.0"
        for n, k, b in (("conv2d", hwio(K1), B1), ("conv2d_1", hwio(K2), B2), ("dense", DN.T.copy(), BD)):
            g = root.create_group(n)
            wn = [f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()]
            g.attrs["weight_names"] = np.array(wn, dtype="S20") if fixed else wn
            g[f"{n}/kernel:0"] = k
            g[f"{n}/bias:0"] = b
        root.create_group("flatten").attrs["weight_names"] = np.zeros(0)
        if save:
            cfg = {"class_name": "Sequential", "config": {"layers": [
                {"class_name": "Conv2D", "config": {"name": "conv2d", "strides": [1, 1], "padding": "same", "dilation_rate": [1, 1], "groups": 1}},
                {"class_name": "Conv2D", "config": {"name": "conv2d_1", "strides": [2, 2], "padding": "valid", "dilation_rate": [1, 1], "groups": 1}},
                {"class_name": "Flatten", "config": {"name": "flatten"}},
                {"class_name": "Dense", "config": {"name": "dense"}}]}}
            f.attrs["model_config"] = json.dumps(cfg).encode()
            f.create_group("optimizer_weights").attrs["weight_names"] = [b"Adam/iter:0"]
            f["optimizer_weights/Adam/iter:0"] = np.int64(3)

def keras3(path):
    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = "sequential"
        for n, k, b in (("conv2d", hwio(K1), B1), ("conv2d_1", hwio(K2), B2), ("dense", DN.T.copy(), BD)):
            f[f"layers/{n}/vars/0"] = k
            f[f"layers/{n}/vars/1"] = b
        f[f"layers/conv2d_2/vars/0"] = hwio(lowrank_conv(8, 24, 1, 2))   # a later conv: renumbered
        f.create_group("optimizer/vars")

def torch_file(path, nested=False, half=False):
    dt = np.float16 if half else np.float32
    with h5py.File(path, "w") as f:
        items = {"module.features.0.weight": K1.astype(dt), "module.features.0.bias": B1.astype(dt),
                 "module.features.1.running_mean": np.zeros(16, np.float32),
                 "module.features.1.num_batches_tracked": np.array(5, np.int64),
                 "module.features.2.weight": K2.astype(dt), "module.fc.weight": DN.astype(dt), "module.fc.bias": BD.astype(dt)}
        for k, v in items.items():
            if nested: f[k.replace(".", "/")] = v
            else: f[k] = v
        if not nested: f["module.features.0.weight"].attrs["note"] = "kept"

files = {}
for name, make in (("k2_vlen.h5", lambda p: keras2(p)), ("k2_fixed.h5", lambda p: keras2(p, fixed=True)),
                   ("k2_split.h5", lambda p: keras2(p, fixed=True, split=True)), ("k2_save.h5", lambda p: keras2(p, save=True)),
                   ("k3.weights.h5", keras3), ("torch.h5", torch_file), ("torch_nested.h5", lambda p: torch_file(p, nested=True)),
                   ("torch_f16.h5", lambda p: torch_file(p, half=True))):
    p = os.path.join(W, name); make(p); files[name] = p

want_layout = {"k2_vlen.h5": "keras2", "k2_fixed.h5": "keras2", "k2_split.h5": "keras2", "k2_save.h5": "keras2",
               "k3.weights.h5": "keras3", "torch.h5": "torch", "torch_nested.h5": "torch", "torch_f16.h5": "torch"}
conv_names = {"keras2": ("conv2d", "conv2d_1"), "keras3": ("conv2d", "conv2d_1"), "torch": ("module.features.0", "module.features.2")}

for fn, p in files.items():
    lay = want_layout[fn]
    r = run("inspect", p, "--json")
    if not check(r.returncode == 0, f"{fn}: inspect exit {r.returncode}: {r.stderr.strip()[-200:]}"): continue
    j = json.loads(r.stdout)
    check(j["layout"] == lay, f"{fn}: layout {j['layout']} != {lay}")
    L = {l["name"]: l for l in j["layers"]}
    c0, c1 = conv_names[lay]
    check(c0 in L and L[c0]["shape"] == [16, 8, 3, 3] and L[c0]["kind"] == "conv2d", f"{fn}: {c0} shape/kind {L.get(c0)}")
    check(c1 in L and L[c1]["shape"] == [24, 16, 3, 3] and L[c1]["params"] == 24 * 16 * 9, f"{fn}: {c1} {L.get(c1)}")
    dn = "module.fc" if lay == "torch" else "dense"
    check(dn in L and L[dn]["shape"] == [10, 24] and L[dn]["kind"] == "dense" and L[dn]["methods"] == ["svd"], f"{fn}: dense {L.get(dn)}")
    check("tucker2" in L[c0]["methods"] if c0 in L else False, f"{fn}: methods of {c0}")
    check(run("inspect", p).returncode == 0, f"{fn}: inspect table")
    # decompose at the exact ranks: errors at float rounding level, verify agrees
    out, rep = os.path.join(W, fn + ".out.h5"), os.path.join(W, fn + ".rep.json")
    before = digest(p)
    r = run("decompose", p, "-o", out, "--ranks", "6,6", "--report", rep, "--layers", "*conv*", "--layers", "*features*")
    check(digest(p) == before, f"{fn}: input changed")
    if not check(r.returncode == 0, f"{fn}: decompose exit {r.returncode}: {r.stderr.strip()[-300:]}"): continue
    rj = json.load(open(rep))
    RL = {l["name"]: l for l in rj["layers"]}
    tol = 2e-3 if "f16" in fn else 2e-6
    check(RL[c0]["method"] == "tucker2" and RL[c0]["ranks"] == [6, 6] and RL[c0]["rel_error"] < tol, f"{fn}: {c0} {RL[c0]}")
    check(RL[c1]["method"] == "tucker2" and RL[c1]["rel_error"] < tol, f"{fn}: {c1} {RL[c1]}")
    check(RL[dn]["skipped"] and RL[dn]["reason"] == "excluded" and RL[dn]["method"] == "none" and RL[dn]["ranks"] is None,
          f"{fn}: dense not excluded: {RL[dn]}")
    check(RL[c0]["params_after"] == 6 * 8 + 6 * 6 * 9 + 16 * 6, f"{fn}: params_after {RL[c0]['params_after']}")
    v = run("verify", p, out, "--json")
    if check(v.returncode == 0, f"{fn}: verify exit {v.returncode}: {v.stderr.strip()[-300:]}"):
        vj = json.loads(v.stdout)
        VL = {l["name"]: l for l in vj["layers"]}
        for n in (c0, c1):
            check(n in VL and abs(VL[n]["rel_error"] - RL[n]["rel_error"]) < 1e-12, f"{fn}: verify {VL.get(n)} vs report {RL[n]['rel_error']}")
        check(VL[dn]["method"] == "none" and VL[dn]["rel_error"] == 0.0, f"{fn}: verify of the copied dense layer {VL.get(dn)}")
    check(run("verify", p, out, "--max-error", "1e-12").returncode == 1, f"{fn}: verify --max-error must fail")
    with h5py.File(out) as f:
        check("tdecomp_version" in f.attrs and "tdecomp_command" in f.attrs, f"{fn}: root attributes")
        if lay == "torch":
            sep = "/" if "nested" in fn else "."
            key = lambda k: k.replace(".", "/") if sep == "/" else k
            check(key("module.features.0.0.weight") in f and f[key("module.features.0.0.weight")].shape == (6, 8, 1, 1), f"{fn}: piece 0")
            check(f[key("module.features.0.2.bias")].shape == (16,), f"{fn}: bias on piece 2")
            check(key("module.features.2.2.bias") not in f, f"{fn}: a bias-free layer got a bias")
            check(key("module.features.0.weight") not in f, f"{fn}: old kernel kept")
            check(f[key("module.features.1.num_batches_tracked")].dtype == np.int64 and f[key("module.features.1.num_batches_tracked")].shape == (), f"{fn}: int64 scalar")
            check(f[key("module.features.0.1.weight")].dtype == (np.float16 if "f16" in fn else np.float32), f"{fn}: dtype kept")
        elif lay == "keras2":
            root = f["model_weights"] if "save" in fn else f
            names = [s.decode() if isinstance(s, bytes) else s for s in root.attrs["layer_names"]]
            check(names == ["conv2d_t2_in", "conv2d_t2_core", "conv2d_t2_out", "conv2d_1_t2_in", "conv2d_1_t2_core", "conv2d_1_t2_out",
                            "flatten", "dense"], f"{fn}: layer_names {names}")
            check(root["conv2d_t2_core/conv2d_t2_core/kernel:0"].shape == (3, 3, 6, 6), f"{fn}: HWIO core")
            check(root["conv2d_t2_in/conv2d_t2_in/kernel:0"].shape == (1, 1, 8, 6), f"{fn}: HWIO in")
            check("conv2d" not in root and "dense" in root, f"{fn}: old group kept or dense lost")
            check(root["flatten"].attrs["weight_names"].shape == (0,), f"{fn}: empty weight_names changed")
            if "save" in fn:
                check("optimizer_weights" not in f and "model_config" not in f.attrs, f"{fn}: optimizer_weights/model_config not dropped")
        else:
            names = sorted(f["layers"].keys())
            check(names == ["conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "conv2d_5", "conv2d_6", "dense"], f"{fn}: keras3 paths {names}")
            check(f["layers/conv2d_6/vars/0"].shape == (1, 1, 24, 8), f"{fn}: the later conv2d_2 must move to conv2d_6")
            check("optimizer" not in f, f"{fn}: optimizer group kept")

# Keras 2 model.save carries strides/padding: conv2d_1 has stride 2 -> CP refused there
out = os.path.join(W, "cp.h5")
r = run("decompose", files["k2_save.h5"], "-o", out, "--method", "cp", "--rank", "4", "--report", out + ".json")
if check(r.returncode == 0, f"cp on keras2: exit {r.returncode} {r.stderr[-200:]}"):
    RL = {l["name"]: l for l in json.load(open(out + ".json"))["layers"]}
    check(RL["conv2d_1"]["skipped"] and "stride" in RL["conv2d_1"]["reason"], f"keras2 cp with stride 2: {RL['conv2d_1']}")
    check(RL["dense"]["reason"] == "method cp does not apply", f"keras2 cp on dense: {RL['dense']}")
# A budget is spent only on what can be written: with CP refused on the stride-2 conv, the
# target is met by the other layers or refused as infeasible, never silently missed
outb = os.path.join(W, "cpb.h5")
r = run("decompose", files["k2_save.h5"], "-o", outb, "--method", "cp", "--target-params", "0.3", "--report", outb + ".json")
if r.returncode == 0:
    T = json.load(open(outb + ".json"))["totals"]
    check(T["params_after"] <= 0.3 * T["params_before"], f"keras2 cp target 0.3 missed: {T}")
else:
    check(r.returncode == 1 and "not reachable" in r.stderr.strip().splitlines()[-1], f"keras2 cp target: {r.returncode} {r.stderr[-200:]}")
    check(not os.path.exists(outb), "infeasible target left an output")
# Keras 3 weights-only files admit no CP chain: the planner skips those layers with the reason
# (it never spends a budget on a chain io could not write), and the file is a faithful copy
out3 = os.path.join(W, "k3cp.h5")
r = run("decompose", files["k3.weights.h5"], "-o", out3, "--method", "cp", "--rank", "4", "--report", out3 + ".json")
if check(r.returncode == 0, f"keras3 cp: exit {r.returncode} {r.stderr[-200:]}"):
    RL = json.load(open(out3 + ".json"))["layers"]
    convs = [l for l in RL if l["kind"] == "conv2d" and l["shape"][2] * l["shape"][3] > 1]
    check(convs and all(l["skipped"] and "Keras 3" in l["reason"] for l in convs), f"keras3 cp: conv layers not skipped with the reason: {convs}")

# dry run writes nothing; JSON report; every rank rule runs
for rule in (["--rank", "3"], ["--rank-ratio", "0.5"], ["--energy", "0.9"], ["--vbmf"], ["--target-params", "0.5"], ["--max-error", "0.5"]):
    r = run("decompose", files["torch.h5"], "--dry-run", *rule, "--report", os.path.join(W, "dry.json"), "--force")
    check(r.returncode == 0 and "total:" in r.stdout, f"dry run {rule}: {r.returncode} {r.stderr[-200:]}")
check(not any(f.startswith("torch.h5.") and f.endswith(".h5") and "dry" in f for f in os.listdir(W)), "dry run wrote a file")
r = run("decompose", files["torch.h5"], "--dry-run", "--target-flops", "0.5")
check(r.returncode == 1 and "input size" in r.stderr, f"target-flops without input sizes: {r.returncode} {r.stderr[-200:]}")
r = run("decompose", files["torch.h5"], "--dry-run", "--target-params", "0.001")
check(r.returncode == 1 and "not reachable" in r.stderr, f"infeasible target: {r.stderr[-200:]}")

# Keras 2 model.save of a Sequential model: input sizes come from the config (batch_input_shape,
# carried through 'same' conv, 2x2 pooling and a stride-2 conv), so --target-flops works
seq = os.path.join(W, "k2_seq.h5")
with h5py.File(seq, "w") as f:
    r_ = f.create_group("model_weights")
    r_.attrs["layer_names"] = [b"conv2d", b"max_pooling2d", b"conv2d_1", b"flatten", b"dense"]
    for n, shp in (("conv2d", (3, 3, 3, 8)), ("conv2d_1", (3, 3, 8, 16)), ("dense", (16 * 4 * 4, 10))):
        g = r_.create_group(n); g.attrs["weight_names"] = [f"{n}/kernel:0".encode()]
        g[f"{n}/kernel:0"] = rng.standard_normal(shp).astype(np.float32)
    for n in ("max_pooling2d", "flatten"): r_.create_group(n).attrs["weight_names"] = np.zeros(0)
    cfg = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 17, 16, 3], "name": "input_1"}},
        {"class_name": "Conv2D", "config": {"name": "conv2d", "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "dilation_rate": [1, 1], "groups": 1}},
        {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}},
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "dilation_rate": [1, 1], "groups": 1}},
        {"class_name": "Flatten", "config": {"name": "flatten"}}, {"class_name": "Dense", "config": {"name": "dense"}}]}}
    f.attrs["model_config"] = json.dumps(cfg).encode()
r = run("decompose", seq, "--dry-run", "--target-flops", "0.5", "--report", os.path.join(W, "seq.json"))
if check(r.returncode == 0, f"keras2 sequential --target-flops: {r.stderr[-200:]}"):
    RL = {l["name"]: l for l in json.load(open(os.path.join(W, "seq.json")))["layers"]}
    check(RL["conv2d"]["flops_before"] == 2 * 17 * 16 * 8 * 3 * 9, f"conv2d flops {RL['conv2d']['flops_before']}")
    check(RL["conv2d_1"]["flops_before"] == 2 * 4 * 4 * 16 * 8 * 9, f"conv2d_1 flops {RL['conv2d_1']['flops_before']}")
    tot = json.load(open(os.path.join(W, "seq.json")))["totals"]
    check(tot["flops_after"] <= 0.5 * tot["flops_before"], f"flops target not met: {tot}")

# non-square kernels in Keras 2 and 3: HWIO the right way round (a swap of kh and kw would
# either fail to load or change the composed kernel)
ns = np.einsum("abhw,ia,jb->ijhw", rng.standard_normal((3, 2, 3, 5)), rng.standard_normal((12, 3)), rng.standard_normal((6, 2))).astype(np.float32)
for kind in ("keras2", "keras3"):
    p = os.path.join(W, f"ns_{kind}.h5")
    with h5py.File(p, "w") as f:
        if kind == "keras2":
            f.attrs["layer_names"] = [b"conv2d"]
            g = f.create_group("conv2d"); g.attrs["weight_names"] = [b"conv2d/kernel:0"]
            g["conv2d/kernel:0"] = hwio(ns)
        else:
            f["layers/conv2d/vars/0"] = hwio(ns)
    out = p + ".out.h5"
    r = run("decompose", p, "-o", out, "--ranks", "3,2", "--report", out + ".json")
    if not check(r.returncode == 0, f"non-square {kind}: {r.stderr[-200:]}"): continue
    L = json.load(open(out + ".json"))["layers"][0]
    check(L["shape"] == [12, 6, 3, 5] and L["rel_error"] < 2e-6, f"non-square {kind}: {L}")
    with h5py.File(out) as f:
        core = f["conv2d_t2_core/conv2d_t2_core/kernel:0"] if kind == "keras2" else f["layers/conv2d_1/vars/0"]
        check(core.shape == (3, 5, 2, 3), f"non-square {kind}: core HWIO shape {core.shape}")
    v = run("verify", p, out, "--json")
    check(v.returncode == 0 and json.loads(v.stdout)["max_rel_error"] < 2e-6, f"non-square {kind} verify: {v.stdout[-200:]} {v.stderr[-200:]}")

# --jobs N (one BLAS thread per worker): the same bytes in every dataset as a serial run at one
# BLAS thread, for any N
outs = []
for j in ("1", "3"):
    o = os.path.join(W, f"jobs{j}.h5")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1") if j == "1" else None
    r = subprocess.run([TOOL, "decompose", files["torch.h5"], "-o", o, "--energy", "0.97", "--jobs", j],
                       capture_output=True, text=True, env=env)
    check(r.returncode == 0, f"--jobs {j}: {r.stderr[-200:]}")
    outs.append(o)
with h5py.File(outs[0]) as a, h5py.File(outs[1]) as b:
    ka, kb = [], []
    a.visit(lambda k: ka.append(k) if isinstance(a[k], h5py.Dataset) else None)
    b.visit(lambda k: kb.append(k) if isinstance(b[k], h5py.Dataset) else None)
    check(ka == kb and all(a[k][()].tobytes() == b[k][()].tobytes() for k in ka), "--jobs 3 output differs from --jobs 1")

# errors: usage first, then inputs; one line; inputs untouched; no output
def err(name, args, code, mention=None):
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == code, f"{name}: exit {r.returncode}, expected {code}: {r.stderr[-200:]}")
    check(bool(lines) and lines[-1].startswith("tdecomp-tool: "), f"{name}: last line {lines[-1:]}")
    if mention: check(mention in (lines[-1] if lines else ""), f"{name}: lacks {mention!r}: {lines[-1:]}")
spec = os.path.join(W, "spec.json")
err("no rank rule", ["decompose", files["torch.h5"], "-o", os.path.join(W, "x.h5")], 2, "--rank-ratio")
err("two rules", ["decompose", files["torch.h5"], "-o", os.path.join(W, "x.h5"), "--rank", "2", "--vbmf"], 2)
err("bad method", ["decompose", files["torch.h5"], "-o", os.path.join(W, "x.h5"), "--rank", "2", "--method", "magic"], 2, "magic")
err("bad ratio", ["decompose", files["torch.h5"], "-o", os.path.join(W, "x.h5"), "--rank-ratio", "1.5"], 2)
err("bad layout", ["inspect", files["torch.h5"], "--layout", "onnx"], 2)
err("no output", ["decompose", files["torch.h5"], "--rank", "2"], 2, "-o")
open(spec, "w").write('{"module.features.0": {"stride": [1]}}')
err("malformed spec", ["inspect", files["torch.h5"], "--layer-spec", spec], 1, "stride")
open(spec, "w").write('{"nope": {"stride": [1, 1]}}')
err("unknown layer in spec", ["inspect", files["torch.h5"], "--layer-spec", spec], 1, "nope")
open(spec, "w").write('{not json')
err("spec not JSON", ["inspect", files["torch.h5"], "--layer-spec", spec], 1, "JSON")
open(spec, "w").write('{"module.features.0": {"padding": "same", "speed": 3}}')
err("unknown spec key", ["inspect", files["torch.h5"], "--layer-spec", spec], 1, "speed")
err("missing file", ["inspect", os.path.join(W, "absent.h5")], 1, "absent.h5")
txt = os.path.join(W, "t.h5"); open(txt, "w").write("text")
err("text file", ["inspect", txt], 1, "not an HDF5")
bad = os.path.join(W, "badk2.h5")
with h5py.File(bad, "w") as f:
    f.attrs["layer_names"] = [b"conv2d"]
    f.create_group("conv2d").attrs["weight_names"] = [b"conv2d/kernel:0"]
err("keras weight listed but missing", ["inspect", bad], 1, "kernel:0")
with h5py.File(bad, "w") as f:
    f.attrs["layer_names"] = [b"ghost"]
err("keras layer without group", ["inspect", bad], 1, "ghost")
lnk = os.path.join(W, "links.h5")
with h5py.File(lnk, "w") as f:
    f["a.weight"] = np.ones((2, 2), np.float32)
    f["b.weight"] = h5py.SoftLink("/a.weight")
err("soft link", ["inspect", lnk], 1, "soft link")
nanf = os.path.join(W, "nan.h5")
with h5py.File(nanf, "w") as f:
    w = np.ones((4, 4, 3, 3), np.float32); w[0, 0, 0, 0] = np.nan
    f["c.weight"] = w
err("NaN weights", ["decompose", nanf, "-o", os.path.join(W, "n.h5"), "--rank", "2"], 1, "NaN")
check(not os.path.exists(os.path.join(W, "n.h5")), "NaN: output left behind")
o = os.path.join(W, "exists.h5"); open(o, "w").write("x")
err("existing output", ["decompose", files["torch.h5"], "-o", o, "--rank", "2"], 1, "exists")
check(open(o).read() == "x", "existing output modified")
err("output is input", ["decompose", files["torch.h5"], "-o", files["torch.h5"], "--rank", "2", "--force"], 1, "input")
err("report exists", ["decompose", files["torch.h5"], "--dry-run", "--rank", "2", "--report", o], 1, "exists")
err("verify missing layer", ["verify", files["torch.h5"], files["k2_vlen.h5"]], 1)
check([f for f in os.listdir(W) if ".tdtmp." in f] == [], "temporary files left behind")

print(f"{passed} passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
sys.exit(1 if fails else 0)
