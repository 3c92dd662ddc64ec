"""Mistakes a new user makes are refused with the right exception and a message that matches what
happened and says what to do (issue 12, "Misleading").

Each test asserts the exception type and the key words of the message.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from symjit_numba import (
    ConfigurationError,
    FormulaParsingError,
    InvalidDeviceIDError,
    JITCompilationError,
    KernelArgumentError,
    PerformanceWarning,
    SymbolicJITCompiler,
    SymJITError,
    settings,
)
from symjit_numba.__main__ import main
from symjit_numba.backends import gpu_cuda

# -- GPU_CUDA under warning_level="error": the message says nothing fell back ----------------------------------

@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without GPUs: numba.cuda is unavailable and sees none."""
    monkeypatch.setattr(gpu_cuda, "is_available", lambda: False)


def test_error_level_says_nothing_falls_back(no_gpu):
    with settings.override(warning_level="error"):
        with pytest.raises(JITCompilationError) as caught:
            SymbolicJITCompiler([("relu", {})], "GPU_CUDA")
    message = str(caught.value)
    assert "using CPU_JIT instead" not in message  # the old text claimed a fall-back that did not happen
    for words in ("GPU_CUDA cannot be used", "no CUDA GPU", "warning_level is 'error'", "nothing falls back",
                  "set it to 'warn'"):
        assert words in message, message
    assert isinstance(caught.value.__cause__, JITCompilationError)  # the backend's own reason, chained


def test_warn_level_says_what_is_used_instead(no_gpu):
    with pytest.warns(PerformanceWarning, match="GPU_CUDA is not available, using CPU_JIT instead: no CUDA GPU"):
        layer = SymbolicJITCompiler([("relu", {})], "GPU_CUDA")
    assert layer.calculation_method == "CPU_JIT"


# -- environment variables: an invalid value warns and uses the default, never breaks the import --------------

def _import_with(**environment):
    """Import symjit_numba in a fresh process with ``environment``; return its settings and warnings."""
    code = (
        "import json, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import symjit_numba\n"
        "from symjit_numba.settings import _cores\n"
        "s = symjit_numba.settings\n"
        "print(json.dumps({'num_threads': s.num_threads, 'cores': _cores(), 'cache_dir': str(s.cache_dir),\n"
        "                  'warnings': [[w.category.__name__, str(w.message)] for w in caught\n"
        "                               if w.category.__module__.startswith('symjit_numba')]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SYMJIT_NUMBA_NUM_THREADS", "SYMJIT_NUMBA_CACHE_DIR")}
    env.update(environment)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_invalid_num_threads_warns_and_uses_the_default(value):
    seen = _import_with(SYMJIT_NUMBA_NUM_THREADS=value)
    assert seen["num_threads"] == seen["cores"]
    [(category, message)] = seen["warnings"]
    assert category == "ConfigurationWarning"
    for words in ("SYMJIT_NUMBA_NUM_THREADS", repr(value), "positive integer", "default", str(seen["cores"])):
        assert words in message, message


def test_valid_environment_values_are_used_silently(tmp_path):
    seen = _import_with(SYMJIT_NUMBA_NUM_THREADS="3", SYMJIT_NUMBA_CACHE_DIR=str(tmp_path / "kernels"))
    assert seen["num_threads"] == 3 and seen["cache_dir"] == str(tmp_path / "kernels")
    assert seen["warnings"] == []


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG_CACHE_HOME is read on Linux and other Unix")
def test_relative_xdg_cache_home_is_ignored_with_a_warning(tmp_path):
    seen = _import_with(XDG_CACHE_HOME="relative/cache")
    assert seen["cache_dir"] == os.path.join(os.path.expanduser("~"), ".cache", "symjit_numba")
    [(category, message)] = seen["warnings"]
    assert category == "ConfigurationWarning"
    for words in ("XDG_CACHE_HOME", "'relative/cache'", "absolute path", "default"):
        assert words in message, message
    seen = _import_with(XDG_CACHE_HOME=str(tmp_path))
    assert seen["cache_dir"] == str(tmp_path / "symjit_numba") and seen["warnings"] == []


