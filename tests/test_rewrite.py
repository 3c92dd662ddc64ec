"""The rewrites before printing (symjit_numba/codegen/rewrite.py): identities, fewer calls, accuracy.

* Each rule is an identity: the rewritten expression equals the original to 30 digits (SymPy
  ``evalf``) at points of both signs, tails included.
* Each rule does what it is for: the printed kernel text calls ``exp`` once for mish and its
  derivative, and no ``log``/``log1p``/``tanh``; textbook spellings print as the library's functions.
* Compiled (CPU_JIT, both dtypes, both layouts) user formulas that the rules rewrite match an
  independent 50-digit mpmath reference, on a grid with 0, subnormals, +-20, +-60, +-90, +-750, +-1e4,
  with the named-formula tolerances for values and derivatives and, for values, relative accuracy
  in the tails (sigmoid(-60) ~ 1e-26, mish(-20) ~ -4e-8); +-inf give the limits, NaN gives NaN.
"""

import functools

import mpmath
import numpy as np
import pytest
import sympy as sp

from symjit_numba.codegen.printer import KernelPrinter
from symjit_numba.codegen.rewrite import RULES, rewrite, rewrite_block
from symjit_numba.functions import exp_neg_abs, log1p, sigmoid, softplus

from .conftest import build, run_activation

mpmath.mp.dps = 50
mpf = mpmath.mpf
x = sp.Symbol("num")


def _mp_sigmoid(v):
    return 1 / (1 + mpmath.exp(-v))


def _mp_softplus(v):
    return v + mpmath.log1p(mpmath.exp(-v)) if v > 0 else mpmath.log1p(mpmath.exp(v))


#: formula string -> (the rule it exercises, mpmath reference)
FORMULAS = {
    "x*tanh(softplus(x))": ("tanh_softplus", lambda v: v * mpmath.tanh(_mp_softplus(v))),
    "x*tanh(log(1 + exp(x)))": ("softplus + tanh_softplus", lambda v: v * mpmath.tanh(_mp_softplus(v))),
    "tanh(softplus(x))": ("tanh_softplus", lambda v: mpmath.tanh(_mp_softplus(v))),
    "1 - tanh(softplus(x))**2": ("sech2_softplus", lambda v: mpmath.sech(_mp_softplus(v)) ** 2),  # no cancelling
    "1 - tanh(x)**2": ("sech2", lambda v: 1 / mpmath.cosh(v) ** 2),
    "tanh(x)": ("sech2 (in the derivative)", mpmath.tanh),
    "log(1 + exp(x))": ("softplus", _mp_softplus),
    "log1p(exp(2*x))": ("softplus", lambda v: _mp_softplus(2 * v)),
    "1/(1 + exp(-x))": ("sigmoid", _mp_sigmoid),
    "x*exp(x)/(1 + exp(x))": ("sigmoid", lambda v: v * _mp_sigmoid(v)),
    "log(sigmoid(x))": ("log_sigmoid", lambda v: -_mp_softplus(-v)),
    "exp(-softplus(x))": ("exp_softplus", lambda v: _mp_sigmoid(-v)),
    "1 - sigmoid(x)": ("sigmoid_complement", lambda v: _mp_sigmoid(-v)),
    "sigmoid(x)*(1 - sigmoid(x))": ("sigmoid_complement + sigmoid_slope", lambda v: _mp_sigmoid(v) * _mp_sigmoid(-v)),
    "x*sigmoid(3*x)": ("sigmoid_slope (in the derivative)", lambda v: v * _mp_sigmoid(3 * v)),
    "sigmoid(x) + tanh(softplus(x))": ("shared_exp", lambda v: _mp_sigmoid(v) + mpmath.tanh(_mp_softplus(v))),
}

_SPECIAL = [0.0, 1e-300, 1e-40, 1e-12, 1e-6, 1e-3, 0.1, 0.5, 1.0, 1.19, 1.5, 2.0, 3.0, 4.5, 6.0, 10.0, 20.0,
            30.0, 45.0, 60.0, 90.0, 750.0, 1e4]
GRID = np.array(sorted({s * v for v in _SPECIAL for s in (1.0, -1.0)}
                       | set(np.random.default_rng(5).normal(0.0, 4.0, 24))))


# ---------------------------------------------------------------------------------------------
# Identities (SymPy level)
# ---------------------------------------------------------------------------------------------

