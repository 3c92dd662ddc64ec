"""Deterministic sums of the parameter-gradient kernels: from per-task partial sums to ``grad_params``.

A summing kernel (``param_backward``, ``backward_with_params``; see ``KINDS`` in
:mod:`symjit_numba.codegen.source`) splits its work into a fixed set of tasks that depends on the
shape alone, never on the number of threads. Each task writes its float64 sums into its own slot
of a buffer ``partials`` (rows: task groups, e.g. a node's blocks of samples; columns: (node,
constant) pairs). The second pass here adds the rows of each column in order, then the columns
whose constant lives at the same ``params`` entry (tied constants: several nodes reading one
entry get the sum of their gradients), in column order, and writes each such entry of
``grad_params`` once. Every step has a fixed order, so the result has the same bits whatever
``settings.num_threads``; every step is float64, so 1M float32 terms sum to within ~1e-10 relative.

:class:`Columns` says which (node, constant) each column is. The CPU backends run the second pass
as :func:`sum_columns`; GPU_CUDA runs it on the device from :meth:`Columns.plan` (cached: offsets
rarely change between calls).
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import types

from ..store import compile_cached
from .cpu_tasks import _jit

__all__ = ["Columns", "sum_columns"]


@_jit
def sum_columns(partials, offsets, nodes, constants, grad):  # pragma: no cover - compiled
    """The second pass: each column of ``partials`` summed down its rows in order, then the columns
    of one ``grad`` entry (column e's is ``offsets[nodes[e]] + constants[e]``) in column order; each
    such entry written once. Also called from the layers' own njit kernels (:mod:`.cpu_numba`)."""
    count = nodes.size
    if count == 0:
        return
    rows = partials.shape[0]
    column = np.zeros(count, dtype=np.float64)
    if rows:
        for c in range(count):
            column[c] = partials[0, c]
        for r in range(1, rows):
            for c in range(count):
                column[c] += partials[r, c]
    needed = 0
    for c in range(count):
        needed = max(needed, offsets[nodes[c]] + constants[c] + 1)
    if needed > grad.size:
        raise ValueError("grad_params is shorter than the params entries the nodes own")
    total = np.empty(needed, dtype=np.float64)
    seen = np.zeros(needed, dtype=np.bool_)
    for c in range(count):
        where = offsets[nodes[c]] + constants[c]
        if seen[where]:
            total[where] += column[c]
        else:
            total[where] = column[c]
            seen[where] = True
    for where in range(needed):
        if seen[where]:
            grad[where] = total[where]


@functools.cache
def _sum_columns_loaded() -> None:
    """Load (or compile) :func:`sum_columns` for the backends' arrays through compile_cached: numba's
    own first dispatch would refresh its registries (0.25 s of a warm start)."""
    index = types.int64[::1]
    for dtype in (np.float32, np.float64):
        compile_cached(sum_columns, (types.float64[:, ::1], index, index, index, numba.from_dtype(dtype)[::1]))


class Columns:
    """The columns of a partial-sum buffer: column ``e`` holds node ``nodes[e]``'s sums for its
    constant number ``constants[e]``, so it belongs in ``grad_params[offsets[nodes[e]] + constants[e]]``."""

    def __init__(self, nodes: np.ndarray, constants: np.ndarray) -> None:
        self.nodes = np.asarray(nodes, dtype=np.int64)
        self.constants = np.asarray(constants, dtype=np.int64)
        self._plan: tuple[bytes, tuple[np.ndarray, ...]] | None = None

    @classmethod
    def per_node(cls, counts: np.ndarray) -> Columns:
        """Node after node, each node's constants in order (``counts[j]`` constants for node j)."""
        counts = np.asarray(counts, dtype=np.int64)
        nodes = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        return cls(nodes, np.arange(nodes.size, dtype=np.int64) - np.repeat(starts, counts))

    @classmethod
    def per_run(cls, start: np.ndarray, stop: np.ndarray, counts: np.ndarray) -> Columns:
        """Run after run of nodes ``start[s]:stop[s]`` (``counts[s]`` constants each), each run
        constant-major: all its nodes' first constants, then all their second ones..."""
        nodes, constants = [], []
        for s in range(len(start)):
            for c in range(int(counts[s])):
                nodes.append(np.arange(start[s], stop[s], dtype=np.int64))
                constants.append(np.full(stop[s] - start[s], c, dtype=np.int64))
        if not nodes:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls(np.concatenate(nodes), np.concatenate(constants))

    @property
    def size(self) -> int:
        return int(self.nodes.size)

    def plan(self, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The second pass for ``offsets``: ``grad[targets[s]]`` = the sum of columns
        ``order[starts[s]:starts[s + 1]]``; returns (order, starts, targets), int64."""
        key = offsets.tobytes()
        if self._plan is None or self._plan[0] != key:
            where = offsets[self.nodes] + self.constants if self.size else np.zeros(0, np.int64)
            order = np.argsort(where, kind="stable").astype(np.int64)  # ties stay in column order
            ranked = where[order]
            first = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1]))) if self.size else order
            starts = np.append(first, self.size).astype(np.int64)
            self._plan = (key, (order, starts, ranked[first].astype(np.int64)))
        return self._plan[1]

    def combine(self, partials: np.ndarray, offsets: np.ndarray, grad: np.ndarray) -> None:
        """The second pass on the host, ``partials`` (rows, columns) float64 into ``grad``: :func:`sum_columns`
        (compiled: six numpy calls took 5-7 us, a third of a small layer's call)."""
        _sum_columns_loaded()
        sum_columns(partials, offsets, self.nodes, self.constants, grad)
