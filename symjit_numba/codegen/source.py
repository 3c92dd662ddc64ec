"""Emit the source text of a kernel module: readable Python for ``numba.njit`` or ``numba.cuda.jit``.

A CPU activation module holds *one* formula: functions that compute one task of a layer (a node's
block of the batch, or a block of rows of a run of nodes), each a homogeneous loop over contiguous
elements, which LLVM can vectorise. The formula-independent task runners of
:mod:`symjit_numba.backends.cpu_tasks` call the right one for each task through its address, so
a formula is compiled once and reused by every layer that uses it. A CPU loss module (one
formula too) runs its own range of tasks.
The CUDA module runs one thread per element (grid-stride) and switches on the formula id per
element; neighbouring threads share a node, so a warp rarely diverges.
Each module computes f, err * df (df for a loss), and f with df in one pass (the ``*_both`` /
``both`` kernels, whose statements share common subexpressions).

Its input is :class:`PrintedFormula` (plain strings), so this module needs no SymPy: the printed
forms come from :mod:`.printer` or, for the named formulas, from the table in :mod:`.prebuilt`.
Print ``compiler.source()`` to see what a config compiles to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PrintedFormula", "generate_source", "BLOCK", "ROWS"]

#: Elements of one node handled by one task (node-major layout and losses).
BLOCK = 8192
#: Rows (samples) handled by one task in the batch-major layout.
ROWS = 64


@dataclass(frozen=True)
class PrintedFormula:
    """One formula and its derivative printed for one target: kernel statements, no SymPy objects.

    Attributes
    ----------
    label : str
        The name the user gave (a registered name, or the formula itself), for comments.
    constants : tuple of str
        The constants' names, in the order of the node's ``params``; read as ``c_<name>``.
    formula, derivative : str
        SymPy's text of f and of df/dnum (df/dy_pred for a loss), for the module docstring.
    forward, backward : tuple of str
        Statements computing f, and df, for one element from ``num`` (``y_pred``, ``y_true``) and
        the ``c_<name>`` constants; the last entry is the result expression.
    both : tuple of str
        Statements computing f and df together, sharing their common subexpressions; the last two
        entries are f and df.
    """

    label: str
    constants: tuple[str, ...]
    formula: str
    derivative: str
    forward: tuple[str, ...]
    backward: tuple[str, ...]
    both: tuple[str, ...]


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _element(lines: _Lines, indent: int, printed: PrintedFormula, which: str, reads: Sequence[str],
             stores: Sequence[str]) -> None:
    """Statements computing one element: read the inputs, compute, store the result(s).

    ``which`` is ``"forward"`` (f), ``"backward"`` (df) or ``"both"`` (f and df, sharing their
    common subexpressions); ``stores`` has one template per result.
    """
    statements = getattr(printed, which)
    results = statements[-len(stores):]
    lines(indent, *reads, *statements[:-len(stores)], *(store.format(r) for store, r in zip(stores, results)))


def _constant_reads(printed: PrintedFormula, base: str) -> list[str]:
    return [f"c_{name} = params[{base} + {i}]" for i, name in enumerate(printed.constants)]


def _header(formulas: Sequence[PrintedFormula], target: str, layout: str, mode: str, version: str) -> _Lines:
    lines = _Lines()
    if target == "numba" and mode == "activation":
        lines(0, f'"""symjit_numba {version}: generated numba kernels for one activation formula.', "")
    else:
        lines(0, f'"""symjit_numba {version}: generated {target} kernels, mode={mode}, layout={layout}.', "",
              "Formula ids:")
    for fid, printed in enumerate(formulas):
        consts = ", ".join(printed.constants) or "no constants"
        name = printed.label if target == "numba" and mode == "activation" else f"{fid}: {printed.label}"
        lines(0, f"    {name}  ({consts})", f"        f  = {printed.formula}", f"        f' = {printed.derivative}")
    lines(0, '"""', "import math", "", "import numpy as np")
    return lines


_CPU_PREAMBLE = (
    "from numba import njit", "", "from symjit_numba.mathlib import scalar_special as ss",
    "from symjit_numba.mathlib import vector_math as vm", "",
    "# Serial, GIL-free functions; the CPU_JIT backend runs tasks on all cores with its own threads.",
    "JIT = njit(nogil=True, cache=True, fastmath=set(vm.FASTMATH_FLAGS), error_model='numpy', no_rewrites=True)",
)

