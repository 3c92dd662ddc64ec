"""Elementary functions for numba kernels, written so that LLVM auto-vectorises the loops calling them.

Why this module exists
----------------------
pip's llvmlite ships without Intel SVML, so inside ``@njit`` code ``math.exp`` and friends are calls to
the scalar libm.  A call to an opaque scalar function stops LLVM's loop vectoriser, so an element loop
such as ``for i in range(n): out[i] = math.exp(x[i])`` runs one element at a time.  The functions
here are plain arithmetic instead, which LLVM inlines into the caller and turns into packed AVX2/FMA
code (8 float32 or 4 float64 lanes per instruction on an AVX2 machine).

How they are written
--------------------
* **Range reduction + polynomial / rational approximation.**  ``exp`` and ``expm1`` reduce
  ``x = k*ln2 + r`` (Cody-Waite, ``ln2`` split in a high part with trailing zero bits, so ``k*LN2_HI``
  is exact, and a low part) and use a minimax-like polynomial for ``expm1(r)`` on ``|r| <= ln2/2``.
  ``log`` and ``log1p`` split off the binary exponent with integer operations on the bit pattern and
  use the fdlibm/musl polynomial in ``s = f/(2+f)``; ``erf``/``erfc`` port musl's ``erf.c``/``erff.c``
  (rational approximations on four ranges), except float32 ``erfc``, which uses Numerical Recipes'
  single formula ``t*exp(-x^2 + P(t))``, ``t = 1/(1 + |x|/2)`` (accurate enough for float32 alone).
  float32 ``ndtr`` is ``exp(-x^2/2)`` times a polynomial fitted here, in ``t = 1/(1 + |x|/4)``, and
  ``normal_pdf`` the same ``exp(-x^2/2)``, which LLVM then computes once where a kernel needs both.
  ``tanh``, ``sigmoid`` and ``softplus`` are built from ``expm1``, ``exp`` and ``log1p``.
* **float32 through float64.**  float32 ``sin``, ``cos`` and ``tan`` reduce the argument modulo
  pi/2 *exactly* for every float32, however large, without a table: ``x`` times each of six 29-bit
  parts of 2/pi is exact in float64, and each product is taken modulo 4 before they are added; then
  Taylor polynomials on ``[-pi/4, pi/4]``.  float32 ``atan``, ``asin``, ``acos``, ``sinh``,
  ``cosh``, ``asinh``, ``acosh``, ``atanh`` and ``pow`` (``exp(y*log|x|)``) are closed forms over
  the float64 functions here, and ``powi`` binary powering in float64: float64's range and
  precision absorb every cancellation and overflow of those forms.  Their float64 versions stay
  libm calls (not vectorised): an exact float64 reduction beyond ``2**31`` needs Payne-Hanek's
  table lookups, and ``pow`` a double-double ``log``; float64 ``powi`` is binary powering too.
* **No branches, no data-dependent loops.**  Where libm branches on the argument range, we compute
  every candidate and pick one per lane with :func:`_select` (an LLVM ``select``, i.e. a vector
  blend).  Special values (NaN, +-inf, +-0, overflow, underflow) are handled the same way: arguments are
  clamped so that the core arithmetic stays finite, and the special result is selected at the end.
* **Bit manipulation through ``numba.extending.intrinsic``.**  Numba widens integer arithmetic to
  int64 and has no float<->int bitcast, so the few integer steps (building ``2**k``, reading the
  exponent, clearing low mantissa bits) are small LLVM snippets with fixed widths.  Float<->int
  conversions always go through int32, because AVX2 has packed int32<->float conversions for both
  precisions but none for int64.  Where LLVM lowers ``llvm.ldexp`` without a library call (AVX-512's
  ``vscalef``: one instruction instead of nine), the final ``p * 2**k`` of ``exp`` uses it, with the
  same bits as the integer construction.
* **Each precision in its own type.**  Every constant is read from a named tuple of numpy scalars of
  the argument's type (``_C32`` or ``_C64``, picked while numba types the call), so numba types every
  literal as float32 or float64 and the float32 path contains no ``double`` operation at all, but
  in ``sin``, ``cos`` and ``tan``, which work in float64 on purpose (loops calling them run at float64's
  vector width: still 5x numba's libm call).
* **Cached, not recompiled.**  The functions are jitted with ``cache=True``: each precision is compiled
  once per installation and loaded from numba's cache by later processes.  A kernel calling them links
  that code and inlines it, so a new layer only pays for its own loops.
* **Compilation flags.**  Kernels that call these functions are compiled with
  ``fastmath=FASTMATH_FLAGS``.  The implementations themselves are always compiled with exactly these
  flags (not inherited from the caller, so a caller using ``fastmath=True`` cannot turn on ``nnan`` /
  ``ninf`` here and delete the NaN/inf handling), with ``error_model="numpy"`` (no zero-division check
  branches) and ``forceinline=True`` (LLVM ``alwaysinline``: without inlining there is no
  vectorisation).  The compensated steps (``hi - k*LN2_HI`` etc.) are written so that contracting
  ``a*b + c`` into an FMA can only make them more accurate.  ``contract`` is the only flag:
  ``arcp`` let LLVM compute ``1/sqrt(x)`` in float32 with the ``rsqrt`` estimate plus a Newton step
  (NaN at 0 and inf, -inf for a subnormal ``x``) and reuse one reciprocal for ``a/x + b/x`` (inf for a
  subnormal ``x``); ``afn`` let it expand ``pow(x, 1.5)`` as ``x*sqrt(x)`` (NaN at -inf, where
  ``pow`` gives inf).  Without them the W1 kernels compile to the same instructions but for two
  more divisions in mish (the printer itself turns a division by a constant into a multiplication),
  and their timing is unchanged within noise.

Accuracy (measured over the whole domain, see ``tests/test_vector_math.py`` and
``benchmarks/accuracy_vector_math.py``): relative error a few ulp at most, i.e. well below 1e-6 for
float32 and 1e-14 for float64.  Results that fall into the subnormal range are *kept* (gradual
underflow, scaled with a single final rounding), not flushed to zero; ``exp`` returns 0 only once the
exact result is below half the smallest subnormal.

Usage inside numba code::

    from symjit_numba.mathlib import vector_math as vm

    @njit(fastmath=set(vm.FASTMATH_FLAGS))
    def kernel(x, out):
        for i in range(x.size):
            out[i] = vm.erf(x[i])

The public functions also work from plain Python on scalars; ``evaluate(name, array)`` applies one
to an array, which is convenient for testing.
"""

import functools
import math
from typing import NamedTuple

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = [
    "FASTMATH_FLAGS",
    "exp",
    "log",
    "log1p",
    "expm1",
    "tanh",
    "sigmoid",
    "softplus",
    "erf",
    "erfc",
    "ndtr",
    "normal_pdf",
    "sin",
    "cos",
    "tan",
    "atan",
    "asin",
    "acos",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "pow",
    "powi",
    "prefer_wide_vectors",
]
# (``evaluate`` is public too, for plain-Python use on arrays; it is not a kernel function.)

#: fastmath flags the generated kernels are compiled with (and that these functions are verified under).
#: Only FMA contraction, which changes nothing but rounding (and only for the better): every other
#: flag changes results at special values.  ``nnan``/``ninf``/``nsz``/``reassoc`` would break the
#: NaN/inf/-0.0 handling and the compensated (Cody-Waite, hi/lo) steps below; ``arcp`` and ``afn``
#: make ``1/sqrt`` (float32 ``rsqrt``), shared reciprocals and ``pow`` wrong at 0, subnormals and inf.
FASTMATH_FLAGS = frozenset({"contract"})

_JIT_OPTIONS = {
    "fastmath": set(FASTMATH_FLAGS),
    "error_model": "numpy",
    "forceinline": True,
}


# ------------------------------------------------------------------------------------------------
# LLVM building blocks.  Each one is a handful of instructions that vectorise as-is.
# ------------------------------------------------------------------------------------------------

# float type -> (mantissa bits, exponent bias)
_FLOAT_LAYOUT = {32: (23, 127), 64: (52, 1023)}


def _same_float(*tys):
    return isinstance(tys[0], types.Float) and all(t == tys[0] for t in tys)


def _llvm_float(fty):
    return ir.FloatType() if fty.bitwidth == 32 else ir.DoubleType()


