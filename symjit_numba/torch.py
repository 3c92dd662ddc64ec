"""PyTorch modules around the compiled kernels: ``HeteroActivation`` and ``HeteroLoss``.

Install with ``pip install "symjit_numba[torch]"``.

>>> import torch
>>> from symjit_numba.torch import HeteroActivation
>>> act = HeteroActivation([("relu", {}), ("swish", {"beta": 1.5})], dtype=torch.float64)
>>> act(torch.tensor([[-1.0, 1.0], [2.0, -2.0]], dtype=torch.float64)).round(decimals=4)
tensor([[ 0.0000,  0.8176],
        [ 2.0000, -0.0949]], dtype=torch.float64, grad_fn=<...>)
>>> act.constant_labels
('1.beta',)

How it fits into torch. The kernels run inside torch custom operators (``torch.ops.symjit_numba.*``,
registered with :func:`torch.library.custom_op`, with fake implementations and autograd formulas), so
``torch.compile(model, fullgraph=True)`` traces a model that contains these modules without graph
breaks, and ``torch.func.functional_call`` can swap their constants. Eager calls with plain tensors
skip the custom op's dispatch: the same implementation runs in a ``torch.autograd.Function``
(``_Operator``). An operator finds its compiler
through an integer id, an argument of the operator (a compiled graph holds it as a constant): a
process-wide registry maps each distinct definition (configs, mode) to an id and builds its compilers
lazily, one per backend and device. Modules pickle and deepcopy as their definition.

Arrays. CPU tensors reach the kernels as ``tensor.detach().numpy()`` views (no copy); an input is
copied only when it must be: not C-contiguous (``.contiguous()``). Dtypes are never converted
silently: the input must have the module's dtype, as with ``torch.nn.Linear``. CUDA tensors go to
``GPU_CUDA`` through ``__cuda_array_interface__`` (no copy), launched on torch's current stream.

What the forward pass keeps. The backward pass of a layer whose constants are trained needs ``z``
anyway (the constants' gradients depend on it), and ``backward_with_params_kernel`` computes the
input's and the constants' gradients in one pass: the forward pass keeps ``z`` and the backward pass
recomputes. The forward pass could instead keep the derivative (``forward_derivative_kernel``),
making the input's gradient a multiplication (``keep="derivative"``); measured on W1 that was never
faster, trained constants or not, so the default keeps ``z`` only (``docs/torch.md``).
"""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Sequence
from typing import Any

try:
    import torch
    from torch import Tensor, nn
except ImportError as error:  # pragma: no cover - exercised without torch only
    raise ImportError("symjit_numba.torch needs PyTorch: pip install 'symjit_numba[torch]' "
                      "(or pip install torch>=2.4)") from error

import numpy as np

from .compiler import SymbolicJITCompiler
from .errors import ConfigurationError

__all__ = ["HeteroActivation", "HeteroLoss", "KEEP", "REDUCTIONS"]

#: What the forward pass of :class:`HeteroActivation` keeps for the backward pass.
KEEP = ("auto", "input", "derivative")
#: :class:`HeteroLoss` reductions, in the order of the operator's ``reduction`` argument.
REDUCTIONS = ("none", "mean", "sum")

_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


# -- the registry: from an operator's integer argument to a compiler ---------------------------------------

class _Definition:
    """One distinct layer or loss definition and its compilers, one per (backend, device), built lazily."""

    def __init__(self, configs: tuple, mode: str, layout: str, method: str | None) -> None:
        self.configs, self.mode, self.layout, self.method = configs, mode, layout, method
        self._compilers: dict[tuple[str, int], SymbolicJITCompiler] = {}
        self._offsets: np.ndarray | None = None
        self._lock = threading.Lock()

    def compiler(self, device: torch.device) -> SymbolicJITCompiler:
        if device.type == "cuda":
            key = ("GPU_CUDA", device.index if device.index is not None else torch.cuda.current_device())
        else:
            key = (self.method or "CPU_JIT", 0)
        compiler = self._compilers.get(key)
        if compiler is None:
            with self._lock:
                compiler = self._compilers.get(key)
                if compiler is None:
                    compiler = SymbolicJITCompiler(_as_configs(self.configs), key[0], key[1], self.mode, layout=self.layout)
                    self._compilers[key] = compiler
        return compiler

    @property
    def offsets(self) -> np.ndarray:
        """Each node's first ``params`` entry, as ``make_params`` lays them out."""
        if self._offsets is None:
            self._offsets = self.compiler(torch.device("cpu")).make_params(np.float64)[1]
        return self._offsets


