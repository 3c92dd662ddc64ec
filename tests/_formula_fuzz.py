"""Random formulas of the whole formula language, an independent mpmath reference, and the checks.

Used by ``tests/test_properties.py`` (see its docstring for what is covered and why). Nothing here
imports the library's parser, printer or SymPy: a formula is a tree of tuples, printed to a string
for the library, and evaluated directly in mpmath (with its derivative, built here by the chain
rule with the documented conventions) for the reference. So a parser, SymPy-rewrite, printer or
kernel defect cannot hide in the reference.

Tree nodes (tuples)::

    ("x",)                      the input (printed as the formula's variable: num, x or z)
    ("c", name)                 a declared constant, "a" or "b"
    ("k", text, value)          a literal or math constant: printed text, exact mpmath value
    ("neg", t)
    ("add"|"sub"|"mul"|"div"|"pow", left, right)
    ("f", name, args, spelling) a function of the table (spelling: the name or an alias)
    ("pw", ((value, cond), ...), default)   Piecewise((value, cond), ..., (default, True))
conditions::
    ("cmp", (op, ...), (t0, t1, ...))   a comparison or a chain such as 0 < num <= 1
    ("and"|"or", c1, c2, style)         style "&"/"|" or "and"/"or"
    ("not", c, style)                   style "~" or "not"
    ("bool", True|False)

Error bounds. Each node's reference value comes with a first-order bound on the error a float
evaluation of the *formula as written* can make (running error analysis): every operation adds
``c*u*|v| + c*eta`` (u the unit roundoff of the dtype, eta the smallest subnormal, c = 1 for
+ - * /, 2 for pow, 4 for elementary functions, 16 for the special functions), and a child's error
propagates through the partial derivatives. Inputs and the constants are exact (the reference uses
their float32-rounded values in float32), literals that the dtype cannot represent carry half an
ulp; ``ndtr`` also carries the rounding of ``-x/sqrt(2)`` inside its documented implementation
``0.5*erfc(-x/sqrt(2))`` (about x**2 ulps in the lower tail). The derivative's bound comes from the
same analysis of the derivative tree. Both also allow for the input's own rounding, ``|x*f'(x)|*u``
(``|x*f''(x)|*u`` for the derivative): the kernels evaluate SymPy's canonical form, not the formula
as written (``exp(x)**3`` is ``exp(3*x)``), which is as accurate as the input only.

A point is *checked against the reference* only if the value (or derivative) is defined and finite,
no intermediate leaves the dtype's range, no discrete decision (a Piecewise condition, a Max/Min
tie, sign/Heaviside/Abs' at 0, atan2's cut) lies within the error bound of its switching point
("ambiguous": a kink, branch boundary or pole for this rounding), and the bound is below 1e-3 of the
value (first-order analysis holds). Exact ties (both sides carry no error, e.g. ``Max(num, a)`` at
``num = a``) are checked: that is where the documented conventions apply. The tolerance is
``4*(bound + |x*f'(x)|*u) + 4*eta``.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from dataclasses import dataclass, field

import mpmath
import numpy as np

mp = mpmath.mp

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

PREC = 160  # bits of the reference (float64 needs 53; the margin absorbs cancellation)


def mpf(value) -> mpmath.mpf:
    return mpmath.mpf(value)


@dataclass(frozen=True)
class DType:
    np: type
    u: mpmath.mpf      # unit roundoff
    eta: mpmath.mpf    # smallest subnormal
    max: mpmath.mpf    # largest finite


F64 = DType(np.float64, mpmath.ldexp(1, -53), mpmath.ldexp(1, -1074), mpf(np.finfo(np.float64).max))
F32 = DType(np.float32, mpmath.ldexp(1, -24), mpmath.ldexp(1, -149), mpf(float(np.finfo(np.float32).max)))
DTYPES = {"float64": F64, "float32": F32}


def representable(value: mpmath.mpf, dtype: DType) -> bool:
    if not mpmath.isfinite(value):
        return False
    as_float = float(value) if dtype is F64 else float(np.float32(float(value)))
    return mpf(as_float) == value


# ---------------------------------------------------------------------------------------------
# Functions: value, partial derivatives (for error bounds), cost factor c
# ---------------------------------------------------------------------------------------------

def _pos(x):
    return x > 0


def _gamma_pole(x):
    # below -1e5 every float lies within rounding of a pole (and mpmath's reflection crawls): undefined
    return x <= 0 and (x == mpmath.floor(x) or x < -100000)


def _sigmoid(x):
    if x >= 0:
        return 1 / (1 + mpmath.exp(-x))
    t = mpmath.exp(x)
    return t / (1 + t)


def _softplus(x):
    return mpmath.log1p(mpmath.exp(x)) if x < 0 else x + mpmath.log1p(mpmath.exp(-x))


def _sinc(x):
    return mpf(1) if x == 0 else mpmath.sin(x) / x


def _dsinc(x):
    if abs(x) < mpf("1e-6"):
        return -x / 3 + x**3 / 30
    return (x * mpmath.cos(x) - mpmath.sin(x)) / x**2


def _d2sinc(x):
    if abs(x) < mpf("1e-6"):
        return mpf(-1) / 3 + x**2 / 10
    s, c = mpmath.sin(x), mpmath.cos(x)
    return -s / x - 2 * c / x**2 + 2 * s / x**3


def _lgamma(x):
    if x > 0:
        return mpmath.loggamma(x)
    return mpmath.log(abs(mpmath.gamma(x)))


TINY = mpf(10) ** -6   # below this, the gamma family uses its Laurent series (mpmath's psi crawls near 0)


def _digamma0(x):
    return -1 / x - mpmath.euler + mpmath.pi**2 / 6 * x - mpmath.zeta(3) * x**2


def _small(series, full):
    return lambda x: series(x) if 0 < abs(x) < TINY else full(x)


# name: (value(x) or None outside the real domain, derivative(x) or None at a pole, c)
#: digamma and trigamma (polygamma(0|1, x)), with the series at 0 where x is tiny.
_DIGAMMA = _small(_digamma0, lambda x: None if _gamma_pole(x) else mpmath.digamma(x))
_TRIGAMMA = _small(lambda x: 1 / x**2 + mpmath.pi**2 / 6 - 2 * mpmath.zeta(3) * x, lambda x: None if _gamma_pole(x) else mpmath.polygamma(1, x))

UNARY = {
    "exp": (mpmath.exp, mpmath.exp, 4),
    "log": (lambda x: mpmath.log(x) if x > 0 else None, lambda x: 1 / x if x > 0 else None, 4),
    "log1p": (lambda x: mpmath.log1p(x) if x > -1 else None, lambda x: 1 / (1 + x) if x > -1 else None, 4),
    "expm1": (mpmath.expm1, mpmath.exp, 4),
    "sqrt": (lambda x: mpmath.sqrt(x) if x >= 0 else None, lambda x: 1 / (2 * mpmath.sqrt(x)) if x > 0 else None, 1),
    "Abs": (abs, lambda x: mpf(mpmath.sign(x)), 0),
    "sin": (mpmath.sin, mpmath.cos, 4),
    "cos": (mpmath.cos, lambda x: -mpmath.sin(x), 4),
    "tan": (mpmath.tan, lambda x: 1 + mpmath.tan(x) ** 2, 4),
    "asin": (lambda x: mpmath.asin(x) if abs(x) <= 1 else None,
             lambda x: 1 / mpmath.sqrt(1 - x**2) if abs(x) < 1 else None, 4),
    "acos": (lambda x: mpmath.acos(x) if abs(x) <= 1 else None,
             lambda x: -1 / mpmath.sqrt(1 - x**2) if abs(x) < 1 else None, 4),
    "atan": (mpmath.atan, lambda x: 1 / (1 + x**2), 4),
    "sinh": (mpmath.sinh, mpmath.cosh, 4),
    "cosh": (mpmath.cosh, mpmath.sinh, 4),
    "tanh": (mpmath.tanh, lambda x: 1 - mpmath.tanh(x) ** 2, 4),
    "asinh": (mpmath.asinh, lambda x: 1 / mpmath.sqrt(x**2 + 1), 4),
    "acosh": (lambda x: mpmath.acosh(x) if x >= 1 else None, lambda x: 1 / mpmath.sqrt(x**2 - 1) if x > 1 else None, 4),
    "atanh": (lambda x: mpmath.atanh(x) if abs(x) < 1 else None, lambda x: 1 / (1 - x**2) if abs(x) < 1 else None, 4),
    "erf": (mpmath.erf, lambda x: 2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x), 16),
    "erfc": (mpmath.erfc, lambda x: -2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x), 16),
    "ndtr": (lambda x: mpmath.erfc(-x / mpmath.sqrt(2)) / 2, lambda x: mpmath.npdf(x), 16),
    "sinc": (_sinc, _dsinc, 16),
    "dsinc": (_dsinc, _d2sinc, 16),   # internal: sinc's derivative
    "gamma": (_small(lambda x: 1 / x - mpmath.euler + (mpmath.euler**2 / 2 + mpmath.pi**2 / 12) * x, lambda x: None if _gamma_pole(x) else mpmath.gamma(x)),
              _small(lambda x: -1 / x**2, lambda x: None if _gamma_pole(x) else mpmath.gamma(x) * mpmath.digamma(x)),
              16),
    "loggamma": (_small(lambda x: -mpmath.log(abs(x)) - mpmath.euler * x + mpmath.pi**2 / 12 * x**2, lambda x: None if _gamma_pole(x) else _lgamma(x)),
                 _DIGAMMA,
                 16),
    "digamma": (_DIGAMMA, _TRIGAMMA, 16),  # internal
    "trigamma": (_TRIGAMMA,
                 _small(lambda x: -2 / x**3 - 2 * mpmath.zeta(3), lambda x: None if _gamma_pole(x) else mpmath.polygamma(2, x)),
                 16),  # internal: digamma's derivative (the derivative's input-rounding allowance)
    "d2sinc": (_d2sinc, lambda x: x / 5 - x**3 / 42 if abs(x) < mpf("1e-6") else mpmath.diff(_sinc, x, 3), 16),  # internal
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)), 4),
    "softplus": (_softplus, _sigmoid, 4),
}
HUGE = mpf(10) ** 5
#: Values of functions at |x| > HUGE (sign s, argument x); None where every dtype overflows.
SATURATING = {
    "exp": lambda s, x: None if s > 0 else mpf(0),
    "expm1": lambda s, x: None if s > 0 else mpf(-1),
    "sinh": lambda s, x: None,
    "cosh": lambda s, x: None,
    "tanh": lambda s, x: mpf(s),
    "erf": lambda s, x: mpf(s),
    "erfc": lambda s, x: mpf(0) if s > 0 else mpf(2),
    "ndtr": lambda s, x: mpf(1) if s > 0 else mpf(0),
    "sigmoid": lambda s, x: mpf(1) if s > 0 else mpf(0),
    "softplus": lambda s, x: x if s > 0 else mpf(0),
    "gamma": lambda s, x: None if s > 0 or x == mpmath.floor(x) else mpf(0),
}
#: Functions with a discrete value (sign, Heaviside) or several arguments are handled in Evaluator.
PUBLIC_UNARY = [n for n in UNARY if n not in ("dsinc", "digamma", "trigamma", "d2sinc")]
ALIASES = {"Abs": ["abs"], "Max": ["max"], "Min": ["min"], "loggamma": ["lgamma"], "Heaviside": ["heaviside"],
           "ndtr": ["Phi"]}
ALL_FUNCTIONS = sorted(PUBLIC_UNARY + ["sign", "Heaviside", "Max", "Min", "atan2"])


# ---------------------------------------------------------------------------------------------
# Tree helpers
# ---------------------------------------------------------------------------------------------

X = ("x",)


def lit(text: str, value=None):
    """A literal: its value is a decimal string or a function, made an mpf at the working precision."""
    return ("k", text, text.strip("()") if value is None else value)


def kvalue(value):
    if isinstance(value, str):
        if value == "1/3":
            return mpf(1) / 3
        return mpf(value)
    return value() if callable(value) else mpf(value)


ZERO, ONE, TWO = lit("0"), lit("1"), lit("2")
MATH_CONSTANTS = {"pi": lambda: +mpmath.pi, "e": lambda: +mpmath.e, "tau": lambda: 2 * mpmath.pi,
                  "phi": lambda: (1 + mpmath.sqrt(5)) / 2}


def depends(t) -> bool:
    kind = t[0]
    if kind == "x":
        return True
    if kind in ("c", "k", "bool"):
        return False
    if kind == "f":
        return any(depends(a) for a in t[2])
    if kind == "pw":
        return any(depends(v) or depends(c) for v, c in t[1]) or depends(t[2])
    if kind == "cmp":
        return any(depends(a) for a in t[2])
    if kind == "not":
        return depends(t[1])
    return any(depends(a) for a in t[1:] if isinstance(a, tuple))


def to_text(t, var: str = "num", power: str = "**") -> str:
    def p(n):
        kind = n[0]
        if kind == "x":
            return var
        if kind == "c":
            return n[1]
        if kind == "k":
            return n[1]
        if kind == "neg":
            return f"(-{p(n[1])})"
        if kind in ("add", "sub", "mul", "div"):
            op = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
            return f"({p(n[1])} {op} {p(n[2])})"
        if kind == "pow":
            return f"({p(n[1])}){power}({p(n[2])})"
        if kind == "f":
            return f"{n[3]}({', '.join(p(a) for a in n[2])})"
        if kind == "pw":
            pieces = ", ".join(f"({p(v)}, {c_(c)})" for v, c in n[1])
            return f"Piecewise({pieces}, ({p(n[2])}, True))"
        raise ValueError(n)

    def c_(c):
        kind = c[0]
        if kind == "cmp":
            out = p(c[2][0])
            for op, operand in zip(c[1], c[2][1:]):
                out += f" {op} {p(operand)}"
            return out
        if kind in ("and", "or"):
            return f"({c_(c[1])}) {c[3]} ({c_(c[2])})"
        if kind == "not":
            return f"{c[2]}({c_(c[1])})" if c[2] == "~" else f"not ({c_(c[1])})"
        if kind == "bool":
            return str(c[1])
        raise ValueError(c)

    return p(t)


def literals(t) -> list:
    """Literal values of the tree (for points exactly at its kinks)."""
    out = []

    def walk(n):
        if isinstance(n, tuple) and n and isinstance(n[0], str):
            if n[0] == "k":
                out.append(n[2])
            for child in n[1:]:
                if isinstance(child, tuple):
                    walk(child)
    walk(t)
    return out


VALUE_KINDS = {"x", "c", "k", "neg", "add", "sub", "mul", "div", "pow", "f", "pw"}
COND_KINDS = {"cmp", "and", "or", "not", "bool"}


def _is_node(n):
    return isinstance(n, tuple) and n and isinstance(n[0], str) and n[0] in VALUE_KINDS | COND_KINDS


def nodes_with_paths(t, path=()):
    """Every value or condition node of a tree and its path (indices into the nested tuples)."""
    if _is_node(t):
        yield path, t
    if isinstance(t, tuple) and not (t and t[0] == "k"):
        for i, child in enumerate(t):
            if isinstance(child, tuple):
                yield from nodes_with_paths(child, path + (i,))


def replace_at(t, path, new):
    if not path:
        return new
    i = path[0]
    return t[:i] + (replace_at(t[i], path[1:], new),) + t[i + 1:]


def shrink_candidates(node):
    """Smaller replacements of a node of the same category (value or condition)."""
    inner = [n for _, n in nodes_with_paths(node) if n is not node]
    if node[0] in COND_KINDS:
        return [n for n in inner if n[0] in COND_KINDS][:6] + [("bool", True), ("bool", False)]
    return [n for n in inner if n[0] in VALUE_KINDS][:8] + [X, ONE]


# ---------------------------------------------------------------------------------------------
# The derivative, by the chain rule, with the documented conventions
# ---------------------------------------------------------------------------------------------

def _add(a, b):
    if a is ZERO:
        return b
    if b is ZERO:
        return a
    return ("add", a, b)


def _sub(a, b):
    if b is ZERO:
        return a
    if a is ZERO:
        return ("neg", b)
    return ("sub", a, b)


def _mul(a, b):
    if a is ZERO or b is ZERO:
        return ZERO
    if a is ONE:
        return b
    if b is ONE:
        return a
    return ("mul", a, b)


def _fn(name, *args):
    return ("f", name, tuple(args), name)


def _flatten(t, name):
    """Max/Min arguments as SymPy holds them: nested ones flattened, duplicates removed."""
    if t[0] == "f" and t[1] == name:
        out = []
        for arg in t[2]:
            for a in _flatten(arg, name):
                if a not in out:
                    out.append(a)
        return out
    return [t]


def derivative(t, memo=None):
    """d t / d x as a tree (ZERO where t does not depend on x)."""
    memo = {} if memo is None else memo
    key = id(t)
    if key in memo:
        return memo[key][1]
    result = _derivative(t, memo)
    memo[key] = (t, result)  # keep t alive so ids stay unique
    return result


def _derivative(t, memo):
    if not depends(t):
        return ZERO
    kind = t[0]
    d = lambda s: derivative(s, memo)  # noqa: E731
    if kind == "x":
        return ONE
    if kind == "neg":
        dd = d(t[1])
        return ZERO if dd is ZERO else ("neg", dd)
    if kind == "add":
        return _add(d(t[1]), d(t[2]))
    if kind == "sub":
        return _sub(d(t[1]), d(t[2]))
    if kind == "mul":
        return _add(_mul(d(t[1]), t[2]), _mul(t[1], d(t[2])))
    if kind == "div":
        num, den = t[1], t[2]
        return _sub(("div", d(num), den) if d(num) is not ZERO else ZERO,
                    ("div", _mul(num, d(den)), ("mul", den, den)) if d(den) is not ZERO else ZERO)
    if kind == "pow":
        base, expo = t[1], t[2]
        if not depends(expo):
            if expo[0] == "k":
                reduced = ("k", "<p-1>", lambda expo=expo: kvalue(expo[2]) - 1)
            else:
                reduced = ("sub", expo, ONE)
            return _mul(_mul(expo, ("pow", base, reduced)), d(base))
        # u**w * (w' log u + w u'/u), as SymPy writes it
        return _mul(t, _add(_mul(d(expo), _fn("log", base)), ("div", _mul(expo, d(base)), base)
                            if d(base) is not ZERO else ZERO))
    if kind == "pw":
        return ("pw", tuple((d(v), c) for v, c in t[1]), d(t[2]))
    assert kind == "f", t
    name, args = t[1], t[2]
    if name in ("Max", "Min"):
        flat = _flatten(t, name)
        total = ZERO
        for i, ui in enumerate(flat):
            term = d(ui)
            for j, uj in enumerate(flat):
                if j != i and term is not ZERO:
                    term = _mul(term, _fn("Heaviside", ("sub", ui, uj) if name == "Max" else ("sub", uj, ui)))
            total = _add(total, term)
        return total
    if name in ("sign", "Heaviside", "abs_slope"):
        return ZERO
    if name == "atan2":
        y, x = args
        r2 = ("add", ("mul", x, x), ("mul", y, y))
        return _add(("div", _mul(x, d(y)), r2) if d(y) is not ZERO else ZERO,
                    ("neg", ("div", _mul(y, d(x)), r2)) if d(x) is not ZERO else ZERO)
    u = args[0]
    outer = {
        "exp": lambda: t,
        "log": lambda: ("div", ONE, u),
        "log1p": lambda: ("div", ONE, ("add", ONE, u)),
        "expm1": lambda: _fn("exp", u),
        "sqrt": lambda: ("div", ONE, ("mul", TWO, t)),
        "Abs": lambda: _fn("abs_slope", u),
        "sin": lambda: _fn("cos", u),
        "cos": lambda: ("neg", _fn("sin", u)),
        "tan": lambda: ("add", ("mul", t, t), ONE),
        "asin": lambda: ("div", ONE, _fn("sqrt", ("sub", ONE, ("mul", u, u)))),
        "acos": lambda: ("neg", ("div", ONE, _fn("sqrt", ("sub", ONE, ("mul", u, u))))),
        "atan": lambda: ("div", ONE, ("add", ("mul", u, u), ONE)),
        "sinh": lambda: _fn("cosh", u),
        "cosh": lambda: _fn("sinh", u),
        "tanh": lambda: ("sub", ONE, ("mul", t, t)),
        "asinh": lambda: ("div", ONE, _fn("sqrt", ("add", ("mul", u, u), ONE))),
        "acosh": lambda: ("div", ONE, _fn("sqrt", ("sub", ("mul", u, u), ONE))),
        "atanh": lambda: ("div", ONE, ("sub", ONE, ("mul", u, u))),
        "erf": lambda: ("mul", lit("<2/sqrt(pi)>", lambda: 2 / mpmath.sqrt(mpmath.pi)), _fn("exp", ("neg", ("mul", u, u)))),
        "erfc": lambda: ("mul", lit("<-2/sqrt(pi)>", lambda: -2 / mpmath.sqrt(mpmath.pi)), _fn("exp", ("neg", ("mul", u, u)))),
        "ndtr": lambda: ("mul", lit("<1/sqrt(2pi)>", lambda: 1 / mpmath.sqrt(2 * mpmath.pi)),
                         _fn("exp", ("mul", lit("-0.5"), ("mul", u, u)))),
        "sinc": lambda: _fn("dsinc", u),
        "dsinc": lambda: _fn("d2sinc", u),
        "digamma": lambda: _fn("trigamma", u),
        "gamma": lambda: ("mul", t, _fn("digamma", u)),
        "loggamma": lambda: _fn("digamma", u),
        "sigmoid": lambda: ("mul", t, ("sub", ONE, t)),
        "softplus": lambda: _fn("sigmoid", u),
    }[name]()
    return _mul(outer, d(u))


# ---------------------------------------------------------------------------------------------
# The reference: value, error bound, ambiguity
# ---------------------------------------------------------------------------------------------

UNDEFINED = None  # value of a node that is not a finite real (NaN, a pole, outside the range)
AMBIGUITY = 4     # a decision within AMBIGUITY * bound of its switching point is ambiguous


@dataclass
class Val:
    v: object            # mpf, or None (undefined)
    e: object            # mpf bound (may be inf)
    amb: bool = False    # a discrete decision depends on rounding


class Evaluator:
    """Evaluates value trees at one point in one dtype, memoised by node."""

    def __init__(self, x, consts: dict, dtype: DType):
        self.x, self.consts, self.dt = x, consts, dtype
        self.memo: dict = {}
        self.keep: list = []

    def round_err(self, v, c):
        return c * (self.dt.u * abs(v) + self.dt.eta)

    overflowed = False   # an intermediate left the dtype's range (NaN or inf is then decided by the order of operations)

    def check_range(self, v):
        if v is not None and mpmath.isfinite(v) and abs(v) > self.dt.max:
            self.overflowed = True
        return UNDEFINED if v is None or not mpmath.isfinite(v) or abs(v) > self.dt.max else v

    def ev(self, t) -> Val:
        key = id(t)
        hit = self.memo.get(key)
        if hit is not None:
            return hit[1]
        r = self._ev(t)
        if r.v is not None:
            r.v = self.check_range(r.v)
        if r.v is not None and r.v != 0 and abs(r.v) < self.dt.eta / 2 and t[0] not in ("x", "c", "k"):
            r = Val(mpf(0), r.e + abs(r.v), r.amb)   # underflows to 0 in the dtype
        self.memo[key] = (t, r)
        return r

    def _ev(self, t) -> Val:
        kind = t[0]
        dt = self.dt
        if kind == "x":
            return Val(self.x, mpf(0))
        if kind == "c":
            return Val(self.consts[t[1]], mpf(0))
        if kind == "k":
            v = kvalue(t[2])
            return Val(v, mpf(0) if representable(v, dt) else dt.u * abs(v))
        if kind == "neg":
            a = self.ev(t[1])
            return Val(None if a.v is None else -a.v, a.e, a.amb)
        if kind in ("add", "sub", "mul", "div"):
            a, b = self.ev(t[1]), self.ev(t[2])
            amb = a.amb or b.amb
            if a.v is None or b.v is None:
                return Val(None, mpmath.inf, amb)
            if kind == "add":
                v, e = a.v + b.v, a.e + b.e
            elif kind == "sub":
                v, e = a.v - b.v, a.e + b.e
            elif kind == "mul":
                v, e = a.v * b.v, abs(b.v) * a.e + abs(a.v) * b.e + a.e * b.e
            else:
                if b.v == 0:
                    return Val(None, mpmath.inf, amb)
                if abs(b.v) <= AMBIGUITY * b.e:
                    amb = True   # the sign (or overflow) of the quotient is decided by rounding
                v = a.v / b.v
                e = (a.e + abs(v) * b.e) / abs(b.v) if b.e < abs(b.v) / 2 else mpmath.inf
            # sums are exact in the subnormal range: no eta
            rounding = self.dt.u * abs(v) if kind in ("add", "sub") else self.round_err(v, 1)
            return Val(v, e + rounding, amb)
        if kind == "pow":
            return self._pow(t)
        if kind == "pw":
            amb = False
            for value, cond in t[1]:
                holds, c_amb = self.cond(cond)
                amb = amb or c_amb
                if holds is None:
                    return Val(None, mpmath.inf, amb)
                if holds:
                    r = self.ev(value)
                    return Val(r.v, r.e, amb or r.amb)
            r = self.ev(t[2])
            return Val(r.v, r.e, amb or r.amb)
        assert kind == "f", t
        if t[1] in ("Max", "Min"):
            return self._fn(t[1], [self.ev(a) for a in _flatten(t, t[1])])
        return self._fn(t[1], [self.ev(a) for a in t[2]])

    def _pow(self, t) -> Val:
        a, b = self.ev(t[1]), self.ev(t[2])
        amb = a.amb or b.amb
        if a.v is None or b.v is None:
            return Val(None, mpmath.inf, amb)
        base, expo = a.v, b.v
        integer = expo == mpmath.floor(expo) and b.e == 0
        if (not integer and a.e > 0 and abs(base) <= AMBIGUITY * a.e) or not mpmath.isfinite(a.e + b.e):
            amb = True       # the base's sign (NaN or not) is decided by rounding
        if base == 0:
            if expo < 0 or (expo == 0 and b.e > 0):
                return Val(None, mpmath.inf, amb)
            if expo == 0:
                return Val(mpf(1), mpf(0), amb)
            v = mpf(0)
        elif integer and expo < 0 and abs(expo * mpmath.log(abs(base))) > mpmath.log(self.dt.max):
            # every backend computes x**-n as 1/(x*...*x) (a quotient stays a division: see the
            # printer), so x**n is an intermediate, and here it leaves the dtype's range
            self.overflowed = True
            return Val(None, mpmath.inf, amb)
        elif base < 0:
            if not integer:
                return Val(None, mpmath.inf, amb)
            if abs(expo * mpmath.log(-base)) > HUGE:
                return Val(None, mpmath.inf, amb)
            v = mpmath.power(base, int(expo))
        else:
            magnitude = expo * mpmath.log(base)
            if magnitude > HUGE:
                return Val(None, mpmath.inf, amb)
            v = mpf(0) if magnitude < -HUGE else mpmath.power(base, expo)
        if base < 0 and abs(expo * mpmath.log(-base)) > HUGE:
            return Val(None, mpmath.inf, amb)
        e = mpf(0)
        if a.e > 0:
            if base == 0:
                e += a.e ** expo if expo >= 1 else mpmath.inf
            elif a.e >= abs(base) / 2:
                e = mpmath.inf
            else:
                e += abs(expo * v / base) * a.e
        if b.e > 0:
            e += mpmath.inf if base <= 0 else abs(v * mpmath.log(base)) * b.e
        return Val(v, e + self.round_err(v, 2), amb)

    def _fn(self, name, args: list) -> Val:
        amb = any(a.amb for a in args)
        K = AMBIGUITY
        if name in ("sign", "Heaviside", "abs_slope"):
            u = args[0]
            if u.v is None:
                return Val(None, mpmath.inf, amb)
            near = (u.v == 0 and u.e > 0) or (u.v != 0 and abs(u.v) <= K * u.e)
            if name == "abs_slope":
                # Abs' = sign, 0 at 0; but SymPy drops the Abs of a provably non-negative argument
                # (Abs(Max(x, 0)) is Max(x, 0), whose slope at 0 is 1/2): at an exact zero the
                # convention depends on that simplification
                near = near or u.v == 0
                name = "sign"
            if u.v > 0:
                v = mpf(1)
            elif u.v < 0:
                v = mpf(-1) if name == "sign" else mpf(0)
            else:
                if name == "sign":
                    v = mpf(0)
                else:
                    v = args[1].v if len(args) > 1 else mpf("0.5")
                    if v is None:
                        return Val(None, mpmath.inf, amb)
            return Val(v, mpf(0), amb or near)
        if name in ("Max", "Min"):
            if any(a.v is None for a in args):
                return Val(None, mpmath.inf, amb)
            best = max(args, key=lambda a: a.v) if name == "Max" else min(args, key=lambda a: a.v)
            for other in args:
                if other is not best and other.v != best.v and abs(other.v - best.v) <= K * (other.e + best.e):
                    amb = True
                if other is not best and other.v == best.v and other.e + best.e > 0:
                    amb = True
            if sum(1 for a in args if a.v == best.v) >= 3:
                amb = True   # a tie of three: SymPy's flattening decides how the gradient is split
            return Val(best.v, max(a.e for a in args), amb)
        if name == "atan2":
            y, x = args
            if y.v is None or x.v is None or (y.v == 0 and x.v <= 0):
                return Val(None, mpmath.inf, amb)   # (0, 0) and the cut's sign depend on signed zeros
            if x.v < 0 and abs(y.v) <= K * y.e:
                amb = True
            v = mpmath.atan2(y.v, x.v)
            r2 = x.v**2 + y.v**2
            e = (abs(x.v) * y.e + abs(y.v) * x.e) / r2
            return Val(v, e + self.round_err(v, 4), amb)
        f, df, c = UNARY[name]
        u = args[0]
        if u.v is None:
            return Val(None, mpmath.inf, amb)
        if abs(u.v) > HUGE and name in SATURATING:
            # far beyond any dtype's range: the result overflows or saturates (mpmath would take ages)
            v = SATURATING[name](1 if u.v > 0 else -1, u.v)
            if v is None:
                return Val(None, mpmath.inf, amb)
            if name == "gamma" and u.v < 0 and u.e > 0:
                amb = True   # a pole within the argument's error (0.01 - 1e16 is the integer -1e16 in float64)
            return Val(v, self.round_err(v, c) + u.e * (0 if name not in ("softplus",) else 1), amb)
        if u.e > 0 and name not in ("Abs",):
            # a domain boundary or pole within the argument's error: NaN, inf or finite is decided by rounding
            spread = AMBIGUITY * u.e
            if not mpmath.isfinite(spread) or any((f(u.v + s) is None) != (f(u.v) is None) for s in (-spread, spread)):
                amb = True
            elif name in ("gamma", "loggamma", "digamma") and u.v - spread <= 0 and \
                    mpmath.floor(u.v + spread) >= mpmath.ceil(u.v - spread):
                amb = True   # a pole (a non-positive integer) within the error
        v = f(u.v)
        if v is None:
            return Val(None, mpmath.inf, amb)
        e = mpf(0)
        if u.e > 0:
            slope = df(u.v)
            e = mpmath.inf if slope is None else abs(slope) * u.e
            if name in ("Abs",) and abs(u.v) <= K * u.e:
                e = u.e
        if name == "ndtr":   # 0.5*erfc(-x/sqrt(2)): the rounding of x/sqrt(2) costs x**2 ulps in the lower tail
            e += abs(UNARY["ndtr"][1](u.v) * u.v) * self.dt.u
        return Val(v, e + self.round_err(v, c), amb)

    def cond(self, c):
        """(True/False or None where an operand is undefined, ambiguous)."""
        kind = c[0]
        if kind == "bool":
            return c[1], False
        if kind == "not":
            h, amb = self.cond(c[1])
            return (None if h is None else not h), amb
        if kind in ("and", "or"):
            h1, a1 = self.cond(c[1])
            h2, a2 = self.cond(c[2])
            if h1 is None or h2 is None:
                return None, a1 or a2
            return (h1 and h2) if kind == "and" else (h1 or h2), a1 or a2
        assert kind == "cmp"
        vals = [self.ev(t) for t in c[2]]
        amb = any(v.amb for v in vals)
        if any(v.v is None for v in vals):
            return None, amb
        result = True
        for op, left, right in zip(c[1], vals, vals[1:]):
            diff, err = left.v - right.v, left.e + right.e
            if (diff == 0 and err > 0) or (diff != 0 and abs(diff) <= AMBIGUITY * err):
                amb = True
            result = result and {"<": diff < 0, "<=": diff <= 0, ">": diff > 0, ">=": diff >= 0,
                                 "==": diff == 0, "!=": diff != 0}[op]
        return result, amb


@dataclass
class Expected:
    """The reference of one output at one point: checkable or not, value, tolerance."""

    value: object = None      # mpf, or None when not checkable
    tol: object = None
    amb: bool = False         # a discrete decision is ambiguous: skip class agreement too
    why: str = ""             # why not checkable (for counting)
    overflow: bool = False    # an intermediate leaves the dtype's range: no class agreement either


def expected(val: Val, dt: DType, input_rounding=0) -> Expected:
    """The reference for one output: tolerance ``4*(bound + input_rounding) + 4*eta``."""
    if val.amb:
        return Expected(amb=True, why="ambiguous")
    if val.v is None:
        return Expected(why="undefined")
    if not mpmath.isfinite(val.e) or (val.e > abs(val.v) * mpf("1e-3") and val.e > 64 * dt.eta):
        return Expected(why="ill-conditioned")
    return Expected(val.v, 4 * (val.e + input_rounding) + 4 * dt.eta)


# ---------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------

INT_EXPONENTS = ["2", "3", "(-1)", "(-2)", "4"]
FRACTIONAL_EXPONENTS = ["0.5", "1.5", "2.5", "(-0.5)", "0.25", "(1/3)", "0.75"]
LITERALS = ["0.5", "2", "3", "0.25", "1.5", "0.1", "1e-3", "2.5", "10", "(-1)", "(-2.5)", "(-0.5)", "1"]
CUTS = ["0", "1", "(-1.5)", "0.75", "0.5", "(-0.5)", "2"]
COMPOSITE_FIRST = ["add", "pw", "Max", "Min", "sign", "Heaviside", "sinc", "ndtr", "sub"]
CONST_VALUES_A = [0.75, -1.25, 2.0, 0.3, 1.5, -0.5]
CONST_VALUES_B = [1.5, -0.6, 0.0, 2.5, 3.0, 0.5]


def _literal_value(text):
    return text.strip("()")


class Generator:
    """Random trees over the whole language, from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random):
        self.r = rng

    def literal(self, choices=LITERALS):
        text = self.r.choice(choices)
        if text in MATH_CONSTANTS:
            return ("k", text, MATH_CONSTANTS[text])
        return lit(text)

    def leaf(self):
        roll = self.r.random()
        if roll < 0.6:
            return X
        if roll < 0.78:
            return ("c", self.r.choice("ab"))
        if roll < 0.85:
            name = self.r.choice(list(MATH_CONSTANTS))
            return ("k", name, MATH_CONSTANTS[name])
        return self.literal()

    def constant_subtree(self):
        """A function of a literal (folded by the parser): loggamma(-0.5), Heaviside(2), ..."""
        for _ in range(20):
            name = self.r.choice(PUBLIC_UNARY + ["Heaviside", "sign"])
            t = self.call(name, [self.literal(LITERALS + ["0"])])
            r = Evaluator(mpf(0), {}, F64).ev(t)
            if r.v is not None and not r.amb:
                return t
        return self.literal()

    def call(self, name, args):
        spelling = self.r.choice([name] + ALIASES.get(name, [])) if name in ALIASES else name
        return ("f", name, tuple(args), spelling)

    def tree(self, depth: int, in_minmax: str | None = None):
        if depth <= 0 or self.r.random() < 0.12 * (4 - depth):
            return self.constant_subtree() if self.r.random() < 0.04 else self.leaf()
        roll = self.r.random()
        sub = lambda: self.tree(depth - 1)  # noqa: E731
        if roll < 0.36:
            name = self.r.choice(PUBLIC_UNARY + ["sign", "Heaviside", "atan2"])
            if name == "atan2":
                return self.call(name, [sub(), sub()])
            if name == "Heaviside" and self.r.random() < 0.4:
                return self.call(name, [sub(), self.literal(["0", "1", "0.5", "0.25"])])
            arg = sub()
            if name in ("erfc", "acos", "ndtr", "erf") and self.r.random() < 0.3:
                arg = ("neg", arg)   # odd/reflection rewrites (erfc(-u) -> 2 - erfc(u))
            return self.call(name, [arg])
        if roll < 0.60:
            op = self.r.choice(["add", "sub", "mul", "div"])
            if op == "div" and self.r.random() < 0.3:
                # f(u)/u: shared reciprocals, sin(num)/num + sinh(num)/num
                u = X if self.r.random() < 0.6 else sub()
                return ("div", self.call(self.r.choice(["sin", "sinh", "tan", "expm1", "log1p", "atan", "asinh"]),
                                         [u]), u)
            return (op, sub(), sub())
        if roll < 0.74:
            return self.power(depth)
        if roll < 0.82:
            name = self.r.choice(["Max", "Min"])
            n = 3 if self.r.random() < 0.25 and in_minmax is None else 2
            args = [self.tree(depth - 1, in_minmax=name if in_minmax is None else "both") for _ in range(n)]
            if in_minmax is not None:   # keep the flattened argument count within the grammar's limit
                args = [a if not (a[0] == "f" and a[1] in ("Max", "Min")) else a[2][0] for a in args]
            return self.call(name, args)
        if roll < 0.93:
            return self.piecewise(depth)
        return ("neg", sub())

    def power(self, depth):
        sub = lambda: self.tree(depth - 1)  # noqa: E731
        kind = self.r.random()
        if self.r.random() < 0.35:
            # a product whose first factor prints with parentheses: ((num + 1)*(num + 2))**1.5
            first = self.r.choice(COMPOSITE_FIRST)
            if first in ("add", "sub"):
                head = (first, X, self.literal())
            elif first == "pw":
                head = self.piecewise(1)
            elif first in ("Max", "Min"):
                head = self.call(first, [X, self.literal()])
            else:
                head = self.call(first, [X])
            base = ("mul", head, sub())
        else:
            base = sub()
            if not depends(base) and Evaluator(mpf(0), {"a": mpf(1), "b": mpf(1)}, F64).ev(base).v in (None, 0):
                base = X   # 0**-2 or an undefined constant base: the parser rightly refuses the formula
        if kind < 0.3:
            expo = self.literal(INT_EXPONENTS)
        elif kind < 0.7:
            text = self.r.choice(FRACTIONAL_EXPONENTS)
            expo = ("k", text, _literal_value(text))
        else:
            expo = self.r.choice([("c", "a"), ("c", "b"), X, sub()])
            if depends(expo) or expo[0] != "k":
                # no negative literal base with a symbolic exponent (its derivative is complex)
                if base[0] == "k" and kvalue(base[2]) <= 0:
                    base = X
        return ("pow", base, expo)

    def condition(self, depth):
        roll = self.r.random()
        if roll < 0.12:
            c1, c2 = self.condition(depth), self.condition(depth)
            op = self.r.choice(["and", "or"])
            style = self.r.choice(["&", "|"] if op == "and" else ["|"]) if self.r.random() < 0.6 else op
            if op == "and" and style == "|":
                style = "&"
            return (op, c1, c2, style)
        if roll < 0.17:
            return ("not", self.condition(depth), self.r.choice(["~", "not"]))
        if roll < 0.19:
            return ("bool", False)
        ops = ["<", "<=", ">", ">=", "==", "!="]
        if roll < 0.3:   # a chain: lo < num <= hi
            lo, hi = sorted(self.r.sample([-1.5, -0.5, 0, 0.5, 1, 2], 2))
            fmt = lambda v: f"({v})" if v < 0 else str(v)  # noqa: E731
            return ("cmp", (self.r.choice(["<", "<="]), self.r.choice(["<", "<="])),
                    (lit(fmt(lo)), X, lit(fmt(hi))))
        if roll < 0.7:
            cut = self.r.choice([lit(c) for c in CUTS] + [("c", "a"), ("c", "b")])
            return ("cmp", (self.r.choice(ops[:4] + ops[:4] + ops[4:]),), (X, cut))
        # any expressions, a Piecewise among them possibly (nested Piecewise in a condition)
        left = self.tree(max(depth - 1, 1))
        right = self.piecewise(1) if self.r.random() < 0.3 else self.r.choice([lit(c) for c in CUTS] + [("c", "a")])
        return ("cmp", (self.r.choice(ops[:4]),), (left, right))

    def piecewise(self, depth):
        n = 1 if self.r.random() < 0.6 else 2
        pieces = tuple((self.tree(depth - 1), self.condition(depth)) for _ in range(n))
        default = X if self.r.random() < 0.3 else self.tree(depth - 1)
        return ("pw", pieces, default)

    def formula(self, depth=4):
        for _ in range(100):
            t = self.tree(depth)
            if depends(t) and _size(t) <= 40 and _minmax_ok(t) and _literal_parts_real(t):
                return t
        return X


