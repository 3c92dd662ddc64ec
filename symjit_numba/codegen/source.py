"""Emit the source text of a kernel module: readable Python for ``numba.njit`` or ``numba.cuda.jit``.

What a module holds comes from one table, :data:`KINDS`: each kernel kind says which quantities
it computes per element (f, df = df/dnum, and dc = df/dc for each constant), whether it multiplies
them by the incoming gradient ``err``, which arrays it writes, and whether it sums (``dc``: the
parameter gradients). Every emitter below (CPU activation, CPU loss, CUDA activation, CUDA loss)
walks that table, so a new kind is one entry there.

A CPU activation module holds *one* formula: functions that compute one task of a layer (a node's
block of the batch, a block of rows of a run of nodes, or a batch-major tile's nodes of this
formula), each a homogeneous loop over contiguous elements, which LLVM can vectorise. The formula-independent task runners of
:mod:`symjit_numba.backends.cpu_tasks` call the right one for each task through its address, so
a formula is compiled once and reused by every layer that uses it. A CPU loss module (one
formula too) runs its own range of tasks. A summing kind writes each task's sums (float64) into
its own slot of a buffer of partial sums; the backend adds the slots in a fixed order afterwards
(:mod:`symjit_numba.backends.param_sums`), so the result never depends on the number of threads.

The CUDA module runs one thread per element (grid-stride) and switches on the formula id per
element; neighbouring threads share a node, so a warp rarely diverges. Its summing kernels run one
block per (node, chunk of samples): each thread sums in float64, the block adds its threads' sums
in a fixed tree order into the partial-sum buffer, and ``combine`` adds the chunks in order: no
atomics, the same bits on every run.

Its input is :class:`PrintedFormula` (plain strings), so this module needs no SymPy: the printed
forms come from :mod:`.printer` or, for the named formulas, from the table in :mod:`.prebuilt`.
Print ``compiler.source()`` to see what a config compiles to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

__all__ = ["PrintedFormula", "KernelKind", "KINDS", "BLOCKS", "generate_source", "block_results", "BLOCK", "ROWS",
           "CUDA_CHUNK", "CUDA_THREADS"]

#: Elements of one node handled by one task (node-major layout and losses).
BLOCK = 8192
#: Rows (samples) handled by one task in the batch-major layout.
ROWS = 64
#: Threads per block of the CUDA summing kernels (a power of two: their sums add in a tree).
CUDA_THREADS = 256
#: Samples of one node (or loss elements) summed by one CUDA block of the summing kernels.
CUDA_CHUNK = 4096


@dataclass(frozen=True)
class KernelKind:
    """One kind of kernel: what it reads, computes, writes and sums, for both modes.

    Attributes
    ----------
    name : str
        The kind's name: the CUDA kernel's name, and the key of its printed block's use.
    public : str
        The compiler attribute that exposes it.
    computes : tuple of str
        Per element, in order: ``"f"`` (the value), ``"df"`` (d/dnum; d/dy_pred for a loss) and
        ``"dc"`` (d/dc for each constant, in the order of ``params``).
    chain : bool
        Activation mode: every quantity is multiplied by the incoming gradient ``err`` (an input).
        A loss has no incoming gradient (it is the end of the chain).
    writes : mapping of mode to tuple of str
        The element-wise output arrays, one per ``"f"``/``"df"`` quantity, in order. ``"dc"`` is
        summed over all elements (of a node) into ``grad_params`` instead.
    cpu : str
        The suffix of the CPU function that computes it (``node_block<cpu>``, ``row_block<cpu>``,
        ``nodes_block<cpu>``, ``loss<cpu>``). Two kinds with the same suffix share one function and one compilation; its
        ``backward`` flag selects the second (their one output is named ``out`` there).
    doc : str
        What it does, for docstrings.
    """

    name: str
    public: str
    computes: tuple[str, ...]
    chain: bool
    writes: Mapping[str, tuple[str, ...]]
    cpu: str
    doc: str

    @property
    def reduces(self) -> bool:
        return "dc" in self.computes

    @property
    def block(self) -> str:
        """The name of the printed block of statements it uses (kinds computing the same share one)."""
        return "+".join(self.computes)

    def inputs(self, mode: str) -> tuple[str, ...]:
        return ("z", *(("err",) if self.chain else ())) if mode == "activation" else ("pred", "true")


#: The kernel kinds, for every backend. The order is the order of the functions in a module.
KINDS: tuple[KernelKind, ...] = (
    KernelKind("forward", "forward_kernel", ("f",), False, {"activation": ("a",), "loss": ("res",)}, "",
               "f"),
    KernelKind("backward", "backward_kernel", ("df",), True, {"activation": ("delta",), "loss": ("grad",)}, "",
               "err * df"),
    KernelKind("both", "forward_derivative_kernel", ("f", "df"), False,
               {"activation": ("a", "d"), "loss": ("res", "grad")}, "_both", "f and df in one pass"),
    KernelKind("param_backward", "param_backward_kernel", ("dc",), True, {"activation": (), "loss": ()}, "_params",
               "the sums of err * df/dc for each constant c"),
    KernelKind("backward_with_params", "backward_with_params_kernel", ("df", "dc"), True,
               {"activation": ("delta",), "loss": ("grad",)}, "_backward_params",
               "err * df, and the sums of err * df/dc, in one pass"),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
#: The printed blocks a formula needs: one per distinct ``computes`` of :data:`KINDS`.
BLOCKS: tuple[tuple[str, ...], ...] = tuple(dict.fromkeys(kind.computes for kind in KINDS))


def block_results(computes: Sequence[str], n_constants: int) -> int:
    """How many results a printed block of ``computes`` ends with."""
    return sum(n_constants if quantity == "dc" else 1 for quantity in computes)


@dataclass(frozen=True)
class PrintedFormula:
    """One formula and its derivatives printed for one target: kernel statements, no SymPy objects.

    Attributes
    ----------
    label : str
        The name the user gave (a registered name, or the formula itself), for comments.
    constants : tuple of str
        The constants' names, in the order of the node's ``params``; read as ``c_<name>``.
    formula, derivative : str
        SymPy's text of f and of df/dnum (df/dy_pred for a loss), for the module docstring.
    blocks : mapping of str to tuple of str
        For each entry of :data:`BLOCKS` (keyed ``"+".join(computes)``, e.g. ``"f+df"``): statements
        computing those quantities for one element from ``num`` (``y_pred``, ``y_true``) and the
        ``c_<name>`` constants, sharing their common subexpressions; the last
        :func:`block_results` entries are the results, in order (``dc``: one per constant).
    constant_derivatives : tuple of str
        SymPy's text of df/dc for each constant, for the module docstring.
    """

    label: str
    constants: tuple[str, ...]
    formula: str
    derivative: str
    blocks: Mapping[str, tuple[str, ...]] = field(hash=False)
    constant_derivatives: tuple[str, ...] = ()

    def block(self, computes: Sequence[str]) -> tuple[list[str], list[str]]:
        """The statements and the results of the block computing ``computes``."""
        statements = self.blocks["+".join(computes)]
        count = block_results(computes, len(self.constants))
        cut = len(statements) - count
        return list(statements[:cut]), list(statements[cut:])


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _stores(kind: KernelKind, printed: PrintedFormula, outputs: Sequence[str], at: str, err: str | None,
            sums: Sequence[str], write: str = "{array}[{at}] = {value}") -> list[str]:
    """One store template per result of ``kind``'s block (``{}`` is the result).

    ``outputs`` names the element-wise outputs (element ``at`` written as ``write`` says), ``err``
    the incoming gradient's element (None: not multiplied), ``sums`` one accumulation template per
    constant (``{}`` is the term to add).
    """
    factor = "" if err is None else f"{err} * "
    stores, written = [], iter(outputs)
    for quantity in kind.computes:
        if quantity == "dc":
            stores.extend(template.format(f"{factor}{{}}") for template in sums)
        else:
            stores.append(write.format(array=next(written), at=at, value=f"{factor}{{}}"))
    return stores


def _operand(text: str) -> str:
    """``text`` as one operand of a product: ``err * (t0*t1)`` multiplies by the result as a whole,
    so every kind rounds a result the same way (a name, call or parenthesised text is one already)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*(\[[^\]]*\])?", text):
        return text
    depth, start = 0, text.find("(")
    if start < 0 or not re.fullmatch(r"[A-Za-z_0-9.]*", text[:start]):
        return f"({text})"
    for position in range(start, len(text)):
        depth += (text[position] == "(") - (text[position] == ")")
        if depth == 0:
            return text if position == len(text) - 1 else f"({text})"
    return f"({text})"


