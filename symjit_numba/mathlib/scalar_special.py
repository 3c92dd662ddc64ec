"""Scalar special functions for the numba and CUDA kernels that neither target's math library has.

They are not vectorised (they loop), and are only needed for derivatives: ``digamma`` is the
derivative of ``loggamma`` and, times ``gamma``, of ``gamma``. Each is written once as plain Python
on floats; CPU kernels call the ``njit`` version, CUDA kernels compile the same function as a
device function (``cuda.jit(device=True)(digamma.py_func)``). They compute in float64.
"""

from __future__ import annotations

import math

from numba import njit

__all__ = ["digamma"]

# Bernoulli-number coefficients B_2k / (2k) of the asymptotic series of digamma, k = 1..7.
_B2K_OVER_2K = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)


@njit(cache=True, nogil=True, error_model="numpy")
def digamma(x):
    """The digamma function psi(x) = d/dx log(Gamma(x)), in float64.

    NaN at the poles 0, -1, -2, ... and at NaN and -inf; psi(inf) = inf. Reflection for x < 0.5,
    recurrence up to x >= 10, then the asymptotic series (relative error below 4e-15 away from the
    zero near 1.4616).
    """
    x = float(x)
    if x != x or x == -math.inf:
        return math.nan
    if x == math.inf:
        return math.inf
    result = 0.0
    if x < 0.5:
        # every float below -2**52 is an integer (and math.floor's integer would overflow)
        if x < -4503599627370496.0 or x == math.floor(x):
            return math.nan
        # psi(x) = psi(1 - x) - pi / tan(pi x); tan has period pi, so tan(pi x) = tan(pi r) with
        # r = x - round(x) (exact): pi*x itself would carry |x| ulps of error into the result.
        result = -math.pi / math.tan(math.pi * (x - math.floor(x + 0.5)))
        x = 1.0 - x
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    inverse_square = 1.0 / (x * x)
    series = 0.0
    power = inverse_square
    for coefficient in _B2K_OVER_2K:
        series += coefficient * power
        power *= inverse_square
    return result + math.log(x) - 0.5 / x - series
