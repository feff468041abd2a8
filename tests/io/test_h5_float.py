#!/usr/bin/python3
"""HDF5 float16/bfloat16 conversions against truths that are not our code (libhdf5 1.10's own
double -> half conversion rounds wrongly, so it is no truth either):
- rounding (td_tensor_round) and writing (td_outfile_write, read back here as raw bits) of
  doubles to IEEE half equal numpy's float64 -> float16 conversion, and both half and bfloat16
  equal the nearest value on the format's grid computed exactly (fractions, ties to the even
  bit pattern, overflow past max + half an ulp to inf); float32-exact inputs also equal
  round-to-nearest-even on the float32 bits for bfloat16;
- reading every 2-byte pattern of half and bfloat16, little- and big-endian, gives numpy's exact
  widening (bfloat16: the pattern as the top half of a float32);
- files record the layout (sign 15, exponent/mantissa fields, bias);
- other float layouts are refused naming file, dataset and layout.
usage: test_h5_float.py H5_FLOAT_DRIVE"""
import bisect, os, shutil, subprocess, sys, tempfile
from fractions import Fraction
import numpy as np, h5py

np.seterr(invalid="ignore", over="ignore")
DRIVE = os.path.abspath(sys.argv[1])
W = tempfile.mkdtemp(prefix="tdh5f-")
fails, passed = [], 0
rng = np.random.default_rng(5)


def check(c, what):
    global passed
    if c: passed += 1
    else: fails.append(what)


def p(name): return os.path.join(W, name)