# -- device ids: 0 always, any other id must name a visible GPU, on every backend ------------------------------

@pytest.mark.parametrize("method", ["CPU_PYTHON", "CPU_JIT", "GPU_CUDA"])
def test_device_id_beyond_the_visible_gpus_is_refused_on_every_backend(method):
    count = gpu_cuda.gpu_count()  # the CUDA simulator reports 1
    assert count >= 1
    with pytest.raises(InvalidDeviceIDError) as caught:
        SymbolicJITCompiler([("relu", {})], method, device_id=count)
    message = str(caught.value)
    assert f"device_id={count}" in message and f"sees {count} GPU" in message, message
    layer = SymbolicJITCompiler([("relu", {})], method, device_id=count - 1)
    with pytest.raises(InvalidDeviceIDError, match=f"device_id={count + 4} but numba.cuda sees {count} GPU"):
        layer.set_gpu_id(count + 4)
    assert layer.device_id == count - 1 and layer.calculation_method == method  # a refused id changes nothing


@pytest.fixture
def zero_gpus(monkeypatch):
    monkeypatch.setattr(gpu_cuda, "gpu_count", lambda: 0)


@pytest.mark.parametrize("method", ["CPU_PYTHON", "CPU_JIT"])
def test_without_gpus_only_device_id_0_is_accepted(zero_gpus, method):
    with pytest.raises(InvalidDeviceIDError) as caught:
        SymbolicJITCompiler([("relu", {})], method, device_id=7)
    message = str(caught.value)
    for words in ("device_id=7", "sees 0 GPUs", "only 0"):
        assert words in message, message
    layer = SymbolicJITCompiler([("relu", {})], method, device_id=0)
    with pytest.raises(InvalidDeviceIDError, match="device_id=5 but numba.cuda sees 0 GPUs"):
        layer.set_gpu_id(5)
    layer.set_gpu_id(0)
    assert layer.device_id == 0


def test_without_cuda_the_gpu_count_is_zero(no_gpu):
    assert gpu_cuda.gpu_count() == 0
    with pytest.raises(InvalidDeviceIDError, match="sees 0 GPUs"):
        SymbolicJITCompiler([("relu", {})], "CPU_PYTHON", device_id=1)


def test_negative_or_non_integer_device_ids_are_refused():
    for bad in (-1, 1.0, True, "0"):
        with pytest.raises(InvalidDeviceIDError, match="non-negative integer"):
            SymbolicJITCompiler([("relu", {})], "CPU_PYTHON", device_id=bad)


