"""The float64 accumulation of the parameter-gradient kernels.

``add(total, term)`` is ``total + float64(term)`` with LLVM's ``reassoc`` flag on that one addition
(inlined, so the flag stays on it inside the caller's loop; everything else in the caller keeps the
caller's strict flags). ``reassoc`` lets LLVM vectorise a loop's running sum: it keeps several
partial sums in vector lanes and adds them at the end, instead of one chain of dependent additions
(4096 float32 terms: 0.7 us instead of 7.7 us here). The order it adds in is fixed by the compiled
code and the number of terms alone, so a task gives the same bits whichever thread runs it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["add"]


@njit(fastmath={"reassoc", "contract"}, error_model="numpy", forceinline=True, cache=True)
def add(total, term):  # pragma: no cover - compiled
    """``total + float64(term)``, reassociable (see the module docstring)."""
    return total + np.float64(term)