def _element(lines: _Lines, indent: int, printed: PrintedFormula, kind: KernelKind, reads: Sequence[str],
             stores: Sequence[str]) -> None:
    """Statements computing one element of ``kind``: read the inputs, compute, store the results."""
    statements, results = printed.block(kind.computes)
    if not results:  # e.g. the parameter gradients of a formula without constants: nothing to do
        lines(indent, "pass")
        return
    filled = [store.replace("{}", _operand(result) if "* {}" in store else result, 1)
              for store, result in zip(stores, results)]
    sums = [quantity == "dc" for quantity in kind.computes for _ in range(len(printed.constants) if quantity == "dc" else 1)]
    # Sums before element writes: an output may be an input itself (delta = err, in place).
    lines(indent, *reads, *statements, *(line for line, summed in sorted(zip(filled, sums), key=lambda pair: not pair[1])))


def _constant_reads(printed: PrintedFormula, base: str) -> list[str]:
    return [f"c_{name} = params[{base} + {i}]" for i, name in enumerate(printed.constants)]


def _header(formulas: Sequence[PrintedFormula], target: str, layout: str, mode: str, version: str) -> _Lines:
    lines = _Lines()
    single = target == "numba" and mode == "activation" and layout != "periodic"
    if single:
        lines(0, f'"""symjit_numba {version}: generated numba kernels for one activation formula.', "")
    elif layout == "periodic":
        lines(0, f'"""symjit_numba {version}: generated numba kernels for batch-major layers whose formulas repeat',
              f"every {len(formulas)} nodes (node k0 + {len(formulas)}*i + k has the formula of position k).", "",
              "Positions:")
    else:
        lines(0, f'"""symjit_numba {version}: generated {target} kernels, mode={mode}, layout={layout}.', "",
              "Formula ids:")
    for fid, printed in enumerate(formulas):
        consts = ", ".join(printed.constants) or "no constants"
        name = printed.label if single else f"{fid}: {printed.label}"
        lines(0, f"    {name}  ({consts})", f"        f  = {printed.formula}", f"        f' = {printed.derivative}")
        for constant, text in zip(printed.constants, printed.constant_derivatives):
            lines(0, f"        df/d{constant} = {text}")
    lines(0, '"""', "import math", "", "import numpy as np")
    return lines


