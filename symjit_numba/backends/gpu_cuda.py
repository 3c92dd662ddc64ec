"""GPU_CUDA: the generated kernel module compiled with ``numba.cuda.jit``.

Install the CUDA extra (``pip install "symjit_numba[cuda]"``, NVIDIA's ``numba-cuda``). Without a GPU
the tests run these kernels under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``).

Arrays. CUDA arrays of any library that exposes ``__cuda_array_interface__`` (numba device arrays,
CuPy, torch CUDA tensors) are used in place, without copies. numpy arrays are accepted too: inputs
are copied to the GPU and the output is copied back before the kernel call returns.

Streams. Kernels run on the default stream of the compiler's device. With numpy arrays the call is
synchronous. With CUDA arrays it returns once the kernel is queued: work a caller queues on the
default stream afterwards is ordered after it; before reading the output on another stream or on
the host, synchronise (``numba.cuda.synchronize()``, ``torch.cuda.synchronize()``...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InvalidDeviceIDError, JITCompilationError
from ..formulas.resolve import LayerPlan
from ..store import load_kernel_module
from .kernels import Kernels, wrap_activation, wrap_loss, wrap_param_activation, wrap_param_loss
from .param_sums import Columns

__all__ = ["build", "check_device", "gpu_count", "is_available", "launch_stream"]

METHOD = "GPU_CUDA"
THREADS_PER_BLOCK = 256
MAX_BLOCKS = 65_535


def _cuda():
    try:
        from numba import cuda
    except ImportError as error:  # pragma: no cover - numba always ships numba.cuda or numba-cuda
        raise JITCompilationError(f"numba.cuda cannot be imported: {error}") from error
    return cuda


def is_available() -> bool:
    """True if numba can reach a CUDA GPU (or the CUDA simulator is enabled)."""
    try:
        return bool(_cuda().is_available())
    except Exception:  # noqa: BLE001 - a broken driver install is "not available"
        return False


def gpu_count() -> int:
    """The number of GPUs numba.cuda can see (``CUDA_VISIBLE_DEVICES`` decides); 0 without CUDA.

    numba's CUDA simulator reports one.
    """
    if not is_available():
        return 0
    try:
        return len(_cuda().gpus)
    except Exception:  # noqa: BLE001 - a broken driver install has no usable GPU
        return 0


def check_device(device_id: int) -> None:
    """Raise InvalidDeviceIDError unless ``device_id`` is 0 or names a visible GPU.

    0, the default, is always accepted: without a GPU, GPU_CUDA falls back (or raises
    JITCompilationError) instead, and CPU backends ignore the id.
    """
    if device_id == 0:
        return
    count = gpu_count()
    if not 0 <= device_id < count:
        valid = "only 0, the default, which CPU backends ignore" if count <= 1 else f"0 to {count - 1}"
        raise InvalidDeviceIDError(f"device_id={device_id} but numba.cuda sees {count} GPU{'s' * (count != 1)} "
                                   f"(CUDA_VISIBLE_DEVICES decides which); valid ids: {valid}")


def _simulator_math():
    """numpy stand-ins for ``math`` in kernels run by numba's CUDA simulator.

    The simulator runs kernels as Python, whose ``math`` raises OverflowError where CUDA returns
    inf (``exp(1000)``, ``sinh(1000)``); numpy returns inf like the device does.
    """
    from types import SimpleNamespace

    from ..mathlib import numpy_special as special

    names = {"acos": np.arccos, "acosh": np.arccosh, "asin": np.arcsin, "asinh": np.arcsinh, "atan": np.arctan,
             "atan2": np.arctan2, "atanh": np.arctanh, "cos": np.cos, "cosh": np.cosh, "exp": np.exp,
             "expm1": np.expm1, "floor": np.floor, "log": np.log, "log1p": np.log1p, "sin": np.sin, "sinh": np.sinh,
             "sqrt": np.sqrt, "tan": np.tan, "tanh": np.tanh, "erf": special.erf, "erfc": special.erfc,
             "gamma": special.gamma, "lgamma": special.loggamma}
    def quiet(function):
        def call(*args):
            with np.errstate(all="ignore"):  # per call: the simulator runs each CUDA thread in its own
                return function(*args)       # Python thread, and numpy's error state is per thread
        return call

    return SimpleNamespace(**{k: quiet(f) for k, f in names.items()}, inf=np.inf, nan=np.nan, pi=np.pi)


def _simulating() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


#: The CUDA stream kernels are launched on (0: the default stream); see :func:`launch_stream`.
_STREAM: ContextVar[Any] = ContextVar("symjit_numba_cuda_stream", default=0)


@contextmanager
def launch_stream(stream: Any) -> Iterator[None]:
    """Launch the kernels called inside the block on ``stream`` (a numba stream, e.g.
    ``numba.cuda.external_stream(torch.cuda.current_stream().cuda_stream)``), copies of host arrays to the GPU
    too. Meant for CUDA arrays: numpy outputs are still copied back on the default stream."""
    token = _STREAM.set(stream)
    try:
        yield
    finally:
        _STREAM.reset(token)


def _grid(size: int) -> tuple[int, int]:
    blocks = max(1, min(MAX_BLOCKS, -(-size // THREADS_PER_BLOCK)))
    return blocks, THREADS_PER_BLOCK


class _Launcher:
    """Moves arguments to the compiler's GPU, launches, and copies numpy outputs back."""

    def __init__(self, device_id: int, resident: tuple[np.ndarray, ...] = ()):
        self.cuda = _cuda()
        self.device_id = device_id
        # Arrays that never change (the nodes' formula ids) are copied to the GPU once.
        # (host, device) pairs: holding the host array keeps its identity from being reused.
        with self.cuda.gpus[device_id]:
            self.resident = [(array, self.cuda.to_device(array)) for array in resident]

    def device_array(self, array: Any) -> Any:
        for host, device in self.resident:
            if array is host:
                return device
        if isinstance(array, np.ndarray):
            return self.cuda.to_device(array, stream=_STREAM.get())
        return _as_device_array(array)

    def __call__(self, kernel: Any, inputs: list[Any], outputs: list[Any], extra: list[Any], size: int) -> None:
        with self.cuda.gpus[self.device_id]:
            device_inputs = [self.device_array(a) for a in inputs]
            device_outputs = [self.cuda.device_array(out.shape, out.dtype) if isinstance(out, np.ndarray)
                              else _as_device_array(out) for out in outputs]
            device_extra = [self.device_array(e) for e in extra]
            blocks, threads = _grid(size)
            kernel[blocks, threads, _STREAM.get()](*device_inputs, *device_outputs, *device_extra)
            for out, device_out in zip(outputs, device_outputs):
                if isinstance(out, np.ndarray):
                    device_out.copy_to_host(out)


