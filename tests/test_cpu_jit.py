"""CPU_JIT specifics: disk cache, warm processes, corrupt caches, threads, no C compiler, fallback.

Numerical agreement with the reference lives in the formula, torch and layer tests; here the
questions are about the machinery around the kernels. Tests that need a fresh process run a small
script with ``subprocess`` against their own cache folder.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from symjit_numba import JITCompilationError, PerformanceWarning, SymbolicJITCompiler, settings
from symjit_numba.functions import FUNCTIONS_BY_NAME

from .conftest import build, run_activation, without_cache_location

W1 = [("relu", {}), ("sigmoid", {}), ("tanh", {}), ("gelu", {}), ("swish", {"beta": 1.5}),
      ("leaky_relu", {"alpha": 0.01}), ("softplus", {}), ("mish", {})]

SCRIPT = textwrap.dedent("""
    import sys, json
    import numpy as np
    from symjit_numba import SymbolicJITCompiler
    configs = [("relu", {}), ("leaky_relu", {"alpha": 0.1}), ("tanh", {}), ("a*sin(num)", {"a": 2.0})]
    layer = SymbolicJITCompiler(configs, "CPU_JIT")
    params, offsets = layer.make_params(np.float32)
    z = np.linspace(-3, 3, 4 * 50, dtype=np.float32).reshape(4, 50)
    a, d = np.empty_like(z), np.empty_like(z)
    layer.forward_kernel(z, a, params, offsets, 4, 50)
    layer.backward_kernel(z, np.ones_like(z), d, params, offsets, 4, 50)
    a2, d2 = np.empty_like(z), np.empty_like(z)
    layer.forward_derivative_kernel(z, a2, d2, params, offsets, 4, 50)
    params64, z64 = params.astype(np.float64), z.astype(np.float64)
    a64 = np.empty_like(z64)
    layer.forward_kernel(z64, a64, params64, offsets, 4, 50)
    from symjit_numba import settings  # a call split over the pool's spinning threads too
    from symjit_numba.backends import cpu_jit
    cpu_jit._pool.split_above, cpu_jit._pool.spin, settings.num_threads = 0.0, True, 2
    z_big = np.linspace(-3, 3, 4 * 16384, dtype=np.float32).reshape(4, 16384)
    a_big = np.empty_like(z_big)
    layer.forward_kernel(z_big, a_big, params, offsets, 4, 16384)
    from numba.core.registry import CPUDispatcher
    modules = [m for n, m in sys.modules.items() if n.startswith(("symjit_numba_kernels_", "symjit_numba.named_kernels."))]
    misses = sum(sum(f.stats.cache_misses.values()) for m in modules for f in vars(m).values()
                 if isinstance(f, CPUDispatcher))
    expected_a = np.stack([np.maximum(z[0], 0), np.where(z[1] > 0, z[1], 0.1 * z[1]), np.tanh(z[2]), 2 * np.sin(z[3])])
    expected_d = np.stack([(z[0] > 0) * 1.0, np.where(z[1] > 0, 1.0, 0.1), 1 - np.tanh(z[2]) ** 2, 2 * np.cos(z[3])])
    expected_big = np.stack([np.maximum(z_big[0], 0), np.where(z_big[1] > 0, z_big[1], 0.1 * z_big[1]),
                             np.tanh(z_big[2]), 2 * np.sin(z_big[3])])
    error = max(abs(x - expected).max() for x, expected in [(a, expected_a), (d, expected_d), (a2, expected_a),
                                                           (d2, expected_d), (a64, expected_a),
                                                           (a_big, expected_big)])
    print(json.dumps({"method": layer.calculation_method, "sympy": "sympy" in sys.modules, "misses": misses,
                      # imported only when numba refreshes its registries, which loading cached code skips
                      "registries": "numba.cpython.charseq" in sys.modules, "error": float(error)}))
