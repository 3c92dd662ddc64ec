"""Argument checks shared by every backend, run before any compiled kernel touches memory.

Each check raises :class:`~symjit_numba.errors.KernelArgumentError` (a ``ValueError``) whose message
names the argument and says what to fix. Arrays are described through :class:`ArrayInfo`, so the
same checks serve numpy arrays and CUDA arrays (``__cuda_array_interface__``) alike.

Overlap. An output may be the very same array as an input (same first byte and shape: every array
is C-contiguous and of one dtype by then), which every kernel supports: each element's inputs are
read before its outputs are written, and CPU_PYTHON copies an input that two outputs overlap. Any
other sharing of memory between an output and another argument (inputs, the other output,
``params``, ``offset_list``) is refused: a shifted view would read values the same call already
overwrote, on some backends and not others.
"""

from __future__ import annotations

import functools
import math
import threading
from numbers import Integral
from typing import Any, NamedTuple

import numba
import numpy as np
from numba import types

from ..errors import KernelArgumentError
from ..store import compile_cached
from .cpu_tasks import _jit

__all__ = ["ArrayInfo", "describe", "check_activation_call", "check_loss_call", "check_grad_params",
           "activation_call_is_valid", "FLOAT_DTYPES"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INT64 = np.dtype(np.int64)


@_jit
def _first_bad_offset(offsets, counts, params_size):  # pragma: no cover - compiled
    """The first node whose range params[offsets[j] : offsets[j] + counts[j]] is not inside params, or -1."""
    for j in range(offsets.shape[0]):
        if offsets[j] < 0 or offsets[j] > params_size - counts[j]:
            return j
    return -1


@functools.cache
def _offsets_scan():
    """:func:`_first_bad_offset` compiled for writable C-contiguous int64 offsets and counts (the
    usual call: one pass instead of three numpy calls, 4 -> 1 us), loaded through
    :func:`~symjit_numba.store.compile_cached`: numba's own lookup would refresh its registries first
    (0.25 s of a warm start). It compiles nothing else: other arrays take the numpy steps."""
    compile_cached(_first_bad_offset, (types.int64[::1], types.int64[::1], types.int64))
    _first_bad_offset.disable_compile()
    return _first_bad_offset


# -- the quick check: one compiled predicate for the usual call ------------------------------------------------
#
# The checks below describe every argument in Python (9 us a forward call, 20 a backward one with the
# constants' gradients: most of a small layer's call). The usual call (numpy arrays of one float dtype,
# C-contiguous, writable, int64 offsets) is instead accepted by one compiled function that applies the
# same rules; anything it does not accept (another type, or a broken rule) goes through the full checks,
# which say what is wrong (or accept what the quick check does not know, e.g. int32 offsets).
# The torch glue relies on it too: it calls the public kernels.

@_jit
def _overlap_bytes(a, b):  # pragma: no cover - compiled
    """Whether two C-contiguous arrays share a byte (a zero-size array shares none)."""
    start_a, start_b = a.ctypes.data, b.ctypes.data
    return start_a < start_b + b.size * b.itemsize and start_b < start_a + a.size * a.itemsize


@_jit
def _quick(node_major, inputs, outputs, params, offsets, counts, n, b, grad, with_grad):  # pragma: no cover - compiled
    """True if an activation call with these arrays passes every check of :func:`check_activation_call`
    (and of :func:`check_grad_params` if ``with_grad``); False if any might fail. Their types (one
    float dtype, 2-D C-contiguous arrays, writable outputs, int64 offsets) are the signature's."""
    first = inputs[0]
    nodes, batch = (first.shape[0], first.shape[1]) if node_major else (first.shape[1], first.shape[0])
    if nodes != counts.shape[0] or n != nodes or b != batch or offsets.shape[0] != nodes:
        return False
    if _first_bad_offset(offsets, counts, params.shape[0]) >= 0:
        return False
    for x in inputs:
        if x.shape != first.shape:
            return False
    for x in outputs:
        if x.shape != first.shape:
            return False
    needed = 0  # one past the last params entry a node's constants occupy
    for j in range(nodes):
        if counts[j] > 0:
            needed = max(needed, offsets[j] + counts[j])
    if with_grad and (grad.shape[0] < needed or _overlap_bytes(grad, params) or _overlap_bytes(grad, offsets)):
        return False
    for x in inputs:
        if with_grad and _overlap_bytes(grad, x):
            return False
    for k in range(len(outputs)):
        out = outputs[k]
        if _overlap_bytes(out, params) or _overlap_bytes(out, offsets) or (with_grad and _overlap_bytes(out, grad)):
            return False
        for x in inputs:  # an input may be the very output (in place), nothing else of it
            if _overlap_bytes(out, x) and out.ctypes.data != x.ctypes.data:
                return False
        for i in range(k):
            if _overlap_bytes(out, outputs[i]):
                return False
    return True


#: (inputs, outputs) of the activation kernels with a quick check: forward, backward (with the constants'
#: gradients or not), forward_derivative. (param_backward has no 2-D output, which numba's tuples need.)
_ARITIES = ((1, 1), (2, 1), (1, 2))
_QUICK_READY: set = set()
_QUICK_LOCK = threading.Lock()
_NO_GRAD = {dtype: np.empty(0, dtype) for dtype in (np.dtype(np.float32), np.dtype(np.float64))}


def _quick_signature(dtype: np.dtype, inputs: int, outputs: int) -> tuple:
    t = numba.from_dtype(dtype)
    arrays = types.Array(t, 2, "C")
    return (types.boolean, types.UniTuple(arrays, inputs), types.UniTuple(arrays, outputs),
            types.Array(t, 1, "C"), types.int64[::1], types.int64[::1], types.int64, types.int64, types.Array(t, 1, "C"),
            types.boolean)


def activation_call_is_valid(node_major: bool, constants_per_node: np.ndarray, inputs: tuple, outputs: tuple,
                             params: Any, offset_list: Any, n: Any, b: Any, grad_params: Any = None) -> bool:
    """True if the call passes every check (the compiled quick check); False if it may not: then
    run the full checks, which raise with the reason, or pass it. Never raises."""
    first = inputs[0]
    if type(n) is not int or type(b) is not int or type(first) is not np.ndarray:
        return False
    key = (first.dtype, len(inputs), len(outputs))
    if key not in _QUICK_READY:
        if key[0] not in FLOAT_DTYPES or key[1:] not in _ARITIES:
            return False
        with _QUICK_LOCK:  # compiled (or loaded from the cache) per signature at its first use; never for
            _quick.disable_compile(False)  # other argument types (they raise TypeError instead)
            try:
                compile_cached(_quick, _quick_signature(*key))
                _QUICK_READY.add(key)
            finally:
                _quick.disable_compile(bool(_quick.signatures))
    with_grad = grad_params is not None
    try:
        return _quick(node_major, inputs, outputs, params, offset_list, constants_per_node, n, b,
                      grad_params if with_grad else _NO_GRAD[key[0]], with_grad)
    except TypeError:  # arguments of other types (read-only, strided, other dtypes...): the full checks
        return False


class ArrayInfo(NamedTuple):
    """What the checks need to know about an array, whatever library holds it (a named tuple:
    built on every kernel call, a third of the cost of a frozen dataclass)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    c_contiguous: bool
    writeable: bool
    address: int = 0  # first byte of a CUDA array (0: unknown, overlap not checked)
    nbytes: int = 0  # with address, the memory it spans (C-contiguous)
    # A numpy array itself: its address is read only where an overlap needs it (numpy builds the whole
    # __array_interface__ dict for that: 1 us, six times the rest of a description)
    host: np.ndarray | None = None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _address(info: ArrayInfo) -> int:
    return info.host.__array_interface__["data"][0] if info.host is not None else info.address


def _overlap(a: ArrayInfo, b: ArrayInfo) -> bool:
    """True if the two (C-contiguous) arrays share a byte; False if either address is unknown."""
    if a.host is not None and b.host is not None:
        return bool(np.may_share_memory(a.host, b.host))  # their bounds: exact for C-contiguous arrays
    start_a, start_b = _address(a), _address(b)
    if not (start_a and start_b):
        return False
    return start_a < start_b + b.nbytes and start_b < start_a + a.nbytes


def _same_array(a: ArrayInfo, b: ArrayInfo) -> bool:
    """Exactly the same elements: same first byte, shape and dtype (both are C-contiguous)."""
    return _address(a) == _address(b) and a.shape == b.shape and a.dtype == b.dtype


def check_overlap(arrays: dict[str, ArrayInfo], inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    """Refuse an output that shares memory with any other argument, except an input that is the very
    same array (the documented in-place call, e.g. ``forward_kernel(z, z, ...)``).

    ``arrays`` also holds the read-only arguments that are neither (``params``, ``offset_list``);
    read-only arguments may share memory with each other.
    """
    for k, out in enumerate(outputs):
        for other, info in arrays.items():
            if other == out or (other in outputs and outputs.index(other) < k):
                continue
            if not _overlap(arrays[out], info):
                continue
            if other in outputs:
                raise KernelArgumentError(f"{out} and {other} overlap in memory; the kernel writes both, "
                                          "so give each its own array")
            if other not in inputs:
                raise KernelArgumentError(f"output {out} shares memory with {other}, which the kernel reads while "
                                          f"it writes {out}: give {out} its own array")
            if not _same_array(arrays[out], info):
                raise KernelArgumentError(
                    f"output {out} partly overlaps input {other} (views of one buffer at different positions "
                    f"or shapes): the result would depend on the order of writes. In-place use is allowed "
                    f"only with the very same array (pass {other} as {out}); otherwise give {out} its own "
                    f"array (np.empty_like({other}))")
            # The very same array: in place, which every kernel supports.


def _cuda_info(interface: dict) -> ArrayInfo:
    shape = tuple(interface["shape"])
    dtype = np.dtype(interface["typestr"])
    strides = interface.get("strides")
    contiguous = strides is None or tuple(strides) == tuple(
        int(np.prod(shape[i + 1:], dtype=np.int64)) * dtype.itemsize for i in range(len(shape)))
    address, readonly = interface.get("data", (0, False))
    size = math.prod(shape)
    return ArrayInfo(shape, dtype, contiguous or size <= 1, not readonly, int(address or 0), size * dtype.itemsize)


def _is_numba_device_array(array: Any) -> bool:
    return all(hasattr(array, attribute) for attribute in ("copy_to_host", "shape", "dtype", "strides"))


def _simulator_address(array: Any) -> int:
    """The host memory behind a CUDA-simulator array (a numpy array in ``_ary``), else 0 (unknown)."""
    host = getattr(array, "_ary", None)
    return host.__array_interface__["data"][0] if isinstance(host, np.ndarray) else 0


def describe(name: str, array: Any, *, allow_cuda: bool = False) -> ArrayInfo:
    """Describe ``array`` or refuse it (a CPU backend takes numpy arrays only)."""
    if isinstance(array, np.ndarray):
        flags = array.flags
        return ArrayInfo(array.shape, array.dtype, flags.c_contiguous, flags.writeable, 0, array.nbytes, array)
    if allow_cuda and hasattr(array, "__cuda_array_interface__"):
        return _cuda_info(array.__cuda_array_interface__)
    if allow_cuda and _is_numba_device_array(array):  # the CUDA simulator's arrays have no interface
        info = {"shape": array.shape, "typestr": np.dtype(array.dtype).str, "strides": array.strides,
                "data": (_simulator_address(array), False)}
        return _cuda_info(info)
    wanted = "a numpy array or a CUDA array" if allow_cuda else "a numpy array"
    raise KernelArgumentError(f"{name} must be {wanted}, got {type(array).__name__}")


def _check_float_arrays(arrays: dict[str, ArrayInfo], outputs: tuple[str, ...]) -> np.dtype:
    dtypes = {name: info.dtype for name, info in arrays.items()}
    first = next(iter(dtypes.values()))
    if first not in FLOAT_DTYPES or len(set(dtypes.values())) != 1:
        listing = ", ".join(f"{k}={v}" for k, v in dtypes.items())
        raise KernelArgumentError(f"all arrays must share one dtype, float32 or float64; got {listing} "
                                  "(convert with .astype(np.float32) or np.float64)")
    for name, info in arrays.items():
        if not info.c_contiguous:
            raise KernelArgumentError(f"{name} must be C-contiguous (use np.ascontiguousarray({name}))")
    for name in outputs:
        if not arrays[name].writeable:
            raise KernelArgumentError(f"{name} is read-only; the kernel writes its result there")
    return first


def _check_count(name: str, value: Any, expected: int, noun: str, array: str, axis: int, layout: str) -> None:
    """``value`` must be the integer ``expected``: how many ``noun``-s ``array.shape[axis]`` holds."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise KernelArgumentError(f"{name} must be an integer (the number of {noun}s), got {type(value).__name__}")
    if int(value) != expected:
        where = f"{array}.shape[{axis}] in layout={layout!r}"
        raise KernelArgumentError(f"{name}={value} but the arrays hold {_plural(expected, noun)} "
                                  f"({'the batch size is ' if noun == 'sample' else ''}{where})")


#: Largest offset an int64 holds: an unsigned offset above it cannot be converted.
_INT64_MAX = int(np.iinfo(np.int64).max)


def check_offsets(offset_list: Any, n_nodes: int, constants_per_node: np.ndarray, params_size: int) -> np.ndarray:
    """Return the offsets as a contiguous int64 array, after checking every node's range is in params.

    Node j reads ``params[offset_list[j] : offset_list[j] + count_j]``. The check cannot wrap around
    for any integer dtype: offsets are compared with ``params_size - count_j`` (small numbers), never
    added to the counts, and unsigned offsets above the int64 range are refused before conversion.
    """
    offsets = offset_list if isinstance(offset_list, np.ndarray) else np.asarray(offset_list)
    if offsets.ndim != 1 or offsets.shape[0] != n_nodes:
        raise KernelArgumentError(f"offset_list must be 1-D with one offset per node ({n_nodes}), "
                                  f"got shape {offsets.shape}")
    if offsets.dtype.kind not in "iu":
        raise KernelArgumentError(f"offset_list must hold integers (int64, int32, or unsigned), got dtype {offsets.dtype}")
    if n_nodes == 0:
        return np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.dtype == _INT64 and offsets.flags.c_contiguous and offsets.flags.writeable:
        try:
            if _offsets_scan()(offsets, constants_per_node, params_size) < 0:
                return offsets  # the usual call: every range is inside params (the steps below say which is not)
        except TypeError:  # counts of another type (the scan compiles nothing new): the steps below
            pass
    if offsets.dtype.kind == "i" and offsets.min() < 0:
        node = int(np.argmin(offsets))
        raise KernelArgumentError(f"offset_list[{node}] = {int(offsets[node])} is negative")
    if offsets.dtype.kind == "u" and offsets.dtype.itemsize >= 8 and offsets.max() > _INT64_MAX:
        bad = offsets > _INT64_MAX
    else:
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)  # exact: every value fits
        last_start = params_size - constants_per_node  # int64, small: where each node may start at most
        bad = offsets > last_start
    if bad.any():
        node = int(np.argmax(bad))
        start = int(offsets[node])  # Python ints from here: no wrap-around in the message either
        end = start + int(constants_per_node[node])
        raise KernelArgumentError(
            f"node {node} reads params[{start}:{end}] but params has {_plural(params_size, 'element')} "
            "(make params with compiler.make_params(), or check offset_list)")
    return offsets