def _bits_type(fty):
    return ir.IntType(fty.bitwidth)


def _float_to_i32(builder, k):
    # int32, not int64: AVX2 converts packed floats/doubles to int32 but has no packed int64 variant.
    return builder.fptosi(k, ir.IntType(32))


def _pow2_from_i32(builder, fty, k32):
    """2**k32 as a float of type fty; k32 must lie in the normal exponent range."""
    mbits, bias = _FLOAT_LAYOUT[fty.bitwidth]
    ity = _bits_type(fty)
    biased = builder.add(k32, ir.Constant(ir.IntType(32), bias))
    if fty.bitwidth == 64:
        biased = builder.sext(biased, ity)
    return builder.bitcast(builder.shl(biased, ir.Constant(ity, mbits)), _llvm_float(fty))


@functools.cache
def _native_ldexp(target_machine) -> bool:
    """Whether LLVM compiles a vector ``llvm.ldexp`` for this target machine without a library call.

    On AVX-512 CPUs it is one ``vscalefps``/``vscalefpd`` instruction (exact, gradual underflow
    included); on AVX2 or NEON it becomes a libm call per lane, which would stop vectorisation, so
    :func:`_ldexp` keeps its integer construction there.  Asked by compiling a probe once per process.
    """
    probe = llvm.parse_assembly("""
        declare <8 x float> @llvm.ldexp.v8f32.v8i32(<8 x float>, <8 x i32>)
        declare <4 x double> @llvm.ldexp.v4f64.v4i32(<4 x double>, <4 x i32>)
        define <8 x float> @f(<8 x float> %p, <8 x i32> %k) {
          %r = call <8 x float> @llvm.ldexp.v8f32.v8i32(<8 x float> %p, <8 x i32> %k)
          ret <8 x float> %r
        }
        define <4 x double> @d(<4 x double> %p, <4 x i32> %k) {
          %r = call <4 x double> @llvm.ldexp.v4f64.v4i32(<4 x double> %p, <4 x i32> %k)
          ret <4 x double> %r
        }""")
    probe.triple = target_machine.triple
    try:
        assembly = target_machine.emit_assembly(probe)
    except RuntimeError:  # pragma: no cover - an LLVM without llvm.ldexp
        return False
    return "ldexp" not in assembly  # a library call names it (the probe's own functions are f and d)


def _has_native_ldexp(context) -> bool:
    target_machine = getattr(context.codegen(), "_tm", None)  # numba's CPU codegen keeps it there
    return target_machine is not None and _native_ldexp(target_machine)


