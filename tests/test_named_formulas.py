"""Every registered named formula against an independent 50-digit mpmath reference.

What is checked, and why:

* The references below are written by hand from the textbook / ``torch.nn.functional`` definitions
  (``GELU(x) = x*Phi(x)``, ``softplus(x) = log(1+e^x)``, ``huber`` as torch documents it...), not from
  the library's formula strings, so a wrong formula in the registry is caught rather than copied.
  Only the *names* of the built-ins and of their constants are taken from the library. Where a
  textbook expression cancels catastrophically even at 50 digits (``log(1+e^-x)`` for x > 115) the
  reference uses mpmath's ``log1p`` of the same expression; ``mpmath.ncdf`` is Phi.
* Derivatives are ``mpmath.diff`` of the reference, at points at least 1e-3 away from kinks. At the
  kinks themselves torch's conventions are asserted separately (``relu'(0) = 0``, ``elu'(0) = alpha``...).
* Every activation is tested at its default constants *and* at non-default ones, in one
  heterogeneous layer holding all of them (one compile per backend and layout instead of one per
  formula), for every backend, both dtypes and both layouts. Losses are one compiler each.
* Inputs: a grid with 0, tiny, moderate, +-20, +-60, +-90 (float32 ``exp`` overflow), +-750 (float64
  ``exp`` overflow) and +-1e4, plus random points. Every finite input must give a finite value and
  derivative, and values must match the reference to a few units in the last place:
  float64 ``|err| <= 1e-12*|ref| + 1e-14*max(1, |x|)``; float32, against the reference at the
  float32-rounded input and constants, ``|err| <= 2e-6*|ref| + 1e-7*max(1, |x|)``. The absolute
  term covers formulas that cancel terms of size ~|x| (``x - tanh(x)``, ``softplus(p) - t*p``);
  the one per-formula widening (bce's gradient) is explained where it is made.
* Because that absolute term would also hide a tail computed as 0 (sigmoid(-60) ~ 1e-26) or a
  formula that cancels where the function is well conditioned (log-cosh of a small residual ~ d**2/2),
  values are also held to a backward-stability bound: within 16 ulp of |f| + |x*f'(x)| (for losses
  |L| + |p*dL/dp| + |t*dL/dt|), the error that rounding the inputs by one ulp would cause.
* At kinks: torch's derivative conventions. ``delta = err * f'``. NaN in gives NaN out (forward).

GPU_CUDA runs under numba's CUDA simulator (see conftest), which is slow and evaluates ``math.exp``
with Python's ``math`` module; it gets a small grid without |x| > 700 in the accuracy tests, and a
separate test feeds it the huge inputs.
"""

import functools
import json

import mpmath
import numpy as np
import pytest

from symjit_numba import available_formulas
from symjit_numba.formulas import registry

from .conftest import build, run_activation, run_loss

mpmath.mp.dps = 50
mpf = mpmath.mpf

LAYOUTS = ("node_major", "batch_major")


# ---------------------------------------------------------------------------------------------
# Independent references (torch's definitions; constants at torch's defaults)
# ---------------------------------------------------------------------------------------------

def _relu6(x):
    return min(max(x, mpf(0)), mpf(6))