def _check_arrays(arrays: dict[str, Any], params: Any, allow_cuda: bool,
                  outputs: int) -> tuple[dict[str, ArrayInfo], np.dtype]:
    """Describe the arrays and params; check dtypes, layout, writeable outputs and equal shapes."""
    infos = {name: describe(name, a, allow_cuda=allow_cuda) for name, a in arrays.items()}
    infos["params"] = describe("params", params, allow_cuda=allow_cuda)
    names = tuple(arrays)
    dtype = _check_float_arrays(infos, names[len(names) - outputs:])  # outputs may be 0
    first_name, first = next(iter(infos.items()))
    for name in arrays:
        if infos[name].shape != first.shape:
            raise KernelArgumentError(f"{name} has shape {infos[name].shape} but {first_name} has {first.shape}")
    check_overlap(infos, names[:len(names) - outputs], names[len(names) - outputs:])
    return infos, dtype


def check_activation_call(layout: str, constants_per_node: np.ndarray, arrays: dict[str, Any], params: Any,
                          offset_list: Any, n: Any, b: Any, *, allow_cuda: bool = False,
                          outputs: int = 1) -> tuple[np.dtype, np.ndarray]:
    """Check an activation kernel call; return the dtype and the offsets as int64.

    ``arrays`` maps argument names to the layer's arrays, inputs first and the ``outputs`` last.
    """
    infos, dtype = _check_arrays(arrays, params, allow_cuda, outputs)
    n_nodes = len(constants_per_node)
    first_name, first = next(iter(infos.items()))
    if len(first.shape) != 2:
        raise KernelArgumentError(f"{first_name} must be 2-D ({'nodes, batch' if layout == 'node_major' else 'batch, nodes'}), "
                                  f"got shape {first.shape}")
    nodes, batch = first.shape if layout == "node_major" else first.shape[::-1]
    node_axis = 0 if layout == "node_major" else 1
    if nodes != n_nodes:
        raise KernelArgumentError(f"this compiler has {_plural(n_nodes, 'node')} but "
                                  f"{first_name}.shape[{node_axis}] = {nodes} (layout={layout!r})")
    _check_count("n", n, nodes, "node", first_name, node_axis, layout)
    _check_count("b", b, batch, "sample", first_name, 1 - node_axis, layout)
    if len(infos["params"].shape) != 1:
        raise KernelArgumentError(f"params must be 1-D, got shape {infos['params'].shape}")
    offsets = check_offsets(offset_list, n_nodes, constants_per_node, infos["params"].shape[0])
    held = describe("offset_list", offsets)  # the caller's memory unless converted: read while outputs are written
    for name in tuple(arrays)[len(arrays) - outputs:]:
        if _overlap(infos[name], held):
            raise KernelArgumentError(f"output {name} shares memory with offset_list, which the kernel reads "
                                      f"while it writes {name}: give {name} its own array")
    return dtype, offsets


