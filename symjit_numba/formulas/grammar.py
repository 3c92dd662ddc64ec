"""Turn an untrusted formula string into a SymPy expression without ever calling ``eval``.

The string is parsed by Python's own parser (``ast.parse``, which builds a tree and runs nothing)
and the tree is walked node by node: only the grammar below is translated into SymPy objects, and
anything else is refused with a :class:`~symjit_numba.FormulaParsingError` that says what and where.

Grammar::

    expr      := number | name | expr op expr | -expr | +expr | call | ( expr )
    op        := + - * / ** ^          (^ is power, as in SymPy's convert_xor)
    call      := function(expr, ...)   (functions from symjit_numba.functions)
               | Piecewise((expr, cond), ..., (expr, True))
    cond      := expr cmp expr [cmp expr ...] | cond & cond | cond | cond | ~cond
               | cond and cond | cond or cond | not cond | True | False
    cmp       := < <= > >= == !=

Numeric sub-expressions (``2**0.5``, ``gamma(3)``) are evaluated to floats here, with a bound on
size, so that SymPy never does unbounded exact arithmetic (``9**9**9``) on a user's behalf.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Mapping

import sympy as sp

from ..errors import FormulaParsingError
from ..functions import ALIASES, FUNCTIONS_BY_NAME

__all__ = ["parse_formula", "MAX_FORMULA_LENGTH", "MAX_NESTING", "MAX_MINMAX_ARGUMENTS", "MAX_PIECES"]

#: Longest formula string accepted, in characters.
MAX_FORMULA_LENGTH = 10_000
#: Deepest nesting of the expression tree accepted (a chain ``a + b + c ...`` counts as one level).
MAX_NESTING = 100
#: Most arguments of one Max or Min, after SymPy flattens nested ones: the derivative of a Max
#: compares every argument with every other, and SymPy's work grows faster than quadratically.
MAX_MINMAX_ARGUMENTS = 4
#: Most (value, condition) pairs of one Piecewise.
MAX_PIECES = 64

_ALLOWED_CHARACTERS = re.compile(r"[A-Za-z0-9_+\-*/^().,<>=!&|~ \t\r\n]*")
_PYTHON_LITERAL_NAMES = {"True": sp.true, "False": sp.false}

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge, ast.Eq: sp.Eq, ast.NotEq: sp.Ne}
_LOGIC = {ast.BitAnd: sp.And, ast.BitOr: sp.Or, ast.And: sp.And, ast.Or: sp.Or}


def _where(text: str, node: ast.AST | None) -> str:
    col = getattr(node, "col_offset", None)
    if col is None or "\n" in text or len(text) > 120:
        return f" (at column {col})" if col is not None else ""
    return f"\n    {text}\n    {' ' * col}^"


class _Translator:
    """Walks one parsed formula; see the module docstring for the grammar."""

    def __init__(self, text: str, names: Mapping[str, sp.Basic]):
        self.text = text
        self.names = names

    def fail(self, message: str, node: ast.AST | None = None) -> FormulaParsingError:
        return FormulaParsingError(f"{message} in formula {self.text[:200]!r}{_where(self.text, node)}")

    def expr(self, node: ast.AST, depth: int = 0) -> sp.Expr:
        if depth > MAX_NESTING:
            raise self.fail(f"formula is nested more than {MAX_NESTING} levels deep", node)
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.expr(node.operand, depth + 1)
            return self.numeric(-operand if isinstance(node.op, ast.USub) else operand, node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return self.chain(node, depth)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.expr(node.left, depth + 1), self.expr(node.right, depth + 1)
            if left.is_Number and right.is_Number and isinstance(node.op, ast.Pow):
                return self.numeric(sp.Pow(left, right, evaluate=False), node)
            return self.numeric(_BINARY[type(node.op)](left, right), node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise self.fail(f"{_describe(node)} is not allowed", node)

    def chain(self, node: ast.BinOp, depth: int) -> sp.Expr:
        """``a + b - c ...`` or ``a * b / c ...``: Python nests these to the left, one level per
        term; walk them in a loop, so a long sum is neither deep nor recursive, and build one
        ``Add``/``Mul`` of all terms (adding one at a time would re-sort the whole sum each time)."""
        additive = isinstance(node.op, (ast.Add, ast.Sub))
        family = (ast.Add, ast.Sub) if additive else (ast.Mult, ast.Div)
        links = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, family):
            links.append((node.op, node.right))
            node = node.left
        terms = [self.expr(node, depth + 1)]
        for op, operand in reversed(links):
            term = self.expr(operand, depth + 1)
            if isinstance(op, ast.Sub):
                term = -term
            elif isinstance(op, ast.Div):
                term = sp.Pow(term, -1)
            terms.append(term)
        return self.numeric(sp.Add(*terms) if additive else sp.Mul(*terms), node)

    def number(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{_describe(node)} is not allowed", node)
        if isinstance(value, int):
            return sp.Integer(value)
        return sp.Float(value)

    def name(self, node: ast.Name) -> sp.Expr:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in FUNCTIONS_BY_NAME or node.id in ALIASES:
            raise self.fail(f"function {node.id!r} must be called, e.g. {node.id}(num)", node)
        if node.id in _PYTHON_LITERAL_NAMES:
            raise self.fail(f"{node.id} is only allowed as a Piecewise condition", node)
        allowed = ", ".join(sorted(self.names))
        raise self.fail(f"unknown name {node.id!r} (declare it as a constant in the config; known: {allowed})", node)

    def call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail(f"{_describe(node.func)} cannot be called; only functions by name", node)
        name = ALIASES.get(node.func.id, node.func.id)
        function = FUNCTIONS_BY_NAME.get(name)
        if function is None:
            known = ", ".join(sorted(FUNCTIONS_BY_NAME))
            raise self.fail(f"unknown function {node.func.id!r} (supported: {known})", node)
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"{name}() takes positional arguments only", node)
        if name == "Piecewise":
            return self.piecewise(node, depth)
        if function.arity and len(node.args) not in function.arity and name not in ("Max", "Min"):
            raise self.fail(f"{name}() takes {' or '.join(map(str, function.arity))} argument(s), "
                            f"got {len(node.args)}", node)
        if name in ("Max", "Min") and len(node.args) < 1:
            raise self.fail(f"{name}() needs at least one argument", node)
        args = [self.expr(a, depth + 1) for a in node.args]
        if name == "Heaviside" and len(args) == 2 and not args[1].is_Number:
            raise self.fail("the second argument of Heaviside (its value at 0) must be a number", node)
        constructor = sp.sqrt if name == "sqrt" else function.sympy
        if all(a.is_Number for a in args):
            # Unevaluated, so that gamma(1e9) is not computed exactly; Heaviside has no evalf
            # (Heaviside(2) would stay a symbol), and its exact value is cheap.
            return self.numeric(constructor(*args, evaluate=name == "Heaviside"), node)
        if name in ("Max", "Min"):
            flat = [a for arg in args for a in (arg.args if isinstance(arg, function.sympy) else (arg,))]
            if len(flat) > MAX_MINMAX_ARGUMENTS:
                raise self.fail(f"{name}() of {len(flat)} arguments (nested ones included); the limit is "
                                f"{MAX_MINMAX_ARGUMENTS}", node)
        return constructor(*args)

    def piecewise(self, node: ast.Call, depth: int) -> sp.Expr:
        if not node.args:
            raise self.fail("Piecewise() needs at least one (value, condition) pair", node)
        if len(node.args) > MAX_PIECES:
            raise self.fail(f"Piecewise() of {len(node.args)} pieces; the limit is {MAX_PIECES}", node)
        pieces = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise self.fail("each Piecewise argument must be a pair (value, condition)", arg)
            value = self.expr(arg.elts[0], depth + 2)
            pieces.append((value, self.condition(arg.elts[1], depth + 2)))
        try:
            return sp.Piecewise(*pieces)
        except (TypeError, ValueError) as error:
            raise self.fail(f"invalid Piecewise: {error}", node) from None

    def condition(self, node: ast.AST, depth: int) -> sp.Basic:
        if depth > MAX_NESTING:
            raise self.fail(f"formula is nested more than {MAX_NESTING} levels deep", node)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return sp.true if node.value else sp.false
        if isinstance(node, ast.Name) and node.id in _PYTHON_LITERAL_NAMES:
            return _PYTHON_LITERAL_NAMES[node.id]
        if isinstance(node, ast.Compare):
            operands = [self.expr(o, depth + 1) for o in (node.left, *node.comparators)]
            links = []
            for op, left, right in zip(node.ops, operands, operands[1:]):
                if type(op) not in _COMPARE:
                    raise self.fail(f"comparison {type(op).__name__} is not allowed", node)
                links.append(_COMPARE[type(op)](left, right))
            return sp.And(*links)
        if isinstance(node, ast.BinOp) and type(node.op) in (ast.BitAnd, ast.BitOr):
            return _LOGIC[type(node.op)](self.condition(node.left, depth + 1), self.condition(node.right, depth + 1))
        if isinstance(node, ast.BoolOp):
            return _LOGIC[type(node.op)](*(self.condition(v, depth + 1) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.Not)):
            return sp.Not(self.condition(node.operand, depth + 1))
        raise self.fail(f"{_describe(node)} is not a condition (use a comparison such as num < 0, or True)", node)

    def numeric(self, value: sp.Expr, node: ast.AST) -> sp.Expr:
        """Evaluate a constant sub-expression to a bounded float (or keep a small exact integer)."""
        if value.free_symbols or not isinstance(value, sp.Expr) or value.is_Integer and abs(value) < 2**53:
            return value
        if value.is_Rational and abs(value.p) < 2**53 and value.q < 2**53:
            return value
        try:
            number = value.evalf(30)
            as_float = float(number)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError, ArithmeticError):
            raise self.fail(f"constant {value} is not a real number", node) from None
        if not math.isfinite(as_float):
            raise self.fail(f"constant {value} is not a finite float64 number", node)
        if as_float.is_integer() and abs(as_float) < 2**53:
            return sp.Integer(int(as_float))
        return sp.Float(number, 30)


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access", ast.Subscript: "subscripting", ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator", ast.Starred: "unpacking",
        ast.IfExp: "an if-expression", ast.Compare: "a comparison outside a Piecewise condition",
        ast.Tuple: "a tuple outside Piecewise", ast.List: "a list", ast.Dict: "a dict", ast.Set: "a set",
        ast.NamedExpr: "an assignment expression", ast.BoolOp: "and/or outside a Piecewise condition",
    }
    if isinstance(node, ast.Constant):
        return f"the literal {node.value!r}"
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"the unary operator {type(node.op).__name__}"
    return kinds.get(type(node), type(node).__name__)


def parse_formula(text: str, names: Mapping[str, sp.Basic]) -> sp.Expr:
    """Parse an untrusted formula string into a SymPy expression.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"alpha*tanh(beta*num)"``.
    names : mapping of str to sympy.Basic
        Every name the formula may use (variables, declared constants, ``pi``...) and its SymPy object.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    FormulaParsingError
        For anything outside the grammar in the module docstring, too long or too deeply nested
        input, unknown names or functions, and constants that are not finite real numbers.
    """
    if not isinstance(text, str):
        raise FormulaParsingError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaParsingError(f"formula is {len(text)} characters long; the limit is {MAX_FORMULA_LENGTH}")
    if not text.strip():
        raise FormulaParsingError("formula is empty")
    bad = _ALLOWED_CHARACTERS.fullmatch(text)
    if bad is None:
        position = next(i for i, ch in enumerate(text) if not _ALLOWED_CHARACTERS.fullmatch(ch))
        raise FormulaParsingError(
            f"character {text[position]!r} at column {position} is not allowed in formula {text[:200]!r}")
    depth = max_depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        max_depth = max(max_depth, depth)
    if max_depth > MAX_NESTING:
        raise FormulaParsingError(f"formula nests parentheses {max_depth} deep; the limit is {MAX_NESTING}")
    # ``^`` means power, with the precedence of ``**`` (as SymPy's convert_xor): swap the token
    # before parsing, since Python's ``^`` binds more loosely than ``+``.
    text = text.replace("^", "**")
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal": ours to report, not Python's
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        detail = getattr(error, "msg", None) or str(error) or type(error).__name__
        column = getattr(error, "offset", None)
        where = f" at column {column - 1}" if column else ""
        raise FormulaParsingError(f"formula {text[:200]!r} is not valid syntax{where}: {detail}") from None
    translator = _Translator(text.strip(), names)
    try:
        result = translator.expr(tree.body)
    except FormulaParsingError:
        raise
    except RecursionError:
        raise FormulaParsingError(f"formula {text[:200]!r} is too deeply nested") from None
    except (TypeError, ValueError, AttributeError, ArithmeticError, NotImplementedError) as error:
        raise FormulaParsingError(f"formula {text[:200]!r} could not be built: {error}") from None
    if not isinstance(result, sp.Expr):
        raise FormulaParsingError(f"formula {text[:200]!r} is not a numeric expression")
    if any(not (n.is_real and n.is_finite and abs(n) <= 1.7976931348623157e308) for n in result.atoms(sp.Number, type(sp.zoo))):
        raise FormulaParsingError(f"formula {text[:200]!r} has a number that is not a finite float64 (division by zero, a value such as 1e400, or undefined)")
    return result