#: The CPU activation kernels of one formula: name -> (arguments, docstring, loops). In the loops,
#: ``{x}`` stands for the element slice of array x; a loop is (condition or None, which, stores).
_CPU_ACTIVATION_KERNELS = {
    "": ("backward, z, err, out", "out = f(z), or err * df/dz if backward",
         (("backward", "backward", ["{out}[i] = {err}[i] * {}"]), (None, "forward", ["{out}[i] = {}"]))),
    "_both": ("z, a, d", "a = f(z) and d = df/dz in one pass", ((None, "both", ["{a}[i] = {}", "{d}[i] = {}"]),)),
}
_CPU_LOSS_KERNELS = {
    "loss": ("backward, pred, true, out", "out = L(pred, true), or dL/dpred if backward",
             (("backward", "backward", ["{out}[i] = {}"]), (None, "forward", ["{out}[i] = {}"]))),
    "loss_both": ("pred, true, res, grad", "res = L(pred, true) and grad = dL/dpred in one pass",
                  ((None, "both", ["{res}[i] = {}", "{grad}[i] = {}"]),)),
}


def _cpu_loops(lines: _Lines, indent: int, printed: PrintedFormula, loops, arrays: Sequence[str],
               reads: Sequence[str]) -> None:
    """One element loop per entry of ``loops``, over the slices ``<array>_s`` of ``arrays``."""
    names = {array: f"{array}_s" for array in arrays}
    for k, (condition, which, stores) in enumerate(loops):
        if condition is not None:
            lines(indent, f"if {condition}:")
        elif k:
            lines(indent, "else:")
        inner = indent + (len(loops) > 1)
        lines(inner, f"for i in range({names[arrays[0]]}.size):")
        _element(lines, inner + 1, printed, which, reads, [store.format("{}", **names) for store in stores])


def _cpu_activation(lines: _Lines, printed: PrintedFormula) -> None:
    lines(0, *_CPU_PREAMBLE)
    for suffix, (arguments, doc, loops) in _CPU_ACTIVATION_KERNELS.items():
        arrays = [a for a in arguments.split(", ") if a != "backward"]
        sliced = ", ".join(a if a == "backward" else f"{a}_s" for a in arguments.split(", "))
        lines(0, "", "", "@JIT", f"def node_block{suffix}({sliced}, params, p):",
              f'    """One node\'s block of the batch (node-major; constants at params[p:]): {doc}."""',
              "    T = z_s.dtype.type", *(f"    {read}" for read in _constant_reads(printed, "p")))
        _cpu_loops(lines, 1, printed, loops, arrays, ["num = z_s[i]"])
        lines(0, "", "", "@JIT", f"def row_block{suffix}({arguments}, params, offsets, r0, r1, k0, k1):",
              '    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k\'s constants at params[offsets[k]:]):',
              f'    {doc}."""',
              "    T = z.dtype.type", *(["    offs = offsets[k0:k1]"] if printed.constants else []),
              "    for r in range(r0, r1):",
              *(f"        {array}_s = {array}[r, k0:k1]" for array in arrays))
        _cpu_loops(lines, 2, printed, loops, arrays, ["num = z_s[i]", *_constant_reads(printed, "offs[i]")])


def _cpu_loss(lines: _Lines, printed: PrintedFormula) -> None:
    lines(0, *_CPU_PREAMBLE, "", f"BLOCK = {BLOCK}")
    for name, (arguments, doc, loops) in _CPU_LOSS_KERNELS.items():
        arrays = [a for a in arguments.split(", ") if a != "backward"]
        lines(0, "", "", "@JIT", f"def {name}(first, last, {arguments}, params):",
              '    """Tasks first..last-1, task = block of BLOCK elements of the flat arrays:',
              f'    {doc}."""',
              "    T = pred.dtype.type", "    for task in range(first, last):", "        lo = task * BLOCK",
              "        hi = lo + BLOCK if lo + BLOCK < pred.size else pred.size", *(f"        {array}_s = {array}[lo:hi]" for array in arrays))
        lines(2, *_constant_reads(printed, "0"))
        _cpu_loops(lines, 2, printed, loops, arrays, ["y_pred = pred_s[i]", "y_true = true_s[i]"])


