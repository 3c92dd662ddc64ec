"""Property tests: random formulas of the grammar, compiled, agree with SymPy's own evaluation.

Hypothesis builds formula *strings* from a recursive strategy (numbers, ``num``, the declared
constants ``a`` and ``b``, ``+ - * /``, and a safe subset of the functions: bounded ``exp``, sin, cos,
tanh, atan, sigmoid, softplus, Abs, Max, Min, ``sqrt(1 + u**2)``, ``log(1 + u**2)``, erf and
Piecewise). Each one is compiled into a single-node layer, and its forward values and derivative
on 32 float64 points in [-3, 3] are compared with a reference that shares no code with the kernels:
the formula parsed with our own symbols, ``sympy.diff``-ed (DiracDelta counted as 0), and evaluated
by ``.subs(...).evalf(30)`` at the exact double of each point. This checks parsing, differentiation,
code generation and the numerical functions end to end, on formulas nobody wrote by hand.

Points are skipped where the reference is not a finite real, or within 1e-6 of a kink (a Piecewise
boundary, or where an Abs/Max/Min/sign/Heaviside argument changes branch), since there a float64
rounding of the argument legitimately picks the other branch. Tolerance: rel 1e-9 + abs 1e-10.

CPU_PYTHON gets many examples (it is cheap); CPU_JIT ~25 (each compile costs 1-2 s); a float32
variant compares CPU_JIT with CPU_PYTHON (rel 1e-4) on a handful.

The properties found three backend bugs (a CSE'd condition the printer could not print, lambdify's
cse mangling Heaviside, constants not broadcast in CPU_PYTHON); the tests at the end pin them.
"""

import itertools

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from symjit_numba import FormulaParsingError
from symjit_numba.formulas.grammar import MAX_MINMAX_ARGUMENTS, parse_formula

from .conftest import build, run_activation

NUM, A, B = sp.symbols("num a b", real=True)
NAMES = {"num": NUM, "a": A, "b": B, "e": sp.E, "pi": sp.pi}
POINTS = np.linspace(-3.0, 3.0, 32)
RTOL, ATOL = 1e-9, 1e-10
KINK = 1e-6

# ---------------------------------------------------------------------------
# The formula strategy
# ---------------------------------------------------------------------------

NUMBERS = st.sampled_from(["0.5", "2", "3", "0.25", "1.5", "0.1", "(-1)", "(-2.5)", "pi", "e"])
LEAVES = st.one_of(st.just("num"), st.just("num"), st.sampled_from(["a", "b"]), NUMBERS)
UNARY = [
    "(-{0})", "sin({0})", "cos({0})", "tanh({0})", "atan({0})", "sigmoid({0})", "softplus({0})", "Abs({0})",
    "erf({0})", "exp(tanh({0}))", "exp(-Abs({0}))", "sqrt(1 + ({0})**2)", "log(1 + ({0})**2)", "({0})**2",
    "1/(2 + sin({0}))",
]
BINARY = ["({0}) + ({1})", "({0}) - ({1})", "({0}) * ({1})", "({0}) / (1 + ({1})**2)", "Max({0}, {1})",
          "Min({0}, {1})"]
CUTS = st.sampled_from(["0", "1", "-1.5", "0.75", "a"])


def _extend(children):
    return st.one_of(
        st.builds(str.format, st.sampled_from(UNARY), children),
        st.builds(str.format, st.sampled_from(BINARY), children, children),
        st.builds("Piecewise(({1}, num < {0}), ({2}, True))".format, CUTS, children, children),
    )


FORMULAS = st.recursive(LEAVES, _extend, max_leaves=8).filter(lambda text: "num" in text)
CONSTANTS = st.tuples(st.sampled_from([0.75, -1.25, 2.0, 0.3]), st.sampled_from([1.5, -0.6, 0.0, 2.5]))


# ---------------------------------------------------------------------------
# The SymPy reference
# ---------------------------------------------------------------------------

def _kinks(expr):
    """Expressions whose zeros are where ``expr`` switches branch."""
    kinks = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
            kinks.add(node.args[0])
        elif isinstance(node, (sp.Max, sp.Min)):
            kinks.update(p - q for p, q in itertools.combinations(node.args, 2))
        elif isinstance(node, sp.Piecewise):
            for _, condition in node.args:
                kinks.update(r.lhs - r.rhs for r in condition.atoms(sp.core.relational.Relational))
    return kinks


def _real(expr, subs):
    """``expr`` at ``subs`` to 30 digits as a float, or None where it is not a finite real."""
    value = expr.subs(subs).evalf(30)
    if not (value.is_number and value.is_real and value.is_finite):
        return None
    return float(value)


class Reference:
    """The formula and its derivative per SymPy, evaluated at the exact doubles given."""

    def __init__(self, text, a, b):
        self.expr = parse_formula(text, NAMES)
        derivative = sp.diff(self.expr, NUM)
        self.derivative = derivative.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
        self.kinks = _kinks(self.expr) | _kinks(self.derivative)
        self.constants = {A: sp.Float(a, 40), B: sp.Float(b, 40)}

    def at(self, x, kink=KINK):
        """(value, derivative) at the double ``x``, or None near a kink or where either is not finite."""
        subs = {NUM: sp.Float(float(x), 40), **self.constants}
        if any((d := _real(k, subs)) is not None and abs(d) < kink for k in self.kinks):
            return None
        value, slope = _real(self.expr, subs), _real(self.derivative, subs)
        return None if value is None or slope is None else (value, slope)


