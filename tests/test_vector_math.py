"""Accuracy, special values and vectorisation of symjit_numba.mathlib.vector_math.

Every function is applied inside a small ``@njit`` element loop (the way generated kernels use it)
over a dense grid covering the whole float range.  float32 results are compared with a float64
reference; float64 results with a float64 libm reference on the dense grid and with mpmath (30
digits) on a subsample.
"""

import functools
import json
import math
import os
import platform
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import llvmlite.binding as llvm
import mpmath
import numpy as np
import pytest
from numba import njit, types

from symjit_numba.functions import FUNCTIONS_BY_NAME
from symjit_numba.mathlib import vector_math as vm

from .conftest import without_cache_location

FUNCS = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "erf", "erfc", "ndtr", "normal_pdf", "sin", "cos",
         "tan", "atan", "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh"]
#: float32 computed in float64 inside (sin/cos/tan: exact argument reduction; the others: closed
#: forms over the float64 functions); float64 is libm's, not vectorised.
IN_FLOAT64 = {"sin", "cos", "tan", "atan", "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh"}
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-6, np.float64: 1e-14}
NUMBA_TYPE = {np.float32: types.float32, np.float64: types.float64}

# Caller flavours: what the generated kernels use, plain njit, and an all-flags caller.
CALLER_OPTIONS = {
    "fastmath_flags": {"fastmath": set(vm.FASTMATH_FLAGS)},
    "plain": {},
    "fastmath_true": {"fastmath": True},
}


@functools.cache
def element_loop(name, dtype, caller="fastmath_flags"):
    """A jitted ``out[i] = f(x[i])`` loop, compiled for contiguous 1-d arrays of dtype."""
    f = getattr(vm, name)

    @njit(**CALLER_OPTIONS[caller])
    def loop(x, out):
        for i in range(x.size):
            out[i] = f(x[i])

    ty = NUMBA_TYPE[dtype]
    loop.compile((ty[::1], ty[::1]))
    return loop


def apply(name, x, caller="fastmath_flags"):
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    element_loop(name, x.dtype.type, caller)(x, out)
    return out


# ------------------------------------------------------------------------------------------------
# Argument grid
# ------------------------------------------------------------------------------------------------


def _thresholds(dtype):
    """Points where the implementations switch formulas, clamp, overflow or underflow."""
    fi = np.finfo(dtype)
    pts = [
        1.0, 2.0, 0.25, 0.5, 0.84375, 1.25, 1 / 0.35, 6.0, 28.0,  # erf/erfc ranges
        math.log(3) / 2,  # tanh
        math.sqrt(2), math.sqrt(0.5), math.sqrt(2) - 1, math.sqrt(0.5) - 1,  # log/log1p reduction
        float(np.log(fi.max)), float(np.log(fi.tiny)), float(np.log(fi.smallest_subnormal)),
        746.0, 710.0, 104.0, 89.0, 40.0, 20.0, 30.0, 12.0, 9.0, 10.0, 26.5, 27.3,
        1.25 * math.sqrt(2), 14.4, 15.0, 38.6,  # ndtr: erfc's ranges at x/sqrt(2), underflow, clamps
        float(fi.tiny), float(fi.max), float(fi.eps),
    ]
    pts += [(k + 0.5) * math.log(2) for k in range(-6, 6)]  # exp reduction boundaries
    pts += [k * math.pi / 4 for k in range(1, 41)] + [k * math.pi for k in (1e3, 1e5, 1e7)]  # sin/cos: zeros, octants
    pts = np.array(pts, dtype=np.float64)
    steps = np.arange(-3, 4)
    with np.errstate(over="ignore"):
        near = (pts[:, None] * (1 + steps[None, :] * float(fi.eps))).ravel()
        near = np.concatenate([near, -near])
        return near.astype(dtype)