""")


def _run_script(cache_dir, env_extra=None, script=SCRIPT):
    env = {**os.environ, "SYMJIT_NUMBA_CACHE_DIR": str(cache_dir), **(env_extra or {})}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_warm_process_needs_no_sympy_and_compiles_nothing(tmp_path):
    cold = _run_script(tmp_path)
    assert cold == {**cold, "method": "CPU_JIT", "sympy": True} and cold["misses"] > 0 and cold["error"] < 1e-6
    warm = _run_script(tmp_path)
    assert warm["method"] == "CPU_JIT"
    assert warm["sympy"] is False, "a warm process imported SymPy"
    assert warm["misses"] == 0, "a warm process recompiled kernels"
    assert warm["registries"] is False, "loading cached kernels refreshed numba's registries (~0.25 s)"
    assert warm["error"] < 1e-6


class _UnreadableCache:
    """Looks like numba's disk cache, but every direct lookup fails (as another numba version's might)."""

    def _load_overload(self, signature, context):
        raise OSError("unreadable index")

    def load_overload(self, signature, context):
        return None

    def save_overload(self, signature, result):
        pass


@pytest.mark.parametrize("cache", [None, _UnreadableCache()], ids=["no disk cache", "cache lookup fails"])
def test_compile_cached_falls_back_to_numba(cache, monkeypatch):
    """Without numba's disk cache, or if looking it up fails, numba's own compile path runs."""
    import numba

    from symjit_numba.store import compile_cached

    def halve(x, out):
        for i in range(x.size):
            out[i] = x[i] / 2

    dispatcher = numba.njit(halve)
    if cache is not None:
        monkeypatch.setattr(dispatcher, "_cache", cache)
    signature = (numba.float64[::1], numba.float64[::1])
    compile_cached(dispatcher, signature)
    assert signature in dispatcher.overloads
    x, out = np.arange(5.0), np.empty(5)
    dispatcher(x, out)
    np.testing.assert_array_equal(out, x / 2)


NAMED_SCRIPT = textwrap.dedent("""
    import sys, json, math
    import numpy as np
    from symjit_numba import SymbolicJITCompiler
    from symjit_numba.mathlib import vector_math as vm
    layer = SymbolicJITCompiler([("gelu", {}), ("swish", {"beta": 2.0}), ("elu", {})], "CPU_JIT")
    params, offsets = layer.make_params(np.float64)
    z = np.linspace(-4, 4, 3 * 40).reshape(3, 40)
    a, d = np.empty_like(z), np.empty_like(z)
    layer.forward_kernel(z, a, params, offsets, 3, 40)
    layer.backward_kernel(z, np.ones_like(z), d, params, offsets, 3, 40)
    phi = np.vectorize(lambda x: 0.5 * math.erfc(-x / math.sqrt(2)))(z[0])
    s = 1 / (1 + np.exp(-2 * z[1]))
    expected_a = np.stack([z[0] * phi, z[1] * s, np.where(z[2] > 0, z[2], np.expm1(z[2]))])
    expected_d = np.stack([phi + z[0] * np.exp(-z[0] ** 2 / 2) / math.sqrt(2 * math.pi), s + 2 * z[1] * s * (1 - s),
                           np.where(z[2] > 0, 1.0, np.exp(z[2]))])
    misses = sum(sum(getattr(vm, n).stats.cache_misses.values()) for n in ("exp", "expm1", "erfc", "sigmoid"))
    from symjit_numba.named_kernels import elu, gelu, swish
    named_misses = sum(sum(m.node_block.stats.cache_misses.values()) for m in (elu, gelu, swish))
    print(json.dumps({"method": layer.calculation_method, "sympy": "sympy" in sys.modules, "vm_misses": misses,
                      "named_misses": named_misses,
                      "error": float(max(abs(a - expected_a).max(), abs(d - expected_d).max()))}))
