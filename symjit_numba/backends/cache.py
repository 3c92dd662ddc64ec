"""Generated kernel modules on disk, so a warm process needs neither SymPy nor numba's compiler.

Layout of ``settings.cache_dir``::

    v<version>/plans/<plan digest>.json    which module a layer's unique formulas compile to
    v<version>/kernels/k_<digest>.py       the generated module (digest = hash of its text, which ends
                                           with the fingerprint of the code-generation sources)
    v<version>/kernels/__pycache__/        numba's own cache (``cache=True``) of compiled kernels

:func:`compile_cached` loads numba's cached code without numba's registry refresh (most of a warm
start otherwise). Files are written to a temporary name and renamed into place, so two processes filling the same
cache never see half a file. A module whose text no longer matches its digest, a plan that does
not parse, or numba index files that fail to load are treated as missing and rebuilt.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from numba.core.compiler_lock import global_compiler_lock
from numba.core.runtime import rtsys

from .. import __version__
from ..formulas.resolve import LayerPlan
from ..settings import settings

__all__ = ["compile_cached", "load_kernel_module", "plan_digest"]

_loaded: dict[str, tuple[ModuleType, str]] = {}  # plan digest -> (module, its text): equal layers share kernels
_lock = threading.Lock()
_scratch_dir: Path | None = None


#: The files whose content shapes generated kernels: a change to any of them invalidates the cache.
_CODEGEN_FILES = ("functions.py", "codegen/printer.py", "codegen/source.py", "codegen/prebuilt.json",
                  "mathlib/vector_math.py", "mathlib/scalar_special.py")


@functools.cache
def _codegen_fingerprint() -> str:
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in _CODEGEN_FILES:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def plan_digest(plan: LayerPlan, target: str, layout: str) -> str:
    """A name for everything that determines a layer's kernel module."""
    identity = [__version__, _codegen_fingerprint(), target, layout, plan.mode,
                [[k.text, list(k.constants)] for k in plan.formulas]]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]


def _module_file_name(text: str) -> str:
    return f"k_{hashlib.sha256(text.encode()).hexdigest()[:24]}.py"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _numba_cache_is_readable(module_path: Path) -> bool:
    """False if any of numba's cache files for this module fails to unpickle (numba would crash).

    The data files refer to the kernel module, so this runs after it is imported.
    """
    cache = module_path.parent / "__pycache__"
    for index in cache.glob(f"{module_path.stem}.*.nbi"):
        try:
            with open(index, "rb") as handle:
                pickle.load(handle)
                pickle.loads(handle.read())
            for data in cache.glob(f"{index.name.rsplit('.', 2)[0]}.*.nbc"):
                pickle.loads(data.read_bytes())
        except Exception:  # noqa: BLE001 - any failure means the file is unusable
            return False
    return True


def _purge_numba_cache(module_path: Path) -> None:
    for stale in (module_path.parent / "__pycache__").glob(f"{module_path.stem}.*"):
        stale.unlink(missing_ok=True)


def _import(path: Path) -> ModuleType:
    name = f"symjit_numba_kernels_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # numba's cache finds a function's module through sys.modules: register before executing.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _kernel_dir() -> Path:
    global _scratch_dir
    if settings.use_kernel_cache:
        return Path(settings.cache_dir) / f"v{__version__}" / "kernels"
    if _scratch_dir is None:
        _scratch_dir = Path(tempfile.mkdtemp(prefix="symjit_numba-"))
        atexit.register(shutil.rmtree, _scratch_dir, ignore_errors=True)
    return _scratch_dir


def load_kernel_module(plan: LayerPlan, target: str, layout: str,
                       generate: Callable[[], str]) -> tuple[ModuleType, str]:
    """The kernel module for a layer, from memory, the disk cache, or ``generate()`` (its text).

    Returns the module and its source text. ``generate`` (which may need SymPy) runs only on a miss.
    """
    key = plan_digest(plan, target, layout)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        kernels = _kernel_dir()
        plan_file = kernels.parent / "plans" / f"{key}.json"
        path = None
        if settings.use_kernel_cache:
            try:
                candidate = kernels / json.loads(plan_file.read_text(encoding="utf-8"))["module"]
                text = candidate.read_text(encoding="utf-8")
                if candidate.name == _module_file_name(text):
                    path = candidate
            except (OSError, ValueError, KeyError, TypeError):
                path = None
        if path is None:
            # numba's cache of a module file stays valid while the file is unchanged, and it holds
            # inlined code from vector_math etc.: the fingerprint makes the file change with them.
            text = f"{generate()}\n# codegen fingerprint: {_codegen_fingerprint()}\n"
            path = kernels / _module_file_name(text)
            try:
                current = path.read_text(encoding="utf-8")
            except OSError:
                current = None
            if current != text:
                _write_atomically(path, text)
            if settings.use_kernel_cache:
                _write_atomically(plan_file, json.dumps({"module": path.name}))
        module = _import(path)  # numba reads its cache lazily, at the first compile: check it now
        if not _numba_cache_is_readable(path):
            _purge_numba_cache(path)
        _loaded[key] = module, text
        return module, text


def compile_cached(dispatcher: Any, signature: tuple) -> None:
    """Compile a kernel for ``signature``, loading it from numba's disk cache when it is there.

    numba's own cache lookup (``Dispatcher.compile``) first refreshes its target context: it imports
    and registers every typing and lowering registry it has, about 0.25 s of a 0.34 s warm start of
    W1 here, although loading compiled code needs none of them. So we look up numba's cache
    directly and hand the result to the dispatcher, as ``Dispatcher.compile`` does after its
    refresh; the runtime the code links against (NRT) is initialised first. On a miss, or if this
    numba's cache does not look as expected, ``dispatcher.compile`` does everything (and is always
    correct); it also refreshes the context before any real compilation.
    """
    with global_compiler_lock:  # as numba's own compile: dispatchers are not thread-safe
        if tuple(signature) in dispatcher.overloads:
            return
        load = getattr(getattr(dispatcher, "_cache", None), "_load_overload", None)
        if load is not None:
            context = dispatcher.targetctx
            try:
                rtsys.initialize(context)
                result = load(signature, context)
            except Exception:  # noqa: BLE001 - unreadable or unexpected: numba's full path decides
                result = None
            if result is not None:
                context.insert_user_function(result.entry_point, result.fndesc, [result.library])
                dispatcher.add_overload(result)
                return
        dispatcher.compile(signature)
