"""compiler.numba_kernels(): a CPU_JIT layer's kernels called from a user's own @numba.njit code."""

import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from symjit_numba import JITCompilationError, SymbolicJITCompiler

W1 = [("relu", {}), ("sigmoid", {}), ("tanh", {}), ("gelu", {}), ("swish", {"beta": 1.5}),
      ("leaky_relu", {"alpha": 0.01}), ("softplus", {}), ("mish", {})]
OWN = [("a*tanh(b*num)", {"a": 1.5, "b": 0.5}), ("swish", {"beta": 1.5})]


def _same_bits(x, y):
    return x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x.view(np.uint8), y.view(np.uint8))


@numba.njit
def _user_step(k, z, err, params, offsets, n, b):
    """What a user's njit training code does: every activation kernel, once."""
    a, d, a2, dd, delta = np.empty_like(z), np.empty_like(z), np.empty_like(z), np.empty_like(z), np.empty_like(z)
    g, g2 = np.zeros_like(params), np.zeros_like(params)
    k.forward(z, a, params, offsets, n, b)
    k.backward(z, err, d, params, offsets, n, b)
    k.forward_derivative(z, a2, dd, params, offsets, n, b)
    k.param_backward(z, err, g, params, offsets, n, b)
    k.backward_with_params(z, err, delta, g2, params, offsets, n, b)
    return a, d, a2, dd, g, g2, delta


# node-major; batch-major with short runs (computed node-major, transposed); batch-major with long runs;
# batch-major with formulas that repeat (every kernel, public or njit, runs the period's module)
CASES = [("node_major", W1 * 3 + OWN), ("batch_major", W1 * 3 + OWN), ("batch_major", sorted(W1 * 9 + OWN * 9, key=str)),
         ("batch_major", W1 * 16)]


