"""GPU_CUDA throughput and compile time on a real NVIDIA GPU (float32, node-major).

Measures, with every array already on the GPU (numba device arrays; CuPy views of the same memory
for the seed), so no host <-> device copy of the data is timed:

1. relu layer (``--nodes`` x ``--batch``, default 4096 x 65536) forward and backward against a
   device-to-device copy of one array (``DeviceNDArray.copy_to_device``): the fraction of the copy's
   bandwidth our kernels reach (a forward moves what the copy moves; a backward 1.5x that);
2. W1 (8 kinds cycled over the nodes) forward and backward against the seed's GPU design: a CuPy
   ``RawKernel`` that evaluates one CUDA C ``switch`` per element, its cases printed by SymPy exactly
   as ``seed_reference._cases`` prints them for the g++ seed (skipped when CuPy is not installed);
3. compile time of W1: our constructor + the first forward + backward (+ synchronise) with an empty
   kernel cache (in this process) and with the filled cache (in a fresh process, which also pays
   CUDA context creation, reported apart); the seed's SymPy printing + NVRTC compile + first launch
   with an empty ``CUPY_CACHE_DIR``.

Timing: ``time.perf_counter`` around the call with ``numba.cuda.synchronize()`` before and after
(wall time, as a caller sees it, including our Python-side argument checks) and CUDA events recorded
on the default stream around the same call (GPU time); medians of ``--reps`` calls after ``--warmup``.
The parameters live on the GPU; ``offset_list`` is passed as numpy (the kernels' validation reads it on
the host), so each of our calls includes GPU_CUDA's small host-to-device copies of the offsets and
formula ids: that is part of the cost a caller pays.

Without a usable GPU (``numba.cuda.is_available()`` is False) the script prints why and exits with
status 2. Under ``NUMBA_ENABLE_CUDASIM=1`` it runs (use tiny ``--nodes``/``--batch``), but its
timings mean nothing.

Usage::

    python benchmarks/bench_gpu.py [--nodes 4096] [--batch 65536] [--reps 50] [--markdown FILE] [--seed PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_SEED, REPO, W1_KINDS, emit, load_seed, machine_lines, median, w1_configs  # noqa: E402

THREADS = 256

SEED_CUDA = r"""
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#ifndef M_SQRT2
#define M_SQRT2 1.41421356237309504880
#endif
#ifndef M_SQRT1_2
#define M_SQRT1_2 0.70710678118654752440
#endif
#ifndef M_2_SQRTPI
#define M_2_SQRTPI 1.12837916709551257390
#endif
#ifndef M_1_PI
#define M_1_PI 0.31830988618379067154
#endif
#ifndef M_E
#define M_E 2.7182818284590452354
#endif
#ifndef M_LN2
#define M_LN2 0.69314718055994530942
#endif
__device__ __forceinline__ float fwd(int id, float z_val, const float* params, int offset) { switch (id) { FWD_CASES default: return z_val; } }
__device__ __forceinline__ float bwd(int id, float z_val, const float* params, int offset) { switch (id) { BWD_CASES default: return 1.0f; } }
extern "C" __global__ void forward(const float* z, float* a, const int* ids, const float* params, const int* offs,
                                   long long n, long long b) {
  long long tot = n * b;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < tot; i += (long long)blockDim.x * gridDim.x) {
    long long j = i / b; a[i] = fwd(ids[j], z[i], params, offs[j]);
  }
}
extern "C" __global__ void backward(const float* z, const float* err, float* d, const int* ids, const float* params,
                                    const int* offs, long long n, long long b) {
  long long tot = n * b;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < tot; i += (long long)blockDim.x * gridDim.x) {
    long long j = i / b; d[i] = err[i] * bwd(ids[j], z[i], params, offs[j]);
  }
}
"""

WARM_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from numba import cuda
cuda.current_context()
t_ctx = time.perf_counter()
from symjit_numba import SymbolicJITCompiler
A = json.loads(sys.argv[1])
kinds = [(k, dict(c)) for k, c in A["kinds"]]
configs = [kinds[j % len(kinds)] for j in range(A["nodes"])]
t1 = time.perf_counter()
c = SymbolicJITCompiler(configs, "GPU_CUDA")
params, offsets = c.make_params(np.float32)
z = cuda.to_device(np.ones((A["nodes"], 256), np.float32)); e = cuda.to_device(np.ones((A["nodes"], 256), np.float32))
a = cuda.device_array_like(z); d = cuda.device_array_like(z); p = cuda.to_device(params)
cuda.synchronize()
t2 = time.perf_counter()
c.forward_kernel(z, a, p, offsets, A["nodes"], 256); c.backward_kernel(z, e, d, p, offsets, A["nodes"], 256)
cuda.synchronize()
t3 = time.perf_counter()
print("RESULT" + json.dumps({"context": t_ctx - t0, "constructor": t2 - t1, "first": t3 - t2}))
"""


