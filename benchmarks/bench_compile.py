"""Time to first result: W1 from a fresh process to the first forward + backward returning.

Every run is a fresh ``python -c`` subprocess that imports numpy, imports symjit_numba, builds W1
(8 kinds cycled over 512 nodes, float32, 512 x 4096) with ``SymbolicJITCompiler`` and calls
``forward_kernel`` then ``backward_kernel`` once. It stamps ``time.monotonic()`` (CLOCK_MONOTONIC,
comparable across processes on Linux) after each step; the parent stamps just before starting it.

Scenarios:

* CPU_JIT cold  -- ``SYMJIT_NUMBA_CACHE_DIR`` is a new empty folder: the named formulas' modules
                   ship with the package, and numba's cache next to the package holds their
                   compiled code (compiled at their first use on this installation);
* CPU_JIT cold, W1 as formula strings -- as cold, but each kind written as ``"1*(<its formula>)"``:
                   the same kernels, but SymPy parses, differentiates and prints each formula into
                   its own module in the cache folder, and numba compiles it;
* CPU_JIT first use after install -- as cold, and ``NUMBA_CACHE_DIR`` is a new empty folder too, so
                   everything compiled once per installation (the math library ``vector_math``,
                   the task runners, the named formulas' modules) is compiled as well;
* CPU_JIT warm  -- the same folder, filled by a previous run: the generated module and numba's
                   compiled code are loaded from disk;
* CPU_PYTHON    -- sympy.lambdify, nothing cached (for reference);
* seed (g++)    -- the seed design from ``seed_reference.py`` (SymPy + g++ + ctypes), nothing cached;
* bare python   -- ``python -c pass``: the interpreter's own start-up.

``NUMBA_CACHE_DIR`` is removed from the children's environment (except in "first use"), so numba
caches the kernels next to the generated modules, inside the cache folder, and the math library next
to the package. Each column is the median over the runs of that column
alone. The OS file cache is warm in every scenario (the first, discarded, run warms it).

Usage::

    python benchmarks/bench_compile.py [--runs 3] [--layout node_major] [--markdown FILE] [--seed PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_SEED, REPO, W1_KINDS, cores, emit, machine_lines, median  # noqa: E402

CHILD = r"""
import time, sys, json
T = {"start": time.monotonic()}
import numpy as np
T["numpy"] = time.monotonic()
ARGS = json.loads(sys.argv[1])
KINDS = [(k, dict(c)) for k, c in ARGS["kinds"]]
configs = [KINDS[j % len(KINDS)] for j in range(ARGS["nodes"])]
loaded = {}
if ARGS["method"] == "seed":
    import importlib.util
    spec = importlib.util.spec_from_file_location("seed_reference", ARGS["seed"])
    seed = importlib.util.module_from_spec(spec); spec.loader.exec_module(seed)
    T["import"] = time.monotonic()
    loaded = {m: m in sys.modules for m in ("numba", "sympy")}
    k = seed.SeedKernel(configs)
    T["constructor"] = time.monotonic()
    ids = {}
    params, offsets = [], []
    for kind, consts in configs:
        offsets.append(len(params)); params += [consts[c] for c in sorted(consts)]
    params = np.asarray(params, np.float32); offsets = np.asarray(offsets, np.int32)
    fwd = lambda z, a: k.forward(z, a, params, offsets)
    bwd = lambda z, e, d: k.backward(z, e, d, params, offsets)
else:
    import symjit_numba
    from symjit_numba import SymbolicJITCompiler
    T["import"] = time.monotonic()
    loaded = {m: m in sys.modules for m in ("numba", "sympy")}
    c = SymbolicJITCompiler(configs, ARGS["method"], layout=ARGS["layout"])
    assert c.calculation_method == ARGS["method"], c.calculation_method
    T["constructor"] = time.monotonic()
    params, offsets = c.make_params(np.float32)
    n, b = ARGS["nodes"], ARGS["batch"]
    fwd = lambda z, a: c.forward_kernel(z, a, params, offsets, n, b)
    bwd = lambda z, e, d: c.backward_kernel(z, e, d, params, offsets, n, b)
