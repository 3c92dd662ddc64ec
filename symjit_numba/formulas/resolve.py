"""From user configs to formulas: resolve names, check constants, parse, differentiate.

Resolving happens in two steps so that a warm process never imports SymPy:

1. :func:`resolve_configs` (pure Python) turns ``[(name_or_formula, {const: value}), ...]`` into a
   :class:`LayerPlan`: the unique formulas, each node's formula id, and each node's constant values.
2. :func:`build_formula` (SymPy) parses one unique formula and differentiates it; it runs only when
   the kernels are not already in the disk cache.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Any

from ..errors import FormulaParsingError
from .registry import MODES, NamedFormula, lookup

if TYPE_CHECKING:
    import sympy as sp

__all__ = ["FormulaKey", "LayerPlan", "resolve_configs", "build_formula", "BuiltFormula", "VARIABLES"]

#: The variables of each mode, in kernel argument order; activations also accept the aliases.
VARIABLES = {"activation": ("num",), "loss": ("y_pred", "y_true")}
ACTIVATION_ALIASES = ("num", "x", "z")
MATH_CONSTANTS = ("e", "pi", "tau", "phi")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class FormulaKey:
    """What makes two configs share one compiled formula: its text and its constants' names."""

    text: str
    constants: tuple[str, ...]
    label: str  # the name the user gave (a registered name, or the formula itself)

    def __hash__(self) -> int:
        return hash((self.text, self.constants))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FormulaKey) and (self.text, self.constants) == (other.text, other.constants)


@dataclass(frozen=True)
class LayerPlan:
    """Configs resolved without SymPy.

    Attributes
    ----------
    mode : str
        ``"activation"`` or ``"loss"``.
    formulas : tuple of FormulaKey
        The unique formulas, in order of first appearance; a formula's id is its index here.
    func_ids : tuple of int
        For each node (config), the id of its formula.
    values : tuple of tuple of float
        For each node, its constants' initial values, sorted by constant name.
    """

    mode: str
    formulas: tuple[FormulaKey, ...]
    func_ids: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]

    @property
    def n_nodes(self) -> int:
        return len(self.func_ids)

    def constants_per_node(self) -> list[int]:
        return [len(self.formulas[f].constants) for f in self.func_ids]


#: Names a constant may not take (function names are checked when the formula is parsed).
_RESERVED = {*ACTIVATION_ALIASES, *VARIABLES["loss"], *MATH_CONSTANTS, "T", "True", "False", "E", "I"}


def check_constants(label: str, constants: Any, mode: str) -> dict[str, float]:
    """The constants of a config (or a registration's defaults), checked and as floats."""
    if constants is None:
        return {}
    if not isinstance(constants, Mapping):
        raise FormulaParsingError(f"constants of {label!r} must be a dict of name -> number, "
                                  f"got {type(constants).__name__}")
    checked = {}
    for name, value in constants.items():
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
            raise FormulaParsingError(f"constant name {name!r} of {label!r} must be an identifier "
                                      "(letters, digits, underscores; at most 64 characters)")
        if name in _RESERVED:
            raise FormulaParsingError(f"constant name {name!r} of {label!r} is reserved "
                                      "(a variable, math constant or function name)")
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
            raise FormulaParsingError(f"constant {name!r} of {label!r} must be a finite real number, got {value!r}")
        checked[name] = float(value)
    return checked