def check_loss_call(n_constants: int, arrays: dict[str, Any], params: Any, *, allow_cuda: bool = False,
                    outputs: int = 1) -> np.dtype:
    """Check a loss kernel call (``y_pred``, ``y_true``, then the ``outputs``); return the dtype."""
    infos, dtype = _check_arrays(arrays, params, allow_cuda, outputs)
    if len(infos["params"].shape) != 1 or infos["params"].shape[0] < n_constants:
        raise KernelArgumentError(f"params must be 1-D with at least {_plural(n_constants, 'element')} (the loss's "
                                  f"constants sorted by name), got shape {infos['params'].shape}")
    return dtype


def check_grad_params(grad_params: Any, dtype: np.dtype, needed: int, others: dict[str, Any], *,
                      allow_cuda: bool = False) -> None:
    """Check the ``grad_params`` output of a parameter-gradient kernel.

    It must be a writable, C-contiguous 1-D array of the call's ``dtype`` with at least ``needed``
    elements (every entry a node's constants occupy), sharing no memory with ``others`` (every
    other argument of the call: the kernel reads them, or writes them too, while it writes it).
    """
    info = describe("grad_params", grad_params, allow_cuda=allow_cuda)
    if len(info.shape) != 1:
        raise KernelArgumentError(f"grad_params must be 1-D like params (np.zeros_like(params)), got shape {info.shape}")
    if info.dtype != dtype:
        raise KernelArgumentError(f"grad_params has dtype {info.dtype} but the other arrays have {dtype}; "
                                  "give it the dtype of params (np.zeros_like(params))")
    if not info.c_contiguous:
        raise KernelArgumentError("grad_params must be C-contiguous (use np.ascontiguousarray(grad_params))")
    if not info.writeable:
        raise KernelArgumentError("grad_params is read-only; the kernel writes the constants' gradients there")
    if info.shape[0] < needed:
        raise KernelArgumentError(f"grad_params has {_plural(info.shape[0], 'element')} but the nodes' constants "
                                  f"occupy params[0:{needed}]: make it like params (np.zeros_like(params))")
    for name, array in others.items():
        if array is not None and _overlap(info, describe(name, array, allow_cuda=allow_cuda)):
            raise KernelArgumentError(f"grad_params shares memory with {name}, which the kernel reads or writes "
                                      "while it writes grad_params: give grad_params its own array "
                                      "(np.zeros_like(params))")