shape = (ARGS["nodes"], ARGS["batch"]) if ARGS["layout"] == "node_major" else (ARGS["batch"], ARGS["nodes"])
rng = np.random.default_rng(0)
z = rng.standard_normal(shape, dtype=np.float32); e = rng.standard_normal(shape, dtype=np.float32)
a = np.empty_like(z); d = np.empty_like(z)
T["arrays"] = time.monotonic()
fwd(z, a)
bwd(z, e, d)
T["ready"] = time.monotonic()
loaded_after = {m: m in sys.modules for m in ("numba", "sympy")}
print("RESULT" + json.dumps({"T": T, "after_import": loaded, "after_ready": loaded_after}))
"""


def child_env(cache_dir: Path | None, numba_cache_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    if numba_cache_dir is not None:  # everything numba caches goes there, the math library included
        env["NUMBA_CACHE_DIR"] = str(numba_cache_dir)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if cache_dir is not None:
        env["SYMJIT_NUMBA_CACHE_DIR"] = str(cache_dir)
    return env


def custom_kinds() -> list[tuple[str, dict[str, float]]]:
    """W1 with each named formula written out as the user's own string ("1*(...)"): the same kernel,
    but not found in the package's printed table, so SymPy parses, differentiates and prints it."""
    sys.path.insert(0, str(REPO))
    from symjit_numba import available_formulas

    named = available_formulas("activation")
    return [(f"1*({named[k].formula})", {**named[k].defaults, **c}) for k, c in W1_KINDS]


def run_child(args: argparse.Namespace, method: str, cache_dir: Path | None, *, kinds=None,
              numba_cache_dir: Path | None = None) -> dict:
    payload = json.dumps({"kinds": [[k, sorted(c.items())] for k, c in (kinds or W1_KINDS)], "nodes": args.nodes,
                          "batch": args.batch, "method": method, "layout": args.layout, "seed": str(args.seed)})
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", CHILD, payload], env=child_env(cache_dir, numba_cache_dir),
                          capture_output=True, text=True)
    t_exit = time.monotonic()
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{method} child failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(lines[-1][len("RESULT"):])
    T = result["T"]
    result["steps"] = {
        "interpreter start": T["start"] - t0,
        "import numpy": T["numpy"] - T["start"],
        "import library": T["import"] - T["numpy"],
        "constructor": T["constructor"] - T["import"],
        "first fwd+bwd": T["ready"] - T["arrays"],
        "constructor -> first fwd+bwd": (T["constructor"] - T["import"]) + (T["ready"] - T["arrays"]),
        "process start -> ready": T["ready"] - t0,
        "exit": t_exit - T["ready"],
    }
    return result


def loaded(modules: dict[str, bool]) -> str:
    return ", ".join(k for k, v in modules.items() if v) or "neither numba nor sympy"


def bare_python() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - t0


