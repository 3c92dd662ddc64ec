"""CPU kernel throughput: CPU_JIT against CPU_PYTHON, the seed's g++ design, torch eager and a copy.

Workloads (float32):

* W1 fwd / bwd   -- 8 activation kinds (relu, sigmoid, tanh, gelu, swish beta=1.5, leaky_relu
                    alpha=0.01, softplus, mish) cycled over 512 nodes x 4096 batch, node-major (n, b);
* W1 fwd+bwd step -- a training step's activation work, a = f(z) and delta = err * f'(z): CPU_JIT
                    runs ``forward_derivative_kernel`` (both in one pass) and ``err * d``, the others
                    their forward and backward kernels;
* W1 batch_major -- the same layer with (b, n) arrays;
* swish beta per node (batch_major) -- a homogeneous swish layer whose beta is each node's own
                    constant, (b, n) arrays;
* relu fwd / bwd -- a homogeneous relu layer, 512 x 4096;
* gelu 1-node    -- one gelu node over a batch of 2**22 (forward and backward);
* mse loss       -- element-wise mse over 2**22 elements (forward and backward).

Contenders, each writing into preallocated outputs where its API allows:

* CPU_JIT     -- ``SymbolicJITCompiler(..., "CPU_JIT")``, ``settings.num_threads`` threads;
* CPU_PYTHON  -- ``SymbolicJITCompiler(..., "CPU_PYTHON")`` (sympy.lambdify + numpy);
* seed (g++)  -- the seed's design from ``seed_reference.py``: one C++ ``switch`` per element in an
                 OpenMP loop, ``g++ -O3 -ffast-math -fopenmp``; node-major activations only;
* torch       -- eager torch (``torch.set_num_threads(threads)``). W1: rows (or columns) grouped by
                 kind with precomputed index tensors; ``out.index_copy_(dim, idx, f(z.index_select(dim, idx)))``
                 with ``f`` from torch / torch.nn.functional. Backward: torch's native fused backward
                 kernels, the ones autograd dispatches to (``torch.ops.aten.*_backward``), called
                 directly on ``(err, z)`` without autograd; sigmoid/tanh recompute the forward output
                 they need; swish(beta) uses ``silu_backward(err, beta*z)`` (d/dz z*sigmoid(beta z) =
                 silu'(beta z)). Homogeneous layers call ``F.relu``/``F.gelu``, which allocate their
                 result (torch.nn.functional has no ``out=``). mse backward is the closed form
                 ``(p - t).mul_(2)``;
* torch.compile -- the same grouped torch code through ``torch.compile`` (inductor; needs a C compiler):
                 forward ``cat([f(z[idx]) ...])[inverse]``, backward the grouped ``aten.*_backward``
                 calls; skipped with a note where torch or a compiler is missing (``--no-torch-compile``);
* jax.jit     -- XLA through ``jax.jit`` (pip only, no toolchain): the layer grouped by kind the same
                 way (``jnp.concatenate([f(z[idx]) ...])[inverse]``); backward = ``jax.vjp`` of that
                 forward applied to ``err``; training step = one ``jax.vjp`` (value and pullback);
                 skipped with a note where jax is not importable (``--no-jax``);
* node-major  -- (batch-major rows) CPU_JIT on the same layer in the node-major layout, on the
                 transposed arrays: batch-major / node-major = 1 / its ratio;
* copy        -- ``np.copyto(a, z)``: one read + one write of the output's size on one thread, the
                 memory floor (a loss or backward reads two inputs, so its own floor is ~1.5x this).

Also, per kind: a homogeneous 512 x 4096 layer of each W1 kind (forward), CPU_JIT against jax.jit,
torch eager and the copy (``--no-kinds`` leaves these rows out).

Every contender's output is checked against CPU_JIT's before timing. Times are medians of ``--reps``
calls (split into rounds of warm-up + timed blocks, see ``_common.time_blocks``); ratios are
contender / CPU_JIT, so > 1 means CPU_JIT is faster.

Usage::

    python benchmarks/bench_cpu.py [--reps 30] [--quick] [--markdown docs/_generated/bench_cpu.md]
                                   [--seed PATH] [--threads N] [--no-torch] [--no-torch-compile]
                                   [--no-jax] [--no-kinds]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_SEED,
    REPO,
    SETTLE,
    W1_KINDS,
    WARM,
    cores,
    emit,
    load_seed,
    machine_lines,
    median,
    time_blocks,
    w1_configs,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=30, help="timed calls per contender and workload (default 30)")
    p.add_argument("--rounds", type=int, default=3, help="rounds the reps are split over (default 3)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before each timed block (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1/8 of the batch sizes, 5 reps, 1 round")
    p.add_argument("--markdown", type=Path, help="also write the report to this file")
    p.add_argument("--seed", type=Path, default=DEFAULT_SEED, help=f"seed_reference.py (default {DEFAULT_SEED})")
    p.add_argument("--threads", type=int, default=0, help="threads for every contender (default: usable cores)")
    p.add_argument("--no-torch", action="store_true", help="leave torch out (and torch.compile)")
    p.add_argument("--no-torch-compile", action="store_true", help="leave torch.compile out")
    p.add_argument("--no-jax", action="store_true", help="leave jax.jit out")
    p.add_argument("--no-kinds", action="store_true", help="leave out the homogeneous per-kind rows")
    args = p.parse_args()
    if args.quick:
        args.reps, args.rounds, args.warmup = 5, 1, 1
    args.rounds = max(1, min(args.rounds, args.reps))
    return args


# ---------------------------------------------------------------------------------------------------
# torch contenders
# ---------------------------------------------------------------------------------------------------

def torch_functions(torch):
    """kind -> (forward(z), backward(err, z)) in eager torch, for the W1 kinds."""
    F = torch.nn.functional
    aten = torch.ops.aten
    table = {
        "relu": (F.relu, lambda e, z: aten.threshold_backward(e, z, 0)),
        "sigmoid": (torch.sigmoid, lambda e, z: aten.sigmoid_backward(e, torch.sigmoid(z))),
        "tanh": (torch.tanh, lambda e, z: aten.tanh_backward(e, torch.tanh(z))),
        "gelu": (F.gelu, lambda e, z: aten.gelu_backward(e, z)),
        "leaky_relu": (None, None),  # needs alpha: built below
        "swish": (None, None),  # needs beta: built below
        "softplus": (F.softplus, lambda e, z: aten.softplus_backward(e, z, 1.0, 20.0)),
        "mish": (F.mish, lambda e, z: aten.mish_backward(e, z)),
    }

    def make(kind: str, consts: dict[str, float]):
        if kind == "leaky_relu":
            alpha = consts["alpha"]
            return (lambda z: F.leaky_relu(z, alpha), lambda e, z: aten.leaky_relu_backward(e, z, alpha, False))
        if kind == "swish":
            beta = consts["beta"]
            return (lambda z: z * torch.sigmoid(beta * z), lambda e, z: aten.silu_backward(e, beta * z))
        return table[kind]

    return make


def torch_grouped(torch, make, configs, dim: int):
    """forward(z, out) and backward(z, err, out) of a heterogeneous layer, grouped by kind."""
    groups: dict[tuple, list[int]] = {}
    for j, (kind, consts) in enumerate(configs):
        groups.setdefault((kind, tuple(sorted(consts.items()))), []).append(j)
    plan = [(make(kind, dict(consts)), torch.tensor(nodes, dtype=torch.int64))
            for (kind, consts), nodes in groups.items()]

    def forward(z, out):
        for (f, _), idx in plan:
            out.index_copy_(dim, idx, f(z.index_select(dim, idx)))
        return out

    def backward(z, err, out):
        for (_, df), idx in plan:
            out.index_copy_(dim, idx, df(err.index_select(dim, idx), z.index_select(dim, idx)))
        return out

    return forward, backward


def _groups(configs):
    groups: dict[tuple, list[int]] = {}
    for j, (kind, consts) in enumerate(configs):
        groups.setdefault((kind, tuple(sorted(consts.items()))), []).append(j)
    return groups


def torch_compiled(torch, make, configs, dim: int):
    """torch.compile'd forward(z) and backward(z, err) of a layer, grouped by kind (functional)."""
    groups = _groups(configs)
    plan = [(make(kind, dict(consts)), torch.tensor(nodes, dtype=torch.int64)) for (kind, consts), nodes in groups.items()]
    inverse = torch.argsort(torch.cat([idx for _, idx in plan]))

    def forward(z):
        return torch.cat([f(z.index_select(dim, idx)) for (f, _), idx in plan], dim).index_select(dim, inverse)

    def backward(z, err):
        return torch.cat([df(err.index_select(dim, idx), z.index_select(dim, idx)) for (_, df), idx in plan],
                         dim).index_select(dim, inverse)

    return torch.compile(forward), torch.compile(backward)


