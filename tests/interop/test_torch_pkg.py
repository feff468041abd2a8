#!/usr/bin/python3
"""Interop: the tdecomp.torch package (tools/python) end to end: export's geometry record
against what the modules compute, calibrate's statistics against numpy, compress and load on
torchvision resnet18, mobilenet_v2 and resnext50_32x4d (random weights, fixed seed, no
downloads), safetensors read back by a reader written here, and the export CLI.
Uses Debian's python3-torch, python3-torchvision, numpy and h5py.
usage: test_torch_pkg.py TOOL REPO_ROOT"""
import copy, json, os, pickle, struct, subprocess, sys, tempfile
import h5py, numpy as np, torch, torchvision
from torch import nn
import torch.nn.functional as F

TOOL, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
PKG = os.path.join(ROOT, "tools", "python")
sys.path.insert(0, PKG)
sys.dont_write_bytecode = True
import tdecomp.torch as tt  # noqa: E402
from tdecomp.torch.compress import rule_flags  # noqa: E402

W = tempfile.mkdtemp(prefix="tdtorchpkg-")
FULL_TOL = 1e-5          # full-rank rewrites compute the same function in float32
torch.set_num_threads(2)
fails = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    if not ok:
        fails.append(what)


def rel_diff(a, b):
    return float((a - b).abs().max() / a.abs().max())


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def inspect_json(path):
    r = tool("inspect", path, "--json")
    if r.returncode != 0:
        sys.exit(f"inspect {path} failed: {r.stderr}")
    return json.loads(r.stdout)


def kernel_count(model):
    """Elements of every 2-D / 4-D `.weight` parameter: conv and linear kernels."""
    return sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() in (2, 4))


def capture_inputs(model, types, x):
    """Each module of the given types -> (its input, its output) on x, by hooks of this test."""
    seen, hs = {}, []

    def hook(mod, i, o, name):
        seen.setdefault(name, (i[0].clone(), o.clone()))   # returns None: the output stays as it is
    for name, m in model.named_modules():
        if isinstance(m, types):
            hs.append(m.register_forward_hook(lambda mod, i, o, name=name: hook(mod, i, o, name)))
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return seen


def read_st(path):
    """An independent safetensors reader: (header dict, tensors as numpy by key)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    np_dt = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64}
    arrays = {k: np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], np_dt[e["dtype"]]).reshape(e["shape"])
              for k, e in header.items() if k != "__metadata__"}
    return header, arrays


class Odd(nn.Module):
    """Geometry the torchvision models lack: padding='same' with an even kernel (unequal sides),
    reflect / circular / replicate padding, dilation, ModuleDict paths, BatchNorm after a conv,
    after a linear, and after an in-place op (which must not count as consuming the conv)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, padding="same", bias=False), nn.BatchNorm2d(16, eps=1e-3))
        self.blocks = nn.ModuleDict({
            "a": nn.Conv2d(16, 24, 3, stride=2, padding=1, padding_mode="reflect"),
            "b": nn.Conv2d(24, 24, (3, 5), padding=(1, 2), padding_mode="circular"),
            "c": nn.Conv2d(24, 32, 3, padding="same", dilation=2, padding_mode="replicate"),
            "g": nn.Conv2d(32, 32, 3, padding=1, groups=4)})
        self.bn_b, self.bn_c = nn.BatchNorm2d(24), nn.BatchNorm2d(32)
        self.head, self.bn_head, self.out = nn.Linear(32, 20), nn.BatchNorm1d(20), nn.Linear(20, 5)

    def forward(self, x):
        x = self.blocks["a"](self.stem(x))
        x = self.bn_b(self.blocks["b"](x))
        x = self.bn_c(self.blocks["c"](x).relu_())
        x = self.blocks["g"](x).mean((2, 3))
        return self.out(self.bn_head(self.head(x)))


def odd_model():
    torch.manual_seed(0)
    m = Odd()
    for b in m.modules():
        if isinstance(b, nn.modules.batchnorm._BatchNorm):
            b.running_var.uniform_(0.5, 2.0)
            b.running_mean.normal_()
    return m.eval()