def compiled(text, a, b, method, dtype=np.float64):
    """Forward and backward of the single-node layer ``text`` on POINTS."""
    compiler = build([(text, {"a": a, "b": b})], method)
    return run_activation(compiler, POINTS.astype(dtype).reshape(1, -1))


def _property_reference(text, a, b):
    """The Reference of a generated formula; reject() one that nests more Max/Min arguments than
    the grammar allows (a deliberate limit, see test_grammar)."""
    try:
        return Reference(text, a, b)
    except FormulaParsingError as error:
        if f"the limit is {MAX_MINMAX_ARGUMENTS}" in str(error):
            reject()
        raise


def assert_matches_sympy(text, a, b, methods, in_property=False):
    reference = _property_reference(text, a, b) if in_property else Reference(text, a, b)
    expected = [reference.at(x) for x in POINTS]
    checked = [i for i, e in enumerate(expected) if e is not None]
    # (Max(a, a) ties or a kink at every point can leave too few: e.g. Max(a, Piecewise((a, num < a), ...)))
    assume(len(checked) >= 4) if in_property else None
    assert len(checked) >= 4, f"{text}: only {len(checked)} points away from kinks"
    for method in methods:
        forward, backward = compiled(text, a, b, method)
        for i in checked:
            value, slope = expected[i]
            for what, got, want in (("forward", forward[0, i], value), ("backward", backward[0, i], slope)):
                assert abs(got - want) <= RTOL * abs(want) + ATOL, (
                    f"{method} {what} of {text!r} (a={a}, b={b}) at num={POINTS[i]!r}: got {got!r}, "
                    f"SymPy says {want!r}")


# ---------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------

def examples(n):
    """Hypothesis settings for ``n`` slow examples (each compiles a layer)."""
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@examples(60)
@given(FORMULAS, CONSTANTS)
def test_cpu_python_matches_sympy(text, constants):
    assert_matches_sympy(text, *constants, methods=["CPU_PYTHON"], in_property=True)


@examples(25)
@given(FORMULAS, CONSTANTS)
def test_cpu_jit_matches_sympy(text, constants):
    assert_matches_sympy(text, *constants, methods=["CPU_PYTHON", "CPU_JIT"], in_property=True)


@examples(5)
@given(FORMULAS, CONSTANTS)
def test_cpu_jit_matches_cpu_python_in_float32(text, constants):
    reference = _property_reference(text, *constants)
    # float32 rounding of the argument moves kinks by ~1e-7 relative; stay further away from them
    usable = [i for i, x in enumerate(POINTS.astype(np.float32)) if reference.at(x, kink=1e-3) is not None]
    assume(len(usable) >= 4)
    jit = compiled(text, *constants, "CPU_JIT", np.float32)
    python = compiled(text, *constants, "CPU_PYTHON", np.float32)
    for got, want in zip(jit, python):
        assert got.dtype == np.float32
        scale = max(1.0, float(np.max(np.abs(want[0, usable]))))
        np.testing.assert_allclose(got[0, usable], want[0, usable], rtol=1e-4, atol=1e-5 * scale, err_msg=text)


@pytest.mark.parametrize("text", [
    "Piecewise((sin(num), num < a), (Max(num, b)*tanh(num), True))",
    "softplus(num*a) - sigmoid(num)/(1 + (b*num)**2)",
    "exp(-Abs(num - a))*erf(num) + log(1 + num**2)*atan(num)",
    "sqrt(1 + (num*b)**2) + Min(cos(num), exp(tanh(num)))",
])
def test_hand_picked_formulas_match_sympy(text):
    """Fixed examples of the same property, so a regression shows up even with a lucky draw."""
    assert_matches_sympy(text, 0.75, -0.6, methods=["CPU_PYTHON", "CPU_JIT"])


# ---------------------------------------------------------------------------
# Bugs the properties found once, kept as regression tests
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["CPU_JIT", "GPU_CUDA"])
@pytest.mark.parametrize("text", [
    "Piecewise((num, num < 0), (0, True))*sin(num)",
    "Piecewise((1, num < 0), (2, True)) + Piecewise((3, num < 0), (4, True))",
])
def test_piecewise_sharing_a_condition_compiles(text, method):
    assert_matches_sympy(text, 0.75, -0.6, [method])


def test_cpu_python_derivative_of_max_of_a_piecewise():
    assert_matches_sympy("Max(a, Piecewise((a, num < 0), (num, True)))", 0.75, -0.6, ["CPU_PYTHON"])


@pytest.mark.parametrize("text", ["Piecewise((num, (num < 0) & (a < 1)), (0, True))", "Max(a, Max(b, num))"])
def test_cpu_python_condition_on_constants_only(text):
    assert_matches_sympy(text, 0.75, -0.6, ["CPU_PYTHON"])
