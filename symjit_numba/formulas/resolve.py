"""From user configs to formulas: resolve names, check constants, parse, differentiate.

Resolving happens in two steps so that a warm process never imports SymPy:

1. :func:`resolve_configs` (pure Python) turns ``[(name_or_formula, {const: value}), ...]`` into a
   :class:`LayerPlan`: the unique formulas, each node's formula id, and each node's constant values.
2. :func:`build_formula` (SymPy) parses one unique formula and differentiates it; it runs only when
   the kernels are not already in the disk cache.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Any

from ..errors import CompilationWarning, FormulaParsingError
from .registry import MODES, NamedFormula, lookup

if TYPE_CHECKING:
    import sympy as sp

__all__ = ["FormulaKey", "LayerPlan", "resolve_configs", "named_formula_key", "build_formula", "BuiltFormula", "VARIABLES"]

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


def _fixed_defaults(formula: str, values: Mapping[str, float]) -> str:
    """``formula`` with each named constant in ``values`` replaced by its value, as a literal."""
    for name, value in values.items():
        formula = re.sub(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", f"({float(value)!r})", formula)
    return formula


def named_formula_key(named: NamedFormula, listed: Sequence[str] = ()) -> FormulaKey:
    """The formula a config of a named formula compiles to.

    The constants the config lists are ``params`` entries (sorted by name); every default it leaves
    out is a fixed value in the formula's text, as the seed's layers build ``params`` from the
    config dicts alone. Listed names the formula does not use keep their slot (see
    :func:`resolve_configs`).
    """
    fixed = {name: value for name, value in named.defaults.items() if name not in listed}
    return FormulaKey(_fixed_defaults(named.formula, fixed), tuple(sorted(listed)), named.name)


def _formula_constants(text: str) -> set[str]:
    """The names a formula text uses as values (not as functions, variables or math constants).

    Pure Python on the text, so that resolving configs needs no SymPy: a name followed by ``(`` is
    a function call.
    """
    names = set(re.findall(r"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_]*(?!\s*\(|[A-Za-z0-9_])", text))
    return names - {*ACTIVATION_ALIASES, *VARIABLES["loss"], *MATH_CONSTANTS, "True", "False", "Piecewise"}


def _report_unused(label: str, unused: Sequence[str], used: set[str]) -> None:
    """Warn (or raise, under ``warning_level="error"``) about listed constants a formula ignores."""
    from ..settings import settings

    hints = []
    for name in unused:
        close = difflib.get_close_matches(name, sorted(used), n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    message = (f"{label!r} does not use the constant{'s' * (len(unused) > 1)} {', '.join(hints)}; "
               f"its constants are {sorted(used) or 'none'}. "
               + ("These entries keep their slots in params but change nothing" if len(unused) > 1 else
                  "This entry keeps its slot in params but changes nothing")
               + " (params holds every key of the config's dict, as the seed's layers build it)")
    if settings.warning_level == "error":
        raise FormulaParsingError(message)
    if settings.warning_level == "warn":
        warnings.warn(message, CompilationWarning, stacklevel=4)


def resolve_configs(configs: Sequence[Any], mode: str) -> LayerPlan:
    """Resolve configs into a :class:`LayerPlan` (no SymPy involved).

    A node's ``params`` entries are exactly its config dict's keys, sorted by name. A named
    formula's constant that the dict leaves out takes its default as a fixed value; to train a
    default, list it. A listed constant that the formula does not use keeps its slot, with a
    :class:`~symjit_numba.CompilationWarning` (an error under ``warning_level="error"``).

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
    checked: set[tuple[str, tuple[str, ...]]] = set()
    for position, config in enumerate(configs):
        if not (isinstance(config, (tuple, list)) and len(config) == 2 and isinstance(config[0], str)):
            raise FormulaParsingError(f"config {position} must be a pair (formula_or_name, {{constant: value}}), "
                                      f"got {config!r:.200}")
        label, given = config[0].strip(), check_constants(config[0], config[1], mode)
        named: NamedFormula | None = lookup(label)
        if named is not None and named.mode != mode:
            raise FormulaParsingError(f"{label!r} is {_article(named.mode)} {named.mode} formula, "
                                      f"but this compiler's mode is {mode!r}")
        key = named_formula_key(named, tuple(given)) if named else FormulaKey(label, tuple(sorted(given)), label)
        if (label, key.constants) not in checked:
            checked.add((label, key.constants))
            used = set(named.defaults) if named else _formula_constants(label)
            unused = [name for name in key.constants if name not in used]
            if unused:
                _report_unused(label, unused, used)
        func_ids.append(ids.setdefault(key, len(ids)))
        values.append(tuple(given[n] for n in key.constants))
    return LayerPlan(mode, tuple(ids), tuple(func_ids), tuple(values))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@dataclass(frozen=True)
class BuiltFormula:
    """A parsed formula and its derivative, over the mode's variables and the constants' symbols."""

    key: FormulaKey
    expr: sp.Expr
    derivative: sp.Expr
    variables: tuple[sp.Symbol, ...]
    constants: tuple[sp.Symbol, ...]
    #: d expr / d c for each constant c (in ``constants``' order): what ``param_backward_kernel`` sums.
    constant_derivatives: tuple[sp.Expr, ...] = ()


def build_formula(key: FormulaKey, mode: str) -> BuiltFormula:
    """Parse one formula and differentiate it (d/dnum for activations, d/dy_pred for losses), and
    with respect to each of its constants (for the parameter-gradient kernels).

    ``DiracDelta`` terms (derivatives of ``sign`` and ``Heaviside``) count as 0, and ``Abs``/``sign``
    are differentiated as functions of a real argument (``d|u| = sign(u)*du``; see
    :func:`~symjit_numba.functions.real_derivative`). A power of exactly +-0.5 is the square root
    (its reciprocal): NaN for every negative base, ``-inf`` included. A constant that SymPy
    evaluates to a complex number (``(-0.5)**0.25``) is NaN, as in real arithmetic.

    Raises
    ------
    FormulaParsingError
        If the formula does not parse, mixes ``num``/``x``/``z``, uses an undeclared name, or its
        derivative needs a function no backend implements.
    """
    import sympy as sp

    from ..functions import ALIASES, FUNCTIONS_BY_NAME, FUNCTIONS_BY_SYMPY, real_derivative
    from .grammar import parse_formula

    def square_roots(e: sp.Expr) -> sp.Expr:
        # num**0.5 (a Float exponent) as num**(1/2), which every backend prints as sqrt (numpy's
        # power would give pow(-inf, -0.5) = 0 where the compiled kernels' 1/sqrt gives NaN).
        e = e.replace(lambda p: p.is_Pow and p.exp.is_Float and abs(float(p.exp)) == 0.5,  # any precision
                      lambda p: p.base ** (sp.S.Half if p.exp > 0 else -sp.S.Half))
        # A complex number (SymPy evaluates (-0.001)**0.25 that way, e.g. in a Piecewise branch) is
        # the NaN of real arithmetic, as pow of a negative base is in every backend.
        return e.replace(lambda n: n.is_number and n.has(sp.I), lambda n: sp.nan)

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
    expr = parse_formula(_bare_name_formula(key, mode, names), names)
    if mode == "activation":
        # From the text, not the expression: "num + 0*z" mixes the names even though z cancels.
        used = sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", key.text)) & set(ACTIVATION_ALIASES))
        if len(used) > 1:
            raise FormulaParsingError(f"formula {key.label!r} mixes the variable names {used}; use one of num, x, z")
        if used:
            expr = expr.subs(names[used[0]], variables[0])
    expr = square_roots(expr)

    def differentiate(variable: sp.Symbol) -> sp.Expr:
        # DiracDelta (from sign, Heaviside, and Max/Min) counts as 0: kinks take one side's value.
        return square_roots(real_derivative(expr, variable)).replace(lambda e: isinstance(e, sp.DiracDelta),
                                                                     lambda e: sp.S.Zero)

    derivative = differentiate(variables[0])
    # A derivative with respect to a constant that needs a function no backend has is NaN (the
    # formula itself stays usable; only its parameter gradient is unavailable).
    constant_derivatives = tuple(d if _implementable(d) else sp.nan for d in map(differentiate, constants))
    for sub in sp.preorder_traversal(derivative):
        if isinstance(sub, sp.polygamma) and sub.args[0] != 0:
            raise FormulaParsingError(f"the derivative of {key.label!r} needs {sub}; only polygamma(0, x) "
                                      "(digamma) is implemented")
        if isinstance(sub, (sp.Derivative, sp.Subs)) or (
            isinstance(sub, sp.Function) and type(sub) not in FUNCTIONS_BY_SYMPY and not isinstance(sub, sp.Piecewise)
        ):
            raise FormulaParsingError(f"the derivative of {key.label!r} needs {sub.func}, which no backend implements")
    return BuiltFormula(key, expr, derivative, variables, constants, constant_derivatives)


def _implementable(expr: sp.Expr) -> bool:
    """Whether every function in ``expr`` has a kernel implementation (see :func:`build_formula`)."""
    import sympy as sp

    from ..functions import FUNCTIONS_BY_SYMPY

    return not any(
        (isinstance(sub, sp.polygamma) and sub.args[0] != 0) or isinstance(sub, (sp.Derivative, sp.Subs))
        or (isinstance(sub, sp.Function) and type(sub) not in FUNCTIONS_BY_SYMPY and not isinstance(sub, sp.Piecewise))
        for sub in sp.preorder_traversal(expr))


def check_formula(entry: NamedFormula) -> None:
    """Parse and differentiate a formula being registered, so mistakes surface at registration."""
    build_formula(FormulaKey(entry.formula, tuple(sorted(entry.defaults)), entry.name), entry.mode)


def _bare_name_formula(key: FormulaKey, mode: str, names: Mapping[str, Any]) -> str:
    """The text to parse for ``key``: a bare one-argument function name ``"cos"`` means ``cos(num)``.

    A bare name that is neither a function, a variable nor a constant is refused here with the
    closest named formulas and functions, since it is most likely a misspelled name.

    Raises
    ------
    FormulaParsingError
        For a bare function name in loss mode, or an unknown bare name.
    """
    from ..functions import ALIASES, FUNCTIONS_BY_NAME
    from .registry import available_formulas

    text = key.text.strip()
    if not _IDENTIFIER.fullmatch(text) or text in names:
        return key.text
    function = FUNCTIONS_BY_NAME.get(ALIASES.get(text, text))
    if function is not None and 1 in function.arity:
        if mode != "activation":
            raise FormulaParsingError(f"the bare function name {text!r} means {text}(num), an activation; a loss "
                                      "is a formula of y_pred and y_true, e.g. 'Abs(y_pred - y_true)'")
        return f"{text}(num)"
    formulas = sorted(available_formulas(mode))
    close = [f for f in formulas if f.lower() == text.lower()] or difflib.get_close_matches(text, formulas, n=2)
    functions = difflib.get_close_matches(text, sorted({*FUNCTIONS_BY_NAME, *ALIASES}), n=2, cutoff=0.6)
    hints = [f"the named formula {c!r}" for c in close] + [f"the function {f!r} (as {f}(num))" for f in functions]
    hint = f"did you mean {' or '.join(hints)}? " if hints else ""
    raise FormulaParsingError(f"{text!r} is not a named {mode} formula, a function or a declared constant; {hint}"
                              f"(named {mode} formulas: {', '.join(formulas)})")