def _literal_parts_real(t) -> bool:
    """Whether every sub-expression of literals only (folded by the parser) is a finite real."""
    with mp.workprec(PREC):
        evaluator = Evaluator(mpf(0), {}, F64)
        ok = True

        def walk(n):
            nonlocal ok
            if not (isinstance(n, tuple) and n and isinstance(n[0], str)) or not ok:
                return
            if n[0] in ("neg", "add", "sub", "mul", "div", "pow", "f") and not depends(n) and not _constants(n):
                if evaluator.ev(n).v is None:
                    ok = False
                return
            for child in n[1:]:
                if isinstance(child, tuple):
                    if child and isinstance(child[0], tuple):
                        for item in child:
                            for sub in (item if item and isinstance(item[0], tuple) else (item,)):
                                walk(sub)
                    else:
                        walk(child)
        walk(t)
        return ok


def _constants(t) -> set:
    out = set()

    def walk(n):
        if isinstance(n, tuple) and n:
            if n[0] == "c" and len(n) == 2:
                out.add(n[1])
            for child in n:
                if isinstance(child, tuple):
                    walk(child)
    walk(t)
    return out


def _size(t):
    if not isinstance(t, tuple) or not t or not isinstance(t[0], str):
        return 0
    return 1 + sum(_size(c) for c in t[1:] if isinstance(c, tuple)) + (
        sum(_size(a) for a in t[2]) if t[0] == "f" else 0) + (
        sum(_size(v) + _size(c) for v, c in t[1]) if t[0] == "pw" else 0)


