"""symjit_numba 0.1.0: generated numba kernels for one activation formula.

    hardtanh  (max_val, min_val)
        f  = Piecewise((min_val, min_val >= num), (max_val, max_val <= num), (num, True))
        f' = Piecewise((0, (min_val >= num) | (max_val <= num)), (1, True))
        df/dmax_val = Piecewise((0, min_val >= num), (1, max_val <= num), (0, True))
        df/dmin_val = Piecewise((1, min_val >= num), (0, True))
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
    c_max_val = params[p + 0]
    c_min_val = params[p + 1]
    if backward:
        for i in range(z_s.size):
            num = z_s[i]
            out_s[i] = err_s[i] * (T(0.0) if (c_min_val >= num or c_max_val <= num) else T(1.0))
    else:
        for i in range(z_s.size):
            num = z_s[i]
            out_s[i] = (c_min_val if c_min_val >= num else (c_max_val if c_max_val <= num else num))


@JIT
def row_block(backward, z, err, out, params, offsets, r0, r1, k0, k1):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    out = f(z), or out = err * df/dz if backward."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_max_val = np.empty(offs.size, params.dtype)
    v_min_val = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_max_val[i] = params[offs[i] + 0]
        v_min_val[i] = params[offs[i] + 1]
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        out_s = out[r, k0:k1]
        if backward:
            for i in range(z_s.size):
                num = z_s[i]
                c_max_val = v_max_val[i]
                c_min_val = v_min_val[i]
                out_s[i] = err_s[i] * (T(0.0) if (c_min_val >= num or c_max_val <= num) else T(1.0))
        else:
            for i in range(z_s.size):
                num = z_s[i]
                c_max_val = v_max_val[i]
                c_min_val = v_min_val[i]
                out_s[i] = (c_min_val if c_min_val >= num else (c_max_val if c_max_val <= num else num))


@JIT
def nodes_block(backward, z, err, out, params, offsets, rows, k0, k1, m):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    out = f(z), or out = err * df/dz if backward."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_max_val = params[offsets[r] + 0]
        c_min_val = params[offsets[r] + 1]
        if backward:
            for i in range(m):
                num = z[r, i]
                out[r, i] = err[r, i] * (T(0.0) if (c_min_val >= num or c_max_val <= num) else T(1.0))
        else:
            for i in range(m):
                num = z[r, i]
                out[r, i] = (c_min_val if c_min_val >= num else (c_max_val if c_max_val <= num else num))


@JIT
def node_block_both(z_s, a_s, d_s, params, p):
    """One node's block of the batch (node-major; constants at params[p:]): a = f(z) and d = df/dz in one pass."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    c_max_val = params[p + 0]
    c_min_val = params[p + 1]
    for i in range(z_s.size):
        num = z_s[i]
        t0 = c_min_val >= num
        t1 = c_max_val <= num
        a_s[i] = (c_min_val if t0 else (c_max_val if t1 else num))
        d_s[i] = (T(0.0) if (t0 or t1) else T(1.0))


