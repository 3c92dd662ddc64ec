"""Property tests: random formulas of the whole formula language against an independent mpmath reference.

What is covered. ``tests/_formula_fuzz.py`` draws formula *trees* from a seeded generator over the
whole documented language: every function of ``symjit_numba.functions.FUNCTIONS`` (exp log log1p
expm1 sqrt Abs sign Heaviside (1 or 2 arguments) Max Min (2-3 arguments, nested) sin cos tan asin
acos atan atan2 sinh cosh tanh asinh acosh atanh erf erfc ndtr sinc gamma loggamma sigmoid
softplus) and their aliases (abs max min lgamma heaviside Phi), functions of literals that the
parser folds (``loggamma(-0.5)``, ``Heaviside(2)``), the math constants, the declared constants
``a`` and ``b``, ``+ - * /`` and unary minus, powers with integer, fractional and symbolic
exponents (``**`` and ``^``; bases such as ``((num + 1)*(num + 2))``), ``f(u)/u`` quotients, and
Piecewise with comparisons, chains, ``& | ~ and or not``, ``False`` and nested Piecewise inside
conditions; the variable is spelled ``num``, ``x`` or ``z``. A tree is printed to a string for
the library and evaluated *directly* in mpmath (160 bits) for the reference, with its derivative
built by our own chain rule under the documented conventions (Abs'(0) = 0, ties of Max/Min split
1/2 each, sign' = Heaviside' = 0, a Piecewise's derivative is the selected branch's), so no parser,
SymPy rewrite or printer defect can hide in the reference.

Each formula is a node of one layer (many formulas per layer, ~43 points per node: 0, -0, ±1e-8,
±1e-39, ±1e-310, ±0.5, ±1, ±2.5, ±20, ±60, ±1e4, NaN, ±inf, the formula's own kinks (its literals,
±a, b) and random points). For every backend (CPU_PYTHON, CPU_JIT, GPU_CUDA under the simulator),
in float64 and float32, the forward, backward and fused (``forward_derivative_kernel``) outputs are

* compared with the reference where it is checkable: tolerance ``4*(bound + |x*f'(x)|*u) + 4*eta``,
  where bound is a first-order running error bound of the formula as written, in the dtype
  (float32: at the float32 input and constants), and ``|x*f'(x)|*u`` what rounding the input
  changes (the kernels evaluate SymPy's canonical form, not the formula as written); see the
  helper's docstring;
* compared with each other in class (finite / NaN / +inf / -inf) at every point, the non-finite
  inputs included, and forward against fused kernel within each backend. Not where an
  intermediate of the formula as written (or of its derivative) leaves the dtype's range at a
  finite input: whether NaN, ±inf or 0 comes out then depends on the order of operations
  (``inf*0`` in one arrangement, ``0`` in another), which each backend chooses.

Skipped points (documented rule): a point is not compared with the reference where the value is not
a finite real (domain, pole, overflow of an intermediate), where a discrete decision (Piecewise
condition, Max/Min tie, sign/Heaviside/Abs' at 0, atan2's cut) lies within 4 error bounds of its
switching point (kinks, branch boundaries), or where the bound exceeds 1e-3 of the value
(ill-conditioned); a derivative is checked only where the value is defined (SymPy's ``acosh'`` is
finite below 1). ``x**-n`` counts ``x**n`` as an intermediate (every backend divides by it), and
``Abs'`` at an exact zero of its argument is ambiguous (SymPy drops the Abs of a provably
non-negative argument, ``Abs(Max(x, 0))`` is ``Max(x, 0)``, whose slope at 0 is 1/2, not 0). Class agreement is skipped only at the ambiguous and the overflowing points, and for derivatives
where the function itself has no finite value. Exact
ties are checked.

Excluded classes, and why: a negative *literal* base with a symbolic exponent (``(-2.5)**num``) is
not generated, since its derivative is complex (refused, rightly), nor a constant base of 0 or an
undefined one under a power (``sign(0)**(-2)``, refused rightly); Max/Min with more than 4
flattened arguments (a deliberate grammar limit); 3-way exact ties, which SymPy's flattening of
nested Max decides differently from the nested formula, occur only as ambiguous points. The long
profile also lets three classes of disagreement pass, printed and counted in its report (see
``Finding.excluded`` in the helper for the reasons): findings at subnormal inputs, at non-finite
inputs, and refusals of formulas that SymPy folds into an undefined constant. The default profile
allows none.

Budget. The default profile (always run) is the 18 regression formulas below plus
``SYMJIT_FUZZ_DEFAULT`` (default 40) random formulas of a fixed seed, in one layer per backend,
43 points each: about 40-60 s on two cores when it passes, most of it CPU_JIT compiling each formula
once per dtype (a failing run adds the bisection that finds the failing formulas and the shrinker).
The long profile (``@pytest.mark.slow``) runs 24 formulas of another seed by default (so CI runs it
too) and ``SYMJIT_FUZZ_FORMULAS`` of them when that is set::

    SYMJIT_FUZZ_FORMULAS=2000 pytest tests/test_properties.py -m slow -s

in layers of 100 formulas (about 1 s per formula: 300 formulas took 330 s here);
``SYMJIT_FUZZ_REPORT=findings.jsonl`` writes every disagreement as a JSON line. ``SYMJIT_FUZZ_SEED`` changes the formulas
(default 20240611), so CI draws the same ones every run. A failure lists every disagreement
grouped by (check, backend, dtype, kernel), with the formula, constants, seed and point, and the
first group's formula shrunk to a small one that still fails (``SYMJIT_FUZZ_SHRINK_SECONDS``,
default 20).
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings

import numpy as np
import pytest

from symjit_numba import settings

from . import _formula_fuzz as fz
from .conftest import build

BACKENDS = ("CPU_PYTHON", "CPU_JIT", "GPU_CUDA")
SEED = fz.env_int("SYMJIT_FUZZ_SEED", 20240611)

F = lambda name, *args: ("f", name, tuple(args), name)  # noqa: E731
k, X, ONE, TWO, A = fz.lit, fz.X, fz.ONE, fz.TWO, ("c", "a")

#: Formulas that found defects once (issue 10), run through the same checks in every profile.
REGRESSIONS = [
    ("pow", ("mul", ("add", X, ONE), ("add", X, TWO)), k("1.5")),                 # lost parentheses
    ("pow", ("mul", F("Max", X, k("0.5")), F("sin", X)), A),
    ("div", ONE, F("sqrt", X)),                                                    # float32 1/sqrt
    F("erfc", ("neg", X)),                                                         # erfc(-u) tail
    F("erfc", ("sub", k("0.5"), X)),
    ("add", ("div", F("sin", X), X), ("div", F("sinh", X), X)),                   # shared reciprocal
    ("pow", X, k("0.5")),                                                          # x**0.5 at -inf
    ("pow", X, k("1.5")),
    F("gamma", X),                                                                 # gamma(±0)
    ("mul", F("Heaviside", k("2")), X),                                            # refused
    ("pw", ((ONE, ("cmp", ("<",), (X, ("pw", ((k("0.1"), ("cmp", ("<=",), (X, A))),), A)))),), TWO),
    F("Abs", ("pow", X, A)),
    F("Abs", F("asin", X)),
    F("sign", F("log", X)),
    ("add", F("loggamma", k("(-0.5)")), X),
    F("Max", X, A), F("Abs", X), ("pw", ((fz.ZERO, ("cmp", ("<=",), (X, fz.ZERO))),), X),
]


def regression_cases():
    return [fz.make_case(f"regression #{i}", tree, random.Random(i), text=fz.to_text(tree, "x" if i == 6 else "num"),
                         a=0.75, b=1.5) for i, tree in enumerate(REGRESSIONS)]


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------

def _build_layer(cases, method, stats, kind):
    """The compiler of the cases ``method`` compiles and their indices; a failure is a finding of ``kind``."""
    with settings.override(warning_level="error"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        def compiles(indices):
            try:
                build([cases[i].config for i in indices], method)
                return True
            except Exception as error:  # noqa: BLE001 - any refusal of a valid formula is a finding
                if len(indices) == 1:
                    stats.findings.append(fz.Finding(kind, method, "-", "-", cases[indices[0]], math.nan,
                                                     detail=f"{type(error).__name__}: {str(error)[:300]}"))
                return False

        def bisect(indices):   # the formulas that compile, in O(failures * log n) builds
            if not indices or compiles(indices):
                return list(indices)
            if len(indices) == 1:
                return []
            half = len(indices) // 2
            return bisect(indices[:half]) + bisect(indices[half:])

        good = bisect(list(range(len(cases))))
        if not good:
            return None, []
        return build([cases[i].config for i in good], method), good


def _run(compiler, rows, cases, z, method, dtype_name, stats):
    """The layer's outputs and {case index: row}; a formula whose kernels raise is a finding."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fz.run_layer(compiler, np.ascontiguousarray(z[rows])), {i: row for row, i in enumerate(rows)}
        except Exception:  # noqa: BLE001 - find the formulas that fail, one by one
            pass
        outputs = {o: np.full((len(rows), z.shape[1]), np.nan, z.dtype) for o in fz.OUTPUTS}
        rmap = {}
        for row, i in enumerate(rows):
            try:
                one = fz.run_layer(build([cases[i].config], method), np.ascontiguousarray(z[[i]]))
            except Exception as error:  # noqa: BLE001
                stats.findings.append(fz.Finding("runtime error", method, dtype_name, "-", cases[i], math.nan,
                                                 detail=f"{type(error).__name__}: {str(error)[:300]}"))
                continue
            for o in fz.OUTPUTS:
                outputs[o][row] = one[o][0]
            rmap[i] = row
        return outputs, rmap


