"""CPU_JIT: the generated kernel module compiled with ``numba.njit(parallel=True)``.

No system C compiler is involved: numba compiles through the LLVM that ships in llvmlite's wheel.

Threads. numba's ``workqueue`` threading layer aborts the process when two Python threads launch
parallel kernels at once. Unless the user chose a layer (``NUMBA_THREADING_LAYER``), we ask for a
thread-safe one (``omp`` or ``tbb``); if neither can be loaded, numba falls back to ``workqueue`` and
every launch here takes a lock, so concurrent callers wait instead of crashing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np

from .. import __version__
from ..errors import JITCompilationError
from ..formulas.resolve import LayerPlan
from .cache import load_kernel_module
from .kernels import Kernels, wrap_activation, wrap_loss

__all__ = ["build", "threading_layer"]

METHOD = "CPU_JIT"
#: Longest run of neighbouring same-formula nodes handled as one inner loop (batch-major layout).
SEGMENT = 1024
_launch_lock = threading.Lock()
_layer: str | None = None


def _choose_threading_layer() -> None:
    import numba

    if not os.environ.get("NUMBA_THREADING_LAYER"):
        numba.config.THREADING_LAYER = "threadsafe"


def threading_layer() -> str | None:
    """The numba threading layer in use, or None before the first parallel launch."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return None


def _launcher(kernel: Callable[..., None]) -> Callable[..., None]:
    """Call ``kernel``, serialised by a lock if numba ended up on the non-thread-safe workqueue."""

    def launch(*args: object) -> None:
        global _layer
        if _layer is None:
            with _launch_lock:  # the first launch picks the layer; let exactly one thread do it
                try:
                    kernel(*args)
                except ValueError as error:
                    if "threading layer" not in str(error):
                        raise
                    import numba

                    numba.config.THREADING_LAYER = "workqueue"
                    kernel(*args)
                _layer = threading_layer()
            return
        guard = _launch_lock if _layer == "workqueue" else contextlib.nullcontext()
        with guard:
            kernel(*args)

    return launch


def _segments(func_ids: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of neighbouring nodes with the same formula, each at most ``longest`` nodes."""
    starts = [0]
    for k in range(1, len(func_ids)):
        if func_ids[k] != func_ids[k - 1] or k - starts[-1] >= longest:
            starts.append(k)
    start = np.asarray(starts, dtype=np.int64)
    stop = np.append(start[1:], len(func_ids)).astype(np.int64)
    return start, stop, func_ids[start].copy()


def _precompile(module: ModuleType, plan: LayerPlan, layout: str) -> None:
    """Compile (or load from numba's cache) the float32 kernels now, so failures surface here."""
    from numba import boolean, float32, int64

    vector, matrix, index = float32[::1], float32[:, ::1], int64[::1]
    if plan.mode == "loss":
        module.loss.compile((boolean, vector, vector, vector, vector))
        return
    dispatch = (index,) if layout == "node_major" else (index, index, index)
    module.activation.compile((boolean, matrix, matrix, matrix, vector, index, *dispatch))


def build(plan: LayerPlan, layout: str = "node_major", device_id: int = 0) -> Kernels:
    """Build CPU_JIT kernels for a resolved layer; raises JITCompilationError if numba fails."""
    _choose_threading_layer()

    def generate():  # only on a cache miss: this is where SymPy runs
        from ..codegen.source import generate_source
        from ..formulas.resolve import build_formula

        built = [build_formula(key, plan.mode) for key in plan.formulas]
        return generate_source(built, plan.mode, "numba", layout, __version__)

    try:
        module, text = load_kernel_module(plan, "numba", layout, generate)
        _precompile(module, plan, layout)
    except JITCompilationError:
        raise
    except Exception as error:  # numba reports typing and lowering problems with many exception types
        if type(error).__module__.startswith("symjit_numba"):
            raise
        labels = ", ".join(repr(k.label) for k in plan.formulas)
        raise JITCompilationError(f"numba could not compile the kernels for {labels}: "
                                  f"{type(error).__name__}: {str(error)[:2000]}") from error

    forward, backward = _launcher(module.forward), _launcher(module.backward)
    if plan.mode == "loss":
        def run_forward(y_pred, y_true, res, params):
            forward(y_pred.reshape(-1), y_true.reshape(-1), res.reshape(-1), params)

        def run_backward(y_pred, y_true, grad, params):
            backward(y_pred.reshape(-1), y_true.reshape(-1), grad.reshape(-1), params)

        return Kernels(METHOD, *wrap_loss(plan, run_forward, run_backward), source=text)

    func_ids = np.asarray(plan.func_ids, dtype=np.int64)
    dispatch = (func_ids,) if layout == "node_major" else _segments(func_ids, SEGMENT)

    def run_forward(z, a, params, offsets):
        forward(z, a, params, offsets, *dispatch)

    def run_backward(z, err, delta, params, offsets):
        backward(z, err, delta, params, offsets, *dispatch)

    return Kernels(METHOD, *wrap_activation(plan, layout, run_forward, run_backward), source=text)