""")


@pytest.mark.slow
def test_named_formulas_cold_need_no_sympy_and_math_is_cached(tmp_path):
    """Named formulas ship printed and as modules; they and the math library are compiled once, not per process."""
    first = _run_script(tmp_path / "first", script=NAMED_SCRIPT)
    assert first["method"] == "CPU_JIT" and first["error"] < 1e-12
    assert first["sympy"] is False, "a layer of named formulas imported SymPy"
    second = _run_script(tmp_path / "second", script=NAMED_SCRIPT)  # an empty kernel cache again
    assert second["error"] < 1e-12
    assert second["vm_misses"] == 0, "vector_math was recompiled instead of loaded from numba's cache"
    assert second["named_misses"] == 0, "a named formula was recompiled instead of loaded from numba's cache"
    assert not list((tmp_path / "second").rglob("k_*.py")), "a named formula was generated into the cache"


@pytest.mark.slow
def test_corrupt_cache_files_are_rebuilt(tmp_path):
    _run_script(tmp_path)
    files = list(tmp_path.rglob("*"))
    modules = [f for f in files if f.suffix == ".py"]
    plans = [f for f in files if f.suffix == ".json"]
    indexes = [f for f in files if f.suffix == ".nbi"]
    data = [f for f in files if f.suffix == ".nbc"]
    assert modules and plans and indexes and data
    for path in modules + indexes + data:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    for path in plans:
        path.write_text("{not json")
    again = _run_script(tmp_path)
    assert again["method"] == "CPU_JIT" and again["error"] < 1e-6


@pytest.mark.slow
def test_two_processes_fill_one_cache_at_once(tmp_path):
    env = {**os.environ, "SYMJIT_NUMBA_CACHE_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["method"] == "CPU_JIT" and result["error"] < 1e-6


@pytest.mark.slow
def test_compiles_and_runs_without_a_c_compiler(tmp_path):
    # Only the Python interpreter's own folder on PATH: no gcc, cc, clang, g++ or ld.
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    for tool in ("gcc", "cc", "g++", "clang", "ld"):
        assert subprocess.run(["sh", "-c", f"PATH={bare} command -v {tool}"], capture_output=True).returncode != 0
    result = _run_script(tmp_path / "cache", {"PATH": str(bare), "CC": "", "CXX": ""})
    assert result["method"] == "CPU_JIT" and result["error"] < 1e-6


def _kernel_modules():
    return {n for n in sys.modules if n.startswith("symjit_numba_kernels_")}


def test_equal_configs_share_one_module():
    first = build(W1, "CPU_JIT")
    before = _kernel_modules()
    # Same unique formulas (other constant values, more nodes): no new module, same source.
    again = build(W1 * 3 + [("leaky_relu", {"alpha": 0.3})], "CPU_JIT")
    assert _kernel_modules() == before
    assert again.source() == first.source()
    assert len(again.plan.formulas) == len(W1)  # identical (formula, constant names) share one id
    assert again.plan.func_ids[-1] == again.plan.func_ids[5]


def test_a_change_to_the_code_generators_gives_a_new_module_file(tmp_path, monkeypatch):
    """numba's cache of a module file holds inlined vector_math code: it must not outlive a change."""
    from symjit_numba import store
    from symjit_numba.codegen import fingerprint

    configs = [("x*erf(x) + 0.5", {}), ("tanh(x) - x/4", {})]
    with settings.override(cache_dir=tmp_path):
        build(configs, "CPU_JIT")
        monkeypatch.setattr(store, "_loaded", {})
        monkeypatch.setattr(fingerprint, "codegen_fingerprint", lambda: "a-changed-vector-math")
        build(configs, "CPU_JIT")
    modules = sorted(p.name for p in tmp_path.rglob("k_*.py"))
    assert len(modules) == 2 * len(configs), modules  # each formula's module, before and after


def test_source_is_readable_and_names_each_formula():
    layer = build(W1, "CPU_JIT")
    text = layer.source()
    compile(text, "<kernel>", "exec")  # valid Python
    for name, _ in W1:
        assert re.search(rf"^    {name}  \(", text, re.MULTILINE), name
    assert text.count("def node_block(") == len(W1) and "nogil=True" in text
    assert "for i in range(z_s.size)" in text  # one homogeneous inner loop per formula


# (not sin or cos: their float32 versions reduce the argument in float64 on purpose, see vector_math)
@pytest.mark.parametrize("config", [("gelu", {}), ("swish", {"beta": 1.5}), ("a*x**2 + 0.5*tanh(x) + x/3", {"a": 2.0})])
def test_float32_kernels_do_not_promote_to_float64(config):
    layer = build([config], "CPU_JIT")
    # Compile the generated source afresh (numba cannot show the LLVM IR of cached code).
    namespace = {}
    exec(compile(layer.source().replace("cache=True", "cache=False"), "<kernel>", "exec"), namespace)
    from numba import boolean, float32, int64

    signature = (boolean, *[float32[::1]] * 4, int64)
    namespace["node_block"].compile(signature)
    llvm = namespace["node_block"].inspect_llvm(signature)
    assert "fpext float" not in llvm, "float32 kernel converts to double"
    assert " double " not in llvm.split("define", 2)[1], "float32 kernel does double arithmetic"


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_read_only_inputs_reach_each_formula_correctly(layout):
    """Read-only inputs are typed differently by numba (the task runners are compiled again for them),
    yet each formula's function, called through its address, must still read them right."""
    layer, reference = build(W1 * 4, "CPU_JIT", layout=layout), build(W1 * 4, "CPU_PYTHON", layout=layout)
    rng = np.random.default_rng(5)
    z = rng.normal(scale=3, size=(32, 300) if layout == "node_major" else (300, 32)).astype(np.float32)
    err = rng.normal(size=z.shape).astype(np.float32)
    params, _ = layer.make_params(np.float32)
    for array in (z, err, params):
        array.flags.writeable = False
    for result, expected in zip(run_activation(layer, z, err, params), run_activation(reference, z, err, params)):
        np.testing.assert_allclose(result, expected, rtol=2e-5, atol=2e-6)