def grid(dtype, n_log=20000, n_uniform=20000, seed=0):
    fi = np.finfo(dtype)
    rng = np.random.default_rng(seed)
    lo, hi = np.log10(float(fi.smallest_subnormal)), np.log10(float(fi.max))
    with np.errstate(over="ignore"):
        mags = np.logspace(lo, hi, n_log)
    parts = [
        mags, -mags, [0.0, -0.0],
        rng.uniform(-5, 5, n_uniform),
        rng.uniform(-800, 800, n_uniform // 4),
        np.exp(rng.uniform(-3, 3, n_uniform // 4)) - 1,  # log1p/log near their zeros
        1 + rng.uniform(-1e-3, 1e-3, n_uniform // 8),
    ]
    with np.errstate(over="ignore"):
        x = np.concatenate([np.asarray(p, dtype=np.float64).astype(dtype) for p in parts])
    x = np.concatenate([x, _thresholds(dtype)])
    return x[np.isfinite(x)]


# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------

_erf64 = np.frompyfunc(math.erf, 1, 1)
_erfc64 = np.frompyfunc(math.erfc, 1, 1)
_ncdf_mp = np.frompyfunc(lambda v: float(mpmath.ncdf(v)), 1, 1)
_npdf_mp = np.frompyfunc(lambda v: float(mpmath.npdf(v)), 1, 1)


def _normal_reference(name, d, exact_float64):
    """ndtr / normal_pdf: float64 formulas, or mpmath (|x| <= 40; the limits beyond) for float64
    arguments, where erfc(-x/sqrt(2)) carries the rounding of x/sqrt(2) x^2 times (1e-13 at x = -38)."""
    if not exact_float64:
        if name == "ndtr":
            return _erfc64(-d * (1 / math.sqrt(2))).astype(np.float64) / 2
        return np.exp(-0.5 * d * d) / math.sqrt(2 * math.pi)  # d*d is exact for float32 arguments
    inside = np.abs(d) <= 40
    out = np.where(np.isnan(d), np.nan, 0.0 if name == "normal_pdf" else (d > 0).astype(np.float64))
    out[inside] = (_ncdf_mp if name == "ndtr" else _npdf_mp)(d[inside]).astype(np.float64)
    return out


def reference_f64(name, x):
    """float64 libm reference (error ~1 ulp of float64)."""
    d = np.asarray(x, dtype=np.float64)
    if name in ("ndtr", "normal_pdf"):
        return _normal_reference(name, d, np.asarray(x).dtype == np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            e = np.exp(-np.abs(d))
            return np.where(d >= 0, 1 / (1 + e), e / (1 + e))
        if name == "softplus":
            return np.logaddexp(0.0, d)
        if name == "erf":
            return _erf64(d).astype(np.float64)
        if name == "erfc":
            return _erfc64(d).astype(np.float64)
        return getattr(np, FUNCTIONS_BY_NAME[name].numpy.removeprefix("numpy."))(d)  # np.arcsin for asin


MP_FUNCS = {
    "exp": mpmath.exp,
    "log": mpmath.log,
    "log1p": mpmath.log1p,
    "expm1": mpmath.expm1,
    "tanh": mpmath.tanh,
    "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "softplus": lambda x: x + mpmath.log1p(mpmath.exp(-x)) if x > 0 else mpmath.log1p(mpmath.exp(x)),
    "erf": mpmath.erf,
    "erfc": mpmath.erfc,
    "ndtr": mpmath.ncdf,
    "normal_pdf": mpmath.npdf,
    "sin": mpmath.sin,
    "cos": mpmath.cos,
    "tan": mpmath.tan,
    "atan": mpmath.atan,
    "asin": mpmath.asin,
    "acos": mpmath.acos,
    "sinh": mpmath.sinh,
    "cosh": mpmath.cosh,
    "asinh": mpmath.asinh,
    "acosh": mpmath.acosh,
    "atanh": mpmath.atanh,
}

# Arguments for which mpmath is slow (huge exponents) and the answer is trivial anyway.
MP_DOMAIN = {"exp": 800, "expm1": 800, "sigmoid": 800, "tanh": 40, "erf": 30, "erfc": 30, "ndtr": 40, "sinh": 800, "cosh": 800,
             "normal_pdf": 40}


def mpmath_errors(name, x, y, dtype):
    """Error of y = f(x) against mpmath, as a multiple of the tolerance scale (see below)."""
    fi = np.finfo(dtype)
    f = MP_FUNCS[name]
    errs = np.empty(len(x))
    with mpmath.workdps(30):
        for i, (xi, yi) in enumerate(zip(x, y)):
            r = f(mpmath.mpf(float(xi))) if xi == xi else mpmath.nan
            errs[i] = _scaled_error(r, yi, fi)
    return errs


def _scaled_error(r, yi, fi):
    """Relative error of yi wrt r; absolute error / tiny where r is 0 or subnormal; checks of
    overflow and NaN are folded in (0 if right, inf if wrong)."""
    if isinstance(r, mpmath.mpc) or mpmath.isnan(r):  # e.g. mpmath.log(-1) is complex
        return 0.0 if np.isnan(yi) else np.inf
    if np.isnan(yi):
        return np.inf
    ar = abs(r)
    if ar > float(fi.max):
        if ar > float(fi.max) * (1 + 1e-5):
            return 0.0 if (np.isinf(yi) and (yi > 0) == (r > 0)) else np.inf
        return 0.0 if np.isinf(yi) else float(abs(mpmath.mpf(float(yi)) - r) / ar)
    if np.isinf(yi):
        return np.inf
    diff = abs(mpmath.mpf(float(yi)) - r)
    if ar < float(fi.tiny):
        return float(diff / float(fi.tiny))
    return float(diff / ar)


def vector_errors(ref, y, dtype):
    """Vectorised version of _scaled_error against a float64 reference array."""
    fi = np.finfo(dtype)
    y = y.astype(np.float64)
    err = np.zeros(len(ref))
    with np.errstate(all="ignore"):
        nan_r, nan_y = np.isnan(ref), np.isnan(y)
        err[nan_r != nan_y] = np.inf
        ok = ~nan_r & ~nan_y
        aref = np.abs(ref)
        over = ok & (aref > float(fi.max))
        clear_over = over & (aref > float(fi.max) * (1 + 1e-5))
        err[clear_over & ~(np.isinf(y) & (np.sign(y) == np.sign(ref)))] = np.inf
        normal = ok & ~over & (aref >= float(fi.tiny))
        tiny = ok & ~over & (aref < float(fi.tiny))
        err[normal] = np.abs(y[normal] - ref[normal]) / aref[normal]
        err[tiny] = np.abs(y[tiny] - ref[tiny]) / float(fi.tiny)
        err[(normal | tiny) & np.isinf(y) & ~np.isinf(ref)] = np.inf
        both_inf = ok & np.isinf(ref)
        err[both_inf & (y != ref)] = np.inf
    return err


def _report(name, x, y, err, rtol):
    i = int(np.argmax(err))
    return f"{name}: max error {err[i]:.3g} > {rtol:g} at x={x[i]!r} (got {y[i]!r})"


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", FUNCS)
def test_accuracy_dense_grid(name, dtype):
    x = grid(dtype)
    y = apply(name, x)
    assert y.dtype == dtype
    err = vector_errors(reference_f64(name, x), y, dtype)
    assert err.max() <= RTOL[dtype], _report(name, x, y, err, RTOL[dtype])


@pytest.mark.parametrize("name", FUNCS)
def test_accuracy_float64_vs_mpmath(name):
    rng = np.random.default_rng(1)
    x = grid(np.float64)
    x = np.concatenate([rng.choice(x, 2500, replace=False), _thresholds(np.float64)])
    x = x[np.isfinite(x) & (np.abs(x) <= MP_DOMAIN.get(name, np.inf))]
    y = apply(name, x)
    err = mpmath_errors(name, x, y, np.float64)
    assert err.max() <= RTOL[np.float64], _report(name, x, y, err, RTOL[np.float64])


@pytest.mark.parametrize("caller", ["plain", "fastmath_true"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_results_independent_of_caller_flags(caller, dtype):
    """The implementations pin their own flags, so plain @njit (and even fastmath=True) callers
    get bit-identical results, NaN/inf handling included."""
    x = np.concatenate([grid(dtype, 3000, 3000), np.array([np.nan, np.inf, -np.inf], dtype)])
    for name in FUNCS:
        expected = apply(name, x)
        got = apply(name, x, caller)
        np.testing.assert_array_equal(got.view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}"),
                                      err_msg=name)


INF, NAN = np.inf, np.nan
SPECIAL_VALUES = {
    "exp": [(NAN, NAN), (-INF, 0.0), (INF, INF), (0.0, 1.0), (-0.0, 1.0), (1e4, INF), (-1e4, 0.0)],
    "log": [(NAN, NAN), (0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-INF, NAN), (INF, INF), (1.0, 0.0)],
    "log1p": [(NAN, NAN), (-1.0, -INF), (-2.0, NAN), (-INF, NAN), (INF, INF), (0.0, 0.0),
              (-0.0, -0.0)],
    "expm1": [(NAN, NAN), (-INF, -1.0), (INF, INF), (0.0, 0.0), (-0.0, -0.0), (1e4, INF),
              (-1e4, -1.0)],
    "tanh": [(NAN, NAN), (INF, 1.0), (-INF, -1.0), (0.0, 0.0), (-0.0, -0.0), (1e4, 1.0)],
    "sigmoid": [(NAN, NAN), (INF, 1.0), (-INF, 0.0), (0.0, 0.5), (-0.0, 0.5), (-1e4, 0.0)],
    "softplus": [(NAN, NAN), (INF, INF), (-INF, 0.0), (-1e4, 0.0), (1e4, 1e4)],
    "erf": [(NAN, NAN), (INF, 1.0), (-INF, -1.0), (0.0, 0.0), (-0.0, -0.0), (10.0, 1.0)],
    "erfc": [(NAN, NAN), (INF, 0.0), (-INF, 2.0), (0.0, 1.0), (-0.0, 1.0), (50.0, 0.0),
             (-10.0, 2.0)],
    "ndtr": [(NAN, NAN), (INF, 1.0), (-INF, 0.0), (0.0, 0.5), (-0.0, 0.5), (-40.0, 0.0), (10.0, 1.0)],
    "normal_pdf": [(NAN, NAN), (INF, 0.0), (-INF, 0.0), (50.0, 0.0), (-50.0, 0.0)],
    "sin": [(NAN, NAN), (INF, NAN), (-INF, NAN), (0.0, 0.0), (-0.0, -0.0)],
    "cos": [(NAN, NAN), (INF, NAN), (-INF, NAN), (0.0, 1.0), (-0.0, 1.0)],
    "tan": [(NAN, NAN), (INF, NAN), (-INF, NAN), (0.0, 0.0), (-0.0, -0.0)],
    "atan": [(NAN, NAN), (INF, math.pi / 2), (-INF, -math.pi / 2), (0.0, 0.0), (-0.0, -0.0)],
    "asin": [(NAN, NAN), (2.0, NAN), (-INF, NAN), (1.0, math.pi / 2), (-1.0, -math.pi / 2), (0.0, 0.0), (-0.0, -0.0)],
    "acos": [(NAN, NAN), (2.0, NAN), (INF, NAN), (1.0, 0.0), (-1.0, math.pi), (0.0, math.pi / 2)],
    "sinh": [(NAN, NAN), (INF, INF), (-INF, -INF), (1e4, INF), (-1e4, -INF), (0.0, 0.0), (-0.0, -0.0)],
    "cosh": [(NAN, NAN), (INF, INF), (-INF, INF), (1e4, INF), (0.0, 1.0), (-0.0, 1.0)],
    "asinh": [(NAN, NAN), (INF, INF), (-INF, -INF), (0.0, 0.0), (-0.0, -0.0)],
    "acosh": [(NAN, NAN), (INF, INF), (-INF, NAN), (1.0, 0.0), (0.5, NAN), (-1e4, NAN)],
    "atanh": [(NAN, NAN), (1.0, INF), (-1.0, -INF), (2.0, NAN), (INF, NAN), (0.0, 0.0), (-0.0, -0.0)],
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", FUNCS)
def test_special_values(name, dtype):
    x, expected = (np.array(v, dtype=dtype) for v in zip(*SPECIAL_VALUES[name]))
    y = apply(name, x)
    for xi, yi, ei in zip(x, y, expected):
        if np.isnan(ei):
            assert np.isnan(yi), f"{name}({xi!r}) = {yi!r}, expected nan"
        else:
            assert yi == ei and np.signbit(yi) == np.signbit(ei), (
                f"{name}({xi!r}) = {yi!r}, expected {ei!r}"
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_python_level_call(dtype):
    x = np.array([0.5, -1.5], dtype=dtype)
    np.testing.assert_array_equal(vm.evaluate("exp", x), apply("exp", x))
    assert vm.evaluate("erf", dtype(0.5)).dtype == dtype
    assert vm.erf(dtype(0.5)) == apply("erf", np.array([0.5], dtype=dtype))[0]


@pytest.mark.parametrize("name", FUNCS)
def test_float32_stays_float32(name):
    """No promotion to double anywhere in the float32 path (typed constants throughout), but where
    float64 is the method (IN_FLOAT64); the result is float32 in every case."""
    loop = element_loop(name, np.float32)
    ir_text = loop.inspect_llvm((types.float32[::1], types.float32[::1]))
    assert bool(re.search(r"\bdouble\b", ir_text)) == (name in IN_FLOAT64)
    function = getattr(vm, name)
    assert all(sig.return_type == sig.args[0] for sig in function.nopython_signatures)
    assert (types.float32,) in [sig.args for sig in function.nopython_signatures]


#: Vectorisation is checked on x86-64 machine code: any vector width (SSE xmm, AVX ymm, AVX-512 zmm).
X86_64 = platform.machine().lower() in {"x86_64", "amd64"}

#: CPU models whose code is inspected on any x86-64 host (numba compiles for them without running
#: anything): baseline SSE2, AVX2 + FMA, and Intel AVX-512 (where LLVM prefers 256-bit vectors).
#: model -> whether it has FMA.
CPU_MODELS = {"x86-64": False, "haswell": True, "skylake-avx512": True}


def vectorisation_problems(name, dtype, fma):
    """What keeps ``name``'s element loop (``dtype``) from being vectorised, on the CPU numba targets.

    Packed multiplies or FMAs (``mulps``, ``vmulpd``, ``vfmadd213ps``...) on vector registers of any
    width must appear (FMAs if the CPU has them), and no out-of-line call: numba calls libm through
    ``movabsq $exp, %reg; callq *%reg``, and a helper that failed to inline would appear as a direct
    call to its mangled name. Returns a list of messages, empty if vectorised.
    """
    ty = NUMBA_TYPE[dtype]
    asm = element_loop(name, dtype).inspect_asm((ty[::1], ty[::1]))
    suffix = "ps" if dtype == np.float32 and name not in IN_FLOAT64 else "pd"
    op = r"vfn?m(?:add|sub)\d{3}" if fma else r"v?(?:mul|fn?m(?:add|sub)\d{3})"
    problems = []
    if not re.search(rf"\b{op}{suffix}\s[^\n]*%[xyz]mm", asm):
        problems.append(f"no packed {suffix} {'FMA' if fma else 'arithmetic'} on vector registers for {name}")
    callee = re.search(r"\b(call\w*|movabs\w*)\s+\$?\w*(exp|log|tanh|erf|sigmoid|softplus|sin|cos|tan)", asm)
    if callee is not None:
        problems.append(f"out-of-line call in the {name} loop: {callee.group(0)}")
    return problems


#: The (function, dtype) loops that vectorise: all but the float64 IN_FLOAT64 functions (libm calls).
VECTORISED = [(name, dtype) for name in FUNCS for dtype in DTYPES if not (name in IN_FLOAT64 and dtype == np.float64)]


@pytest.mark.skipif(not X86_64, reason="inspects x86-64 machine code")
@pytest.mark.parametrize(("name", "dtype"), VECTORISED, ids=lambda v: getattr(v, "__name__", v))
def test_loop_vectorises_on_this_cpu(name, dtype):
    fma = bool(llvm.get_host_cpu_features().get("fma", False))
    assert not vectorisation_problems(name, dtype, fma)


@pytest.mark.slow
@pytest.mark.skipif(not X86_64, reason="compiles for x86-64 CPU models")
@pytest.mark.parametrize("cpu", CPU_MODELS)
def test_loops_vectorise_for_other_cpu_models(cpu, tmp_path_factory):
    """The same loops compiled for CPUs this machine may not be (numba's ``NUMBA_CPU_NAME``, with no
    host features added), in a fresh process: numba picks its target CPU once per process."""
    script = textwrap.dedent(f"""
        import json
        from tests.test_vector_math import VECTORISED, vectorisation_problems
        print(json.dumps([p for name, dtype in VECTORISED
                          for p in vectorisation_problems(name, dtype, {CPU_MODELS[cpu]})]))
    """)
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": "",
           # numba's cache entries are per CPU model: keep them out of the package folder
           "NUMBA_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "numba-cache-cpu-models")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    problems = json.loads(result.stdout.strip().splitlines()[-1])
    assert not problems, f"{cpu}: " + "; ".join(problems)


@pytest.mark.slow
@pytest.mark.skipif(not X86_64, reason="compiles for the x86-64 baseline model")
def test_accuracy_with_integer_ldexp(tmp_path_factory):
    """Where LLVM lowers ``llvm.ldexp`` natively (AVX-512's ``vscalef``), ``_ldexp`` uses it; other CPUs
    build ``2**k`` from integers. The in-process tests check the host's construction; this runs the
    accuracy and special-value tests again for the baseline model (SSE2: the integer construction,
    runnable on every x86-64), in a fresh process: numba picks its target CPU once per process."""
    env = {**os.environ, "NUMBA_CPU_NAME": "x86-64", "NUMBA_CPU_FEATURES": "",
           "NUMBA_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "numba-cache-baseline")}
    probe = ("from numba.core.registry import cpu_target\n"
             "from symjit_numba.mathlib import vector_math as vm\n"
             "print(vm._has_native_ldexp(cpu_target.target_context))")
    root = Path(__file__).resolve().parent.parent
    native = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert native.stdout.split() == ["False"], native.stderr[-3000:]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_vector_math.py",
                             "-k", "test_accuracy_dense_grid or test_special_values"],
                            capture_output=True, text=True, env=env, timeout=900, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(FUNCS) * 4} passed" in result.stdout, result.stdout[-500:]  # functions x 2 dtypes x 2 tests


def test_compiles_without_a_writable_cache(monkeypatch):
    """Where numba finds no writable cache location it raises at decoration: compile per process instead."""
    monkeypatch.setattr(vm, "njit", without_cache_location(vm.njit))

    def square(x):
        return x * x

    compiled = vm._jit(square)
    assert compiled(np.float32(3.0)) == np.float32(9.0)
    assert type(compiled._cache).__name__ == "NullCache"  # numba's dispatcher without a disk cache


@pytest.mark.slow
@pytest.mark.skipif(not X86_64, reason="compiles for an x86-64 CPU model")
def test_prefer_wide_vectors_gives_512_bit_loops_on_intel_avx512(tmp_path_factory):
    """For ``skylake-avx512`` LLVM picks 256-bit vectors (ymm) unless the function is marked with
    ``vm.prefer_wide_vectors()``; then the same loop uses 512-bit zmm registers, and only that
    function: an unmarked function compiled in the same process keeps ymm."""
    script = textwrap.dedent("""
        import json, re
        from numba import njit, types
        from symjit_numba.mathlib import vector_math as vm

        def loop(wide):
            if wide:
                @njit(fastmath=set(vm.FASTMATH_FLAGS), error_model="numpy")
                def f(x, out):
                    vm.prefer_wide_vectors()
                    for i in range(x.size):
                        out[i] = vm.sigmoid(x[i])
            else:
                @njit(fastmath=set(vm.FASTMATH_FLAGS), error_model="numpy")
                def f(x, out):
                    for i in range(x.size):
                        out[i] = vm.sigmoid(x[i])
            sig = (types.float32[::1], types.float32[::1])
            f.compile(sig)
            asm = f.inspect_asm(sig)
            return len(re.findall(r"%zmm", asm)), len(re.findall(r"%ymm", asm))

        print(json.dumps({"wide": loop(True), "default": loop(False)}))
    """)
    env = {**os.environ, "NUMBA_CPU_NAME": "skylake-avx512", "NUMBA_CPU_FEATURES": "",
           "NUMBA_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "numba-cache-wide")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["wide"][0] > 20, counts  # the packed sigmoid on zmm registers
    assert counts["default"][0] == 0 and counts["default"][1] > 20, counts


# ------------------------------------------------------------------------------------------------
# pow (two arguments)
# ------------------------------------------------------------------------------------------------


@functools.cache
def _pow_loop(dtype, caller="fastmath_flags"):
    @njit(**CALLER_OPTIONS[caller])
    def loop(x, y, out):
        for i in range(x.size):
            out[i] = vm.pow(x[i], y[i])

    ty = NUMBA_TYPE[dtype]
    loop.compile((ty[::1], ty[::1], ty[::1]))
    return loop


def _pow(x, y, caller="fastmath_flags"):
    out = np.empty_like(x)
    _pow_loop(x.dtype.type, caller)(x, y, out)
    return out


#: Bases and exponents where C's pow has a rule of its own (F.9.4.4), and neighbours.
POW_SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5, -7.0, 1e-45, -1e-45, 3e38, -3e38,
                1e10, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_pow_special_values_follow_c(dtype):
    """Every pair of special bases and exponents: C's rules (through float64 pow) exactly where the
    result is 0, +-1, +-inf or NaN, signs included; elsewhere within the module's bound (float64
    against mpmath: numpy's own pow may differ from libm's by an ulp, depending on the build)."""
    x, y = (a.ravel().astype(dtype) for a in np.meshgrid(POW_SPECIALS, POW_SPECIALS))
    with np.errstate(all="ignore"):
        expected = np.power(x.astype(np.float64), y.astype(np.float64)).astype(dtype)
    got = _pow(x, y)
    exact = np.isnan(expected) | np.isinf(expected) | (expected == 0) | (np.abs(expected) == 1)
    same = (got == expected) & (np.signbit(got) == np.signbit(expected)) | np.isnan(got) & np.isnan(expected)
    assert same[exact].all(), [(a, b, g, e) for a, b, g, e in zip(x[exact & ~same], y[exact & ~same], got[exact & ~same],
                                                                   expected[exact & ~same])][:10]
    if dtype == np.float64:
        with mpmath.workdps(30):
            expected = np.array([float(mpmath.mpf(float(a)) ** mpmath.mpf(float(b))) if not e else 0.0
                                 for a, b, e in zip(x, y, exact)])
    err = vector_errors(expected.astype(np.float64), got, dtype)
    assert (err[~exact] <= RTOL[dtype]).all(), _report("pow", x[~exact], got[~exact], err[~exact], RTOL[dtype])


def test_pow_float32_accuracy():
    rng = np.random.default_rng(3)
    n = 200_000
    x = np.exp(rng.uniform(-25, 25, n)) * np.where(rng.random(n) < 0.3, -1.0, 1.0)
    y = rng.uniform(-10, 10, n)
    y[::3] = np.rint(y[::3])  # integer exponents: negative bases give results
    x, y = x.astype(np.float32), y.astype(np.float32)
    got = _pow(x, y)
    with np.errstate(all="ignore"):
        ref = np.power(x.astype(np.float64), y.astype(np.float64))
    err = vector_errors(ref, got, np.float32)
    assert err.max() <= RTOL[np.float32], _report("pow", x, got, err, RTOL[np.float32])
    assert np.isnan(got).sum() > n // 10  # negative bases with fractional exponents were drawn


@pytest.mark.skipif(not X86_64, reason="inspects x86-64 machine code")
def test_pow_float32_loop_vectorises():
    asm = _pow_loop(np.float32).inspect_asm((types.float32[::1],) * 3)
    assert re.search(r"\bv?(?:mul|fn?m(?:add|sub)\d{3})pd\s[^\n]*%[xyz]mm", asm), "no packed float64 arithmetic"
    assert not re.search(r"\$powf?\b", asm), "pow is still a libm call"


@pytest.mark.parametrize("caller", ["plain", "fastmath_true"])
def test_pow_results_independent_of_caller_flags(caller):
    x, y = (a.ravel().astype(np.float32) for a in np.meshgrid(POW_SPECIALS, POW_SPECIALS))
    np.testing.assert_array_equal(_pow(x, y, caller).view(np.uint32), _pow(x, y).view(np.uint32))


@functools.cache
def _powi_loop(dtype, n):
    @njit(fastmath=set(vm.FASTMATH_FLAGS))
    def loop(x, out):
        for i in range(x.size):
            out[i] = vm.powi(x[i], n)

    ty = NUMBA_TYPE[dtype]
    loop.compile((ty[::1], ty[::1]))
    return loop


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", [0, 1, 5, 7, 13, 64, -1, -3, -11, -64])
def test_powi_against_float64_pow(n, dtype):
    """Integer powers: float32 rounds as if once (checked against float64 pow of the float32
    arguments, specials and signs of zero included); float64 within the module's bound of pow,
    subnormal results too (1e155**-2)."""
    rng = np.random.default_rng(abs(n))
    x = np.concatenate([rng.uniform(-3, 3, 20_000), np.exp(rng.uniform(-80, 80, 20_000)),
                        [v for v in POW_SPECIALS if abs(v) < 3.4e38 or not np.isfinite(v)]]).astype(dtype)
    if dtype == np.float64:  # results near and below the normal range, and near overflow
        x = np.concatenate([x, np.exp(rng.uniform(-700, 700, 20_000)) * rng.choice([-1.0, 1.0], 20_000),
                            [1e155, -1e155, 1e-155, 3e-5, 1e5]])
    got = np.empty_like(x)
    _powi_loop(dtype, n)(x, got)
    with np.errstate(all="ignore"):
        expected = np.power(x.astype(np.float64), float(n)).astype(dtype)
    same = (got == expected) & (np.signbit(got) == np.signbit(expected)) | np.isnan(got) & np.isnan(expected)
    if dtype == np.float64:  # against mpmath where numpy's own pow may be an ulp off
        with mpmath.workdps(30):
            expected = np.array([float(mpmath.mpf(float(v)) ** n) if np.isfinite(v) and v != 0 else e
                                 for v, e in zip(x, expected)])
    close = vector_errors(expected.astype(np.float64), got, dtype) <= RTOL[dtype]
    assert (same | close).all(), [(a, g, e) for a, g, e in zip(x[~(same | close)], got[~(same | close)],
                                                                expected[~(same | close)])][:10]
    special = np.isin(x, np.array([0.0, np.inf, -np.inf, 1.0, -1.0], dtype)) | np.isnan(x)
    assert same[special].all()  # exact results exactly, signs of zero and infinity included


@pytest.mark.skipif(not X86_64, reason="inspects x86-64 machine code")
def test_powi_float32_loop_vectorises():
    asm = _powi_loop(np.float32, 7).inspect_asm((types.float32[::1],) * 2)
    assert re.search(r"\bv?mulpd\s[^\n]*%[xyz]mm", asm), "no packed float64 multiplications"  # any vector ISA
    assert not re.search(r"\$powf?\b", asm), "a libm pow call"
