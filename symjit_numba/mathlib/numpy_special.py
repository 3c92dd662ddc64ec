"""Vectorised numpy implementations of ``erf``, ``erfc``, ``gamma`` and ``loggamma``.

Why this module exists
----------------------
The CPU_PYTHON backend is ``sympy.lambdify`` targeting numpy.  numpy has no error function and no
gamma function, and SciPy (which has them) is deliberately not a runtime dependency of
``symjit_numba``.  Falling back to ``np.vectorize(math.erf)`` would run a Python call per element
and defeat the point of a numpy backend, so the functions here are written as whole-array numpy
code: every element goes through the same sequence of array operations and the piecewise
definitions are selected with boolean masks.

Algorithms
----------
* ``erf``/``erfc`` are a port of the rational approximations of FreeBSD ``s_erf.c`` (Sun
  Microsystems, 1993; the same code is in musl).  They are accurate to about one ulp and keep
  relative accuracy of ``erfc`` in its tail down to the underflow threshold.
* ``gamma`` is the Lanczos approximation (N=13, g=6.024680040776729583740234375) used by CPython's
  ``math.gamma``, with CPython's rounding-error correction for ``x + g - 0.5`` and the reflection
  formula for negative arguments.
* ``loggamma`` is a port of FreeBSD ``e_lgamma_r.c`` (also Sun, also in musl), which uses
  separate approximations around the zeros at 1 and 2 and therefore stays relatively accurate
  there, unlike a plain Lanczos ``log``.

All functions accept Python scalars and numpy scalars/arrays.  Floating inputs keep their dtype
(float32 and float16 are computed in float64 and rounded once at the end); integer and boolean
inputs give float64, as numpy ufuncs do.  Scalars in give numpy scalars out.
"""

from __future__ import annotations

import math
import struct

import numpy as np

__all__ = ["erf", "erfc", "gamma", "loggamma", "sigmoid", "softplus", "ndtr", "normal_pdf", "polygamma", "sign",
           "sinc"]


def _hi_word(hi: int) -> float:
    """Return the double whose high 32 bits are ``hi`` and low 32 bits are zero.

    The Sun code selects its ranges by comparing the high word of the IEEE
    representation; using the exact doubles those words stand for keeps the
    branch boundaries identical to the C code (where the approximations were
    validated) while letting us compare plain floats.
    """
    return struct.unpack("<d", struct.pack("<Q", hi << 32))[0]


# ---------------------------------------------------------------------------
# erf / erfc: constants from FreeBSD s_erf.c
# ---------------------------------------------------------------------------

_ERX = 8.45062911510467529297e-01
_EFX = 1.28379167095512586316e-01
_EFX8 = 1.02703333676410069053e00
# [0, 0.84375]
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
# [0.84375, 1.25]
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
# [1.25, 1/0.35]
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e01,
       -6.23753324503260060396e01, -1.62396669462573470355e02, -1.84605092906711035994e02,
       -8.12874355063065934246e01, -9.81432934416914548592e00)
_SA = (1.0, 1.96512716674392571292e01, 1.37657754143519042600e02, 4.34565877475229228821e02,
       6.45387271733267880336e02, 4.29008140027567833386e02, 1.08635005541779435134e02,
       6.57024977031928170135e00, -6.04244152148580987438e-02)
# [1/0.35, 28]
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e01,
       -1.60636384855821916062e02, -6.37566443368389627722e02, -1.02509513161107724954e03,
       -4.83519191608651397019e02)
_SB = (1.0, 3.03380607434824582924e01, 3.25792512996573918826e02, 1.53672958608443695994e03,
       3.19985821950859553908e03, 2.55305040643316442583e03, 4.74528541206955367215e02,
       -2.24409524465858183362e01)

_ERF_SMALL = 0.84375                 # 0x3feb0000
_ERF_MID = 1.25                      # 0x3ff40000
_ERF_ONE = 6.0                       # 0x40180000: erf(x) rounds to +-1 beyond this
_ERFC_ZERO = 28.0                    # 0x403c0000: erfc(x) underflows to 0 beyond this
_ERF_TINY = 2.0 ** -28               # 0x3e300000
_ERF_DENORM = 2.0 ** -1015           # 0x00800000
_ERFC_TINY = 2.0 ** -56              # 0x3c700000
_ERF_RA_RB = _hi_word(0x4006DB6E)    # ~1/0.35, switch between the two tail fits
# In the deep tail exp(-z*z - 0.5625) leaves the normal range before erfc itself does, so it is
# computed scaled by e**64 and the scale removed with one final multiplication; the only
# rounding in the subnormal range is then the final one.
_ERFC_RESCALE_FROM = 26.0
_EXP_M64 = math.exp(-64.0)


