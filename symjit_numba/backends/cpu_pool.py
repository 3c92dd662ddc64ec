"""The CPU_JIT thread pool: runs a task runner's range of tasks on ``settings.num_threads`` threads.

Handing work to a thread that sleeps costs a futex wake-up: 51-58 us a round trip through a
``ThreadPoolExecutor`` on a 2-core VM, more than a W1 layer of 64 x 512 takes to compute. So the
pool's threads wait for work in native code (a numba ``nogil`` loop, :func:`_serve`) reading a
mailbox of int64 slots: spinning for SPIN_SECONDS after their last job, then offering their core
to other threads (``sched_yield``) until ``settings.thread_idle_seconds`` (2 ms) have passed; only
then do they park on a condition variable, and the next call wakes them the slow way. A round trip
takes 5-7 us:

* A job is a runner's C-wrapper address and its arguments, stored as numba values (array structs
  without their owner, flags) in a buffer by :func:`_publish`, which then publishes the job number
  with one atomic store. Threads take the job's tasks from a shared counter (compare-and-swap),
  a (2 x threads)-th of those left at a time (:func:`_take`): a thread that is slow to start, or
  that shares its core with another library's spinning threads (torch's OpenMP threads spin for
  about a millisecond after each parallel operation), takes fewer tasks instead of holding the
  others up. Each worker runs its tasks
  through :func:`_entry`, compiled once per argument type: it loads the arguments as that type and
  calls the runner. Both are cached by numba on disk, like the runners.
* The calling thread takes tasks too (:func:`_run_and_wait`); when none are left it closes the job
  to threads that have not joined it yet and waits for those that did (:func:`_close`): it never
  returns while a worker may still use the arrays, which the caller holds until then, and never
  waits for a worker that has not started.

Only one job runs on the spinning threads at a time; a call from a second Python thread meanwhile,
a call with more threads than usable cores (spinning threads would steal time from working ones),
and any callable that is not a :class:`Runner` run on a ``ThreadPoolExecutor`` instead. Either way
the tasks, and so the results' bits, are the same as on one thread.

Forks: a forked child has only the thread that forked; it drops the parent's threads, executor
and locks (``os.register_at_fork``), and its first parallel call starts fresh threads.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..settings import _cores, settings
from ..store import compile_cached
from .cpu_tasks import _call, _jit

__all__ = ["TaskPool", "CallCost", "Runner", "runner_for", "wrapper_address", "SERIAL_BELOW", "SPLIT_ABOVE_ROUND_TRIPS"]

#: Below this many elements a call runs on the calling thread alone: waking threads costs more.
SERIAL_BELOW = 32_768
#: A call is split over the threads only if it would take at least this many pool round trips on
#: one thread (see :meth:`TaskPool.run`): split in two, it then saves at least one round trip.
SPLIT_ABOVE_ROUND_TRIPS = 3
#: int64 slots per cache line of the mailbox (64 bytes).
LINE = 8
#: The mailbox's slots. Line 0: the job number (-1: stop), the entry's and the buffer's addresses,
#: the job's number of tasks and of threads it was split for. Line 1: the next task to be taken
#: (every take writes it: a line of its own). Line 2: who works on the job,
#: ``job << JOB_SHIFT | CLOSED (once the caller closed it) | the number of workers in it``.
JOB, ENTRY, BUFFER, TASKS, THREADS, NEXT_TASK, STATE = 0, 1, 2, 3, 4, LINE, 2 * LINE
MAILBOX_SLOTS = 3 * LINE
CLOSED = 1 << 20
JOB_SHIFT = 21
#: Bytes of the job buffer: the runner's address, then (from byte 64) its arguments.
BUFFER_BYTES = 4096
#: An idle thread waits for the next job ``settings.thread_idle_seconds`` before it parks:
#: spinning for the first SPIN_SECONDS, then offering its core to other threads (``sched_yield``:
#: another library's threads, or more threads than cores, are not slowed down by ours).
SPIN_SECONDS = 100e-6
#: Turns a call spins for its workers before it yields its core while waiting (a few tens of us).
WAIT_SPINS = 1000

_X86 = llvm.get_default_triple().startswith(("x86_64", "i386", "i686"))
_POSIX = os.name == "posix"


def _compiled(dispatcher: Any, *argument_types: Any) -> Any:
    """``dispatcher``, compiled (or loaded from the disk cache) for ``argument_types``."""
    compile_cached(dispatcher, argument_types)
    return dispatcher


def wrapper_address(dispatcher: Any, argument_types: tuple) -> int:
    """Where the C wrapper of ``dispatcher``'s compiled version for ``argument_types`` is (0: none)."""
    result = dispatcher.overloads[tuple(argument_types)]
    return result.library.get_pointer_to_function(result.fndesc.llvm_cfunc_wrapper_name)


