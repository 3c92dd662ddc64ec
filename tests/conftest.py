"""Shared test setup: an isolated kernel cache, the CUDA simulator, and backend parametrisation.

GPU_CUDA is tested under numba's CUDA simulator unless ``SYMJIT_TEST_REAL_GPU=1`` (on a machine
with a GPU), so every backend is held to the same numbers in CI.
"""

import os
import tempfile

if os.environ.get("SYMJIT_TEST_REAL_GPU") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # must precede the first import of numba.cuda
os.environ["SYMJIT_NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="symjit-test-cache-")

import hypothesis  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numba.core import config as numba_config  # noqa: E402

# pytest imports symjit_numba (and so numba) while reading its configuration, before the lines
# above ran: make numba read the environment again, before anything imports numba.cuda.
numba_config.reload_config()

from symjit_numba import SymbolicJITCompiler, settings  # noqa: E402

# For the same reason the settings may have read the cache folder already: point them at it.
settings.cache_dir = os.environ["SYMJIT_NUMBA_CACHE_DIR"]

from symjit_numba.backends import cpu_jit  # noqa: E402

# Every call of SERIAL_BELOW elements or more is split over the threads, whatever it measures: the
# pool is exercised by every such test, not only where this machine's timings say splitting pays.
cpu_jit._pool.split_above = 0.0

# In CI the property tests draw the same examples every run (a submission's CI must not depend on
# luck); on a developer's machine they keep exploring new ones.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

BACKENDS = ("CPU_PYTHON", "CPU_JIT", "GPU_CUDA")
DTYPES = (np.float32, np.float64)


def build(configs, method, mode="activation", layout="node_major"):
    """A compiler that really uses ``method`` (a silent fallback would make the test meaningless)."""
    compiler = SymbolicJITCompiler(configs, method, mode=mode, layout=layout)
    assert compiler.calculation_method == method
    return compiler


def run_activation(compiler, z, err=None, params=None):
    """Forward and backward of a layer on ``z`` in the compiler's layout; returns (a, delta)."""
    dtype = z.dtype
    if params is None:
        params, offsets = compiler.make_params(dtype)
    else:
        offsets = compiler.make_params(dtype)[1]
    n, b = z.shape if compiler.layout == "node_major" else z.shape[::-1]
    a = np.full_like(z, 12345.0)
    delta = np.full_like(z, 12345.0)
    compiler.forward_kernel(z, a, params, offsets, n, b)
    compiler.backward_kernel(z, np.ones_like(z) if err is None else err, delta, params, offsets, n, b)
    return a, delta


def run_loss(compiler, y_pred, y_true):
    params, _ = compiler.make_params(y_pred.dtype)
    res = np.full_like(y_pred, 12345.0)
    grad = np.full_like(y_pred, 12345.0)
    compiler.forward_kernel(y_pred, y_true, res, params)
    compiler.backward_kernel(y_pred, y_true, grad, params)
    return res, grad


@pytest.fixture(params=BACKENDS)
def method(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


def without_cache_location(njit):
    """A stand-in for ``numba.njit`` that fails as numba does where it finds no writable cache location."""
    def njit_without_cache_location(**options):
        if options.get("cache"):
            def decorate(function):
                raise RuntimeError(f"cannot cache function {function.__name__!r}: no locator available for file")
            return decorate
        return njit(**options)
    return njit_without_cache_location
