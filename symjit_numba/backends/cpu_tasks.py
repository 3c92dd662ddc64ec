"""The CPU_JIT task runners: formula-independent numba functions that run a range of a layer's tasks.

A task is one node's block of the batch (node-major), a chunk of same-formula nodes' whole rows
(node-major with a short batch, :func:`grouped`) or a block of rows of a run of same-formula nodes
(batch-major). Each task calls its formula's function from the formula's generated module
(``node_block``, ``nodes_block`` or ``row_block``, see :mod:`symjit_numba.codegen.source`) through
the address of that function's C wrapper, given per node (or per chunk, run, or group of nodes) in
``kernels``. So a layer needs no
compilation of its own: these runners are compiled once per installation (numba's cache, next to
the package) and every formula once, whichever layers use it.

Also here: the block transpose by which the batch-major layout with interleaved formulas computes
node-major, tile by tile (:func:`tiled`), a call per formula in each tile.

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
from ..mathlib import inplace

__all__ = ["node_major", "node_major_both", "node_major_params", "node_major_backward_params", "grouped", "grouped_both",
           "grouped_params", "grouped_backward_params", "batch_major",
           "batch_major_both", "batch_major_params", "batch_major_backward_params", "tiled", "tiled_both", "tiled_params",
           "tiled_backward_params", "tile_plan", "task_grid", "TILE_BATCH", "TILE_NODES", "TASK_TILES"]

#: Rows (samples) and nodes of a tile of :func:`tiled` and friends: a float32 tile is 64 KB, a
#: float64 one 128 KB (each of the two or three scratch arrays of a task). Measured on W1 (512
#: nodes, batch-major, 2 threads): 32 rows x 512 nodes beat 16 x 512, 64 x 512, 32 x 256 and 128 x 256.
TILE_BATCH, TILE_NODES = 32, 512
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
    each process where numba finds no writable cache location (it raises at decoration then).
    With a C wrapper: the pool's spinning threads call the runners through it (see :mod:`.cpu_pool`)."""
    options = {"nogil": True, "error_model": "numpy", "no_rewrites": True}
    try:
        return njit(cache=True, **options)(function)
    except RuntimeError:
        return njit(**options)(function)


