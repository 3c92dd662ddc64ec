"""One printer from SymPy expressions to kernel statements, for the numba (CPU) and CUDA targets.

It prints plain Python that both ``numba.njit`` and ``numba.cuda.jit`` compile, in the style a person
would write a kernel by hand:

* every literal is ``T(...)``, where ``T`` is the kernel's element type (``z.dtype.type``), so a
  float32 kernel does its arithmetic in float32 (a bare ``0.5`` would promote it to float64);
* small integer powers become multiplications and ``x**0.5`` becomes ``math.sqrt(x)``;
* ``Piecewise`` becomes nested conditional expressions, which LLVM turns into vector selects;
* common subexpressions (``sympy.cse``) are computed once, as ``t0 = ...`` statements;
* functions come from the target's column of :data:`symjit_numba.functions.FUNCTIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import sympy as sp

from ..errors import FormulaParsingError
from ..formulas.resolve import BuiltFormula
from ..functions import FUNCTIONS_BY_SYMPY
from .source import PrintedFormula

__all__ = ["KernelPrinter", "TARGETS", "print_formula"]

TARGETS = ("numba", "cuda")
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|T\([-+0-9.eE]+\)|T\(math\.(inf|nan)\)|-?T\(math\.inf\)")


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
        replacements, reduced = sp.cse(list(exprs), symbols=sp.numbered_symbols("t"), order="none")
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
        raise FormulaParsingError(f"cannot print {expr} ({type(expr).__name__}) for the {self.target} target")

    def literal(self, value: sp.Basic) -> str:
        number = float(value)
        if number != number:
            return "T(math.nan)"
        if number in (float("inf"), float("-inf")):
            return "T(math.inf)" if number > 0 else "-T(math.inf)"
        return f"T({number!r})"

    def add(self, expr: sp.Add) -> str:
        terms = sorted(expr.args, key=lambda t: t.could_extract_minus_sign())  # positive terms first
        text = self.print(terms[0])
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                text += f" - {self.wrap(-term, sp.Add)}"
            else:
                text += f" + {self.print(term)}"
        return f"({text})"

    def mul(self, expr: sp.Mul) -> str:
        if expr.could_extract_minus_sign():
            return f"(-{self.wrap(-expr, sp.Add)})"
        numerator, denominator = [], []
        for factor in expr.args:
            if isinstance(factor, sp.Pow) and factor.exp.is_Number and factor.exp < 0:
                denominator.append(factor.base**-factor.exp)
            elif isinstance(factor, sp.Rational) and not factor.is_Integer and factor.p == 1:
                denominator.append(sp.Integer(factor.q))
            else:
                numerator.append(factor)
        top = "*".join(self.wrap(f, sp.Add) for f in numerator) if numerator else "T(1)"
        if not denominator:
            return top
        bottom = "*".join(self.wrap(f, (sp.Add, sp.Mul)) for f in denominator)
        if len(denominator) > 1:
            bottom = f"({bottom})"
        return f"({top}/{bottom})"

    def wrap(self, expr: sp.Basic, kinds: type | tuple[type, ...]) -> str:
        text = self.print(expr)
        return f"({text})" if isinstance(expr, kinds) and not text.startswith("(") else text

    def pow(self, base: sp.Basic, exponent: sp.Basic) -> str:
        if exponent == sp.S.Half:
            return f"math.sqrt({self.print(base)})"
        if exponent == -sp.S.Half:
            return f"(T(1)/math.sqrt({self.print(base)}))"
        if exponent.is_Integer and 1 <= abs(int(exponent)) <= 4:
            b = self.simple(self.print(base))
            product = "*".join([b] * abs(int(exponent)))
            return f"({product})" if exponent > 0 else f"(T(1)/({product}))"
        return f"({self.wrap(base, (sp.Add, sp.Mul, sp.Pow))}**{self.wrap(exponent, (sp.Add, sp.Mul, sp.Pow))})"

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
        raise FormulaParsingError(f"cannot print the condition {cond}")

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
            raise FormulaParsingError(f"no {self.target} implementation of {type(expr).__name__}")
        implementation = getattr(row, self.target)
        if isinstance(expr, sp.polygamma):
            if expr.args[0] != 0:
                raise FormulaParsingError(f"only polygamma(0, x) (digamma) is implemented, not {expr}")
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
    """Print a parsed formula and its derivative as kernel statements for ``target``.

    Three blocks: f alone, df alone (each with its own common subexpressions, for kernels that
    compute one of them) and f with df (sharing theirs, for kernels that compute both).
    """
    names: dict[sp.Symbol, str] = {v: v.name for v in built.variables}
    names.update({c: f"c_{c.name}" for c in built.constants})
    printed = []
    for exprs in ([built.expr], [built.derivative], [built.expr, built.derivative]):
        statements, results = KernelPrinter(target, names).block(exprs)
        printed.append((*statements, *results))
    return PrintedFormula(built.key.label, built.key.constants, str(built.expr), str(built.derivative), *printed)
