"""The one table of functions a formula may call, and how every target implements each.

Each :class:`MathFunction` row names a function of the formula language, the SymPy object that
represents it, and its implementation on each target:

* ``numpy``: the name ``sympy.lambdify`` uses for the CPU_PYTHON backend;
* ``numba``: what the CPU_JIT kernels call (``vm.*`` are the vectorisable versions in
  :mod:`symjit_numba.mathlib.vector_math`);
* ``cuda``: what the GPU_CUDA kernels call.

(``ss`` is :mod:`symjit_numba.mathlib.scalar_special`; SymPy writes ``digamma(x)`` as
``polygamma(0, x)``, printed through the ``digamma`` row.)

A target implementation is either a callable's dotted name (``"math.sin"``), printed as a call, or a
template with ``{0}``, ``{1}`` placeholders for the printed arguments and ``T`` for the kernel's scalar
type; the printer hoists a non-trivial argument into a temporary before a template repeats it.
Adding a function is one row here, plus its SymPy class if SymPy has none (see :class:`sigmoid`).

Derivatives come from SymPy. Where SymPy's would be numerically poor, the function is its own class
here with a stable derivative registered next to it (``fdiff``), as autograd registers gradients next
to primitives.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.codegen import cfunctions
from sympy.codegen.cfunctions import log1p

__all__ = ["MathFunction", "FUNCTIONS", "FUNCTIONS_BY_SYMPY", "ALIASES", "sigmoid", "softplus", "ndtr", "sinc", "erfc",
           "loggamma", "log1p", "expm1", "exp_neg_abs", "normal_pdf", "asin", "acos", "atan", "atan2", "asinh", "acosh",
           "atanh", "real_derivative"]


class sigmoid(sp.Function):  # noqa: N801 - SymPy functions are lower-case, like sympy.exp
    """The logistic function ``1/(1+exp(-x))``; its derivative is ``sigmoid(x)*(1-sigmoid(x))``."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    def _eval_rewrite_as_exp(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return 1 / (1 + sp.exp(-arg))

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real


