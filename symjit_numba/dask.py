"""A layer's kernels over ``dask.array`` inputs chunked along the batch, on any Dask scheduler.

Install the extra: ``pip install "symjit_numba[dask]"`` (``dask[array]`` and ``distributed``).

>>> import dask.array as da, numpy as np
>>> from symjit_numba import SymbolicJITCompiler
>>> from symjit_numba import dask as sjd
>>> layer = SymbolicJITCompiler([("relu", {}), ("tanh", {})], "CPU_PYTHON")
>>> z = da.from_array(np.array([[-1.0, 2.0, 3.0], [0.0, 1.0, -1.0]]), chunks=(2, 2))
>>> sjd.forward(layer, z).compute().round(3)
array([[ 0.   ,  2.   ,  3.   ],
       [ 0.   ,  0.762, -0.762]])

Each function returns dask arrays with the inputs' chunks; nothing runs until they are computed
(``.compute()``, ``.persist()``, or a ``distributed.Client``'s scheduler). Each chunk of the batch
is one task that calls the compiler's kernel on that chunk. On a ``distributed`` cluster the tasks
carry the compiler pickled (its definition, see :meth:`SymbolicJITCompiler.__reduce__
<symjit_numba.SymbolicJITCompiler.__reduce__>`): each worker process rebuilds it once from its own
kernel cache (compiling on a miss; a GPU_CUDA compiler on a worker without a GPU falls back per the
worker's ``settings.warning_level``) and reuses it for every later chunk. In the calling process
the tasks use the compiler itself.

Layouts. A node-major layer takes ``(n, batch)`` arrays chunked as ``(n, chunk)``; a batch-major one
``(batch, n)`` arrays chunked as ``(chunk, n)``. Each chunk must hold all ``n`` nodes: an array
chunked along the node axis is refused (``z.rechunk({0: -1})`` or ``{1: -1}`` merges them), since a
kernel call is defined on whole layers. A loss is element-wise: any shape and chunking, with
``y_true`` chunked like ``y_pred`` (dask aligns differing chunks).

``params`` and ``offsets`` are numpy arrays (by default :meth:`~symjit_numba.SymbolicJITCompiler.make_params`
in the inputs' dtype); each task receives them whole.

Sums over the batch (:func:`param_backward`, the parameter gradients) go through
:func:`_sum_over_batch_chunks`: each chunk's task returns its partial sum, and dask adds the partial
sums in a tree (``split_every`` at a time), the same tree, hence the same float result, for the same
chunking on any scheduler.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    import dask.array as da
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("symjit_numba.dask needs Dask: pip install 'symjit_numba[dask]' "
                      "(or: pip install 'dask[array]' distributed)") from error

from .compiler import SymbolicJITCompiler

__all__ = ["forward", "backward", "forward_derivative", "param_backward"]


class _Shipped:
    """The compiler as the tasks carry it: the object itself in this process, its pickle elsewhere."""

    def __init__(self, compiler: SymbolicJITCompiler, blob: bytes | None = None) -> None:
        self.compiler = compiler
        self.blob = pickle.dumps(compiler) if blob is None else blob

    def __reduce__(self) -> tuple[Any, ...]:
        return _arrive, (self.blob,)

    def __dask_tokenize__(self) -> str:
        return hashlib.sha256(self.blob).hexdigest()


@functools.lru_cache(maxsize=64)
def _rebuilt(blob: bytes) -> SymbolicJITCompiler:
    """One compiler per definition and worker process, however many tasks carry it."""
    return pickle.loads(blob)


def _arrive(blob: bytes) -> _Shipped:
    return _Shipped(_rebuilt(blob), blob)


# -- block functions: run in the tasks, on one chunk (numpy arrays) ---------------------------------
def _activation_block(z: np.ndarray, *rest: np.ndarray, shipped: _Shipped, kind: str, params: np.ndarray,
                      offsets: np.ndarray) -> np.ndarray:
    compiler = shipped.compiler
    z = np.ascontiguousarray(z)
    outputs = 2 if kind == "both" else 1
    out = np.empty((outputs, *z.shape) if outputs == 2 else z.shape, dtype=z.dtype)
    if z.size == 0:
        return out
    n, b = z.shape if compiler.layout == "node_major" else z.shape[::-1]
    if kind == "forward":
        compiler.forward_kernel(z, out, params, offsets, n, b)
    elif kind == "backward":
        compiler.backward_kernel(z, np.ascontiguousarray(rest[0]), out, params, offsets, n, b)
    else:
        compiler.forward_derivative_kernel(z, out[0], out[1], params, offsets, n, b)
    return out


def _loss_block(y_pred: np.ndarray, y_true: np.ndarray, *, shipped: _Shipped, kind: str, params: np.ndarray,
                offsets: None = None) -> np.ndarray:
    compiler = shipped.compiler
    y_pred, y_true = np.ascontiguousarray(y_pred), np.ascontiguousarray(y_true)
    outputs = 2 if kind == "both" else 1
    out = np.empty((outputs, *y_pred.shape) if outputs == 2 else y_pred.shape, dtype=y_pred.dtype)
    if y_pred.size == 0:
        return out
    if kind == "forward":
        compiler.forward_kernel(y_pred, y_true, out, params)
    elif kind == "backward":
        compiler.backward_kernel(y_pred, y_true, out, params)
    else:
        compiler.forward_derivative_kernel(y_pred, y_true, out[0], out[1], params)
    return out


# -- checks, done in the calling process before any task exists -------------------------------------
def _as_dask(array: Any, like: da.Array | None = None) -> da.Array:
    if isinstance(array, da.Array):
        return array
    array = np.asarray(array)
    return da.from_array(array, chunks=like.chunks if like is not None and like.shape == array.shape else -1)


def _prepare(compiler: SymbolicJITCompiler, inputs: tuple[Any, ...], needed: int, kind: str,
             params: Any, offsets: Any) -> tuple[list[da.Array], np.ndarray, np.ndarray | None]:
    """Inputs as dask arrays, params/offsets as numpy, all checked by one call on a tiny block."""
    if not isinstance(compiler, SymbolicJITCompiler):
        raise TypeError(f"compiler must be a SymbolicJITCompiler, got {type(compiler).__name__}")
    names = {"activation": {"forward": "z", "backward": "z, err", "both": "z"},
             "loss": {"forward": "y_pred, y_true", "backward": "y_pred, y_true", "both": "y_pred, y_true"}}
    if len(inputs) != needed:
        raise TypeError(f"a {compiler.mode} compiler's {kind} takes the arrays ({names[compiler.mode][kind]}), "
                        f"got {len(inputs)} array(s)")
    first = _as_dask(inputs[0])
    arrays = [first] + [_as_dask(x, first) for x in inputs[1:]]
    for name, array in zip(names[compiler.mode][kind].split(", "), arrays):
        if array.shape != first.shape:
            raise ValueError(f"{name} has shape {array.shape}, but {names[compiler.mode][kind].split(', ')[0]} "
                             f"has shape {first.shape}")
    if len(arrays) > 1:  # the same chunks for all, as map_blocks would align them
        _, arrays = da.core.unify_chunks(*[x for a in arrays for x in (a, tuple(range(a.ndim)))])
        first = arrays[0]
    dtype = first.dtype
    if params is None or (compiler.mode == "activation" and offsets is None):
        default_params, default_offsets = compiler.make_params(dtype)
        params = default_params if params is None else params
        offsets = default_offsets if offsets is None else offsets
    params = np.asarray(params)
    offsets = None if compiler.mode == "loss" else np.asarray(offsets)
    if compiler.mode == "activation":
        if first.ndim != 2:
            raise ValueError(f"an activation layer's arrays are 2-D, got shape {first.shape}")
        node_axis = 0 if compiler.layout == "node_major" else 1
        for name, array in zip(("z", "err"), arrays):
            if len(array.chunks[node_axis]) > 1:
                shape = "(n, chunk)" if node_axis == 0 else "(chunk, n)"
                raise ValueError(f"{name} is chunked along the node axis (axis {node_axis}, chunks "
                                 f"{array.chunks[node_axis]}): a {compiler.layout} layer takes chunks of the "
                                 f"batch only, shaped {shape}; merge them with "
                                 f"{name}.rechunk({{{node_axis}: -1}})")
        # The kernels' own checks (n, dtypes, params, offsets) on one batch column, here and now.
        tiny_shape = (first.shape[0], 1) if node_axis == 0 else (1, first.shape[1])
        tiny = [np.zeros(tiny_shape, dtype=a.dtype) for a in arrays]
        _activation_block(*tiny, shipped=_Shipped(compiler, b""), kind=kind, params=params, offsets=offsets)
    else:
        tiny = [np.zeros(1, dtype=a.dtype) for a in arrays]
        _loss_block(*tiny, shipped=_Shipped(compiler, b""), kind=kind, params=params)
    return arrays, params, offsets


def _apply(compiler: SymbolicJITCompiler, inputs: tuple[Any, ...], kind: str, params: Any,
           offsets: Any) -> da.Array | tuple[da.Array, da.Array]:
    needed = 1 + (compiler.mode == "loss" or kind == "backward")
    arrays, params, offsets = _prepare(compiler, inputs, needed, kind, params, offsets)
    block = _activation_block if compiler.mode == "activation" else _loss_block
    first = arrays[0]
    options: dict[str, Any] = {"shipped": _Shipped(compiler), "kind": kind, "params": params, "offsets": offsets,
                               "dtype": first.dtype, "token": f"symjit-{kind}"}
    if kind != "both":
        return da.map_blocks(block, *arrays, meta=np.empty((0,) * first.ndim, dtype=first.dtype), **options)
    both = da.map_blocks(block, *arrays, new_axis=0, chunks=((2,), *first.chunks),
                         meta=np.empty((0,) * (first.ndim + 1), dtype=first.dtype), **options)
    return both[0], both[1]


# -- the public functions ----------------------------------------------------------------------------
def forward(compiler: SymbolicJITCompiler, *inputs: Any, params: Any = None, offsets: Any = None) -> da.Array:
    """The compiler's forward kernel over dask arrays, chunk by chunk.

    Parameters
    ----------
    compiler : SymbolicJITCompiler
        Any backend; it must pickle (every compiler does) for a ``distributed`` cluster.
    *inputs : dask.array.Array
        activation: ``z``, ``(n, batch)`` chunked ``(n, chunk)`` (node-major layout) or ``(batch, n)``
        chunked ``(chunk, n)`` (batch-major). loss: ``y_pred, y_true``, any shape and chunking.
        numpy arrays are accepted too (one chunk, or the first input's chunks).
    params : numpy.ndarray, optional
        The constants' live values; by default the configs' values (:meth:`make_params
        <symjit_numba.SymbolicJITCompiler.make_params>`) in the inputs' dtype.
    offsets : numpy.ndarray of int64, optional
        activation only: where each node's constants start in ``params``.

    Returns
    -------
    dask.array.Array
        ``a = f_j(z)`` (activation) or ``res = L(y_pred, y_true)`` (loss), chunked like the input.

    Raises
    ------
    ValueError
        If an activation input is chunked along the node axis, or the inputs' shapes differ.
    KernelArgumentError
        If the kernel refuses the arguments (checked on one batch column before any task runs).
    """
    return _apply(compiler, inputs, "forward", params, offsets)


def backward(compiler: SymbolicJITCompiler, *inputs: Any, params: Any = None, offsets: Any = None) -> da.Array:
    """The compiler's backward kernel over dask arrays, chunk by chunk.

    Parameters
    ----------
    compiler : SymbolicJITCompiler
    *inputs : dask.array.Array
        activation: ``z, err`` (same shape; chunked along the batch as in :func:`forward`).
        loss: ``y_pred, y_true``.
    params, offsets : numpy.ndarray, optional
        As in :func:`forward`.

    Returns
    -------
    dask.array.Array
        ``delta = err * f_j'(z)`` (activation) or ``grad = dL/dy_pred`` (loss).
    """
    return _apply(compiler, inputs, "backward", params, offsets)


def forward_derivative(compiler: SymbolicJITCompiler, *inputs: Any, params: Any = None,
                       offsets: Any = None) -> tuple[da.Array, da.Array]:
    """The value and the derivative in one pass per chunk (the ``forward_derivative_kernel``).

    Parameters
    ----------
    compiler : SymbolicJITCompiler
    *inputs : dask.array.Array
        activation: ``z``; loss: ``y_pred, y_true``; chunked as in :func:`forward`.
    params, offsets : numpy.ndarray, optional
        As in :func:`forward`.

    Returns
    -------
    value, derivative : dask.array.Array
        ``f_j(z)`` and ``f_j'(z)`` (or ``L`` and ``dL/dy_pred``), computed by the same tasks:
        compute them together (``dask.compute(value, derivative)``) to run each chunk once.
    """
    return _apply(compiler, inputs, "both", params, offsets)


def _param_block(*chunks: np.ndarray, shipped: _Shipped, params: np.ndarray, offsets: np.ndarray | None
                 ) -> np.ndarray:
    """One chunk's parameter gradients (its sums over the chunk), from ``param_backward_kernel``."""
    compiler = shipped.compiler
    grad = np.zeros(params.size, dtype=params.dtype)
    first, second = (np.ascontiguousarray(chunk) for chunk in chunks)
    if first.size == 0:
        return grad
    if compiler.mode == "activation":
        n, b = first.shape if compiler.layout == "node_major" else first.shape[::-1]
        compiler.param_backward_kernel(first, second, grad, params, offsets, n, b)
    else:
        compiler.param_backward_kernel(first.reshape(-1), second.reshape(-1), grad, params)
    return grad


def param_backward(compiler: SymbolicJITCompiler, *inputs: Any, params: Any = None, offsets: Any = None,
                   split_every: int | None = None) -> da.Array:
    """The parameter gradients of every node's constants, summed over all batch chunks.

    Each chunk's task runs the compiler's ``param_backward_kernel`` on its chunk (float64 sums
    inside, rounded to ``params``' dtype); the chunks' results are added in float64 as a tree of
    ``split_every`` at a time, fixed by the chunking, so the result is the same on every scheduler
    and run for a given chunking (and equals one whole-array call up to the rounding of the
    per-chunk sums).

    Parameters
    ----------
    compiler : SymbolicJITCompiler
    *inputs : dask.array.Array
        activation: ``z, err`` chunked as in :func:`forward`; loss: ``y_pred, y_true``.
    params, offsets : numpy.ndarray, optional
        As in :func:`forward`.
    split_every : int, optional
        How many partial sums one task adds (dask's default if None).

    Returns
    -------
    dask.array.Array
        Shape ``params.shape``, ``params``' dtype: ``grad_params`` (0 where no node owns an entry).
    """
    arrays, params, offsets = _prepare(compiler, inputs, 2, "backward", params, offsets)
    batch_axis = 0 if compiler.mode == "activation" and compiler.layout == "batch_major" else 1
    if compiler.mode == "loss":  # element-wise: any shape, as one row of elements
        arrays = [a.reshape(1, -1) for a in arrays]
    sums = _sum_over_batch_chunks(compiler, _param_block, arrays, params.size, np.float64, batch_axis, split_every,
                                  params=params, offsets=offsets)
    return sums.astype(params.dtype)


def _sum_over_batch_chunks(compiler: SymbolicJITCompiler, block: Callable[..., np.ndarray], arrays: list[da.Array],
                           width: int, dtype: Any, batch_axis: int, split_every: int | None = None,
                           **arguments: Any) -> da.Array:
    """The sum over the batch of per-chunk vectors, as a tree reduction (for parameter gradients).

    ``block(*chunks, shipped=..., **arguments)`` runs once per chunk of the 2-D ``arrays`` along
    ``batch_axis`` and returns that chunk's partial sum: a vector of ``width`` values. The partial sums
    are added ``split_every`` at a time (dask's default if None) in a tree fixed by the chunking,
    so the result is the same on every scheduler and every run for the same chunking.

    Returns
    -------
    dask.array.Array
        Shape ``(width,)``.
    """
    chunks = arrays[0].chunks[batch_axis]
    shipped = _Shipped(compiler)

    def partial(*blocks: np.ndarray) -> np.ndarray:
        vector = np.asarray(block(*blocks, shipped=shipped, **arguments), dtype=dtype).reshape(width)
        return vector[:, None] if batch_axis == 1 else vector[None, :]

    out_chunks = ((width,), (1,) * len(chunks)) if batch_axis == 1 else ((1,) * len(chunks), (width,))
    partials = da.map_blocks(partial, *arrays, chunks=out_chunks, dtype=dtype,
                             meta=np.empty((0, 0), dtype=dtype), token="symjit-partial-sums")
    return partials.sum(axis=batch_axis, split_every=split_every, dtype=dtype)
