"""Activation-function search on a ``distributed.LocalCluster``: score N candidate formulas, rank them.

Each candidate formula becomes the activation of every hidden node of a tiny network
(2 inputs → 16 hidden → 1 output) trained for a few hundred SGD steps on a synthetic regression
task; its score is the final validation loss. The candidates are independent, so they run as
separate tasks on the cluster's worker processes; each worker compiles its formulas into the
shared kernel cache (``SYMJIT_NUMBA_CACHE_DIR``), so a second search compiles nothing.

Trained: the weights and biases (by backpropagation through the symjit_numba kernels) and each
formula's constants (one shared value per constant name, by central finite differences of the
training loss every few steps). Gradients with respect to the constants are not available from
the kernels yet (issue 13); once they are, they replace the finite differences.

Run::

    pip install "symjit_numba[dask]"
    python examples/activation_search.py --workers 2 --candidates 16 --steps 300
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

#: (formula, initial constants): the candidates, in the formula language (``num`` is the input).
CANDIDATES: list[tuple[str, dict[str, float]]] = [
    ("a*tanh(b*num)", {"a": 1.0, "b": 1.0}),
    ("num*sigmoid(b*num)", {"b": 1.0}),
    ("sin(a*num)", {"a": 1.0}),
    ("softplus(a*num)/a", {"a": 1.0}),
    ("num/(1 + Abs(a*num))", {"a": 1.0}),
    ("exp(-a*num**2)", {"a": 1.0}),
    ("Piecewise((a*num, num <= 0), (num, True))", {"a": 0.1}),
    ("num*tanh(softplus(a*num))", {"a": 1.0}),
    ("tanh(num) + a*num", {"a": 0.1}),
    ("num*erf(a*num)", {"a": 1.0}),
    ("cos(a*num)", {"a": 1.0}),
    ("num**2/(1 + a*num**2)", {"a": 1.0}),
    ("atan(a*num)", {"a": 1.0}),
    ("Piecewise((a*expm1(num), num <= 0), (num, True))", {"a": 1.0}),
    ("sigmoid(a*num)", {"a": 1.0}),
    ("num", {}),
]

HIDDEN = 16


def make_task(seed: int = 0, n: int = 512) -> tuple[np.ndarray, ...]:
    """A synthetic regression task: y = sin(2 x0) + x1²/2 + noise; training and validation sets."""
    rng = np.random.default_rng(seed)

    def draw(count):
        x = rng.uniform(-2, 2, size=(2, count)).astype(np.float32)
        y = (np.sin(2 * x[0]) + 0.5 * x[1] ** 2 + 0.05 * rng.standard_normal(count)).astype(np.float32)
        return x, y[None, :]

    return (*draw(n), *draw(n))


def score(formula: str, constants: dict[str, float], steps: int = 300, seed: int = 0,
          method: str = "CPU_JIT", lr: float = 0.05, constant_lr: float = 0.02, every: int = 5) -> dict:
    """Train the tiny network with ``formula`` as its hidden activation; the validation MSE is the score.

    Runs in a worker process: the compiler is built there (from that machine's kernel cache).
    """
    from symjit_numba import SymbolicJITCompiler, settings

    settings.num_threads = 1  # one task per worker process: no nested parallelism
    start = time.perf_counter()
    layer = SymbolicJITCompiler([(formula, constants)] * HIDDEN, method)
    compile_s = time.perf_counter() - start
    x, y, x_val, y_val = make_task(seed)
    rng = np.random.default_rng(seed + 1)
    w1 = (rng.standard_normal((HIDDEN, 2)) / math.sqrt(2)).astype(np.float32)
    b1 = np.zeros((HIDDEN, 1), np.float32)
    w2 = (rng.standard_normal((1, HIDDEN)) / math.sqrt(HIDDEN)).astype(np.float32)
    b2 = np.zeros((1, 1), np.float32)
    params, offsets = layer.make_params(np.float32)
    names = sorted(constants)  # node j's constants are params[offsets[j] + i], sorted by name
    batch = x.shape[1]

    def loss(inputs, targets, values):
        z = w1 @ inputs + b1
        a = np.empty_like(z)
        layer.forward_kernel(z, a, values, offsets, HIDDEN, inputs.shape[1])
        return float(np.mean((w2 @ a + b2 - targets) ** 2))

    with np.errstate(all="ignore"):
        for step in range(steps):
            z = w1 @ x + b1
            a = np.empty_like(z)
            layer.forward_kernel(z, a, params, offsets, HIDDEN, batch)
            out = w2 @ a + b2
            d_out = (2.0 / batch) * (out - y)
            err = w2.T @ d_out
            delta = np.empty_like(z)
            layer.backward_kernel(z, err, delta, params, offsets, HIDDEN, batch)
            w2 -= lr * d_out @ a.T
            b2 -= lr * d_out.sum(axis=1, keepdims=True)
            w1 -= lr * delta @ x.T
            b1 -= lr * delta.sum(axis=1, keepdims=True)
            if names and step % every == 0:  # constants: central finite differences, one value per name
                for i in range(len(names)):
                    h = 1e-2
                    plus, minus = params.copy(), params.copy()
                    plus[offsets + i] += h
                    minus[offsets + i] -= h
                    gradient = (loss(x, y, plus) - loss(x, y, minus)) / (2 * h)
                    if math.isfinite(gradient):
                        params[offsets + i] -= constant_lr * every * np.float32(gradient)
        validation = loss(x_val, y_val, params)
    return {"formula": formula, "validation_mse": validation if math.isfinite(validation) else math.inf,
            "constants": {name: float(params[i]) for i, name in enumerate(names)},
            "compile_s": compile_s, "seconds": time.perf_counter() - start}


def search(candidates: list[tuple[str, dict[str, float]]], workers: int = 2, steps: int = 300, seed: int = 0,
           method: str = "CPU_JIT", client=None) -> list[dict]:
    """Score every candidate on a ``distributed`` cluster; the results ranked best first.

    Parameters
    ----------
    candidates : list of (str, dict)
        Formulas and their initial constants.
    workers : int
        Worker processes of the ``LocalCluster`` started here (ignored if ``client`` is given).
    steps : int
        SGD steps per candidate.
    client : distributed.Client, optional
        An existing cluster's client (e.g. of a multi-machine cluster).
    """
    from distributed import Client, LocalCluster

    def run(on):
        futures = on.map(score, [f for f, _ in candidates], [c for _, c in candidates], steps=steps, seed=seed,
                         method=method, pure=False)
        return on.gather(futures)

    if client is not None:
        results = run(client)
    else:
        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as own:
            results = run(own)
    return sorted(results, key=lambda r: r["validation_mse"])


def table(results: list[dict]) -> str:
    """The ranked results as a markdown table."""
    lines = ["| rank | formula | validation MSE | trained constants | compile s | total s |", "|---|---|---|---|---|---|"]
    for rank, r in enumerate(results, 1):
        constants = ", ".join(f"{k}={v:.3g}" for k, v in r["constants"].items()) or "-"
        lines.append(f"| {rank} | `{r['formula']}` | {r['validation_mse']:.4f} | {constants} | "
                     f"{r['compile_s']:.2f} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=len(CANDIDATES), help=f"at most {len(CANDIDATES)}")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--method", default="CPU_JIT", choices=["CPU_JIT", "CPU_PYTHON", "GPU_CUDA"])
    args = parser.parse_args()
    start = time.perf_counter()
    results = search(CANDIDATES[: args.candidates], args.workers, args.steps, method=args.method)
    wall = time.perf_counter() - start
    print(table(results))
    print(f"\n{len(results)} candidates, {args.steps} steps each, {args.workers} worker process(es): "
          f"{wall:.1f} s wall (cluster start included)")


if __name__ == "__main__":
    main()