def _poly(x, coeffs):
    """Horner evaluation of ``sum(c[i] * x**i)`` (coefficients in increasing degree)."""
    acc = np.full_like(x, coeffs[-1])
    for c in coeffs[-2::-1]:
        acc = acc * x + c
    return acc


def _erf_small_ratio(x):
    """``y`` with ``erf(x) = x + x*y`` on ``|x| < 0.84375``."""
    z = x * x
    return _poly(z, _PP) / _poly(z, _QQ)


def _erf_mid_ratio(ax):
    """``P/Q`` with ``erf(ax) = erx + P/Q`` on ``0.84375 <= ax < 1.25``."""
    s = ax - 1.0
    return _poly(s, _PA) / _poly(s, _QA)


def _erfc_tail(ax):
    """``erfc(ax)`` for ``1.25 <= ax < 28`` (``ax`` positive)."""
    s = 1.0 / (ax * ax)
    use_a = ax < _ERF_RA_RB
    rs = np.empty_like(ax)
    sa = s[use_a]
    rs[use_a] = _poly(sa, _RA) / _poly(sa, _SA)
    sb = s[~use_a]
    rs[~use_a] = _poly(sb, _RB) / _poly(sb, _SB)
    # Splitting x into a 21-bit head z and a tail makes -z*z exact, so the large exponent is
    # free of rounding error and only the small correction (z-x)*(z+x) is rounded.
    z = (ax.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)
    rescale = ax > _ERFC_RESCALE_FROM
    head = np.exp(-z * z - 0.5625 + np.where(rescale, 64.0, 0.0))
    r = head * np.exp((z - ax) * (z + ax) + rs) / ax
    return np.where(rescale, r * _EXP_M64, r)


def _erf64(x):
    out = np.array(x, dtype=np.float64, copy=True)  # NaN passes through untouched
    ax = np.abs(x)
    neg = x < 0

    m = ax < _ERF_SMALL
    if m.any():
        xs = x[m]
        axs = ax[m]
        res = xs + xs * _erf_small_ratio(xs)
        # Below 2**-28 the series is x*(1 + efx); the 8x scaling avoids the spurious underflow
        # (and loss of the last bits) of efx*x for subnormal x.
        res = np.where(axs < _ERF_TINY, xs + _EFX * xs, res)
        res = np.where(axs < _ERF_DENORM, 0.125 * (8.0 * xs + _EFX8 * xs), res)
        out[m] = res

    m = (ax >= _ERF_SMALL) & (ax < _ERF_MID)
    if m.any():
        res = _ERX + _erf_mid_ratio(ax[m])
        out[m] = np.where(neg[m], -res, res)

    m = (ax >= _ERF_MID) & (ax < _ERF_ONE)
    if m.any():
        res = 1.0 - _erfc_tail(ax[m])
        out[m] = np.where(neg[m], -res, res)

    m = ax >= _ERF_ONE  # includes +-inf
    out[m] = np.where(neg[m], -1.0, 1.0)
    return out


def _erfc64(x):
    out = np.array(x, dtype=np.float64, copy=True)
    ax = np.abs(x)
    neg = x < 0

    m = ax < _ERF_SMALL
    if m.any():
        xs = x[m]
        xy = xs * _erf_small_ratio(xs)
        # For x >= 1/4 erfc is below 3/4 and 1 - erf would lose a bit; regrouping around 0.5
        # keeps the subtraction exact.
        res = np.where(xs < 0.25, 1.0 - (xs + xy), 0.5 - (xy + (xs - 0.5)))
        out[m] = np.where(ax[m] < _ERFC_TINY, 1.0 - xs, res)

    m = (ax >= _ERF_SMALL) & (ax < _ERF_MID)
    if m.any():
        pq = _erf_mid_ratio(ax[m])
        out[m] = np.where(neg[m], 1.0 + (_ERX + pq), (1.0 - _ERX) - pq)

    m = (ax >= _ERF_MID) & (ax < _ERFC_ZERO)
    if m.any():
        r = _erfc_tail(ax[m])
        out[m] = np.where(neg[m], 2.0 - r, r)

    m = ax >= _ERFC_ZERO  # includes +-inf
    out[m] = np.where(neg[m], 2.0, 0.0)
    return out


