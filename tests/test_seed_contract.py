"""The seed library's own client code, re-created, runs unchanged on every backend.

The seed's layer and loss classes (HeteroSymNN) are our first users (``DESIGN.md``, "How the seed's
own code calls the compiler"). They construct the compiler positionally, build ``params`` themselves
from the config dicts (float32 by default; node j's constants sorted by name from ``offsets[j]``; a
layer without constants gets ``[0.0]`` and zero offsets), write formulas in SymPy's spelling or as a
bare function name, call the loss with and without ``params``, and switch backends with
``_change_method``. Everything here is compared with float64 numpy written independently of the
library.
"""

import numpy as np
import pytest

from symjit_numba import SymbolicJITCompiler

from .conftest import BACKENDS

# -- the seed's client code ----------------------------------------------------------------------------


def seed_params(configs, dtype=np.float32):
    """params and offsets exactly as the seed's layer builds them from its config dicts."""
    values, offsets = [], []
    for _, constants in configs:
        offsets.append(len(values))
        values.extend(constants[name] for name in sorted(constants))
    if not values:
        return np.array([0.0], dtype=dtype), np.array([0] * len(configs))
    return np.array(values, dtype=dtype), np.array(offsets)


class SeedLayer:
    """The seed's dense layer: z = W @ x + b, a = f(z), node-major (nodes x batch)."""

    def __init__(self, n_in, configs, method, gpu_id, rng, dtype):
        self.compiler = SymbolicJITCompiler(configs, method, gpu_id)  # positional, as the seed does
        self.n = len(configs)
        self.params, self.offsets = seed_params(configs, dtype)
        self.W = (rng.standard_normal((self.n, n_in)) / np.sqrt(n_in)).astype(dtype)
        self.b = np.zeros((self.n, 1), dtype=dtype)

    def forward(self, x):
        self.x = x
        self.z = np.ascontiguousarray(self.W @ x + self.b)
        a = np.empty_like(self.z)
        self.compiler.forward_kernel(self.z, a, self.params, self.offsets, self.n, x.shape[1])
        return a

    def backward(self, err, lr):
        delta = np.empty_like(self.z)
        self.compiler.backward_kernel(self.z, np.ascontiguousarray(err), delta, self.params, self.offsets,
                                      self.n, self.z.shape[1])
        err_in = self.W.T @ delta
        self.W -= lr * delta @ self.x.T
        self.b -= lr * delta.sum(axis=1, keepdims=True)
        return err_in


HUBER = ("Piecewise((0.5*(y_pred-y_true)**2, Abs(y_pred-y_true) <= delta), "
         "(delta*(Abs(y_pred-y_true) - 0.5*delta), True))")
#: The seed's example layer (bare "cos" included), and one with constants in SymPy's spelling.
LAYER1 = [("relu", {}), ("sigmoid", {}), ("cos", {}), ("num / (1 + exp(-num))", {}), ("num**2", {})]
LAYER2 = [("Max(0, num)", {}), ("a*tanh(b*num)", {"a": 1.5, "b": 0.5}),
          ("Piecewise((alpha*num, num < 0), (num, True))", {"alpha": 0.1}), ("leaky_relu", {"alpha": 0.2})]


