"""The named formulas mean what ``torch.nn.functional`` means, and are accurate against float64 torch.

What is checked, and why: users swap torch activations and losses for named formulas and expect
the same functions, including torch's derivative conventions at kinks (``relu'(0) = 0``,
``leaky_relu'(0) = alpha``, ``elu'(0) = alpha``, ``hardtanh'(+-1) = 0``, ``l1_loss'(0) = 0``,
``huber_loss'(+-delta) = +-delta``...). So each activation's value is compared with torch's and its
derivative with ``torch.autograd.grad`` of the sum (which is f'(x) element-wise); each loss (with
``reduction='none'``) and its gradient with respect to the input likewise. The inputs include 0, the
kinks, +-20 and +-60 (saturated sigmoid/tanh, underflowing tails), for every backend and, for
activations, both layouts. Formulas torch lacks (swish with beta, gaussian, sine) are written in torch.

The reference is always torch in **float64**, evaluated at our inputs and constants (float32 ones
rounded to float32 first, so both sides compute the same function at the same point). torch's float32
output is never a reference: it differs between CPUs (its float32 gelu at x = -3 is 1.3e-4 off,
relative, on Intel AVX-512 and on this AMD machine; ours is within a few ulp of the exact value).

Tolerances, ``|ours - torch64| <= tol``, the sum of both sides' error bounds:

* torch's float64 error: ``1e-12*|f| + 1e-14*max(1, |x|)``, a few float64 ulp of the result plus a few
  of the terms a formula cancels (torch's own ``1 + erf(x/sqrt(2))`` in gelu is ~eps*|x| off for x < 0;
  ``x - tanh(x)``), which are of size ~max(1, |x|). For float64 results this is the whole bound (both
  sides float64). One documented exception: torch's float64 hardsigmoid derivative is only
  float32-accurate (see the test).
* ours in float32: ``8 eps32 * (|f| + |x f'(x)| + |c|)`` (plus a few smallest normals for tails that
  underflow): a few float32 ulp of the result, plus the conditioning term ``x f'(x)``, the change that
  rounding x (or an intermediate of its size) by one ulp causes, plus, for the few formulas that
  cancel terms larger than their result, the size ``c`` of those terms (``CANCELLED``). For derivatives
  f' and f'' take the places of f and f'; for losses the terms are ``|L| + |p dL/dp| + |t dL/dt|``.
  f' and f'' come from torch's float64 autograd.

Not compared: torch's ``softplus`` returns x itself for x > 20 (its ``threshold``), which differs
from log(1+e^x) by e^-x, i.e. by more than a float64 ulp for 20 < x < 37; the grid has no points
there (at 20 torch still uses the formula, at 60 the difference is below an ulp). The library is
checked against the exact function (mpmath) in test_named_formulas.py.
"""

import functools

import numpy as np
import pytest

from symjit_numba.formulas import registry

from .conftest import build, run_activation, run_loss

torch = pytest.importorskip("torch")  # the light test install has no torch: this module skips there
F = torch.nn.functional

LAYOUTS = ("node_major", "batch_major")


def _identity(x):
    return x * 1


#: name -> torch(x, **constants), constants named as in the library's configs.
TORCH_ACTIVATIONS = {
    "linear": _identity,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda x, alpha: F.leaky_relu(x, negative_slope=alpha),
    "elu": lambda x, alpha: F.elu(x, alpha=alpha),
    "selu": lambda x, alpha, scale: F.selu(x),
    "celu": lambda x, alpha: F.celu(x, alpha=alpha),
    "sigmoid": torch.sigmoid,
    "logsigmoid": F.logsigmoid,
    "hardsigmoid": F.hardsigmoid,
    "tanh": torch.tanh,
    "hardtanh": lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val),
    "tanhshrink": F.tanhshrink,
    "swish": lambda x, beta: x * torch.sigmoid(beta * x),
    "silu": F.silu,
    "hardswish": F.hardswish,
    "softplus": F.softplus,
    "mish": F.mish,
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "softsign": F.softsign,
    "gaussian": lambda x: torch.exp(-x * x),
    "sine": torch.sin,
}

