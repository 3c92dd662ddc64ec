"""CPU_JIT: generated kernel modules compiled with ``numba.njit``, run on every core.

No system C compiler is involved: numba compiles through the LLVM that ships in llvmlite's wheel.

Compilation. Each formula has its own module (:mod:`symjit_numba.codegen.source`), compiled per
dtype at first use and shared by every layer that uses the formula; the named formulas' modules
ship with the package, so numba compiles them once per installation. A layer compiles nothing of
its own: it is a table of the addresses of its nodes' formula functions, which the fixed task
runners of :mod:`.cpu_tasks` call. W1 (8 named formulas) thus builds in about 0.17 s instead of
the 2.1 s that one generated kernel with all eight formulas took to compile in each new cache.

Parallelism. The kernels are serial ``nogil`` functions over a range of tasks (a task is one node's
block of the batch, or a block of a loss's elements); the pool of :mod:`.cpu_pool` splits the task
range over ``settings.num_threads`` threads, which run truly in parallel because numba released
the GIL (and which wait for work spinning in native code: a hand-off costs microseconds).
We measured numba's own ``parallel=True`` on W1 (8 formulas, forward and backward): 7.0 s of
compilation against 2.4 s for the same serial kernel, because its parfor passes re-type and
re-optimise the whole loop body. Running our own threads also means no numba threading layer is
involved, so kernels may be called from any number of Python threads at once: there is no
``workqueue`` layer to abort the process, and nothing global to pin.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import numba  # noqa: F401 - imported with the package, not inside the first constructor call
import numpy as np

from ..codegen.source import BLOCK, ROWS
from ..errors import CompilationWarning, JITCompilationError
from ..formulas.resolve import FormulaKey, LayerPlan
from ..mathlib import interleaved
from ..store import compile_cached, formula_module, formula_on_disk, in_numba_cache, period_label, periodic_module
from . import cpu_tasks
from .cpu_pool import SERIAL_BELOW, CallCost, Runner, TaskPool, runner_for, wrapper_address
from .cpu_workers import compile_in_workers
from .kernels import Kernels, wrap_activation, wrap_loss, wrap_param_activation, wrap_param_loss
from .param_sums import Columns

__all__ = ["build", "TaskPool", "SEGMENT", "SERIAL_BELOW"]

logger = logging.getLogger("symjit_numba")

METHOD = "CPU_JIT"
#: Longest run of neighbouring same-formula nodes handled as one inner loop (batch-major layout).
SEGMENT = 1024
#: A batch-major layer whose runs of same-formula nodes are shorter than this on average is
#: computed node-major, tile by tile (cpu_tasks.tiled): a run of one node (formulas interleaved)
#: cannot fill a vector.
SHORT_RUNS = 8
#: A node-major call with at most this many samples (and no output that is an input) runs as tasks
#: of nodes grouped by formula (cpu_tasks.grouped): a call per node costs more than a short row.
GROUPED_BATCH = 512
#: Nodes per task of the grouped runners.
GROUP_CHUNK = 32
#: A batch-major layer whose formulas interleave but repeat every P nodes, 2 <= P <= MAX_PERIOD (W1:
#: eight kinds cycled, P = 8), with at least PERIOD_REPEATS periods, computes its kernels with a
#: module of the period's own (codegen ``"periodic"``, see task_layout), if splitting its rows takes
#: at most MAX_SHUFFLES shuffles per vector (``interleaved.shuffles_per_vector``: P = 2, 3, 4, 5, 6,
#: 8, 16). Measured against the tiles (4096 rows float32, one thread): faster at every such period
#: (W1 forward 0.88-0.95 ms against 1.69, backward_with_params 1.4-1.5 against 2.66; P = 5 ties),
#: slower at P = 7 (6 shuffles per vector: backward_with_params 3.2 ms against 2.6) and P = 12
#: (these two measured with the previous, row-at-a-time design).
MAX_PERIOD = 16
MAX_SHUFFLES = 5
#: Fewest periods per row for the periodic module: a vector's worth of float32 lanes.
PERIOD_REPEATS = 16


_pool = TaskPool()


def _count_formulas(plan: LayerPlan) -> str:
    """"1 formula", "8 formulas": for messages."""
    return f"{len(plan.formulas)} formula{'s' * (len(plan.formulas) != 1)}"


def _segments(func_ids: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of neighbouring nodes with the same formula, each at most ``longest`` nodes."""
    starts = [0]
    for k in range(1, len(func_ids)):
        if func_ids[k] != func_ids[k - 1] or k - starts[-1] >= longest:
            starts.append(k)
    start = np.asarray(starts, dtype=np.int64)
    stop = np.append(start[1:], len(func_ids)).astype(np.int64)
    return start, stop, func_ids[start].copy()


