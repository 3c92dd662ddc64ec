"""Math building blocks that the generated kernels call.

``numpy_special`` gives vectorised numpy versions of the special functions numpy lacks (used by the
CPU_PYTHON backend); ``vector_math`` gives numba implementations written so that LLVM auto-vectorises
them (used by the CPU_JIT backend).
"""