def _minmax_ok(t, limit=4):
    ok = True

    def walk(n):
        nonlocal ok
        if not isinstance(n, tuple) or not n or not isinstance(n[0], str):
            return
        if n[0] == "f" and n[1] in ("Max", "Min") and len(_flatten(n, n[1])) > limit:
            ok = False
        for c in n[1:]:
            if isinstance(c, tuple):
                if c and isinstance(c[0], tuple):
                    for item in c:
                        if isinstance(item, tuple):
                            for x in (item if item and isinstance(item[0], tuple) else (item,)):
                                walk(x)
                else:
                    walk(c)
    walk(t)
    return ok


@dataclass
class Case:
    """One generated formula: its tree, text, constants and the points it is evaluated at."""

    ident: str
    tree: tuple
    text: str
    a: float
    b: float
    points: np.ndarray = field(default=None)

    @property
    def config(self):
        used = _constants(self.tree)
        return (self.text, {name: value for name, value in (("a", self.a), ("b", self.b)) if name in used})


SPECIAL_POINTS = [0.0, -0.0, 1e-8, -1e-8, 1e-39, -1e-39, 1e-310, -1e-310, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5,
                  20.0, -20.0, 60.0, -60.0, 1e4, -1e4, math.nan, math.inf, -math.inf]


