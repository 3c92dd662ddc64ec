"""``python -m symjit_numba demo`` and ``info`` run and report what they promise."""

import os
import subprocess
import sys


def _run(*args):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    return subprocess.run([sys.executable, "-m", "symjit_numba", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_demo_runs_every_backend_and_they_agree():
    result = _run("demo", "--nodes", "32", "--batch", "256")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CPU_PYTHON" in result.stdout and "CPU_JIT" in result.stdout
    assert "backends agree" in result.stdout


def test_info_lists_versions_backends_and_cache():
    result = _run("info")
    assert result.returncode == 0, result.stderr[-2000:]
    for field in ("numba", "backends", "CUDA GPU", "CPU threads", "cache dir"):
        assert field in result.stdout
