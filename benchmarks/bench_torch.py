"""W1's activation inside torch: ``symjit_numba.torch.HeteroActivation`` against torch eager and torch.compile.

Workload (float32, torch's layout: (batch, nodes) = 4096 x 512): W1's eight kinds (relu, sigmoid,
tanh, gelu, swish beta=1.5, leaky_relu alpha=0.01, softplus, mish) cycled over the nodes; the
listed constants (swish's beta, leaky_relu's alpha: 128 of them) are trainable. Each row is one
training step of the activation alone, forward + backward:
``torch.autograd.grad(f(z), (z, constants), err)``.

Rows:

* ``HeteroActivation``                 -- the module as built (``keep="auto"``, which keeps z: the
                                          backward pass is one ``backward_with_params_kernel`` call);
* ``HeteroActivation keep=derivative`` -- the forward pass keeps f'(z) too (``forward_derivative_kernel``);
                                          the backward pass is err * d plus ``param_backward_kernel``;
* ``... frozen constants``             -- the same two with the constants in a buffer (input gradient only);
                                          ``keep=derivative / keep=input`` rows are the measurement behind
                                          ``keep="auto"``;
* ``torch eager, grouped``             -- pure torch: the columns of each kind gathered (precomputed
                                          index tensors), each kind's torch function, the results
                                          concatenated and put back in column order; autograd;
* ``torch.compile, grouped``           -- that function through ``torch.compile`` (inductor, needs gcc).

Every contender's output and gradients are checked against the module's before timing. Times are
medians of ``--reps`` steps (rounds of warm-up + timed blocks, ``_common.time_blocks``). The
machine these figures come from has 2 cores shared with other work, so the milliseconds are noisy:
read the ratios, which come from one run.

Usage::

    python benchmarks/bench_torch.py [--reps 40] [--quick] [--no-compile] [--threads N] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, emit, machine_lines, median, time_blocks, w1_configs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=512)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--reps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="few reps, small batch (a smoke test)")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it takes ~30-60 s to compile)")
    p.add_argument("--threads", type=int, default=None, help="threads for torch and symjit_numba (default: all cores)")
    p.add_argument("--small-batches", default="64,256",
                   help="comma-separated batch sizes of a second table (HeteroActivation against torch eager, "
                        "where per-call costs matter); empty for none")
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.rounds, args.batch, args.small_batches = 6, 2, 512, "64"
    return args


def grouped_torch(torch, configs):
    """W1 in pure torch, columns grouped by kind: returns ``f(z, beta, alpha)`` and the initial constants."""
    import torch.nn.functional as F  # noqa: N812 - torch's own spelling

    kinds = {
        "relu": lambda x, c: torch.relu(x),
        "sigmoid": lambda x, c: torch.sigmoid(x),
        "tanh": lambda x, c: torch.tanh(x),
        "gelu": lambda x, c: F.gelu(x),
        "swish": lambda x, c: x * torch.sigmoid(c * x),
        "leaky_relu": lambda x, c: torch.where(x > 0, x, c * x),
        "softplus": lambda x, c: F.softplus(x),
        "mish": lambda x, c: F.mish(x),
    }
    groups: dict[str, list[int]] = {}
    for j, (name, _) in enumerate(configs):
        groups.setdefault(name, []).append(j)
    order = [j for members in groups.values() for j in members]
    inverse = torch.empty(len(order), dtype=torch.int64)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    index = {name: torch.tensor(members, dtype=torch.int64) for name, members in groups.items()}
    beta = torch.tensor([[configs[j][1]["beta"] for j in groups["swish"]]], dtype=torch.float32)
    alpha = torch.tensor([[configs[j][1]["alpha"] for j in groups["leaky_relu"]]], dtype=torch.float32)

    def f(z, beta, alpha):
        constants = {"swish": beta, "leaky_relu": alpha}
        outs = [kinds[name](z.index_select(1, index[name]), constants.get(name)) for name in groups]
        return torch.cat(outs, dim=1).index_select(1, inverse)

    def as_params(grad_beta, grad_alpha):
        """The grouped constants' gradients in the module's ``constants`` order (node order)."""
        by_node = {}
        for k, j in enumerate(groups["swish"]):
            by_node[j] = grad_beta[0, k]
        for k, j in enumerate(groups["leaky_relu"]):
            by_node[j] = grad_alpha[0, k]
        return torch.stack([by_node[j] for j in sorted(by_node)])

    return f, beta, alpha, as_params


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch

    from symjit_numba import settings
    from symjit_numba.torch import HeteroActivation

    threads = args.threads or cores()
    torch.set_num_threads(threads)
    settings.num_threads = threads
    configs = w1_configs(args.nodes)
    rng = np.random.default_rng(0)

    def batch_of(size):
        z = torch.from_numpy(rng.normal(0, 2, size=(size, args.nodes)).astype(np.float32)).requires_grad_()
        return z, torch.from_numpy(rng.normal(size=(size, args.nodes)).astype(np.float32))

    z, err = batch_of(args.batch)

    started = time.perf_counter()
    modules = {
        "HeteroActivation": HeteroActivation(configs),
        "HeteroActivation keep=derivative": HeteroActivation(configs, keep="derivative"),
        "HeteroActivation, frozen constants": HeteroActivation(configs, trainable=False),
        "HeteroActivation keep=derivative, frozen constants": HeteroActivation(configs, trainable=False,
                                                                                keep="derivative"),
    }
    build = time.perf_counter() - started

    def module_step(module, z=z, err=err):
        if module.constants.requires_grad:
            return lambda: torch.autograd.grad(module(z), (z, module.constants), err)
        return lambda: torch.autograd.grad(module(z), (z,), err)

    functions = {name: module_step(m) for name, m in modules.items()}
    reference = functions["HeteroActivation"]()
    ref_out = modules["HeteroActivation"](z).detach()

    f, beta, alpha, as_params = grouped_torch(torch, configs)
    beta.requires_grad_(), alpha.requires_grad_()

    def check(name, step, out_function):
        with torch.no_grad():
            out = out_function(z, beta, alpha)
        grad_z, grad_beta, grad_alpha = step()
        assert torch.allclose(out, ref_out, rtol=1e-4, atol=1e-5), f"{name}: output differs"
        assert torch.allclose(grad_z, reference[0], rtol=1e-4, atol=1e-5), f"{name}: input gradient differs"
        assert torch.allclose(as_params(grad_beta, grad_alpha), reference[1], rtol=1e-3, atol=1e-2), \
            f"{name}: constants' gradients differ"

    eager = lambda: torch.autograd.grad(f(z, beta, alpha), (z, beta, alpha), err)  # noqa: E731
    check("torch eager", eager, f)
    functions["torch eager, grouped"] = eager
    compile_seconds = None
    if not args.no_compile:
        compiled = torch.compile(f)
        step = lambda: torch.autograd.grad(compiled(z, beta, alpha), (z, beta, alpha), err)  # noqa: E731
        started = time.perf_counter()
        step()
        compile_seconds = time.perf_counter() - started
        check("torch.compile", step, compiled)
        functions["torch.compile, grouped"] = step

    times = time_blocks(functions, args.reps, args.rounds, warmup=2)
    ms = {name: 1e3 * median(t) for name, t in times.items()}
    ours = ms["HeteroActivation"]
    lines = [f"# W1 activation in torch: forward + backward, (batch, nodes) = ({args.batch}, {args.nodes}) float32, "
             "constants trainable", "", *machine_lines(("torch",)), f"- threads: {threads}", "",
             "| contender | median ms | / HeteroActivation |", "|---|---|---|"]
    for name, value in ms.items():
        lines.append(f"| {name} | {value:.2f} | {value / ours:.2f} |")
    lines += ["", f"- torch eager / HeteroActivation = {ms['torch eager, grouped'] / ours:.2f} (target >= 5)"]
    if compile_seconds is not None:
        lines.append(f"- torch.compile / HeteroActivation = {ms['torch.compile, grouped'] / ours:.2f} (target >= 3); "
                     f"torch.compile's first call (forward + backward compile) {compile_seconds:.1f} s")
    lines += [f"- keep=derivative / keep=input, trained constants = "
              f"{ms['HeteroActivation keep=derivative'] / ours:.2f}",
              f"- keep=derivative / keep=input, frozen constants = "
              f"{ms['HeteroActivation keep=derivative, frozen constants'] / ms['HeteroActivation, frozen constants']:.2f}",
              f"- building the four modules: {build:.2f} s",
              f"- {args.reps} steps per row, medians; a shared 2-core machine: compare ratios, not milliseconds"]
    small = [int(size) for size in args.small_batches.split(",") if size.strip()]
    if small:
        lines += ["", f"Smaller batches (the same step; {5 * args.reps} steps per cell, interleaved per batch size), "
                  "where the per-call costs of torch and of the kernels weigh more:", "",
                  "| batch | HeteroActivation ms | torch eager, grouped ms | eager / HeteroActivation |", "|---|---|---|---|"]
    for size in small:
        zs, errs = batch_of(size)
        pair = {"ours": module_step(modules["HeteroActivation"], zs, errs),
                "eager": lambda zs=zs, errs=errs: torch.autograd.grad(f(zs, beta, alpha), (zs, beta, alpha), errs)}
        ours_grads, eager_grads = pair["ours"](), pair["eager"]()
        assert torch.allclose(eager_grads[0], ours_grads[0], rtol=1e-4, atol=1e-5), f"batch {size}: gradients differ"
        t = {name: 1e3 * median(v) for name, v in time_blocks(pair, 5 * args.reps, args.rounds, warmup=20).items()}
        lines.append(f"| {size} | {t['ours']:.3f} | {t['eager']:.3f} | {t['eager'] / t['ours']:.2f} |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
