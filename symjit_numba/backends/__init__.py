"""Backends: each turns a resolved layer into kernels with the seed's signatures.

``build(plan, layout, device_id) -> Kernels`` in each module; :data:`FALLBACKS` says which backend
stands in for one that cannot be used. Backend modules are imported only when requested, so a
CPU-only user never imports numba.cuda and a warm CPU_JIT process never imports SymPy.
"""

from __future__ import annotations

import importlib

from .kernels import Kernels

__all__ = ["Kernels", "MODULES", "FALLBACKS", "load_backend"]

MODULES = {"CPU_PYTHON": "cpu_python", "CPU_JIT": "cpu_jit", "GPU_CUDA": "gpu_cuda"}
#: Where to go when a backend cannot be used, in order.
FALLBACKS = {"GPU_CUDA": ("CPU_JIT", "CPU_PYTHON"), "CPU_JIT": ("CPU_PYTHON",), "CPU_PYTHON": ()}


def load_backend(method: str):
    """The backend module for a ``calculation_method``."""
    return importlib.import_module(f".{MODULES[method]}", __name__)
