"""Every exception and warning that symjit_numba raises, in one place.

Catch :class:`SymJITError` to handle anything the library refuses; each subclass also derives from
the built-in exception a user would expect (a bad formula is a ``ValueError``, a bad device id is a
``ValueError``), so generic handlers keep working.

- ``FormulaParsingError`` (``ValueError``): a formula or config the library cannot accept.
- ``ConfigurationError`` (``ValueError``): an option with no such value (``calculation_method``,
  ``mode``, ``layout``, a setting's value); the message lists the accepted values.
- ``InvalidDeviceIDError`` (``ValueError``): a ``device_id`` that names no visible GPU.
- ``KernelArgumentError`` (``ValueError``): bad kernel arguments (shapes, dtypes, overlapping
  arrays, offsets).
- ``JITCompilationError`` (``RuntimeError``): a backend that cannot be used, when
  ``settings.warning_level`` is ``"error"``.
"""

from __future__ import annotations

__all__ = [
    "SymJITError",
    "FormulaParsingError",
    "ConfigurationError",
    "JITCompilationError",
    "InvalidDeviceIDError",
    "KernelArgumentError",
    "CompilationWarning",
    "PerformanceWarning",
    "ConfigurationWarning",
]


class SymJITError(Exception):
    """Base class of every error raised by symjit_numba."""


class FormulaParsingError(SymJITError, ValueError):
    """A formula string or config is malformed, unsafe, or uses a name it may not use."""


class ConfigurationError(SymJITError, ValueError):
    """An option has no such value: ``calculation_method``, ``mode``, ``layout``, or a setting.

    The message lists the accepted values. (An unknown setting *name* raises ``AttributeError``,
    as for any Python attribute.)
    """


class JITCompilationError(SymJITError, RuntimeError):
    """A backend could not compile the generated kernels (or is not available)."""


class InvalidDeviceIDError(SymJITError, ValueError):
    """A device id that is not an integer, negative, or (other than 0) not smaller than the number of
    visible GPUs. ``device_id=0``, the default, is always accepted: CPU backends ignore it."""


class KernelArgumentError(SymJITError, ValueError):
    """A kernel was called with arrays of the wrong shape, dtype, layout, or with bad offsets."""


class CompilationWarning(UserWarning):
    """Something about compilation the user should know, that did not stop it."""


class PerformanceWarning(UserWarning):
    """The requested backend is not used (a slower one runs instead), or a call is slow by design."""


class ConfigurationWarning(UserWarning):
    """An environment variable the package reads holds an invalid value; its default is used instead."""