def _log_sigmoid(x):
    # log(1/(1+e^-x)) = -log(1+e^-x); log1p keeps e^-x visible for x > 115 at 50 digits.
    return -mpmath.log1p(mpmath.exp(-x))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: name -> (torch's default constants, reference f(x, **constants))
ACTIVATIONS = {
    "linear": ({}, lambda x: x),
    "relu": ({}, lambda x: max(x, mpf(0))),
    "relu6": ({}, _relu6),
    "leaky_relu": ({"alpha": 0.01}, lambda x, alpha: x if x > 0 else alpha * x),
    "elu": ({"alpha": 1.0}, lambda x, alpha: x if x > 0 else alpha * (mpmath.exp(x) - 1)),
    "selu": ({"alpha": SELU_ALPHA, "scale": SELU_SCALE},
             lambda x, alpha, scale: scale * (x if x > 0 else alpha * (mpmath.exp(x) - 1))),
    "celu": ({"alpha": 1.0}, lambda x, alpha: max(mpf(0), x) + min(mpf(0), alpha * (mpmath.exp(x / alpha) - 1))),
    "sigmoid": ({}, lambda x: 1 / (1 + mpmath.exp(-x))),
    "logsigmoid": ({}, _log_sigmoid),
    "hardsigmoid": ({}, lambda x: _relu6(x + 3) / 6),
    "tanh": ({}, mpmath.tanh),
    "hardtanh": ({"min_val": -1.0, "max_val": 1.0},
                 lambda x, min_val, max_val: min(max(x, min_val), max_val)),
    "tanhshrink": ({}, lambda x: x - mpmath.tanh(x)),
    "swish": ({"beta": 1.0}, lambda x, beta: x / (1 + mpmath.exp(-beta * x))),
    "silu": ({}, lambda x: x / (1 + mpmath.exp(-x))),
    "hardswish": ({}, lambda x: x * _relu6(x + 3) / 6),
    "softplus": ({}, lambda x: mpmath.log1p(mpmath.exp(x))),
    "mish": ({}, lambda x: x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))),
    "gelu": ({}, lambda x: x * mpmath.ncdf(x)),
    "softsign": ({}, lambda x: x / (1 + abs(x))),
    "gaussian": ({}, lambda x: mpmath.exp(-x * x)),
    "sine": ({}, mpmath.sin),
}

#: Points where the derivative jumps (or, for softsign, the second one): no mpmath.diff there.
KINKS = {
    "relu": lambda c: [0], "relu6": lambda c: [0, 6], "leaky_relu": lambda c: [0], "elu": lambda c: [0],
    "selu": lambda c: [0], "celu": lambda c: [0], "hardsigmoid": lambda c: [-3, 3],
    "hardswish": lambda c: [-3, 3], "softsign": lambda c: [0],
    "hardtanh": lambda c: [c["min_val"], c["max_val"]],
}

#: name -> (torch's default constants, reference L(y_pred, y_true, **constants))
LOSSES = {
    "mse": ({}, lambda p, t: (p - t) ** 2),
    "mae": ({}, lambda p, t: abs(p - t)),
    "huber": ({"delta": 1.0},
              lambda p, t, delta: (p - t) ** 2 / 2 if abs(p - t) < delta else delta * (abs(p - t) - delta / 2)),
    "bce": ({}, lambda p, t: -(t * mpmath.log(p) + (1 - t) * mpmath.log(1 - p))),
    # -(t*log(sigmoid(p)) + (1-t)*log(1 - sigmoid(p))), with 1 - sigmoid(p) = sigmoid(-p)
    "bce_with_logits": ({}, lambda p, t: -(t * _log_sigmoid(p) + (1 - t) * _log_sigmoid(-p))),
    "log_cosh": ({}, lambda p, t: mpmath.log(mpmath.cosh(p - t))),
}
LOSS_KINKS = {"mae": lambda c: [0], "huber": lambda c: [-c["delta"], c["delta"]]}

#: Non-default constants: each becomes one more node of the layer (or one more loss compiler).
ACTIVATION_VARIANTS = [
    ("leaky_relu", {"alpha": 0.2}),
    ("elu", {"alpha": 0.7}),
    ("selu", {"alpha": 1.25, "scale": 0.9}),
    ("celu", {"alpha": 0.5}),
    ("swish", {"beta": 1.5}),
    ("hardtanh", {"min_val": -2.0, "max_val": 3.0}),
]
LOSS_VARIANTS = [("huber", {"delta": 0.5})]

BUILTIN_ACTIVATIONS = sorted(name for name, *_ in registry._BUILTIN_ACTIVATIONS)
BUILTIN_LOSSES = sorted(name for name, *_ in registry._BUILTIN_LOSSES)

#: The heterogeneous layer: every built-in at its defaults, then the variants. (The torch test
#: module builds a layer with the same formulas in the same order, so they share compiled kernels.)
LAYER = [(name, {}) for name in BUILTIN_ACTIVATIONS] + ACTIVATION_VARIANTS
LOSS_CONFIGS = [(name, {}) for name in BUILTIN_LOSSES] + LOSS_VARIANTS


def _constants(name, given, table, dtype):
    """The node's constants as the kernel sees them: defaults merged, rounded to ``dtype``."""
    merged = {**table[name][0], **given}
    return {k: float(dtype.type(v)) for k, v in merged.items()}


def _mp(constants):
    return {k: mpf(v) for k, v in constants.items()}


