"""Configs are read as the user meant them, and mistakes in them are explained.

* a listed constant the formula does not use keeps its ``params`` slot, with a warning naming the
  formula's constants and the closest one (an error under ``warning_level="error"``);
* a bare name close to a named formula or function says so;
* a bare one-argument function name is ``f(num)``, refused in loss mode;
* what a layer compiles, and when: nothing at the first float32 call, a warning at a slow first
  float64 call unless ``warm_up`` ran, and many never-seen formulas compiled in worker processes.
"""

import logging
import uuid
import warnings

import numpy as np
import pytest

from symjit_numba import CompilationWarning, FormulaParsingError, SymbolicJITCompiler, settings, store
from symjit_numba.backends import cpu_workers

from .conftest import BACKENDS, build, run_activation

# -- unused constants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config, unused, hint", [
    (("swish", {"betta": 2.0}), "betta", "did you mean 'beta'?"),
    (("a*num", {"a": 1.0, "c": 5.0}), "c", "its constants are ['a']"),
    (("leaky_relu", {"alpha": 0.1, "alpah": 0.2}), "alpah", "did you mean 'alpha'?"),
])
def test_an_unused_constant_warns_and_keeps_its_slot(config, unused, hint):
    with pytest.warns(CompilationWarning, match=rf"does not use the constant '{unused}'.*") as caught:
        layer = SymbolicJITCompiler([config, ("relu", {})], "CPU_PYTHON")
    assert hint in str(caught[0].message)
    params, offsets = layer.make_params(np.float64)
    assert len(params) == len(config[1]) and offsets.tolist() == [0, len(config[1])]  # the seed's layout


def test_an_unused_constant_changes_nothing():
    with pytest.warns(CompilationWarning):
        layer = build([("swish", {"betta": 2.0})], "CPU_JIT")
    z = np.linspace(-3, 3, 13)[None, :]
    a, _ = run_activation(layer, z)
    np.testing.assert_allclose(a[0], z[0] / (1 + np.exp(-z[0])), rtol=1e-14)  # beta stays 1


def test_an_unused_constant_is_an_error_under_warning_level_error():
    with settings.override(warning_level="error"), pytest.raises(FormulaParsingError, match="did you mean 'beta'"):
        SymbolicJITCompiler([("swish", {"betta": 2.0})], "CPU_PYTHON")


def test_used_constants_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompilationWarning)
        SymbolicJITCompiler([("a*tanh(b*num) + c1e", {"a": 1.0, "b": 2.0, "c1e": 0.5}), ("swish", {"beta": 2.0}),
                             ("Piecewise((k*num, num < t), (num, True))", {"k": 0.1, "t": 0.0})], "CPU_PYTHON")


# -- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label, suggestion", [
    ("Relu", "the named formula 'relu'"),
    ("GELU", "the named formula 'gelu'"),
    ("sigmoyd", "the named formula 'sigmoid'"),
    ("tanhh", "tanh"),
    ("cosine", "the function 'cos'"),
])
def test_a_near_name_suggests_the_named_formula_or_function(label, suggestion):
    with pytest.raises(FormulaParsingError, match="did you mean") as caught:
        SymbolicJITCompiler([(label, {})], "CPU_PYTHON")
    assert suggestion in str(caught.value)


