#!/usr/bin/python3
"""CLI tests of tdecomp-tool's generic behaviour, cp and tucker: exit codes, the one-line error
format, JSON keys, output layout, refusals, inputs left untouched, no temporary files left.
usage: test_cp_tucker.py TOOL DATA_DIR"""
import hashlib, json, os, shutil, stat, subprocess, sys, tempfile
import numpy as np, h5py

TOOL, DATA = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
W = tempfile.mkdtemp(prefix="tdcli-")
fails, passed = [], 0

def run(*args):
    return subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True, timeout=300)

def check(cond, what):
    global passed
    if cond: passed += 1
    else: fails.append(what)
    return cond

def digest(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()

def no_temps(d): return [f for f in os.listdir(d) if ".tdtmp." in f] == []

def err_case(name, args, code, mentions=(), inputs=()):
    before = {p: digest(p) for p in inputs if os.path.isfile(p)}
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == code, f"{name}: exit {r.returncode}, expected {code} ({r.stderr.strip()[-200:]})")
    check(bool(lines) and lines[-1].startswith("tdecomp-tool: "), f"{name}: last stderr line format: {lines[-1:]!r}")
    check(r.stdout == "", f"{name}: printed on stdout: {r.stdout[:100]!r}")
    for m in mentions: check(m in (lines[-1] if lines else ""), f"{name}: message lacks {m!r}: {lines[-1:]!r}")
    for p, h in before.items(): check(digest(p) == h, f"{name}: input {p} changed")
    check(no_temps(W), f"{name}: temporary files left in the output folder")
    return r

def jrun(name, *args):
    r = run(*args)
    if not check(r.returncode == 0, f"{name}: exit {r.returncode}: {r.stderr.strip()[-300:]}"): return None
    out = r.stdout.strip().splitlines()
    check(len(out) == 1, f"{name}: --json must print one line, got {len(out)}")
    try: return json.loads(out[0])
    except Exception as e: check(False, f"{name}: bad JSON {e}"); return None

# work on copies so a bug cannot damage the repository's files
cp3, tk, odd = (shutil.copy(os.path.join(DATA, n), W) for n in ("cp3.h5", "tucker.h5", "odd.h5"))

# --- generic
r = run("--version"); check(r.returncode == 0 and r.stdout.startswith("tdecomp-tool ") and len(r.stdout.split()) == 2, f"--version: {r.stdout!r}")
check(run("--help").returncode == 0, "--help exits 0")
for sub in ("cp", "tucker"): check(run(sub, "--help").returncode == 0 and "usage" in run(sub, "--help").stdout, f"{sub} --help")
err_case("no subcommand", [], 2)
err_case("unknown subcommand", ["frobnicate"], 2, ["frobnicate"])
err_case("unknown global option", ["--frob"], 2, ["--frob"])

# --- cp
o = os.path.join(W, "cp.h5")
j = jrun("cp json", "cp", cp3, "--dataset", "/tensor", "--rank", 3, "--max-iter", 1000, "--tol", "1e-12", "--json", "-o", o)
if j:
    for k in ("shape", "rank", "method", "rel_error", "iterations", "converged", "seconds", "history"):
        check(k in j, f"cp json lacks {k}")
    check(j["shape"] == [12, 10, 8] and j["rank"] == 3 and j["method"] == "cp-als", f"cp json values {j}")
    check(j["rel_error"] < 1e-8, f"cp: exact rank-3 tensor not recovered: {j['rel_error']}")
    check(len(j["history"]) == j["iterations"], "cp: history length != iterations")
    with h5py.File(o) as f:
        check(f["weights"].shape == (3,) and f["weights"].dtype == np.float64, "cp -o /weights")
        fs = [f[f"factors/{n}"][()] for n in range(3)]
        check([a.shape for a in fs] == [(12, 3), (10, 3), (8, 3)], "cp -o factor shapes")
        w = f["weights"][()]
        check(f.attrs["tdecomp_version"] and "cp" in str(f.attrs["tdecomp_command"]), "cp -o root attributes")
    with h5py.File(cp3) as f: x = f["tensor"][()]
    xh = np.einsum("r,ir,jr,kr->ijk", w, *fs)
    check(np.linalg.norm(x - xh) / np.linalg.norm(x) < 1e-8, "cp -o: the written factors do not reconstruct the tensor")