def _call_llvm_intrinsic(builder, name, fty, args):
    """Call the overloaded LLVM intrinsic ``name`` whose arguments and result all have type fty."""
    lty = _llvm_float(fty)
    fn = builder.module.declare_intrinsic(name, [lty], ir.FunctionType(lty, [lty] * len(args)))
    return builder.call(fn, args)


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select`` (a blend per vector lane), never a branch."""
    if not (isinstance(cond, types.Boolean) and _same_float(a, b)):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(*args)

    return a(cond, a, b), codegen


@intrinsic
def _fabs(typingctx, x):
    if not _same_float(x):
        return None

    def codegen(context, builder, sig, args):
        return _call_llvm_intrinsic(builder, "llvm.fabs", x, args)

    return x(x), codegen


@intrinsic
def _copysign(typingctx, mag, sgn):
    if not _same_float(mag, sgn):
        return None

    def codegen(context, builder, sig, args):
        return _call_llvm_intrinsic(builder, "llvm.copysign", mag, args)

    return mag(mag, sgn), codegen


@intrinsic
def _rint(typingctx, x):
    """Round to nearest integer (ties to even); one ``vroundps/pd`` instruction."""
    if not _same_float(x):
        return None

    def codegen(context, builder, sig, args):
        return _call_llvm_intrinsic(builder, "llvm.rint", x, args)

    return x(x), codegen


#: float32 polynomials with at most this many terms are evaluated with Horner's scheme (see _poly).
HORNER_MAX_TERMS = 6


@intrinsic
def _poly(typingctx, x, coeffs):
    """``coeffs[0] + coeffs[1]*x + ...``, unrolled at compile time with Estrin's or Horner's scheme.

    Estrin (pairs ``c[i] + c[i+1]*x``, then combined with x**2, x**4, ...) has a dependency chain of
    about log2(n) FMAs instead of Horner's n, which helps when a loop body is too long for the CPU
    to overlap iterations (about +10% for float64 exp here, and for float32 erfc's 10 terms).
    Horner needs no powers of x, i.e. fewer instructions, which is what counts in the short float32
    bodies: float32 polynomials of up to ``HORNER_MAX_TERMS`` terms use it (exp -12%, softplus -8%,
    tanh -5% per element on Zen 4, one core).  Each step is
    ``llvm.fmuladd``, which becomes one FMA where the CPU has it, whatever the caller's flags.
    ``coeffs`` is a constant tuple of the same float type, so the extracts fold to constants.
    """
    if not (isinstance(coeffs, types.UniTuple) and _same_float(x, coeffs.dtype)):
        return None
    n = coeffs.count

    def codegen(context, builder, sig, args):
        xv, cv = args
        terms = [builder.extract_value(cv, i) for i in range(n)]
        if x.bitwidth == 32 and n <= HORNER_MAX_TERMS:
            value = terms[-1]
            for term in reversed(terms[:-1]):
                value = _call_llvm_intrinsic(builder, "llvm.fmuladd", x, [value, xv, term])
            return value
        power = xv
        while len(terms) > 1:
            paired = [
                _call_llvm_intrinsic(builder, "llvm.fmuladd", x, [terms[i + 1], power, terms[i]])
                for i in range(0, len(terms) - 1, 2)
            ]
            terms = paired + terms[len(terms) - len(terms) % 2:]
            if len(terms) > 1:
                power = builder.fmul(power, power)
        return terms[0]

    return x(x, coeffs), codegen


@intrinsic
def _pow2(typingctx, k):
    """2**k for a float k holding an integer in the normal exponent range."""
    if not _same_float(k):
        return None

    def codegen(context, builder, sig, args):
        return _pow2_from_i32(builder, k, _float_to_i32(builder, args[0]))

    return k(k), codegen


@intrinsic
def _ldexp(typingctx, p, k):
    """p * 2**k for integral k in [2*emin, 2*emax + 2].

    2**k itself may not be a normal number, so it is applied as two factors 2**k1 * 2**k2
    (k1 = floor(k/2)).  ``p * 2**k1`` is exact; only the second product rounds, so overflow gives inf
    and underflow gives a correctly rounded subnormal or 0, with no double rounding.
    """
    if not _same_float(p, k):
        return None

    def codegen(context, builder, sig, args):
        pv, kv = args
        k32 = _float_to_i32(builder, kv)
        if _has_native_ldexp(context):
            lty = _llvm_float(p)
            fnty = ir.FunctionType(lty, [lty, ir.IntType(32)])
            name = f"llvm.ldexp.f{p.bitwidth}.i32"
            return builder.call(builder.module.declare_intrinsic(name, fnty=fnty), [pv, k32])
        k1 = builder.ashr(k32, ir.Constant(ir.IntType(32), 1))
        k2 = builder.sub(k32, k1)
        y = builder.fmul(pv, _pow2_from_i32(builder, p, k1))
        return builder.fmul(y, _pow2_from_i32(builder, p, k2))

    return p(p, k), codegen


@intrinsic
def _split_exponent(typingctx, x):
    """For a positive normal x, return (m, k) with x = m * 2**k and sqrt(1/2) <= m < sqrt(2).

    Offsetting the bit pattern by bits(1.0) - bits(sqrt(1/2)) before reading the exponent field makes
    the exponent step at sqrt(2) instead of 2 (the fdlibm trick), so ``m - 1`` is centred on 0.
    """
    if not _same_float(x):
        return None
    mbits, bias = _FLOAT_LAYOUT[x.bitwidth]
    width = x.bitwidth
    np_ftype = np.float32 if width == 32 else np.float64
    np_itype = np.int32 if width == 32 else np.int64
    sqrt_half_bits = int(np.array(math.sqrt(0.5), dtype=np_ftype).view(np_itype))
    one_bits = bias << mbits

    def codegen(context, builder, sig, args):
        ity = _bits_type(x)
        ix = builder.bitcast(args[0], ity)
        ix = builder.add(ix, ir.Constant(ity, one_bits - sqrt_half_bits))
        # x > 0, so the shift can be logical (AVX2 has no packed 64-bit arithmetic shift).
        expo = builder.lshr(ix, ir.Constant(ity, mbits))
        if width == 64:
            expo = builder.trunc(expo, ir.IntType(32))
        k = builder.sitofp(builder.sub(expo, ir.Constant(ir.IntType(32), bias)), _llvm_float(x))
        mant = builder.and_(ix, ir.Constant(ity, (1 << mbits) - 1))
        m = builder.bitcast(builder.add(mant, ir.Constant(ity, sqrt_half_bits)), _llvm_float(x))
        return context.make_tuple(builder, sig.return_type, [m, k])

    return types.UniTuple(x, 2)(x), codegen


@intrinsic
def _trunc_mantissa(typingctx, x):
    """x with its low mantissa bits cleared, so that x*x is exact (float64: 21 bits kept, float32: 11)."""
    if not _same_float(x):
        return None
    mask = 0xFFFFFFFF00000000 if x.bitwidth == 64 else 0xFFFFE000

    def codegen(context, builder, sig, args):
        ity = _bits_type(x)
        ix = builder.and_(builder.bitcast(args[0], ity), ir.Constant(ity, mask))
        return builder.bitcast(ix, _llvm_float(x))

    return x(x), codegen


# ------------------------------------------------------------------------------------------------
# Constants per precision (as written in the sources they come from).
# ------------------------------------------------------------------------------------------------

_F64 = dict(
    exp_xmin=-746.0,  # exp(-746) < smallest subnormal / 2: rounds to 0
    exp_xmax=710.0,  # exp(710) > DBL_MAX: overflows to inf
    expm1_xmin=-40.0,  # expm1(-40) == -1 in double
    emax=1023.0,
    # ln2 = LN2_HI + LN2_LO, LN2_HI with 21 trailing zero bits: k*LN2_HI exact for |k| < 2**11.
    ln2_hi=6.93147180369123816490e-01,
    ln2_lo=1.90821492927058770002e-10,
    # (expm1(r) - r) / r**2 on |r| <= 1.03 * ln2/2, Chebyshev fit (error < 2e-18).
    expm1_p=(
        0.5, 0.1666666666666667, 0.04166666666666667, 0.008333333333324216, 0.0013888888888882378,
        0.00019841269881329098, 2.4801587330195477e-05, 2.7557247390813963e-06,
        2.755726792357791e-07, 2.510845207150092e-08, 2.0916997134321108e-09,
    ),
    # fdlibm e_log.c Lg1..Lg7: log(1+f) = f - hfsq + s*(hfsq + z*P(z)) with s = f/(2+f),
    # z = s**2, hfsq = f*f/2 (approximation error < 2**-58.45).
    log_p=(
        6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
        2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
        1.479819860511658591e-01,
    ),
    min_normal=2.2250738585072014e-308,
    subnormal_shift=54.0,
    # (double tanh uses expm1; these are float's rational approximation, unused here)
    tanh_xmax=9.0,
    tanh_p=(1.0,),
    tanh_q=(1.0,),
    log1p_unit_p=(1.0,),  # unused: double softplus uses log1p
    erf_xmax=30.0,  # erfc(30) == 0 in double; keeps exp's argument finite for inf
    # musl erf.c
    erx=8.45062911510467529297e-01,
    pp=(1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
        -5.77027029648944159157e-03, -2.37630166566501626084e-05),
    qq=(1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
        1.32494738004321644526e-04, -3.96022827877536812320e-06),
    pa=(-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
        3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
        -2.16637559486879084300e-03),
    qa=(1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
        1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02),
    ra=(-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
        -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
        -8.12874355063065934246e+01, -9.81432934416914548592e+00),
    sa=(1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
        6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
        6.57024977031928170135e+00, -6.04244152148580987438e-02),
    rb=(-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
        -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
        -4.83519191608651397019e+02),
    sb=(1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
        3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
        -2.24409524465858183362e+01),
)

_F32 = dict(
    exp_xmin=-104.0,  # expf(-104) < smallest subnormal / 2
    exp_xmax=89.0,  # expf(89) > FLT_MAX
    expm1_xmin=-20.0,  # expm1f(-20) == -1 in float
    emax=127.0,
    # 0x3f317200: 16 significant bits, so k*LN2_HI is exact for the |k| <= 150 used here.
    ln2_hi=6.9314575195e-01,
    ln2_lo=1.4286067653e-06,
    # (expm1(r) - r) / r**2 on |r| <= 1.03 * ln2/2, Chebyshev fit (error < 2e-9).
    expm1_p=(0.5000000016078544, 0.16666666684524817, 0.041666439599934726, 0.008333308113077208,
             0.0013936378028713847, 0.00019894020267326095),
    # FreeBSD e_logf.c Lg1..Lg4 (0xaaaaaa.0p-24, 0xccce13.0p-25, 0x91e9ee.0p-25, 0xf89e26.0p-26),
    # same formula as above; used for log1p too (musl's log1pf uses 7 terms, 4 are enough).
    log_p=(0xAAAAAA / 2.0**24, 0xCCCE13 / 2.0**25, 0x91E9EE / 2.0**25, 0xF89E26 / 2.0**26),
    min_normal=1.1754943508222875e-38,
    subnormal_shift=25.0,
    # tanh(x) = x*P(x^2)/Q(x^2) on |x| <= 9 (tanh(9) rounds to 1 in float): a rational fit of
    # tanh(x)/x in relative error (iteratively reweighted least squares towards minimax, fitted
    # for this module; approximation error 6.2e-8), so float tanh needs no exp and one division.
    tanh_xmax=9.0,
    tanh_p=(0.9999999403953552, 0.12919218838214874, 0.002920751925557852, 9.267332643503323e-06,
            -1.2780188463068498e-08, 1.8254699835074106e-11),
    tanh_q=(1.0, 0.46252503991127014, 0.023763127624988556, 0.0002280988555867225),
    # softplus' log1p(y) for y = exp(-|x|) in [0, 1]: 2*atanh(s) with s = y/(2 + y) <= 1/3, i.e.
    # 2s + 2s*z*P(z), z = s**2 <= 1/9, P the Taylor series of (atanh(s)/s - 1)/z to z**5 (remainder
    # < 1.6e-8 relative): one division, no exponent split.
    log1p_unit_p=(1 / 3, 1 / 5, 1 / 7, 1 / 9, 1 / 11, 1 / 13),
    erf_xmax=12.0,  # erfcf(12) == 0
    # musl erff.c
    erx=8.4506291151e-01,
    pp=(1.2837916613e-01, -3.2504209876e-01, -2.8481749818e-02, -5.7702702470e-03, -2.3763017452e-05),
    qq=(1.0, 3.9791721106e-01, 6.5022252500e-02, 5.0813062117e-03, 1.3249473704e-04, -3.9602282413e-06),
    pa=(-2.3621185683e-03, 4.1485610604e-01, -3.7220788002e-01, 3.1834661961e-01, -1.1089469492e-01,
        3.5478305072e-02, -2.1663755178e-03),
    qa=(1.0, 1.0642088205e-01, 5.4039794207e-01, 7.1828655899e-02, 1.2617121637e-01, 1.3637083583e-02,
        1.1984500103e-02),
    ra=(-9.8649440333e-03, -6.9385856390e-01, -1.0558626175e+01, -6.2375331879e+01, -1.6239666748e+02,
        -1.8460508728e+02, -8.1287437439e+01, -9.8143291473e+00),
    sa=(1.0, 1.9651271820e+01, 1.3765776062e+02, 4.3456588745e+02, 6.4538726807e+02, 4.2900814819e+02,
        1.0863500214e+02, 6.5702495575e+00, -6.0424413532e-02),
    rb=(-9.8649431020e-03, -7.9928326607e-01, -1.7757955551e+01, -1.6063638306e+02, -6.3756646729e+02,
        -1.0250950928e+03, -4.8351919556e+02),
    sb=(1.0, 3.0338060379e+01, 3.2579251099e+02, 1.5367296143e+03, 3.1998581543e+03, 2.5530502930e+03,
        4.7452853394e+02, -2.2440952301e+01),
)


# ------------------------------------------------------------------------------------------------
# The same constants typed per precision, in one named tuple that every algorithm takes as ``c``.
# ------------------------------------------------------------------------------------------------


class _Constants(NamedTuple):
    """Every constant of the algorithms, as numpy scalars of one float type.

    A jitted function reads them from a module-level instance (``_C32`` or ``_C64``), which numba
    freezes into the compiled code, so every literal is typed in the working precision and the
    float32 path contains no ``double`` operation at all.
    """

    zero: float
    nzero: float
    one: float
    two: float
    half: float
    quarter: float
    inf: float
    nan: float
    inv_ln2: float
    ln2_hi: float
    ln2_lo: float
    exp_xmin: float
    exp_xmax: float
    expm1_xmin: float
    emax: float
    expm1_p: tuple
    log_p: tuple
    min_normal: float
    subnormal_shift: float
    subnormal_scale: float
    tanh_switch: float  # tanh = 1/2 here; below it 1 - 2/(e+2) would cancel
    short_tanh: bool  # float32: tanh from a rational approximation (no exp) instead of expm1
    tanh_xmax: float
    tanh_p: tuple
    tanh_q: tuple
    short_softplus: bool  # float32: softplus' log1p by _log1p_unit
    log1p_unit_p: tuple
    erx: float
    one_minus_erx: float
    erf_r1: float
    erf_r2: float
    erf_r3: float
    erf_xmax: float
    erf_shift: float
    pp: tuple
    qq: tuple
    pa: tuple
    qa: tuple
    ra_rev: tuple
    sa_rev: tuple
    rb_rev: tuple
    sb_rev: tuple
    short_erfc: bool  # float32: erfc from one formula (_erfc_short) instead of musl's four ranges
    short_erfc_p: tuple
    short_ndtr: bool  # float32: ndtr as exp(-x^2/2) * a polynomial (shares normal_pdf's exp)
    ndtr_p: tuple
    ndtr_xmax: float
    inv_sqrt2: float
    inv_sqrt_2pi: float


def _constants(F, prm: dict) -> _Constants:
    """The constants of ``prm`` (and the common ones) as numpy scalars of type ``F``."""
    c = {name: (tuple(F(v) for v in val) if isinstance(val, tuple) else F(val)) for name, val in prm.items()}
    return _Constants(
        zero=F(0.0), nzero=F(-0.0), one=F(1.0), two=F(2.0), half=F(0.5), quarter=F(0.25),
        inf=F(np.inf), nan=F(np.nan), inv_ln2=F(1.0 / math.log(2.0)),
        ln2_hi=c["ln2_hi"], ln2_lo=c["ln2_lo"], exp_xmin=c["exp_xmin"], exp_xmax=c["exp_xmax"],
        expm1_xmin=c["expm1_xmin"], emax=c["emax"], expm1_p=c["expm1_p"], log_p=c["log_p"],
        min_normal=c["min_normal"], subnormal_shift=c["subnormal_shift"],
        subnormal_scale=F(2.0 ** prm["subnormal_shift"]), tanh_switch=F(math.log(3.0) / 2.0),
        short_tanh=F is np.float32, tanh_xmax=c["tanh_xmax"], tanh_p=c["tanh_p"], tanh_q=c["tanh_q"],
        short_softplus=F is np.float32, log1p_unit_p=c["log1p_unit_p"],
        erx=c["erx"], one_minus_erx=F(1.0) - c["erx"],
        erf_r1=F(0.84375), erf_r2=F(1.25), erf_r3=F(1.0 / 0.35), erf_xmax=c["erf_xmax"], erf_shift=F(0.5625),
        pp=c["pp"], qq=c["qq"], pa=c["pa"], qa=c["qa"],
        # R/S of erfc's tail are evaluated as polynomials in x^2 with reversed coefficients.
        ra_rev=c["ra"][::-1], sa_rev=c["sa"][::-1], rb_rev=c["rb"][::-1], sb_rev=c["sb"][::-1],
        short_erfc=F is np.float32, short_erfc_p=tuple(F(v) for v in _SHORT_ERFC_P),
        short_ndtr=F is np.float32, ndtr_p=tuple(F(v) for v in _NDTR_RATIO_P),
        # exp(-x^2/2) is 0 beyond: float32 from 14.5, float64 from 38.7 (also keeps exp's argument finite)
        ndtr_xmax=F(15.0 if F is np.float32 else 40.0),
        inv_sqrt2=F(1.0 / math.sqrt(2.0)), inv_sqrt_2pi=F(1.0 / math.sqrt(2.0 * math.pi)),
    )


# Numerical Recipes' erfcc (Press et al., 2nd ed., 6.2): erfc(z) = t*exp(-z^2 + P(t)), t = 1/(1 + z/2),
# a Chebyshev fit with relative error below 1.2e-7 for every z >= 0: enough for float32 alone.
_SHORT_ERFC_P = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
                 1.48851587, -0.82215223, 0.17087277)

# Phi(-a)*exp(a^2/2) = t*P(t), t = 1/(1 + a/4), for a in [0, 15] (float32's range: beyond, exp(-a^2/2)
# underflows to 0): a fit for this module in relative error (iteratively reweighted least squares towards
# minimax against mpmath; error 1.2e-8 with the coefficients rounded to float32). The last one is
# rounded up one ulp more, so that at x = 0 (t = 1) the sum rounds to 0.5 exactly: ndtr(0) = 1/2.
_NDTR_RATIO_P = (0.09974499046802521, 0.09954634308815002, 0.0950896218419075, 0.07390257716178894,
                 0.08136774599552155, 0.022212637588381767, 0.017385203391313553, 0.05969281494617462,
                 -0.06611909717321396, 0.017177170142531395)

_C32 = _constants(np.float32, _F32)
_C64 = _constants(np.float64, _F64)


def _constants_for(x):
    """The constants in the precision of ``x`` (resolved while numba types the caller)."""
    return _C32 if isinstance(x, np.float32) else _C64


@overload(_constants_for, jit_options=_JIT_OPTIONS)
def _constants_for_typed(x):
    if x == types.float32:
        return lambda x: _C32
    if x == types.float64:
        return lambda x: _C64
    raise TypingError(f"symjit_numba.mathlib.vector_math supports float32 and float64 scalars, got {x}")


def _jit(function):
    """``njit`` with this module's options, cached on disk by numba.

    Every function here is compiled once per precision and installation, not once per process:
    numba keeps the result next to this file (or in its user-wide cache directory when the package
    is read-only), and a kernel that calls the function links the cached code and inlines it.
    """
    try:
        return njit(cache=True, **_JIT_OPTIONS)(function)
    except RuntimeError:  # numba found no writable cache location: compile in every process instead
        return njit(**_JIT_OPTIONS)(function)


# ------------------------------------------------------------------------------------------------
# The algorithms, generic over the precision: ``c`` is _C32 or _C64.
# ------------------------------------------------------------------------------------------------


@_jit
def _expm1_reduced(r, c):
    # expm1(r) for |r| <= ln2/2; r is exact, so the relative error stays small as r -> 0.
    return r + (r * r) * _poly(r, c.expm1_p)


@_jit
def _exp_hl(hi, lo, c):
    # exp(hi + lo) for a small correction lo; NaN in hi gives a finite junk value (callers select).
    h = _select(hi > c.exp_xmin, hi, c.exp_xmin)
    h = _select(h < c.exp_xmax, h, c.exp_xmax)
    return _exp_hl_in_range(h, lo, c)


@_jit
def _exp_hl_in_range(h, lo, c):
    # exp(h + lo) for a finite h with k = rint(h/ln2) in _ldexp's range [2*emin, 2*emax + 2]
    # (float32: h in [-174, 176]; float64: [-1416, 1418]), i.e. no clamp needed.
    k = _rint((h + lo) * c.inv_ln2)
    # h - k*LN2_HI is exact (k*LN2_HI is exact and close to h), so lo is added without loss.
    r = (h - k * c.ln2_hi) + (lo - k * c.ln2_lo)
    return _ldexp(c.one + _expm1_reduced(r, c), k)


@_jit
def _log_reduced(f, k, correction, c):
    # log(2**k * (1 + f)) + correction for f in [sqrt(1/2) - 1, sqrt(2) - 1] and a small
    # correction, summed in fdlibm's order so that the error stays below 1 ulp.
    s = f / (c.two + f)
    z = s * s
    R = z * _poly(z, c.log_p)
    hfsq = c.half * f * f
    return k * c.ln2_hi - ((hfsq - (s * (hfsq + R) + (k * c.ln2_lo + correction))) - f)


@_jit
def _exp_minus_square(x, scale, shift, small, c):
    """exp(-scale*x^2 - shift + small) for x >= 0, scale 1 or 1/2, an exactly representable shift
    and a small correction.

    -x^2 = -xt^2 + (xt - x)(xt + x) with xt = x truncated: -scale*xt^2 - shift is exact, and the rest
    is small enough to be passed to exp as the low part, so the result stays relatively accurate in
    the tail (where x^2 is large and one rounding of it would cost many ulp).
    """
    xt = _trunc_mantissa(x)
    # Callers clamp x (erf_xmax, ndtr_xmax: float32 12 and 15, float64 30 and 40): the argument is
    # in _exp_hl_in_range's range.
    return _exp_hl_in_range(-scale * (xt * xt) - shift, scale * ((xt - x) * (xt + x)) + small, c)


@_jit
def _erf_parts(x, c):
    """Shared part of erf/erfc (musl erf.c ranges, all evaluated, one division).

    Returns |x|, the selected rational approximation q, |x| clamped to the tail range and its
    reciprocal, and the range masks (|x| < 0.84375, |x| < 1.25).  The tail range's erfc(|x|) is
    ``_exp_minus_square(a3, 1, erf_shift, q) * inv_a3`` (:func:`_erfc_tail`).
    """
    ax = _fabs(x)
    in_r1 = ax < c.erf_r1
    in_r2 = ax < c.erf_r2
    # [0, 0.84375): erf(x) = x + x*P(x^2)/Q(x^2)
    z = ax * ax
    n1, d1 = _poly(z, c.pp), _poly(z, c.qq)
    # [0.84375, 1.25): erf(x) = erx + P(s)/Q(s), s = |x| - 1
    s = ax - c.one
    n2, d2 = _poly(s, c.pa), _poly(s, c.qa)
    # [1.25, inf): erfc(x) = exp(-x^2 - 0.5625 + R(1/x^2)/S(1/x^2)) / x.  The argument is clamped
    # to [1.25, erf_xmax] so that lanes from other ranges (and +-inf) stay finite.
    a3 = _select(ax > c.erf_r2, ax, c.erf_r2)
    a3 = _select(a3 < c.erf_xmax, a3, c.erf_xmax)
    # R/S is evaluated as a ratio of polynomials in x^2 (numerator and denominator multiplied by
    # x^16 or x^14, i.e. coefficients reversed), which saves computing 1/x^2.
    z3 = a3 * a3
    near = a3 < c.erf_r3
    n3 = z3 * _select(near, _poly(z3, c.ra_rev), _poly(z3, c.rb_rev))
    d3 = _select(near, _poly(z3, c.sa_rev), _poly(z3, c.sb_rev))
    # Divisions are by far the slowest vector operation, so there is only one: select the
    # numerator and denominator of the active range, and get both q = num/den and 1/a3 from
    # t = 1/(den*a3).  (den*a3 < 1e23 in float64, < 1e17 in float32: no overflow.)
    num = _select(in_r1, n1, _select(in_r2, n2, n3))
    den = _select(in_r1, d1, _select(in_r2, d2, d3))
    t = c.one / (den * a3)
    q = num * (a3 * t)
    inv_a3 = den * t
    return ax, q, a3, inv_a3, in_r1, in_r2


@_jit
def _erfc_tail(a3, q, inv_a3, c):
    return _exp_minus_square(a3, c.one, c.erf_shift, q, c) * inv_a3


@_jit
def _log1p_unit(y, c):
    """log1p(y) for y in [0, 1] or NaN (float32): 2*atanh(y/(2 + y)) by its series, one division."""
    s = y / (c.two + y)
    s2 = s + s
    z = s * s
    return s2 + (s2 * z) * _poly(z, c.log1p_unit_p)


@_jit
def _erfc_short(x, c):
    """erfc by Numerical Recipes' single formula (float32): 1.8x faster than the four ranges."""
    z = _fabs(x)
    z = _select(z < c.erf_xmax, z, c.erf_xmax)  # keeps exp's argument finite for +-inf
    t = c.one / (c.one + c.half * z)
    tail = t * _exp_minus_square(z, c.one, c.zero, _poly(t, c.short_erfc_p), c)
    # erfc(+-0) = 2 - tail = 1 exactly: the formula's tail at 0 is exp(3e-8), which rounds to 1.
    return _select(x != x, x, _select(x > c.zero, tail, c.two - tail))


# ------------------------------------------------------------------------------------------------
# Public functions: generic jitted functions, one compiled (and cached) version per precision.
# ------------------------------------------------------------------------------------------------


@_jit
def exp(x):
    """Exponential, ``e**x``.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  Overflows to ``inf`` above ~709.78 (float32: ~88.72); results below the
    normal range are returned as subnormals (0 below half the smallest subnormal).
    """
    c = _constants_for(x)
    # lo = -0.0 makes the "+ lo" steps fold away (x + -0.0 == x for every x, including -0.0).
    return _select(x != x, x, _exp_hl(x, c.nzero, c))


@_jit
def expm1(x):
    """``exp(x) - 1``, accurate for small ``|x|``.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  ``expm1(-inf) = -1``, overflows to ``inf`` like :func:`exp`,
    ``expm1(-0.0) = -0.0``.
    """
    c = _constants_for(x)
    xc = _select(x > c.expm1_xmin, x, c.expm1_xmin)  # below: -1 exactly; also maps NaN to a number
    xc = _select(xc < c.exp_xmax, xc, c.exp_xmax)
    k = _rint(xc * c.inv_ln2)
    r = (xc - k * c.ln2_hi) - k * c.ln2_lo  # == xc exactly when k == 0
    e = _expm1_reduced(r, c)
    # expm1(x) = 2**k * e + (2**k - 1); for k = emax + 1, 2**k is not finite, so compute half of
    # it and double at the end (2**k - 1 == 2 * (2**(k-1) - 1/2)).
    big = k > c.emax
    t = _pow2(_select(big, c.emax, k))
    y = (e * t + (t - _select(big, c.half, c.one))) * _select(big, c.two, c.one)
    y = _select(x == c.zero, x, y)  # the reduction loses the sign of -0.0
    return _select(x != x, x, y)


@_jit
def log(x):
    """Natural logarithm.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  ``log(0) = -inf``, ``log(x < 0) = nan``, ``log(inf) = inf``; subnormal
    arguments are handled exactly.
    """
    c = _constants_for(x)
    # Subnormals have too few mantissa bits for the split: scale them into the normal range.
    sub = x < c.min_normal
    m, k = _split_exponent(_select(sub, x * c.subnormal_scale, x))
    k = k - _select(sub, c.subnormal_shift, c.zero)
    y = _log_reduced(m - c.one, k, c.nzero, c)
    nonpos = _select(x == c.zero, -c.inf, _select(x < c.zero, c.nan, x))  # x <= 0 or NaN
    return _select(x > c.zero, _select(x < c.inf, y, x), nonpos)


@_jit
def log1p(x):
    """``log(1 + x)``, accurate for small ``|x|``.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  ``log1p(-1) = -inf``, ``nan`` below -1, ``log1p(-0.0) = -0.0``.
    """
    c = _constants_for(x)
    u = c.one + x
    m, k = _split_exponent(u)
    # u = 1 + x is rounded; corr/u corrects log(u) to log(1 + x) (fdlibm's correction term).
    corr = _select(k > c.zero, c.one - (u - x), x - (u - c.one)) / u
    # With k == 0 the reduced argument is x itself, exactly, and needs no correction.
    k0 = k == c.zero
    y = _log_reduced(_select(k0, x, m - c.one), k, _select(k0, c.zero, corr), c)
    y = _select(x == c.zero, x, y)  # keep the sign of -0.0
    below = _select(x == -c.one, -c.inf, _select(x < -c.one, c.nan, x))  # x <= -1 or NaN
    return _select(x > -c.one, _select(x < c.inf, y, x), below)


@_jit
def tanh(x):
    """Hyperbolic tangent.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``; odd (``tanh(-0.0) = -0.0``), ``tanh(+-inf) = +-1``.
    """
    c = _constants_for(x)
    ax = _fabs(x)
    if c.short_tanh:  # a compile-time constant: float32 compiles this path, float64 the one below
        # |x|*P(x^2)/Q(x^2) on |x| <= 9, clamped there (NaN passes both selects unchanged); the
        # result is capped at 1 so that rounding cannot exceed it, and is 1 from the clamp on (without
        # FMA the rational gives 1 - 2 ulp there, and tanh(inf) must be 1). One division, no exp.
        a = _select(ax > c.tanh_xmax, c.tanh_xmax, ax)
        s = a * a
        y = (a * _poly(s, c.tanh_p)) / _poly(s, c.tanh_q)
        y = _select(a >= c.tanh_xmax, c.one, _select(y > c.one, c.one, y))  # NaN takes the last branch
        return _copysign(y, x)
    # One expm1 serves both formulas: small |x| uses -t/(t+2) with t = expm1(-2|x|) (accurate
    # near 0), larger |x| uses 1 - 2/(t+2) with t = expm1(2|x|) (t = inf gives exactly 1).
    big = ax > c.tanh_switch
    t = expm1(_select(big, c.two * ax, -c.two * ax))
    d = c.one / (t + c.two)
    return _copysign(_select(big, c.one - c.two * d, -t * d), x)


@_jit
def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``, evaluated without overflow.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  Relatively accurate also for very negative ``x`` (where it equals
    ``exp(x)``); ``sigmoid(-inf) = 0``, ``sigmoid(inf) = 1``.
    """
    c = _constants_for(x)
    # exp(-|x|) never overflows; for x < 0 use e/(1+e), which keeps relative accuracy down to
    # the subnormal range instead of computing 1 - something.
    e = exp(-_fabs(x))
    return _select(x >= c.zero, c.one, e) / (c.one + e)


@_jit
def softplus(x):
    """``log(1 + exp(x))``, evaluated as ``max(x, 0) + log1p(exp(-|x|))``.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  Relatively accurate for all ``x`` (no threshold cut-off: ``x`` for large
    ``x``, ``exp(x)`` for very negative ``x``); ``softplus(-inf) = 0``, ``softplus(inf) = inf``.
    """
    c = _constants_for(x)
    if c.short_softplus:  # a compile-time constant: float32 compiles this path, float64 the other
        return _select(x > c.zero, x, c.zero) + _log1p_unit(exp(-_fabs(x)), c)
    return _select(x > c.zero, x, c.zero) + log1p(exp(-_fabs(x)))


@_jit
def erf(x):
    """Error function.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``; odd (``erf(-0.0) = -0.0``), ``erf(+-inf) = +-1``.
    """
    c = _constants_for(x)
    ax, q, a3, inv_a3, in_r1, in_r2 = _erf_parts(x, c)
    tail = _erfc_tail(a3, q, inv_a3, c)
    y = _select(in_r1, ax + ax * q, _select(in_r2, c.erx + q, c.one - tail))
    return _select(x != x, x, _copysign(y, x))


@_jit
def erfc(x):
    """Complementary error function ``1 - erf(x)``, relatively accurate in the tail.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  ``erfc(-inf) = 2``, ``erfc(inf) = 0``; the float64 result underflows to
    subnormals above x ~ 26.5 and to 0 above ~27.3 (float32: ~9.2 and ~10.05).
    """
    c = _constants_for(x)
    if c.short_erfc:  # a compile-time constant: each precision compiles one of the two paths
        return _erfc_short(x, c)
    ax, q, a3, inv_a3, in_r1, in_r2 = _erf_parts(x, c)
    return _select(x != x, x, _erfc_ranges(x, q, _erfc_tail(a3, q, inv_a3, c), in_r1, in_r2, c))


@_jit
def _erfc_ranges(x, q, tail, in_r1, in_r2, c):
    """erfc(x) from :func:`_erf_parts`' q and masks and the tail range's erfc(|x|) (NaN not handled)."""
    r = x * q
    y1 = _select(x < c.quarter, c.one - (x + r), c.half - ((x - c.half) + r))
    y2 = _select(x > c.zero, c.one_minus_erx - q, c.one + (c.erx + q))
    y3 = _select(x > c.zero, tail, c.two - tail)
    return _select(in_r1, y1, _select(in_r2, y2, y3))


@_jit
def _exp_minus_half_square(x, c):
    """exp(-x^2/2) and the clamped |x| (NaN becomes ndtr_xmax: callers select NaN themselves)."""
    a = _fabs(x)
    a = _select(a < c.ndtr_xmax, a, c.ndtr_xmax)
    return _exp_minus_square(a, c.half, c.zero, c.zero, c), a


@_jit
def ndtr(x):
    """The standard normal CDF ``Phi(x) = erfc(-x/sqrt(2))/2``, relatively accurate in both tails.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``.  ``ndtr(-inf) = 0``, ``ndtr(inf) = 1``.  In float32 it is
    ``exp(-x^2/2) * t*P(t)`` (``t = 1/(1 + |x|/4)``, no second ``exp``), whose ``exp(-x^2/2)`` is the
    same computation as :func:`normal_pdf`'s: where a kernel needs both (the derivative of ``x*ndtr(x)``,
    GELU), LLVM computes it once.  float64 uses :func:`erfc`'s ranges.
    """
    c = _constants_for(x)
    if c.short_ndtr:  # a compile-time constant: each precision compiles one of the two paths
        e, a = _exp_minus_half_square(x, c)
        t = c.one / (c.one + c.quarter * a)
        tail = e * (t * _poly(t, c.ndtr_p))  # Phi(-|x|)
        return _select(x != x, x, _select(x > c.zero, c.one - tail, tail))
    # float64: erfc's ranges at z = -x/sqrt(2), except that the tail's exp(-z^2) is computed from x
    # (exp(-x^2/2)): z is rounded, and exp(-z^2) would carry that error z^2 times (2e-13 at x = -38).
    z = -x * c.inv_sqrt2
    _, q, a3, inv_a3, in_r1, in_r2 = _erf_parts(z, c)
    w = _select(in_r2, a3, _fabs(x))  # |x| in the tail range (a3 is clamped there, |x| below)
    w = _select(w < c.ndtr_xmax, w, c.ndtr_xmax)
    tail = _exp_minus_square(w, c.half, c.erf_shift, q, c) * inv_a3
    return _select(x != x, x, c.half * _erfc_ranges(z, q, tail, in_r1, in_r2, c))


@_jit
def normal_pdf(x):
    """The standard normal density ``exp(-x^2/2)/sqrt(2*pi)``, relatively accurate in the tails.

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``; 0 at ``+-inf``.  ``x^2`` is not rounded before the ``exp`` (that would cost
    up to ``x^2/2`` ulp: 5e-6 relative at ``x = -13`` in float32).
    """
    c = _constants_for(x)
    e, _ = _exp_minus_half_square(x, c)
    return _select(x != x, x, e * c.inv_sqrt_2pi)



# ------------------------------------------------------------------------------------------------
# sin, cos and tan.  float32: exact argument reduction in float64, branch-free over the whole range;
# float64: libm (a vectorisable float64 reduction needs Payne-Hanek's table lookups beyond 2**31).
# ------------------------------------------------------------------------------------------------

#: 2/pi to 256 bits (fdlibm's ``ipio2`` table begins with the same digits).
_TWO_OVER_PI_BITS = 0xA2F9836E4E441529FC2757D1F534DDC0DB6295993C439041FE5163ABDEBBC561
#: 2/pi in 6 parts of 29 bits, part j holding bits 29j+1..29j+29 after the binary point. A float32
#: has 24 significant bits, so ``x * part`` is exact in float64 whatever x's exponent, and 174 bits
#: of 2/pi reach far enough that ``x * 2/pi`` modulo 4 comes out within 2**-46 up to FLT_MAX.
_TWO_OVER_PI_PARTS = tuple(float((_TWO_OVER_PI_BITS >> (256 - 29 * (j + 1))) & (2**29 - 1)) * 2.0 ** (-29 * (j + 1))
                           for j in range(6))
_HALF_PI = math.pi / 2
#: Taylor coefficients of (sin(r)/r - 1)/r**2 and (cos(r) - 1 + r**2/2)/r**4 in r**2: on |r| <= pi/4
#: their remainders are 2.2e-9 and 1.2e-10 relative, well below float32's rounding (6e-8).
_SIN_P = (-1 / 6, 1 / 120, -1 / 5040, 1 / 362880)
_COS_P = (1 / 24, -1 / 720, 1 / 40320, -1 / 3628800)


@_jit
def _mod4(t):
    # t - 4*rint(t/4), in [-2, 2]: exact (t and 4*rint(t/4) are both multiples of t's ulp).
    return t - 4.0 * _rint(t * 0.25)


@_jit
def _trig_float32(x, kind):
    # kind: 0 sin, 1 cos, 2 tan (a compile-time constant once inlined)
    d = np.float64(x)
    p = _TWO_OVER_PI_PARTS
    # x*2/pi = the sum of the exact products d*p[j], each taken modulo 4 (products that are whole
    # multiples of 4 vanish); the smallest first, so that the rounding of the sum stays ~2**-52.
    s = _mod4(d * p[5]) + _mod4(d * p[4])
    s = s + _mod4(d * p[3])
    s = s + _mod4(d * p[2])
    s = s + _mod4(d * p[1])
    s = s + _mod4(d * p[0])
    k = _rint(s)
    r = (s - k) * _HALF_PI  # x - k*pi/2, |r| <= pi/4 (s - k is exact)
    q = k + (1.0 if kind == 1 else 0.0)  # cos(x) = sin(x + pi/2): one quadrant on
    q = q - 4.0 * _rint(q * 0.25)  # the quadrant: -2..2
    q = _select(q < 0.0, q + 4.0, q)  # 0..3
    r2 = r * r
    sin_r = r + r * r2 * _poly(r2, _SIN_P)
    cos_r = 1.0 - 0.5 * r2 + (r2 * r2) * _poly(r2, _COS_P)
    odd = _fabs(q - 2.0) == 1.0  # quadrants 1 and 3
    if kind == 2:
        v = _select(odd, -cos_r / sin_r, sin_r / cos_r)
    else:
        v = _select(odd, cos_r, sin_r)
        v = _select(q >= 2.0, -v, v)
    y = np.float32(v)
    return y if kind == 1 else _select(x == np.float32(0.0), x, y)  # sin(-0.0) = tan(-0.0) = -0.0


def _float32_in_float64(name, float32_version, summary, notes):
    """The public function ``name`` of one float argument: ``float32_version`` (computing in float64
    inside) for float32, libm's ``math.<name>`` (not vectorised) for float64."""
    libm = getattr(math, name)

    def dispatch(x):
        return libm(x)

    @overload(dispatch, jit_options=_JIT_OPTIONS)
    def dispatch_typed(x):
        if x == types.float32:
            return lambda x: float32_version(x)
        if x == types.float64:
            return lambda x: libm(x)
        raise TypingError(f"symjit_numba.mathlib.vector_math supports float32 and float64 scalars, got {x}")

    def function(x):
        return dispatch(x)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"""{summary}

    Parameters
    ----------
    x : float32 or float64

    Returns
    -------
    Same type as ``x``; {notes}  float32 is computed in float64 (vectorised, at float64's vector
    width; error below a float32 ulp); float64 calls libm (not vectorised).
    """
    return _jit(function)


