"""Gradients with respect to the constants: param_backward_kernel and backward_with_params_kernel.

Central differences (float64) on every backend and layout, the one-pass kernel against the two
separate ones, bit-identical float32 sums whatever the number of threads, float64 accuracy of
1M-element float32 sums, entries no node owns left alone, and bad ``grad_params`` refused.
"""

import math

import numpy as np
import pytest

from symjit_numba import SymbolicJITCompiler, settings
from symjit_numba.backends.cpu_jit import SERIAL_BELOW
from symjit_numba.errors import KernelArgumentError

from .conftest import build

LAYOUTS = ("node_major", "batch_major")
#: Every constant trainable, plus a node without constants (it owns no entry).
ACTIVATIONS = [
    ("swish", {"beta": 1.5}),
    ("leaky_relu", {"alpha": 0.05}),
    ("elu", {"alpha": 0.8}),
    ("a*tanh(b*num)", {"a": 0.7, "b": 1.3}),
    ("a*num/(1+Abs(b*num))", {"a": 1.2, "b": 0.6}),
    ("relu", {}),
]


def _layer_arrays(layout, n, b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-3, 3, size=(n, b))
    z[np.abs(z) < 1e-2] = 0.5  # away from the kinks at 0, where one-sided differences disagree
    err = rng.standard_normal((n, b))
    if layout == "batch_major":
        z, err = z.T.copy(), err.T.copy()
    return z.astype(dtype), err.astype(dtype)


