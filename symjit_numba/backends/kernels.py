"""The seed's kernel signatures, wrapped around a backend's compiled entry points.

Every backend provides plain functions that assume valid arguments (``run_forward``, ``run_backward``,
``run_both``); this module wraps them into the public ``forward_kernel``/``backward_kernel`` with the
seed's signatures, and ``forward_derivative_kernel`` (value and derivative in one pass), running
:mod:`.validation` first, so each backend refuses bad input the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..formulas.resolve import LayerPlan
from .validation import check_activation_call, check_loss_call

__all__ = ["Kernels", "wrap_activation", "wrap_loss"]

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


def wrap_activation(plan: LayerPlan, layout: str, run_forward: Runner, run_backward: Runner, run_both: Runner,
                    *, allow_cuda: bool = False) -> tuple[Callable[..., None], ...]:
    """Public activation kernels around ``run_forward(z, a, params, offsets)``,
    ``run_backward(z, err, delta, params, offsets)`` and ``run_both(z, a, d, params, offsets)``."""
    constants_per_node = np.asarray(plan.constants_per_node(), dtype=np.int64)

    def forward_kernel(z: Any, a: Any, params: Any, offset_list: Any, n: int, b: int) -> None:
        """a = f_j(z), in place; node j's constants start at params[offset_list[j]]."""
        _, offsets = check_activation_call(layout, constants_per_node, {"z": z, "a": a}, params, offset_list, n, b,
                                           allow_cuda=allow_cuda)
        run_forward(z, a, params, offsets)

    def backward_kernel(z: Any, err: Any, delta: Any, params: Any, offset_list: Any, n: int, b: int) -> None:
        """delta = err * f_j'(z), in place; node j's constants start at params[offset_list[j]]."""
        _, offsets = check_activation_call(layout, constants_per_node, {"z": z, "err": err, "delta": delta}, params,
                                           offset_list, n, b, allow_cuda=allow_cuda)
        run_backward(z, err, delta, params, offsets)

    def forward_derivative_kernel(z: Any, a: Any, d: Any, params: Any, offset_list: Any, n: int, b: int) -> None:
        """a = f_j(z) and d = f_j'(z) in one pass, in place; the backward pass is then delta = err * d."""
        _, offsets = check_activation_call(layout, constants_per_node, {"z": z, "a": a, "d": d}, params,
                                           offset_list, n, b, allow_cuda=allow_cuda, outputs=2)
        run_both(z, a, d, params, offsets)

    return forward_kernel, backward_kernel, forward_derivative_kernel


def wrap_loss(plan: LayerPlan, run_forward: Runner, run_backward: Runner, run_both: Runner,
              *, allow_cuda: bool = False) -> tuple[Callable[..., None], ...]:
    """Public loss kernels around ``run_forward(y_pred, y_true, res, params)``,
    ``run_backward(y_pred, y_true, grad, params)`` and ``run_both(y_pred, y_true, res, grad, params)``."""
    n_constants = len(plan.formulas[0].constants)

    def forward_kernel(y_pred: Any, y_true: Any, res: Any, params: Any) -> None:
        """res = L(y_pred, y_true), element-wise, in place; the constants are params[0:k], sorted by name."""
        check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true, "res": res}, params, allow_cuda=allow_cuda)
        run_forward(y_pred, y_true, res, params)

    def backward_kernel(y_pred: Any, y_true: Any, grad: Any, params: Any) -> None:
        """grad = dL/dy_pred, element-wise, in place; the constants are params[0:k], sorted by name."""
        check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true, "grad": grad}, params, allow_cuda=allow_cuda)
        run_backward(y_pred, y_true, grad, params)

    def forward_derivative_kernel(y_pred: Any, y_true: Any, res: Any, grad: Any, params: Any) -> None:
        """res = L(y_pred, y_true) and grad = dL/dy_pred in one pass, element-wise, in place."""
        check_loss_call(n_constants, {"y_pred": y_pred, "y_true": y_true, "res": res, "grad": grad}, params,
                        allow_cuda=allow_cuda, outputs=2)
        run_both(y_pred, y_true, res, grad, params)

    return forward_kernel, backward_kernel, forward_derivative_kernel