@_jit
def _sin_float32(x):
    return _trig_float32(x, 0)


@_jit
def _cos_float32(x):
    return _trig_float32(x, 1)


@_jit
def _tan_float32(x):
    return _trig_float32(x, 2)


sin = _float32_in_float64("sin", _sin_float32, "Sine.", "NaN at ``+-inf``, ``sin(-0.0) = -0.0``.  float32"
                          " reduces ``x`` modulo pi/2 exactly, however large it is (174 bits of 2/pi).")
cos = _float32_in_float64("cos", _cos_float32, "Cosine.", "NaN at ``+-inf``.  float32 reduces ``x`` as :func:`sin` does.")
tan = _float32_in_float64("tan", _tan_float32, "Tangent.", "NaN at ``+-inf``, ``tan(-0.0) = -0.0``.  float32"
                          " reduces ``x`` as :func:`sin` does, then divides once.")


# ------------------------------------------------------------------------------------------------
# Hyperbolic and inverse trigonometric functions.  float32: closed forms in float64 over this
# module's float64 exp/expm1/log1p (float64 has the range and the precision to spare, so no
# cancellation or overflow reaches the float32 result); float64: libm.
# ------------------------------------------------------------------------------------------------

#: Taylor coefficients of (atan(u)/u - 1)/u**2 in u**2, for |u| <= tan(pi/8): remainder < 3e-10.
_ATAN_P = tuple((-1.0) ** (j + 1) / (2 * j + 3) for j in range(10))