# ---------------------------------------------------------------------------
# sin(pi*x) with exact argument reduction (shared by the reflection formulas)
# ---------------------------------------------------------------------------

def _sinpi_abs(ax):
    """``sin(pi*ax)`` for finite ``ax >= 0``, accurate near the integers.

    ``np.sin(np.pi*ax)`` would lose all relative accuracy next to integers (the poles of gamma),
    because the rounding error of ``pi*ax`` is comparable to the result.  Reducing modulo 2 is
    exact (fmod), and every case then evaluates sin/cos of ``pi`` times an exactly computed
    argument in [-1/4, 1/4].  This is CPython's ``m_sinpi``.
    """
    y = np.fmod(ax, 2.0)
    n = np.rint(2.0 * y)
    # n = 0..4 picks the nearest multiple of 1/2; odd n are cosines around the extrema.
    a = np.select([n == 0, n == 1, n == 2, n == 3], [y, y - 0.5, 1.0 - y, y - 1.5], y - 2.0)
    odd = (n == 1) | (n == 3)
    res = np.sin(np.pi * a)
    res[odd] = np.cos(np.pi * a[odd])
    res[n == 3] *= -1.0
    return res


# ---------------------------------------------------------------------------
# gamma: Lanczos approximation as in CPython's math.gamma
# ---------------------------------------------------------------------------

_LANCZOS_G = 6.024680040776729583740234375
_LANCZOS_G_MINUS_HALF = 5.524680040776729583740234375
_LANCZOS_NUM = (
    23531376880.410759688572007674451636754734846804940,
    42919803642.649098768957899047001988850926355848959,
    35711959237.355668049440185451547166705960488635843,
    17921034426.037209699919755754458931112671403265390,
    6039542586.3520280050642916443072979210699388420708,
    1439720407.3117216736632230727949123939715485786772,
    248874557.86205415651146038641322942321632125127801,
    31426415.585400194380614231628318205362874684987640,
    2876370.6289353724412254090516208496135991145378768,
    186056.26539522349504029498971604569928220784236328,
    8071.6720023658162106380029022722506138218516325024,
    210.82427775157934587250973392071336271166969580291,
    2.5066282746310002701649081771338373386264310793408,
)
# x*(x+1)*...*(x+11) expanded
_LANCZOS_DEN = (0.0, 39916800.0, 120543840.0, 150917976.0, 105258076.0, 45995730.0,
                13339535.0, 2637558.0, 357423.0, 32670.0, 1925.0, 66.0, 1.0)
# Exact factorials: for small positive integers the table is exact where Lanczos is not.
_GAMMA_INTEGRAL = np.array([float(math.factorial(k)) for k in range(23)])
_GAMMA_MAX_INTEGRAL = 23


def _lanczos_sum(ax):
    """Lanczos rational function L_g(ax) for ``ax > 0``."""
    small = ax < 5.0
    # Below 5 a direct Horner in x is most accurate; above, numerator and denominator are
    # rescaled by x**-12 (Horner in 1/x) so that they cannot overflow.  The cut-off is CPython's.
    out = np.empty_like(ax)
    xs = ax[small]
    num = np.zeros_like(xs)
    den = np.zeros_like(xs)
    for i in range(len(_LANCZOS_NUM) - 1, -1, -1):
        num = num * xs + _LANCZOS_NUM[i]
        den = den * xs + _LANCZOS_DEN[i]
    out[small] = num / den
    xl = ax[~small]
    num = np.zeros_like(xl)
    den = np.zeros_like(xl)
    for i in range(len(_LANCZOS_NUM)):
        num = num / xl + _LANCZOS_NUM[i]
        den = den / xl + _LANCZOS_DEN[i]
    out[~small] = num / den
    return out


