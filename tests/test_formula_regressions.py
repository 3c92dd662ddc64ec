"""Regression tests for issue 10: formulas that computed wrong numbers without an error, or were refused.

Each defect found by differential fuzzing is kept here, on every backend (GPU_CUDA under the
simulator) and in float32 and float64. References are independent of the library: mpmath at 50
digits for finite values, and the exact mathematical (IEEE) value at the special points (0,
subnormals, +-inf), written out by hand. The forward, backward and fused (``forward_derivative``)
kernels are all checked, since the defects did not hit all three alike.
"""

import math
import warnings

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

from symjit_numba import JITCompilationError, PerformanceWarning, SymbolicJITCompiler, settings
from symjit_numba.formulas.resolve import FormulaKey, build_formula

from .conftest import build, run_activation

mp.mp.dps = 50
INF, NAN = math.inf, math.nan

_COMPILERS: dict = {}


def compiler_for(formula, constants, method):
    """One compiler per (formula, constants, backend), shared by both dtypes (compiling is the slow part)."""
    key = (formula, tuple(sorted(constants.items())), method)
    if key not in _COMPILERS:
        _COMPILERS[key] = build([(formula, constants)], method)
    return _COMPILERS[key]


def evaluate(formula, constants, method, xs, dtype):
    """f and f' at ``xs`` from the forward, backward and fused kernels: three (f, df) pairs."""
    compiler = compiler_for(formula, constants, method)
    z = np.asarray([xs], dtype=dtype)
    params, offsets = compiler.make_params(dtype)
    n, b = z.shape
    a, d = np.full_like(z, 12345.0), np.full_like(z, 12345.0)
    a2, d2 = np.full_like(z, 12345.0), np.full_like(z, 12345.0)
    with np.errstate(all="ignore"):
        compiler.forward_kernel(z, a, params, offsets, n, b)
        compiler.backward_kernel(z, np.ones_like(z), d, params, offsets, n, b)
        compiler.forward_derivative_kernel(z, a2, d2, params, offsets, n, b)
    return (a[0], d[0]), (a2[0], d2[0])


def expected(value, dtype):
    """An exact reference (a float, or an mpmath number) rounded to ``dtype``, as the ideal kernel would."""
    with np.errstate(over="ignore", under="ignore"):
        return dtype.type(float(value)) if not isinstance(value, float) else dtype.type(value)


def assert_matches(got, want, dtype, what):
    """``got`` equals ``want`` (already rounded to ``dtype``) to a few ulp; NaN, +-inf and 0 exactly."""
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    tiny = 4 * np.finfo(dtype).smallest_subnormal
    for g, w in zip(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)):
        if math.isnan(w):
            assert math.isnan(g), f"{what}: got {g!r}, want NaN"
        elif math.isinf(w):
            assert g == w, f"{what}: got {g!r}, want {w!r}"
        else:
            assert abs(g - w) <= rtol * abs(w) + tiny, f"{what}: got {g!r}, want {w!r}"


def check(formula, constants, method, dtype, points):
    """``points``: (x, f(x), f'(x)) with exact or mpmath references."""
    xs = [p[0] for p in points]
    want_f = [expected(p[1], dtype) for p in points]
    want_df = [expected(p[2], dtype) for p in points]
    for kernels, (f, df) in zip(("forward/backward", "fused"), evaluate(formula, constants, method, xs, dtype)):
        assert_matches(f, want_f, dtype, f"{method} {dtype} {kernels} f = {formula} at {xs}")
        assert_matches(df, want_df, dtype, f"{method} {dtype} {kernels} f' of {formula} at {xs}")


def at(x, dtype):
    """``x`` as the kernel sees it (rounded to ``dtype``), as an exact mpmath number."""
    return mp.mpf(float(dtype.type(x)))


# ---------------------------------------------------------------------------------------------
# 1. Lost parentheses around a power's base (or exponent) that prints starting with "("
# ---------------------------------------------------------------------------------------------