def jax_functions(jax):
    """kind -> f(z) in jax.numpy, for the W1 kinds."""
    jnp, nn = jax.numpy, jax.nn

    def make(kind: str, consts: dict[str, float]):
        if kind == "leaky_relu":
            return lambda z: nn.leaky_relu(z, consts["alpha"])
        if kind == "swish":
            beta = consts.get("beta", 1.0)
            return lambda z: z * nn.sigmoid(beta * z)
        return {"relu": nn.relu, "sigmoid": nn.sigmoid, "tanh": jnp.tanh, "softplus": nn.softplus,
                "gelu": lambda z: nn.gelu(z, approximate=False), "mish": lambda z: z * jnp.tanh(nn.softplus(z)),
                }[kind]

    return make


def jax_layer(jax, make, configs, dim: int):
    """jitted forward(z), backward(z, err) (jax.vjp) and step(z, err) -> (a, delta) of a layer."""
    import numpy as np

    jnp = jax.numpy
    groups = _groups(configs)
    if len(groups) == 1:  # homogeneous: one call on the whole array
        (kind, consts), = groups
        forward = make(kind, dict(consts))
    else:
        plan = [(make(kind, dict(consts)), np.array(nodes)) for (kind, consts), nodes in groups.items()]
        inverse = np.argsort(np.concatenate([idx for _, idx in plan]))

        def forward(z):
            return jnp.take(jnp.concatenate([f(jnp.take(z, idx, axis=dim)) for f, idx in plan], axis=dim),
                            inverse, axis=dim)

    def backward(z, err):
        return jax.vjp(forward, z)[1](err)[0]

    def step(z, err):
        a, pullback = jax.vjp(forward, z)
        return a, pullback(err)[0]

    return jax.jit(forward), jax.jit(backward), jax.jit(step)