def run_cases(cases, stats, backends=BACKENDS, dtypes=("float64", "float32")):
    """Every check of the module docstring on ``cases``; findings go to ``stats``."""
    stats.formulas += len(cases)
    start = time.perf_counter()
    # CPU_PYTHON first: a formula it cannot build is refused (parse, validation, derivative)
    compiler, good = _build_layer(cases, "CPU_PYTHON", stats, "refused")
    stats.refused += len(cases) - len(good)
    stats.timed("build CPU_PYTHON", start)
    usable = [cases[i] for i in good]
    if not usable:
        return
    layers = {"CPU_PYTHON": (compiler, list(range(len(usable))))} if "CPU_PYTHON" in backends else {}
    for method in backends:
        if method != "CPU_PYTHON":
            start = time.perf_counter()
            layers[method] = _build_layer(usable, method, stats, "compile")
            stats.timed(f"build {method}", start)
    width = len(usable[0].points)
    stats.points += width * len(usable)
    for dtype_name in dtypes:
        dt = fz.DTYPES[dtype_name]
        z = np.stack([c.points for c in usable]).astype(dt.np)
        results = {}
        for method, (compiler, rows) in layers.items():
            if compiler is None:
                continue
            start = time.perf_counter()
            results[method] = _run(compiler, rows, usable, z, method, dtype_name, stats)
            stats.timed(f"run {method}", start)
        start = time.perf_counter()
        for i, case in enumerate(usable):
            refs = fz.references(case, dt, z[i])
            per_backend = {m: {o: out[o][[rmap[i]]] for o in fz.OUTPUTS} for m, (out, rmap) in results.items()
                           if i in rmap}
            fz.check_case_outputs(case, 0, dtype_name, per_backend, refs, stats, z[i])
        stats.timed("reference", start)