_CPU_PREAMBLE = (
    "from numba import njit", "", "from symjit_numba.mathlib import {modules}",
    "from symjit_numba.mathlib import scalar_special as ss", "from symjit_numba.mathlib import vector_math as vm", "",
    "# Serial, GIL-free functions; the CPU_JIT backend runs tasks on all cores with its own threads.",
    "JIT = njit(nogil=True, cache=True, fastmath=set(vm.FASTMATH_FLAGS), error_model='numpy', no_rewrites=True{options})",
)
#: An activation module's functions are only called through their C wrappers' addresses (by the
#: task runners), so numba need not build their CPython wrappers: about 12% less compile time.
_CPU_ACTIVATION_OPTIONS = ",\n           no_cpython_wrapper=True"


def _cpu_functions(mode: str) -> dict[str, list[KernelKind]]:
    """CPU function suffix -> the kinds it computes (two: selected by its ``backward`` flag)."""
    functions: dict[str, list[KernelKind]] = {}
    for kind in KINDS:
        functions.setdefault(kind.cpu, []).append(kind)
    return functions


def _cpu_signature(kinds: list[KernelKind], mode: str) -> tuple[list[str], list[list[str]], str]:
    """The function's array arguments, each kind's output names there, and its docstring text."""
    flagged = len(kinds) > 1
    outputs = [["out"] * len(kind.writes[mode]) if flagged else list(kind.writes[mode]) for kind in kinds]
    arrays = list(dict.fromkeys([*(a for kind in kinds for a in kind.inputs(mode)), *(a for outs in outputs for a in outs)]))
    names = {"f": "L(pred, true)" if mode == "loss" else "f(z)", "df": "dL/dpred" if mode == "loss" else "df/dz"}

    def describe(kind: KernelKind, outs: list[str]) -> str:
        err = "err * " if kind.chain and mode == "activation" else ""
        parts = [f"{out} = {err}{names[q]}" for out, q in zip(outs, (q for q in kind.computes if q != "dc"))]
        if kind.reduces:
            parts.append(f"partial = the float64 sums of {err}d{'L' if mode == 'loss' else 'f'}/dc per constant c")
        return " and ".join(parts)

    docs = [describe(kind, outs) for kind, outs in zip(kinds, outputs)]
    doc = f"{docs[0]}, or {docs[1]} if backward" if flagged else docs[0] + (" in one pass" if len(docs[0].split(" and ")) > 1 else "")
    return (["backward"] if flagged else []) + arrays, outputs, doc


@dataclass(frozen=True)
class _Element:
    """One formula's loop: ``reads`` its inputs, then stores at ``at`` (the outputs' index, in the
    statement ``write``), times ``err`` (the incoming gradient's element, None: not multiplied);
    ``sums`` has one accumulation template per constant (``{}`` is the term to add), and ``after``
    the lines that follow a summing loop."""

    printed: PrintedFormula
    reads: Sequence[str]
    err: str | None
    sums: Sequence[str]
    at: str = "i"
    write: str = "{array}[{at}] = {value}"
    after: Sequence[str] = ()


