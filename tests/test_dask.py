"""symjit_numba.dask: a layer's kernels over dask arrays chunked along the batch.

Results over chunks must equal the single-process kernel calls on the whole arrays. The
``distributed.LocalCluster`` test runs in a subprocess with a timeout (a stuck cluster cannot hang
the suite).
"""

import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

from symjit_numba import KernelArgumentError  # noqa: E402
from symjit_numba import dask as sjd  # noqa: E402

from .conftest import build  # noqa: E402

TIMEOUT = 240
CONFIGS = [("relu", {}), ("sigmoid", {}), ("a*tanh(b*num)", {"a": 1.5, "b": 0.5}), ("gelu", {}),
           ("swish", {"beta": 1.5}), ("leaky_relu", {"alpha": 0.01}), ("softplus", {}), ("mish", {})]


def single_process(compiler, z, err, params, offsets):
    """The kernels on the whole arrays: forward, backward, and forward_derivative's two outputs."""
    n, b = z.shape if compiler.layout == "node_major" else z.shape[::-1]
    a, delta, value, derivative = (np.empty_like(z) for _ in range(4))
    compiler.forward_kernel(z, a, params, offsets, n, b)
    compiler.backward_kernel(z, err, delta, params, offsets, n, b)
    compiler.forward_derivative_kernel(z, value, derivative, params, offsets, n, b)
    return a, delta, value, derivative


def inputs(layout, n, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, batch) if layout == "node_major" else (batch, n)
    return tuple((3 * rng.standard_normal(shape)).astype(dtype) for _ in range(2))