def _gamma_lanczos(x):
    """Gamma(x) for finite, non-pole x with ``1e-20 <= |x| <= 200``."""
    ax = np.abs(x)
    y = ax + _LANCZOS_G_MINUS_HALF
    # y is rounded; the pow/exp below magnify that rounding error by up to ~x, so recover it
    # exactly (Fast2Sum, ordered by magnitude) and apply CPython's first-order correction.
    err = np.where(ax > _LANCZOS_G_MINUS_HALF,
                   (y - ax) - _LANCZOS_G_MINUS_HALF,
                   (y - _LANCZOS_G_MINUS_HALF) - ax)
    corr = err * _LANCZOS_G / y
    ls = _lanczos_sum(ax)
    # Above 140, y**(x-0.5) alone would overflow although Gamma(x) does not; two half powers
    # keep the intermediate in range.
    big = ax >= 140.0
    half_pow = np.power(y, np.where(big, ax / 2.0 - 0.25, ax - 0.5))
    pos = x > 0.0
    out = np.empty_like(x)

    rp = ls[pos] / np.exp(y[pos])
    rp = rp + corr[pos] * rp
    hp = half_pow[pos]
    out[pos] = np.where(big[pos], rp * hp * hp, rp * hp)

    # Reflection: Gamma(x) = -pi / (sin(pi*|x|) * |x| * Gamma(|x|)) for x < 0.
    neg = ~pos
    an = ax[neg]
    rn = -np.pi / _sinpi_abs(an) / an * np.exp(y[neg]) / ls[neg]
    rn = rn - corr[neg] * rn
    hp = half_pow[neg]
    out[neg] = np.where(big[neg], rn / hp / hp, rn / hp)
    return out


def _gamma64(x):
    out = np.array(x, dtype=np.float64, copy=True)  # NaN and +inf are their own result
    ax = np.abs(x)
    finite = np.isfinite(x)
    is_int = finite & (x == np.floor(x))

    # -inf and negative integers have no value (C's tgamma returns NaN; math.gamma raises
    # ValueError). At +-0, C's tgamma returns +-inf, the limit from that side, and so do numba's
    # math.gamma and CUDA's: every backend agrees on it.
    out[(x == -np.inf) | (is_int & (x < 0.0))] = np.nan
    zero = x == 0.0
    out[zero] = np.copysign(np.inf, x[zero])

    table = is_int & (x > 0.0) & (x <= _GAMMA_MAX_INTEGRAL)
    out[table] = _GAMMA_INTEGRAL[x[table].astype(np.intp) - 1]

    # Gamma(x) = 1/x - euler + O(x): the correction is below half an ulp here.
    tiny = finite & (ax < 1e-20) & (x != 0.0)
    out[tiny] = 1.0 / x[tiny]

    out[finite & (x > 200.0)] = np.inf
    # |Gamma(x)| < 1e-370 for x < -200: a zero carrying the sign Gamma would have, which is
    # -sign(sin(pi*|x|)) by the reflection formula.
    m = finite & (x < -200.0) & ~is_int
    out[m] = np.copysign(0.0, -_sinpi_abs(ax[m]))

    m = finite & ~is_int & (ax >= 1e-20) & (ax <= 200.0)
    m |= is_int & (x > _GAMMA_MAX_INTEGRAL) & (x <= 200.0)
    if m.any():
        out[m] = _gamma_lanczos(x[m])
    return out


# ---------------------------------------------------------------------------
# loggamma: constants from FreeBSD e_lgamma_r.c
# ---------------------------------------------------------------------------

# around 2 (y = 2 - x): even and odd parts of the series, split so the two Horner chains overlap
_LA_EVEN = (7.72156649015328655494e-02, 6.73523010531292681824e-02, 7.38555086081402883957e-03,
            1.19270763183362067845e-03, 2.20862790713908385557e-04, 2.52144565451257326939e-05)
_LA_ODD = (3.22467033424113591611e-01, 2.05808084325167332806e-02, 2.89051383673415629091e-03,
           5.10069792153511336608e-04, 1.08011567247583939954e-04, 4.48640949618915160150e-05)
# around the minimum tc (y = x - tc): lgamma = tf + y**2 * poly(y)
_TC = 1.46163214496836224576e00
_TF = -1.21486290535849611461e-01
_TT = -3.63867699703950536541e-18  # -(tail of tf)
_T0 = (4.83836122723810047042e-01, -3.27885410759859649565e-02, 6.10053870246291332635e-03,
       -1.40346469989232843813e-03, 3.15632070903625950361e-04)
_T1 = (-1.47587722994593911752e-01, 1.79706750811820387126e-02, -3.68452016781138256760e-03,
       8.81081882437654011382e-04, -3.12754168375120860518e-04)
_T2 = (6.46249402391333854778e-02, -1.03142241298341437450e-02, 2.25964780900612472250e-03,
       -5.38595305356740546715e-04, 3.35529192635519073543e-04)