def tv_model(arch):
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)().eval()


X_IMG = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
X_ODD = torch.randn(2, 3, 20, 18, generator=torch.Generator().manual_seed(2))

# 1. export: the record's geometry reproduces each conv's output with explicit padding
odd = odd_model()
h5_path = os.path.join(W, "odd.h5")
rec = tt.export(odd, X_ODD, h5_path)
with h5py.File(h5_path) as f:
    sd = odd.state_dict()
    check(sorted(f.keys()) == sorted(sd.keys()) and all(np.array_equal(f[k][()], sd[k].numpy()) for k in sd),
          "export h5: one root dataset per state-dict key, equal values")
    stored = json.loads(f.attrs["tdecomp_geometry"])
check(stored == json.loads(json.dumps(rec)) and stored["tdecomp_geometry"] == 1, "export h5: tdecomp_geometry root attribute, version 1")
want_order = [n for n, m in odd.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
check([e["name"] for e in stored["layers"]] == want_order, "export: layers in named_modules() order")
io = capture_inputs(odd, (nn.Conv2d,), X_ODD)
modes = {"zeros": "constant", "reflect": "reflect", "circular": "circular", "replicate": "replicate"}
for e in stored["layers"]:
    if e["kind"] != "conv2d":
        continue
    mod, (xin, yout) = odd.get_submodule(e["name"]), io[e["name"]]
    t, b, l, r = e["padding"]
    with torch.no_grad():
        y = F.conv2d(F.pad(xin, (l, r, t, b), mode=modes[e["padding_mode"]]), mod.weight, mod.bias,
                     e["stride"], 0, e["dilation"], e["groups"])
    check(y.shape == yout.shape and rel_diff(yout, y) < 1e-6 and e["input_size"] == list(xin.shape[-2:]),
          f"export: {e['name']}: recorded geometry {e['padding']} {e['padding_mode']} recomputes the module's output")
bn = {e["name"]: e.get("batchnorm") for e in stored["layers"]}
check(bn == {"stem.0": {"name": "stem.1", "eps": 1e-3}, "blocks.a": None, "blocks.b": {"name": "bn_b", "eps": 1e-5},
             "blocks.c": None, "blocks.g": None, "head": {"name": "bn_head", "eps": 1e-5}, "out": None},
      f"export: BatchNorm consumers (after conv and linear; not through an in-place relu): {bn}")
ins = inspect_json(h5_path)
check([L["name"] for L in ins["layers"]] == want_order and all(L["geometry"] == "file" for L in ins["layers"] if L["kind"] != "dense"),
      "inspect: exported file's layers in model order, geometry from the file")
g_row = next(L for L in ins["layers"] if L["name"] == "blocks.g")
check(g_row["groups"] == 4 and g_row["stride"] == [1, 1], f"inspect: blocks.g groups {g_row['groups']} (want 4)")

# 2. compress at full rank through PaddedConv2d and every padding mode
c, rep = tt.compress(odd, X_ODD, tool=TOOL, method="tucker2", rank_ratio=1, keep_larger=True)
with torch.no_grad():
    d = rel_diff(odd(X_ODD), c(X_ODD))
check(d < FULL_TOL and rep["totals"]["layers_decomposed"] == 4, f"compress odd full rank tucker2: rel diff {d:.3g}, "
      f"{rep['totals']['layers_decomposed']} decomposed (want 4)")
check(isinstance(c.stem[0], nn.Sequential) and isinstance(c.stem[0][1], tt.PaddedConv2d) and isinstance(odd.stem[0], nn.Conv2d),
      "compress: unequal 'same' padding rebuilt as PaddedConv2d; the input model left unchanged")
rec2 = tt.export(c, X_ODD, os.path.join(W, "odd2.h5"))
check(next(e for e in rec2["layers"] if e["name"] == "stem.0.1")["padding"] == [1, 2, 1, 2],
      "export of a compressed model: PaddedConv2d's explicit padding recorded")

# 3. torchvision models: full rank reproduces, rank 0.5 counts match, grouped convs kept grouped
for arch in ("resnet18", "mobilenet_v2", "resnext50_32x4d"):
    m = tv_model(arch)
    with torch.no_grad():
        ref = m(X_IMG)
    c, rep = tt.compress(m, X_IMG, tool=TOOL, rank_ratio=1, keep_larger=True, jobs=2)
    with torch.no_grad():
        d = rel_diff(ref, c(X_IMG))
    seqs = sum(1 for n, mod in c.named_modules() if isinstance(mod, nn.Sequential) and n and not isinstance(m.get_submodule(n), nn.Sequential))
    check(d < FULL_TOL and rep["totals"]["layers_decomposed"] > 0 and seqs == rep["totals"]["layers_decomposed"],
          f"{arch} full rank: rel diff {d:.3g}, {rep['totals']['layers_decomposed']} layers decomposed, {seqs} rebuilt")
    check(rep["totals"]["params_before"] == kernel_count(m), f"{arch}: report params_before {rep['totals']['params_before']} "
          f"= kernel parameters {kernel_count(m)}")
    grouped = [n for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d) and mod.groups > 1]
    by_name = {L["name"]: L for L in rep["layers"]}
    kept = all(by_name[n]["skipped"] and type(c.get_submodule(n)) is nn.Conv2d and c.get_submodule(n).groups == m.get_submodule(n).groups
               for n in grouped)
    check(kept, f"{arch}: its {len(grouped)} grouped / depthwise convs never decomposed as groups 1")
    c, rep = tt.compress(m, X_IMG, tool=TOOL, rank_ratio=0.5, jobs=2)
    with torch.no_grad():
        y = c(X_IMG)
    check(kernel_count(c) == rep["totals"]["params_after"] < kernel_count(m) and bool(torch.isfinite(y).all()),
          f"{arch} rank_ratio 0.5: model has {kernel_count(c)} kernel parameters, report {rep['totals']['params_after']}")
    if arch == "resnet18":
        r18, r18_ref = m, ref

