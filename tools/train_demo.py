#!/usr/bin/python3
"""Train the demo CNN (tools/examples/demo_model.py) on scikit-learn's digits and write the
example weight files to tests/data/ (see tests/data/README.md):

  demo.torch.h5        state dict, one dataset per key (tools/examples/save_h5.py)
  demo.keras.h5        the same weights in Keras 2's save_weights layout (HWIO kernels,
                       Dense (in, out) with the first Dense's rows permuted NCHW -> NHWC flatten)
  demo.layer_spec.json written by tools/examples/layer_spec.py
  demo.accuracy.json   test accuracy and how it was obtained

then checks the shipped files against each other (numpy only for the Keras side) and exits 1
if any check fails. Debian's python3-torch, python3-sklearn, python3-h5py, python3-numpy;
CPU only, deterministic for a given machine and library versions; about half a minute.

    /usr/bin/python3 tools/train_demo.py [--epochs N] [--seed S] [--weight-decay W] [--out-dir DIR]
    /usr/bin/python3 tools/train_demo.py --check     # no training: re-check the shipped files
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "examples"))
import demo_model  # noqa: E402
from demo_model import KERAS_LAYERS, build_model, load_data, accuracy  # noqa: E402
from layer_spec import layer_spec  # noqa: E402
from save_h5 import save_state_dict_h5, load_state_dict_h5  # noqa: E402

KERAS_VERSION = "2.15.0"
LR = 2e-3
BATCH = 32
WEIGHT_DECAY = 0.0
MAX_BYTES = 1 << 20


# ------------------------------------------------------------------------------------ training
def train(epochs, seed, weight_decay):
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    x_tr, x_te, y_tr, y_te = load_data()
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(y_tr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        sched.step()
        print(f"epoch {epoch + 1:2d}/{epochs}: train loss {total / len(y_tr):.4f}, "
              f"test accuracy {accuracy(model, x_te, y_te):.4f}")
    model.eval()
    return model, (x_tr, x_te, y_tr, y_te)


# ---------------------------------------------------------------------------- Keras 2 writer
def _flatten_input_shape(model):
    """(C, H, W) of the tensor the classifier's Flatten sees."""
    with torch.no_grad():
        return tuple(model.features(torch.zeros((1,) + demo_model.INPUT_SHAPE)).shape[1:])


def keras_weights(model):
    """Keras layer name -> [(variable name, array)] in Keras's weight order."""
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    c, h, w = _flatten_input_shape(model)
    out, after_flatten = {}, False
    for kname, cls, tname, cfg in KERAS_LAYERS:
        ws = []
        if cls == "Conv2D":
            ws.append(("kernel:0", sd[tname + ".weight"].transpose(2, 3, 1, 0)))  # OIHW -> HWIO
            if cfg["use_bias"]:
                ws.append(("bias:0", sd[tname + ".bias"]))
        elif cls == "BatchNormalization":
            ws += [("gamma:0", sd[tname + ".weight"]), ("beta:0", sd[tname + ".bias"]),
                   ("moving_mean:0", sd[tname + ".running_mean"]),
                   ("moving_variance:0", sd[tname + ".running_var"])]
        elif cls == "Dense":
            wt = sd[tname + ".weight"]                    # (out, in)
            if after_flatten:
                # torch flattens (c, h, w), Keras (h, w, c): reorder the input rows.
                wt = wt.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(wt.shape[0], -1)
                after_flatten = False
            ws += [("kernel:0", np.ascontiguousarray(wt.T)), ("bias:0", sd[tname + ".bias"])]
        elif cls == "Flatten":
            after_flatten = True
        out[kname] = [(n, np.ascontiguousarray(a, dtype=np.float32)) for n, a in ws]
    return out


