"""compress(): export, optional calibration, `tdecomp-tool decompose`, load, in one call."""
import copy
import json
import os
import shutil
import subprocess
import tempfile

from torch import nn

from . import _files
from .calibrate import calibrate
from .export import decomposable_modules, trace_geometry
from .load import load

# Options that take a list repeat their flag; other list values are joined by commas (--ranks).
_REPEATED = {"layers", "exclude"}
# The tool accepts this many --layers / --exclude globs.
MAX_GLOBS = 64


def find_tool(tool=None):
    """tool=, else $TDECOMP_TOOL, else tdecomp-tool on PATH."""
    path = tool or os.environ.get("TDECOMP_TOOL") or shutil.which("tdecomp-tool")
    if not path:
        raise RuntimeError("tdecomp-tool not found: pass tool=PATH, set TDECOMP_TOOL or put it on PATH")
    return os.fspath(path)


def rule_flags(rule):
    """decompose flags of keyword options: rank_ratio=0.5 -> --rank-ratio 0.5, keep_larger=True ->
    --keep-larger, ranks=(8, 4) -> --ranks 8,4, exclude=[a, b] -> --exclude a --exclude b;
    False and None are omitted."""
    out = []
    for key, value in rule.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)) and key in _REPEATED:
            for v in value:
                out += [flag, str(v)]
        elif isinstance(value, (list, tuple)):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out


def _glob_literal(name):
    """A module path as an fnmatch pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def unsafe_layers(model, ran):
    """Module paths the tool would see as layers (a 2-D or 4-D `<path>.weight`) that load() could
    not rebuild: weights of other module types (nn.Embedding, nn.ConvTranspose2d, ...), and, when
    ran is not None, Conv2d / Linear modules the example input never ran (their weight may be
    used without their forward, as nn.MultiheadAttention's out_proj is)."""
    layers = {name for name, _, _ in decomposable_modules(model)}
    out = []
    for key, t in model.state_dict().items():
        if not key.endswith(".weight") or t.dim() not in (2, 4):
            continue
        name = key[: -len(".weight")]
        if name not in layers or (ran is not None and name not in ran):
            out.append(name)
    return out


def _run_tool(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise RuntimeError(f"cannot run {cmd[0]}: {e}") from None
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {r.returncode}"
        raise RuntimeError(f"tdecomp-tool decompose failed: {last}")
    return r


def compress(model, example_input, *, tool=None, calibration=None, workdir=None, auto_exclude=True, **rule):
    """Decompose model's Conv2d and Linear layers with tdecomp-tool and return (compressed copy of
    model, the decompose report as a dict). model itself is left unchanged.

    example_input: traced once for the layers' geometry (see export()).
    rule: every decompose option by keyword, e.g. rank_ratio=0.5, keep_larger=True,
      target_params=0.4, method="tucker2", ranks=(16, 8), jobs=2, exclude=["fc"].
    calibration: an iterable of batches (see calibrate()), or the path of a statistics file.
    workdir: keep the exported, calibration, output and report files in this folder (default: a
      temporary folder, removed afterwards).
    auto_exclude: exclude layers load() could not rebuild (see unsafe_layers()).
    """
    exe = find_tool(tool)
    out_model = copy.deepcopy(model)
    rule = dict(rule)
    own = tempfile.TemporaryDirectory(prefix="tdecomp-") if workdir is None else None
    folder = own.name if own else os.fspath(workdir)
    try:
        src, dst, rep = (os.path.join(folder, n) for n in ("model.h5", "compressed.h5", "report.json"))
        record, ran = trace_geometry(out_model, example_input)
        _files.write_weights(out_model.state_dict(), src, {"tdecomp_geometry": json.dumps(record)})
        if auto_exclude:
            skip = unsafe_layers(out_model, ran if example_input is not None else None)
            user = rule.get("exclude") or []
            user = [user] if isinstance(user, str) else list(user)
            if skip and len(user) + len(skip) > MAX_GLOBS:
                raise RuntimeError(f"compress: {len(skip)} layers cannot be rebuilt ({', '.join(skip[:5])}, ...), "
                                   f"more than the tool's {MAX_GLOBS} --exclude globs; pass layers= instead")
            if skip:
                rule["exclude"] = user + [_glob_literal(s) for s in skip]
        cmd = [exe, "decompose", src, "-o", dst, "--report", rep, "--force"]
        if calibration is not None:
            stats = calibration if isinstance(calibration, (str, os.PathLike)) else os.path.join(folder, "calibration.h5")
            if stats is not calibration:
                calibrate(out_model, calibration, stats)
            cmd += ["--calibration", os.fspath(stats)]
        cmd += rule_flags(rule)
        _run_tool(cmd)
        with open(rep) as f:
            report = json.load(f)
        if not rule.get("dry_run"):
            load(out_model, dst)
        return out_model, report
    finally:
        if own:
            own.cleanup()


def kernel_parameters(model):
    """Elements of every Conv2d and Linear weight of model (what the tool's params count)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
