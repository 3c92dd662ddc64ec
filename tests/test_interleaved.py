"""mathlib.interleaved: a row split into one row per position of its period, and merged back.

The reference is numpy's own reshape and transpose (``row.reshape(-1, P).T``), its columns in the
order that ``interleaved.group`` names (a permutation within each vector's worth of columns, which
the programs' own order must be), for every period the periodic modules use (powers of two take
moves of index bits, the others gathered shuffles), both dtypes, and rows that are not whole
vectors (the columns after the last block go one by one).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from symjit_numba.mathlib import interleaved


def _round_trip(period: int):
    """An njit function splitting ``row`` into ``matrix`` and merging ``matrix`` into ``out``
    (the period must be a constant in the calling source: one function per period)."""
    namespace = {"interleaved": interleaved, "numba": numba}
    exec(f"@numba.njit\ndef round_trip(row, matrix, out):\n"
         f"    interleaved.split(row, {period}, matrix)\n"
         f"    interleaved.merge(matrix, {period}, out)\n", namespace)
    return namespace["round_trip"]


def _groups(period: int):
    """An njit function: ``interleaved.group`` of each of a matrix's first ``groups`` columns."""
    namespace = {"interleaved": interleaved, "numba": numba, "np": np}
    exec(f"@numba.njit\ndef groups_of(groups, matrix):\n"
         f"    order = np.empty(groups, np.int64)\n"
         f"    for i in range(groups):\n"
         f"        order[i] = interleaved.group(i, {period}, groups, matrix)\n"
         f"    return order\n", namespace)
    return namespace["groups_of"]


def _check_round_trips(period: int, dtype, lanes: int, sizes) -> None:
    """Split and merge rows of ``sizes`` whole periods: the matrix is numpy's transpose with its
    columns in the order ``group`` names, a permutation within each block of ``lanes`` columns
    (the columns after the last whole block in place); merge gives the row back."""
    round_trip, groups_of = _round_trip(period), _groups(period)
    for groups in sizes:
        row = np.random.default_rng(groups).standard_normal(period * groups).astype(dtype)
        matrix, out = np.full((period, groups), np.nan, dtype), np.full_like(row, np.nan)
        round_trip(row, matrix, out)
        order = groups_of(groups, matrix)
        whole = groups - groups % lanes
        np.testing.assert_array_equal(np.sort(order), np.arange(groups))
        np.testing.assert_array_equal(order[:whole] // lanes, np.arange(whole) // lanes)
        np.testing.assert_array_equal(order[whole:], np.arange(whole, groups))
        np.testing.assert_array_equal(matrix, row.reshape(groups, period).T[:, order])
        np.testing.assert_array_equal(out, row)


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
    width that split, merge and group read while compiling is set here (LLVM splits vectors wider
    than the CPU's), and the round trip and the order must hold as at the CPU's own width."""
    monkeypatch.setattr(interleaved, "vector_bytes", lambda: width)
    lanes = width // np.dtype(dtype).itemsize
    _check_round_trips(period, dtype, lanes, (5, 3 * lanes + 1))


def test_split_stops_at_the_end_of_either_array():
    """A matrix wider than the row holds (or a row longer than the matrix takes): only whole
    periods that both have are copied; the rest of each array is left as it was."""
    round_trip, groups_of = _round_trip(4), _groups(4)
    row = np.arange(4 * 20, dtype=np.float32)
    wide = np.full((4, 32), -1.0, np.float32)
    out = np.full_like(row, -1.0)
    round_trip(row, wide, out)
    np.testing.assert_array_equal(wide[:, :20], row.reshape(20, 4).T[:, groups_of(20, wide)])
    assert (wide[:, 20:] == -1).all()
    np.testing.assert_array_equal(out, row)
    narrow = np.full((4, 5), -1.0, np.float32)
    out = np.full_like(row, -1.0)
    round_trip(row, narrow, out)
    np.testing.assert_array_equal(narrow, row[:20].reshape(5, 4).T[:, groups_of(5, narrow)])
    np.testing.assert_array_equal(out[:20], row[:20])
    assert (out[20:] == -1).all()


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
