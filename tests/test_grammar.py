"""The formula language's front door: what ``parse_formula`` accepts, and how it refuses the rest.

Formula strings come from users (configs, files, the network), so the parser is a security boundary:

* every construct of the grammar (numbers, names, operators, every function of the table, Piecewise
  conditions, aliases) must become the SymPy expression one would build by hand. The expected
  expressions here are built with the SymPy API (independently of the parser) and compared by
  evaluating both at exact rational points (30-digit evaluation, compared in double precision);
* everything else (attacks, malformed text, non-strings, non-finite constants, huge inputs) must be
  refused with a :class:`FormulaParsingError` whose message names the problem, never another
  exception, and never by running code: ``eval``/``exec``/``sympify(str)``/``parse_expr`` are
  patched to fail the test while hostile and valid formulas are parsed;
* size limits make refusals cheap (a 200,000-term formula is refused in well under 2 s);
* random text (hypothesis) either parses into a SymPy ``Expr`` or raises ``FormulaParsingError``;
* the compiler's config checks: undeclared and reserved constant names, bad constant values,
  mixed variable aliases, named formulas of the wrong mode, ``register_formula``.
"""

import ast
import builtins
import contextlib
import importlib
import math
import multiprocessing
import os
import time
from unittest import mock

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symjit_numba import FormulaParsingError, SymbolicJITCompiler, available_formulas, register_formula
from symjit_numba.formulas import registry
from symjit_numba.formulas.grammar import (
    MAX_FORMULA_LENGTH,
    MAX_MINMAX_ARGUMENTS,
    MAX_NESTING,
    MAX_PIECES,
    parse_formula,
)
from symjit_numba.functions import ALIASES, FUNCTIONS_BY_NAME

from .conftest import build, run_activation

# (``sympy.core.sympify`` the attribute is the function; the module is needed to patch it)
SYMPIFY_MODULE = importlib.import_module("sympy.core.sympify")
SYMPY_PARSER = importlib.import_module("sympy.parsing.sympy_parser")

NUM, X, A, B = sp.symbols("num x a b", real=True)
NAMES = {"num": NUM, "x": X, "a": A, "b": B, "e": sp.E, "pi": sp.pi, "tau": 2 * sp.pi, "phi": sp.GoldenRatio}
#: Exact evaluation points; -1, 0 and 1 sit on the Piecewise boundaries used below.
POINTS = [sp.Rational(k, 8) for k in (-23, -8, -4, 0, 3, 8, 13, 21)]
CONSTANT_VALUES = {A: sp.Rational(7, 10), B: sp.Rational(-13, 10)}


def parse(text):
    return parse_formula(text, NAMES)


def _value(expr, point):
    """``expr`` at ``num = x = point`` to 30 digits, as a complex number, or None if not finite."""
    value = expr.subs({NUM: point, X: point, **CONSTANT_VALUES}).evalf(30)
    try:
        value = complex(value)
    except TypeError:  # zoo, nan, an unevaluated relational...
        return None
    return value if math.isfinite(value.real) and math.isfinite(value.imag) else None


def assert_same(parsed, expected, points=POINTS):
    """``parsed`` and the hand-built ``expected`` agree (to 1e-13) wherever ``expected`` is finite."""
    assert isinstance(parsed, sp.Expr), parsed
    compared = 0
    for point in points:
        want = _value(expected, point)
        if want is None:
            continue
        got = _value(parsed, point)
        assert got is not None and abs(got - want) <= 1e-13 * max(1.0, abs(want)), (point, parsed, expected)
        compared += 1
    assert compared >= 3, f"too few points where {expected} is finite"


# ---------------------------------------------------------------------------
# The accepted grammar
# ---------------------------------------------------------------------------

