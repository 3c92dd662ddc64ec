"""Bad kernel arguments are refused before any kernel touches memory, with a message that says what to fix.

Every check runs on every backend: the outputs are filled with a sentinel first, and must be
untouched after a refused call.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symjit_numba import ConfigurationError, KernelArgumentError, SymbolicJITCompiler
from symjit_numba.backends.validation import activation_call_is_valid, check_activation_call, check_grad_params

from .conftest import build

CONFIGS = [("relu", {}), ("leaky_relu", {"alpha": 0.2}), ("a*tanh(b*num)", {"a": 1.0, "b": 2.0})]
SENTINEL = 777.0


@pytest.fixture(scope="module")
def layers():
    return {method: build(CONFIGS, method) for method in ("CPU_PYTHON", "CPU_JIT", "GPU_CUDA")}


@pytest.fixture(scope="module")
def losses():
    return {method: build([("huber", {"delta": 0.5})], method, mode="loss") for method in ("CPU_PYTHON", "CPU_JIT", "GPU_CUDA")}


def _arrays(dtype=np.float32, shape=(3, 4)):
    z = np.linspace(-2, 2, np.prod(shape)).reshape(shape).astype(dtype)
    return z, np.full(shape, SENTINEL, dtype=dtype)


def _refused(call, out, *fragments):
    before = out.copy()
    with pytest.raises(KernelArgumentError) as caught:
        call()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    np.testing.assert_array_equal(out, before)  # nothing was written


BAD_CALLS = {
    # name: (function of (z, a, params, offsets) returning forward arguments, message fragments)
    "wrong node count": (lambda z, a, p, o: (z[:2].copy(), a[:2].copy(), p, o[:2], 2, 4), ["3 nodes"]),
    "n disagrees": (lambda z, a, p, o: (z, a, p, o, 4, 4), ["n=4"]),
    "b disagrees": (lambda z, a, p, o: (z, a, p, o, 3, 5), ["b=5"]),
    "n not an int": (lambda z, a, p, o: (z, a, p, o, 3.0, 4), ["integer"]),
    "1-D z": (lambda z, a, p, o: (z.reshape(-1), a.reshape(-1), p, o, 3, 4), ["2-D"]),
    "mixed dtypes": (lambda z, a, p, o: (z.astype(np.float64), a, p, o, 3, 4), ["one dtype"]),
    "integer arrays": (lambda z, a, p, o: (z.astype(np.int64), a.astype(np.int64), p.astype(np.int64), o, 3, 4),
                       ["float32 or float64"]),
    "params dtype": (lambda z, a, p, o: (z, a, p.astype(np.float64) if p.dtype == np.float32 else p.astype(np.float32),
                                         o, 3, 4), ["params="]),
    "non-contiguous z": (lambda z, a, p, o: (np.asfortranarray(z), a, p, o, 3, 4), ["C-contiguous"]),
    "strided view": (lambda z, a, p, o: (np.repeat(z, 2, axis=1)[:, ::2], a, p, o, 3, 4), ["C-contiguous"]),
    "shape mismatch": (lambda z, a, p, o: (z, np.zeros((3, 5), z.dtype), p, o, 3, 4), ["shape"]),
    "read-only output": (lambda z, a, p, o: (z, _readonly(a), p, o, 3, 4), ["read-only"]),
    "list instead of array": (lambda z, a, p, o: (z.tolist(), a, p, o, 3, 4), ["numpy array"]),
    "2-D params": (lambda z, a, p, o: (z, a, p.reshape(1, -1), o, 3, 4), ["1-D"]),
    "short params": (lambda z, a, p, o: (z, a, p[:2], o, 3, 4), ["params has 2 elements"]),
    "negative offset": (lambda z, a, p, o: (z, a, p, np.array([0, -1, 1]), 3, 4), ["negative"]),
    "offset past the end": (lambda z, a, p, o: (z, a, p, np.array([0, 0, 2]), 3, 4), ["params["]),
    "huge offset": (lambda z, a, p, o: (z, a, p, np.array([0, 0, 2**40]), 3, 4), ["params["]),
    "short offset_list": (lambda z, a, p, o: (z, a, p, o[:2], 3, 4), ["one offset per node"]),
    "float offsets": (lambda z, a, p, o: (z, a, p, o.astype(np.float64), 3, 4), ["integers"]),
}


def _readonly(array):
    array = array.copy()
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_forward_refuses_bad_arguments(layers, method, case):
    make_args, fragments = BAD_CALLS[case]
    layer = layers[method]
    z, a = _arrays()
    params, offsets = layer.make_params(np.float32)
    args = make_args(z, a, params, offsets)
    _refused(lambda: layer.forward_kernel(*args), args[1], *fragments)


def test_backward_refuses_mismatched_err(layers, method):
    layer = layers[method]
    z, delta = _arrays()
    params, offsets = layer.make_params(np.float32)
    _refused(lambda: layer.backward_kernel(z, np.ones((3, 5), np.float32), delta, params, offsets, 3, 4), delta, "err")
    _refused(lambda: layer.backward_kernel(z, np.ones((3, 4)), delta, params, offsets, 3, 4), delta, "err=float64")


def test_batch_major_checks_its_own_shape(method):
    layer = build(CONFIGS, method, layout="batch_major")
    z, a = _arrays(shape=(3, 4))  # (nodes, batch) is wrong here: batch-major wants (batch, nodes)
    params, offsets = layer.make_params(np.float32)
    _refused(lambda: layer.forward_kernel(z, a, params, offsets, 3, 4), a, "shape[1] = 4", "batch_major")


def test_loss_refuses_bad_arguments(losses, method):
    loss = losses[method]
    y, res = _arrays(shape=(6,))
    params, _ = loss.make_params(np.float32)
    _refused(lambda: loss.forward_kernel(y, y[:5].copy(), res, params), res, "shape")
    _refused(lambda: loss.forward_kernel(y, y.astype(np.float64), res, params), res, "one dtype")
    _refused(lambda: loss.forward_kernel(y, y, res, params[:0]), res, "at least 1")
    _refused(lambda: loss.backward_kernel(y[::2], y[::2].copy(), res[:3], params), res, "C-contiguous")


def test_valid_call_after_refusals_still_works(layers, method):
    layer = layers[method]
    z, a = _arrays()
    params, offsets = layer.make_params(np.float32)
    with pytest.raises(KernelArgumentError):
        layer.forward_kernel(z, a, params, np.array([0, 0, 5]), 3, 4)
    layer.forward_kernel(z, a, params, offsets, 3, 4)
    expected = np.stack([np.maximum(z[0], 0), np.where(z[1] > 0, z[1], 0.2 * z[1]), np.tanh(2 * z[2])])
    np.testing.assert_allclose(a, expected, rtol=1e-6, atol=1e-7)


def test_constructor_refuses_bad_options():
    with pytest.raises(ConfigurationError, match="calculation_method"):
        SymbolicJITCompiler([("relu", {})], "GPU")
    with pytest.raises(ConfigurationError, match="layout"):
        SymbolicJITCompiler([("relu", {})], "CPU_PYTHON", layout="column_major")
    with pytest.raises(ValueError, match="float32 or float64"):
        SymbolicJITCompiler([("relu", {})], "CPU_PYTHON").make_params(np.int32)


def test_forward_derivative_refuses_shared_outputs_and_bad_shapes(layers, losses, method):
    layer, loss = layers[method], losses[method]
    z, a = _arrays()
    params, offsets = layer.make_params(np.float32)
    _refused(lambda: layer.forward_derivative_kernel(z, a, a, params, offsets, 3, 4), a, "a and d overlap")
    _refused(lambda: layer.forward_derivative_kernel(z, a, a[:2].copy(), params, offsets, 3, 4), a, "d has shape")
    _refused(lambda: layer.forward_derivative_kernel(z, a, _readonly(a), params, offsets, 3, 4), a, "d is read-only")
    y, res = _arrays(shape=(6,))
    grad = res.copy()
    params, _ = loss.make_params(np.float32)
    _refused(lambda: loss.forward_derivative_kernel(y, y, res, res, params), res, "res and grad overlap")
    _refused(lambda: loss.forward_derivative_kernel(y, y, res, grad.astype(np.float64), params), res, "grad=float64")


# -- overlap between outputs and other arguments (issue 10, item 6) -------------------------------------------

def _views(dtype=np.float32, shape=(3, 4), shift=1):
    """Two views of one buffer, ``shift`` elements apart: the second starts inside the first."""
    size = int(np.prod(shape))
    buffer = np.linspace(-2, 2, size + shift).astype(dtype)
    return buffer[:size].reshape(shape), buffer[shift:size + shift].reshape(shape)


OVERLAPPING_CALLS = {
    # name: (function of (layer, params, offsets) -> (kernel call, the output it must leave untouched), fragments)
    "forward a = z shifted": (lambda L, p, o: (lambda a, z: (lambda: L.forward_kernel(z, a, p, o, 3, 4), a))(*_views()),
                              ["output a partly overlaps input z", "pass z as a", "np.empty_like(z)"]),
    "forward z = a shifted": (lambda L, p, o: (lambda z, a: (lambda: L.forward_kernel(z, a, p, o, 3, 4), a))(*_views()),
                              ["output a partly overlaps input z"]),
    "backward delta = err shifted": (
        lambda L, p, o: (lambda d, e: (lambda: L.backward_kernel(_arrays()[0], e, d, p, o, 3, 4), d))(*_views()),
        ["output delta partly overlaps input err"]),
    "backward delta = z shifted": (
        lambda L, p, o: (lambda d, z: (lambda: L.backward_kernel(z, np.ones_like(z), d, p, o, 3, 4), d))(*_views()),
        ["output delta partly overlaps input z"]),
    "fused d = z shifted": (
        lambda L, p, o: (lambda d, z: (lambda: L.forward_derivative_kernel(z, _arrays()[1], d, p, o, 3, 4), d))(*_views()),
        ["output d partly overlaps input z"]),
    "fused a and d shifted": (
        lambda L, p, o: (lambda a, d: (lambda: L.forward_derivative_kernel(_arrays()[0], a, d, p, o, 3, 4), a))(*_views()),
        ["a and d overlap"]),
    "output holds params": (
        lambda L, p, o: (lambda a: (lambda: L.forward_kernel(_arrays()[0], a, a.reshape(-1)[:p.size], o, 3, 4), a))(
            np.full((3, 4), 0.5, np.float32)),
        ["output a shares memory with params"]),
}


@pytest.mark.parametrize("case", sorted(OVERLAPPING_CALLS))
def test_partly_overlapping_arrays_are_refused(layers, method, case):
    make_call, fragments = OVERLAPPING_CALLS[case]
    layer = layers[method]
    params, offsets = layer.make_params(np.float32)
    call, out = make_call(layer, params, offsets)
    _refused(call, out, *fragments)


def test_offsets_are_checked_in_the_array_the_kernel_reads(layers, method):
    """int64 offsets are used as given: an output may not hold them. int32 offsets are converted (a copy)."""
    layer = layers[method]
    params, _ = layer.make_params(np.float32)
    a = np.zeros((3, 4), np.float32)
    offsets = a.reshape(-1).view(np.int64)[:3]  # zeros: valid offsets, but in the output's memory
    _refused(lambda: layer.forward_kernel(_arrays()[0], a, params, offsets, 3, 4), a, "offset_list")


def test_loss_refuses_partly_overlapping_arrays(losses, method):
    loss = losses[method]
    params, _ = loss.make_params(np.float32)
    res, y_pred = _views(shape=(6,))
    _refused(lambda: loss.forward_kernel(y_pred, np.zeros(6, np.float32), res, params), res,
             "output res partly overlaps input y_pred")
    grad, y_true = _views(shape=(6,), shift=3)
    _refused(lambda: loss.backward_kernel(np.zeros(6, np.float32), y_true, grad, params), grad,
             "output grad partly overlaps input y_true")
    buffer = np.full(7, 0.5, np.float32)  # params = the last element of res
    _refused(lambda: loss.forward_kernel(y_pred.copy(), y_pred.copy(), buffer[:6], buffer[5:6]), buffer,
             "output res shares memory with params")


IN_PLACE_CONFIGS = [("relu", {}), ("sigmoid", {}), ("a*tanh(b*num) + num**2", {"a": 1.5, "b": 0.5}), ("gelu", {})]


def _in_place_layer(method, layout, runs):
    small = method == "GPU_CUDA"  # the CUDA simulator runs one Python thread per element
    # CPU_JIT: 64 x 600 elements, above the size where calls run on several threads
    n, b = (8, 16) if small else (64, 600)
    configs = [IN_PLACE_CONFIGS[(j // runs) % len(IN_PLACE_CONFIGS)] for j in range(n)]
    return build(configs, method, layout=layout), n, b


@pytest.mark.parametrize("layout, runs", [("node_major", 1), ("batch_major", 1), ("batch_major", 16)],
                         ids=["node_major", "batch_major-interleaved", "batch_major-runs"])
def test_exact_in_place_calls_give_the_results_of_separate_arrays(method, layout, runs):
    """Every identity the docs allow, on every backend and kernel path (CPU_JIT: direct, transposed)."""
    layer, n, b = _in_place_layer(method, layout, runs)
    _check_in_place(layer, layout, n, b)


@pytest.mark.parametrize("layout", ["node_major", "batch_major"])
def test_in_place_blocks_longer_than_the_buffer(layout):
    """CPU_JIT writes in-place outputs through a buffer: inplace.BLOCK elements of a node's block
    (node-major; the summing kernels keep the whole block), or up to ROW_BUFFER elements of whole
    rows (batch-major runs, whose sums go on from call to call). Blocks and tasks here take two
    calls or more: the bits of separate arrays, sums included."""
    from symjit_numba.backends.cpu_tasks import ROW_BUFFER
    from symjit_numba.codegen.source import ROWS
    from symjit_numba.mathlib import inplace

    n, b = (6, 2 * inplace.BLOCK + 333) if layout == "node_major" else (ROW_BUFFER // ROWS + 76, 2 * ROWS + 22)
    configs = [IN_PLACE_CONFIGS[2] if j < n // 2 else ("swish", {"beta": 0.5 + j / n}) for j in range(n)]
    _check_in_place(build(configs, "CPU_JIT", layout=layout), layout, n, b)


def _check_in_place(layer, layout, n, b):
    params, offsets = layer.make_params(np.float32)  # compiled when built: no first-call compile
    shape = (n, b) if layout == "node_major" else (b, n)
    rng = np.random.default_rng(0)
    z, err = (rng.normal(scale=2.0, size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32))
    a, delta, fused_a, d = np.empty_like(z), np.empty_like(z), np.empty_like(z), np.empty_like(z)
    layer.forward_kernel(z, a, params, offsets, n, b)
    layer.backward_kernel(z, err, delta, params, offsets, n, b)
    layer.forward_derivative_kernel(z, fused_a, d, params, offsets, n, b)  # (its f may differ from a in the last bit)

    x = z.copy()
    layer.forward_kernel(x, x, params, offsets, n, b)
    np.testing.assert_array_equal(x, a, err_msg="forward, a is z")
    x = err.copy()
    layer.backward_kernel(z, x, x, params, offsets, n, b)
    np.testing.assert_array_equal(x, delta, err_msg="backward, delta is err")
    x = z.copy()
    layer.backward_kernel(x, err, x, params, offsets, n, b)
    np.testing.assert_array_equal(x, delta, err_msg="backward, delta is z")
    x, other = z.copy(), np.empty_like(z)
    layer.forward_derivative_kernel(x, x, other, params, offsets, n, b)
    np.testing.assert_array_equal(x, fused_a, err_msg="fused, a is z")
    np.testing.assert_array_equal(other, d, err_msg="fused, a is z (d)")
    x, other = z.copy(), np.empty_like(z)
    layer.forward_derivative_kernel(x, other, x, params, offsets, n, b)
    np.testing.assert_array_equal(other, fused_a, err_msg="fused, d is z (a)")
    np.testing.assert_array_equal(x, d, err_msg="fused, d is z")
    _check_in_place_backward_with_params(layer, z, err, params, offsets, n, b)


def _check_in_place_backward_with_params(layer, z, err, params, offsets, n, b):
    """backward_with_params_kernel with delta = err and delta = z: the bits of a separate delta, and the same sums."""
    delta, grad = np.empty_like(z), np.zeros_like(params)
    layer.backward_with_params_kernel(z, err, delta, grad, params, offsets, n, b)
    for name, inputs in (("err", lambda x: (z, x)), ("z", lambda x: (x, err))):
        x, grad_in_place = (err if name == "err" else z).copy(), np.zeros_like(params)
        layer.backward_with_params_kernel(*inputs(x), x, grad_in_place, params, offsets, n, b)
        np.testing.assert_array_equal(x, delta, err_msg=f"backward with params, delta is {name}")
        np.testing.assert_array_equal(grad_in_place, grad, err_msg=f"backward with params, delta is {name} (sums)")


def test_exact_in_place_loss_calls_give_the_results_of_separate_arrays(losses, method):
    loss = losses[method]
    params, _ = loss.make_params(np.float32)
    size = 50 if method == "GPU_CUDA" else 40_000
    rng = np.random.default_rng(1)
    y_pred, y_true = rng.normal(size=size).astype(np.float32), rng.normal(size=size).astype(np.float32)
    res, grad = np.empty_like(y_pred), np.empty_like(y_pred)
    loss.forward_kernel(y_pred, y_true, res, params)
    loss.backward_kernel(y_pred, y_true, grad, params)
    for which in ("y_pred", "y_true"):
        for slot in ("res", "grad"):
            p, t = y_pred.copy(), y_true.copy()
            out = p if which == "y_pred" else t
            kernel = loss.forward_kernel if slot == "res" else loss.backward_kernel
            kernel(p, t, out, params)
            np.testing.assert_array_equal(out, res if slot == "res" else grad, err_msg=f"{slot} is {which}")
            p, t = y_pred.copy(), y_true.copy()
            out = p if which == "y_pred" else t
            both = (out, np.empty_like(out)) if slot == "res" else (np.empty_like(out), out)
            loss.forward_derivative_kernel(p, t, *both, params)
            np.testing.assert_array_equal(both[0], res, err_msg=f"fused, {slot} is {which} (res)")
            np.testing.assert_array_equal(both[1], grad, err_msg=f"fused, {slot} is {which} (grad)")


def test_cuda_arrays_in_place_and_overlap(layers):
    """Device arrays: the very same array works in place; a shifted view of one device buffer is refused."""
    from numba import cuda

    layer = layers["GPU_CUDA"]
    params, offsets = layer.make_params(np.float32)
    z = np.linspace(-2, 2, 12).reshape(3, 4).astype(np.float32)
    expected = np.empty_like(z)
    layer.forward_kernel(z, expected, params, offsets, 3, 4)
    z_device = cuda.to_device(z)
    layer.forward_kernel(z_device, z_device, cuda.to_device(params), offsets, 3, 4)
    np.testing.assert_allclose(z_device.copy_to_host(), expected, rtol=1e-6)
    buffer = cuda.to_device(np.linspace(-2, 2, 13).astype(np.float32))
    with pytest.raises(KernelArgumentError, match="partly overlaps input z"):
        layer.forward_kernel(buffer[:12].reshape(3, 4), buffer[1:].reshape(3, 4), params, offsets, 3, 4)


# -- offsets that would wrap around (issue 10, item 7) ----------------------------------------------------------

HUGE_OFFSETS = {
    "int64 max": np.array([0, 0, 2**63 - 1], dtype=np.int64),
    "int64 max - 1": np.array([0, 0, 2**63 - 2], dtype=np.int64),
    "list with int64 max": [0, 0, 2**63 - 1],
    "uint64 above int64": np.array([0, 0, 2**63], dtype=np.uint64),
    "uint64 max": np.array([0, 0, 2**64 - 1], dtype=np.uint64),
    "int32 max": np.array([0, 0, 2**31 - 1], dtype=np.int32),
    "int32 one past": np.array([0, 0, 2], dtype=np.int32),
}


@pytest.mark.parametrize("case", sorted(HUGE_OFFSETS))
def test_offsets_near_the_integer_limits_are_refused(layers, method, case):
    layer = layers[method]  # node 2 has two constants; params holds 3
    z, a = _arrays()
    params, _ = layer.make_params(np.float32)
    offsets = HUGE_OFFSETS[case]
    start = int(np.asarray(offsets)[2])
    _refused(lambda: layer.forward_kernel(z, a, params, offsets, 3, 4), a,
             f"node 2 reads params[{start}:{start + 2}]", "params has 3 elements")


def test_wrapping_offset_cannot_read_before_params(method):
    """The reported exploit: ``a*num + b`` with params = buf[1:] and offset 2**63 - 1 read buf[0] on CPU_JIT."""
    layer = build([("a*num + b", {"a": 2.0, "b": 1.0})], method)
    buffer = np.array([1e30, 2.0, 1.0], dtype=np.float32)
    z, a = np.ones((1, 4), np.float32), np.full((1, 4), SENTINEL, np.float32)
    for offset in (2**63 - 1, 2**63 - 2):
        _refused(lambda: layer.forward_kernel(z, a, buffer[1:], np.array([offset], np.int64), 1, 4), a,
                 f"reads params[{offset}:{offset + 2}]")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_valid_offsets_of_any_integer_dtype_work(layers, method, dtype):
    layer = layers[method]
    z, a = _arrays()
    params, offsets = layer.make_params(np.float32)
    expected = np.full_like(a, SENTINEL)
    layer.forward_kernel(z, expected, params, offsets, 3, 4)
    layer.forward_kernel(z, a, params, offsets.astype(dtype), 3, 4)
    np.testing.assert_array_equal(a, expected)



@st.composite
def _calls(draw):
    """An activation call of the kinds the quick check knows, whose arrays are views of one buffer at
    drawn places (so they may overlap, partly or exactly), with drawn offsets, counts, n and b."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    node_major = draw(st.booleans())
    nodes, batch = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    shape = (nodes, batch) if node_major else (batch, nodes)
    size = nodes * batch
    inputs, outputs = draw(st.sampled_from([(1, 1), (2, 1), (1, 2)]))
    counts = np.array(draw(st.lists(st.integers(0, 2), min_size=nodes, max_size=nodes)), np.int64)
    params_size = draw(st.integers(1, 6))
    buffer = np.zeros(4 * size + 2 * params_size + 8, dtype)
    separate = draw(st.booleans())

    def view(count, shaped):
        if separate:
            return np.zeros(shape if shaped else count, dtype)
        start = draw(st.integers(0, buffer.size - count))
        piece = buffer[start:start + count]
        return piece.reshape(shape) if shaped else piece

    arrays = tuple(view(size, True) for _ in range(inputs + outputs))
    params = view(params_size, False)
    grad = draw(st.sampled_from([None, "own", "view"]))
    grad = None if grad is None else (np.zeros(params_size, dtype) if grad == "own" else view(params_size, False))
    if draw(st.booleans()):  # in range (mostly)
        offsets = np.array([draw(st.integers(0, max(0, params_size - c))) for c in counts], np.int64)
    else:
        offsets = np.array(draw(st.lists(st.integers(-1, params_size + 1), min_size=nodes, max_size=nodes)), np.int64)
    n = nodes if draw(st.integers(0, 3)) else draw(st.integers(0, 4))
    b = batch if draw(st.integers(0, 3)) else draw(st.integers(0, 5))
    return node_major, counts, arrays, outputs, params, offsets, n, b, grad


