"""The one settings object of symjit_numba.

>>> from symjit_numba import settings
>>> settings.warning_level = "error"      # raise instead of falling back to a slower backend

``settings.override(...)`` changes values for the duration of a ``with`` block.

Environment variables, read once, when the package is imported (they set defaults only; assign to
``settings`` to change a value later). An invalid value is ignored with a
:class:`~symjit_numba.ConfigurationWarning` naming the variable, and the default is used:

- ``SYMJIT_NUMBA_NUM_THREADS``: a positive integer, the default of :attr:`Settings.num_threads`.
- ``SYMJIT_NUMBA_CACHE_DIR``: a folder, the default of :attr:`Settings.cache_dir`.
- ``XDG_CACHE_HOME`` (Linux and other Unix, not macOS) and ``LOCALAPPDATA`` (Windows): an
  absolute path, the per-user cache folder under which ``symjit_numba`` is the default cache
  dir when ``SYMJIT_NUMBA_CACHE_DIR`` is unset.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigurationError, ConfigurationWarning, JITCompilationError, PerformanceWarning

__all__ = ["Settings", "settings"]

WARNING_LEVELS = ("error", "warn", "ignore")


def _ignore_environment(name: str, value: str, accepted: str, default: object) -> None:
    """Warn that ``$name`` is invalid and that ``default`` is used instead."""
    warnings.warn(f"environment variable {name}={value!r} is ignored: it must be {accepted}; "
                  f"using the default, {default}", ConfigurationWarning, stacklevel=2)


def _absolute_folder_from_env(name: str, fallback: Path) -> Path:
    """``$name`` as a folder if it is set to an absolute path (the XDG rule), else ``fallback``."""
    value = os.environ.get(name, "")
    if not value:
        return fallback
    if not Path(value).expanduser().is_absolute():
        _ignore_environment(name, value, "an absolute path", fallback)
        return fallback
    return Path(value).expanduser()


def _default_cache_dir() -> Path:
    """``$SYMJIT_NUMBA_CACHE_DIR``, else the platform's per-user cache folder."""
    from_env = os.environ.get("SYMJIT_NUMBA_CACHE_DIR")
    if from_env:
        return Path(from_env).expanduser()
    if sys.platform == "win32":
        base = _absolute_folder_from_env("LOCALAPPDATA", Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = _absolute_folder_from_env("XDG_CACHE_HOME", Path.home() / ".cache")
    return base / "symjit_numba"


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default_num_threads() -> int:
    """``$SYMJIT_NUMBA_NUM_THREADS`` if it is a positive integer, else the cores this process may use."""
    from_env = os.environ.get("SYMJIT_NUMBA_NUM_THREADS", "")
    if from_env.strip():
        try:
            threads = int(from_env)
        except ValueError:
            threads = 0
        if threads >= 1:
            return threads
        _ignore_environment("SYMJIT_NUMBA_NUM_THREADS", from_env, "a positive integer (threads per CPU_JIT call)",
                            f"{_cores()} (the cores this process may run on)")
    return _cores()


@dataclass
class Settings:
    """Library-wide settings.

    Assigning an unknown name raises ``AttributeError`` listing the settings; an invalid value
    raises :class:`~symjit_numba.ConfigurationError` (a ``ValueError``) saying what is accepted.
    :meth:`override` checks the same way, before changing anything.

    Attributes
    ----------
    warning_level : {"warn", "error", "ignore"}
        What happens when the requested backend cannot be used: ``"warn"`` falls back to a slower
        backend with a :class:`~symjit_numba.PerformanceWarning`, ``"ignore"`` falls back silently,
        ``"error"`` raises :class:`~symjit_numba.JITCompilationError` (nothing falls back).
    use_kernel_cache : bool
        Keep generated kernel modules (and numba's compiled code) on disk in :attr:`cache_dir`, so a
        new process with the same configs compiles nothing.
    cache_dir : pathlib.Path
        Where the disk cache lives. Defaults to the environment variable ``SYMJIT_NUMBA_CACHE_DIR``,
        else ``symjit_numba`` in the per-user cache folder: ``$XDG_CACHE_HOME`` (if an absolute
        path) or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows.
    num_threads : int
        Threads a CPU_JIT kernel call uses (read at every call). Defaults to the environment
        variable ``SYMJIT_NUMBA_NUM_THREADS`` (a positive integer), else the cores this process may
        run on.
    compile_processes : int
        Worker processes that compile a layer's never-seen formulas in parallel, when there are
        enough of them to pay for starting processes (:mod:`symjit_numba.backends.cpu_workers`);
        1 compiles in the calling process only. Defaults to the cores this process may run on (at most 8).
    thread_idle_seconds : float
        How long the CPU_JIT pool's threads wait for the next call before they sleep: spinning for
        the first 0.1 ms, then offering their core to other threads (:mod:`symjit_numba.backends.cpu_pool`).
        A call within that time hands them work in microseconds; a sleeping thread takes tens of
        microseconds to wake. 0 puts them to sleep after every call (no busy core between calls).
        Default 0.002.

    Notes
    -----
    The environment variables are read once, when the package is imported. An invalid value (say
    ``SYMJIT_NUMBA_NUM_THREADS=abc``) does not stop the import: it is ignored with a
    :class:`~symjit_numba.ConfigurationWarning` that names the variable, its value and what it
    accepts, and the default is used.
    """

    warning_level: str = "warn"
    use_kernel_cache: bool = True
    cache_dir: Path = field(default_factory=_default_cache_dir)
    num_threads: int = field(default_factory=_default_num_threads)
    compile_processes: int = field(default_factory=lambda: min(_cores(), 8))
    thread_idle_seconds: float = 0.002

    def _check_name(self, name: str) -> None:
        if name not in self.__dataclass_fields__:
            raise AttributeError(f"unknown setting {name!r}; settings are {', '.join(self.__dataclass_fields__)}")

    def __setattr__(self, name: str, value: object) -> None:
        self._check_name(name)
        if name == "warning_level" and value not in WARNING_LEVELS:
            raise ConfigurationError(f"warning_level must be one of {', '.join(map(repr, WARNING_LEVELS))}; "
                                     f"got {value!r}")
        if name == "cache_dir":
            try:
                value = Path(value).expanduser()  # type: ignore[arg-type]
            except TypeError:
                raise ConfigurationError(f"cache_dir must be a path (str or os.PathLike), got {value!r}") from None
        if name == "use_kernel_cache":
            value = bool(value)
        if name in ("num_threads", "compile_processes") and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        if name == "thread_idle_seconds":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
                raise ConfigurationError(f"thread_idle_seconds must be a number of seconds from 0 to 60, got {value!r}")
            value = float(value)
        super().__setattr__(name, value)

    @contextlib.contextmanager
    def override(self, **changes: object) -> Iterator[Settings]:
        """Temporarily change settings inside a ``with`` block, restoring them afterwards.

        Raises
        ------
        AttributeError
            For an unknown setting name (before anything changes).
        ConfigurationError
            For an invalid value (the settings changed before it are restored).
        """
        for name in changes:
            self._check_name(name)
        saved = {name: getattr(self, name) for name in changes}
        try:
            for name, value in changes.items():
                setattr(self, name, value)
            yield self
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    def fall_back(self, method: str, fallback: str, reason: object) -> None:
        """Apply :attr:`warning_level` to ``method``, which cannot be used because of ``reason``.

        Under ``"error"`` raises :class:`JITCompilationError` (chained to ``reason`` if it is an
        exception), saying that nothing fell back; under ``"warn"`` warns with a
        :class:`PerformanceWarning` that ``fallback`` is used instead; under ``"ignore"`` returns
        silently. In the last two cases the caller goes on with ``fallback``.
        """
        if self.warning_level == "error":
            error = JITCompilationError(
                f"{method} cannot be used: {reason} (settings.warning_level is 'error', so nothing falls back "
                f"to {fallback}; set it to 'warn' or 'ignore' to use {fallback} instead)")
            raise error from (reason if isinstance(reason, BaseException) else None)
        if self.warning_level == "warn":
            warnings.warn(f"{method} is not available, using {fallback} instead: {reason}", PerformanceWarning,
                          stacklevel=4)


settings = Settings()
