"""The seed's kernel signatures, wrapped around a backend's compiled entry points.

Every backend provides plain functions that assume valid arguments (``run_forward``, ``run_backward``,
``run_both``); this module wraps them into the public ``forward_kernel``/``backward_kernel`` with the
seed's signatures, and ``forward_derivative_kernel`` (value and derivative in one pass), running
:mod:`.validation` first, so each backend refuses bad input the same way.

The usual activation call is checked by one compiled function (about 1 us); any other call, and
any call that function does not accept, by the full checks, which say what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..formulas.resolve import LayerPlan
from .validation import activation_call_is_valid, check_activation_call, check_grad_params, check_loss_call

__all__ = ["Kernels", "wrap_activation", "wrap_loss", "wrap_param_activation", "wrap_param_loss"]

#: ``run(inputs..., output, params, offsets)``; offsets already checked and int64.
Runner = Callable[..., None]


@dataclass
class Kernels:
    """What a backend builds: the public kernels and, for generated code, its source."""

    method: str
    forward: Callable[..., None]
    backward: Callable[..., None]
    both: Callable[..., None]
    source: str | None = None
    #: ``warm_up(dtypes)`` compiles (or loads) every kernel for those dtypes now, not at first use.
    warm_up: Callable[[Sequence[Any]], None] = lambda dtypes: None
    #: The parameter-gradient kernels (:func:`wrap_param_activation`, :func:`wrap_param_loss`).
    param_backward: Callable[..., None] | None = None
    backward_with_params: Callable[..., None] | None = None


def _activation_checks(plan: LayerPlan, layout: str, allow_cuda: bool) -> Callable[..., Any]:
    """``checked(names, arrays, outputs, params, offset_list, n, b, grad_params=None)``: the offsets
    the runner takes, once the call passed the compiled quick check of the usual call, or else the
    full checks (which raise with the reason, or accept what the quick check does not know)."""
    constants_per_node = np.asarray(plan.constants_per_node(), dtype=np.int64)
    needed_entries = _needed_entries(constants_per_node)
    node_major = layout == "node_major"

    def checked(names: tuple[str, ...], arrays: tuple, outputs: int, params: Any, offset_list: Any, n: Any, b: Any,
                grad_params: Any = None) -> Any:
        split = len(arrays) - outputs
        if activation_call_is_valid(node_major, constants_per_node, arrays[:split], arrays[split:], params, offset_list,
                                    n, b, grad_params):
            return offset_list
        named = dict(zip(names, arrays))
        dtype, offsets = check_activation_call(layout, constants_per_node, named, params, offset_list, n, b,
                                               allow_cuda=allow_cuda, outputs=outputs)
        if grad_params is not None:
            check_grad_params(grad_params, dtype, needed_entries(offsets), {**named, "params": params, "offset_list": offsets},
                              allow_cuda=allow_cuda)
        return offsets

    return checked


def wrap_activation(plan: LayerPlan, layout: str, run_forward: Runner, run_backward: Runner, run_both: Runner,
                    *, allow_cuda: bool = False) -> tuple[Callable[..., None], ...]:
    """Public activation kernels around ``run_forward(z, a, params, offsets)``,
    ``run_backward(z, err, delta, params, offsets)`` and ``run_both(z, a, d, params, offsets)``."""
    checked = _activation_checks(plan, layout, allow_cuda)

    def forward_kernel(z: Any, a: Any, params: Any, offset_list: Any, n: int, b: int) -> None:
        """a = f_j(z), in place; node j's constants start at params[offset_list[j]]."""
        run_forward(z, a, params, checked(("z", "a"), (z, a), 1, params, offset_list, n, b))

    def backward_kernel(z: Any, err: Any, delta: Any, params: Any, offset_list: Any, n: int, b: int) -> None:
        """delta = err * f_j'(z), in place; node j's constants start at params[offset_list[j]]."""
        run_backward(z, err, delta, params, checked(("z", "err", "delta"), (z, err, delta), 1, params, offset_list, n, b))

    def forward_derivative_kernel(z: Any, a: Any, d: Any, params: Any, offset_list: Any, n: int, b: int) -> None:
        """a = f_j(z) and d = f_j'(z) in one pass, in place; the backward pass is then delta = err * d."""
        run_both(z, a, d, params, checked(("z", "a", "d"), (z, a, d), 2, params, offset_list, n, b))

    return forward_kernel, backward_kernel, forward_derivative_kernel


def _loss_params_or_config_values(plan: LayerPlan) -> Callable[[Any, Any], Any]:
    """``f(params, y_pred)``: ``params``, or the loss config's values in ``y_pred``'s dtype (the
    seed's later loss calls leave ``params`` out)."""
    config_values = {np.dtype(t): np.asarray(plan.values[0] or (0.0,), dtype=t) for t in (np.float32, np.float64)}

    def or_config_values(params: Any, y_pred: Any) -> Any:
        if params is not None:
            return params
        return config_values.get(np.dtype(getattr(y_pred, "dtype", np.float64)), config_values[np.dtype(np.float64)])

    return or_config_values


