"""export(): a model's state dict plus the geometry of every Conv2d and Linear, as forward hooks
see it on an example input (docs/formats.md section 1, `tdecomp_geometry` version 1)."""
import json

import torch
from torch import nn

from . import _files
from ._version import PRODUCER

GEOMETRY_VERSION = 1
_BN_FOR = {"conv2d": nn.BatchNorm2d, "dense": nn.BatchNorm1d}
# Output rank of a layer whose following BatchNorm can be read as per-channel scale: NCHW / NC.
_BN_NDIM = {"conv2d": 4, "dense": 2}


def layer_kind(module):
    if isinstance(module, nn.Conv2d):
        return "conv2d"
    if isinstance(module, nn.Linear):
        return "dense"
    return None


def decomposable_modules(model):
    """(path, module, kind) for every Conv2d / Linear in named_modules() order."""
    for name, m in model.named_modules():
        k = layer_kind(m)
        if k and name:
            yield name, m, k


def explicit_padding(conv):
    """[top, bottom, left, right] of a Conv2d, resolving padding='same' as PyTorch does (the odd
    extra row / column goes to the bottom / right)."""
    own = getattr(conv, "tdecomp_padding", None)   # pieces built by load() pad explicitly
    if own is not None:
        return list(own)
    p = conv.padding
    if p == "valid":
        return [0, 0, 0, 0]
    if p == "same":
        out = []
        for d, k in zip(conv.dilation, conv.kernel_size):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return out
    return [p[0], p[0], p[1], p[1]]


def conv_geometry(conv):
    return {"stride": list(conv.stride), "padding": explicit_padding(conv), "dilation": list(conv.dilation),
            "groups": conv.groups, "padding_mode": conv.padding_mode}


class _Tracer:
    """Forward hooks recording each layer's input size and which BatchNorm consumes a layer's own
    output tensor unchanged (same object, same in-place version counter)."""

    def __init__(self, model):
        self.layers = list(decomposable_modules(model))
        self.input_size = {}
        self.outputs = {}      # id(tensor) -> (name, kind, tensor, version); the tensor is held
        self.batchnorm = {}    # layer name -> (bn name, eps)
        self.ran = set()
        self.handles = []
        for name, m, kind in self.layers:
            self.handles.append(m.register_forward_hook(self._layer_hook(name, kind)))
        for name, m in model.named_modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                self.handles.append(m.register_forward_pre_hook(self._bn_hook(name)))

    def _layer_hook(self, name, kind):
        def hook(module, inputs, output):
            self.ran.add(name)
            x = inputs[0] if inputs else None
            if kind == "conv2d" and isinstance(x, torch.Tensor) and x.dim() >= 3 and name not in self.input_size:
                self.input_size[name] = [int(x.shape[-2]), int(x.shape[-1])]
            if isinstance(output, torch.Tensor):
                self.outputs[id(output)] = (name, kind, output, output._version)
        return hook

    def _bn_hook(self, bn_name):
        def hook(module, inputs):
            x = inputs[0] if inputs else None
            rec = self.outputs.get(id(x)) if isinstance(x, torch.Tensor) else None
            if rec is None:
                return
            name, kind, t, version = rec
            if (t is x and x._version == version and isinstance(module, _BN_FOR[kind])
                    and x.dim() == _BN_NDIM[kind] and x.shape[1] == module.num_features
                    and name not in self.batchnorm):
                self.batchnorm[name] = (bn_name, float(module.eps))
        return hook

    def close(self):
        for h in self.handles:
            h.remove()
        self.outputs.clear()


def _sequential_batchnorm(model):
    """Fallback for layers the example input never reached: a BatchNorm that follows the layer in
    the same nn.Sequential."""
    found = {}
    for pname, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        kids = list(parent.named_children())
        for (a, ma), (b, mb) in zip(kids, kids[1:]):
            kind = layer_kind(ma)
            if not kind or not isinstance(mb, _BN_FOR[kind]):
                continue
            width = ma.out_channels if kind == "conv2d" else ma.out_features
            if mb.num_features == width:
                found[f"{pname}.{a}" if pname else a] = (f"{pname}.{b}" if pname else b, float(mb.eps))
    return found


def _run(model, example_input):
    """One forward pass in eval mode without gradients; every module's mode is restored."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(example_input, (tuple, list)):
                model(*example_input)
            elif isinstance(example_input, dict):
                model(**example_input)
            else:
                model(example_input)
    finally:
        for m, t in modes:
            m.training = t


def trace_geometry(model, example_input):
    """The geometry record (a dict) and the set of layer names that ran on the example input."""
    tracer = _Tracer(model)
    try:
        if example_input is not None:
            _run(model, example_input)
    finally:
        tracer.close()
    seq_bn = _sequential_batchnorm(model)
    layers = []
    for name, m, kind in tracer.layers:
        e = {"name": name, "kind": kind}
        if kind == "conv2d":
            e.update(conv_geometry(m))
            e["input_size"] = tracer.input_size.get(name)
        else:
            e["input_size"] = None
        bn = tracer.batchnorm.get(name) if name in tracer.ran else seq_bn.get(name)
        if bn:
            e["batchnorm"] = {"name": bn[0], "eps": bn[1]}
        layers.append(e)
    record = {"tdecomp_geometry": GEOMETRY_VERSION, "producer": PRODUCER, "layers": layers}
    return record, tracer.ran


def export(model, example_input, path):
    """Write model's state dict to path (torch-layout HDF5, or safetensors when path ends in
    .safetensors) with the `tdecomp_geometry` record of every Conv2d and Linear, traced with one
    forward pass on example_input (a tensor, a tuple of positional inputs, or a dict of keyword
    inputs; None records no input sizes). Returns the record (a dict)."""
    record, _ = trace_geometry(model, example_input)
    text = json.dumps(record)
    _files.write_weights(model.state_dict(), path, {"tdecomp_geometry": text})
    return record
