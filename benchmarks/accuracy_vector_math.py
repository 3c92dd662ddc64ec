"""Measured accuracy of symjit_numba.mathlib.vector_math over the whole floating-point domain.

* float32: every 509th bit pattern of all 2**32 (about 8.4 million finite arguments, both signs,
  subnormals included) plus the formula-switch thresholds; reference: float64 libm
  (``math.erf``/``math.erfc`` for erf/erfc), whose own error (~1e-16) is negligible here.
* float64: log-spaced magnitudes of both signs over the whole range, uniform samples in the
  interesting ranges and the thresholds; reference: mpmath at 30 significant digits.

Reports, per function and dtype, the maximum relative error (over results in the normal range), the
maximum error in ulps of the result's dtype (ulps of the subnormal spacing for subnormal results) and
where it occurs.  Overflow/underflow and NaN results are checked, not measured: a wrong one is listed
in the "wrong specials" column.  Prints a markdown table.

Usage::

    python benchmarks/accuracy_vector_math.py [--n64 20000] > vector_math_accuracy.md
"""

import argparse
import math
import sys
import time
from pathlib import Path

import mpmath
import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from symjit_numba.functions import FUNCTIONS_BY_NAME  # noqa: E402
from symjit_numba.mathlib import vector_math as vm  # noqa: E402

FUNCS = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "erf", "erfc", "ndtr", "normal_pdf", "sin", "cos", "tan",
         "atan", "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh"]


def element_loop(f):
    @njit(fastmath=set(vm.FASTMATH_FLAGS))
    def loop(x, out):
        for i in range(x.size):
            out[i] = f(x[i])

    return loop


def thresholds(dtype):
    fi = np.finfo(dtype)
    pts = [1.0, 2.0, 0.25, 0.84375, 1.25, 1 / 0.35, 6.0, 28.0, math.log(3) / 2, math.sqrt(2),
           math.sqrt(0.5), math.sqrt(2) - 1, math.sqrt(0.5) - 1, float(np.log(fi.max)),
           float(np.log(fi.tiny)), float(np.log(fi.smallest_subnormal)), 746.0, 710.0, 104.0, 89.0,
           40.0, 20.0, 30.0, 12.0, 26.5, 27.3, 9.2, 10.05, 1.25 * math.sqrt(2), 14.4, 15.0, 38.6]
    pts += [(k + 0.5) * math.log(2) for k in range(-6, 6)]
    pts += [k * math.pi / 4 for k in range(1, 41)] + [k * math.pi for k in (1e3, 1e5, 1e7)]  # sin/cos
    pts = np.array(pts)
    with np.errstate(over="ignore"):
        near = (pts[:, None] * (1 + np.arange(-3, 4)[None, :] * float(fi.eps))).ravel()
        near = np.concatenate([near, -near]).astype(dtype)
    return near[np.isfinite(near)]


# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------


def reference_f64(name, d):
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            e = np.exp(-np.abs(d))
            return np.where(d >= 0, 1 / (1 + e), e / (1 + e))
        if name == "softplus":
            return np.logaddexp(0.0, d)
        if name in ("erf", "erfc"):
            return np.frompyfunc(getattr(math, name), 1, 1)(d).astype(np.float64)
        # float32 arguments: d*d is exact, and -d/sqrt(2) rounds by 1e-16 (1e-14 in erfc at d = -14);
        # float64 ones are measured against mpmath (MP) except beyond MP_LIMIT, where these are 0 or 1.
        if name == "ndtr":
            return np.frompyfunc(math.erfc, 1, 1)(-d / math.sqrt(2)).astype(np.float64) / 2
        if name == "normal_pdf":
            return np.exp(-0.5 * d * d) / math.sqrt(2 * math.pi)
        return getattr(np, FUNCTIONS_BY_NAME[name].numpy.removeprefix("numpy."))(d)  # np.arcsin for asin


MP = {
    "exp": mpmath.exp, "log": mpmath.log, "log1p": mpmath.log1p, "expm1": mpmath.expm1,
    "tanh": mpmath.tanh, "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "softplus": lambda x: x + mpmath.log1p(mpmath.exp(-x)) if x > 0 else mpmath.log1p(mpmath.exp(x)),
    "erf": mpmath.erf, "erfc": mpmath.erfc, "ndtr": mpmath.ncdf, "normal_pdf": mpmath.npdf,
    "sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "atan": mpmath.atan, "asin": mpmath.asin,
    "acos": mpmath.acos, "sinh": mpmath.sinh, "cosh": mpmath.cosh, "asinh": mpmath.asinh, "acosh": mpmath.acosh,
    "atanh": mpmath.atanh,
}
# Beyond these |x| the result is a constant, 0 or inf and mpmath gets slow; they are still
# evaluated, and checked for the exact limit.
MP_LIMIT = {"exp": 800.0, "expm1": 800.0, "sinh": 800.0, "cosh": 800.0, "sigmoid": 800.0, "tanh": 40.0, "erf": 30.0, "erfc": 30.0, "ndtr": 40.0,
            "normal_pdf": 40.0}


