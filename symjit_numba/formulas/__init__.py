"""The formula front end: safe parsing, named formulas, symbolic derivatives."""

from .registry import NamedFormula, available_formulas, register_formula
from .resolve import FormulaKey, LayerPlan, resolve_configs

__all__ = ["NamedFormula", "available_formulas", "register_formula", "FormulaKey", "LayerPlan", "resolve_configs"]
