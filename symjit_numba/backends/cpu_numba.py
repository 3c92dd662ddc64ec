"""A CPU_JIT layer's kernels as numba functions that a user's own ``@numba.njit`` code can call.

:meth:`SymbolicJITCompiler.numba_kernels() <symjit_numba.SymbolicJITCompiler.numba_kernels>` returns
them. Each is an ``njit`` function with the signature of the matching public kernel
(``forward(z, a, params, offset_list, n, b)`` ...). It calls the same task runners of
:mod:`.cpu_tasks` and the same formula functions (through the same address tables) as the public
kernels, so it gives the same bits (for a batch-major layer whose formulas repeat every few
nodes, the functions of its period's module). The layer's
tables (per dtype, built when numba types a call) are read through this process's addresses,
which the compiled code holds.

Threads: a call runs all its tasks on the calling thread, serially (no pool, no numba threading
layer): call the kernels of independent layers or batches from several threads (they release the
GIL when the caller is ``nogil``) or from a ``prange`` loop to use more cores.

Checks: at typing time, that the arrays have one float dtype (float32 or float64), are C-contiguous
and have the right number of dimensions; at run time, the shapes against ``n`` and ``b``, and that
every node's range ``offset_list[j]:offset_list[j] + count_j`` lies inside ``params`` (a
``ValueError`` otherwise). Not checked: overlapping arrays (only an output that *is* an input is
supported, as for the public kernels), and the values themselves.

Those addresses are valid in this process only: numba refuses to cache (``cache=True``) a function
that calls the activation kernels (it warns "Cannot cache ... dynamic globals") and compiles it in
each process instead. (A loss's kernels call its formula module directly and may be cached.)
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numba
import numpy as np
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from ..codegen.source import BLOCK
from ..formulas.resolve import LayerPlan
from . import cpu_tasks
from .param_sums import sum_columns as _combine

__all__ = ["NumbaKernels", "layer_kernels"]

#: What :meth:`~symjit_numba.SymbolicJITCompiler.numba_kernels` returns: njit functions with the
#: signatures of ``forward_kernel``, ``backward_kernel``, ``forward_derivative_kernel``,
#: ``param_backward_kernel`` and ``backward_with_params_kernel``.
NumbaKernels = namedtuple("NumbaKernels", ["forward", "backward", "forward_derivative", "param_backward",
                                           "backward_with_params"])

_OPTIONS = {"nogil": True, "error_model": "numpy"}


def _table_pointer(address: int) -> Any:
    """An intrinsic returning ``address`` (where a layer's address table lives) as a numba dynamic
    global: the compiled code reads the table from this process's memory, and numba never caches
    code that holds such an address (nor the functions that call it)."""

    @intrinsic
    def pointer(typingctx):
        def codegen(context, builder, signature, args):
            return context.add_dynamic_addr(builder, address, info="symjit_numba layer table")

        return types.voidptr(), codegen

    return pointer


@njit(**_OPTIONS)
def _table(pointer, size):  # pragma: no cover - compiled
    return numba.carray(pointer, size, np.int64)


def _float_arrays(names: tuple[str, ...], arrays: tuple[Any, ...], ndim: int, what: str) -> np.dtype:
    """The common dtype of ``arrays`` (numba types), or a TypingError naming the argument at fault."""
    dtype = None
    for name, array in zip(names, arrays):
        if not isinstance(array, types.Array):
            raise TypingError(f"{what}: {name} must be an array, got {array}")
        if array.ndim != ndim or array.layout != "C":
            raise TypingError(f"{what}: {name} must be a C-contiguous {ndim}-D array, got {array}")
        if array.dtype not in (types.float32, types.float64):
            raise TypingError(f"{what}: {name} must hold float32 or float64, got {array.dtype}")
        if dtype is None:
            dtype = array.dtype
        elif array.dtype != dtype:
            raise TypingError(f"{what}: all arrays must have one dtype; {name} is {array.dtype}, not {dtype}")
    return as_dtype(dtype)


def _index_array(offset_list: Any, what: str) -> None:
    if not (isinstance(offset_list, types.Array) and offset_list.ndim == 1
            and isinstance(offset_list.dtype, types.Integer)):
        raise TypingError(f"{what}: offset_list must be a 1-D integer array, got {offset_list}")


def _int64(offset_list):  # pragma: no cover - replaced by the overload inside njit code
    raise TypeError("only callable from njit code")


@overload(_int64, jit_options=_OPTIONS)
def _int64_overload(offset_list):
    """The offsets as a C-contiguous int64 array: the array itself, or a converted copy (unsigned
    values above the int64 range become negative, which the offsets check refuses)."""
    if offset_list.dtype == types.int64 and offset_list.layout == "C":
        return lambda offset_list: offset_list
    return lambda offset_list: np.ascontiguousarray(offset_list).astype(np.int64)


@njit(**_OPTIONS)
def _check_offsets(offsets, counts, params_size, n):  # pragma: no cover - compiled
    if n != counts.size:
        raise ValueError("n is not the layer's number of nodes")
    if offsets.size != counts.size:
        raise ValueError("offset_list must hold one offset per node")
    for j in range(counts.size):
        if offsets[j] < 0 or offsets[j] > params_size - counts[j]:
            raise ValueError("offset_list[j] + (node j's number of constants) is outside params")


@njit(**_OPTIONS)
def _check_shape(array, rows, cols):  # pragma: no cover - compiled
    if array.shape[0] != rows or array.shape[1] != cols:
        raise ValueError("array shape does not match n and b (node_major: (n, b); batch_major: (b, n))")


def _stub(name: str) -> Any:
    def stub(*args):  # pragma: no cover - replaced by the overload inside njit code
        raise TypeError(f"{name} is only callable through its njit wrapper")
    stub.__name__ = name
    return stub


def layer_kernels(plan: LayerPlan, layout: str) -> NumbaKernels:
    """The njit kernels of an activation layer or a loss (see the module's docstring)."""
    if plan.mode == "loss":
        return _loss_kernels(plan)
    return _activation_kernels(plan, layout)


def _activation_kernels(plan: LayerPlan, layout: str) -> NumbaKernels:
    from .cpu_jit import _Addresses, _Kernel, task_layout

    counts = np.asarray(plan.constants_per_node(), dtype=np.int64)
    tasks = task_layout(plan, layout)  # the backend's runners, so the same tasks and sums
    modules = tasks.modules(plan)
    tables = {suffix: _Addresses([_Kernel(getattr(module, tasks.block + suffix), what) for what, module, _ in modules],
                                 tasks.formula_ids)
              for suffix in ("", "_both", "_params", "_backward_params")}
    nodes, constants = tasks.columns.nodes, tasks.columns.constants
    n_columns = tasks.columns.size
    bounds, dispatch = tasks.column_starts, tasks.dispatch
    samples, nodes_per_task, runs = tasks.samples, tasks.nodes, tasks.runs
    task_grid = njit(**_OPTIONS)(cpu_tasks.task_grid)

    @njit(**_OPTIONS)
    def grid(n, b):  # pragma: no cover - compiled
        return task_grid(n, b, samples, nodes_per_task, runs)

    def setup(what: str, suffix: str, floats: dict[str, Any], params: Any, offset_list: Any,
              grad_params: Any = None) -> tuple[Any, int]:
        """Type checks, then where the dtype's address table is (its formula functions compiled or
        loaded now: numba types a call once per signature), and its size."""
        dtype = _float_arrays(tuple(floats), tuple(floats.values()), 2, what)
        _index_array(offset_list, what)
        for name, array in (("params", params), ("grad_params", grad_params)):
            if array is not None:
                _float_arrays((name,), (array,), 1, what)
                if as_dtype(array.dtype) != dtype:
                    raise TypingError(f"{what}: {name} must have the arrays' dtype {dtype}, got {array.dtype}")
        table = tables[suffix](dtype)  # kept alive by ``tables`` for as long as the layer's kernels exist
        return _table_pointer(int(table.ctypes.data)), table.size

    runner, runner_both = getattr(cpu_tasks, tasks.runner), getattr(cpu_tasks, f"{tasks.runner}_both")
    runner_params = getattr(cpu_tasks, f"{tasks.runner}_params")
    runner_backward_params = getattr(cpu_tasks, f"{tasks.runner}_backward_params")
    rows_first = layout == "batch_major"

    forward_stub, backward_stub, both_stub = _stub("forward"), _stub("backward"), _stub("forward_derivative")
    params_stub, backward_params_stub = _stub("param_backward"), _stub("backward_with_params")

    @overload(forward_stub, jit_options=_OPTIONS)
    def _forward(z, a, params, offset_list, n, b):
        pointer, size = setup("forward", "", {"z": z, "a": a}, params, offset_list)
        backward = False

        def impl(z, a, params, offset_list, n, b):
            t = _table(pointer(), size)
            rows, cols = (b, n) if rows_first else (n, b)
            _check_shape(z, rows, cols)
            _check_shape(a, rows, cols)
            offsets = _int64(offset_list)
            _check_offsets(offsets, counts, params.size, n)
            runner(0, grid(n, b)[0], backward, z, z, a, params, offsets, *dispatch, t)
        return impl

    @overload(backward_stub, jit_options=_OPTIONS)
    def _backward(z, err, delta, params, offset_list, n, b):
        pointer, size = setup("backward", "", {"z": z, "err": err, "delta": delta}, params, offset_list)
        backward = True

        def impl(z, err, delta, params, offset_list, n, b):
            t = _table(pointer(), size)
            rows, cols = (b, n) if rows_first else (n, b)
            _check_shape(z, rows, cols)
            _check_shape(err, rows, cols)
            _check_shape(delta, rows, cols)
            offsets = _int64(offset_list)
            _check_offsets(offsets, counts, params.size, n)
            runner(0, grid(n, b)[0], backward, z, err, delta, params, offsets, *dispatch, t)
        return impl

    @overload(both_stub, jit_options=_OPTIONS)
    def _both(z, a, d, params, offset_list, n, b):
        pointer, size = setup("forward_derivative", "_both", {"z": z, "a": a, "d": d}, params, offset_list)

        def impl(z, a, d, params, offset_list, n, b):
            t = _table(pointer(), size)
            rows, cols = (b, n) if rows_first else (n, b)
            _check_shape(z, rows, cols)
            _check_shape(a, rows, cols)
            _check_shape(d, rows, cols)
            offsets = _int64(offset_list)
            _check_offsets(offsets, counts, params.size, n)
            runner_both(0, grid(n, b)[0], z, a, d, params, offsets, *dispatch, t)
        return impl

    @overload(params_stub, jit_options=_OPTIONS)
    def _params(z, err, grad_params, params, offset_list, n, b):
        pointer, size = setup("param_backward", "_params", {"z": z, "err": err}, params, offset_list, grad_params)

        def impl(z, err, grad_params, params, offset_list, n, b):
            t = _table(pointer(), size)
            rows, cols = (b, n) if rows_first else (n, b)
            _check_shape(z, rows, cols)
            _check_shape(err, rows, cols)
            offsets = _int64(offset_list)
            _check_offsets(offsets, counts, params.size, n)
            n_tasks, blocks = grid(n, b)
            partials = np.empty((blocks, n_columns), dtype=np.float64)
            runner_params(0, n_tasks, z, err, params, offsets, *dispatch, t, bounds, partials)
            _combine(partials, offsets, nodes, constants, grad_params)
        return impl

    @overload(backward_params_stub, jit_options=_OPTIONS)
    def _backward_params(z, err, delta, grad_params, params, offset_list, n, b):
        pointer, size = setup("backward_with_params", "_backward_params", {"z": z, "err": err, "delta": delta}, params,
                        offset_list, grad_params)

        def impl(z, err, delta, grad_params, params, offset_list, n, b):
            t = _table(pointer(), size)
            rows, cols = (b, n) if rows_first else (n, b)
            _check_shape(z, rows, cols)
            _check_shape(err, rows, cols)
            _check_shape(delta, rows, cols)
            offsets = _int64(offset_list)
            _check_offsets(offsets, counts, params.size, n)
            n_tasks, blocks = grid(n, b)
            partials = np.empty((blocks, n_columns), dtype=np.float64)
            runner_backward_params(0, n_tasks, z, err, delta, params, offsets, *dispatch, t, bounds, partials)
            _combine(partials, offsets, nodes, constants, grad_params)
        return impl

    @njit(**_OPTIONS)
    def forward(z, a, params, offset_list, n, b):
        forward_stub(z, a, params, offset_list, n, b)

    @njit(**_OPTIONS)
    def backward(z, err, delta, params, offset_list, n, b):
        backward_stub(z, err, delta, params, offset_list, n, b)

    @njit(**_OPTIONS)
    def forward_derivative(z, a, d, params, offset_list, n, b):
        both_stub(z, a, d, params, offset_list, n, b)

    @njit(**_OPTIONS)
    def param_backward(z, err, grad_params, params, offset_list, n, b):
        params_stub(z, err, grad_params, params, offset_list, n, b)

    @njit(**_OPTIONS)
    def backward_with_params(z, err, delta, grad_params, params, offset_list, n, b):
        backward_params_stub(z, err, delta, grad_params, params, offset_list, n, b)

    return NumbaKernels(forward, backward, forward_derivative, param_backward, backward_with_params)


def _loss_kernels(plan: LayerPlan) -> NumbaKernels:
    """A loss's kernels: its module's functions called directly (no address tables), over flattened arrays."""
    from ..store import formula_module
    from .cpu_jit import _Kernel

    key = plan.formulas[0]
    module = formula_module(key, "loss")[0]
    what = f"the loss {key.label!r}"
    n_constants = len(key.constants)
    compiled = {name: _Kernel(getattr(module, name), what)
                for name in ("loss", "loss_both", "loss_params", "loss_backward_params")}
    loss, loss_both = module.loss, module.loss_both
    loss_params, loss_backward_params = module.loss_params, module.loss_backward_params
    nodes, constants = (np.zeros(n_constants, dtype=np.int64), np.arange(n_constants, dtype=np.int64))
    zero_offsets = np.zeros(1, dtype=np.int64)

    def setup(what: str, name: str, arrays: dict[str, Any], params: Any, grad_params: Any = None) -> None:
        if not isinstance(arrays["y_pred"], types.Array):
            raise TypingError(f"{what}: y_pred must be an array, got {arrays['y_pred']}")
        ndim = arrays["y_pred"].ndim
        dtype = _float_arrays(tuple(arrays), tuple(arrays.values()), ndim, what)
        for label, array in (("params", params), ("grad_params", grad_params)):
            if array is not None:
                _float_arrays((label,), (array,), 1, what)
                if as_dtype(array.dtype) != dtype:
                    raise TypingError(f"{what}: {label} must have the arrays' dtype {dtype}, got {array.dtype}")
        compiled[name](dtype)  # compiled (or loaded) now: numba types a call once per signature

    forward_stub, backward_stub, both_stub = _stub("forward"), _stub("backward"), _stub("forward_derivative")
    params_stub, backward_params_stub = _stub("param_backward"), _stub("backward_with_params")

    @njit(**_OPTIONS)
    def _check(y_pred, other, params):  # pragma: no cover - compiled
        if y_pred.shape != other.shape:
            raise ValueError("y_pred, y_true and the outputs must have one shape")
        if params.size < n_constants:
            raise ValueError("params is shorter than the loss's constants")

    @overload(forward_stub, jit_options=_OPTIONS)
    def _forward(y_pred, y_true, res, params):
        setup("forward", "loss", {"y_pred": y_pred, "y_true": y_true, "res": res}, params)

        def impl(y_pred, y_true, res, params):
            _check(y_pred, y_true, params)
            _check(y_pred, res, params)
            size = y_pred.size
            loss(0, (size + BLOCK - 1) // BLOCK, False, y_pred.reshape(-1), y_true.reshape(-1), res.reshape(-1),
                 params)
        return impl

    @overload(backward_stub, jit_options=_OPTIONS)
    def _backward(y_pred, y_true, grad, params):
        setup("backward", "loss", {"y_pred": y_pred, "y_true": y_true, "grad": grad}, params)

        def impl(y_pred, y_true, grad, params):
            _check(y_pred, y_true, params)
            _check(y_pred, grad, params)
            size = y_pred.size
            loss(0, (size + BLOCK - 1) // BLOCK, True, y_pred.reshape(-1), y_true.reshape(-1), grad.reshape(-1),
                 params)
        return impl

    @overload(both_stub, jit_options=_OPTIONS)
    def _both(y_pred, y_true, res, grad, params):
        setup("forward_derivative", "loss_both", {"y_pred": y_pred, "y_true": y_true, "res": res, "grad": grad}, params)

        def impl(y_pred, y_true, res, grad, params):
            _check(y_pred, y_true, params)
            _check(y_pred, res, params)
            _check(y_pred, grad, params)
            size = y_pred.size
            loss_both(0, (size + BLOCK - 1) // BLOCK, y_pred.reshape(-1), y_true.reshape(-1), res.reshape(-1),
                      grad.reshape(-1), params)
        return impl

    @overload(params_stub, jit_options=_OPTIONS)
    def _params(y_pred, y_true, grad_params, params):
        setup("param_backward", "loss_params", {"y_pred": y_pred, "y_true": y_true}, params, grad_params)

        def impl(y_pred, y_true, grad_params, params):
            _check(y_pred, y_true, params)
            size = y_pred.size
            tasks = (size + BLOCK - 1) // BLOCK
            partials = np.empty((tasks, n_constants), dtype=np.float64)
            loss_params(0, tasks, y_pred.reshape(-1), y_true.reshape(-1), params, partials)
            _combine(partials, zero_offsets, nodes, constants, grad_params)
        return impl

    @overload(backward_params_stub, jit_options=_OPTIONS)
    def _backward_params(y_pred, y_true, grad, grad_params, params):
        setup("backward_with_params", "loss_backward_params", {"y_pred": y_pred, "y_true": y_true, "grad": grad}, params, grad_params)

        def impl(y_pred, y_true, grad, grad_params, params):
            _check(y_pred, y_true, params)
            _check(y_pred, grad, params)
            size = y_pred.size
            tasks = (size + BLOCK - 1) // BLOCK
            partials = np.empty((tasks, n_constants), dtype=np.float64)
            loss_backward_params(0, tasks, y_pred.reshape(-1), y_true.reshape(-1), grad.reshape(-1), params, partials)
            _combine(partials, zero_offsets, nodes, constants, grad_params)
        return impl

    @njit(**_OPTIONS)
    def forward(y_pred, y_true, res, params):
        forward_stub(y_pred, y_true, res, params)

    @njit(**_OPTIONS)
    def backward(y_pred, y_true, grad, params):
        backward_stub(y_pred, y_true, grad, params)

    @njit(**_OPTIONS)
    def forward_derivative(y_pred, y_true, res, grad, params):
        both_stub(y_pred, y_true, res, grad, params)

    @njit(**_OPTIONS)
    def param_backward(y_pred, y_true, grad_params, params):
        params_stub(y_pred, y_true, grad_params, params)

    @njit(**_OPTIONS)
    def backward_with_params(y_pred, y_true, grad, grad_params, params):
        backward_params_stub(y_pred, y_true, grad, grad_params, params)

    return NumbaKernels(forward, backward, forward_derivative, param_backward, backward_with_params)