# around 1 (y = x - 1)
_U = (-7.72156649015328655494e-02, 6.32827064025093366517e-01, 1.45492250137234768737e00,
      9.77717527963372745603e-01, 2.28963728064692451092e-01, 1.33810918536787660377e-02)
_V = (1.0, 2.45597793713041134822e00, 2.12848976379893395361e00, 7.69285150456672783825e-01,
      1.04222645593369134254e-01, 3.21709242282423911810e-03)
# [2, 3] (y = x - 2), used after reducing [2, 8) by the recurrence
_S = (-7.72156649015328655494e-02, 2.14982415960608852501e-01, 3.25778796408930981787e-01,
      1.46350472652464452805e-01, 2.66422703033638609560e-02, 1.84028451407337715652e-03,
      3.19475326584100867617e-05)
_R = (1.0, 1.39200533467621045958e00, 7.21935547567138069525e-01, 1.71933865632803078993e-01,
      1.86459191715652901344e-02, 7.77942496381893596434e-04, 7.32668430744625636189e-06)
# Stirling correction for x >= 8, odd in 1/x
_W = (4.18938533204672725052e-01, 8.33333333333329678849e-02, -2.77777777728775536470e-03,
      7.93650558643019558500e-04, -5.95187557450339963135e-04, 8.36339918996282139126e-04,
      -1.63092934096575273989e-03)

_LG_TINY = 2.0 ** -70               # 0x3b900000: lgamma(x) = -log|x| to within rounding
_LG_INTEGRAL = 2.0 ** 52            # 0x43300000: every double beyond is an integer
_LG_HUGE = 2.0 ** 58                # 0x43900000: Stirling correction below an ulp
_LG_09 = _hi_word(0x3FECCCCD)       # ~0.9: below, use lgamma(x) = lgamma(x+1) - log(x)
_LG_0732 = _hi_word(0x3FE76944)     # ~0.7316 = tc - 0.73
_LG_0232 = _hi_word(0x3FCDA661)     # ~0.2316 = tc - 1.23
_LG_1732 = _hi_word(0x3FFBB4C3)     # ~1.7316
_LG_1232 = _hi_word(0x3FF3B4C4)     # ~1.2316


def _lgamma_near_2(y):
    """lgamma(2 - y), small |y|."""
    z = y * y
    p = y * _poly(z, _LA_EVEN) + z * _poly(z, _LA_ODD)
    return p - 0.5 * y


def _lgamma_near_tc(y):
    """lgamma(tc + y) around the minimum tc of the gamma function."""
    z = y * y
    w = z * y
    p = z * _poly(w, _T0) - (_TT - w * (_poly(w, _T1) + y * _poly(w, _T2)))
    return _TF + p


def _lgamma_near_1(y):
    """lgamma(1 + y), small |y|."""
    return -0.5 * y + y * _poly(y, _U) / _poly(y, _V)


def _lgamma_positive(t):
    """lgamma(t) for finite ``t >= 2**-70``, ``t`` not 1 or 2."""
    r = np.empty_like(t)

    m = t < 2.0
    if m.any():
        ts = t[m]
        below = ts < _LG_09
        # Three intervals, each mapped onto the variable of one of the kernels; for t < 0.9
        # the kernels evaluate lgamma(t + 1) and -log(t) is added.
        k0 = np.where(below, ts >= _LG_0732, ts >= _LG_1732)
        k1 = ~k0 & np.where(below, ts >= _LG_0232, ts >= _LG_1232)
        y = np.where(below,
                     np.where(k0, 1.0 - ts, np.where(k1, ts - (_TC - 1.0), ts)),
                     np.where(k0, 2.0 - ts, np.where(k1, ts - _TC, ts - 1.0)))
        val = np.where(k0, _lgamma_near_2(y),
                       np.where(k1, _lgamma_near_tc(y), _lgamma_near_1(y)))
        r[m] = np.where(below, -np.log(ts) + val, val)

    m = (t >= 2.0) & (t < 8.0)
    if m.any():
        ts = t[m]
        i = np.floor(ts)
        y = ts - i
        val = 0.5 * y + y * _poly(y, _S) / _poly(y, _R)
        # Recurrence lgamma(x+1) = lgamma(x) + log(x) down to [2, 3), with one log of the
        # product instead of several logs.
        z = np.ones_like(y)
        for k in range(6, 1, -1):
            z = np.where(i > k, z * (y + k), z)
        r[m] = val + np.log(z)

    m = (t >= 8.0) & (t < _LG_HUGE)
    if m.any():
        ts = t[m]
        lt = np.log(ts)
        z = 1.0 / ts
        w = _W[0] + z * _poly(z * z, _W[1:])
        r[m] = (ts - 0.5) * (lt - 1.0) + w

    m = t >= _LG_HUGE
    if m.any():
        ts = t[m]
        r[m] = ts * (np.log(ts) - 1.0)
    return r