# 4. safetensors: export, the tool, load; checked with the reader above
st_in, st_out = os.path.join(W, "r18.safetensors"), os.path.join(W, "r18.out.safetensors")
tt.export(r18, X_IMG, st_in)
header, arrays = read_st(st_in)
sd = r18.state_dict()
check(set(arrays) == set(sd) and all(np.array_equal(arrays[k], sd[k].numpy()) for k in sd),
      "export .safetensors: every tensor read back equal by an independent reader")
geo = json.loads(header["__metadata__"]["tdecomp_geometry"])
check(geo["layers"][0] == {"name": "conv1", "kind": "conv2d", "stride": [2, 2], "padding": [3, 3, 3, 3], "dilation": [1, 1],
                           "groups": 1, "padding_mode": "zeros", "input_size": [64, 64], "batchnorm": {"name": "bn1", "eps": 1e-5}},
      f"export .safetensors: __metadata__ tdecomp_geometry, conv1 {geo['layers'][0]}")
r = tool("decompose", st_in, "-o", st_out, "--rank-ratio", "1", "--keep-larger", "--jobs", "2")
check(r.returncode == 0, f"decompose .safetensors -> .safetensors: exit {r.returncode} {r.stderr.strip()[-200:]}")
if r.returncode == 0:
    hdr, _ = read_st(st_out)
    check("tdecomp_layers" in hdr.get("__metadata__", {}), "decompose output: tdecomp_layers in __metadata__")
    fresh = tt.load(tv_model("resnet18"), st_out)
    with torch.no_grad():
        d = rel_diff(r18_ref, fresh(X_IMG))
    check(d < FULL_TOL, f"load .safetensors at full rank: rel diff {d:.3g}")
try:
    tt.load(tv_model("resnet18"), st_in)
    check(False, "load of a file without tdecomp_layers refused")
except ValueError as e:
    check("tdecomp_layers" in str(e), f"load of a file without tdecomp_layers refused: {e}")

