"""GPU_CUDA: the generated CUDA kernels under numba's CUDA simulator, device ids, and fallback.

CI has no GPU, so conftest enables the simulator (``NUMBA_ENABLE_CUDASIM=1``): the same generated
source runs with CUDA semantics in Python, and must give CPU_PYTHON's numbers. Real-GPU timings are
in ``benchmarks/bench_gpu.py``.
"""

import numpy as np
import pytest

from symjit_numba import InvalidDeviceIDError, JITCompilationError, PerformanceWarning, SymbolicJITCompiler, settings
from symjit_numba.backends import gpu_cuda

from .conftest import build, run_activation, run_loss

MIXED = [("relu", {}), ("leaky_relu", {"alpha": 0.2}), ("gelu", {}), ("swish", {"beta": 1.5}),
         ("a*tanh(b*num) + Heaviside(num)", {"a": 1.7, "b": 0.5}), ("Piecewise((c*num**2, num < 0), (sin(num), True))",
                                                                      {"c": 0.3}), ("mish", {}), ("softsign", {})]


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_activation_matches_cpu_python(dtype, layout):
    rng = np.random.default_rng(3)
    n, b = len(MIXED), 6
    shape = (n, b) if layout == "node_major" else (b, n)
    z = rng.normal(scale=3, size=shape).astype(dtype)
    err = rng.normal(size=shape).astype(dtype)
    gpu = build(MIXED, "GPU_CUDA", layout=layout)
    ref = build(MIXED, "CPU_PYTHON", layout=layout)
    tolerance = dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for got, expected in zip(run_activation(gpu, z, err), run_activation(ref, z, err)):
        np.testing.assert_allclose(got, expected, **tolerance)


@pytest.mark.parametrize("loss", [("mse", {}), ("huber", {"delta": 0.5}), ("log_cosh", {})])
def test_loss_matches_cpu_python(dtype, loss):
    rng = np.random.default_rng(4)
    y_pred, y_true = (rng.normal(scale=2, size=(3, 5)).astype(dtype) for _ in range(2))
    gpu = build([loss], "GPU_CUDA", mode="loss")
    ref = build([loss], "CPU_PYTHON", mode="loss")
    tolerance = dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for got, expected in zip(run_loss(gpu, y_pred, y_true), run_loss(ref, y_pred, y_true)):
        np.testing.assert_allclose(got, expected, **tolerance)


def test_cuda_arrays_are_used_in_place():
    from numba import cuda

    layer = build([("relu", {}), ("tanh", {})], "GPU_CUDA")
    z = np.array([[-1.0, 2.0, 3.0], [0.5, -0.5, 0.0]], dtype=np.float32)
    params, offsets = layer.make_params(np.float32)
    z_device, a_device = cuda.to_device(z), cuda.device_array_like(z)
    layer.forward_kernel(z_device, a_device, cuda.to_device(params), offsets, 2, 3)
    np.testing.assert_allclose(a_device.copy_to_host(), np.stack([np.maximum(z[0], 0), np.tanh(z[1])]), rtol=1e-6)


def test_generated_cuda_source_is_readable():
    text = build(MIXED[:3], "GPU_CUDA").source()
    assert "@cuda.jit" in text and "cuda.grid(1)" in text and "# gelu" in text
    assert "vm." not in text  # CUDA uses the device's own math library


def test_device_ids_are_checked():
    with pytest.raises(InvalidDeviceIDError, match="1 GPU"):
        SymbolicJITCompiler([("relu", {})], "GPU_CUDA", device_id=5)
    with pytest.raises(InvalidDeviceIDError, match="non-negative"):
        SymbolicJITCompiler([("relu", {})], "GPU_CUDA", device_id=-1)
    layer = build([("relu", {})], "GPU_CUDA")
    with pytest.raises(InvalidDeviceIDError):
        layer.set_gpu_id(3)
    assert layer.device_id == 0
    layer.set_gpu_id(0)
    assert layer.calculation_method == "GPU_CUDA"


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(gpu_cuda, "is_available", lambda: False)


def test_without_a_gpu_falls_back_to_cpu_jit(no_gpu):
    with pytest.warns(PerformanceWarning, match="GPU_CUDA is not available, using CPU_JIT"):
        layer = SymbolicJITCompiler([("relu", {}), ("tanh", {})], "GPU_CUDA")
    assert layer.calculation_method == "CPU_JIT"
    a, d = run_activation(layer, np.array([[-1.0, 2.0], [0.5, -0.5]]))
    np.testing.assert_allclose(a, [[0, 2], [np.tanh(0.5), np.tanh(-0.5)]])
    with pytest.warns(PerformanceWarning):
        loss = SymbolicJITCompiler([("mse", {})], "GPU_CUDA", mode="loss")
    assert loss.calculation_method == "CPU_JIT"


def test_without_a_gpu_error_level_raises(no_gpu):
    with settings.override(warning_level="error"):
        with pytest.raises(JITCompilationError, match="no CUDA GPU"):
            SymbolicJITCompiler([("relu", {})], "GPU_CUDA")


def test_without_a_gpu_ignore_level_is_silent(no_gpu, recwarn):
    with settings.override(warning_level="ignore"):
        layer = SymbolicJITCompiler([("relu", {})], "GPU_CUDA")
    assert layer.calculation_method == "CPU_JIT"
    assert not [w for w in recwarn if issubclass(w.category, PerformanceWarning)]
