"""The examples in the public docstrings run as written and print what they say."""

import doctest

import pytest

import symjit_numba
import symjit_numba.compiler
import symjit_numba.formulas.registry


@pytest.mark.parametrize("module", [symjit_numba, symjit_numba.compiler, symjit_numba.formulas.registry],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_dask_docstring_example():
    """symjit_numba.dask's module example (needs the dask extra)."""
    pytest.importorskip("dask.array")
    import symjit_numba.dask

    result = doctest.testmod(symjit_numba.dask, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