#: Argument types of each compiled function, for scalar type ``t``: C-contiguous arrays, as the
#: backend passes them (``B`` the backward flag; ``I`` an int64; ``INDEX`` an int64 vector).
_B, _I, _INDEX = numba.boolean, numba.int64, numba.int64[::1]
_F64, _F64_2D = numba.float64[::1], numba.float64[:, ::1]
_ARGUMENTS: dict[str, Callable[[Any], tuple]] = {
    # a formula's functions (codegen.source): (backward,) arrays, params, then where to work
    "node_block": lambda t: (_B,) + (t[::1],) * 3 + (t[::1], _I),
    "node_block_both": lambda t: (t[::1],) * 3 + (t[::1], _I),
    "row_block": lambda t: (_B,) + (t[:, ::1],) * 3 + (t[::1], _INDEX) + (_I,) * 4,
    "row_block_both": lambda t: (t[:, ::1],) * 3 + (t[::1], _INDEX) + (_I,) * 4,
    "nodes_block": lambda t: (_B,) + (t[:, ::1],) * 3 + (t[::1], _INDEX, _INDEX) + (_I,) * 3,
    "nodes_block_both": lambda t: (t[:, ::1],) * 3 + (t[::1], _INDEX, _INDEX) + (_I,) * 3,
    # the task runners (cpu_tasks): first, last, (backward,) arrays, params, offsets, dispatch, kernels
    "node_major": lambda t: (_I, _I, _B) + (t[:, ::1],) * 3 + (t[::1], _INDEX, _INDEX),
    "node_major_both": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1], _INDEX, _INDEX),
    "batch_major": lambda t: (_I, _I, _B) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 4,
    "batch_major_both": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 4,
    "grouped": lambda t: (_I, _I, _B) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 5,
    "grouped_both": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 5,
    "tiled": lambda t: (_I, _I, _B) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 6,
    "tiled_both": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 6,
    # a loss module: first, last, (backward,) y_pred, y_true, outputs, params
    "loss": lambda t: (_I, _I, _B) + (t[::1],) * 4,
    "loss_both": lambda t: (_I, _I) + (t[::1],) * 5,
    # the summing kinds: the same, plus where the sums go (float64 ``partial``/``partials``, and the
    # runners' ``columns``: where each node's or run's columns start)
    "node_block_params": lambda t: (t[::1],) * 3 + (_I, _F64),
    "node_block_backward_params": lambda t: (t[::1],) * 4 + (_I, _F64),
    "row_block_params": lambda t: (t[:, ::1],) * 2 + (t[::1], _INDEX) + (_I,) * 4 + (_F64,),
    "row_block_backward_params": lambda t: (t[:, ::1],) * 3 + (t[::1], _INDEX) + (_I,) * 4 + (_F64,),
    "nodes_block_params": lambda t: (t[:, ::1],) * 2 + (t[::1], _INDEX, _INDEX, _INDEX) + (_I,) * 3 + (_F64,),
    "nodes_block_backward_params": lambda t: (t[:, ::1],) * 3 + (t[::1], _INDEX, _INDEX, _INDEX) + (_I,) * 3 + (_F64,),
    "node_major_params": lambda t: (_I, _I) + (t[:, ::1],) * 2 + (t[::1],) + (_INDEX,) * 3 + (_F64_2D,),
    "node_major_backward_params": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 3 + (_F64_2D,),
    "grouped_params": lambda t: (_I, _I) + (t[:, ::1],) * 2 + (t[::1],) + (_INDEX,) * 6 + (_F64_2D,),
    "grouped_backward_params": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 6 + (_F64_2D,),
    "tiled_params": lambda t: (_I, _I) + (t[:, ::1],) * 2 + (t[::1],) + (_INDEX,) * 7 + (_F64_2D,),
    "tiled_backward_params": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 7 + (_F64_2D,),
    "batch_major_params": lambda t: (_I, _I) + (t[:, ::1],) * 2 + (t[::1],) + (_INDEX,) * 5 + (_F64_2D,),
    "batch_major_backward_params": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 5 + (_F64_2D,),
    "loss_params": lambda t: (_I, _I) + (t[::1],) * 3 + (_F64_2D,),
    "loss_backward_params": lambda t: (_I, _I) + (t[::1],) * 4 + (_F64_2D,),
}