def make_case(ident: str, tree, rng: random.Random, text: str | None = None, a=None, b=None) -> Case:
    var = rng.choice(["num", "num", "x", "z"])
    power = rng.choice(["**", "**", "^"])
    text = text if text is not None else to_text(tree, var, power)
    a = rng.choice(CONST_VALUES_A) if a is None else a
    b = rng.choice(CONST_VALUES_B) if b is None else b
    kinks = sorted({float(v) for v in map(kvalue, literals(tree)) if abs(v) < 100} | {a, b, -a, 0.5 * a})
    extra = [float(k) for k in kinks][:8]
    extra += [rng.uniform(-3, 3) for _ in range(8 - len(extra))]
    randoms = [rng.uniform(-3, 3) for _ in range(6)] + \
              [rng.choice([-1, 1]) * 10 ** rng.uniform(-6, 2.5) for _ in range(5)] + \
              [rng.uniform(0.9, 1.1) * rng.choice([a, 1.0, -1.0])]
    points = np.array(SPECIAL_POINTS + extra + randoms, dtype=np.float64)
    return Case(ident, tree, text, a, b, points)


def generate(count: int, seed: int) -> list[Case]:
    cases = []
    for i in range(count):
        rng = random.Random(f"{seed}-{i}")
        tree = Generator(rng).formula()
        cases.append(make_case(f"seed {seed} #{i}", tree, rng))
    return cases