GRAMMAR_CASES = [
    # numbers and names
    ("2", sp.Integer(2)),
    ("2.5", sp.Rational(5, 2)),
    (".5*num", NUM / 2),
    ("1e-3*num", NUM / 1000),
    ("2E3", sp.Integer(2000)),
    ("1_000", sp.Integer(1000)),
    ("num", NUM),
    ("x", X),
    ("a", A),
    ("e", sp.E),
    ("pi", sp.pi),
    ("tau", 2 * sp.pi),
    ("phi", (1 + sp.sqrt(5)) / 2),
    # binary operators, precedence and associativity
    ("num + a", NUM + A),
    ("num - a - b", (NUM - A) - B),
    ("num - a + b - 1", NUM - A + B - 1),
    ("num / a * b / 2", NUM / A * B / 2),
    ("2 - 3 - 4", sp.Integer(-5)),
    ("8 / 4 / 2", sp.Integer(1)),
    ("num - (a - b)", NUM - A + B),
    ("num / (a / b)", NUM * B / A),
    ("num * a", NUM * A),
    ("num / a / b", (NUM / A) / B),
    ("num ** 2", NUM**2),
    ("num ^ 2", NUM**2),
    ("num ^ a", NUM**A),
    ("2 ^ 3 ^ 2", sp.Integer(512)),
    ("2 ** -1", sp.Rational(1, 2)),
    ("a * (num + b)", A * (NUM + B)),
    ("1 + 2 * num ** 2 / 4 - 3", 1 + 2 * NUM**2 / 4 - 3),
    ("2**0.5 * num", sp.sqrt(2) * NUM),
    ("gamma(3) + sin(1)", 2 + sp.sin(1)),
    # unary operators
    ("-num", -NUM),
    ("+num", NUM),
    ("--num", NUM),
    ("-+-num", NUM),
    ("- - -num", -NUM),
    ("-num ** 2", -(NUM**2)),
    ("(-num) ** 2", NUM**2),
    ("-2 ** 2", sp.Integer(-4)),
    # layout
    ("  num\t+ 1 ", NUM + 1),
    ("\n num * 2 \n", 2 * NUM),
    ("(num\n + 1)", NUM + 1),
    # nesting
    ("exp(sin(num)) * log(1 + num**2)", sp.exp(sp.sin(NUM)) * sp.log(1 + NUM**2)),
    ("a*tanh(b*num)", A * sp.tanh(B * NUM)),
    # aliases
    ("abs(num)", sp.Abs(NUM)),
    ("max(num, a)", sp.Max(NUM, A)),
    ("min(num, a)", sp.Min(NUM, A)),
    ("max(num, a, -num)", sp.Max(NUM, A, -NUM)),
    ("lgamma(num + 4)", sp.loggamma(NUM + 4)),
    ("heaviside(num)", sp.Heaviside(NUM)),
    ("Phi(num)", (1 + sp.erf(NUM / sp.sqrt(2))) / 2),
    # Piecewise and its conditions
    ("Piecewise((num, num < 0), (2*num, True))", sp.Piecewise((NUM, NUM < 0), (2 * NUM, True))),
    ("Piecewise((1, (num > -1) & (num < 1)), (0, True))",
     sp.Piecewise((1, sp.And(NUM > -1, NUM < 1)), (0, True))),
    ("Piecewise((1, (num < -1) | (num > 1)), (0, True))",
     sp.Piecewise((1, sp.Or(NUM < -1, NUM > 1)), (0, True))),
    ("Piecewise((1, ~(num < 0)), (0, True))", sp.Piecewise((1, sp.Not(NUM < 0)), (0, True))),
    ("Piecewise((1, num > -1 and num < 1), (0, True))",
     sp.Piecewise((1, sp.And(NUM > -1, NUM < 1)), (0, True))),
    ("Piecewise((1, num < -1 or num > 1), (0, True))",
     sp.Piecewise((1, sp.Or(NUM < -1, NUM > 1)), (0, True))),
    ("Piecewise((1, not num < 0), (0, True))", sp.Piecewise((1, NUM >= 0), (0, True))),
    ("Piecewise((1, -1 < num <= 1), (0, True))", sp.Piecewise((1, sp.And(NUM > -1, NUM <= 1)), (0, True))),
    ("Piecewise((1, 1 >= num >= -1 > -5), (0, True))", sp.Piecewise((1, sp.And(NUM <= 1, NUM >= -1)), (0, True))),
    ("Piecewise((1, num == 0), (2, num != 1), (3, True))",
     sp.Piecewise((1, sp.Eq(NUM, 0)), (2, sp.Ne(NUM, 1)), (3, True))),
    ("Piecewise((num, False), (1, True))", sp.Integer(1)),
    ("Piecewise((a, num < a), (num, True))", sp.Piecewise((A, NUM < A), (NUM, True))),
    ("2*Piecewise((num, num < 0), (0, True)) + 1", 2 * sp.Piecewise((NUM, NUM < 0), (0, True)) + 1),
    ("Piecewise((1, (sin(num) > 0) & ~(num >= 2) | (num == -1)), (0, True))",
     sp.Piecewise((1, sp.Or(sp.And(sp.sin(NUM) > 0, sp.Not(NUM >= 2)), sp.Eq(NUM, -1))), (0, True))),
]


@pytest.mark.parametrize(("text", "expected"), GRAMMAR_CASES, ids=[c[0] for c in GRAMMAR_CASES])
def test_grammar_is_translated_to_the_expected_sympy_expression(text, expected):
    assert_same(parse(text), expected)