POWERS = [
    # formula, constants, f(x, **c), f'(x, **c) in mpmath, points (well conditioned)
    ("((num + 1)*(num + 2))**1.5", {},
     lambda x: ((x + 1) * (x + 2)) ** 1.5, lambda x: 1.5 * ((x + 1) * (x + 2)) ** 0.5 * (2 * x + 3), [0.5, 2.0, 3.5]),
    ("((num + 1)*(num + 2))**a", {"a": 0.7},
     lambda x, a: ((x + 1) * (x + 2)) ** a, lambda x, a: a * ((x + 1) * (x + 2)) ** (a - 1) * (2 * x + 3), [0.5, 2.0]),
    ("(Max(num, 1)*(num + 2))**2.5", {},
     lambda x: (x * (x + 2)) ** 2.5, lambda x: 2.5 * (x * (x + 2)) ** 1.5 * (2 * x + 2), [1.5, 3.0]),
    ("(sigmoid(num)*(num + 2))**1.25", {},
     lambda x: (x + 2) ** 1.25 / (1 + mp.exp(-x)) ** 1.25,
     lambda x: mp.diff(lambda t: (t + 2) ** 1.25 / (1 + mp.exp(-t)) ** 1.25, x), [-1.0, 0.5, 2.0]),
    ("2**((num + 1)*(num - 2))", {},
     lambda x: 2 ** ((x + 1) * (x - 2)), lambda x: 2 ** ((x + 1) * (x - 2)) * mp.log(2) * (2 * x - 1), [0.5, 1.5]),
    ("(Piecewise((num, num > 0), (1, True))*(num + 2))**num", {},
     lambda x: (x * (x + 2)) ** x, lambda x: mp.diff(lambda t: (t * (t + 2)) ** t, x), [0.5, 1.5]),
]


@pytest.mark.parametrize("formula, constants, f, df, xs", POWERS, ids=[p[0] for p in POWERS])
def test_compound_base_and_exponent_of_a_power(formula, constants, f, df, xs, method, dtype):
    points = [(x, f(at(x, dtype), **constants), df(at(x, dtype), **constants)) for x in xs]
    check(formula, constants, method, dtype, points)


@pytest.mark.parametrize("text, unit", [
    ("num", True), ("T(1.5)", True), ("T(-math.inf)", True), ("math.sqrt(num)", True), ("(a + b)", True),
    ("((a + b)*(c + d))", True), ("(a + b)*(c + d)", False), ("math.sin(a)*b", False), ("a*b", False),
    ("(a if c else b)", True), ("-a", False), ("(a)(b)", False),
])
def test_a_text_is_one_operand_only_if_its_parentheses_enclose_all_of_it(text, unit):
    from symjit_numba.codegen.printer import _is_unit

    assert _is_unit(text) is unit


# ---------------------------------------------------------------------------------------------
# 2. 1/sqrt and derivatives with a square root at 0, subnormals and inf (float32 rsqrt)
# ---------------------------------------------------------------------------------------------

def _inverse_sqrt_points(dtype):
    sub = 1e-40 if dtype == np.float32 else 1e-310  # subnormal in the dtype
    x = at(sub, dtype)
    return [(0.0, INF, -INF), (sub, 1 / mp.sqrt(x), -0.5 * x ** -1.5), (INF, 0.0, -0.0), (4.0, 0.5, -1 / mp.mpf(16))]


SQRT_CASES = [
    ("1/sqrt(num)", _inverse_sqrt_points),
    ("sqrt(num)", lambda dtype: [(0.0, 0.0, INF), (INF, INF, 0.0), (4.0, 2.0, 0.25)]),
    ("asin(num)", lambda dtype: [(1.0, mp.pi / 2, INF), (-1.0, -mp.pi / 2, INF), (0.5, mp.asin(0.5), 1 / mp.sqrt(0.75))]),
    ("acosh(num)", lambda dtype: [(1.0, 0.0, INF), (INF, INF, 0.0), (2.0, mp.acosh(2), 1 / mp.sqrt(3))]),
]


