#!/usr/bin/python3
"""Writes tests/data/bad/: small malformed or hostile inputs, each refused by tdecomp-tool with
exit 1 and one line naming the problem (tests/cli/test_bad_corpus.py runs every one).
Deterministic; run from the repository root with Debian's /usr/bin/python3."""
import json, os
import numpy as np, h5py

D = "tests/data/bad"
os.makedirs(D, exist_ok=True)
rng = np.random.default_rng(11)
def p(name): return os.path.join(D, name)

open(p("not_hdf5.h5"), "w").write("this is a text file, not HDF5\n")
open(p("empty.h5"), "w").close()
with h5py.File(p("good_torch_source.h5"), "w") as f:   # source of the truncations below
    f["features.0.weight"] = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    f["features.0.bias"] = rng.standard_normal(8).astype(np.float32)
raw = open(p("good_torch_source.h5"), "rb").read()
os.remove(p("good_torch_source.h5"))
for name, cut in (("truncated_header.h5", 200), ("truncated_middle.h5", len(raw) // 2), ("truncated_end.h5", len(raw) - 64)):
    open(p(name), "wb").write(raw[:cut])
def h5(name, fn):
    with h5py.File(p(name), "w") as f: fn(f)
h5("int_kernel.h5", lambda f: f.__setitem__("conv.weight", np.ones((4, 4, 3, 3), np.int32)))
h5("nan_weights.h5", lambda f: f.__setitem__("conv.weight", np.full((4, 4, 3, 3), np.nan, np.float32)))
h5("inf_bias.h5", lambda f: (f.__setitem__("conv.weight", np.ones((4, 4, 3, 3), np.float32)),
                            f.__setitem__("conv.bias", np.array([1, np.inf, 0, 0], np.float32))))
h5("soft_link.h5", lambda f: (f.__setitem__("a.weight", np.ones((4, 4), np.float32)), f.__setitem__("b.weight", h5py.SoftLink("/a.weight"))))
h5("external_link.h5", lambda f: f.__setitem__("a.weight", h5py.ExternalLink("elsewhere.h5", "/w")))
h5("absurd_size.h5", lambda f: f.create_dataset("x.weight", shape=(1 << 15, 1 << 15, 3, 3), dtype="f4", chunks=(1, 1, 3, 3)))
h5("overflow_dims.h5", lambda f: f.create_dataset("x.weight", shape=(1 << 40, 1 << 40), dtype="f8", chunks=(1, 1)))
def keras(f, names, groups):
    f.attrs["layer_names"] = names
    for g, wn, data in groups:
        grp = f.create_group(g)
        grp.attrs["weight_names"] = wn
        for k, v in data.items(): grp[k] = v
h5("keras_missing_kernel.h5", lambda f: keras(f, [b"conv2d"], [("conv2d", [b"conv2d/kernel:0"], {})]))
h5("keras_missing_group.h5", lambda f: keras(f, [b"conv2d", b"ghost"], [("conv2d", [b"conv2d/kernel:0"], {"conv2d/kernel:0": np.ones((3, 3, 2, 2), np.float32)})]))
h5("keras_duplicate_names.h5", lambda f: keras(f, [b"conv2d", b"conv2d"], [("conv2d", [b"conv2d/kernel:0"], {"conv2d/kernel:0": np.ones((3, 3, 2, 2), np.float32)})]))
h5("keras_int_weight_names.h5", lambda f: keras(f, [b"conv2d"], [("conv2d", np.arange(2, dtype=np.int32), {})]))
h5("keras_string_kernel.h5", lambda f: keras(f, [b"conv2d"], [("conv2d", [b"conv2d/kernel:0"], {"conv2d/kernel:0": np.array([b"abc"])})]))
json.dump({"features.0": {"stride": [1]}}, open(p("spec_bad_stride.json"), "w"))
json.dump({"nope": {"stride": [1, 1]}}, open(p("spec_unknown_layer.json"), "w"))
open(p("spec_not_json.json"), "w").write("{features.0: stride")
json.dump({"features.0": {"padding": "sometimes"}}, open(p("spec_bad_padding.json"), "w"))
json.dump(["features.0"], open(p("spec_not_object.json"), "w"))
with h5py.File(p("spec_target.h5"), "w") as f:   # a valid file the bad specs are applied to
    f["features.0.weight"] = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