def _cpu_loops(lines: _Lines, indent: int, elements: Sequence[_Element], kinds: list[KernelKind],
               outputs: list[list[str]], size: str, suffix: str = "_s",
               shared: Callable[[_Element], bool] = lambda element: False) -> None:
    """For each kind (under ``if backward:``/``else:`` for two), a loop over ``size`` elements per
    element of ``elements``, except that the elements ``shared`` accepts share one loop (the
    first); the outputs are named with ``suffix``."""
    branches = [("if backward:", kinds[1], outputs[1]), ("else:", kinds[0], outputs[0])] if len(kinds) > 1 \
        else [(None, kinds[0], outputs[0])]
    together = [element for element in elements if shared(element)]
    loops = [together] * bool(together) + [[element] for element in elements if not shared(element)]
    for condition, kind, outs in branches:
        if condition:
            lines(indent, condition)
        inner = indent + (condition is not None)
        for loop in loops:
            lines(inner, f"for i in range({size}):")
            for element in loop:
                _element(lines, inner + 1, element.printed, kind, element.reads,
                         _stores(kind, element.printed, [f"{o}{suffix}" for o in outs], element.at,
                                 element.err if kind.chain else None, element.sums, element.write))
            for element in loop:
                if kind.reduces and element.printed.constants:
                    lines(inner, *element.after)


def _accumulators(printed: PrintedFormula) -> list[str]:
    return [f"g_{name}" for name in printed.constants]


def _add_terms(accumulators: Sequence[str], size: str) -> list[str]:
    """A row's terms (``terms[c, i]``, the formula's dtype) added to its float64 sums: computed in
    the dtype first, since a loop adding float64 sums would run at float64's vector width."""
    return [f"for i in range({size}):", *(f"    {a}[i] += np.float64(terms[{c}, i])" for c, a in enumerate(accumulators))]


def _cpu_activation(lines: _Lines, printed: PrintedFormula) -> None:
    lines(0, *(line.format(modules="sums", options=_CPU_ACTIVATION_OPTIONS) for line in _CPU_PREAMBLE))
    g = _accumulators(printed)
    for suffix, kinds in _cpu_functions("activation").items():
        arguments, outputs, doc = _cpu_signature(kinds, "activation")
        reduces = kinds[0].reduces
        arrays = [a for a in arguments if a != "backward"]
        sliced = ", ".join(a if a == "backward" else f"{a}_s" for a in arguments)
        partial = ", partial" if reduces else ""
        lines(0, "", "", "@JIT", f"def node_block{suffix}({sliced}, params, p{partial}):",
              f'    """One node\'s block of the batch (node-major; constants at params[p:]): {doc}."""',
              "    T = z_s.dtype.type", "    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes", *(f"    {read}" for read in _constant_reads(printed, "p")))
        if reduces:
            lines(1, *(f"{a} = 0.0" for a in g))
        _cpu_loops(lines, 1, [_Element(printed, ["num = z_s[i]"], "err_s[i]", [f"{a} = sums.add({a}, {{}})" for a in g])],
                   kinds, outputs, "z_s.size")
        if reduces:
            lines(1, *(f"partial[{i}] = {a}" for i, a in enumerate(g)))
        lines(0, "", "", "@JIT", f"def row_block{suffix}({', '.join(arguments)}, params, offsets, r0, r1, k0, k1{partial}):",
              '    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k\'s constants at params[offsets[k]:]):',
              f'    {doc}' + (";\n    node k0 + i's sum for its constant c is added to partial[c * (k1 - k0) + i]." if reduces else "."
                             ) + '"""',
              "    T = z.dtype.type", "    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes")
        if printed.constants:  # each constant's values side by side: a vector load in the row loop, not a gather
            lines(1, "offs = offsets[k0:k1]", *(f"v_{name} = np.empty(offs.size, params.dtype)" for name in printed.constants),
                  "for i in range(offs.size):",
                  *(f"    v_{name}[i] = params[offs[i] + {c}]" for c, name in enumerate(printed.constants)))
        if reduces and g:
            # a row's terms in the dtype first: a loop adding float64 sums would run at float64's vector width
            # (added to: the runner zeroes a task's sums, then calls this for its rows at once or a few at a time)
            lines(1, "m = k1 - k0", *(f"{a} = partial[{i} * m:{i + 1} * m]" for i, a in enumerate(g)),
                  f"terms = np.empty(({len(g)}, m), T)")
        lines(1, "for r in range(r0, r1):", *(f"    {array}_s = {array}[r, k0:k1]" for array in arrays))
        reads = ["num = z_s[i]", *(f"c_{name} = v_{name}[i]" for name in printed.constants)]
        _cpu_loops(lines, 2, [_Element(printed, reads, "err_s[i]", [f"terms[{c}, i] = {{}}" for c in range(len(g))],
                                       after=_add_terms(g, "z_s.size"))], kinds, outputs, "z_s.size")
        sums_at = ", columns" if reduces else ""
        lines(0, "", "", "@JIT", f"def nodes_block{suffix}({', '.join(arguments)}, params, offsets{sums_at}, rows, k0, k1, m{partial}):",
              "    \"\"\"Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):",
              f"    {doc}" + (";\n    row r's sum for its constant c goes to partial[columns[r] + c]." if reduces else ".") + '"""',
              "    T = z.dtype.type", "    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes", "    for k in range(k0, k1):",
              "        r = rows[k]", *(f"        {read}" for read in _constant_reads(printed, "offsets[r]")))
        if reduces:
            lines(2, *(f"{a} = 0.0" for a in g))
        _cpu_loops(lines, 2, [_Element(printed, ["num = z[r, i]"], "err[r, i]", [f"{a} = sums.add({a}, {{}})" for a in g],
                                       "r, i")], kinds, outputs, "m", suffix="")
        if reduces:
            lines(2, *(f"partial[columns[r] + {i}] = {a}" for i, a in enumerate(g)))


