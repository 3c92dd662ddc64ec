"""In-place calls against calls with a separate output, CPU_JIT, float32.

An in-place call passes an input as the output (``forward_kernel(z, z, ...)``,
``backward_kernel(z, err, err, ...)``). Each row times the two calls on the same layer, each after
copying the input back into the array the call reads (the in-place call overwrites it), so both
sides pay the same copy: the ratio is what computing in place costs.

Workloads (float32): W1 (512 nodes x 4096, node-major), a homogeneous batch-major swish layer with
beta per node (4096 x 512: runs of one formula), and the mse and log_cosh losses (2**21 elements).

Usage::

    python benchmarks/bench_in_place.py [--reps 30] [--rounds 3] [--threads N] [--quick] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, emit, machine_lines, median, time_blocks, w1_configs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="CPU_JIT threads (default: all cores)")
    p.add_argument("--quick", action="store_true", help="few reps, 1/8 sizes (a smoke test)")
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.rounds = 4, 2
    return args


def activation_rows(configs, layout, shape, rng):
    """(name, separate call, in-place call, check) for each kernel of one activation layer."""
    from symjit_numba import SymbolicJITCompiler

    layer = SymbolicJITCompiler(configs, "CPU_JIT", layout=layout)
    layer.warm_up(np.float32)
    n, b = (shape[0], shape[1]) if layout == "node_major" else (shape[1], shape[0])
    params, offsets = layer.make_params(np.float32)
    z0, err0 = rng.normal(scale=2.0, size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    x, out, d = np.empty_like(z0), np.empty_like(z0), np.empty_like(z0)
    grads = np.zeros_like(params)

    # kernel, what is in place, the input it overwrites, its arguments with x for that input and out for the output
    calls = [
        (layer.forward_kernel, "a is z", z0, lambda x, out: (x, out, params, offsets, n, b)),
        (layer.backward_kernel, "delta is err", err0, lambda x, out: (z0, x, out, params, offsets, n, b)),
        (layer.forward_derivative_kernel, "a is z", z0, lambda x, out: (x, out, d, params, offsets, n, b)),
        (layer.backward_with_params_kernel, "delta is err", err0,
         lambda x, out: (z0, x, out, grads, params, offsets, n, b)),
    ]
    return [(f"{kernel.__name__} ({what})",
             lambda kernel=kernel, source=source, arguments=arguments: (np.copyto(x, source),
                                                                       kernel(*arguments(x, out)))[1],
             lambda kernel=kernel, source=source, arguments=arguments: (np.copyto(x, source),
                                                                       kernel(*arguments(x, x)))[1])
            for kernel, what, source, arguments in calls]


def loss_rows(name, size, rng):
    from symjit_numba import SymbolicJITCompiler

    loss = SymbolicJITCompiler([(name, {})], "CPU_JIT", mode="loss")
    loss.warm_up(np.float32)
    params, _ = loss.make_params(np.float32)
    pred0, true = rng.uniform(0.1, 0.9, size).astype(np.float32), rng.uniform(0.1, 0.9, size).astype(np.float32)
    x, out = np.empty_like(pred0), np.empty_like(pred0)
    rows = []
    for kernel in ("forward_kernel", "backward_kernel"):
        call = getattr(loss, kernel)
        rows.append((f"{kernel} ({'res' if kernel == 'forward_kernel' else 'grad'} is y_pred)",
                     lambda call=call: (np.copyto(x, pred0), call(x, true, out, params))[1],
                     lambda call=call: (np.copyto(x, pred0), call(x, true, x, params))[1]))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from symjit_numba import settings

    threads = args.threads or cores()
    settings.num_threads = threads
    scale = 8 if args.quick else 1
    rng = np.random.default_rng(0)
    workloads = {
        f"W1, node-major (512, {4096 // scale})": activation_rows(w1_configs(512), "node_major", (512, 4096 // scale),
                                                                 rng),
        f"swish beta per node, batch-major ({4096 // scale}, 512)": activation_rows(
            [("swish", {"beta": 1.5})] * 512, "batch_major", (4096 // scale, 512), rng),
        f"mse loss ({2 ** 21 // scale})": loss_rows("mse", 2 ** 21 // scale, rng),
        f"log_cosh loss ({2 ** 21 // scale})": loss_rows("log_cosh", 2 ** 21 // scale, rng),
    }
    lines = ["# In-place calls against a separate output (CPU_JIT, float32)", "", *machine_lines(),
             f"- threads: {threads}; each call after copying its input back (both sides pay the copy)", "",
             "| workload | kernel (in place) | separate ms | in place ms | in place / separate |", "|---|---|---|---|---|"]
    for workload, rows in workloads.items():
        functions = {}
        for name, separate, in_place in rows:
            functions[(name, "separate")], functions[(name, "in place")] = separate, in_place
        times = time_blocks(functions, args.reps, args.rounds, warmup=2)
        for name, _, _ in rows:
            apart, inside = (1e3 * median(times[(name, side)]) for side in ("separate", "in place"))
            lines.append(f"| {workload} | {name} | {apart:.3f} | {inside:.3f} | {inside / apart:.2f} |")
    lines += ["", f"- medians of {args.reps} calls in {args.rounds} interleaved rounds; a shared machine: read the ratios"]
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