class softplus(sp.Function):  # noqa: N801
    """``log(1+exp(x))``, evaluated without overflow; its derivative is ``sigmoid(x)``."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.log(1 + sp.exp(arg))

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real


class exp_neg_abs(sp.Function):  # noqa: N801
    """``exp(-|u|)``, which never overflows. Only the rewrites before printing produce it
    (:mod:`symjit_numba.codegen.rewrite`); it is a function of its own so that SymPy keeps
    ``exp_neg_abs(u)**2`` a square of the one ``exp`` instead of making it a second one, ``exp(-2|u|)``."""

    nargs = 1

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.could_extract_minus_sign():
            return cls(-arg)  # |-u| = |u|: one function (and one exp) for both signs
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return -sp.sign(self.args[0]) * self

    def _eval_rewrite_as_exp(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.exp(-sp.Abs(arg))

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _eval_is_extended_nonnegative(self) -> bool | None:
        return True if self.args[0].is_extended_real else None


class erfc(sp.erfc):  # noqa: N801
    """SymPy's ``erfc`` without its rewrite of ``erfc(-x)`` as ``2 - erfc(x)``.

    That identity is exact in SymPy and ruinous in floating point: ``2 - erfc(x)`` is exactly 2
    (or 0, for ``erfc(-(-x))``) once ``erfc(x)`` is below half an ulp of 2, so ``erfc(-num)`` at
    ``num = -10`` would be 0 instead of 2.09e-45. Every backend's ``erfc`` is accurate on the whole
    real line, so the argument is kept as written. Only the special values are evaluated.
    """

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg is sp.S.NaN:
            return sp.S.NaN
        if arg is sp.S.Infinity:
            return sp.S.Zero
        if arg is sp.S.NegativeInfinity:
            return sp.Integer(2)
        if arg.is_zero:
            return sp.S.One
        return None


class expm1(cfunctions.expm1):  # noqa: N801
    """SymPy's ``expm1`` without its rewrite of ``expm1(c + x)`` as ``exp(c)*exp(x) - 1``.

    SymPy evaluates ``expm1(u)`` as ``exp(u) - 1`` whenever ``exp`` pulls a number out of ``u``
    (``expm1(0.1 - num)`` became ``1.1052*exp(-num) - 1``), which cancels to noise where ``u`` is
    near 0: the very case ``expm1`` exists for. The argument is kept as written; only numbers are
    evaluated (floats with mpmath's ``expm1``, which does not cancel either).
    """

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.is_zero:
            return sp.S.Zero
        if arg.is_Float:
            return sp.Float(mpmath.expm1(mpmath.mpf(arg)))
        return None


class loggamma(sp.Function):  # noqa: N801
    """``log|Gamma(x)|``, the real log-gamma of C's ``lgamma`` (what every backend computes).

    SymPy's ``loggamma`` is the complex principal branch, so SymPy calls ``loggamma(-0.5)``
    complex (``1.2655 - 3.1416*I``) where the kernels compute ``lgamma(-0.5) = 1.2655``; as a
    constant it was refused. This class is real wherever ``Gamma(x)`` is finite and non-zero, +inf
    at the poles, and its derivative is ``digamma(x) = polygamma(0, x)`` on the whole real line
    (``d/dx log|Gamma(x)| = Gamma'(x)/Gamma(x)`` on both signs of ``Gamma``).
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.polygamma(0, self.args[0])

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        import mpmath

        x = self.args[0].evalf(prec)
        if not x.is_Number:
            return None
        if x.is_Integer or (x.is_Float and float(x).is_integer()):
            if x <= 0:
                return sp.oo  # a pole of Gamma: lgamma is +inf there
        with mpmath.workprec(prec):
            value = mpmath.loggamma(mpmath.mpf(x._to_mpmath(prec)))
            # mpmath's loggamma is the principal branch; its real part is log|Gamma(x)|.
            return sp.Float._new(mpmath.re(value)._mpf_, prec)

    def _eval_rewrite_as_gamma(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.log(sp.Abs(sp.gamma(arg)))

    def _eval_is_extended_real(self) -> bool | None:
        return self.args[0].is_extended_real


class ndtr(sp.Function):  # noqa: N801
    """The standard normal CDF ``Phi(x) = erfc(-x/sqrt(2))/2``; its derivative is the normal density.

    One ``erfc`` keeps both tails accurate, where SymPy would rewrite ``erfc(-x)`` as ``2 - erfc(x)``.
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return normal_pdf(self.args[0])

    def _eval_rewrite_as_erfc(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return erfc(-arg / sp.sqrt(2)) / 2  # this module's erfc: SymPy's would lose the lower tail

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(sp.erfc)._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real


class normal_pdf(sp.Function):  # noqa: N801
    """The standard normal density ``exp(-x**2/2)/sqrt(2*pi)``, the derivative of :class:`ndtr`.

    A function of its own (derivatives produce it; formulas write ``exp(-x**2/2)``) so that the CPU
    kernels compute its ``exp(-x**2/2)`` the way ``vm.ndtr`` does: where both occur, as in GELU's
    derivative ``ndtr(x) + x*normal_pdf(x)``, LLVM computes that ``exp`` once.
    """

    nargs = 1

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.could_extract_minus_sign():
            return cls(-arg)  # even: one function (and one exp) for both signs
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return -self.args[0] * self

    def _eval_rewrite_as_exp(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.exp(-arg**2 / 2) / sp.sqrt(2 * sp.pi)

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _eval_is_extended_nonnegative(self) -> bool | None:
        return True if self.args[0].is_extended_real else None


class sinc(sp.sinc):  # noqa: N801
    """SymPy's ``sinc(x) = sin(x)/x`` (not numpy's normalised one), with a derivative that is
    accurate near 0: ``cos(x)/x - sin(x)/x**2`` cancels there, so its Taylor series is used."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        series = sum((-1) ** k * 2 * k * x ** (2 * k - 1) / sp.factorial(2 * k + 1) for k in range(1, 8))
        return sp.Piecewise((series, sp.Abs(x) < sp.Rational(1, 2)), (sp.cos(x) / x - sp.sin(x) / x**2, True))


class _InverseFunction(sp.Function):
    """An inverse trigonometric or hyperbolic function that SymPy's ``sin``, ``cosh``… do not see
    through.

    SymPy evaluates ``sin(atan(u))`` as ``u/sqrt(u**2 + 1)`` (and ``cosh(asinh(u))`` as
    ``sqrt(u**2 + 1)``, ``sin(atan2(y, x))`` as ``y/sqrt(x**2 + y**2)``, and so on for every pair)
    as soon as the formula is built: ``u**2`` overflows for ``|u| > 1e154``, giving 0 instead of 1,
    and the derivative becomes a difference that cancels. These classes are not subclasses of
    SymPy's, so the formula is computed as written; SymPy's class (:attr:`sympy_class`) still
    supplies numbers, derivatives and assumptions.
    """

    nargs = 1
    sympy_class: type[sp.Function]

    @classmethod
    def eval(cls, *args: sp.Expr) -> sp.Expr | None:
        if all(arg.is_Number for arg in args):
            value = cls.sympy_class(*args)
            return None if isinstance(value, cls.sympy_class) else value  # asin(2) stays a call
        return None

    def _sympy_form(self) -> sp.Expr:
        return self.sympy_class(*self.args, evaluate=False)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return self._sympy_form().fdiff(argindex)

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        return self.sympy_class(*self.args)._eval_evalf(prec)

    def _eval_is_extended_real(self) -> bool | None:
        return self._sympy_form().is_extended_real

    def _eval_is_finite(self) -> bool | None:
        return self._sympy_form().is_finite


class asin(_InverseFunction):  # noqa: N801
    """SymPy's ``asin``, opaque to the rewrites of the functions applied to it (see :class:`_InverseFunction`)."""

    sympy_class = sp.asin


class acos(_InverseFunction):  # noqa: N801
    """SymPy's ``acos``, opaque to the rewrites of the functions applied to it (see :class:`_InverseFunction`)."""

    sympy_class = sp.acos


class atan(_InverseFunction):  # noqa: N801
    """SymPy's ``atan``, opaque to the rewrites of the functions applied to it (see :class:`_InverseFunction`)."""

    sympy_class = sp.atan


class asinh(_InverseFunction):  # noqa: N801
    """SymPy's ``asinh``, opaque to the rewrites of the functions applied to it (see :class:`_InverseFunction`)."""

    sympy_class = sp.asinh

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        # 1/sqrt(x**2 + 1) is 0 once x**2 overflows (|x| > 1e154, or 1e19 in float32) where the
        # derivative is 1/|x|; beyond 1e8, 1/|x| is that derivative to float64 rounding. (Not
        # Abs(x): SymPy evaluates Abs(exp(u)) as exp(re(u)) unless it can prove u real.)
        x = self.args[0]
        return sp.Piecewise((1 / sp.sqrt(x**2 + 1), x**2 < 10**16), (1 / x, x > 0), (-1 / x, True))


class acosh(_InverseFunction):  # noqa: N801
    """SymPy's ``acosh``, opaque to the rewrites of the functions applied to it (see :class:`_InverseFunction`)."""

    sympy_class = sp.acosh


class atanh(_InverseFunction):  # noqa: N801
    """SymPy's ``atanh``, opaque to the rewrites of the functions applied to it (see :class:`_InverseFunction`)."""

    sympy_class = sp.atanh


class atan2(_InverseFunction):  # noqa: N801
    """SymPy's ``atan2``, opaque to the rewrites of the functions applied to it (see :class:`_InverseFunction`)."""

    nargs = 2
    sympy_class = sp.atan2


class _AbsOfReal(sp.Function):  # noqa: N801
    """``Abs(u)`` while differentiating: ``d|u| = sign(u)*du`` for real ``u``."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.sign(self.args[0])


class _SignOfReal(sp.Function):  # noqa: N801
    """``sign(u)`` while differentiating: derivative 0 (SymPy's ``2*DiracDelta(u)`` counts as 0)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero


def real_derivative(expr: sp.Expr, variable: sp.Symbol) -> sp.Expr:
    """``d expr / d variable`` for real arguments, as the kernels compute it.

    SymPy differentiates ``Abs(u)`` and ``sign(u)`` for complex ``u`` unless it can prove ``u``
    real: ``Abs(num**a)`` or ``Abs(asin(num))`` get a derivative in ``re``/``im``, ``sign(log(num))``
    an unevaluated ``Derivative``, none of which a kernel can compute. Every value a kernel sees is
    real (where ``asin`` or ``log`` leave the real line, the result is NaN anyway), so ``Abs`` and
    ``sign`` are differentiated as functions of a real argument: ``d|u| = sign(u)*du`` (0 at
    ``u = 0``) and ``d sign(u) = 0``. A power ``u**p`` with a non-integer ``p`` that does not
    depend on the variable differentiates as ``p*u**(p-1)*du`` (see :class:`_PowOfReal`).
    """
    hidden = expr.replace(sp.Abs, _AbsOfReal).replace(sp.sign, _SignOfReal)
    hidden = hidden.replace(lambda e: e.is_Pow and not e.exp.is_Integer and e.base.has(variable)
                            and not e.exp.has(variable), lambda e: _PowOfReal(e.base, e.exp))
    derivative = sp.diff(hidden, variable)
    return derivative.replace(_AbsOfReal, sp.Abs).replace(_SignOfReal, sp.sign).replace(_PowOfReal, sp.Pow)


class _PowOfReal(sp.Function):
    """``u**p`` (p not an integer, constant) while differentiating: ``d(u**p) = p*u**(p-1)*du``.

    SymPy writes the first term ``p*u**p*du/u``, which is 0*inf = NaN where ``u**p`` underflows
    (``x**1.5`` at 0 or at a subnormal x) although the derivative is finite there.
    """

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        base, exponent = self.args
        return exponent * _PowOfReal(base, exponent - 1) if argindex == 1 else _PowOfReal(base, exponent) * sp.log(base)


@dataclass(frozen=True)
class MathFunction:
    """One row of the function table (see the module docstring)."""

    name: str
    sympy: type
    numpy: str
    numba: str
    cuda: str
    arity: tuple[int, ...] = (1,)
    #: False for functions that only derivatives produce (a formula may not call them).
    public: bool = True


# Branch-free templates: NaN in gives NaN out (the comparisons are false for NaN, so it falls
# through to the argument itself), which LLVM turns into vector selects.
_SIGN = "(T(1) if {0} > T(0) else (T(-1) if {0} < T(0) else {0}))"
_HEAVISIDE = "(T(1) if {0} > T(0) else (T(0) if {0} < T(0) else (T(0.5) if {0} == T(0) else {0})))"
_MAX = "({0} if ({0} >= {1} or {0} != {0}) else {1})"
_MIN = "({0} if ({0} <= {1} or {0} != {0}) else {1})"
_SINC_NUMBA = "(vm.sin({0}) / {0} if {0} != T(0) else T(1))"
_SINC_CUDA = "(math.sin({0}) / {0} if {0} != T(0) else T(1))"
# exp of a non-positive argument only: it cannot overflow (the CUDA simulator's math.exp would raise).
_SIGMOID = "(T(1) / (T(1) + math.exp(-{0})) if {0} >= T(0) else math.exp({0}) / (T(1) + math.exp({0})))"
_NDTR_CUDA = "(T(0.5) * math.erfc(T(-0.7071067811865476) * {0}))"
_NORMAL_PDF_CUDA = "(T(0.3989422804014327) * math.exp(T(-0.5) * {0} * {0}))"
_SOFTPLUS = "(max({0}, T(0)) + math.log1p(math.exp(-abs({0}))))"

FUNCTIONS: tuple[MathFunction, ...] = (
    #            name        SymPy         numpy (lambdify)      numba (CPU_JIT)  cuda (GPU_CUDA)
    MathFunction("exp",      sp.exp,       "numpy.exp",          "vm.exp",        "math.exp"),
    MathFunction("log",      sp.log,       "numpy.log",          "vm.log",        "math.log"),
    MathFunction("log1p",    log1p,        "numpy.log1p",        "vm.log1p",      "math.log1p"),
    MathFunction("expm1",    expm1,        "numpy.expm1",        "vm.expm1",      "math.expm1"),
    MathFunction("sqrt",     sp.sqrt,      "numpy.sqrt",         "math.sqrt",     "math.sqrt"),
    MathFunction("Abs",      sp.Abs,       "numpy.abs",          "abs",           "abs"),
    MathFunction("sign",     sp.sign,      "special.sign",       _SIGN,           _SIGN),
    MathFunction("Heaviside", sp.Heaviside, "numpy.heaviside",   _HEAVISIDE,      _HEAVISIDE, (1, 2)),
    MathFunction("Max",      sp.Max,       "numpy.maximum",      _MAX,            _MAX, (2,)),
    MathFunction("Min",      sp.Min,       "numpy.minimum",      _MIN,            _MIN, (2,)),
    MathFunction("Piecewise", sp.Piecewise, "numpy.select",      "<printer>",     "<printer>", ()),
    MathFunction("sin",      sp.sin,       "numpy.sin",          "vm.sin",        "math.sin"),
    MathFunction("cos",      sp.cos,       "numpy.cos",          "vm.cos",        "math.cos"),
    MathFunction("tan",      sp.tan,       "numpy.tan",          "vm.tan",        "math.tan"),
    MathFunction("asin",     asin,         "numpy.arcsin",       "vm.asin",       "math.asin"),
    MathFunction("acos",     acos,         "numpy.arccos",       "vm.acos",       "math.acos"),
    MathFunction("atan",     atan,         "numpy.arctan",       "vm.atan",       "math.atan"),
    MathFunction("atan2",    atan2,        "numpy.arctan2",      "math.atan2",    "math.atan2", (2,)),
    MathFunction("sinh",     sp.sinh,      "numpy.sinh",         "vm.sinh",       "math.sinh"),
    MathFunction("cosh",     sp.cosh,      "numpy.cosh",         "vm.cosh",       "math.cosh"),
    MathFunction("tanh",     sp.tanh,      "numpy.tanh",         "vm.tanh",       "math.tanh"),
    MathFunction("asinh",    asinh,        "numpy.arcsinh",      "vm.asinh",      "math.asinh"),
    MathFunction("acosh",    acosh,        "numpy.arccosh",      "vm.acosh",      "math.acosh"),
    MathFunction("atanh",    atanh,        "numpy.arctanh",      "vm.atanh",      "math.atanh"),
    MathFunction("erf",      sp.erf,       "special.erf",        "vm.erf",        "math.erf"),
    MathFunction("erfc",     erfc,         "special.erfc",       "vm.erfc",       "math.erfc"),
    MathFunction("ndtr",     ndtr,         "special.ndtr",       "vm.ndtr",       _NDTR_CUDA),
    MathFunction("sinc",     sinc,         "special.sinc",       _SINC_NUMBA,     _SINC_CUDA),
    MathFunction("gamma",    sp.gamma,     "special.gamma",      "math.gamma",    "math.gamma"),
    MathFunction("loggamma", loggamma,     "special.loggamma",   "math.lgamma",   "math.lgamma"),
    MathFunction("digamma",  sp.polygamma, "special.polygamma",  "T(ss.digamma({0}))", "T(ss_digamma({0}))",
                 public=False),
    MathFunction("sigmoid",  sigmoid,      "special.sigmoid",    "vm.sigmoid",    _SIGMOID),
    MathFunction("softplus", softplus,     "special.softplus",   "vm.softplus",   _SOFTPLUS),
    MathFunction("exp_neg_abs", exp_neg_abs, "<rewrite>",        "vm.exp(-abs({0}))", "math.exp(-abs({0}))",
                 public=False),
    MathFunction("normal_pdf", normal_pdf, "special.normal_pdf", "vm.normal_pdf", _NORMAL_PDF_CUDA, public=False),
)  # fmt: skip

FUNCTIONS_BY_NAME: dict[str, MathFunction] = {f.name: f for f in FUNCTIONS if f.public}
FUNCTIONS_BY_SYMPY: dict[type, MathFunction] = {f.sympy: f for f in FUNCTIONS if isinstance(f.sympy, type)}
# SymPy makes its own inverse functions too (atan2(y, 2) evaluates to atan(y/2)): print them alike.
FUNCTIONS_BY_SYMPY.update({f.sympy.sympy_class: f for f in FUNCTIONS if isinstance(f.sympy, type)
                           and issubclass(f.sympy, _InverseFunction)})

#: Extra spellings accepted in formula strings.
ALIASES: dict[str, str] = {"abs": "Abs", "max": "Max", "min": "Min", "lgamma": "loggamma", "heaviside": "Heaviside",
                           "Phi": "ndtr"}