EXPRESSIONS = [
    x * sp.tanh(softplus(x)),
    sp.diff(x * sp.tanh(softplus(x)), x),
    1 - sp.tanh(softplus(3 * x)) ** 2, 1 - sp.tanh(x / 2) ** 2, sp.diff(sp.tanh(x) * x, x),
    sp.log(1 + sp.exp(x)), log1p(sp.exp(-x)), 1 / (1 + sp.exp(-x)), sp.exp(x) / (1 + sp.exp(x)),
    sp.exp(-x) / (1 + sp.exp(-x)) ** 2, sp.diff(x * sp.exp(x) / (1 + sp.exp(x)), x), 1 / (1 + sp.exp(2 * x)) ** 3,
    sp.log(sigmoid(x)), sp.exp(-softplus(x)), 1 - sigmoid(2 * x), sigmoid(x) * (1 - sigmoid(x)),
    x * sigmoid(x) * (1 - sigmoid(x)) + sigmoid(x), 2 * sigmoid(-3 * x) * sigmoid(3 * x) * x,
]


def _value(expr, v):
    # 200 digits: the originals cancel (1 - tanh(softplus(90))**2 ~ 1e-78 is 1 - (1 - tiny)**2)
    expr = expr.rewrite(sp.exp) if expr.has(exp_neg_abs) else expr
    return sp.N(expr.subs(x, sp.Float(v, 250)).rewrite(sp.exp), 200)


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=str)
def test_every_rewrite_is_an_identity(expr):
    rewritten = rewrite(expr)
    assert rewritten != expr  # every one of them is rewritten
    for v in (-30.0, -3.5, -1.0, -0.25, 0.0, 0.3, 1.0, 2.5, 30.0):
        want, got = _value(expr, v), _value(rewritten, v)
        assert abs(got - want) <= sp.Float(10) ** -30 * max(abs(want), sp.Float(10) ** -60), (expr, v, got, want)


def test_rules_table_names_each_rule_once():
    names = [rule.name for rules in RULES for rule in rules]
    assert len(names) == len(set(names))
    assert {"tanh_softplus", "sech2_softplus", "softplus", "sigmoid", "sigmoid_complement", "log_sigmoid",
            "exp_softplus", "sech2", "sigmoid_slope"} <= set(names)


# ---------------------------------------------------------------------------------------------
# Fewer calls
# ---------------------------------------------------------------------------------------------

def _printed(exprs):
    statements, results = KernelPrinter("numba", {x: "num"}).block(exprs)
    return "\n".join([*statements, *results])


def test_mish_and_its_derivative_cost_one_exp():
    f = x * sp.tanh(softplus(x))
    df = sp.diff(f, x)
    for block, divisions in (([f], 1), ([df], 2), ([f, df], 3)):
        text = _printed(block)
        assert text.count("vm.exp(") == 1, text
        assert "tanh" not in text and "log" not in text and "sigmoid" not in text, text
        assert text.count("/") == divisions, text


def test_textbook_spellings_print_as_the_stable_functions():
    assert _printed([sp.log(1 + sp.exp(x))]) == "vm.softplus(num)"
    assert _printed([1 / (1 + sp.exp(-x))]) == "vm.sigmoid(num)"
    assert _printed([sp.log(sigmoid(x))]) == "(-vm.softplus((-num)))"
    slope = _printed([sigmoid(x) * (1 - sigmoid(x))])  # e/(1 + e)**2: one exp, one division
    assert slope.count("vm.exp(") == 1 and slope.count("/") == 1 and "sigmoid" not in slope, slope


def test_rewrite_block_shares_the_exp_between_expressions():
    text = _printed(rewrite_block([x * sp.tanh(softplus(x)), sigmoid(x)]))
    assert text.count("vm.exp(") == 1 and "vm.sigmoid" not in text, text


def test_formulas_without_these_compositions_are_unchanged():
    for expr in (sp.tanh(x), sigmoid(x), softplus(x), sp.exp(x) + sp.log(x), sp.Max(0, x), x * sigmoid(1.5 * x)):
        assert rewrite(expr) == expr


# ---------------------------------------------------------------------------------------------
# Compiled accuracy
# ---------------------------------------------------------------------------------------------

LAYER = [(formula, {}) for formula in FORMULAS]