def _loggamma64(x):
    out = np.array(x, dtype=np.float64, copy=True)
    ax = np.abs(x)
    finite = np.isfinite(x)
    out[np.isinf(x)] = np.inf

    # Poles: zero and the negative integers (all negative doubles beyond 2**52 are integers).
    pole = finite & (x <= 0.0) & ((x == np.floor(x)) | (ax >= _LG_INTEGRAL))
    out[pole] = np.inf

    exact_zero = (x == 1.0) | (x == 2.0)
    out[exact_zero] = 0.0

    tiny = finite & (ax < _LG_TINY) & (x != 0.0)
    out[tiny] = -np.log(ax[tiny])

    m = finite & ~pole & ~exact_zero & ~tiny
    if m.any():
        xs = x[m]
        axs = ax[m]
        r = _lgamma_positive(axs)
        # Reflection: log|Gamma(x)| = log(pi / |x sin(pi x)|) - log Gamma(-x) for x < 0.
        neg = xs < 0.0
        nadj = np.log(np.pi / np.abs(_sinpi_abs(axs) * axs))
        out[m] = np.where(neg, nadj - r, r)
    return out


# ---------------------------------------------------------------------------
# dtype handling shared by the public functions
# ---------------------------------------------------------------------------

def _evaluate(kernel, x):
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind == "f":
        out_dtype = arr.dtype
    elif kind in "biuO":
        out_dtype = np.dtype(np.float64)
    else:
        raise TypeError(f"unsupported dtype {arr.dtype} (real floating point expected)")
    # Compute on a private contiguous 1-d float64 copy: the kernels index with masks, view the
    # bits for the erfc split and must never write into the caller's array.
    x64 = np.array(arr, dtype=np.float64, copy=True, order="C").reshape(-1)
    with np.errstate(all="ignore"):
        # Masked-off lanes see out-of-range values (e.g. exp of large numbers); those results are
        # discarded, so their overflow/invalid warnings are noise.  The narrowing cast may
        # overflow to inf for float32 on purpose.
        res = kernel(x64).reshape(arr.shape).astype(out_dtype, copy=False)
    return res[()] if res.ndim == 0 else res


def erf(x):
    """Error function, element-wise.

    .. math:: \\operatorname{erf}(x) = \\frac{2}{\\sqrt{\\pi}} \\int_0^x e^{-t^2}\\,dt

    Parameters
    ----------
    x : array_like
        Real input (Python float, numpy scalar or array, float16/32/64 or integer).

    Returns
    -------
    numpy.ndarray or numpy scalar
        ``erf(x)`` with the dtype of ``x`` (float64 for integer input); a numpy scalar when
        ``x`` is a scalar.  ``erf(+-inf) = +-1``, NaN propagates, ``-0.0`` is preserved.

    Notes
    -----
    Port of FreeBSD/musl ``s_erf.c``; error about one ulp in float64.
    """
    return _evaluate(_erf64, x)


def erfc(x):
    """Complementary error function ``1 - erf(x)``, element-wise, without cancellation.

    Parameters
    ----------
    x : array_like
        Real input (Python float, numpy scalar or array, float16/32/64 or integer).

    Returns
    -------
    numpy.ndarray or numpy scalar
        ``erfc(x)`` with the dtype of ``x`` (float64 for integer input).  ``erfc(-inf) = 2``,
        ``erfc(inf) = 0``, NaN propagates.

    Notes
    -----
    Port of FreeBSD/musl ``s_erf.c``.  Relative accuracy is kept for large positive ``x`` until
    the result underflows (``erfc(x) == 0`` for ``x > ~27.2`` in float64).
    """
    return _evaluate(_erfc64, x)