def _address(dispatcher: Any, *argument_types: Any) -> int:
    """:func:`wrapper_address`, the version compiled (or loaded) first."""
    return wrapper_address(_compiled(dispatcher, *argument_types), argument_types)


# -- atomics and raw memory ----------------------------------------------------------------------------------

@intrinsic
def _load_acquire(typingctx, mailbox, slot):
    """``mailbox[slot]`` (int64), read atomically: what a store before the matching release wrote is visible."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.load_atomic(builder.gep(array.data, [args[1]]), "acquire", 8)
    return types.int64(mailbox, slot), codegen


@intrinsic
def _store_release(typingctx, mailbox, slot, value):
    """``mailbox[slot] = value`` atomically, after every store before it (int64)."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, builder.gep(array.data, [args[1]]), "release", 8)
        return context.get_dummy_value()
    return types.void(mailbox, slot, value), codegen


@intrinsic
def _fetch_add(typingctx, mailbox, slot, value):
    """``mailbox[slot] += value`` atomically (int64); returns the value before."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", builder.gep(array.data, [args[1]]), value, "acq_rel")
    return types.int64(mailbox, slot, value), codegen


@intrinsic
def _compare_exchange(typingctx, mailbox, slot, expected, new):
    """``mailbox[slot] = new`` if it holds ``expected``, atomically (int64); True if it did."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        expected, new = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (2, 3))
        pair = builder.cmpxchg(builder.gep(array.data, [args[1]]), expected, new, "acq_rel", "acquire")
        return builder.extract_value(pair, 1)
    return types.boolean(mailbox, slot, expected, new), codegen


def _call_void(builder: ir.IRBuilder, name: str, result: ir.Type = ir.VoidType()) -> None:
    builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, []), name), [])


def _emit_pause(builder: ir.IRBuilder) -> None:
    """The CPU's spin-wait hint: ``pause`` on x86 (fewer wasted cycles), nothing elsewhere."""
    if _X86:
        _call_void(builder, "llvm.x86.sse2.pause")


@intrinsic
def _pause(typingctx):
    """:func:`_emit_pause` as a statement."""
    def codegen(context, builder, signature, args):
        _emit_pause(builder)
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _yield(typingctx):
    """Offer the core to another runnable thread (``sched_yield``; the spin-wait hint where there is none)."""
    def codegen(context, builder, signature, args):
        if _POSIX:
            _call_void(builder, "sched_yield", ir.IntType(32))
        else:
            _emit_pause(builder)
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _store(typingctx, address, value):
    """Store ``value`` (an int64 or a tuple) at ``address``.

    Arrays are stored without their owner (meminfo and parent null, so that the threads that load
    them never count references): their memory belongs to the caller, who holds the arrays until
    every thread is done with them. (The meminfo of an array passed in from Python lives only as
    long as the call that received it.)
    """
    def codegen(context, builder, signature, args):
        given, stored = signature.args[1], args[1]
        for i, item in enumerate(given.types if isinstance(given, types.BaseTuple) else ()):
            if isinstance(item, types.Array):
                array = context.make_array(item)(context, builder, value=builder.extract_value(stored, i))
                array.meminfo = cgutils.get_null_value(array.meminfo.type)
                array.parent = cgutils.get_null_value(array.parent.type)
                stored = builder.insert_value(stored, array._getvalue(), i)
        builder.store(stored, builder.inttoptr(args[0], stored.type.as_pointer()))
        return context.get_dummy_value()
    return types.void(address, value), codegen


@intrinsic
def _load_as(typingctx, address, typeref):
    """The value of the type ``typeref`` names stored at ``address`` (arrays without an owner:
    numba's reference counting skips them)."""
    wanted = typeref.instance_type

    def codegen(context, builder, signature, args):
        return builder.load(builder.inttoptr(args[0], context.get_value_type(wanted).as_pointer()))
    return wanted(address, typeref), codegen


# -- the spinning side ---------------------------------------------------------------------------------------