BUILTIN_ACTIVATIONS = sorted(name for name, *_ in registry._BUILTIN_ACTIVATIONS)
#: Every built-in at its defaults, then non-default constants. The formulas (and their order) are
#: those of test_named_formulas.py's layer, so the two modules share compiled kernels.
LAYER = [(name, {}) for name in BUILTIN_ACTIVATIONS] + [
    ("leaky_relu", {"alpha": 0.2}),
    ("swish", {"beta": 1.5}),
    ("elu", {"alpha": 0.7}),
    ("celu", {"alpha": 0.5}),
    ("hardtanh", {"min_val": -2.0, "max_val": 3.0}),
]

# 0, the kinks (+-1 hardtanh, +-3 hardsigmoid/hardswish, 6 relu6, -2/3 hardtanh variant), +-20, +-60.
_SPECIAL = [0.0, 1e-3, -1e-3, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0, 6.0, -6.0,
            10.0, -10.0, 20.0, -20.0, 60.0, -60.0]
CPU_POINTS = np.array(_SPECIAL + list(np.clip(np.random.default_rng(3).normal(0, 4, 40), -15, 15)))
GPU_POINTS = np.array([0.0, 1e-3, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 6.0, 20.0, -20.0, 60.0, -60.0])


def points(method):
    return GPU_POINTS if method == "GPU_CUDA" else CPU_POINTS


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _swish_terms(x, beta=1.0):
    """swish' = s + beta*x*s*(1 - s), s = sigmoid(beta*x): 1 - s cancels terms of size 1."""
    return np.abs(beta * x) * _sigmoid(beta * x)


#: Formulas that the library evaluates by cancelling terms larger than the result: name ->
#: (size of the terms cancelled in f, in f'), as functions of (x, constants). A float32 result is
#: allowed a few ulp of those terms too (CPU_PYTHON, CPU_JIT and GPU_CUDA compute the same formulas).
CANCELLED = {
    "tanhshrink": (lambda x, c: np.abs(x), None),                        # x - tanh(x) ~ x**3/3
    "tanh": (None, lambda x, c: np.ones_like(x)),                        # 1 - tanh(x)**2
    "sigmoid": (None, lambda x, c: _sigmoid(x)),                         # s*(1 - s)
    "swish": (None, lambda x, c: _swish_terms(x, c["beta"])),
    "silu": (None, lambda x, c: _swish_terms(x)),
    "softsign": (None, lambda x, c: 1 / (1 + np.abs(x))),                # 1/(1+|x|) - |x|/(1+|x|)**2
}

#: float32 ulps (eps32 of each term's size) allowed on the float32 bound. At most ~3 are used on the
#: machines measured (mish'); every formula passes with 4. The rest is room for other CPUs' libm.
ULPS = 8


def cancelled_terms(xs, dtype, which):
    """(nodes x points) sizes of the terms each node's f (which=0) or f' (which=1) cancels, else 0."""
    rows = []
    for name, given in LAYER:
        size = CANCELLED.get(name, (None, None))[which]
        constants = {k: float(dtype.type(v)) for k, v in {**registry.lookup(name).defaults, **given}.items()}
        rows.append(np.zeros_like(xs) if size is None else size(xs, constants))
    return np.array(rows)


def reference_error(ref, scale):
    """torch's float64 error: a few float64 ulp of the result and of the input's size (see the docstring)."""
    return 1e-12 * np.abs(ref) + 1e-14 * np.maximum(1.0, np.abs(scale))


def float32_error(terms):
    """Our float32 error: ULPS float32 ulp of the terms' sum, plus a few smallest normals (tails)."""
    info = np.finfo(np.float32)
    return ULPS * float(info.eps) * sum(np.abs(t) for t in terms) + 64 * float(info.tiny)