# ---------------------------------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------------------------------

class Workload:
    def __init__(self, name: str, elements: int, bytes_moved: int):
        self.name, self.elements, self.bytes_moved = name, elements, bytes_moved
        self.functions: dict[str, object] = {}  # contender -> callable returning its output
        self.missing: dict[str, str] = {}  # contender -> why it is not run


def build_workloads(args, np, torch, seed, seed_note, threads, jax=None, jax_note="", compile_note=""):
    from symjit_numba import SymbolicJITCompiler

    rng = np.random.default_rng(0)
    scale = 8 if args.quick else 1
    nodes, batch, big = 512, 4096 // scale, 2 ** 22 // scale
    compile_notes: list[str] = []
    workloads: list[Workload] = []

    def compiled(configs, method, **kw):
        t = time.perf_counter()
        c = SymbolicJITCompiler(configs, method, **kw)
        if c.calculation_method != method:
            raise SystemExit(f"{method} fell back to {c.calculation_method}")
        return c, time.perf_counter() - t

    def seed_kernel(label, configs):
        if seed is None:
            return None
        k = seed.SeedKernel(configs)
        compile_notes.append(f"seed g++ compile for {label}: {k.compile_seconds:.2f} s")
        return k

    make = torch_functions(torch) if torch is not None else None
    jax_make = jax_functions(jax) if jax is not None else None
    use_compile = torch is not None and not compile_note

    def activation(label, configs, shape_nm, layout="node_major", directions=("fwd", "bwd"), step=False,
                   per_kind=False):
        """per_kind: a homogeneous layer timed against jax.jit, torch eager and the copy only."""
        n = len(configs)
        shape = shape_nm if layout == "node_major" else shape_nm[::-1]
        b = shape_nm[1]
        jit, t_jit = compiled(configs, "CPU_JIT", layout=layout)
        py, t_py = (None, 0.0) if per_kind else compiled(configs, "CPU_PYTHON", layout=layout)
        compile_notes.append(f"CPU_JIT constructor for {label} ({layout}): {t_jit:.2f} s (includes disk-cache hits)"
                             + ("" if per_kind else f"; CPU_PYTHON: {t_py:.2f} s"))
        params, offsets = jit.make_params(np.float32)
        z = (3.0 * rng.standard_normal(shape)).astype(np.float32)
        err = rng.standard_normal(shape).astype(np.float32)
        sk = seed_kernel(label, configs) if layout == "node_major" and not per_kind else None
        offsets32 = offsets.astype(np.int32)
        if torch is not None:
            tz, terr = torch.from_numpy(z), torch.from_numpy(err)
            dim = 0 if layout == "node_major" else 1
            if len({c[0] for c in configs}) == 1:  # homogeneous: one functional call on the whole array
                f, df = make(*configs[0])
                t_fwd, t_bwd = (lambda: f(tz)), (lambda: df(terr, tz))
            else:
                g_fwd, g_bwd = torch_grouped(torch, make, configs, dim)
                tout_f, tout_b = torch.empty_like(tz), torch.empty_like(tz)
                t_fwd, t_bwd = (lambda: g_fwd(tz, tout_f)), (lambda: g_bwd(tz, terr, tout_b))
        dim = 0 if layout == "node_major" else 1
        if jax is not None:
            t = time.perf_counter()
            j_fwd, j_bwd, j_step = jax_layer(jax, jax_make, configs, dim)
            jz, jerr = jax.device_put(z), jax.device_put(err)
            jax_calls = {"fwd": lambda: j_fwd(jz).block_until_ready(),
                         "bwd": lambda: j_bwd(jz, jerr).block_until_ready(),
                         "step": lambda: jax.block_until_ready(j_step(jz, jerr))[1]}
            for direction in directions:
                jax_calls[direction]()
            compile_notes.append(f"jax.jit trace + XLA compile for {label} ({layout}, {'/'.join(directions)}): "
                                 f"{time.perf_counter() - t:.2f} s")
        if use_compile and not per_kind:
            t = time.perf_counter()
            c_fwd, c_bwd = torch_compiled(torch, make, configs, dim)
            tz_c, terr_c = torch.from_numpy(z), torch.from_numpy(err)
            compiled_calls = {"fwd": lambda: c_fwd(tz_c), "bwd": lambda: c_bwd(tz_c, terr_c)}
            for direction in directions:
                compiled_calls[direction]()
            compile_notes.append(f"torch.compile for {label} ({layout}, {'/'.join(directions)}): "
                                 f"{time.perf_counter() - t:.2f} s")
        outs = {k: np.empty_like(z) for k in ("jit", "py", "seed", "copy")}
        # Each contender's forward and backward call, returning its output (for the agreement check).
        calls = {
            "fwd": {"CPU_JIT": lambda: (jit.forward_kernel(z, outs["jit"], params, offsets, n, b), outs["jit"])[1],
                    "CPU_PYTHON": lambda: (py.forward_kernel(z, outs["py"], params, offsets, n, b), outs["py"])[1]},
            "bwd": {"CPU_JIT": lambda: (jit.backward_kernel(z, err, outs["jit"], params, offsets, n, b), outs["jit"])[1],
                    "CPU_PYTHON": lambda: (py.backward_kernel(z, err, outs["py"], params, offsets, n, b),
                                           outs["py"])[1]},
        }
        if per_kind:
            for direction in calls:
                del calls[direction]["CPU_PYTHON"]
        if jax is not None:
            calls["fwd"]["jax.jit"], calls["bwd"]["jax.jit"] = jax_calls["fwd"], jax_calls["bwd"]
        if use_compile and not per_kind:
            calls["fwd"]["torch.compile"], calls["bwd"]["torch.compile"] = compiled_calls["fwd"], compiled_calls["bwd"]
        if sk is not None:
            calls["fwd"]["seed (g++)"] = lambda: (sk.forward(z, outs["seed"], params, offsets32), outs["seed"])[1]
            calls["bwd"]["seed (g++)"] = lambda: (sk.backward(z, err, outs["seed"], params, offsets32), outs["seed"])[1]
        if torch is not None:
            calls["fwd"]["torch"], calls["bwd"]["torch"] = t_fwd, t_bwd
        if layout == "batch_major":  # the same layer node-major, timed in the same blocks as batch-major
            by_nodes, _ = compiled(configs, "CPU_JIT")
            zt, errt, out_t = np.ascontiguousarray(z.T), np.ascontiguousarray(err.T), np.empty(shape_nm, np.float32)
            calls["fwd"]["node-major"] = lambda: (by_nodes.forward_kernel(zt, out_t, params, offsets, n, b), out_t.T)[1]
            calls["bwd"]["node-major"] = lambda: (by_nodes.backward_kernel(zt, errt, out_t, params, offsets, n, b),
                                                  out_t.T)[1]

        def add(name, nbytes, functions):
            w = Workload(name, z.size, nbytes)
            w.functions.update(functions)
            w.functions["copy"] = lambda: np.copyto(outs["copy"], z)
            if sk is None and not per_kind:
                w.missing["seed (g++)"] = seed_note or "node-major only"
            if layout != "batch_major":
                w.missing["node-major"] = "batch-major rows only"
            if torch is None:
                w.missing["torch"] = "left out (--no-torch)" if args.no_torch else "not importable"
            if jax is None:
                w.missing["jax.jit"] = jax_note
            if not use_compile and not per_kind:
                w.missing["torch.compile"] = compile_note or "left out (--no-torch)"
            workloads.append(w)

        for direction in directions:
            add(f"{label} {direction}" + ("" if layout == "node_major" else " (batch_major)"),
                z.nbytes * (2 if direction == "fwd" else 3), calls[direction])
        if per_kind:
            return
        if step:  # a training step's activation work: a = f(z), then delta = err * f'(z)
            d = np.empty_like(z)
            step_calls = {name: (lambda f=f, g=calls["bwd"][name]: (f(), g())[1]) for name, f in calls["fwd"].items()}
            step_calls["CPU_JIT"] = lambda: (jit.forward_derivative_kernel(z, outs["jit"], d, params, offsets, n, b),
                                             np.multiply(err, d, out=d))[1]
            if jax is not None:  # one jax.vjp: the forward value and the pullback of err
                jax_calls["step"]()
                step_calls["jax.jit"] = jax_calls["step"]
            add(f"{label} fwd+bwd step", z.nbytes * 5, step_calls)

    activation("W1", w1_configs(nodes), (nodes, batch), step=True)
    activation("relu", [("relu", {})] * nodes, (nodes, batch))
    activation("gelu 1-node", [("gelu", {})], (1, big))
    activation("W1", w1_configs(nodes), (nodes, batch), layout="batch_major")
    # one formula whose constant differs per node (read per column in the batch-major layout)
    activation("swish beta per node", [("swish", {"beta": 1.5})] * nodes, (nodes, batch), layout="batch_major")
    if not args.no_kinds:  # homogeneous layers, one per W1 kind (forward): CPU_JIT vs jax.jit
        for kind, consts in W1_KINDS:
            activation(f"{kind} (homogeneous)", [(kind, consts)] * nodes, (nodes, batch), directions=("fwd",),
                       per_kind=True)

    # mse loss over 2**22 elements
    jit, t_jit = compiled([("mse", {})], "CPU_JIT", mode="loss")
    py, t_py = compiled([("mse", {})], "CPU_PYTHON", mode="loss")
    compile_notes.append(f"CPU_JIT constructor for mse loss: {t_jit:.2f} s; CPU_PYTHON: {t_py:.2f} s")
    params, _ = jit.make_params(np.float32)
    pred = rng.standard_normal(big).astype(np.float32)
    true = rng.standard_normal(big).astype(np.float32)
    louts = {k: np.empty_like(pred) for k in ("jit", "py", "copy")}
    for direction in ("fwd", "bwd"):
        w = Workload(f"mse loss {direction}", pred.size, pred.nbytes * 3)
        kernel = "forward_kernel" if direction == "fwd" else "backward_kernel"
        w.functions["CPU_JIT"] = (lambda k=getattr(jit, kernel): (k(pred, true, louts["jit"], params), louts["jit"])[1])
        w.functions["CPU_PYTHON"] = (lambda k=getattr(py, kernel): (k(pred, true, louts["py"], params), louts["py"])[1])
        w.missing["seed (g++)"] = "the seed design has no loss kernels"
        if torch is not None:
            tp, tt = torch.from_numpy(pred), torch.from_numpy(true)
            F = torch.nn.functional
            w.functions["torch"] = ((lambda: F.mse_loss(tp, tt, reduction="none")) if direction == "fwd"
                                    else (lambda: (tp - tt).mul_(2)))
        else:
            w.missing["torch"] = "left out (--no-torch)" if args.no_torch else "not importable"
        w.functions["copy"] = lambda: np.copyto(louts["copy"], pred)
        w.missing["jax.jit"] = "not run for losses"
        w.missing["torch.compile"] = "not run for losses"
        workloads.append(w)
    return workloads, compile_notes


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------

