"""Element ``P*i + k`` of a row, for the loops of layers whose formulas repeat every P nodes.

A periodic kernel module (``codegen.source``, layout ``"periodic"``) computes a batch-major row
period by period: its loop body reads element ``P*i + k`` of each input and writes that of each
output, for every position k, and LLVM vectorises the loop with interleaved loads and stores (a
period's worth of vectors, shuffled in registers). Written ``z_s[P*i + k]``, each such access is a
numba array index: an address computed without LLVM's no-wrap flags, so the vectoriser must
assume at run time that it does not wrap, one assumption per access, and it gives up beyond 16
(``Too many SCEV assumptions``): a forward pass (8 loads and 8 stores for W1's period of 8)
vectorised, a backward pass (24 accesses) ran scalar, 7-8x slower. :func:`load` and
:func:`store` compute the same address as an ``inbounds`` GEP of a no-wrap index, which needs no
assumption. Like numba's own indexing with bounds checks off, they trust the index.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["load", "store"]


def _address(context, builder: ir.IRBuilder, signature, args) -> ir.Value:
    """The address of element ``period * i + position`` of the 1-D array ``args[0]``."""
    array = context.make_array(signature.args[0])(context, builder, args[0])
    i, period, position = (context.cast(builder, value, kind, types.intp)
                           for value, kind in zip(args[1:4], signature.args[1:4]))
    index = builder.add(builder.mul(i, period, flags=["nsw", "nuw"]), position, flags=["nsw", "nuw"])
    return builder.gep(array.data, [index], inbounds=True)


def _check(array, *indices) -> None:
    if not (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"):
        raise TypeError(f"interleaved access needs a C-contiguous 1-D array, got {array}")
    if not all(isinstance(index, types.Integer) for index in indices):
        raise TypeError(f"interleaved access needs integer i, period and position, got {indices}")


@intrinsic
def load(typingctx, array, i, period, position):
    """``array[period * i + position]`` (an index that is never negative)."""
    _check(array, i, period, position)

    def codegen(context, builder, signature, args):
        return builder.load(_address(context, builder, signature, args))

    return array.dtype(array, i, period, position), codegen


@intrinsic
def store(typingctx, array, i, period, position, value):
    """``array[period * i + position] = value`` (an index that is never negative)."""
    _check(array, i, period, position)

    def codegen(context, builder, signature, args):
        element = context.cast(builder, args[4], signature.args[4], signature.args[0].dtype)
        builder.store(element, _address(context, builder, signature, args))
        return context.get_dummy_value()

    return types.void(array, i, period, position, value), codegen
