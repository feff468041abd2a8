#!/usr/bin/python3
"""LLM-sized truncated SVD: tdecomp's td_svd_trunc (through `tdecomp-bench --svd-raw`) against
numpy.linalg.svd of the same matrix, in the same run, same OpenBLAS core and thread count.

Inputs: (4096, 11008) and (11008, 4096) float32-valued (stored float64) low-ish-rank matrices:
U diag(s) V^T with s decaying over ~1.5 x the rank plus a noise floor, seeded. Rank 512.
Targets (issue 18): the pair >= 10x faster than numpy's svd (full_matrices=False); each relative
error within 1e-3 (relative) of the exact truncated SVD's (numpy's singular values);
optionally (--today) >= 20x faster than the dgesdd route the tool took before.
Never run by the test suite.

usage: /usr/bin/python3 tools/bench/svd_bench.py --bench BUILD/tools/bench/tdecomp-bench
           [--threads 2] [--rank 512] [--quick] [--today] [--json FILE]"""
import argparse, json, os, subprocess, sys, tempfile, time


def make_matrix(np, m, n, rank, seed):
    rng = np.random.default_rng(seed)
    p = min(m, n)
    signal = min(p, int(1.5 * rank))
    s = np.exp(-4.0 * np.arange(signal) / signal)
    a = (rng.standard_normal((m, signal)) * s) @ rng.standard_normal((signal, n))
    a += 0.02 * np.abs(a).mean() * rng.standard_normal((m, n))
    return a.astype(np.float32).astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=512)
    ap.add_argument("--quick", action="store_true", help="(1024, 2752) and its transpose at rank 128")
    ap.add_argument("--today", action="store_true", help="also time the dgesdd route (slow)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import numpy as np  # after the thread count is set

    rank = 128 if a.quick else a.rank
    shapes = [(1024, 2752), (2752, 1024)] if a.quick else [(4096, 11008), (11008, 4096)]
    work = tempfile.mkdtemp(prefix="tdsvd-")
    rows, tot_np, tot_td, tot_today = [], 0.0, 0.0, 0.0
    for i, (m, n) in enumerate(shapes):
        w = make_matrix(np, m, n, rank, 10 + i)
        path = os.path.join(work, "w.raw")
        w.tofile(path)

        def ours(method):
            r = subprocess.run([a.bench, "--svd-raw", path, str(m), str(n), str(rank), method],
                               capture_output=True, text=True, env=os.environ)
            if r.returncode != 0:
                sys.exit(f"svd_bench: tdecomp-bench failed: {r.stderr.strip()[-300:]}")
            return json.loads(r.stdout.strip().splitlines()[-1])

        td = ours("auto")
        t = time.perf_counter()
        _, s, _ = np.linalg.svd(w, full_matrices=False)
        t_np = time.perf_counter() - t
        nw2 = float(s @ s)
        exact = float(np.sqrt(max(nw2 - float(s[:rank] @ s[:rank]), 0.0) / nw2))
        gap = td["rel_error"] / exact - 1.0
        row = {"shape": [m, n], "rank": rank, "tdecomp_s": td["seconds"], "numpy_svd_s": t_np,
               "speedup_vs_numpy": t_np / td["seconds"], "route": td["route"], "power_iters": td["power_iters"],
               "fell_back": td["fell_back"], "rel_error": td["rel_error"], "exact_truncated_rel_error": exact,
               "relative_error_gap": gap, "tdecomp_extra_mem_mib": td["extra_mem_mib"],
               "openblas_core": td["openblas_core"], "threads": td["threads"]}
        if a.today:
            old = ours("gesdd")
            row["today_gesdd_s"] = old["seconds"]
            row["speedup_vs_today"] = old["seconds"] / td["seconds"]
            tot_today += old["seconds"]
        rows.append(row)
        tot_np += t_np
        tot_td += td["seconds"]
        print(f"({m:5d},{n:5d}) rank {rank}: tdecomp {td['seconds']:7.2f} s ({td['route']}, q={td['power_iters']})"
              f"  numpy svd {t_np:7.2f} s  ratio {t_np / td['seconds']:6.1f}x"
              + (f"  today {row['today_gesdd_s']:7.2f} s ({row['speedup_vs_today']:.1f}x)" if a.today else "")
              + f"  rel_error {td['rel_error']:.8f} vs exact {exact:.8f} (gap {gap:.2e})", flush=True)
        os.remove(path)
    os.rmdir(work)
    targets = [("pair: numpy svd time / tdecomp time", tot_np / tot_td, 10.0, ">="),
               ("worst relative error gap to the exact truncated SVD", max(r["relative_error_gap"] for r in rows), 1e-3, "<=")]
    if a.today:
        targets.append(("pair: dgesdd route (today) time / tdecomp time", tot_today / tot_td, 20.0, ">="))
    print(f"OpenBLAS core {rows[0]['openblas_core']}, {rows[0]['threads']} threads\ntargets (measured in this run):")
    out = []
    for what, v, goal, op in targets:
        met = v >= goal if op == ">=" else v <= goal
        out.append({"target": what, "value": v, "goal": goal, "op": op, "met": met})
        print(f"  {what:55s} {v:10.4g}  ({op} {goal:g})  {'met' if met else 'NOT met'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"svd_bench": 1, "rows": rows, "targets": out}, f, indent=1)


if __name__ == "__main__":
    main()