def test_a_formula_function_without_a_c_wrapper_is_refused():
    """The task runners call formula functions through their C wrappers: a null address must never be called."""
    import numba

    from symjit_numba.backends.cpu_jit import _Kernel

    def node_block(backward, z_s, err_s, out_s, params, p):
        out_s[:] = z_s

    kernel = _Kernel(numba.njit(no_cfunc_wrapper=True)(node_block), "a test function")
    with pytest.raises(JITCompilationError, match="without a C wrapper"):
        kernel.address(np.dtype(np.float32))
    assert _Kernel(numba.njit(node_block), "a test function").address(np.dtype(np.float32)) != 0


def test_task_runners_compile_without_a_writable_cache(monkeypatch):
    """Where numba finds no writable cache location it raises at decoration: compile per process instead."""
    from symjit_numba.backends import cpu_tasks

    monkeypatch.setattr(cpu_tasks, "njit", without_cache_location(cpu_tasks.njit))

    def double(x):
        return 2 * x

    compiled = cpu_tasks._jit(double)
    assert compiled(21) == 42
    assert type(compiled._cache).__name__ == "NullCache"


def test_nan_and_inf_follow_numpy():
    layer = build([("tanh", {}), ("sigmoid", {}), ("exp(num)", {}), ("num**2", {})], "CPU_JIT")
    z = np.array([[np.nan, np.inf, -np.inf, 100.0]] * 4, dtype=np.float32)
    a, _ = run_activation(layer, z)
    with np.errstate(over="ignore"):
        expected = np.stack([np.tanh(z[0]), 1 / (1 + np.exp(-z[1])), np.exp(z[2]), z[3] ** 2])
    np.testing.assert_array_equal(a, expected)  # NaN in gives NaN out, overflow gives inf


def test_one_node_with_a_huge_batch_and_threads_agree():
    layer = build([("gelu", {})], "CPU_JIT")
    z = np.random.default_rng(1).normal(size=(1, 1_000_003)).astype(np.float64)
    a, d = run_activation(layer, z)
    ref = build([("gelu", {})], "CPU_PYTHON")
    a_ref, d_ref = run_activation(ref, z)
    np.testing.assert_allclose(a, a_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d, d_ref, rtol=1e-13, atol=1e-15)


def test_the_pool_splits_only_calls_worth_a_round_trip(monkeypatch):
    """TaskPool.run: below SERIAL_BELOW elements never split; above, split only when the layer's
    learned cost says one thread would take SPLIT_ABOVE_ROUND_TRIPS round trips or more; the cost
    is learned from each call (a first call runs on one thread)."""
    from symjit_numba.backends.cpu_pool import SERIAL_BELOW, SPLIT_ABOVE_ROUND_TRIPS, CallCost, TaskPool

    pool = TaskPool()
    round_trip = 1.0  # far above any test kernel, even on a loaded machine (1 ms was not always)
    monkeypatch.setattr(pool, "round_trip", lambda: round_trip)
    pool._round_trip = (1, round_trip)
    ranges = []

    def kernel(first, last):
        ranges.append((first, last))

    elements = 4 * SERIAL_BELOW
    with settings.override(num_threads=2):
        pool.run(kernel, 8, SERIAL_BELOW - 1)  # small: one thread, no cost needed
        cost = CallCost()
        pool.run(kernel, 8, elements, cost=cost)  # unknown cost: one thread, and measured
        assert cost.seconds_per_element is not None and cost.seconds_per_element < 1e-6
        pool.run(kernel, 8, elements, cost=cost)  # far below 3 round trips: one thread again
        assert ranges == [(0, 8)] * 3
        ranges.clear()
        cost.seconds_per_element = SPLIT_ABOVE_ROUND_TRIPS * round_trip / elements * 1.01  # worth splitting
        pool.run(kernel, 8, elements, cost=cost)
        assert sorted(ranges) == [(0, 4), (4, 8)]
        assert cost.seconds_per_element == 0.0  # the split call took less than a round trip: re-learned
        ranges.clear()
        pool.split_above = 0.0  # split every call of SERIAL_BELOW elements or more (the test suite's setting)
        pool.run(kernel, 8, elements, cost=CallCost())
        assert sorted(ranges) == [(0, 4), (4, 8)]