_REGISTRY: dict[int, _Definition] = {}
_IDS: dict[tuple, int] = {}
_NEXT_ID = itertools.count(1)
_REGISTRY_LOCK = threading.Lock()


def _register(configs: tuple, mode: str, layout: str, method: str | None) -> int:
    """The id of this definition (the same id for the same definition: compiled graphs can share it)."""
    key = (repr(configs), mode, layout, method)
    with _REGISTRY_LOCK:
        if key not in _IDS:
            _IDS[key] = layer_id = next(_NEXT_ID)
            _REGISTRY[layer_id] = _Definition(configs, mode, layout, method)
        return _IDS[key]


def _definition(layer_id: int) -> _Definition:
    try:
        return _REGISTRY[layer_id]
    except KeyError:
        raise RuntimeError(f"symjit_numba: no layer with id {layer_id} in this process (a graph compiled in "
                           "another process? rebuild the module here)") from None


# -- the kernels' view of tensors ---------------------------------------------------------------------------

def _array(t: Tensor) -> Any:
    """What a kernel takes for ``t``: a numpy view of a CPU tensor, the (detached) tensor itself on CUDA."""
    t = t.detach()
    return t if t.is_cuda else t.numpy()


def _input(t: Tensor, like: Tensor) -> Tensor:
    """``t`` as a kernel input next to ``like``: copied only if it is not C-contiguous."""
    if t.dtype != like.dtype:
        raise TypeError(f"symjit_numba: expected {like.dtype}, got {t.dtype}")
    return t if t.is_contiguous() else t.contiguous()


class _Launch:
    """Runs a kernel with tensors: numpy views on the CPU; on CUDA, on torch's current stream."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def __call__(self, kernel: Any, *args: Any) -> None:
        arrays = [_array(a) if isinstance(a, Tensor) else a for a in args]
        if not self.cuda:
            kernel(*arrays)
            return
        from numba import cuda

        from .backends import gpu_cuda

        stream = cuda.external_stream(torch.cuda.current_stream(self.device).cuda_stream)
        with gpu_cuda.launch_stream(stream):
            kernel(*arrays)


def _call(layer: int, params: Tensor, first: Tensor, *others: Tensor
          ) -> tuple[SymbolicJITCompiler, np.ndarray, _Launch, Tensor, tuple[Tensor, ...]]:
    """The compiler, offsets and launcher of a kernel call with ``params``, ``first`` (z or y_pred) and
    ``others``; then ``params`` and ``(first, *others)`` C-contiguous (copied only if they were not),
    each of the constants' dtype. The kernels check the rest (their usual call in about 1 us)."""
    definition = _definition(layer)
    return (definition.compiler(first.device), definition.offsets, _Launch(first.device), _input(params, params),
            tuple(_input(t, params) for t in (first, *others)))


def _nodes_batch(z: Tensor) -> tuple[int, int]:
    """The kernels' ``n`` and ``b`` of a (batch, nodes) tensor (a tensor of another rank: the kernel refuses it)."""
    return (z.shape[1], z.shape[0]) if z.dim() == 2 else (0, 0)


# -- operators: a torch custom op, and a cheaper path for eager calls ---------------------------------------