class _Kernel:
    """A numba function compiled, or loaded from numba's cache, for each dtype before its first use.

    Its argument types come from ``_ARGUMENTS`` (other array flags, e.g. read-only inputs, still
    work: numba then compiles for those itself). Failures become :class:`JITCompilationError`
    naming ``what`` was compiled.
    """

    def __init__(self, dispatcher: Any, what: str) -> None:
        self._dispatcher = dispatcher
        self._arguments = _ARGUMENTS[dispatcher.py_func.__name__]
        self._what = what
        self._ready: set[np.dtype] = set()
        self._runners: dict[np.dtype, Runner] = {}

    def __call__(self, dtype: np.dtype) -> Any:
        """The dispatcher, compiled for ``dtype``."""
        if dtype not in self._ready:
            try:
                compile_cached(self._dispatcher, self._arguments(numba.from_dtype(dtype)))
            except Exception as error:  # numba reports typing and lowering problems with many exception types
                raise JITCompilationError(f"numba could not compile {self._what} for {dtype}: "
                                          f"{type(error).__name__}: {str(error)[:2000]}") from error
            self._ready.add(dtype)
        return self._dispatcher

    def address(self, dtype: np.dtype) -> int:
        """Where the C wrapper of the ``dtype`` version is: what the task runners call."""
        address = wrapper_address(self(dtype), self._arguments(numba.from_dtype(dtype)))
        if not address:  # never call through a null pointer: e.g. a numba that stopped making C wrappers
            raise JITCompilationError(f"numba compiled {self._what} for {dtype} without a C wrapper to call")
        return address

    def runner(self, dtype: np.dtype) -> Runner:
        """The ``dtype`` version as a task runner for the pool (see :mod:`.cpu_pool`)."""
        runner = self._runners.get(dtype)
        if runner is None:
            runner = self._runners[dtype] = runner_for(self(dtype), self.address(dtype),
                                                       self._arguments(numba.from_dtype(dtype))[2:])
        return runner


class _Addresses:
    """Per dtype, the addresses of ``kernels[formula]`` for each entry of ``formula_ids`` (int64)."""

    def __init__(self, kernels: list[_Kernel], formula_ids: np.ndarray) -> None:
        self._kernels = kernels
        self._formula_ids = formula_ids
        self._tables: dict[np.dtype, np.ndarray] = {}

    def __call__(self, dtype: np.dtype) -> np.ndarray:
        table = self._tables.get(dtype)
        if table is None:
            table = np.array([k.address(dtype) for k in self._kernels], dtype=np.int64)[self._formula_ids]
            self._tables[dtype] = table
        return table


def _compile_ahead(keys: tuple[FormulaKey, ...], mode: str, functions: tuple[str, ...],
                   dtypes: list[np.dtype]) -> None:
    """Have worker processes compile what neither this process nor numba's disk cache holds yet
    (see :mod:`.cpu_workers`): ``functions`` of the formulas ``keys``, for ``dtypes`` (none for a
    periodic layer, whose runners call its period's module: no formula module is looked up)."""
    if not dtypes or not functions:
        return
    missing = [key for key in keys if not _compiled(key, mode, functions, dtypes)]
    if missing:
        logger.info("compiling %d formula%s (%s for %s): about 0.15 s each per function and dtype",
                    len(missing), "s" * (len(missing) != 1), ", ".join(functions), ", ".join(map(str, dtypes)))
        compile_in_workers(missing, mode, functions, dtypes)


def _compiled(key: FormulaKey, mode: str, functions: tuple[str, ...], dtypes: list[np.dtype]) -> bool:
    """Whether the formula's module exists and numba has each of its ``functions`` for ``dtypes``."""
    if not formula_on_disk(key, mode):
        return False
    module, _ = formula_module(key, mode)  # on disk: an import, no SymPy
    return all(in_numba_cache(getattr(module, name), _ARGUMENTS[name](numba.from_dtype(dtype)))
               for name in functions for dtype in dtypes)