def shrink(finding, seconds):
    """A smaller formula with a finding of the same group at the same point (greedy, time-boxed)."""
    deadline = time.perf_counter() + seconds
    group, point = finding.group, finding.point
    backends = sorted({"CPU_PYTHON", finding.backend} - {"all"})
    dtypes = [finding.dtype] if finding.dtype in fz.DTYPES else ["float64"]

    def fails(tree):
        case = fz.make_case("shrunk", tree, random.Random(0), text=fz.to_text(tree), a=finding.case.a, b=finding.case.b)
        case.points = np.array([point] * 2 if not math.isnan(point) else [0.5, 0.5])
        trial = fz.Stats()
        try:
            run_cases([case], trial, backends=backends, dtypes=dtypes)
        except Exception:  # noqa: BLE001
            return None
        same = [f for f in trial.findings if f.group == group]
        return same[0] if same else None

    best, best_finding = finding.case.tree, finding
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for path, node in list(fz.nodes_with_paths(best)):
            for candidate in fz.shrink_candidates(node):
                if time.perf_counter() > deadline:
                    return best_finding
                tree = fz.replace_at(best, path, candidate)
                if tree == best or not fz.depends(tree) or fz._size(tree) >= fz._size(best):
                    continue
                hit = fails(tree)
                if hit is not None:
                    best, best_finding, improved = tree, hit, True
                    break
            if improved:
                break
    return best_finding


def assert_no_findings(stats, allow_excluded=False):
    """Fail on any disagreement (``allow_excluded``: except those of the documented excluded
    classes, :attr:`Finding.excluded`, which are printed and counted)."""
    report = fz.summarize(stats)
    print(report)
    if os.environ.get("SYMJIT_FUZZ_REPORT"):
        fz.dump(stats, os.environ["SYMJIT_FUZZ_REPORT"])
    print("seconds:", {key: round(value, 1) for key, value in stats.seconds.items()})
    failing = [f for f in stats.findings if not (allow_excluded and f.excluded)]
    if failing:
        first = failing[0]
        budget = fz.env_int("SYMJIT_FUZZ_SHRINK_SECONDS", 20)
        shrunk = shrink(first, budget) if budget > 0 and first.kind != "compile" else first
        pytest.fail(f"{report}\nshrunk example of the first group:\n    {shrunk.describe()}", pytrace=False)


