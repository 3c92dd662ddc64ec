"""One printer from SymPy expressions to kernel statements, for the numba (CPU) and CUDA targets.

It prints plain Python that both ``numba.njit`` and ``numba.cuda.jit`` compile, in the style a person
would write a kernel by hand:

* every literal is ``T(...)``, where ``T`` is the kernel's element type (``z.dtype.type``), so a
  float32 kernel does its arithmetic in float32 (a bare ``0.5`` would promote it to float64);
* small integer powers become multiplications and ``x**0.5`` becomes ``math.sqrt(x)`` (``x**-0.5``
  becomes ``1/math.sqrt(x)``): a power of exactly 1/2 *is* the square root in the formula language,
  NaN for every negative ``x`` including ``-inf`` (where C's ``pow`` would give ``+inf``); other
  powers are ``vm.powi(x, n)`` (integers up to :data:`POWI_MAX`: binary powering, vectorised) or
  ``vm.pow(x, p)`` (C's ``pow``, vectorised for float32) for numba, and ``x**p`` for CUDA;
* every compound operand is parenthesised unless its text is already one parenthesised unit
  (:func:`_is_unit`), so operator precedence never depends on how a sub-expression printed;
* a quotient stays a division (``a/x + b/x`` never shares a ``1/x``, which overflows for a
  subnormal ``x``), except that a constant divisor becomes a multiplication by its reciprocal;
* ``Piecewise`` becomes nested conditional expressions, which LLVM turns into vector selects;
* compositions of exp/log/tanh/sigmoid/softplus are first rewritten into forms with fewer
  transcendental calls and no cancellation (:mod:`symjit_numba.codegen.rewrite`: mish costs one ``exp``);
* common subexpressions (``sympy.cse``) are computed once, as ``t0 = ...`` statements;
* functions come from the target's column of :data:`symjit_numba.functions.FUNCTIONS`.

A formula the printer cannot express raises :class:`~symjit_numba.JITCompilationError`, so the
compiler falls back to the next backend (CPU_PYTHON prints with SymPy's own printer) as it does
for any other compile failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import sympy as sp

from ..errors import JITCompilationError
from ..formulas.resolve import BuiltFormula
from ..functions import FUNCTIONS_BY_SYMPY
from .rewrite import rewrite_block
from .source import BLOCKS, PrintedFormula

__all__ = ["KernelPrinter", "TARGETS", "print_formula", "with_divisions"]

TARGETS = ("numba", "cuda")
#: Integer powers up to this (in absolute value) print as ``vm.powi`` for numba: binary powering,
#: a few multiplications instead of ``exp(n*log|x|)`` (float32 ``x**7``: 0.18 ns against 2.8).
POWI_MAX = 64
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|T\([-+0-9.eE]+\)|T\(-?math\.(inf|nan)\)")
_CALLEE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _is_unit(text: str) -> bool:
    """Whether ``text`` is one operand whatever surrounds it: a name, a literal, a call, or an
    expression in parentheses that enclose all of it.

    A text that merely *starts* with ``(`` is not enough: ``(a + b)*(c + d)`` does, yet ``**``
    applied to it would bind to ``(c + d)`` alone. Printed text holds no strings, so counting
    parentheses is exact.
    """
    callee = _CALLEE.match(text)
    rest = text[callee.end():] if callee else text
    if not rest:
        return bool(callee)
    if not rest.startswith("("):
        return False
    depth = 0
    for position, ch in enumerate(rest):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return position == len(rest) - 1  # the first "(" closes at the very end
    return False


class _Quotient(sp.Function):  # noqa: N801
    """``numerator/denominator`` as one node, so that common-subexpression elimination cannot
    share a reciprocal between products: ``sin(x)/x + sinh(x)/x`` is ``(sin(x) + sinh(x))*(1/x)``
    to ``sympy.cse`` (one ``x**-1`` factor), and ``1/x`` is inf for a subnormal ``x`` where each
    quotient is finite. A division costs a little more than a multiplication; a wrong inf costs more."""

    nargs = 2


def _is_reciprocal_power(factor: sp.Basic) -> bool:
    """``x**-n`` (n a positive integer) or ``x**-0.5``: a division (by x**n, by sqrt(x)) costs no
    pow call. Other negative powers stay powers: ``pow(u, -1.5)`` is finite where ``u**1.5``
    overflows (u = 1e26 in float32)."""
    return (isinstance(factor, sp.Pow) and factor.exp.is_Number and factor.exp < 0
            and (factor.exp.is_integer or float(factor.exp) == -0.5))


def _denominator(factor: sp.Basic) -> sp.Basic | None:
    """What ``factor`` of a product divides by (``x`` for ``x**-1``, ``2`` for ``1/2``), or None."""
    if _is_reciprocal_power(factor):
        return factor.base**-factor.exp
    if isinstance(factor, sp.Rational) and not factor.is_Integer and factor.p == 1:
        return sp.Integer(factor.q)
    if isinstance(factor, sp.Piecewise):
        # SymPy distributes a/Piecewise(...) over the branches (a*Piecewise((1/x, c), ...)), and
        # 1/x is inf for a subnormal x where a/x is finite: divide by the Piecewise instead.
        branches = [_reciprocal(value) for value, _ in factor.args]
        if all(b is not None for b in branches) and not all(value.is_Number for value, _ in factor.args):
            return sp.Piecewise(*zip(branches, (cond for _, cond in factor.args)))
    return None


def _reciprocal(value: sp.Basic) -> sp.Basic | None:
    """``1/value`` for a non-zero number (exact for rationals; within an ulp for floats) or for a
    product with a denominator (``x/tan(x)`` gives ``tan(x)/x``; each factor inverted, nothing
    expanded), or None (a sum, a function: inverting would add a rounding, or expand)."""
    if value.is_Number:
        if value.is_zero or not value.is_finite:
            return None
        return 1 / value if value.is_Rational else sp.Float(1 / float(value))
    if isinstance(value, sp.Pow) and value.exp.is_Number and value.exp < 0:
        return value.base**-value.exp  # any negative power: the branch is a pow call either way
    if isinstance(value, sp.Piecewise):
        return _denominator(value)
    if isinstance(value, sp.Mul) and any(_denominator(factor) is not None for factor in value.args):
        return sp.Mul(*(1 / factor for factor in value.args))
    return None


def with_divisions(expr: sp.Basic) -> sp.Basic:
    """``expr`` with each product by a Piecewise of reciprocals written as a division by a Piecewise.

    For printers that keep SymPy's tree (CPU_PYTHON's lambdify): the result is unevaluated, and
    prints as ``a/select(...)`` instead of ``a*select(..., 1/x, ...)``.
    """
    if not expr.args or isinstance(expr, sp.Symbol):
        return expr
    if isinstance(expr, sp.Pow) and expr.exp.is_Rational and expr.exp < 0 and not _is_reciprocal_power(expr):
        # SymPy's printer divides by u**(3/2) for u**(-3/2); as a float exponent it stays pow(u, -1.5)
        return sp.Pow(with_divisions(expr.base), sp.Float(expr.exp), evaluate=False)
    args = [with_divisions(a) for a in expr.args]
    if isinstance(expr, sp.Mul) and any(isinstance(a, sp.Piecewise) and _denominator(a) is not None for a in args):
        return sp.Mul(*(sp.Pow(_denominator(a), -1, evaluate=False)
                        if isinstance(a, sp.Piecewise) and _denominator(a) is not None else a for a in args),
                      evaluate=False)
    if args == list(expr.args):
        return expr
    try:
        return expr.func(*args, evaluate=False)  # an evaluated parent would distribute again
    except TypeError:  # nodes without the option (ExprCondPair)
        return expr.func(*args)


def _product(factors: list[sp.Basic]) -> sp.Basic:
    # Unevaluated: SymPy would distribute a number over a sum (Mul(2, x + 1) is 2*x + 2).
    return factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False) if factors else sp.S.One


def _quotients(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every product that has a denominator written as one :class:`_Quotient`."""
    if not expr.args or isinstance(expr, sp.Symbol):
        return expr
    if isinstance(expr, sp.Mul):
        # the factors as SymPy made them: a Piecewise's branches are still plain quotients
        divisors = [_denominator(a) for a in expr.args]
        denominators = [_quotients(d) for d in divisors if d is not None]
        if denominators:
            numerators = [_quotients(a) for a, d in zip(expr.args, divisors) if d is None]
            # A constant divisor (2*sqrt(pi) in gelu') is a multiplication by its reciprocal, as
            # one literal: a division per element costs several multiplications. (Done here, in
            # every backend alike, rather than by a fast-math flag that also rewrites 1/x.)
            constant = sp.Mul(*(d for d in denominators if d.is_number))
            reciprocal = float(1 / constant) if constant != 1 else 1.0
            if constant != 1 and 1e-30 < abs(reciprocal) < 1e30:
                numerators.append(sp.Float(reciprocal))
                denominators = [d for d in denominators if not d.is_number]
            if not denominators:
                return _product(numerators)
            return _Quotient(_product(numerators), _product(denominators))
    args = [_quotients(a) for a in expr.args]
    return expr.func(*args) if args != list(expr.args) else expr