@settings(max_examples=400, deadline=None)
@given(_calls())
def test_the_quick_check_accepts_only_what_the_full_checks_accept(call):
    """The compiled quick check of the usual call must never pass what the full checks refuse."""
    node_major, counts, arrays, outputs, params, offsets, n, b, grad = call
    split = len(arrays) - outputs
    if not activation_call_is_valid(node_major, counts, arrays[:split], arrays[split:], params, offsets, n, b, grad):
        return
    names = ("z", "err", "delta")[:len(arrays)] if split == 2 else ("z", "a", "d")[:len(arrays)]
    layout = "node_major" if node_major else "batch_major"
    dtype, checked = check_activation_call(layout, counts, dict(zip(names, arrays)), params, offsets, n, b,
                                           outputs=outputs)  # raises if the quick check was wrong
    if grad is not None:
        owners = counts > 0
        needed = int((offsets[owners] + counts[owners]).max()) if owners.any() else 0
        check_grad_params(grad, dtype, needed, {**dict(zip(names, arrays)), "params": params, "offset_list": checked})


def test_the_quick_check_passes_the_usual_call():
    """...and it does pass the usual call (else it would only cost time)."""
    z = np.ones((3, 4), np.float32)
    params, offsets = np.ones(3, np.float32), np.array([0, 0, 1], np.int64)
    counts = np.array([0, 1, 2], np.int64)
    for inputs, outputs in [((z,), (np.empty_like(z),)), ((z, z), (np.empty_like(z),)), ((z,), (z,)),
                            ((z,), (np.empty_like(z), np.empty_like(z)))]:
        assert activation_call_is_valid(True, counts, inputs, outputs, params, offsets, 3, 4)
        assert activation_call_is_valid(True, counts, inputs, outputs, params, offsets, 3, 4, np.zeros(3, np.float32))