def _train(method, dtype, steps=6, batch=16):
    """Train the seed's 2-layer net on a fixed regression task; the loss of each step."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, batch)).astype(dtype)
    y = np.sin(x.sum(axis=0, keepdims=True)).repeat(4, axis=0).astype(dtype)
    layers = [SeedLayer(3, LAYER1, method, 0, rng, dtype), SeedLayer(5, LAYER2, method, 0, rng, dtype)]
    loss = SymbolicJITCompiler([(HUBER, {"delta": 1.0})], method, 0, "loss")
    loss_params = np.array([1.0], dtype=dtype)
    history = []
    for step in range(steps):
        out = x
        for layer in layers:
            out = layer.forward(out)
        res, grad = np.empty_like(out), np.empty_like(out)
        if step % 2:
            loss.forward_kernel(out, y, res)  # the seed's later call form, without params
        else:
            loss.forward_kernel(out, y, res, loss_params)
        loss.backward_kernel(out, y, grad, loss_params)
        history.append(float(res.mean(dtype=np.float64)))
        err = grad / grad.size
        for layer in reversed(layers):
            err = layer.backward(err, 0.5)
    return np.array(history)


# -- an independent float64 reference of the same network ----------------------------------------------

def _f_and_df(formula_index, layer, z):
    """Hand-written float64 activations of LAYER1/LAYER2 and their derivatives."""
    if layer == 1:
        s = 1 / (1 + np.exp(-z))
        return [(np.maximum(z, 0), (z > 0) * 1.0), (s, s * (1 - s)), (np.cos(z), -np.sin(z)),
                (z * s, s + z * s * (1 - s)), (z**2, 2 * z)][formula_index]
    t = np.tanh(0.5 * z)
    return [(np.maximum(z, 0), np.where(z > 0, 1.0, np.where(z == 0, 0.5, 0.0))),
            (1.5 * t, 0.75 * (1 - t**2)), (np.where(z < 0, 0.1 * z, z), np.where(z < 0, 0.1, 1.0)),
            (np.where(z <= 0, 0.2 * z, z), np.where(z <= 0, 0.2, 1.0))][formula_index]


def _train_reference(steps=6, batch=16):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, batch))
    y = np.sin(x.sum(axis=0, keepdims=True)).repeat(4, axis=0)
    weights = []
    for n_in, n in ((3, 5), (5, 4)):
        weights.append([rng.standard_normal((n, n_in)) / np.sqrt(n_in), np.zeros((n, 1))])
    history = []
    for _ in range(steps):
        inputs, zs, out = [], [], x
        for k, (W, b) in enumerate(weights):
            inputs.append(out)
            z = W @ out + b
            zs.append(z)
            out = np.stack([_f_and_df(j, k + 1, z[j])[0] for j in range(z.shape[0])])
        r = out - y
        history.append(np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5).mean())
        err = np.clip(r, -1, 1) / r.size
        for k in (1, 0):
            z, (W, b) = zs[k], weights[k]
            delta = err * np.stack([_f_and_df(j, k + 1, z[j])[1] for j in range(z.shape[0])])
            err = W.T @ delta
            W -= 0.5 * delta @ inputs[k].T
            b -= 0.5 * delta.sum(axis=1, keepdims=True)
    return np.array(history)


@pytest.mark.parametrize("method", BACKENDS)
def test_seed_network_trains_as_the_float64_reference(method):
    """float64: every backend's training run is the reference's to rounding; float32 close to it."""
    reference = _train_reference()
    np.testing.assert_allclose(_train(method, np.float64), reference, rtol=1e-10, atol=0)
    np.testing.assert_allclose(_train(method, np.float32), reference, rtol=2e-4, atol=0)


def test_change_method_switches_a_live_compiler():
    configs = [("relu", {}), ("cos", {}), ("a*num", {"a": 2.0})]
    compiler = SymbolicJITCompiler(configs, "CPU_PYTHON", 0)
    params, offsets = seed_params(configs, np.float64)
    z = np.linspace(-2, 2, 12).reshape(3, 4)
    want = np.stack([np.maximum(z[0], 0), np.cos(z[1]), 2 * z[2]])
    for method in ("CPU_JIT", "GPU_CUDA", "CPU_PYTHON"):
        assert compiler._change_method(method, 0) == method  # the seed's spelling
        assert compiler.calculation_method == method
        a = np.empty_like(z)
        compiler.forward_kernel(z, a, params, offsets, 3, 4)
        np.testing.assert_allclose(a, want, rtol=1e-14, atol=1e-15)
    assert compiler.change_method("CPU_JIT") == "CPU_JIT"
    with pytest.raises(ValueError, match="calculation_method"):
        compiler.change_method("CPU_FAST")
    assert compiler.calculation_method == "CPU_JIT"  # a refused switch changes nothing


# -- params hold exactly the config's constants ---------------------------------------------------------

def _selu(x):
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))), \
        scale * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))


DEFAULTS_LAYER = [("selu", {}), ("leaky_relu", {"alpha": 0.2}), ("elu", {}), ("swish", {})]
DEFAULTS_REFERENCE = [
    _selu,
    lambda x: (np.where(x > 0, x, 0.2 * x), np.where(x > 0, 1.0, 0.2)),
    lambda x: (np.where(x > 0, x, np.expm1(np.minimum(x, 0))), np.where(x > 0, 1.0, np.exp(np.minimum(x, 0)))),
    lambda x: (x / (1 + np.exp(-x)), 1 / (1 + np.exp(-x)) + x * np.exp(-x) / (1 + np.exp(-x)) ** 2),
]


@pytest.mark.parametrize("method", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_omitted_defaults_are_fixed_and_params_hold_only_listed_constants(method, dtype):
    compiler = SymbolicJITCompiler(DEFAULTS_LAYER, method, 0)
    assert compiler.calculation_method == method
    params, offsets = seed_params(DEFAULTS_LAYER, dtype)
    assert params.tolist() == [np.float32(0.2) if dtype == np.float32 else 0.2] and offsets.tolist() == [0, 0, 1, 1]
    ours, our_offsets = compiler.make_params(dtype)
    np.testing.assert_array_equal(ours, params)
    np.testing.assert_array_equal(our_offsets, offsets)
    x = np.linspace(-4, 4, 41)
    z = np.tile(x, (4, 1)).astype(dtype)
    a, delta = np.empty_like(z), np.empty_like(z)
    for offsets_dtype in (np.int64, np.int32):
        compiler.forward_kernel(z, a, params, offsets.astype(offsets_dtype), 4, 41)
        compiler.backward_kernel(z, np.ones_like(z), delta, params, offsets.astype(offsets_dtype), 4, 41)
        rtol, atol = (2e-6, 1e-7) if dtype == np.float32 else (1e-13, 1e-15)
        for j, reference in enumerate(DEFAULTS_REFERENCE):
            f, df = reference(z[j].astype(np.float64))
            np.testing.assert_allclose(a[j], f, rtol=rtol, atol=atol, err_msg=DEFAULTS_LAYER[j][0])
            np.testing.assert_allclose(delta[j], df, rtol=rtol, atol=atol, err_msg=DEFAULTS_LAYER[j][0])


@pytest.mark.parametrize("method", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_huber_with_seed_params_uses_its_default_delta(method, dtype):
    """("huber", {}) with the seed's params = [0.0]: delta is the default 1.0, not params[0]."""
    loss = SymbolicJITCompiler([("huber", {})], method, 0, "loss")
    assert loss.calculation_method == method
    r = np.array([-3.0, -1.0, -0.5, 0.0, 0.25, 0.9, 1.5, 4.0])
    y_pred, y_true = r.astype(dtype), np.zeros(8, dtype=dtype)
    want = np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5)
    want_grad = np.clip(r, -1, 1)
    for params in (np.array([0.0], dtype=dtype), None):
        res, grad = np.empty_like(y_pred), np.empty_like(y_pred)
        if params is None:
            loss.forward_kernel(y_pred, y_true, res)
            loss.backward_kernel(y_pred, y_true, grad)
        else:
            loss.forward_kernel(y_pred, y_true, res, params)
            loss.backward_kernel(y_pred, y_true, grad, params)
        np.testing.assert_allclose(res, want, rtol=1e-6, atol=0)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-6, atol=0)


