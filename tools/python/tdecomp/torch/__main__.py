"""python3 -m tdecomp.torch export --model MODULE:FACTORY CKPT.pt OUT [--input-size 1,3,224,224]

Builds the model with MODULE.FACTORY(), loads CKPT.pt into it (a state dict, or a checkpoint
dict holding one under 'state_dict', 'model' or 'model_state_dict') and writes OUT with its
layer geometry, traced on a random input of --input-size. torch.load runs with
weights_only=True; a pickled nn.Module (which runs code when read) needs --allow-pickle, and
then --model may be left out."""
import argparse
import importlib
import os
import pickle
import sys

import torch

from .export import export

DEFAULT_INPUT = "1,3,224,224"
_STATE_KEYS = ("state_dict", "model", "model_state_dict")
_DP_PREFIX = "module."      # keys of a model saved inside nn.DataParallel / DDP


class CliError(Exception):
    pass


def _factory(spec):
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise CliError(f"--model must be MODULE:FACTORY, got {spec!r}")
    sys.path.insert(0, os.getcwd())     # the user's own module, as `python3 -c` would find it
    try:
        obj = importlib.import_module(mod)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise CliError(f"--model {spec}: {e}") from None
    model = obj()
    if not isinstance(model, torch.nn.Module):
        raise CliError(f"--model {spec}: returned a {type(model).__name__}, not an nn.Module")
    return model


def _state_dict(obj):
    if isinstance(obj, dict):
        for k in _STATE_KEYS:
            if isinstance(obj.get(k), dict):
                return obj[k]
            if isinstance(obj.get(k), torch.nn.Module):
                return obj[k].state_dict()
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise CliError("not a state dict or a checkpoint dict with one under " + ", ".join(repr(k) for k in _STATE_KEYS))


def _strip_parallel(sd, model):
    own = model.state_dict()
    if sd and all(k.startswith(_DP_PREFIX) for k in sd) and not any(k.startswith(_DP_PREFIX) for k in own):
        return {k[len(_DP_PREFIX):]: v for k, v in sd.items()}
    return sd


def _input_size(text):
    try:
        dims = [int(v) for v in text.split(",")]
    except ValueError:
        dims = []
    if not dims or any(d < 1 for d in dims):
        raise CliError(f"--input-size must be whole numbers >= 1 separated by commas, got {text!r}")
    return dims


def cmd_export(a):
    dims = _input_size(a.input_size)
    if os.path.exists(a.output) and not a.force:
        raise CliError(f"{a.output}: exists (use --force to overwrite)")
    try:
        obj = torch.load(a.checkpoint, map_location="cpu", weights_only=not a.allow_pickle)
    except pickle.UnpicklingError as e:
        hint = "" if a.allow_pickle else " (a pickled nn.Module needs --allow-pickle; only for files you trust)"
        raise CliError(f"{a.checkpoint}: {e}{hint}") from None
    except (OSError, RuntimeError) as e:
        raise CliError(f"{a.checkpoint}: {e}") from None
    if isinstance(obj, torch.nn.Module) and not a.model:
        model = obj
    else:
        if not a.model:
            raise CliError("--model MODULE:FACTORY is required for a state dict")
        model = _factory(a.model)
        sd = obj.state_dict() if isinstance(obj, torch.nn.Module) else _state_dict(obj)
        try:
            model.load_state_dict(_strip_parallel(sd, model), strict=True)
        except RuntimeError as e:
            raise CliError(f"{a.checkpoint} does not fit {a.model}: {e}") from None
    model.eval()
    try:
        record = export(model, torch.randn(*dims), a.output)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CliError(f"{a.output}: {e}") from None
    ran = sum(1 for e in record["layers"] if e["kind"] == "dense" or e.get("input_size"))
    print(f"{a.output}: {len(model.state_dict())} tensors, {len(record['layers'])} conv/linear layers "
          f"({ran} reached by a {'x'.join(map(str, dims))} input)")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m tdecomp.torch", description="tdecomp.torch command line")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="a checkpoint as a weight file with its layer geometry")
    e.add_argument("checkpoint", help=".pt/.pth file written by torch.save")
    e.add_argument("output", help="output file: .h5 (torch-layout HDF5) or .safetensors")
    e.add_argument("--model", metavar="MODULE:FACTORY", help="builds the model, e.g. torchvision.models:resnet18")
    e.add_argument("--input-size", default=DEFAULT_INPUT, help=f"example input shape (default {DEFAULT_INPUT})")
    e.add_argument("--allow-pickle", action="store_true",
                   help="let torch.load run pickled code (a saved nn.Module); only for files you trust")
    e.add_argument("--force", action="store_true", help="overwrite an existing output")
    a = p.parse_args(argv)
    try:
        return cmd_export(a)
    except CliError as err:
        print(f"tdecomp.torch: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