# 5. the export CLI on saved state dicts and checkpoints
env = dict(os.environ, PYTHONPATH=PKG)
cli = lambda *a: subprocess.run([sys.executable, "-m", "tdecomp.torch", "export", *a], capture_output=True, text=True, env=env, cwd=W)
torch.save(r18.state_dict(), os.path.join(W, "r18.pt"))
torch.save({"model": r18.state_dict(), "epoch": 3}, os.path.join(W, "r18ck.pt"))
torch.save(r18, os.path.join(W, "r18mod.pt"))
r = cli("--model", "torchvision.models:resnet18", "r18.pt", "cli.h5", "--input-size", "1,3,64,64")
check(r.returncode == 0, f"CLI export of a state dict: exit {r.returncode} {r.stderr.strip()[-200:]}")
if r.returncode == 0:
    ins = inspect_json(os.path.join(W, "cli.h5"))
    io = capture_inputs(r18, (nn.Conv2d,), X_IMG)
    rows = {L["name"]: L for L in ins["layers"]}
    ok = all(rows[n]["geometry"] == "file" and rows[n]["input_size"] == list(xin.shape[-2:])
             and rows[n]["stride"] == list(r18.get_submodule(n).stride) for n, (xin, _) in io.items())
    check(ok and len(io) == 20, "CLI export: inspect shows every conv's stride and input size from the file")
    with h5py.File(os.path.join(W, "cli.h5")) as f:
        check(all(np.array_equal(f[k][()], v.numpy()) for k, v in r18.state_dict().items()), "CLI export: the checkpoint's weights")
r = cli("--model", "torchvision.models:resnet18", "r18ck.pt", "cli.safetensors", "--input-size", "1,3,64,64")
check(r.returncode == 0 and os.path.exists(os.path.join(W, "cli.safetensors")), "CLI export of a checkpoint dict {'model': ...} to .safetensors")
r = cli("r18mod.pt", "cli2.h5", "--input-size", "1,3,64,64")
check(r.returncode == 1 and "--allow-pickle" in r.stderr and not os.path.exists(os.path.join(W, "cli2.h5")),
      "CLI export: a pickled module refused without --allow-pickle")
r = cli("r18mod.pt", "cli2.h5", "--input-size", "1,3,64,64", "--allow-pickle")
check(r.returncode == 0, "CLI export: a pickled module with --allow-pickle")

# 6. calibrate: the file's moments against numpy on this test's own hooks (unfold for convs)
ds = torch.utils.data.TensorDataset(torch.randn(10, 3, 20, 18, generator=torch.Generator().manual_seed(3)), torch.zeros(10))
loader = torch.utils.data.DataLoader(ds, batch_size=4)       # batches of 4, 4, 2
stats = os.path.join(W, "odd.stats.h5")
tt.calibrate(odd, loader, stats)
sums = {}
for xb, _ in loader:
    for name, (xin, yout) in capture_inputs(odd, (nn.Conv2d, nn.Linear), xb).items():
        mod = odd.get_submodule(name)
        xin, yout = xin.detach(), yout.detach()
        if xin.dim() == 4:
            xv = F.unfold(xin, 1).transpose(1, 2).reshape(-1, xin.shape[1]).double().numpy()
            yb = yout - mod.bias.detach().reshape(1, -1, 1, 1) if mod.bias is not None else yout
            yv = F.unfold(yb, 1).transpose(1, 2).reshape(-1, yout.shape[1]).double().numpy()
        else:
            xv, yv = xin.double().numpy(), (yout - mod.bias).detach().double().numpy()
        s = sums.setdefault(name, [0, 0, 0, 0])
        s[0] += xv.T @ xv; s[1] += len(xv); s[2] += yv.T @ yv; s[3] += len(yv)