@_jit
def _atan_unit(a):
    # atan(a) for 0 <= a <= 1 (float64): atan(a) = pi/4 + atan((a - 1)/(a + 1)) above tan(pi/8)
    upper = a > 0.41421356237309503
    u = _select(upper, (a - 1.0) / (a + 1.0), a)
    u2 = u * u
    return _select(upper, math.pi / 4, 0.0) + (u + u * u2 * _poly(u2, _ATAN_P))


@_jit
def _atan_nonnegative(a):
    # atan(a) for a >= 0 (float64), +inf included: atan(a) = pi/2 - atan(1/a) above 1
    big = a > 1.0
    v = _atan_unit(_select(big, 1.0 / a, a))
    return _select(big, math.pi / 2 - v, v)


@_jit
def _atan_float32(x):
    return _copysign(np.float32(_atan_nonnegative(_fabs(np.float64(x)))), x)  # atan(-0.0) = -0.0; NaN stays


@_jit
def _asin_float32(x):
    d = np.float64(x)
    c = (1.0 - d) * (1.0 + d)  # exact for a float32 d; < 0 (so NaN below) outside [-1, 1]
    t = d / math.sqrt(c)  # asin(x) = atan(t); +-inf at +-1
    return _copysign(np.float32(_atan_nonnegative(_fabs(t))), x)


