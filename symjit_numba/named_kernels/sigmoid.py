"""symjit_numba 0.1.0: generated numba kernels for one activation formula.

    sigmoid  (no constants)
        f  = sigmoid(num)
        f' = (1 - sigmoid(num))*sigmoid(num)
"""
import math

import numpy as np
from numba import njit

from symjit_numba.mathlib import sums
from symjit_numba.mathlib import scalar_special as ss
from symjit_numba.mathlib import vector_math as vm

# Serial, GIL-free functions; the CPU_JIT backend runs tasks on all cores with its own threads.
JIT = njit(nogil=True, cache=True, fastmath=set(vm.FASTMATH_FLAGS), error_model='numpy', no_rewrites=True,
           no_cpython_wrapper=True)


@JIT
def node_block(backward, z_s, err_s, out_s, params, p):
    """One node's block of the batch (node-major; constants at params[p:]): out = f(z), or out = err * df/dz if backward."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    if backward:
        for i in range(z_s.size):
            num = z_s[i]
            t0 = vm.exp(-abs(num))
            h0 = (T(1.0) + t0)
            out_s[i] = err_s[i] * (t0/(h0*h0))
    else:
        for i in range(z_s.size):
            num = z_s[i]
            out_s[i] = vm.sigmoid(num)


@JIT
def row_block(backward, z, err, out, params, offsets, r0, r1, k0, k1):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    out = f(z), or out = err * df/dz if backward."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        out_s = out[r, k0:k1]
        if backward:
            for i in range(z_s.size):
                num = z_s[i]
                t0 = vm.exp(-abs(num))
                h0 = (T(1.0) + t0)
                out_s[i] = err_s[i] * (t0/(h0*h0))
        else:
            for i in range(z_s.size):
                num = z_s[i]
                out_s[i] = vm.sigmoid(num)


@JIT
def nodes_block(backward, z, err, out, params, offsets, rows, k0, k1, m):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    out = f(z), or out = err * df/dz if backward."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        if backward:
            for i in range(m):
                num = z[r, i]
                t0 = vm.exp(-abs(num))
                h0 = (T(1.0) + t0)
                out[r, i] = err[r, i] * (t0/(h0*h0))
        else:
            for i in range(m):
                num = z[r, i]
                out[r, i] = vm.sigmoid(num)


@JIT
def node_block_both(z_s, a_s, d_s, params, p):
    """One node's block of the batch (node-major; constants at params[p:]): a = f(z) and d = df/dz in one pass."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for i in range(z_s.size):
        num = z_s[i]
        t0 = vm.exp(-abs(num))
        t1 = (T(1.0) + t0)
        a_s[i] = ((T(1.0) if num >= T(0.0) else t0)/t1)
        d_s[i] = (t0/(t1*t1))


@JIT
def row_block_both(z, a, d, params, offsets, r0, r1, k0, k1):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    a = f(z) and d = df/dz in one pass."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        a_s = a[r, k0:k1]
        d_s = d[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            t0 = vm.exp(-abs(num))
            t1 = (T(1.0) + t0)
            a_s[i] = ((T(1.0) if num >= T(0.0) else t0)/t1)
            d_s[i] = (t0/(t1*t1))


@JIT
def nodes_block_both(z, a, d, params, offsets, rows, k0, k1, m):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    a = f(z) and d = df/dz in one pass."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        for i in range(m):
            num = z[r, i]
            t0 = vm.exp(-abs(num))
            t1 = (T(1.0) + t0)
            a[r, i] = ((T(1.0) if num >= T(0.0) else t0)/t1)
            d[r, i] = (t0/(t1*t1))


@JIT
def node_block_params(z_s, err_s, params, p, partial):
    """One node's block of the batch (node-major; constants at params[p:]): partial = the float64 sums of err * df/dc per constant c."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for i in range(z_s.size):
        pass


@JIT
def row_block_params(z, err, params, offsets, r0, r1, k0, k1, partial):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    partial = the float64 sums of err * df/dc per constant c;
    node k0 + i's sum for its constant c is added to partial[c * (k1 - k0) + i]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        for i in range(z_s.size):
            pass


@JIT
def nodes_block_params(z, err, params, offsets, columns, rows, k0, k1, m, partial):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    partial = the float64 sums of err * df/dc per constant c;
    row r's sum for its constant c goes to partial[columns[r] + c]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        for i in range(m):
            pass


@JIT
def node_block_backward_params(z_s, err_s, delta_s, params, p, partial):
    """One node's block of the batch (node-major; constants at params[p:]): delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for i in range(z_s.size):
        num = z_s[i]
        t0 = vm.exp(-abs(num))
        h0 = (T(1.0) + t0)
        delta_s[i] = err_s[i] * (t0/(h0*h0))


@JIT
def row_block_backward_params(z, err, delta, params, offsets, r0, r1, k0, k1, partial):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass;
    node k0 + i's sum for its constant c is added to partial[c * (k1 - k0) + i]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        delta_s = delta[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            t0 = vm.exp(-abs(num))
            h0 = (T(1.0) + t0)
            delta_s[i] = err_s[i] * (t0/(h0*h0))


@JIT
def nodes_block_backward_params(z, err, delta, params, offsets, columns, rows, k0, k1, m, partial):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass;
    row r's sum for its constant c goes to partial[columns[r] + c]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        for i in range(m):
            num = z[r, i]
            t0 = vm.exp(-abs(num))
            h0 = (T(1.0) + t0)
            delta[r, i] = err[r, i] * (t0/(h0*h0))

# codegen fingerprint: bcff9e96b4d9c221