# ---------------------------------------------------------------------------------------------
# Running the kernels
# ---------------------------------------------------------------------------------------------

OUTPUTS = ("forward", "backward", "fused value", "fused derivative")
CLASS_NAMES = {0: "finite", 1: "nan", 2: "+inf", 3: "-inf"}


def value_class(x: float) -> int:
    if math.isnan(x):
        return 1
    if math.isinf(x):
        return 2 if x > 0 else 3
    return 0


def run_layer(compiler, z: np.ndarray):
    """All four outputs of a node-major layer on z (n, b)."""
    params, offsets = compiler.make_params(z.dtype)
    n, b = z.shape
    fwd, bwd, both_a, both_d = (np.full_like(z, 12345.0) for _ in range(4))
    compiler.forward_kernel(z, fwd, params, offsets, n, b)
    compiler.backward_kernel(z, np.ones_like(z), bwd, params, offsets, n, b)
    compiler.forward_derivative_kernel(z, both_a, both_d, params, offsets, n, b)
    return {"forward": fwd, "backward": bwd, "fused value": both_a, "fused derivative": both_d}


@dataclass
class Finding:
    kind: str        # "refused", "compile", "accuracy", "special values", "forward vs fused"
    backend: str
    dtype: str
    output: str
    case: Case
    point: float
    got: object = None
    want: object = None
    detail: str = ""

    @property
    def group(self):
        return (self.kind, self.backend, self.dtype, self.output)

    @property
    def excluded(self) -> str | None:
        """The documented class this finding belongs to if the long profile excludes it, else None.

        * ``subnormal input``: 0 < |x| < the dtype's smallest normal. SymPy's canonical form is
          not the formula as written: it distributes powers over products (``(u*v)**-2`` is
          ``u**-2*v**-2``) and differentiates ``u**x`` into ``u**x*(log(u) + x*u'/u)``, and
          those intermediates overflow or underflow at a subnormal x where the written formula's
          do not.
        * ``non-finite input``: x = NaN or +-inf (class agreement only, no reference value):
          which of NaN/+-inf/a number comes out of a Piecewise or a power there follows SymPy's
          rewrites of the conditions and C's or numpy's ``pow`` special cases.
        * ``undefined constant``: a formula refused because SymPy folds part of it into an
          undefined constant (``(num - num)**-2`` is ``0**-2``, ``atanh(erf(10))`` is ``atanh(1)``);
          checked by asking SymPy about the constant the message names.
        """
        if self.kind == "refused":
            return "undefined constant" if _names_an_undefined_constant(self.detail) else None
        if self.kind not in ("accuracy", "special values", "forward vs fused"):
            return None   # compile and runtime errors are never excluded
        if isinstance(self.point, float) and not math.isfinite(self.point):
            return "non-finite input"
        tiny = np.finfo(DTYPES[self.dtype].np).tiny if self.dtype in DTYPES else 0.0
        if isinstance(self.point, float) and 0 < abs(self.point) < tiny:
            return "subnormal input"
        return None

    def describe(self):
        return (f"[{self.kind}] {self.backend} {self.dtype} {self.output}: formula {self.case.text!r} "
                f"(a={self.case.a}, b={self.case.b}; {self.case.ident}) at num={self.point!r}: "
                f"got {self.got!r}, want {self.want!r} {self.detail}").rstrip()