def _take(mailbox):  # pragma: no cover - compiled
    """The next tasks first..last-1 of the job for this thread (first == last: none left): a
    (2 x threads)-th of those left, at least one. Early takes are large (few runner calls), the
    last ones single tasks, so threads end together: fixed takes of 1/16 of the job left a thread
    waiting half a take at the end (node-major W1 backward 0.60 -> 0.63 ms, 2 threads)."""
    tasks, threads = mailbox[TASKS], mailbox[THREADS]
    while True:
        first = _load_acquire(mailbox, NEXT_TASK)
        if first >= tasks:
            return first, first
        last = first + max(1, (tasks - first) // (2 * threads))
        if _compare_exchange(mailbox, NEXT_TASK, first, last):
            return first, last


def _join(mailbox, job):  # pragma: no cover - compiled
    """Join job ``job`` unless its caller has closed it (or posted another); True if joined."""
    while True:
        state = _load_acquire(mailbox, STATE)
        if state >> JOB_SHIFT != job or state & CLOSED:
            return False
        if _compare_exchange(mailbox, STATE, state, state + 1):
            return True


def _serve(mailbox, seen, spins, yields):  # pragma: no cover - compiled
    """A worker's loop: take tasks of each new job it can join, until ``spins`` idle turns of
    spinning and then ``yields`` idle turns of offering the core to other threads (another
    library's, say) have passed, or the job number is -1 (stop); return the number of the last
    job seen (-1: stopped)."""
    idle = 0
    while True:
        job = _load_acquire(mailbox, JOB)
        if job != seen:
            if job < 0:
                return job
            seen = job
            if _join(mailbox, job):
                first, last = _take(mailbox)
                while first < last:
                    # (any typeref: the entry ignores it)
                    _call(mailbox[ENTRY], (mailbox[BUFFER], first, last, types.int64))
                    first, last = _take(mailbox)
                _fetch_add(mailbox, STATE, -1)  # leave
            idle = 0
        elif idle >= spins + yields:
            return seen
        else:
            idle += 1
            if idle <= spins:
                _pause()
            else:
                _yield()


def _close(mailbox):  # pragma: no cover - compiled
    """Close the job (threads that have not joined it will not) and wait until the workers in it
    have left; after WAIT_SPINS turns, offer the core to other threads while waiting (a worker may
    need it: more threads than cores). Closing twice is harmless."""
    while True:
        state = _load_acquire(mailbox, STATE)
        if state & CLOSED or _compare_exchange(mailbox, STATE, state, state | CLOSED):
            break
    turns = 0
    while _load_acquire(mailbox, STATE) & (CLOSED - 1):
        turns += 1
        if turns < WAIT_SPINS:
            _pause()
        else:
            _yield()


_take = _jit(_take)
_join = _jit(_join)
_serve = _jit(_serve)
_close = _jit(_close)
_MAILBOX, _BUFFER = types.int64[::1], types.uint8[::1]


def _entry(buffer, first, last, arguments):  # pragma: no cover - compiled
    """Run ``first..last`` of the job in ``buffer``: the runner there, with the arguments stored
    there as a value of the type ``arguments`` names (a typeref, compiled once per type)."""
    _call(_load_as(buffer, types.int64), (first, last) + _load_as(buffer + 64, arguments))


def _publish(mailbox, buffer, entry, runner, args, tasks, threads):  # pragma: no cover - compiled
    """Post a job of ``tasks`` tasks for ``threads`` threads: the runner at ``runner`` and its
    ``args``, to be run through ``entry``; return its number."""
    address = buffer.ctypes.data
    _store(address, runner)
    _store(address + 64, args)
    job = mailbox[JOB] + 1
    mailbox[ENTRY] = entry
    mailbox[BUFFER] = address
    mailbox[TASKS] = tasks
    mailbox[THREADS] = threads
    mailbox[NEXT_TASK] = 0
    mailbox[STATE] = job << JOB_SHIFT  # nobody in it, open: the previous job's workers have left
    _store_release(mailbox, JOB, job)  # publishes everything above
    return job


def _run_and_wait(mailbox, runner, args, job):  # pragma: no cover - compiled
    """Take tasks of job ``job`` on this thread until none are left, then :func:`_close` it."""
    first, last = _take(mailbox)
    while first < last:
        _call(runner, (first, last) + args)
        first, last = _take(mailbox)
    _close(mailbox)


_entry = _jit(_entry)
_publish = _jit(_publish)
_run_and_wait = _jit(_run_and_wait)


def _job_functions(argument_types: tuple) -> tuple[int, Any]:
    """The entry's address and the arguments' tuple type for a runner whose arguments after
    ``first, last`` have the numba types ``argument_types``; the entry, :func:`_publish` and
    :func:`_run_and_wait` are compiled (or loaded from the disk cache) for them now, not by
    numba's dispatcher at the first call (whose cache lookup costs 0.3 s of registry loading)."""
    functions = _JOBS.get(argument_types)
    if functions is None:
        arguments = types.Tuple(argument_types)
        i64 = types.int64
        _compiled(_publish, _MAILBOX, _BUFFER, i64, i64, arguments, i64, i64)
        _compiled(_run_and_wait, _MAILBOX, i64, arguments, i64)
        functions = _JOBS[argument_types] = (_address(_entry, i64, i64, i64, types.TypeRef(arguments)), arguments)
    return functions


_JOBS: dict[tuple, tuple[int, Any]] = {}


@dataclass
class Runner:
    """A task runner compiled for one dtype: callable as itself, and runnable by the spinning threads.

    ``arguments`` is the numba type of the arguments after ``first, last`` that the runner was
    compiled for, as the spinning threads read them; the first job checks that the arguments of
    the call have that layout (``checked``).
    """

    function: Callable[..., None]
    address: int
    entry: int
    arguments: Any
    checked: bool = False

    def __call__(self, *args: Any) -> None:
        self.function(*args)

    def check(self, args: tuple) -> None:
        """Refuse ``args`` unless each has the machine layout of the runner's argument (a read-only
        array or one of another layout passes as an array of its dtype and dimensions)."""
        given = numba.typeof(args)

        def layout(t: Any) -> Any:
            return (t.dtype, t.ndim) if isinstance(t, types.Array) else t

        if len(given) != len(self.arguments) or any(layout(g) != layout(w) for g, w in zip(given, self.arguments)):
            raise TypeError(f"the pool cannot pass {given} as {self.arguments}")
        self.checked = True


def runner_for(function: Callable[..., None], address: int, argument_types: tuple) -> Runner:
    """A :class:`Runner` for the compiled runner ``function`` (C wrapper at ``address``) taking
    ``(first, last, *arguments)`` with ``arguments`` of the numba types ``argument_types``."""
    return Runner(function, address, *_job_functions(tuple(argument_types)))


def _turns_per_second() -> tuple[float, float]:
    """How many idle turns of :func:`_serve` a second holds on this CPU: spinning, and yielding
    (measured once)."""
    _compiled(_serve, _MAILBOX, types.int64, types.int64, types.int64)
    _compiled(_close, _MAILBOX)
    mailbox = np.zeros(MAILBOX_SLOTS, np.int64)
    rates = []
    for spins, yields in ((20_000, 0), (0, 2_000)):
        _serve(mailbox, 0, spins // 10, yields // 10)  # loaded and warm
        started = time.perf_counter()
        _serve(mailbox, 0, spins, yields)
        rates.append((spins + yields) / max(time.perf_counter() - started, 1e-7))
    return rates[0], rates[1]


class _Spinners:
    """``workers`` daemon threads serving one mailbox (see the module's docstring)."""

    def __init__(self, workers: int, turns_per_second: tuple[float, float]) -> None:
        self.mailbox = np.zeros(MAILBOX_SLOTS, np.int64)
        self.buffer = np.zeros(BUFFER_BYTES, np.uint8)
        self.turns_per_second = turns_per_second
        self.workers = workers
        self._parked = 0
        self._stopped = False
        self._condition = threading.Condition()
        for worker in range(workers):
            threading.Thread(target=self._serve, name=f"symjit_numba-spin-{worker}", daemon=True).start()

    def _idle_turns(self) -> tuple[int, int]:
        """Turns of spinning and of yielding that ``settings.thread_idle_seconds`` hold (read each time)."""
        idle = settings.thread_idle_seconds
        spinning, yielding = self.turns_per_second
        return int(spinning * min(idle, SPIN_SECONDS)), int(yielding * max(idle - SPIN_SECONDS, 0.0))

    def _serve(self) -> None:
        seen = 0
        while True:
            seen = _serve(self.mailbox, seen, *self._idle_turns())
            if seen < 0:
                return
            with self._condition:  # park, unless a job came meanwhile (posted jobs are checked under the lock)
                if self.mailbox[JOB] == seen and not self._stopped:
                    self._parked += 1
                    self._condition.wait()
                    self._parked -= 1

    def run(self, runner: Runner, tasks: int, threads: int, args: tuple) -> None:
        """Run tasks 0..tasks-1 of ``runner`` with ``args`` on this thread and those of the workers
        that join (takes sized for ``threads`` threads)."""
        mailbox = self.mailbox
        if not runner.checked:
            runner.check(args)
        job = None
        try:
            # Posted under the lock under which a thread decides to park: it either sees the job,
            # or is parked already and woken here.
            with self._condition:
                job = _publish(mailbox, self.buffer, runner.entry, runner.address, args, tasks, threads)
                if self._parked:
                    self._condition.notify_all()
            _run_and_wait(mailbox, runner.address, args, job)
            job = None
        finally:  # never return (even on KeyboardInterrupt) while a worker still uses the arrays
            if job is not None:
                _close(mailbox)

    def stop(self) -> None:
        """Let the threads end (those spinning at once, the parked ones when woken)."""
        with self._condition:
            self._stopped = True
            self.mailbox[JOB] = -1
            self._condition.notify_all()


class TaskPool:
    """Runs ``kernel(first, last, ...)`` over task ranges on ``settings.num_threads`` threads.

    The calling thread runs ranges itself (on the spinning threads: takes tasks with them; on the
    executor: the first of fixed ranges) and waits for the others; pool threads never wait on the
    pool, so nested or concurrent calls from many Python threads cannot deadlock.

    The pool follows changes of ``settings.num_threads`` both ways: a new size gets new spinning
    threads (the old ones end) and a new executor (the old one is shut down once its queued
    ranges are done). Forks: a forked child (``os.fork``, multiprocessing's default on Linux,
    DataLoader workers) has only the thread that forked, so the parent's threads would never run
    the child's ranges (its first call would wait forever), and a lock held by another thread at
    fork time would stay locked. After a fork the child therefore drops threads, executor and
    locks; its first parallel call starts fresh threads.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._size = 0
        self._lock = threading.Lock()
        self._spinners: _Spinners | None = None
        self._job_lock = threading.Lock()
        self._turns_per_second: tuple[float, float] | None = None
        self._round_trip: tuple[int, float] | None = None
        #: Seconds of one-thread work above which a call is split; None: SPLIT_ABOVE_ROUND_TRIPS
        #: round trips, learned per layer (0.0 splits every call of SERIAL_BELOW elements or more).
        self.split_above: float | None = None
        #: Whether split calls run on spinning threads: None where the threads fit the usable cores.
        self.spin: bool | None = None
        if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
            reference = weakref.ref(self)

            def after_fork_in_child() -> None:
                pool = reference()
                if pool is not None:
                    pool._forget_threads()

            os.register_at_fork(after_in_child=after_fork_in_child)
        atexit.register(self._stop_spinners)

    def _forget_threads(self) -> None:
        """In a forked child: the parent's threads do not exist here; nor does whoever held a lock."""
        self._lock = threading.Lock()
        self._job_lock = threading.Lock()
        self._executor = None
        self._size = 0
        self._spinners = None
        self._round_trip = None

    def _stop_spinners(self) -> None:
        if self._spinners is not None:
            self._spinners.stop()
            self._spinners = None

    def _submit(self, workers: int, calls: list[tuple]) -> list[Future]:
        """Submit ``calls`` to an executor of ``workers`` threads (replacing one of another size,
        and ending spinning threads of another size unless a job runs on them)."""
        with self._lock:  # submitting under the lock: no executor is shut down between lookup and submit
            if self._executor is None or self._size != workers:
                if self._executor is not None:
                    self._executor.shutdown(wait=False)  # its threads finish what is queued, then exit
                self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="symjit_numba")
                self._size = workers
                if self._spinners is not None and self._spinners.workers != workers \
                        and self._job_lock.acquire(blocking=False):
                    try:
                        self._stop_spinners()
                    finally:
                        self._job_lock.release()
            return [self._executor.submit(*call) for call in calls]

    def _spinning(self, workers: int) -> _Spinners | None:
        """The spinning threads for ``workers`` workers (started now if need be, replacing threads
        of another size); None where there are fewer usable cores than threads. Call with
        ``_job_lock`` held."""
        if not (self.spin if self.spin is not None else workers + 1 <= _cores()):
            return None
        if self._spinners is None or self._spinners.workers != workers:
            self._stop_spinners()
            with self._lock:
                if self._executor is not None and self._size != workers:
                    self._executor.shutdown(wait=False)
                    self._executor = None
                self._size = workers
            if self._turns_per_second is None:
                self._turns_per_second = _turns_per_second()
            self._spinners = _Spinners(workers, self._turns_per_second)
        return self._spinners

    def round_trip(self) -> float:
        """Seconds to hand an empty range to the pool's threads and get it back (measured once per
        pool size): through the spinning threads where they run, else through the executor."""
        size = settings.num_threads - 1
        if self._round_trip is None or self._round_trip[0] != size:
            times = []
            empty = _empty_runner()
            for _ in range(7):
                started = time.perf_counter()
                self._split(empty, size + 1, size + 1, ())
                times.append(time.perf_counter() - started)
            self._round_trip = (size, sorted(times)[len(times) // 2])
        return self._round_trip[1]

    def _split(self, kernel: Callable[..., None], n_tasks: int, threads: int, args: tuple) -> None:
        """Run ``kernel`` over tasks 0..n_tasks-1 on ``threads`` threads, this one included: on the
        spinning threads (tasks taken as they go), or in fixed ranges on the executor."""
        workers = settings.num_threads - 1
        if isinstance(kernel, Runner) and self._job_lock.acquire(blocking=False):
            try:
                spinners = self._spinning(workers)
                if spinners is not None:
                    spinners.run(kernel, n_tasks, threads, args)
                    return
            finally:
                self._job_lock.release()
        bounds = [n_tasks * k // threads for k in range(threads + 1)]
        futures = self._submit(workers, [(kernel, bounds[k], bounds[k + 1], *args) for k in range(1, threads)])
        try:
            kernel(bounds[0], bounds[1], *args)
        finally:  # never return (even on an error) while pool threads still write into the arrays
            for future in futures:
                future.result()

    def run(self, kernel: Callable[..., None], n_tasks: int, elements: int, *args: object,
            cost: CallCost | None = None) -> None:
        """``kernel(first, last, *args)`` over the task ranges of ``n_tasks`` tasks of ``elements`` elements.

        A call of fewer than SERIAL_BELOW elements runs on the calling thread alone; so does a
        larger one whose ``cost`` says it would take less than SPLIT_ABOVE_ROUND_TRIPS pool round
        trips on one thread: handing ranges to threads would cost more than it saves. ``cost``
        learns from every call: the time of a call on one thread (the first such call is one), or
        of a split call less a round trip, times the threads. The results have the same bits
        either way: the tasks are the same.
        """
        num_threads = settings.num_threads
        threads = min(num_threads, n_tasks) if elements >= SERIAL_BELOW else 1
        if threads > 1 and cost is not None:
            limit = SPLIT_ABOVE_ROUND_TRIPS * self.round_trip() if self.split_above is None else self.split_above
            per_element = cost.seconds_per_element
            if limit > 0 and (per_element is None or per_element * elements < limit):
                threads = 1
        started = time.perf_counter()
        if threads <= 1:
            kernel(0, n_tasks, *args)
        else:
            self._split(kernel, n_tasks, threads, args)
        if cost is not None and elements:  # what one thread took or would have taken, about
            elapsed = time.perf_counter() - started
            if threads > 1:
                elapsed = max(elapsed - (self._round_trip[1] if self._round_trip else 0.0), 0.0) * threads
            cost.seconds_per_element = elapsed / elements


class CallCost:
    """What one kernel of one layer takes per element on one thread in one dtype (estimated from
    its latest call), for :meth:`TaskPool.run` to decide whether splitting a call pays. A layer
    keeps one per kernel and dtype: ``defaultdict(CallCost)`` keyed by dtype."""

    __slots__ = ("seconds_per_element",)

    def __init__(self) -> None:
        self.seconds_per_element: float | None = None


def _nothing(first, last):  # pragma: no cover - compiled
    pass


_nothing = _jit(_nothing)


def _empty_runner() -> Runner:
    """A runner with nothing to do, to time the pool's round trip."""
    return runner_for(_nothing, _address(_nothing, types.int64, types.int64), ())