def wrap_loss(plan: LayerPlan, run_forward: Runner, run_backward: Runner, run_both: Runner,
              *, allow_cuda: bool = False) -> tuple[Callable[..., None], ...]:
    """Public loss kernels around ``run_forward(y_pred, y_true, res, params)``,
    ``run_backward(y_pred, y_true, grad, params)`` and ``run_both(y_pred, y_true, res, grad, params)``."""
    n_constants = len(plan.formulas[0].constants)
    or_config_values = _loss_params_or_config_values(plan)

    def forward_kernel(y_pred: Any, y_true: Any, res: Any, params: Any = None) -> None:
        """res = L(y_pred, y_true), element-wise, in place; the constants are params[0:k], sorted by
        name (the config's values if params is omitted)."""
        params = or_config_values(params, y_pred)
        check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true, "res": res}, params, allow_cuda=allow_cuda)
        run_forward(y_pred, y_true, res, params)

    def backward_kernel(y_pred: Any, y_true: Any, grad: Any, params: Any = None) -> None:
        """grad = dL/dy_pred, element-wise, in place; the constants are params[0:k], sorted by name
        (the config's values if params is omitted)."""
        params = or_config_values(params, y_pred)
        check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true, "grad": grad}, params, allow_cuda=allow_cuda)
        run_backward(y_pred, y_true, grad, params)

    def forward_derivative_kernel(y_pred: Any, y_true: Any, res: Any, grad: Any, params: Any = None) -> None:
        """res = L(y_pred, y_true) and grad = dL/dy_pred in one pass, element-wise, in place."""
        params = or_config_values(params, y_pred)
        check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true, "res": res, "grad": grad}, params,
                        allow_cuda=allow_cuda, outputs=2)
        run_both(y_pred, y_true, res, grad, params)

    return forward_kernel, backward_kernel, forward_derivative_kernel


def _needed_entries(constants_per_node: np.ndarray) -> Callable[[np.ndarray], int]:
    """``needed(offsets)``: one past the last ``params`` entry any node's constants occupy (0 without constants)."""
    owners = np.flatnonzero(constants_per_node > 0)
    counts = constants_per_node[owners]
    return lambda offsets: int((offsets[owners] + counts).max()) if owners.size else 0


def wrap_param_activation(plan: LayerPlan, layout: str, run_param_backward: Runner, run_backward_with_params: Runner,
                          *, allow_cuda: bool = False) -> tuple[Callable[..., None], ...]:
    """Public parameter-gradient kernels around ``run_param_backward(z, err, grad_params, params, offsets)``
    and ``run_backward_with_params(z, err, delta, grad_params, params, offsets)``."""
    checked = _activation_checks(plan, layout, allow_cuda)

    def param_backward_kernel(z: Any, err: Any, grad_params: Any, params: Any, offset_list: Any, n: int,
                              b: int) -> None:
        """grad_params[offset_list[j] + i] = sum over the batch of err * df_j/dc_i(z), for each node j and
        each of its constants c_i (float64 sums, deterministic); entries no node owns are left as they are."""
        offsets = checked(("z", "err"), (z, err), 0, params, offset_list, n, b, grad_params)
        run_param_backward(z, err, grad_params, params, offsets)

    def backward_with_params_kernel(z: Any, err: Any, delta: Any, grad_params: Any, params: Any, offset_list: Any,
                                    n: int, b: int) -> None:
        """delta = err * f_j'(z), and grad_params as :func:`param_backward_kernel` sets it, in one pass."""
        offsets = checked(("z", "err", "delta"), (z, err, delta), 1, params, offset_list, n, b, grad_params)
        run_backward_with_params(z, err, delta, grad_params, params, offsets)

    return param_backward_kernel, backward_with_params_kernel


def wrap_param_loss(plan: LayerPlan, run_param_backward: Runner, run_backward_with_params: Runner,
                    *, allow_cuda: bool = False) -> tuple[Callable[..., None], ...]:
    """Public parameter-gradient kernels of a loss around ``run_param_backward(y_pred, y_true, grad_params,
    params)`` and ``run_backward_with_params(y_pred, y_true, grad, grad_params, params)``."""
    n_constants = len(plan.formulas[0].constants)
    or_config_values = _loss_params_or_config_values(plan)

    def param_backward_kernel(y_pred: Any, y_true: Any, grad_params: Any, params: Any = None) -> None:
        """grad_params[i] = the sum over all elements of dL/dc_i (float64 sums, deterministic), for each
        constant c_i of the loss (sorted by name; the config's values if params is omitted)."""
        params = or_config_values(params, y_pred)
        dtype = check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true}, params, allow_cuda=allow_cuda,
                                outputs=0)
        check_grad_params(grad_params, dtype, n_constants, {"y_pred": y_pred, "y_true": y_true, "params": params},
                          allow_cuda=allow_cuda)
        run_param_backward(y_pred, y_true, grad_params, params)

    def backward_with_params_kernel(y_pred: Any, y_true: Any, grad: Any, grad_params: Any, params: Any = None) -> None:
        """grad = dL/dy_pred, element-wise, and grad_params as :func:`param_backward_kernel` sets it, in one pass."""
        params = or_config_values(params, y_pred)
        dtype = check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true, "grad": grad}, params,
                                allow_cuda=allow_cuda)
        check_grad_params(grad_params, dtype, n_constants,
                          {"y_pred": y_pred, "y_true": y_true, "grad": grad, "params": params}, allow_cuda=allow_cuda)
        run_backward_with_params(y_pred, y_true, grad, grad_params, params)

    return param_backward_kernel, backward_with_params_kernel