def _renamed(printed: PrintedFormula, position: int) -> PrintedFormula:
    """``printed`` with its temporaries (SymPy's ``t0``.., the printer's ``h0``..) suffixed by
    ``position``, so several formulas' statements share one loop body without mixing their names."""
    def rename(statement: str) -> str:
        return re.sub(r"\b([th][0-9]+)\b", rf"\g<1>_{position}", statement)

    return replace(printed, blocks={block: tuple(map(rename, statements)) for block, statements in printed.blocks.items()})


#: The calls of functions.py's numba implementations that LLVM cannot vectorise (math.atan2, gamma,
#: lgamma: libm calls, which may set errno; ss.digamma: a numba function with loops of its own). A
#: loop making one runs element by element. (A pattern here: this module must not import SymPy.)
_SCALAR_ONLY = re.compile(r"\b(?:math\.(?!sqrt\b)|ss\.)\w+\(")


def _cpu_periodic(lines: _Lines, positions: Sequence[PrintedFormula]) -> None:
    """A batch-major layer whose formulas repeat every ``len(positions)`` nodes: ``row_block``
    functions with the signatures of a formula module's (called for one run of all the nodes).
    Each takes a row a block (``lanes`` groups) at a time: ``interleaved.split_block`` moves the
    block into a P x lanes matrix on the stack (``z_b[k, i]`` is node k0 + P*g + k's element, g =
    ``interleaved.group(c0 + i, ...)``, a permutation of the block's groups), one loop of ``lanes``
    iterations computes every position's formula on its row of the matrix (LLVM vectorises it and
    keeps the matrix in registers; a formula that cannot be vectorised gets a loop of its own),
    and ``interleaved.merge_block`` writes the results back into the layer's row (a backward pass
    merges f' and multiplies it by err there: ``merge_block_times``). Summing kinds add column c's
    terms to float64 sums, and node k0 + P*g + k's sums for its constant c to
    ``partial[(C_k + c) * groups + g]`` at the end, C_k the constants of the positions before k."""
    period = len(positions)
    lines(0, *(line.format(modules="interleaved", options=_CPU_ACTIVATION_OPTIONS) for line in _CPU_PREAMBLE))
    pairs = [(k, c, name) for k, printed in enumerate(positions) for c, name in enumerate(printed.constants)]
    firsts = [sum(len(printed.constants) for printed in positions[:k]) for k in range(period)]
    for suffix, kinds in _cpu_functions("activation").items():
        arguments, outputs, doc = _cpu_signature(kinds, "activation")
        reduces = kinds[0].reduces
        # the inputs split into blocks: err only for the sums (err * f'(z) multiplies after the merge)
        split = [a for a in ("z", "err") if a in arguments and (a == "z" or reduces)]
        written = list(dict.fromkeys(o for outs in outputs for o in outs))
        sums = (f"\n    Node k0 + {period}*g + k's sum for its constant c goes to partial[(C_k + c) * groups + g], C_k the"
                "\n    constants of the positions before k." if reduces else "")
        lines(0, "", "", "@JIT", f"def row_block{suffix}({', '.join(arguments)}, params, offsets, r0, r1, k0, k1{', partial' if reduces else ''}):",
              '    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k\'s constants at params[offsets[k]:]), the',
              f'    formulas repeating every {period} nodes: {doc}.{sums}"""',
              "    T = z.dtype.type", "    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes",
              f"    groups = (k1 - k0) // {period}",
              f"    # a block of a row, position by position (z_b[k, i] is node k0 + {period}*g + k's element): on the",
              "    # stack, read and written at constant places, so that LLVM keeps it in registers",
              *(f"    {array}_b = interleaved.block_buffer({period}, z)" for array in split + written[1:]),
              *([f"    {written[0]}_b = z_b  # the results replace the inputs"] if written else []),
              "    lanes = z_b.shape[1]  # groups a block (one vector's elements)",
              "    blocks = -(-groups // lanes)  # the last one may have fewer groups: split_block reads zeros past the row")
        group = f"interleaved.group(c, {period}, z)  # the group whose elements split_block puts in column c"
        if pairs:  # each position's constants side by side, as its row of elements
            lines(1, *(f"v{k}_{name} = np.zeros(blocks * lanes, params.dtype)" for k, _, name in pairs),
                  "for c in range(blocks * lanes):", f"    g = {group}", "    if g < groups:",
                  *(f"        v{k}_{name}[c] = params[offsets[k0 + {period} * g + {k}] + {c}]" for k, c, name in pairs))
        if reduces and pairs:
            # a row's terms in the dtype first (a loop adding float64 sums would run at float64's vector width)
            lines(1, *(f"s{k}_{name} = np.zeros(blocks * lanes, np.float64)" for k, _, name in pairs),
                  f"terms = np.empty(({len(pairs)}, blocks * lanes), T)")
        elements = []
        for k, printed in enumerate(positions):
            reads = [f"num = z_b[{k}, i]  # {printed.label}", *(f"c_{name} = v{k}_{name}[c0 + i]" for name in printed.constants)]
            sums = [f"terms[{firsts[k] + c}, c0 + i] = {{}}" for c in range(len(printed.constants))]
            elements.append(_Element(_renamed(printed, k), reads, f"err_b[{k}, i]", sums, f"{k}, i"))
        if kinds[0].computes == ("dc",):  # only the sums: nothing to do for a position without constants
            elements = [element for element in elements if element.printed.constants] or elements[:1]

        def vectorises(element: _Element) -> bool:
            return not any(_SCALAR_ONLY.search(line) for block in element.printed.blocks.values() for line in block)

        # One loop nest per kind (a flag tested per block would leave LLVM no registers to spare for
        # the constants of both kinds' formulas, and it does not unswitch a loop this large).
        branches = [("if backward:", 1), ("else:", 0)] if len(kinds) > 1 else [(None, 0)]
        for condition, which in branches:
            kind, indent = kinds[which], 1 + (condition is not None)
            # err * f'(z) without sums: f' merged, then times err in the row's order (err is not split)
            times = kind.chain and not kind.reduces
            rows = list(dict.fromkeys(split + ["err"] * times + outputs[which]))
            lines(1, *([condition] if condition else []))
            lines(indent, "for r in range(r0, r1):", f"    {', '.join(f'{a}_r' for a in rows)} = "
                  f"{', '.join(f'{a}[r, k0:k1]' for a in rows)}", "    for b in range(blocks):",
                  *(f"        interleaved.split_block({a}_r, {period}, b, {a}_b)" for a in split), "        c0 = b * lanes")
            _cpu_loops(lines, indent + 2, [replace(e, err=None) for e in elements] if times else elements, [kind],
                       [outputs[which]], "lanes", suffix="_b", shared=vectorises)
            lines(indent + 2, *(f"interleaved.merge_block_times({array}_b, {period}, b, {array}_r, err_r)" if times else
                                f"interleaved.merge_block({array}_b, {period}, b, {array}_r)"
                                for array in dict.fromkeys(outputs[which])))
            if reduces and pairs:  # the row's terms added to the sums
                lines(indent + 1, *_add_terms([f"s{k}_{name}" for k, _, name in pairs], "blocks * lanes"))
        if reduces and pairs:  # the sums, column by column, to their nodes' places
            lines(1, "for c in range(blocks * lanes):", f"    g = {group}", "    if g < groups:",
                  *(f"        partial[{firsts[k] + c} * groups + g] += s{k}_{name}[c]" for k, c, name in pairs))


