"""The named formulas agree with ``torch.nn.functional`` and torch autograd, element by element.

What is checked, and why: users swap torch activations and losses for named formulas and expect
the same numbers, including torch's derivative conventions at kinks (``relu'(0) = 0``,
``leaky_relu'(0) = alpha``, ``elu'(0) = alpha``, ``hardtanh'(+-1) = 0``, ``l1_loss'(0) = 0``,
``huber_loss'(+-delta) = +-delta``...). So each activation's value is compared with torch's and its
derivative with ``torch.autograd.grad`` of the sum (which is f'(x) element-wise); each loss (with
``reduction='none'``) and its gradient with respect to the input likewise. The inputs include 0, the
kinks, +-20 and +-60 (saturated sigmoid/tanh, underflowing tails), in float32 and float64, for every
backend and, for activations, both layouts. Formulas torch lacks (swish with beta, gaussian, sine)
are written in torch.

Tolerances: both sides round, so the bound is the sum of both errors, a few ulp of the result plus a
few ulp of the terms a formula cancels (``x - tanh(x)``, ``sigmoid(x)*(1 + x*(1 - sigmoid(x)))``,
torch's own ``1 + erf(x/sqrt(2))`` in gelu), which are of size ~max(1, |x|):
``|ours - torch| <= rtol*|torch| + atol*max(1, |x|)`` with float64 ``rtol=1e-12, atol=1e-14`` and
float32 ``rtol=2e-6`` (~17 ulp), ``atol=1e-7`` (~1 ulp of 1). One documented exception: torch's
float64 hardsigmoid derivative is only float32-accurate (see the test).

Not compared: torch's ``softplus`` returns x itself for x > 20 (its ``threshold``), which differs
from log(1+e^x) by e^-x, i.e. by more than a float64 ulp for 20 < x < 37; the grid has no points
there (at 20 torch still uses the formula, at 60 the difference is below an ulp). The library is
checked against the exact function in test_named_formulas.py.
"""

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual spelling

from symjit_numba.formulas import registry

from .conftest import build, run_activation, run_loss

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


def tolerances(dtype):
    return (1e-12, 1e-14) if dtype == np.float64 else (2e-6, 1e-7)


def assert_agree(label, got, want, xs, names, dtype, scale=None, rtol=None):
    """|ours - torch| <= rtol*|torch| + atol*max(1, |x|), element-wise over (nodes, points).

    The absolute term grows with |x| because torch's float32 ``gelu`` is ``x/2*(1 + erf(x/sqrt(2)))``,
    which cancels for x < 0: its error there is ~eps*|x| (at x = -3 torch is off by 1.7e-7, ~370 ulp
    of the result, where the library's erfc form is within 4 ulp of the exact value).
    """
    default_rtol, atol = tolerances(dtype)
    rtol = np.full((len(names), 1), default_rtol) if rtol is None else rtol
    scale = np.maximum(1.0, np.abs(np.asarray(xs, dtype=np.float64))) if scale is None else scale
    got, want = got.astype(np.float64), want.astype(np.float64)
    bad = ~(np.abs(got - want) <= atol * scale + rtol * np.abs(want))
    labels = [str(x) for x in xs]
    rows = [f"  {names[j]} at {labels[k]}: ours {got[j, k]!r}, torch {want[j, k]!r}"
            for j, k in zip(*np.nonzero(bad), strict=True)][:25]
    assert not bad.any(), f"{label}: {bad.sum()} elements disagree with torch\n" + "\n".join(rows)


@functools.cache
def layer(method, layout):
    return build(LAYER, method, "activation", layout)


def torch_layer(xs, dtype):
    """(values, derivatives) of every node at every point, from torch (shape nodes x points)."""
    values, slopes = [], []
    for name, given in LAYER:
        defaults = dict(registry.lookup(name).defaults)
        constants = {k: float(dtype.type(v)) for k, v in {**defaults, **given}.items()}
        x = torch.tensor(xs, dtype=torch.float64 if dtype == np.float64 else torch.float32, requires_grad=True)
        y = TORCH_ACTIVATIONS[name](x, **constants)
        (dy,) = torch.autograd.grad(y.sum(), x)
        values.append(y.detach().numpy())
        slopes.append(dy.numpy())
    return np.array(values), np.array(slopes)


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
    want_a, want_d = torch_layer(xs, dtype)
    names = [f"{n}{c or ''}" for n, c in LAYER]
    assert_agree("forward", a, want_a, xs, names, dtype)
    rtol = np.full((len(LAYER), 1), tolerances(dtype)[0])
    if dtype == np.float64:
        # torch's CPU hardsigmoid backward multiplies by the float literal 1.0f/6.0f in every dtype,
        # so its float64 derivative is 0.1666666716337204 (float32-accurate); ours is 1/6 to the ulp.
        j = LAYER.index(("hardsigmoid", {}))
        rtol[j] = 1e-7
        inside = np.abs(xs) < 3
        np.testing.assert_array_equal(d[j, inside], 1 / 6)
    assert_agree("derivative", d, want_d, xs, names, dtype, rtol=rtol)


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

    tp = torch.tensor(p, requires_grad=True)
    value = LOSSES[name][1](tp, torch.tensor(t))
    (slope,) = torch.autograd.grad(value.sum(), tp)
    labels = [f"({a!r}, {b!r})" for a, b in zip(p.tolist(), t.tolist(), strict=True)]
    scale = np.maximum(1.0, np.maximum(np.abs(p), np.abs(t)).astype(np.float64))
    assert_agree(f"{name} loss", res[None], value.detach().numpy()[None], labels, [name], dtype, scale=scale)
    assert_agree(f"{name} gradient", grad[None], slope.numpy()[None], labels, [name], dtype, scale=scale)
