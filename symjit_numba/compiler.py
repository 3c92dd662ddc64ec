"""``SymbolicJITCompiler``: the seed's API, orchestrating formulas, code generation and backends."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

from .backends import FALLBACKS, Kernels, cpu_jit, load_backend  # noqa: F401 - CPU_JIT is the default
from .errors import ConfigurationError, FormulaParsingError, InvalidDeviceIDError, JITCompilationError
from .formulas.registry import MODES, builtin_formulas, lookup, register_formula
from .formulas.resolve import LayerPlan, resolve_configs
from .settings import settings

__all__ = ["SymbolicJITCompiler", "METHODS", "LAYOUTS"]

METHODS = ("CPU_JIT", "GPU_CUDA", "CPU_PYTHON")
LAYOUTS = ("node_major", "batch_major")

Config = tuple[str, dict[str, float]]


def _check_option(name: str, value: object, accepted: tuple[str, ...]) -> None:
    """Raise ConfigurationError unless ``value`` is one of ``accepted``."""
    if not isinstance(value, str) or value not in accepted:
        raise ConfigurationError(f"{name} must be one of {', '.join(map(repr, accepted))}; got {value!r}")


def _check_device_id(device_id: object) -> int:
    """``device_id`` as an int, or InvalidDeviceIDError.

    0 (the default) is always accepted: CPU backends ignore it, and GPU_CUDA without a GPU falls
    back. Any other id must name a visible GPU, whichever backend is requested.
    """
    if isinstance(device_id, bool) or not isinstance(device_id, Integral) or device_id < 0:
        raise InvalidDeviceIDError(f"device_id must be a non-negative integer, got {device_id!r}")
    if device_id != 0:
        load_backend("GPU_CUDA").check_device(int(device_id))
    return int(device_id)


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
        The GPU for GPU_CUDA. 0 (the default) is always accepted; any other id must be smaller than
        the number of GPUs numba.cuda can see (none without CUDA), whatever the backend.
    mode : {"activation", "loss"}
    layout : {"node_major", "batch_major"}
        Activation arrays are ``(n, b)`` (nodes × batch, the seed's layout) or ``(b, n)`` (as torch
        and Keras hold activations). Losses are element-wise over arrays of any shape.

    Raises
    ------
    ConfigurationError
        If ``calculation_method``, ``mode`` or ``layout`` is not one of the values above (a
        ``ValueError``).
    InvalidDeviceIDError
        If ``device_id`` is negative, not an integer, or not 0 and not smaller than the number of
        visible GPUs.
    FormulaParsingError
        If a config or formula cannot be accepted.
    JITCompilationError
        If the backend cannot be used and ``settings.warning_level`` is ``"error"``.

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
    param_backward_kernel : callable
        The gradients with respect to the constants (to train them), summed over the batch in
        float64, with the same bits whatever ``settings.num_threads``. activation:
        ``param_backward_kernel(z, err, grad_params, params, offset_list, n, b)`` sets
        ``grad_params[offset_list[j] + i] = sum_k err[j, k] * df_j/dc_i(z[j, k])`` for each node j and
        each of its constants c_i (entries no node owns are left as they are; nodes sharing an entry
        get the sum). loss: ``param_backward_kernel(y_pred, y_true, grad_params, params)`` sets
        ``grad_params[i]`` = the sum of dL/dc_i over all elements. ``grad_params`` is a 1-D array
        like ``params`` (``np.zeros_like(params)``). Derivatives are symbolic; at a kink they take
        the value of the branch the formula's condition selects (see the formula language docs).
        On CPU_JIT its functions are compiled (or loaded from the cache) at its first call.
    backward_with_params_kernel : callable
        The training step's backward pass in one pass over the data, sharing subexpressions:
        activation: ``backward_with_params_kernel(z, err, delta, grad_params, params, offset_list, n, b)``
        sets ``delta = err * f_j'(z)`` and ``grad_params`` as :attr:`param_backward_kernel` does.
        loss: ``backward_with_params_kernel(y_pred, y_true, grad, grad_params, params)`` sets
        ``grad = dL/dy_pred`` and ``grad_params``.

        Each of these five kernels checks its arguments before it computes: the usual activation
        call (numpy arrays of one float dtype, C-contiguous, writable outputs, int64 offsets) in
        about 1 us on a CPU, any other in 9-20 us, with a message that says what to fix.
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
        _check_option("calculation_method", calculation_method, METHODS)
        _check_option("mode", mode, MODES)
        _check_option("layout", layout, LAYOUTS)
        self.mode = mode
        self.layout = layout
        self.device_id = _check_device_id(device_id)
        self.requested_method = calculation_method
        self.plan: LayerPlan = resolve_configs(configs, mode)
        # What pickle and deepcopy carry (see _definition): the configs as given, not the plan.
        self._configs = tuple((label, None if constants is None else dict(constants))
                              for label, constants in configs)
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
            settings.fall_back(method, fallbacks[0], error)  # raises under warning_level="error"
            return self._build(fallbacks[0])

    def _install(self, kernels: Kernels) -> None:
        self._kernels = kernels
        self.calculation_method = kernels.method
        self.forward_kernel = kernels.forward
        self.backward_kernel = kernels.backward
        self.forward_derivative_kernel = kernels.both
        self.param_backward_kernel = kernels.param_backward
        self.backward_with_params_kernel = kernels.backward_with_params

    def set_gpu_id(self, new_id: int) -> None:
        """Move the GPU_CUDA kernels to GPU ``new_id`` (other backends only record it).

        The id is checked the same way on every backend: 0 is always accepted, any other id must
        be smaller than the number of GPUs numba.cuda can see. A refused id changes nothing.

        Raises
        ------
        InvalidDeviceIDError
            If ``new_id`` is negative, not an integer, or not 0 and not smaller than the number of
            visible GPUs (0 without CUDA).
        """
        new_id = _check_device_id(new_id)
        if self.calculation_method == "GPU_CUDA":
            previous, self.device_id = self.device_id, new_id
            try:
                self._install(self._build("GPU_CUDA"))
            except BaseException:
                self.device_id = previous
                raise
        else:
            self.device_id = new_id

    def change_method(self, method: str, device_id: int | None = None) -> str:
        """Switch this compiler to another backend, keeping its configs, mode and layout.

        The same fallback rules as the constructor apply (``GPU_CUDA`` → ``CPU_JIT`` →
        ``CPU_PYTHON``, per :attr:`settings.warning_level <symjit_numba.settings.Settings.warning_level>`).
        The kernel attributes are replaced: fetch ``forward_kernel`` etc. again after switching.

        Parameters
        ----------
        method : {"CPU_JIT", "GPU_CUDA", "CPU_PYTHON"}
        device_id : int, optional
            The GPU for GPU_CUDA; the current :attr:`device_id` if omitted.

        Returns
        -------
        str
            The backend actually in use (:attr:`calculation_method`).
        """
        _check_option("calculation_method", method, METHODS)
        new_id = self.device_id if device_id is None else _check_device_id(device_id)
        previous = self.device_id
        self.device_id = new_id
        try:
            kernels = self._build(method)
        except BaseException:
            self.device_id = previous  # a refused switch changes nothing
            raise
        self.requested_method = method
        self._install(kernels)
        return self.calculation_method

    def _change_method(self, method: str, gpu_id: int | None = None) -> str:
        """The seed's spelling of :meth:`change_method`."""
        return self.change_method(method, gpu_id)

    def warm_up(self, dtypes: Any = (np.float32, np.float64)) -> None:
        """Compile (or load from the cache) every kernel for ``dtypes`` now, instead of at first use.

        A CPU_JIT layer compiles :attr:`forward_kernel` and :attr:`backward_kernel` for float32
        when it is built; every other kernel (:attr:`forward_derivative_kernel`, the
        parameter-gradient kernels) and dtype compiles at its first call, about 0.15 s per formula
        of your own and kernel (a :class:`~symjit_numba.CompilationWarning` says so when it takes
        longer than 0.1 s). Call this after building a layer to pay that before training instead. Many never-seen formulas are
        compiled in parallel worker processes (:attr:`settings.compile_processes
        <symjit_numba.settings.Settings.compile_processes>`). CPU_PYTHON has nothing to compile;
        GPU_CUDA compiles at the first launch.

        Parameters
        ----------
        dtypes : dtype or sequence of dtypes
            float32 and/or float64.
        """
        wanted = [np.dtype(d) for d in (dtypes if isinstance(dtypes, (list, tuple)) else [dtypes])]
        for dtype in wanted:
            if dtype not in (np.float32, np.float64):
                raise ConfigurationError(f"dtypes must be float32 or float64, got {dtype}")
        self._kernels.warm_up(wanted)

    # -- parameters -----------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        """Number of nodes (configs); 1 for a loss."""
        return self.plan.n_nodes

    def make_params(self, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """The seed's parameter layout, filled with the configs' (initial) constant values.

        A node's entries are exactly the keys of its config's dict, sorted by name; a named
        formula's constant that the dict leaves out is a fixed value in the compiled code, not an
        entry (list it to train it). A layer without any constants gets ``[0.0]``, as the seed's
        layers build it (no kernel reads it).

        Returns
        -------
        params : numpy.ndarray
            All nodes' constants, node after node, each node's sorted by name.
        offset_list : numpy.ndarray of int64
            ``offset_list[j]`` is where node j's constants start in ``params`` (0 for a loss).
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ConfigurationError(f"dtype must be float32 or float64, got {dtype}")
        counts = np.asarray(self.plan.constants_per_node(), dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        flat = [v for values in self.plan.values for v in values]
        return np.asarray(flat or [0.0], dtype=dtype), offsets

    def constant_names(self, node: int = 0) -> tuple[str, ...]:
        """Names of node ``node``'s constants, in their order in ``params``."""
        return self.plan.formulas[self.plan.func_ids[node]].constants

    def numba_kernels(self):
        """This layer's (or loss's) CPU_JIT kernels as ``njit`` functions your own ``@numba.njit`` code can call.

        Returns a named tuple ``(forward, backward, forward_derivative, param_backward,
        backward_with_params)`` with the signatures of :attr:`forward_kernel` and friends (for a loss,
        ``params`` is required). They give the same bits as those kernels. Called from njit code they
        run on the calling thread, serially; they check dtypes, contiguity and dimensions when numba
        compiles the call, and shapes against ``n``/``b`` and every node's ``params`` range when it
        runs (``ValueError``), but not overlapping arrays. A function that calls them is never cached
        by numba (``cache=True`` warns): they hold this process's function addresses. See
        :mod:`symjit_numba.backends.cpu_numba`.

        Raises
        ------
        JITCompilationError
            If this compiler does not run on CPU_JIT (``calculation_method`` says which backend does).
        """
        if self.calculation_method != "CPU_JIT":
            raise JITCompilationError(f"numba_kernels() needs the CPU_JIT backend; this compiler runs on "
                                      f"{self.calculation_method} (change_method('CPU_JIT') switches it)")
        if getattr(self, "_numba_kernels", None) is None:
            self._numba_kernels = cpu_jit.numba_kernels(self.plan, self.layout)
        return self._numba_kernels

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

    # -- pickle and copy ----------------------------------------------------------------------------
    @property
    def _definition(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this compiler: what pickle and deepcopy carry.

        Every piece of state a compiler is constructed from belongs here (and nowhere else), so
        that it travels: the configs as given, the requested method (not the one in use, so that
        a GPU_CUDA compiler finds the GPU where there is one), mode, layout and device id.
        """
        return {"configs": self._configs, "calculation_method": self.requested_method,
                "device_id": self.device_id, "mode": self.mode, "layout": self.layout}

    def _registrations(self) -> dict[str, tuple[str, dict[str, float], str, str]]:
        """The named formulas of the configs that are not built in (or were re-registered)."""
        builtins = {entry.name: entry for entry in builtin_formulas()}
        carried = {}
        for label, _ in self._configs:
            entry = lookup(label.strip())
            if entry is not None and entry != builtins.get(entry.name):
                carried[entry.name] = (entry.formula, dict(entry.defaults), entry.mode, entry.description)
        return carried

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and ``copy.deepcopy``) as the definition, never as compiled code.

        The receiving process rebuilds the compiler from its own kernel cache (compiling on a miss),
        with its own :data:`~symjit_numba.settings` deciding fallbacks: a GPU_CUDA compiler arriving
        where there is no GPU falls back to CPU_JIT (or raises under ``warning_level="error"``).
        Formulas registered with :func:`~symjit_numba.register_formula` travel with it.
        """
        return _rebuild, (type(self), self._definition, self._registrations())

    def __repr__(self) -> str:
        kinds = len(self.plan.formulas)
        return (f"SymbolicJITCompiler({self.n_nodes} {'nodes' if self.mode == 'activation' else 'loss'}, "
                f"{kinds} unique formula{'s' * (kinds != 1)}, calculation_method={self.calculation_method!r}, "
                f"layout={self.layout!r}, device_id={self.device_id})")


def _rebuild(cls: type, definition: dict[str, Any],
             registrations: dict[str, tuple[str, dict[str, float], str, str]]) -> SymbolicJITCompiler:
    """Unpickle a compiler: register the formulas it carries, then construct it from its definition.

    Raises
    ------
    FormulaParsingError
        If a carried formula name is registered differently in this process.
    """
    for name, (formula, defaults, mode, description) in registrations.items():
        known = lookup(name)
        if known is None:
            register_formula(name, formula, defaults, mode, description)
        elif (known.formula, dict(known.defaults), known.mode) != (formula, defaults, mode):
            raise FormulaParsingError(f"the unpickled compiler uses the formula {name!r} = {formula!r} "
                                      f"({mode}, defaults {defaults}), but this process has {name!r} registered as "
                                      f"{known.formula!r} ({known.mode}, defaults {dict(known.defaults)})")
    if definition["device_id"] != 0:
        try:
            _check_device_id(definition["device_id"])
        except InvalidDeviceIDError as error:  # the sender's GPU is not here: as a missing GPU, fall back
            settings.fall_back(f"{definition['calculation_method']} on device {definition['device_id']}",
                               "device 0", error)
            definition = {**definition, "device_id": 0}
    return cls(**definition)