@pytest.mark.parametrize("formula, points", SQRT_CASES, ids=[c[0] for c in SQRT_CASES])
def test_square_roots_at_zero_subnormals_and_inf(formula, points, method, dtype):
    check(formula, {}, method, dtype, points(dtype))


# ---------------------------------------------------------------------------------------------
# 3. erfc(-u) kept as written: SymPy's 2 - erfc(u) loses the tail
# ---------------------------------------------------------------------------------------------

def test_erfc_of_a_negated_argument_stays_one_erfc():
    built = build_formula(FormulaKey("erfc(-num) + erfc(0.5 - num)", (), "t"), "activation")
    assert all(not term.is_Number for term in built.expr.args), built.expr  # no "4 - erfc(num) - ..."


@pytest.mark.parametrize("formula, f, df, xs64, xs32", [
    ("erfc(-num)", lambda x: mp.erfc(-x), lambda x: 2 * mp.exp(-x * x) / mp.sqrt(mp.pi), [-10.0, -3.0, 2.0], [-5.0, -3.0, 2.0]),
    ("erfc(0.5 - num)", lambda x: mp.erfc(0.5 - x), lambda x: 2 * mp.exp(-(0.5 - x) ** 2) / mp.sqrt(mp.pi),
     [-20.0, -2.0, 1.0], [-8.0, -2.0, 1.0]),
])
def test_erfc_keeps_its_lower_tail(formula, f, df, xs64, xs32, method, dtype):
    xs = xs32 if dtype == np.float32 else xs64
    check(formula, {}, method, dtype, [(x, f(at(x, dtype)), df(at(x, dtype))) for x in xs])


# ---------------------------------------------------------------------------------------------
# 4. Shared reciprocals: a/x + b/x must not become (a + b)*(1/x), inf for a subnormal x
# ---------------------------------------------------------------------------------------------

def test_quotients_at_subnormals_do_not_share_a_reciprocal(method, dtype):
    sub = 1e-39 if dtype == np.float32 else 1e-310
    (f, _), (f2, _) = evaluate("sin(num)/num + sinh(num)/num", {}, method, [sub, -sub, 0.5], dtype)
    want = [2.0, 2.0, expected(mp.sin(0.5) / 0.5 + mp.sinh(0.5) / 0.5, dtype)]
    assert_matches(f, want, dtype, "forward")
    assert_matches(f2, want, dtype, "fused")


def test_the_printer_divides_where_the_formula_divides():
    from symjit_numba.codegen.printer import KernelPrinter

    built = build_formula(FormulaKey("a/num + b/num", ("a", "b"), "t"), "activation")
    names = {built.variables[0]: "num", **{c: f"c_{c.name}" for c in built.constants}}
    statements, (result,) = KernelPrinter("numba", names).block([built.expr])
    assert not statements and "(c_a/num)" in result and "(c_b/num)" in result, (statements, result)


# ---------------------------------------------------------------------------------------------
# 5. x**0.5 is sqrt on every backend; gamma(+-0) = +-inf (C tgamma)
# ---------------------------------------------------------------------------------------------

