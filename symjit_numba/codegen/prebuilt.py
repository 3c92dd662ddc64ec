"""The named formulas, already differentiated and printed, so that a layer of them needs no SymPy.

Importing SymPy and deriving a layer's formulas costs about 0.65 s on a cold start (of which the
import is 0.45 s). The named formulas (``relu``, ``gelu``, ``mse``...) are the same for everyone,
so their printed forms ship with the package in ``prebuilt.json``; a formula found there goes
straight to the kernel source, any other formula is parsed, differentiated and printed as usual.
Their CPU_JIT modules ship too, in ``symjit_numba/named_kernels``: numba compiles each once per
installation and keeps it in its cache, so a layer of named formulas compiles nothing.

The table and the modules are generated from the registry, the printer and the code generators,
never edited by hand::

    python -m symjit_numba.codegen.prebuilt

and tests fail when they no longer match what the generators produce.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path

from .. import __version__
from ..formulas.resolve import FormulaKey, LayerPlan
from .fingerprint import codegen_fingerprint, stamped
from .source import BLOCKS, PrintedFormula, generate_source

__all__ = ["printed_formulas", "formula_module_source", "periodic_module_source", "named_module", "named_modules", "build_table",
           "TABLE_FILE", "NAMED_KERNELS_DIR"]

TABLE_FILE = Path(__file__).with_name("prebuilt.json")
#: The named formulas' numba modules (``codegen.source``), generated from the table.
NAMED_KERNELS_DIR = Path(__file__).resolve().parent.parent / "named_kernels"
_TARGETS = ("numba", "cuda")


def _entry_name(key: FormulaKey, mode: str, target: str) -> str:
    return f"{target}|{mode}|{key.text}|{','.join(key.constants)}"


@functools.cache
def _table() -> dict[str, dict]:
    try:
        return json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a damaged installation: derive everything instead
        return {}


def printed_formulas(plan: LayerPlan, target: str) -> list[PrintedFormula]:
    """The unique formulas of ``plan`` printed for ``target`` (``"numba"`` or ``"cuda"``).

    Named formulas come from the shipped table; the others are parsed, differentiated and printed
    (importing SymPy).
    """
    printed = []
    for key in plan.formulas:
        entry = _table().get(_entry_name(key, plan.mode, target))
        if entry is not None and set(entry.get("blocks", ())) == {"+".join(computes) for computes in BLOCKS}:
            printed.append(PrintedFormula(key.label, key.constants, entry["formula"], entry["derivative"],
                                          {block: tuple(lines) for block, lines in entry["blocks"].items()},
                                          tuple(entry["constant_derivatives"])))
        else:
            printed.append(replace(_derived(key, plan.mode, target), label=key.label))
    return printed


@functools.lru_cache(maxsize=4096)
def _derived(key: FormulaKey, mode: str, target: str) -> PrintedFormula:
    """A formula parsed, differentiated and printed by SymPy, once per process: a formula's own
    module and a periodic module of several formulas print it alike (the key ignores the label)."""
    from ..formulas.resolve import build_formula
    from .printer import print_formula

    return print_formula(build_formula(key, mode), target)


def named_module(key: FormulaKey, mode: str) -> str | None:
    """The name of the shipped numba module of a named formula (in ``symjit_numba.named_kernels``)."""
    entry = _table().get(_entry_name(key, mode, "numba"))
    return None if entry is None else entry.get("module")


def formula_module_source(key: FormulaKey, mode: str) -> str:
    """The numba module of one formula: all of an activation's task functions, or a loss's kernels."""
    return generate_source(printed_formulas(LayerPlan(mode, (key,), (0,), ((),)), "numba"), mode, "numba",
                           "node_major", __version__)


def periodic_module_source(plan: LayerPlan) -> str:
    """The numba module of a batch-major layer whose formulas repeat every ``len(plan.formulas)``
    nodes: ``plan.formulas`` lists the period's, position by position (a formula may appear twice)."""
    return generate_source(printed_formulas(plan, "numba"), "activation", "numba", "periodic", __version__)


def _shipped_variants() -> list[tuple[str, FormulaKey, str]]:
    """(module name, key, mode) of each shipped variant of the built-in named formulas.

    Two variants of a formula with constants: every default left out of the config (fixed values,
    e.g. ``("selu", {})``, module ``selu``) and every default listed (trainable, module
    ``selu_listed``); configs that list some of them compile their own module at first use.
    """
    from ..formulas.registry import builtin_formulas
    from ..formulas.resolve import named_formula_key

    variants = []
    for named in builtin_formulas():
        variants.append((named.name, named_formula_key(named), named.mode))
        if named.defaults:
            variants.append((f"{named.name}_listed", named_formula_key(named, tuple(named.defaults)), named.mode))
    return variants


def build_table() -> dict[str, dict]:
    """The table for the built-in named formulas, freshly derived and printed (needs SymPy)."""
    from ..formulas.resolve import build_formula
    from .printer import print_formula

    table = {}
    for module, key, mode in _shipped_variants():
        built = build_formula(key, mode)
        for target in _TARGETS:
            printed = print_formula(built, target)
            table[_entry_name(key, mode, target)] = {
                "formula": printed.formula, "derivative": printed.derivative,
                "constant_derivatives": list(printed.constant_derivatives),
                "blocks": {block: list(lines) for block, lines in printed.blocks.items()},
                **({"module": module} if target == "numba" else {}),
            }
    return table


def named_modules() -> dict[str, str]:
    """File name -> text of each named formula's shipped numba module, generated from the table."""

    return {f"{module}.py": stamped(formula_module_source(key, mode)) for module, key, mode in _shipped_variants()}


def _write() -> None:
    TABLE_FILE.write_text(json.dumps(build_table(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {TABLE_FILE}")
    _table.cache_clear()
    codegen_fingerprint.cache_clear()  # the table is one of the sources it covers
    for old in NAMED_KERNELS_DIR.glob("*.py"):
        if old.name != "__init__.py":
            old.unlink()
    modules = named_modules()
    for name, text in modules.items():
        (NAMED_KERNELS_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(modules)} modules to {NAMED_KERNELS_DIR}")


if __name__ == "__main__":
    _write()