class _Readiness:
    """What a layer has compiled, per dtype; compiles the rest at first use, and says so if it is slow.

    ``compile(dtype)`` compiles (or loads from the cache) everything a call in ``dtype`` needs.
    """

    #: A first call that compiles for longer than this warns (a training step is milliseconds).
    SLOW_FIRST_CALL = 0.1

    def __init__(self, compile_ahead: Callable[[list[np.dtype]], None], compile: Callable[[np.dtype], None],
                 what: str) -> None:
        self._compile_ahead = compile_ahead
        self._compile = compile
        self._what = what
        self._ready: set[np.dtype] = set()

    def warm_up(self, dtypes: Sequence[Any]) -> None:
        """Compile (or load) every kernel of ``dtypes`` now; formulas never compiled before go to worker processes."""
        wanted = [np.dtype(d) for d in dtypes]
        self._compile_ahead([d for d in wanted if d not in self._ready])
        for dtype in wanted:
            if dtype not in self._ready:
                self._compile(dtype)
                self._ready.add(dtype)

    def ensure(self, dtype: np.dtype) -> None:
        """Before a call in ``dtype``: compile what it needs, if that did not happen when the layer was built."""
        if dtype in self._ready:
            return
        started = time.perf_counter()
        self.warm_up([dtype])
        elapsed = time.perf_counter() - started
        if elapsed > self.SLOW_FIRST_CALL:
            warnings.warn(f"the first {dtype} call of {self._what} compiled it for {dtype} ({elapsed:.1f} s); call "
                          f"compiler.warm_up(np.{dtype}) after building the layer to pay this before training (a "
                          "layer compiles forward_kernel and backward_kernel for float32 when it is built, and every "
                          "other kernel and dtype at its first call)", CompilationWarning, stacklevel=4)


