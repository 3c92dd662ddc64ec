"""A heterogeneous layer of dozens of formulas, with per-node constants, on every backend and layout.

Each formula comes with an independent reference written directly in mpmath (50 digits); the
derivative reference is mpmath's numerical differentiation of that reference. Several nodes share
a formula with different constants, so per-node constant reading (``params[offset_list[j] + i]``)
is checked too.
"""

import mpmath as mp
import numpy as np
import pytest

from .conftest import build, run_activation

mp.mp.dps = 50

# formula, constants, mpmath reference f(x, **constants)
FORMULAS = [
    ("exp(-a*x**2)", {"a": 0.7}, lambda x, a: mp.exp(-a * x**2)),
    ("log(1 + x**2)", {}, lambda x: mp.log(1 + x**2)),
    ("log1p(x**2)*c", {"c": 1.5}, lambda x, c: mp.log(1 + x**2) * c),
    ("expm1(x/3)", {}, lambda x: mp.expm1(x / 3)),
    ("sqrt(1 + x**2)", {}, lambda x: mp.sqrt(1 + x**2)),
    ("Abs(x - b)", {"b": 0.25}, lambda x, b: abs(x - b)),
    ("sign(x - 0.1)*x**2", {}, lambda x: mp.sign(x - mp.mpf("0.1")) * x**2),
    ("Max(x, a*x)", {"a": 0.3}, lambda x, a: max(x, a * x)),
    ("Min(x, 1) + max(x, -1, 2*x)", {}, lambda x: min(x, 1) + max(x, -1, 2 * x)),
    ("Piecewise((a*x**3, x < -0.5), (x, x < 1), (log(x) + 1, True))", {"a": 2.0},
     lambda x, a: a * x**3 if x < -0.5 else (x if x < 1 else mp.log(x) + 1)),
    ("Heaviside(x)*x**2", {}, lambda x: (x > 0) * x**2),
    ("sin(w*x)", {"w": 1.3}, lambda x, w: mp.sin(w * x)),
    ("cos(x)**2", {}, lambda x: mp.cos(x) ** 2),
    ("tan(0.3*x)", {}, lambda x: mp.tan(0.3 * x)),
    ("asin(tanh(x))", {}, lambda x: mp.asin(mp.tanh(x))),
    ("acos(tanh(x)/2)", {}, lambda x: mp.acos(mp.tanh(x) / 2)),
    ("atan(x)*k", {"k": -2.0}, lambda x, k: mp.atan(x) * k),
    ("atan2(x, 2)", {}, lambda x: mp.atan2(x, 2)),
    ("sinh(x/3)", {}, lambda x: mp.sinh(x / 3)),
    ("cosh(x/4)", {}, lambda x: mp.cosh(x / 4)),
    ("tanh(b*x)*a", {"a": 1.7, "b": 0.66}, lambda x, a, b: mp.tanh(b * x) * a),
    ("asinh(x)", {}, lambda x: mp.asinh(x)),
    ("acosh(2 + x**2)", {}, lambda x: mp.acosh(2 + x**2)),
    ("atanh(tanh(x)/2)", {}, lambda x: mp.atanh(mp.tanh(x) / 2)),
    ("erf(x)", {}, lambda x: mp.erf(x)),
    ("erfc(x)", {}, lambda x: mp.erfc(x)),
    ("sinc(x)", {}, lambda x: mp.sinc(x)),
    ("gamma(2 + sigmoid(x))", {}, lambda x: mp.gamma(2 + 1 / (1 + mp.exp(-x)))),
    ("loggamma(1.5 + x**2)", {}, lambda x: mp.loggamma(1.5 + x**2)),
    ("sigmoid(x)*softplus(x)", {}, lambda x: mp.log(1 + mp.exp(x)) / (1 + mp.exp(-x))),
    ("Phi(x)", {}, lambda x: mp.ncdf(x)),
    ("x**3/6 - x + pi/4 + e + tau - phi", {},
     lambda x: x**3 / 6 - x + mp.pi / 4 + mp.e + 2 * mp.pi - (1 + mp.sqrt(5)) / 2),
    ("x^2 + 2^x", {}, lambda x: x**2 + 2**x),
    ("1/(1 + exp(-s*x))", {"s": 3.0}, lambda x, s: 1 / (1 + mp.exp(-s * x))),
    ("z*tanh(softplus(z))", {}, lambda x: x * mp.tanh(mp.log(1 + mp.exp(x)))),
    ("leaky_relu", {"alpha": 0.05}, lambda x, alpha: x if x > 0 else alpha * x),
    ("elu", {"alpha": 0.7}, lambda x, alpha: x if x > 0 else alpha * (mp.exp(x) - 1)),
    ("gelu", {}, lambda x: x * mp.ncdf(x)),
]
# The same formulas again with other constants: per-node constants must be read per node.
SECOND = [(f, {k: v * 0.5 + 0.1 for k, v in c.items()}, r) for f, c, r in FORMULAS if c]
NODES = FORMULAS + SECOND
# Away from kinks (0.1, 0.25, -0.5, 1, ...) by more than mpmath.diff's step.
POINTS = np.array([-3.7, -2.2, -1.3, -0.75, -0.3, -0.02, 0.04, 0.17, 0.6, 0.9, 1.6, 2.9, 4.1])


