"""Bad kernel arguments are refused before any kernel touches memory, with a message that says what to fix.

Every check runs on every backend: the outputs are filled with a sentinel first, and must be
untouched after a refused call.
"""

import numpy as np
import pytest

from symjit_numba import KernelArgumentError, SymbolicJITCompiler

from .conftest import build

CONFIGS = [("relu", {}), ("leaky_relu", {"alpha": 0.2}), ("a*tanh(b*num)", {"a": 1.0, "b": 2.0})]
SENTINEL = 777.0


@pytest.fixture(scope="module")
def layers():
    return {method: build(CONFIGS, method) for method in ("CPU_PYTHON", "CPU_JIT", "GPU_CUDA")}


@pytest.fixture(scope="module")
def losses():
    return {method: build([("huber", {"delta": 0.5})], method, mode="loss") for method in ("CPU_PYTHON", "CPU_JIT", "GPU_CUDA")}


def _arrays(dtype=np.float32, shape=(3, 4)):
    z = np.linspace(-2, 2, np.prod(shape)).reshape(shape).astype(dtype)
    return z, np.full(shape, SENTINEL, dtype=dtype)


def _refused(call, out, *fragments):
    before = out.copy()
    with pytest.raises(KernelArgumentError) as caught:
        call()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    np.testing.assert_array_equal(out, before)  # nothing was written


BAD_CALLS = {
    # name: (function of (z, a, params, offsets) returning forward arguments, message fragments)
    "wrong node count": (lambda z, a, p, o: (z[:2].copy(), a[:2].copy(), p, o[:2], 2, 4), ["3 nodes"]),
    "n disagrees": (lambda z, a, p, o: (z, a, p, o, 4, 4), ["n=4"]),
    "b disagrees": (lambda z, a, p, o: (z, a, p, o, 3, 5), ["b=5"]),
    "n not an int": (lambda z, a, p, o: (z, a, p, o, 3.0, 4), ["integer"]),
    "1-D z": (lambda z, a, p, o: (z.reshape(-1), a.reshape(-1), p, o, 3, 4), ["2-D"]),
    "mixed dtypes": (lambda z, a, p, o: (z.astype(np.float64), a, p, o, 3, 4), ["one dtype"]),
    "integer arrays": (lambda z, a, p, o: (z.astype(np.int64), a.astype(np.int64), p.astype(np.int64), o, 3, 4),
                       ["float32 or float64"]),
    "params dtype": (lambda z, a, p, o: (z, a, p.astype(np.float64) if p.dtype == np.float32 else p.astype(np.float32),
                                         o, 3, 4), ["params="]),
    "non-contiguous z": (lambda z, a, p, o: (np.asfortranarray(z), a, p, o, 3, 4), ["C-contiguous"]),
    "strided view": (lambda z, a, p, o: (np.repeat(z, 2, axis=1)[:, ::2], a, p, o, 3, 4), ["C-contiguous"]),
    "shape mismatch": (lambda z, a, p, o: (z, np.zeros((3, 5), z.dtype), p, o, 3, 4), ["shape"]),
    "read-only output": (lambda z, a, p, o: (z, _readonly(a), p, o, 3, 4), ["read-only"]),
    "list instead of array": (lambda z, a, p, o: (z.tolist(), a, p, o, 3, 4), ["numpy array"]),
    "2-D params": (lambda z, a, p, o: (z, a, p.reshape(1, -1), o, 3, 4), ["1-D"]),
    "short params": (lambda z, a, p, o: (z, a, p[:2], o, 3, 4), ["params has 2 elements"]),
    "negative offset": (lambda z, a, p, o: (z, a, p, np.array([0, -1, 1]), 3, 4), ["negative"]),
    "offset past the end": (lambda z, a, p, o: (z, a, p, np.array([0, 0, 2]), 3, 4), ["params["]),
    "huge offset": (lambda z, a, p, o: (z, a, p, np.array([0, 0, 2**40]), 3, 4), ["params["]),
    "short offset_list": (lambda z, a, p, o: (z, a, p, o[:2], 3, 4), ["one offset per node"]),
    "float offsets": (lambda z, a, p, o: (z, a, p, o.astype(np.float64), 3, 4), ["integers"]),
}


