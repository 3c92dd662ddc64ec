"""Named formulas: ``("gelu", {})`` in a config means the formula registered here as ``gelu``.

Definitions match ``torch.nn.functional`` where torch has the function, including the derivative at
kinks (``relu'(0) = 0``, ``leaky_relu'(0) = alpha``), and are written in numerically stable forms:
``sigmoid``/``softplus``/``log1p``/``expm1``/``erfc`` instead of the textbook expressions that
overflow (``log(1+exp(x))``) or cancel (``1+erf(x)``). Piecewise formulas put the argument itself in
the last (``True``) branch, so NaN in gives NaN out.

This module imports no SymPy: a process that finds its kernels in the disk cache never needs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import FormulaParsingError

__all__ = ["NamedFormula", "register_formula", "available_formulas", "lookup", "builtin_formulas", "MODES"]

MODES = ("activation", "loss")


@dataclass(frozen=True)
class NamedFormula:
    """A formula registered under a name, with default values for its constants."""

    name: str
    formula: str
    defaults: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    mode: str = "activation"
    description: str = ""


_REGISTRY: dict[str, NamedFormula] = {}


def register_formula(name: str, formula: str, defaults: dict[str, float] | None = None,
                     mode: str = "activation", description: str = "", *, overwrite: bool = False) -> None:
    """Register a formula under a name, so configs can refer to it as ``(name, {...})``.

    Parameters
    ----------
    name : str
        An identifier (letters, digits, underscores), used in configs.
    formula : str
        The formula in the formula language (``num`` for activations, ``y_pred``/``y_true`` for losses).
    defaults : dict of str to float, optional
        Default values of the formula's constants; a config may override any of them.
    mode : {"activation", "loss"}
        Which kind of compiler may use the formula.
    description : str
        One line shown by :func:`available_formulas` and the docs.
    overwrite : bool
        Replace an existing registration of the same name instead of raising.

    Raises
    ------
    FormulaParsingError
        If the name is not an identifier, is taken (and ``overwrite`` is false), the mode is unknown,
        or the formula does not parse with the given constants.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise FormulaParsingError(f"formula name must be an identifier, got {name!r}")
    if mode not in MODES:
        raise FormulaParsingError(f"mode must be one of {MODES}, got {mode!r}")
    if name in _REGISTRY and not overwrite:
        raise FormulaParsingError(f"a formula named {name!r} is already registered (pass overwrite=True)")
    if _BUILTINS_LOADED:
        from .resolve import check_constants

        defaults = check_constants(name, defaults, mode)
    defaults = {str(k): float(v) for k, v in (defaults or {}).items()}
    entry = NamedFormula(name, formula, MappingProxyType(defaults), mode, description)
    if _BUILTINS_LOADED:
        from .resolve import check_formula  # SymPy is needed only to check user registrations

        check_formula(entry)
    _REGISTRY[name] = entry


def available_formulas(mode: str | None = None) -> dict[str, NamedFormula]:
    """All registered formulas (of one mode if given), by name.

    Examples
    --------
    >>> from symjit_numba import available_formulas
    >>> available_formulas("loss")["huber"].defaults["delta"]
    1.0
    """
    return {n: f for n, f in sorted(_REGISTRY.items()) if mode is None or f.mode == mode}


def lookup(name: str) -> NamedFormula | None:
    """The formula registered as ``name``, or None."""
    return _REGISTRY.get(name)


_BUILTINS_LOADED = False

