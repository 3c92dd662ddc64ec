"""Argument checks shared by every backend, run before any compiled kernel touches memory.

Each check raises :class:`~symjit_numba.errors.KernelArgumentError` (a ``ValueError``) whose message
names the argument and says what to fix. Arrays are described through :class:`ArrayInfo`, so the
same checks serve numpy arrays and CUDA arrays (``__cuda_array_interface__``) alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np

from ..errors import KernelArgumentError

__all__ = ["ArrayInfo", "describe", "check_activation_call", "check_loss_call", "FLOAT_DTYPES"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class ArrayInfo:
    """What the checks need to know about an array, whatever library holds it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    c_contiguous: bool
    writeable: bool
    address: int = 0  # first byte; with nbytes, what two outputs must not share


def _nbytes(info: ArrayInfo) -> int:
    return int(np.prod(info.shape, dtype=np.int64)) * info.dtype.itemsize


def _cuda_info(interface: dict) -> ArrayInfo:
    shape = tuple(interface["shape"])
    dtype = np.dtype(interface["typestr"])
    strides = interface.get("strides")
    contiguous = strides is None or tuple(strides) == tuple(
        int(np.prod(shape[i + 1:], dtype=np.int64)) * dtype.itemsize for i in range(len(shape)))
    address, readonly = interface.get("data", (0, False))
    return ArrayInfo(shape, dtype, contiguous or int(np.prod(shape)) <= 1, not readonly, int(address or 0))


def _is_numba_device_array(array: Any) -> bool:
    return all(hasattr(array, attribute) for attribute in ("copy_to_host", "shape", "dtype", "strides"))


def describe(name: str, array: Any, *, allow_cuda: bool = False) -> ArrayInfo:
    """Describe ``array`` or refuse it (a CPU backend takes numpy arrays only)."""
    if isinstance(array, np.ndarray):
        return ArrayInfo(array.shape, array.dtype, array.flags.c_contiguous, array.flags.writeable,
                         array.__array_interface__["data"][0])
    if allow_cuda and hasattr(array, "__cuda_array_interface__"):
        return _cuda_info(array.__cuda_array_interface__)
    if allow_cuda and _is_numba_device_array(array):  # the CUDA simulator's arrays have no interface
        info = {"shape": array.shape, "typestr": np.dtype(array.dtype).str, "strides": array.strides}
        return _cuda_info(info)  # address unknown (0): overlap is not checked
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
    for k, first_out in enumerate(outputs):
        for second_out in outputs[k + 1:]:
            a, b = arrays[first_out], arrays[second_out]
            if a.address and b.address and a.address < b.address + _nbytes(b) and b.address < a.address + _nbytes(a):
                raise KernelArgumentError(f"{first_out} and {second_out} overlap in memory; the kernel writes "
                                          "both, so give each its own array")
    return first


def _check_count(name: str, value: Any, expected: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise KernelArgumentError(f"{name} must be an integer ({meaning}), got {type(value).__name__}")
    if int(value) != expected:
        raise KernelArgumentError(f"{name}={value} but the arrays hold {expected} {meaning}")


def check_offsets(offset_list: Any, n_nodes: int, constants_per_node: np.ndarray, params_size: int) -> np.ndarray:
    """Return the offsets as a contiguous int64 array, after checking every node's range is in params."""
    offsets = offset_list if isinstance(offset_list, np.ndarray) else np.asarray(offset_list)
    if offsets.ndim != 1 or offsets.shape[0] != n_nodes:
        raise KernelArgumentError(f"offset_list must be 1-D with one offset per node ({n_nodes}), "
                                  f"got shape {offsets.shape}")
    if offsets.dtype.kind not in "iu":
        raise KernelArgumentError(f"offset_list must hold integers, got dtype {offsets.dtype}")
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if n_nodes and offsets.min() < 0:
        node = int(np.argmin(offsets))
        raise KernelArgumentError(f"offset_list[{node}] = {offsets[node]} is negative")
    ends = offsets + constants_per_node
    if n_nodes and ends.max() > params_size:
        node = int(np.argmax(ends > params_size))
        raise KernelArgumentError(
            f"node {node} reads params[{offsets[node]}:{ends[node]}] but params has {params_size} elements "
            "(make params with compiler.make_params(), or check offset_list)")
    return offsets


def _check_arrays(arrays: dict[str, Any], params: Any, allow_cuda: bool,
                  outputs: int) -> tuple[dict[str, ArrayInfo], np.dtype]:
    """Describe the arrays and params; check dtypes, layout, writeable outputs and equal shapes."""
    infos = {name: describe(name, a, allow_cuda=allow_cuda) for name, a in arrays.items()}
    infos["params"] = describe("params", params, allow_cuda=allow_cuda)
    dtype = _check_float_arrays(infos, tuple(arrays)[-outputs:])
    first_name, first = next(iter(infos.items()))
    for name in arrays:
        if infos[name].shape != first.shape:
            raise KernelArgumentError(f"{name} has shape {infos[name].shape} but {first_name} has {first.shape}")
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
    if nodes != n_nodes:
        axis = 0 if layout == "node_major" else 1
        raise KernelArgumentError(f"this compiler has {n_nodes} nodes but {first_name}.shape[{axis}] = {nodes} "
                                  f"(layout={layout!r})")
    _check_count("n", n, nodes, "nodes")
    _check_count("b", b, batch, "batch rows")
    if len(infos["params"].shape) != 1:
        raise KernelArgumentError(f"params must be 1-D, got shape {infos['params'].shape}")
    offsets = check_offsets(offset_list, n_nodes, constants_per_node, infos["params"].shape[0])
    return dtype, offsets


def check_loss_call(n_constants: int, arrays: dict[str, Any], params: Any, *, allow_cuda: bool = False,
                    outputs: int = 1) -> np.dtype:
    """Check a loss kernel call (``y_pred``, ``y_true``, then the ``outputs``); return the dtype."""
    infos, dtype = _check_arrays(arrays, params, allow_cuda, outputs)
    if len(infos["params"].shape) != 1 or infos["params"].shape[0] < n_constants:
        raise KernelArgumentError(f"params must be 1-D with at least {n_constants} elements (the loss's constants "
                                  f"sorted by name), got shape {infos['params'].shape}")
    return dtype