def test_polynomials_simplify_to_the_hand_built_expression():
    parsed = parse("(num + a)^2 - (num^2 + 2*a*num + a^2) + 3*num/b")
    assert sp.simplify(parsed - 3 * NUM / B) == 0


#: For every function of the table: a call with each valid arity, an independent SymPy expression
#: built from first principles where the library defines its own class, and points in its domain.
U = NUM / 2 + A  # the argument used in the calls: num/2 + a
POSITIVE = [sp.Rational(k, 4) for k in (1, 3, 5, 9, 14)]
FUNCTION_CASES = {
    "exp": [("exp(num/2 + a)", sp.exp(U), POINTS)],
    "log": [("log(num + 1/2)", sp.log(NUM + sp.Rational(1, 2)), POSITIVE)],
    "log1p": [("log1p(num/2 + a)", sp.log(1 + U), POINTS)],
    "expm1": [("expm1(num/2 + a)", sp.exp(U) - 1, POINTS)],
    "sqrt": [("sqrt(num)", sp.sqrt(NUM), POSITIVE)],
    "Abs": [("Abs(num/2 + a)", sp.Abs(U), POINTS)],
    "sign": [("sign(num)", sp.sign(NUM), POINTS)],
    "Heaviside": [("Heaviside(num)", sp.Heaviside(NUM), POINTS),
                  ("Heaviside(num, 1)", sp.Piecewise((0, NUM < 0), (1, True)), POINTS)],
    "Max": [("Max(num, a)", sp.Piecewise((NUM, NUM > A), (A, True)), POINTS)],
    "Min": [("Min(num, a)", sp.Piecewise((NUM, NUM < A), (A, True)), POINTS)],
    "sin": [("sin(num/2 + a)", sp.sin(U), POINTS)],
    "cos": [("cos(num/2 + a)", sp.cos(U), POINTS)],
    "tan": [("tan(num/2 + a)", sp.sin(U) / sp.cos(U), POINTS)],
    "asin": [("asin(num/4)", sp.asin(NUM / 4), POINTS)],
    "acos": [("acos(num/4)", sp.acos(NUM / 4), POINTS)],
    "atan": [("atan(num/2 + a)", sp.atan(U), POINTS)],
    "atan2": [("atan2(num, a)", sp.atan2(NUM, A), POINTS), ("atan2(b, num)", sp.atan2(B, NUM), POINTS)],
    "sinh": [("sinh(num/2 + a)", (sp.exp(U) - sp.exp(-U)) / 2, POINTS)],
    "cosh": [("cosh(num/2 + a)", (sp.exp(U) + sp.exp(-U)) / 2, POINTS)],
    "tanh": [("tanh(num/2 + a)", sp.tanh(U), POINTS)],
    "asinh": [("asinh(num/2 + a)", sp.log(U + sp.sqrt(U**2 + 1)), POINTS)],
    "acosh": [("acosh(num + 1)", sp.acosh(NUM + 1), POSITIVE)],
    "atanh": [("atanh(num/4)", sp.atanh(NUM / 4), POINTS)],
    "erf": [("erf(num/2 + a)", sp.erf(U), POINTS)],
    "erfc": [("erfc(num/2 + a)", 1 - sp.erf(U), POINTS)],
    "sinc": [("sinc(num + 1/3)", sp.sin(NUM + sp.Rational(1, 3)) / (NUM + sp.Rational(1, 3)), POINTS)],
    "gamma": [("gamma(num + 1/3)", sp.gamma(NUM + sp.Rational(1, 3)), POINTS)],
    "loggamma": [("loggamma(num)", sp.log(sp.gamma(NUM)), POSITIVE)],
    "sigmoid": [("sigmoid(num/2 + a)", 1 / (1 + sp.exp(-U)), POINTS)],
    "softplus": [("softplus(num/2 + a)", sp.log(1 + sp.exp(U)), POINTS)],
    "ndtr": [("ndtr(num/2 + a)", (1 + sp.erf(U / sp.sqrt(2))) / 2, POINTS)],
}
FUNCTION_CALLS = [(name, *case) for name, cases in FUNCTION_CASES.items() for case in cases]


def test_every_function_of_the_table_is_covered():
    assert set(FUNCTION_CASES) == set(FUNCTIONS_BY_NAME) - {"Piecewise"}
    assert set(ALIASES.values()) <= set(FUNCTIONS_BY_NAME)


@pytest.mark.parametrize(("name", "text", "expected", "points"), FUNCTION_CALLS, ids=[c[1] for c in FUNCTION_CALLS])
def test_every_function_is_translated(name, text, expected, points):
    assert_same(parse(text), expected, points)


