"""Many processes, one kernel cache: concurrent compiles, and processes killed mid-compile.

Every scenario runs real Python processes on a fresh ``SYMJIT_NUMBA_CACHE_DIR`` (so the formula is
never-seen there), each with a timeout, and checks the kernels' results against a float64 numpy
reference of the formula.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

TIMEOUT = 120

#: A formula that is not a named one (its module is generated into the cache) and its derivative.
FORMULA = "num*tanh(c*num) + 0.25*num"


def reference(z, c):
    z = z.astype(np.float64)
    t = np.tanh(c * z)
    return z * t + 0.25 * z, t + c * z * (1 - t * t) + 0.25


#: The child process: optionally waits for a go file, optionally SIGKILLs itself at a chosen point,
#: then builds a layer, runs it in each requested dtype and prints the largest error against the
#: reference (relative to float32/float64 resolution).
CHILD = textwrap.dedent(f"""
    import json, os, signal, sys, time
    import numpy as np

    dtypes, go_file, kill_at = sys.argv[1].split(","), sys.argv[2], sys.argv[3]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if kill_at == "module_written":  # the generated module is in place, its plan file is not
        from symjit_numba import store
        write = store._write_atomically
        def write_then_die(path, text):
            write(path, text)
            if path.suffix == ".py":
                die()
        store._write_atomically = write_then_die
    elif kill_at in ("index_saved", "data_half_written"):
        from numba.core import caching
        ours = os.environ["SYMJIT_NUMBA_CACHE_DIR"]  # not the package's own numba cache
        if kill_at == "index_saved":  # numba's index names a data file that is not written yet
            save_index = caching.IndexDataCacheFile._save_index
            def save_index_then_die(self, overloads):
                save_index(self, overloads)
                if self._index_path.startswith(ours):
                    die()
            caching.IndexDataCacheFile._save_index = save_index_then_die
        else:  # half of numba's data file is in its temporary file
            save_data = caching.IndexDataCacheFile._save_data
            def save_half_then_die(self, name, data):
                if not self._data_path(name).startswith(ours):
                    return save_data(self, name, data)
                data = self._dump(data)
                with self._open_for_write(self._data_path(name)) as handle:
                    handle.write(data[: len(data) // 2])
                    handle.flush()
                    die()
            caching.IndexDataCacheFile._save_data = save_half_then_die

    print("ready", flush=True)
    while go_file != "-" and not os.path.exists(go_file):
        time.sleep(0.01)

    from symjit_numba import SymbolicJITCompiler, settings
    settings.warning_level = "error"  # a fallback to CPU_PYTHON would hide a broken cache
    layer = SymbolicJITCompiler([({FORMULA!r}, {{"c": 0.5}}), ("relu", {{}}), ({FORMULA!r}, {{"c": 2.0}})],
                                "CPU_JIT")
    errors = {{}}
    for name in dtypes:
        dtype = np.dtype(name)
        params, offsets = layer.make_params(dtype)
        z = np.linspace(-4, 4, 3 * 1000).reshape(3, 1000).astype(dtype)
        a, delta = np.empty_like(z), np.empty_like(z)
        layer.forward_kernel(z, a, params, offsets, 3, 1000)
        layer.backward_kernel(z, np.ones_like(z), delta, params, offsets, 3, 1000)
        errors[name] = [a.astype(np.float64).tolist(), delta.astype(np.float64).tolist()]
    print("result " + json.dumps(errors), flush=True)
""")


def check(output: str, dtypes) -> None:
    """The child's results equal the float64 reference to the dtype's resolution."""
    line = [x for x in output.splitlines() if x.startswith("result ")]
    assert line, output
    results = json.loads(line[0][len("result "):])
    z64 = np.linspace(-4, 4, 3 * 1000).reshape(3, 1000)
    for name in dtypes:
        z = z64.astype(name).astype(np.float64)
        expected_a, expected_d = np.empty_like(z), np.empty_like(z)
        for row, c in ((0, 0.5), (2, 2.0)):
            expected_a[row], expected_d[row] = reference(z[row], c)
        expected_a[1], expected_d[1] = np.maximum(z[1], 0), (z[1] > 0).astype(np.float64)
        tolerance = 1e-5 if name == "float32" else 1e-12
        a, d = (np.asarray(x) for x in results[name])
        np.testing.assert_allclose(a, expected_a, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(d, expected_d, rtol=tolerance, atol=tolerance)


@pytest.fixture
def child(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    cache = tmp_path / "cache"
    env = {**os.environ, "SYMJIT_NUMBA_CACHE_DIR": str(cache), "SYMJIT_NUMBA_NUM_THREADS": "1"}

    def start(dtypes=("float32",), go_file="-", kill_at="-"):
        return subprocess.Popen([sys.executable, str(script), ",".join(dtypes), str(go_file), kill_at],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    def run(dtypes=("float32",), kill_at="-"):
        process = start(dtypes, kill_at=kill_at)
        try:
            output, _ = process.communicate(timeout=TIMEOUT)
        finally:
            process.kill()
        return process.returncode, output

    start.run = run
    start.cache = cache
    return start


def test_two_processes_compile_the_same_new_formula_at_once(child, tmp_path):
    go = tmp_path / "go"
    # Different dtypes first: numba's index then gets two different keys at once (its race).
    processes = [child(("float32", "float64"), go), child(("float64", "float32"), go)]
    try:
        for process in processes:  # both imported everything and wait at the barrier
            assert process.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [process.communicate(timeout=TIMEOUT)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output
        check(output, ("float32", "float64"))
    # And a third process finds everything in the cache and computes the same.
    code, output = child.run(("float32", "float64"))
    assert code == 0, output
    check(output, ("float32", "float64"))


def test_processes_killed_mid_compile_leave_a_usable_cache(child):
    """SIGKILL at the points where a half-made cache could mislead the next process."""
    for point in ("module_written", "index_saved", "data_half_written"):
        code, output = child.run(("float32",), kill_at=point)
        assert code == -signal.SIGKILL, f"{point}: {output}"
    temporaries = [p.name for p in child.cache.rglob("*tmp*")]
    assert temporaries, "the last kill should have left numba's temporary data file"
    code, output = child.run(("float32", "float64"))
    assert code == 0, output
    check(output, ("float32", "float64"))


@pytest.mark.slow
def test_processes_killed_at_any_time_leave_a_usable_cache(child):
    """SIGKILL from outside after several delays, each followed by a process that must succeed."""
    for delay in (0.4, 0.8, 1.2, 1.6, 2.0, 2.6):
        process = child(("float32", "float64"))
        time.sleep(delay)
        process.kill()
        process.communicate(timeout=TIMEOUT)
        code, output = child.run(("float64",))
        assert code == 0, f"after a kill at {delay} s: {output}"
        check(output, ("float64",))
        for leftover in child.cache.rglob("*"):  # the next round compiles afresh
            if leftover.is_file():
                leftover.unlink()
