#!/usr/bin/python3
"""Writes tests/data/bad/st_*.safetensors: malformed safetensors files, each refused by the
reader with a one-line message naming the problem (tests/io/test_safetensors.py checks every one
against EXPECT below, and that the files here are what this script writes), and
tests/fuzz/st_seeds/: small valid files seeding the safetensors fuzzer.
Built with struct and json only (no safetensors library). Deterministic; run from the repository
root with Debian's /usr/bin/python3."""
import json, os, struct

BAD = "tests/data/bad"
SEEDS = "tests/fuzz/st_seeds"


def st(header, data=b"", n=None, pad=True):
    """A file from a header (dict or raw bytes), the data section and an optional forced N."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h) if n is None else n) + h + data


def ent(dtype="F32", shape=(2, 2), offsets=(0, 16)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


W = ent()
D16 = bytes(range(16))
RAW_W = b'"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}'


def cases():
    """(file name, bytes, substring the refusal message must contain)."""
    c = [
        ("st_short_file", b"\x10\x00\x00\x00\x00", "too short"),
        ("st_len_over_limit", st({"w": W}, D16, n=100_000_001), "exceeds the format's limit"),
        ("st_len_past_end", st({"w": W}, D16, n=4096), "runs past the end of the file"),
        ("st_len_wraps", st({"w": W}, D16, n=2**64 - 4), "exceeds the format's limit"),
        ("st_len_zero", st(b"", D16, n=0), "header is empty"),
        ("st_not_utf8", st(b'{"w\xff":' + RAW_W[4:] + b"}", D16), "not valid UTF-8"),
        ("st_overlong_utf8", st(b'{"\xc0\xaf":' + RAW_W[4:] + b"}", D16), "not valid UTF-8"),
        ("st_surrogate_utf8", st(b'{"\xed\xa0\x80":' + RAW_W[4:] + b"}", D16), "not valid UTF-8"),
        ("st_not_json", st(b'{"w": {dtype: F32}}', D16), "is not valid JSON"),
        ("st_not_object", st(b"[1, 2, 3]", D16), "does not start with '{'"),
        ("st_leading_blank", st(b" {" + RAW_W + b"}", D16), "does not start with '{'"),
        ("st_trailing_text", st(b"{" + RAW_W + b"} x", D16), "is not valid JSON"),
        ("st_nul_padding", st(b"{" + RAW_W + b"}\0\0\0\0\0\0\0", D16, pad=False), "is not valid JSON"),
        ("st_duplicate_key", st(b"{" + RAW_W + b"," + RAW_W + b"}", D16), "duplicate key"),
        ("st_duplicate_escaped", st(b"{" + RAW_W + b"," + RAW_W.replace(b'"w"', b'"\\u0077"') + b"}", D16), "duplicate key"),
        ("st_duplicate_field", st(b'{"w":{"dtype":"F32","dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}', D16), "duplicate key"),
        ("st_duplicate_metadata", st(b'{"__metadata__":{"a":"b"},"__metadata__":{"a":"c"},' + RAW_W + b"}", D16), "duplicate key"),
        ("st_nul_in_name", st(b'{"w\\u0000x":' + RAW_W[4:] + b"}", D16), "is not valid JSON"),
        ("st_lone_surrogate", st(b'{"w\\ud800":' + RAW_W[4:] + b"}", D16), "is not valid JSON"),
        ("st_entry_not_object", st({"w": [0, 16]}, D16), "entry is a JSON array, not an object"),
        ("st_missing_dtype", st({"w": {"shape": [2, 2], "data_offsets": [0, 16]}}, D16), 'has no "dtype"'),
        ("st_missing_shape", st({"w": {"dtype": "F32", "data_offsets": [0, 16]}}, D16), 'has no "shape"'),
        ("st_missing_offsets", st({"w": {"dtype": "F32", "shape": [2, 2]}}, D16), 'has no "data_offsets"'),
        ("st_extra_field", st({"w": dict(W, extra=1)}, D16), 'unknown field "extra"'),
        ("st_dtype_not_string", st({"w": dict(W, dtype=5)}, D16), '"dtype" is a JSON integer'),
        ("st_shape_not_array", st({"w": dict(W, shape=4)}, D16), '"shape" is a JSON integer, not an array'),
        ("st_shape_real", st({"w": dict(W, shape=[2.0, 2])}, D16), "shape entry 0 is a JSON real number"),
        ("st_shape_string", st({"w": dict(W, shape=[2, "2"])}, D16), "shape entry 1 is a JSON string"),
        ("st_shape_bool", st({"w": dict(W, shape=[True, 4])}, D16), "shape entry 0 is a JSON boolean"),
        ("st_negative_shape", st({"w": ent(shape=(-2, -2))}, D16), "shape entry 0 is negative"),
        ("st_offsets_three", st({"w": ent(offsets=(0, 8, 16))}, D16), '"data_offsets" is not an array of two integers'),
        ("st_offsets_real", st({"w": ent(offsets=(0, 16.0))}, D16), '"data_offsets" is not an array of two integers'),
        ("st_offsets_object", st({"w": dict(W, data_offsets={"0": 16})}, D16), '"data_offsets" is not an array of two integers'),
        ("st_negative_offsets", st({"w": ent(offsets=(-16, 0))}, D16), "are negative"),
        ("st_reversed_offsets", st({"w": ent(offsets=(16, 0))}, D16), "end before they begin"),
        ("st_offsets_too_big", st(b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,18446744073709551615]}}', D16), "is not valid JSON"),
        ("st_overflow_count", st({"w": ent(shape=(2**32, 2**32, 2), offsets=(0, 16))}, D16), "element count of shape (4294967296, 4294967296, 2) overflows"),
        ("st_overflow_bytes", st({"w": ent("F64", (2**62, 1), (0, 16))}, D16), "byte size of shape (4611686018427387904, 1) x F64 overflows"),
        ("st_size_mismatch", st({"w": ent("F32", (3, 4), (0, 100))}, bytes(100)), "data_offsets [0, 100] do not match shape (3, 4) x F32 = 48 bytes"),
        ("st_gap", st({"a": ent(offsets=(0, 16)), "b": ent(offsets=(24, 40))}, bytes(40)), "leave a gap of 8 bytes after a"),
        ("st_overlap", st({"a": ent(offsets=(0, 16)), "b": ent(offsets=(8, 24))}, bytes(24)), "overlap those of a [0, 16]"),
        ("st_zero_size_inside", st({"a": ent(offsets=(0, 16)), "z": ent(shape=(0,), offsets=(8, 8))}, D16), "overlap those of a"),
        ("st_not_from_zero", st({"w": ent(offsets=(8, 24))}, bytes(24)), "leave 8 unused bytes at the start"),
        ("st_end_short", st({"w": W}, D16 + bytes(4)), "(4 trailing bytes)"),
        ("st_end_beyond", st({"w": W}, D16[:12]), "run past the end of the data section (12 bytes)"),
        ("st_polyglot", st({"w": W}, D16 + b"PK\x05\x06" + bytes(18)), "(22 trailing bytes)"),
        ("st_empty_with_data", st({}, bytes(8)), "(8 trailing bytes)"),
        ("st_metadata_not_object", st({"__metadata__": ["a", "b"], "w": W}, D16), "__metadata__: is a JSON array, not an object of strings"),
        ("st_metadata_null", st({"__metadata__": None, "w": W}, D16), "__metadata__: is a JSON null"),
        ("st_metadata_int_value", st({"__metadata__": {"format": "pt", "n": 1}, "w": W}, D16), 'value of "n" is a JSON integer, not a string'),
        ("st_metadata_nested", st({"__metadata__": {"k": {"a": "b"}}, "w": W}, D16), 'value of "k" is a JSON object'),
        ("st_unknown_dtype", st({"w": ent("F12")}, D16), 'unknown dtype "F12"'),
        ("st_lowercase_dtype", st({"w": ent("f32")}, D16), 'unknown dtype "f32"'),
        ("st_empty_dtype", st({"w": ent("")}, D16), 'unknown dtype ""'),
        ("st_f4_odd_count", st({"w": ent("F4", (3,), (0, 2))}, bytes(2)), "3 elements of F4 (4 bits each) are not a whole number of bytes"),
        ("st_f6_odd_count", st({"w": ent("F6_E2M3", (3,), (0, 3))}, bytes(3)), "3 elements of F6_E2M3 (6 bits each) are not a whole number of bytes"),
        ("st_deep_nesting", st(b'{"w":' + b"[" * 3000 + b"]" * 3000 + b"}", D16), "is not valid JSON"),
    ]
    names = [x[0] for x in c]
    assert len(set(names)) == len(names)
    return [(n + ".safetensors", b, e) for n, b, e in c]


def seeds():
    """Small valid files: every dtype class, 0-d and empty tensors, metadata, an index."""
    f32 = struct.pack("<4f", 1.0, -2.5, 3.25, 0.0)
    s = {
        "st_seed_basic.safetensors": st({"__metadata__": {"format": "pt"}, "w": ent(), "b": ent("F16", (2,), (16, 20))},
                                        f32 + struct.pack("<2e", 1.5, -0.25)),
        "st_seed_kinds.safetensors": st({"s": ent("F64", (), (0, 8)), "e": ent("BF16", (0, 3), (8, 8)),
                                         "i": ent("I64", (1,), (8, 16)), "q": ent("BOOL", (2,), (16, 18)),
                                         "h": ent("F16", (1,), (18, 20)), "f": ent("F4", (2,), (20, 21))},
                                        struct.pack("<dq", 0.5, -7) + b"\x01\x00" + struct.pack("<e", 2.0) + b"\x21"),
        "s.safetensors": st({"a": ent("F32", (1,), (0, 4)), "b": ent("F32", (1,), (4, 8))}, struct.pack("<2f", 1.0, 2.0)),
    }
    s["st_seed.index.json"] = json.dumps({"metadata": {"total_size": 8}, "weight_map": {"a": "s.safetensors", "b": "s.safetensors"}}).encode()
    return s


def main():
    os.makedirs(BAD, exist_ok=True)
    os.makedirs(SEEDS, exist_ok=True)
    for name, data, _ in cases():
        open(os.path.join(BAD, name), "wb").write(data)
    for name, data in seeds().items():
        open(os.path.join(SEEDS, name), "wb").write(data)


if __name__ == "__main__":
    main()
