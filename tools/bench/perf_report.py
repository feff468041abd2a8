#!/usr/bin/python3
"""Every performance target in one run: runs the benchmarks below one after the other (never
concurrently: they would time each other), gathers their targets into one JSON with met / not met,
prints them, and with --write-docs regenerates the measured blocks of docs/perf.md and README.md
(between `<!-- perf-report:begin -->` and `<!-- perf-report:end -->`) from this run alone.

Parts (--parts, comma-separated; default all, in the order machine,peer,model,svd,llm):
  machine  build/tools/bench/tdecomp-bench: kernels against this machine's DGEMM and bandwidth
  peer     tools/bench/peer_compare.py: CP, Tucker, Tucker-2 (fixed sweeps and time to TensorLy's
           10-sweep error) against TensorLy on the same inputs (needs --peer PEER.py and a checkout)
  svd      tools/bench/svd_bench.py --today: the truncated SVD alone on the LLaMA pair and VGG fc6
  llm      the whole tool: `decompose --rank 512` of an HDF5 file holding the LLaMA pair (float32)
           against numpy's linalg.svd of the same two matrices, with peak RSS
  model    tools/bench/model_bench.py: a ResNet-50-shaped file at --rank-ratio 0.5 against a
           TensorLy partial_tucker loop (needs a TensorLy checkout, TENSORLY_SRC)

usage: /usr/bin/python3 tools/bench/perf_report.py --build BUILD [--peer PEER.py] [--threads 2]
           [--parts machine,peer,svd,llm,model] [--quick] [--json FILE] [--write-docs]
       /usr/bin/python3 tools/bench/perf_report.py --from-json FILE [--write-docs]   (render again)
Never run by the test suite (minutes; ratios only mean something on a quiet machine)."""
import argparse, datetime, json, os, re, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"
LLM_GOAL_NUMPY = 10.0


def run_part(name, cmd, env, json_path):
    print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env)
    print(f"=== {name}: {time.perf_counter() - t:.0f} s, exit {r.returncode}", flush=True)
    if r.returncode != 0 or not os.path.exists(json_path):
        return None
    with open(json_path) as f:
        return json.load(f)


