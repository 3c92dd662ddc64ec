"""CPU_PYTHON: ``sympy.lambdify`` to numpy. The reference every other backend is tested against.

A heterogeneous layer is evaluated with one numpy call per unique formula over all of its nodes
(rows in the node-major layout, columns in the batch-major one), with each node's constants
broadcast along the batch. Functions numpy lacks come from :mod:`symjit_numba.mathlib.numpy_special`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ..codegen.printer import with_divisions
from ..formulas.resolve import BuiltFormula, LayerPlan, build_formula
from .kernels import Kernels, wrap_activation, wrap_loss, wrap_param_activation, wrap_param_loss
from .param_sums import Columns

__all__ = ["build"]

METHOD = "CPU_PYTHON"


def _lambdify(built: BuiltFormula, exprs: tuple | None = None) -> tuple[Callable, ...]:
    """numpy functions of (variables..., constants...) for ``exprs`` (default: f and df)."""
    from ..functions import FUNCTIONS
    from ..mathlib import numpy_special

    special = {row.sympy.__name__: getattr(numpy_special, row.numpy.split(".", 1)[1])
               for row in FUNCTIONS if row.numpy.startswith("special.")}
    # SymPy's numpy printer rewrites Heaviside(Piecewise(...)) into nested selects whose
    # conditions are not boolean (numpy.select then raises): call numpy.heaviside directly.
    heaviside = sp.Function("numpy_heaviside")
    special["numpy_heaviside"] = lambda x, at_zero=0.5: np.heaviside(x, at_zero)
    special["select"] = _select
    modules = [special, "numpy"]
    printer = _NumpyPrinter({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
                             "user_functions": {name: name for name in special}})
    arguments = [*built.variables, *built.constants]
    # No cse=True: it turns shared conditions into plain symbols, which SymPy's numpy printer then
    # mishandles inside Heaviside; this backend is the reference, so it stays literal.
    return tuple(sp.lambdify(arguments, with_divisions(e.replace(sp.Heaviside, heaviside)), modules=modules,
                             printer=printer)
                 for e in ((built.expr, built.derivative) if exprs is None else exprs))


class _NumpyPrinter(NumPyPrinter):
    """SymPy's numpy printer, with the fixes a backend that serves as the reference needs.

    Floats print with all their digits (SymPy prints 15, so ``exp(0.1)`` lost 2e-16 of its
    value). An if-then-else inside a condition is ``numpy.where``, and a Piecewise's conditions
    print as they are: SymPy's printer passed them through ``simplify_logic``, which expanded an
    ITE into and/or forms that are false for NaN, or into a Piecewise of booleans that its own
    logic then refused. ``sinc`` is SymPy's ``sin(x)/x`` (SymPy prints ``numpy.sinc(x/pi)``, whose
    rounding of ``x/pi`` costs ``|x|`` ulps near each zero).
    """

    def _print_Float(self, expr: sp.Float) -> str:  # noqa: N802 (SymPy's dispatch name)
        return repr(float(expr))

    def _print_ITE(self, expr: sp.ITE) -> str:  # noqa: N802
        return "{}({}, {}, {})".format(self._module_format("numpy.where"), *map(self._print, expr.args))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:  # noqa: N802
        # SymPy's own prints a condition holding an ITE through simplify_logic, which expands
        # ITE(x < 0, a, b) into (x < 0 & a) | (x >= 0 & b): false for NaN, where the kernels take b.
        conditions = ",".join(self._print(arg.cond) for arg in expr.args)
        values = ",".join(self._print(arg.expr) for arg in expr.args)
        return f"{self._module_format('numpy.select')}([{conditions}], [{values}], default={self._print(sp.S.NaN)})"

    def _print_sinc(self, expr: sp.sinc) -> str:
        return f"sinc({self._print(expr.args[0])})"


def _select(condlist: list, choicelist: list, default: object = np.nan) -> np.ndarray:
    """``numpy.select`` for lambdify, whose conditions may be numeric.

    A condition that compares with a Piecewise (``num > Piecewise(...)``) becomes a Piecewise of
    booleans, which SymPy's numpy printer writes as a nested ``select`` of 0/1 values; numpy.select
    refuses those ("invalid entry in condlist"), so they are made boolean here (their last choice
    is always ``True``: the 0/1 values are exact).
    """
    conditions = [c if np.asarray(c).dtype == bool else np.asarray(c).astype(bool) for c in condlist]
    return np.select(conditions, choicelist, default)


def _node_selectors(plan: LayerPlan) -> list[tuple[int, np.ndarray]]:
    ids = np.asarray(plan.func_ids)
    return [(fid, np.flatnonzero(ids == fid)) for fid in range(len(plan.formulas))]


def build(plan: LayerPlan, layout: str = "node_major", device_id: int = 0) -> Kernels:
    """Build CPU_PYTHON kernels for a resolved layer (see :mod:`symjit_numba.backends`)."""
    built = [build_formula(key, plan.mode) for key in plan.formulas]
    functions = [_lambdify(b) for b in built]
    param_kernels = _param_kernels(plan, layout, built)
    if plan.mode == "loss":
        f, df = functions[0]
        n_constants = len(plan.formulas[0].constants)

        def run_loss(function: Callable) -> Callable[..., None]:
            def run(y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, params: np.ndarray) -> None:
                with np.errstate(all="ignore"):
                    constants = [np.broadcast_to(c, y_pred.shape) for c in params[:n_constants]]
                    out[...] = function(y_pred, y_true, *constants)
            return run

        def run_loss_both(y_pred: np.ndarray, y_true: np.ndarray, res: np.ndarray, grad: np.ndarray,
                          params: np.ndarray) -> None:
            y_pred, y_true = _unshared((y_pred, y_true), (res, grad))
            run_loss(f)(y_pred, y_true, res, params)
            run_loss(df)(y_pred, y_true, grad, params)

        return Kernels(METHOD, *wrap_loss(plan, run_loss(f), run_loss(df), run_loss_both),
                       param_backward=param_kernels[0], backward_with_params=param_kernels[1])

    selectors = _node_selectors(plan)
    counts = [len(key.constants) for key in plan.formulas]
    node_axis = 0 if layout == "node_major" else 1

    def evaluate(which: int, z: np.ndarray, params: np.ndarray, offsets: np.ndarray, out: np.ndarray,
                 err: np.ndarray | None) -> None:
        with np.errstate(all="ignore"):
            for fid, nodes in selectors:
                if nodes.size == 0:
                    continue
                inputs = np.take(z, nodes, axis=node_axis)
                # Full-shape (broadcast, not copied) constants: a condition on constants alone must
                # combine with one on the input in numpy.select.
                constants = [np.broadcast_to(np.expand_dims(params[offsets[nodes] + i], 1 - node_axis), inputs.shape)
                             for i in range(counts[fid])]
                values = functions[fid][which](inputs, *constants)
                if err is not None:
                    values = np.take(err, nodes, axis=node_axis) * values
                index = (nodes, slice(None)) if node_axis == 0 else (slice(None), nodes)
                out[index] = values

    def run_forward(z: np.ndarray, a: np.ndarray, params: np.ndarray, offsets: np.ndarray) -> None:
        evaluate(0, z, params, offsets, a, None)

    def run_backward(z: np.ndarray, err: np.ndarray, delta: np.ndarray, params: np.ndarray, offsets: np.ndarray) -> None:
        evaluate(1, z, params, offsets, delta, err)

    def run_both(z: np.ndarray, a: np.ndarray, d: np.ndarray, params: np.ndarray, offsets: np.ndarray) -> None:
        (z,) = _unshared((z,), (a, d))
        evaluate(0, z, params, offsets, a, None)
        evaluate(1, z, params, offsets, d, None)

    return Kernels(METHOD, *wrap_activation(plan, layout, run_forward, run_backward, run_both),
                   param_backward=param_kernels[0], backward_with_params=param_kernels[1])


def _param_kernels(plan: LayerPlan, layout: str, built: list[BuiltFormula]) -> tuple[Callable[..., None], ...]:
    """``param_backward_kernel`` and ``backward_with_params_kernel``: numpy terms in the arrays'
    dtype, as the compiled kernels compute them, summed in float64 (numpy's pairwise sums along the
    batch), then combined into ``grad_params`` as every backend does (:mod:`.param_sums`)."""
    counts = [len(key.constants) for key in plan.formulas]
    derivatives: dict[int, tuple[Callable, ...]] = {}  # lambdified at first use

    def constant_derivatives(fid: int) -> tuple[Callable, ...]:
        if fid not in derivatives:
            derivatives[fid] = _lambdify(built[fid], built[fid].constant_derivatives) if counts[fid] else ()
        return derivatives[fid]

    if plan.mode == "loss":
        f, df = _lambdify(built[0])
        columns = Columns.per_node(np.asarray(counts, dtype=np.int64))
        no_offsets = np.zeros(1, dtype=np.int64)

        def run_loss(y_pred, y_true, grad, grad_params, params):
            sums = np.zeros((1, columns.size))
            with np.errstate(all="ignore"):
                constants = [np.broadcast_to(c, y_pred.shape) for c in params[:counts[0]]]
                for i, derivative in enumerate(constant_derivatives(0)):
                    terms = np.broadcast_to(derivative(y_pred, y_true, *constants), y_pred.shape)
                    sums[0, i] = np.sum(terms, dtype=np.float64)
                if grad is not None:  # after the sums: grad may be y_pred itself
                    grad[...] = df(y_pred, y_true, *constants)
            columns.combine(sums, no_offsets, grad_params)

        return wrap_param_loss(plan, lambda p, t, gp, c: run_loss(p, t, None, gp, c), run_loss)

    selectors = _node_selectors(plan)
    node_counts = np.asarray(plan.constants_per_node(), dtype=np.int64)
    columns = Columns.per_node(node_counts)
    first_column = np.concatenate(([0], np.cumsum(node_counts)[:-1])).astype(np.int64)
    node_axis = 0 if layout == "node_major" else 1
    df_functions = [_lambdify(b)[1] for b in built]

    def run(z, err, delta, grad_params, params, offsets):
        sums = np.zeros((1, columns.size))
        with np.errstate(all="ignore"):
            for fid, nodes in selectors:
                if nodes.size == 0:
                    continue
                inputs = np.take(z, nodes, axis=node_axis)
                errors = np.take(err, nodes, axis=node_axis)
                constants = [np.broadcast_to(np.expand_dims(params[offsets[nodes] + i], 1 - node_axis), inputs.shape)
                             for i in range(counts[fid])]
                for i, derivative in enumerate(constant_derivatives(fid)):
                    terms = errors * np.broadcast_to(derivative(inputs, *constants), inputs.shape)
                    sums[0, first_column[nodes] + i] = np.sum(terms, axis=1 - node_axis, dtype=np.float64)
                if delta is not None:  # after the sums: delta may be z or err itself
                    index = (nodes, slice(None)) if node_axis == 0 else (slice(None), nodes)
                    delta[index] = errors * df_functions[fid](inputs, *constants)
        columns.combine(sums, offsets, grad_params)

    return wrap_param_activation(plan, layout, lambda z, err, gp, params, offsets: run(z, err, None, gp, params, offsets),
                                 run)


def _unshared(inputs: tuple[np.ndarray, ...], outputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The inputs, copied where an output overlaps them: two outputs are written one after the other."""
    return tuple(x.copy() if any(np.may_share_memory(x, out) for out in outputs) else x for x in inputs)
