"""The one settings object of symjit_numba.

>>> from symjit_numba import settings
>>> settings.warning_level = "error"      # raise instead of falling back to a slower backend

``settings.override(...)`` changes values for the duration of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import JITCompilationError, PerformanceWarning

__all__ = ["Settings", "settings"]

WARNING_LEVELS = ("error", "warn", "ignore")


def _default_cache_dir() -> Path:
    """``$SYMJIT_NUMBA_CACHE_DIR``, else the platform's per-user cache folder."""
    from_env = os.environ.get("SYMJIT_NUMBA_CACHE_DIR")
    if from_env:
        return Path(from_env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "symjit_numba"


def _default_num_threads() -> int:
    from_env = os.environ.get("SYMJIT_NUMBA_NUM_THREADS")
    if from_env:
        return int(from_env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Settings:
    """Library-wide settings.

    Attributes
    ----------
    warning_level : {"warn", "error", "ignore"}
        What happens when the requested backend cannot be used: ``"warn"`` falls back to a slower
        backend with a :class:`~symjit_numba.PerformanceWarning`, ``"ignore"`` falls back silently,
        ``"error"`` raises :class:`~symjit_numba.JITCompilationError`.
    use_kernel_cache : bool
        Keep generated kernel modules (and numba's compiled code) on disk in :attr:`cache_dir`, so a
        new process with the same configs compiles nothing.
    cache_dir : pathlib.Path
        Where the disk cache lives. Defaults to ``$SYMJIT_NUMBA_CACHE_DIR`` or a per-user cache folder.
    num_threads : int
        Threads a CPU_JIT kernel call uses. Defaults to ``$SYMJIT_NUMBA_NUM_THREADS``, else the cores
        this process may run on.
    """

    warning_level: str = "warn"
    use_kernel_cache: bool = True
    cache_dir: Path = field(default_factory=_default_cache_dir)
    num_threads: int = field(default_factory=_default_num_threads)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "warning_level" and value not in WARNING_LEVELS:
            raise ValueError(f"warning_level must be one of {WARNING_LEVELS}, got {value!r}")
        if name == "cache_dir":
            value = Path(value).expanduser()  # type: ignore[arg-type]
        if name == "use_kernel_cache":
            value = bool(value)
        if name == "num_threads" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"num_threads must be a positive integer, got {value!r}")
        if name not in {f for f in self.__dataclass_fields__}:
            raise AttributeError(f"unknown setting {name!r}; settings are {list(self.__dataclass_fields__)}")
        super().__setattr__(name, value)

    @contextlib.contextmanager
    def override(self, **changes: object) -> Iterator[Settings]:
        """Temporarily change settings inside a ``with`` block, restoring them afterwards."""
        saved = {name: getattr(self, name) for name in changes}
        try:
            for name, value in changes.items():
                setattr(self, name, value)
            yield self
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    def fall_back(self, message: str) -> None:
        """Apply :attr:`warning_level` to a backend that cannot be used.

        Raises :class:`JITCompilationError` under ``"error"``, warns under ``"warn"``, returns
        silently under ``"ignore"``; in the last two cases the caller goes on with a slower backend.
        """
        if self.warning_level == "error":
            raise JITCompilationError(message)
        if self.warning_level == "warn":
            warnings.warn(message, PerformanceWarning, stacklevel=4)


settings = Settings()