def _eager(args: tuple, differentiable: bool) -> bool:
    """Whether a call with ``args`` may skip the custom op: plain CPU or CUDA tensors, outside
    torch.compile / torch.export / torch.jit.trace tracing. torch.func's wrapped tensors qualify for
    differentiable operators (their autograd.Function supports torch.func.grad, the custom op does
    not), not for the others (those of the backward pass, which torch.func calls with wrapped tensors)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return all(type(a) in _PLAIN and a.device.type in ("cpu", "cuda")
               and (differentiable or not torch._C._functorch.is_functorch_wrapped_tensor(a))
               for a in args if isinstance(a, Tensor))


#: Tensor types of eager calls (subclasses such as fake or functional tensors take the custom op).
_PLAIN = (Tensor, nn.Parameter)


class _Operator:
    """One of our operators, two ways to call it with the same implementation.

    ``op`` is a :func:`torch.library.custom_op` (``torch.ops.symjit_numba.<name>``) with a fake
    implementation and, where given, its autograd formula: what torch.compile and torch.export trace,
    and what fake, meta and functorch-wrapped tensors go through. Calling the operator itself with
    plain tensors in eager mode skips the custom op's dispatch (its Python layers cost about
    0.1 ms a call: 3-5% of W1's training step at 4096 x 512, 12% at 64 x 512) and runs
    ``implementation`` directly, inside a :class:`torch.autograd.Function` built from the same
    ``setup_context`` and ``backward`` when the operator is differentiable (``function`` under
    torch.func's transforms, ``plain_function`` otherwise: the same, in the style whose ``apply`` is
    cheaper).
    """

    def __init__(self, name: str, implementation: Any, fake: Any, setup_context: Any = None,
                 backward: Any = None) -> None:
        self.implementation = implementation
        self.op = torch.library.custom_op(f"symjit_numba::{name}", implementation, mutates_args=())
        self.op.register_fake(fake)
        self.function = None
        if backward is not None:
            self.op.register_autograd(backward, setup_context=setup_context)
            # torch's Function.apply binds every call's arguments to forward's signature, which
            # inspect.signature rebuilds each time unless the function carries it: 0.06 ms of a
            # forward call's 0.11 at 16 x 512 (W1)
            implementation.__signature__ = inspect.signature(implementation)
            # backward runs the kernels outside autograd: a second derivative is refused, not zero
            backward = staticmethod(torch.autograd.function.once_differentiable(backward))
            self.function = type(f"{name}_function", (torch.autograd.Function,), {
                "forward": staticmethod(implementation), "setup_context": staticmethod(setup_context),
                "backward": backward})

            def forward(ctx: Any, *args: Any) -> Any:
                output = implementation(*args)
                setup_context(ctx, args, output)
                return output

            # The same Function in the older style (ctx in forward) for calls outside torch.func's
            # transforms, which need the one above: its apply skips binding the arguments to
            # forward's signature (6 us a call)
            self.plain_function = type(f"{name}_plain_function", (torch.autograd.Function,), {
                "forward": staticmethod(forward), "backward": backward})

    def __call__(self, *args: Any) -> Any:
        if not _eager(args, self.function is not None):
            return self.op(*args)
        if self.function is not None and torch.is_grad_enabled():
            function = self.function if torch._C._are_functorch_transforms_active() else self.plain_function
            return function.apply(*args)
        return self.implementation(*args)


def _like(t: Tensor) -> Tensor:
    return torch.empty_like(t, memory_format=torch.contiguous_format)


# -- activation operators ------------------------------------------------------------------------------------

def _activation(z: Tensor, params: Tensor, layer: int) -> Tensor:
    """a = f_j(z) for a (batch, nodes) tensor z."""
    compiler, offsets, launch, params, (z,) = _call(layer, params, z)
    a = _like(z)
    launch(compiler.forward_kernel, z, a, params, offsets, *_nodes_batch(z))
    return a


def _activation_derivative(z: Tensor, params: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """a = f_j(z) and d = f_j'(z) in one pass (d is for the backward pass, not differentiable)."""
    compiler, offsets, launch, params, (z,) = _call(layer, params, z)
    a = _like(z)
    d = _like(z)
    launch(compiler.forward_derivative_kernel, z, a, d, params, offsets, *_nodes_batch(z))
    return a, d