_BUILTIN_ACTIVATIONS = [
    # name, formula, defaults, description
    ("linear", "num", {}, "identity"),
    ("relu", "Piecewise((0, num <= 0), (num, True))", {}, "max(0, x); derivative 0 at 0, as torch"),
    ("relu6", "Piecewise((0, num <= 0), (6, num >= 6), (num, True))", {}, "min(max(0, x), 6)"),
    ("leaky_relu", "Piecewise((alpha*num, num <= 0), (num, True))", {"alpha": 0.01}, "x, or alpha*x for x <= 0"),
    ("elu", "Piecewise((alpha*expm1(num), num <= 0), (num, True))", {"alpha": 1.0}, "torch.nn.functional.elu"),
    ("selu", "scale*Piecewise((alpha*expm1(num), num <= 0), (num, True))",
     {"alpha": 1.6732632423543772848170429916717, "scale": 1.0507009873554804934193349852946},
     "torch.nn.functional.selu"),
    ("celu", "Piecewise((alpha*expm1(num/alpha), num <= 0), (num, True))", {"alpha": 1.0}, "torch celu"),
    ("sigmoid", "sigmoid(num)", {}, "1/(1+exp(-x))"),
    ("logsigmoid", "-softplus(-num)", {}, "log(sigmoid(x))"),
    ("hardsigmoid", "Piecewise((0, num <= -3), (1, num >= 3), (num/6 + 1/2, True))", {}, "torch hardsigmoid"),
    ("tanh", "tanh(num)", {}, "hyperbolic tangent"),
    ("hardtanh", "Piecewise((min_val, num <= min_val), (max_val, num >= max_val), (num, True))",
     {"min_val": -1.0, "max_val": 1.0}, "clamp(x, min_val, max_val)"),
    ("tanhshrink", "num - tanh(num)", {}, "x - tanh(x)"),
    ("swish", "num*sigmoid(beta*num)", {"beta": 1.0}, "x*sigmoid(beta*x)"),
    ("silu", "num*sigmoid(num)", {}, "x*sigmoid(x)"),
    ("hardswish", "Piecewise((0, num <= -3), (num, num >= 3), (num*(num + 3)/6, True))", {}, "torch hardswish"),
    ("softplus", "softplus(num)", {}, "log(1+exp(x))"),
    ("mish", "num*tanh(softplus(num))", {}, "x*tanh(softplus(x))"),
    ("gelu", "num*ndtr(num)", {}, "exact (erf) GELU, x*Phi(x) = x/2*(1 + erf(x/sqrt(2)))"),
    ("softsign", "num/(1 + Abs(num))", {}, "x/(1+|x|)"),
    ("gaussian", "exp(-num**2)", {}, "exp(-x^2)"),
    ("sine", "sin(num)", {}, "sin(x)"),
]

_BUILTIN_LOSSES = [
    ("mse", "(y_pred - y_true)**2", {}, "squared error, as torch mse_loss(reduction='none')"),
    ("mae", "Abs(y_pred - y_true)", {}, "absolute error, as torch l1_loss(reduction='none')"),
    ("huber", "Piecewise((delta*(Abs(y_pred - y_true) - delta/2), Abs(y_pred - y_true) >= delta), "
              "((y_pred - y_true)**2/2, True))", {"delta": 1.0}, "torch huber_loss(reduction='none')"),
    ("bce", "-(y_true*log(y_pred) + (1 - y_true)*log1p(-y_pred))", {},
     "binary cross-entropy on probabilities in (0, 1) (torch clamps the log at -100; this does not)"),
    ("bce_with_logits", "softplus(y_pred) - y_true*y_pred", {}, "binary cross-entropy on logits, stable"),
    # log1p(2 sinh(d/2)^2) = log(cosh(d)) keeps small residuals exact; the other branch cannot overflow.
    ("log_cosh", "Piecewise((log1p(2*sinh((y_pred - y_true)/2)**2), Abs(y_pred - y_true) < 1), "
                 "(Abs(y_pred - y_true) + softplus(-2*Abs(y_pred - y_true)) - log(2), True))", {},
     "log(cosh(y_pred - y_true)), accurate for small and large residuals"),
]

for _name, _formula, _defaults, _doc in _BUILTIN_ACTIVATIONS:
    register_formula(_name, _formula, _defaults, "activation", _doc)
for _name, _formula, _defaults, _doc in _BUILTIN_LOSSES:
    register_formula(_name, _formula, _defaults, "loss", _doc)
_BUILTINS_LOADED = True


def builtin_formulas() -> list[NamedFormula]:
    """The formulas this module registers, as defined here (whatever was registered since)."""
    return [NamedFormula(name, formula, MappingProxyType(dict(defaults)), mode, doc)
            for mode, entries in (("activation", _BUILTIN_ACTIVATIONS), ("loss", _BUILTIN_LOSSES))
            for name, formula, defaults, doc in entries]