_CUDA_PREAMBLE = ("from numba import cuda", "", "from symjit_numba.mathlib import scalar_special as ss", "",
                  "ss_digamma = cuda.jit(device=True)(ss.digamma.py_func)", "")


#: The CUDA kernels: name -> (which, arrays, stores); ``{at}`` is the element's index.
_CUDA_ACTIVATION_KERNELS = {
    "forward": ("forward", "z, a", ["a[{at}] = {}"]),
    "backward": ("backward", "z, err, delta", ["delta[{at}] = err[{at}] * {}"]),
    "both": ("both", "z, a, d", ["a[{at}] = {}", "d[{at}] = {}"]),
}
_CUDA_LOSS_KERNELS = {
    "forward": ("forward", "pred, true, out", ["out[{at}] = {}"]),
    "backward": ("backward", "pred, true, out", ["out[{at}] = {}"]),
    "both": ("both", "pred, true, res, grad", ["res[{at}] = {}", "grad[{at}] = {}"]),
}


def _cuda_activation(lines: _Lines, formulas: Sequence[PrintedFormula], layout: str) -> None:
    lines(0, *_CUDA_PREAMBLE)
    rows, cols = ("n, b", "j, i") if layout == "node_major" else ("b, n", "i, j")
    for name, (which, arrays, stores) in _CUDA_ACTIVATION_KERNELS.items():
        lines(0, "", "@cuda.jit", f"def {name}({arrays}, params, offsets, func_ids):",
              f'    """One thread per element (grid-stride); layout {layout}."""',
              "    T = z.dtype.type", f"    {rows} = z.shape", "    start = cuda.grid(1)",
              "    stride = cuda.gridsize(1)", "    for index in range(start, n * b, stride):")
        if layout == "node_major":
            lines(2, "j = index // b", "i = index - j * b")
        else:
            lines(2, "i = index // n", "j = index - i * n")
        lines(2, "p = offsets[j]", f"num = z[{cols}]")
        for fid, printed in enumerate(formulas):
            lines(2, f"{'if' if fid == 0 else 'elif'} func_ids[j] == {fid}:  # {printed.label}")
            _element(lines, 3, printed, which, _constant_reads(printed, "p"),
                     [store.format("{}", at=cols) for store in stores])


def _cuda_loss(lines: _Lines, printed: PrintedFormula) -> None:
    lines(0, *_CUDA_PREAMBLE)
    for name, (which, arrays, stores) in _CUDA_LOSS_KERNELS.items():
        lines(0, "", "@cuda.jit", f"def {name}({arrays}, params):",
              '    """One thread per element (grid-stride) over flat arrays."""', "    T = pred.dtype.type",
              "    start = cuda.grid(1)", "    stride = cuda.gridsize(1)",
              "    for i in range(start, pred.size, stride):")
        _element(lines, 2, printed, which, ["y_pred = pred[i]", "y_true = true[i]", *_constant_reads(printed, "0")],
                 [store.format("{}", at="i") for store in stores])


def generate_source(formulas: Sequence[PrintedFormula], mode: str, target: str, layout: str, version: str) -> str:
    """The kernel module for ``formulas`` (index = formula id), as text.

    Parameters
    ----------
    formulas : sequence of PrintedFormula
        The unique formulas of a layer, printed for ``target``; exactly one for a loss, and for a
        numba activation module (which serves every layer that uses its formula).
    mode : {"activation", "loss"}
    target : {"numba", "cuda"}
    layout : {"node_major", "batch_major"}
        For CUDA activations; numba activation modules hold both layouts' functions, and losses are
        element-wise over flat arrays.
    version : str
        The library version, written into the header so a new version never reuses an old module.
    """
    lines = _header(formulas, target, layout, mode, version)
    if target == "numba":
        _cpu_activation(lines, formulas[0]) if mode == "activation" else _cpu_loss(lines, formulas[0])
    else:
        _cuda_activation(lines, formulas, layout) if mode == "activation" else _cuda_loss(lines, formulas[0])
    return lines.text()
