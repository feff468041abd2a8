#!/usr/bin/python3
"""Interop: data-aware compression of the shipped demo model through tdecomp.torch, without
fine-tuning. Statistics from the training split; accuracy on the test split (450 images).
  - full rank with statistics reproduces the logits (< 1e-5 relative);
  - at the ranks of rank_ratio=0.5 the data-aware model keeps >= 95 % accuracy;
  - at target_params=0.3 the data-aware model beats the data-free one;
  - every layer's reported output error is what the layer's output shows on the calibration data
    (measured here with the original and the compressed modules' own outputs).
Prints the accuracy table docs/accuracy.md quotes.
usage: test_data_aware.py TOOL REPO_ROOT"""
import os
import sys

import torch

TOOL, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
sys.path.insert(0, os.path.join(ROOT, "tools", "examples"))
import tdecomp.torch as tt  # noqa: E402
from demo_model import accuracy, load_data, model_from_state_dict  # noqa: E402
from save_h5 import load_state_dict_h5  # noqa: E402

torch.set_num_threads(2)
fails = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    if not ok:
        fails.append(what)


model = model_from_state_dict(load_state_dict_h5(os.path.join(ROOT, "tests", "data", "demo.torch.h5"))).eval()
x_tr, x_te, y_tr, y_te = load_data()
batches = [x_tr[i:i + 128] for i in range(0, len(x_tr), 128)]
example = x_tr[:1]
base = accuracy(model, x_te, y_te)


def run(**rule):
    m, rep = tt.compress(model, example, tool=TOOL, **rule)
    return m.eval(), rep


# full rank with statistics: the same function
m, rep = run(rank_ratio=1, keep_larger=True, calibration=batches, include_head=True)
with torch.no_grad():
    a, b = model(x_te), m(x_te)
rel = float((a - b).abs().max() / a.abs().max())
check(rel < 1e-5, f"full rank with statistics reproduces the logits: {rel:.2e}")


BN_AFTER = {"features.2": "features.3", "features.5": "features.6"}   # demo_model.DemoNet
rows = []
aware, rep = run(rank_ratio=0.5, calibration=batches)
rep_one = rep
free, rep_free = run(rank_ratio=0.5)
acc_aware, acc_free = accuracy(aware, x_te, y_te), accuracy(free, x_te, y_te)
rows.append(("rank_ratio=0.5", rep_free["totals"], acc_free, rep["totals"], acc_aware))
check(acc_aware >= 0.95, f"rank_ratio 0.5 with statistics: accuracy {acc_aware:.4f} >= 0.95 (data-free {acc_free:.4f})")
names = [x["name"] for x in rep["layers"] if not x["skipped"]]
# the reported output errors are the layers' own: the original model's input to each layer, through
# the original and the rewritten module
orig_in = {}
hooks = [model.get_submodule(n).register_forward_hook(lambda mod, i, o, n=n: orig_in.setdefault(n, []).append(i[0].detach()))
         for n in names]
with torch.no_grad():
    for x in batches:
        model(x)
for h in hooks:
    h.remove()
for x in rep["layers"]:
    if x["skipped"]:
        continue
    n = x["name"]
    inp = torch.cat(orig_in[n])
    with torch.no_grad():
        y0 = model.get_submodule(n)(inp).double()
        y1 = aware.get_submodule(n)(inp).double()
        bias = model.get_submodule(n).bias
    if bias is not None:   # the error is of the output without its (unchanged) bias
        shape = (1, -1, 1, 1) if y0.ndim == 4 else (1, -1)
        y0, y1 = y0 - bias.double().view(shape), y1 - bias.double().view(shape)
    bn = BN_AFTER.get(n)   # a following BatchNorm's per-channel scale weights the error
    if bn is not None:
        bnm = model.get_submodule(bn)
        sc = (bnm.weight / torch.sqrt(bnm.running_var + bnm.eps)).double().view(1, -1, 1, 1)
        y0, y1 = y0 * sc, y1 * sc
    measured = float((y0 - y1).norm() / y0.norm())
    # calibrate() writes patch_cov for these convs, which makes the reported error exact
    check(abs(measured - x["output_rel_error"]) <= 1e-4 * max(measured, 1e-3),
          f"{n}: reported output error {x['output_rel_error']:.5f}, measured {measured:.5f}")

# sequential calibration: each layer rewritten from statistics of the model compressed so far, at
# the ranks planned once; the same size, and (measured) no clear gain on this model
seq, rep_seq = run(rank_ratio=0.5, calibration=batches, sequential=True)
acc_seq = accuracy(seq, x_te, y_te)
one = {x["name"]: (x["method"], x["ranks"]) for x in rep_one["layers"]}
check({x["name"]: (x["method"], x["ranks"]) for x in rep_seq["layers"]} == one, "sequential keeps the planned methods and ranks")
check(tt.kernel_parameters(seq) == rep_one["totals"]["params_after"], "sequential: same kernel parameters as one-shot")
check(acc_seq >= 0.95, f"sequential at rank_ratio 0.5: accuracy {acc_seq:.4f}")
rows.append(("rank_ratio=0.5 seq.", rep_free["totals"], acc_free, rep_seq["totals"], acc_seq))

for tp in (0.3, 0.2):
    aware, rep = run(target_params=tp, calibration=batches)
    free, rep_free = run(target_params=tp)
    acc_aware, acc_free = accuracy(aware, x_te, y_te), accuracy(free, x_te, y_te)
    rows.append((f"target_params={tp}", rep_free["totals"], acc_free, rep["totals"], acc_aware))
    check(acc_aware > acc_free, f"target_params {tp}: data-aware {acc_aware:.4f} > data-free {acc_free:.4f}")

print(f"\noriginal test accuracy {base:.4f}; without fine-tuning:")
print(f"{'rule':<20} {'kernel params':>14} {'data-free':>10} {'kernel params':>14} {'data-aware':>11}")
for rule, tf, af, ta, aa in rows:
    print(f"{rule:<20} {tf['params_after']:>14} {af:>10.4f} {ta['params_after']:>14} {aa:>11.4f}")
print(f"\n{len(fails)} failed" if fails else "\nall passed")
sys.exit(1 if fails else 0)
