#!/usr/bin/python3
"""Writes the small plain tensors in tests/data/tensors/ used by the cp/tucker CLI tests.
Deterministic (numpy seed 0); run from the repository root with Debian's /usr/bin/python3."""
import numpy as np, h5py, os
rng = np.random.default_rng(0)
d = "tests/data/tensors"
os.makedirs(d, exist_ok=True)

def cp(shape, r):
    fs = [rng.standard_normal((n, r)) for n in shape]
    return np.einsum(",".join(f"{c}r" for c in "ijkl"[:len(shape)]) + "->" + "ijkl"[:len(shape)], *fs)

with h5py.File(f"{d}/cp3.h5", "w") as f:           # exact CP rank 3, float64, nested group
    f["tensor"] = cp((12, 10, 8), 3)
    f.create_group("nested")["cp3_f32"] = cp((9, 8, 7), 3).astype(np.float32)
with h5py.File(f"{d}/tucker.h5", "w") as f:        # exact multilinear rank (3, 2, 4), float64
    core = rng.standard_normal((3, 2, 4))
    us = [rng.standard_normal((n, r)) for n, r in zip((10, 9, 8), (3, 2, 4))]
    f["tensor"] = np.einsum("abc,ia,jb,kc->ijk", core, *us)
    f["kernel"] = rng.standard_normal((16, 8, 3, 3)).astype(np.float16)  # a conv-like float16 kernel
with h5py.File(f"{d}/odd.h5", "w") as f:           # datasets the tools must refuse
    f["ints"] = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    f["strings"] = np.array([b"a", b"bc"])
    f["empty"] = np.zeros((0, 3))
    x = rng.standard_normal((4, 3, 2)); x[1, 1, 1] = np.nan
    f["nan"] = x
    y = rng.standard_normal((4, 3, 2)); y[0, 0, 0] = np.inf
    f["inf"] = y
    f["scalar"] = 3.0
    f["vector"] = rng.standard_normal(7)
    f.create_group("group")
    f["compound"] = np.zeros(3, dtype=[("a", "f8"), ("b", "i4")])
