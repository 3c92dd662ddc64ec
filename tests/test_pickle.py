"""A compiler pickles (and deep-copies) as its definition and is rebuilt on arrival, on every backend.

The round trip must give identical outputs; ``spawn`` and ``forkserver`` pools given a pickled
compiler must return the parent's results (they run in a subprocess with a timeout, so a stuck pool
cannot hang the suite).
"""

import copy
import inspect
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from symjit_numba import (
    FormulaParsingError,
    register_formula,
)

from .conftest import build

TIMEOUT = 180
ACTIVATIONS = [("relu", {}), ("a*tanh(b*num)", {"a": 1.5, "b": 0.5}), ("swish", {"beta": 1.5}), ("gelu", {}),
               ("leaky_relu", {"alpha": 0.02})]


def outputs(compiler, dtype=np.float32):
    """Forward, backward and forward_derivative of the compiler on fixed inputs."""
    rng = np.random.default_rng(7)
    params, offsets = compiler.make_params(dtype)
    if compiler.mode == "loss":
        y_pred, y_true = (rng.standard_normal(48).astype(dtype) for _ in range(2))
        res, grad, res2, grad2 = (np.empty_like(y_pred) for _ in range(4))
        compiler.forward_kernel(y_pred, y_true, res, params)
        compiler.backward_kernel(y_pred, y_true, grad, params)
        compiler.forward_derivative_kernel(y_pred, y_true, res2, grad2, params)
        return res, grad, res2, grad2
    n, b = compiler.n_nodes, 48
    shape = (n, b) if compiler.layout == "node_major" else (b, n)
    z, err = (3 * rng.standard_normal(shape).astype(dtype) for _ in range(2))
    a, delta, a2, d2 = (np.empty_like(z) for _ in range(4))
    compiler.forward_kernel(z, a, params, offsets, n, b)
    compiler.backward_kernel(z, err, delta, params, offsets, n, b)
    compiler.forward_derivative_kernel(z, a2, d2, params, offsets, n, b)
    return a, delta, a2, d2


CASES = [("activation", "node_major", ACTIVATIONS), ("activation", "batch_major", ACTIVATIONS * 2),
         ("loss", "node_major", [("huber", {"delta": 0.5})])]


