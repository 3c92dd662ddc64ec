"""CPU_JIT: the generated kernel module compiled with ``numba.njit``, run on every core.

No system C compiler is involved: numba compiles through the LLVM that ships in llvmlite's wheel.

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

from .. import __version__
from ..errors import JITCompilationError
from ..formulas.resolve import LayerPlan
from ..settings import settings
from .cache import compile_cached, load_kernel_module
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
TILE = 64


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


@numba.njit(nogil=True, cache=True)
def _transpose_tiles(first, last, source, target):  # pragma: no cover - compiled
    """target = source.T for tiles first..last-1 of TILE x TILE elements (rows of tiles first)."""
    rows, cols = source.shape
    tile_cols = (cols + TILE - 1) // TILE
    for tile in range(first, last):
        r0 = (tile // tile_cols) * TILE
        c0 = (tile - (tile // tile_cols) * tile_cols) * TILE
        for c in range(c0, min(c0 + TILE, cols)):  # write along target's rows, read down a tile
            for r in range(r0, min(r0 + TILE, rows)):
                target[c, r] = source[r, c]


def _transposed(source: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """``source.T`` as a C-contiguous array (into ``target`` if given), on the task pool."""
    if target is None:
        target = np.empty(source.shape[::-1], dtype=source.dtype)
    rows, cols = source.shape
    tiles = -(-rows // TILE) * -(-cols // TILE)
    _pool.run(_transpose(source.dtype), tiles, source.size, source, target)
    return target


class _Kernel:
    """A numba kernel compiled, or loaded from numba's cache, for each dtype before its first run.

    ``arguments(scalar_type)`` gives its argument types for a dtype: C-contiguous writable arrays, as
    the backend passes them (other array flags still work: numba then compiles for those itself).
    Failures become :class:`JITCompilationError` naming ``what`` was compiled.
    """

    def __init__(self, dispatcher: Any, arguments: Callable[[Any], tuple], what: str) -> None:
        self._dispatcher = dispatcher
        self._arguments = arguments
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


_transpose = _Kernel(_transpose_tiles, lambda t: (numba.int64, numba.int64, t[:, ::1], t[:, ::1]), "a transpose")


def _plan_labels(plan: LayerPlan) -> str:
    return ", ".join(repr(k.label) for k in plan.formulas)


def _layer_kernels(module: ModuleType, plan: LayerPlan, layout: str) -> tuple[_Kernel, _Kernel]:
    """The module's two kernels: f or err * df (one flag), and f with df in one pass."""
    what = f"the kernels for {_plan_labels(plan)}"
    task, index = (numba.int64, numba.int64), numba.int64[::1]  # (first, last); offsets and formula ids
    if plan.mode == "loss":  # (y_pred, y_true, out, params) and (y_pred, y_true, res, grad, params)
        return (_Kernel(module.loss, lambda t: (*task, numba.boolean) + (t[::1],) * 4, what),
                _Kernel(module.loss_both, lambda t: task + (t[::1],) * 5, what))
    # (z, err, out, params, offsets, *dispatch) and (z, a, d, params, offsets, *dispatch)
    dispatch = (index,) if layout == "node_major" else (index, index, index)
    return (_Kernel(module.activation, lambda t: (*task, numba.boolean) + (t[:, ::1],) * 3 + (t[::1], index) + dispatch,
                    what),
            _Kernel(module.activation_both, lambda t: task + (t[:, ::1],) * 3 + (t[::1], index) + dispatch, what))


def build(plan: LayerPlan, layout: str = "node_major", device_id: int = 0) -> Kernels:
    """Build CPU_JIT kernels for a resolved layer; raises JITCompilationError if numba fails."""

    def generate():  # only on a cache miss: SymPy runs here for formulas that are not named ones
        from ..codegen.prebuilt import printed_formulas
        from ..codegen.source import generate_source

        return generate_source(printed_formulas(plan, "numba"), plan.mode, "numba", kernel_layout, __version__)

    segments = _segments(np.asarray(plan.func_ids, dtype=np.int64), SEGMENT)
    kernel_layout = layout
    if plan.mode == "activation" and layout == "batch_major" and plan.n_nodes < SHORT_RUNS * len(segments[0]):
        kernel_layout = "node_major"
    try:
        module, text = load_kernel_module(plan, "numba", kernel_layout, generate)
    except Exception as error:  # e.g. numba refusing a decorator option while the module is imported
        if type(error).__module__.startswith("symjit_numba"):
            raise
        raise JITCompilationError(f"the kernel module for {_plan_labels(plan)} could not be loaded: "
                                  f"{type(error).__name__}: {str(error)[:2000]}") from error
    kernel, kernel_both = _layer_kernels(module, plan, kernel_layout)
    kernel(np.dtype(np.float32))  # now, so that failures surface in the constructor; the others at first use

    if plan.mode == "loss":
        block = module.BLOCK

        def run_loss(backward: bool) -> Callable[..., None]:
            def run(y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, params: np.ndarray) -> None:
                size = out.size
                _pool.run(kernel(out.dtype), -(-size // block), size, backward,
                          y_pred.reshape(-1), y_true.reshape(-1), out.reshape(-1), params)
            return run

        def run_loss_both(y_pred: np.ndarray, y_true: np.ndarray, res: np.ndarray, grad: np.ndarray,
                          params: np.ndarray) -> None:
            size = res.size
            _pool.run(kernel_both(res.dtype), -(-size // block), size,
                      y_pred.reshape(-1), y_true.reshape(-1), res.reshape(-1), grad.reshape(-1), params)

        return Kernels(METHOD, *wrap_loss(plan, run_loss(False), run_loss(True), run_loss_both), source=text)

    func_ids = np.asarray(plan.func_ids, dtype=np.int64)
    if kernel_layout == "node_major":
        dispatch: tuple[np.ndarray, ...] = (func_ids,)

        def n_tasks(z: np.ndarray) -> int:
            return z.shape[0] * -(-z.shape[1] // module.BLOCK)
    else:
        dispatch = segments

        def n_tasks(z: np.ndarray) -> int:
            return -(-z.shape[0] // module.ROWS) * len(dispatch[0])

    def run_forward(z, a, params, offsets):
        _pool.run(kernel(z.dtype), n_tasks(z), z.size, False, z, z, a, params, offsets, *dispatch)

    def run_backward(z, err, delta, params, offsets):
        _pool.run(kernel(z.dtype), n_tasks(z), z.size, True, z, err, delta, params, offsets, *dispatch)

    def run_both(z, a, d, params, offsets):
        _pool.run(kernel_both(z.dtype), n_tasks(z), z.size, z, a, d, params, offsets, *dispatch)

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