def resolve_configs(configs: Sequence[Any], mode: str) -> LayerPlan:
    """Resolve configs into a :class:`LayerPlan` (no SymPy involved).

    Raises
    ------
    FormulaParsingError
        If the configs are not a non-empty sequence of ``(str, dict)`` pairs, a named formula is of
        the other mode, a loss has more than one config, or a constant is malformed.
    """
    if mode not in MODES:
        raise FormulaParsingError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Sequence) or len(configs) == 0:
        raise FormulaParsingError("configs must be a non-empty list of (formula_or_name, {constant: value}) pairs")
    if mode == "loss" and len(configs) != 1:
        raise FormulaParsingError(f"a loss takes exactly one config, got {len(configs)}")
    ids: dict[FormulaKey, int] = {}
    func_ids, values = [], []
    for position, config in enumerate(configs):
        if not (isinstance(config, (tuple, list)) and len(config) == 2 and isinstance(config[0], str)):
            raise FormulaParsingError(f"config {position} must be a pair (formula_or_name, {{constant: value}}), "
                                      f"got {config!r:.200}")
        label, given = config
        named: NamedFormula | None = lookup(label.strip())
        if named is not None and named.mode != mode:
            raise FormulaParsingError(f"{label!r} is a {named.mode} formula, but this compiler's mode is {mode!r}")
        merged = dict(named.defaults) if named else {}
        merged.update(check_constants(label, given, mode))
        names = tuple(sorted(merged))
        key = FormulaKey(named.formula if named else label.strip(), names, label.strip())
        func_ids.append(ids.setdefault(key, len(ids)))
        values.append(tuple(merged[n] for n in names))
    return LayerPlan(mode, tuple(ids), tuple(func_ids), tuple(values))


@dataclass(frozen=True)
class BuiltFormula:
    """A parsed formula and its derivative, over the mode's variables and the constants' symbols."""

    key: FormulaKey
    expr: sp.Expr
    derivative: sp.Expr
    variables: tuple[sp.Symbol, ...]
    constants: tuple[sp.Symbol, ...]


def build_formula(key: FormulaKey, mode: str) -> BuiltFormula:
    """Parse one formula and differentiate it (d/dnum for activations, d/dy_pred for losses).

    ``DiracDelta`` terms (derivatives of ``sign`` and ``Heaviside``) count as 0.

    Raises
    ------
    FormulaParsingError
        If the formula does not parse, mixes ``num``/``x``/``z``, uses an undeclared name, or its
        derivative needs a function no backend implements.
    """
    import sympy as sp

    from ..functions import ALIASES, FUNCTIONS_BY_NAME, FUNCTIONS_BY_SYMPY
    from .grammar import parse_formula

    for name in key.constants:
        if name in FUNCTIONS_BY_NAME or name in ALIASES:
            raise FormulaParsingError(f"constant name {name!r} of {key.label!r} is reserved (a function name)")

    variables = tuple(sp.Symbol(v, real=True) for v in VARIABLES[mode])
    names: dict[str, sp.Basic] = {"e": sp.E, "pi": sp.pi, "tau": 2 * sp.pi, "phi": sp.GoldenRatio}
    if mode == "activation":
        names.update({alias: sp.Symbol(alias, real=True) for alias in ACTIVATION_ALIASES})
    else:
        names.update({v.name: v for v in variables})
    constants = tuple(sp.Symbol(c, real=True) for c in key.constants)
    names.update({c.name: c for c in constants})
    expr = parse_formula(key.text, names)
    if mode == "activation":
        # From the text, not the expression: "num + 0*z" mixes the names even though z cancels.
        used = sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", key.text)) & set(ACTIVATION_ALIASES))
        if len(used) > 1:
            raise FormulaParsingError(f"formula {key.label!r} mixes the variable names {used}; use one of num, x, z")
        if used:
            expr = expr.subs(names[used[0]], variables[0])
    derivative = sp.diff(expr, variables[0])
    derivative = derivative.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    for sub in sp.preorder_traversal(derivative):
        if isinstance(sub, sp.polygamma) and sub.args[0] != 0:
            raise FormulaParsingError(f"the derivative of {key.label!r} needs {sub}; only polygamma(0, x) "
                                      "(digamma) is implemented")
        if isinstance(sub, (sp.Derivative, sp.Subs)) or (
            isinstance(sub, sp.Function) and type(sub) not in FUNCTIONS_BY_SYMPY and not isinstance(sub, sp.Piecewise)
        ):
            raise FormulaParsingError(f"the derivative of {key.label!r} needs {sub.func}, which no backend implements")
    return BuiltFormula(key, expr, derivative, variables, constants)


def check_formula(entry: NamedFormula) -> None:
    """Parse and differentiate a formula being registered, so mistakes surface at registration."""
    build_formula(FormulaKey(entry.formula, tuple(sorted(entry.defaults)), entry.name), entry.mode)
