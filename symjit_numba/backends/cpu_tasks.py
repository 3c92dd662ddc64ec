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
           "batch_major_both", "batch_major_params", "batch_major_backward_params", "transpose_tiles", "TILE"]

#: Side of the square tiles of :func:`transpose_tiles`.
TILE = 64


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


@_jit
def transpose_tiles(first, last, source, target):  # pragma: no cover - compiled
    """target = source.T for tiles first..last-1 of TILE x TILE elements (rows of tiles first)."""
    rows, cols = source.shape
    tile_cols = (cols + TILE - 1) // TILE
    for tile in range(first, last):
        r0 = (tile // tile_cols) * TILE
        c0 = (tile - (tile // tile_cols) * tile_cols) * TILE
        for c in range(c0, min(c0 + TILE, cols)):  # write along target's rows, read down a tile
            for r in range(r0, min(r0 + TILE, rows)):
                target[c, r] = source[r, c]
