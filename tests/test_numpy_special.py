"""Accuracy and edge-case tests for ``symjit_numba.mathlib.numpy_special`` against mpmath.

The references are computed with mpmath at 30 significant digits on the exact double (or float32)
input and rounded once to the tested dtype, so the tolerances below measure only the error of the
numpy implementation.
"""

import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symjit_numba.mathlib import numpy_special as ns

mpmath.mp.dps = 30

TINY64 = np.finfo(np.float64).tiny
TINY32 = float(np.finfo(np.float32).tiny)
SUBNORMAL32 = float(np.finfo(np.float32).smallest_subnormal)


# ---------------------------------------------------------------------------
# mpmath references
# ---------------------------------------------------------------------------

def _mp_gamma(x):
    try:
        return mpmath.gamma(x)
    except ValueError:  # pole
        return mpmath.nan


def _mp_loggamma(x):
    try:
        # mpmath's loggamma is the complex principal branch for x < 0; its real part is log|G|.
        return mpmath.re(mpmath.loggamma(x))
    except ValueError:  # pole
        return mpmath.inf


def _mp_erfc(x):
    # mpmath's asymptotic series raises OverflowError for huge |x| (~1e154); the value is long
    # settled there: 0 (underflow, true value < 1e-300000) or 2.
    if abs(x) > 30:
        return mpmath.mpf(0) if x > 0 else mpmath.mpf(2)
    return mpmath.erfc(x)


def _mp_ndtr(x):
    return mpmath.ncdf(x) if abs(x) <= 40 else mpmath.mpf(0 if x < 0 else 1)  # (settled; huge |x| overflow)


MP_FUNCS = {
    "erf": mpmath.erf,
    "erfc": _mp_erfc,
    "gamma": _mp_gamma,
    "loggamma": _mp_loggamma,
    "ndtr": _mp_ndtr,
    "normal_pdf": mpmath.npdf,
}


def reference(name, xs):
    """float64 array of the mpmath value at every (exactly converted) input."""
    f = MP_FUNCS[name]
    # gamma's poles at +-0 are C tgamma's +-inf, the one-sided limit (mpmath's zero has no sign).
    return np.array([np.copysign(np.inf, x) if name == "gamma" and x == 0 else float(f(mpmath.mpf(float(x))))
                     for x in np.ravel(xs)], dtype=np.float64)


def tolerance64(name, xs, ref):
    """Allowed absolute error per point for float64 results.

    Relative 1e-14 (erf, erfc, ndtr, normal_pdf) or 1e-13 (gamma, loggamma); a few subnormal units where the result
    itself has underflowed; for loggamma at x < 0 the reflection formula subtracts two terms of
    size ~log Gamma(|x|), so next to its zeros only absolute accuracy relative to that size is
    attainable.
    """
    rel = 1e-14 if name in ("erf", "erfc", "ndtr", "normal_pdf") else 1e-13
    tol = rel * np.abs(ref) + 16 * np.finfo(np.float64).smallest_subnormal
    if name == "loggamma":
        neg = xs < 0
        scale = np.abs(reference("loggamma", -xs[neg]))
        tol[neg] += 1e-15 * (1.0 + scale)
    return tol