j = jrun("cp tol0", "cp", cp3, "--dataset", "/tensor", "--rank", 2, "--tol", 0, "--max-iter", 7, "--json")
if j: check(j["iterations"] == 7 and len(j["history"]) == 7 and j["converged"] is False, f"cp --tol 0: {j['iterations']} sweeps")
j = jrun("cp random float32 nested", "cp", cp3, "--dataset", "nested/cp3_f32", "--rank", 3, "--init", "random", "--seed", 5, "--json", "--max-iter", 500)
if j: check(j["init"] == "random" and j["rel_error"] < 1e-5, f"cp random init on float32: {j.get('rel_error')}")
j = jrun("cp rank above every mode", "cp", odd, "--dataset", "/vector", "--rank", 9, "--json", "--max-iter", 5)
r = run("cp", cp3, "--dataset", "/tensor", "--rank", 2, "--max-iter", 3)
check(r.returncode == 0 and "relative error" in r.stdout, "cp without --json prints a summary")
# refusals
err_case("cp existing output", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", o], 1, ["already exists"], [o, cp3])
check(run("cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", o, "--force").returncode == 0, "cp --force replaces")
err_case("cp output == input", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", cp3, "--force"], 1, ["input"], [cp3])
hl = os.path.join(W, "hardlink.h5"); os.link(cp3, hl)
err_case("cp output hard link to input", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", hl, "--force"], 1, ["input"], [cp3])
sl = os.path.join(W, "symlink.h5"); os.symlink(cp3, sl)
err_case("cp output symlink to input", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", sl, "--force"], 1, ["input"], [cp3])
err_case("cp input through symlink, output == target", ["cp", sl, "--dataset", "/tensor", "--rank", 2, "-o", cp3, "--force"], 1, ["input"], [cp3])
err_case("cp output in a missing folder", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", os.path.join(W, "nope", "x.h5")], 1, ["does not exist"], [cp3])
# a folder (like a device or FIFO) is never an output file: a usage error
err_case("cp output is a directory", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", W, "--force"], 2, [], [cp3])
ro = os.path.join(W, "ro"); os.mkdir(ro); os.chmod(ro, 0o555)
if os.access(ro, os.W_OK):
    print("skipped: read-only output folder (running as root, where a 0555 folder is still writable)")
else:
    err_case("cp output in a read-only folder", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o", os.path.join(ro, "x.h5")], 1, ["not writable"], [cp3])
# bad inputs
err_case("cp missing file", ["cp", os.path.join(W, "absent.h5"), "--dataset", "/t", "--rank", 2], 1, ["absent.h5", "no such file"])
err_case("cp missing dataset", ["cp", cp3, "--dataset", "/nope", "--rank", 2], 1, [cp3, "/nope"], [cp3])
err_case("cp group, not dataset", ["cp", odd, "--dataset", "/group", "--rank", 2], 1, ["/group"], [odd])
err_case("cp int dataset", ["cp", odd, "--dataset", "/ints", "--rank", 2], 1, ["/ints", "int32"], [odd])
err_case("cp string dataset", ["cp", odd, "--dataset", "/strings", "--rank", 2], 1, ["/strings", "string"], [odd])
err_case("cp compound dataset", ["cp", odd, "--dataset", "/compound", "--rank", 2], 1, ["/compound", "compound"], [odd])
err_case("cp empty dataset", ["cp", odd, "--dataset", "/empty", "--rank", 2], 1, ["/empty", "empty"], [odd])
err_case("cp NaN", ["cp", odd, "--dataset", "/nan", "--rank", 2, "-o", os.path.join(W, "n.h5")], 1, ["/nan", "NaN"], [odd])
check(not os.path.exists(os.path.join(W, "n.h5")), "cp NaN left an output")
err_case("cp Inf", ["cp", odd, "--dataset", "/inf", "--rank", 2], 1, ["/inf", "Inf"], [odd])
err_case("cp scalar", ["cp", odd, "--dataset", "/scalar", "--rank", 2], 1, ["/scalar", "scalar"], [odd])
txt = os.path.join(W, "text.h5"); open(txt, "w").write("not hdf5\n")
err_case("cp text file", ["cp", txt, "--dataset", "/t", "--rank", 2], 1, ["not an HDF5 file"], [txt])
emp = os.path.join(W, "empty.h5"); open(emp, "w").close()
err_case("cp empty file", ["cp", emp, "--dataset", "/t", "--rank", 2], 1, ["empty"], [emp])
trunc = os.path.join(W, "trunc.h5"); open(trunc, "wb").write(open(cp3, "rb").read()[:3000])
r = err_case("cp truncated file", ["cp", trunc, "--dataset", "/tensor", "--rank", 2], 1, [], [trunc])
err_case("cp directory input", ["cp", W, "--dataset", "/t", "--rank", 2], 1, ["directory"])
# usage errors win over input errors
err_case("cp rank 0", ["cp", os.path.join(W, "absent.h5"), "--dataset", "/t", "--rank", 0], 2, ["--rank"])
err_case("cp rank negative", ["cp", cp3, "--dataset", "/tensor", "--rank", "-3"], 2)
err_case("cp rank junk", ["cp", cp3, "--dataset", "/tensor", "--rank", "3x"], 2, ["3x"])
err_case("cp missing rank", ["cp", cp3, "--dataset", "/tensor"], 2, ["--rank"])
err_case("cp missing dataset option", ["cp", cp3, "--rank", 2], 2, ["--dataset"])
err_case("cp bad init", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "--init", "magic"], 2, ["magic"])
err_case("cp negative tol", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "--tol", "-1"], 2)
err_case("cp nan tol", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "--tol", "nan"], 2)
err_case("cp max-iter 0", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "--max-iter", 0], 2)
err_case("cp unknown option", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "--frob"], 2, ["--frob"])
err_case("cp -o without value", ["cp", cp3, "--dataset", "/tensor", "--rank", 2, "-o"], 2)

# --- tucker
j = jrun("tucker hooi default", "tucker", tk, "--dataset", "/tensor", "--ranks", "3,2,4", "--json")
if j:
    for k in ("shape", "ranks", "modes", "method", "rel_error", "iterations", "converged", "seconds", "history"):
        check(k in j, f"tucker json lacks {k}")
    check(j["method"] == "hooi" and j["modes"] == [0, 1, 2] and j["ranks"] == [3, 2, 4], f"tucker defaults {j}")
    check(j["rel_error"] < 1e-12, f"tucker: exact multilinear rank not recovered: {j['rel_error']}")
    check(len(j["history"]) == j["iterations"] >= 1, "tucker history length")
for m in ("hosvd", "sthosvd"):
    j = jrun(f"tucker {m}", "tucker", tk, "--dataset", "/tensor", "--ranks", "3,2,4", "--method", m, "--json")
    if j: check(j["iterations"] == 0 and j["converged"] is True and j["history"] == [] and j["rel_error"] < 1e-12, f"tucker {m}: {j}")
o = os.path.join(W, "tk.h5")
j = jrun("tucker modes -o", "tucker", tk, "--dataset", "/kernel", "--ranks", "4,3", "--modes", "1,0", "--json", "-o", o, "--tol", 0, "--max-iter", 4)
if j:
    check(j["modes"] == [0, 1] and j["ranks"] == [3, 4] and j["iterations"] == 4 and j["dtype"] == "float16", f"tucker --modes 1,0: {j}")
    with h5py.File(o) as f:
        core, u0, u1 = f["core"][()], f["factors/0"][()], f["factors/1"][()]
        check(core.shape == (3, 4, 3, 3) and core.dtype == np.float64, f"tucker core {core.shape}")
        check(u0.shape == (16, 3) and u1.shape == (8, 4), "tucker factor shapes")
        check("factors/2" not in f, "tucker wrote a factor for an undecomposed mode")
        check(np.abs(u0.T @ u0 - np.eye(3)).max() < 1e-12, "tucker factors orthonormal")
    with h5py.File(tk) as f: w = f["kernel"][()].astype(np.float64)
    wh = np.einsum("abhw,ia,jb->ijhw", core, u0, u1)
    check(abs(np.linalg.norm(w - wh) / np.linalg.norm(w) - j["rel_error"]) < 1e-10, "tucker rel_error matches numpy's recomputation from the file")
# a Tucker-2 of 2^20 entries: its warm sweeps run in float32 (float_sweeps), and rel_error is still
# the exact error of what was written (numpy's recomputation from the file)
big, o2 = os.path.join(W, "big.h5"), os.path.join(W, "big_out.h5")
with h5py.File(big, "w") as f: f["w"] = np.random.default_rng(5).standard_normal((128, 128, 8, 8))
j = jrun("tucker2 float sweeps", "tucker", big, "--dataset", "/w", "--ranks", "24,20", "--modes", "0,1", "--json",
         "-o", o2, "--tol", 0, "--max-iter", 4)
if j:
    check(j.get("float_sweeps") == 3 and j["iterations"] == 4, f"tucker2 float sweeps: {j.get('float_sweeps')}")
    with h5py.File(o2) as f: core, u0, u1 = f["core"][()], f["factors/0"][()], f["factors/1"][()]
    with h5py.File(big) as f: w = f["w"][()]
    wh = np.einsum("abhw,ia,jb->ijhw", core, u0, u1)
    check(abs(np.linalg.norm(w - wh) / np.linalg.norm(w) - j["rel_error"]) < 1e-10, "tucker2 float sweeps: rel_error is not the file's")
    check(np.abs(u1.T @ u1 - np.eye(20)).max() < 1e-12, "tucker2 float sweeps: factors not orthonormal")
j = jrun("tucker2 small: double", "tucker", tk, "--dataset", "/kernel", "--ranks", "4,3", "--modes", "0,1", "--json")
if j: check(j.get("float_sweeps") == 0, f"tucker2 below 2^20 entries ran float sweeps: {j.get('float_sweeps')}")
err_case("tucker rank above mode", ["tucker", tk, "--dataset", "/tensor", "--ranks", "11,2,2"], 1, ["mode 0", "exceeds"], [tk])
err_case("tucker wrong rank count", ["tucker", tk, "--dataset", "/tensor", "--ranks", "3,2"], 1, ["3 modes"], [tk])
err_case("tucker mode out of range", ["tucker", tk, "--dataset", "/tensor", "--ranks", "2", "--modes", "5"], 1, ["mode 5"], [tk])
err_case("tucker ranks/modes count mismatch", ["tucker", tk, "--dataset", "/tensor", "--ranks", "2,2", "--modes", "0"], 2)
err_case("tucker duplicate mode", ["tucker", tk, "--dataset", "/tensor", "--ranks", "2,2", "--modes", "0,0"], 2, ["twice"])
err_case("tucker malformed ranks", ["tucker", tk, "--dataset", "/tensor", "--ranks", "3,,2"], 2)
err_case("tucker zero rank", ["tucker", tk, "--dataset", "/tensor", "--ranks", "3,0,2"], 2)
err_case("tucker bad method", ["tucker", tk, "--dataset", "/tensor", "--ranks", "3,2,2", "--method", "svd"], 2, ["svd"])
err_case("tucker missing ranks", ["tucker", tk, "--dataset", "/tensor"], 2, ["--ranks"])
err_case("tucker int dataset", ["tucker", odd, "--dataset", "/ints", "--ranks", "1,1,1"], 1, ["/ints"], [odd])
err_case("tucker existing output", ["tucker", tk, "--dataset", "/tensor", "--ranks", "3,2,4", "-o", o], 1, ["already exists"], [o, tk])

print(f"{passed} passed, {len(fails)} failed")
for f in fails: print("FAIL", f)
shutil.rmtree(W, ignore_errors=True)
sys.exit(1 if fails else 0)
