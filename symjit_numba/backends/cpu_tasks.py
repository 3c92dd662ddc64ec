"""The CPU_JIT task runners: formula-independent numba functions that run a range of a layer's tasks.

A task is one node's block of the batch (node-major) or a block of rows of a run of same-formula
nodes (batch-major). Each task calls its formula's function from the formula's generated module
(``node_block`` or ``row_block``, see :mod:`symjit_numba.codegen.source`) through the address of
that function's C wrapper, given per node (or per run) in ``kernels``. So a layer needs no
compilation of its own: these runners are compiled once per installation (numba's cache, next to
the package) and every formula once, whichever layers use it.

Also here: the tiled transpose that the batch-major layout uses when it computes node-major.

A call through an address is not type-checked: the backend passes addresses of functions compiled
for exactly the argument types the runner passes (the same dtype, C-contiguous arrays).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..codegen.source import BLOCK, ROWS

__all__ = ["node_major", "node_major_both", "node_major_params", "node_major_backward_params", "batch_major",
           "batch_major_both", "batch_major_params", "batch_major_backward_params", "transpose_tiles", "transpose_task_count", "TILE_ROWS", "TILE_COLUMNS"]

#: Rows and columns of the source's tiles in :func:`transpose_tiles` (measured best among 32-256 rows).
TILE_ROWS, TILE_COLUMNS = 128, 64


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


def _lanes(builder, first, second, mask):
    """The elements ``mask`` of the concatenation of the vectors ``first`` and ``second``."""
    return builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(ir.IntType(32), len(mask)), list(mask)))


@intrinsic
def _transpose_8x8(typingctx, source, target, r, c):
    """``target[c:c+8, r:r+8] = source[r:r+8, c:c+8].T`` for C-contiguous 2-D arrays of one dtype.

    Eight vector loads, the classic three rounds of shuffles (pairs of rows interleaved, then pairs
    of pairs, then halves), eight vector stores: LLVM lowers the shuffles to the target's own
    (unpack/shuffle/permute on x86, zip/trn on ARM), where element-wise copies were 5x slower.
    """
    def codegen(context, builder, signature, args):
        source_array = context.make_array(signature.args[0])(context, builder, args[0])
        target_array = context.make_array(signature.args[1])(context, builder, args[1])
        r, c = args[2], args[3]
        vector = ir.VectorType(context.get_data_type(signature.args[0].dtype), 8).as_pointer()

        def at(array, row, column, k):  # a pointer to array[row + k, column] as a vector of 8
            index = builder.add(builder.mul(builder.add(row, ir.Constant(row.type, k)),
                                            builder.extract_value(array.shape, 1)), column)
            return builder.bitcast(builder.gep(array.data, [index]), vector)

        rows = [builder.load(at(source_array, r, c, k), align=1) for k in range(8)]
        pairs = [_lanes(builder, rows[k], rows[k + 1], mask) for k in range(0, 8, 2)
                 for mask in ((0, 8, 1, 9, 4, 12, 5, 13), (2, 10, 3, 11, 6, 14, 7, 15))]
        quads = [_lanes(builder, pairs[base + half], pairs[base + 2 + half], mask) for base in (0, 4)
                 for half in (0, 1) for mask in ((0, 1, 8, 9, 4, 5, 12, 13), (2, 3, 10, 11, 6, 7, 14, 15))]
        columns = [_lanes(builder, quads[k], quads[4 + k], mask)
                   for mask in ((0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15)) for k in range(4)]
        for m in range(8):
            builder.store(columns[m], at(target_array, c, r, m), align=1)
        return context.get_dummy_value()

    return types.void(source, target, r, c), codegen


@_jit
def transpose_tiles(first, last, source, target):  # pragma: no cover - compiled
    """target = source.T for tiles first..last-1 of TILE_ROWS x TILE_COLUMNS elements of source
    (rows of tiles first): 8 x 8 blocks by vector shuffles, the edges element by element. Within a
    tile, the blocks go down the source's rows first, so each of the 8 target rows being written
    advances contiguously (a power-of-two row stride would otherwise evict the lines from cache)."""
    rows, cols = source.shape
    tile_cols = (cols + TILE_COLUMNS - 1) // TILE_COLUMNS
    for tile in range(first, last):
        r0 = (tile // tile_cols) * TILE_ROWS
        c0 = (tile - (tile // tile_cols) * tile_cols) * TILE_COLUMNS
        r1 = min(r0 + TILE_ROWS, rows)
        c1 = min(c0 + TILE_COLUMNS, cols)
        for cb in range(c0, c1, 8):
            for rb in range(r0, r1, 8):
                if rb + 8 <= r1 and cb + 8 <= c1:
                    _transpose_8x8(source, target, rb, cb)
                else:
                    for c in range(cb, min(cb + 8, c1)):
                        for r in range(rb, min(rb + 8, r1)):
                            target[c, r] = source[r, c]


@_jit
def transpose_task_count(rows, cols):  # pragma: no cover - compiled
    """The number of tiles (tasks) of :func:`transpose_tiles` for a source of ``rows`` x ``cols``."""
    return ((rows + TILE_ROWS - 1) // TILE_ROWS) * ((cols + TILE_COLUMNS - 1) // TILE_COLUMNS)