def test_every_builtin_has_a_reference_and_torch_defaults():
    """A new built-in without a reference fails here; defaults must be torch's."""
    assert set(BUILTIN_ACTIVATIONS) == set(ACTIVATIONS)
    assert set(BUILTIN_LOSSES) == set(LOSSES)
    for mode, table in (("activation", ACTIVATIONS), ("loss", LOSSES)):
        registered = available_formulas(mode)
        for name, (defaults, _) in table.items():
            assert registered[name].mode == mode
            assert dict(registered[name].defaults) == pytest.approx(defaults, rel=1e-16), name

def _differing_keys(shipped: dict, fresh: dict) -> list:
    """Keys in only one of the two, or with different values."""
    return sorted(set(shipped) ^ set(fresh) | {k for k in set(shipped) & set(fresh) if shipped[k] != fresh[k]})


def test_prebuilt_table_is_what_the_printer_prints():
    """The shipped printed forms of the named formulas must not drift from the registry and printer."""
    from symjit_numba.codegen import prebuilt

    shipped = json.loads(prebuilt.TABLE_FILE.read_text(encoding="utf-8"))
    fresh = prebuilt.build_table()
    stale = _differing_keys(shipped, fresh)
    assert not stale, f"prebuilt.json is stale for {stale[:3]}...: run python -m symjit_numba.codegen.prebuilt"
    with_constants = sum(bool(f.defaults) for f in registry.builtin_formulas())
    assert len(fresh) == 2 * (len(BUILTIN_ACTIVATIONS) + len(BUILTIN_LOSSES) + with_constants)


def test_shipped_named_modules_are_what_the_code_generators_produce():
    """The named formulas' numba modules in symjit_numba/named_kernels must match the generators."""
    from symjit_numba.codegen import prebuilt

    fresh = prebuilt.named_modules()
    shipped = {p.name: p.read_text(encoding="utf-8") for p in prebuilt.NAMED_KERNELS_DIR.glob("*.py")
               if p.name != "__init__.py"}
    stale = _differing_keys(shipped, fresh)
    assert not stale, f"named_kernels is stale for {stale[:3]}...: run python -m symjit_numba.codegen.prebuilt"
    # each formula with constants ships twice: defaults fixed ("selu") and listed ("selu_listed")
    with_constants = sum(bool(f.defaults) for f in registry.builtin_formulas())
    assert len(fresh) == len(BUILTIN_ACTIVATIONS) + len(BUILTIN_LOSSES) + with_constants

# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

_SPECIAL = [0.0, 1e-300, 1e-12, 1e-8, 1e-6, 1e-3, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 10.0, 20.0,
            30.0, 60.0, 90.0, 750.0, 1e4]
_RNG = np.random.default_rng(20240611)
CPU_GRID = np.array(sorted({s * v for v in _SPECIAL for s in (1.0, -1.0)}
                           | set(_RNG.normal(0.0, 4.0, 24))
                           | set(np.copysign(10.0 ** _RNG.uniform(-8, 3, 16), _RNG.uniform(-1, 1, 16)))))
#: A handful of points for the slow CUDA simulator, none with |x| > 700 (see test_gpu_simulator_huge_*).
GPU_GRID = np.array([-90.0, -60.0, -20.0, -3.0, -1.0, -0.25, -1e-3, 0.0, 1e-6, 0.5, 1.0, 2.0, 3.0, 6.5,
                     20.0, 60.0])


def grid(method):
    return GPU_GRID if method == "GPU_CUDA" else CPU_GRID


@functools.cache
def layer(method, layout):
    """One heterogeneous layer per (backend, layout) for the whole module."""
    return build(LAYER, method, "activation", layout)


def evaluate_layer(compiler, xs):
    """(a, delta), each of shape (nodes, points), with every node evaluated at every point."""
    z = np.tile(xs, (len(LAYER), 1))
    if compiler.layout == "batch_major":
        a, d = run_activation(compiler, np.ascontiguousarray(z.T))
        return a.T, d.T
    return run_activation(compiler, z)