@pytest.mark.parametrize(("text", "expected"), [
    ("sqrt(4)", 2), ("gamma(5)", 24), ("exp(0)", 1), ("Max(1, 2)", 2), ("sinc(0)", 1),
    ("log(e)", 1), ("cos(pi)", -1), ("2^0.5^2", 2**0.25), ("erf(0.5)", math.erf(0.5)),
])
def test_constant_subexpressions_are_folded_to_numbers(text, expected):
    parsed = parse(text)
    assert parsed.is_Number
    assert float(parsed) == pytest.approx(expected, rel=1e-15)


# ---------------------------------------------------------------------------
# Refusals: attacks and malformed input
# ---------------------------------------------------------------------------

#: (formula, a word its error message must contain)
REFUSED = [
    # code execution and introspection
    ("__import__('os').system('x')", "character"),
    ("__import__(os)", "__import__"),
    ("exec(num)", "exec"),
    ("eval(num)", "eval"),
    ("open(num)", "open"),
    ("getattr(num, num)", "getattr"),
    ("globals()", "globals"),
    ("__builtins__", "__builtins__"),
    ("num.__class__", "attribute"),
    ("num.__class__.__subclasses__()", "attribute"),
    ("exp.__globals__", "attribute"),
    ("(1).real", "attribute"),
    ("exp(num)(num)", "cannot be called"),
    ("(num)(1)", "unknown function 'num'"),
    ("num[0]", "["),
    ("lambda: 1", ":"),
    ("[i for i in num]", "["),
    ("exp(i for i in num)", "generator"),
    ("'a'", "character"),
    ('"num"', "character"),
    ("f'{num}'", "character"),
    ("b'num'", "character"),
    ("(y := 1)", ":"),
    ("exp(num=1)", "positional"),
    ("exp(**num)", "positional"),
    ("exp(*num)", "positional"),
    ("Max(*num, 1)", "positional"),
    ("{1: 2}", "{"),
    ("{1}", "{"),
    ("[1]", "["),
    ("(num,)", "tuple"),
    ("num, num", "tuple"),
    ("()", "tuple"),
    ("num if num else 1", "if-expression"),
    # statements
    ("x = 1", "syntax"),
    ("num; 1", ";"),
    ("import os", "syntax"),
    ("del num", "syntax"),
    ("assert num", "syntax"),
    ("yield num", "syntax"),
    ("await num", "Await"),
    ("num\nnum", "syntax"),
    ("num # comment", "#"),
    ("\\\nnum", "\\"),
    # unicode lookalikes and control characters (Python would NFKC-normalise "ｎｕｍ" into num)
    ("ｎｕｍ", "ｎ"),
    ("nսm", "ս"),
    ("𝑛𝑢𝑚", "𝑛"),
    ("num\u200b", "'\\u200b'"),
    ("num\x00", "'\\x00'"),
    ("num − 1", "−"),
    # non-numbers and other operators
    ("1j", "1j"),
    ("...", "Ellipsis"),
    ("True", "True"),
    ("False + num", "False"),
    ("num // 2", "FloorDiv"),
    ("num % 2", "%"),
    ("num @ num", "@"),
    ("num << 1", "LShift"),
    ("num & num", "BitAnd"),
    ("num | num", "BitOr"),
    ("~num", "Invert"),
    ("not num", "Not"),
    ("num and num", "and/or"),
    # names and functions
    ("bar", "'bar'"),
    ("Num", "'Num'"),
    ("q" * 5000, "unknown name"),
    ("foo(num)", "'foo'"),
    ("Symbol(num)", "'Symbol'"),
    ("factorial(num)", "'factorial'"),
    ("exp", "must be called"),
    ("exp + 1", "must be called"),
    ("E", "'E'"),
    ("I", "'I'"),
    ("oo", "'oo'"),
    ("nan", "'nan'"),
    # arity
    ("exp()", "exp() takes 1"),
    ("exp(num, num)", "exp() takes 1"),
    ("atan2(num)", "atan2() takes 2"),
    ("Heaviside(num, 1, 2)", "Heaviside() takes 1 or 2"),
    ("Heaviside(num, a)", "must be a number"),
    ("Max()", "at least one"),
    # comparisons outside Piecewise; broken Piecewise
    ("num < 1", "comparison"),
    ("num == 1", "comparison"),
    ("-1 < num < 1", "comparison"),
    ("num is num", "comparison"),
    ("num in num", "comparison"),
    ("Piecewise((1, num < 0), (2, True)) < 1", "comparison"),
    ("Piecewise()", "at least one"),
    ("Piecewise(num)", "pair"),
    ("Piecewise((num,))", "pair"),
    ("Piecewise((num, num < 0, True))", "pair"),
    ("Piecewise((num, num))", "not a condition"),
    ("Piecewise((num, 1))", "not a condition"),
    ("Piecewise((num, num < 0 and num), (1, True))", "not a condition"),
    ("Piecewise((num < 0, True))", "comparison"),
    ("Piecewise((num, num < 0), num)", "pair"),
    ("Piecewise((1, sin(num) > 0 & (num < 2)), (0, True))", "BitAnd"),  # & binds tighter than >
    ("Piecewise((1, Piecewise((1, True)) ), (0, True))", "not a condition"),
    # numbers that are not finite float64 values
    ("9**9**9**9", "finite"),
    ("2**1024", "finite"),
    ("gamma(1e9)", "finite"),
    ("exp(1000) - exp(1000)", "finite"),
    ("1e308 * 10", "finite"),
    ("1e400", "finite"),
    ("-1e400 * num", "finite"),
    ("num / 0", "finite"),
    ("exp(num / (1 - 1))", "finite"),
    ("9" * 400 + " * num", "finite"),
    ("Piecewise((1, False))", "finite"),
    ("1/0", "real"),
    ("0/0", "finite"),
    ("sqrt(-1)", "real"),
    ("log(-1)", "real"),
    ("(-8)**(1/3)", "real"),
    ("acos(2)", "real"),
    ("gamma(-1)", "real"),
    ("log(0)", "finite"),
    ("atanh(1)", "finite"),
    ("9" * 5000, "syntax"),
]