def write_keras_h5(model, path):
    """The h5py calls of tf-keras save_weights_to_hdf5_group (weights-only legacy .h5)."""
    weights = keras_weights(model)
    names = [k for k, *_ in KERAS_LAYERS]
    fd, tmp = tempfile.mkstemp(prefix=".demo.", suffix=".tmp", dir=os.path.dirname(path))
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [n.encode("utf8") for n in names]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
            for name in sorted(names):
                g = f.create_group(name)
                wnames = [f"{name}/{v}".encode("utf8") for v, _ in weights[name]]
                g.attrs["weight_names"] = wnames      # [] becomes a float64 (0) attribute
                for wn, (_, val) in zip(wnames, weights[name]):
                    d = g.create_dataset(wn, val.shape, dtype=val.dtype)
                    d[:] = val
            f.create_group("top_level_model_weights").attrs["weight_names"] = []
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ----------------------------------------------------------------- numpy forward, Keras side
def _same_pads(n, k, s, d):
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def conv_nhwc(x, kernel, bias, stride, padding):
    kh, kw, _, cout = kernel.shape
    if padding == "same":
        (pt, pb), (pl, pr) = _same_pads(x.shape[1], kh, stride, 1), _same_pads(x.shape[2], kw, stride, 1)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, cout))
    for a in range(kh):
        for b in range(kw):
            patch = x[:, a:a + stride * (oh - 1) + 1:stride, b:b + stride * (ow - 1) + 1:stride, :]
            y += patch @ kernel[a, b]
    return y if bias is None else y + bias


def _strings(attr):
    return [s.decode() if isinstance(s, bytes) else str(s) for s in attr]


def keras_forward_numpy(path, x_nchw):
    """Logits of the Keras model of demo_model.KERAS_LAYERS with the weights of `path`,
    computed in float64 NHWC from the file alone (layer order from layer_names)."""
    layers = {k: (cls, cfg) for k, cls, _, cfg in KERAS_LAYERS}
    x = np.asarray(x_nchw, dtype=np.float64).transpose(0, 2, 3, 1)
    with h5py.File(path, "r") as f:
        for name in _strings(f.attrs["layer_names"]):
            cls, cfg = layers[name]
            g = f[name]
            w = {}
            if g.attrs["weight_names"].dtype.kind != "f":
                for wn in _strings(g.attrs["weight_names"]):
                    w[wn.split("/")[-1].split(":")[0]] = np.asarray(g[wn], dtype=np.float64)
            if cls == "Conv2D":
                x = conv_nhwc(x, w["kernel"], w.get("bias"), cfg["strides"], cfg["padding"])
            elif cls == "BatchNormalization":
                x = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) \
                    * w["gamma"] + w["beta"]
            elif cls == "ZeroPadding2D":
                p = cfg["padding"]
                x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            elif cls == "ReLU":
                pass
            elif cls == "Flatten":
                x = x.reshape(x.shape[0], -1)
            elif cls == "Dense":
                x = x @ w["kernel"] + w["bias"]
            else:
                raise ValueError(f"{name}: unknown class {cls}")
            if cls == "ReLU" or cfg.get("activation") == "relu":
                x = np.maximum(x, 0)
    return x


# ------------------------------------------------------------------------- consistency check
class Checker:
    def __init__(self):
        self.failed = 0

    def __call__(self, ok, what):
        print(f"  {'PASS' if ok else 'FAIL'}: {what}")
        self.failed += not ok