def test_eight_threads_forty_calls_each_identical_results():
    layer = build(W1 * 8, "CPU_JIT")
    rng = np.random.default_rng(2)
    z = rng.normal(scale=4, size=(64, 2048)).astype(np.float32)
    err = rng.normal(size=z.shape).astype(np.float32)
    expected_a, expected_d = run_activation(layer, z, err)
    failures = []

    def worker():
        params, offsets = layer.make_params(np.float32)
        a, d = np.empty_like(z), np.empty_like(z)
        for _ in range(40):
            layer.forward_kernel(z, a, params, offsets, 64, 2048)
            layer.backward_kernel(z, err, d, params, offsets, 64, 2048)
            if not (np.array_equal(a, expected_a) and np.array_equal(d, expected_d)):
                failures.append("mismatch")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_numba_failure_falls_back_or_raises(monkeypatch):
    # A real numba failure: make the table point sin at a function numba does not know.
    broken = FUNCTIONS_BY_NAME["sin"].__class__(**{**FUNCTIONS_BY_NAME["sin"].__dict__, "numba": "math.no_such_function"})
    monkeypatch.setitem(FUNCTIONS_BY_NAME, "sin", broken)
    from symjit_numba import functions

    monkeypatch.setitem(functions.FUNCTIONS_BY_SYMPY, broken.sympy, broken)
    configs = [("relu", {}), ("sin(num)*1.2345", {})]
    with settings.override(use_kernel_cache=False):
        with pytest.warns(PerformanceWarning, match="CPU_JIT is not available"):
            layer = SymbolicJITCompiler(configs, "CPU_JIT")
        assert layer.calculation_method == "CPU_PYTHON"
        z = np.linspace(-2, 2, 8).reshape(2, 4)
        a, _ = run_activation(layer, z)
        np.testing.assert_allclose(a[1], np.sin(z[1]) * 1.2345)
        with settings.override(warning_level="error"):
            with pytest.raises(JITCompilationError, match=r"sin\(num\)\*1.2346"):
                SymbolicJITCompiler([("sin(num)*1.2346", {})], "CPU_JIT")


def test_cache_dir_follows_settings(tmp_path):
    with settings.override(cache_dir=tmp_path):
        build([("x/(1 + abs(x)) + 0.125", {})], "CPU_JIT")
    assert list(Path(tmp_path).rglob("k_*.py")), "the generated module was not written to settings.cache_dir"


@pytest.mark.parametrize("runs", ["long", "interleaved"])
def test_batch_major_long_runs_and_interleaved_formulas(runs):
    """Long runs of one formula use the batch-major kernel; interleaved ones the tiled node-major one.
    Every node has constants of its own, so a kernel that read one node's constants for another
    (or one run's for the whole run) fails."""
    kinds = [("relu", {}), ("a*tanh(num)", {"a": 1.5}), ("swish", {"beta": 1.5}), ("leaky_relu", {"alpha": 0.1})]
    configs = [kinds[j // 20] for j in range(80)] if runs == "long" else [kinds[j % 4] for j in range(80)]
    rng = np.random.default_rng(5)
    z = rng.normal(scale=3, size=(70, 80))
    err = rng.normal(size=z.shape)
    results = []
    for method in ("CPU_JIT", "CPU_PYTHON"):
        compiler = build(configs, method, layout="batch_major")
        params, offsets = compiler.make_params(np.float64)
        params = np.random.default_rng(6).uniform(0.2, 2.0, params.size)
        grad = np.zeros_like(params)
        delta = np.empty_like(z)
        compiler.backward_with_params_kernel(z, err, delta, grad, params, offsets, 80, 70)
        results.append((*run_activation(compiler, z, err, params), delta, grad))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def _skewed(shape, dtype, skew, fill):
    """A C-contiguous array whose data starts ``skew`` elements past a 64-byte boundary."""
    size = int(np.prod(shape))
    room = np.empty(size + 64, dtype=dtype)
    start = (-room.ctypes.data) % 64 // room.itemsize + skew
    array = room[start:start + size].reshape(shape)
    array[...] = fill
    return array


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (8, 8), (16, 16), (16, 24), (129, 65), (300, 1000), (3, 700),
                                   (33, 48), (48, 64)])