def check(np, w: Workload) -> list[str]:
    """Compare each contender's output with CPU_JIT's; return problems."""
    ref = np.asarray(w.functions["CPU_JIT"]()).copy()
    problems = []
    for name, f in w.functions.items():
        if name in ("CPU_JIT", "copy"):
            continue
        out = f()
        out = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
        out = out.reshape(ref.shape)
        worst = float(np.max(np.abs(out - ref) / (2e-4 + 2e-3 * np.abs(ref))))
        if not np.isfinite(worst) or worst > 1:
            i = np.unravel_index(np.argmax(np.abs(out - ref)), ref.shape)
            problems.append(f"{w.name}: {name} differs from CPU_JIT (at {tuple(int(k) for k in i)}: "
                            f"{out[i]!r} vs {ref[i]!r})")
    return problems


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()[0]
    threads = args.threads or cores()
    # OpenMP (the seed's libgomp, torch's) reads these when it starts: set them before loading either.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import numpy as np

    sys.path.insert(0, str(REPO))
    from symjit_numba import settings

    settings.num_threads = threads
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            torch = None
    jax, jax_note = None, "left out (--no-jax)"
    if not args.no_jax:
        try:
            import jax
        except ImportError:
            jax, jax_note = None, "jax not importable (pip install jax)"
    compile_note = ""
    if torch is None:
        compile_note = "left out (--no-torch)" if args.no_torch else "torch not importable"
    elif args.no_torch_compile:
        compile_note = "left out (--no-torch-compile)"
    elif not any(shutil.which(c) for c in ("cc", "gcc", "clang", "g++")):
        compile_note = "no C/C++ compiler found (torch.compile's inductor needs one)"
    seed, seed_note = load_seed(args.seed)
    if seed is None:
        print(f"note: seed reference skipped: {seed_note}", file=sys.stderr)

    workloads, compile_notes = build_workloads(args, np, torch, seed, seed_note, threads, jax, jax_note, compile_note)
    columns = ["CPU_JIT", "node-major", "CPU_PYTHON", "seed (g++)", "torch", "torch.compile", "jax.jit", "copy"]
    results: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    for w in workloads:
        problems += check(np, w)
        t0 = time.perf_counter()
        times = time_blocks(w.functions, args.reps, args.rounds, args.warmup)
        results[w.name] = {k: median(v) for k, v in times.items()}
        print(f"timed {w.name} in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in results[w.name].items()), file=sys.stderr)

    lines = [f"# CPU kernel throughput (float32, median of {args.reps} calls{', QUICK run' if args.quick else ''})", ""]
    lines += machine_lines(("torch", "jax", "jaxlib"))
    lines += [f"- threads: CPU_JIT `settings.num_threads={threads}`, seed `OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}`, "
              f"torch `set_num_threads({threads})`; copy = `np.copyto` (one thread)",
              f"- load average (1 min) before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {cores()} cores "
              "(other processes share this machine: a load near or above the core count slows every contender, "
              "OpenMP's spinning barriers most)",
              "- cells: median ms (contender / CPU_JIT; > 1 means CPU_JIT is faster). node-major: CPU_JIT on the "
              "batch-major rows' layer in the node-major layout (transposed arrays), timed in the same blocks "
              "(batch-major / node-major = 1 / that ratio). "
              "GB/s: CPU_JIT's bytes read + written per second.",
              "- torch W1: grouped by kind with index_select / index_copy_; backward = torch's native "
              "`aten.*_backward` kernels on (err, z), no autograd. relu/gelu rows: `F.relu`/`F.gelu` (allocating).",
              "- jax.jit: XLA on the CPU (its own thread pool), grouped by kind like torch; bwd = `jax.vjp` of the "
              "forward applied to err; fwd+bwd step = one `jax.vjp`. torch.compile: inductor, the grouped code as one "
              "function (forward; backward = the grouped aten backward calls). Both allocate their outputs.",
              "- timing: contenders run in blocks (warm-up, then timed calls), rotated over rounds, all in this one "
              "process: interleaved, so slow drifts of a shared machine spread over every contender. Each block "
              f"starts {SETTLE * 1000:.0f} ms after the previous one, once that library's spinning threads "
              f"(OpenMP, XLA) have gone idle, with {WARM * 1000:.0f} ms of untimed calls.",
              ""]
    lines.append("| workload | elements | " + " | ".join(columns) + " | CPU_JIT GB/s |")
    lines.append("|---|---:|" + "---:|" * len(columns) + "---:|")
    for w in workloads:
        r = results[w.name]
        base = r["CPU_JIT"]
        cells = []
        for c in columns:
            if c in r:
                cells.append(f"{1e3 * r[c]:.2f}" if c == "CPU_JIT" else f"{1e3 * r[c]:.2f} ({r[c] / base:.2f}x)")
            else:
                cells.append("n/a")
        lines.append(f"| {w.name} | {w.elements:,} | " + " | ".join(cells) + f" | {w.bytes_moved / base / 1e9:.1f} |")
    lines += ["", "Notes:", ""]
    lines += [f"- {n}" for n in compile_notes]
    for w in workloads:
        for name, why in w.missing.items():
            if why and f"- n/a {name}: {why}" not in lines:
                lines.append(f"- n/a {name}: {why}")
    lines += [f"- CHECK FAILED: {p}" for p in problems] or ["- every contender's output matched CPU_JIT's "
                                                            "(|diff| <= 2e-4 + 2e-3*|ref|)"]
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
