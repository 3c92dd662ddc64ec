"""A row whose elements repeat every P positions, split into (and merged from) one row per position.

A periodic kernel module (``codegen.source``, layout ``"periodic"``) computes a batch-major layer
whose node ``k0 + P*g + k`` has the formula of position k. It takes each row of the layer a block
at a time: ``lanes`` groups (one vector's elements: 16 float32 with AVX-512), which
:func:`split_block` moves into a P x lanes matrix (``matrix[k, i] = row[P*g + k]``, g the group
that :func:`group` names for the block's column i); one loop of ``lanes`` iterations computes
every position's formula on its row of the matrix (one vector each once LLVM vectorises it), and
:func:`merge_block` (the inverse) writes the block back. The matrix is a :func:`block_buffer`, on
the stack and only ever read and written at constant places, so LLVM keeps it in registers: a
block is loaded and stored once, as in a node-major loop, where a whole-row scratch matrix in
memory took two more stores per element (the moves were bound by the stores, not the shuffles).

The shuffles are LLVM IR written here rather than numba loops: LLVM's vectoriser turns
``matrix[k, i] = row[P*i + k]`` into loads of P vectors and one generic shuffle per position out
of all P of them, which the x86 backend lowers to about P - 1 two-vector permutes each (W1's
period of 8: 56 per 8 vectors, each way). For a period that is a power of two, the transpose is
a few rounds of P two-vector shuffles, each moving one bit of an element's index between its
lane and its vector (:func:`block_programs`); the rounds are the cheapest that reach a matrix
whose columns hold the groups in *some* order (the module reads each group's constants and
writes its sums through :func:`group`, so the order costs nothing), found by a shortest-path
search over the moves that one cheap instruction does (``unpcklps``, ``shufps``, ``vshuff32x4``
rather than ``vpermt2ps``). Other periods gather each output from its sources in turn.
W1 at 4096 x 512 float32, one thread: forward 1.2 ms with LLVM's interleaved accesses in one
loop body for the whole period, 1.05 ms with butterfly transposes (24 ``vpermt2ps`` a block each
way), 0.96-1.06 ms with the cheapest moves through a row-sized matrix in memory, 0.84-0.95 ms
a block at a time in registers (node-major: 0.78-0.83).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

__all__ = ["block_buffer", "split_block", "merge_block", "merge_block_times", "group", "vector_bytes", "block_programs",
           "shuffle_program", "shuffles_per_vector"]

#: One step of a shuffle program: (result, first, second, mask): ``result`` is the vector whose
#: lane j is lane ``mask[j]`` of the concatenation of vectors ``first`` and ``second``.
Step = tuple[str, str, str, tuple[int, ...]]


def vector_bytes() -> int:
    """The width of the vectors the shuffles use: the target CPU's widest (64 bytes with AVX-512,
    32 with AVX, else 16), as numba compiles for it (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``)."""
    if config.CPU_FEATURES is not None:
        features = config.CPU_FEATURES
    elif config.CPU_NAME is not None:  # a named (portable) target: assume its baseline only
        features = ""
    else:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features().flatten()
    enabled = {feature[1:] for feature in features.split(",") if feature.startswith("+")}
    return 64 if "avx512f" in enabled else 32 if "avx" in enabled else 16


def shuffle_program(sources: list[list[int]], targets: list[list[int]]) -> list[Step]:
    """Two-vector shuffles turning vectors ``sources`` into ``targets`` (lists of element ids),
    each output gathered from its sources in turn (about P - 1 shuffles per output for P vectors).
    The inputs are named ``s0``, ``s1``..., the outputs ``t0``..."""
    lanes = len(sources[0])
    where = {e: (m, lane) for m, vector in enumerate(sources) for lane, e in enumerate(vector)}
    program: list[Step] = []
    for t, vector in enumerate(targets):
        order = list(dict.fromkeys(where[e][0] for e in vector))
        first = order[0]
        mask = [where[e][1] if where[e][0] == first else 0 for e in vector]
        name = f"s{first}"
        for step, source in enumerate(order[1:] or [first]):
            mask = [lanes + where[e][1] if where[e][0] == source else mask[j] for j, e in enumerate(vector)]
            result = f"t{t}" if step == max(len(order) - 2, 0) else f"g{t}_{step}"
            program.append((result, name, f"s{source}", tuple(mask)))
            name, mask = result, list(range(lanes))
    return program


@dataclass(frozen=True)
class BlockPrograms:
    """How :func:`split` and :func:`merge` move one block: P vectors of a row (element ``P*g + k``
    of the block, position k of group g, at lane ``(P*g + k) % lanes`` of vector
    ``(P*g + k) // lanes``) to P vectors of the matrix and back.

    Attributes
    ----------
    split, merge : tuple of Step
        The shuffles (inputs ``s0``..., outputs ``t0``...): split's output k is the matrix's
        vector of position k, merge's output m the row's vector m.
    order : tuple of int
        ``order[j]``: the group (of the block's ``lanes``) whose elements lane j of the matrix
        vectors holds; the identity, or the order that the fewest shuffles leave.
    """

    split: tuple[Step, ...]
    merge: tuple[Step, ...]
    order: tuple[int, ...]


@functools.cache
def block_programs(period: int, element_bytes: int, vector_bytes: int) -> BlockPrograms:
    """The shuffles of one block for vectors of ``vector_bytes`` (16: SSE or NEON, 32: AVX, 64:
    AVX-512) holding elements of ``element_bytes``; for a period that is a power of two, the
    cheapest sequence of moves of index bits (see :func:`_bit_moves`), else gathered ones."""
    lanes = vector_bytes // element_bytes
    row = [[lanes * m + lane for lane in range(lanes)] for m in range(period)]
    if period & (period - 1):
        matrix = [[period * g + k for g in range(lanes)] for k in range(period)]
        return BlockPrograms(tuple(shuffle_program(row, matrix)), tuple(shuffle_program(matrix, row)),
                             tuple(range(lanes)))
    moves = _bit_moves(lanes.bit_length() - 1, element_bytes, vector_bytes)
    split_moves, merge_moves = _cheapest_moves(period.bit_length() - 1, lanes.bit_length() - 1, moves)
    split, state, names = _replay(_row_state(period, lanes), [f"s{m}" for m in range(period)], split_moves, lanes, "a")
    position = {m: _elements(state, lanes, m)[0] % period for m in range(period)}
    split = _renamed(split, {names[m]: f"t{position[m]}" for m in range(period)})
    order = tuple(e // period for e in _elements(state, lanes, next(m for m in position if position[m] == 0)))
    merge, state, names = _replay(state, [f"s{position[m]}" for m in range(period)], merge_moves, lanes, "b")
    merge = _renamed(merge, {names[m]: f"t{_elements(state, lanes, m)[0] // lanes}" for m in range(period)})
    return BlockPrograms(tuple(split), tuple(merge), order)


#: A move of index bits: (name, cost, slots). An element of a block has log2(lanes) lane bits
#: (slots 0, 1...: the bits of its lane) and log2(P) vector bits (the slots after: its vector's);
#: a two-vector shuffle applied to each pair of vectors that differ in vector bit v moves, for the
#: shuffles below, the bit in slot v to slots[0], the bit there to slots[1]... and the last one's
#: to v (a cycle). Transposing moves the position bits (the element's lowest log2(P) bits, lane
#: bits in a row) into the vector slots.
Move = tuple[str, int, tuple[int, ...]]


def _bit_moves(lane_bits: int, element_bytes: int, vector_bytes: int) -> list[Move]:
    """The moves that one instruction does: interleaving within 16-byte lanes (x86 ``unpck*``,
    NEON ``zip``), picking even and odd elements (``shufps``, ``uzp``) and 16-byte chunks
    (``vperm2f128``, ``vshuff32x4``/``vshuff64x2``): cost 1; any other (x86 ``vpermt2*`` on AVX-512,
    several instructions elsewhere), cost 2 or 3. A cost is per shuffle; a round takes P of them.
    (Zen 4, W1's moves in cache: 48 ``vpermt2ps`` a block 0.33 ms, 56 cheap shuffles 0.21.)"""
    inner = min((16 // element_bytes).bit_length() - 1, lane_bits)  # bits of the lane within 16 bytes
    moves = [(f"interleave {1 << j}", 1, tuple(range(j, inner))) for j in range(inner)]
    if inner == 2:
        moves.append(("even/odd", 1, (1, 0)))
    if lane_bits > inner:
        moves.append(("halves", 1, (lane_bits - 1,)))
    if lane_bits == inner + 2:
        moves.append(("even/odd chunks", 1, (inner + 1, inner)))
    general = 2 if vector_bytes >= 64 else 3
    return moves + [(f"any {j}", general, (j,)) for j in range(lane_bits)]


def _moved(state: tuple[int, ...], v: int, slots: tuple[int, ...]) -> tuple[int, ...]:
    """``state`` (the element bit in each slot) after a move of the bit in slot v along ``slots``."""
    cycle = (v, *slots)
    moved = list(state)
    for source, target in zip(cycle, cycle[1:] + cycle[:1]):
        moved[target] = state[source]
    return tuple(moved)


def _cheapest_moves(vector_bits: int, lane_bits: int, moves: list[Move]) -> tuple[list, list]:
    """The split's and the merge's moves (each ``(state, slots, v)``, ``state`` before the move)
    of least total cost: split from the row's state to one with the position bits in the vector
    slots (the lane bits in any order: the matrix's order of groups is free), merge from there
    back to the row's lane bits (the vectors are named by their elements, so the vector slots'
    order never matters: states are compared with it sorted)."""
    def canonical(state):
        return state[:lane_bits] + tuple(sorted(state[lane_bits:]))

    def shortest(start, reverse):
        cost, previous, queue = {start: (0, 0)}, {}, [((0, 0), start)]
        while queue:
            so_far, state = heapq.heappop(queue)
            if cost[state] != so_far:
                continue
            for _, price, slots in moves:
                for v in range(lane_bits, lane_bits + vector_bits):
                    moved = _moved(state, v, slots[::-1] if reverse else slots)  # reversed: the inverse cycle
                    after, total = canonical(moved), (so_far[0] + price, so_far[1] + 1)
                    if after not in cost or total < cost[after]:
                        cost[after], previous[after] = total, (state, slots, v, moved)
                        heapq.heappush(queue, (total, after))
        return cost, previous

    row = tuple(range(lane_bits + vector_bits))
    to, came_from = shortest(row, reverse=False)
    back, goes_to = shortest(row, reverse=True)  # back[s]: the cost of merging from s
    transposed = [s for s in to if set(s[lane_bits:]) == set(range(vector_bits))]
    best = min(transposed, key=lambda s: (to[s][0] + back[s][0], to[s][1] + back[s][1], s))
    split, state = [], best
    while state != row:
        before, slots, v, _ = came_from[state]
        split.append((before, slots, v))
        state = before
    merge, state = [], best
    while state != row:
        after, slots, v, moved = goes_to[state]
        # the inverse cycle took ``after``'s bits to ``moved`` (this state, its vectors unsorted): the
        # merge's move is the cycle itself, from the bit that the inverse put in slot v
        merge.append((moved, slots, v))
        state = after
    return split[::-1], merge


def _row_state(period: int, lanes: int) -> tuple[int, ...]:
    """A row's state: element bit j in slot j (the low ones the lane, the others the vector)."""
    return tuple(range((lanes * period).bit_length() - 1))


def _elements(state: tuple[int, ...], lanes: int, m: int) -> list[int]:
    """The elements of vector m (its vector bits) in ``state``, lane by lane."""
    lane_bits = lanes.bit_length() - 1
    high = sum(((m >> j) & 1) << bit for j, bit in enumerate(state[lane_bits:]))
    return [high | sum(((lane >> j) & 1) << bit for j, bit in enumerate(state[:lane_bits])) for lane in range(lanes)]


def _replay(state: tuple[int, ...], names: list[str], moves: list, lanes: int, prefix: str) -> tuple[list[Step], tuple, list[str]]:
    """The shuffles doing ``moves`` from ``state`` (vector m named ``names[m]``): the program, the
    state after it and its vectors' names."""
    lane_bits = lanes.bit_length() - 1
    program: list[Step] = []
    for count, (planned, slots, v) in enumerate(moves):
        v = state.index(planned[v])  # the planned slot's bit, wherever the vectors' order put it
        after = _moved(state, v, slots)
        renamed = list(names)
        bit = 1 << (v - lane_bits)
        for m in (m for m in range(len(names)) if not m & bit):
            both = _elements(state, lanes, m) + _elements(state, lanes, m | bit)
            for out in (m, m | bit):
                renamed[out] = f"{prefix}{count}_{out}"
                program.append((renamed[out], names[m], names[m | bit], tuple(both.index(e) for e in _elements(after, lanes, out))))
        state, names = after, renamed
    return program, state, names


def _renamed(program: list[Step], names: dict[str, str]) -> list[Step]:
    """``program`` with its results renamed (its outputs named ``t0``...)."""
    return [(names.get(result, result), first, second, mask) for result, first, second, mask in program]


def shuffles_per_vector(period: int, element_bytes: int = 4) -> float:
    """How many two-vector shuffles :func:`split` or :func:`merge` (the longer) takes per vector of
    a row with this period at this CPU's vector width: log2(P) or a few more for a power of two,
    P - 1 for the others."""
    programs = block_programs(period, element_bytes, vector_bytes())
    return max(len(programs.split), len(programs.merge)) / period


def _run(builder: ir.IRBuilder, program: list[Step], inputs: list[ir.Value]) -> list[ir.Value]:
    values = {f"s{m}": vector for m, vector in enumerate(inputs)}
    for result, first, second, mask in program:
        lanes = ir.VectorType(ir.IntType(32), len(mask))
        values[result] = builder.shuffle_vector(values[first], values[second], ir.Constant(lanes, list(mask)))
    return [values[f"t{k}"] for k in range(len(inputs))]


def _lanes(context, dtype) -> int:
    """Elements of ``dtype`` in one vector of this CPU's width."""
    return max(vector_bytes() // context.get_abi_sizeof(context.get_data_type(dtype)), 1)


@intrinsic
def block_buffer(typingctx, rows, like):
    """A ``(rows, lanes)`` C-contiguous array of ``like``'s dtype on the stack, ``lanes`` the
    elements of one vector (16 float32 with AVX-512): the matrix :func:`split_block` fills.

    Being on the stack (not numba's heap), and read and written at constant places once a loop of
    ``lanes`` iterations is vectorised, LLVM keeps it in registers. Its elements start undefined;
    it lives until the calling function returns (never return it or keep it). ``rows`` must be a
    constant (an integer literal in the calling source).
    """
    if not (isinstance(rows, types.IntegerLiteral) and rows.literal_value >= 1 and isinstance(like, types.Array)):
        return None
    array = types.Array(like.dtype, 2, "C")

    def codegen(context, builder, signature, args):
        element = context.get_data_type(like.dtype)
        size, lanes = context.get_abi_sizeof(element), _lanes(context, like.dtype)
        count = signature.args[0].literal_value
        data = cgutils.alloca_once(builder, ir.ArrayType(element, count * lanes), name="block_buffer")
        data.align = 64
        intp = context.get_value_type(types.intp)
        buffer = context.make_array(array)(context, builder)
        context.populate_array(buffer, data=builder.bitcast(data, element.as_pointer()),
                               shape=[ir.Constant(intp, count), ir.Constant(intp, lanes)],
                               strides=[ir.Constant(intp, lanes * size), ir.Constant(intp, size)],
                               itemsize=ir.Constant(intp, size), meminfo=None)
        return buffer._getvalue()

    return array(rows, like), codegen


def _check(row, period, block, matrix) -> bool:
    """Whether the call is one these functions serve (else numba retries with a literal period)."""
    arrays = (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"
              and isinstance(matrix, types.Array) and matrix.ndim == 2 and matrix.layout == "C"
              and row.dtype == matrix.dtype and row.dtype in (types.float32, types.float64)
              and isinstance(block, types.Integer))
    if not arrays:
        raise TypeError(f"split_block/merge_block need a C-contiguous row and matrix of one float dtype and "
                        f"an integer block, got {row}, {matrix} and {block}")
    return isinstance(period, types.IntegerLiteral) and period.literal_value >= 1


def _masked(builder: ir.IRBuilder, name: str, vector: ir.VectorType, arguments: list[ir.Type]) -> ir.Function:
    """LLVM's ``llvm.masked.<name>`` intrinsic for ``vector`` (any target: AVX-512 and AVX have
    masked moves, others get one branch per lane)."""
    element = {ir.FloatType(): "f32", ir.DoubleType(): "f64"}[vector.element]
    function_type = ir.FunctionType(vector if name == "load" else ir.VoidType(), arguments)
    return cgutils.get_or_insert_function(builder.module, function_type, f"llvm.masked.{name}.v{vector.count}{element}.p0")


def _masked_load(builder: ir.IRBuilder, pointer: ir.Value, mask: ir.Value, align: int) -> ir.Value:
    """The vector at ``pointer``, its lanes outside ``mask`` zero and never read."""
    vector = pointer.type.pointee
    load = _masked(builder, "load", vector, [pointer.type, ir.IntType(32), mask.type, vector])
    return builder.call(load, [pointer, ir.Constant(ir.IntType(32), align), mask, ir.Constant(vector, None)])


def _masked_store(builder: ir.IRBuilder, value: ir.Value, pointer: ir.Value, mask: ir.Value, align: int) -> None:
    """``value``'s lanes in ``mask`` stored at ``pointer`` (the others left as they are)."""
    store = _masked(builder, "store", value.type, [value.type, pointer.type, ir.IntType(32), mask.type])
    builder.call(store, [value, pointer, ir.Constant(ir.IntType(32), align), mask])


def _transposer(to_matrix: bool) -> Callable:
    """The codegen of :func:`split_block` (``to_matrix``) or :func:`merge_block`."""

    def codegen(context, builder, signature, args):
        row_type, matrix_type = (signature.args[0], signature.args[3]) if to_matrix else (signature.args[3], signature.args[0])
        row_value, matrix_value = (args[0], args[3]) if to_matrix else (args[3], args[0])
        period = signature.args[1].literal_value
        block = context.cast(builder, args[2], signature.args[2], types.intp)
        element = context.get_data_type(row_type.dtype)
        size, lanes = context.get_abi_sizeof(element), _lanes(context, row_type.dtype)
        vector = ir.VectorType(element, lanes).as_pointer()
        intp = context.get_value_type(types.intp)
        row = context.make_array(row_type)(context, builder, row_value)
        matrix = context.make_array(matrix_type)(context, builder, matrix_value)
        rows, columns = cgutils.unpack_tuple(builder, matrix.shape, 2)
        row_size = cgutils.unpack_tuple(builder, row.shape, 1)[0]
        flags = ["nsw", "nuw"]

        def constant(value):
            return ir.Constant(intp, value)

        # The block's elements: row[start:start + P*lanes], of which `available` are whole periods
        # (the last block of a row may have fewer: masked loads, zero past the row, and stores).
        elements = period * lanes
        start = builder.mul(block, constant(elements))
        whole = builder.mul(builder.sdiv(row_size, constant(period)), constant(period))
        in_row = builder.icmp_signed(">=", block, constant(0))
        available = builder.select(in_row, builder.sub(whole, start), constant(0))
        full = builder.and_(in_row, builder.icmp_signed(">=", available, constant(elements)))
        # Only a (P, lanes) matrix is one (block_buffer's shape: constants, so this folds away).
        fits = builder.and_(builder.icmp_signed(">=", rows, constant(period)), builder.icmp_signed("==", columns, constant(lanes)))
        in_place = builder.gep(row.data, [start])
        row_vectors = [builder.bitcast(builder.gep(in_place, [constant(m * lanes)]), vector) for m in range(period)]
        factor = context.make_array(signature.args[4])(context, builder, args[4]) if len(args) > 4 else None
        if factor is not None:  # merge_block_times
            factor_block = builder.gep(factor.data, [start])
            factor_vectors = [builder.bitcast(builder.gep(factor_block, [constant(m * lanes)]), vector) for m in range(period)]
            factor_size = cgutils.unpack_tuple(builder, factor.shape, 1)[0]
            fits = builder.and_(fits, builder.icmp_signed(">=", factor_size, row_size))

        def within(m):  # vector m's lanes that hold whole periods of the row
            positions = ir.Constant(ir.VectorType(intp, lanes), [m * lanes + j for j in range(lanes)])
            limit = builder.insert_element(ir.Constant(ir.VectorType(intp, lanes), ir.Undefined), available, constant(0))
            limit = builder.shuffle_vector(limit, limit, ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
            return builder.icmp_signed("<", positions, limit)

        with builder.if_then(fits, likely=True):
            matrix_vectors = [builder.bitcast(builder.gep(matrix.data, [builder.mul(constant(k), columns, flags=flags)],
                                                          inbounds=True), vector) for k in range(period)]
            programs = block_programs(period, size, vector_bytes())
            # Two paths (no pointer select, and no call: values live across a call in the loop would
            # be spilled around it): a whole block's plain loads or stores, the last block's masked ones.
            if to_matrix:
                with builder.if_else(full, likely=True) as (whole_block, last_block):
                    with whole_block:
                        plain, whole_end = [builder.load(p, align=size) for p in row_vectors], builder.block
                    with last_block:
                        masked = [_masked_load(builder, p, within(m), size) for m, p in enumerate(row_vectors)]
                        last_end = builder.block
                loaded = []
                for a, b in zip(plain, masked):
                    phi = builder.phi(a.type)
                    phi.add_incoming(a, whole_end)
                    phi.add_incoming(b, last_end)
                    loaded.append(phi)
                for value, pointer in zip(_run(builder, programs.split, loaded), matrix_vectors):
                    builder.store(value, pointer, align=size)
            else:
                merged = _run(builder, programs.merge, [builder.load(p, align=size) for p in matrix_vectors])
                with builder.if_else(full, likely=True) as (whole_block, last_block):
                    with whole_block:
                        for m, (value, pointer) in enumerate(zip(merged, row_vectors)):
                            if factor is not None:
                                value = builder.fmul(builder.load(factor_vectors[m], align=size), value)
                            builder.store(value, pointer, align=size)
                    with last_block:
                        for m, (value, pointer) in enumerate(zip(merged, row_vectors)):
                            if factor is not None:
                                value = builder.fmul(_masked_load(builder, factor_vectors[m], within(m), size), value)
                            _masked_store(builder, value, pointer, within(m), size)
        return context.get_dummy_value()

    return codegen


@intrinsic
def split_block(typingctx, row, period, block, matrix):
    """``matrix[k, i] = row[period*g + k]`` for k < period and i < lanes, g =
    ``group(lanes*block + i, period, matrix)``: block ``block`` of the row (its ``lanes`` periods
    from period ``lanes*block`` on) position by position, the groups in the order that the fewest
    shuffles leave (a permutation of the block's).

    ``matrix`` is a :func:`block_buffer` of at least ``period`` rows (anything else is left alone),
    ``period`` a constant (an integer literal in the calling source). Only the row's whole
    periods are read: in the last block of a row that has fewer than ``lanes`` of them left, the
    groups past its end read zeros (as does a block past the row's end).
    """
    if not _check(row, period, block, matrix):
        return None
    return types.void(row, period, block, matrix), _transposer(to_matrix=True)


@intrinsic
def merge_block(typingctx, matrix, period, block, row):
    """``row[period*g + k] = matrix[k, i]``, g = ``group(lanes*block + i, period, matrix)``: the
    inverse of :func:`split_block`, writing only the row's whole periods (none past its end)."""
    if not _check(row, period, block, matrix):
        return None
    return types.void(matrix, period, block, row), _transposer(to_matrix=False)


@intrinsic
def merge_block_times(typingctx, matrix, period, block, row, factor):
    """``row[j] = factor[j] * m``, m what :func:`merge_block` would write at ``row[j]``: the
    results of a block of a backward pass times the incoming gradient, which is not split. Where
    ``factor`` is shorter than ``row``, nothing is written."""
    if not _check(row, period, block, matrix):
        return None
    if not (isinstance(factor, types.Array) and factor.ndim == 1 and factor.layout == "C" and factor.dtype == row.dtype):
        raise TypeError(f"merge_block_times needs a C-contiguous factor row of the row's dtype, got {factor}")
    return types.void(matrix, period, block, row, factor), _transposer(to_matrix=False)


@intrinsic
def group(typingctx, column, period, like):
    """The group (whole period of a row) whose elements :func:`split_block` puts in ``column`` of
    the matrices of its blocks (column ``lanes*block + i``: column i of the block's matrix), for
    ``like``'s dtype; for a row of G groups, a group >= G is one past the row's end."""
    if not (isinstance(period, types.IntegerLiteral) and isinstance(column, types.Integer)
            and isinstance(like, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        column = context.cast(builder, args[0], signature.args[0], types.intp)
        size = context.get_abi_sizeof(context.get_data_type(signature.args[2].dtype))
        order = block_programs(signature.args[1].literal_value, size, vector_bytes()).order
        within = builder.srem(column, ir.Constant(intp, len(order)))
        name = f"interleaved_order_{'_'.join(map(str, order))}"
        table = builder.module.globals.get(name) or cgutils.global_constant(
            builder.module, name, ir.Constant(ir.ArrayType(intp, len(order)), list(order)))
        picked = builder.load(builder.gep(table, [ir.Constant(intp, 0), within], inbounds=True))
        return builder.add(builder.sub(column, within), picked)

    return types.intp(column, period, like), codegen
