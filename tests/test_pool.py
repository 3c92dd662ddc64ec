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
    """Calls right after each other (threads spinning) and after pauses longer than the idle wait
    (threads parked), also with ``settings.thread_idle_seconds = 0`` (they park after every job),
    give the one-thread bits."""
    run_script("""
        assert compute() == EXPECTED
        assert spinning_threads() == 1
        for idle in (0.002, 0.0, 0.0005):
            settings.thread_idle_seconds = idle
            for pause in (0.0, 0.0, 0.01, 0.05, 0.0, 0.02):
                time.sleep(pause)
                assert compute() == EXPECTED, (idle, pause)
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
            cpu_jit._pool._split(runner, 2, 2, (np.zeros(3),))
        except TypeError as error:
            assert "cannot pass" in str(error), error
        else:
            raise AssertionError("an argument the runner does not take was passed to the spinning threads")
    """)


def test_a_caller_waits_for_the_workers_in_its_job_and_no_others():
    """The job protocol alone (no pool threads): a job no worker joined returns when its tasks are
    done, and a late worker cannot join it then; a job a worker joined waits until it leaves."""
    run_script("""
        import numba

        @numba.njit
        def leave(mailbox):
            cpu_pool._fetch_add(mailbox, cpu_pool.STATE, -1)

        runner = cpu_pool._empty_runner()
        mailbox = np.zeros(cpu_pool.MAILBOX_SLOTS, np.int64)
        buffer = np.zeros(cpu_pool.BUFFER_BYTES, np.uint8)
        job = cpu_pool._publish(mailbox, buffer, runner.entry, runner.address, (), 5, 2)
        cpu_pool._run_and_wait(mailbox, runner.address, (), job)
        assert mailbox[cpu_pool.NEXT_TASK] >= 5
        assert not cpu_pool._join(mailbox, job)
        job = cpu_pool._publish(mailbox, buffer, runner.entry, runner.address, (), 5, 2)
        assert cpu_pool._join(mailbox, job)
        caller = threading.Thread(target=cpu_pool._run_and_wait, args=(mailbox, runner.address, (), job))
        caller.start()
        time.sleep(0.3)
        assert caller.is_alive()
        leave(mailbox)
        caller.join(60)
        assert not caller.is_alive()
    """)


def test_random_calls_thread_counts_and_a_concurrent_caller_keep_the_bits():
    """Six seconds of calls of random layers (node-major, batch-major runs, interleaved tiles),
    dtypes, sizes, thread counts and kinds of threads, with short pauses (parked threads) and a
    second Python thread calling a loss all along: every result has the one-thread bits."""
    run_script("""
        import random
        cpu_jit._pool.spin = None
        W1 = [("relu", {}), ("sigmoid", {}), ("tanh", {}), ("gelu", {}), ("swish", {"beta": 1.5}),
              ("leaky_relu", {"alpha": 0.01}), ("softplus", {}), ("mish", {})]
        rng = np.random.default_rng(0)
        cases = []
        for layout in ("node_major", "batch_major"):
            for cfg in (W1 * 8, [W1[j % 3] for j in range(64)], [W1[j // 8] for j in range(64)]):
                layer = SymbolicJITCompiler(cfg, "CPU_JIT", layout=layout)
                for dtype in (np.float32, np.float64):
                    layer.warm_up(dtype)
                    for b in (700, 5000):
                        shape = (64, b) if layout == "node_major" else (b, 64)
                        params, offsets = layer.make_params(dtype)
                        cases.append((layer, (rng.normal(size=shape) * 3).astype(dtype),
                                      rng.normal(size=shape).astype(dtype), params, offsets, b))

        def run(case):
            layer, z, err, params, offsets, b = case
            a, d, g = np.empty_like(z), np.empty_like(z), np.zeros_like(params)
            layer.forward_kernel(z, a, params, offsets, 64, b)
            layer.backward_with_params_kernel(z, err, d, g, params, offsets, 64, b)
            return a.tobytes() + d.tobytes() + g.tobytes()

        loss = SymbolicJITCompiler([("huber", {"delta": 1.0})], "CPU_JIT", mode="loss")
        y_pred, y_true = rng.normal(size=(2, 200_000)).astype(np.float32)

        def run_loss():
            res = np.empty_like(y_pred)
            loss.forward_kernel(y_pred, y_true, res)
            return res.tobytes()

        settings.num_threads = 1
        expected, loss_expected = [run(case) for case in cases], run_loss()
        failures, stop = [], time.monotonic() + 6

        def other_caller():
            while time.monotonic() < stop:
                if run_loss() != loss_expected:
                    failures.append("loss")

        thread = threading.Thread(target=other_caller)
        thread.start()
        random.seed(1)
        while time.monotonic() < stop:
            settings.num_threads = random.choice([1, 2, 2, 3])
            cpu_jit._pool.spin = random.choice([None, True, True, False])
            k = random.randrange(len(cases))
            if run(cases[k]) != expected[k]:
                failures.append(k)
            if random.random() < 0.05:
                time.sleep(random.choice([0.001, 0.003, 0.01]))
        thread.join()
        assert not failures, failures[:10]
    """)