@pytest.mark.parametrize("method", BACKENDS)
def test_a_bare_function_name_is_the_function_of_num(method):
    layer = build([("cos", {}), ("tanh", {}), ("abs", {}), ("erf", {})], method)
    x = np.linspace(-2, 2, 9)
    z = np.stack([x] * 4)
    a, delta = run_activation(layer, z)
    from math import erf, exp, pi, sqrt
    np.testing.assert_allclose(a, [np.cos(x), np.tanh(x), np.abs(x), [erf(v) for v in x]], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(delta, [-np.sin(x), 1 - np.tanh(x) ** 2, np.sign(x),
                                       [2 / sqrt(pi) * exp(-v * v) for v in x]], rtol=1e-13, atol=1e-15)


def test_a_bare_function_name_is_refused_in_loss_mode():
    with pytest.raises(FormulaParsingError, match="y_pred"):
        SymbolicJITCompiler([("cos", {})], "CPU_PYTHON", mode="loss")


# -- when kernels compile ------------------------------------------------------------------------------


def _never_seen(k):
    """A formula no earlier test (or run) compiled, a*tanh(num) + c*sigmoid(num) with a fresh c; and c."""
    c = k + (uuid.uuid4().int % 10**8) / 10**8
    return f"a*tanh(num) + {c!r}*sigmoid(num)", c


@pytest.fixture
def compilations(monkeypatch):
    """Every numba compilation (or cache load) the CPU_JIT backend asks for, as a list."""
    calls = []
    original = store.compile_cached

    def counting(dispatcher, signature):
        calls.append(dispatcher.py_func.__name__)
        original(dispatcher, signature)

    monkeypatch.setattr("symjit_numba.backends.cpu_jit.compile_cached", counting)
    return calls


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_the_first_float32_forward_and_backward_compile_nothing(layout, compilations):
    """Built layers have forward and backward for float32; warm_up adds the rest before training."""
    configs = [(_never_seen(k)[0], {"a": 1.5}) for k in range(3) for _ in range(16)]  # runs of 16 nodes
    z = np.linspace(-2, 2, 48 * 8, dtype=np.float32).reshape((48, 8) if layout == "node_major" else (8, 48))
    a, d, delta = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    for warm_up in (False, True):
        layer = build(configs, "CPU_JIT", layout=layout)
        params, offsets = layer.make_params(np.float32)
        assert compilations  # the constructor compiled (or loaded)
        if warm_up:
            layer.warm_up(np.float32)
        compilations.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompilationWarning)
            layer.forward_kernel(z, a, params, offsets, 48, 8)
            layer.backward_kernel(z, d, delta, params, offsets, 48, 8)
        assert compilations == []
        layer.forward_derivative_kernel(z, a, d, params, offsets, 48, 8)
        assert (compilations == []) == warm_up  # the fused kernel: at its first call, or by warm_up


def test_a_slow_first_float64_call_warns_unless_warmed_up(compilations, monkeypatch):
    # Any compiling first call counts as slow here: how fast this CPU compiles must not matter.
    monkeypatch.setattr("symjit_numba.backends.cpu_jit._Readiness.SLOW_FIRST_CALL", 0.0)
    z = np.linspace(-2, 2, 16).reshape(2, 8)
    layer = build([(_never_seen(k)[0], {"a": 1.5}) for k in range(2)], "CPU_JIT")
    with pytest.warns(CompilationWarning, match=r"warm_up\(np.float64\)"):
        run_activation(layer, z)

    formulas = [_never_seen(k) for k in range(2)]
    layer = build([(text, {"a": 1.5}) for text, _ in formulas], "CPU_JIT")
    layer.warm_up(np.float64)
    compilations.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompilationWarning)
        a, _ = run_activation(layer, z)
    assert compilations == []
    want = [1.5 * np.tanh(z[j]) + c / (1 + np.exp(-z[j])) for j, (_, c) in enumerate(formulas)]
    np.testing.assert_allclose(a, want, rtol=1e-13, atol=1e-15)


def test_many_never_seen_formulas_compile_in_worker_processes(monkeypatch, caplog):
    """The layer's process only loads what the workers compiled, and computes the right values."""
    monkeypatch.setattr(cpu_workers, "WORTH_A_WORKER", 2)
    configs = [(f"{k + 1}*num + {uuid.uuid4().int % 10**6}", {}) for k in range(4)]
    with settings.override(compile_processes=2), caplog.at_level(logging.INFO, logger="symjit_numba"):
        layer = build(configs, "CPU_JIT")
    assert "in 2 worker processes" in caplog.text and "a compile worker failed" not in caplog.text
    z = np.linspace(-1, 1, 4 * 5).reshape(4, 5)
    a, delta = run_activation(layer, z.astype(np.float32))
    offsets = [float(text.split(" + ")[1]) for text, _ in configs]
    want = np.array([(k + 1) * z[k] + offsets[k] for k in range(4)])
    np.testing.assert_allclose(a, want, rtol=1e-6)
    np.testing.assert_allclose(delta, [[k + 1] * 5 for k in range(4)], rtol=0)


def test_warm_up_refuses_other_dtypes():
    with pytest.raises(ValueError, match="float32 or float64"):
        SymbolicJITCompiler([("relu", {})], "CPU_PYTHON").warm_up(np.int32)
