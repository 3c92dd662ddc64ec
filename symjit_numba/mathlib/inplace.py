"""In-place calls at vector speed: where a kernel's output is one of its inputs.

A CPU_JIT loop reads ``z[i]`` and writes ``out[i]`` through two array arguments; LLVM vectorises it
behind a runtime check that the two do not overlap, and runs the loop's scalar version when they
do. For an in-place call (``forward_kernel(z, z, ...)``, ``backward_kernel(z, err, err, ...)``) they
are the very same array, the check fails, and the call took 5-7x the time of one with a separate
output (W1 node-major and a batch-major layer, 4096 x 512 float32, every kernel kind; the log_cosh
loss; the memory-bound mse 1.2x; ``benchmarks/bench_in_place.py`` on one thread).

So the task runners (:mod:`symjit_numba.backends.cpu_tasks`) and the generated loss functions
give the loops a buffer to write instead of an output that aliases an input, and copy each block
from the buffer to the output after its loop has read the block's inputs. Validation allows an
output either to be an input exactly or to share no memory with it, so comparing first addresses
tells the two apart.
"""

from __future__ import annotations

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["BLOCK", "aliases", "block_buffer", "empty", "into", "settle", "step"]

_OPTIONS = {"nogil": True, "error_model": "numpy", "cache": True}

#: Elements of an in-place buffer, written and copied while in the L1 cache (4 KB of float32): an
#: mse loss in place took 0.70x the time of a separate output with it, 1.55x with 8192.
BLOCK = 1024


@njit(**_OPTIONS)
def aliases(out, first, second):  # pragma: no cover - compiled
    """Whether ``out`` is the array ``first`` or ``second`` (the same first element)."""
    return out.size > 0 and (out.ctypes.data == first.ctypes.data or out.ctypes.data == second.ctypes.data)


@intrinsic
def empty(typingctx, like, shape):
    """A new C-contiguous array of ``like``'s dtype and the shape ``shape`` (a tuple of integers).

    Not ``np.empty``: numba's code for that calls a function of ``numba.np.arrayobj``, which a cached
    function then imports when it is loaded, and with it numba refreshes its registries (about
    0.25 s in a process that otherwise only loads cached kernels). This allocates through numba's
    runtime directly, aligned on a cache line."""
    array_type = types.Array(like.dtype, len(shape), "C")

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import populate_array

        intp = context.get_value_type(types.intp)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(like.dtype)))
        dims = [builder.sext(d, intp) if d.type.width < intp.width else d for d in cgutils.unpack_tuple(builder, args[1])]
        strides, nbytes = [], itemsize
        for dim in reversed(dims):
            strides.insert(0, nbytes)
            nbytes = builder.mul(nbytes, dim)
        meminfo = context.nrt.meminfo_alloc_aligned(builder, size=nbytes, align=64)
        cgutils.guard_memory_error(context, builder, meminfo, "symjit_numba: no memory for an in-place buffer")
        array = context.make_array(array_type)(context, builder)
        data = builder.bitcast(context.nrt.meminfo_data(builder, meminfo), array.data.type)
        populate_array(array, data=data, shape=dims, strides=strides, itemsize=itemsize, meminfo=meminfo)
        return array._getvalue()

    return array_type(like, shape), codegen


@njit(**_OPTIONS)
def block_buffer(out, first, second, size):  # pragma: no cover - compiled
    """A buffer of ``size`` elements of ``out``'s dtype for the blocks of ``out`` if it aliases
    ``first`` or ``second``, else an empty one (the loops then write ``out`` itself)."""
    return empty(out, (size if aliases(out, first, second) else 0,))


@njit(**_OPTIONS)
def into(out_block, buffer):  # pragma: no cover - compiled
    """What a block's loop writes for the 1-D block ``out_block``: the start of ``buffer``, or the
    block itself where ``buffer`` is empty."""
    return out_block if buffer.size == 0 else buffer[:out_block.size]


@njit(**_OPTIONS)
def settle(out_block, written):  # pragma: no cover - compiled
    """Copy a block that its loop wrote into a buffer (``written``, from :func:`into`) to its place."""
    if written.size > 0 and written.ctypes.data != out_block.ctypes.data:
        for i in range(written.size):  # (numba's out_block[:] = written took 3x as long)
            out_block[i] = written[i]


@njit(**_OPTIONS)
def step(block, buffer):  # pragma: no cover - compiled
    """Elements per loop over a task's ``block`` elements: all of them, or a buffer's worth in place."""
    return block if buffer.size == 0 else min(block, buffer.size)
