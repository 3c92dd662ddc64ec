"""symjit_numba: compile symbolic formulas into fast kernels for heterogeneous neural-network layers.

>>> import numpy as np
>>> from symjit_numba import SymbolicJITCompiler
>>> layer = SymbolicJITCompiler([("relu", {}), ("a*tanh(b*num)", {"a": 1.5, "b": 0.5})], "CPU_PYTHON")
>>> params, offsets = layer.make_params(np.float64)
>>> z = np.array([[-1.0, 2.0], [0.0, 4.0]])
>>> a = np.empty_like(z)
>>> layer.forward_kernel(z, a, params, offsets, 2, 2)
>>> a.round(4)
array([[0.   , 2.   ],
       [0.   , 1.446]])
"""

__version__ = "0.1.0"

from .compiler import METHODS, SymbolicJITCompiler  # noqa: E402
from .errors import (  # noqa: E402
    CompilationWarning,
    ConfigurationError,
    ConfigurationWarning,
    FormulaParsingError,
    InvalidDeviceIDError,
    JITCompilationError,
    KernelArgumentError,
    PerformanceWarning,
    SymJITError,
)
from .formulas import available_formulas, register_formula  # noqa: E402
from .settings import settings  # noqa: E402

__all__ = [
    "SymbolicJITCompiler",
    "METHODS",
    "settings",
    "register_formula",
    "available_formulas",
    "SymJITError",
    "FormulaParsingError",
    "ConfigurationError",
    "JITCompilationError",
    "InvalidDeviceIDError",
    "KernelArgumentError",
    "CompilationWarning",
    "PerformanceWarning",
    "ConfigurationWarning",
    "__version__",
]