@JIT
def row_block_both(z, a, d, params, offsets, r0, r1, k0, k1):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    a = f(z) and d = df/dz in one pass."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_max_val = np.empty(offs.size, params.dtype)
    v_min_val = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_max_val[i] = params[offs[i] + 0]
        v_min_val[i] = params[offs[i] + 1]
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        a_s = a[r, k0:k1]
        d_s = d[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            c_max_val = v_max_val[i]
            c_min_val = v_min_val[i]
            t0 = c_min_val >= num
            t1 = c_max_val <= num
            a_s[i] = (c_min_val if t0 else (c_max_val if t1 else num))
            d_s[i] = (T(0.0) if (t0 or t1) else T(1.0))


@JIT
def nodes_block_both(z, a, d, params, offsets, rows, k0, k1, m):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    a = f(z) and d = df/dz in one pass."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_max_val = params[offsets[r] + 0]
        c_min_val = params[offsets[r] + 1]
        for i in range(m):
            num = z[r, i]
            t0 = c_min_val >= num
            t1 = c_max_val <= num
            a[r, i] = (c_min_val if t0 else (c_max_val if t1 else num))
            d[r, i] = (T(0.0) if (t0 or t1) else T(1.0))


@JIT
def node_block_params(z_s, err_s, params, p, partial):
    """One node's block of the batch (node-major; constants at params[p:]): partial = the float64 sums of err * df/dc per constant c."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    c_max_val = params[p + 0]
    c_min_val = params[p + 1]
    g_max_val = 0.0
    g_min_val = 0.0
    for i in range(z_s.size):
        num = z_s[i]
        t0 = c_min_val >= num
        g_max_val = sums.add(g_max_val, err_s[i] * (T(0.0) if t0 else (T(1.0) if c_max_val <= num else T(0.0))))
        g_min_val = sums.add(g_min_val, err_s[i] * (T(1.0) if t0 else T(0.0)))
    partial[0] = g_max_val
    partial[1] = g_min_val


@JIT
def row_block_params(z, err, params, offsets, r0, r1, k0, k1, partial):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    partial = the float64 sums of err * df/dc per constant c;
    node k0 + i's sum for its constant c is added to partial[c * (k1 - k0) + i]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_max_val = np.empty(offs.size, params.dtype)
    v_min_val = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_max_val[i] = params[offs[i] + 0]
        v_min_val[i] = params[offs[i] + 1]
    m = k1 - k0
    g_max_val = partial[0 * m:1 * m]
    g_min_val = partial[1 * m:2 * m]
    terms = np.empty((2, m), T)
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            c_max_val = v_max_val[i]
            c_min_val = v_min_val[i]
            t0 = c_min_val >= num
            terms[0, i] = err_s[i] * (T(0.0) if t0 else (T(1.0) if c_max_val <= num else T(0.0)))
            terms[1, i] = err_s[i] * (T(1.0) if t0 else T(0.0))
        for i in range(z_s.size):
            g_max_val[i] += np.float64(terms[0, i])
            g_min_val[i] += np.float64(terms[1, i])


@JIT
def nodes_block_params(z, err, params, offsets, columns, rows, k0, k1, m, partial):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    partial = the float64 sums of err * df/dc per constant c;
    row r's sum for its constant c goes to partial[columns[r] + c]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_max_val = params[offsets[r] + 0]
        c_min_val = params[offsets[r] + 1]
        g_max_val = 0.0
        g_min_val = 0.0
        for i in range(m):
            num = z[r, i]
            t0 = c_min_val >= num
            g_max_val = sums.add(g_max_val, err[r, i] * (T(0.0) if t0 else (T(1.0) if c_max_val <= num else T(0.0))))
            g_min_val = sums.add(g_min_val, err[r, i] * (T(1.0) if t0 else T(0.0)))
        partial[columns[r] + 0] = g_max_val
        partial[columns[r] + 1] = g_min_val


@JIT
def node_block_backward_params(z_s, err_s, delta_s, params, p, partial):
    """One node's block of the batch (node-major; constants at params[p:]): delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass."""
    T = z_s.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    c_max_val = params[p + 0]
    c_min_val = params[p + 1]
    g_max_val = 0.0
    g_min_val = 0.0
    for i in range(z_s.size):
        num = z_s[i]
        t0 = c_min_val >= num
        t1 = c_max_val <= num
        g_max_val = sums.add(g_max_val, err_s[i] * (T(0.0) if t0 else (T(1.0) if t1 else T(0.0))))
        g_min_val = sums.add(g_min_val, err_s[i] * (T(1.0) if t0 else T(0.0)))
        delta_s[i] = err_s[i] * (T(0.0) if (t0 or t1) else T(1.0))
    partial[0] = g_max_val
    partial[1] = g_min_val


@JIT
def row_block_backward_params(z, err, delta, params, offsets, r0, r1, k0, k1, partial):
    """Rows r0..r1-1 of nodes k0..k1-1 (batch-major; node k's constants at params[offsets[k]:]):
    delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass;
    node k0 + i's sum for its constant c is added to partial[c * (k1 - k0) + i]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    offs = offsets[k0:k1]
    v_max_val = np.empty(offs.size, params.dtype)
    v_min_val = np.empty(offs.size, params.dtype)
    for i in range(offs.size):
        v_max_val[i] = params[offs[i] + 0]
        v_min_val[i] = params[offs[i] + 1]
    m = k1 - k0
    g_max_val = partial[0 * m:1 * m]
    g_min_val = partial[1 * m:2 * m]
    terms = np.empty((2, m), T)
    for r in range(r0, r1):
        z_s = z[r, k0:k1]
        err_s = err[r, k0:k1]
        delta_s = delta[r, k0:k1]
        for i in range(z_s.size):
            num = z_s[i]
            c_max_val = v_max_val[i]
            c_min_val = v_min_val[i]
            t0 = c_min_val >= num
            t1 = c_max_val <= num
            terms[0, i] = err_s[i] * (T(0.0) if t0 else (T(1.0) if t1 else T(0.0)))
            terms[1, i] = err_s[i] * (T(1.0) if t0 else T(0.0))
            delta_s[i] = err_s[i] * (T(0.0) if (t0 or t1) else T(1.0))
        for i in range(z_s.size):
            g_max_val[i] += np.float64(terms[0, i])
            g_min_val[i] += np.float64(terms[1, i])


@JIT
def nodes_block_backward_params(z, err, delta, params, offsets, columns, rows, k0, k1, m, partial):
    """Rows rows[k0..k1-1] of node-major arrays, elements 0..m-1 (row r's constants at params[offsets[r]:]):
    delta = err * df/dz and partial = the float64 sums of err * df/dc per constant c in one pass;
    row r's sum for its constant c goes to partial[columns[r] + c]."""
    T = z.dtype.type
    vm.prefer_wide_vectors()  # all of an AVX-512 CPU's lanes
    for k in range(k0, k1):
        r = rows[k]
        c_max_val = params[offsets[r] + 0]
        c_min_val = params[offsets[r] + 1]
        g_max_val = 0.0
        g_min_val = 0.0
        for i in range(m):
            num = z[r, i]
            t0 = c_min_val >= num
            t1 = c_max_val <= num
            g_max_val = sums.add(g_max_val, err[r, i] * (T(0.0) if t0 else (T(1.0) if t1 else T(0.0))))
            g_min_val = sums.add(g_min_val, err[r, i] * (T(1.0) if t0 else T(0.0)))
            delta[r, i] = err[r, i] * (T(0.0) if (t0 or t1) else T(1.0))
        partial[columns[r] + 0] = g_max_val
        partial[columns[r] + 1] = g_min_val

# codegen fingerprint: bcff9e96b4d9c221