@pytest.mark.parametrize("mode,layout,configs", CASES, ids=["node_major", "batch_major", "loss"])
@pytest.mark.parametrize("round_trip", [lambda c: pickle.loads(pickle.dumps(c)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_round_trip_gives_identical_outputs(method, mode, layout, configs, round_trip):
    original = build(configs, method, mode=mode, layout=layout)
    copied = round_trip(original)
    assert copied is not original and copied.forward_kernel is not original.forward_kernel
    assert (copied.calculation_method, copied.mode, copied.layout, copied.device_id, copied.n_nodes) == \
        (original.calculation_method, original.mode, original.layout, original.device_id, original.n_nodes)
    for dtype in (np.float32, np.float64):
        for mine, theirs in zip(outputs(original, dtype), outputs(copied, dtype)):
            np.testing.assert_array_equal(mine, theirs)


def test_pickle_carries_the_definition_not_machine_code():
    compiler = build(ACTIVATIONS * 100, "CPU_JIT")
    blob = pickle.dumps(compiler)
    assert len(blob) < 20_000  # 500 configs: about 16 bytes each
    assert b"ELF" not in blob and b"forward_kernel" not in blob
    configs = [("relu", {}), ("tanh", None)]
    assert pickle.loads(pickle.dumps(build(configs, "CPU_PYTHON")))._definition["configs"] == \
        (("relu", {}), ("tanh", None))


def test_constructor_configs_are_copied():
    """Changing the caller's config dicts later changes neither the compiler nor its pickle."""
    configs = [("a*tanh(b*num)", {"a": 1.5, "b": 0.5})]
    compiler = build(configs, "CPU_PYTHON")
    configs[0][1]["a"] = 100.0
    assert pickle.loads(pickle.dumps(compiler)).make_params(np.float64)[0].tolist() == [1.5, 0.5]


def test_the_requested_method_travels_after_change_method():
    compiler = build(ACTIVATIONS, "CPU_JIT")
    compiler.change_method("CPU_PYTHON")
    assert pickle.loads(pickle.dumps(compiler)).calculation_method == "CPU_PYTHON"


def test_registered_formulas_travel_and_conflicts_are_refused():
    register_formula("pickle_test_act", "c*tanh(num)", {"c": 2.0}, overwrite=True)
    try:
        blob = pickle.dumps(build([("pickle_test_act", {}), ("relu", {})], "CPU_PYTHON"))
        register_formula("pickle_test_act", "c*sin(num)", {"c": 2.0}, overwrite=True)
        with pytest.raises(FormulaParsingError, match="pickle_test_act"):
            pickle.loads(blob)
    finally:
        register_formula("pickle_test_act", "c*tanh(num)", {"c": 2.0}, overwrite=True)


def run_script(tmp_path, script, env_changes=None, args=()):
    """Run ``script`` (given ACTIVATIONS and outputs) in a fresh Python process, with a timeout."""
    path = tmp_path / "script.py"
    helpers = f"import numpy as np\nACTIVATIONS = {ACTIVATIONS!r}\n\n{inspect.getsource(outputs)}\n"
    path.write_text(helpers + textwrap.dedent(script), encoding="utf-8")
    env = {**os.environ, **(env_changes or {})}
    result = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, env=env,
                            timeout=TIMEOUT, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_gpu_compiler_arriving_without_a_gpu_falls_back(tmp_path):
    """Pickled under the CUDA simulator, unpickled where numba sees no GPU: the fallback rules apply."""
    gpu = build(ACTIVATIONS, "GPU_CUDA")
    (tmp_path / "compiler.pkl").write_bytes(pickle.dumps(gpu))
    np.save(tmp_path / "expected.npy", np.stack(outputs(gpu)))
    script = """
        import pickle, warnings
        from symjit_numba import JITCompilationError, PerformanceWarning, settings
        blob = open("compiler.pkl", "rb").read()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiler = pickle.loads(blob)
        assert compiler.calculation_method == "CPU_JIT", compiler
        assert any(issubclass(w.category, PerformanceWarning) for w in caught), caught
        expected = np.load("expected.npy")
        for mine, theirs in zip(outputs(compiler), expected):
            np.testing.assert_allclose(mine, theirs, rtol=2e-6, atol=1e-6)
        settings.warning_level = "error"
        try:
            pickle.loads(blob)
        except JITCompilationError:
            print("raised")
    """
    # No simulator and no visible GPU (on a machine that has one too).
    out = run_script(tmp_path, script, {"NUMBA_ENABLE_CUDASIM": "0", "CUDA_VISIBLE_DEVICES": ""})
    assert "raised" in out


POOLS = """
    import multiprocessing, os, sys
    from symjit_numba import SymbolicJITCompiler, register_formula

    def work(compiler):
        return os.getpid(), compiler.calculation_method, outputs(compiler)

    if __name__ == "__main__":
        # A formula registered in the parent only: it must travel with the compilers.
        register_formula("pool_only_act", "c*tanh(num) + num/4", {"c": 2.0})
        configs = [("pool_only_act", {})] + ACTIVATIONS
        compilers = [SymbolicJITCompiler(configs, method, layout=layout)
                     for method in ("CPU_PYTHON", "CPU_JIT", "GPU_CUDA") for layout in ("node_major", "batch_major")]
        compilers.append(SymbolicJITCompiler([("huber", {"delta": 0.5})], "CPU_JIT", mode="loss"))
        expected = [outputs(c) for c in compilers]
        for context in sys.argv[1:]:
            with multiprocessing.get_context(context).Pool(2) as pool:
                results = pool.map(work, compilers, chunksize=1)
            assert all(pid != os.getpid() for pid, _, _ in results)
            for compiler, mine, (pid, method, theirs) in zip(compilers, expected, results):
                assert method == compiler.calculation_method, (method, compiler)
                for a, b in zip(mine, theirs):
                    np.testing.assert_array_equal(a, b)
            print(context, "ok", len({pid for pid, _, _ in results}), "workers")
"""


def test_spawn_and_forkserver_pools_return_the_parents_results(tmp_path):
    out = run_script(tmp_path, POOLS, args=("spawn", "forkserver"))
    assert "spawn ok" in out and "forkserver ok" in out, out
