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

# Data kept outside the file: external raw storage (a "secret" beside it), virtual datasets
# (source missing; mapping onto itself, which makes libhdf5 recurse until the stack overflows)
# and an external link to a real weight. All must be refused before any data is read.
open(p("external_storage.secret"), "wb").write(b"root:$6$saltsalt$5ecretHashThatMustNeverBeCopied0123456789abcdef\n")
h5("external_storage.h5", lambda f: (f.__setitem__("fc.weight", np.ones((4, 4), np.float32)),
                                     f.create_dataset("fc.bias", shape=(4,), dtype="f4", external=[("external_storage.secret", 0, 16)])))
def vds(f, src_file, src_name):
    lay = h5py.VirtualLayout(shape=(4, 4), dtype="f4")
    lay[:] = h5py.VirtualSource(src_file, src_name, shape=(4, 4))
    f.create_virtual_dataset("fc.weight", lay, fillvalue=0)
h5("vds_missing_source.h5", lambda f: vds(f, "no_such_source.h5", "/w"))
h5("vds_self.h5", lambda f: vds(f, ".", "/fc.weight"))
h5("external_link_weight.h5", lambda f: f.__setitem__("features.0.weight", h5py.ExternalLink("spec_target.h5", "/features.0.weight")))
# An 8000x7800 float32 chunked dataset never written: a 1.4 KB file declaring 250 MB
h5("unwritten_chunked.h5", lambda f: f.create_dataset("fc.weight", shape=(8000, 7800), dtype="f4", chunks=(100, 100)))

# 2-byte floats by layout: HDF5 types built field by field (h5py has no bfloat16)
def float2(esize, ebias):
    t = h5py.h5t.IEEE_F32LE.copy()
    t.set_fields(15, 15 - esize, esize, 0, 15 - esize)
    t.set_size(2)
    t.set_precision(16)
    t.set_ebias(ebias)
    return t
def put_bits(f, name, t, bits):
    d = h5py.h5d.create(f.id, name.encode(), t, h5py.h5s.create_simple(bits.shape))
    d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(bits, "<u2"), mtype=t)
def bf16_bits(x):   # round to nearest even on the float32 bits
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
# valid: bfloat16 weights (values up to ~1e4, which IEEE half would not even hold as patterns)
def bf16_file(f):
    put_bits(f, "features.0.weight", float2(8, 127), bf16_bits(rng.standard_normal((8, 4, 3, 3)) * 3000))
    put_bits(f, "features.0.bias", float2(8, 127), bf16_bits(rng.standard_normal(8)))
    put_bits(f, "classifier.weight", float2(8, 127), bf16_bits(rng.standard_normal((16, 12)) * 3000))
    put_bits(f, "classifier.bias", float2(8, 127), bf16_bits(rng.standard_normal(16)))
h5("valid_bf16.h5", bf16_file)
# a custom 2-byte float: 6-bit exponent, 9-bit mantissa (neither half nor bfloat16)
h5("custom_float16.h5", lambda f: put_bits(f, "features.0.weight", float2(6, 31), np.full((8, 4, 3, 3), 0x3E00, np.uint16)))

# A Keras file whose layer_names attribute declares 4,464,623 entries of 100 bytes (446 MB) in a
# 4 KB file: its dataspace's dims and maxdims (37, unique in the file as two adjacent 8-byte
# words) are overwritten. libhdf5 cannot decode the attribute; it must be an error naming the
# file, never a fallback to another layout or an allocation of the declared size.
import struct
def huge_layer_names(path):
    with h5py.File(path, "w") as f:
        f.attrs.create("layer_names", np.array([b"conv2d_%d" % i for i in range(37)], dtype="S100"))
    b = bytearray(open(path, "rb").read())
    pat = struct.pack("<QQ", 37, 37)
    at = [i for i in range(len(b) - 15) if b[i:i + 16] == pat]
    assert len(at) == 1, at
    b[at[0]:at[0] + 16] = struct.pack("<QQ", 4464623, 4464623)
    open(path, "wb").write(b)
huge_layer_names(p("keras_layer_names_huge.h5"))