def _check_chain_rebuild(check, model, x):
    """demo_model.model_from_state_dict must rebuild each contract chain so that it computes
    the conv/dense whose kernel the chain composes to (random factors, composed by einsum)."""
    rng = np.random.default_rng(1)
    sd = {k: v.clone() for k, v in model.state_dict().items()}

    def rnd(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * 0.2)

    def compare(name, chain_keys, full_kernel, label):
        dense_sd = dict(sd)
        dense_sd[name + ".weight"] = full_kernel
        chain_sd = {k: v for k, v in sd.items()
                    if not k.startswith(name + ".weight") and k != name + ".bias"}
        chain_sd.update(chain_keys)
        ref = demo_model.model_from_state_dict(dense_sd).eval()
        got = demo_model.model_from_state_dict(chain_sd).eval()
        with torch.no_grad():
            diff = float((ref(x) - got(x)).abs().max())
        check(diff < 1e-4, f"evaluator rebuilds {label} of {name} (max |diff| {diff:.2e})")

    bias = sd["features.8.bias"]
    # Tucker-2 on features.5 (stride 2, no bias): W = U_out x core x U_in.
    u_in, core, u_out = rnd(12, 32, 1, 1), rnd(10, 12, 3, 3), rnd(64, 10, 1, 1)
    w = torch.einsum("ri,sruv,os->oiuv", u_in[:, :, 0, 0], core, u_out[:, :, 0, 0])
    compare("features.5", {"features.5.0.weight": u_in, "features.5.1.weight": core,
                           "features.5.2.weight": u_out}, w, "Tucker-2")
    # CP on features.5 (stride 2) and features.8 (bias on the last piece).
    for name, cin, cout, b in (("features.5", 32, 64, None), ("features.8", 64, 64, bias)):
        r = 7
        a, v, h, o = rnd(r, cin, 1, 1), rnd(r, 1, 3, 1), rnd(r, 1, 1, 3), rnd(cout, r, 1, 1)
        w = torch.einsum("ri,ru,rv,or->oiuv", a[:, :, 0, 0], v[:, 0, :, 0], h[:, 0, 0, :],
                         o[:, :, 0, 0])
        keys = {f"{name}.0.weight": a, f"{name}.1.weight": v, f"{name}.2.weight": h,
                f"{name}.3.weight": o}
        if b is not None:
            keys[f"{name}.3.bias"] = b
        compare(name, keys, w, "CP")
    # Grouped SVD (k = 4 groups of 16 input channels, j = 3) on features.8.
    k, j = 4, 3
    w0, w1 = rnd(k * j, 64 // k, 3, 3), rnd(64, k * j, 1, 1)
    w = torch.zeros(64, 64, 3, 3)
    for g in range(k):
        w[:, g * 16:(g + 1) * 16] = torch.einsum("ot,tiuv->oiuv", w1[:, g * j:(g + 1) * j, 0, 0],
                                                 w0[g * j:(g + 1) * j])
    compare("features.8", {"features.8.0.weight": w0, "features.8.1.weight": w1,
                           "features.8.1.bias": bias}, w, "grouped SVD")
    # Dense SVD on classifier.1.
    a, b2 = rnd(5, 1024), rnd(32, 5)
    compare("classifier.1", {"classifier.1.0.weight": a, "classifier.1.1.weight": b2,
                             "classifier.1.1.bias": sd["classifier.1.bias"]}, b2 @ a, "dense SVD")


def verify(out_dir, model, data):
    """Re-read the shipped files and check them against the trained model and each other."""
    check = Checker()
    x_te, y_te = data[1], data[3]
    sd = model.state_dict()
    tpath = os.path.join(out_dir, "demo.torch.h5")
    kpath = os.path.join(out_dir, "demo.keras.h5")
    spath = os.path.join(out_dir, "demo.layer_spec.json")

    # torch file: same keys, dtypes, shapes, values; BatchNorm counters as int64 scalars.
    back = load_state_dict_h5(tpath)
    check(set(back) == set(sd), f"torch file has the {len(sd)} state-dict keys")
    check(all(back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v)
              for k, v in sd.items() if k in back), "torch file: dtypes, shapes, values exact")
    with h5py.File(tpath, "r") as f:
        nbt = [k for k in f if k.endswith("num_batches_tracked")]
        check(len(nbt) == 2 and all(f[k].shape == () and f[k].dtype == np.int64 for k in nbt),
              "num_batches_tracked: int64 scalar datasets")
    reb = demo_model.model_from_state_dict(back)
    check(accuracy(reb, x_te, y_te) == accuracy(model, x_te, y_te),
          "model rebuilt from the torch file has the same test accuracy")

    # Keras file: structure and attribute types of the save_weights layout.
    names = [k for k, *_ in KERAS_LAYERS]
    with h5py.File(kpath, "r") as f:
        ln = f.attrs.get_id("layer_names").get_type()
        check(_strings(f.attrs["layer_names"]) == names and ln.is_variable_str()
              and ln.get_cset() == h5py.h5t.CSET_ASCII,
              "layer_names: vlen ASCII strings in model order")
        check(_strings([f.attrs["backend"], f.attrs["keras_version"]]) == ["tensorflow", KERAS_VERSION],
              "backend and keras_version attributes")
        check(sorted(f.keys()) == sorted(names + ["top_level_model_weights"]),
              "one group per layer plus top_level_model_weights")
        empty = [n for n in names + ["top_level_model_weights"]
                 if f[n].attrs["weight_names"].dtype.kind == "f"]
        check(all(f[n].attrs["weight_names"].shape == (0,) for n in empty)
              and set(empty) == {"re_lu", "re_lu_1", "zero_padding2d", "flatten",
                                 "top_level_model_weights"},
              "layers without weights: weight_names is an empty float64 attribute")
        ok = True
        for kname, cls, tname, cfg in KERAS_LAYERS:
            if cls != "Conv2D":
                continue
            wn = _strings(f[kname].attrs["weight_names"])
            ok &= wn == [f"{kname}/kernel:0"] + ([f"{kname}/bias:0"] if cfg["use_bias"] else [])
            ok &= np.array_equal(np.asarray(f[kname][kname]["kernel:0"]).transpose(3, 2, 0, 1),
                                 sd[tname + ".weight"].numpy())
            if cfg["use_bias"]:
                ok &= np.array_equal(f[kname][kname]["bias:0"][()], sd[tname + ".bias"].numpy())
        check(ok, "Conv2D kernels HWIO: transposed (3, 2, 0, 1) they equal the torch OIHW kernels")
        check(np.array_equal(f["dense_1/dense_1/kernel:0"][()].T, sd["classifier.3.weight"].numpy()),
              "dense_1 kernel (in, out) is the transposed classifier.3 weight")

    logits_t = model(x_te).detach().numpy()
    logits_k = keras_forward_numpy(kpath, x_te.numpy())
    diff = float(np.abs(logits_t[:32] - logits_k[:32]).max())
    check(diff < 1e-4, f"numpy NHWC forward of the Keras file matches torch logits on 32 test "
                       f"images (max |diff| {diff:.2e})")
    keras_right = int((logits_k.argmax(1) == y_te.numpy()).sum())
    keras_acc = keras_right / len(y_te)
    check(keras_right == int((logits_t.argmax(1) == y_te.numpy()).sum()),
          f"numpy forward of the Keras file: same test accuracy ({keras_acc:.4f})")

    # Layer spec: the CLI's file equals the library's answer and the known geometry.
    with open(spath) as f:
        spec = json.load(f)
    check(spec == layer_spec(build_model(), demo_model.INPUT_SHAPE),
          "layer spec file equals layer_spec(build_model(), (1, 8, 8))")
    want = {"features.0": ([1, 1], [8, 8]), "features.2": ([1, 1], [8, 8]),
            "features.5": ([2, 2], [8, 8]), "features.8": ([1, 1], [4, 4])}
    check(set(spec) == set(want) and all(
        spec[n]["stride"] == s and spec[n]["input_size"] == i and spec[n]["padding"] == [1] * 4
        and spec[n]["dilation"] == [1, 1] and spec[n]["groups"] == 1
        for n, (s, i) in want.items()), "layer spec: strides, paddings, input sizes")

    _check_chain_rebuild(check, model, x_te[:16])

    for p in (tpath, kpath, spath):
        size = os.path.getsize(p)
        check(size < MAX_BYTES, f"{os.path.relpath(p, ROOT)}: {size} bytes (< 1 MiB)")
    print("PASS" if check.failed == 0 else f"FAIL ({check.failed} checks)")
    return check.failed == 0, keras_acc