def assert_matches(got, expected, tol, xs):
    """Equal where non-finite (including the sign of infinities), within ``tol`` elsewhere."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    nonfinite = ~np.isfinite(expected)
    bad = np.zeros(expected.shape, dtype=bool)
    bad[nonfinite] = ~((got[nonfinite] == expected[nonfinite])
                       | (np.isnan(got[nonfinite]) & np.isnan(expected[nonfinite])))
    fin = ~nonfinite
    with np.errstate(invalid="ignore"):  # inf - inf at the non-finite points, checked above
        err = np.abs(got - expected)
    bad[fin] = ~(err[fin] <= tol[fin])  # also catches a nan result
    if bad.any():
        ratio = np.where(fin & bad, err / np.where(tol > 0, tol, 1), np.inf)
        i = int(np.argmax(ratio)) if np.isfinite(ratio).any() else int(np.argmax(bad))
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} points out of tolerance; worst x={xs[i]!r}: "
            f"got {got[i]!r}, expected {expected[i]!r}, tol {tol[i]!r}"
        )


# ---------------------------------------------------------------------------
# grids
# ---------------------------------------------------------------------------

def _sym(v):
    v = np.asarray(v, dtype=np.float64)
    return np.concatenate([v, -v])


def _near_gamma_poles():
    n = np.arange(0.0, 171.0)
    eps = _sym(10.0 ** -np.arange(1.0, 16.0, 2.0))
    pts = (-n[:, None] + eps[None, :]).ravel()
    return pts[pts != np.floor(pts)]


GRIDS = {
    "erf": np.concatenate([
        np.linspace(-7.0, 7.0, 1401),
        _sym(np.logspace(-320, 0, 161)),
        np.linspace(0.8, 1.3, 201),           # branch boundaries 0.84375 and 1.25
        np.linspace(2.7, 3.0, 61),            # branch boundary ~2.857
    ]),
    "erfc": np.concatenate([
        np.linspace(-7.0, 7.0, 1401),
        np.linspace(7.0, 27.5, 821),          # deep tail, through underflow at ~27.2
        _sym(np.logspace(-20, 0, 81)),
        np.linspace(0.2, 0.3, 41),            # branch boundary 0.25
    ]),
    "gamma": np.concatenate([
        np.linspace(-20.0, 20.0, 2001),
        np.linspace(20.0, 171.7, 700),        # through overflow at ~171.62
        np.linspace(-185.0, -20.0, 700),      # reflection, into underflow
        _near_gamma_poles(),
        _sym(np.logspace(-300, -1, 100)),
        np.arange(1.0, 40.0),                 # exact factorial table and just past it
    ]),
    "loggamma": np.concatenate([
        np.linspace(-20.0, 20.0, 2001),
        1.0 + _sym(np.logspace(-16, -0.5, 80)),   # zero at 1
        2.0 + _sym(np.logspace(-15, -0.5, 80)),   # zero at 2
        np.linspace(0.2, 2.0, 301),           # the several sub-intervals below 2
        np.linspace(2.0, 8.5, 301),           # recurrence range
        np.logspace(0.9, 305, 400),           # Stirling range and overflow
        _near_gamma_poles()[:800],
        -np.logspace(1.0, 15.0, 200),         # large negative, mostly close to poles
        _sym(np.logspace(-300, -1, 100)),
    ]),
    "ndtr": np.concatenate([
        np.linspace(-10.0, 10.0, 2001),
        np.linspace(-38.6, -10.0, 573),       # the lower tail, where -x/sqrt(2) is large, to underflow
        np.linspace(2.6, 3.0, 41),            # t = -x/sqrt(2) around 2, where the tail correction starts
        _sym(np.logspace(-300, 0, 61)),
        _sym(np.logspace(1.7, 300, 30)),      # settled: 0 and 1
    ]),
    "normal_pdf": np.concatenate([
        np.linspace(-10.0, 10.0, 2001),
        _sym(np.linspace(10.0, 38.7, 575)),   # the tails, where x*x/2 is large, to underflow
        _sym(np.logspace(-300, 0, 61)),
    ]),
}

NAMES = sorted(GRIDS)


@pytest.fixture(scope="module")
def refs64():
    return {name: reference(name, GRIDS[name]) for name in NAMES}


# ---------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_float64_grid_vs_mpmath(name, refs64):
    xs = GRIDS[name]
    got = getattr(ns, name)(xs)
    assert got.dtype == np.float64
    assert_matches(got, refs64[name], tolerance64(name, xs, refs64[name]), xs)


@pytest.mark.parametrize("name", NAMES)
def test_float32_grid_vs_mpmath(name):
    with np.errstate(over="ignore"):  # grid values beyond float32 range become inf, dropped
        xs32 = np.unique(GRIDS[name].astype(np.float32))
    xs32 = xs32[np.isfinite(xs32)]
    with np.errstate(over="ignore"):
        expected = reference(name, xs32).astype(np.float32)
    got = getattr(ns, name)(xs32)
    assert got.dtype == np.float32
    tol = 2e-7 * np.abs(expected.astype(np.float64)) + 2 * SUBNORMAL32
    assert_matches(got, expected, tol, xs32)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(x=st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-200.0, max_value=200.0),
    st.floats(min_value=-30.0, max_value=30.0),
))
def test_property_random_finite_vs_mpmath(name, x):
    xs = np.array([x])
    ref = reference(name, xs)
    got = getattr(ns, name)(xs)
    assert_matches(got, ref, tolerance64(name, xs, ref), xs)


def test_erfc_tail_keeps_relative_accuracy():
    # The tail is where 1 - erf would return 0; erfc must carry full precision until underflow.
    xs = np.array([10.0, 20.0, 26.0, 26.5, 27.0])
    got = ns.erfc(xs)
    ref = reference("erfc", xs)
    normal = ref >= TINY64
    np.testing.assert_allclose(got[normal], ref[normal], rtol=1e-14, atol=0)
    assert got[2] == pytest.approx(5.663192408856143e-296, rel=1e-15)


# ---------------------------------------------------------------------------
# special values
# ---------------------------------------------------------------------------

INF = np.inf
NAN = np.nan
SPECIAL = [
    ("erf", NAN, NAN), ("erf", INF, 1.0), ("erf", -INF, -1.0), ("erf", 0.0, 0.0),
    ("erf", -0.0, -0.0), ("erf", 40.0, 1.0), ("erf", -40.0, -1.0),
    ("erfc", NAN, NAN), ("erfc", INF, 0.0), ("erfc", -INF, 2.0), ("erfc", 0.0, 1.0),
    ("erfc", -0.0, 1.0), ("erfc", 30.0, 0.0), ("erfc", -30.0, 2.0),
    ("gamma", NAN, NAN), ("gamma", INF, INF), ("gamma", -INF, NAN), ("gamma", 0.0, INF),
    ("gamma", -0.0, -INF), ("gamma", -1.0, NAN), ("gamma", -2.0, NAN), ("gamma", -170.0, NAN),
    ("gamma", -1e300, NAN), ("gamma", 1.0, 1.0), ("gamma", 2.0, 1.0), ("gamma", 5.0, 24.0),
    ("gamma", 172.0, INF), ("gamma", 1e300, INF), ("gamma", -200.5, -0.0),
    ("gamma", -201.5, 0.0),
    ("loggamma", NAN, NAN), ("loggamma", INF, INF), ("loggamma", -INF, INF),
    ("loggamma", 0.0, INF), ("loggamma", -0.0, INF), ("loggamma", -1.0, INF),
    ("loggamma", -2.0, INF), ("loggamma", -1e300, INF), ("loggamma", 1.0, 0.0),
    ("loggamma", 2.0, 0.0), ("loggamma", 1e308, INF),
]


def _same(got, expected):
    if np.isnan(expected):
        return bool(np.isnan(got))
    return bool(got == expected and np.signbit(got) == np.signbit(expected))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,x,expected", SPECIAL)
def test_special_values(name, x, expected, dtype):
    with np.errstate(over="ignore"):  # +-1e300 -> +-inf in float32 is intended
        xd = dtype(x)
    if np.isfinite(x) and not np.isfinite(xd) and np.isfinite(expected):
        pytest.skip("input overflows float32 and the expected value depends on it")
    x = xd
    got = getattr(ns, name)(x)
    assert _same(got, expected), f"{name}({x!r}) = {got!r}, expected {expected!r}"
    got_arr = getattr(ns, name)(np.array([x, x]))
    assert all(_same(g, expected) for g in got_arr)


def test_gamma_near_poles_sign_and_size():
    # Just right of -n Gamma has sign (-1)**n and magnitude ~1/(n! eps).
    for n in range(0, 8):
        eps = 1e-9
        for side in (1.0, -1.0):
            x = -n + side * eps
            expected = float(_mp_gamma(mpmath.mpf(x)))
            assert ns.gamma(x) == pytest.approx(expected, rel=1e-13)


def test_no_floating_point_warnings():
    xs = np.concatenate([GRIDS[name] for name in NAMES]
                        + [np.array([NAN, INF, -INF, 0.0, -0.0, 1e308, -1e308, 5e-324])])
    with np.errstate(over="ignore"):
        xs32 = xs.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in NAMES:
            getattr(ns, name)(xs)
            getattr(ns, name)(xs32)


# ---------------------------------------------------------------------------
# dtypes, shapes, scalars
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
def test_dtype_preserved(name, dtype):
    f = getattr(ns, name)
    arr = np.array([[0.5, 1.5, 2.5], [-0.5, 3.0, 4.25]], dtype=dtype)
    out = f(arr)
    assert isinstance(out, np.ndarray)
    assert out.dtype == dtype
    assert out.shape == arr.shape
    scalar = f(dtype(0.75))
    assert isinstance(scalar, np.generic) and scalar.dtype == dtype
    # float16 flushes e.g. erfc(4.25) ~ 2e-9 to zero: allow its smallest subnormal.
    finfo = np.finfo(dtype)
    np.testing.assert_allclose(out.astype(np.float64),
                               reference(name, arr.astype(np.float64)).reshape(arr.shape),
                               rtol=1e-13 if dtype == np.longdouble else float(finfo.eps),
                               atol=float(finfo.smallest_subnormal))


@pytest.mark.parametrize("name", NAMES)
def test_python_and_integer_inputs_give_float64(name):
    f = getattr(ns, name)
    for value in (0.75, 3, [0.5, 2.5], np.arange(1, 5), np.array(True)):
        out = np.asarray(f(value))
        assert out.dtype == np.float64
    out = f(1.25)
    assert isinstance(out, np.float64)
    assert float(out) == pytest.approx(float(MP_FUNCS[name](mpmath.mpf(1.25))), rel=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_input_untouched_and_strided(name):
    f = getattr(ns, name)
    base = np.linspace(-5.3, 5.7, 40)
    keep = base.copy()
    strided = base[::3]
    out = f(strided)
    np.testing.assert_array_equal(base, keep)
    np.testing.assert_array_equal(out, f(strided.copy()))
    np.testing.assert_array_equal(f(np.array([], dtype=np.float32)), np.array([], np.float32))


def test_complex_rejected():
    with pytest.raises(TypeError):
        ns.erf(np.array([1 + 1j]))