def run(*args):
    return subprocess.run([DRIVE, *args], capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ independent references
def widen(bits, fmt):
    """Exact float64 values of 2-byte patterns (numpy's own widening)."""
    bits = np.asarray(bits, np.uint16)
    if fmt == "float16": return bits.view(np.float16).astype(np.float64)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


class Grid:
    """The finite non-negative values of a 2-byte format, exactly, sorted with their patterns."""
    def __init__(self, fmt):
        pos = np.arange(0x8000, dtype=np.uint16)
        vals = widen(pos, fmt)
        keep = np.isfinite(vals)
        self.bits = [int(b) for b in pos[keep]]
        self.vals = [Fraction(float(v)) for v in vals[keep]]   # increasing with the pattern
        top, below = self.vals[-1], self.vals[-2]
        self.overflow = top + (top - below) / 2                # ties at the top round to inf
        self.inf = 0x7C00 if fmt == "float16" else 0x7F80

    def nearest(self, x):
        """Pattern of x rounded to nearest, ties to the even pattern; NaN -> None."""
        if np.isnan(x): return None
        sign = 0x8000 if np.signbit(x) else 0
        a = Fraction(abs(float(x))) if np.isfinite(x) else None
        if a is None or a >= self.overflow: return sign | self.inf
        i = bisect.bisect_left(self.vals, a)
        if i < len(self.vals) and self.vals[i] == a: return sign | self.bits[i]
        if i == len(self.vals): return sign | self.bits[-1]    # above max, below the overflow point
        lo, hi = i - 1, i                                      # vals[lo] < a < vals[hi]
        dl, dh = a - self.vals[lo], self.vals[hi] - a
        pick = lo if dl < dh or (dl == dh and self.bits[lo] % 2 == 0) else hi
        return sign | self.bits[pick]


def bf16_from_f32_bits(x32):
    """Round-to-nearest-even on float32 bits (valid for float32-exact inputs, NaN excluded)."""
    u = np.asarray(x32, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


GRIDS = {"float16": Grid("float16"), "bfloat16": Grid("bfloat16")}


# ------------------------------------------------------------------ inputs
def ulp_cases(fmt):
    """Exact ties, values an ulp/2^-20 either side of them, subnormals, the top of the range."""
    g, out = GRIDS[fmt], []
    for i in list(range(0, 40)) + list(rng.integers(0, len(g.vals) - 2, 300)):
        a, b = g.vals[i], g.vals[i + 1]
        mid = (a + b) / 2
        for v in (mid, mid * (1 + Fraction(1, 2**20)), mid * (1 - Fraction(1, 2**20)), a, b):
            out.append(float(v))
    top = float(g.vals[-1])
    out += [top, float(g.overflow), np.nextafter(float(g.overflow), 0), np.nextafter(float(g.overflow), np.inf), 2 * top]
    return out


def inputs(fmt):
    xs = ulp_cases(fmt)
    xs += list(rng.standard_normal(400) * 10.0 ** rng.integers(-9, 6, 400))
    xs += list(np.ldexp(rng.random(200), rng.integers(-30, -10, 200)))     # half subnormal range
    xs += [0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, 65536.0, 1e300, -1e-300,
           2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-133, 2.0**-134, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,
           1.0 + 2.0**-8 + 2.0**-30, 1.0 + 3 * 2.0**-8 - 2.0**-40]          # the last: no double rounding
    xs = np.array(xs, np.float64)
    return np.concatenate([xs, -xs])


def expected_bits(fmt, xs):
    return [GRIDS[fmt].nearest(x) for x in xs]


def nan_ok(g, fmt):
    """A NaN pattern: all-ones exponent, a non-zero mantissa."""
    return (g & 0x7FFF) > GRIDS[fmt].inf


def compare(name, fmt, xs, got_bits):
    want = expected_bits(fmt, xs)
    bad = [(float(x), hex(int(g)), None if w is None else hex(w)) for x, g, w in zip(xs, got_bits, want)
           if (w is None and not nan_ok(int(g), fmt)) or (w is not None and int(g) != w)]
    check(not bad, f"{name}: {len(bad)} of {len(xs)} differ from the exact nearest, e.g. {bad[:4]}")
    return want


def raw(path, xs): np.asarray(xs, np.float64).tofile(path)


# ------------------------------------------------------------------ rounding and writing
for fmt in ("float16", "bfloat16"):
    xs = inputs(fmt)
    raw(p("in.bin"), xs)
    r = run("round", fmt, p("in.bin"), p("out.bin"))
    check(r.returncode == 0, f"round {fmt}: {r.stderr}")
    rounded = np.fromfile(p("out.bin"), np.float64) if r.returncode == 0 else np.zeros_like(xs)
    # a rounded double is exactly a value of the format: its pattern is its nearest
    rb = [GRIDS[fmt].nearest(v) for v in rounded]
    check(all(b is not None or np.isnan(x) for b, x in zip(rb, xs)), f"round {fmt}: NaN where none was")
    rb = [0x7FFF if b is None else b for b in rb]
    want = compare(f"round {fmt}", fmt, xs, rb)
    check(all(v == widen([b], fmt)[0] for v, b in zip(rounded, want) if b is not None),
          f"round {fmt}: rounded values are not exactly the format's values")
    check(all(np.signbit(v) == np.signbit(x) for v, x in zip(rounded, xs) if not np.isnan(x)),
          f"round {fmt}: sign lost (-0.0?)")
    if fmt == "float16":
        truth = xs.astype(np.float16).astype(np.float64)   # numpy: one rounding from double
        ok = np.array_equal(rounded, truth, equal_nan=True) and np.array_equal(np.signbit(rounded), np.signbit(truth))
        check(ok, f"round float16 differs from numpy at {xs[~((rounded == truth) | (np.isnan(rounded) & np.isnan(truth)))][:5]}")

    r = run("write", fmt, p("in.bin"), p(f"w_{fmt}.h5"))
    check(r.returncode == 0, f"write {fmt}: {r.stderr}")
    if r.returncode:
        continue
    with h5py.File(p(f"w_{fmt}.h5"), "r") as f:
        d = f["x"]
        t = d.id.get_type()
        esize, msize = (5, 10) if fmt == "float16" else (8, 7)
        check(t.get_size() == 2 and t.get_fields() == (15, msize, esize, 0, msize) and
              t.get_ebias() == (1 << (esize - 1)) - 1, f"write {fmt}: file type {t.get_fields()} bias {t.get_ebias()}")
        bits = np.zeros(d.shape, "<u2")
        d.id.read(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=t)   # the stored bits, no conversion
    compare(f"write {fmt}", fmt, xs, bits)
    if fmt == "float16":
        check(np.array_equal(bits.view(np.float16), xs.astype(np.float16), equal_nan=True),
              "write float16: stored bits differ from numpy's float16")

# bfloat16 of float32-exact inputs: round-to-nearest-even on the float32 bits
x32 = np.concatenate([rng.standard_normal(2000).astype(np.float32) * np.float32(2.0) ** rng.integers(-120, 120, 2000),
                      (np.arange(4096, dtype=np.uint32) * np.uint32(0x8000) + np.uint32(0x3F000000)).view(np.float32),
                      np.array([3.3895314e38, 3.4028235e38, 1e-45, 1.1754942e-38], np.float32)])
x32 = np.concatenate([x32, -x32])
raw(p("in32.bin"), x32.astype(np.float64))
r = run("round", "bfloat16", p("in32.bin"), p("out32.bin"))
check(r.returncode == 0, f"round bfloat16 (float32 inputs): {r.stderr}")
if r.returncode == 0:
    got = np.fromfile(p("out32.bin"), np.float64)
    want = widen(bf16_from_f32_bits(x32), "bfloat16")
    check(np.array_equal(got, want), f"round bfloat16 differs from RNE on float32 bits at {x32[got != want][:5]}")

# ------------------------------------------------------------------ reading every pattern
every = np.arange(1 << 16, dtype=np.uint16)
for fmt in ("float16", "bfloat16"):
    for order in ("<", ">"):
        base = h5py.h5t.IEEE_F32LE if order == "<" else h5py.h5t.IEEE_F32BE
        esize = 5 if fmt == "float16" else 8
        msize = 15 - esize
        t = base.copy()
        t.set_fields(15, msize, esize, 0, msize)
        t.set_size(2)
        t.set_precision(16)
        t.set_ebias((1 << (esize - 1)) - 1)
        name = p(f"r_{fmt}_{'le' if order == '<' else 'be'}.h5")
        with h5py.File(name, "w") as f:
            d = h5py.h5d.create(f.id, b"w", t, h5py.h5s.create_simple((1 << 16,)))
            d.write(h5py.h5s.ALL, h5py.h5s.ALL, every.astype(order + "u2"), mtype=t)
        r = run("read", name, "/w", p("r.bin"))
        check(r.returncode == 0 and r.stdout.strip() == fmt, f"read {name}: {r.returncode} {r.stdout} {r.stderr}")
        if r.returncode:
            continue
        got, want = np.fromfile(p("r.bin"), np.float64), widen(every, fmt)
        check(np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want)),
              f"read {fmt} {order}: {np.count_nonzero(~((got == want) | (np.isnan(got) & np.isnan(want))))} patterns differ")

