"""A small heterogeneous MLP trained with the kernels follows the same loss trajectory on every backend.

Two layers (8 heterogeneous hidden nodes, 2 linear outputs, node-major activations), an mse loss,
plain gradient descent on the weights; matrix products in numpy, activations, derivatives and the
loss in the kernels under test. The reference trajectory is computed with numpy alone.
"""

import numpy as np
import pytest

from .conftest import build

HIDDEN = [("relu", {}), ("tanh", {}), ("swish", {"beta": 1.5}), ("leaky_relu", {"alpha": 0.1}),
          ("gelu", {}), ("softplus", {}), ("a*sin(num)", {"a": 0.8}), ("sigmoid", {})]
OUTPUT = [("linear", {})] * 2


def _numpy_hidden(z):
    beta, alpha, a = 1.5, 0.1, 0.8
    s = 1 / (1 + np.exp(-beta * z[2]))
    from math import erf, pi, sqrt

    phi = np.vectorize(lambda x: 0.5 * (1 + erf(x / sqrt(2))))(z[4])
    values = [np.maximum(z[0], 0), np.tanh(z[1]), z[2] * s, np.where(z[3] > 0, z[3], alpha * z[3]),
              z[4] * phi, np.logaddexp(0, z[5]), a * np.sin(z[6]), 1 / (1 + np.exp(-z[7]))]
    slopes = [(z[0] > 0) * 1.0, 1 - np.tanh(z[1]) ** 2, s + beta * z[2] * s * (1 - s), np.where(z[3] > 0, 1, alpha),
              phi + z[4] * np.exp(-z[4] ** 2 / 2) / np.sqrt(2 * pi), 1 / (1 + np.exp(-z[5])), a * np.cos(z[6]),
              values[7] * (1 - values[7])]
    return np.stack(values), np.stack(slopes)


def _train(hidden_forward, hidden_backward, loss_forward, loss_backward, dtype, steps=25):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 64)).astype(dtype)  # (features, batch)
    target = np.stack([np.sin(x[0]) + x[1], x[2] * x[3]]).astype(dtype)
    w1 = (rng.normal(size=(8, 4)) * 0.5).astype(dtype)
    w2 = (rng.normal(size=(2, 8)) * 0.5).astype(dtype)
    losses = []
    for _ in range(steps):
        z1 = w1 @ x
        h = hidden_forward(z1)
        y = w2 @ h
        losses.append(float(loss_forward(y, target).mean()))
        grad_y = loss_backward(y, target) / y.size
        grad_w2 = grad_y @ h.T
        delta1 = hidden_backward(z1, w2.T @ grad_y)
        grad_w1 = delta1 @ x.T
        w1 -= dtype.type(0.5) * grad_w1
        w2 -= dtype.type(0.5) * grad_w2
    return np.array(losses)


def _kernel_functions(method, dtype):
    layer = build(HIDDEN, method)
    loss = build([("mse", {})], method, mode="loss")
    params, offsets = layer.make_params(dtype)
    loss_params, _ = loss.make_params(dtype)

    def forward(z):
        a = np.empty_like(z)
        layer.forward_kernel(np.ascontiguousarray(z), a, params, offsets, *z.shape)
        return a

    def backward(z, err):
        delta = np.empty_like(z)
        layer.backward_kernel(np.ascontiguousarray(z), np.ascontiguousarray(err), delta, params, offsets, *z.shape)
        return delta

    def loss_forward(y, t):
        res = np.empty_like(y)
        loss.forward_kernel(y, t, res, loss_params)
        return res

    def loss_backward(y, t):
        grad = np.empty_like(y)
        loss.backward_kernel(y, t, grad, loss_params)
        return grad

    return forward, backward, loss_forward, loss_backward


@pytest.mark.parametrize("method", ["CPU_PYTHON", "CPU_JIT"])
def test_training_follows_the_numpy_trajectory(method, dtype):
    losses = _train(*_kernel_functions(method, dtype), dtype=dtype)
    reference = _train(lambda z: _numpy_hidden(z)[0].astype(dtype), lambda z, e: (e * _numpy_hidden(z)[1]).astype(dtype),
                       lambda y, t: (y - t) ** 2, lambda y, t: 2 * (y - t), dtype=dtype)
    assert losses[-1] < 0.5 * losses[0], "training did not reduce the loss"
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(losses, reference, rtol=rtol)


def test_cpu_jit_and_cpu_python_trajectories_agree():
    jit = _train(*_kernel_functions("CPU_JIT", np.float64), dtype=np.dtype(np.float64))
    python = _train(*_kernel_functions("CPU_PYTHON", np.float64), dtype=np.dtype(np.float64))
    np.testing.assert_allclose(jit, python, rtol=1e-12)
