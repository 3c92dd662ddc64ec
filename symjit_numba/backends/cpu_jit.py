"""CPU_JIT: generated kernel modules compiled with ``numba.njit``, run on every core.

No system C compiler is involved: numba compiles through the LLVM that ships in llvmlite's wheel.

Compilation. Each formula has its own module (:mod:`symjit_numba.codegen.source`), compiled per
dtype at first use and shared by every layer that uses the formula; the named formulas' modules
ship with the package, so numba compiles them once per installation. A layer compiles nothing of
its own: it is a table of the addresses of its nodes' formula functions, which the fixed task
runners of :mod:`.cpu_tasks` call. W1 (8 named formulas) thus builds in about 0.17 s instead of
the 2.1 s that one generated kernel with all eight formulas took to compile in each new cache.

Parallelism. The kernels are serial ``nogil`` functions over a range of tasks (a task is one node's
block of the batch, or a block of a loss's elements); :class:`TaskPool` splits the task range over
``settings.num_threads`` threads, which run truly in parallel because numba released the GIL.
We measured numba's own ``parallel=True`` on W1 (8 formulas, forward and backward): 7.0 s of
compilation against 2.4 s for the same serial kernel, because its parfor passes re-type and
re-optimise the whole loop body. Running our own threads also means no numba threading layer is
involved, so kernels may be called from any number of Python threads at once: there is no
``workqueue`` layer to abort the process, and nothing global to pin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import Any

import numba  # noqa: F401 - imported with the package, not inside the first constructor call
import numpy as np

from ..codegen.source import BLOCK, ROWS
from ..errors import JITCompilationError
from ..formulas.resolve import FormulaKey, LayerPlan
from ..settings import settings
from . import cpu_tasks
from .cache import compile_cached, load_kernel_module, load_named_module
from .kernels import Kernels, wrap_activation, wrap_loss

__all__ = ["build", "TaskPool", "SEGMENT"]

METHOD = "CPU_JIT"
#: Longest run of neighbouring same-formula nodes handled as one inner loop (batch-major layout).
SEGMENT = 1024
#: Below this many elements a call runs on the calling thread alone: waking threads costs more.
SERIAL_BELOW = 32_768
#: A batch-major layer whose runs of same-formula nodes are shorter than this on average is
#: transposed to node-major, computed there, and transposed back: a run of one node (formulas
#: interleaved) cannot fill a vector, while a transpose costs about two copies.
SHORT_RUNS = 8


class TaskPool:
    """Runs ``kernel(first, last, ...)`` over task ranges on ``settings.num_threads`` threads.

    The calling thread runs the first range itself and waits for the others; pool threads never
    wait on the pool, so nested or concurrent calls from many Python threads cannot deadlock.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._size = 0
        self._lock = threading.Lock()

    def _pool(self, threads: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._size < threads:
                self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="symjit_numba")
                self._size = threads
            return self._executor

    def run(self, kernel: Callable[..., None], n_tasks: int, elements: int, *args: object) -> None:
        threads = min(settings.num_threads, n_tasks) if elements >= SERIAL_BELOW else 1
        if threads <= 1:
            kernel(0, n_tasks, *args)
            return
        bounds = [n_tasks * k // threads for k in range(threads + 1)]
        pool = self._pool(threads - 1)
        futures: list[Future] = [pool.submit(kernel, bounds[k], bounds[k + 1], *args) for k in range(1, threads)]
        kernel(bounds[0], bounds[1], *args)
        for future in futures:
            future.result()


_pool = TaskPool()


def _segments(func_ids: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of neighbouring nodes with the same formula, each at most ``longest`` nodes."""
    starts = [0]
    for k in range(1, len(func_ids)):
        if func_ids[k] != func_ids[k - 1] or k - starts[-1] >= longest:
            starts.append(k)
    start = np.asarray(starts, dtype=np.int64)
    stop = np.append(start[1:], len(func_ids)).astype(np.int64)
    return start, stop, func_ids[start].copy()


def _transposed(source: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """``source.T`` as a C-contiguous array (into ``target`` if given), on the task pool."""
    if target is None:
        target = np.empty(source.shape[::-1], dtype=source.dtype)
    rows, cols = source.shape
    tiles = -(-rows // cpu_tasks.TILE) * -(-cols // cpu_tasks.TILE)
    _pool.run(_transpose(source.dtype), tiles, source.size, source, target)
    return target


#: Argument types of each compiled function, for scalar type ``t``: C-contiguous arrays, as the
#: backend passes them (``B`` the backward flag; ``I`` an int64; ``INDEX`` an int64 vector).
_B, _I, _INDEX = numba.boolean, numba.int64, numba.int64[::1]
_ARGUMENTS: dict[str, Callable[[Any], tuple]] = {
    # a formula's functions (codegen.source): (backward,) arrays, params, then where to work
    "node_block": lambda t: (_B,) + (t[::1],) * 3 + (t[::1], _I),
    "node_block_both": lambda t: (t[::1],) * 3 + (t[::1], _I),
    "row_block": lambda t: (_B,) + (t[:, ::1],) * 3 + (t[::1], _INDEX) + (_I,) * 4,
    "row_block_both": lambda t: (t[:, ::1],) * 3 + (t[::1], _INDEX) + (_I,) * 4,
    # the task runners (cpu_tasks): first, last, (backward,) arrays, params, offsets, dispatch, kernels
    "node_major": lambda t: (_I, _I, _B) + (t[:, ::1],) * 3 + (t[::1], _INDEX, _INDEX),
    "node_major_both": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1], _INDEX, _INDEX),
    "batch_major": lambda t: (_I, _I, _B) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 4,
    "batch_major_both": lambda t: (_I, _I) + (t[:, ::1],) * 3 + (t[::1],) + (_INDEX,) * 4,
    # a loss module: first, last, (backward,) y_pred, y_true, outputs, params
    "loss": lambda t: (_I, _I, _B) + (t[::1],) * 4,
    "loss_both": lambda t: (_I, _I) + (t[::1],) * 5,
    "transpose_tiles": lambda t: (_I, _I, t[:, ::1], t[:, ::1]),
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
        result = self(dtype).overloads[self._arguments(numba.from_dtype(dtype))]
        address = result.library.get_pointer_to_function(result.fndesc.llvm_cfunc_wrapper_name)
        if not address:  # never call through a null pointer: e.g. a numba that stopped making C wrappers
            raise JITCompilationError(f"numba compiled {self._what} for {dtype} without a C wrapper to call")
        return address


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


_transpose = _Kernel(cpu_tasks.transpose_tiles, "a transpose")


def _formula_module(key: FormulaKey, mode: str) -> tuple[ModuleType, str]:
    """The numba module of one formula (an activation's task functions, or a loss's kernels), and its text.

    A named formula's module ships with the package; any other is generated into the cache.
    """
    from ..codegen.prebuilt import formula_module_source, named_module

    name = named_module(key, mode)
    shipped = None if name is None else load_named_module(name)
    if shipped is not None:
        return shipped
    try:  # SymPy runs in formula_module_source for formulas that are not named ones, on a cache miss only
        return load_kernel_module(LayerPlan(mode, (key,), (0,), ((),)), "numba", "node_major",
                                  lambda: formula_module_source(key, mode))
    except Exception as error:  # e.g. numba refusing a decorator option while the module is imported
        if type(error).__module__.startswith("symjit_numba"):
            raise
        raise JITCompilationError(f"the kernel module of {key.label!r} could not be loaded: "
                                  f"{type(error).__name__}: {str(error)[:2000]}") from error


def _build_loss(plan: LayerPlan) -> Kernels:
    module, text = _formula_module(plan.formulas[0], "loss")
    what = f"the loss {plan.formulas[0].label!r}"
    kernel, kernel_both = _Kernel(module.loss, what), _Kernel(module.loss_both, what)
    kernel(np.dtype(np.float32))  # now, so that failures surface in the constructor; the others at first use

    def run_loss(backward: bool) -> Callable[..., None]:
        def run(y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, params: np.ndarray) -> None:
            size = out.size
            _pool.run(kernel(out.dtype), -(-size // BLOCK), size, backward,
                      y_pred.reshape(-1), y_true.reshape(-1), out.reshape(-1), params)
        return run

    def run_loss_both(y_pred: np.ndarray, y_true: np.ndarray, res: np.ndarray, grad: np.ndarray,
                      params: np.ndarray) -> None:
        size = res.size
        _pool.run(kernel_both(res.dtype), -(-size // BLOCK), size,
                  y_pred.reshape(-1), y_true.reshape(-1), res.reshape(-1), grad.reshape(-1), params)

    return Kernels(METHOD, *wrap_loss(plan, run_loss(False), run_loss(True), run_loss_both), source=text)


def build(plan: LayerPlan, layout: str = "node_major", device_id: int = 0) -> Kernels:
    """Build CPU_JIT kernels for a resolved layer; raises JITCompilationError if numba fails.

    Each formula's module is compiled (or loaded) once and shared by every layer that uses it; the
    layer itself is a table of addresses for the task runners of :mod:`.cpu_tasks`.
    """
    if plan.mode == "loss":
        return _build_loss(plan)
    func_ids = np.asarray(plan.func_ids, dtype=np.int64)
    kernel_layout = layout
    if layout == "batch_major":
        runs = _segments(func_ids, SEGMENT)
        if plan.n_nodes < SHORT_RUNS * len(runs[0]):
            kernel_layout = "node_major"
    modules = [_formula_module(key, "activation") for key in plan.formulas]
    block = "node_block" if kernel_layout == "node_major" else "row_block"
    kernels = [_Kernel(getattr(module, block), repr(key.label)) for key, (module, _) in zip(plan.formulas, modules)]
    kernels_both = [_Kernel(getattr(module, f"{block}_both"), repr(key.label))
                    for key, (module, _) in zip(plan.formulas, modules)]
    runner = _Kernel(getattr(cpu_tasks, kernel_layout), "the task runner")
    runner_both = _Kernel(getattr(cpu_tasks, f"{kernel_layout}_both"), "the task runner")
    if kernel_layout == "node_major":
        dispatch: tuple[np.ndarray, ...] = ()
        addresses, addresses_both = _Addresses(kernels, func_ids), _Addresses(kernels_both, func_ids)

        def n_tasks(z: np.ndarray) -> int:
            return z.shape[0] * -(-z.shape[1] // BLOCK)
    else:
        start, stop, run_ids = runs
        dispatch = (start, stop)
        addresses, addresses_both = _Addresses(kernels, run_ids), _Addresses(kernels_both, run_ids)

        def n_tasks(z: np.ndarray) -> int:
            return -(-z.shape[0] // ROWS) * len(start)

    float32 = np.dtype(np.float32)
    addresses(float32), runner(float32)  # now, so that failures surface in the constructor; the others at first use

    def run_forward(z, a, params, offsets):
        _pool.run(runner(z.dtype), n_tasks(z), z.size, False, z, z, a, params, offsets, *dispatch,
                  addresses(z.dtype))

    def run_backward(z, err, delta, params, offsets):
        _pool.run(runner(z.dtype), n_tasks(z), z.size, True, z, err, delta, params, offsets, *dispatch,
                  addresses(z.dtype))

    def run_both(z, a, d, params, offsets):
        _pool.run(runner_both(z.dtype), n_tasks(z), z.size, z, a, d, params, offsets, *dispatch,
                  addresses_both(z.dtype))

    text = "\n\n".join(text for _, text in modules)
    if layout == kernel_layout:
        return Kernels(METHOD, *wrap_activation(plan, layout, run_forward, run_backward, run_both), source=text)

    # Batch-major arrays, node-major kernel: transpose in and out. Separate output buffers: with the
    # output aliasing an input, LLVM's runtime alias check sends the loop down its scalar version.
    def run_forward_transposed(z, a, params, offsets):
        zt = _transposed(z)
        at = np.empty_like(zt)
        run_forward(zt, at, params, offsets)
        _transposed(at, a)

    def run_backward_transposed(z, err, delta, params, offsets):
        zt, et = _transposed(z), _transposed(err)
        dt = np.empty_like(zt)
        run_backward(zt, et, dt, params, offsets)
        _transposed(dt, delta)

    def run_both_transposed(z, a, d, params, offsets):
        zt = _transposed(z)
        at, dt = np.empty_like(zt), np.empty_like(zt)
        run_both(zt, at, dt, params, offsets)
        _transposed(at, a)
        _transposed(dt, d)

    return Kernels(METHOD, *wrap_activation(plan, layout, run_forward_transposed, run_backward_transposed,
                                            run_both_transposed), source=text)
