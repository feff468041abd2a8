#!/usr/bin/python3
"""safetensors against truths that are not our code: files written by an independent writer
(struct + json + numpy) are read by the C reader (through st_dump) to exactly the values numpy
decodes; files written by the C writer are parsed by an independent reader here and hold what
numpy (float16, float32) and an exact nearest-on-the-grid computation (bfloat16) round to;
every malformed file of tools/examples/make_bad_safetensors.py is refused naming its problem;
hostile indexes are refused; formats are sniffed by content.
usage: test_safetensors.py ST_DUMP REPO_ROOT"""
import importlib.util, json, os, pickle, struct, subprocess, sys, tempfile, shutil
import numpy as np

np.seterr(invalid="ignore")   # NaN bit patterns widened to float64 are expected here

DUMP, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
W = tempfile.mkdtemp(prefix="tdstpy-")
fails, passed = [], 0
rng = np.random.default_rng(7)


def check(c, what):
    global passed
    if c: passed += 1
    else: fails.append(what)


def run(*args):
    return subprocess.run([DUMP, *args], capture_output=True, text=True, timeout=120)


def clean(r):
    """No sanitizer report and no signal (meson's sanitizer options abort on a finding)."""
    return r.returncode >= 0 and "Sanitizer" not in r.stderr and "runtime error" not in r.stderr


def p(name): return os.path.join(W, name)


# ---------------------------------------------------------------- independent writer and decoding
NP = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "<i1", "U8": "<u1", "I16": "<i2", "U16": "<u2",
      "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8", "BOOL": "?", "C64": "<c8", "F8_E5M2": "<u1"}
FLOATS = ("F16", "BF16", "F32", "F64")


def write_st(path, tensors, metadata=None, header_order=None, align=True, tail=b""):
    """tensors: (name, dtype, shape, raw) with data in list order, packed without alignment."""
    entries, off = {}, 0
    for name, dt, shape, raw in tensors:
        entries[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    hdr = {} if metadata is None else {"__metadata__": metadata}
    for name in header_order or [t[0] for t in tensors]:
        hdr[name] = entries[name]
    h = json.dumps(hdr, ensure_ascii=False).encode()
    if align: h += b" " * (-(8 + len(h)) % 8)
    h += tail
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors))


def decode(dt, raw):
    if dt == "BF16":   # bf16 is the top half of a float32
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)
    return np.frombuffer(raw, NP[dt]).astype(np.float64)


def same_values(got_hex, want):
    got = np.array([float.fromhex(s) for s in got_hex], dtype=np.float64)
    if got.shape != want.shape: return False
    nan = np.isnan(want)
    return bool(np.array_equal(np.isnan(got), nan) and np.array_equal(got[~nan], want[~nan]) and
                np.array_equal(np.signbit(got[~nan]), np.signbit(want[~nan])))


def dump(path, cmd="read"):
    r = run(cmd, path)
    check(r.returncode == 0 and clean(r), f"{cmd} {os.path.basename(path)}: exit {r.returncode}: {r.stderr[-300:]}")
    return json.loads(r.stdout) if r.returncode == 0 else None


def check_tensors(label, got, tensors, order, found=None):
    """got: st_dump's tensors; tensors: what was written; order: expected header order; found:
    each name's index in its file (default: its position in got)."""
    check([t["name"] for t in got] == order, f"{label}: tensor order {[t['name'] for t in got][:5]}...")
    by = {t[0]: t for t in tensors}
    for i, t in enumerate(got):
        name, dt, shape, raw = by.get(t["name"], (None, None, None, None))
        if name is None: continue
        ok = t["dtype"] == dt and t["shape"] == list(shape) and t["raw"] == raw.hex() and t["found"] == (found[name] if found else i)
        if dt in FLOATS:
            ok = ok and same_values(t["values"], decode(dt, raw)) and t["td_ndim"] == len(shape)
        else:
            ok = ok and t["read_double"].endswith(f"{name}: dtype {dt} is not a float type")
        check(ok, f"{label}: tensor {name[:40]!r} ({dt}) differs: {json.dumps(t)[:300]}")