with h5py.File(stats) as f:
    check(int(f.attrs["tdecomp_calibration_version"]) == 1 and int(f.attrs["samples"]) == 10 and "provenance" in f.attrs,
          "calibrate: root attributes version 1, samples 10, provenance")
    check(sorted(f.keys()) == sorted(L["name"] for L in inspect_json(h5_path)["layers"]),
          "calibrate: one group per layer, named as inspect names it")
    for name, (sx, nx, sy, ny) in sums.items():
        g = f[name]
        ok = (g["input_cov"].dtype == np.float64 and int(g.attrs["count"]) == nx and int(g.attrs["output_count"]) == ny
              and np.allclose(g["input_cov"][()], sx / nx, rtol=1e-9, atol=1e-12)
              and np.allclose(g["output_cov"][()], sy / ny, rtol=1e-9, atol=1e-12))
        check(ok, f"calibrate: {name}: input_cov {g['input_cov'].shape}, output_cov, count {nx}, output_count {ny} equal numpy")

# 7. compress(calibration=...) once the tool takes --calibration
if "--calibration" in tool("decompose", "--help").stdout + tool("decompose", "--help").stderr:
    keep = os.path.join(W, "calib")
    os.mkdir(keep)
    c, rep = tt.compress(odd, X_ODD, tool=TOOL, rank_ratio=0.5, calibration=loader, workdir=keep)
    with torch.no_grad():
        y = c(X_ODD)
    with h5py.File(os.path.join(keep, "compressed.h5")) as f:
        layers = json.loads(f.attrs["tdecomp_layers"])["layers"]
    with h5py.File(os.path.join(keep, "calibration.h5")) as f:
        check(sorted(f.keys()) == sorted(sums), "compress(calibration=loader): the statistics file it passed has every layer")
    check(any("output_rel_error" in e for e in layers if e["method"] != "none") and bool(torch.isfinite(y).all()),
          "compress(calibration=loader): runs, the output's tdecomp_layers carries output_rel_error")
else:
    print("SKIP compress(calibration=...): this tdecomp-tool's decompose has no --calibration")

# 8. keywords to flags, failures, and layers load() could not rebuild
flags = rule_flags(dict(rank_ratio=0.5, keep_larger=True, target_params=0.4, jobs=2, dry_run=False,
                                                   energy=None, ranks=(16, 8), exclude=["fc", "layer1.*"], method="svd"))
check(flags == ["--rank-ratio", "0.5", "--keep-larger", "--target-params", "0.4", "--jobs", "2", "--ranks", "16,8",
                "--exclude", "fc", "--exclude", "layer1.*", "--method", "svd"], f"compress keywords as decompose flags: {flags}")
try:
    tt.compress(odd, X_ODD, tool=TOOL)
    check(False, "compress without a rank rule raises")
except RuntimeError as e:
    check("rank rule" in str(e), f"compress without a rank rule raises RuntimeError with the tool's message: {e}")
try:
    tt.compress(odd, X_ODD, tool=os.path.join(W, "no-such-tool"), rank=2)
    check(False, "compress with a missing tool raises")
except RuntimeError as e:
    check("no-such-tool" in str(e), "compress with a missing tool raises RuntimeError")


class WithEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.attn, self.fc = nn.Embedding(50, 16), nn.MultiheadAttention(16, 2, batch_first=True), nn.Linear(16, 16)

    def forward(self, ids):
        h = self.emb(ids)
        return self.fc(self.attn(h, h, h)[0])


torch.manual_seed(0)
me = WithEmbedding().eval()
ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(4))
c, rep = tt.compress(me, ids, tool=TOOL, rank_ratio=1, keep_larger=True)
with torch.no_grad():
    d = rel_diff(me(ids), c(ids))
reasons = {L["name"]: L["reason"] for L in rep["layers"]}
check(d < FULL_TOL and reasons.get("emb") == "excluded" and reasons.get("attn.out_proj") == "excluded" and reasons.get("fc") is None,
      f"compress: nn.Embedding and attention's out_proj excluded, fc decomposed; rel diff {d:.3g}; {reasons}")

print(f"{len(fails)} failed" if fails else "all checks passed")
sys.exit(1 if fails else 0)