@functools.cache
def _layer(layout):
    return build(LAYER, "CPU_JIT", "activation", layout)


@functools.cache
def _reference(xs_key, dtype_name):
    xs = np.frombuffer(xs_key, dtype=np.dtype(dtype_name)).astype(np.float64)
    value = np.empty((len(LAYER), xs.size))
    slope = np.empty((len(LAYER), xs.size))
    for j, (_, f) in enumerate(FORMULAS.values()):
        for k, v in enumerate(xs):
            value[j, k] = float(f(mpf(v)))
            slope[j, k] = float(mpmath.diff(f, mpf(v)))
    return value, slope


def _evaluate(layout, xs):
    z = np.tile(xs, (len(LAYER), 1))
    if layout == "batch_major":
        a, d = run_activation(_layer(layout), np.ascontiguousarray(z.T))
        return a.T, d.T
    return run_activation(_layer(layout), z)


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_rewritten_formulas_match_mpmath(dtype, layout):
    xs = GRID.astype(dtype)
    a, d = _evaluate(layout, xs)
    value, slope = _reference(xs.tobytes(), dtype.name)
    x64 = np.abs(xs.astype(np.float64))
    info = np.finfo(dtype)
    if dtype == np.float64:
        tol_v = 1e-12 * np.abs(value) + 1e-14 * np.maximum(1.0, x64)
        tol_d = 1e-12 * np.abs(slope) + 1e-14 * np.maximum(1.0, x64)
    else:
        tol_v = 2e-6 * np.abs(value) + 1e-7 * np.maximum(1.0, x64)
        tol_d = 2e-6 * np.abs(slope) + 1e-7 * np.maximum(1.0, x64)
    # values also relatively: 16 ulp where the result is normal (tails such as sigmoid(-60))
    tol_v = np.minimum(tol_v, np.where(np.abs(value) >= info.tiny, 16 * info.eps * np.abs(value), np.inf))
    tol_v = np.maximum(tol_v, 4 * info.smallest_subnormal)
    names = list(FORMULAS)
    for label, got, want, tol in (("value", a, value, tol_v), ("derivative", d, slope, tol_d)):
        assert np.isfinite(got).all(), f"{label}: non-finite at {np.argwhere(~np.isfinite(got)).tolist()[:5]}"
        bad = ~(np.abs(got.astype(np.float64) - want) <= tol)
        rows = [f"  {names[j]} at x={xs[k]!r}: got {got[j, k]!r}, want {want[j, k]!r}"
                for j, k in zip(*np.nonzero(bad), strict=True)][:20]
        assert not bad.any(), f"{label}: {bad.sum()} points off\n" + "\n".join(rows)


def test_rewritten_formulas_at_inf_and_nan(dtype):
    xs = np.array([np.inf, -np.inf, np.nan], dtype=dtype)
    a, d = _evaluate("node_major", xs)
    limits = {  # formula -> (f(+inf), f(-inf)); NaN marks a limit that is not asserted
        "tanh(softplus(x))": (1, 0), "1 - tanh(softplus(x))**2": (0, 1), "1 - tanh(x)**2": (0, 0),
        "tanh(x)": (1, -1), "log(1 + exp(x))": (np.inf, 0),
        "log1p(exp(2*x))": (np.inf, 0), "1/(1 + exp(-x))": (1, 0), "log(sigmoid(x))": (0, -np.inf),
        "exp(-softplus(x))": (0, 1), "1 - sigmoid(x)": (0, 1), "sigmoid(x)*(1 - sigmoid(x))": (0, 0),
        "sigmoid(x) + tanh(softplus(x))": (2, 0), "x*sigmoid(3*x)": (np.inf, np.nan), "x*tanh(softplus(x))": (np.inf, np.nan),
        "x*tanh(log(1 + exp(x)))": (np.inf, np.nan), "x*exp(x)/(1 + exp(x))": (np.inf, np.nan),
    }
    for j, formula in enumerate(FORMULAS):
        for k, want in enumerate(limits[formula]):
            if not np.isnan(want):
                assert a[j, k] == want, f"{formula} at {xs[k]}: {a[j, k]!r}"
        assert np.isnan(a[j, 2]) and np.isnan(d[j, 2]), f"{formula}(nan) = {a[j, 2]!r}, {d[j, 2]!r}"