@pytest.fixture(scope="module")
def reference():
    values, slopes = [], []
    for _, constants, ref in NODES:
        f = (lambda c, r: (lambda x: r(x, **c)))(constants, ref)
        values.append([float(f(mp.mpf(float(x)))) for x in POINTS])
        slopes.append([float(mp.diff(f, mp.mpf(float(x)))) for x in POINTS])
    return np.array(values), np.array(slopes)


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_dozens_of_formulas_in_one_layer(method, dtype, layout, reference):
    configs = [(f, c) for f, c, _ in NODES]
    layer = build(configs, method, layout=layout)
    assert len(layer.plan.formulas) == len(FORMULAS)  # same formula, other constants: same id
    z = np.tile(POINTS, (len(NODES), 1)).astype(dtype)
    err = np.linspace(0.5, 1.5, z.size).reshape(z.shape).astype(dtype)
    if layout == "batch_major":
        a, delta = (m.T for m in run_activation(layer, np.ascontiguousarray(z.T), np.ascontiguousarray(err.T)))
    else:
        a, delta = run_activation(layer, z, err)
    values, slopes = reference
    # float32: inputs are exact in float32 only up to rounding, and the formulas amplify input
    # rounding by |x f'(x)/f(x)|; 2e-5 relative plus a small absolute term covers that.
    rtol, atol = (2e-5, 2e-6) if dtype == np.float32 else (1e-12, 1e-13)
    np.testing.assert_allclose(a, values, rtol=rtol, atol=atol)
    np.testing.assert_allclose(delta, err.astype(np.float64) * slopes, rtol=rtol, atol=atol)


@pytest.mark.parametrize("in_place", [False, True], ids=["separate", "a_is_z"])
@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_forward_derivative_kernel_in_one_pass(method, dtype, layout, in_place, reference):
    """a = f(z) and d = f'(z) from one call, also when a overwrites z (each element is read first)."""
    layer = build([(f, c) for f, c, _ in NODES], method, layout=layout)
    z = np.tile(POINTS, (len(NODES), 1)).astype(dtype)
    if layout == "batch_major":
        z = np.ascontiguousarray(z.T)
    params, offsets = layer.make_params(dtype)
    n, b = z.shape if layout == "node_major" else z.shape[::-1]
    a = z if in_place else np.full_like(z, 12345.0)
    d = np.full_like(z, 12345.0)
    layer.forward_derivative_kernel(z, a, d, params, offsets, n, b)
    if layout == "batch_major":
        a, d = a.T, d.T
    values, slopes = reference
    rtol, atol = (2e-5, 2e-6) if dtype == np.float32 else (1e-12, 1e-13)
    np.testing.assert_allclose(a, values, rtol=rtol, atol=atol)
    np.testing.assert_allclose(d, slopes, rtol=rtol, atol=atol)


def test_loss_forward_derivative_kernel_in_one_pass(method, dtype):
    rng = np.random.default_rng(7)
    y_pred, y_true = (rng.normal(size=(37, 11)).astype(dtype) for _ in range(2))
    loss = build([("huber", {"delta": 0.5})], method, mode="loss")
    params, _ = loss.make_params(dtype)
    res, grad = np.empty_like(y_pred), np.empty_like(y_pred)
    loss.forward_derivative_kernel(y_pred, y_true, res, grad, params)
    r = y_pred.astype(np.float64) - y_true
    expected_res = np.where(abs(r) < 0.5, r**2 / 2, 0.5 * (abs(r) - 0.25))
    expected_grad = np.where(abs(r) < 0.5, r, 0.5 * np.sign(r))
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(res, expected_res, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(grad, expected_grad, rtol=rtol, atol=rtol)
