"""A row whose elements repeat every P positions, split into (and merged from) one row per position.

A periodic kernel module (``codegen.source``, layout ``"periodic"``) computes a batch-major layer
whose node ``k0 + P*i + k`` has the formula of position k. For each row of the layer it calls
:func:`split` (``matrix[k, i] = row[P*i + k]``), runs one contiguous loop per position over
``matrix[k, :]`` (a homogeneous loop, which LLVM vectorises as it does a node-major one), and
calls :func:`merge` (the inverse) to write the row back. The matrix is small (one row of the
layer) and stays in the L1 cache.

Both are LLVM IR written here rather than numba loops: LLVM's vectoriser turns
``matrix[k, i] = row[P*i + k]`` into loads of P vectors and one generic shuffle per position out
of all P of them, which the x86 backend lowers to about P - 1 two-vector permutes each (W1's
period of 8: 56 per 8 vectors, each way); for a period that is a power of two, the transpose
written as log2(P) rounds of two-vector shuffles (a butterfly) takes P per round: 24 for P = 8.
Other periods use the straightforward sequence (each output gathered from its sources in turn).
W1 at 4096 x 512 float32, one thread: forward 1.2 ms with LLVM's interleaved accesses in one
loop body for the whole period, 1.0 ms split and merged here (node-major: 0.78).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

__all__ = ["split", "merge", "vector_bytes", "shuffle_program", "shuffles_per_vector"]

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
    """Two-vector shuffles turning vectors ``sources`` into ``targets`` (lists of element ids).

    The inputs are named ``s0``, ``s1``..., the outputs ``t0``...: a butterfly (log2(P) rounds
    of P shuffles, each round moving one bit of an element's target vector index) when there are
    P = 2**m vectors, else each output gathered from its sources in turn.
    """
    count = len(sources)
    if count > 1 and count & (count - 1) == 0:
        program = _butterfly(sources, targets)
        if program is not None:
            return program
    return _gathered(sources, targets)


def _butterfly(sources: list[list[int]], targets: list[list[int]]) -> list[Step] | None:
    lanes, count = len(sources[0]), len(sources)
    target_vector = {e: t for t, vector in enumerate(targets) for e in vector}
    target_lane = {e: j for vector in targets for j, e in enumerate(vector)}
    vectors, names, program = [list(v) for v in sources], [f"s{m}" for m in range(count)], []
    rounds = count.bit_length() - 1
    for r in range(rounds):
        for m in range(count):
            if m >> r & 1:
                continue
            pair = vectors[m] + vectors[m | 1 << r]
            for bit, slot in ((0, m), (1, m | 1 << r)):
                chosen = [j for j, e in enumerate(pair) if (target_vector[e] >> r & 1) == bit]
                if len(chosen) != lanes:
                    return None
                if r == rounds - 1:
                    chosen.sort(key=lambda j: target_lane[pair[j]])
                name = f"t{slot}" if r == rounds - 1 else f"r{r}_{slot}"
                program.append((name, names[m], names[m | 1 << r], tuple(chosen)))
            vectors[m], vectors[m | 1 << r] = ([pair[j] for j in step[3]] for step in program[-2:])
            names[m], names[m | 1 << r] = program[-2][0], program[-1][0]
    return program if vectors == [list(t) for t in targets] else None


def _gathered(sources: list[list[int]], targets: list[list[int]]) -> list[Step]:
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


def shuffles_per_vector(period: int, element_bytes: int = 4) -> float:
    """How many two-vector shuffles :func:`split` (and :func:`merge`) take per vector of a row with
    this period: log2(P) for a power of two, P - 1 for the others (at this CPU's vector width)."""
    lanes = max(vector_bytes() // element_bytes, 1)
    return len(_row_and_matrix_programs(period, lanes)[0]) / period


@functools.cache
def _row_and_matrix_programs(period: int, lanes: int) -> tuple[list[Step], list[Step]]:
    """The split and merge programs of one block: P vectors of a row (element ``P*j + k`` of the
    block at lane ``(P*j + k) % lanes`` of vector ``(P*j + k) // lanes``) and P vectors of the
    matrix (vector k: the block's elements ``P*j + k``, j = 0..lanes-1)."""
    row = [[lanes * m + lane for lane in range(lanes)] for m in range(period)]
    matrix = [[period * j + k for j in range(lanes)] for k in range(period)]
    return shuffle_program(row, matrix), shuffle_program(matrix, row)


def _run(builder: ir.IRBuilder, program: list[Step], inputs: list[ir.Value]) -> list[ir.Value]:
    values = {f"s{m}": vector for m, vector in enumerate(inputs)}
    for result, first, second, mask in program:
        lanes = ir.VectorType(ir.IntType(32), len(mask))
        values[result] = builder.shuffle_vector(values[first], values[second], ir.Constant(lanes, list(mask)))
    return [values[f"t{k}"] for k in range(len(inputs))]


def _check(row, period, matrix) -> bool:
    """Whether the call is one these functions serve (else numba retries with a literal period)."""
    arrays = (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"
              and isinstance(matrix, types.Array) and matrix.ndim == 2 and matrix.layout == "C"
              and row.dtype == matrix.dtype)
    if not arrays:
        raise TypeError(f"split/merge need a C-contiguous row and matrix of one dtype, got {row} and {matrix}")
    return isinstance(period, types.IntegerLiteral) and period.literal_value >= 1


def _transposer(to_matrix: bool) -> Callable:
    """The codegen of :func:`split` (``to_matrix``) or :func:`merge`."""

    def codegen(context, builder, signature, args):
        row_type, matrix_type = (signature.args[0], signature.args[2]) if to_matrix else (signature.args[2], signature.args[0])
        row_value, matrix_value = (args[0], args[2]) if to_matrix else (args[2], args[0])
        period = signature.args[1].literal_value
        element = context.get_data_type(row_type.dtype)
        size = context.get_abi_sizeof(element)
        lanes = max(vector_bytes() // size, 1)
        vector = ir.VectorType(element, lanes).as_pointer()
        row = context.make_array(row_type)(context, builder, row_value)
        matrix = context.make_array(matrix_type)(context, builder, matrix_value)
        intp = context.get_value_type(types.intp)
        rows, columns = cgutils.unpack_tuple(builder, matrix.shape, 2)
        row_size = cgutils.unpack_tuple(builder, row.shape, 1)[0]
        # Never past either array: columns = min(matrix columns, row size // P), none if the
        # matrix has fewer than P rows (the generated callers pass exact sizes).
        fits = builder.sdiv(row_size, ir.Constant(intp, period))
        count = builder.select(builder.icmp_signed("<", fits, columns), fits, columns)
        count = builder.select(builder.icmp_signed("<", rows, ir.Constant(intp, period)), ir.Constant(intp, 0), count)
        flags = ["nsw", "nuw"]

        def at(pointer, index):
            return builder.gep(pointer, [index], inbounds=True)

        def matrix_at(k, column):
            return at(matrix.data, builder.add(builder.mul(columns, ir.Constant(intp, k), flags=flags), column, flags=flags))

        split_program, merge_program = _row_and_matrix_programs(period, lanes)
        blocks = builder.sdiv(count, ir.Constant(intp, lanes))
        with cgutils.for_range(builder, blocks, intp=intp) as loop:
            column = builder.mul(loop.index, ir.Constant(intp, lanes), flags=flags)
            block = at(row.data, builder.mul(column, ir.Constant(intp, period), flags=flags))
            row_vectors = [builder.bitcast(at(block, ir.Constant(intp, m * lanes)), vector) for m in range(period)]
            matrix_vectors = [builder.bitcast(matrix_at(k, column), vector) for k in range(period)]
            sources, targets = (row_vectors, matrix_vectors) if to_matrix else (matrix_vectors, row_vectors)
            loaded = [builder.load(pointer, align=size) for pointer in sources]
            for value, pointer in zip(_run(builder, split_program if to_matrix else merge_program, loaded), targets):
                builder.store(value, pointer, align=size)
        with cgutils.for_range(builder, count, start=builder.mul(blocks, ir.Constant(intp, lanes)), intp=intp) as loop:
            for k in range(period):  # the columns after the last whole block, element by element
                in_row = at(row.data, builder.add(builder.mul(loop.index, ir.Constant(intp, period), flags=flags),
                                                  ir.Constant(intp, k), flags=flags))
                source, target = (in_row, matrix_at(k, loop.index)) if to_matrix else (matrix_at(k, loop.index), in_row)
                builder.store(builder.load(source), target)
        return context.get_dummy_value()

    return codegen


@intrinsic
def split(typingctx, row, period, matrix):
    """``matrix[k, i] = row[period*i + k]`` for k < period and i < matrix.shape[1].

    ``period`` must be a constant (an integer literal in the calling source). The copy stops at
    the end of either array (``row.size // period`` columns at most, none if ``matrix`` has fewer
    than ``period`` rows).
    """
    if not _check(row, period, matrix):
        return None
    return types.void(row, period, matrix), _transposer(to_matrix=True)


@intrinsic
def merge(typingctx, matrix, period, row):
    """``row[period*i + k] = matrix[k, i]``: the inverse of :func:`split`, with its limits."""
    if not _check(row, period, matrix):
        return None
    return types.void(matrix, period, row), _transposer(to_matrix=False)

