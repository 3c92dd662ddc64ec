"""symjit_numba 0.1.0: generated numba kernels, mode=loss, layout=node_major.

Formula ids:
    0: bce  (no constants)
        f  = -y_true*log(y_pred) - (1 - y_true)*log1p(-y_pred)
        f' = (1 - y_true)/(1 - y_pred) - y_true/y_pred
"""
import math

import numpy as np
from numba import njit

from symjit_numba.mathlib import inplace, sums
from symjit_numba.mathlib import scalar_special as ss
from symjit_numba.mathlib import vector_math as vm

# Serial, GIL-free functions; the CPU_JIT backend runs tasks on all cores with its own threads.
JIT = njit(nogil=True, cache=True, fastmath=set(vm.FASTMATH_FLAGS), error_model='numpy', no_rewrites=True)

BLOCK = 8192


@JIT
def loss(first, last, backward, pred, true, out, params):
    """Tasks first..last-1, task = block of BLOCK elements of the flat arrays:
    out = L(pred, true), or out = dL/dpred if backward."""
    T = pred.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    out_buffer = inplace.block_buffer(out, pred, true, inplace.BLOCK)  # in place: out is pred or true
    step = inplace.step(BLOCK, out_buffer)
    for task in range(first, last):
        end = min(task * BLOCK + BLOCK, pred.size)
        for lo in range(task * BLOCK, end, step):
            hi = min(lo + step, end)
            pred_s = pred[lo:hi]
            true_s = true[lo:hi]
            out_s = inplace.into(out[lo:hi], out_buffer)
            if backward:
                for i in range(pred_s.size):
                    y_pred = pred_s[i]
                    y_true = true_s[i]
                    out_s[i] = (((-y_true)/y_pred) + ((T(1.0) - y_true)/(T(1.0) - y_pred)))
            else:
                for i in range(pred_s.size):
                    y_pred = pred_s[i]
                    y_true = true_s[i]
                    out_s[i] = ((-(y_true*vm.log(y_pred))) - ((T(1.0) - y_true)*vm.log1p((-y_pred))))
            inplace.settle(out[lo:hi], out_s)


@JIT
def loss_both(first, last, pred, true, res, grad, params):
    """Tasks first..last-1, task = block of BLOCK elements of the flat arrays:
    res = L(pred, true) and grad = dL/dpred in one pass."""
    T = pred.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    res_buffer = inplace.block_buffer(res, pred, true, inplace.BLOCK)  # in place: res is pred or true
    grad_buffer = inplace.block_buffer(grad, pred, true, inplace.BLOCK)  # in place: grad is pred or true
    step = min(inplace.step(BLOCK, res_buffer), inplace.step(BLOCK, grad_buffer))
    for task in range(first, last):
        end = min(task * BLOCK + BLOCK, pred.size)
        for lo in range(task * BLOCK, end, step):
            hi = min(lo + step, end)
            pred_s = pred[lo:hi]
            true_s = true[lo:hi]
            res_s = inplace.into(res[lo:hi], res_buffer)
            grad_s = inplace.into(grad[lo:hi], grad_buffer)
            for i in range(pred_s.size):
                y_pred = pred_s[i]
                y_true = true_s[i]
                t0 = (T(1.0) - y_true)
                res_s[i] = ((-(t0*vm.log1p((-y_pred)))) - (y_true*vm.log(y_pred)))
                grad_s[i] = ((t0/(T(1.0) - y_pred)) + ((-y_true)/y_pred))
            inplace.settle(res[lo:hi], res_s)
            inplace.settle(grad[lo:hi], grad_s)


@JIT
def loss_params(first, last, pred, true, params, partials):
    """Tasks first..last-1, task = block of BLOCK elements of the flat arrays:
    partial = the float64 sums of dL/dc per constant c (task t's sums in partials[t])."""
    T = pred.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    step = BLOCK
    for task in range(first, last):
        end = min(task * BLOCK + BLOCK, pred.size)
        for lo in range(task * BLOCK, end, step):
            hi = min(lo + step, end)
            pred_s = pred[lo:hi]
            true_s = true[lo:hi]
            for i in range(pred_s.size):
                pass


@JIT
def loss_backward_params(first, last, pred, true, grad, params, partials):
    """Tasks first..last-1, task = block of BLOCK elements of the flat arrays:
    grad = dL/dpred and partial = the float64 sums of dL/dc per constant c in one pass (task t's sums in partials[t])."""
    T = pred.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    grad_buffer = inplace.block_buffer(grad, pred, true, BLOCK)  # in place: grad is pred or true
    step = inplace.step(BLOCK, grad_buffer)
    for task in range(first, last):
        end = min(task * BLOCK + BLOCK, pred.size)
        for lo in range(task * BLOCK, end, step):
            hi = min(lo + step, end)
            pred_s = pred[lo:hi]
            true_s = true[lo:hi]
            grad_s = inplace.into(grad[lo:hi], grad_buffer)
            for i in range(pred_s.size):
                y_pred = pred_s[i]
                y_true = true_s[i]
                grad_s[i] = (((-y_true)/y_pred) + ((T(1.0) - y_true)/(T(1.0) - y_pred)))
            inplace.settle(grad[lo:hi], grad_s)

# codegen fingerprint: bcff9e96b4d9c221