@pytest.mark.parametrize(("text", "word"), REFUSED, ids=[repr(t)[:40] for t, _ in REFUSED])
def test_hostile_and_malformed_formulas_are_refused_with_a_useful_message(text, word):
    with no_code_execution(), pytest.raises(FormulaParsingError) as info:
        parse(text)
    assert word.lower() in str(info.value).lower()


@pytest.mark.parametrize(("text", "word"), [
    ("", "empty"), ("   ", "empty"), ("\t\n \r", "empty"), ("a" * (MAX_FORMULA_LENGTH + 1), "limit"),
    (None, "string"), (3, "string"), (2.5, "string"), (b"num", "string"), (["num"], "string"),
    (sp.Symbol("num"), "string"),
])
def test_empty_overlong_and_non_string_formulas_are_refused(text, word):
    with pytest.raises(FormulaParsingError) as info:
        parse(text)
    assert word in str(info.value)


def test_refusal_is_a_value_error_that_points_at_the_offending_node():
    with pytest.raises(ValueError) as info:
        parse("num + exp.__class__")
    message = str(info.value)
    assert "attribute access" in message
    assert "num + exp.__class__\n" in message and "\n          ^" in message  # a caret under exp.__class__


def test_unknown_name_message_lists_the_known_names():
    with pytest.raises(FormulaParsingError, match="unknown name 'alpha'") as info:
        parse("alpha * num")
    assert "num" in str(info.value) and "declare it as a constant" in str(info.value)


