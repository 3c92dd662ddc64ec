"""mathlib.interleaved: a row split into one row per position of its period, and merged back.

The reference is numpy's own reshape and transpose (``row.reshape(-1, P).T``), for every period
the periodic modules use (powers of two take butterfly shuffles, the others gathered ones), both
dtypes, and rows that are not whole vectors (the columns after the last block go one by one).
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("period", [2, 3, 4, 5, 6, 7, 8, 16])
def test_split_and_merge_against_numpy(period, dtype):
    round_trip = _round_trip(period)
    rng = np.random.default_rng(period)
    for groups in (0, 1, 7, 16, 17, 64, 100):
        row = rng.standard_normal(period * groups).astype(dtype)
        matrix = np.full((period, groups), np.nan, dtype)
        out = np.full_like(row, np.nan)
        round_trip(row, matrix, out)
        np.testing.assert_array_equal(matrix, row.reshape(groups, period).T)
        np.testing.assert_array_equal(out, row)


def test_split_stops_at_the_end_of_either_array():
    """A matrix wider than the row holds (or a row longer than the matrix takes): only whole
    periods that both have are copied; the rest of each array is left as it was."""
    round_trip = _round_trip(4)
    row = np.arange(4 * 20, dtype=np.float32)
    wide = np.full((4, 32), -1.0, np.float32)
    out = np.full_like(row, -1.0)
    round_trip(row, wide, out)
    np.testing.assert_array_equal(wide[:, :20], row.reshape(20, 4).T)
    assert (wide[:, 20:] == -1).all()
    np.testing.assert_array_equal(out, row)
    narrow = np.full((4, 5), -1.0, np.float32)
    out = np.full_like(row, -1.0)
    round_trip(row, narrow, out)
    np.testing.assert_array_equal(narrow, row[:20].reshape(5, 4).T)
    np.testing.assert_array_equal(out[:20], row[:20])
    assert (out[20:] == -1).all()


def test_shuffle_programs_compute_the_transpose():
    """The programs themselves, run in Python on element ids, for odd vector widths too."""
    for period in range(2, 17):
        for lanes in (2, 4, 8, 16):
            row = [[lanes * m + q for q in range(lanes)] for m in range(period)]
            matrix = [[period * j + k for j in range(lanes)] for k in range(period)]
            for sources, targets in ((row, matrix), (matrix, row)):
                values = {f"s{m}": vector for m, vector in enumerate(sources)}
                for result, first, second, mask in interleaved.shuffle_program(sources, targets):
                    both = values[first] + values[second]
                    values[result] = [both[j] for j in mask]
                assert [values[f"t{t}"] for t in range(period)] == targets, (period, lanes)