def gamma(x):
    """Gamma function of a real argument, element-wise.

    Parameters
    ----------
    x : array_like
        Real input (Python float, numpy scalar or array, float16/32/64 or integer).

    Returns
    -------
    numpy.ndarray or numpy scalar
        ``Gamma(x)`` with the dtype of ``x`` (float64 for integer input).  ``+-0`` give ``+-inf``
        (as C's ``tgamma``); negative integers and ``-inf`` give NaN, where ``math.gamma`` raises
        ``ValueError``;
        results too large for the dtype give ``+inf`` (``x > ~171.62`` in float64); for very
        negative non-integers the result underflows to a signed zero.  NaN propagates.

    Notes
    -----
    Lanczos approximation as in CPython's ``math.gamma`` (exact factorials for integers up to
    23), with ``Gamma(x) = -pi / (x sin(pi x) Gamma(-x))`` for ``x < 0``.  Relative error is a
    few ulp in float64, also next to the poles.
    """
    return _evaluate(_gamma64, x)


def loggamma(x):
    """Logarithm of the absolute value of the gamma function, ``log|Gamma(x)|``, element-wise.

    This is ``math.lgamma`` (the real log-gamma), not the complex principal branch.

    Parameters
    ----------
    x : array_like
        Real input (Python float, numpy scalar or array, float16/32/64 or integer).

    Returns
    -------
    numpy.ndarray or numpy scalar
        ``log|Gamma(x)|`` with the dtype of ``x`` (float64 for integer input).  ``+inf`` at the
        poles (zero and negative integers) and at ``+-inf``; ``loggamma(1) = loggamma(2) = 0``
        exactly.  NaN propagates.

    Notes
    -----
    Port of FreeBSD/musl ``e_lgamma_r.c``.  Relative accuracy is kept next to the zeros at 1
    and 2; next to the zeros for negative ``x`` only absolute accuracy is achievable with the
    reflection formula.
    """
    return _evaluate(_loggamma64, x)