# ---------------------------------------------------------------------------
# No code runs: eval, exec, sympify(str), parse_expr and code-compiling are never used
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def no_code_execution():
    """Fail the test if anything evaluates text while the block runs.

    ``sympify`` is called by SymPy itself on SymPy objects all the time, so only a *string*
    argument counts; ``compile`` may only build a syntax tree (that is what ``ast.parse`` does).
    """
    calls = []

    def refuse(name):
        def refused(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called while parsing a formula")
        return refused

    real_sympify, real_compile = SYMPIFY_MODULE.sympify, builtins.compile

    def sympify(a, *args, **kwargs):
        if isinstance(a, (str, bytes)):
            return refuse(f"sympify({a!r})")()
        return real_sympify(a, *args, **kwargs)

    def compile_(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            return refuse(f"compile({source!r})")()
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(builtins, "eval", refuse("eval")))
        stack.enter_context(mock.patch.object(builtins, "exec", refuse("exec")))
        stack.enter_context(mock.patch.object(builtins, "compile", compile_))
        stack.enter_context(mock.patch.object(sp, "parse_expr", refuse("sympy.parse_expr")))
        stack.enter_context(mock.patch.object(SYMPY_PARSER, "parse_expr", refuse("parse_expr")))
        stack.enter_context(mock.patch.object(SYMPY_PARSER, "eval_expr", refuse("eval_expr")))
        stack.enter_context(mock.patch.object(sp, "sympify", sympify))
        stack.enter_context(mock.patch.object(SYMPIFY_MODULE, "sympify", sympify))
        yield calls
    assert not calls, calls


def test_the_guard_itself_catches_eval_and_string_sympify():
    with pytest.raises(AssertionError), no_code_execution():
        sp.sympify("num + 1")
    with pytest.raises(AssertionError), no_code_execution():
        eval("1")  # noqa: S307 - the point of the test


def test_parsing_valid_and_hostile_formulas_never_evaluates_text():
    with no_code_execution():
        for text, expected in GRAMMAR_CASES:
            assert_same(parse(text), expected)
        for _, text, _, _ in FUNCTION_CALLS:
            parse(text)
        for text, _ in REFUSED:
            with pytest.raises(FormulaParsingError):
                parse(text)


# ---------------------------------------------------------------------------
# Size limits
# ---------------------------------------------------------------------------

def _refused_quickly(text, seconds=2.0):
    start = time.perf_counter()
    with pytest.raises(FormulaParsingError) as info:
        parse(text)
    assert time.perf_counter() - start < seconds
    return str(info.value)


def test_a_200000_term_formula_is_refused_quickly():
    message = _refused_quickly("+".join(["num"] * 200_000))
    assert "characters long" in message and str(MAX_FORMULA_LENGTH) in message
    assert len(message) < 1000  # the message quotes the formula only in part


@pytest.mark.parametrize("text", [
    "(" * 10_000 + "num" + ")" * 10_000,
    "-" * 10_000 + "num",
    "(" * 4_000 + "num" + ")" * 4_000,        # under the length limit: the nesting limit refuses it
    "exp(" * 2_000 + "num" + ")" * 2_000,
    "-" * 9_000 + "num",
    "+-" * 4_000 + "num",
    "num**" * 1_900 + "num",
    "(" * (MAX_NESTING + 1) + "num" + ")" * (MAX_NESTING + 1),
    "-" * (MAX_NESTING + 2) + "num",
    "Piecewise((1, " + "not " * 2_000 + "num < 1), (2, True))",
    "Piecewise((1, " + "~" * 5_000 + "(num < 1)), (2, True))",
], ids=lambda t: f"{t[:12]}...({len(t)} chars)")
def test_deeply_nested_formulas_are_refused_quickly(text):
    message = _refused_quickly(text)
    assert any(word in message for word in ("deep", "nested", "limit", "syntax"))


def test_nesting_up_to_the_limit_is_accepted():
    depth = MAX_NESTING - 1
    assert_same(parse("(" * depth + "num" + ")" * depth), NUM)
    assert_same(parse("-" * 50 + "num"), NUM)
    assert_same(parse("sin(" * 30 + "num" + ")" * 30), _nest(sp.sin, NUM, 30))


def _nest(f, arg, times):
    for _ in range(times):
        arg = f(arg)
    return arg


def test_a_90_term_formula_parses_and_evaluates_correctly():
    text = " + ".join(f"{k}*sin(num + {k})" for k in range(90))
    assert_same(parse(text), sum(k * sp.sin(NUM + k) for k in range(90)))


def test_a_1000_term_formula_parses_and_evaluates_correctly():
    text = "+".join(f"{k % 7}*num" for k in range(1000))  # 3,999 characters, well under the limit
    assert len(text) < MAX_FORMULA_LENGTH
    assert_same(parse(text), sum(k % 7 for k in range(1000)) * NUM)


def _parse_in_child(text):
    try:
        parse(text)
    except FormulaParsingError:
        os._exit(3)
    except BaseException:  # noqa: BLE001 - reported to the parent by the exit code
        os._exit(4)
    os._exit(0)


def _outcome_within(text, seconds):
    """Parse ``text`` in a forked process: 'parsed', 'refused', 'crashed' or 'timeout' after ``seconds``."""
    process = multiprocessing.get_context("fork").Process(target=_parse_in_child, args=(text,))
    process.start()
    process.join(seconds)
    if process.is_alive():
        process.kill()
        process.join()
        return "timeout"
    return {0: "parsed", 3: "refused"}.get(process.exitcode, "crashed")


def _nested_max(n):
    text = "sin(num)"
    for k in range(1, n):
        text = f"Max(sin(num+{k}), {text})"
    return text


# Formulas that are short but made SymPy work super-linearly before the caps (times before them).
@pytest.mark.parametrize("text", [
    "Max(" + ",".join(f"sin(num+{k})" for k in range(40)) + ")",                           # 474 chars, ~13 s
    _nested_max(20),                                                                        # 341 chars, ~6 s
    "Piecewise(" + ",".join(f"(num, num < {k})" for k in range(400)) + ", (1, True))",   # 5,900 chars, ~5 s
    "Piecewise(" + ",".join(f"(num, num < {k})" for k in range(MAX_PIECES - 1)) + ", (1, True))",
    "+".join(f"{k % 7}*num" for k in range(1000)),
], ids=["flat Max of 40", "nested Max of 20", "Piecewise of 400", "Piecewise at the cap", "sum of 1000"])
def test_formulas_under_the_length_limit_are_handled_within_2_seconds(text):
    assert _outcome_within(text, seconds=2.0) in ("parsed", "refused")


@pytest.mark.parametrize("text", [
    "*".join(f"(num+{k})" for k in range(1000)),                                           # 9,889 chars, ~10 s
    "/".join(f"(num+{k})" for k in range(1000)),                                           # 9,889 chars, ~15 s
], ids=["product of 1000", "quotient chain of 1000"])
def test_long_chains_are_handled_within_2_seconds(text):
    assert _outcome_within(text, seconds=2.0) in ("parsed", "refused")


def test_max_and_min_take_at_most_the_cap_of_arguments_nested_ones_included():
    args = [f"sin(num + {k})" for k in range(MAX_MINMAX_ARGUMENTS + 1)]
    for name in ("Max", "min"):
        assert_same(parse(f"{name}({', '.join(args[:-1])})"),
                    (sp.Max if name == "Max" else sp.Min)(*(sp.sin(NUM + k) for k in range(MAX_MINMAX_ARGUMENTS))))
        for text in (f"{name}({', '.join(args)})", f"{name}({args[0]}, {name}({', '.join(args[1:])}))"):
            with pytest.raises(FormulaParsingError, match=f"{MAX_MINMAX_ARGUMENTS + 1} arguments"):
                parse(text)


def test_piecewise_takes_at_most_the_cap_of_pieces():
    pieces = [f"({k}, num < {k})" for k in range(MAX_PIECES - 1)] + ["(num, True)"]
    assert_same(parse(f"Piecewise({', '.join(pieces)})"),
                sp.Piecewise(*((k, NUM < k) for k in range(MAX_PIECES - 1)), (NUM, True)))
    with pytest.raises(FormulaParsingError, match=f"{MAX_PIECES + 1} pieces"):
        parse(f"Piecewise((-1, num < -1), {', '.join(pieces)})")


# ---------------------------------------------------------------------------
# Random text: a FormulaParsingError or an Expr, nothing else
# ---------------------------------------------------------------------------

FORMULA_ALPHABET = "num+-*/^()., <>=!&|~0123456789eEpixzabcdefghijklmnopqrstuvwxyz_"
TOKENS = ["num", "x", "a", "b", "e", "pi", "1", "0", "2.5", "1e400", "(", ")", "(", ")", ",", "+", "-", "*",
          "/", "**", "^", "<", "<=", "==", "!=", "&", "|", "~", " not ", " and ", " or ", "True", "False",
          "exp", "log", "sqrt", "gamma", "Max", "Heaviside", "Piecewise", "atan2", "abs", "."]


def _parses_or_refuses(text):
    with no_code_execution():
        try:
            result = parse(text)
        except FormulaParsingError as error:
            assert str(error)
            return
    assert isinstance(result, sp.Expr)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_random_text_is_parsed_or_refused(text):
    _parses_or_refuses(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=FORMULA_ALPHABET, max_size=60))