@pytest.mark.parametrize("layout,configs", CASES,
                         ids=["node_major", "batch_major-short-runs", "batch_major-runs", "batch_major-periodic"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_as_the_public_kernels(layout, configs, dtype):
    compiler = SymbolicJITCompiler(configs, "CPU_JIT", layout=layout)
    compiler.warm_up(dtype)
    kernels = compiler.numba_kernels()
    n, b = len(configs), 9000  # more than one BLOCK of samples, a partial last block
    shape = (n, b) if layout == "node_major" else (b, n)
    rng = np.random.default_rng(1)
    z, err = (rng.normal(0, 3, size=shape).astype(dtype) for _ in range(2))
    params, offsets = compiler.make_params(dtype)
    got = _user_step(kernels, z, err, params, offsets, n, b)
    a, d, a2, dd, delta = (np.empty_like(z) for _ in range(5))
    g, g2 = np.zeros_like(params), np.zeros_like(params)
    compiler.forward_kernel(z, a, params, offsets, n, b)
    compiler.backward_kernel(z, err, d, params, offsets, n, b)
    compiler.forward_derivative_kernel(z, a2, dd, params, offsets, n, b)
    compiler.param_backward_kernel(z, err, g, params, offsets, n, b)
    compiler.backward_with_params_kernel(z, err, delta, g2, params, offsets, n, b)
    for name, x, y in zip(("forward", "backward", "a", "d", "param_backward", "grad_params", "delta"), got,
                          (a, d, a2, dd, g, g2, delta)):
        assert _same_bits(x, y), name


def test_loss_kernels_same_bits():
    loss = SymbolicJITCompiler([("huber", {"delta": 0.5})], "CPU_JIT", mode="loss")
    loss.warm_up(np.float64)
    k = loss.numba_kernels()

    @numba.njit
    def user(y_pred, y_true, params):
        res, grad, res2 = np.empty_like(y_pred), np.empty_like(y_pred), np.empty_like(y_pred)
        grad2, grad3 = np.empty_like(y_pred), np.empty_like(y_pred)
        gp, gp2 = np.zeros_like(params), np.zeros_like(params)
        k.forward(y_pred, y_true, res, params)
        k.backward(y_pred, y_true, grad, params)
        k.forward_derivative(y_pred, y_true, res2, grad2, params)
        k.param_backward(y_pred, y_true, gp, params)
        k.backward_with_params(y_pred, y_true, grad3, gp2, params)
        return res, grad, res2, grad2, gp, gp2, grad3

    rng = np.random.default_rng(2)
    y_pred, y_true = rng.normal(size=(30, 700)), rng.normal(size=(30, 700))
    params, _ = loss.make_params(np.float64)
    got = user(y_pred, y_true, params)
    res, grad, res2, grad2, grad3 = (np.empty_like(y_pred) for _ in range(5))
    gp, gp2 = np.zeros_like(params), np.zeros_like(params)
    loss.forward_kernel(y_pred, y_true, res, params)
    loss.backward_kernel(y_pred, y_true, grad, params)
    loss.forward_derivative_kernel(y_pred, y_true, res2, grad2, params)
    loss.param_backward_kernel(y_pred, y_true, gp, params)
    loss.backward_with_params_kernel(y_pred, y_true, grad3, gp2, params)
    for x, y in zip(got, (res, grad, res2, grad2, gp, gp2, grad3)):
        assert _same_bits(x, y)


def test_checks():
    compiler = SymbolicJITCompiler(W1[:3], "CPU_JIT")
    k = compiler.numba_kernels()
    params, offsets = compiler.make_params(np.float32)
    z = np.ones((3, 5), np.float32)
    a = np.empty_like(z)
    with pytest.raises(ValueError, match="number of nodes"):
        k.forward(np.ones((4, 5), np.float32), np.empty((4, 5), np.float32), params, offsets[[0, 1, 2, 2]], 4, 5)
    with pytest.raises(ValueError, match="shape"):
        k.forward(z, a, params, offsets, 3, 6)
    with pytest.raises(ValueError, match="outside params"):
        k.forward(z, a, params, offsets + 5, 3, 5)
    with pytest.raises(numba.core.errors.TypingError, match="one dtype"):
        k.forward(z, a.astype(np.float64), params, offsets, 3, 5)
    with pytest.raises(numba.core.errors.TypingError, match="C-contiguous"):
        k.forward(np.ones((5, 3), np.float32).T, a, params, offsets, 3, 5)
    k.forward(z, a, params, offsets.astype(np.int32), 3, 5)  # other integer offsets are converted
    expected = np.empty_like(z)
    compiler.forward_kernel(z, expected, params, offsets, 3, 5)
    assert _same_bits(a, expected)


def test_only_cpu_jit():
    with pytest.raises(JITCompilationError, match="CPU_JIT"):
        SymbolicJITCompiler(W1[:2], "CPU_PYTHON").numba_kernels()


@pytest.mark.slow
def test_callers_are_never_cached(tmp_path):
    """The kernels hold this process's addresses: numba must refuse to cache a function that calls them."""
    (tmp_path / "user_code.py").write_text(textwrap.dedent("""
        import numba, numpy as np
        from symjit_numba import SymbolicJITCompiler
        layer = SymbolicJITCompiler([("relu", {}), ("tanh", {})], "CPU_JIT")
        k = layer.numba_kernels()

        @numba.njit(cache=True)
        def f(z, params, offsets):
            a = np.empty_like(z)
            k.forward(z, a, params, offsets, z.shape[0], z.shape[1])
            return a
    """))
    script = ("import warnings, numpy as np, user_code as u\n"
              "params, offsets = u.layer.make_params(np.float32)\n"
              "with warnings.catch_warnings(record=True) as w:\n"
              "    warnings.simplefilter('always')\n"
              "    print(u.f(np.ones((2, 3), np.float32), params, offsets)[1, 0])\n"
              "print(any('Cannot cache' in str(x.message) for x in w))\n")
    for _ in range(2):  # a second process would load a stale cache entry, if there were one
        out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        value, refused = out.stdout.split()
        assert abs(float(value) - np.tanh(1.0)) < 1e-6 and refused == "True"
    assert not list(tmp_path.glob("__pycache__/*.nbi"))