def raw_of(dt, shape, values=None):
    n = int(np.prod(shape))
    if values is not None: return np.asarray(values, NP[dt]).tobytes()
    if dt == "BOOL": return rng.integers(0, 2, n).astype("?").tobytes()
    if dt in ("F16", "BF16"): return rng.integers(0, 65536, n).astype("<u2").tobytes()
    if dt == "F32": return (rng.standard_normal(n) * 1e3).astype("<f4").tobytes()
    if dt == "F64": return (rng.standard_normal(n) * 1e-3).astype("<f8").tobytes()
    if dt == "C64": return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype("<c8").tobytes()
    info = np.iinfo(NP[dt]) if dt != "F8_E5M2" else np.iinfo(np.uint8)
    return rng.integers(info.min, info.max, n, endpoint=True, dtype=np.int64 if info.min < 0 else np.uint64).astype(NP[dt]).tobytes()


# ---------------------------------------------------------------- (a) independent writer -> C reader
def part_a():
    every16 = np.arange(65536, dtype="<u2").tobytes()
    specials32 = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -3.4028235e38, 1.17549435e-38]
    specials64 = [5e-324, -1.7976931348623157e308, np.inf, np.nan, -0.0, 1 / 3]
    long_name = "layer." * 2000 + "weight"
    tensors = [
        ("h3", "F16", (3,), raw_of("F16", (3,))),            # 6 bytes: everything after it is unaligned
        ("f32", "F32", (4, 5), raw_of("F32", (4, 5))),
        ("f16_every_pattern", "F16", (256, 256), every16),
        ("bf16_every_pattern", "BF16", (65536,), every16),
        ("f32_specials", "F32", (8,), raw_of("F32", (8,), specials32)),
        ("f64_specials", "F64", (2, 3), raw_of("F64", (2, 3), specials64)),
        ("scalar", "F64", (), raw_of("F64", ())),
        ("empty", "F16", (0,), b""),
        ("empty3", "BF16", (2, 0, 3), b""),
        ("caf\u00e9/\"quoted\" \\back", "F32", (1, 1, 1, 1), raw_of("F32", (1, 1, 1, 1))),
        (long_name, "BF16", (2,), raw_of("BF16", (2,))),
    ] + [(f"int.{dt}", dt, (3, 2), raw_of(dt, (3, 2))) for dt in
         ("BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "C64", "F8_E5M2")]
    meta = {"format": "pt", "tdecomp_geometry": json.dumps({"tdecomp_geometry": 1, "layers": []}), "\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"}
    order = [t[0] for t in tensors][::-1]                     # header order differs from data order
    write_st(p("a.safetensors"), tensors, meta, header_order=order, align=False)
    d = dump(p("a.safetensors"))
    if d:
        check(d["metadata"] == meta and list(d["metadata"]) == list(meta) and "GET_MISMATCH" not in d["metadata"],
              f"a: metadata {d['metadata']}")
        check(d["data_start"] % 8 != 0, "a: the unaligned case is not unaligned")
        check_tensors("a", d["tensors"], tensors, order)
    # headers padded with any JSON blank, and a file without tensors
    write_st(p("a_blanks.safetensors"), tensors[:2], None, tail=b"\n\t\r  ")
    d = dump(p("a_blanks.safetensors"))
    if d: check_tensors("a_blanks", d["tensors"], tensors[:2], [t[0] for t in tensors[:2]])
    write_st(p("a_none.safetensors"), [], {})
    d = dump(p("a_none.safetensors"))
    check(d is not None and d["tensors"] == [] and d["metadata"] == {}, "a_none: not an empty file")


def part_a_sharded():
    d = p("sharded")
    os.makedirs(d)
    shards = {"model-00001-of-00002.safetensors": [("x.weight", "BF16", (4, 3)), ("x.bias", "F32", (4,))],
              "model-00002-of-00002.safetensors": [("y.weight", "F16", (2, 4)), ("steps", "I64", ())]}
    written, wmap, total = [], {}, 0
    for shard, ts in shards.items():
        full = [(n, dt, s, raw_of(dt, s)) for n, dt, s in ts]
        write_st(os.path.join(d, shard), full, {"format": "pt"})
        written += full
        for n, *_ in ts: wmap[n] = shard
        total += sum(len(t[3]) for t in full)
    json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    r = dump(os.path.join(d, "model.safetensors.index.json"), "index")
    if r:
        check(r["shards"] == sorted(shards) and r["metadata"] == {"total_size": str(total)}, f"sharded: {r['shards']} {r['metadata']}")
        check(all(t["shard"] == wmap[t["name"]] for t in r["tensors"]), "sharded: a tensor in the wrong shard")
        got = {t["name"]: t for t in r["tensors"]}
        pos = {n: i for ts in shards.values() for i, (n, *_) in enumerate(ts)}
        check_tensors("sharded", [got[n] for n in sorted(wmap)], written, sorted(wmap), pos)
    return d


def part_index_hostile(d):
    """Shard names leaving the index's folder are refused even when the file they name is a
    valid shard; a symbolic link inside the folder (the Hugging Face cache) is followed."""
    outside = p("outside.safetensors")
    write_st(outside, [("z", "F32", (1,), raw_of("F32", (1,)))])
    os.makedirs(p("blobs"))
    shutil.copy(os.path.join(d, "model-00002-of-00002.safetensors"), p("blobs/abc123"))
    for name, shard, needle in (("up", "../outside.safetensors", "contains '/'"),
                                ("abs", outside, "contains '/'"),
                                ("dotdot", "..", "is not a file name"),
                                ("empty", "", "is empty")):
        ix = os.path.join(d, f"{name}.index.json")
        json.dump({"weight_map": {"z": shard}}, open(ix, "w"))
        r = run("index", ix)
        last = r.stderr.strip().splitlines()[-1:] or [""]
        check(r.returncode == 1 and clean(r) and needle in last[0] and "z" in last[0], f"index {name}: {r.returncode} {last}")
    snap = p("snapshot")
    os.makedirs(snap)
    os.symlink(p("blobs/abc123"), os.path.join(snap, "model.safetensors"))
    json.dump({"weight_map": {"y.weight": "model.safetensors", "steps": "model.safetensors"}},
              open(os.path.join(snap, "model.safetensors.index.json"), "w"))
    r = dump(os.path.join(snap, "model.safetensors.index.json"), "index")
    check(r is not None and sorted(t["name"] for t in r["tensors"]) == ["steps", "y.weight"], "index through a symlink")
    # the map and the shards disagree, each way
    for name, wm, needle in (("missing", {"y.weight": "model-00002-of-00002.safetensors"}, "steps: tensor not listed in the weight_map"),
                             ("extra", {"y.weight": "model-00002-of-00002.safetensors", "steps": "model-00002-of-00002.safetensors",
                                        "ghost": "model-00002-of-00002.safetensors"}, "ghost: mapped to shard model-00002-of-00002.safetensors, which has no such tensor")):
        ix = os.path.join(d, f"{name}.index.json")
        json.dump({"weight_map": wm}, open(ix, "w"))
        r = run("index", ix)
        check(r.returncode == 1 and clean(r) and needle in r.stderr, f"index {name}: {r.stderr.strip()[-200:]}")


# ---------------------------------------------------------------- (b) C writer -> independent reader
def grid_rne(x, ebits, mbits):
    """Nearest value of a binary format (ties to the even bit pattern), beyond the largest finite
    one the next grid point being inf: exact, from the format's own value list."""
    top = ((1 << ebits) - 1) << mbits
    pats = np.arange(0, top + 1, dtype=np.uint32)
    g = ((pats << 16).view(np.float32) if ebits == 8 else pats.astype(np.uint16).view(np.float16)).astype(np.float64)
    g[-1] = 2.0 ** (1 << (ebits - 1))
    a = np.abs(x)
    i = np.clip(np.searchsorted(g, a, side="left"), 1, len(g) - 1)
    lo, hi = g[i - 1], g[i]
    pick_hi = (hi - a < a - lo) | ((hi - a == a - lo) & (pats[i] % 2 == 0))
    return (pats[np.where(pick_hi, i, i - 1)] | (np.signbit(x).astype(np.uint32) << 15)).astype("<u2")


def read_st_independent(path):
    """Parses and checks a file the way the format says; returns (metadata, [(name, dtype, shape, raw)])."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    check((8 + n) % 8 == 0, f"{path}: data start {8 + n} not 8-aligned")
    text = b[8:8 + n].decode("utf-8")
    stripped = text.rstrip(" ")
    check(stripped.endswith("}") and text.startswith("{"), f"{path}: header padding is not spaces")
    pairs = json.loads(stripped, object_pairs_hook=lambda kv: kv)
    keys = [k for k, _ in pairs]
    check(len(set(keys)) == len(keys), f"{path}: duplicate keys")
    meta, out, spans = {}, [], []
    for k, v in pairs:
        if k == "__metadata__":
            check(keys[0] == k, f"{path}: __metadata__ not first")
            meta = dict(v)
            continue
        e = dict(v)
        check(list(e) == ["dtype", "shape", "data_offsets"], f"{path}: {k}: fields {list(e)}")
        s, t = e["data_offsets"]
        out.append((k, e["dtype"], tuple(e["shape"]), b[8 + n + s:8 + n + t]))
        spans.append((s, t))
        size = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I32": 4, "U8": 1, "BOOL": 1, "I64": 8}[e["dtype"]]
        check(s % size == 0 and t - s == size * int(np.prod(e["shape"])), f"{path}: {k}: offsets {s},{t}")
    pos = 0
    for s, t in sorted(spans):
        check(s == pos, f"{path}: gap or overlap at {s}")
        pos = t
    check(pos == len(b) - 8 - n, f"{path}: data section {len(b) - 8 - n} bytes, tensors end at {pos}")
    return meta, out


def rounding_inputs():
    x = [rng.standard_normal(4000) * 10.0 ** rng.integers(-12, 8, 4000),
         (np.arange(1, 300) + 0.5) * 2.0 ** -24,                  # f16 subnormal ties
         (np.arange(1024, 1400) + 0.5) * 2.0 ** -10,              # f16 ties in [1, 2)
         (np.arange(128, 400) + 0.5) * 2.0 ** -7,                 # bf16 ties in [1, 2)
         (np.arange(128, 200) + 0.5) * 2.0 ** -7 + 2.0 ** -30,    # bf16: above the tie (float would round twice)
         (np.arange(1, 100) + 0.5) * 2.0 ** -133,                 # bf16 subnormal ties
         [65504, 65519.999, 65520, 1e5, -1e300, 3.389e38, 3.3895e38, 3.4e38, 1e39, 1e-300, 5e-324,
          0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1 / 3, -2 / 3]]
    return np.concatenate([np.asarray(v, np.float64) for v in x])


def part_b():
    x = rounding_inputs()
    big = rng.standard_normal(300000) * 100                       # > 1 MiB as F32: several chunks
    ints = np.array([[1, -2], [2 ** 31 - 1, -2 ** 31]], "<i4")
    spec = {"metadata": {"format": "pt", "tdecomp_layers": "{\"tdecomp_layers\": 1}"},
            "tensors": [{"name": "h", "dtype": "F16", "shape": [len(x)], "values": [v.hex() for v in x]},
                        {"name": "ints", "dtype": "I32", "shape": [2, 2], "raw": ints.tobytes().hex()},
                        {"name": "b", "dtype": "BF16", "shape": [len(x)], "values": [v.hex() for v in x]},
                        {"name": "flags", "dtype": "BOOL", "shape": [3], "raw": "010001"},
                        {"name": "f", "dtype": "F32", "shape": [len(x)], "values": [v.hex() for v in x]},
                        {"name": "d", "dtype": "F64", "shape": [len(x)], "values": [v.hex() for v in x]},
                        {"name": "big", "dtype": "F32", "shape": [600, 500], "values": [v.hex() for v in big]},
                        {"name": "scalar", "dtype": "F32", "shape": [], "values": [(0.1).hex()]},
                        {"name": "none", "dtype": "BF16", "shape": [0, 5], "values": []},
                        {"name": "odd", "dtype": "U8", "shape": [3], "raw": "0a0b0c"}],
            "order": [6, 0, 9, 3, 2, 8, 4, 1, 7, 5]}
    json.dump(spec, open(p("spec.json"), "w"))
    r = run("write", p("spec.json"), p("b.safetensors"))
    check(r.returncode == 0 and clean(r), f"b: writer failed: {r.stderr[-300:]}")
    if r.returncode: return
    meta, ts = read_st_independent(p("b.safetensors"))
    check(meta == spec["metadata"], f"b: metadata {meta}")
    check([t[0] for t in ts] == [t["name"] for t in spec["tensors"]], "b: header order is not declaration order")
    got = {t[0]: t for t in ts}
    nan = np.isnan(x)
    with np.errstate(over="ignore"):
        want = {"f": x.astype("<f4"), "d": x.astype("<f8"), "h": x.astype("<f2")}
        for name, w in want.items():
            g = np.frombuffer(got[name][3], w.dtype)
            check(np.array_equal(g.view(f"<u{w.itemsize}")[~nan], w.view(f"<u{w.itemsize}")[~nan]) and np.isnan(g[nan]).all(),
                  f"b: {name} differs from numpy's rounding at {np.flatnonzero(g.view(f'<u{w.itemsize}') != w.view(f'<u{w.itemsize}'))[:5]}")
    gb = np.frombuffer(got["b"][3], "<u2")
    wb = grid_rne(x, 8, 7)
    check(np.array_equal(gb[~nan], wb[~nan]) and (((gb[nan] & 0x7FC0) == 0x7FC0).all()),
          f"b: bf16 differs from round-to-nearest-even at {np.flatnonzero(gb != wb)[:5]}")
    check(np.array_equal(grid_rne(x, 5, 10)[~nan], want["h"].view("<u2")[~nan]), "b: the f16 grid oracle disagrees with numpy")
    check(((np.frombuffer(got["h"][3], "<u2")[nan] & 0x7E00) == 0x7E00).all(), "b: f16 NaN not quiet")
    check(np.array_equal(np.frombuffer(got["big"][3], "<f4"), big.astype("<f4")), "b: the multi-chunk tensor differs")
    check(got["ints"][3] == ints.tobytes() and got["flags"][3] == b"\1\0\1" and got["odd"][3] == b"\n\x0b\x0c", "b: raw copies differ")
    check(got["scalar"][2] == () and np.frombuffer(got["scalar"][3], "<f4")[0] == np.float32(0.1), "b: scalar")
    check(got["none"][2] == (0, 5) and got["none"][3] == b"", "b: empty tensor")
    # and the C reader reads back exactly what the independent reader decoded
    d = dump(p("b.safetensors"))
    if d: check_tensors("b (C reader)", d["tensors"], ts, [t[0] for t in ts])


# ---------------------------------------------------------------- (c) malformed files
def part_c():
    spec = importlib.util.spec_from_file_location("make_bad_safetensors", os.path.join(ROOT, "tools/examples/make_bad_safetensors.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cases = gen.cases()
    bad = os.path.join(ROOT, "tests/data/bad")
    committed = sorted(f for f in os.listdir(bad) if f.startswith("st_") and f.endswith(".safetensors"))
    check(committed == sorted(c[0] for c in cases), "c: tests/data/bad/st_* differ from the generator's list")
    check(len(cases) >= 50, f"c: only {len(cases)} cases")
    for name, data, expect in cases:
        path = os.path.join(bad, name)
        check(os.path.exists(path) and open(path, "rb").read() == data, f"c: {name} is not what the generator writes")
        for cmd in ("read", "sniff"):
            r = run(cmd, path)
            if cmd == "sniff":   # sniffing never fails on content, and never crashes
                check(r.returncode == 0 and clean(r), f"c: sniff {name}: {r.returncode} {r.stderr[-200:]}")
                continue
            last = (r.stderr.strip().splitlines() or [""])[-1]
            check(r.returncode == 1 and clean(r) and last.startswith(path + ": ") and expect in last,
                  f"c: {name}: exit {r.returncode}, message {last!r}, expected {expect!r}")
    # the fuzz seeds are valid
    seeds = os.path.join(ROOT, "tests/fuzz/st_seeds")
    for f in sorted(os.listdir(seeds)):
        r = run("index" if f.endswith(".json") else "read", os.path.join(seeds, f))
        check(r.returncode == 0 and clean(r), f"c: seed {f} refused: {r.stderr[-200:]}")


# ---------------------------------------------------------------- (d) sniffing by content
def part_d(sharded):
    import h5py
    kinds = {}
    with h5py.File(p("w.h5"), "w") as f: f["x"] = np.zeros(3)
    kinds["w.h5"] = "hdf5"
    with h5py.File(p("userblock.safetensors"), "w", userblock_size=512) as f: f["x"] = np.zeros(3)
    kinds["userblock.safetensors"] = "hdf5"
    shutil.copy(p("a.safetensors"), p("a_named.h5"))
    kinds["a_named.h5"] = "safetensors"
    shutil.copy(os.path.join(sharded, "model.safetensors.index.json"), p("index.bin"))
    kinds["index.bin"] = "safetensors-index"
    json.dump({"metadata": {}, "weights": {}}, open(p("other.json"), "w"))
    kinds["other.json"] = "unknown"
    np.savez(p("arrays.npz"), a=np.zeros(2))
    kinds["arrays.npz"] = "unknown"
    open(p("p2.pt"), "wb").write(pickle.dumps({"w": [0.0, 1.0]}, protocol=2))
    kinds["p2.pt"] = "pytorch-pickle"
    open(p("p4.pt"), "wb").write(pickle.dumps({"w": [0.0, 1.0]}, protocol=4))
    kinds["p4.pt"] = "pytorch-pickle"
    open(p("text.safetensors"), "w").write("not a weight file\n")
    kinds["text.safetensors"] = "unknown"
    open(p("empty.bin"), "wb").close()
    kinds["empty.bin"] = "unknown"
    try:
        import torch
        torch.save({"w": torch.zeros(2)}, p("torch_zip.pt"))
        kinds["torch_zip.pt"] = "pytorch-zip"
        torch.save({"w": torch.zeros(2)}, p("torch_legacy.pt"), _use_new_zipfile_serialization=False)
        kinds["torch_legacy.pt"] = "pytorch-pickle"
        sd = {f"layer{i}.weight": torch.zeros(1) for i in range(40)}   # data.pkl is not the only entry
        torch.save(sd, p("torch_many.bin"))
        kinds["torch_many.bin"] = "pytorch-zip"
    except ImportError:
        print("SKIP: torch not importable; torch.save sniffing not tested")
    for f, want in kinds.items():
        r = run("sniff", p(f))
        check(r.returncode == 0 and clean(r) and r.stdout.strip() == want, f"d: {f}: {r.stdout.strip()!r}, expected {want!r} {r.stderr[-200:]}")
    r = run("sniff", p("absent"))
    check(r.returncode == 1 and "no such file" in r.stderr, f"d: absent file: {r.stderr}")


part_a()
sharded = part_a_sharded()
part_index_hostile(sharded)
part_b()
part_c()
part_d(sharded)
print(f"{passed} checks passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
shutil.rmtree(W, ignore_errors=True)
sys.exit(1 if fails or passed < 100 else 0)
