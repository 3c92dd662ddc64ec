"""symjit_numba 0.1.0: generated numba kernels for one activation formula.

    swish  (beta)
        f  = num*sigmoid(beta*num)
        f' = beta*num*(1 - sigmoid(beta*num))*sigmoid(beta*num) + sigmoid(beta*num)
        df/dbeta = num**2*(1 - sigmoid(beta*num))*sigmoid(beta*num)
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
    c_beta = params[p + 0]
    if backward:
        for i in range(z_s.size):
            num = z_s[i]
            t0 = c_beta*num
            t1 = vm.exp(-abs(t0))
            t2 = (T(1.0) + t1)
            out_s[i] = err_s[i] * (((t0*t1)/(t2*t2)) + ((T(1.0) if t0 >= T(0.0) else t1)/t2))
    else:
        for i in range(z_s.size):
            num = z_s[i]
            out_s[i] = num*vm.sigmoid(c_beta*num)


@JIT
def row_block(backward, z, err, out, params, offsets, r0, r1, k0, k1):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    out = f(z), or out = err * df/dz if backward."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_beta = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_beta[i] = params[offs[i] + 0]
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        out_s = out[r, k0:k1]
        if backward:
            for i in range(z_s.size):
                num = z_s[i]
                c_beta = v_beta[i]
                t0 = c_beta*num
                t1 = vm.exp(-abs(t0))
                t2 = (T(1.0) + t1)
                out_s[i] = err_s[i] * (((t0*t1)/(t2*t2)) + ((T(1.0) if t0 >= T(0.0) else t1)/t2))
        else:
            for i in range(z_s.size):
                num = z_s[i]
                c_beta = v_beta[i]
                out_s[i] = num*vm.sigmoid(c_beta*num)


@JIT
def nodes_block(backward, z, err, out, params, offsets, rows, k0, k1, m):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    out = f(z), or out = err * df/dz if backward."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_beta = params[offsets[r] + 0]
        if backward:
            for i in range(m):
                num = z[r, i]
                t0 = c_beta*num
                t1 = vm.exp(-abs(t0))
                t2 = (T(1.0) + t1)
                out[r, i] = err[r, i] * (((t0*t1)/(t2*t2)) + ((T(1.0) if t0 >= T(0.0) else t1)/t2))
        else:
            for i in range(m):
                num = z[r, i]
                out[r, i] = num*vm.sigmoid(c_beta*num)


@JIT
def node_block_both(z_s, a_s, d_s, params, p):
    """One node's block of the batch (node-major; constants at params[p:]): a = f(z) and d = df/dz in one pass."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    c_beta = params[p + 0]
    for i in range(z_s.size):
        num = z_s[i]
        t0 = c_beta*num
        t1 = vm.exp(-abs(t0))
        t2 = (T(1.0) if t0 >= T(0.0) else t1)
        t3 = (T(1.0) + t1)
        a_s[i] = ((t2*num)/t3)
        d_s[i] = ((t2/t3) + ((t0*t1)/(t3*t3)))