def assert_agree(label, got, want, tol, rows_labels, names):
    """|ours - torch64| <= tol, element-wise over (nodes, points)."""
    got = got.astype(np.float64)
    bad = ~(np.abs(got - want) <= tol)
    rows = [f"  {names[j]} at {rows_labels[k]}: ours {got[j, k]!r}, torch64 {want[j, k]!r}, "
            f"|diff| {abs(got[j, k] - want[j, k]):.3g} > tol {tol[j, k]:.3g}"
            for j, k in zip(*np.nonzero(bad), strict=True)][:25]
    assert not bad.any(), f"{label}: {bad.sum()} elements disagree with float64 torch\n" + "\n".join(rows)


@functools.cache
def layer(method, layout):
    return build(LAYER, method, "activation", layout)


def _derivatives(y, x):
    """d(sum y)/dx, keeping the graph for a second derivative; zeros where torch has no dependence."""
    (dy,) = torch.autograd.grad(y.sum(), x, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if dy is None else dy


def torch_layer(xs, dtype):
    """float64 (f, f', f'') of every node at every point (shape nodes x points), from float64 torch.

    ``xs`` and the constants are given in ``dtype`` and evaluated exactly in float64.
    """
    values, slopes, curvatures = [], [], []
    for name, given in LAYER:
        defaults = dict(registry.lookup(name).defaults)
        constants = {k: float(dtype.type(v)) for k, v in {**defaults, **given}.items()}
        x = torch.tensor(xs.astype(np.float64), dtype=torch.float64, requires_grad=True)
        y = TORCH_ACTIVATIONS[name](x, **constants)
        dy = _derivatives(y, x)
        # torch has no second derivative of hardsigmoid: it is piecewise linear, f'' = 0 between kinks
        piecewise_linear = name == "hardsigmoid" or not dy.requires_grad
        d2y = torch.zeros_like(x) if piecewise_linear else _derivatives(dy, x)
        values.append(y.detach().numpy(force=True))
        slopes.append(dy.detach().numpy(force=True))
        curvatures.append(d2y.detach().numpy(force=True))
    return np.array(values), np.array(slopes), np.array(curvatures)


def test_torch_covers_every_builtin_activation():
    assert set(TORCH_ACTIVATIONS) == set(BUILTIN_ACTIVATIONS)


def test_selu_constants_are_torchs():
    x = torch.tensor([-1.0], dtype=torch.float64)
    defaults = registry.lookup("selu").defaults
    expected = defaults["scale"] * defaults["alpha"] * np.expm1(-1.0)
    assert F.selu(x).item() == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_activations_agree_with_torch(method, dtype, layout):
    xs = points(method).astype(dtype)
    z = np.tile(xs, (len(LAYER), 1))
    compiler = layer(method, layout)
    if layout == "batch_major":
        a, d = (m.T for m in run_activation(compiler, np.ascontiguousarray(z.T)))
    else:
        a, d = run_activation(compiler, z)
    value, slope, curvature = torch_layer(xs, dtype)
    x = xs.astype(np.float64)
    names = [f"{n}{c or ''}" for n, c in LAYER]
    labels = [repr(v) for v in xs.tolist()]
    tol_a, tol_d = reference_error(value, x), reference_error(slope, x)
    if dtype == np.float64:
        # torch's CPU hardsigmoid backward multiplies by the float literal 1.0f/6.0f in every dtype,
        # so its float64 derivative is 0.1666666716337204 (float32-accurate); ours is 1/6 to the ulp.
        j = LAYER.index(("hardsigmoid", {}))
        tol_d[j] += 1e-7 * np.abs(slope[j])
        inside = np.abs(xs) < 3
        np.testing.assert_array_equal(d[j, inside], 1 / 6)
    else:
        tol_a += float32_error([value, x * slope, cancelled_terms(x, dtype, 0)])
        tol_d += float32_error([slope, x * curvature, cancelled_terms(x, dtype, 1)])
    assert_agree("forward", a, value, tol_a, labels, names)
    assert_agree("derivative", d, slope, tol_d, labels, names)


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------

LOSSES = {
    "mse": ({}, lambda p, t: F.mse_loss(p, t, reduction="none")),
    "mae": ({}, lambda p, t: F.l1_loss(p, t, reduction="none")),
    "huber": ({}, lambda p, t: F.huber_loss(p, t, reduction="none", delta=1.0)),
    "huber_half": ({"delta": 0.5}, lambda p, t: F.huber_loss(p, t, reduction="none", delta=0.5)),
    "bce_with_logits": ({}, lambda p, t: F.binary_cross_entropy_with_logits(p, t, reduction="none")),
    "bce": ({}, lambda p, t: F.binary_cross_entropy(p, t, reduction="none")),
}


def loss_pairs(name, method):
    if name == "bce":  # probabilities away from 0 and 1, where torch clamps log() at -100
        probs = [0.02, 0.1, 0.25, 0.5, 0.6, 0.9, 0.98]
        pairs = [(p, t) for p in probs for t in (0.0, 1.0, 0.25, 0.5)]
        rng = np.random.default_rng(5)
        pairs += list(zip(rng.uniform(0.02, 0.98, 20), rng.uniform(0, 1, 20), strict=True))
    else:
        preds = [0.0, 1e-3, -1e-3, 0.5, -0.5, 1.0, -1.0, 1.5, 2.0, -2.0, 20.0, -20.0, 60.0, -60.0]
        trues = (0.0, 1.0, 0.3) if name == "bce_with_logits" else (0.0, 1.0, 0.3, -2.5)
        pairs = [(p, t) for p in preds for t in trues]
        pairs += [(1.5, 1.0), (0.5, 1.0), (2.0, 1.0), (0.0, 1.0)]  # |d| = delta for both huber deltas
        rng = np.random.default_rng(6)
        pairs += list(zip(rng.normal(0, 3, 20), rng.uniform(0, 1, 20), strict=True))
    if method == "GPU_CUDA":
        pairs = pairs[::2]
    p, t = np.array(pairs).T
    return p, t


@functools.cache
def loss_compiler(method, name):
    config = ("huber", LOSSES[name][0]) if name == "huber_half" else (name, LOSSES[name][0])
    return build([config], method, "loss")


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_agree_with_torch(method, dtype, name):
    p64, t64 = loss_pairs(name, method)
    p, t = p64.astype(dtype), t64.astype(dtype)
    res, grad = run_loss(loss_compiler(method, name), p, t)

    tp = torch.tensor(p.astype(np.float64), requires_grad=True)
    tt = torch.tensor(t.astype(np.float64), requires_grad=True)
    value = LOSSES[name][1](tp, tt)
    (slope, slope_t) = torch.autograd.grad(value.sum(), (tp, tt), create_graph=True)
    curvature, curvature_t = (torch.zeros_like(tp) if c is None else c for c in
                              torch.autograd.grad(slope.sum(), (tp, tt), allow_unused=True))
    value, slope, slope_t, curvature, curvature_t = (
        v.detach().numpy(force=True)[None] for v in (value, slope, slope_t, curvature, curvature_t))
    labels = [f"({a!r}, {b!r})" for a, b in zip(p.tolist(), t.tolist(), strict=True)]
    scale = np.maximum(np.abs(p), np.abs(t)).astype(np.float64)
    p, t = p.astype(np.float64), t.astype(np.float64)
    tol_value, tol_slope = reference_error(value, scale), reference_error(slope, scale)
    if dtype == np.float32:
        tol_value += float32_error([value, p * slope, t * slope_t])
        tol_slope += float32_error([slope, p * curvature, t * curvature_t])
    assert_agree(f"{name} loss", res[None], value, tol_value, labels, [name])
    assert_agree(f"{name} gradient", grad[None], slope, tol_slope, labels, [name])
