"""Single-thread throughput of symjit_numba.mathlib.vector_math against the alternatives.

For every function and dtype this times, over the same 2**22-element input:

* ``ours``   -- an ``@njit(fastmath=FASTMATH_FLAGS)`` element loop calling ``vector_math.<f>``;
* ``math``   -- the same loop calling numba's scalar ``math.<f>`` (a libm call per element);
* ``numpy``  -- numpy's ufunc (``np.vectorize(math.erf)`` on a 2**16 slice, scaled, for erf/erfc);
* ``torch``  -- torch's CPU kernel with ``torch.set_num_threads(1)`` (if torch is importable).

Each number is the median of ``--reps`` (>= 15) passes, in million elements per second.  Prints a
markdown table; ratios > 1 mean ours is faster.

Usage::

    python benchmarks/bench_vector_math.py [--n 4194304] [--reps 15] > vector_math_throughput.md
"""

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm
import numba
import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from symjit_numba.functions import FUNCTIONS_BY_NAME  # noqa: E402
from symjit_numba.mathlib import vector_math as vm  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - optional
    torch = None

FUNCS = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "erf", "erfc", "ndtr", "normal_pdf", "sin", "cos", "tan",
         "atan", "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh"]
FLAGS = set(vm.FASTMATH_FLAGS)

# Input distributions: the range where each function is typically evaluated, so that libm
# implementations (whose cost depends on the argument) are timed on their common path.
INPUTS = {
    "exp": lambda rng, n: rng.uniform(-20, 20, n),
    "log": lambda rng, n: 10.0 ** rng.uniform(-10, 10, n),
    "log1p": lambda rng, n: rng.uniform(-0.9, 10, n),
    "expm1": lambda rng, n: rng.uniform(-5, 5, n),
    "tanh": lambda rng, n: rng.uniform(-10, 10, n),
    "sigmoid": lambda rng, n: rng.uniform(-20, 20, n),
    "softplus": lambda rng, n: rng.uniform(-20, 20, n),
    "erf": lambda rng, n: rng.uniform(-5, 5, n),
    "erfc": lambda rng, n: rng.uniform(-5, 10, n),
    "ndtr": lambda rng, n: rng.uniform(-10, 10, n),
    "normal_pdf": lambda rng, n: rng.uniform(-10, 10, n),
    "sin": lambda rng, n: rng.uniform(-10, 10, n),
    "cos": lambda rng, n: rng.uniform(-10, 10, n),
    "tan": lambda rng, n: rng.uniform(-10, 10, n),
    "atan": lambda rng, n: rng.uniform(-10, 10, n),
    "asin": lambda rng, n: rng.uniform(-1, 1, n),
    "acos": lambda rng, n: rng.uniform(-1, 1, n),
    "sinh": lambda rng, n: rng.uniform(-10, 10, n),
    "cosh": lambda rng, n: rng.uniform(-10, 10, n),
    "asinh": lambda rng, n: rng.uniform(-10, 10, n),
    "acosh": lambda rng, n: rng.uniform(1, 10, n),
    "atanh": lambda rng, n: rng.uniform(-1, 1, n),
}


def element_loop(f):
    @njit(fastmath=FLAGS)
    def loop(x, out):
        for i in range(x.size):
            out[i] = f(x[i])

    return loop


def math_scalar(name, dtype):
    """numba scalar libm version, with constants of the input's type (no float64 promotion)."""
    one, zero = dtype(1.0), dtype(0.0)
    if name == "sigmoid":
        return njit(lambda v: one / (one + math.exp(-v)))
    if name == "softplus":
        return njit(lambda v: max(v, zero) + math.log1p(math.exp(-abs(v))))
    half, inv_sqrt2, inv_sqrt_2pi = dtype(0.5), dtype(1 / math.sqrt(2)), dtype(1 / math.sqrt(2 * math.pi))
    if name == "ndtr":
        return njit(lambda v: half * math.erfc(-v * inv_sqrt2))
    if name == "normal_pdf":
        return njit(lambda v: math.exp(-half * v * v) * inv_sqrt_2pi)
    return getattr(math, name)