@_jit
def _acos_float32(x):
    d = np.float64(x)
    t = math.sqrt((1.0 - d) / (1.0 + d))  # acos(x) = 2*atan(t); t = inf at -1, NaN outside [-1, 1]
    return np.float32(2.0 * _atan_nonnegative(t))


@_jit
def _sinh_float32(x):
    e = expm1(_fabs(np.float64(x)))  # sinh|x| = (e + e/(e + 1))/2: no cancellation near 0
    return _copysign(np.float32(0.5 * (e + _select(e < 1e300, e / (e + 1.0), 1.0))), x)  # inf/inf


@_jit
def _cosh_float32(x):
    e = exp(_fabs(np.float64(x)))
    return np.float32(0.5 * (e + 1.0 / e))


@_jit
def _asinh_float32(x):
    a = _fabs(np.float64(x))  # a*a <= 1.2e77 for a finite float32: no overflow in float64
    v = log1p(a + a * a / (1.0 + math.sqrt(1.0 + a * a)))
    return _copysign(np.float32(_select(a == math.inf, a, v)), x)  # inf/inf


@_jit
def _acosh_float32(x):
    t = np.float64(x) - 1.0  # exact; acosh(1 + t) = log1p(t + sqrt(2t + t^2))
    return np.float32(_select(t < 0.0, math.nan, log1p(t + math.sqrt(t * (2.0 + t)))))