POWER_CONVENTIONS = [
    # f = x**0.5 = sqrt(x): NaN for every negative x, -inf included; f' = 0.5/sqrt(x)
    ("num**0.5", [(-INF, NAN, NAN), (-1.0, NAN, NAN), (0.0, 0.0, INF), (4.0, 2.0, 0.25), (INF, INF, 0.0)]),
    ("num**(1/2)", [(-INF, NAN, NAN), (4.0, 2.0, 0.25)]),
    ("sqrt(num)", [(-INF, NAN, NAN), (4.0, 2.0, 0.25)]),
    # x**-0.5 = 1/sqrt(x); f' = -0.5*x**-1.5 (IEEE pow: 0 at -inf)
    ("num**-0.5", [(-INF, NAN, 0.0), (-1.0, NAN, NAN), (0.0, INF, -INF), (4.0, 0.5, -1 / 16)]),
    # Any other power is IEEE pow: (-inf)**1.5 = inf; its derivative 1.5*x**0.5 is a square root
    ("num**1.5", [(-INF, INF, NAN), (-1.0, NAN, NAN), (0.0, 0.0, 0.0), (4.0, 8.0, 3.0)]),
    ("num**-1.5", [(-INF, 0.0, -0.0), (4.0, 0.125, -1.5 / 32)]),
]


@pytest.mark.parametrize("formula, points", POWER_CONVENTIONS, ids=[c[0] for c in POWER_CONVENTIONS])
def test_every_backend_holds_the_documented_power_conventions(formula, points, method, dtype):
    check(formula, {}, method, dtype, points)


def test_gamma_at_signed_zero_is_signed_inf(method, dtype):
    (f, _), (f2, _) = evaluate("gamma(num)", {}, method, [0.0, -0.0, -1.0, 0.5], dtype)
    want = [INF, -INF, NAN, expected(mp.sqrt(mp.pi), dtype)]
    assert_matches(f, want, dtype, "forward")
    assert_matches(f2, want, dtype, "fused")


def test_the_numpy_gamma_and_the_simulator_stand_in_agree_with_c_tgamma():
    from symjit_numba.backends.gpu_cuda import _simulator_math
    from symjit_numba.mathlib import numpy_special

    for gamma in (numpy_special.gamma, _simulator_math().gamma):
        for dtype in (np.float32, np.float64):
            got = gamma(np.array([0.0, -0.0, -2.0], dtype=dtype))
            assert got[0] == INF and got[1] == -INF and np.isnan(got[2]), (gamma, dtype, got)


# ---------------------------------------------------------------------------------------------
# 8. Valid formulas that were refused
# ---------------------------------------------------------------------------------------------

LGAMMA_HALF = mp.re(mp.loggamma(-0.5))  # log|Gamma(-1/2)| = log(2*sqrt(pi))

ACCEPTED = [
    ("Heaviside(2)*num", {}, lambda x: x, lambda x: 1, [-1.5, 0.5]),
    ("Heaviside(0)*num + Heaviside(-3)", {}, lambda x: x / 2, lambda x: mp.mpf(0.5), [-1.5, 0.5]),
    ("Heaviside(0, 1)*num", {}, lambda x: x, lambda x: 1, [-1.5, 0.5]),
    ("Piecewise((1, num < Piecewise((0.1, num <= a), (a, True))), (2, True))", {"a": 0.5},
     lambda x, a: 1 if x < (0.1 if x <= a else a) else 2, lambda x, a: 0, [-0.3, 0.05, 0.3, 0.45, 0.7, 2.0]),
    ("Abs(num**a)", {"a": 1.5}, lambda x, a: x**a, lambda x, a: a * x ** (a - 1), [0.25, 2.0]),
    ("Abs(asin(num))", {}, lambda x: abs(mp.asin(x)), lambda x: mp.sign(x) / mp.sqrt(1 - x * x), [-0.7, -0.3, 0.3, 0.7]),
    ("Abs(log(num))", {}, lambda x: abs(mp.log(x)), lambda x: mp.sign(mp.log(x)) / x, [0.5, 2.0]),
    ("sign(log(num))", {}, lambda x: mp.sign(mp.log(x)), lambda x: 0, [0.5, 2.0]),
    ("loggamma(-0.5)*num", {}, lambda x: LGAMMA_HALF * x, lambda x: LGAMMA_HALF, [-1.0, 3.0]),
    ("loggamma(num)", {}, lambda x: mp.re(mp.loggamma(x)), lambda x: mp.digamma(x), [-2.5, -0.5, 0.5, 3.0]),
]