def check_only(out_dir):
    """verify() on the shipped files, the model rebuilt from demo.torch.h5; also the recorded
    accuracy. Exit status 0 on PASS, 1 on FAIL."""
    model = demo_model.model_from_state_dict(
        load_state_dict_h5(os.path.join(out_dir, "demo.torch.h5"))).eval()
    data = load_data()
    with open(os.path.join(out_dir, "demo.accuracy.json")) as f:
        info = json.load(f)
    acc = accuracy(model, data[1], data[3])
    ok_acc = abs(acc - info["test_accuracy"]) < 1e-6 and info["n_test"] == len(data[3])
    print(f"  {'PASS' if ok_acc else 'FAIL'}: test accuracy {acc:.6f} as recorded "
          f"({info['test_accuracy']})")
    ok, _ = verify(out_dir, model, data)
    return 0 if ok and ok_acc else 1


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    p.add_argument("--out-dir", default=os.path.join(ROOT, "tests", "data"))
    p.add_argument("--check", action="store_true",
                   help="no training: check the files in --out-dir against each other, with "
                        "the model read back from demo.torch.h5")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.check:
        return check_only(a.out_dir)    # one thread: the same float sums on every run of a machine
    t0 = time.time()
    model, data = train(a.epochs, a.seed, a.weight_decay)
    t_train = time.time() - t0
    x_te, y_te = data[1], data[3]
    acc = accuracy(model, x_te, y_te)
    params = sum(p.numel() for p in model.parameters())
    print(f"trained in {t_train:.1f} s: test accuracy {acc:.4f} on {len(y_te)} images, "
          f"{params} parameters")

    os.makedirs(a.out_dir, exist_ok=True)
    save_state_dict_h5(model.state_dict(), os.path.join(a.out_dir, "demo.torch.h5"))
    write_keras_h5(model, os.path.join(a.out_dir, "demo.keras.h5"))
    spath = os.path.join(a.out_dir, "demo.layer_spec.json")
    subprocess.run([sys.executable, os.path.join(HERE, "examples", "layer_spec.py"),
                    "-o", spath, "--force"], check=True)

    ok, keras_acc = verify(a.out_dir, model, data)
    info = {
        "test_accuracy": round(acc, 6),
        "n_test": len(y_te),
        "n_train": len(data[2]),
        "seed": a.seed,
        "epochs": a.epochs,
        "keras_file_test_accuracy": round(keras_acc, 6),
        "parameters": params,
        "data": "sklearn.datasets.load_digits(), pixels / 16, NCHW (N, 1, 8, 8)",
        "split": f"sklearn.model_selection.train_test_split(test_size={demo_model.TEST_SIZE}, "
                 f"random_state={demo_model.SPLIT_SEED})",
        "training": f"torch.manual_seed({a.seed}), AdamW lr {LR} weight decay {a.weight_decay}, "
                    f"cosine schedule to 0, "
                    f"batch {BATCH}, cross-entropy, CPU, 1 thread",
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "sklearn": __import__("sklearn").__version__, "h5py": h5py.__version__},
        "command": "/usr/bin/python3 tools/train_demo.py" + "".join(f" {s}" for s in argv),
    }
    with open(os.path.join(a.out_dir, "demo.accuracy.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    for name in ("demo.torch.h5", "demo.keras.h5", "demo.layer_spec.json", "demo.accuracy.json"):
        print(f"{name}: {os.path.getsize(os.path.join(a.out_dir, name))} bytes")
    print(f"total {time.time() - t0:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
