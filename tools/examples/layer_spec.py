#!/usr/bin/python3
"""Write a tdecomp-tool layer spec (`--layer-spec SPEC.json`) for a PyTorch model: one entry per
nn.Conv2d, keyed by its module path (the torch layer name, `features.0`), with
`stride` [sh, sw], `padding` [top, bottom, left, right], `dilation` [dh, dw], `groups` and
`input_size` [H, W] (the spatial size of the conv's input, before padding), recorded by forward
hooks during one forward pass of a zero batch of the given input shape.

PyTorch pads symmetrically; padding="same" is resolved as PyTorch does (the odd unit goes to
bottom/right), "valid" to zeros. Linear layers need no spec (their FLOPs do not depend on an
input size); with include_linear they get an entry {"input_size": null}.

Library:  from layer_spec import layer_spec, write_layer_spec
          spec = layer_spec(model, (3, 224, 224))     # input shape without the batch dim
CLI:      /usr/bin/python3 tools/examples/layer_spec.py [--model MODULE:FACTORY]
              [--input-shape C,H,W] [--include-linear] [-o OUT.json] [--force]
          (defaults: the demo model, demo_model:build_model, input 1,8,8; stdout)
"""
import argparse
import importlib
import json
import os
import sys
import tempfile

import torch
from torch import nn


def _padding(conv):
    kh, kw = conv.kernel_size
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return [0, 0, 0, 0]
        out = []
        for k, d in ((kh, conv.dilation[0]), (kw, conv.dilation[1])):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return out
    ph, pw = conv.padding
    return [ph, ph, pw, pw]


def layer_spec(model, input_shape, include_linear=False):
    """Spec dict {layer name: entry} in module order for `model` run on a zero tensor of shape
    (1, *input_shape). Raises ValueError for a conv called twice with different input sizes
    (one spec entry cannot describe both) and warns on stderr for non-zero padding modes."""
    spec, hooks = {}, []
    names = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d) or (include_linear and isinstance(mod, nn.Linear)):
            names.setdefault(mod, name)

    def hook(mod, inputs, _output):
        name = names[mod]
        if isinstance(mod, nn.Linear):
            entry = {"input_size": None}
        else:
            if mod.padding_mode != "zeros":
                print(f"layer_spec: warning: {name}: padding_mode {mod.padding_mode!r} "
                      "recorded as zero padding", file=sys.stderr)
            entry = {"stride": list(mod.stride), "padding": _padding(mod),
                     "dilation": list(mod.dilation), "groups": mod.groups,
                     "input_size": [int(s) for s in inputs[0].shape[-2:]]}
        if name in spec and spec[name] != entry:
            raise ValueError(f"{name}: called with different input sizes "
                             f"{spec[name].get('input_size')} and {entry.get('input_size')}")
        spec[name] = entry

    for mod in names:
        hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters(), None)
        x = torch.zeros((1,) + tuple(input_shape),
                        dtype=p.dtype if p is not None else torch.float32,
                        device=p.device if p is not None else "cpu")
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    order = {name: i for i, name in enumerate(names.values())}
    return dict(sorted(spec.items(), key=lambda kv: order[kv[0]]))


def format_layer_spec(spec):
    """JSON text, one layer per line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in spec.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_layer_spec(spec, path, overwrite=True):
    """Write `spec` to `path` through a temporary file renamed into place."""
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path}: exists")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".layer_spec.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(format_layer_spec(spec))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.dont_write_bytecode = True
    sys.path[0:0] = [os.getcwd(), here]   # user modules from the current folder, or the demo
    p = argparse.ArgumentParser(description="Write a tdecomp-tool layer spec for a PyTorch model.")
    p.add_argument("--model", default="demo_model:build_model",
                   help="MODULE:FACTORY, a callable returning the nn.Module "
                        "(default: the demo model)")
    p.add_argument("--input-shape", default=None,
                   help="C,H,W without the batch dimension (default for the demo model: 1,8,8)")
    p.add_argument("--include-linear", action="store_true",
                   help='also list Linear layers, as {"input_size": null}')
    p.add_argument("-o", "--output", help="JSON file to write (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    a = p.parse_args(argv)
    modname, _, factory = a.model.partition(":")
    if not factory:
        p.error("--model must be MODULE:FACTORY")
    try:
        module = importlib.import_module(modname)
        factory_fn = getattr(module, factory)
    except (ImportError, AttributeError) as e:
        p.error(f"--model {a.model}: {e}")
    if a.input_shape is None:
        if not hasattr(module, "INPUT_SHAPE"):
            p.error("--input-shape is required for this model")
        shape = tuple(module.INPUT_SHAPE)
    else:
        try:
            shape = tuple(int(s) for s in a.input_shape.split(","))
        except ValueError:
            p.error(f"--input-shape: not a list of integers: {a.input_shape}")
    spec = layer_spec(factory_fn(), shape, include_linear=a.include_linear)
    if a.output is None:
        sys.stdout.write(format_layer_spec(spec))
        return 0
    try:
        write_layer_spec(spec, a.output, overwrite=a.force)
    except FileExistsError as e:
        print(f"layer_spec: {e} (use --force)", file=sys.stderr)
        return 1
    print(f"{a.output}: {len(spec)} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