#: Names a refusal's constant may use, evaluated in mpmath (not SymPy: see the module docstring).
_CONSTANT_NAMES = {name: getattr(mpmath, name) for name in (
    "exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
    "atanh", "erf", "erfc", "gamma", "loggamma", "pi")}
_CONSTANT_NAMES |= {"lgamma": mpmath.loggamma, "E": mpmath.e, "zoo": mpmath.inf, "oo": mpmath.inf, "I": mpmath.j,
                    "nan": mpmath.nan}


def _names_an_undefined_constant(message: str) -> bool:
    """Whether a refusal names a constant (``constant 0**(-2) is not ...``) that is not a finite
    real number (evaluated in mpmath), or reports a division by zero."""
    if "division by zero" in message or "Invalid comparison of non-real" in message:
        return True   # (the latter: a condition compares a constant that is not real)
    match = re.search(r"constant (.+?) is not a", message)
    if match is None:
        return False
    try:
        with mp.workprec(PREC):
            value = eval(match.group(1), {"__builtins__": {}}, _CONSTANT_NAMES)  # noqa: S307 - our own test's text
    except (ZeroDivisionError, ValueError):   # ValueError: mpmath at a pole (gamma(0))
        return True
    except Exception:  # noqa: BLE001 - a name we do not know: not excluded
        return False
    return not isinstance(value, (int, float, mpmath.mpf)) or not mpmath.isfinite(value)