def _build_loss(plan: LayerPlan) -> Kernels:
    key = plan.formulas[0]
    module, text = formula_module(key, "loss")
    what = f"the loss {key.label!r}"
    kernel, kernel_both = _Kernel(module.loss, what), _Kernel(module.loss_both, what)
    readiness = _Readiness(lambda dtypes: _compile_ahead((key,), "loss", ("loss",), dtypes), kernel, what)
    readiness_both = _Readiness(lambda dtypes: _compile_ahead((key,), "loss", ("loss_both",), dtypes), kernel_both,
                                f"forward_derivative_kernel of {what}")
    readiness.warm_up([np.float32])  # now, so that failures surface in the constructor

    def run_loss(backward: bool) -> Callable[..., None]:
        costs: defaultdict[np.dtype, CallCost] = defaultdict(CallCost)

        def run(y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, params: np.ndarray) -> None:
            readiness.ensure(out.dtype)
            size = out.size
            _pool.run(kernel.runner(out.dtype), -(-size // BLOCK), size, backward,
                      y_pred.reshape(-1), y_true.reshape(-1), out.reshape(-1), params, cost=costs[out.dtype])
        return run

    costs_both: defaultdict[np.dtype, CallCost] = defaultdict(CallCost)

    def run_loss_both(y_pred: np.ndarray, y_true: np.ndarray, res: np.ndarray, grad: np.ndarray,
                      params: np.ndarray) -> None:
        readiness_both.ensure(res.dtype)
        size = res.size
        _pool.run(kernel_both.runner(res.dtype), -(-size // BLOCK), size,
                  y_pred.reshape(-1), y_true.reshape(-1), res.reshape(-1), grad.reshape(-1), params,
                  cost=costs_both[res.dtype])

    return _with_param_kernels(Kernels(METHOD, *wrap_loss(plan, run_loss(False), run_loss(True), run_loss_both),
                                       source=text, warm_up=_joined(readiness, readiness_both)),
                               _loss_param_kernels(plan, module))


def _joined(*readiness: _Readiness) -> Callable[[Sequence[Any]], None]:
    """One ``warm_up`` for several groups of kernels."""
    def warm_up(dtypes: Sequence[Any]) -> None:
        for group in readiness:
            group.warm_up(dtypes)
    return warm_up


class _Path(NamedTuple):
    """One way to run a kernel: a runner of :mod:`.cpu_tasks`, the formula function it calls
    (``block``) from each of ``modules`` (label, module), indexed by ``formula_ids``, its arguments
    ``dispatch``, and its numbers of tasks and of blocks of samples for a shape (None: the grouped
    tasks, whose number is fixed)."""

    runner: str
    block: str
    formula_ids: np.ndarray
    dispatch: tuple[np.ndarray, ...]
    modules: list[tuple[str, ModuleType]]
    grid: Callable[[tuple[int, int]], tuple[int, int]] | None


class _Paths:
    """The ways to run one kernel of a layer (``suffix``: "", "_both", "_params" or "_backward_params"):
    the layer's task runner, and
    for a node-major layer also the grouped runner for short rows. Each is a runner of
    :mod:`.cpu_tasks` and the address table of the formula functions it calls."""

    def __init__(self, tasks: Tasks, modules: list[tuple[str, ModuleType]], suffix: str) -> None:
        grouped = tasks.grouped
        paths = [_Path(tasks.runner, tasks.block, tasks.formula_ids, tasks.dispatch, modules, tasks.grid)]
        if grouped is not None:
            paths.append(_Path("grouped", "nodes_block", grouped.formula_ids, grouped.dispatch, modules, None))
        self._tasks = tasks
        self._runners = [_Kernel(getattr(cpu_tasks, f"{path.runner}{suffix}"), "the task runner") for path in paths]
        self._addresses = [_Addresses([_Kernel(getattr(module, f"{path.block}{suffix}"), what)
                                       for what, module in path.modules], path.formula_ids) for path in paths]
        self._grid = paths[0].grid
        self._dispatch = [path.dispatch for path in paths]
        self._costs: defaultdict[tuple[np.dtype, int], CallCost] = defaultdict(CallCost)

    def compile(self, dtype: np.dtype) -> None:
        for runner, addresses in zip(self._runners, self._addresses):
            addresses(dtype), runner(dtype)

    def which(self, inputs: tuple[np.ndarray, ...], outputs: tuple[np.ndarray, ...]) -> tuple[int, int]:
        """(path, number of tasks) for a call: grouped for a short batch, unless an output is an input."""
        grouped = self._tasks.grouped
        if grouped is not None and grouped.suits(inputs, outputs):
            return 1, grouped.size
        return 0, self._grid(inputs[0].shape)[0]

    def run(self, z: np.ndarray, inputs: tuple, outputs: tuple, *arguments: Any, tail: tuple = ()) -> None:
        """Run the kernel on ``z``'s layer: ``arguments`` before the dispatch arrays, ``tail`` after the addresses."""
        path, n_tasks = self.which(inputs, outputs)
        dtype = z.dtype
        _pool.run(self._runners[path].runner(dtype), n_tasks, z.size, *arguments, *self._dispatch[path],
                  self._addresses[path](dtype), *tail, cost=self._costs[dtype, path])


def build(plan: LayerPlan, layout: str = "node_major", device_id: int = 0) -> Kernels:
    """Build CPU_JIT kernels for a resolved layer; raises JITCompilationError if numba fails.

    Each formula's module is compiled (or loaded) once and shared by every layer that uses it; the
    layer itself is a table of addresses for the task runners of :mod:`.cpu_tasks`. forward_kernel
    and backward_kernel are compiled here for float32; every other kernel and dtype at its first
    call, or by ``warm_up``.
    """
    if plan.mode == "loss":
        return _build_loss(plan)
    tasks = task_layout(plan, layout)
    blocks = tasks.blocks
    _compile_ahead(plan.formulas, "activation", blocks, [np.dtype(np.float32)])
    modules = tasks.modules(plan)
    paths = {suffix: _Paths(tasks, [(what, module) for what, module, _ in modules], suffix) for suffix in ("", "_both")}

    formulas = _count_formulas(plan)
    readiness = _Readiness(lambda dtypes: _compile_ahead(plan.formulas, "activation", blocks, dtypes),
                           paths[""].compile, f"this layer ({formulas})")
    readiness_both = _Readiness(
        lambda dtypes: _compile_ahead(plan.formulas, "activation", tuple(f"{b}_both" for b in blocks), dtypes),
        paths["_both"].compile, f"forward_derivative_kernel of this layer ({formulas})")
    readiness.warm_up([np.float32])  # now, so that failures surface in the constructor

    def warm_up(dtypes: Sequence[Any]) -> None:  # one pass of worker processes for both groups
        _compile_ahead(plan.formulas, "activation", (*blocks, *(f"{b}_both" for b in blocks)),
                       [np.dtype(d) for d in dtypes])
        readiness.warm_up(dtypes)
        readiness_both.warm_up(dtypes)

    def run_forward(z, a, params, offsets):
        readiness.ensure(z.dtype)
        paths[""].run(z, (z,), (a,), False, z, z, a, params, offsets)

    def run_backward(z, err, delta, params, offsets):
        readiness.ensure(z.dtype)
        paths[""].run(z, (z, err), (delta,), True, z, err, delta, params, offsets)

    def run_both(z, a, d, params, offsets):
        readiness_both.ensure(z.dtype)
        paths["_both"].run(z, (z,), (a, d), z, a, d, params, offsets)

    text = "\n\n".join(text for *_, text in modules)
    params_kernels = _param_kernels(plan, layout, tasks, [(what, module) for what, module, _ in modules])
    return _with_param_kernels(Kernels(METHOD, *wrap_activation(plan, layout, run_forward, run_backward, run_both),
                                       source=text, warm_up=warm_up), params_kernels)


@dataclass(frozen=True)
class GroupedTasks:
    """Node-major tasks for short rows (:func:`.cpu_tasks.grouped`): chunks of at most GROUP_CHUNK
    nodes of one formula, whole rows. ``order`` lists the nodes by formula; task t takes
    ``order[chunk_start[t]:chunk_stop[t]]``, whose formula is ``formula_ids[t]``."""

    order: np.ndarray
    chunk_start: np.ndarray
    chunk_stop: np.ndarray
    formula_ids: np.ndarray

    @classmethod
    def of(cls, func_ids: np.ndarray) -> GroupedTasks:
        order = np.argsort(func_ids, kind="stable").astype(np.int64)
        ids = func_ids[order]
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        stops = np.append(starts[1:], ids.size)
        chunks = [(lo, min(lo + GROUP_CHUNK, stop)) for start, stop in zip(starts, stops)
                  for lo in range(start, stop, GROUP_CHUNK)]
        chunk_start, chunk_stop = (np.array(bounds, dtype=np.int64) for bounds in zip(*chunks))
        return cls(order, chunk_start, chunk_stop, ids[chunk_start].copy())

    @property
    def dispatch(self) -> tuple[np.ndarray, ...]:
        return self.order, self.chunk_start, self.chunk_stop

    @property
    def size(self) -> int:
        return int(self.chunk_start.size)

    @staticmethod
    def suits(inputs: tuple[np.ndarray, ...], outputs: tuple[np.ndarray, ...]) -> bool:
        """Whether a call takes these tasks: 1..GROUPED_BATCH samples (one block: the summing runners'
        sums have one row), and no output is an input (a row loop in place would not vectorise)."""
        return 0 < inputs[0].shape[1] <= GROUPED_BATCH and not any(
            np.may_share_memory(out, x) for out in outputs for x in inputs)


@dataclass(frozen=True)
class Tasks:
    """How the task runners of :mod:`.cpu_tasks` compute an activation layer (see :func:`task_layout`).

    Attributes
    ----------
    runner : str
        The runners' name (``"node_major"``, ``"batch_major"`` or ``"tiled"``; ``_both``,
        ``_params`` and ``_backward_params`` name the others).
    block : str
        The formula functions they call (``"node_block"``, ``"row_block"``, ``"nodes_block"``).
    formula_ids : numpy.ndarray of int64
        The formula of each entry of the runners' ``kernels`` table (a node, run or group).
    dispatch : tuple of numpy.ndarray
        The runners' arguments between ``offsets`` and ``kernels``.
    columns : Columns
        The columns of the parameter-gradient runners' ``partials``.
    column_starts : numpy.ndarray of int64
        The summing runners' ``columns`` argument: where each node's (or run's) columns start.
    grouped : GroupedTasks or None
        A node-major layer's tasks for short rows.
    period : LayerPlan or None
        A batch-major layer whose formulas repeat every P nodes: the formulas of one period (its
        runners call the functions of the period's module; see :func:`task_layout`).
    """

    runner: str
    block: str
    formula_ids: np.ndarray
    dispatch: tuple[np.ndarray, ...]
    columns: Columns
    column_starts: np.ndarray
    grouped: GroupedTasks | None = None
    period: LayerPlan | None = None

    def modules(self, plan: LayerPlan) -> list[tuple[str, ModuleType, str]]:
        """The modules whose functions the runners' ``kernels`` tables address (``formula_ids``
        index this list): the formulas' modules, or the period's. What each computes (for error
        messages), the module, its source text."""
        if self.period is not None:
            return [(period_label(self.period), *periodic_module(self.period))]
        return [(repr(key.label), *formula_module(key, "activation")) for key in plan.formulas]

    @property
    def blocks(self) -> tuple[str, ...]:
        """The formula modules' functions the runners call: ``block``, and ``nodes_block`` for the
        grouped tasks (none for a periodic layer: its module is the period's)."""
        if self.period is not None:
            return ()
        return (self.block,) + (("nodes_block",) if self.grouped is not None else ())

    @property
    def samples(self) -> int:
        """Samples per task."""
        return ROWS if self.runner == "batch_major" else cpu_tasks.TASK_TILES[self.runner][0]

    @property
    def nodes(self) -> int:
        """Nodes per task; 0: a task per run (batch_major)."""
        return 0 if self.runner == "batch_major" else cpu_tasks.TASK_TILES[self.runner][1]

    @property
    def runs(self) -> int:
        """Entries of the ``kernels`` table: batch_major's tasks per block of samples (one per run)."""
        return self.formula_ids.size

    def grid(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The number of tasks for arrays of ``shape``, and of their blocks of samples (the rows of
        a parameter-gradient ``partials``)."""
        n, b = shape[::-1] if self.runner != "node_major" else shape
        return cpu_tasks.task_grid(n, b, self.samples, self.nodes, self.runs)


def task_layout(plan: LayerPlan, layout: str) -> Tasks:
    """Which task runners of :mod:`.cpu_tasks` compute an activation layer in ``layout``.

    ``"node_major"``; ``"batch_major"`` with the runs (start, stop) of neighbouring same-formula
    nodes; for a batch-major layer whose runs are shorter than SHORT_RUNS on average (formulas
    interleaved: a run of one node cannot fill a vector), ``"batch_major"`` with one run of all the
    nodes and the module of the layer's period if its formulas repeat every few nodes
    (:func:`_period`), else ``"tiled"``: computed node-major tile by tile with the tile plan of
    :func:`.cpu_tasks.tile_plan`.

    A periodic module (codegen ``"periodic"``) takes each row a block at a time: split into one
    row per position of the period in registers (``mathlib.interleaved``), every position's formula
    in one loop over the block, the results merged back. W1 at 4096 x 512 float32, one thread:
    forward 0.88-0.95 ms where the tiles took 1.8-2.1 (node-major 0.78-0.83), backward 1.0-1.2
    against 2.4-2.5 (node-major 0.95-1.1).
    """
    func_ids = np.asarray(plan.func_ids, dtype=np.int64)
    counts = np.asarray(plan.constants_per_node(), dtype=np.int64)
    per_node = Columns.per_node(counts), np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    if layout != "batch_major":
        return Tasks("node_major", "node_block", func_ids, (), *per_node, grouped=GroupedTasks.of(func_ids))
    start, stop, run_ids = _segments(func_ids, SEGMENT)
    if plan.n_nodes < SHORT_RUNS * len(start):
        period = _period(plan)
        if period:
            keys = tuple(plan.formulas[f] for f in func_ids[:period])
            columns = _periodic_columns(keys, plan.n_nodes)
            return Tasks("batch_major", "row_block", np.zeros(1, dtype=np.int64),
                         (np.zeros(1, dtype=np.int64), np.full(1, plan.n_nodes, dtype=np.int64)), columns,
                         np.array([0, columns.size], dtype=np.int64),
                         period=LayerPlan("activation", keys, tuple(range(period)), ((),) * period))
        *plan_arrays, group_ids = cpu_tasks.tile_plan(func_ids)
        return Tasks("tiled", "nodes_block", group_ids, tuple(plan_arrays), *per_node)
    run_counts = counts[start]
    return Tasks("batch_major", "row_block", run_ids, (start, stop), Columns.per_run(start, stop, run_counts),
                 np.concatenate(([0], np.cumsum(run_counts * (stop - start)))).astype(np.int64))


def _periodic_columns(keys: tuple[FormulaKey, ...], n_nodes: int) -> Columns:
    """The columns of a periodic module's sums (``keys``: the period's formulas): position by
    position, each position's constants in order, each constant's nodes in order."""
    period = len(keys)
    nodes = [np.arange(k, n_nodes, period, dtype=np.int64) for k, key in enumerate(keys) for _ in key.constants]
    constants = [np.full(n_nodes // period, c, dtype=np.int64) for key in keys for c in range(len(key.constants))]
    if not nodes:
        return Columns(np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Columns(np.concatenate(nodes), np.concatenate(constants))


def _period(plan: LayerPlan) -> int:
    """The shortest P, 2 <= P <= MAX_PERIOD, such that node j has the formula of node j % P, the
    layer is at least PERIOD_REPEATS whole periods and a row splits with at most MAX_SHUFFLES
    shuffles per vector; 0 if there is none."""
    func_ids = np.asarray(plan.func_ids, dtype=np.int64)
    n = func_ids.size
    for period in range(2, min(MAX_PERIOD, n // PERIOD_REPEATS) + 1):
        if n % period or interleaved.shuffles_per_vector(period) > MAX_SHUFFLES:
            continue
        if np.array_equal(func_ids.reshape(-1, period), np.tile(func_ids[:period], (n // period, 1))):
            return period
    return 0


def numba_kernels(plan: LayerPlan, layout: str) -> Any:
    """The layer's kernels as njit functions for the user's njit code: see :mod:`.cpu_numba`."""
    from .cpu_numba import layer_kernels

    return layer_kernels(plan, layout)


# -- the summing kinds: parameter gradients ------------------------------------------------------------

def _with_param_kernels(kernels: Kernels, extra: tuple[Callable[..., None], Callable[..., None],
                                                        Callable[[Sequence[Any]], None]]) -> Kernels:
    """``kernels`` with the parameter-gradient kernels, whose ``warm_up`` joins the layer's."""
    kernels.param_backward, kernels.backward_with_params, warm_up_params = extra
    warm_up_layer = kernels.warm_up

    def warm_up(dtypes: Sequence[Any]) -> None:
        warm_up_layer(dtypes)
        warm_up_params(dtypes)

    kernels.warm_up = warm_up
    return kernels


def _param_kernels(plan: LayerPlan, layout: str, tasks: Tasks, modules: list[tuple[str, ModuleType]]) -> tuple:
    """``param_backward_kernel``, ``backward_with_params_kernel`` and their warm-up, for an activation layer.

    Compiled (or loaded) at their first call or ``warm_up``, not when the layer is built: a layer
    trained without them pays nothing. Tasks are those of the other kernels (``tasks``, see
    :func:`task_layout`), a fixed set for a shape; each writes its float64 sums into its own row
    and columns of ``partials``, added in a fixed order by :mod:`.param_sums`.
    """
    functions = tuple(f"{block}{suffix}" for block in tasks.blocks for suffix in ("_params", "_backward_params"))
    paths = [_Paths(tasks, modules, suffix) for suffix in ("_params", "_backward_params")]

    def compile_all(dtype: np.dtype) -> None:
        for path in paths:
            path.compile(dtype)

    readiness = _Readiness(lambda dtypes: _compile_ahead(plan.formulas, "activation", functions, dtypes),
                           compile_all, f"the parameter-gradient kernels of this layer ({_count_formulas(plan)})")

    def run(which: int, z, err, delta, grad_params, params, offsets):
        readiness.ensure(z.dtype)
        partials = np.empty((tasks.grid(z.shape)[1], tasks.columns.size), dtype=np.float64)
        outputs = () if delta is None else (delta,)
        paths[which].run(z, (z, err), outputs, z, err, *outputs, params, offsets, tail=(tasks.column_starts, partials))
        tasks.columns.combine(partials, offsets, grad_params)

    def run_params(z, err, grad_params, params, offsets):
        run(0, z, err, None, grad_params, params, offsets)

    def run_backward_params(z, err, delta, grad_params, params, offsets):
        run(1, z, err, delta, grad_params, params, offsets)

    return (*wrap_param_activation(plan, layout, run_params, run_backward_params), readiness.warm_up)


def _loss_param_kernels(plan: LayerPlan, module: ModuleType) -> tuple:
    """A loss's ``param_backward_kernel``, ``backward_with_params_kernel`` and their warm-up
    (compiled at their first call or ``warm_up``); tasks of BLOCK elements, as the other loss kernels."""
    key = plan.formulas[0]
    functions = ("loss_params", "loss_backward_params")
    what = f"the loss {key.label!r}"
    kernels = [_Kernel(getattr(module, name), what) for name in functions]
    columns = Columns.per_node(np.asarray([len(key.constants)], dtype=np.int64))
    offsets = np.zeros(1, dtype=np.int64)

    def compile_all(dtype: np.dtype) -> None:
        for kernel in kernels:
            kernel(dtype)

    readiness = _Readiness(lambda dtypes: _compile_ahead((key,), "loss", functions, dtypes), compile_all,
                           f"the parameter gradients of {what}")

    costs = [defaultdict(CallCost), defaultdict(CallCost)]

    def run(which: int, y_pred, y_true, grad, grad_params, params):
        dtype = np.asarray(y_pred).dtype
        readiness.ensure(dtype)
        size = int(np.prod(np.shape(y_pred)))
        tasks = -(-size // BLOCK)
        partials = np.empty((tasks, columns.size), dtype=np.float64)
        outputs = () if grad is None else (grad.reshape(-1),)
        _pool.run(kernels[which].runner(dtype), tasks, size, y_pred.reshape(-1), y_true.reshape(-1), *outputs, params,
                  partials, cost=costs[which][dtype])
        columns.combine(partials, offsets, grad_params)

    return (*wrap_param_loss(plan, lambda p, t, gp, c: run(0, p, t, None, gp, c), lambda p, t, g, gp, c:
                             run(1, p, t, g, gp, c)), readiness.warm_up)