def test_random_formula_alphabet_text_is_parsed_or_refused(text):
    _parses_or_refuses(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join))
def test_random_token_sequences_are_parsed_or_refused(text):
    _parses_or_refuses(text)


# ---------------------------------------------------------------------------
# Constants and configs (through the compiler)
# ---------------------------------------------------------------------------

def _refused_by_compiler(configs, *words, mode="activation"):
    with pytest.raises(FormulaParsingError) as info:
        SymbolicJITCompiler(configs, "CPU_PYTHON", mode=mode)
    for word in words:
        assert word in str(info.value)
    return str(info.value)


def test_undeclared_constant_is_named():
    _refused_by_compiler([("alpha*tanh(num)", {})], "'alpha'")
    _refused_by_compiler([("alpha*tanh(num) + beta", {"alpha": 1.0})], "'beta'")


def test_declared_constants_are_used():
    compiler = build([("alpha*tanh(beta*num)", {"alpha": 1.5, "beta": 0.5})], "CPU_PYTHON")
    z = np.array([[-1.0, 0.0, 2.0]])
    a, delta = run_activation(compiler, z)
    np.testing.assert_allclose(a, 1.5 * np.tanh(0.5 * z), rtol=1e-14)
    np.testing.assert_allclose(delta, 0.75 / np.cosh(0.5 * z) ** 2, rtol=1e-14)