def errors(ref, y, dtype):
    """(relative error, ulp error, wrong special) per element; ref in float64 (or better)."""
    fi = np.finfo(dtype)
    prec = fi.nmant + 1
    y = y.astype(np.float64)
    rel = np.zeros(len(ref))
    ulp = np.zeros(len(ref))
    with np.errstate(all="ignore"):
        nan_r = np.isnan(ref)
        aref = np.abs(ref)
        overflow = aref > float(fi.max) * (1 + float(fi.eps))
        boundary = (aref > float(fi.max)) & ~overflow  # may round either way
        wrong = (nan_r != np.isnan(y)) | (overflow & (y != np.sign(ref) * np.inf))
        wrong |= np.isinf(ref) & (y != ref)
        ok = ~nan_r & ~overflow & ~boundary & np.isfinite(ref)
        wrong |= ok & ~np.isfinite(y)
        ok &= np.isfinite(y)
        diff = np.abs(y - ref)
        normal = ok & (aref >= float(fi.tiny))
        rel[normal] = diff[normal] / aref[normal]
        _, e = np.frexp(np.where(ok, aref, 1.0))
        spacing = np.maximum(np.ldexp(1.0, e - prec), float(fi.smallest_subnormal))
        ulp[ok] = diff[ok] / spacing[ok]
    return rel, ulp, wrong


def float32_points():
    bits = np.arange(0, 2**32, 509, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = np.concatenate([x[np.isfinite(x)], thresholds(np.float32)])
    return x


def float64_points(n, rng):
    fi = np.finfo(np.float64)
    mags = 10.0 ** rng.uniform(np.log10(float(fi.smallest_subnormal)), np.log10(float(fi.max)), n)
    return np.concatenate([
        mags, -mags, rng.uniform(-5, 5, n), rng.uniform(-800, 800, n // 2),
        np.exp(rng.uniform(-3, 3, n // 2)) - 1, 1 + rng.uniform(-1e-3, 1e-3, n // 4),
        thresholds(np.float64),
    ])


def mp_reference(name, x):
    f = MP[name]
    limit = MP_LIMIT.get(name, np.inf)
    ref = np.empty(len(x), dtype=object)
    with mpmath.workdps(30):
        for i, xi in enumerate(x):
            if abs(xi) > limit:
                ref[i] = None
                continue
            r = f(mpmath.mpf(float(xi)))
            ref[i] = mpmath.nan if isinstance(r, mpmath.mpc) else r
    return ref


def mp_errors(ref, y, x, name):
    """errors() for mpmath references: the difference is taken in mpmath, then summarised."""
    fi = np.finfo(np.float64)
    rel = np.zeros(len(y))
    ulp = np.zeros(len(y))
    wrong = np.zeros(len(y), dtype=bool)
    limit_ref = reference_f64(name, x)  # only used beyond MP_LIMIT (constants, 0 or inf)
    for i, (r, yi) in enumerate(zip(ref, y)):
        if r is None:
            r = limit_ref[i]
            wrong[i] = not (yi == r or (np.isnan(r) and np.isnan(yi)) or abs(yi - r) <= 4e-16 * abs(r))
            continue
        if mpmath.isnan(r):
            wrong[i] = not np.isnan(yi)
            continue
        ar = abs(r)
        if ar > fi.max:
            if ar > fi.max * (1 + fi.eps):
                wrong[i] = not (np.isinf(yi) and (yi > 0) == (r > 0))
            continue
        if not np.isfinite(yi):
            wrong[i] = True
            continue
        diff = abs(mpmath.mpf(float(yi)) - r)
        if ar >= fi.tiny:
            rel[i] = float(diff / ar)
        e = int(mpmath.floor(mpmath.log(ar, 2))) + 1 if ar > 0 else -1074
        ulp[i] = float(diff / max(mpmath.ldexp(1, e - 53), mpmath.ldexp(1, -1074)))
    return rel, ulp, wrong


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n64", type=int, default=20000, help="float64 samples per category")
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    x32 = float32_points()
    x64 = float64_points(args.n64, rng)
    x64 = x64[np.isfinite(x64)]
    rows = []
    for name in FUNCS:
        loop = element_loop(getattr(vm, name))
        for dtype, x in ((np.float32, x32), (np.float64, x64)):
            t0 = time.perf_counter()
            y = np.empty_like(x)
            loop(x, y)
            if dtype == np.float32:
                rel, ulp, wrong = errors(reference_f64(name, x.astype(np.float64)), y, dtype)
            else:
                rel, ulp, wrong = mp_errors(mp_reference(name, x), y, x, name)
            i = int(np.argmax(ulp))
            rows.append((name, np.dtype(dtype).name, len(x), rel.max(), ulp.max(), x[i],
                         int(wrong.sum()), time.perf_counter() - t0))
            print(f"{name} {np.dtype(dtype).name}: done in {rows[-1][-1]:.1f}s", file=sys.stderr)

    print("# vector_math accuracy\n")
    print("Maximum error over the whole domain; caller compiled with "
          "`@njit(fastmath=FASTMATH_FLAGS)`.  float32: "
          f"{len(x32)} arguments (every 509th bit pattern + thresholds) against float64 libm; "
          f"float64: {len(x64)} arguments (log-spaced magnitudes, uniform samples, thresholds) "
          "against mpmath (30 digits).  Relative error over normal-range results; ulp error "
          "includes subnormal results (in units of the subnormal spacing).  Required: relative "
          "error <= 1e-6 (float32), <= 1e-14 (float64).\n")
    print("| function | dtype | points | max rel. error | max error (ulp) | at x | wrong specials |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, dt, n, rel, ulp, xw, wrong, _ in rows:
        xs = f"{float(xw):.9g}" if dt == "float32" else f"{float(xw):.17g}"
        print(f"| {name} | {dt} | {n} | {rel:.2e} | {ulp:.2f} | {xs} | {wrong} |")


if __name__ == "__main__":
    main()