def _forward_sum(compiler, z, err, params, offsets, n, b):
    a = np.empty_like(z)
    compiler.forward_kernel(z, a, params, offsets, n, b)
    return math.fsum((err * a).ravel())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_central_differences_activation(method, layout):
    n, b = 2 * len(ACTIVATIONS), 37
    compiler = build(ACTIVATIONS * 2, method, layout=layout)
    params, offsets = compiler.make_params(np.float64)
    z, err = _layer_arrays(layout, n, b, np.float64)
    grad = np.full(params.size, np.nan)
    compiler.param_backward_kernel(z, err, grad, params, offsets, n, b)
    expected = np.empty_like(params)
    h = 1e-6
    for k in range(params.size):
        up, down = params.copy(), params.copy()
        up[k] += h
        down[k] -= h
        expected[k] = (_forward_sum(compiler, z, err, up, offsets, n, b)
                       - _forward_sum(compiler, z, err, down, offsets, n, b)) / (2 * h)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)
    # The one-pass kernel: the same gradients, and delta as backward_kernel computes it.
    delta, delta_alone = np.empty_like(z), np.empty_like(z)
    grad_one_pass = np.full(params.size, np.nan)
    compiler.backward_with_params_kernel(z, err, delta, grad_one_pass, params, offsets, n, b)
    compiler.backward_kernel(z, err, delta_alone, params, offsets, n, b)
    np.testing.assert_allclose(grad_one_pass, grad, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(delta, delta_alone, rtol=1e-14, atol=1e-15)


def test_central_differences_huber_delta(method):
    compiler = build([("huber", {"delta": 0.7})], method, mode="loss")
    rng = np.random.default_rng(1)
    y_pred, y_true = rng.standard_normal((5, 41)), rng.standard_normal((5, 41))
    r = np.abs(y_pred - y_true)
    y_pred[np.abs(r - 0.7) < 1e-3] += 0.01  # away from the kink |r| = delta
    params, _ = compiler.make_params(np.float64)

    def total(p):
        res = np.empty_like(y_pred)
        compiler.forward_kernel(y_pred, y_true, res, p)
        return math.fsum(res.ravel())

    grad = np.full(1, np.nan)
    compiler.param_backward_kernel(y_pred, y_true, grad, params)
    h = 1e-6
    expected = (total(params + h) - total(params - h)) / (2 * h)
    np.testing.assert_allclose(grad, [expected], rtol=1e-7)
    # The one-pass kernel, and params omitted (the config's values).
    grad_one_pass, dloss = np.full(1, np.nan), np.empty_like(y_pred)
    compiler.backward_with_params_kernel(y_pred, y_true, dloss, grad_one_pass)
    reference = np.empty_like(y_pred)
    compiler.backward_kernel(y_pred, y_true, reference, params)
    np.testing.assert_allclose(grad_one_pass, grad, rtol=1e-13)
    np.testing.assert_allclose(dloss, reference, rtol=1e-14)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_pass_equals_backward_plus_param_backward(dtype, layout):
    n, b = 2 * len(ACTIVATIONS), 301
    compiler = build(ACTIVATIONS * 2, "CPU_JIT", layout=layout)
    params, offsets = compiler.make_params(dtype)
    z, err = _layer_arrays(layout, n, b, dtype, seed=3)
    delta, delta_alone = np.empty_like(z), np.empty_like(z)
    grad, grad_alone = np.zeros_like(params), np.zeros_like(params)
    compiler.backward_with_params_kernel(z, err, delta, grad, params, offsets, n, b)
    compiler.backward_kernel(z, err, delta_alone, params, offsets, n, b)
    compiler.param_backward_kernel(z, err, grad_alone, params, offsets, n, b)
    # Equal up to the rounding of shared subexpressions (the one pass shares f' with the df/dc).
    tight = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(delta, delta_alone, rtol=tight, atol=tight)
    np.testing.assert_allclose(grad, grad_alone, rtol=tight, atol=tight)


def _with_threads(count, function):
    previous = settings.num_threads
    settings.num_threads = count
    try:
        return function()
    finally:
        settings.num_threads = previous


@pytest.mark.parametrize("case", ["node_major", "batch_major_runs", "batch_major_interleaved", "loss"])
def test_float32_sums_bit_identical_with_1_and_2_threads(case):
    if case == "loss":
        compiler = build([("huber", {"delta": 0.3})], "CPU_JIT", mode="loss")
        rng = np.random.default_rng(5)
        y_pred, y_true = (rng.standard_normal(200_003).astype(np.float32) for _ in range(2))
        params, _ = compiler.make_params(np.float32)

        def run():
            grad, dloss = np.zeros(1, np.float32), np.empty_like(y_pred)
            compiler.backward_with_params_kernel(y_pred, y_true, dloss, grad, params)
            grad_alone = np.zeros(1, np.float32)
            compiler.param_backward_kernel(y_pred, y_true, grad_alone, params)
            return grad.tobytes() + grad_alone.tobytes() + dloss.tobytes()
    else:
        kinds = ACTIVATIONS[:5]
        if case == "node_major":
            configs, layout, n, b = [kinds[j % 5] for j in range(20)], "node_major", 20, 3 * 8192 + 5
        elif case == "batch_major_runs":  # runs of same-formula nodes: the row-block tasks
            configs, layout, n, b = [kinds[j // 16] for j in range(80)], "batch_major", 80, 1000
        else:  # formulas interleaved: computed node-major between transposes
            configs, layout, n, b = [kinds[j % 5] for j in range(40)], "batch_major", 40, 2000
        compiler = build(configs, "CPU_JIT", layout=layout)
        params, offsets = compiler.make_params(np.float32)
        z, err = _layer_arrays(layout, n, b, np.float32, seed=7)
        assert z.size >= 2 * SERIAL_BELOW  # the pool really splits the tasks

        def run():
            grad, delta = np.zeros_like(params), np.empty_like(z)
            compiler.backward_with_params_kernel(z, err, delta, grad, params, offsets, n, b)
            grad_alone = np.zeros_like(params)
            compiler.param_backward_kernel(z, err, grad_alone, params, offsets, n, b)
            return grad.tobytes() + grad_alone.tobytes() + delta.tobytes()

    one, two = _with_threads(1, run), _with_threads(2, run)
    assert one == two
    assert _with_threads(2, run) == two  # and from one call to the next


@pytest.mark.parametrize("method_", ["CPU_JIT", "CPU_PYTHON"])
def test_float32_million_element_sums_are_float64_accurate(method_):
    # Terms of one sign around 1.5: a float32 running sum would be ~1e-4 off; float64 sums are ~1e-12.
    rng = np.random.default_rng(11)
    size = 1 << 20
    z = (1.0 + rng.random((1, size))).astype(np.float32)
    err = (0.5 + rng.random((1, size))).astype(np.float32)
    compiler = build([("a*num", {"a": 2.0})], method_)
    params, offsets = compiler.make_params(np.float32)
    grad = np.zeros_like(params)
    compiler.param_backward_kernel(z, err, grad, params, offsets, 1, size)
    reference = math.fsum((err * z).astype(np.float64).ravel())  # the float32 terms, added exactly
    assert abs(float(grad[0]) - reference) <= 1e-6 * abs(reference)

    loss = build([("c*(y_pred - y_true)**2", {"c": 0.5})], method_, mode="loss")
    y_pred, y_true = z.reshape(-1), (err - 1).reshape(-1)
    grad = np.zeros(1, np.float32)
    loss.param_backward_kernel(y_pred, y_true, grad, np.array([0.5], np.float32))
    difference = y_pred - y_true
    reference = math.fsum((difference * difference).astype(np.float64))
    assert abs(float(grad[0]) - reference) <= 1e-6 * abs(reference)


def test_entries_no_node_owns_are_untouched(method):
    # Offsets with gaps, and a grad_params longer than params: only owned entries change.
    compiler = build([("swish", {"beta": 1.5}), ("relu", {}), ("a*tanh(b*num)", {"a": 0.7, "b": 1.3})], method)
    params = np.array([1.5, -7.0, -7.0, 0.7, 1.3, -7.0], dtype=np.float64)
    offsets = np.array([0, 5, 3], dtype=np.int64)
    z, err = _layer_arrays("node_major", 3, 19, np.float64)
    sentinel = 12345.0
    grad = np.full(8, sentinel)
    compiler.param_backward_kernel(z, err, grad, params, offsets, 3, 19)
    owned = [0, 3, 4]
    untouched = [k for k in range(8) if k not in owned]
    assert np.all(grad[untouched] == sentinel)
    assert np.all(np.isfinite(grad[owned])) and np.all(grad[owned] != sentinel)
    # A layer without constants changes nothing (and its one-pass kernel still computes delta).
    plain = build([("relu", {}), ("tanh", {})], method)
    params, offsets = plain.make_params(np.float64)
    grad = np.full(1, sentinel)
    z, err = _layer_arrays("node_major", 2, 11, np.float64)
    plain.param_backward_kernel(z, err, grad, params, offsets, 2, 11)
    delta, expected = np.empty_like(z), np.empty_like(z)
    plain.backward_with_params_kernel(z, err, delta, grad, params, offsets, 2, 11)
    plain.backward_kernel(z, err, expected, params, offsets, 2, 11)
    assert grad[0] == sentinel
    np.testing.assert_array_equal(delta, expected)


def test_tied_constants_get_the_sum_of_their_nodes_gradients():
    configs = [("leaky_relu", {"alpha": 0.1})] * 3
    z, err = _layer_arrays("node_major", 3, 50, np.float64)
    for method in ("CPU_PYTHON", "CPU_JIT"):
        compiler = build(configs, method)
        params = np.array([0.1])
        grad_tied = np.zeros(1)
        compiler.param_backward_kernel(z, err, grad_tied, params, np.zeros(3, np.int64), 3, 50)
        separate = np.zeros(3)
        compiler.param_backward_kernel(z, err, separate, np.full(3, 0.1), np.arange(3), 3, 50)
        np.testing.assert_allclose(grad_tied, [separate.sum()], rtol=1e-14)


def test_in_place_delta_reads_its_inputs_first(method):
    compiler = build(ACTIVATIONS, method)
    n, b = len(ACTIVATIONS), 23
    params, offsets = compiler.make_params(np.float64)
    z, err = _layer_arrays("node_major", n, b, np.float64)
    grad, expected_grad = np.zeros_like(params), np.zeros_like(params)
    expected = np.empty_like(z)
    compiler.backward_with_params_kernel(z, err, expected, expected_grad, params, offsets, n, b)
    compiler.backward_with_params_kernel(z, err, err, grad, params, offsets, n, b)  # delta is err itself
    np.testing.assert_allclose(err, expected, rtol=1e-15)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-15)


@pytest.mark.parametrize("bad, message", [
    (lambda p: np.zeros(p.size, np.float32), "dtype float32"),
    (lambda p: np.zeros((p.size, 1)), "1-D"),
    (lambda p: np.zeros(p.size - 1), "occupy params"),
    (lambda p: np.zeros(2 * p.size)[::2], "C-contiguous"),
    (lambda p: _read_only(p.size), "read-only"),
    (lambda p: p, "shares memory with params"),
    (lambda p: [0.0] * p.size, "must be a numpy array"),
])
def test_bad_grad_params_refused(method, bad, message):
    compiler = build(ACTIVATIONS[:4], method)
    params, offsets = compiler.make_params(np.float64)
    z, err = _layer_arrays("node_major", 4, 9, np.float64)
    with pytest.raises(KernelArgumentError, match=message):
        compiler.param_backward_kernel(z, err, bad(params), params, offsets, 4, 9)
    with pytest.raises(KernelArgumentError, match=message):
        compiler.backward_with_params_kernel(z, err, np.empty_like(z), bad(params), params, offsets, 4, 9)


def _read_only(size):
    array = np.zeros(size)
    array.flags.writeable = False
    return array


def test_grad_params_overlapping_an_array_refused():
    compiler = build(ACTIVATIONS[:4], "CPU_JIT")
    params, offsets = compiler.make_params(np.float64)
    z, err = _layer_arrays("node_major", 4, 9, np.float64)
    with pytest.raises(KernelArgumentError, match="grad_params shares memory with z"):
        compiler.param_backward_kernel(z, err, z.reshape(-1)[:params.size], params, offsets, 4, 9)
    delta = np.empty_like(z)
    with pytest.raises(KernelArgumentError, match="grad_params shares memory with delta"):
        compiler.backward_with_params_kernel(z, err, delta, delta.reshape(-1)[:params.size], params, offsets, 4, 9)
    loss = build([("huber", {"delta": 1.0})], "CPU_JIT", mode="loss")
    y = np.zeros(4)
    with pytest.raises(KernelArgumentError, match="grad_params shares memory with y_pred"):
        loss.param_backward_kernel(y, np.zeros(4), y[:1])


def test_kernels_are_attributes_on_every_backend(method):
    compiler = SymbolicJITCompiler([("swish", {"beta": 1.0})], method)
    assert callable(compiler.param_backward_kernel) and callable(compiler.backward_with_params_kernel)


def test_docs_sgd_example_trains_the_constants():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "formula-language.md").read_text(encoding="utf-8")
    code = re.search(r"Training constants with plain numpy SGD:\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(code, namespace)  # noqa: S102 - the documentation's own example
    np.testing.assert_allclose(namespace["params"], [2.0, 1.5, 0.5], atol=5e-3)
