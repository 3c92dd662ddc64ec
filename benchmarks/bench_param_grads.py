"""Parameter gradients: CPU_JIT's one-pass kernel against its backward kernel, and torch autograd.

Workload W1c (float32, node-major (n, b) = 512 x 4096): W1's eight kinds cycled over the nodes, each
with trainable constants (every node has some):

    leaky_relu alpha (PReLU), a*sigmoid(b*num), a*tanh(b*num), num*ndtr(b*num) (gelu with a scale),
    swish beta, elu alpha, a*num/(1+Abs(b*num)) (rational), celu alpha

Rows:

* ``backward``              -- CPU_JIT ``backward_kernel``: delta = err * f'(z) (the gate's denominator);
* ``param_backward``        -- CPU_JIT ``param_backward_kernel``: the constants' gradients alone;
* ``backward_with_params``  -- CPU_JIT ``backward_with_params_kernel``: delta and the constants'
                               gradients in one pass (the training path; the gate: <= 1.6x backward);
* ``torch autograd``        -- eager torch, rows grouped by kind (precomputed index tensors), each
                               group's constants a (rows, 1) tensor with ``requires_grad``:
                               ``torch.autograd.grad(f(z_g, c_g), (z_g, c_g), err_g)`` per group and
                               ``delta.index_copy_``. Autograd needs the forward pass, so this row
                               is forward + backward; it is what a torch user pays for the same result.

Every result is checked against CPU_PYTHON (float64) before timing. Times are medians of ``--reps``
calls (rounds of warm-up + timed blocks, see ``_common.time_blocks``). The machine these figures
come from is shared and noisy: read the ratios, not the milliseconds.

Usage::

    python benchmarks/bench_param_grads.py [--reps 40] [--quick] [--threads N] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, emit, machine_lines, median, time_blocks  # noqa: E402

#: W1 with constants on every node (see the module docstring).
W1C_KINDS: list[tuple[str, dict[str, float]]] = [
    ("leaky_relu", {"alpha": 0.01}),
    ("a*sigmoid(b*num)", {"a": 1.0, "b": 1.0}),
    ("a*tanh(b*num)", {"a": 1.0, "b": 1.0}),
    ("num*ndtr(b*num)", {"b": 1.0}),
    ("swish", {"beta": 1.5}),
    ("elu", {"alpha": 1.0}),
    ("a*num/(1+Abs(b*num))", {"a": 1.0, "b": 1.0}),
    ("celu", {"alpha": 1.0}),
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=40, help="timed calls per contender (default 40)")
    p.add_argument("--rounds", type=int, default=4, help="rounds the reps are split over (default 4)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before each timed block (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1/8 of the batch, 5 reps, 1 round")
    p.add_argument("--threads", type=int, default=0, help="threads for every contender (default: usable cores)")
    p.add_argument("--no-torch", action="store_true", help="leave torch out")
    p.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = p.parse_args()
    if args.quick:
        args.reps, args.rounds, args.warmup = 5, 1, 1
    args.rounds = max(1, min(args.rounds, args.reps))
    return args


def torch_contender(torch, configs, z, err):
    """``step(delta, grads)``: autograd over rows grouped by kind, constants as (rows, 1) tensors."""
    import math

    sqrt_half = 1 / math.sqrt(2)
    forms = {
        "leaky_relu": lambda x, c: torch.where(x > 0, x, c["alpha"] * x),
        "a*sigmoid(b*num)": lambda x, c: c["a"] * torch.sigmoid(c["b"] * x),
        "a*tanh(b*num)": lambda x, c: c["a"] * torch.tanh(c["b"] * x),
        "num*ndtr(b*num)": lambda x, c: x * 0.5 * (1 + torch.erf(c["b"] * x * sqrt_half)),
        "swish": lambda x, c: x * torch.sigmoid(c["beta"] * x),
        "elu": lambda x, c: torch.where(x > 0, x, c["alpha"] * torch.expm1(x)),
        "a*num/(1+Abs(b*num))": lambda x, c: c["a"] * x / (1 + torch.abs(c["b"] * x)),
        "celu": lambda x, c: torch.where(x > 0, x, c["alpha"] * torch.expm1(x / c["alpha"])),
    }
    groups = {}
    for j, (kind, consts) in enumerate(configs):
        groups.setdefault(kind, []).append((j, consts))
    plan = []
    for kind, members in groups.items():
        index = torch.tensor([j for j, _ in members], dtype=torch.int64)
        names = sorted(members[0][1])
        constants = {name: torch.tensor([[c[name]] for _, c in members], dtype=torch.float32, requires_grad=True)
                     for name in names}
        plan.append((forms[kind], index, names, constants))
    tz, terr = torch.from_numpy(z), torch.from_numpy(err)
    delta = torch.empty_like(tz)

    def step():
        grads = {}
        for form, index, names, constants in plan:
            zg = tz.index_select(0, index).requires_grad_()
            out = form(zg, constants)
            results = torch.autograd.grad(out, (zg, *(constants[n] for n in names)), terr.index_select(0, index))
            delta.index_copy_(0, index, results[0])
            grads[index] = results[1:]
        return delta, grads

    def as_params(grads, compiler, params_like):
        """torch's constant gradients in the compiler's params layout (to compare)."""
        import numpy as np

        out = np.zeros_like(params_like)
        _, offsets = compiler.make_params(np.float32)
        for index, per_name in grads.items():
            for i, g in enumerate(per_name):
                out[offsets[index.numpy()] + i] = g.detach().numpy()[:, 0]
        return out

    return step, as_params


def main() -> None:
    args = parse_args()
    import numpy as np

    from symjit_numba import SymbolicJITCompiler, settings

    threads = args.threads or cores()
    settings.num_threads = threads
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            torch = None

    n, b = 512, 4096 // (8 if args.quick else 1)
    configs = [W1C_KINDS[j % len(W1C_KINDS)] for j in range(n)]
    compiler = SymbolicJITCompiler(configs, "CPU_JIT")
    compiler.warm_up(np.float32)
    params, offsets = compiler.make_params(np.float32)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, b)).astype(np.float32)
    err = rng.standard_normal((n, b)).astype(np.float32)
    delta = np.empty_like(z)
    grad = np.zeros_like(params)

    # Check against CPU_PYTHON in float64 before timing.
    reference = SymbolicJITCompiler(configs, "CPU_PYTHON")
    params64 = params.astype(np.float64)
    ref_delta, ref_grad = np.empty(z.shape), np.zeros(params.size)
    reference.backward_with_params_kernel(z.astype(np.float64), err.astype(np.float64), ref_delta, ref_grad, params64,
                                          offsets, n, b)
    compiler.backward_with_params_kernel(z, err, delta, grad, params, offsets, n, b)
    scale = np.abs(ref_grad).max()
    assert np.allclose(delta, ref_delta, rtol=1e-4, atol=1e-5), "delta differs from CPU_PYTHON"
    assert np.allclose(grad, ref_grad, rtol=1e-4, atol=1e-5 * scale), "grad_params differs from CPU_PYTHON"

    functions = {
        "backward": lambda: compiler.backward_kernel(z, err, delta, params, offsets, n, b),
        "param_backward": lambda: compiler.param_backward_kernel(z, err, grad, params, offsets, n, b),
        "backward_with_params": lambda: compiler.backward_with_params_kernel(z, err, delta, grad, params, offsets,
                                                                             n, b),
    }
    if torch is not None:
        step, as_params = torch_contender(torch, configs, z, err)
        t_delta, t_grads = step()
        assert np.allclose(t_delta.numpy(), ref_delta, rtol=1e-4, atol=1e-5), "torch delta differs"
        assert np.allclose(as_params(t_grads, compiler, params), ref_grad, rtol=1e-3, atol=1e-4 * scale), \
            "torch constant gradients differ"
        functions["torch autograd (fwd+bwd)"] = step

    times = time_blocks(functions, args.reps, args.rounds, args.warmup)
    base = median(times["backward"])
    lines = [f"# Parameter gradients, W1c {n} x {b} float32 node-major, {threads} threads", "",
             *machine_lines(("torch",) if torch is not None else ()), "",
             "The machine is shared and noisy: the ratios are the result, not the milliseconds.", "",
             "| kernel | median ms | / backward_kernel |", "|---|---|---|"]
    for name, values in times.items():
        lines.append(f"| {name} | {median(values) * 1e3:.2f} | {median(values) / base:.2f}x |")
    ratio = median(times["backward_with_params"]) / base
    lines += ["", f"one-pass / backward = {ratio:.2f} (target <= 1.6)"]
    if torch is not None:
        lines.append(f"torch autograd / one-pass = {median(times['torch autograd (fwd+bwd)']) / median(times['backward_with_params']):.2f}")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