@_jit
def _atanh_float32(x):
    a = _fabs(np.float64(x))  # 1/2 log1p(2a/(1 - a)): inf at 1, NaN beyond
    return _copysign(np.float32(0.5 * log1p(2.0 * a / (1.0 - a))), x)


atan = _float32_in_float64("atan", _atan_float32, "Arc tangent, in ``[-pi/2, pi/2]``.", "``+-pi/2`` at ``+-inf``.")
asin = _float32_in_float64("asin", _asin_float32, "Arc sine, in ``[-pi/2, pi/2]``.", "NaN outside ``[-1, 1]``.")
acos = _float32_in_float64("acos", _acos_float32, "Arc cosine, in ``[0, pi]``.", "NaN outside ``[-1, 1]``.")
sinh = _float32_in_float64("sinh", _sinh_float32, "Hyperbolic sine.", "``+-inf`` beyond float32's range.")
cosh = _float32_in_float64("cosh", _cosh_float32, "Hyperbolic cosine.", "``inf`` beyond float32's range.")
asinh = _float32_in_float64("asinh", _asinh_float32, "Inverse hyperbolic sine.", "accurate over the whole range.")
acosh = _float32_in_float64("acosh", _acosh_float32, "Inverse hyperbolic cosine.", "NaN below 1.")
atanh = _float32_in_float64("atanh", _atanh_float32, "Inverse hyperbolic tangent.", "``+-inf`` at ``+-1``, NaN beyond.")


