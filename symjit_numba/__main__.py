"""Command line: ``python -m symjit_numba demo`` and ``python -m symjit_numba info``."""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import numpy as np

DEMO_LAYER = [
    ("relu", {}),
    ("leaky_relu", {"alpha": 0.1}),
    ("swish", {"beta": 1.5}),
    ("gelu", {}),
    ("mish", {}),
    ("a*tanh(b*num)", {"a": 1.7, "b": 0.66}),
    ("softplus", {}),
    ("Piecewise((c*num**2, num < 0), (sin(num), True))", {"c": 0.3}),
]


def _available_methods() -> list[str]:
    from .backends.gpu_cuda import is_available

    return ["CPU_PYTHON", "CPU_JIT"] + (["GPU_CUDA"] if is_available() else [])


def demo(nodes: int = 256, batch: int = 4096) -> int:
    """Run a heterogeneous layer and a loss on every available backend; print differences and timings."""
    from . import SymbolicJITCompiler, settings

    configs = [DEMO_LAYER[j % len(DEMO_LAYER)] for j in range(nodes)]
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(nodes, batch)).astype(np.float32)
    err = rng.normal(size=z.shape).astype(np.float32)
    y_true = rng.normal(size=nodes * batch).astype(np.float32)
    print(f"layer: {nodes} nodes x {batch} batch, float32, {len(DEMO_LAYER)} kinds cycled: "
          + ", ".join(c[0] for c in DEMO_LAYER[:7]) + ", ...")
    print(f"loss: huber(delta=0.5) over {nodes * batch} elements; kernel cache: {settings.cache_dir}\n")
    results = {}
    print(f"{'method':<11} {'build s':>8} {'forward ms':>11} {'backward ms':>12} {'loss ms':>8} {'loss grad ms':>13}")
    for method in _available_methods():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            layer = SymbolicJITCompiler(configs, method)
            loss = SymbolicJITCompiler([("huber", {"delta": 0.5})], method, mode="loss")
            built = time.perf_counter() - start
        params, offsets = layer.make_params(np.float32)
        loss_params, _ = loss.make_params(np.float32)
        a, delta, res, grad = (np.empty_like(z), np.empty_like(z), np.empty_like(y_true), np.empty_like(y_true))
        calls = {
            "forward": lambda: layer.forward_kernel(z, a, params, offsets, nodes, batch),
            "backward": lambda: layer.backward_kernel(z, err, delta, params, offsets, nodes, batch),
            "loss": lambda: loss.forward_kernel(a.reshape(-1), y_true, res, loss_params),
            "loss grad": lambda: loss.backward_kernel(a.reshape(-1), y_true, grad, loss_params),
        }
        timings = {}
        for name, call in calls.items():
            call()
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                call()
                samples.append(time.perf_counter() - start)
            timings[name] = 1e3 * float(np.median(samples))
        results[layer.calculation_method] = (a.copy(), delta.copy(), res.copy(), grad.copy())
        print(f"{layer.calculation_method:<11} {built:>8.2f} {timings['forward']:>11.2f} {timings['backward']:>12.2f} "
              f"{timings['loss']:>8.2f} {timings['loss grad']:>13.2f}")
    reference = results["CPU_PYTHON"]
    print("\nlargest difference from CPU_PYTHON (relative to max(1, |value|)):")
    worst = 0.0
    for method, outputs in results.items():
        if method == "CPU_PYTHON":
            continue
        diffs = [float(np.max(np.abs(o - r) / np.maximum(1.0, np.abs(r)))) for o, r in zip(outputs, reference)]
        worst = max(worst, *diffs)
        print(f"  {method:<10} forward {diffs[0]:.2e}  backward {diffs[1]:.2e}  loss {diffs[2]:.2e}  loss grad {diffs[3]:.2e}")
    ok = worst < 1e-4
    print("\nbackends agree" if ok else "\nBACKENDS DISAGREE")
    return 0 if ok else 1


def info() -> int:
    """Print versions, available backends, GPU presence, threading layer and cache dir."""
    import llvmlite
    import numba
    import sympy

    from . import __version__, settings
    from .backends.gpu_cuda import is_available

    gpu = is_available()
    rows = {
        "symjit_numba": __version__,
        "python": f"{platform.python_version()} ({platform.machine()}, {platform.system()})",
        "numba / llvmlite": f"{numba.__version__} / {llvmlite.__version__}",
        "numpy / sympy": f"{np.__version__} / {sympy.__version__}",
        "backends": ", ".join(_available_methods()),
        "CUDA GPU": (f"yes: {[g.name for g in __import__('numba').cuda.gpus]}" if gpu else "no"),
        "CPU threads": f"{settings.num_threads} (a thread pool over GIL-free numba kernels; no numba threading layer)",
        "cache dir": f"{settings.cache_dir} (cache {'on' if settings.use_kernel_cache else 'off'})",
        "warning level": settings.warning_level,
    }
    for key, value in rows.items():
        print(f"{key:<17} {value}")
    return 0


#: What ``--help`` prints (plain text: argparse shows the module docstring's reST markup as is).
DESCRIPTION = "symjit_numba's command line: 'demo' runs a layer and a loss on every backend, 'info' describes the setup."


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the ArgumentTypeError into a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symjit_numba", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="a heterogeneous layer and a loss on every backend",
                                   description="Run a heterogeneous layer and a loss on every available backend; "
                                               "print timings and the largest difference from CPU_PYTHON.")
    run_demo.add_argument("--nodes", type=positive_int, default=256, help="nodes in the layer (default: 256)")
    run_demo.add_argument("--batch", type=positive_int, default=4096, help="samples in the batch (default: 4096)")
    commands.add_parser("info", help="versions, backends, GPU, threading layer, cache dir",
                        description="Print versions, available backends, GPU presence, threads and the cache dir.")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.nodes, args.batch)
    return info()


if __name__ == "__main__":
    sys.exit(main())
