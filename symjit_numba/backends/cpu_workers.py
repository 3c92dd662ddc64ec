"""Compile many never-seen formulas in worker processes, on every core, before a layer uses them.

numba compiles one function at a time, on one core, and each compiled function stays in the
process's memory. A layer with hundreds of formulas of its own (activation search, evolved
networks) therefore used to take a minute on one core and most of a gigabyte. Here the formulas'
modules are derived, written and compiled by ``settings.compile_processes`` worker processes into
the disk cache (each takes a contiguous share); the layer's own process then only loads numba's
cached machine code, which takes milliseconds per function and little memory.

Workers are plain ``python -m symjit_numba.backends.cpu_workers`` subprocesses reading a JSON job
on stdin, rather than ``multiprocessing``: nothing re-imports the user's ``__main__`` (a script
without an ``if __name__ == "__main__"`` guard still works), and no fork copies the caller's threads.
A worker that fails changes nothing: the layer's process compiles what is missing itself, and
reports the error as usual.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..formulas.resolve import FormulaKey
from ..settings import settings

__all__ = ["compile_in_workers", "WORTH_A_WORKER"]

logger = logging.getLogger("symjit_numba")

#: Compilations (formula x function x dtype) a worker process must save to pay for its start
#: (about 1 s: Python, numba and SymPy imports); one compilation costs about 0.15 s.
WORTH_A_WORKER = 12


def compile_in_workers(keys: Sequence[FormulaKey], mode: str, functions: Sequence[str],
                       dtypes: Sequence[np.dtype]) -> None:
    """Compile ``functions`` of the formulas ``keys`` for ``dtypes`` into the disk cache, in parallel.

    Does nothing when the work is too small to pay for starting processes, when
    ``settings.compile_processes`` is 1, or without a disk cache (workers could not hand their
    results over). Never raises: whatever a worker could not do is compiled by the caller.
    """
    compilations = len(keys) * len(functions) * len(dtypes)
    processes = min(settings.compile_processes, compilations // WORTH_A_WORKER)
    if processes < 2 or not settings.use_kernel_cache:
        return
    started = time.perf_counter()
    logger.info("compiling %d formulas (%s for %s) in %d worker processes", len(keys), ", ".join(functions),
                ", ".join(str(np.dtype(d)) for d in dtypes), processes)
    package_root = str(Path(__file__).resolve().parents[2])
    environment = {**os.environ, "SYMJIT_NUMBA_CACHE_DIR": str(settings.cache_dir),
                   "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    workers = []
    for k in range(processes):
        share = keys[len(keys) * k // processes:len(keys) * (k + 1) // processes]
        job = {"mode": mode, "functions": list(functions), "dtypes": [np.dtype(d).name for d in dtypes],
               "formulas": [[key.text, list(key.constants), key.label] for key in share]}
        worker = subprocess.Popen([sys.executable, "-m", "symjit_numba.backends.cpu_workers"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=environment, text=True)
        worker.stdin.write(json.dumps(job))
        worker.stdin.close()
        workers.append(worker)
    for worker in workers:
        errors = worker.stderr.read()
        if worker.wait() != 0:
            logger.info("a compile worker failed (the layer's process compiles its share): %s", errors[-2000:])
    logger.info("worker processes compiled %d formulas in %.1f s", len(keys), time.perf_counter() - started)


def _work(job: dict) -> None:
    """In a worker: derive, write and compile each formula of ``job`` into the disk cache."""
    from ..store import formula_module
    from .cpu_jit import _Kernel

    for text, constants, label in job["formulas"]:
        module, _ = formula_module(FormulaKey(text, tuple(constants), label), job["mode"])
        for name in job["functions"]:
            kernel = _Kernel(getattr(module, name), repr(label))
            for dtype in job["dtypes"]:
                kernel(np.dtype(dtype))


if __name__ == "__main__":
    _work(json.loads(sys.stdin.read()))