# -- the demo's arguments are argparse's business; --help is plain text ----------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["demo", "--batch", "0"], "argument --batch: must be a positive integer, got 0"),
    (["demo", "--nodes", "0"], "argument --nodes: must be a positive integer, got 0"),
    (["demo", "--nodes", "-3"], "argument --nodes: must be a positive integer, got -3"),
    (["demo", "--batch", "many"], "argument --batch: 'many' is not an integer"),
])
def test_demo_argument_errors_are_usage_errors(capsys, argv, words):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m symjit_numba demo" in err and words in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["info", "--help"]])
def test_help_is_plain_text(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m symjit_numba" in out
    assert "``" not in out and ":class:" not in out, out


# -- wording ------------------------------------------------------------------------------------------------

def test_batch_mismatch_names_the_batch_axis_of_each_layout():
    for layout, shape, axis in (("node_major", (3, 4), 1), ("batch_major", (4, 3), 0)):
        layer = SymbolicJITCompiler([("relu", {})] * 3, "CPU_PYTHON", layout=layout)
        params, offsets = layer.make_params(np.float64)
        z = np.zeros(shape)
        with pytest.raises(KernelArgumentError) as caught:
            layer.forward_kernel(z, np.empty_like(z), params, offsets, 3, 5)
        message = str(caught.value)
        assert "batch rows" not in message  # node-major holds the batch in columns
        for words in ("b=5", "4 samples", f"batch size is z.shape[{axis}]", f"layout={layout!r}"):
            assert words in message, message


def test_counts_of_one_are_singular():
    layer = SymbolicJITCompiler([("a*num + b", {"a": 1.0, "b": 2.0})], "CPU_PYTHON")
    with pytest.raises(KernelArgumentError, match=r"params has 1 element \("):
        layer.forward_kernel(np.ones((1, 2)), np.empty((1, 2)), np.ones(1), np.array([0]), 1, 2)
    with pytest.raises(KernelArgumentError, match=r"hold 1 node \("):
        layer.forward_kernel(np.ones((1, 2)), np.empty((1, 2)), np.ones(2), np.array([0]), 2, 2)
    loss = SymbolicJITCompiler([("huber", {"delta": 1.0})], "CPU_PYTHON", mode="loss")
    with pytest.raises(KernelArgumentError, match=r"at least 1 element \("):
        loss.forward_kernel(np.ones(3), np.ones(3), np.empty(3), np.ones(0))


def test_named_formula_of_the_other_mode_uses_the_right_article():
    with pytest.raises(FormulaParsingError) as caught:
        SymbolicJITCompiler([("relu", {})], "CPU_PYTHON", mode="loss")
    message = str(caught.value)
    assert "a activation" not in message and "activation" in message and "'loss'" in message, message


@pytest.mark.parametrize("option, call", [
    ("mode", lambda: SymbolicJITCompiler([("relu", {})], "CPU_PYTHON", mode="activations")),
    ("layout", lambda: SymbolicJITCompiler([("relu", {})], "CPU_PYTHON", layout="column_major")),
    ("calculation_method", lambda: SymbolicJITCompiler([("relu", {})], "cpu_jit")),
])
def test_option_typos_raise_one_configuration_error(option, call):
    with pytest.raises(ConfigurationError) as caught:
        call()
    assert isinstance(caught.value, SymJITError) and isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, FormulaParsingError)
    message = str(caught.value)
    accepted = {"mode": "'activation', 'loss'", "layout": "'node_major', 'batch_major'",
                "calculation_method": "'CPU_JIT', 'GPU_CUDA', 'CPU_PYTHON'"}[option]
    assert message.startswith(f"{option} must be one of {accepted}"), message


def test_override_with_an_unknown_name_says_what_assignment_says():
    with pytest.raises(AttributeError) as by_assignment:
        settings.warn_level = "error"
    level = settings.warning_level
    with pytest.raises(AttributeError) as by_override:
        with settings.override(warning_level="ignore" if level != "ignore" else "warn", warn_level="error"):
            pass  # pragma: no cover - never entered
    assert str(by_override.value) == str(by_assignment.value)
    for words in ("unknown setting 'warn_level'", "warning_level", "num_threads"):
        assert words in str(by_override.value)
    assert settings.warning_level == level  # checked before anything changed


def test_invalid_setting_values_raise_configuration_error():
    with pytest.raises(ConfigurationError, match="warning_level must be one of 'error', 'warn', 'ignore'; got 'loud'"):
        settings.warning_level = "loud"
    with pytest.raises(ConfigurationError, match="num_threads must be a positive integer, got 0"):
        with settings.override(num_threads=0):
            pass  # pragma: no cover - never entered
    assert settings.num_threads >= 1
    for wrong in (-0.001, 61, "0.002", True, float("nan")):
        with pytest.raises(ConfigurationError, match="thread_idle_seconds must be a number of seconds from 0 to 60"):
            settings.thread_idle_seconds = wrong
    assert settings.thread_idle_seconds == 0.002