@pytest.mark.parametrize("region", ["whole", "inside"])
@pytest.mark.parametrize("skew", [0, 1, 5])
def test_tile_gather_and_scatter_are_numpy_transposes(shape, dtype, region, skew):
    """A tile's moves (cpu_tasks._move): vector-shuffled square blocks (from where the layer's rows
    reach a cache line, with overlapping blocks at the ends of a tile) and element-wise edges, each
    node into its sorted row of the tile (a random permutation here) and back, nothing written
    outside the tile's rows and nodes; layers starting ``skew`` elements past a cache line."""
    from symjit_numba.backends.cpu_tasks import _move

    b, n = shape
    r0, r1, k0, k1 = (0, b, 0, n) if region == "whole" else (b // 4, b - b // 5, n // 3, n)
    rng = np.random.default_rng(b * n)
    layer = _skewed(shape, dtype, skew, rng.standard_normal(shape))
    pos = np.arange(n, dtype=np.int64)
    pos[k0:k1] = k0 + rng.permutation(k1 - k0)
    tile = np.full((k1 - k0 + 2, r1 - r0 + 3), -1.0, dtype=dtype)
    _move(layer, tile, r0, r1, k0, k1, pos, True)
    want = np.full_like(tile, -1.0)
    want[pos[k0:k1] - k0, :r1 - r0] = layer[r0:r1, k0:k1].T
    np.testing.assert_array_equal(tile, want)
    back = _skewed(shape, dtype, skew, -1.0)
    _move(tile, back, r0, r1, k0, k1, pos, False)
    expected = np.full_like(layer, -1.0)
    expected[r0:r1, k0:k1] = layer[r0:r1, k0:k1]
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(600, 70), (256, 32), (5, 97), (1, 1), (40, 1100)])
def test_interleaved_batch_major_tiles_equal_node_major_bits(shape, dtype):
    """The tiled path (tiles of TILE_BATCH samples x TILE_NODES nodes, edges and several tiles of
    nodes included, each tile's nodes sorted by formula) runs each node's formula on the same
    values: the same bits as the node-major layout; its constants' gradients (float64 sums, added
    in another order) agree to rounding."""
    b, n = shape
    kinds = [("relu", {}), ("a*tanh(num)", {"a": 1.5}), ("swish", {"beta": 1.5}), ("gelu", {})]
    configs = [kinds[j % len(kinds)] for j in range(n)]
    rng = np.random.default_rng(b + n)
    z = (rng.normal(scale=3, size=(b, n))).astype(dtype)
    err = rng.normal(size=(b, n)).astype(dtype)
    by_rows = build(configs, "CPU_JIT", layout="batch_major")
    by_nodes = build(configs, "CPU_JIT")
    params, offsets = by_nodes.make_params(dtype)
    outputs, sums = {}, {}
    for name, layer, zz, ee in (("rows", by_rows, z, err), ("nodes", by_nodes, z.T.copy(), err.T.copy())):
        a, d, a2, d2, d3 = (np.full_like(zz, np.nan) for _ in range(5))
        g, g2 = np.full_like(params, np.nan), np.full_like(params, np.nan)
        with settings.override(num_threads=2):
            layer.forward_kernel(zz, a, params, offsets, n, b)
            layer.backward_kernel(zz, ee, d, params, offsets, n, b)
            layer.forward_derivative_kernel(zz, a2, d2, params, offsets, n, b)
            layer.backward_with_params_kernel(zz, ee, d3, g, params, offsets, n, b)
            layer.param_backward_kernel(zz, ee, g2, params, offsets, n, b)
        outputs[name] = [x if name == "rows" else x.T for x in (a, d, a2, d2, d3)]
        sums[name] = (g, g2)
    for got, want in zip(outputs["rows"], outputs["nodes"]):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(sums["rows"], sums["nodes"]):
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-30)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(70, 1), (300, 7), (33, 512), (1, 64)])
def test_short_batches_grouped_by_formula_give_the_per_node_bits(shape, dtype, threads, monkeypatch):
    """A node-major call of at most GROUPED_BATCH samples runs as chunks of same-formula nodes
    (cpu_tasks.grouped): each node's formula on the same values, its sums in the same order, so
    every output and every constant's gradient has the bits of the per-node tasks."""
    from symjit_numba.backends import cpu_jit

    n, b = shape
    assert b <= cpu_jit.GROUPED_BATCH
    kinds = [("relu", {}), ("a*tanh(num)", {"a": 1.5}), ("swish", {"beta": 1.5}), ("gelu", {}),
             ("x*c + d", {"c": 2.0, "d": -1.0})]
    configs = [kinds[(j * 7) % len(kinds)] for j in range(n)]
    rng = np.random.default_rng(n + b)
    z, err = rng.normal(scale=3, size=(n, b)).astype(dtype), rng.normal(size=(n, b)).astype(dtype)
    layer = build(configs, "CPU_JIT")
    params, offsets = layer.make_params(dtype)
    results = []
    for grouped_batch in (cpu_jit.GROUPED_BATCH, 0):  # grouped, then the per-node tasks
        monkeypatch.setattr(cpu_jit, "GROUPED_BATCH", grouped_batch)
        outputs = [np.full_like(z, np.nan) for _ in range(5)] + [np.full_like(params, np.nan) for _ in range(2)]
        a, d, a2, d2, d3, g, g2 = outputs
        with settings.override(num_threads=threads):
            layer.forward_kernel(z, a, params, offsets, n, b)
            layer.backward_kernel(z, err, d, params, offsets, n, b)
            layer.forward_derivative_kernel(z, a2, d2, params, offsets, n, b)
            layer.backward_with_params_kernel(z, err, d3, g, params, offsets, n, b)
            layer.param_backward_kernel(z, err, g2, params, offsets, n, b)
        results.append(outputs)
    for k, (grouped, per_node) in enumerate(zip(*results)):
        assert k >= 5 or not np.isnan(per_node).any()  # (params entries no node owns stay NaN)
        np.testing.assert_array_equal(grouped, per_node)


