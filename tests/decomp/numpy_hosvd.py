#!/usr/bin/python3
"""Cross-check: HOSVD and ST-HOSVD errors from numpy's SVD of the unfoldings (TensorLy's
unfolding: reshape(moveaxis(X, n, 0), (I_n, -1))) equal tdecomp's to 1e-10.
usage: numpy_hosvd.py PATH/TO/hosvd_dump"""
import json, subprocess, sys
import numpy as np

def tensors():
    i, j, k = np.meshgrid(np.arange(7), np.arange(6), np.arange(5), indexing="ij")
    yield np.sin(1.0 + i + 2.0 * j + 3.0 * k * k), [3, 2, 4]
    i, j, k = np.meshgrid(np.arange(9), np.arange(8), np.arange(7), indexing="ij")
    yield 1.0 / (1.0 + i + j + k), [2, 2, 2]
    i, j, k, l = np.meshgrid(np.arange(6), np.arange(5), np.arange(4), np.arange(3), indexing="ij")
    yield np.cos(0.3 * i * j + 0.7 * k) + 0.1 * l, [2, 3, 2, 2]

def unfold(x, n): return np.reshape(np.moveaxis(x, n, 0), (x.shape[n], -1))

def project(x, n, u): return np.moveaxis(np.tensordot(u.T, x, axes=(1, n)), 0, n)

def hosvd_err(x, ranks, sequential, order):
    us, cur = [None] * len(ranks), x
    for n in order:
        u = np.linalg.svd(unfold(cur if sequential else x, n), full_matrices=False)[0][:, :ranks[n]]
        us[n] = u
        if sequential: cur = project(cur, n, u)
    core = x
    for n, u in enumerate(us): core = project(core, n, u)
    full = core
    for n, u in enumerate(us): full = np.moveaxis(np.tensordot(u, full, axes=(1, n)), 0, n)
    return np.linalg.norm(x - full) / np.linalg.norm(x)

out = subprocess.run([sys.argv[1]], capture_output=True, text=True, check=True).stdout
rows = [json.loads(l) for l in out.splitlines()]
assert len(rows) == 6, rows
bad = 0
for w, (x, ranks) in enumerate(tensors()):
    for row in rows:
        if row["tensor"] != w: continue
        want = hosvd_err(x, ranks, row["method"] == "sthosvd", row["order"])
        ok = abs(want - row["rel_error"]) <= 1e-10
        bad += not ok
        print(f"tensor {w} {row['method']:8s} order {row['order']} tdecomp {row['rel_error']:.15g} numpy {want:.15g} {'ok' if ok else 'MISMATCH'}")
sys.exit(1 if bad else 0)
