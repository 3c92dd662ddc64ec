"""Many never-seen formulas at once: build a layer, then its first float32 and float64 calls.

Activation-function search and evolved networks build layers whose formulas nobody compiled before.
Each scenario runs in a fresh process with an empty kernel cache (the named formulas' numba cache,
shipped with the package, is warm): 10,000 nodes, 200 distinct formulas by default, node-major.
Printed per scenario: seconds to build the layer, for the first float32 forward + backward, for the
first float64 forward + backward, the total, and the peak resident memory of the layer's process
and of its compile workers (``settings.compile_processes``).

    python benchmarks/bench_many_formulas.py                  # 1 process vs the default
    python benchmarks/bench_many_formulas.py --formulas 50 --nodes 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _common import cores, emit, machine_lines

TEMPLATES = [
    "a*tanh(b*num) + {c}*sigmoid(num)",
    "a*num/(1 + Abs(b*num)) + {c}*num",
    "softplus({c}*num) - a*tanh(b*num)",
    "a*num*erf({c}*num) + b",
    "Piecewise((a*num, num < {c}), (expm1(num)*b, True))",
    "a*sin({c}*num) + b*cos(num)",
    "num*sigmoid(b*num) + {c}*log1p(a*num**2)",
    "Max(a*num, {c}*num) + b*atan(num)",
]

RUN = textwrap.dedent("""
    import json, resource, sys, time
    t0 = time.perf_counter()
    import numpy as np
    from symjit_numba import SymbolicJITCompiler, settings
    processes, configs, batch = json.loads(sys.stdin.read())
    settings.compile_processes = processes
    import warnings; warnings.simplefilter("ignore")
    started = time.perf_counter()
    layer = SymbolicJITCompiler([tuple(c) for c in configs], "CPU_JIT")
    built = time.perf_counter()
    times = {"build": built - started}
    for dtype in (np.float32, np.float64):
        params, offsets = layer.make_params(dtype)
        z = np.linspace(-2, 2, len(configs) * batch).astype(dtype).reshape(len(configs), batch)
        a, delta = np.empty_like(z), np.empty_like(z)
        start = time.perf_counter()
        layer.forward_kernel(z, a, params, offsets, len(configs), batch)
        layer.backward_kernel(z, a, delta, params, offsets, len(configs), batch)
        times[np.dtype(dtype).name] = time.perf_counter() - start
    times["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times["workers_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(times))
""")


def configs(n_formulas: int, n_nodes: int, seed: int) -> list:
    """``n_nodes`` nodes cycling over ``n_formulas`` distinct formulas, each with constants a, b."""
    formulas = []
    for k in range(n_formulas):
        c = round(0.5 + k / n_formulas + seed * 1e-3, 6)
        formulas.append(TEMPLATES[k % len(TEMPLATES)].format(c=c))
    return [(formulas[j % n_formulas], {"a": 1.0 + (j % 7) / 10, "b": 0.5}) for j in range(n_nodes)]


def run(processes: int, layer: list, batch: int) -> dict:
    environment = {**os.environ, "SYMJIT_NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="symjit-many-")}
    out = subprocess.run([sys.executable, "-c", RUN], input=json.dumps([processes, layer, batch]), env=environment,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--processes", type=int, nargs="*", default=None,
                        help="settings.compile_processes values to compare (default: 1 and the cores)")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    lines = [f"# {args.formulas} never-seen formulas, {args.nodes} nodes x {args.batch}", "",
             *machine_lines(), "",
             "| compile_processes | build (s) | first float32 fwd+bwd (s) | first float64 fwd+bwd (s) | total (s) "
             "| peak RSS, layer process (MB) | peak RSS, one worker (MB) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for k, processes in enumerate(args.processes or sorted({1, cores()})):
        t = run(processes, configs(args.formulas, args.nodes, seed=k), args.batch)
        total = t["build"] + t["float32"] + t["float64"]
        lines.append(f"| {processes} | {t['build']:.1f} | {t['float32']:.2f} | {t['float64']:.1f} | {total:.1f} "
                     f"| {t['rss_mb']:.0f} | {t['workers_rss_mb']:.0f} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