@functools.cache
def activation_reference(xs_key, dtype_name):
    """float64 arrays (value, derivative) of shape (nodes, points); derivative NaN at kinks."""
    dtype = np.dtype(dtype_name)
    xs = np.frombuffer(xs_key, dtype=dtype)
    value = np.empty((len(LAYER), xs.size))
    slope = np.full((len(LAYER), xs.size), np.nan)
    for j, (name, given) in enumerate(LAYER):
        constants = _constants(name, given, ACTIVATIONS, dtype)
        f = functools.partial(ACTIVATIONS[name][1], **_mp(constants))
        kinks = KINKS.get(name, lambda c: [])(constants)
        for k, x in enumerate(xs.astype(np.float64)):
            value[j, k] = float(f(mpf(x)))
            if all(abs(x - kink) >= 1e-3 * (1 - 1e-6) for kink in kinks):
                slope[j, k] = float(mpmath.diff(f, mpf(x)))
    return value, slope


def tolerance(dtype, ref, scale):
    """Allowed |error|: a few ulp of the result plus a few ulp of the input scale (see docstring)."""
    if dtype == np.float64:
        return 1e-12 * np.abs(ref) + 1e-14 * np.maximum(1.0, np.abs(scale))
    return 2e-6 * np.abs(ref) + 1e-7 * np.maximum(1.0, np.abs(scale))


def assert_close(label, got, ref, xs, dtype, names, extra_tol=None):
    """got (nodes x points) within ``tolerance`` of ref where ref is not NaN; xs: the points' scale."""
    got = got.astype(np.float64)
    tol = tolerance(dtype, ref, xs)
    if extra_tol is not None:
        tol = tol + extra_tol
    checked = ~np.isnan(ref)
    bad = checked & ~(np.abs(got - ref) <= tol)
    if bad.any():
        rows = [f"  {names[j]} x={xs[k]!r}: got {got[j, k]!r}, "
                f"want {ref[j, k]!r}, |err|={abs(got[j, k] - ref[j, k]):.3g} > tol {tol[j, k]:.3g}"
                for j, k in zip(*np.nonzero(bad), strict=True)][:25]
        pytest.fail(f"{label}: {bad.sum()} points off\n" + "\n".join(rows))


def node_names():
    return [f"{n}{c or ''}" for n, c in LAYER]


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_activations_match_reference(method, dtype, layout):
    xs = grid(method).astype(dtype)
    a, d = evaluate_layer(layer(method, layout), xs)
    value, slope = activation_reference(xs.tobytes(), dtype.name)
    x64 = xs.astype(np.float64)

    assert np.isfinite(a).all(), f"non-finite values at {np.argwhere(~np.isfinite(a)).tolist()}"
    assert np.isfinite(d).all(), f"non-finite derivatives at {np.argwhere(~np.isfinite(d)).tolist()}"
    names = node_names()
    assert_close("forward", a, value, x64, dtype, names)
    assert_close("derivative", d, slope, x64, dtype, names)


#: x - tanh(x) cancels for small |x| (its value ~x**3/3 is computed from terms ~x): torch computes it
#: the same way, so only the absolute accuracy of the main test is asked of it.
CANCELS_NEAR_ZERO = {"tanhshrink"}


def conditioned_tolerance(dtype, terms):
    """16 ulp of the sum of |terms|, plus a few smallest normals for results that underflow.

    For f(x) the terms are f and x*f'(x): the latter is the error that rounding x (or an
    intermediate of the same size) by one ulp causes, so a backward-stable formula stays within a
    few ulp of it even where f itself is tiny (tails) or ill-conditioned (gelu at x = -30).
    """
    info = np.finfo(dtype)
    return 16 * info.eps * sum(np.abs(t) for t in terms) + 64 * info.tiny


@pytest.mark.parametrize("layout", LAYOUTS)
def test_activation_values_are_backward_stable(method, dtype, layout):
    """Stricter than the main test where it matters: tails (sigmoid(-60) ~ 1e-26, gelu(-20) ~ 1e-88,
    logsigmoid(150)...) must keep their relative accuracy instead of hiding under an absolute term."""
    xs = grid(method).astype(dtype)
    a, _ = evaluate_layer(layer(method, layout), xs)
    value, slope = activation_reference(xs.tobytes(), dtype.name)
    x64 = xs.astype(np.float64)
    names = node_names()
    skip = np.isnan(slope) | np.array([n in CANCELS_NEAR_ZERO for n, _ in LAYER])[:, None]
    tol = conditioned_tolerance(dtype, [value, x64 * np.nan_to_num(slope)])
    bad = ~skip & ~(np.abs(a.astype(np.float64) - value) <= tol)
    rows = [f"  {names[j]}({x64[k]!r}) = {a[j, k]!r}, want {value[j, k]!r} (tol {tol[j, k]:.3g})"
            for j, k in zip(*np.nonzero(bad), strict=True)][:25]
    assert not bad.any(), f"{bad.sum()} values off\n" + "\n".join(rows)


