"""A griffe extension for the API reference: render the Sphinx roles used in docstrings.

The library's docstrings are numpy style and cross-reference with Sphinx roles
(``:class:`~symjit_numba.PerformanceWarning```, ``:meth:`make_params```), which mkdocstrings would
print verbatim. This rewrites each role to inline code showing what Sphinx would show: the explicit
title if there is one (``title <target>``), the last component for ``~target``, else the target.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`(~?)([^`<]+?)\s*(?:<([^>`]+)>)?`")


def _render(match: re.Match) -> str:
    tilde, text, target = match.groups()
    if target is not None:  # `title <target>`
        return f"`{text.strip()}`"
    text = text.strip()
    return f"`{text.rsplit('.', 1)[-1] if tilde else text}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles in every docstring to inline code."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = _ROLE.sub(_render, obj.docstring.value)