def _step(written: Sequence[str]) -> str:
    """Elements per loop of a loss function writing the arrays ``written`` (each with its in-place buffer)."""
    steps = [f"inplace.step(BLOCK, {array}_buffer)" for array in written]
    return "BLOCK" if not steps else steps[0] if len(steps) == 1 else f"min({', '.join(steps)})"


def _cpu_loss(lines: _Lines, printed: PrintedFormula) -> None:
    # (inplace: the task runners handle in-place activation calls; a loss runs its own tasks)
    lines(0, *(line.format(modules="inplace, sums", options="") for line in _CPU_PREAMBLE), "", f"BLOCK = {BLOCK}")
    g = _accumulators(printed)
    for suffix, kinds in _cpu_functions("loss").items():
        arguments, outputs, doc = _cpu_signature(kinds, "loss")
        reduces = kinds[0].reduces
        arrays = [a for a in arguments if a != "backward"]
        written = [a for a in arrays if a not in ("pred", "true")]
        # in place (an output is pred or true), the loops write a buffer; whole blocks where they sum
        buffer_size = "BLOCK" if reduces else "inplace.BLOCK"
        lines(0, "", "", "@JIT", f"def loss{suffix}(first, last, {', '.join(arguments)}, params{', partials' if reduces else ''}):",
              '    """Tasks first..last-1, task = block of BLOCK elements of the flat arrays:',
              f'    {doc}' + (" (task t's sums in partials[t])." if reduces else ".") + '"""',
              "    T = pred.dtype.type", "    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes", *(f"    {read}" for read in _constant_reads(printed, "0")),
              *(f"    {array}_buffer = inplace.block_buffer({array}, pred, true, {buffer_size})  # in place: {array} is pred or true"
                for array in written),
              f"    step = {_step(written)}",
              "    for task in range(first, last):", "        end = min(task * BLOCK + BLOCK, pred.size)")
        if reduces:
            lines(2, *(f"{a} = 0.0" for a in g))
        lines(2, "for lo in range(task * BLOCK, end, step):", "    hi = min(lo + step, end)",
              *(f"    {array}_s = {array}[lo:hi]" if array not in written else
                f"    {array}_s = inplace.into({array}[lo:hi], {array}_buffer)" for array in arrays))
        _cpu_loops(lines, 3, [_Element(printed, ["y_pred = pred_s[i]", "y_true = true_s[i]"], None,
                                       [f"{a} = sums.add({a}, {{}})" for a in g])], kinds, outputs, "pred_s.size")
        lines(3, *(f"inplace.settle({array}[lo:hi], {array}_s)" for array in written))
        if reduces:
            lines(2, *(f"partials[task, {i}] = {a}" for i, a in enumerate(g)))