def _floating(x):
    """``x`` as a numpy array: floating dtypes kept, anything else as float64."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def sign(x):
    """``numpy.sign``, but a zero keeps its sign (``sign(-0.0) = -0.0``), as the compiled kernels'.

    Parameters
    ----------
    x : array_like
        float32 or float64 values.

    Returns
    -------
    numpy.ndarray or numpy scalar
        -1, 1, the zero itself, or NaN; same dtype as ``x``.
    """
    x = _floating(x)
    return np.where(x == 0, x, np.sign(x))


def sinc(x):
    """SymPy's unnormalised ``sinc(x) = sin(x)/x`` (1 at 0).

    ``numpy.sinc`` is the normalised ``sin(pi x)/(pi x)``; calling it with ``x/pi`` (as SymPy's
    printer does) rounds ``x/pi`` and costs ``|x|`` ulps near each zero of ``sin``.

    Parameters
    ----------
    x : array_like
        float32 or float64 values (other real input is computed in float64).

    Returns
    -------
    numpy.ndarray or numpy scalar
        Same dtype as ``x``.
    """
    x = _floating(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x == 0, np.ones_like(x), np.sin(x) / x)[()]


def sigmoid(x):
    """The logistic function ``1/(1+exp(-x))``, without overflow warnings or NaN for large ``|x|``.

    Parameters
    ----------
    x : array_like
        float32 or float64 values (other real input is computed in float64).

    Returns
    -------
    numpy.ndarray or numpy scalar
        Same dtype as ``x``.
    """
    x = _floating(x)
    with np.errstate(over="ignore"):
        # exp(-x) overflows to inf for very negative x, and 1/(1+inf) is the correct limit 0.
        return 1 / (1 + np.exp(-x))


def softplus(x):
    """``log(1+exp(x))`` written as ``max(x, 0) + log1p(exp(-|x|))``, exact for large ``|x|``.

    Parameters
    ----------
    x : array_like
        float32 or float64 values (other real input is computed in float64).

    Returns
    -------
    numpy.ndarray or numpy scalar
        Same dtype as ``x``; NaN in gives NaN out.
    """
    x = _floating(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def ndtr(x):
    """The standard normal CDF ``erfc(-x/sqrt(2))/2``, accurate in both tails.

    Parameters
    ----------
    x : array_like
        float32 or float64 values.

    Returns
    -------
    numpy.ndarray or numpy scalar
        Same dtype as ``x``.
    """
    x = _floating(x)
    d = x.astype(np.float64)
    t = -d * _SQRT_HALF
    # The rounding of t = -x/sqrt(2) (half an ulp, and sqrt(1/2)'s own) would cost erfc about
    # 2*t*t of that in its tail (1.9e-13 at x = -37): t's exact remainder ``t_low`` enters by
    # erfc(t + t_low) = erfc(t) * (1 - t_low * r), r = -erfc'(t)/erfc(t) ~ 2t + 1/t for t > 2 (a
    # correction below 1e-13, so r's few percent of error do not matter; below t = 2 it is < 1e-15).
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t_low = _product_error(-d, _SQRT_HALF, t) - d * _SQRT_HALF_LOW
        # (beyond t = 40, erfc(t) is 0: no correction, which would overflow near infinity)
        tail = np.where((t > 2.0) & (t < 40.0), 1.0 - t_low * (2.0 * t + 1.0 / t), 1.0)
    return (erfc(t) * tail / 2).astype(x.dtype)


#: sqrt(1/2) as the sum of two float64 (the second is the first's rounding error).
_SQRT_HALF, _SQRT_HALF_LOW = 0.7071067811865476, -4.833646656726457e-17


def _veltkamp(a):
    """``a`` split into a high part of 26 significant bits and the rest (``a`` finite, |a| < 1e300)."""
    scaled = a * 134217729.0  # 2**27 + 1
    high = scaled - (scaled - a)
    return high, a - high


def _product_error(a, b, product):
    """``a*b - product`` exactly, for ``product`` = fl(a*b) (Dekker's TwoProduct; numpy has no fma).
    Where a is not finite or huge (no split), the error is taken as 0."""
    a_high, a_low = _veltkamp(np.where(np.abs(a) < 1e300, a, 0.0))
    b_high, b_low = _veltkamp(b)
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return np.where(np.abs(a) < 1e300, error, 0.0)


def normal_pdf(x):
    """The standard normal density ``exp(-x**2/2)/sqrt(2*pi)``, the derivative of :func:`ndtr`.

    Parameters
    ----------
    x : array_like
        float32 or float64 values.

    Returns
    -------
    numpy.ndarray or numpy scalar
        Same dtype as ``x``; relatively accurate in the tails.
    """
    x = _floating(x)
    d = x.astype(np.float64)
    # The rounding of x*x (half an ulp) would cost x*x/4 ulp of the result (1e-13 at x = 38): split
    # x into 26-bit halves (Veltkamp), so that x*x = hi*hi (exact) + lo*(hi + x) (tiny).
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        hi = _veltkamp(d)[0]
        hi = np.where(np.isfinite(hi), hi, d)  # |x| > 1e300 and inf, nan: no split
        # (beyond |x| = 40 the density is 0 and exp(tail) could overflow: no tail there)
        tail = np.where(np.abs(d) < 40.0, (d - hi) * (hi + d), 0.0)
        return (np.exp(-0.5 * (hi * hi)) * np.exp(-0.5 * tail) * 0.3989422804014327).astype(x.dtype)


def polygamma(n, x):
    """``polygamma(0, x)``, the digamma function, as SymPy prints the derivative of ``loggamma``.

    Parameters
    ----------
    n : int
        The order; only 0 (digamma) is implemented.
    x : array_like
        float32 or float64 values.

    Returns
    -------
    numpy.ndarray or numpy scalar
        Same dtype as ``x``; NaN at the poles 0, -1, -2, ...

    Notes
    -----
    Reflection for ``x < 0.5``, recurrence up to ``x >= 10`` with masks (ten array steps), then
    the asymptotic series; the same algorithm as :func:`symjit_numba.mathlib.scalar_special.digamma`.
    """
    if n != 0:
        raise NotImplementedError(f"polygamma of order {n} is not implemented (only digamma, order 0)")
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        reflect = x < 0.5
        pole = reflect & (x == np.floor(x))
        # tan(pi x) = tan(pi (x - round(x))), exactly reduced (see scalar_special.digamma)
        result = np.where(reflect, -np.pi / np.tan(np.pi * (x - np.floor(x + 0.5))), 0.0)
        x = np.where(reflect, 1.0 - x, x)
        for _ in range(10):
            small = x < 10.0
            result = result - np.where(small, 1.0 / x, 0.0)
            x = np.where(small, x + 1.0, x)
        inverse_square = 1.0 / (x * x)
        series = np.zeros_like(x)
        power = inverse_square
        for coefficient in (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12):
            series = series + coefficient * power
            power = power * inverse_square
        value = result + np.log(x) - 0.5 / x - series
        value = np.where(pole | np.isneginf(x), np.nan, value)
    return value.astype(dtype)[()] if value.ndim == 0 else value.astype(dtype)