def test_activation_backward_multiplies_by_err(method, dtype):
    """delta = err * f'(z), not f'(z): err varies per element.

    Equal up to rounding only: the kernel may evaluate ``err * c * g(z)`` as ``(err*c)*g(z)``.
    """
    compiler = layer(method, "node_major")
    xs = GPU_GRID.astype(dtype)
    z = np.tile(xs, (len(LAYER), 1))
    err = ((np.arange(z.size).reshape(z.shape) % 7) - 3.0).astype(dtype) * dtype.type(0.5)
    _, ones = run_activation(compiler, z)
    _, delta = run_activation(compiler, z, err=err)
    info = np.finfo(dtype)
    np.testing.assert_allclose(delta, ones * err, rtol=4 * info.eps, atol=info.tiny)


def test_nan_in_nan_out(method, dtype):
    compiler = layer(method, "node_major")
    xs = np.array([np.nan, 1.0, np.nan, -1.0], dtype=dtype)
    a, _ = evaluate_layer(compiler, xs)
    names = node_names()
    for j in range(len(LAYER)):
        assert np.isnan(a[j, 0]) and np.isnan(a[j, 2]), f"{names[j]}(nan) = {a[j, 0]!r}"
        assert np.isfinite(a[j, [1, 3]]).all(), names[j]


def _node(name, **constants):
    return LAYER.index((name, constants))


#: (node, x, f(x), f'(x)) at the kinks, with torch's derivative conventions.
KINK_CASES = [
    (("relu",), 0.0, 0.0, 0.0),
    (("relu6",), 0.0, 0.0, 0.0),
    (("relu6",), 6.0, 6.0, 0.0),
    (("leaky_relu",), 0.0, 0.0, 0.01),
    (("leaky_relu", {"alpha": 0.2}), 0.0, 0.0, 0.2),
    (("elu",), 0.0, 0.0, 1.0),
    (("elu", {"alpha": 0.7}), 0.0, 0.0, 0.7),            # torch takes the negative branch at 0
    (("selu",), 0.0, 0.0, SELU_SCALE * SELU_ALPHA),
    (("selu", {"alpha": 1.25, "scale": 0.9}), 0.0, 0.0, 0.9 * 1.25),
    (("celu",), 0.0, 0.0, 1.0),
    (("celu", {"alpha": 0.5}), 0.0, 0.0, 1.0),
    (("hardtanh",), -1.0, -1.0, 0.0),
    (("hardtanh",), 1.0, 1.0, 0.0),
    (("hardtanh", {"min_val": -2.0, "max_val": 3.0}), -2.0, -2.0, 0.0),
    (("hardtanh", {"min_val": -2.0, "max_val": 3.0}), 3.0, 3.0, 0.0),
    (("hardsigmoid",), -3.0, 0.0, 0.0),
    (("hardsigmoid",), 3.0, 1.0, 0.0),
    (("hardswish",), -3.0, 0.0, 0.0),
    (("hardswish",), 3.0, 3.0, 1.0),
    (("softsign",), 0.0, 0.0, 1.0),
    (("gelu",), 0.0, 0.0, 0.5),
]


def test_activation_kinks_follow_torch(method, dtype):
    compiler = layer(method, "node_major")
    xs = np.array(sorted({case[1] for case in KINK_CASES}), dtype=dtype)
    a, d = evaluate_layer(compiler, xs)
    for (name, *constants), x, value, slope in KINK_CASES:
        j, k = _node(name, **(constants[0] if constants else {})), int(np.flatnonzero(xs == x)[0])
        label = f"{name}{constants or ''} at {x}"
        assert a[j, k] == value, f"{label}: f = {a[j, k]!r}"
        assert d[j, k] == pytest.approx(float(dtype.type(slope)), rel=2e-7 if dtype == np.float32 else 1e-15), \
            f"{label}: f' = {d[j, k]!r}, torch has {slope!r}"


