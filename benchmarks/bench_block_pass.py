"""What a batch-major layer with interleaved formulas could cost without a tile in memory (a prototype).

The CPU_JIT batch-major path for interleaved formulas (``cpu_tasks.tiled``) transposes tiles of the
layer into scratch arrays, computes them node-major, and transposes them back: about 1.9x the
node-major time for W1 on one thread (docs/backends.md). Its moves cost as much as copies of the
layer, and they stay as slow without their shuffles: what costs is the tile's trip through memory.

This script times passes over a (4096, 512) float32 layer, 16 x 16 blocks at a time, each block
loaded into 16 vector registers and stored back with no tile in between: with or without the
in-register transpose there and back (``cpu_tasks.transposed``, the shuffle network of the tile moves),
and with or without a cheap formula applied to every vector (``x*x/2 + x``). A kernel of that shape
would compute each node's vector with the node's formula; the last row is the floor of such a
design, to compare with ``np.copyto`` (the memory floor) and with W1's node-major time.

Usage::

    python benchmarks/bench_block_pass.py [--reps 40] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine_lines, median, time_blocks  # noqa: E402

ROWS = 16  # a 16 x 16 float32 block: 16 rows of one cache line each


def block_pass(transpose: bool, compute: bool):
    """An njit function ``run(z, out)`` passing over ``z`` block by block into ``out``."""
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    from symjit_numba.backends.cpu_tasks import _block_rows, transposed

    @intrinsic
    def block(typingctx, source, target, row, column):
        def codegen(context, builder, signature, args):
            vector = ir.VectorType(ir.FloatType(), ROWS)
            pointers = [[builder.bitcast(p, vector.as_pointer()) for p in
                         _block_rows(context, builder, signature.args[k], args[k], args[2], args[3])] for k in (0, 1)]
            rows = [builder.load(p, align=1) for p in pointers[0]]
            if transpose:
                rows = transposed(builder, rows)
            if compute:
                half = ir.Constant(vector, [ir.Constant(ir.FloatType(), 0.5)] * ROWS)
                rows = [builder.fadd(builder.fmul(builder.fmul(r, r), half), r) for r in rows]
            if transpose:
                rows = transposed(builder, rows)
            for r, p in zip(rows, pointers[1]):
                builder.store(r, p, align=1)
            return context.get_dummy_value()

        return types.void(source, target, row, column), codegen

    @njit
    def run(z, out):  # pragma: no cover - compiled
        for r in range(0, z.shape[0], ROWS):
            for c in range(0, z.shape[1], ROWS):
                block(z, out, r, c)

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)

    z = np.random.default_rng(0).normal(size=(4096, 512)).astype(np.float32)
    out = np.empty_like(z)
    passes = {(t, c): block_pass(t, c) for t in (False, True) for c in (False, True)}
    passes[(True, False)](z, out)
    assert np.array_equal(out, z), "transposing twice must give the block back"
    passes[(True, True)](z, out)
    np.testing.assert_allclose(out, z * z / 2 + z, rtol=1e-6)

    functions = {f"blocks, transpose={t}, formula={c}": (lambda f=f: f(z, out)) for (t, c), f in passes.items()}
    functions["np.copyto"] = lambda: np.copyto(out, z)
    times = time_blocks(functions, args.reps, args.rounds, warmup=3)
    ms = {name: 1e3 * median(t) for name, t in times.items()}
    copy = ms["np.copyto"]
    lines = ["# One pass over a (4096, 512) float32 layer, 16 x 16 blocks in registers (one thread)", "",
             *machine_lines(), "", "| pass | median ms | / np.copyto |", "|---|---|---|"]
    lines += [f"| {name} | {value:.3f} | {value / copy:.2f} |" for name, value in ms.items()]
    lines += ["", f"- medians of {args.reps} calls in {args.rounds} interleaved rounds; a shared machine: read the ratios",
              "- compare the last block row with W1's node-major forward on one thread (bench_cpu.py --threads 1)"]
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
