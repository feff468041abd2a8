"""Weight files as tdecomp-tool reads and writes them: torch-layout HDF5 (one root dataset per
state-dict key) and safetensors (written and read here with numpy, struct and json), plus the
string records kept beside the tensors (docs/formats.md)."""
import collections
import json
import os
import struct
import tempfile

import h5py
import numpy as np
import torch

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# safetensors: an 8-byte little-endian header length, the JSON header, the data; the header is
# padded with spaces to this alignment (as the reference writer does).
ST_LEN_BYTES = 8
ST_ALIGN = 8
# A header larger than this is refused when reading (the reference reader's bound).
ST_MAX_HEADER = 100 * 1024 * 1024

_ST_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
_ST_TORCH = {v: k for k, v in _ST_DTYPES.items()}
_H5_OK = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_)


def is_safetensors_path(path):
    return os.fspath(path).endswith(".safetensors")


def _tensor_items(state_dict):
    """(key, contiguous CPU tensor) pairs; non-tensors (e.g. _extra_state) are refused."""
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state-dict entry {key!r} is not a tensor ({type(value).__name__})")
        yield key, value.detach().cpu().contiguous()


def _replace_atomically(path, write):
    """write(tmp) then rename onto path, so the file appears complete or not at all."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tdecomp.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_h5(state_dict, path, attrs):
    """Torch-layout HDF5: root datasets named by key; attrs (name -> str) as UTF-8 vlen strings."""
    arrays = collections.OrderedDict()
    for key, t in _tensor_items(state_dict):
        if not key or "/" in key or key in (".", ".."):
            raise ValueError(f"state-dict key {key!r} cannot be an HDF5 dataset name")
        if t.dtype == torch.bfloat16:
            raise TypeError(f"{key}: bfloat16 has no HDF5 type; export to a .safetensors path instead")
        a = t.numpy()
        if a.dtype.type not in _H5_OK:
            raise TypeError(f"{key}: unsupported dtype {a.dtype}")
        arrays[key] = a

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            for key, a in arrays.items():
                f.create_dataset(key, data=a)
            for name, text in attrs.items():
                f.attrs.create(name, text, dtype=h5py.string_dtype("utf-8"))
    _replace_atomically(path, write)


def _tensor_bytes(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(state_dict, path, metadata):
    """safetensors: header {key: {dtype, shape, data_offsets}, "__metadata__": {str: str}}."""
    header, blobs, offset = collections.OrderedDict(), [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for key, t in _tensor_items(state_dict):
        if t.dtype not in _ST_DTYPES:
            raise TypeError(f"{key}: dtype {t.dtype} has no safetensors name")
        b = _tensor_bytes(t)
        header[key] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % ST_ALIGN)

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for b in blobs:
                f.write(b)
    _replace_atomically(path, write)


def _read_st_header(f, path):
    raw = f.read(ST_LEN_BYTES)
    if len(raw) != ST_LEN_BYTES:
        raise ValueError(f"{path}: truncated safetensors file")
    (n,) = struct.unpack("<Q", raw)
    if n > ST_MAX_HEADER:
        raise ValueError(f"{path}: safetensors header of {n} bytes is too large")
    text = f.read(n)
    if len(text) != n:
        raise ValueError(f"{path}: truncated safetensors header")
    header = json.loads(text.decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    return header, ST_LEN_BYTES + n


def read_safetensors(path):
    """(OrderedDict key -> tensor in file order of offsets, metadata dict)."""
    with open(path, "rb") as f:
        header, base = _read_st_header(f, path)
        meta = header.pop("__metadata__", None) or {}
        out = collections.OrderedDict()
        for key, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            dt = _ST_TORCH.get(e["dtype"])
            if dt is None:
                raise ValueError(f"{path}: {key}: dtype {e['dtype']} not supported")
            b, end = e["data_offsets"]
            f.seek(base + b)
            buf = bytearray(f.read(end - b))
            if len(buf) != end - b:
                raise ValueError(f"{path}: {key}: data beyond the end of the file")
            t = torch.frombuffer(buf, dtype=dt) if buf else torch.empty(0, dtype=dt)
            out[key] = t.reshape(e["shape"])
    return out, meta


def _attr_text(v):
    """An HDF5 string attribute as h5py returns it (str, bytes, or a 1-element array of those)."""
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise ValueError("string attribute with more than one element")
        v = v.reshape(-1)[0]
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if not isinstance(v, str):
        raise ValueError("attribute is not a string")
    return v


def read_h5(path):
    """(OrderedDict key -> tensor; nested groups give '.'-joined keys, root string attributes)."""
    out, attrs = collections.OrderedDict(), {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name.replace("/", ".")] = torch.from_numpy(np.array(obj[()]))
        f.visititems(visit)
        for k in f.attrs:
            try:
                attrs[k] = _attr_text(f.attrs[k])
            except (ValueError, TypeError):
                pass
    return out, attrs


def is_hdf5(path):
    with open(path, "rb") as f:
        return f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE


def read_weights(path):
    """(state dict, string records) of a torch-layout HDF5 or a safetensors file, by content."""
    return read_h5(path) if is_hdf5(path) else read_safetensors(path)


def write_weights(state_dict, path, records):
    """By the path's extension: .safetensors, otherwise torch-layout HDF5."""
    if is_safetensors_path(path):
        write_safetensors(state_dict, path, records)
    else:
        write_h5(state_dict, path, records)