def llm_part(a, env, work):
    """The issue's own case: the whole tool on the pair, against numpy's SVD in the same run. The
    matrices are written and dropped before the tool runs: a child's peak RSS cannot read below
    this process's RSS when it starts (model_bench.measured)."""
    import numpy as np, h5py
    sys.path.insert(0, HERE)
    from svd_bench import make_matrix
    from model_bench import measured
    shapes = [("mlp.down_proj.weight", 4096, 11008, 10), ("mlp.up_proj.weight", 11008, 4096, 11)]
    rank = 512
    if a.quick:
        shapes = [(n, m // 4, k // 4, s) for n, m, k, s in shapes]
        rank = 128
    path, out = os.path.join(work, "llm.h5"), os.path.join(work, "llm.small.h5")
    with h5py.File(path, "w") as f:
        for name, m, n, seed in shapes:
            f[name] = make_matrix(np, m, n, rank, seed, "decay").astype(np.float32)
    tool = os.path.join(a.build, "tools", "tdecomp-tool", "tdecomp-tool")
    walls, rss, rep = [], [], None
    for _ in range(a.repeat):
        if os.path.exists(out): os.remove(out)
        w, r, _, text = measured([tool, "decompose", path, "-o", out, "--rank", str(rank), "--json"], env,
                                 os.path.join(work, "llm.out"))
        walls.append(w); rss.append(r); rep = json.loads(text)
    t_np, exact = [], {}
    for _ in range(a.repeat):
        t = time.perf_counter()
        with h5py.File(path, "r") as f:
            for name, _, _, _ in shapes:
                s = np.linalg.svd(f[name][()].astype(np.float64), full_matrices=False)[1]
                n2 = float(s @ s)
                exact[name] = float(np.sqrt(max(n2 - float(s[:rank] @ s[:rank]), 0.0) / n2))
        t_np.append(time.perf_counter() - t)
    ours, theirs = statistics.median(walls), statistics.median(t_np)
    errs = {l["name"] + ".weight": l["rel_error"] for l in rep["layers"] if l.get("rel_error") is not None}
    gap = max(abs(errs[n] / exact[n] - 1.0) for n in exact)
    print(f"LLM pair, whole tool `decompose --rank {rank}`: {ours:.2f} s (runs {', '.join(f'{x:.2f}' for x in walls)}), "
          f"peak RSS {max(rss):.0f} MiB; numpy svd of both {theirs:.2f} s: {theirs / ours:.1f}x; "
          f"worst relative error gap to the exact truncated SVD {gap:.2e}")
    targets = [{"target": "LLM pair, whole tool: numpy svd time / decompose time", "value": theirs / ours,
                "goal": LLM_GOAL_NUMPY, "op": ">=", "met": theirs / ours >= LLM_GOAL_NUMPY},
               {"target": "LLM pair, whole tool: worst relative error gap to the exact truncated SVD",
                "value": gap, "goal": 1e-3, "op": "<=", "met": gap <= 1e-3}]
    return {"shapes": [[m, n] for _, m, n, _ in shapes], "rank": rank, "tool_wall_s": walls, "tool_peak_rss_mib": rss,
            "numpy_svd_s": t_np, "rel_errors": errs, "exact_rel_errors": exact, "targets": targets,
            "report_seconds": {l["name"]: l.get("seconds") for l in rep["layers"]}}


def collect(parts):
    """Every part's targets as {part, target, value, goal, op, met}."""
    out = []
    for part, res in parts.items():
        if not res: continue
        for t in res.get("targets", []):
            out.append({"part": part, "target": t.get("target") or t.get("what"), "value": t.get("value"),
                        "goal": t.get("goal"), "op": t.get("op"), "met": bool(t.get("met"))})
        for row in res.get("rows", []) if part == "peer" else []:
            if "speedup" in row and "goal" in row:
                out.append({"part": part, "target": f"{row['case']}: TensorLy time / tdecomp time",
                            "value": row["speedup"], "goal": row["goal"], "op": ">=", "met": bool(row["met"])})
            if "per_sweep" in row:
                ps = row["per_sweep"]
                if ps["speedup"] is None or ps["speedup"] <= 0:   # noise above 49 sweeps' time
                    ps = dict(ps, speedup=None, met=False)
                out.append({"part": part, "target": f"{row['case']}: per sweep, TensorLy / tdecomp",
                            "value": ps["speedup"], "goal": ps["goal"], "op": ">=", "met": bool(ps["met"])})
    return out


def fmt(v):
    if v is None: return "not measurable"
    if isinstance(v, bool): return str(v)
    return f"{v:.3g}" if abs(v) < 0.01 or abs(v) >= 1000 else f"{v:.2f}"


def markdown(report):
    p, lines = report["parts"], []
    lines.append(f"Measured {report['date']} by `{report['command']}` on {report['machine']}"
                 + (f"; DGEMM {dgemm_rate(report):.0f} GF/s in this run (ratios from one run hold on a busy "
                    "machine, absolute times do not)" if dgemm_rate(report) else "") + "."
                 + (f" {report['note']}" if report.get("note") else ""))
    lines.append("")
    lines.append("| part | target | measured | goal | |")
    lines.append("|---|---|---|---|---|")
    for t in report["targets"]:
        goal = "" if t["goal"] is None else f"{t['op'] or '>='} {fmt(t['goal'])}"
        lines.append(f"| {t['part']} | {t['target']} | {fmt(t['value'])} | {goal} | {'met' if t['met'] else '**not met**'} |")
    if p.get("llm"):
        l = p["llm"]
        lines += ["", f"LLM pair {l['shapes']} float32 at rank {l['rank']}, whole tool: "
                  f"{statistics.median(l['tool_wall_s']):.1f} s, peak RSS {max(l['tool_peak_rss_mib']):.0f} MiB; "
                  f"numpy reading both and `linalg.svd` of each: {statistics.median(l['numpy_svd_s']):.1f} s."]
    if p.get("svd"):
        lines += ["", "| matrix | rank | tdecomp | numpy svd | old dgesdd route | route | error gap |", "|---|---|---|---|---|---|---|"]
        for r in p["svd"]["rows"]:
            lines.append(f"| {tuple(r['shape'])} | {r['rank']} | {r['tdecomp_s']:.2f} s | {r['numpy_svd_s']:.2f} s "
                         f"| {r.get('today_gesdd_s', float('nan')):.2f} s | {r['route']}, {r['power_iters']} power passes "
                         f"| {r['relative_error_gap']:.1e} |")
    if p.get("model"):
        m = p["model"]["medians"]
        lines += ["", f"ResNet-50-shaped file at --rank-ratio 0.5 (jobs {p['model']['jobs']}): wall {m['wall_s']['ours']:.2f} s "
                  f"vs TensorLy {m['wall_s']['tensorly']:.2f} s ({m['wall_s']['ratio']:.2f}x), decomposition calls "
                  f"{m['decomposition_s']['ratio']:.2f}x, peak RSS {m['peak_rss_mib']['ours']:.0f} vs "
                  f"{m['peak_rss_mib']['tensorly']:.0f} MiB."]
    if p.get("peer"):
        lines += ["", "| case | tdecomp | TensorLy | ratio |", "|---|---|---|---|"]
        for r in p["peer"]["rows"]:
            if "tdecomp_s" in r:
                lines.append(f"| {r['case']} | {r['tdecomp_s']:.3f} s | {r['tensorly_s']:.3f} s | {r['speedup']:.1f}x |")
    return "\n".join(lines)


def dgemm_rate(report):
    m = report["parts"].get("machine") or {}
    return next((c["gflops"] for c in m.get("cases", []) if c["case"].startswith("dgemm 2000")), None)


def headline(report):
    """The README's few lines: the whole-job targets, from this run."""
    t = report["targets"]
    met = sum(x["met"] for x in t)
    key = [x for x in t if x["goal"] is not None and x["op"] != "<=" and
           (x["part"] in ("llm", "model") or "time to" in x["target"] or
            (x["target"].startswith("cp ") and "per sweep" not in x["target"]))]
    return (f"{met} of {len(t)} performance targets met in the last full run ({report['date']}, "
            f"{report['machine']}); every figure, with the command that produced it: "
            f"[docs/perf.md](docs/perf.md#measured-in-one-run).\n\n"
            + "\n".join(f"- {'ResNet-50-shaped file, ' if x['part'] == 'model' else ''}{x['target']}: {fmt(x['value'])} ({'met' if x['met'] else 'not met'}, goal "
                        f"{x['op'] or '>='} {fmt(x['goal'])})" for x in key))


def replace_block(path, text):
    with open(path) as f: s = f.read()
    pat = re.compile(r"(<!-- perf-report:begin -->\n).*?(<!-- perf-report:end -->)", re.S)
    if not pat.search(s):
        sys.exit(f"perf_report: {path} has no perf-report block")
    with open(path + ".tmp", "w") as f: f.write(pat.sub(lambda m: m.group(1) + text + "\n" + m.group(2), s))
    os.replace(path + ".tmp", path)


def machine_name(env):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, {env['OPENBLAS_NUM_THREADS']} BLAS threads"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--peer", default=os.environ.get("TDECOMP_PEER"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="machine,peer,model,svd,llm")  # model before llm: llm loads its matrices here
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default="perf_report.json")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--from-json", default=None, help="render a saved run's JSON again (with --write-docs), measuring nothing")
    a = ap.parse_args()
    if a.from_json:
        with open(a.from_json) as f: report = json.load(f)
        report["targets"] = collect(report["parts"])
        report["command"] = re.sub(r"--peer \S+", "--peer PEER.py", report["command"])
        if a.write_docs:
            replace_block(os.path.join(ROOT, "docs", "perf.md"), markdown(report))
            replace_block(os.path.join(ROOT, "README.md"), headline(report))
        print(markdown(report))
        return 0
    a.build = os.path.abspath(a.build)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    tool = os.path.join(a.build, "tools", "tdecomp-tool", "tdecomp-tool")
    bench = os.path.join(a.build, "tools", "bench", "tdecomp-bench")
    q = ["--quick"] if a.quick else []
    work = tempfile.mkdtemp(prefix="tdperf-")
    parts = {}
    try:
        for part in a.parts.split(","):
            js = os.path.join(work, part + ".json")
            if part == "machine":
                parts[part] = run_part(part, [bench, "--json", js] + q, env, js)
            elif part == "peer":
                if not a.peer:
                    print("=== peer: skipped (no --peer PEER.py)"); continue
                parts[part] = run_part(part, [PY, os.path.join(HERE, "peer_compare.py"), "--tool", tool, "--peer", a.peer,
                                              "--threads", str(a.threads), "--repeat", str(a.repeat), "--json", js] + q, env, js)
            elif part == "svd":
                parts[part] = run_part(part, [PY, os.path.join(HERE, "svd_bench.py"), "--bench", bench, "--today",
                                              "--threads", str(a.threads), "--json", js] + q, env, js)
            elif part == "llm":
                print("\n=== llm", flush=True)
                parts[part] = llm_part(a, env, work)
            elif part == "model":
                parts[part] = run_part(part, [PY, os.path.join(HERE, "model_bench.py"), "--tool", tool,
                                              "--threads", str(a.threads), "--repeat", str(a.repeat), "--json", js] + q, env, js)
            else:
                sys.exit(f"perf_report: unknown part {part}")
    finally:
        for f in os.listdir(work): os.remove(os.path.join(work, f))
        os.rmdir(work)
    failed = [p for p, r in parts.items() if r is None]
    report = {"perf_report": 1, "date": datetime.date.today().isoformat(), "machine": machine_name(env),
              "command": "tools/bench/perf_report.py " + " ".join("PEER.py" if x == a.peer else x for x in sys.argv[1:]),
              "parts": parts,
              "failed_parts": failed}
    report["targets"] = collect(parts)
    print("\ntargets (this run):")
    for t in report["targets"]:
        print(f"  [{t['part']}] {t['target']}: {fmt(t['value'])}"
              + (f" (goal {t['op'] or '>='} {fmt(t['goal'])})" if t["goal"] is not None else "")
              + f": {'met' if t['met'] else 'NOT met'}")
    with open(a.json, "w") as f: json.dump(report, f, indent=1)
    print(f"wrote {a.json}")
    if a.write_docs:
        if failed or a.quick or set(a.parts.split(",")) != {"machine", "peer", "svd", "llm", "model"}:
            sys.exit("perf_report: --write-docs needs a full run with every part")
        replace_block(os.path.join(ROOT, "docs", "perf.md"), markdown(report))
        replace_block(os.path.join(ROOT, "README.md"), headline(report))
        print("rewrote the measured blocks of docs/perf.md and README.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