# ---------------------------------------------------------------------------------------------
# The profiles
# ---------------------------------------------------------------------------------------------

def test_formula_language_matches_mpmath():
    """The default profile: the regression formulas and a fixed-seed sample of random ones."""
    stats = fz.Stats()
    cases = regression_cases() + fz.generate(fz.env_int("SYMJIT_FUZZ_DEFAULT", 40), SEED)
    run_cases(cases, stats)
    assert_no_findings(stats)


@pytest.mark.slow
def test_formula_language_matches_mpmath_long():
    """The long profile: SYMJIT_FUZZ_FORMULAS random formulas of another seed, in layers of 100.

    By default 24 (so that CI runs it too, in about 30 s); ``SYMJIT_FUZZ_FORMULAS=2000`` for the
    long run (about 40 minutes on one core)."""
    stats = fz.Stats()
    total = fz.env_int("SYMJIT_FUZZ_FORMULAS", 24)
    cases = fz.generate(total, SEED + 1)
    for first in range(0, total, 100):
        run_cases(cases[first:first + 100], stats)
    assert_no_findings(stats, allow_excluded=True)


# ---------------------------------------------------------------------------------------------
# The checker checks itself (cheap, no compilation)
# ---------------------------------------------------------------------------------------------

def test_generator_covers_the_whole_language():
    """Every public function and alias, every exponent kind and condition form occurs in a sample."""
    texts = " ".join(case.text for case in fz.generate(400, SEED))
    for name in fz.ALL_FUNCTIONS + ["abs", "max", "min", "lgamma", "heaviside", "Phi", "Piecewise"]:
        assert f"{name}(" in texts, name
    for piece in ["**(2)", "**(0.5)", "**(a)", "^(", " & ", " | ", "~(", " and ", " or ", "not (", "False",
                  "x", "z", "pi", "tau", "phi", "))**(1.5)"]:
        assert piece in texts, piece


def test_reference_knows_its_conventions():
    """The reference's own values at a few points that the documentation fixes."""
    stats = fz.Stats()
    case = fz.make_case("conventions", F("Max", X, A), random.Random(0), a=0.75, b=0.0)
    refs = fz.references(case, fz.F64, np.array([0.75, 2.0, 0.0]))
    assert refs[0][1].value == 0.5 and refs[1][1].value == 1 and refs[2][1].value == 0   # ties split 1/2
    case = fz.make_case("kink", F("Abs", ("sub", X, k("0.1"))), random.Random(0))
    assert fz.references(case, fz.F64, np.array([0.1]))[0][1].amb                         # rounding decides
    del stats


def test_only_the_documented_classes_are_excluded():
    """The long profile's excluded classes are exactly the documented ones, nothing wider."""
    case = fz.make_case("any", F("sin", X), random.Random(0))

    def finding(kind="accuracy", dtype="float64", point=0.5, detail=""):
        return fz.Finding(kind, "CPU_JIT", dtype, "forward", case, point, detail=detail)

    assert finding(point=1e-310).excluded == "subnormal input"
    assert finding(point=-1e-39, dtype="float32").excluded == "subnormal input"
    assert finding(point=1e-300).excluded is None            # normal in float64
    assert finding(point=1e-39).excluded is None              # subnormal in float32 only
    assert finding(point=0.0).excluded is None
    assert finding(kind="special values", point=math.nan).excluded == "non-finite input"
    assert finding(point=-math.inf).excluded == "non-finite input"
    refused = "FormulaParsingError: constant {} is not a real number in formula"
    assert finding("refused", "-", math.nan, refused.format("0**(-2)")).excluded == "undefined constant"
    assert finding("refused", "-", math.nan, refused.format("atanh(1)")).excluded == "undefined constant"
    assert finding("refused", "-", math.nan, refused.format("Heaviside(2)")).excluded is None   # unknown name
    assert finding("refused", "-", math.nan, refused.format("2")).excluded is None             # a real number
    assert finding("refused", "-", math.nan, "the derivative needs im").excluded is None
    assert finding("runtime error", point=math.nan).excluded is None
    assert finding("compile", point=1e-310).excluded is None
