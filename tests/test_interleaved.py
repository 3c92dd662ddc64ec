"""mathlib.interleaved: a row split a block at a time into one row per position of its period, and merged back.

The reference is numpy's own reshape and transpose (``row.reshape(-1, P).T``), its columns in the
order that ``interleaved.group`` names (a permutation within each block of a vector's worth of
columns, which the programs' own order must be), for every period the periodic modules use (powers
of two take moves of index bits, the others gathered shuffles), both dtypes, and rows that are not
whole blocks (the last block reads zeros past the row's end and writes nothing there).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from symjit_numba.mathlib import interleaved


def _round_trip(period: int):
    """An njit function splitting ``row`` block by block into a stack buffer, copying each block's
    matrix into ``matrix`` (its columns ``lanes*b``...) and merging it into ``out``; one block more
    than ``matrix`` has is past the row (the period must be a constant in the calling source: one
    function per period)."""
    namespace = {"interleaved": interleaved, "numba": numba}
    exec(f"@numba.njit\ndef round_trip(row, matrix, out):\n"
         f"    block = interleaved.block_buffer({period}, row)\n"
         f"    lanes = block.shape[1]\n"
         f"    for b in range(matrix.shape[1] // lanes):\n"
         f"        interleaved.split_block(row, {period}, b, block)\n"
         f"        matrix[:, b * lanes:(b + 1) * lanes] = block\n"
         f"        interleaved.merge_block(block, {period}, b, out)\n"
         f"    return lanes\n", namespace)
    return namespace["round_trip"]


def _groups(period: int):
    """An njit function: ``interleaved.group`` of each of the first ``columns`` columns."""
    namespace = {"interleaved": interleaved, "numba": numba, "np": np}
    exec(f"@numba.njit\ndef groups_of(columns, like):\n"
         f"    order = np.empty(columns, np.int64)\n"
         f"    for c in range(columns):\n"
         f"        order[c] = interleaved.group(c, {period}, like)\n"
         f"    return order\n", namespace)
    return namespace["groups_of"]


def _check_round_trips(period: int, dtype, lanes: int, sizes) -> None:
    """Split and merge rows of ``sizes`` whole periods (and a few elements more, which are not a
    period: never read, never written), block by block and a block past the row: the matrix is
    numpy's transpose with its columns in the order ``group`` names, a permutation within each
    block of ``lanes`` columns, zeros for the groups past the row; merge gives the row back."""
    round_trip, groups_of = _round_trip(period), _groups(period)
    for groups in sizes:
        extra = groups % period  # elements after the last whole period (fewer than a period)
        row = np.random.default_rng(groups).standard_normal(period * groups + extra).astype(dtype)
        columns = (-(-groups // lanes) + 1) * lanes
        matrix, out = np.full((period, columns), np.nan, dtype), np.full_like(row, np.nan)
        assert round_trip(row, matrix, out) == lanes
        order = groups_of(columns, matrix)
        for b in range(columns // lanes):
            np.testing.assert_array_equal(np.sort(order[b * lanes:(b + 1) * lanes]), np.arange(b * lanes, (b + 1) * lanes))
        inside = order < groups
        transposed = row[:period * groups].reshape(groups, period).T
        np.testing.assert_array_equal(matrix[:, inside], transposed[:, order[inside]])
        np.testing.assert_array_equal(matrix[:, ~inside], 0)
        np.testing.assert_array_equal(out[:period * groups], row[:period * groups])
        assert np.isnan(out[period * groups:]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("period", [2, 3, 4, 5, 6, 7, 8, 16])
def test_split_and_merge_against_numpy(period, dtype):
    _check_round_trips(period, dtype, interleaved.vector_bytes() // np.dtype(dtype).itemsize,
                       (0, 1, 7, 16, 17, 64, 100))


@pytest.mark.parametrize("width", [16, 32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("period", [2, 4, 8, 16])
def test_every_vector_width_compiles_right(period, dtype, width, monkeypatch):
    """The moves of index bits for SSE/NEON, AVX and AVX-512 vectors, whatever this CPU has: the
    width that block_buffer, split_block, merge_block and group read while compiling is set here
    (LLVM splits vectors wider than the CPU's), and the round trip and the order must hold as at
    the CPU's own width."""
    monkeypatch.setattr(interleaved, "vector_bytes", lambda: width)
    lanes = width // np.dtype(dtype).itemsize
    _check_round_trips(period, dtype, lanes, (5, 3 * lanes + 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("period", [3, 8])
def test_merge_times_a_factor(period, dtype):
    """merge_block_times writes factor * the merged block, the row's whole periods only (numpy's
    product: one rounding, the same bits), and nothing where the factor is shorter than the row."""
    namespace = {"interleaved": interleaved, "numba": numba}
    exec(f"@numba.njit\ndef times(row, factor, out):\n"
         f"    block = interleaved.block_buffer({period}, row)\n"
         f"    for b in range(-(-row.size // ({period} * block.shape[1]))):\n"
         f"        interleaved.split_block(row, {period}, b, block)\n"
         f"        interleaved.merge_block_times(block, {period}, b, out, factor)\n", namespace)
    rng = np.random.default_rng(period)
    for groups in (1, 21, 64):
        row = rng.standard_normal(period * groups + 1).astype(dtype)  # + 1: not a whole period
        factor = rng.standard_normal(row.size).astype(dtype)
        out = np.full_like(row, np.nan)
        namespace["times"](row, factor, out)
        np.testing.assert_array_equal(out[:-1], factor[:-1] * row[:-1])
        assert np.isnan(out[-1])
        out = np.full_like(row, np.nan)
        namespace["times"](row, factor[:-2], out)
        assert np.isnan(out).all()


def test_a_matrix_that_is_not_a_block_buffer_is_left_alone():
    """split_block and merge_block only move a block between a row and a (P, lanes) matrix: given
    any other, neither array is touched (no kernel writes past an array it was not built for)."""
    namespace = {"interleaved": interleaved, "numba": numba}
    exec("@numba.njit\ndef move(row, matrix, out):\n"
         "    interleaved.split_block(row, 4, 0, matrix)\n"
         "    interleaved.merge_block(matrix, 4, 0, out)\n", namespace)
    lanes = interleaved.vector_bytes() // 4
    row = np.arange(4 * lanes, dtype=np.float32)
    for shape in ((4, lanes + 1), (3, lanes), (4, lanes - 1)):
        matrix, out = np.full(shape, -1.0, np.float32), np.full_like(row, -1.0)
        namespace["move"](row, matrix, out)
        assert (matrix == -1).all() and (out == -1).all(), shape


@pytest.mark.parametrize("element_bytes, vector_bytes", [(4, 16), (4, 32), (4, 64), (8, 16), (8, 32), (8, 64)])
def test_block_programs_compute_the_transpose(element_bytes, vector_bytes):
    """The programs themselves, run in Python on element ids, for every vector width (not only
    this CPU's): split gives each position's elements in the program's order of groups, merge
    gives the row back; a power-of-two period takes at most one round of shuffles more than a
    butterfly would (log2(P) a vector), the others P - 1 a vector at most."""
    lanes = vector_bytes // element_bytes
    for period in range(2, 17):
        programs = interleaved.block_programs(period, element_bytes, vector_bytes)
        assert sorted(programs.order) == list(range(lanes))
        row = [[lanes * m + q for q in range(lanes)] for m in range(period)]
        matrix = [[period * g + k for g in programs.order] for k in range(period)]
        for program, sources, targets in ((programs.split, row, matrix), (programs.merge, matrix, row)):
            values = {f"s{m}": vector for m, vector in enumerate(sources)}
            for result, first, second, mask in program:
                both = values[first] + values[second]
                values[result] = [both[j] for j in mask]
            assert [values[f"t{t}"] for t in range(period)] == targets, (period, lanes)
            power_of_two = period & (period - 1) == 0
            assert len(program) <= period * (period.bit_length() if power_of_two else period - 1)