@dataclass
class Stats:
    formulas: int = 0
    points: int = 0
    checked: int = 0            # (point, output, backend, dtype) compared with the reference
    class_checked: int = 0      # (point, output, dtype) compared between backends
    skipped: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    refused: int = 0
    seconds: dict = field(default_factory=dict)

    def skip(self, why):
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def timed(self, what, start):
        self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - start


def references(case: Case, dt: DType, xs: np.ndarray):
    """Expected value and derivative per point (None entries for non-finite inputs)."""
    with mp.workprec(PREC):
        a_val = mpf(float(dt.np(case.a)))
        b_val = mpf(float(dt.np(case.b)))
        dtree = derivative(case.tree)
        try:
            d2tree = derivative(dtree)
        except KeyError:  # a function without a second derivative here: no allowance for the derivative
            d2tree = None
        out = []
        for x in xs:
            x = float(x)
            if not math.isfinite(x):
                out.append(None)
                continue
            evaluator = Evaluator(mpf(x), {"a": a_val, "b": b_val}, dt)
            value_val = evaluator.ev(case.tree)
            value_overflowed = evaluator.overflowed
            slope_val = evaluator.ev(dtree)
            overflowed = evaluator.overflowed  # (not counting the curvature's intermediates)
            value = expected(value_val, dt, conditioning(x, slope_val, dt))
            value.overflow = value_overflowed
            # a derivative exists only where the function does (SymPy's acosh' is defined below 1)
            if value_val.v is not None:
                curvature = Val(None, mpmath.inf) if d2tree is None else evaluator.ev(d2tree)
                slope = expected(slope_val, dt, conditioning(x, curvature, dt))
            else:   # a derivative where the function has no finite value: no class either (inf*0)
                slope = Expected(amb=True, why="undefined")
            slope.overflow = overflowed
            out.append((value, slope))
        return out