@pytest.mark.parametrize("name", ["num", "x", "z", "y_pred", "pi", "e", "tau", "exp", "sigmoid", "abs", "T",
                                  "True", "E", "I", "Piecewise"])
def test_constants_colliding_with_reserved_names_are_refused(name):
    _refused_by_compiler([("num", {name: 1.0})], repr(name))


@pytest.mark.parametrize("name", ["", "1a", "_a", "a-b", "a b", "lambda", "None", "a" * 65, "ｎ", 3, None])
def test_constant_names_that_are_not_identifiers_are_refused(name):
    _refused_by_compiler([("num", {name: 1.0})], "identifier")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, False, "1.0", None, 1j, [1.0],
                                   np.float64("nan")])
def test_constant_values_that_are_not_finite_reals_are_refused(value):
    _refused_by_compiler([("a*num", {"a": value})], "'a'", "finite real number")


@pytest.mark.parametrize("value", [2, 2.5, np.float32(2.5), np.int64(2), -1e300])
def test_constant_values_of_any_real_type_are_accepted(value):
    compiler = build([("a*num", {"a": value})], "CPU_PYTHON")
    assert compiler.make_params(np.float64)[0].tolist() == [float(value)]


@pytest.mark.parametrize("formula", ["num + x", "x*z", "num + sin(z)", "num + 0*z"])
def test_mixing_variable_aliases_is_refused(formula):
    _refused_by_compiler([(formula, {})], "mixes")


@pytest.mark.parametrize("alias", ["x", "z"])
def test_each_variable_alias_alone_means_num(alias):
    compiler = build([(f"{alias}**2", {})], "CPU_PYTHON")
    a, delta = run_activation(compiler, np.array([[3.0, -2.0]]))
    assert a.tolist() == [[9.0, 4.0]] and delta.tolist() == [[6.0, -4.0]]


def test_a_loss_formula_using_num_is_refused():
    _refused_by_compiler([("(num - y_true)**2", {})], "'num'", mode="loss")


def test_an_activation_formula_using_y_pred_is_refused():
    _refused_by_compiler([("y_pred*num", {})], "'y_pred'")


def test_named_formulas_of_the_wrong_mode_are_refused():
    _refused_by_compiler([("mse", {})], "'mse'", "loss")
    _refused_by_compiler([("relu", {})], "'relu'", "activation", mode="loss")


def test_hostile_formula_is_refused_by_the_compiler():
    with no_code_execution():  # (a valid formula would legitimately be compiled by lambdify)
        _refused_by_compiler([("__import__(os)", {})], "__import__")
        _refused_by_compiler([("num.__class__", {}), ("num", {})], "attribute")


@pytest.fixture
def scratch_registry():
    """Remove the test's registrations afterwards (the registry is process-wide)."""
    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


@pytest.mark.parametrize(("formula", "defaults", "word"), [
    ("num +* ", {}, "syntax"),
    ("k*num", {}, "'k'"),
    ("num.__class__", {}, "attribute"),
    ("y_pred - y_true", {}, "'y_pred'"),
    pytest.param("pi*num", {"pi": 1.0}, "reserved", id="default shadows pi"),
    pytest.param("k*num", {"k": math.nan}, "finite", id="nan default"),
    pytest.param("k*num", {"k": True}, "finite", id="bool default"),
    pytest.param("k*num", {"k": "abc"}, "finite", id="str default"),
])
def test_register_formula_refuses_bad_formulas(scratch_registry, formula, defaults, word):
    with pytest.raises(FormulaParsingError) as info:
        register_formula("test_bad_formula", formula, defaults)
    assert word in str(info.value)
    assert "test_bad_formula" not in available_formulas()


def test_registered_formula_is_listed_and_usable(scratch_registry):
    register_formula("test_scaled_tanh", "k*tanh(num)", {"k": 2.0}, description="2 tanh(x)")
    assert available_formulas()["test_scaled_tanh"].formula == "k*tanh(num)"
    assert "test_scaled_tanh" in available_formulas("activation")
    assert "test_scaled_tanh" not in available_formulas("loss")
    z = np.array([[-1.0, 0.5]])
    a, delta = run_activation(build([("test_scaled_tanh", {}), ("test_scaled_tanh", {"k": 3.0})], "CPU_PYTHON"),
                              np.vstack([z, z]))
    np.testing.assert_allclose(a, np.vstack([2 * np.tanh(z), 3 * np.tanh(z)]), rtol=1e-14)
    np.testing.assert_allclose(delta, np.vstack([2 / np.cosh(z) ** 2, 3 / np.cosh(z) ** 2]), rtol=1e-14)
    with pytest.raises(FormulaParsingError, match="already registered"):
        register_formula("test_scaled_tanh", "num", {})