class GpuTimer:
    def __init__(self, cuda, simulator: bool):
        self.cuda, self.simulator = cuda, simulator

    def __call__(self, fn, reps: int, warmup: int) -> tuple[float, float | None]:
        """Median wall seconds (perf_counter + synchronize) and median event seconds of fn()."""
        cuda = self.cuda
        for _ in range(warmup):
            fn()
        cuda.synchronize()
        wall, gpu = [], []
        for _ in range(reps):
            if not self.simulator:
                start, stop = cuda.event(), cuda.event()
                start.record()
            t = time.perf_counter()
            fn()
            if not self.simulator:
                stop.record()
            cuda.synchronize()
            wall.append(time.perf_counter() - t)
            if not self.simulator:
                gpu.append(cuda.event_elapsed_time(start, stop) / 1e3)
        return median(wall), (median(gpu) if gpu else None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=4096)
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--seed", type=Path, default=DEFAULT_SEED, help=f"seed_reference.py (default {DEFAULT_SEED})")
    p.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = p.parse_args()

    try:
        from numba import cuda
    except ImportError as error:
        print(f"bench_gpu: numba.cuda cannot be imported ({error}); install numba-cuda "
              "(pip install 'symjit_numba[cuda]'). Nothing measured.", file=sys.stderr)
        sys.exit(2)
    try:
        available = cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken driver is "not available"
        available = False
    if not available:
        print("bench_gpu: no usable CUDA GPU (numba.cuda.is_available() is False: no GPU, no driver, or "
              "numba-cuda missing). This benchmark needs a real NVIDIA GPU. Nothing measured.", file=sys.stderr)
        sys.exit(2)
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if simulator:
        print("bench_gpu: WARNING: running under numba's CUDA simulator; timings are meaningless.", file=sys.stderr)

    # CuPy's on-disk kernel cache: point it at an empty folder so the seed's compile time is cold.
    cupy_cache = Path(tempfile.mkdtemp(prefix="bench_gpu_cupy-"))
    os.environ["CUPY_CACHE_DIR"] = str(cupy_cache)
    try:
        import cupy
    except ImportError:
        cupy = None
    if simulator:
        cupy = None
    seed, seed_note = load_seed(args.seed, need_gxx=False)
    if cupy is None:
        seed_note = "CuPy is not installed" if not simulator else "simulator run"
    elif seed is None:
        cupy = None

    import numpy as np

    sys.path.insert(0, str(REPO))
    from symjit_numba import SymbolicJITCompiler, settings

    cuda.select_device(args.device)
    timer = GpuTimer(cuda, simulator)
    n, b = args.nodes, args.batch
    configs = w1_configs(n)
    notes: list[str] = []
    rows: list[tuple[str, float, float | None, int, str]] = []  # name, wall, gpu, bytes, comparison

    # ---- 3a. our compile time, cold (must run first: kernel modules are memoised per process) ----
    kernel_cache = Path(tempfile.mkdtemp(prefix="bench_gpu_kernels-"))
    settings.cache_dir = kernel_cache
    t_ctx = time.perf_counter()
    cuda.current_context()
    t_ctx = time.perf_counter() - t_ctx
    small = (n, 256)
    zs = cuda.to_device(np.ones(small, np.float32))
    es, as_, ds = cuda.to_device(np.ones(small, np.float32)), cuda.device_array(small, np.float32), cuda.device_array(small, np.float32)
    cuda.synchronize()
    t = time.perf_counter()
    w1 = SymbolicJITCompiler(configs, "GPU_CUDA", device_id=args.device)
    t_constructor = time.perf_counter() - t
    if w1.calculation_method != "GPU_CUDA":
        raise SystemExit(f"GPU_CUDA fell back to {w1.calculation_method}")
    params, offsets = w1.make_params(np.float32)
    d_params = cuda.to_device(params)
    w1.forward_kernel(zs, as_, d_params, offsets, n, 256)
    w1.backward_kernel(zs, es, ds, d_params, offsets, n, 256)
    cuda.synchronize()
    t_cold = time.perf_counter() - t

    # ---- 3b. warm, in a fresh process on the filled cache ----
    warm = None
    if not simulator:
        env = dict(os.environ, SYMJIT_NUMBA_CACHE_DIR=str(kernel_cache))
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.pop("NUMBA_CACHE_DIR", None)
        payload = json.dumps({"kinds": [[k, sorted(c.items())] for k, c in W1_KINDS], "nodes": n})
        proc = subprocess.run([sys.executable, "-c", WARM_CHILD, payload], env=env, capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
        if lines:
            warm = json.loads(lines[-1][6:])
        else:
            notes.append(f"warm-cache child failed: {proc.stderr[-500:]}")

    # ---- data ----
    rng = np.random.default_rng(0)
    print(f"generating {n} x {b} float32 inputs ({n * b * 4 / 2**30:.2f} GiB each)...", file=sys.stderr)
    z = cuda.to_device(3.0 * rng.standard_normal((n, b), dtype=np.float32))
    err = cuda.to_device(rng.standard_normal((n, b), dtype=np.float32))
    out = cuda.device_array((n, b), np.float32)
    nbytes = n * b * 4

    # ---- 1. relu layer vs device-to-device copy ----
    relu = SymbolicJITCompiler([("relu", {})] * n, "GPU_CUDA", device_id=args.device)
    rp, ro = relu.make_params(np.float32)
    d_rp = cuda.to_device(rp)
    copy_wall, copy_gpu = timer(lambda: out.copy_to_device(z), args.reps, args.warmup)
    rows.append(("device-to-device copy (1 array)", copy_wall, copy_gpu, 2 * nbytes, "1.00 of copy"))
    for direction, moved in (("fwd", 2 * nbytes), ("bwd", 3 * nbytes)):
        if direction == "fwd":
            fn = lambda: relu.forward_kernel(z, out, d_rp, ro, n, b)  # noqa: E731
        else:
            fn = lambda: relu.backward_kernel(z, err, out, d_rp, ro, n, b)  # noqa: E731
        wall, gpu = timer(fn, args.reps, args.warmup)
        ref = copy_gpu if copy_gpu is not None else copy_wall
        mine = gpu if gpu is not None else wall
        fraction = (moved / mine) / (2 * nbytes / ref)
        rows.append((f"relu {direction} (GPU_CUDA)", wall, gpu, moved, f"{fraction:.2f} of copy bandwidth"))

    # ---- 2. W1 vs the seed's CuPy RawKernel ----
    ours = {}
    for direction, moved in (("fwd", 2 * nbytes), ("bwd", 3 * nbytes)):
        if direction == "fwd":
            fn = lambda: w1.forward_kernel(z, out, d_params, offsets, n, b)  # noqa: E731
        else:
            fn = lambda: w1.backward_kernel(z, err, out, d_params, offsets, n, b)  # noqa: E731
        ours[direction] = timer(fn, args.reps, args.warmup)
        rows.append((f"W1 {direction} (GPU_CUDA)", *ours[direction], moved, ""))

    seed_compile = None
    if cupy is not None:
        t = time.perf_counter()
        fwd_cases, ids = seed._cases(configs, "fwd")
        bwd_cases, _ = seed._cases(configs, "bwd")
        t_sympy = time.perf_counter() - t
        source = SEED_CUDA.replace("FWD_CASES", fwd_cases).replace("BWD_CASES", bwd_cases)
        k_fwd = cupy.RawKernel(source, "forward")
        k_bwd = cupy.RawKernel(source, "backward")
        c_z, c_err, c_out = cupy.asarray(z), cupy.asarray(err), cupy.asarray(out)
        c_ids = cupy.asarray(ids)
        c_params = cupy.asarray(params)
        c_offs = cupy.asarray(offsets.astype(np.int32))
        blocks = min(math.ceil(n * b / THREADS), 2 ** 31 - 1)
        n64, b64 = np.int64(n), np.int64(b)
        seed_fwd = lambda: k_fwd((blocks,), (THREADS,), (c_z, c_out, c_ids, c_params, c_offs, n64, b64))  # noqa: E731
        seed_bwd = lambda: k_bwd((blocks,), (THREADS,), (c_z, c_err, c_out, c_ids, c_params, c_offs, n64, b64))  # noqa: E731
        t = time.perf_counter()
        seed_fwd()
        seed_bwd()
        cupy.cuda.Device().synchronize()
        seed_compile = (t_sympy, time.perf_counter() - t)

        # check the seed against ours on the first rows (every kind appears in any 8 neighbouring rows)
        rows_checked = min(n, 64)
        for direction, mine_fn, seed_fn in (("fwd", lambda: w1.forward_kernel(z, out, d_params, offsets, n, b), seed_fwd),
                                            ("bwd", lambda: w1.backward_kernel(z, err, out, d_params, offsets, n, b), seed_bwd)):
            mine_fn()
            cuda.synchronize()
            a_ours = out[:rows_checked].copy_to_host()
            seed_fn()
            cupy.cuda.Device().synchronize()
            a_seed = out[:rows_checked].copy_to_host()
            worst = float(np.max(np.abs(a_ours - a_seed) / (2e-4 + 2e-3 * np.abs(a_ours))))
            if not np.isfinite(worst) or worst > 1:
                notes.append(f"CHECK: W1 {direction}: the seed kernel and GPU_CUDA disagree on the first "
                             f"{rows_checked} rows (worst scaled difference {worst:.3g})")
        for direction, fn, moved in (("fwd", seed_fwd, 2 * nbytes), ("bwd", seed_bwd, 3 * nbytes)):
            wall, gpu = timer(fn, args.reps, args.warmup)
            mine = ours[direction][1] or ours[direction][0]
            theirs = gpu if gpu is not None else wall
            rows.append((f"W1 {direction} (seed CuPy switch)", wall, gpu, moved,
                         f"{theirs / mine:.2f}x GPU_CUDA's time"))
    else:
        notes.append(f"seed CuPy RawKernel skipped: {seed_note}")

    # ---- report ----
    try:
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        capability = dev.compute_capability
    except AttributeError:  # the simulator
        name, capability = "CUDA simulator", "-"
    lines = [f"# GPU_CUDA throughput and compile time ({n} x {b} float32, node-major)", ""]
    lines += machine_lines(("cupy",))
    lines += [f"- GPU {args.device}: {name}, compute capability {capability}"
              + (" (SIMULATOR: timings meaningless)" if simulator else ""),
              f"- medians of {args.reps} calls after {args.warmup} warm-up calls; wall = perf_counter with "
              "synchronize around the call; GPU = CUDA events on the default stream; GB/s from the GPU time "
              "(wall where events are unavailable), bytes = arrays read + written.",
              "",
              "| kernel | wall ms | GPU ms | GB/s | comparison |",
              "|---|---:|---:|---:|---|"]
    for label, wall, gpu, moved, comparison in rows:
        t_ref = gpu if gpu is not None else wall
        lines.append(f"| {label} | {1e3 * wall:.3f} | {'' if gpu is None else f'{1e3 * gpu:.3f}'} | "
                     f"{moved / t_ref / 1e9:.0f} | {comparison} |")
    lines += ["", "Compile time of W1 (seconds):", "",
              "| what | seconds |", "|---|---:|",
              f"| CUDA context creation (this process) | {t_ctx:.3f} |",
              f"| GPU_CUDA cold: constructor (SymPy + codegen) | {t_constructor:.3f} |",
              f"| GPU_CUDA cold: constructor + first fwd+bwd (numba.cuda compiles at first launch) | {t_cold:.3f} |"]
    if warm:
        lines += [f"| GPU_CUDA warm, fresh process: CUDA context | {warm['context']:.3f} |",
                  f"| GPU_CUDA warm, fresh process: constructor | {warm['constructor']:.3f} |",
                  f"| GPU_CUDA warm, fresh process: first fwd+bwd | {warm['first']:.3f} |"]
    if seed_compile:
        lines += [f"| seed: SymPy `_cases` printing (fwd + bwd) | {seed_compile[0]:.3f} |",
                  f"| seed: NVRTC compile + first fwd+bwd (empty CuPy cache) | {seed_compile[1]:.3f} |"]
    lines += ["", "Notes:", ""] + [f"- {x}" for x in notes] + [
        "- the seed kernel is printed by `sp.ccode`, whose `1.0/2.0`-style literals promote parts of the "
        "arithmetic to FP64 (as in the seed's C++); its per-element `switch` reads `ids[i / b]`."]
    emit(lines, args.markdown)
    shutil.rmtree(cupy_cache, ignore_errors=True)
    shutil.rmtree(kernel_cache, ignore_errors=True)


if __name__ == "__main__":
    main()