def _as_device_array(array: Any) -> Any:
    """A numba view of any CUDA array (numba's own arrays pass through), without copying."""
    if hasattr(array, "copy_to_host"):
        return array
    return _cuda().as_cuda_array(array)


def _flat(array: Any) -> Any:
    if isinstance(array, np.ndarray):
        return array.reshape(-1)
    return _as_device_array(array).reshape(-1)


def build(plan: LayerPlan, layout: str = "node_major", device_id: int = 0) -> Kernels:
    """Build GPU_CUDA kernels for a resolved layer on GPU ``device_id``.

    Raises
    ------
    JITCompilationError
        If no CUDA GPU or driver is available, or numba.cuda cannot compile the kernels.
    InvalidDeviceIDError
        If ``device_id`` is not a visible GPU.
    """
    if not is_available():
        raise JITCompilationError("no CUDA GPU is available (numba.cuda.is_available() is False: "
                                  "no GPU, no driver, or numba-cuda not installed: pip install 'symjit_numba[cuda]')")
    check_device(device_id)

    def generate():
        from ..codegen.prebuilt import printed_formulas
        from ..codegen.source import generate_source

        return generate_source(printed_formulas(plan, "cuda"), plan.mode, "cuda", layout, __version__)

    try:
        module, text = load_kernel_module(plan, "cuda", layout, generate)
    except Exception as error:
        if type(error).__module__.startswith("symjit_numba"):
            raise
        raise JITCompilationError(f"numba.cuda could not load the kernels: {type(error).__name__}: {error}") from error
    if _simulating():
        module.math = _simulator_math()
    func_ids = np.asarray(plan.func_ids, dtype=np.int64)
    launch = _Launcher(device_id, resident=(func_ids,) if plan.mode == "activation" else ())

    if plan.mode == "loss":
        def run_loss(kernel: Any) -> Any:
            def run(y_pred, y_true, *outputs_and_params):
                *outputs, params = outputs_and_params
                launch(kernel, [_flat(y_pred), _flat(y_true)], [_flat(out) for out in outputs], [params],
                       int(np.prod(outputs[0].shape)))
            return run

        param_backward, backward_with_params = _summing_kernels(plan, layout, module, launch, func_ids)
        return Kernels(METHOD, *wrap_loss(plan, run_loss(module.forward), run_loss(module.backward),
                                          run_loss(module.both), allow_cuda=True), source=text,
                       param_backward=param_backward, backward_with_params=backward_with_params)

    def run_activation(kernel: Any, n_inputs: int) -> Any:
        def run(*arrays_params_offsets):
            *arrays, params, offsets = arrays_params_offsets
            launch(kernel, arrays[:n_inputs], arrays[n_inputs:], [params, offsets, func_ids], int(np.prod(arrays[0].shape)))
        return run

    param_backward, backward_with_params = _summing_kernels(plan, layout, module, launch, func_ids)
    return Kernels(METHOD, *wrap_activation(plan, layout, run_activation(module.forward, 1),
                                            run_activation(module.backward, 2), run_activation(module.both, 1),
                                            allow_cuda=True), source=text,
                   param_backward=param_backward, backward_with_params=backward_with_params)