# On a real GPU ``math.exp`` overflows to inf and ``1/(1 + inf)`` is the right 0; under the CUDA
# simulator ``math.exp`` is Python's, which raises OverflowError for arguments above ~709. The
# accuracy tests above keep the simulator below that; these two feed it the huge inputs.


def test_gpu_simulator_huge_activation_inputs(dtype):
    """|x| = 750 and 1e4 on GPU_CUDA (simulated): exp(-x) must overflow to inf, not raise."""
    compiler = layer("GPU_CUDA", "node_major")
    xs = np.array([-1e4, -750.0, 750.0, 1e4], dtype=dtype)
    a, d = evaluate_layer(compiler, xs)
    value, slope = activation_reference(xs.tobytes(), dtype.name)
    assert np.isfinite(a).all() and np.isfinite(d).all()
    names = node_names()
    x64 = xs.astype(np.float64)
    assert_close("forward", a, value, x64, dtype, names)
    assert_close("derivative", d, slope, x64, dtype, names)


@pytest.mark.parametrize("name", ["bce_with_logits", "log_cosh", "mse"])
def test_gpu_simulator_huge_loss_inputs(dtype, name):
    """The same for losses, at y_pred = +-750 and +-1e4."""
    p = np.array([-1e4, -750.0, 750.0, 1e4], dtype=dtype)
    t = np.array([1.0, 0.0, 1.0, 0.0], dtype=dtype)
    res, grad = run_loss(loss_compiler("GPU_CUDA", name, ()), p, t)
    value, slope, _ = loss_reference(name, (), p.tobytes(), t.tobytes(), dtype.name)
    scale = np.maximum(np.abs(p), np.abs(t)).astype(np.float64)
    assert_close(f"{name} loss", res[None], value[None], scale, dtype, [name])
    assert_close(f"{name} gradient", grad[None], slope[None], scale, dtype, [name])


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------

_PRED = [0.0, 1e-3, -1e-3, 0.25, -0.25, 0.3, 0.5, -0.5, 0.7, 1.0, -1.0, 1.5, -1.5, 2.0, -2.0, 20.0, -20.0,
         60.0, -60.0, 1e4, -1e4]
_TRUE = [0.0, 1.0, 0.3, 0.7, -2.5]
_BCE_P = [1e-6, 1 - 1e-6, 1e-4, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999, 0.9999]
_BCE_T = [0.0, 1.0, 0.25, 0.5, 0.9]


def loss_pairs(name, method):
    """(y_pred, y_true) as float64 arrays; bce on probabilities in (0, 1)."""
    rng = np.random.default_rng(7)
    if name == "bce":
        pairs = [(p, t) for p in _BCE_P for t in _BCE_T]
        pairs += list(zip(rng.uniform(1e-3, 1 - 1e-3, 20), rng.uniform(0, 1, 20), strict=True))
    else:
        pairs = [(p, t) for p in _PRED for t in _TRUE]
        pairs += list(zip(rng.normal(0, 3, 20), rng.normal(0, 1, 20), strict=True))
        pairs += [(0.5 + 1e-9, 0.5), (1.5, 0.5), (1.75, 1.25)]  # tiny difference; |d| = delta exactly
        pairs += [(s * d, 0.0) for d in (1e-8, 1e-6, 1e-4, 1e-2) for s in (1, -1)]  # small residuals
    if method == "GPU_CUDA":  # few points, none with |x| > 700: see test_gpu_simulator_huge_inputs
        pairs = [(p, t) for p, t in pairs[::3] if max(abs(p), abs(t)) < 700]
    p, t = np.array(pairs).T
    return p, t


@functools.cache
def loss_compiler(method, name, items):
    return build([(name, dict(items))], method, "loss")


@functools.cache
def loss_reference(name, items, p_key, t_key, dtype_name):
    dtype = np.dtype(dtype_name)
    p, t = (np.frombuffer(k, dtype=dtype).astype(np.float64) for k in (p_key, t_key))
    constants = _constants(name, dict(items), LOSSES, dtype)
    loss = functools.partial(LOSSES[name][1], **_mp(constants))
    kinks = LOSS_KINKS.get(name, lambda c: [])(constants)
    value, slope, slope_t = np.empty(p.size), np.full(p.size, np.nan), np.full(p.size, np.nan)
    for k in range(p.size):
        pk, tk = mpf(p[k]), mpf(t[k])
        value[k] = float(loss(pk, tk))
        if all(abs((pk - tk) - kink) >= 1e-3 for kink in kinks):
            slope[k] = float(mpmath.diff(lambda u, tk=tk: loss(u, tk), pk))
            slope_t[k] = float(mpmath.diff(lambda u, pk=pk: loss(pk, u), tk))
    return value, slope, slope_t