_CUDA_PREAMBLE = ("from numba import cuda, float64", "", "from symjit_numba.mathlib import scalar_special as ss", "",
                  "ss_digamma = cuda.jit(device=True)(ss.digamma.py_func)", "",
                  f"THREADS = {CUDA_THREADS}  # most threads per block of the summing kernels",
                  f"CHUNK = {CUDA_CHUNK}  # samples of one node summed by one block")


def _cuda_tree_sum(lines: _Lines, indent: int, width: str) -> None:
    """Add the block's per-thread sums ``sums[c, tid]`` into ``sums[c, 0]``, in a fixed tree order."""
    lines(indent, "cuda.syncthreads()", "half = threads // 2", "while half > 0:", "    if tid < half:",
          f"        for c in range({width}):", "            sums[c, tid] += sums[c, tid + half]",
          "    cuda.syncthreads()", "    half //= 2")


def _cuda_activation(lines: _Lines, formulas: Sequence[PrintedFormula], layout: str) -> None:
    lines(0, *_CUDA_PREAMBLE)
    rows, cols = ("n, b", "j, i") if layout == "node_major" else ("b, n", "i, j")
    width = max([1] + [len(p.constants) for p in formulas])
    for kind in KINDS:
        inputs, outputs = kind.inputs("activation"), kind.writes["activation"]
        err = f"err[{cols}]" if kind.chain else None
        if not kind.reduces:
            lines(0, "", "@cuda.jit", f"def {kind.name}({', '.join((*inputs, *outputs))}, params, offsets, func_ids):",
                  f'    """{kind.doc}: one thread per element (grid-stride); layout {layout}."""',
                  "    T = z.dtype.type", f"    {rows} = z.shape", "    start = cuda.grid(1)",
                  "    stride = cuda.gridsize(1)", "    for index in range(start, n * b, stride):")
            if layout == "node_major":
                lines(2, "j = index // b", "i = index - j * b")
            else:
                lines(2, "i = index // n", "j = index - i * n")
            lines(2, "p = offsets[j]", f"num = z[{cols}]")
            for fid, printed in enumerate(formulas):
                lines(2, f"{'if' if fid == 0 else 'elif'} func_ids[j] == {fid}:  # {printed.label}")
                _element(lines, 3, printed, kind, _constant_reads(printed, "p"),
                         _stores(kind, printed, outputs, cols, err, []))
            continue
        g = [f"g{c}" for c in range(width)]
        lines(0, "", "@cuda.jit",
              f"def {kind.name}({', '.join((*inputs, *outputs))}, partials, params, offsets, func_ids, columns):",
              f'    """{kind.doc}; layout {layout}. One block per (node j, chunk of CHUNK samples): each thread',
              "    sums its samples' terms in float64, the block adds them in a fixed tree order and writes",
              '    partials[chunk, columns[j] + c] for each constant c of node j."""',
              "    T = z.dtype.type", f"    {rows} = z.shape", "    chunks = partials.shape[0]",
              f"    sums = cuda.shared.array(({width}, THREADS), float64)", "    tid = cuda.threadIdx.x",
              "    threads = cuda.blockDim.x  # a power of two, at most THREADS",
              "    for task in range(cuda.blockIdx.x, n * chunks, cuda.gridDim.x):",
              "        j = task // chunks", "        lo = (task - j * chunks) * CHUNK",
              "        hi = lo + CHUNK if lo + CHUNK < b else b", "        p = offsets[j]",
              "        " + " = ".join(g) + " = 0.0",
              "        for i in range(lo + tid, hi, threads):", f"            num = z[{cols}]")
        for fid, printed in enumerate(formulas):
            lines(3, f"{'if' if fid == 0 else 'elif'} func_ids[j] == {fid}:  # {printed.label}")
            _element(lines, 4, printed, kind, _constant_reads(printed, "p"),
                     _stores(kind, printed, outputs, cols, err, [f"{a} += float64({{}})" for a in g]))
        lines(2, *(f"sums[{c}, tid] = {a}" for c, a in enumerate(g)))
        _cuda_tree_sum(lines, 2, str(width))
        lines(2, "if tid == 0:", "    for c in range(columns[j + 1] - columns[j]):",
              "        partials[task - j * chunks, columns[j] + c] = sums[c, 0]", "cuda.syncthreads()")
    _cuda_combine(lines)