def _activation_backward(z: Tensor, err: Tensor, params: Tensor, layer: int) -> Tensor:
    """delta = err * f_j'(z)."""
    compiler, offsets, launch, params, (z, err) = _call(layer, params, z, err)
    delta = _like(z)
    launch(compiler.backward_kernel, z, err, delta, params, offsets, *_nodes_batch(z))
    return delta


def _activation_param_backward(z: Tensor, err: Tensor, params: Tensor, layer: int) -> Tensor:
    """The constants' gradients: sum over the batch of err * df_j/dc_i(z)."""
    compiler, offsets, launch, params, (z, err) = _call(layer, params, z, err)
    grad_params = torch.zeros_like(params, memory_format=torch.contiguous_format)
    launch(compiler.param_backward_kernel, z, err, grad_params, params, offsets, *_nodes_batch(z))
    return grad_params


def _activation_backward_with_params(z: Tensor, err: Tensor, params: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """delta = err * f_j'(z) and the constants' gradients, in one pass."""
    compiler, offsets, launch, params, (z, err) = _call(layer, params, z, err)
    delta = _like(z)
    grad_params = torch.zeros_like(params, memory_format=torch.contiguous_format)
    launch(compiler.backward_with_params_kernel, z, err, delta, grad_params, params, offsets, *_nodes_batch(z))
    return delta, grad_params


def _gradients(z: Tensor, err: Tensor, params: Tensor, layer: int, need_z: bool, need_params: bool,
               d: Tensor | None = None) -> tuple[Tensor | None, Tensor | None]:
    """(dL/dz, dL/dparams) from err = dL/da, each only if needed: from the kept derivative ``d``, or recomputed."""
    err = err.contiguous()
    if d is not None:
        grad_z = err * d if need_z else None
        grad_params = _ACTIVATION_PARAM_BACKWARD(z, err, params, layer) if need_params else None
        return grad_z, grad_params
    if need_params and need_z:
        return _ACTIVATION_BACKWARD_WITH_PARAMS(z, err, params, layer)
    if need_params:
        return None, _ACTIVATION_PARAM_BACKWARD(z, err, params, layer)
    if need_z:
        return _ACTIVATION_BACKWARD(z, err, params, layer), None
    return None, None


def _setup_activation(ctx, inputs, output):
    z, params, layer = inputs
    ctx.layer = layer
    ctx.save_for_backward(z, params)


def _backward_activation(ctx, grad_a):
    z, params = ctx.saved_tensors
    grad_z, grad_params = _gradients(z, grad_a, params, ctx.layer, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
    return grad_z, grad_params, None


def _setup_activation_derivative(ctx, inputs, output):
    z, params, layer = inputs
    ctx.layer = layer
    ctx.save_for_backward(z, params, output[1])


def _backward_activation_derivative(ctx, grad_a, grad_d):
    z, params, d = ctx.saved_tensors
    grad_z, grad_params = _gradients(z, grad_a, params, ctx.layer, ctx.needs_input_grad[0],
                                     ctx.needs_input_grad[1], d)
    return grad_z, grad_params, None


_ACTIVATION = _Operator("activation", _activation, lambda z, params, layer: _like(z),
                        _setup_activation, _backward_activation)
_ACTIVATION_DERIVATIVE = _Operator("activation_derivative", _activation_derivative,
                                   lambda z, params, layer: (_like(z), _like(z)),
                                   _setup_activation_derivative, _backward_activation_derivative)
_ACTIVATION_BACKWARD = _Operator("activation_backward", _activation_backward, lambda z, err, params, layer: _like(z))
_ACTIVATION_PARAM_BACKWARD = _Operator("activation_param_backward", _activation_param_backward,
                                       lambda z, err, params, layer: _like(params))
_ACTIVATION_BACKWARD_WITH_PARAMS = _Operator("activation_backward_with_params", _activation_backward_with_params,
                                             lambda z, err, params, layer: (_like(z), _like(params)))


# -- loss operators ------------------------------------------------------------------------------------------

def _reduce(res: Tensor, reduction: int) -> Tensor:
    if reduction == 0:
        return res
    total = res.sum(dtype=torch.float64)  # float64 sums, as the constants' gradients are summed
    return (total / res.numel() if reduction == 1 else total).to(res.dtype)


def _loss(y_pred: Tensor, y_true: Tensor, params: Tensor, layer: int, reduction: int) -> Tensor:
    """L(y_pred, y_true) element-wise (reduction 0), or its mean (1) or sum (2)."""
    compiler, _, launch, params, (y_pred, y_true) = _call(layer, params, y_pred, y_true)
    res = _like(y_pred)
    launch(compiler.forward_kernel, y_pred, y_true, res, params)
    return _reduce(res, reduction)


def _loss_backward(y_pred: Tensor, y_true: Tensor, params: Tensor, layer: int, with_params: bool) -> tuple[Tensor, Tensor]:
    """dL/dy_pred element-wise, and (if ``with_params``) the sums over all elements of dL/dc_i."""
    compiler, _, launch, params, (y_pred, y_true) = _call(layer, params, y_pred, y_true)
    grad = _like(y_pred)
    grad_params = torch.zeros_like(params, memory_format=torch.contiguous_format)
    if with_params:
        launch(compiler.backward_with_params_kernel, y_pred, y_true, grad, grad_params, params)
    else:
        launch(compiler.backward_kernel, y_pred, y_true, grad, params)
    return grad, grad_params


def _loss_fake(y_pred, y_true, params, layer, reduction):
    return _like(y_pred) if reduction == 0 else y_pred.new_empty(())


def _setup_loss(ctx, inputs, output):
    y_pred, y_true, params, layer, reduction = inputs
    ctx.layer, ctx.reduction = layer, reduction
    ctx.save_for_backward(y_pred, y_true, params)


def _backward_loss(ctx, grad_out):
    y_pred, y_true, params = ctx.saved_tensors
    need_pred, need_params = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    if not (need_pred or need_params):
        return None, None, None, None, None
    grad, grad_params = _LOSS_BACKWARD(y_pred, y_true, params, ctx.layer, need_params)
    if ctx.reduction == 0:  # element-wise: constants' gradients need a uniform upstream gradient (see HeteroLoss)
        return grad * grad_out, None, None, None, None
    scale = grad_out / y_pred.numel() if ctx.reduction == 1 else grad_out
    return (grad * scale if need_pred else None), None, (grad_params * scale if need_params else None), None, None


_LOSS = _Operator("loss", _loss, _loss_fake, _setup_loss, _backward_loss)
_LOSS_BACKWARD = _Operator("loss_backward", _loss_backward,
                           lambda y_pred, y_true, params, layer, with_params: (_like(y_pred), _like(params)))


# -- modules -------------------------------------------------------------------------------------------------

def _frozen_configs(configs: Sequence[tuple[str, dict[str, float] | None]]) -> tuple:
    return tuple((str(label), tuple(sorted((str(k), float(v)) for k, v in (constants or {}).items())))
                 for label, constants in configs)


def _as_configs(frozen: tuple) -> list[tuple[str, dict[str, float]]]:
    return [(label, dict(constants)) for label, constants in frozen]


def _check_dtype(dtype: torch.dtype) -> np.dtype:
    if dtype not in _DTYPES:
        raise ConfigurationError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return np.dtype(_DTYPES[dtype])


class _Registered(nn.Module):
    """A module whose operators find their compiler through ``self._layer_id`` (re-registered on unpickling)."""

    _mode = "activation"
    _layout = "batch_major"

    def _register(self) -> None:
        self._layer_id = _register(self._configs, self._mode, self._layout, self._method)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._register()  # ids are per process

    @property
    def compiler(self) -> SymbolicJITCompiler:
        """The compiler that runs on this module's device (built at first use)."""
        return _definition(self._layer_id).compiler(self._constants_tensor().device)

    def _constants_tensor(self) -> Tensor:
        raise NotImplementedError


class HeteroActivation(_Registered):
    """A heterogeneous activation over ``(batch, nodes)`` tensors: column j is ``f_j`` of column j.

    Parameters
    ----------
    configs : sequence of (str, dict)
        One ``(formula_or_name, {constant: initial_value})`` per node, as for
        :class:`~symjit_numba.SymbolicJITCompiler`. Listed constants are trainable.
    dtype : torch.float32 or torch.float64
        The dtype of the constants and of the tensors the module accepts (inputs of another dtype
        raise ``TypeError``, as with ``torch.nn.Linear``).
    trainable : bool
        Hold the constants in the ``nn.Parameter`` ``constants`` (True) or in a buffer of that name.
    device : torch.device or str, optional
        Where the constants live; CPU tensors run on ``calculation_method``, CUDA tensors on GPU_CUDA.
    calculation_method : {"CPU_JIT", "CPU_PYTHON", "GPU_CUDA"}
        The backend for CPU tensors (``GPU_CUDA`` copies them to the GPU and back; under numba's CUDA
        simulator that is how the GPU code is tested without a GPU).
    keep : {"auto", "input", "derivative"}
        What the forward pass keeps for the backward pass: ``"input"`` keeps ``z`` and the backward
        pass recomputes (``backward_with_params_kernel``); ``"derivative"`` also keeps ``f'(z)``
        (``forward_derivative_kernel``), so that the input's gradient is a multiplication.
        ``"auto"`` is ``"input"``: on W1 it was as fast or faster, trained constants or not, and it
        keeps one tensor less (see docs/torch.md).

    Attributes
    ----------
    constants : torch.Tensor
        All nodes' listed constants in the kernels' ``params`` layout: node after node, each
        node's sorted by name (``[0.0]``, a buffer, for a layer without any).
    constant_labels : tuple of str
        ``"{node}.{name}"`` for each entry of ``constants``; :meth:`constant` reads one.
    """

    def __init__(self, configs: Sequence[tuple[str, dict[str, float] | None]], dtype: torch.dtype = torch.float32,
                 trainable: bool = True, device: Any = None, *, calculation_method: str = "CPU_JIT",
                 keep: str = "auto") -> None:
        super().__init__()
        if keep not in KEEP:
            raise ConfigurationError(f"keep must be one of {', '.join(map(repr, KEEP))}; got {keep!r}")
        if calculation_method not in ("CPU_JIT", "CPU_PYTHON", "GPU_CUDA"):
            raise ConfigurationError(f"calculation_method must be 'CPU_JIT', 'CPU_PYTHON' or 'GPU_CUDA'; "
                                     f"got {calculation_method!r}")
        np_dtype = _check_dtype(dtype)
        self._configs = _frozen_configs(configs)
        self._method = calculation_method
        self.keep = keep
        self._register()
        compiler = _definition(self._layer_id).compiler(torch.device("cpu"))
        compiler.warm_up(np_dtype)  # float64 kernels compile now, not in the first training step
        self.n_nodes = compiler.n_nodes
        params, _ = compiler.make_params(np_dtype)
        self.constant_labels = tuple(f"{j}.{name}" for j in range(self.n_nodes) for name in compiler.constant_names(j))
        values = torch.tensor(params, dtype=dtype, device=device)
        if trainable and self.constant_labels:
            self.constants = nn.Parameter(values)
        else:
            self.register_buffer("constants", values)

    def _constants_tensor(self) -> Tensor:
        return self.constants

    def constant(self, node: int, name: str) -> Tensor:
        """Node ``node``'s constant ``name``: a one-element view of :attr:`constants` (gradients flow)."""
        try:
            k = self.constant_labels.index(f"{node}.{name}")
        except ValueError:
            raise KeyError(f"node {node} has no listed constant {name!r}; listed: "
                           f"{[label for label in self.constant_labels if label.startswith(f'{node}.')]}") from None
        return self.constants[k]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.n_nodes:
            raise ValueError(f"expected (..., {self.n_nodes}) inputs (batch, nodes), got shape {tuple(x.shape)}")
        z = x.reshape(-1, self.n_nodes) if x.dim() != 2 else x
        params = self.constants
        keep = self.keep
        if keep == "auto":  # measured (docs/torch.md): keeping f'(z) never won, and it costs a tensor of memory
            keep = "input"
        if keep == "derivative" and torch.is_grad_enabled() and (z.requires_grad or params.requires_grad):
            a, _ = _ACTIVATION_DERIVATIVE(z, params, self._layer_id)
        else:
            a = _ACTIVATION(z, params, self._layer_id)
        return a if x.dim() == 2 else a.reshape(x.shape)

    def extra_repr(self) -> str:
        labels = [label for label, _ in self._configs]
        shown = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
        return f"nodes={self.n_nodes} [{shown}], constants={len(self.constant_labels)}, dtype={self.constants.dtype}"


class HeteroLoss(_Registered):
    """An element-wise loss ``L(y_pred, y_true)`` compiled from a formula, reduced like torch's losses.

    Parameters
    ----------
    formula_or_name : str
        A named loss (``"huber"``, ``"mse"``...) or a formula in ``y_pred`` and ``y_true``.
    constants : dict, optional
        The loss's constants (``{"delta": 0.5}``); the formula's defaults for those left out.
    reduction : {"mean", "sum", "none"}
    dtype : torch.float32 or torch.float64
    trainable : bool
        Hold the constants in an ``nn.Parameter`` (default: a buffer; a loss's constants are usually
        hyperparameters). Trained constants need ``reduction="mean"`` or ``"sum"``.
    calculation_method, device
        As for :class:`HeteroActivation`.

    ``y_true`` is not differentiated (a ``y_true`` that requires grad raises ``ValueError``).
    """

    _mode = "loss"
    _layout = "node_major"

    def __init__(self, formula_or_name: str, constants: dict[str, float] | None = None, reduction: str = "mean", *,
                 dtype: torch.dtype = torch.float32, trainable: bool = False, device: Any = None,
                 calculation_method: str = "CPU_JIT") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigurationError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")
        if trainable and reduction == "none":
            raise ConfigurationError("trained loss constants need reduction='mean' or 'sum': with 'none' their "
                                     "gradient would weight each element's derivative by its own upstream gradient, "
                                     "which the loss kernels do not compute")
        np_dtype = _check_dtype(dtype)
        self._configs = _frozen_configs([(formula_or_name, constants)])
        self._method = calculation_method
        self.reduction = reduction
        self._register()
        compiler = _definition(self._layer_id).compiler(torch.device("cpu"))
        compiler.warm_up(np_dtype)
        params, _ = compiler.make_params(np_dtype)
        self.constant_labels = tuple(compiler.constant_names(0))
        values = torch.tensor(params, dtype=dtype, device=device)
        if trainable and self.constant_labels:
            self.constants = nn.Parameter(values)
        else:
            self.register_buffer("constants", values)

    def _constants_tensor(self) -> Tensor:
        return self.constants

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if y_true.requires_grad and torch.is_grad_enabled():
            raise ValueError("HeteroLoss does not differentiate y_true: pass y_true.detach()")
        if y_pred.shape != y_true.shape:
            raise ValueError(f"y_pred and y_true must have one shape, got {tuple(y_pred.shape)} and "
                             f"{tuple(y_true.shape)}")
        return _LOSS(y_pred, y_true, self.constants, self._layer_id, REDUCTIONS.index(self.reduction))

    def extra_repr(self) -> str:
        return f"{self._configs[0][0]!r}, reduction={self.reduction!r}, dtype={self.constants.dtype}"