# ------------------------------------------------------------------ other layouts refused by name
def custom(size, spos, epos, esize, mpos, msize, ebias, base=h5py.h5t.IEEE_F64LE):
    t = base.copy()
    t.set_fields(spos, epos, esize, mpos, msize)
    t.set_size(size)
    t.set_precision(8 * size)
    t.set_ebias(ebias)
    return t

CUSTOM = {"e6m9": custom(2, 15, 9, 6, 0, 9, 31), "half_bias16": custom(2, 15, 10, 5, 0, 10, 16),
          "f32_bias100": custom(4, 31, 23, 8, 0, 23, 100), "e4m11": custom(2, 15, 11, 4, 0, 11, 7)}
for label, t in CUSTOM.items():
    name = p(f"c_{label}.h5")
    with h5py.File(name, "w") as f:
        d = h5py.h5d.create(f.id, b"w", t, h5py.h5s.create_simple((4,)))
        d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.zeros(4, f"<u{t.get_size()}"), mtype=t)
    r = run("read", name, "/w", p("r.bin"))
    line = r.stderr.strip().splitlines()[-1:] or [""]
    check(r.returncode == 1 and name in line[0] and "/w" in line[0] and "custom" in line[0] and "TD_EDTYPE" in line[0],
          f"custom float {label}: {r.returncode} {line}")
with h5py.File(p("ld.h5"), "w") as f:   # x87 long double: explicit leading bit, 15-bit exponent
    f["w"] = np.ones(3, np.longdouble)
r = run("read", p("ld.h5"), "/w", p("r.bin"))
check(r.returncode == 1 and "custom" in r.stderr, f"long double: {r.returncode} {r.stderr}")
with h5py.File(p("plain.h5"), "w") as f:   # the ordinary layouts are read as what they are
    f["h"], f["s"], f["d"], f["sb"] = np.float16([1.5, -2]), np.float32([1e-40, 3]), np.float64([1e-310, 2]), np.float32([1, 2]).astype(">f4")
for ds, dt, vals in (("h", "float16", [1.5, -2]), ("s", "float32", [float(np.float32(1e-40)), 3]), ("d", "float64", [1e-310, 2]),
                     ("sb", "float32", [1, 2])):
    r = run("read", p("plain.h5"), ds, p("r.bin"))
    check(r.returncode == 0 and r.stdout.strip() == dt and list(np.fromfile(p("r.bin"), np.float64)) == vals,
          f"plain {ds}: {r.returncode} {r.stdout} {r.stderr}")

print(f"{passed} passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
shutil.rmtree(W, ignore_errors=True)
sys.exit(1 if fails else 0)
