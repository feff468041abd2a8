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


def compress(model, example_input, *, tool=None, calibration=None, workdir=None, auto_exclude=True, sequential=False,
             **rule):
    """Decompose model's Conv2d and Linear layers with tdecomp-tool and return (compressed copy of
    model, the decompose report as a dict). model itself is left unchanged.

    example_input: traced once for the layers' geometry (see export()).
    rule: every decompose option by keyword, e.g. rank_ratio=0.5, keep_larger=True,
      target_params=0.4, method="tucker2", ranks=(16, 8), jobs=2, exclude=["fc"].
    calibration: an iterable of batches (see calibrate()), or the path of a statistics file.
    workdir: keep the exported, calibration, output and report files in this folder (default: a
      temporary folder, removed afterwards).
    auto_exclude: exclude layers load() could not rebuild (see unsafe_layers()).
    sequential: with calibration batches, plan once on the original model's statistics, then
      rewrite the layers one at a time in model order, each from statistics gathered on the model
      as compressed so far (its inputs are what the compressed prefix feeds it); same ranks, so the
      same size. See _sequential().
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
        if sequential and (calibration is None or isinstance(calibration, (str, os.PathLike))):
            raise ValueError("compress: sequential=True needs calibration batches (not a file)")
        if sequential:
            batches = list(calibration)
            cmd = [c for c in cmd if c not in ("-o", dst)] + ["--dry-run"]   # the plan only
        cmd += rule_flags(rule)
        _run_tool(cmd)
        with open(rep) as f:
            report = json.load(f)
        if sequential and not rule.get("dry_run"):
            _sequential(exe, out_model, example_input, batches, report, folder, rule)
        elif not rule.get("dry_run"):
            load(out_model, dst)
        return out_model, report
    finally:
        if own:
            own.cleanup()


def _step_flags(layer, last_dense):
    """decompose flags that rewrite exactly one planned layer with its planned method and ranks."""
    m, r = layer["method"], layer["ranks"]
    flags = ["--layers", _glob_literal(layer["name"]), "--method", m, "--keep-larger"]
    if m == "tucker2":
        flags += ["--ranks", f"{r[0]},{r[1]}"]
    elif m == "svd-grouped":
        flags += ["--svd-groups", str(r[0]), "--rank", str(r[1])]
    else:
        flags += ["--rank", str(r[0])]
    if layer["name"] == last_dense:
        flags.append("--include-head")
    return flags


def _sequential(exe, model, example_input, batches, report, folder, rule):
    """Rewrites the planned layers one at a time, each from the statistics of the model as
    compressed so far; report's layer entries are replaced by those of the step that wrote them."""
    dense = [n for n, m, _ in decomposable_modules(model) if isinstance(m, nn.Linear)]
    last_dense = dense[-1] if dense else None
    entries = {x["name"]: i for i, x in enumerate(report["layers"])}
    for k, layer in enumerate(x for x in list(report["layers"]) if not x["skipped"]):
        src, dst, stats, rep = (os.path.join(folder, f"seq{k}.{n}") for n in ("model.h5", "out.h5", "stats.h5", "json"))
        record, _ = trace_geometry(model, example_input)
        _files.write_weights(model.state_dict(), src, {"tdecomp_geometry": json.dumps(record)})
        calibrate(model, batches, stats)
        _run_tool([exe, "decompose", src, "-o", dst, "--report", rep, "--force", "--calibration", stats]
                  + _step_flags(layer, last_dense) + (["--jobs", str(rule["jobs"])] if rule.get("jobs") else []))
        with open(rep) as f:
            step = {x["name"]: x for x in json.load(f)["layers"]}
        if step[layer["name"]]["skipped"]:
            raise RuntimeError(f"compress: sequential step left {layer['name']} alone: {step[layer['name']]['reason']}")
        load(model, dst)
        report["layers"][entries[layer["name"]]] = step[layer["name"]]
    errs = [x["output_rel_error"] for x in report["layers"] if not x["skipped"] and "output_rel_error" in x]
    t = report["totals"]
    t["max_rel_error"] = max([x["rel_error"] for x in report["layers"] if not x["skipped"]], default=0.0)
    t["max_output_rel_error"] = max(errs) if errs else None
    t["mean_output_rel_error"] = sum(errs) / len(errs) if errs else None
    report["options"]["sequential"] = True
    report["output"] = None


def kernel_parameters(model):
    """Elements of every Conv2d and Linear weight of model (what the tool's params count)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