def conditioning(x: float, slope: Val, dt: DType):
    """``|x * slope| * u``: what rounding the input by half an ulp changes an output whose
    derivative is ``slope``. SymPy's canonical form is not the formula as written (``exp(x)**3``
    is ``exp(3*x)``, ``(u*v)**-2`` is ``u**-2*v**-2``), and a correctly rounded evaluation of the
    canonical form may differ from the written one by this much."""
    if slope.v is None or not mpmath.isfinite(slope.v):
        return mpf(0)
    return abs(mpf(x) * slope.v) * dt.u


def check_case_outputs(case: Case, row: int, dtype_name: str, results: dict, refs, stats: Stats,
                       point_values: np.ndarray):
    """Compare one formula's row of every backend's outputs with the reference and each other.

    results: {backend: {output: array (n, b)}}.
    """
    backends = list(results)
    for p, x in enumerate(point_values):
        ref = refs[p]
        for output in OUTPUTS:
            exp_ = None if ref is None else (ref[0] if output in ("forward", "fused value") else ref[1])
            got = {name: float(results[name][output][row, p]) for name in backends}
            # reference
            if exp_ is not None and exp_.value is not None:
                for name, g in got.items():
                    stats.checked += 1
                    if not (math.isfinite(g) and abs(mpf(g) - exp_.value) <= exp_.tol):
                        stats.findings.append(Finding("accuracy", name, dtype_name, output, case, float(x), g,
                                                      float(exp_.value), f"(tolerance {float(exp_.tol):.3g})"))
            elif exp_ is not None:
                stats.skip(exp_.why)
            # special-value agreement between backends and between forward and fused kernels; not
            # where an intermediate of the formula as written leaves the dtype's range: NaN, +-inf
            # or 0 is then decided by the order of the operations, which every backend may choose
            if exp_ is not None and (exp_.amb or exp_.overflow):
                continue
            stats.class_checked += 1
            classes = {name: value_class(g) for name, g in got.items()}
            if len(set(classes.values())) > 1:
                base = "CPU_PYTHON" if "CPU_PYTHON" in classes else backends[0]
                for name, cls in classes.items():
                    if cls != classes[base]:
                        stats.findings.append(Finding("special values", name, dtype_name, output, case, float(x),
                                                      got[name], got[base], f"(want = what {base} gives)"))
        for name in backends:
            for plain, fused in (("forward", "fused value"), ("backward", "fused derivative")):
                g1, g2 = float(results[name][plain][row, p]), float(results[name][fused][row, p])
                which = None if ref is None else (ref[0] if plain == "forward" else ref[1])
                if which is not None and (which.amb or which.overflow):
                    continue
                if value_class(g1) != value_class(g2):
                    stats.findings.append(Finding("forward vs fused", name, dtype_name, plain, case, float(x),
                                                  g1, g2, "(want = what the fused kernel gives)"))


def summarize(stats: Stats, examples_per_group: int = 1) -> str:
    groups: dict = {}
    for f in stats.findings:
        groups.setdefault(f.group, []).append(f)
    excluded: dict = {}
    for f in stats.findings:
        if f.excluded:
            excluded[f.excluded] = excluded.get(f.excluded, 0) + 1
    lines = [f"{stats.formulas} formulas, {stats.points} points per dtype; {stats.checked} outputs compared with "
             f"mpmath, {stats.class_checked} special-value comparisons; skipped: {stats.skipped}; "
             f"{len(stats.findings)} disagreements in {len(groups)} groups, of which in excluded classes: {excluded}"]
    for key, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        formulas = len({f.case.text for f in items})
        lines.append(f"- {' / '.join(key)}: {len(items)} points, {formulas} formulas, e.g.")
        for f in items[:examples_per_group]:
            lines.append(f"    {f.describe()}")
    return "\n".join(lines)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def dump(stats: Stats, path: str) -> None:
    """Every finding as one JSON line (for grouping by root cause outside the test)."""
    import json
    with open(path, "w") as out:
        for f in stats.findings:
            out.write(json.dumps({"kind": f.kind, "backend": f.backend, "dtype": f.dtype, "output": f.output,
                                  "formula": f.case.text, "a": f.case.a, "b": f.case.b, "ident": f.case.ident,
                                  "point": repr(f.point), "got": repr(f.got), "want": repr(f.want),
                                  "detail": f.detail, "tree": repr(f.case.tree)}) + "\n")