def test_loss_without_params_uses_the_config_values():
    loss = SymbolicJITCompiler([("huber", {"delta": 0.5})], "CPU_JIT", 0, "loss")
    y_pred, y_true = np.array([0.1, 2.0]), np.zeros(2)
    res = np.empty(2)
    loss.forward_kernel(y_pred, y_true, res)
    np.testing.assert_allclose(res, [0.005, 0.5 * (2.0 - 0.25)], rtol=1e-15)


def test_a_listed_default_is_trainable():
    """Listing a default makes it a params entry that the kernels read live."""
    compiler = SymbolicJITCompiler([("leaky_relu", {"alpha": 0.01})], "CPU_JIT", 0)
    params, offsets = compiler.make_params(np.float64)
    z = np.array([[-2.0, 3.0]])
    a = np.empty_like(z)
    params[0] = 0.5
    compiler.forward_kernel(z, a, params, offsets, 1, 2)
    np.testing.assert_array_equal(a, [[-1.0, 3.0]])


def test_layer_without_constants_makes_the_seeds_params():
    compiler = SymbolicJITCompiler([("relu", {}), ("cos", {})], "CPU_PYTHON")
    params, offsets = compiler.make_params(np.float32)
    assert params.tolist() == [0.0] and offsets.tolist() == [0, 0]