def numpy_version(name):
    """(callable(x, out), fraction of x it processes)."""
    if name == "normal_pdf":
        return (lambda x, out: np.multiply(np.exp(-0.5 * x * x), 1 / math.sqrt(2 * math.pi), out=out)), None
    if name in ("erf", "erfc", "ndtr"):
        scalar = (lambda v: 0.5 * math.erfc(-v / math.sqrt(2))) if name == "ndtr" else getattr(math, name)
        vec = np.vectorize(scalar, otypes=[np.float64])
        m = 2**16
        return (lambda x, out: out.__setitem__(slice(0, m), vec(x[:m]))), m
    if name == "sigmoid":
        def sigmoid(x, out):
            np.negative(x, out=out)
            np.exp(out, out=out)
            out += 1
            np.reciprocal(out, out=out)
        return sigmoid, None
    if name == "softplus":
        return (lambda x, out: np.logaddexp(0, x, out=out)), None
    ufunc = getattr(np, FUNCTIONS_BY_NAME[name].numpy.removeprefix("numpy."))  # np.arcsin for asin
    return (lambda x, out: ufunc(x, out=out)), None


def torch_version(name):
    if name == "softplus":
        return lambda t, o: torch.nn.functional.softplus(t)
    if name == "normal_pdf":
        return lambda t, o: torch.mul(torch.exp(-0.5 * t * t), 1 / math.sqrt(2 * math.pi), out=o)
    fn = {"erf": torch.special.erf, "erfc": torch.special.erfc, "ndtr": torch.special.ndtr}.get(name) or getattr(torch, name)
    return lambda t, o: fn(t, out=o)


def median_rate(fn, n_elements, reps):
    fn()  # warm up (and compile)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_elements / float(np.median(times)) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2**22)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    reps = max(args.reps, 15)
    n = args.n
    if torch is not None:
        torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    print("# vector_math throughput (single thread, million elements/s, median of "
          f"{reps} runs over {n} elements)\n")
    print(f"- CPU: {llvm.get_host_cpu_name()} ({platform.machine()}), "
          f"numba {numba.__version__}, llvmlite {llvmlite.__version__}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch is not None else ", torch not installed"))
    print("- ours: `@njit(fastmath=FASTMATH_FLAGS)` loop over `vector_math.f`; math: same loop "
          "over numba's scalar `math.f`; numpy: ufunc (`np.vectorize(math.erf)` on a 2**16 slice, "
          "scaled, for erf/erfc); torch: `torch.f` with `set_num_threads(1)`.")
    print("- ratio columns: ours / other (> 1: ours is faster).  Shared machine: expect "
          "+-20% noise.\n")

    copy_loop = element_loop(njit(lambda v: v + v))
    copy_rates = {}
    for dtype in (np.float32, np.float64):
        x = rng.uniform(-1, 1, n).astype(dtype)
        out = np.empty_like(x)
        copy_rates[dtype] = median_rate(lambda: copy_loop(x, out), n, reps)

    header = ["function", "dtype", "ours", "math", "numpy", "torch",
              "ours/math", "ours/numpy", "ours/torch"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for name in FUNCS:
        ours_loop = element_loop(getattr(vm, name))
        for dtype in (np.float32, np.float64):
            x = INPUTS[name](rng, n).astype(dtype)
            out = np.empty_like(x)
            math_loop = element_loop(math_scalar(name, dtype))
            r_ours = median_rate(lambda: ours_loop(x, out), n, reps)
            r_math = median_rate(lambda: math_loop(x, out), n, reps)
            np_fn, m = numpy_version(name)
            r_np = median_rate(lambda: np_fn(x, out), m or n, reps)
            r_torch = None
            if torch is not None:
                t, o = torch.from_numpy(x), torch.from_numpy(out)
                th_fn = torch_version(name)
                r_torch = median_rate(lambda: th_fn(t, o), n, reps)

            def fmt(r):
                return "n/a" if r is None else f"{r:.0f}"

            def ratio(r):
                return "n/a" if r is None else f"{r_ours / r:.2f}"

            np_label = fmt(r_np) + (" (vectorize)" if m else "")
            print(f"| {name} | {np.dtype(dtype).name} | {fmt(r_ours)} | {fmt(r_math)} | {np_label} "
                  f"| {fmt(r_torch)} | {ratio(r_math)} | {ratio(r_np)} | {ratio(r_torch)} |",
                  flush=True)
    print(f"\nMemory-bound reference (`out[i] = x[i] + x[i]` loop): "
          f"{copy_rates[np.float32]:.0f} M/s float32, {copy_rates[np.float64]:.0f} M/s float64.")


if __name__ == "__main__":
    main()
