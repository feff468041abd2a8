#!/usr/bin/python3
"""Save a PyTorch state dict as a torch-style HDF5 file, the `torch` layout tdecomp-tool reads:
one dataset per state-dict key at the root, named by the key (`features.0.weight`), with the
tensor's shape and dtype (float16/32/64, integers; 0-d tensors such as BatchNorm's int64
`num_batches_tracked` become scalar datasets). No compression, no chunking.

Library:  from save_h5 import save_state_dict_h5, load_state_dict_h5
          save_state_dict_h5(model.state_dict(), "model.h5")
CLI:      /usr/bin/python3 tools/examples/save_h5.py MODEL.pt OUT.h5 [--force]
          (MODEL.pt: a state dict, a checkpoint dict holding one under "state_dict" or
          "model_state_dict", or a pickled nn.Module)
"""
import argparse
import collections
import os
import pickle
import sys
import tempfile

import h5py
import numpy as np
import torch

_DTYPES = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
           np.uint8, np.bool_)


def _to_numpy(key, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{key}: not a tensor ({type(value).__name__})")
    if value.dtype == torch.bfloat16:
        raise TypeError(f"{key}: bfloat16 has no HDF5/numpy type; convert it with .float() first")
    a = value.detach().cpu().contiguous().numpy()
    if a.dtype.type not in _DTYPES:
        raise TypeError(f"{key}: unsupported dtype {a.dtype}")
    return a


def save_state_dict_h5(state_dict, path, overwrite=True):
    """Write every entry of `state_dict` (key -> tensor) as a root dataset of `path`.
    The file is written next to `path` under a temporary name and renamed into place, so it
    appears complete or not at all. Keys containing '/' are refused (HDF5 would make groups)."""
    arrays = collections.OrderedDict()
    for key, value in state_dict.items():
        if not key or "/" in key or key in (".", ".."):
            raise ValueError(f"state-dict key {key!r} cannot be an HDF5 dataset name")
        arrays[key] = _to_numpy(key, value)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path}: exists")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".save_h5.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, a in arrays.items():
                f.create_dataset(key, data=a)   # 0-d arrays give a scalar dataspace
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp's 0600 is not what a plain open() gives
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_state_dict_h5(path):
    """Read a torch-style file back as an OrderedDict key -> tensor. Datasets inside groups
    (a nested layout, or keys split on '.') get their full path with '/' replaced by '.'."""
    out = collections.OrderedDict()
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name.replace("/", ".")] = torch.from_numpy(np.array(obj[()]))
        f.visititems(visit)
    return out


def _state_dict_of(obj):
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for k in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(k), dict):
                return obj[k]
        return obj
    raise TypeError(f"not a state dict, checkpoint dict or nn.Module: {type(obj).__name__}")


def main(argv):
    p = argparse.ArgumentParser(description="Save a PyTorch state dict (.pt) as torch-style HDF5.")
    p.add_argument("input", help=".pt/.pth file from torch.save")
    p.add_argument("output", help="HDF5 file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="allow arbitrary pickled objects (needed for a saved nn.Module); "
                        "only for files you trust")
    a = p.parse_args(argv)
    sys.path.insert(0, os.getcwd())     # a pickled module's classes, as `python3 -c` finds them
    try:
        sd = _state_dict_of(torch.load(a.input, map_location="cpu",
                                       weights_only=not a.unsafe_pickle))
    except Exception as e:  # torch.load raises many types (pickle, zip, OS errors)
        hint = ("" if a.unsafe_pickle or not isinstance(e, pickle.UnpicklingError)
                else " (a pickled nn.Module needs --unsafe-pickle)")
        print(f"save_h5: {a.input}: {e}{hint}", file=sys.stderr)
        return 1
    tensors = collections.OrderedDict()
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            tensors[k] = v
        else:
            print(f"save_h5: warning: {k}: skipped, not a tensor", file=sys.stderr)
    try:
        save_state_dict_h5(tensors, a.output, overwrite=a.force)
    except (FileExistsError, TypeError, ValueError) as e:
        print(f"save_h5: {e}", file=sys.stderr)
        return 1
    print(f"{a.output}: {len(tensors)} datasets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
