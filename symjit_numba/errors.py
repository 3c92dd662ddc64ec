"""Every exception and warning that symjit_numba raises, in one place.

Catch :class:`SymJITError` to handle anything the library refuses; each subclass also derives from
the built-in exception a user would expect (a bad formula is a ``ValueError``, a bad device id is a
``ValueError``), so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "SymJITError",
    "FormulaParsingError",
    "JITCompilationError",
    "InvalidDeviceIDError",
    "KernelArgumentError",
    "CompilationWarning",
    "PerformanceWarning",
]


class SymJITError(Exception):
    """Base class of every error raised by symjit_numba."""


class FormulaParsingError(SymJITError, ValueError):
    """A formula string or config is malformed, unsafe, or uses a name it may not use."""


class JITCompilationError(SymJITError, RuntimeError):
    """A backend could not compile the generated kernels (or is not available)."""


class InvalidDeviceIDError(SymJITError, ValueError):
    """A GPU device id is negative or not smaller than the number of visible GPUs."""


class KernelArgumentError(SymJITError, ValueError):
    """A kernel was called with arrays of the wrong shape, dtype, layout, or with bad offsets."""


class CompilationWarning(UserWarning):
    """Something about compilation the user should know, that did not stop it."""


class PerformanceWarning(UserWarning):
    """The requested backend is not used (a slower one runs instead), or a call is slow by design."""
