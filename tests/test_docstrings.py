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