@JIT
def row_block_both(z, a, d, params, offsets, r0, r1, k0, k1):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    a = f(z) and d = df/dz in one pass."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_beta = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_beta[i] = params[offs[i] + 0]
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        a_s = a[r, k0:k1]
        d_s = d[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            c_beta = v_beta[i]
            t0 = c_beta*num
            t1 = vm.exp(-abs(t0))
            t2 = (T(1.0) if t0 >= T(0.0) else t1)
            t3 = (T(1.0) + t1)
            a_s[i] = ((t2*num)/t3)
            d_s[i] = ((t2/t3) + ((t0*t1)/(t3*t3)))


@JIT
def nodes_block_both(z, a, d, params, offsets, rows, k0, k1, m):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    a = f(z) and d = df/dz in one pass."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_beta = params[offsets[r] + 0]
        for i in range(m):
            num = z[r, i]
            t0 = c_beta*num
            t1 = vm.exp(-abs(t0))
            t2 = (T(1.0) if t0 >= T(0.0) else t1)
            t3 = (T(1.0) + t1)
            a[r, i] = ((t2*num)/t3)
            d[r, i] = ((t2/t3) + ((t0*t1)/(t3*t3)))


@JIT
def node_block_params(z_s, err_s, params, p, partial):
    """One node's block of the batch (node-major; constants at params[p:]): partial = the float64 sums of err * df/dc per constant c."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    c_beta = params[p + 0]
    g_beta = 0.0
    for i in range(z_s.size):
        num = z_s[i]
        h0 = c_beta*num
        t0 = vm.exp(-abs(h0))
        h1 = (T(1.0) + t0)
        g_beta = sums.add(g_beta, err_s[i] * ((t0*(num*num))/(h1*h1)))
    partial[0] = g_beta


@JIT
def row_block_params(z, err, params, offsets, r0, r1, k0, k1, partial):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    partial = the float64 sums of err * df/dc per constant c;
    node k0 + i's sum for its constant c is added to partial[c * (k1 - k0) + i]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_beta = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_beta[i] = params[offs[i] + 0]
    m = k1 - k0
    g_beta = partial[0 * m:1 * m]
    terms = np.empty((1, m), T)
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            c_beta = v_beta[i]
            h0 = c_beta*num
            t0 = vm.exp(-abs(h0))
            h1 = (T(1.0) + t0)
            terms[0, i] = err_s[i] * ((t0*(num*num))/(h1*h1))
        for i in range(z_s.size):
            g_beta[i] += np.float64(terms[0, i])


@JIT
def nodes_block_params(z, err, params, offsets, columns, rows, k0, k1, m, partial):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    partial = the float64 sums of err * df/dc per constant c;
    row r's sum for its constant c goes to partial[columns[r] + c]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_beta = params[offsets[r] + 0]
        g_beta = 0.0
        for i in range(m):
            num = z[r, i]
            h0 = c_beta*num
            t0 = vm.exp(-abs(h0))
            h1 = (T(1.0) + t0)
            g_beta = sums.add(g_beta, err[r, i] * ((t0*(num*num))/(h1*h1)))
        partial[columns[r] + 0] = g_beta


@JIT
def node_block_backward_params(z_s, err_s, delta_s, params, p, partial):
    """One node's block of the batch (node-major; constants at params[p:]): delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    c_beta = params[p + 0]
    g_beta = 0.0
    for i in range(z_s.size):
        num = z_s[i]
        t0 = c_beta*num
        t1 = vm.exp(-abs(t0))
        t2 = (T(1.0) + t1)
        t3 = (t2*t2)
        g_beta = sums.add(g_beta, err_s[i] * ((t1*(num*num))/t3))
        delta_s[i] = err_s[i] * (((t0*t1)/t3) + ((T(1.0) if t0 >= T(0.0) else t1)/t2))
    partial[0] = g_beta


@JIT
def row_block_backward_params(z, err, delta, params, offsets, r0, r1, k0, k1, partial):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass;
    node k0 + i's sum for its constant c is added to partial[c * (k1 - k0) + i]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_beta = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_beta[i] = params[offs[i] + 0]
    m = k1 - k0
    g_beta = partial[0 * m:1 * m]
    terms = np.empty((1, m), T)
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        delta_s = delta[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            c_beta = v_beta[i]
            t0 = c_beta*num
            t1 = vm.exp(-abs(t0))
            t2 = (T(1.0) + t1)
            t3 = (t2*t2)
            terms[0, i] = err_s[i] * ((t1*(num*num))/t3)
            delta_s[i] = err_s[i] * (((t0*t1)/t3) + ((T(1.0) if t0 >= T(0.0) else t1)/t2))
        for i in range(z_s.size):
            g_beta[i] += np.float64(terms[0, i])


@JIT
def nodes_block_backward_params(z, err, delta, params, offsets, columns, rows, k0, k1, m, partial):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass;
    row r's sum for its constant c goes to partial[columns[r] + c]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_beta = params[offsets[r] + 0]
        g_beta = 0.0
        for i in range(m):
            num = z[r, i]
            t0 = c_beta*num
            t1 = vm.exp(-abs(t0))
            t2 = (T(1.0) + t1)
            t3 = (t2*t2)
            g_beta = sums.add(g_beta, err[r, i] * ((t1*(num*num))/t3))
            delta[r, i] = err[r, i] * (((t0*t1)/t3) + ((T(1.0) if t0 >= T(0.0) else t1)/t2))
        partial[columns[r] + 0] = g_beta

# codegen fingerprint: bcff9e96b4d9c221
