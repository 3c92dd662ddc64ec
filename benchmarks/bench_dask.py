"""W1-large forward: one process against a ``distributed.LocalCluster`` of worker processes.

W1 (8 activation kinds cycled over 512 nodes), float32, node-major, batch 1,048,576 by default
(2 GiB per array). One process: ``forward_kernel`` on the whole array with ``settings.num_threads``
threads. Cluster: ``symjit_numba.dask.forward`` over batch chunks with the input already on the
workers (``persist``), each worker process running one thread; the results stay on the workers
(``persist`` and wait), so what is timed is the kernels plus Dask's scheduling, not transfers.

Run: ``python benchmarks/bench_dask.py [--batch 1048576] [--chunk 65536] [--workers 2] [--reps 5]``
Peak memory is about 4 arrays (two in this process, two spread over the workers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import cores, emit, machine_lines, median, w1_configs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1_048_576)
    parser.add_argument("--chunk", type=int, default=65_536)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    threads = cores()
    os.environ["SYMJIT_NUMBA_NUM_THREADS"] = str(max(1, threads // args.workers))  # read by the workers
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    from symjit_numba import SymbolicJITCompiler, settings
    from symjit_numba import dask as sjd

    settings.num_threads = threads
    n, b = args.nodes, args.batch
    layer = SymbolicJITCompiler(w1_configs(n), "CPU_JIT")
    params, offsets = layer.make_params(np.float32)
    gib = n * b * 4 / 2**30

    # One process: the whole array, all cores.
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, b), dtype=np.float32)
    a = np.empty_like(z)
    layer.forward_kernel(z, a, params, offsets, n, b)  # warm
    single = []
    for _ in range(args.reps):
        start = time.perf_counter()
        layer.forward_kernel(z, a, params, offsets, n, b)
        single.append(time.perf_counter() - start)
    fresh = []  # as each cluster task does: a new output array (first-touch page faults included)
    for _ in range(args.reps):
        start = time.perf_counter()
        a = np.empty_like(z)
        layer.forward_kernel(z, a, params, offsets, n, b)
        fresh.append(time.perf_counter() - start)
        del a
    del z

    # The cluster: input generated on the workers, results kept there.
    with LocalCluster(n_workers=args.workers, processes=True, threads_per_worker=1, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:
        zd = da.random.default_rng(0).standard_normal((n, b), dtype=np.float32, chunks=(n, args.chunk)).persist()
        wait(zd)
        wait(sjd.forward(layer, zd, params=params, offsets=offsets).persist())  # workers build the layer
        distributed = []
        for rep in range(args.reps):
            # Other params each time: the same ones would name the same (already computed) keys.
            live = params + np.float32(1e-6 * (rep + 1))
            start = time.perf_counter()
            out = sjd.forward(layer, zd, params=live, offsets=offsets).persist()
            wait(out)
            distributed.append(time.perf_counter() - start)
            del out
        where = client.run(lambda: os.getpid())
    t1, t2, t3 = median(single), median(distributed), median(fresh)
    lines = [
        f"# W1-large forward: one process vs a {args.workers}-worker LocalCluster",
        "",
        *machine_lines(("dask", "distributed")),
        f"- shape {n} × {b} float32 ({gib:.2f} GiB per array), chunks {n} × {args.chunk}, "
        f"{args.reps} reps, medians; one process uses {threads} threads, each of {len(where)} workers "
        f"{os.environ['SYMJIT_NUMBA_NUM_THREADS']}",
        "- a shared, noisy machine: read the ratio, not the milliseconds",
        "",
        "| | forward | GB/s (in + out) | vs one process |",
        "|---|---|---|---|",
        f"| one process | {t1 * 1e3:.0f} ms | {2 * gib * 1.0737 / t1:.1f} | 1.00x |",
        f"| one process, new output array each call | {t3 * 1e3:.0f} ms | {2 * gib * 1.0737 / t3:.1f} | "
        f"{t1 / t3:.2f}x |",
        f"| LocalCluster, {args.workers} workers | {t2 * 1e3:.0f} ms | {2 * gib * 1.0737 / t2:.1f} | {t1 / t2:.2f}x |",
    ]
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