def _readonly(array):
    array = array.copy()
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_forward_refuses_bad_arguments(layers, method, case):
    make_args, fragments = BAD_CALLS[case]
    layer = layers[method]
    z, a = _arrays()
    params, offsets = layer.make_params(np.float32)
    args = make_args(z, a, params, offsets)
    _refused(lambda: layer.forward_kernel(*args), args[1], *fragments)


def test_backward_refuses_mismatched_err(layers, method):
    layer = layers[method]
    z, delta = _arrays()
    params, offsets = layer.make_params(np.float32)
    _refused(lambda: layer.backward_kernel(z, np.ones((3, 5), np.float32), delta, params, offsets, 3, 4), delta, "err")
    _refused(lambda: layer.backward_kernel(z, np.ones((3, 4)), delta, params, offsets, 3, 4), delta, "err=float64")


def test_batch_major_checks_its_own_shape(method):
    layer = build(CONFIGS, method, layout="batch_major")
    z, a = _arrays(shape=(3, 4))  # (nodes, batch) is wrong here: batch-major wants (batch, nodes)
    params, offsets = layer.make_params(np.float32)
    _refused(lambda: layer.forward_kernel(z, a, params, offsets, 3, 4), a, "shape[1] = 4", "batch_major")


def test_loss_refuses_bad_arguments(losses, method):
    loss = losses[method]
    y, res = _arrays(shape=(6,))
    params, _ = loss.make_params(np.float32)
    _refused(lambda: loss.forward_kernel(y, y[:5].copy(), res, params), res, "shape")
    _refused(lambda: loss.forward_kernel(y, y.astype(np.float64), res, params), res, "one dtype")
    _refused(lambda: loss.forward_kernel(y, y, res, params[:0]), res, "at least 1")
    _refused(lambda: loss.backward_kernel(y[::2], y[::2].copy(), res[:3], params), res, "C-contiguous")


def test_valid_call_after_refusals_still_works(layers, method):
    layer = layers[method]
    z, a = _arrays()
    params, offsets = layer.make_params(np.float32)
    with pytest.raises(KernelArgumentError):
        layer.forward_kernel(z, a, params, np.array([0, 0, 5]), 3, 4)
    layer.forward_kernel(z, a, params, offsets, 3, 4)
    expected = np.stack([np.maximum(z[0], 0), np.where(z[1] > 0, z[1], 0.2 * z[1]), np.tanh(2 * z[2])])
    np.testing.assert_allclose(a, expected, rtol=1e-6, atol=1e-7)


def test_constructor_refuses_bad_options():
    with pytest.raises(ValueError, match="calculation_method"):
        SymbolicJITCompiler([("relu", {})], "GPU")
    with pytest.raises(ValueError, match="layout"):
        SymbolicJITCompiler([("relu", {})], "CPU_PYTHON", layout="column_major")
    with pytest.raises(ValueError, match="float32 or float64"):
        SymbolicJITCompiler([("relu", {})], "CPU_PYTHON").make_params(np.int32)


def test_forward_derivative_refuses_shared_outputs_and_bad_shapes(layers, losses, method):
    layer, loss = layers[method], losses[method]
    z, a = _arrays()
    params, offsets = layer.make_params(np.float32)
    _refused(lambda: layer.forward_derivative_kernel(z, a, a, params, offsets, 3, 4), a, "a and d overlap")
    _refused(lambda: layer.forward_derivative_kernel(z, a, a[:2].copy(), params, offsets, 3, 4), a, "d has shape")
    _refused(lambda: layer.forward_derivative_kernel(z, a, _readonly(a), params, offsets, 3, 4), a, "d is read-only")
    y, res = _arrays(shape=(6,))
    grad = res.copy()
    params, _ = loss.make_params(np.float32)
    _refused(lambda: loss.forward_derivative_kernel(y, y, res, res, params), res, "res and grad overlap")
    _refused(lambda: loss.forward_derivative_kernel(y, y, res, grad.astype(np.float64), params), res, "grad=float64")