#: Threads per block of the summing kernels under the CUDA simulator (which runs each as a Python
#: thread); on a GPU, codegen's CUDA_THREADS.
SIMULATOR_THREADS = 16


def _summing_kernels(plan: LayerPlan, layout: str, module: Any, launch: _Launcher,
                     func_ids: np.ndarray) -> tuple[Any, Any]:
    """``param_backward_kernel`` and ``backward_with_params_kernel``: the module's summing kernels write
    per-block float64 partial sums (one block per node and chunk of CUDA_CHUNK samples, or per chunk of
    a loss), then its ``combine`` kernel adds them in a fixed order into ``grad_params``: no atomics."""
    from ..codegen.source import CUDA_CHUNK, CUDA_THREADS

    cuda = launch.cuda
    counts = np.asarray(plan.constants_per_node(), dtype=np.int64)
    columns = Columns.per_node(counts)
    with cuda.gpus[launch.device_id]:
        bounds = cuda.to_device(np.concatenate(([0], np.cumsum(counts))).astype(np.int64))
    threads = SIMULATOR_THREADS if _simulating() else CUDA_THREADS
    loss = plan.mode == "loss"
    no_offsets = np.zeros(1, dtype=np.int64)

    def run(kernel: Any, inputs: list[Any], outputs: list[Any], grad_params: Any, params: Any,
            offsets: np.ndarray) -> None:
        shape = tuple(inputs[0].shape)
        if loss:
            size = int(np.prod(shape))
            tasks = chunks = -(-size // CUDA_CHUNK)
            inputs, outputs = [_flat(a) for a in inputs], [_flat(a) for a in outputs]
        else:
            n, b = shape if layout == "node_major" else shape[::-1]
            chunks = -(-b // CUDA_CHUNK)
            tasks = n * chunks
        order, starts, targets = columns.plan(offsets)
        with cuda.gpus[launch.device_id]:
            partials = cuda.device_array((chunks, max(1, columns.size)), np.float64)
            device_inputs = [launch.device_array(a) for a in inputs]
            device_outputs = [cuda.device_array(out.shape, out.dtype) if isinstance(out, np.ndarray)
                              else _as_device_array(out) for out in outputs]
            extra = [params] if loss else [params, offsets, func_ids, bounds]
            if tasks:
                kernel[min(MAX_BLOCKS, tasks), threads, _STREAM.get()](*device_inputs, *device_outputs, partials,
                                                        *[launch.device_array(e) for e in extra])
            for out, device_out in zip(outputs, device_outputs):
                if isinstance(out, np.ndarray):
                    device_out.copy_to_host(out)
            if targets.size:
                grad = launch.device_array(grad_params)  # copied in: entries no node owns stay as they are
                module.combine[(*_grid(targets.size), _STREAM.get())](
                    partials, *(cuda.to_device(a, stream=_STREAM.get()) for a in (order, starts, targets)), grad)
                if isinstance(grad_params, np.ndarray):
                    grad.copy_to_host(grad_params)

    if loss:
        return (wrap_param_loss(plan, lambda p, t, gp, c: run(module.param_backward, [p, t], [], gp, c, no_offsets),
                                lambda p, t, g, gp, c: run(module.backward_with_params, [p, t], [g], gp, c, no_offsets),
                                allow_cuda=True))
    return wrap_param_activation(
        plan, layout, lambda z, e, gp, c, o: run(module.param_backward, [z, e], [], gp, c, o),
        lambda z, e, d, gp, c, o: run(module.backward_with_params, [z, e], [d], gp, c, o), allow_cuda=True)