def chunked(array, layout, chunk):
    return da.from_array(array, chunks=(array.shape[0], chunk) if layout == "node_major" else (chunk, array.shape[1]))


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_chunks_equal_one_call(method, layout, dtype):
    compiler = build(CONFIGS, method, layout=layout)
    batch = 50 if method == "GPU_CUDA" else 1000  # the CUDA simulator runs each thread in Python
    z, err = inputs(layout, len(CONFIGS), batch, dtype)
    params, offsets = compiler.make_params(dtype)
    params = params * np.asarray(1.1, dtype)  # live values differ from the configs' ones
    expected = single_process(compiler, z, err, params, offsets)
    # err chunked differently from z: dask aligns them. The simulator cannot run kernels concurrently.
    scheduler = "synchronous" if method == "GPU_CUDA" else "threads"
    with dask.config.set(scheduler=scheduler):
        got = dask.compute(sjd.forward(compiler, chunked(z, layout, batch // 3), params=params, offsets=offsets),
                           sjd.backward(compiler, chunked(z, layout, batch // 3), chunked(err, layout, batch // 4),
                                        params=params, offsets=offsets),
                           *sjd.forward_derivative(compiler, chunked(z, layout, batch // 5), params=params,
                                                   offsets=offsets))
    for mine, theirs in zip(expected, got):
        assert theirs.dtype == dtype
        np.testing.assert_array_equal(mine, theirs)


def test_loss_over_chunks(method):
    compiler = build([("huber", {"delta": 0.5})], method, mode="loss")
    rng = np.random.default_rng(1)
    y_pred, y_true = rng.standard_normal((2, 6, 10)).astype(np.float32)
    params, _ = compiler.make_params(np.float32)
    res, grad, res2, grad2 = (np.empty_like(y_pred) for _ in range(4))
    compiler.forward_kernel(y_pred, y_true, res, params)
    compiler.backward_kernel(y_pred, y_true, grad, params)
    compiler.forward_derivative_kernel(y_pred, y_true, res2, grad2, params)
    p, t = da.from_array(y_pred, chunks=(4, 3)), da.from_array(y_true, chunks=(3, 10))
    with dask.config.set(scheduler="synchronous"):
        got = dask.compute(sjd.forward(compiler, p, t), sjd.backward(compiler, p, t), *sjd.forward_derivative(compiler, p, t))
    for mine, theirs in zip((res, grad, res2, grad2), got):
        np.testing.assert_array_equal(mine, theirs)


def test_the_reference_agrees():
    """The chunked CPU_JIT forward against float64 numpy, not only against itself."""
    compiler = build([("tanh", {}), ("sigmoid", {})], "CPU_JIT")
    z = np.linspace(-5, 5, 2 * 999).reshape(2, 999)
    got = sjd.forward(compiler, da.from_array(z, chunks=(2, 100))).compute()
    np.testing.assert_allclose(got, np.stack([np.tanh(z[0]), 1 / (1 + np.exp(-z[1]))]), rtol=1e-14, atol=1e-15)


def test_node_axis_chunks_are_refused():
    compiler = build(CONFIGS, "CPU_JIT")
    z = da.zeros((8, 100), chunks=(4, 50), dtype=np.float32)
    with pytest.raises(ValueError, match=r"chunked along the node axis.*rechunk\(\{0: -1\}\)"):
        sjd.forward(compiler, z)
    batch_major = build(CONFIGS, "CPU_JIT", layout="batch_major")
    with pytest.raises(ValueError, match=r"rechunk\(\{1: -1\}\)"):
        sjd.backward(batch_major, z.T, z.T)


def test_bad_arguments_fail_before_any_task():
    compiler = build(CONFIGS, "CPU_JIT")
    z = da.zeros((8, 100), chunks=(8, 50), dtype=np.float32)
    with pytest.raises(KernelArgumentError):  # params in the wrong dtype
        sjd.forward(compiler, z, params=np.zeros(3, np.float64), offsets=compiler.make_params()[1])
    with pytest.raises(KernelArgumentError):  # 7 nodes' arrays for an 8-node layer
        sjd.forward(compiler, da.zeros((7, 100), chunks=(7, 50), dtype=np.float32))
    with pytest.raises(TypeError, match="z, err"):
        sjd.backward(compiler, z)
    with pytest.raises(ValueError, match="shape"):
        sjd.backward(compiler, z, z[:, :10])


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_parameter_gradients_over_chunks_are_a_deterministic_tree(layout):
    """param_backward: per-chunk sums added in a tree; the same bits on every scheduler, and the
    whole-array gradients to the rounding of the per-chunk sums."""
    compiler = build(CONFIGS, "CPU_JIT", layout=layout)
    z, err = inputs(layout, 8, 1000, np.float64)
    params, offsets = compiler.make_params(np.float64)
    whole = np.zeros_like(params)
    n, b = z.shape if layout == "node_major" else z.shape[::-1]
    compiler.param_backward_kernel(z, err, whole, params, offsets, n, b)
    total = sjd.param_backward(compiler, chunked(z, layout, 90), chunked(err, layout, 90), params=params,
                               offsets=offsets, split_every=3)
    results = {scheduler: total.compute(scheduler=scheduler) for scheduler in ("synchronous", "threads")}
    np.testing.assert_allclose(results["threads"], whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(results["threads"], results["synchronous"])
    assert np.any(whole != 0)


def test_loss_parameter_gradients_over_chunks():
    loss = build([("huber", {"delta": 0.7})], "CPU_JIT", mode="loss")
    rng = np.random.default_rng(3)
    y_pred, y_true = rng.standard_normal((40, 30)), rng.standard_normal((40, 30))
    residual = np.abs(y_pred - y_true)
    want = np.sum(np.where(residual >= 0.7, residual - 0.7, 0.0))  # d/d delta of torch's huber
    got = sjd.param_backward(loss, da.from_array(y_pred, chunks=(7, 11)), da.from_array(y_true, chunks=(7, 11)))
    np.testing.assert_allclose(got.compute(), [want], rtol=1e-12)


def test_import_error_says_how_to_install(tmp_path):
    """Without dask, importing symjit_numba.dask names the extra to install."""
    script = ("import sys\nsys.modules['dask'] = None\nsys.modules['dask.array'] = None\n"
              "try:\n    import symjit_numba.dask\nexcept ImportError as error:\n    print(error)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT).stdout
    assert "pip install 'symjit_numba[dask]'" in out


CLUSTER = """
    import sys
    import dask
    import numpy as np
    from distributed import Client, LocalCluster
    from symjit_numba import SymbolicJITCompiler, settings
    from symjit_numba import dask as sjd

    if __name__ == "__main__":
        methods = sys.argv[1].split(",")
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \\
                Client(cluster) as client:
            for method in methods:
                for layout in ("node_major", "batch_major"):
                    compiler = SymbolicJITCompiler(CONFIGS, method, layout=layout)
                    batch = 64 if method == "GPU_CUDA" else 4000
                    z, err = inputs(layout, len(CONFIGS), batch, np.float32)
                    params, offsets = compiler.make_params(np.float32)
                    expected = single_process(compiler, z, err, params, offsets)
                    chunk = batch // 8
                    futures = client.compute([
                        sjd.forward(compiler, chunked(z, layout, chunk), params=params, offsets=offsets),
                        sjd.backward(compiler, chunked(z, layout, chunk), chunked(err, layout, chunk),
                                     params=params, offsets=offsets),
                        *sjd.forward_derivative(compiler, chunked(z, layout, chunk), params=params, offsets=offsets),
                    ])
                    for mine, theirs in zip(expected, client.gather(futures)):
                        np.testing.assert_array_equal(mine, theirs)
                    # Parameter gradients: the same tree of partial sums as in this process.
                    gradients = sjd.param_backward(compiler, chunked(z, layout, chunk), chunked(err, layout, chunk),
                                                   params=params, offsets=offsets)
                    local = gradients.compute(scheduler="synchronous")
                    np.testing.assert_array_equal(client.compute(gradients).result(), local)
                    whole = np.zeros_like(params)
                    n, b = z.shape if layout == "node_major" else z.shape[::-1]
                    compiler.param_backward_kernel(z, err, whole, params, offsets, n, b)
                    np.testing.assert_allclose(local, whole, rtol=1e-5, atol=1e-3)
                    # The tasks ran in the worker processes, on compilers rebuilt there from their pickles.
                    rebuilt = client.run(lambda: sjd._rebuilt.cache_info().currsize)
                    assert len(rebuilt) == 2 and sum(rebuilt.values()) >= 1, rebuilt
                    print(method, layout, "ok", flush=True)
"""


@pytest.mark.parametrize("methods", [("CPU_JIT",), pytest.param(("CPU_JIT", "CPU_PYTHON", "GPU_CUDA"),
                                                                  marks=pytest.mark.slow)], ids=["CPU_JIT", "all"])
def test_local_cluster_with_two_worker_processes(tmp_path, methods):
    helpers = "\n".join(["import dask.array as da", f"CONFIGS = {CONFIGS!r}",
                         *(inspect.getsource(f) for f in (single_process, inputs, chunked))])
    path = tmp_path / "cluster.py"
    path.write_text(helpers + "\n" + textwrap.dedent(CLUSTER), encoding="utf-8")
    # The workers inherit the environment: this suite's kernel cache and the CUDA simulator.
    result = subprocess.run([sys.executable, str(path), ",".join(methods)], capture_output=True,
                            text=True, timeout=TIMEOUT, cwd=tmp_path, env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    for method in methods:
        for layout in ("node_major", "batch_major"):
            assert f"{method} {layout} ok" in result.stdout, result.stdout