def task_grid(n: int, b: int, samples: int, nodes: int, runs: int) -> tuple[int, int]:
    """The number of tasks of an (n nodes, b samples) layer, and of their blocks of samples (the
    rows of a summing runner's ``partials``), for tasks of ``samples`` samples x ``nodes`` nodes
    (``nodes`` = 0: ``runs`` runs of nodes per block). Plain Python, also compiled by cpu_numba."""
    blocks = (b + samples - 1) // samples
    return blocks * (runs if nodes == 0 else (n + nodes - 1) // nodes), blocks


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
def _row_span(task, last, runs, b):  # pragma: no cover - compiled
    """Run s and rows r0..r1-1 of tasks ``task``.. of a (b, n) layer, and the task after them: with
    one run, all of tasks task..last-1 (consecutive rows: one call of its row_block, not one a
    task; W1's periodic module spends 0.6 us a call setting up), else ``task`` alone."""
    s, r0, r1 = _row_task(task, runs, b)
    if runs == 1:
        return s, r0, min(last * ROWS, b), last
    return s, r0, r1, task + 1


# In-place calls (an output that is an input): the formula's loop writes a buffer, copied to the
# output after it, inplace.BLOCK elements at a time (see symjit_numba.mathlib.inplace: LLVM runs the
# scalar version of a loop whose output and input overlap). A summing runner keeps its tasks'
# blocks whole: its sums add in the same order, in place or not.

@_jit
def node_major(first, last, backward, z, err, out, params, offsets, kernels):  # pragma: no cover - compiled
    """Tasks first..last-1 of an (n, b) layer, task = (node j, block of BLOCK samples): node_block."""
    buffer = inplace.block_buffer(out, z, err, inplace.BLOCK)
    step = inplace.step(BLOCK, buffer)
    for task in range(first, last):
        j, lo, hi = _node_task(task, z.shape[1])
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            written = inplace.into(out[j, start:stop], buffer)
            _call(kernels[j], (backward, z[j, start:stop], err[j, start:stop], written, params, offsets[j]))
            inplace.settle(out[j, start:stop], written)


@_jit
def node_major_both(first, last, z, a, d, params, offsets, kernels):  # pragma: no cover - compiled
    """As :func:`node_major`, calling node_block_both (f and df in one pass)."""
    buffer_a, buffer_d = inplace.block_buffer(a, z, z, inplace.BLOCK), inplace.block_buffer(d, z, z, inplace.BLOCK)
    step = min(inplace.step(BLOCK, buffer_a), inplace.step(BLOCK, buffer_d))
    for task in range(first, last):
        j, lo, hi = _node_task(task, z.shape[1])
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            written_a, written_d = inplace.into(a[j, start:stop], buffer_a), inplace.into(d[j, start:stop], buffer_d)
            _call(kernels[j], (z[j, start:stop], written_a, written_d, params, offsets[j]))
            inplace.settle(a[j, start:stop], written_a)
            inplace.settle(d[j, start:stop], written_d)


# Node-major layers with short rows (a small batch): a call per node would cost more than the node's
# elements (about 35 ns, against 0.4 ns an element), so a task is instead a chunk of nodes of one
# formula, whole rows, in one call of the formula's nodes_block: ``order`` lists the nodes by formula
# (cpu_jit.GroupedTasks), task t takes order[chunk_start[t]:chunk_stop[t]] with kernels[t]. The
# backend uses these only when no output is an input (an in-place row loop would not vectorise)
# and the batch is at most one BLOCK (the summing runners' sums then have one row of partials).

@_jit
def grouped(first, last, backward, z, err, out, params, offsets, order, chunk_start, chunk_stop,
            kernels):  # pragma: no cover - compiled
    """Tasks first..last-1 of an (n, b) layer, task = a chunk of nodes of one formula: nodes_block."""
    for task in range(first, last):
        _call(kernels[task], (backward, z, err, out, params, offsets, order, chunk_start[task], chunk_stop[task],
                              z.shape[1]))


@_jit
def grouped_both(first, last, z, a, d, params, offsets, order, chunk_start, chunk_stop,
                 kernels):  # pragma: no cover - compiled
    """As :func:`grouped`, calling nodes_block_both (f and df in one pass)."""
    for task in range(first, last):
        _call(kernels[task], (z, a, d, params, offsets, order, chunk_start[task], chunk_stop[task], z.shape[1]))


#: Most elements of the buffer of a batch-major in-place call (whole rows, at least one).
ROW_BUFFER = 8 * inplace.BLOCK


@_jit
def _row_buffer(out, first, second):  # pragma: no cover - compiled
    """:func:`inplace.block_buffer` for the row_block runners: up to ROWS whole rows of ``out``, or none."""
    rows = max(1, min(ROWS, ROW_BUFFER // max(out.shape[1], 1))) if inplace.aliases(out, first, second) else 0
    return inplace.empty(out, (rows, out.shape[1]))


@_jit
def _rows_into(out, buffer, ra, rz):  # pragma: no cover - compiled
    """What a row_block call writes for the rows ra..rz-1 of ``out``: the buffer's first rows, or those rows."""
    return out[ra:rz] if buffer.shape[0] == 0 else buffer[:rz - ra]


@_jit
def _rows_settle(out, written, ra, k0, k1):  # pragma: no cover - compiled
    """Copy the columns k0..k1-1 of rows that a row_block call wrote into a buffer to ``out``'s rows ra.."""
    if written.shape[0] > 0 and written.ctypes.data != out[ra:].ctypes.data:
        for r in range(written.shape[0]):
            inplace.settle(out[ra + r, k0:k1], written[r, k0:k1])


@_jit
def batch_major(first, last, backward, z, err, out, params, offsets, run_start, run_stop,
                kernels):  # pragma: no cover - compiled
    """Tasks first..last-1 of a (b, n) layer, task = (block of ROWS samples, run s of nodes
    run_start[s]:run_stop[s], which all have the formula of kernels[s]): row_block, on a task's
    rows at once (a single run's: all the tasks' rows at once), or a buffer's rows at a time in place."""
    buffer = _row_buffer(out, z, err)
    task = first
    while task < last:
        s, r0, r1, task = _row_span(task, last, run_start.size, z.shape[0])
        step = buffer.shape[0] if buffer.shape[0] > 0 else r1 - r0
        for ra in range(r0, r1, step):
            rz = min(ra + step, r1)
            written = _rows_into(out, buffer, ra, rz)
            _call(kernels[s], (backward, z[ra:rz], err[ra:rz], written, params, offsets, 0, rz - ra, run_start[s],
                               run_stop[s]))
            _rows_settle(out, written, ra, run_start[s], run_stop[s])


@_jit
def batch_major_both(first, last, z, a, d, params, offsets, run_start, run_stop,
                     kernels):  # pragma: no cover - compiled
    """As :func:`batch_major`, calling row_block_both (f and df in one pass)."""
    buffer_a, buffer_d = _row_buffer(a, z, z), _row_buffer(d, z, z)
    task = first
    while task < last:
        s, r0, r1, task = _row_span(task, last, run_start.size, z.shape[0])
        step = max(buffer_a.shape[0], buffer_d.shape[0])
        step = step if step > 0 else r1 - r0
        for ra in range(r0, r1, step):
            rz = min(ra + step, r1)
            written_a, written_d = _rows_into(a, buffer_a, ra, rz), _rows_into(d, buffer_d, ra, rz)
            _call(kernels[s], (z[ra:rz], written_a, written_d, params, offsets, 0, rz - ra, run_start[s], run_stop[s]))
            _rows_settle(a, written_a, ra, run_start[s], run_stop[s])
            _rows_settle(d, written_d, ra, run_start[s], run_stop[s])


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
    buffer = inplace.block_buffer(delta, z, err, BLOCK)  # whole blocks: the order of the sums stays
    for task in range(first, last):
        j, lo, hi = _node_task(task, z.shape[1])
        written = inplace.into(delta[j, lo:hi], buffer)
        _call(kernels[j], (z[j, lo:hi], err[j, lo:hi], written, params, offsets[j],
                           partials[lo // BLOCK, columns[j]:columns[j + 1]]))
        inplace.settle(delta[j, lo:hi], written)


@_jit
def grouped_params(first, last, z, err, params, offsets, order, chunk_start, chunk_stop, kernels, columns,
                   partials):  # pragma: no cover - compiled
    """As :func:`grouped`, calling nodes_block_params: node j sums into partials[0, columns[j]:columns[j + 1]]
    (the batch is one block of samples), as :func:`node_major_params` would."""
    for task in range(first, last):
        _call(kernels[task], (z, err, params, offsets, columns, order, chunk_start[task], chunk_stop[task], z.shape[1],
                              partials[0]))


@_jit
def grouped_backward_params(first, last, z, err, delta, params, offsets, order, chunk_start, chunk_stop, kernels,
                            columns, partials):  # pragma: no cover - compiled
    """As :func:`grouped_params`, calling nodes_block_backward_params (delta too, in one pass)."""
    for task in range(first, last):
        _call(kernels[task], (z, err, delta, params, offsets, columns, order, chunk_start[task], chunk_stop[task],
                              z.shape[1], partials[0]))


@_jit
def batch_major_params(first, last, z, err, params, offsets, run_start, run_stop, kernels, columns,
                       partials):  # pragma: no cover - compiled
    """As :func:`batch_major`, calling row_block_params: task (rows r0..r1-1, run s) sums into
    partials[r0 // ROWS, columns[s]:columns[s + 1]]."""
    for task in range(first, last):
        s, r0, r1 = _row_task(task, run_start.size, z.shape[0])
        partial = partials[r0 // ROWS, columns[s]:columns[s + 1]]
        partial[:] = 0.0
        _call(kernels[s], (z, err, params, offsets, r0, r1, run_start[s], run_stop[s], partial))


@_jit
def batch_major_backward_params(first, last, z, err, delta, params, offsets, run_start, run_stop, kernels, columns,
                                partials):  # pragma: no cover - compiled
    """As :func:`batch_major_params`, calling row_block_backward_params (delta too, in one pass)."""
    buffer = _row_buffer(delta, z, err)
    for task in range(first, last):
        s, r0, r1 = _row_task(task, run_start.size, z.shape[0])
        partial = partials[r0 // ROWS, columns[s]:columns[s + 1]]
        partial[:] = 0.0
        step = buffer.shape[0] if buffer.shape[0] > 0 else r1 - r0
        for ra in range(r0, r1, step):  # (the sums go on from call to call, in the same order)
            rz = min(ra + step, r1)
            written = _rows_into(delta, buffer, ra, rz)
            _call(kernels[s], (z[ra:rz], err[ra:rz], written, params, offsets, 0, rz - ra, run_start[s], run_stop[s],
                               partial))
            _rows_settle(delta, written, ra, run_start[s], run_stop[s])


# Batch-major arrays whose formulas interleave (runs of one formula too short to fill a vector):
# a task is a tile of TILE_BATCH rows x TILE_NODES nodes (whole rows of the layer when it has at most
# TILE_NODES nodes: one contiguous block of memory), transposed into the call's scratch arrays
# (node-major, in cache) with the tile's nodes sorted by formula, so that one call of a formula's
# nodes_block computes all the tile's nodes of that formula; then transposed back. One pass over
# memory, where transposing the whole layer in, computing, and transposing out took three, and one
# call per formula and tile, where a call per node cost as much as the transposes (about 25 ns each,
# most of it the reference counting of the three slices passed).
#
# The tile plan (:func:`tile_plan`, fixed per layer): ``order[i]`` is the node at sorted position
# i (positions k0..k1-1 hold the nodes k0..k1-1 of a tile, sorted by formula), ``pos`` its
# inverse; the tile of nodes k0.. has the formula groups ``groups[k0 // TILE_NODES]`` to
# ``groups[k0 // TILE_NODES + 1] - 1``; group g holds the positions ``bounds[g]..bounds[g + 1] - 1``
# and its formula's function is ``kernels[g]``.

@_jit
def _tile(task, b, n):  # pragma: no cover - compiled
    """Rows r0..r1-1 and nodes k0..k1-1 of a task of a (b, n) layer (tiles along the nodes first)."""
    tiles = (n + TILE_NODES - 1) // TILE_NODES
    r0 = (task // tiles) * TILE_BATCH
    k0 = (task - (task // tiles) * tiles) * TILE_NODES
    return r0, min(r0 + TILE_BATCH, b), k0, min(k0 + TILE_NODES, n)


@_jit
def _scratch(z):  # pragma: no cover - compiled
    """Room for one tile, node-major, in the dtype of ``z``, starting on a cache line: a transposed
    block's rows are cache lines, each split in two by numba's 32-byte alignment otherwise (the
    transposes of a misaligned tile took 11% longer)."""
    rows = min(TILE_NODES, z.shape[1])
    room = np.empty(rows * TILE_BATCH + BLOCK_BYTES // z.itemsize, z.dtype)
    skip = (-room.ctypes.data) % BLOCK_BYTES // z.itemsize
    return room[skip:skip + rows * TILE_BATCH].reshape((rows, TILE_BATCH))


@_jit
def _move(source, target, r0, r1, k0, k1, pos, gather):  # pragma: no cover - compiled
    """``tile[pos[k] - k0, r - r0] = layer[r, k]`` for r in r0..r1-1, k in k0..k1-1, where (source,
    target) is (layer, tile) if ``gather``, else (tile, layer) and the copy goes the other way.

    Square blocks of one cache line per row by vector shuffles (:func:`_transpose_square`). The
    blocks go along the layer's rows first: each block reads (or writes) the next cache line of N
    neighbouring rows, which a tile of whole rows holds in one contiguous piece of memory. (Going
    down its columns first, a power-of-two row stride put the rows of the layer and of the tile in
    the same few cache sets: twice the time.) They start where the layer's rows reach a cache line
    (:func:`_first_aligned`: a numpy array's data is often 16 or 32 bytes past one, and the moves
    of such a layer took 12-16% longer); the columns before the first such block and after the
    last are moved by one more block each, overlapping its neighbour (the same values written
    twice, within the tile's nodes: in-place calls stay exact). A last band of fewer than N rows,
    or a tile narrower than a block, goes element by element.
    """
    n = _block(source)
    aligned = _first_aligned(source if gather else target, k0) if k1 - k0 >= n else k1
    lead = 1 if aligned > k0 else 0  # a block at k0 before the first aligned one
    full = (k1 - aligned) // n
    blocks = lead + full + (1 if aligned + full * n < k1 else 0)  # and one ending at k1
    for rb in range(r0, r1, n):
        if rb + n > r1 or k1 - k0 < n:
            _move_elements(source, target, rb, min(rb + n, r1), r0, k0, k1, pos, gather)
            continue
        ahead = gather and rb + PREFETCH_ROWS + n <= source.shape[0]
        for j in range(blocks):  # (inline: a function call per block cost a quarter more)
            kb = k0 if j < lead else (aligned + (j - lead) * n if j < lead + full else k1 - n)
            if gather:
                if ahead:
                    _prefetch_block(source, rb + PREFETCH_ROWS, kb)
                _transpose_square(source, None, rb, 0, kb, target, pos, kb, -k0, rb - r0)
            else:
                _transpose_square(source, pos, kb, -k0, rb - r0, target, None, rb, 0, kb)


@_jit
def _first_aligned(layer, k0):  # pragma: no cover - compiled
    """The first column from k0 on where the rows of ``layer`` reach a cache line, the same column in
    every row when a row is a whole number of cache lines; k0 where it is not."""
    address = layer.ctypes.data
    if layer.shape[1] * layer.itemsize % BLOCK_BYTES != 0 or address % layer.itemsize != 0:
        return k0
    skew = (-address) % BLOCK_BYTES // layer.itemsize  # columns before row 0's first cache line
    return k0 + (skew - k0) % _block(layer)


@_jit
def _move_elements(source, target, ra, rz, r0, k0, k1, pos, gather):  # pragma: no cover - compiled
    """:func:`_move` of the layer's rows ra..rz-1 (of the tile's r0..), element by element."""
    for r in range(ra, rz):
        for k in range(k0, k1):
            if gather:
                target[pos[k] - k0, r - r0] = source[r, k]
            else:
                target[r, k] = source[pos[k] - k0, r - r0]


@_jit
def tiled(first, last, backward, z, err, out, params, offsets, order, pos, groups, bounds,
          kernels):  # pragma: no cover - compiled
    """Tasks first..last-1 of a (b, n) layer, task = a tile (see :func:`_tile`): nodes_block of each
    formula group g of the tile (kernels[g]) on its rows of the transposed tile."""
    b, n = z.shape
    zt = _scratch(z)
    et = _scratch(z) if backward else zt
    ot = _scratch(z)
    sorted_offsets, rows = offsets[order], np.arange(TILE_NODES)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        _move(z, zt, r0, r1, k0, k1, pos, True)
        if backward:
            _move(err, et, r0, r1, k0, k1, pos, True)
        for g in range(groups[k0 // TILE_NODES], groups[k0 // TILE_NODES + 1]):
            _call(kernels[g], (backward, zt, et, ot, params, sorted_offsets[k0:], rows, bounds[g] - k0,
                               bounds[g + 1] - k0, r1 - r0))
        _move(ot, out, r0, r1, k0, k1, pos, False)


@_jit
def tiled_both(first, last, z, a, d, params, offsets, order, pos, groups, bounds,
               kernels):  # pragma: no cover - compiled
    """As :func:`tiled`, calling nodes_block_both (f and df in one pass)."""
    b, n = z.shape
    zt = _scratch(z)
    at = _scratch(z)
    dt = _scratch(z)
    sorted_offsets, rows = offsets[order], np.arange(TILE_NODES)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        _move(z, zt, r0, r1, k0, k1, pos, True)
        for g in range(groups[k0 // TILE_NODES], groups[k0 // TILE_NODES + 1]):
            _call(kernels[g], (zt, at, dt, params, sorted_offsets[k0:], rows, bounds[g] - k0, bounds[g + 1] - k0,
                               r1 - r0))
        _move(at, a, r0, r1, k0, k1, pos, False)
        _move(dt, d, r0, r1, k0, k1, pos, False)


@_jit
def tiled_params(first, last, z, err, params, offsets, order, pos, groups, bounds, kernels, columns,
                 partials):  # pragma: no cover - compiled
    """As :func:`tiled`, calling nodes_block_params: node j of the tile with rows r0..r1-1 sums
    into partials[r0 // TILE_BATCH, columns[j]:columns[j + 1]]."""
    b, n = z.shape
    zt = _scratch(z)
    et = _scratch(z)
    sorted_offsets, sorted_columns, rows = offsets[order], columns[order], np.arange(TILE_NODES)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        _move(z, zt, r0, r1, k0, k1, pos, True)
        _move(err, et, r0, r1, k0, k1, pos, True)
        for g in range(groups[k0 // TILE_NODES], groups[k0 // TILE_NODES + 1]):
            _call(kernels[g], (zt, et, params, sorted_offsets[k0:], sorted_columns[k0:], rows, bounds[g] - k0,
                               bounds[g + 1] - k0, r1 - r0, partials[r0 // TILE_BATCH]))


@_jit
def tiled_backward_params(first, last, z, err, delta, params, offsets, order, pos, groups, bounds, kernels,
                          columns, partials):  # pragma: no cover - compiled
    """As :func:`tiled_params`, calling nodes_block_backward_params (delta too, in one pass)."""
    b, n = z.shape
    zt = _scratch(z)
    et = _scratch(z)
    dt = _scratch(z)
    sorted_offsets, sorted_columns, rows = offsets[order], columns[order], np.arange(TILE_NODES)
    for task in range(first, last):
        r0, r1, k0, k1 = _tile(task, b, n)
        _move(z, zt, r0, r1, k0, k1, pos, True)
        _move(err, et, r0, r1, k0, k1, pos, True)
        for g in range(groups[k0 // TILE_NODES], groups[k0 // TILE_NODES + 1]):
            _call(kernels[g], (zt, et, dt, params, sorted_offsets[k0:], sorted_columns[k0:], rows, bounds[g] - k0,
                               bounds[g + 1] - k0, r1 - r0, partials[r0 // TILE_BATCH]))
        _move(dt, delta, r0, r1, k0, k1, pos, False)


def tile_plan(func_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tile plan of a layer whose node j has formula ``func_ids[j]`` (see above): ``order``,
    ``pos``, ``groups``, ``bounds``, and each group's formula (for its entry of ``kernels``)."""
    func_ids = np.asarray(func_ids, dtype=np.int64)
    order = np.concatenate([k0 + np.argsort(func_ids[k0:k0 + TILE_NODES], kind="stable")
                            for k0 in range(0, func_ids.size, TILE_NODES)]).astype(np.int64)
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size, dtype=np.int64)
    ids = func_ids[order]
    tile_starts = np.arange(0, ids.size, TILE_NODES)
    new_group = np.ones(ids.size, dtype=bool)
    new_group[1:] = ids[1:] != ids[:-1]
    new_group[tile_starts] = True  # a group never spans two tiles
    starts = np.flatnonzero(new_group).astype(np.int64)
    groups = np.searchsorted(starts, np.append(tile_starts, ids.size)).astype(np.int64)
    return order, pos, groups, np.append(starts, ids.size).astype(np.int64), ids[starts].copy()


def _block_rows(context, builder, array_type, array, row, column, rows_type=types.none, rows=None, shift=None):
    """LLVM IR: a pointer to element ``column`` of each row of an N x N block of ``array`` (N =
    :func:`block_size`): rows ``row + k``, k = 0..N-1, or ``rows[row + k] + shift`` where ``rows``
    is an index array (``rows_type`` not numba's None type)."""
    n = block_size(context.get_abi_sizeof(context.get_data_type(array_type.dtype)))
    data = context.make_array(array_type)(context, builder, array)
    indexed = not isinstance(rows_type, types.NoneType)
    index_data = context.make_array(rows_type)(context, builder, rows).data if indexed else None
    columns = builder.extract_value(data.shape, 1)
    pointers = []
    for k in range(n):
        i = builder.add(row, ir.Constant(row.type, k))
        if indexed:
            i = builder.add(builder.load(builder.gep(index_data, [i])), shift)
        pointers.append(builder.gep(data.data, [builder.add(builder.mul(i, columns), column)]))
    return pointers


#: Rows ahead of a block being gathered whose cache lines the gather asks for (into L2, see
#: :func:`_prefetch_block`): two tiles, fetched while this one is transposed and computed. W1
#: 4096 x 512 float32 batch-major, alternating runs: forward 2.15-2.34 -> 1.98-2.02 ms on one
#: thread, 0.96-0.97 -> 0.93-1.03 on two; backward with the constants' gradients 3.42-3.85 ->
#: 3.03-3.12 and 1.75-1.81 -> 1.59-1.66. Into L1 instead it cost time (the prefetched lines
#: evicted the tile's own).
PREFETCH_ROWS = 2 * TILE_BATCH


@intrinsic
def _prefetch_block(typingctx, array, row, column):
    """Ask the CPU to bring the cache lines at ``array[row + k, column]``, k = 0..N-1 (N =
    :func:`block_size`), into its L2 cache: a hint, which never faults and never waits."""
    def codegen(context, builder, signature, args):
        byte = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, ir.IntType(32), ir.IntType(32), ir.IntType(32)]),
            "llvm.prefetch.p0i8")
        read, into_l2, data = (ir.Constant(ir.IntType(32), v) for v in (0, 1, 1))  # locality 1: prefetcht2
        for address in _block_rows(context, builder, signature.args[0], *args):
            builder.call(prefetch, [builder.bitcast(address, byte), read, into_l2, data])
        return context.get_dummy_value()

    return types.void(array, row, column), codegen


#: Bytes of one row of a transposed block: a cache line, and one AVX-512 register (LLVM splits the
#: vectors into halves or quarters on CPUs with narrower registers).
BLOCK_BYTES = 64


def block_size(itemsize: int) -> int:
    """Rows (= columns) of the square blocks that :func:`_transpose_square` transposes for an element size."""
    return BLOCK_BYTES // itemsize


@intrinsic
def _transpose_square(typingctx, source, source_rows, source_row, source_shift, source_column, target, target_rows,
                      target_row, target_shift, target_column):
    """Transpose an N x N block of ``source`` into ``target`` (C-contiguous 2-D arrays of one dtype),
    N = :func:`block_size` (16 float32, 8 float64): each row one cache line.

    The block's row k (k = 0..N-1) is ``source[i_k, source_column:source_column + N]`` with
    ``i_k = source_row + k``, or ``source_rows[source_row + k] + source_shift`` if ``source_rows``
    is an index array (not None); it becomes column k of ``target[t_0..t_{N-1}, target_column +
    k]``, the rows ``t_k`` given the same way. (An index array puts a tile's nodes in their
    sorted places.)

    N vector loads, log2(N) rounds of two-source shuffles, N vector stores. Round d (N/2, ..., 2, 1)
    swaps the off-diagonal d x d sub-blocks of every 2d x 2d block (rows i and i + d, i & d == 0:
    row i takes row i + d's elements c - d where c & d, row i + d takes row i's c + d where not),
    which after all rounds is the transpose. LLVM lowers each shuffle to one or two of the target's
    own instructions (vpermt2ps, unpck, shuf128 on x86; zip/trn on ARM): element-wise copies were
    5x slower.
    """
    def codegen(context, builder, signature, args):
        n = block_size(context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype)))
        vector = ir.VectorType(context.get_data_type(signature.args[0].dtype), n).as_pointer()

        def rows_of(at):  # a pointer to each row k of the block, as a vector of n
            array, rows, row, shift, column = args[at:at + 5]
            return [builder.bitcast(pointer, vector) for pointer in _block_rows(
                context, builder, signature.args[at], array, row, column, signature.args[at + 1], rows, shift)]

        rows = transposed(builder, [builder.load(pointer, align=1) for pointer in rows_of(0)])
        for row, pointer in zip(rows, rows_of(5)):
            builder.store(row, pointer, align=1)
        return context.get_dummy_value()

    return types.void(source, source_rows, source_row, source_shift, source_column, target, target_rows, target_row,
                      target_shift, target_column), codegen


def transposed(builder: ir.IRBuilder, rows: list) -> list:
    """LLVM IR: the N vectors of N elements ``rows`` (an N x N block), transposed by the rounds of
    two-source shuffles that :func:`_transpose_square` describes."""
    n = len(rows)
    rows = list(rows)
    mask_type = ir.VectorType(ir.IntType(32), n)
    d = n // 2
    while d:
        low = [k if not k & d else n + k - d for k in range(n)]
        high = [k + d if not k & d else n + k for k in range(n)]
        for i in range(n):
            if not i & d:
                a, b = rows[i], rows[i + d]
                rows[i] = builder.shuffle_vector(a, b, ir.Constant(mask_type, low))
                rows[i + d] = builder.shuffle_vector(a, b, ir.Constant(mask_type, high))
        d //= 2
    return rows


@_jit
def _block(x):  # pragma: no cover - compiled
    """:func:`block_size` for the dtype of the array ``x``, as a compile-time constant."""
    return BLOCK_BYTES // x.itemsize
