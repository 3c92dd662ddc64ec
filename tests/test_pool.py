"""The CPU_JIT thread pool's spinning threads (backends/cpu_pool.py): same bits, no hang.

Each scenario runs in a fresh interpreter with a timeout (a regression in the hand-off between
threads would otherwise hang the suite), with split calls forced onto the spinning threads
(``_pool.spin = True``) and every call of SERIAL_BELOW elements or more split, whatever this
machine's cores and timings.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

TIMEOUT = 240

PRELUDE = textwrap.dedent("""
    import threading, time
    import numpy as np
    from symjit_numba import SymbolicJITCompiler, settings
    from symjit_numba.backends import cpu_jit, cpu_pool

    cpu_jit._pool.spin = True
    cpu_jit._pool.split_above = 0.0
    N, B = 64, 2048
    LAYER = SymbolicJITCompiler([("relu", {}), ("tanh", {}), ("swish", {"beta": 1.5}), ("gelu", {})] * (N // 4),
                                "CPU_JIT")
    PARAMS, OFFSETS = LAYER.make_params(np.float64)
    rng = np.random.default_rng(3)
    Z = rng.normal(scale=3.0, size=(N, B))
    ERR = rng.normal(size=(N, B))

    def compute():
        a, d, g = np.empty_like(Z), np.empty_like(Z), np.zeros_like(PARAMS)
        LAYER.forward_kernel(Z, a, PARAMS, OFFSETS, N, B)
        LAYER.backward_with_params_kernel(Z, ERR, d, g, PARAMS, OFFSETS, N, B)
        return a.tobytes() + d.tobytes() + g.tobytes()

    def spinning_threads():
        return sum(t.name.startswith("symjit_numba-spin") and t.is_alive() for t in threading.enumerate())

    settings.num_threads = 1
    EXPECTED = compute()  # one thread: the reference bits
    settings.num_threads = 2
""")


def run_script(body):
    """Run PRELUDE + ``body`` in a fresh interpreter: it must print OK and exit 0 within TIMEOUT."""
    script = PRELUDE + textwrap.dedent(body) + '\nprint("OK", flush=True)\n'
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the script hung for {TIMEOUT} s\nstdout: {stdout[-2000:]}\nstderr: {stderr[-4000:]}")
    assert process.returncode == 0, stdout[-2000:] + stderr[-4000:]
    assert stdout.strip().splitlines()[-1] == "OK", stdout[-2000:]


def test_parked_threads_wake_for_the_next_call():
    """Calls right after each other (threads spinning) and after pauses longer than the idle spin
    (threads parked) give the one-thread bits."""
    run_script("""
        assert compute() == EXPECTED
        assert spinning_threads() == 1
        for pause in (0.0, 0.0, 0.01, 0.05, 0.0, 0.02):
            time.sleep(pause)
            assert compute() == EXPECTED, pause
    """)


def test_thread_counts_change_and_old_threads_end():
    run_script("""
        for count in (3, 2, 4, 1, 3):
            settings.num_threads = count
            assert compute() == EXPECTED, count
            deadline = time.monotonic() + 60
            while spinning_threads() != max(count - 1, 0) and count > 1:
                assert time.monotonic() < deadline, (count, spinning_threads())
                time.sleep(0.01)
    """)


def test_concurrent_callers_share_the_pool():
    """Python threads calling at once: one job at a time on the spinning threads, the others on the
    executor; every result has the one-thread bits."""
    run_script("""
        failures = []

        def caller():
            for _ in range(15):
                if compute() != EXPECTED:
                    failures.append("mismatch")

        callers = [threading.Thread(target=caller) for _ in range(4)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
        assert not failures, failures
    """)


def test_the_interpreter_exits_while_threads_spin():
    run_script("""
        compute()
        assert spinning_threads() == 1
    """)


def test_arguments_of_another_layout_are_refused():
    """The spinning threads read a runner's arguments as the types it was compiled for: a call
    whose arguments differ is refused before any thread reads them."""
    run_script("""
        runner = cpu_pool._empty_runner()
        try:
            cpu_jit._pool._split(runner, [0, 1, 2], (np.zeros(3),))
        except TypeError as error:
            assert "cannot pass" in str(error), error
        else:
            raise AssertionError("an argument the runner does not take was passed to the spinning threads")
    """)
