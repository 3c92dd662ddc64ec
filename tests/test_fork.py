"""CPU_JIT after a fork: forked workers compute what their parent computes, and nothing hangs.

A CPU_JIT call on at least ``SERIAL_BELOW`` elements splits its tasks over the threads of
``cpu_jit.TaskPool``. A forked child (``os.fork``, multiprocessing's default start method on Linux,
``ProcessPoolExecutor(mp_context=fork)``, torch DataLoader workers) has only the thread that forked:
without care its first call queues ranges for threads that do not exist and waits forever. So every
test here runs its scenario in a fresh Python process with a timeout (outer: ``subprocess.run``;
inner: a deadline on each wait for a child), and a regression fails instead of hanging the suite.

Each script builds a layer of relu, tanh, sigmoid and leaky_relu nodes (64 x 4096 float32, eight
times ``SERIAL_BELOW``, with ``settings.num_threads = 4`` whatever the machine's cores, so the pool
is used, once on its spinning threads and once on its executor) and an mse loss, checks the
parent's results against float64 numpy references with float32 tolerances, uses them before forking (the pool's threads exist), then has forked workers
compute the same calls: their results must be bit-for-bit the parent's, and their pool threads
must have run.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork") or "fork" not in multiprocessing.get_all_start_methods(),
                       reason="the platform has no fork"),
]

#: Seconds a whole script may run (a cold numba cache included), and each wait for a child inside it.
SCRIPT_TIMEOUT = 240
CHILD_TIMEOUT = 60

PRELUDE = textwrap.dedent(f"""
    import hashlib, os, sys, threading, time
    import numpy as np
    from symjit_numba import SymbolicJITCompiler, settings
    from symjit_numba.backends import cpu_jit

    CHILD_TIMEOUT = {CHILD_TIMEOUT}
    settings.num_threads = 4  # the pool is used even on a one-core machine
    cpu_jit._pool.split_above = 0.0  # and by every call of SERIAL_BELOW elements or more,
    cpu_jit._pool.spin = os.environ["SYMJIT_TEST_POOL"] == "spinning"  # on the threads the test asks for
    N, B = 64, 4096
    assert N * B >= 8 * cpu_jit.SERIAL_BELOW
    LAYER = SymbolicJITCompiler([("relu", {{}}), ("tanh", {{}}), ("sigmoid", {{}}),
                                 ("leaky_relu", {{"alpha": 0.2}})] * (N // 4), "CPU_JIT")
    LOSS = SymbolicJITCompiler([("mse", {{}})], "CPU_JIT", mode="loss")
    PARAMS, OFFSETS = LAYER.make_params(np.float32)
    rng = np.random.default_rng(7)
    Z = rng.normal(scale=3.0, size=(N, B)).astype(np.float32)
    ERR = rng.normal(size=(N, B)).astype(np.float32)
    TRUE = rng.normal(size=N * B).astype(np.float32)

    def pool_threads():
        return sum(t.name.startswith("symjit_numba") for t in threading.enumerate())

    def compute():
        a, d = np.empty_like(Z), np.empty_like(Z)
        LAYER.forward_kernel(Z, a, PARAMS, OFFSETS, N, B)
        LAYER.backward_kernel(Z, ERR, d, PARAMS, OFFSETS, N, B)
        res, grad = np.empty_like(TRUE), np.empty_like(TRUE)
        LOSS.forward_kernel(Z.reshape(-1), TRUE, res)
        LOSS.backward_kernel(Z.reshape(-1), TRUE, grad)
        return a, d, res, grad

    def digest(arrays):
        return hashlib.sha256(b"".join(x.tobytes() for x in arrays)).hexdigest()

    def worker(_=None):
        \"\"\"What a forked child returns: its results' digest, its pid, and how many pool threads ran.\"\"\"
        return digest(compute()), os.getpid(), pool_threads()

    def check_against_float64(arrays):
        \"\"\"float32 results within a few float32 ulps of float64 references (plus ulps of the unit-size terms).\"\"\"
        a, d, res, grad = arrays
        x = Z.astype(np.float64).reshape(4, N // 4, B, order="F")  # node j -> formula j % 4
        err = ERR.astype(np.float64).reshape(4, N // 4, B, order="F")
        s, t = 1 / (1 + np.exp(-x[2])), np.tanh(x[1])
        values = [np.maximum(x[0], 0), t, s, np.where(x[3] > 0, x[3], 0.2 * x[3])]
        slopes = [x[0] > 0, 1 - t * t, s * (1 - s), np.where(x[3] > 0, 1.0, 0.2)]
        eps = float(np.finfo(np.float32).eps)
        got_a = a.astype(np.float64).reshape(4, N // 4, B, order="F")
        got_d = d.astype(np.float64).reshape(4, N // 4, B, order="F")
        for k in range(4):
            assert np.all(np.abs(got_a[k] - values[k]) <= 4 * eps * np.abs(values[k])), k
            want = err[k] * slopes[k]
            assert np.all(np.abs(got_d[k] - want) <= 4 * eps * (np.abs(want) + np.abs(err[k]))), k
        diff = Z.astype(np.float64).reshape(-1) - TRUE
        assert np.all(np.abs(res - diff * diff) <= 4 * eps * diff * diff + 1e-30)
        assert np.all(np.abs(grad - 2 * diff) <= 4 * eps * (np.abs(diff) + np.abs(TRUE)))

    PARENT = compute()
    check_against_float64(PARENT)
    EXPECTED = digest(PARENT)
    assert digest(compute()) == EXPECTED  # deterministic: the same call gives the same bits
    assert pool_threads() >= 1, "the parent's calls never used the pool: the fork test would prove nothing"
""")


@pytest.fixture(params=["spinning", "executor"], autouse=True)
def pool_kind(request, monkeypatch):
    """Every scenario twice: split calls on the pool's spinning threads, and on its executor
    (whatever this machine's cores would choose); the script reads the kind from its environment."""
    monkeypatch.setenv("SYMJIT_TEST_POOL", request.param)
    return request.param


def run_script(body, timeout=SCRIPT_TIMEOUT):
    """Run PRELUDE + ``body`` in a fresh interpreter; it must print OK and exit 0 within ``timeout``.

    The script runs in its own session: on a timeout the whole process group goes (hung forked
    children included, which would otherwise outlive the test holding its output pipes open).
    """
    script = PRELUDE + textwrap.dedent(body) + '\nprint("OK", flush=True)\n'
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the script hung for {timeout} s (a forked child waiting on threads that do not exist?)\n"
                    f"stdout: {stdout[-2000:]}\nstderr: {stderr[-4000:]}")
    finally:
        try:  # forked children left behind by a failed script
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    assert process.returncode == 0, stdout[-2000:] + stderr[-4000:]
    assert stdout.strip().splitlines()[-1] == "OK", stdout[-2000:]


def test_multiprocessing_fork_workers_return_the_parents_results():
    run_script("""
        import multiprocessing as mp
        with mp.get_context("fork").Pool(2) as workers:
            results = workers.map_async(worker, range(4), chunksize=1).get(timeout=CHILD_TIMEOUT)
        assert {r[0] for r in results} == {EXPECTED}, results
        assert all(r[1] != os.getpid() and r[2] >= 1 for r in results), results
    """)


def test_process_pool_executor_fork_workers_return_the_parents_results():
    run_script("""
        import concurrent.futures, multiprocessing as mp
        executor = concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("fork"))
        try:
            futures = [executor.submit(worker) for _ in range(4)]
            results = [f.result(timeout=CHILD_TIMEOUT) for f in futures]
        except concurrent.futures.TimeoutError:
            print("a forked worker did not answer", flush=True)
            for process in list(executor._processes.values()):  # hung: they would keep our output open
                process.kill()
            os._exit(1)  # not executor.shutdown(): it would wait for the hung workers
        executor.shutdown()
        assert {r[0] for r in results} == {EXPECTED}, results
        assert all(r[1] != os.getpid() and r[2] >= 1 for r in results), results
    """)


def wait_for_child_script():
    """Script helpers: fork, have the child write ``child()``'s text to a pipe, wait with a deadline."""
    return """
        import select, signal

        def in_forked_child(child, exit_normally=False):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                try:
                    text = child()
                except BaseException as error:  # report any failure to the parent
                    text = f"child failed: {type(error).__name__}: {error}"
                os.write(write, text.encode())
                os.close(write)
                if exit_normally:  # through the interpreter's exit (atexit, thread joins) ...
                    sys.exit(0)
                os._exit(0)  # ... or as multiprocessing's workers do
            os.close(write)
            ready, _, _ = select.select([read], [], [], CHILD_TIMEOUT)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the forked child hung")
            chunks = []
            while chunk := os.read(read, 65536):
                chunks.append(chunk)
            os.close(read)
            deadline = time.monotonic() + CHILD_TIMEOUT
            while os.waitpid(pid, os.WNOHANG) == (0, 0):  # the child must also exit, not hang at exit
                assert time.monotonic() < deadline, "the forked child did not exit"
                time.sleep(0.01)
            return b"".join(chunks).decode()
    """


def test_os_fork_child_computes_and_exits_through_the_interpreter():
    run_script(wait_for_child_script() + """
        for exit_normally in (False, True):
            assert in_forked_child(lambda: worker()[0], exit_normally) == EXPECTED
    """)


def test_fork_while_another_thread_holds_the_pool_lock():
    """A lock held by another thread at fork time stays locked in the child unless it is renewed there."""
    run_script(wait_for_child_script() + """
        held, release = threading.Event(), threading.Event()

        def hold_the_lock():
            with cpu_jit._pool._lock:
                held.set()
                release.wait()

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        held.wait()
        try:
            assert in_forked_child(lambda: worker()[0]) == EXPECTED
        finally:
            release.set()
            holder.join()
        assert digest(compute()) == EXPECTED  # and the parent goes on

        # Forks while other threads keep calling kernels (and so take the lock and wake the pool).
        stop = threading.Event()
        failures = []

        def keep_calling():
            while not stop.is_set():
                if digest(compute()) != EXPECTED:
                    failures.append("mismatch")

        callers = [threading.Thread(target=keep_calling) for _ in range(2)]
        for caller in callers:
            caller.start()
        try:
            for _ in range(3):
                assert in_forked_child(lambda: worker()[0]) == EXPECTED
        finally:
            stop.set()
            for caller in callers:
                caller.join()
        assert not failures
    """)


def test_num_threads_changes_up_and_down_in_parent_and_forked_child():
    run_script(wait_for_child_script() + """
        def follow(counts):
            \"\"\"Each count in turn: the same bits; above 1, the pool holds count - 1 threads (old ones exit).\"\"\"
            for count in counts:
                settings.num_threads = count
                assert digest(compute()) == EXPECTED, count
                if count > 1:
                    assert cpu_jit._pool._size == count - 1, (count, cpu_jit._pool._size)
                    deadline = time.monotonic() + CHILD_TIMEOUT
                    while pool_threads() > count - 1:
                        assert time.monotonic() < deadline, f"{pool_threads()} pool threads for num_threads={count}"
                        time.sleep(0.01)
                    assert pool_threads() >= 1, count
            return "followed"

        assert follow([2, 6, 3, 1, 5]) == "followed"   # in the parent
        settings.num_threads = 4
        compute()
        assert in_forked_child(lambda: follow([1, 2, 7, 3])) == "followed"  # in a forked child
        assert in_forked_child(lambda: f"{settings.num_threads} {worker()[0]}") == f"4 {EXPECTED}"
    """)


def test_torch_dataloader_fork_workers_return_the_parents_results():
    pytest.importorskip("torch")
    run_script("""
        import torch.utils.data

        class Results(torch.utils.data.Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, index):
                return worker()

        loader = torch.utils.data.DataLoader(Results(), batch_size=None, num_workers=2,
                                             multiprocessing_context="fork", timeout=CHILD_TIMEOUT)
        results = list(loader)
        assert {r[0] for r in results} == {EXPECTED}, results
        assert all(r[1] != os.getpid() and r[2] >= 1 for r in results), results
    """)