# ------------------------------------------------------------------------------------------------
# pow.  float32: exp(y*log|x|) in float64, with C's special cases; float64: libm.
# ------------------------------------------------------------------------------------------------


@_jit
def _pow_float32(x, y):
    xd, yd = np.float64(x), np.float64(y)
    ax = _fabs(xd)
    # |y*log|x|| <= 104 wherever the float32 result is neither 0 nor inf, so the float64 error of
    # the product (2e-14 relative) is far below float32's rounding.
    r = exp(yd * log(ax))
    integer = yd == _rint(yd)  # +-inf too (even)
    odd = integer & (_rint(yd * 0.5) * 2.0 != yd)
    negative = _copysign(1.0, xd) < 0.0  # -0.0 too
    r = _select(negative & odd, -r, r)
    r = _select(negative & (not integer) & (ax > 0.0) & (ax < math.inf), math.nan, r)  # (-x)**0.5 = nan
    r = _select((ax == 1.0) & (_fabs(yd) == math.inf), 1.0, r)  # (-1)**inf = 1 (inf*log(1) is nan)
    r = _select((xd == 1.0) | (yd == 0.0), 1.0, r)  # even for a NaN y, or x
    return np.float32(r)


def _pow(x, y):
    """x**y in the precision of x and y (resolved while numba types the caller)."""
    return x**y


@overload(_pow, jit_options=_JIT_OPTIONS)
def _pow_typed(x, y):
    if x == types.float32 and y == types.float32:
        return lambda x, y: _pow_float32(x, y)
    if x == types.float64 and y == types.float64:
        return lambda x, y: x**y
    raise TypingError(f"symjit_numba.mathlib.vector_math.pow takes two float32 or two float64 scalars, got {x}, {y}")


@_jit
def _binary_power(base, m):
    # base**m (float64) for an integer m >= 0, a constant once inlined (LLVM unrolls the loop);
    # 1 for m = 0, even for a NaN base
    power = 1.0
    while m:
        if m & 1:
            power *= base
        base *= base
        m >>= 1
    return power


@_jit
def _powi_float32(x, n):
    # x**n by binary powering in float64. A float32 x squared is exact in float64 and every later
    # product rounds at 2**-53, so the float32 result is as if rounded once; float64's range
    # covers every float32 overflow and underflow the result can have (if |x|**|n| overflows
    # float64, x**-|n| is 0 in float32).
    power = _binary_power(np.float64(x), abs(n))
    return np.float32(power if n >= 0 else 1.0 / power)  # 1/0 = inf: (-0.0)**-3 = -inf


@_jit
def _powi_float64(x, n):
    # x**n by binary powering: at most log2|n| + popcount|n| roundings (6 ulp for |n| <= 64).
    power = _binary_power(x, abs(n))
    if n >= 0:
        return power
    # Where |x|**|n| overflows, x**n may still be a subnormal: the power of 1/x then.
    return _select((_fabs(power) == math.inf) & (_fabs(x) < math.inf), _binary_power(1.0 / x, -n), 1.0 / power)


def _powi(x, n):
    """x**n for an integer n, in the precision of x (resolved while numba types the caller)."""
    return x**n


@overload(_powi, jit_options=_JIT_OPTIONS)
def _powi_typed(x, n):
    if not isinstance(n, types.Integer):
        raise TypingError(f"symjit_numba.mathlib.vector_math.powi takes an integer exponent, got {n}")
    if x == types.float32:
        return lambda x, n: _powi_float32(x, n)
    if x == types.float64:
        return lambda x, n: _powi_float64(x, n)
    raise TypingError(f"symjit_numba.mathlib.vector_math supports float32 and float64 scalars, got {x}")


@_jit
def powi(x, n):
    """``x**n`` for an integer ``n`` (C's ``pow`` with an integer exponent: exact signs, 1 for
    ``n = 0``, +-inf for a zero ``x`` and a negative ``n``).

    Parameters
    ----------
    x : float32 or float64
    n : int
        A constant in generated kernels (the printer writes it as a literal), so that the loop
        below unrolls.

    Returns
    -------
    Same type as ``x``; vectorised.  float32 multiplies in float64 by binary powering (the result
    rounds as if once); float64 by binary powering in float64 (a few ulp: at most 6 roundings for
    ``|n| <= 64``), with the power of ``1/x`` where ``|x|**|n|`` overflows but ``x**n`` is subnormal.
    """
    return _powi(x, n)


@_jit
def pow(x, y):  # noqa: A001 - the C name, as math.pow
    """``x**y`` with C's ``pow`` rules (NaN for a negative ``x`` and a non-integer ``y``; 1 for
    ``y = 0`` and for ``x = 1``, even NaN; the limits at 0 and +-inf).

    Parameters
    ----------
    x, y : float32 or float64 (both the same)

    Returns
    -------
    Same type.  float32 is ``exp(y*log|x|)`` computed in float64 (vectorised, error well below a
    float32 ulp); float64 calls libm (not vectorised: ``exp(y*log|x|)`` in float64 would lose up to
    ``|y*log|x||`` ulp).
    """
    return _pow(x, y)

#: The LLVM function attribute that :func:`prefer_wide_vectors` sets.
WIDE_VECTORS_ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def prefer_wide_vectors(typingctx):
    """Let LLVM vectorise the calling jitted function with the CPU's full vector width.

    Call it (no arguments, no result) as a statement in a jitted function; it emits no code. On an
    Intel AVX-512 CPU (``skylake-avx512``, ``icelake-server``, ``sapphirerapids``...) LLVM's cost
    model prefers 256-bit vectors unless a function asks otherwise, so the loops over these
    functions use half the lanes the CPU has; this marks the *calling* function with the LLVM
    attribute ``"prefer-vector-width"="512"`` (what clang's ``-mprefer-vector-width=512`` sets), and
    the functions of this module, inlined into it, are vectorised with 512-bit registers too.
    Nothing else changes: other jitted functions keep numba's defaults, and a CPU without
    AVX-512 (or one that already prefers 512-bit vectors, such as AMD Zen 4) compiles the same code
    as without it. Measured on an AMD EPYC (Zen 4) compiling for ``skylake-avx512``: sigmoid 516 ->
    398, erfc 1164 -> 820 ps per float32 element on one core (benchmarks in docs/performance.md).

    llvmlite's IR builder only accepts the attributes it knows, so the string attribute is added
    to the function's attribute set directly; should a future llvmlite refuse that, the call does
    nothing.
    """

    def codegen(context, builder, sig, args):
        try:
            set.add(builder.function.attributes, WIDE_VECTORS_ATTRIBUTE)
        except (AttributeError, TypeError):  # pragma: no cover - a different llvmlite
            pass
        return context.get_dummy_value()

    return types.none(), codegen


def evaluate(name: str, x):
    """Apply the function called ``name`` element-wise to an array (or scalar) from plain Python.

    Parameters
    ----------
    name : str
        One of the public one-argument function names, e.g. ``"erf"`` (not ``"pow"``, ``"powi"``).
    x : array_like
        float32 or float64 values (anything else is converted to float64).

    Returns
    -------
    numpy.ndarray or numpy scalar of the same dtype.
    """
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    out = np.empty(arr.shape, arr.dtype)
    _EVALUATORS[name](np.ascontiguousarray(arr).reshape(-1), out.reshape(-1))
    return out[()] if out.ndim == 0 else out


def _evaluator(function):
    @njit(fastmath=set(FASTMATH_FLAGS), error_model="numpy")
    def loop(src, dst):
        for i in range(src.size):
            dst[i] = function(src[i])

    return loop


_EVALUATORS = {name: _evaluator(globals()[name]) for name in __all__
               if name not in ("FASTMATH_FLAGS", "prefer_wide_vectors", "pow", "powi")}  # two arguments