def loss_case(method, dtype, config):
    """A loss's test points in ``dtype``, what the backend computes there, and the mpmath reference."""
    name, given = config
    items = tuple(sorted(given.items()))
    p64, t64 = loss_pairs(name, method)
    p, t = p64.astype(dtype), t64.astype(dtype)
    res, grad = run_loss(loss_compiler(method, name, items), p, t)
    return name, p, t, res, grad, loss_reference(name, items, p.tobytes(), t.tobytes(), dtype.name)


@pytest.mark.parametrize("config", LOSS_CONFIGS, ids=lambda c: f"{c[0]}{c[1] or ''}")
def test_losses_match_reference(method, dtype, config):
    name, p, t, res, grad, (value, slope, _) = loss_case(method, dtype, config)

    assert np.isfinite(res).all() and np.isfinite(grad).all()
    scale = np.maximum(np.abs(p), np.abs(t)).astype(np.float64)
    extra = None
    if name == "bce":
        # -(t/p - (1-t)/(1-p)) cancels terms as large as 1/min(p, 1-p); allow a few ulp of those.
        eps = np.finfo(dtype).eps
        extra = 4 * eps * (1 / p.astype(np.float64) + 1 / (1 - p.astype(np.float64)))
    assert_close(f"{name} loss", res[None], value[None], scale, dtype, [name])
    assert_close(f"{name} gradient", grad[None], slope[None], scale, dtype, [name], extra_tol=extra)


@pytest.mark.parametrize("config", LOSS_CONFIGS, ids=lambda c: f"{c[0]}{c[1] or ''}")
def test_loss_values_are_backward_stable(method, dtype, config):
    """Loss values within 16 ulp of |L| + |p dL/dp| + |t dL/dt| (see conditioned_tolerance).

    This is what rounding the inputs by an ulp costs; it catches formulas that cancel where the
    function itself is well conditioned: a small residual (L ~ d**2/2) or a small probability
    (-log(1 - p) ~ p).
    """
    name, p, t, res, _, (value, slope, slope_t) = loss_case(method, dtype, config)
    pf, tf = p.astype(np.float64), t.astype(np.float64)
    tol = conditioned_tolerance(dtype, [value, pf * np.nan_to_num(slope), tf * np.nan_to_num(slope_t)])
    bad = ~np.isnan(slope) & ~(np.abs(res.astype(np.float64) - value) <= tol)
    rows = [f"  {name}({pf[k]!r}, {tf[k]!r}) = {res[k]!r}, want {value[k]!r} "
            f"(rel err {abs(res[k] - value[k]) / abs(value[k]):.2g}, tol {tol[k]:.3g})"
            for k in np.flatnonzero(bad)][:25]
    assert not bad.any(), f"{bad.sum()} values off\n" + "\n".join(rows)


def test_loss_kinks_follow_torch(method, dtype):
    """mae'(0) = 0 (torch's sign(0)); huber'(+-delta) = +-delta; values exact there."""
    p = np.array([0.5, -1.0, 2.0, 0.0, 1.5, 0.5], dtype=dtype)
    t = np.array([0.5, -1.0, 1.0, 1.0, 1.0, 1.0], dtype=dtype)
    res, grad = run_loss(loss_compiler(method, "mae", ()), p, t)
    np.testing.assert_array_equal(res[:2], [0, 0])
    np.testing.assert_array_equal(grad[:2], [0, 0])
    res, grad = run_loss(loss_compiler(method, "huber", ()), p[2:4], t[2:4])
    np.testing.assert_array_equal(res, [0.5, 0.5])
    np.testing.assert_array_equal(grad, [1.0, -1.0])
    res, grad = run_loss(loss_compiler(method, "huber", (("delta", 0.5),)), p[4:], t[4:])
    np.testing.assert_array_equal(res, [0.125, 0.125])
    np.testing.assert_array_equal(grad, [0.5, -0.5])
