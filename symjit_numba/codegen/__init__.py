"""Code generation: SymPy expressions to readable kernel source, one printer for every target."""

from .printer import KernelPrinter
from .source import KernelSource, generate_source

__all__ = ["KernelPrinter", "KernelSource", "generate_source"]
