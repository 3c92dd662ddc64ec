"""What identifies the code generators' output: a fingerprint of their sources.

Every generated module's text ends with it (:func:`stamped`), so a module on disk, and numba's
cache of it (which holds inlined math code), never outlives a change to the code that wrote it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["CODEGEN_FILES", "codegen_fingerprint", "stamped"]

#: The files whose content shapes generated kernels: a change to any of them invalidates the cache.
CODEGEN_FILES = ("functions.py", "formulas/grammar.py", "formulas/resolve.py", "codegen/printer.py",
                 "codegen/rewrite.py", "codegen/source.py", "codegen/prebuilt.json", "mathlib/vector_math.py",
                 "mathlib/scalar_special.py", "mathlib/sums.py", "mathlib/interleaved.py")


@functools.cache
def codegen_fingerprint() -> str:
    """A short hash of :data:`CODEGEN_FILES` (files that do not exist count as empty)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in CODEGEN_FILES:
        path = package / name
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:16]


def stamped(text: str) -> str:
    """A generated module's text with the code generators' fingerprint appended."""
    return f"{text}\n# codegen fingerprint: {codegen_fingerprint()}\n"
