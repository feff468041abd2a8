#!/usr/bin/python3
"""Whole-model benchmark: `tdecomp-tool decompose` of a ResNet-50-shaped weight file against a
TensorLy 0.9 loop over the same layers, methods and ranks, in one run, interleaved.

The model: torchvision.models.resnet50() with its random initialisation (torch.manual_seed(SEED);
no pretrained weights are needed), exported with tdecomp.torch.export (state dict + geometry
record, input 1x3x224x224) to HDF5. --quick: a ResNet-18-shaped model at a quarter of the width
(16..128 channels, 10 classes, input 64x64) for a smoke run well under a minute.

Each repeat runs, one after the other (ours, peer, ours, peer, ...; one uncounted run of ours
first, which also gives the layer list):
  ours: tdecomp-tool decompose MODEL.h5 -o OUT.h5 --rank-ratio 0.5 --force --json --jobs auto|N
        (one process; its decomposition time is the sum of the report's per-layer `seconds`);
  peer: this script's `peer` subcommand, one Python process (numpy, h5py, TensorLy imported from a
        checkout; never torch) reading the same HDF5 file with h5py, one layer at a time as float64
        (the tool decomposes in double too), and calling, for the layers and ranks our JSON report
        says we used:
          tucker2 -> tensorly.decomposition.partial_tucker(W, rank=[R_out, R_in], modes=[0, 1],
                     n_iter_max=100, init='svd', tol=1e-4)   (TensorLy's defaults)
          svd     -> tensorly.tenalg.svd_interface(M, n_eigenvecs=R)   (0.9's truncated SVD: the
                     backend's full SVD, truncated) on M = W as (Cout, Cin kh kw) or (out, in).
        Its decomposition time is the sum of those calls' times. Its errors come free from the
        calls (partial_tucker's last rec_error; sqrt(|M|^2 - sum S^2) / |M| for the SVD): the peer
        does not recompose, while ours measures what it writes (float32 pieces composed back).

Wall time is a monotonic clock around each process (start to reap). Peak RSS and CPU time (user
+ sys) are the kernel's accounting of that one child, read with os.wait4() (the per-child form of
getrusage(RUSAGE_CHILDREN); ru_maxrss, KiB). Medians over the repeats; ratios are taken pair by
pair (peer / ours of the same repeat) and their median quoted, so a drifting machine load cancels.
Both sides get OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=--threads (default 2) and the same
OPENBLAS_CORETYPE if set; the OpenBLAS core each side loaded is printed (ours: the libopenblas the
tool links, asked with ctypes; peer: the BLAS numpy loaded, asked in the peer process).

Targets (the issue): whole-file wall time >= 10x faster than the TensorLy loop. Also printed:
the decomposition-time and CPU-time ratios, peak RSS side by side, and the per-layer relative
errors both sides reach (same algorithm family: the max difference is checked against 1e-3).

usage: /usr/bin/python3 tools/bench/model_bench.py [--tool TOOL] [--tensorly PATH] [--repeat N]
           [--threads 2] [--quick] [--seed 0] [--json FILE] [--keep DIR]
  TOOL: default $TDECOMP_TOOL or build/tools/tdecomp-tool/tdecomp-tool
  PATH: a TensorLy checkout (the folder holding tensorly/), default $TENSORLY_SRC or ~/tensorly-src;
        TensorLy is never part of this repository.
  --repeat: default 3 (1 with --quick). The full run takes several minutes per repeat.
Exit status 0 when the run completed (met or not: see the printed verdicts), 1 on a failure.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WALL_GOAL = 10.0        # issue: whole-file wall time >= 10x faster than the TensorLy loop
ERR_TOL = 1e-3          # max |rel_error ours - rel_error TensorLy| over the layers
RANK_RATIO = "0.5"
PEER_METHODS = ("tucker2", "svd")


# --- the model --------------------------------------------------------------------------------

def _quick_model(torch):
    """ResNet-18's layout (BasicBlocks, 2 per stage) at a quarter of its width, 10 classes."""
    from torch import nn
    from torchvision.models.resnet import ResNet, BasicBlock
    m = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10)
    m.inplanes = 16
    m.conv1 = nn.Conv2d(3, 16, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(16)
    m.layer1 = m._make_layer(BasicBlock, 16, 2)
    m.layer2 = m._make_layer(BasicBlock, 32, 2, stride=2)
    m.layer3 = m._make_layer(BasicBlock, 64, 2, stride=2)
    m.layer4 = m._make_layer(BasicBlock, 128, 2, stride=2)
    m.fc = nn.Linear(128, 10)
    for mod in m.modules():   # torchvision's own initialisation, as ResNet.__init__ applies it
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    return m


def export_main(argv):
    """`model_bench.py export OUT [--quick] [--seed N]`: writes the model file, prints its
    description (a child process, so that the driver never holds torch: see measured())."""
    ap = argparse.ArgumentParser(prog="model_bench.py export")
    ap.add_argument("out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
    import torch
    import torchvision
    from tdecomp.torch import export
    torch.manual_seed(a.seed)
    if a.quick:
        model, size, name = _quick_model(torch), 64, "resnet18 layout at 1/4 width (16..128 channels), 10 classes"
    else:
        model, size, name = torchvision.models.resnet50(), 224, "torchvision resnet50 (random init)"
    export(model, torch.zeros(1, 3, size, size), a.out)
    print(json.dumps({"model": name, "seed": a.seed, "input": [1, 3, size, size],
                      "parameters": sum(p.numel() for p in model.parameters()), "file_bytes": os.path.getsize(a.out)}))


# --- running a child: wall, peak RSS and CPU of that one process -------------------------------

def measured(cmd, env, out_path):
    """Runs cmd with stdout to out_path; returns (wall s, peak RSS MiB, cpu s, stdout text).
    Linux keeps the high-water RSS across exec, so a child's ru_maxrss cannot read below the RSS
    of the process that started it: the driver therefore stays small (no torch, no numpy; the
    model is built by a child) and prints that floor."""
    with open(out_path, "w") as out, open(out_path + ".err", "w") as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        with open(out_path + ".err") as f:
            tail = f.read()[-600:]
        sys.exit(f"model_bench: {' '.join(cmd)}: exit {p.returncode}: {tail.strip()}")
    with open(out_path) as f:
        text = f.read()
    return wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime, text


def last_json(text):
    """The tool prints one JSON document; the peer prints one line."""
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(text.strip().splitlines()[-1])


def blas_of_tool(tool, env):
    """(core, threads) of the libopenblas the tool links, asked in a child with the same env."""
    r = subprocess.run(["ldd", tool], capture_output=True, text=True)
    lib = next((ln.split("=>")[1].split("(")[0].strip() for ln in r.stdout.splitlines()
                if "openblas" in ln and "=>" in ln), None)
    if not lib:
        lib = next((ln.split("=>")[1].split("(")[0].strip() for ln in r.stdout.splitlines()
                    if "libblas" in ln and "=>" in ln), None)
    if not lib:
        return {"core": "unknown (no BLAS in ldd output)", "threads": None, "library": None}
    code = ("import ctypes,json,sys; l=ctypes.CDLL(sys.argv[1]); l.openblas_get_corename.restype=ctypes.c_char_p;"
            "print(json.dumps({'core': l.openblas_get_corename().decode(), 'threads': l.openblas_get_num_threads()}))")
    r = subprocess.run([sys.executable, "-c", code, lib], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"core": "unknown (not OpenBLAS?)", "threads": None, "library": lib}
    d = json.loads(r.stdout)
    d["library"] = os.path.realpath(lib)
    return d


# --- the peer: one process, TensorLy over the layers of our report -----------------------------

def blas_in_this_process():
    import ctypes
    libs = []
    with open("/proc/self/maps") as f:
        for ln in f:
            p = ln.split()[-1] if len(ln.split()) >= 6 else ""
            if ("blas" in p or "openblas" in p) and p not in libs:
                libs.append(p)
    # the BLAS library itself first (scipy's cython_blas also resolves the symbol, through it)
    libs.sort(key=lambda p: 0 if os.path.basename(p).startswith(("libopenblas", "libblas")) else 1)
    for p in libs:
        try:
            l = ctypes.CDLL(p)
            l.openblas_get_corename.restype = ctypes.c_char_p
            return {"core": l.openblas_get_corename().decode(), "threads": l.openblas_get_num_threads(),
                    "library": os.path.realpath(p)}
        except (OSError, AttributeError):
            continue
    return {"core": "unknown (no OpenBLAS loaded)", "threads": None, "library": libs[0] if libs else None}


def peer_main(argv):
    ap = argparse.ArgumentParser(prog="model_bench.py peer")
    ap.add_argument("--model", required=True)
    ap.add_argument("--layers", required=True, help="JSON: [[name, method, ranks, shape], ...]")
    ap.add_argument("--tensorly", required=True)
    a = ap.parse_args(argv)
    import resource
    sys.path.insert(0, os.path.abspath(a.tensorly))
    import numpy as np
    import h5py
    import tensorly as tl
    from tensorly.decomposition import partial_tucker
    from tensorly.tenalg import svd_interface
    if not os.path.abspath(tl.__file__).startswith(os.path.abspath(a.tensorly)):
        sys.exit(f"peer: tensorly was imported from {tl.__file__}, not from {a.tensorly}")
    tl.set_backend("numpy")
    with open(a.layers) as f:
        layers = json.load(f)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rows, total = [], 0.0
    with h5py.File(a.model, "r") as f:
        for name, method, ranks, shape in layers:
            W = np.asarray(f[name + ".weight"], dtype=np.float64)
            if list(W.shape) != list(shape):
                sys.exit(f"peer: {name}: shape {list(W.shape)} in the file, {shape} in the report")
            if method == "tucker2":
                t = time.perf_counter()
                (_, _), errs = partial_tucker(W, rank=[ranks[0], ranks[1]], modes=[0, 1],
                                              n_iter_max=100, init="svd", tol=10e-5)
                dt = time.perf_counter() - t
                err, its = float(errs[-1]), len(errs)
            elif method == "svd":
                M = W.reshape(W.shape[0], -1)
                t = time.perf_counter()
                _, S, _ = svd_interface(M, n_eigenvecs=ranks[0])
                dt = time.perf_counter() - t
                n2 = float(np.sum(M * M))
                err, its = float(np.sqrt(abs(n2 - float(np.sum(S * S))) / n2)), None
            else:
                sys.exit(f"peer: {name}: method {method} is not covered")
            total += dt
            rows.append({"name": name, "method": method, "ranks": ranks, "seconds": dt,
                         "rel_error": err, "iterations": its})
            del W
    print(json.dumps({"tensorly": tl.__version__, "tensorly_file": tl.__file__, "blas": blas_in_this_process(),
                      "rss_after_imports_mib": base_rss, "decomposition_s": total, "layers": rows}))


# --- the driver --------------------------------------------------------------------------------

def fmt_ratio(x):
    return f"{x:.2f}x"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        return peer_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "export":
        return export_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", default=os.environ.get("TDECOMP_TOOL") or
                    os.path.join(ROOT, "build", "tools", "tdecomp-tool", "tdecomp-tool"))
    ap.add_argument("--tensorly", default=os.environ.get("TENSORLY_SRC") or os.path.expanduser("~/tensorly-src"))
    ap.add_argument("--repeat", type=int, default=None, help="measured pairs (default 3; 1 with --quick)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", default="auto",
                    help="ours: decompose --jobs auto|N (default the tool's, auto: one layer per BLAS thread on "
                         "small layers; N layers at a time, one BLAS thread each; the same cores as the peer)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one, removed)")
    a = ap.parse_args()
    repeat = a.repeat or (1 if a.quick else 3)
    tool = os.path.abspath(a.tool)
    if not os.access(tool, os.X_OK):
        sys.exit(f"model_bench: no tool at {tool} (build it, or give --tool / $TDECOMP_TOOL)")
    if not os.path.isfile(os.path.join(a.tensorly, "tensorly", "__init__.py")):
        sys.exit(f"model_bench: no TensorLy checkout at {a.tensorly} (give --tensorly PATH or $TENSORLY_SRC)")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads),
               TDECOMP_NO_CORE_WARNING="1")
    env.pop("PYTHONPATH", None)
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        work = a.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tdmodel-")
        work = tmp.name
    model = os.path.join(work, "model.h5")
    out = os.path.join(work, "out.h5")

    t = time.perf_counter()
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "export", model, "--seed", str(a.seed)]
                       + (["--quick"] if a.quick else []), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"model_bench: building the model failed: {r.stderr.strip()[-600:]}")
    desc = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"model: {desc['model']}, seed {a.seed}, {desc['parameters']} parameters, "
          f"{desc['file_bytes'] / 2**20:.1f} MiB HDF5 ({time.perf_counter() - t:.1f} s to build and export)")

    ours_cmd = [tool, "decompose", model, "-o", out, "--rank-ratio", RANK_RATIO, "--force", "--json", "--jobs", str(a.jobs)]
    peer_cmd = [sys.executable, os.path.abspath(__file__), "peer", "--model", model,
                "--layers", os.path.join(work, "layers.json"), "--tensorly", os.path.abspath(a.tensorly)]

    # the uncounted first run of ours: the layer list, methods and ranks; warms the page cache
    _, _, _, text = measured(ours_cmd, env, os.path.join(work, "ours.out"))
    rep = last_json(text)
    jobs = rep["options"].get("jobs", a.jobs)  # what auto resolved to
    used = [l for l in rep["layers"] if not l["skipped"]]
    odd = [f"{l['name']} ({l['method']})" for l in used if l["method"] not in PEER_METHODS]
    if odd:
        sys.exit("model_bench: the peer loop covers tucker2 and svd only; the report has " + ", ".join(odd))
    plan = [[l["name"], l["method"], l["ranks"], l["shape"]] for l in used]
    with open(os.path.join(work, "layers.json"), "w") as f:
        json.dump(plan, f)
    count = {m: sum(1 for l in used if l["method"] == m) for m in PEER_METHODS}
    print(f"layers: {len(rep['layers'])} in the file, {len(used)} decomposed "
          f"({count['tucker2']} tucker2, {count['svd']} svd), {len(rep['layers']) - len(used)} skipped")

    blas_ours = blas_of_tool(tool, env)
    import resource
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak RSS floor (this driver's own peak; no child can read below it): {floor:.1f} MiB")
    ours_runs, peer_runs = [], []
    for r in range(repeat):
        w, rss, cpu, text = measured(ours_cmd, env, os.path.join(work, "ours.out"))
        j = last_json(text)
        got = [[l["name"], l["method"], l["ranks"], l["shape"]] for l in j["layers"] if not l["skipped"]]
        if got != plan:
            sys.exit("model_bench: the tool's plan changed between runs")
        ours_runs.append({"wall_s": w, "peak_rss_mib": rss, "cpu_s": cpu,
                          "decomposition_s": sum(l["seconds"] for l in j["layers"]),
                          "errors": {l["name"]: l["rel_error"] for l in j["layers"] if not l["skipped"]},
                          "layer_s": {l["name"]: l["seconds"] for l in j["layers"] if not l["skipped"]}})
        print(f"  [{r + 1}/{repeat}] ours: wall {w:8.2f} s  cpu {cpu:8.2f} s  decomposition "
              f"{ours_runs[-1]['decomposition_s']:8.2f} s  peak RSS {rss:7.1f} MiB", flush=True)
        w, rss, cpu, text = measured(peer_cmd, env, os.path.join(work, "peer.out"))
        p = last_json(text)
        peer_runs.append({"wall_s": w, "peak_rss_mib": rss, "cpu_s": cpu, "decomposition_s": p["decomposition_s"],
                          "rss_after_imports_mib": p["rss_after_imports_mib"],
                          "errors": {l["name"]: l["rel_error"] for l in p["layers"]},
                          "layer_s": {l["name"]: l["seconds"] for l in p["layers"]},
                          "iterations": {l["name"]: l["iterations"] for l in p["layers"] if l["iterations"]}})
        print(f"  [{r + 1}/{repeat}] peer: wall {w:8.2f} s  cpu {cpu:8.2f} s  decomposition "
              f"{p['decomposition_s']:8.2f} s  peak RSS {rss:7.1f} MiB", flush=True)

    blas_peer = p["blas"]
    same = blas_ours["core"] == blas_peer["core"] and blas_ours["threads"] == blas_peer["threads"]
    print(f"OpenBLAS: ours {blas_ours['core']} x{blas_ours['threads']} ({blas_ours.get('library')}); "
          f"peer {blas_peer['core']} x{blas_peer['threads']} ({blas_peer.get('library')}): "
          f"{'same core and threads' if same else 'NOT THE SAME: the comparison is not like for like'}")
    print(f"TensorLy {p['tensorly']} from {os.path.dirname(os.path.dirname(p['tensorly_file']))}")

    med = lambda runs, k: statistics.median(x[k] for x in runs)
    pair = lambda k: statistics.median(pr[k] / o[k] for o, pr in zip(ours_runs, peer_runs))
    res = {k: {"ours": med(ours_runs, k), "tensorly": med(peer_runs, k), "ratio": pair(k)}
           for k in ("wall_s", "cpu_s", "decomposition_s", "peak_rss_mib")}
    # errors: the last repeat's (the tool is deterministic; TensorLy's SVD init is too)
    eo, ep = ours_runs[-1]["errors"], peer_runs[-1]["errors"]
    diffs = sorted(((abs(eo[n] - ep[n]), n) for n in eo), reverse=True)
    maxdiff, worst = diffs[0] if diffs else (0.0, None)
    its = list(peer_runs[-1]["iterations"].values())

    print(f"\nmedians over {repeat} interleaved pair(s) (ratio = TensorLy / ours, median of the per-pair ratios):")
    print(f"  {'':22s} {'ours':>10s} {'TensorLy':>10s} {'ratio':>8s}")
    for k, label, unit in (("wall_s", "whole-process wall", "s"), ("cpu_s", "whole-process cpu", "s"),
                           ("decomposition_s", "decomposition calls", "s"), ("peak_rss_mib", "peak RSS", "MiB")):
        print(f"  {label:22s} {res[k]['ours']:9.2f}{unit[0]} {res[k]['tensorly']:9.2f}{unit[0]} {fmt_ratio(res[k]['ratio']):>8s}"
              + ("   (MiB)" if unit == "MiB" else ""))
    print(f"  TensorLy process after its imports: {med(peer_runs, 'rss_after_imports_mib'):.1f} MiB RSS; "
          f"partial_tucker sweeps: {min(its) if its else '-'}..{max(its) if its else '-'}")
    print(f"  relative errors: max |ours - TensorLy| = {maxdiff:.3g} ({worst}: ours {eo.get(worst, 0):.6f}, "
          f"TensorLy {ep.get(worst, 0):.6f}); max error ours {max(eo.values()):.6f}, TensorLy {max(ep.values()):.6f}")

    targets = [
        {"target": f"whole-file wall time >= {WALL_GOAL:g}x faster than the TensorLy loop",
         "value": res["wall_s"]["ratio"], "goal": WALL_GOAL, "op": ">=", "met": res["wall_s"]["ratio"] >= WALL_GOAL},
        {"target": f"per-layer relative errors within {ERR_TOL:g} of TensorLy's",
         "value": maxdiff, "goal": ERR_TOL, "op": "<=", "met": maxdiff <= ERR_TOL},
        {"target": "same OpenBLAS core and thread count on both sides", "value": same, "met": same},
    ]
    # where the time goes: per-layer medians summed by method
    lay_med = lambda runs, n: statistics.median(x["layer_s"][n] for x in runs)
    by_method = {}
    for n, m, _, _ in plan:
        b = by_method.setdefault(m, {"layers": 0, "ours_s": 0.0, "tensorly_s": 0.0})
        b["layers"] += 1
        b["ours_s"] += lay_med(ours_runs, n)
        b["tensorly_s"] += lay_med(peer_runs, n)
    for m, b in by_method.items():
        print(f"  {m:8s} {b['layers']:3d} layers: decomposition ours {b['ours_s']:8.2f} s, TensorLy {b['tensorly_s']:8.2f} s "
              f"({b['tensorly_s'] / max(b['ours_s'], 1e-9):.2f}x; per-layer medians summed)")
    slow = sorted(plan, key=lambda x: -lay_med(ours_runs, x[0]))[:3]
    print("  our slowest layers: " + "; ".join(
        f"{n} {m} {rk}: {lay_med(ours_runs, n):.2f} s vs {lay_med(peer_runs, n):.2f} s" for n, m, rk, _ in slow))

    print("\ntargets:")
    for tg in targets:
        v = tg["value"]
        vs = fmt_ratio(v) if isinstance(v, float) and tg["target"].startswith("whole") else (f"{v:.3g}" if isinstance(v, float) else str(v))
        print(f"  {tg['target']}: {vs}: {'met' if tg['met'] else 'NOT met'}")
    print(f"  (not a target) peak RSS ours {res['peak_rss_mib']['ours']:.1f} MiB vs TensorLy "
          f"{res['peak_rss_mib']['tensorly']:.1f} MiB")

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model_bench": 1, "command": sys.argv, "model": desc, "threads": a.threads, "jobs": jobs, "jobs_option": a.jobs,
                       "coretype_env": os.environ.get("OPENBLAS_CORETYPE"), "blas_ours": blas_ours,
                       "blas_tensorly": blas_peer, "tensorly": p["tensorly"], "repeat": repeat,
                       "ours_command": ours_cmd, "rss_method": "os.wait4 per-child ru_maxrss",
                       "rss_floor_mib": floor,
                       "medians": res, "targets": targets, "max_error_diff": maxdiff, "max_error_diff_layer": worst,
                       "by_method": by_method,
                       "layers": [{"name": n, "method": m, "ranks": rk, "shape": sh, "rel_error_ours": eo[n],
                                   "rel_error_tensorly": ep[n], "seconds_ours_median": lay_med(ours_runs, n),
                                   "seconds_tensorly_median": lay_med(peer_runs, n),
                                   "tensorly_sweeps": peer_runs[-1]["iterations"].get(n)} for n, m, rk, sh in plan],
                       "runs": {"ours": [{k: v for k, v in x.items() if k not in ("errors", "layer_s")} for x in ours_runs],
                                "tensorly": [{k: v for k, v in x.items() if k not in ("errors", "iterations", "layer_s")}
                                             for x in peer_runs]}}, f, indent=1)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
