"""The CPU_JIT task runners: formula-independent numba functions that run a range of a layer's tasks.

A task is one node's block of the batch (node-major) or a block of rows of a run of same-formula
nodes (batch-major). Each task calls its formula's function from the formula's generated module
(``node_block`` or ``row_block``, see :mod:`symjit_numba.codegen.source`) through the address of
that function's C wrapper, given per node (or per run) in ``kernels``. So a layer needs no
compilation of its own: these runners are compiled once per installation (numba's cache, next to
the package) and every formula once, whichever layers use it.

Also here: the block transpose by which the batch-major layout with interleaved formulas computes
node-major, tile by tile (:func:`tiled`).

A call through an address is not type-checked: the backend passes addresses of functions compiled
for exactly the argument types the runner passes (the same dtype, C-contiguous arrays).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..codegen.source import BLOCK, ROWS

__all__ = ["node_major", "node_major_both", "node_major_params", "node_major_backward_params", "batch_major",
           "batch_major_both", "batch_major_params", "batch_major_backward_params", "tiled", "tiled_both", "tiled_params",
           "tiled_backward_params", "TILE_BATCH", "TILE_NODES", "TASK_TILES"]

#: Rows (samples) and nodes of a tile of :func:`tiled` and friends: a float64 tile is 64 KB.
TILE_BATCH, TILE_NODES = 256, 32
#: Samples and nodes of one task of the runners with a task per node block: ``node_major`` (one
#: node's block of BLOCK samples) and ``tiled``. (``batch_major`` tasks are ROWS rows of a run.)
TASK_TILES = {"node_major": (BLOCK, 1), "tiled": (TILE_BATCH, TILE_NODES)}


@intrinsic
def _call(typingctx, address, arguments):
    """Call the C wrapper of a numba function at ``address`` with the tuple ``arguments``.

    A numba C wrapper takes each argument as its numba value type (arrays as their struct) and
    returns the value type of the function's result (``None`` here).
    """
    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(context.get_value_type(types.none),
                                        [context.get_value_type(t) for t in signature.args[1]])
        function = builder.inttoptr(args[0], function_type.as_pointer())
        builder.call(function, cgutils.unpack_tuple(builder, args[1]))
        return context.get_dummy_value()

    return types.void(address, arguments), codegen


def _jit(function):
    """``njit``, cached by numba next to the package (so compiled once per installation), or in
    each process where numba finds no writable cache location (it raises at decoration then)."""
    options = {"nogil": True, "error_model": "numpy", "no_rewrites": True, "no_cfunc_wrapper": True}
    try:
        return njit(cache=True, **options)(function)
    except RuntimeError:
        return njit(**options)(function)


@_jit
def _node_task(task, b):  # pragma: no cover - compiled
    """Node j and its elements lo..hi-1 for a task of an (n, b) layer."""
    blocks = (b + BLOCK - 1) // BLOCK
    j = task // blocks
    lo = (task - j * blocks) * BLOCK
    return j, lo, lo + BLOCK if lo + BLOCK < b else b


@_jit
def _row_task(task, runs, b):  # pragma: no cover - compiled
    """Run s of nodes and its rows r0..r1-1 for a task of a (b, n) layer with ``runs`` runs."""
    r0 = (task // runs) * ROWS
    return task - (task // runs) * runs, r0, r0 + ROWS if r0 + ROWS < b else b


@_jit
def node_major(first, last, backward, z, err, out, params, offsets, kernels):  # pragma: no cover - compiled
    """Tasks first..last-1 of an (n, b) layer, task = (node j, block of BLOCK samples): node_block."""
    for task in range(first, last):
        j, lo, hi = _node_task(task, z.shape[1])
        _call(kernels[j], (backward, z[j, lo:hi], err[j, lo:hi], out[j, lo:hi], params, offsets[j]))


@_jit
def node_major_both(first, last, z, a, d, params, offsets, kernels):  # pragma: no cover - compiled
    """As :func:`node_major`, calling node_block_both (f and df in one pass)."""
    for task in range(first, last):
        j, lo, hi = _node_task(task, z.shape[1])
        _call(kernels[j], (z[j, lo:hi], a[j, lo:hi], d[j, lo:hi], params, offsets[j]))


@_jit
def batch_major(first, last, backward, z, err, out, params, offsets, run_start, run_stop,
                kernels):  # pragma: no cover - compiled
    """Tasks first..last-1 of a (b, n) layer, task = (block of ROWS samples, run s of nodes
    run_start[s]:run_stop[s], which all have the formula of kernels[s]): row_block."""
    for task in range(first, last):
        s, r0, r1 = _row_task(task, run_start.size, z.shape[0])
        _call(kernels[s], (backward, z, err, out, params, offsets, r0, r1, run_start[s], run_stop[s]))


@_jit
def batch_major_both(first, last, z, a, d, params, offsets, run_start, run_stop,
                     kernels):  # pragma: no cover - compiled
    """As :func:`batch_major`, calling row_block_both (f and df in one pass)."""
    for task in range(first, last):
        s, r0, r1 = _row_task(task, run_start.size, z.shape[0])
        _call(kernels[s], (z, a, d, params, offsets, r0, r1, run_start[s], run_stop[s]))


# The summing kinds (param_backward, backward_with_params): each task writes its float64 sums into
# its own slot of ``partials`` (row: the task's block of samples; columns[k]:columns[k + 1]: node
# or run k's), whatever thread runs it; param_sums adds the slots in a fixed order afterwards.

@_jit
def node_major_params(first, last, z, err, params, offsets, kernels, columns,
                      partials):  # pragma: no cover - compiled
    """As :func:`node_major`, calling node_block_params: task (j, block) sums into
    partials[block, columns[j]:columns[j + 1]]."""
    for task in range(first, last):
        j, lo, hi = _node_task(task, z.shape[1])
        _call(kernels[j], (z[j, lo:hi], err[j, lo:hi], params, offsets[j],
                           partials[lo // BLOCK, columns[j]:columns[j + 1]]))


@_jit
def node_major_backward_params(first, last, z, err, delta, params, offsets, kernels, columns,
                               partials):  # pragma: no cover - compiled
    """As :func:`node_major_params`, calling node_block_backward_params (delta too, in one pass)."""
    for task in range(first, last):
        j, lo, hi = _node_task(task, z.shape[1])
        _call(kernels[j], (z[j, lo:hi], err[j, lo:hi], delta[j, lo:hi], params, offsets[j],
                           partials[lo // BLOCK, columns[j]:columns[j + 1]]))


@_jit
def batch_major_params(first, last, z, err, params, offsets, run_start, run_stop, kernels, columns,
                       partials):  # pragma: no cover - compiled
    """As :func:`batch_major`, calling row_block_params: task (rows r0..r1-1, run s) sums into
    partials[r0 // ROWS, columns[s]:columns[s + 1]]."""
    for task in range(first, last):
        s, r0, r1 = _row_task(task, run_start.size, z.shape[0])
        _call(kernels[s], (z, err, params, offsets, r0, r1, run_start[s], run_stop[s],
                           partials[r0 // ROWS, columns[s]:columns[s + 1]]))


@_jit
def batch_major_backward_params(first, last, z, err, delta, params, offsets, run_start, run_stop, kernels, columns,
                                partials):  # pragma: no cover - compiled
    """As :func:`batch_major_params`, calling row_block_backward_params (delta too, in one pass)."""
    for task in range(first, last):
        s, r0, r1 = _row_task(task, run_start.size, z.shape[0])
        _call(kernels[s], (z, err, delta, params, offsets, r0, r1, run_start[s], run_stop[s],
                           partials[r0 // ROWS, columns[s]:columns[s + 1]]))


# Batch-major arrays whose formulas interleave (runs of one formula too short to fill a vector):
# a task is a tile of TILE_BATCH rows x TILE_NODES nodes, transposed into the call's scratch
# arrays (node-major and small enough to stay in cache), computed by each node's node_block as
# in the node-major layout, and transposed back. One pass over memory, where transposing the
# whole layer in, computing, and transposing out took three.

@_jit
def _tile(task, b, n):  # pragma: no cover - compiled
    """Rows r0..r1-1 and nodes k0..k1-1 of a task of a (b, n) layer (tiles along the nodes first)."""
    tiles = (n + TILE_NODES - 1) // TILE_NODES
    r0 = (task // tiles) * TILE_BATCH
    k0 = (task - (task // tiles) * tiles) * TILE_NODES
    return r0, min(r0 + TILE_BATCH, b), k0, min(k0 + TILE_NODES, n)


@_jit
def _scratch(z):  # pragma: no cover - compiled
    """Room for one tile, node-major, in the dtype of ``z``."""
    return np.empty((TILE_NODES, TILE_BATCH), z.dtype)


@_jit
def _gather(source, tile, r0, r1, k0, k1):  # pragma: no cover - compiled
    """``tile[:k1-k0, :r1-r0] = source[r0:r1, k0:k1].T``."""
    _transpose_block(source, tile, r0, r1, k0, k1, 0, 0, True)


@_jit
def _scatter(tile, target, r0, r1, k0, k1):  # pragma: no cover - compiled
    """``target[r0:r1, k0:k1] = tile[:k1-k0, :r1-r0].T``."""
    _transpose_block(tile, target, 0, k1 - k0, 0, r1 - r0, r0, k0, False)


@_jit
def tiled(first, last, backward, z, err, out, params, offsets, kernels):  # pragma: no cover - compiled
    """Tasks first..last-1 of a (b, n) layer, task = a tile (see :func:`_tile`): node_block of each
    node k (kernels[k]) on its row of the transposed tile."""
    b, n = z.shape
    zt = _scratch(z)
    et = _scratch(z) if backward else zt
    ot = _scratch(z)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        m = r1 - r0
        _gather(z, zt, r0, r1, k0, k1)
        if backward:
            _gather(err, et, r0, r1, k0, k1)
        for k in range(k0, k1):
            _call(kernels[k], (backward, zt[k - k0, :m], et[k - k0, :m], ot[k - k0, :m], params, offsets[k]))
        _scatter(ot, out, r0, r1, k0, k1)


@_jit
def tiled_both(first, last, z, a, d, params, offsets, kernels):  # pragma: no cover - compiled
    """As :func:`tiled`, calling node_block_both (f and df in one pass)."""
    b, n = z.shape
    zt = _scratch(z)
    at = _scratch(z)
    dt = _scratch(z)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        m = r1 - r0
        _gather(z, zt, r0, r1, k0, k1)
        for k in range(k0, k1):
            _call(kernels[k], (zt[k - k0, :m], at[k - k0, :m], dt[k - k0, :m], params, offsets[k]))
        _scatter(at, a, r0, r1, k0, k1)
        _scatter(dt, d, r0, r1, k0, k1)


@_jit
def tiled_params(first, last, z, err, params, offsets, kernels, columns, partials):  # pragma: no cover - compiled
    """As :func:`tiled`, calling node_block_params: node k of the tile with rows r0..r1-1 sums into
    partials[r0 // TILE_BATCH, columns[k]:columns[k + 1]]."""
    b, n = z.shape
    zt = _scratch(z)
    et = _scratch(z)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        m = r1 - r0
        _gather(z, zt, r0, r1, k0, k1)
        _gather(err, et, r0, r1, k0, k1)
        for k in range(k0, k1):
            _call(kernels[k], (zt[k - k0, :m], et[k - k0, :m], params, offsets[k],
                               partials[r0 // TILE_BATCH, columns[k]:columns[k + 1]]))


@_jit
def tiled_backward_params(first, last, z, err, delta, params, offsets, kernels, columns,
                          partials):  # pragma: no cover - compiled
    """As :func:`tiled_params`, calling node_block_backward_params (delta too, in one pass)."""
    b, n = z.shape
    zt = _scratch(z)
    et = _scratch(z)
    dt = _scratch(z)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        m = r1 - r0
        _gather(z, zt, r0, r1, k0, k1)
        _gather(err, et, r0, r1, k0, k1)
        for k in range(k0, k1):
            _call(kernels[k], (zt[k - k0, :m], et[k - k0, :m], dt[k - k0, :m], params, offsets[k],
                               partials[r0 // TILE_BATCH, columns[k]:columns[k + 1]]))
        _scatter(dt, delta, r0, r1, k0, k1)


#: Bytes of one row of a transposed block: a cache line, and one AVX-512 register (LLVM splits the
#: vectors into halves or quarters on CPUs with narrower registers).
BLOCK_BYTES = 64


def block_size(itemsize: int) -> int:
    """Rows (= columns) of the square blocks that :func:`_transpose_square` transposes for an element size."""
    return BLOCK_BYTES // itemsize


@intrinsic
def _transpose_square(typingctx, source, target, r, c, tr, tc):
    """``target[tr:tr+N, tc:tc+N] = source[r:r+N, c:c+N].T`` for C-contiguous 2-D arrays of one dtype,
    N = :func:`block_size` (16 float32, 8 float64): each row one cache line.

    N vector loads, log2(N) rounds of two-source shuffles, N vector stores. Round d (N/2, ..., 2, 1)
    swaps the off-diagonal d x d sub-blocks of every 2d x 2d block (rows i and i + d, i & d == 0:
    row i takes row i + d's elements c - d where c & d, row i + d takes row i's c + d where not),
    which after all rounds is the transpose. LLVM lowers each shuffle to one or two of the target's
    own instructions (vpermt2ps, unpck, shuf128 on x86; zip/trn on ARM): element-wise copies were
    5x slower.
    """
    def codegen(context, builder, signature, args):
        source_array = context.make_array(signature.args[0])(context, builder, args[0])
        target_array = context.make_array(signature.args[1])(context, builder, args[1])
        r, c, tr, tc = args[2:]
        n = block_size(context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype)))
        vector = ir.VectorType(context.get_data_type(signature.args[0].dtype), n).as_pointer()

        def at(array, row, column, k):  # a pointer to array[row + k, column] as a vector of n
            index = builder.add(builder.mul(builder.add(row, ir.Constant(row.type, k)),
                                            builder.extract_value(array.shape, 1)), column)
            return builder.bitcast(builder.gep(array.data, [index]), vector)

        rows = [builder.load(at(source_array, r, c, k), align=1) for k in range(n)]
        d = n // 2
        while d:
            low = [k if not k & d else n + k - d for k in range(n)]
            high = [k + d if not k & d else n + k for k in range(n)]
            mask_type = ir.VectorType(ir.IntType(32), n)
            for i in range(n):
                if not i & d:
                    a, b = rows[i], rows[i + d]
                    rows[i] = builder.shuffle_vector(a, b, ir.Constant(mask_type, low))
                    rows[i + d] = builder.shuffle_vector(a, b, ir.Constant(mask_type, high))
            d //= 2
        for k in range(n):
            builder.store(rows[k], at(target_array, tr, tc, k), align=1)
        return context.get_dummy_value()

    return types.void(source, target, r, c, tr, tc), codegen


@_jit
def _block(x):  # pragma: no cover - compiled
    """:func:`block_size` for the dtype of the array ``x``, as a compile-time constant."""
    return BLOCK_BYTES // x.itemsize


@_jit
def _transpose_block(source, target, r0, r1, c0, c1, tr, tc, along_rows):  # pragma: no cover - compiled
    """``target[tr:tr+c1-c0, tc:tc+r1-r0] = source[r0:r1, c0:c1].T``: square blocks of one cache
    line per row by vector shuffles (:func:`_transpose_square`), the edges element by element.

    The blocks go along the source's rows first if ``along_rows`` (each group of source rows is
    read whole while in cache), else down its columns first (each group of target rows is written
    whole): whichever array is the large, strided one. With a power-of-two row stride, its rows
    share a few cache sets, so a line left for later has been evicted by then. (One loop nest, no
    call per block: a call would add reference counting of both arrays per block.)
    """
    n = _block(source)
    row_blocks, column_blocks = (r1 - r0 + n - 1) // n, (c1 - c0 + n - 1) // n
    outer, inner = (row_blocks, column_blocks) if along_rows else (column_blocks, row_blocks)
    for o in range(outer):
        for q in range(inner):
            rb = r0 + n * (o if along_rows else q)
            cb = c0 + n * (q if along_rows else o)
            if rb + n <= r1 and cb + n <= c1:
                _transpose_square(source, target, rb, cb, tr + cb - c0, tc + rb - r0)
            else:
                for c in range(cb, min(cb + n, c1)):
                    for r in range(rb, min(rb + n, r1)):
                        target[tr + c - c0, tc + r - r0] = source[r, c]