def _cuda_combine(lines: _Lines) -> None:
    lines(0, "", "@cuda.jit", "def combine(partials, order, starts, targets, grad):",
          '    """The fixed-order second pass of the summing kernels: grad[targets[s]] = the sum of the columns',
          '    order[starts[s]:starts[s + 1]] of partials (rows in order), in float64; one thread per target."""',
          "    for s in range(cuda.grid(1), targets.size, cuda.gridsize(1)):", "        total = 0.0",
          "        for k in range(starts[s], starts[s + 1]):", "            for row in range(partials.shape[0]):",
          "                total += partials[row, order[k]]", "        grad[targets[s]] = total")


def _cuda_loss(lines: _Lines, printed: PrintedFormula) -> None:
    lines(0, *_CUDA_PREAMBLE)
    width = max(1, len(printed.constants))
    for kind in KINDS:
        inputs, outputs = kind.inputs("loss"), kind.writes["loss"]
        reads = ["y_pred = pred[i]", "y_true = true[i]", *_constant_reads(printed, "0")]
        doc = kind.doc.replace("err * ", "")  # a loss has no incoming gradient
        if not kind.reduces:
            lines(0, "", "@cuda.jit", f"def {kind.name}({', '.join((*inputs, *outputs))}, params):",
                  f'    """{doc}: one thread per element (grid-stride) over flat arrays."""', "    T = pred.dtype.type",
                  "    start = cuda.grid(1)", "    stride = cuda.gridsize(1)",
                  "    for i in range(start, pred.size, stride):")
            _element(lines, 2, printed, kind, reads, _stores(kind, printed, outputs, "i", None, []))
            continue
        g = [f"g{c}" for c in range(width)]
        lines(0, "", "@cuda.jit", f"def {kind.name}({', '.join((*inputs, *outputs))}, partials, params):",
              f'    """{doc}: one block per chunk of CHUNK elements of the flat arrays; each thread sums',
              '    in float64, the block adds them in a fixed tree order into partials[chunk, c]."""',
              "    T = pred.dtype.type", f"    sums = cuda.shared.array(({width}, THREADS), float64)",
              "    tid = cuda.threadIdx.x", "    threads = cuda.blockDim.x  # a power of two, at most THREADS",
              "    for chunk in range(cuda.blockIdx.x, partials.shape[0], cuda.gridDim.x):",
              "        lo = chunk * CHUNK", "        hi = lo + CHUNK if lo + CHUNK < pred.size else pred.size",
              "        " + " = ".join(g) + " = 0.0", "        for i in range(lo + tid, hi, threads):")
        _element(lines, 3, printed, kind, reads, _stores(kind, printed, outputs, "i", None, [f"{a} += float64({{}})" for a in g]))
        lines(2, *(f"sums[{c}, tid] = {a}" for c, a in enumerate(g)))
        _cuda_tree_sum(lines, 2, str(width))
        lines(2, "if tid == 0:", f"    for c in range({len(printed.constants)}):", "        partials[chunk, c] = sums[c, 0]",
              "cuda.syncthreads()")
    _cuda_combine(lines)


def generate_source(formulas: Sequence[PrintedFormula], mode: str, target: str, layout: str, version: str) -> str:
    """The kernel module for ``formulas`` (index = formula id), as text.

    Parameters
    ----------
    formulas : sequence of PrintedFormula
        The unique formulas of a layer, printed for ``target``; exactly one for a loss, and for a
        numba activation module (which serves every layer that uses its formula); for a periodic
        numba module, one per position of the period (a formula may appear more than once).
    mode : {"activation", "loss"}
    target : {"numba", "cuda"}
    layout : {"node_major", "batch_major", "periodic"}
        For CUDA activations; numba activation modules hold both layouts' functions, and losses are
        element-wise over flat arrays. ``"periodic"`` (numba activations): the ``row_block``
        function of a batch-major layer whose formulas repeat every ``len(formulas)`` nodes.
    version : str
        The library version, written into the header so a new version never reuses an old module.
    """
    lines = _header(formulas, target, layout, mode, version)
    if target == "numba" and layout == "periodic":
        _cpu_periodic(lines, formulas)
    elif target == "numba":
        _cpu_activation(lines, formulas[0]) if mode == "activation" else _cpu_loss(lines, formulas[0])
    else:
        _cuda_activation(lines, formulas, layout) if mode == "activation" else _cuda_loss(lines, formulas[0])
    return lines.text()