_PERIOD_KINDS = [("relu", {}), ("a*tanh(num)", {"a": 1.5}), ("swish", {"beta": 1.5}), ("gelu", {}),
                 ("leaky_relu", {"alpha": 0.1}), ("x*c + d", {"c": 2.0, "d": -1.0}), ("mish", {}), ("sigmoid", {}),
                 ("elu", {"alpha": 1.2}), ("celu", {"alpha": 0.8}), ("selu", {}), ("softsign", {}), ("hardswish", {}),
                 ("silu", {}), ("logsigmoid", {}), ("tanhshrink", {})]


@pytest.mark.parametrize("period, n, b, dtype", [
    *((period, n, b, dtype) for period, n, b in [(2, 64, 70), (3, 96, 5), (5, 510, 67), (6, 102, 3), (8, 512, 67), (8, 136, 1)]
      for dtype in (np.float32, np.float64)),
    (16, 272, 9, np.float32),  # (compiling a period of 16 for every kind takes 14 s a dtype)
])
def test_periodic_batch_major_equals_node_major(period, n, b, dtype):
    """A batch-major layer whose formulas repeat every few nodes computes every kernel with the
    period's own module (rows split position by position): each node's formula with its own
    constants (random here, so reading another node's would show). Element-wise results have the
    same bits as the node-major layout, in place too (the output is z, or err); the constants'
    gradients (float64 sums in another order) agree to rounding, and in float64 everything agrees
    with numpy's evaluation of the formulas (CPU_PYTHON). Periods of 5 and 6 (n = 510, 102) leave
    rows that are not whole vectors."""
    from symjit_numba.backends.cpu_jit import task_layout

    configs = [_PERIOD_KINDS[j % period] for j in range(n)]
    by_rows = build(configs, "CPU_JIT", layout="batch_major")
    assert task_layout(by_rows.plan, "batch_major").period is not None
    assert f"repeat\nevery {period} nodes" in by_rows.source()
    by_nodes = build(configs, "CPU_JIT")
    params, offsets = by_nodes.make_params(dtype)
    params = np.random.default_rng(period).uniform(0.5, 2.0, params.size).astype(dtype)
    rng = np.random.default_rng(n + b)
    z = rng.normal(scale=3, size=(b, n)).astype(dtype)
    err = rng.normal(size=(b, n)).astype(dtype)
    rows = {name: np.full_like(z, np.nan) for name in ("a", "delta", "a2", "d2", "delta2")}
    nodes = {name: np.full((n, b), np.nan, dtype) for name in ("a", "delta", "a2", "d2")}
    grads = {name: np.full_like(params, np.nan) for name in ("rows", "rows2", "nodes")}
    with settings.override(num_threads=2):
        by_rows.forward_kernel(z, rows["a"], params, offsets, n, b)
        by_rows.backward_kernel(z, err, rows["delta"], params, offsets, n, b)
        by_rows.forward_derivative_kernel(z, rows["a2"], rows["d2"], params, offsets, n, b)
        by_rows.param_backward_kernel(z, err, grads["rows"], params, offsets, n, b)
        by_rows.backward_with_params_kernel(z, err, rows["delta2"], grads["rows2"], params, offsets, n, b)
        zt, errt = z.T.copy(), err.T.copy()
        by_nodes.forward_kernel(zt, nodes["a"], params, offsets, n, b)
        by_nodes.backward_kernel(zt, errt, nodes["delta"], params, offsets, n, b)
        by_nodes.forward_derivative_kernel(zt, nodes["a2"], nodes["d2"], params, offsets, n, b)
        by_nodes.param_backward_kernel(zt, errt, grads["nodes"], params, offsets, n, b)
        z_in_place, err_in_place = z.copy(), err.copy()
        by_rows.forward_kernel(z_in_place, z_in_place, params, offsets, n, b)
        by_rows.backward_kernel(z, err_in_place, err_in_place, params, offsets, n, b)
    for got, expected in ((rows["a"], "a"), (z_in_place, "a"), (rows["a2"], "a2"), (rows["delta"], "delta"),
                          (err_in_place, "delta"), (rows["delta2"], "delta"), (rows["d2"], "d2")):
        np.testing.assert_array_equal(got, nodes[expected].T)
    for got in (grads["rows"], grads["rows2"]):
        np.testing.assert_allclose(got, grads["nodes"], rtol=1e-12, atol=1e-12 * b)
    if dtype == np.float64:
        reference = build(configs, "CPU_PYTHON", layout="batch_major")
        a_numpy, delta_numpy, grad_numpy = np.empty_like(z), np.empty_like(z), np.empty_like(params)
        reference.forward_kernel(z, a_numpy, params, offsets, n, b)
        reference.backward_kernel(z, err, delta_numpy, params, offsets, n, b)
        reference.param_backward_kernel(z, err, grad_numpy, params, offsets, n, b)
        np.testing.assert_allclose(rows["a"], a_numpy, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(rows["delta"], delta_numpy, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grads["rows"], grad_numpy, rtol=1e-10, atol=1e-12 * b)


def test_periodic_layer_with_a_scalar_only_function():
    """A formula whose function has only a scalar version (lgamma, digamma) gets a loop of its own
    over the block, so that the other positions' shared loop stays vectorisable: the layer takes
    the periodic module, its source shows the loops so, and it computes right."""
    from symjit_numba.backends.cpu_jit import task_layout

    configs = [("relu", {}), ("loggamma(num + 5)", {}), ("swish", {"beta": 1.5}), ("tanh", {})] * 16
    layer = build(configs, "CPU_JIT", layout="batch_major")
    assert task_layout(layer.plan, "batch_major").period is not None
    row_block = layer.source().split("def row_block_both")[0]  # (forward and backward)
    loops = re.findall(r"^( *)for i in range\(lanes\):\n((?:\1    .*\n)+)", row_block, flags=re.M)
    positions = [re.findall(r"num = z_b\[\d+, i\]  # (.*)", body) for _, body in loops]
    assert positions and all(p in (["relu", "swish", "tanh"], ["loggamma(num + 5)"]) for p in positions), positions
    n, b = len(configs), 33
    rng = np.random.default_rng(7)
    z, err = rng.normal(scale=2, size=(b, n)), rng.normal(size=(b, n))
    params, offsets = layer.make_params(np.float64)
    reference = build(configs, "CPU_PYTHON", layout="batch_major")
    for kernel, arguments in (("forward_kernel", (z,)), ("backward_kernel", (z, err))):
        expected, got = np.empty_like(z), np.empty_like(z)
        getattr(reference, kernel)(*arguments, expected, params, offsets, n, b)
        getattr(layer, kernel)(*arguments, got, params, offsets, n, b)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("configs, why", [
    ([_PERIOD_KINDS[j % 3] for j in range(40)], "too few periods in a row"),
    ([_PERIOD_KINDS[j % 3] for j in range(98)], "the nodes are not whole periods"),
    ([(f"tanh(num) + {k}", {}) for k in range(17)] * 20, "a period longer than MAX_PERIOD"),
    ([(f"tanh(num) + {k}", {}) for k in range(7)] * 20, "a period whose rows split with too many shuffles"),
    ([("relu", {}), ("sigmoid", {}), ("relu", {}), ("tanh", {})] * 15 + [("relu", {})] * 4, "no period"),
])
def test_layers_that_are_not_periodic_keep_the_tiles(configs, why):
    """Only layers of at least PERIOD_REPEATS whole periods of at most MAX_PERIOD formulas, whose rows
    split cheaply, take the periodic module; the others keep the tiles, and still compute right."""
    from symjit_numba.backends.cpu_jit import task_layout

    layer = build(configs, "CPU_JIT", layout="batch_major")
    tasks = task_layout(layer.plan, "batch_major")
    assert tasks.runner == "tiled" and tasks.period is None, why
    n, b = len(configs), 9
    z = np.random.default_rng(n).normal(scale=2, size=(b, n))
    params, offsets = layer.make_params(np.float64)
    expected = np.empty_like(z)
    build(configs, "CPU_PYTHON", layout="batch_major").forward_kernel(z, expected, params, offsets, n, b)
    a = np.empty_like(z)
    layer.forward_kernel(z, a, params, offsets, n, b)
    np.testing.assert_allclose(a, expected, rtol=1e-13, atol=1e-13)