@pytest.mark.parametrize("formula, constants, f, df, xs", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_formulas_with_a_real_value_and_derivative_are_accepted(formula, constants, f, df, xs, method, dtype):
    points = [(x, mp.mpf(f(at(x, dtype), **constants)), mp.mpf(df(at(x, dtype), **constants))) for x in xs]
    check(formula, constants, method, dtype, points)


@pytest.mark.parametrize("formula", ["Abs(num**a)", "Abs(asin(num))", "sign(log(num))", "Abs(num**0.5)"])
def test_derivatives_of_abs_and_sign_need_no_complex_parts(formula):
    built = build_formula(FormulaKey(formula, ("a",) if "a" in formula else (), formula), "activation")
    assert not built.derivative.has(sp.re, sp.im, sp.Derivative, sp.conjugate), built.derivative


@pytest.mark.parametrize("method", ["CPU_JIT", "GPU_CUDA"])
def test_a_formula_the_printer_cannot_print_falls_back_to_cpu_python(method, monkeypatch):
    from symjit_numba.codegen import printer

    # A printer without its cos row stands for any formula the printer cannot express.
    table = {k: v for k, v in printer.FUNCTIONS_BY_SYMPY.items() if v.name != "cos"}
    monkeypatch.setattr(printer, "FUNCTIONS_BY_SYMPY", table)
    formula = "cos(num)*0.625 + num/8"  # never compiled before, so the printer really runs
    with settings.override(warning_level="warn"), pytest.warns(PerformanceWarning):
        compiler = SymbolicJITCompiler([(formula, {})], method)
    assert compiler.calculation_method == "CPU_PYTHON"
    with settings.override(warning_level="error"), pytest.raises(JITCompilationError):
        SymbolicJITCompiler([(formula + " + 0", {})], method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = np.array([[0.5, -2.0]])
        a, _ = evaluate(formula, {}, "CPU_PYTHON", z[0], np.dtype(np.float64))[0]
    assert_matches(a, [expected(mp.cos(x) * 0.625 + x / 8, np.dtype(np.float64)) for x in z[0]],
                   np.dtype(np.float64), "fallback")


NESTED_CONDITION = ("((ndtr(num) * ((num + Piecewise((a, 0.5 <= num <= 1), (num, True))) + Piecewise(((num + num), "
                    "((num * pi) > Piecewise((pi, num == b), (a, (((not (num >= 0.5)) or (not (num <= 0.5))) & "
                    "((-1.5) < num < 0)) and (exp(num) < 2)), (e, True))) | (((b * num) >= 0.75) & (num > a))), "
                    "(ndtr(num), num >= a), (num, True)))))**((-0.5))")


@pytest.mark.parametrize("method", ["CPU_PYTHON", "CPU_JIT"])
def test_a_condition_comparing_with_a_piecewise(method):
    """Found by the long fuzz profile (seed 203 #46): a comparison with a Piecewise inside a condition
    became a numeric select that numpy.select refused (CPU_PYTHON raised TypeError)."""
    constants = {"a": 0.3, "b": 3.0}
    layer = build([(NESTED_CONDITION, constants)], method)
    x = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
    a, _ = run_activation(layer, x[None, :])
    built = build_formula(FormulaKey(NESTED_CONDITION, ("a", "b"), "nested"), "activation")
    values = {sym: constants[sym.name] for sym in built.constants}
    want = [float(built.expr.subs({**values, built.variables[0]: v}).evalf(30)) for v in x]
    np.testing.assert_allclose(a[0], want, rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# Found by the 2,000-formula long profile (benchmarks/results/longfuzz-2026-11-30.txt)
# ---------------------------------------------------------------------------------------------

def test_a_division_by_a_piecewise_stays_a_division_at_subnormals(method, dtype):
    """SymPy distributes ``u/Piecewise(...)`` into ``u*Piecewise((1/x, ...))``: 1/x is inf at a
    subnormal x where u/x is finite (``sinh(x)/x`` gave ndtr(inf) = 1 instead of ndtr(1))."""
    sub = 1e-39 if dtype == np.float32 else 1e-310
    formula = "ndtr(sinh(Piecewise((num**2.5, num == 0.5), (num, True)))/Piecewise((num**2.5, num == 0.5), (num, True)))"
    (f, _), (f2, _) = evaluate(formula, {}, method, [sub, -sub, 2.0], dtype)
    want = [expected(mp.ncdf(1), dtype)] * 2 + [expected(mp.ncdf(mp.sinh(2) / 2), dtype)]
    assert_matches(f, want, dtype, "forward")
    assert_matches(f2, want, dtype, "fused")


def test_a_number_over_a_piecewise_at_a_subnormal(method):
    # 1e-3/(-1e-310) = -1e307 is finite in float64; 1e-3*(1/(-1e-310)) is -inf
    formula = "asinh(1e-3/Piecewise((num, num < 0), (-2.5, True)) + num)"
    x = [-1e-310, -1e-200, 1.0]
    (f, _), (f2, _) = evaluate(formula, {}, method, x, np.float64)
    want = [mp.asinh(mp.mpf("1e-3") / mp.mpf(v) + mp.mpf(v)) if v < 0 else mp.asinh(mp.mpf("-4e-4") + 1) for v in x]
    assert_matches(f, [expected(w, np.dtype(np.float64)) for w in want], np.dtype(np.float64), "forward")
    assert_matches(f2, [expected(w, np.dtype(np.float64)) for w in want], np.dtype(np.float64), "fused")


def test_a_division_by_a_piecewise_of_quotients_at_a_subnormal(method, dtype):
    """A branch that is itself a quotient (``num/tan(num)``) is inverted too: log1p(x)/|x| is 1 at a
    subnormal x, log1p(x)*(1/|x|) is inf."""
    sub = 1e-39 if dtype == np.float32 else 1e-310
    formula = "log1p(num) / Piecewise((abs(num), num != 2), ((tan(num) / num), num < 0.5), ((ndtr(num) * num)**1.5, True))"
    (f, _), (f2, _) = evaluate(formula, {}, method, [sub, 0.3, -0.2], dtype)
    want = [1.0, expected(mp.log1p(at(0.3, dtype)) / at(0.3, dtype), dtype),
            expected(mp.log1p(at(-0.2, dtype)) / at(0.2, dtype), dtype)]
    assert_matches(f, want, dtype, "forward")
    assert_matches(f2, want, dtype, "fused")


def test_expm1_of_a_shifted_argument_does_not_cancel(method):
    """SymPy evaluated ``expm1(0.1 - num)`` as ``1.1052*exp(-num) - 1``: noise near num = 0.1."""
    xs = [0.1 + 2.0**-40, 0.004339567943426367, 0.1 - 1e-9]
    f = lambda x: mp.log1p(x) - mp.expm1(mp.mpf("0.1") - x)  # noqa: E731
    df = lambda x: 1 / (1 + x) + mp.exp(mp.mpf("0.1") - x)  # noqa: E731
    points = [(x, f(at(x, np.dtype(np.float64))), df(at(x, np.dtype(np.float64)))) for x in xs]
    check("log1p(num) - expm1(0.1 - num)", {}, method, np.dtype(np.float64), points)


def test_digamma_reflection_is_accurate_far_left():
    """psi(x) = psi(1-x) - pi/tan(pi x) with tan(pi x) reduced exactly (pi*x cost |x| ulps)."""
    from symjit_numba.mathlib.numpy_special import polygamma
    from symjit_numba.mathlib.scalar_special import digamma

    xs = [-31.721908773765172, -1000.3, -2.0000001, -0.3, -123456.75]
    for x in xs:
        want = mp.digamma(x)
        for got in (digamma(x), float(polygamma(0, np.float64(x)))):
            assert abs(got - want) <= 4e-16 * abs(want) + 1e-300, (x, got, want)
    assert math.isnan(digamma(-1e300)) and math.isnan(float(polygamma(0, -1e300)))


def test_loggamma_derivative_far_left(method):
    xs = [-31.721908773765172, -20.25]
    points = [(x, mp.log(abs(mp.gamma(x))), mp.digamma(x)) for x in xs]
    check("loggamma(num)", {}, method, np.dtype(np.float64), points)


def test_sinc_near_its_zeros_in_float32(method):
    """CPU_PYTHON printed SymPy's ``numpy.sinc(x/pi)``, whose rounding of x/pi cost |x| ulps near a zero."""
    xs = [15.628874778747559, 31.4, 9.42]
    dt = np.dtype(np.float32)
    points = [(x, mp.sin(at(x, dt)) / at(x, dt), (at(x, dt) * mp.cos(at(x, dt)) - mp.sin(at(x, dt))) / at(x, dt) ** 2)
              for x in xs]
    check("sinc(num)", {}, method, dt, points)


FLOAT_CONSTANT = "num*exp(0.1) + expm1(1e-10)"


def test_cpu_python_prints_float_constants_with_all_their_digits():
    """SymPy's printer wrote exp(0.1) as 1.10517091807565 (15 digits): 2e-16 off in float64."""
    layer = build([(FLOAT_CONSTANT, {})], "CPU_PYTHON")
    x = np.array([[1.0, 3.0]])
    a, _ = run_activation(layer, x)
    want = [float(mp.mpf(v) * mp.exp(mp.mpf(0.1)) + mp.expm1(mp.mpf(1e-10))) for v in x[0]]
    np.testing.assert_array_max_ulp(a[0], np.array(want), maxulp=1)


def test_a_piecewise_inside_a_boolean_condition_compiles_on_cpu_python():
    """Found by the long fuzz profile (seed 102 #195): SymPy's numpy printer rewrote an
    if-then-else condition into a Piecewise of booleans, which its own logic refused."""
    formula = "Piecewise((1, (num <= 0.75) | (acosh(num) <= Piecewise((2, num >= Piecewise((-1, num <= -0.5), (num, True))), (num, True)))), (2, True))"
    x = np.array([[0.5, 1.0, 1.5, 3.0, 10.0]])
    got = {m: run_activation(build([(formula, {})], m), x)[0][0] for m in ("CPU_PYTHON", "CPU_JIT")}
    # by hand: num <= 0.75, or acosh(num) <= 2 (num >= num always picks 2)
    want = [1.0 if v <= 0.75 or float(mp.acosh(v)) <= 2 else 2.0 for v in x[0]]
    for m, a in got.items():
        np.testing.assert_array_equal(a, want, err_msg=m)


def test_a_piecewise_with_a_series_branch_is_not_inverted(method, dtype):
    """sinc's derivative is a Piecewise whose small-argument branch is a polynomial: inverting it
    (to divide by the Piecewise) made a rational function of num**49 that overflowed to NaN."""
    f = lambda x: mp.atan(mp.sin(mp.asinh(x) / x) / (mp.asinh(x) / x))  # noqa: E731
    xs = [20.0, 0.5, 3.0]
    points = [(x, f(at(x, dtype)), mp.diff(f, at(x, dtype))) for x in xs]
    check("atan(sinc((asinh(num) / num)))", {}, method, dtype, points)


def test_a_negative_fractional_power_is_not_a_division(method, dtype):
    """d/dx (x**x - x)**-0.5 holds (x**x - x)**-1.5: 1e-39 at x = 20 (a float32 subnormal, fine),
    while dividing by (x**x - x)**1.5 = 1e39 overflowed float32 to inf and gave -0.0."""
    f = lambda x: (x**x - x) ** mp.mpf(-0.5)  # noqa: E731
    points = [(x, f(at(x, dtype)), mp.diff(f, at(x, dtype))) for x in [20.0, 2.0, 5.0]]
    check("(num**num - num)**(-0.5)", {}, method, dtype, points)


TRIG_OF_INVERSE = [
    # formula, f(x), points (both dtypes), points beyond float32 (float64 only). SymPy rewrote each
    # as an algebraic function of num (u/sqrt(u**2 + 1), ...) whose u**2 overflows at large num and
    # whose derivative cancels. Points are where the formula as written is well conditioned
    # (cos(atan(num)) at large num is not: it is cos of a rounded pi/2).
    ("sin(atan(num))", lambda x: mp.sin(mp.atan(x)), [2.5, -0.75, 1e-5], [1e200, -3e160]),
    ("cos(atan(num))", lambda x: mp.cos(mp.atan(x)), [-3.0, 0.25], []),
    ("tanh(asinh(num))", lambda x: mp.tanh(mp.asinh(x)), [0.5, -4.0], [1e200, -1e170]),
    ("cosh(asinh(num))", lambda x: mp.cosh(mp.asinh(x)), [-2.0, 0.5], [1e200]),
    ("tan(asin(num))", lambda x: mp.tan(mp.asin(x)), [0.5, -0.75], []),
    ("sinh(acosh(num))", lambda x: mp.sinh(mp.acosh(x)), [1.5, 3.0], [1e200]),
    ("cosh(atanh(num))", lambda x: mp.cosh(mp.atanh(x)), [0.5, -0.25], []),
    ("asinh(num)", mp.asinh, [1e20, -3e25, 0.5], [1e200]),
    ("sin(atan2(num, 2))", lambda x: mp.sin(mp.atan2(x, 2)), [2.5, -0.5], [1e200, -1e170]),
    ("sin(atan((sinc(num)*num)**-2))", lambda x: mp.sin(mp.atan((mp.sin(x) / x * x) ** -2)), [0.5, 1.2], [2.95]),
]


@pytest.mark.parametrize(("formula", "f", "xs", "beyond_float32"), TRIG_OF_INVERSE, ids=[c[0] for c in TRIG_OF_INVERSE])
def test_a_function_of_an_inverse_function_is_computed_as_written(formula, f, xs, beyond_float32, method, dtype):
    """Found by the long fuzz profile (seed 404): ``sin(atan((sinc(num)*Max(num, num))**-2))`` was
    0 instead of 1 where the argument of atan exceeds 1e154, and its derivative lost 12 digits at
    2.95 (SymPy's ``u/sqrt(u**2 + 1)``). The inverse functions are now opaque to SymPy's rewrites."""
    xs = xs + beyond_float32 if dtype == np.float64 else xs
    step = lambda x: max(abs(x), 1) * mp.mpf("1e-20")  # noqa: E731 - mpmath's default step is absolute
    points = [(x, f(at(x, dtype)), mp.diff(f, at(x, dtype), h=step(x))) for x in xs]
    check(formula, {}, method, dtype, points)


def test_the_derivative_of_asinh_of_a_possibly_complex_argument_compiles():
    """Found by the long fuzz profile (seed 102 #238): asinh's large-argument derivative took
    Abs(u), which SymPy rewrites as exp(re(...)) for u = exp(v) with v not provably real."""
    formula = "asinh(exp((Min(3, num, 1e-3))**(2.5)))"
    f = lambda x: mp.asinh(mp.exp(min(mp.mpf(x), mp.mpf("1e-3")) ** mp.mpf(2.5)))  # noqa: E731
    for method in ("CPU_PYTHON", "CPU_JIT"):
        points = [(x, f(x), mp.diff(f, x)) for x in (5e-4, 1e-4)]
        check(formula, {}, method, np.dtype(np.float64), points)