def import_alone(module: str) -> float:
    """Seconds ``import module`` takes in a fresh interpreter."""
    code = f"import time; t = time.monotonic(); import {module}; print(time.monotonic() - t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=child_env(None))
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3; at least 3 recommended)")
    p.add_argument("--warm-runs", type=int, default=0, help="runs of the warm scenario (default: 2 x --runs)")
    p.add_argument("--nodes", type=int, default=512)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--layout", default="node_major", choices=("node_major", "batch_major"))
    p.add_argument("--seed", type=Path, default=DEFAULT_SEED, help=f"seed_reference.py (default {DEFAULT_SEED})")
    p.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = p.parse_args()
    load_before = os.getloadavg()[0]
    warm_runs = args.warm_runs or 2 * args.runs

    scratch = Path(tempfile.mkdtemp(prefix="bench_compile-"))
    runs: dict[str, list[dict]] = {}
    try:
        # warm the OS file cache (python, numpy, numba, sympy, torch-free) with one discarded cold run
        run_child(args, "CPU_JIT", scratch / "discard")
        runs["CPU_JIT cold (empty cache)"] = []
        for i in range(args.runs):
            r = run_child(args, "CPU_JIT", scratch / f"cold{i}")
            runs["CPU_JIT cold (empty cache)"].append(r)
            print(f"cold run {i}: {r['steps']['constructor -> first fwd+bwd']:.2f} s", file=sys.stderr)
        runs["CPU_JIT cold, W1 as formula strings (SymPy)"] = [
            run_child(args, "CPU_JIT", scratch / f"custom{i}", kinds=custom_kinds()) for i in range(args.runs)]
        runs["CPU_JIT first use after install (numba cache empty too)"] = [
            run_child(args, "CPU_JIT", scratch / f"first{i}", numba_cache_dir=scratch / f"numba{i}")
            for i in range(args.runs)]
        runs["CPU_JIT warm (filled cache)"] = []
        for i in range(warm_runs):
            r = run_child(args, "CPU_JIT", scratch / "cold0")
            runs["CPU_JIT warm (filled cache)"].append(r)
            print(f"warm run {i}: {r['steps']['constructor -> first fwd+bwd']:.3f} s", file=sys.stderr)
        runs["CPU_PYTHON"] = [run_child(args, "CPU_PYTHON", scratch / "py") for _ in range(args.runs)]
        seed_note = None
        if shutil.which("g++") is None:
            seed_note = "seed (g++) skipped: g++ not found"
        elif not args.seed.is_file():
            seed_note = f"seed (g++) skipped: {args.seed} not found"
        else:
            runs["seed (SymPy + g++)"] = [run_child(args, "seed", None) for _ in range(args.runs)]
        bare = median([bare_python() for _ in range(max(5, args.runs))])
        alone = {m: median([import_alone(m) for _ in range(max(5, args.runs))]) for m in ("numba", "sympy")}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    steps = ["interpreter start", "import numpy", "import library", "constructor", "first fwd+bwd",
             "constructor -> first fwd+bwd", "process start -> ready"]
    lines = [f"# Time to first result: W1 ({args.nodes} nodes x {args.batch} batch, 8 kinds, float32, "
             f"{args.layout}) in a fresh process", ""]
    lines += machine_lines()
    lines += [f"- load average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
              f"(on {cores()} cores)",
              "- seconds, median over runs of each column; 'import library' = `import symjit_numba` "
              "(the seed: importing seed_reference.py, i.e. SymPy); 'first fwd+bwd' = the first "
              "forward_kernel + backward_kernel calls (compile-on-first-call would show here); "
              "'process start -> ready' = from the parent starting the subprocess to fwd+bwd returned.",
              ""]
    lines.append("| scenario | runs | " + " | ".join(steps) + " |")
    lines.append("|---|---:|" + "---:|" * len(steps))
    for name, rs in runs.items():
        cells = [f"{median([r['steps'][s] for r in rs]):.3f}" for s in steps]
        lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
    lines.append(f"| bare `python -c pass` | {max(5, args.runs)} | {bare:.3f} | | | | | | {bare:.3f} |")
    lines += ["", "Notes:", ""]
    cold = median([r["steps"]["constructor -> first fwd+bwd"] for r in runs["CPU_JIT cold (empty cache)"]])
    warm = median([r["steps"]["constructor -> first fwd+bwd"] for r in runs["CPU_JIT warm (filled cache)"]])
    lines.append(f"- CPU_JIT constructor -> first fwd+bwd: cold / warm = {cold / warm:.0f}x")
    for name, rs in runs.items():
        after_import = rs[-1]["after_import"]
        after_ready = rs[-1]["after_ready"]
        lines.append(f"- {name}: loaded after the import: {loaded(after_import)}; "
                     f"after the first fwd+bwd: {loaded(after_ready)}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        lines.append("- PYTHONDONTWRITEBYTECODE is set here, so every process compiles the package's Python "
                     "sources (and the kernel module) to bytecode again: about 0.01-0.02 s that an installed "
                     "package, with its .pyc files, does not pay.")
    lines.append("- `import` alone in a fresh interpreter (median of 5): "
                 + ", ".join(f"{m} {t:.3f} s" for m, t in alone.items())
                 + " (compare with the 'import library' and 'constructor' columns).")
    if seed_note:
        lines.append(f"- {seed_note}")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