class KernelPrinter:
    """Prints SymPy expressions as kernel statements for one target.

    Parameters
    ----------
    target : {"numba", "cuda"}
        Which column of the function table to use.
    names : mapping of sympy.Symbol to str
        How each free symbol is spelled in the kernel (``num``, ``c_alpha``...).
    """

    def __init__(self, target: str, names: Mapping[sp.Symbol, str]):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target = target
        self.names = dict(names)
        self.statements: list[str] = []
        self._hoisted = 0

    def block(self, exprs: Sequence[sp.Expr]) -> tuple[list[str], list[str]]:
        """Print expressions that share subexpressions.

        Returns
        -------
        statements : list of str
            Assignments ``tK = ...`` to run first, in order.
        results : list of str
            One printed expression per input expression.
        """
        self.statements = []
        exprs = [_quotients(e) for e in rewrite_block(exprs)]  # fewer exp/log/tanh: see codegen/rewrite.py
        replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"), order="none")
        for symbol, value in replacements:
            self.names[symbol] = symbol.name
            self.statements.append(f"{symbol.name} = {self.print(value)}")
        results = [self.print(e) for e in reduced]
        return self.statements, results

    # -- expressions --------------------------------------------------------------------------
    def print(self, expr: sp.Basic) -> str:
        if isinstance(expr, sp.Symbol):
            return self.names[expr]
        if expr.is_Number or isinstance(expr, sp.NumberSymbol) or expr in (sp.S.Infinity, sp.S.NegativeInfinity):
            return self.literal(expr)
        if isinstance(expr, sp.Add):
            return self.add(expr)
        if isinstance(expr, _Quotient):
            return f"({self.wrap(expr.args[0])}/{self.wrap(expr.args[1])})"
        if isinstance(expr, sp.Mul):
            return self.mul(expr)
        if isinstance(expr, sp.Pow):
            return self.pow(expr.base, expr.exp)
        if isinstance(expr, sp.Piecewise):
            return self.piecewise(expr)
        if isinstance(expr, (sp.Max, sp.Min)):
            return self.fold(expr)
        if isinstance(expr, sp.Function):
            return self.function(expr)
        if isinstance(expr, (sp.core.relational.Relational, sp.logic.boolalg.Boolean)):
            return self.condition(expr)  # a condition that CSE made into a temporary
        raise JITCompilationError(f"cannot print {expr} ({type(expr).__name__}) for the {self.target} target")

    def literal(self, value: sp.Basic) -> str:
        number = float(value)
        if number != number:
            return "T(math.nan)"
        if number in (float("inf"), float("-inf")):
            return "T(math.inf)" if number > 0 else "T(-math.inf)"  # one operand, as a base of ** too
        return f"T({number!r})"

    def add(self, expr: sp.Add) -> str:
        terms = sorted(expr.args, key=lambda t: t.could_extract_minus_sign())  # positive terms first
        text = self.print(terms[0])
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                text += f" - {self.wrap(-term)}"
            else:
                text += f" + {self.print(term)}"
        return f"({text})"

    def mul(self, expr: sp.Mul) -> str:
        if expr.could_extract_minus_sign():
            return f"(-{self.wrap(_quotients(-expr))})"
        numerator, denominator = [], []
        for factor in expr.args:
            divisor = _denominator(factor)
            (numerator if divisor is None else denominator).append(factor if divisor is None else divisor)
        top = "*".join(self.wrap(f) for f in numerator) if numerator else "T(1)"
        if not denominator:
            return top
        bottom = "*".join(self.wrap(f) for f in denominator)
        if len(denominator) > 1:
            bottom = f"({bottom})"
        return f"({top}/{bottom})"

    def wrap(self, expr: sp.Basic) -> str:
        """``expr`` printed as one operand: in parentheses unless its text already is one unit."""
        text = self.print(expr)
        return text if _is_unit(text) else f"({text})"

    def pow(self, base: sp.Basic, exponent: sp.Basic) -> str:
        # By value, so that a Float 0.5 (from "num**0.5") is the square root as Rational 1/2 is.
        if exponent.is_Number and abs(float(exponent)) == 0.5:
            root = f"math.sqrt({self.print(base)})"
            return root if exponent > 0 else f"(T(1)/{root})"
        if exponent.is_Integer and 1 <= abs(int(exponent)) <= 4:
            b = self.simple(self.print(base))
            product = "*".join([b] * abs(int(exponent)))
            return f"({product})" if exponent > 0 else f"(T(1)/({product}))"
        if self.target == "numba":  # vectorised for float32; numba's ** is a scalar libm call
            if exponent.is_Integer and abs(int(exponent)) <= POWI_MAX:
                return f"vm.powi({self.print(base)}, {int(exponent)})"
            return f"vm.pow({self.print(base)}, {self.print(exponent)})"
        return f"({self.wrap(base)}**{self.wrap(exponent)})"

    def piecewise(self, expr: sp.Piecewise) -> str:
        text = "T(math.nan)"  # SymPy's value where no condition holds
        for value, condition in reversed(expr.args):
            if condition == sp.true:
                text = self.print(value)
            else:
                text = f"({self.print(value)} if {self.condition(condition)} else {text})"
        return text

    def condition(self, cond: sp.Basic) -> str:
        if isinstance(cond, sp.Symbol):
            return self.names[cond]
        if cond == sp.true:
            return "True"
        if cond == sp.false:
            return "False"
        if isinstance(cond, sp.core.relational.Relational):
            return f"{self.print(cond.lhs)} {cond.rel_op} {self.print(cond.rhs)}"
        if isinstance(cond, (sp.And, sp.Or)):
            joiner = " and " if isinstance(cond, sp.And) else " or "
            return "(" + joiner.join(self.condition(c) for c in cond.args) + ")"
        if isinstance(cond, sp.Not):
            return f"(not {self.condition(cond.args[0])})"
        if isinstance(cond, sp.ITE):
            # SymPy folds a Piecewise inside a comparison (num < Piecewise(...)) into ITE(a, b, c):
            # "b if a else c", a select like any Piecewise.
            a, b, c = (self.condition(arg) for arg in cond.args)
            return f"({b} if {a} else {c})"
        raise JITCompilationError(f"cannot print the condition {cond} for the {self.target} target")

    def fold(self, expr: sp.Basic) -> str:
        template = getattr(FUNCTIONS_BY_SYMPY[type(expr)], self.target)
        args = [self.print(a) for a in expr.args]
        text = args[0]
        for arg in args[1:]:
            text = template.format(self.simple(text), self.simple(arg))
        return text

    def function(self, expr: sp.Function) -> str:
        row = FUNCTIONS_BY_SYMPY.get(type(expr))
        if row is None:
            raise JITCompilationError(f"no {self.target} implementation of {type(expr).__name__}")
        implementation = getattr(row, self.target)
        if isinstance(expr, sp.polygamma):
            if expr.args[0] != 0:
                raise JITCompilationError(f"only polygamma(0, x) (digamma) is implemented, not {expr}")
            expr = sp.Function("digamma")(expr.args[1])
        if isinstance(expr, sp.Heaviside) and len(expr.args) == 2:
            return implementation.replace("T(0.5)", f"T({float(expr.args[1])!r})").format(
                self.simple(self.print(expr.args[0])))
        args = [self.print(a) for a in expr.args]
        if "{" not in implementation:
            return f"{implementation}({', '.join(args)})"
        return implementation.format(*(self.simple(a) for a in args))

    def simple(self, text: str) -> str:
        """A name or literal for ``text``, hoisting an expression into a temporary if needed."""
        if _SIMPLE.fullmatch(text):
            return text
        name = f"h{self._hoisted}"
        self._hoisted += 1
        self.statements.append(f"{name} = {text}")
        return name


def print_formula(built: BuiltFormula, target: str) -> PrintedFormula:
    """Print a parsed formula and its derivatives as kernel statements for ``target``.

    One block per entry of :data:`~symjit_numba.codegen.source.BLOCKS` (the distinct sets of
    quantities the kernel kinds compute: f alone, df alone, f with df, the df/dc of every constant,
    df with them...), each with its own common subexpressions, shared among its quantities.
    """
    names: dict[sp.Symbol, str] = {v: v.name for v in built.variables}
    names.update({c: f"c_{c.name}" for c in built.constants})
    quantities = {"f": [built.expr], "df": [built.derivative], "dc": list(built.constant_derivatives)}
    blocks = {}
    for computes in BLOCKS:
        exprs = [e for quantity in computes for e in quantities[quantity]]
        statements, results = KernelPrinter(target, names).block(exprs) if exprs else ([], [])
        blocks["+".join(computes)] = (*statements, *results)
    return PrintedFormula(built.key.label, built.key.constants, str(built.expr), str(built.derivative), blocks,
                          tuple(map(str, built.constant_derivatives)))
