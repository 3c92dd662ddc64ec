"""``SymbolicJITCompiler``: the seed's API, orchestrating formulas, code generation and backends."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

from .backends import FALLBACKS, Kernels, cpu_jit, load_backend  # noqa: F401 - CPU_JIT is the default
from .errors import FormulaParsingError, InvalidDeviceIDError, JITCompilationError
from .formulas.resolve import LayerPlan, resolve_configs
from .settings import settings

__all__ = ["SymbolicJITCompiler", "METHODS", "LAYOUTS"]

METHODS = ("CPU_JIT", "GPU_CUDA", "CPU_PYTHON")
LAYOUTS = ("node_major", "batch_major")

Config = tuple[str, dict[str, float]]


class SymbolicJITCompiler:
    """Compile per-node activation formulas (or one loss) into forward and backward kernels.

    Parameters
    ----------
    configs : sequence of (str, dict)
        ``mode="activation"``: one ``(formula_or_name, {constant: value})`` per node.
        ``mode="loss"``: exactly one. Values are initial values: kernels read the live ones from
        ``params`` (see :meth:`make_params`), so constants can be trained.
    calculation_method : {"CPU_JIT", "GPU_CUDA", "CPU_PYTHON"}
        The backend to use. If it cannot be used, :attr:`settings.warning_level
        <symjit_numba.settings.Settings.warning_level>` decides: fall back (GPU_CUDA → CPU_JIT →
        CPU_PYTHON) with a :class:`~symjit_numba.PerformanceWarning`, or raise
        :class:`~symjit_numba.JITCompilationError`. :attr:`calculation_method` tells what is used.
    device_id : int
        The GPU for GPU_CUDA.
    mode : {"activation", "loss"}
    layout : {"node_major", "batch_major"}
        Activation arrays are ``(n, b)`` (nodes × batch, the seed's layout) or ``(b, n)`` (as torch
        and Keras hold activations). Losses are element-wise over arrays of any shape.

    Attributes
    ----------
    forward_kernel : callable
        activation: ``forward_kernel(z, a, params, offset_list, n, b)`` sets ``a = f_j(z)`` in place.
        loss: ``forward_kernel(y_pred, y_true, res, params)`` sets ``res = L(y_pred, y_true)``.
    backward_kernel : callable
        activation: ``backward_kernel(z, err, delta, params, offset_list, n, b)`` sets
        ``delta = err * f_j'(z)``. loss: ``backward_kernel(y_pred, y_true, grad, params)`` sets
        ``grad = dL/dy_pred``.
    forward_derivative_kernel : callable
        The value and the derivative in one pass, sharing their common subexpressions (on CPU_JIT
        the derivative costs little more than the value, and the backward pass becomes a multiply).
        activation: ``forward_derivative_kernel(z, a, d, params, offset_list, n, b)`` sets
        ``a = f_j(z)`` and ``d = f_j'(z)``, so that ``delta = err * d``. loss:
        ``forward_derivative_kernel(y_pred, y_true, res, grad, params)`` sets ``res`` and ``grad``.
        On CPU_JIT its functions are compiled (or loaded from the cache) at its first call.
    calculation_method : str
        The backend actually in use.
    device_id : int

    Examples
    --------
    >>> import numpy as np
    >>> from symjit_numba import SymbolicJITCompiler
    >>> loss = SymbolicJITCompiler([("huber", {"delta": 0.5})], "CPU_PYTHON", mode="loss")
    >>> params, _ = loss.make_params(np.float64)
    >>> y_pred, y_true = np.array([0.1, 2.0]), np.array([0.0, 0.0])
    >>> res = np.empty(2)
    >>> loss.forward_kernel(y_pred, y_true, res, params)
    >>> res
    array([0.005, 0.875])
    """

    def __init__(self, configs: Sequence[Config], calculation_method: str = "CPU_JIT", device_id: int = 0,
                 mode: str = "activation", *, layout: str = "node_major"):
        if calculation_method not in METHODS:
            raise ValueError(f"calculation_method must be one of {METHODS}, got {calculation_method!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if isinstance(device_id, bool) or not isinstance(device_id, Integral) or device_id < 0:
            raise InvalidDeviceIDError(f"device_id must be a non-negative integer, got {device_id!r}")
        self.mode = mode
        self.layout = layout
        self.device_id = int(device_id)
        self.requested_method = calculation_method
        self.plan: LayerPlan = resolve_configs(configs, mode)
        self._install(self._build(calculation_method))

    # -- construction -------------------------------------------------------------------------
    def _build(self, method: str) -> Kernels:
        """Build ``method``'s kernels, or the first fallback that works (per settings.warning_level)."""
        try:
            return load_backend(method).build(self.plan, self.layout, self.device_id)
        except (JITCompilationError, ImportError) as error:
            fallbacks = FALLBACKS[method]
            if not fallbacks:
                raise
            settings.fall_back(f"{method} is not available, using {fallbacks[0]} instead: {error}")
            return self._build(fallbacks[0])

    def _install(self, kernels: Kernels) -> None:
        self._kernels = kernels
        self.calculation_method = kernels.method
        self.forward_kernel = kernels.forward
        self.backward_kernel = kernels.backward
        self.forward_derivative_kernel = kernels.both

    def set_gpu_id(self, new_id: int) -> None:
        """Move the GPU_CUDA kernels to GPU ``new_id``.

        Raises
        ------
        InvalidDeviceIDError
            If ``new_id`` is negative or not smaller than the number of GPUs.
        """
        if isinstance(new_id, bool) or not isinstance(new_id, Integral) or new_id < 0:
            raise InvalidDeviceIDError(f"device_id must be a non-negative integer, got {new_id!r}")
        if self.calculation_method == "GPU_CUDA":
            load_backend("GPU_CUDA").check_device(int(new_id))
            self.device_id = int(new_id)
            self._install(self._build("GPU_CUDA"))
        else:
            self.device_id = int(new_id)

    # -- parameters -----------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        """Number of nodes (configs); 1 for a loss."""
        return self.plan.n_nodes

    def make_params(self, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """The seed's parameter layout, filled with the configs' (initial) constant values.

        Returns
        -------
        params : numpy.ndarray
            All nodes' constants, node after node, each node's sorted by name.
        offset_list : numpy.ndarray of int64
            ``offset_list[j]`` is where node j's constants start in ``params`` (0 for a loss).
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        counts = np.asarray(self.plan.constants_per_node(), dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        flat = [v for values in self.plan.values for v in values]
        return np.asarray(flat, dtype=dtype), offsets

    def constant_names(self, node: int = 0) -> tuple[str, ...]:
        """Names of node ``node``'s constants, in their order in ``params``."""
        return self.plan.formulas[self.plan.func_ids[node]].constants

    # -- introspection ----------------------------------------------------------------------------
    def source(self) -> str:
        """The generated kernel module's source (CPU_JIT and GPU_CUDA), to read or debug.

        Raises
        ------
        FormulaParsingError
            For CPU_PYTHON, which runs ``sympy.lambdify`` functions rather than a generated module.
        """
        if self._kernels.source is None:
            raise FormulaParsingError(f"{self.calculation_method} has no generated kernel source")
        return self._kernels.source

    def __repr__(self) -> str:
        kinds = len(self.plan.formulas)
        return (f"SymbolicJITCompiler({self.n_nodes} {'nodes' if self.mode == 'activation' else 'loss'}, "
                f"{kinds} unique formula{'s' * (kinds != 1)}, calculation_method={self.calculation_method!r}, "
                f"layout={self.layout!r}, device_id={self.device_id})")
