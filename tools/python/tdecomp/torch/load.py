"""load(): rebuild a model from a `tdecomp-tool decompose` output, reading what to build from
the file's `tdecomp_layers` record (docs/formats.md section 2), never from key names."""
import json

import torch
from torch import nn
from torch.nn import functional as F

from . import _files
from .export import layer_kind

LAYERS_VERSION = 1
# Layouts whose tensors are named by state-dict keys (safetensors files use torch naming).
TORCH_LAYOUTS = ("torch", "safetensors")
_F_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


class PaddedConv2d(nn.Conv2d):
    """A Conv2d with explicit, possibly unequal padding [top, bottom, left, right] applied before
    the convolution (nn.Conv2d pads both sides alike). Its tensors are a Conv2d's."""

    def __init__(self, in_channels, out_channels, kernel_size, padding4, padding_mode="zeros", **kw):
        super().__init__(in_channels, out_channels, kernel_size, padding=0, padding_mode=padding_mode, **kw)
        self.tdecomp_padding = tuple(int(p) for p in padding4)   # export() reads it back

    def forward(self, x):
        t, b, l, r = self.tdecomp_padding
        x = F.pad(x, (l, r, t, b), mode=_F_PAD_MODE[self.padding_mode])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self):
        return super().extra_repr() + f", explicit_padding={self.tdecomp_padding}"


def _pair(v, what):
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(i, int) and i >= 1 for i in v)):
        raise ValueError(f"{what}: malformed")
    return tuple(v)


def _conv_piece(p, kw, where):
    shape = p.get("shape")
    if not (isinstance(shape, list) and len(shape) == 4):
        raise ValueError(f"{where}: a conv2d piece needs a 4-D shape")
    groups = p.get("groups", 1)
    mode = p.get("padding_mode", "zeros")
    if mode not in _F_PAD_MODE:
        raise ValueError(f"{where}: unknown padding_mode {mode!r}")
    pad = p.get("padding", [0, 0, 0, 0])
    if not (isinstance(pad, list) and len(pad) == 4 and all(isinstance(i, int) and i >= 0 for i in pad)):
        raise ValueError(f"{where}: malformed padding")
    args = dict(stride=_pair(p.get("stride", [1, 1]), f"{where} stride"),
                dilation=_pair(p.get("dilation", [1, 1]), f"{where} dilation"),
                groups=groups, bias=bool(p.get("bias")), **kw)
    cout, cin_g, kh, kw_ = shape
    if pad[0] == pad[1] and pad[2] == pad[3]:
        return nn.Conv2d(cin_g * groups, cout, (kh, kw_), padding=(pad[0], pad[2]), padding_mode=mode, **args)
    return PaddedConv2d(cin_g * groups, cout, (kh, kw_), pad, padding_mode=mode, **args)


def _dense_piece(p, kw, where):
    shape = p.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2):
        raise ValueError(f"{where}: a dense piece needs a 2-D shape")
    return nn.Linear(shape[1], shape[0], bias=bool(p.get("bias")), **kw)


def _piece_io(m):
    if isinstance(m, nn.Conv2d):
        return m.in_channels, m.out_channels
    return m.in_features, m.out_features


def build_chain(entry, original):
    """The nn.Sequential of a rewritten layer's pieces, on the original's device and dtype."""
    name = entry["name"]
    kw = {"device": original.weight.device, "dtype": original.weight.dtype}
    pieces = entry.get("pieces")
    if not isinstance(pieces, list) or not pieces:
        raise ValueError(f"tdecomp_layers: {name}: a rewritten layer without pieces")
    mods = []
    for i, p in enumerate(pieces):
        where = f"tdecomp_layers: {name} piece {i}"
        if p.get("layer") != f"{name}.{i}":
            raise ValueError(f"{where}: named {p.get('layer')!r}, expected {name}.{i}")
        kind = p.get("kind")
        if kind == "conv2d":
            mods.append(_conv_piece(p, kw, where))
        elif kind == "dense":
            mods.append(_dense_piece(p, kw, where))
        else:
            raise ValueError(f"{where}: unknown kind {kind!r}")
    (cin, _), (_, cout) = _piece_io(mods[0]), _piece_io(mods[-1])
    if (cin, cout) != _piece_io(original):
        raise ValueError(f"tdecomp_layers: {name}: pieces map {cin} -> {cout} channels, the module "
                         f"{_piece_io(original)[0]} -> {_piece_io(original)[1]}")
    return nn.Sequential(*mods)


def _replace(model, path, new):
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, new)


def read_record(records, path):
    text = records.get("tdecomp_layers")
    if text is None:
        raise ValueError(f"{path}: no tdecomp_layers record (not an output of tdecomp-tool decompose 0.2 or later)")
    rec = json.loads(text)
    if not isinstance(rec, dict) or rec.get("tdecomp_layers") != LAYERS_VERSION or not isinstance(rec.get("layers"), list):
        raise ValueError(f"{path}: tdecomp_layers: not a version-{LAYERS_VERSION} record")
    if rec.get("layout", "torch") not in TORCH_LAYOUTS:
        raise ValueError(f"{path}: tdecomp_layers: layout {rec.get('layout')!r}, not a torch state dict")
    return rec


def load(model, path):
    """Replace every layer that path's decompose record rewrote by an nn.Sequential of its pieces
    (in place) and load the file's weights with strict=True. Returns model."""
    state, records = _files.read_weights(path)
    rec = read_record(records, path)
    for entry in rec["layers"]:
        name, method = entry.get("name"), entry.get("method")
        if not isinstance(name, str) or method is None:
            raise ValueError(f"{path}: tdecomp_layers: an entry without name or method")
        if method == "none":
            continue
        try:
            original = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{path}: layer {name} is not a module of this model") from None
        kind = layer_kind(original)
        if kind is None or kind != entry.get("kind", kind):
            raise ValueError(f"{path}: layer {name} is a {type(original).__name__}, the record says {entry.get('kind')}")
        _replace(model, name, build_chain(entry, original))
    model.load_state_dict(state, strict=True)
    return model
