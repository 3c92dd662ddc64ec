"""symjit_numba.torch: HeteroActivation and HeteroLoss as torch modules and custom operators."""

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from symjit_numba.torch import HeteroActivation, HeteroLoss  # noqa: E402

CONFIGS = [("relu", {}), ("swish", {"beta": 1.5}), ("a*tanh(b*num)", {"a": 1.2, "b": 0.7}),
           ("leaky_relu", {"alpha": 0.1}), ("gelu", {}), ("softplus", {})]


def _torch_reference(x, constants):
    """CONFIGS in pure torch, constants in the module's layout (1.beta, 2.a, 2.b, 3.alpha)."""
    beta, a, b, alpha = constants[0], constants[1], constants[2], constants[3]
    columns = [torch.relu(x[:, 0]), x[:, 1] * torch.sigmoid(beta * x[:, 1]), a * torch.tanh(b * x[:, 2]),
               torch.where(x[:, 3] > 0, x[:, 3], alpha * x[:, 3]),
               torch.nn.functional.gelu(x[:, 4]), torch.nn.functional.softplus(x[:, 5])]
    return torch.stack(columns, dim=1)


@pytest.fixture(scope="module")
def act64():
    return HeteroActivation(CONFIGS, dtype=torch.float64)


def _input(batch=7, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, len(CONFIGS), generator=g, dtype=dtype) * 2


def test_parameters_are_named_and_discoverable(act64):
    assert [name for name, _ in act64.named_parameters()] == ["constants"]
    assert act64.constant_labels == ("1.beta", "2.a", "2.b", "3.alpha")
    assert act64.constants.tolist() == [1.5, 1.2, 0.7, 0.1]
    assert act64.constant(2, "b").item() == 0.7
    with pytest.raises(KeyError, match="beta"):
        act64.constant(0, "beta")
    frozen = HeteroActivation(CONFIGS, trainable=False)
    assert list(frozen.parameters()) == [] and "constants" in dict(frozen.named_buffers())


@pytest.mark.parametrize("keep", ["input", "derivative"])
def test_matches_pure_torch_forward_and_gradients(act64, keep):
    module = HeteroActivation(CONFIGS, dtype=torch.float64, keep=keep)
    x = _input().requires_grad_()
    out = module(x)
    expected_constants = module.constants.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    expected = _torch_reference(x2, expected_constants)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    err = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, module.constants), err)
    expected_grads = torch.autograd.grad(expected, (x2, expected_constants), err)
    torch.testing.assert_close(grads[0], expected_grads[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[1], expected_grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("keep", ["input", "derivative"])
def test_gradcheck_input_and_constants(keep):
    module = HeteroActivation(CONFIGS, dtype=torch.float64, keep=keep)
    x = (_input(5) + 0.05).requires_grad_()  # away from relu's and leaky_relu's kinks
    constants = module.constants.detach().clone().requires_grad_()
    call = lambda x, c: torch.func.functional_call(module, {"constants": c}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(call, (x, constants))
    assert torch.autograd.gradcheck(lambda c: call(x.detach(), c), (constants,))  # constants alone
    assert torch.autograd.gradcheck(lambda x: call(x, constants.detach()), (x,))  # input alone


@pytest.mark.parametrize("keep", ["input", "derivative"])
def test_eager_calls_and_the_custom_op_give_the_same_bits(keep):
    """Eager calls run the implementation in an autograd.Function (no custom-op dispatch); the custom op,
    which torch.compile traces, must give the same forward and gradients, bit for bit."""
    module = HeteroActivation(CONFIGS, dtype=torch.float64, keep=keep)
    x = _input(9).requires_grad_()
    err = torch.randn(9, len(CONFIGS), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = module(x)
    assert type(out.grad_fn).__name__.endswith("_functionBackward")  # the eager path was taken
    eager = (out, *torch.autograd.grad(out, (x, module.constants), err))
    op = torch.ops.symjit_numba.activation_derivative if keep == "derivative" else torch.ops.symjit_numba.activation
    out = op(x, module.constants, module._layer_id)
    out = out[0] if keep == "derivative" else out
    assert type(out.grad_fn).__name__.startswith("GeneratedBackwardFor_symjit_numba")
    traced = (out, *torch.autograd.grad(out, (x, module.constants), err))
    for got, expected in zip(traced, eager):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_second_derivatives_are_refused(act64):
    """The backward pass runs kernels outside autograd: a second derivative raises, it is never a silent zero."""
    x = _input().requires_grad_()
    (grad,) = torch.autograd.grad(act64(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice|does not require grad"):
        grad.sum().backward()


def test_torch_func_grad_and_fake_tensors(act64):
    """torch.func.grad differentiates the module (the pure-torch reference's gradient); fake tensors (shape
    propagation, export) go through the custom op's fake implementation."""
    x = _input(4)
    grad = torch.func.grad(lambda x: act64(x).sum())(x)
    x2 = x.clone().requires_grad_()
    expected = torch.autograd.grad(_torch_reference(x2, act64.constants.detach()).sum(), x2)[0]
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        out = act64(mode.from_tensor(x))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_loss_gradcheck_and_reductions():
    y_true = _input(6, seed=1)
    y_pred = _input(6, seed=2).requires_grad_()
    for reduction in ("mean", "sum", "none"):
        loss = HeteroLoss("huber", {"delta": 0.5}, reduction, dtype=torch.float64, trainable=reduction != "none")
        diff = y_pred - y_true
        elementwise = torch.where(diff.abs() <= 0.5, 0.5 * diff**2, 0.5 * (diff.abs() - 0.25))
        expected = {"mean": elementwise.mean(), "sum": elementwise.sum(), "none": elementwise}[reduction]
        torch.testing.assert_close(loss(y_pred, y_true), expected, rtol=1e-12, atol=1e-12)
        if reduction == "none":
            assert torch.autograd.gradcheck(lambda p: loss(p, y_true), (y_pred,))
        else:
            delta = loss.constants.detach().clone().requires_grad_()
            call = lambda p, c: torch.func.functional_call(loss, {"constants": c}, (p, y_true))  # noqa: E731
            assert torch.autograd.gradcheck(call, (y_pred, delta))
    with pytest.raises(ValueError, match="y_true"):
        HeteroLoss("mse")(y_pred, y_pred)


def test_cpu_tensors_are_not_copied():
    module = HeteroActivation(CONFIGS)
    x = torch.randn(4, len(CONFIGS))
    seen = []
    original = module.compiler.forward_kernel

    def spy(z, a, *rest):
        seen.append(z.ctypes.data)
        original(z, a, *rest)

    definition_compiler = module.compiler
    definition_compiler.forward_kernel = spy
    try:
        with torch.no_grad():
            module(x)
            assert seen == [x.data_ptr()]  # the very memory of x: no .contiguous(), no conversion
            module(x.t().contiguous().t())  # a non-contiguous input is copied (it must be)
            assert seen[1] != x.data_ptr()
    finally:
        definition_compiler.forward_kernel = original


def test_dtype_mismatch_is_an_error_not_a_conversion():
    with pytest.raises(TypeError, match="float32"):
        HeteroActivation(CONFIGS)(torch.randn(3, len(CONFIGS), dtype=torch.float64))


def test_operators_refuse_bad_tensors_and_copy_strided_constants(act64):
    """Bad tensors, through the module (torch.func.functional_call) or the operators directly, are
    refused before a kernel touches memory; non-contiguous constants are copied, not misread."""
    from torch.func import functional_call

    from symjit_numba import KernelArgumentError

    x = _input()
    ops = torch.ops.symjit_numba
    layer, constants = act64._layer_id, act64.constants.detach()
    with pytest.raises(KernelArgumentError, match="params"):
        functional_call(act64, {"constants": act64.constants[:3]}, (x,))
    with pytest.raises(KernelArgumentError, match="params must be 1-D"):
        functional_call(act64, {"constants": constants.reshape(2, 2)}, (x,))
    with pytest.raises(KernelArgumentError, match="float32 or float64"):
        ops.activation(x.half(), constants.half(), layer)
    with pytest.raises(KernelArgumentError, match="6 nodes"):
        ops.activation(x[:, :5].contiguous(), constants, layer)
    with pytest.raises(KernelArgumentError, match="shape"):
        ops.activation_backward(x, x[:3], constants, layer)
    with pytest.raises(TypeError, match="float64"):
        ops.activation(x.float(), constants, layer)
    strided = torch.stack([constants, torch.zeros(4, dtype=torch.float64)], dim=1)[:, 0]
    assert not strided.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(functional_call(act64, {"constants": strided}, (x,)), _torch_reference(x, strided))


def test_extra_leading_dimensions_and_pickle():
    module = HeteroActivation(CONFIGS, dtype=torch.float64)
    x = torch.randn(2, 3, len(CONFIGS), dtype=torch.float64)
    out = module(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.reshape(-1, len(CONFIGS)), module(x.reshape(-1, len(CONFIGS))))
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        torch.testing.assert_close(clone(x), out)


def _mlp(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, len(CONFIGS), dtype=dtype), HeteroActivation(CONFIGS, dtype=dtype),
                               torch.nn.Linear(len(CONFIGS), 2, dtype=dtype))


def test_compile_fullgraph_aot_eager():
    """No graph breaks (fullgraph) and working fake/autograd registrations, without inductor's C++ build."""
    model = _mlp()
    x = torch.randn(16, 3)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, model(x), rtol=0, atol=0)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()
    for got, expected in zip(grads, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_export_captures_the_custom_op():
    """torch.export traces the custom op (not the eager autograd.Function), and the exported program
    computes what the module does."""
    model = _mlp()
    x = torch.randn(8, 3)
    exported = torch.export.export(model, (x,))
    targets = [str(node.target) for node in exported.graph.nodes if node.op == "call_function"]
    assert "symjit_numba.activation.default" in targets
    torch.testing.assert_close(exported.module()(x), model(x), rtol=0, atol=0)


def test_jit_trace_records_the_custom_op():
    """torch.jit.trace records the custom op (a TorchScript graph cannot hold an autograd.Function)."""
    model = _mlp()
    with pytest.warns(torch.jit.TracerWarning):  # the module's shape check reads a Python bool
        traced = torch.jit.trace(model, (torch.randn(8, 3),))
    assert "symjit_numba::activation" in [node.kind() for node in traced.inlined_graph.nodes()]
    x = torch.randn(5, 3)
    torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.slow
def test_compile_fullgraph_inductor():
    """Linear -> HeteroActivation -> Linear under torch.compile (inductor, needs a C++ compiler) equals eager."""
    model = _mlp()
    x = torch.randn(16, 3)
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    torch.testing.assert_close(out, model(x), rtol=1e-6, atol=1e-6)
    out.square().sum().backward()
    assert model[1].constants.grad is not None and torch.isfinite(model[1].constants.grad).all()


def test_float64_training_matches_pure_torch():
    """Adam on a Linear -> HeteroActivation -> Linear model, constants trained: the loss trajectory of the
    same model written in pure torch (rtol 1e-8)."""
    torch.manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64)
    y = torch.sin(x @ torch.randn(3, 2, dtype=torch.float64))
    model = _mlp(torch.float64, seed=1)
    loss_fn = HeteroLoss("mse", reduction="mean", dtype=torch.float64)
    reference = copy.deepcopy(model)
    ref_constants = torch.nn.Parameter(reference[1].constants.detach().clone())

    def reference_forward(x):
        return reference[2](_torch_reference(reference[0](x), ref_constants))

    ref_parameters = [reference[0].weight, reference[0].bias, ref_constants, reference[2].weight, reference[2].bias]
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    ref_optimiser = torch.optim.Adam(ref_parameters, lr=0.02)
    assert [tuple(p.shape) for p in model.parameters()] == [tuple(p.shape) for p in ref_parameters]
    losses, ref_losses = [], []
    for _ in range(40):
        optimiser.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        ref_optimiser.zero_grad()
        ref_loss = torch.mean((reference_forward(x) - y) ** 2)
        ref_loss.backward()
        ref_optimiser.step()
        ref_losses.append(ref_loss.item())
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-8)
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(model[1].constants, torch.tensor([1.5, 1.2, 0.7, 0.1], dtype=torch.float64))
    torch.testing.assert_close(model[1].constants.detach(), ref_constants.detach(), rtol=1e-7, atol=1e-9)


def test_gpu_cuda_backend_under_the_simulator():
    """The GPU_CUDA kernels (batch-major) behind the module, on CPU tensors (copied to the 'GPU'):
    what numba's CUDA simulator allows testing without a GPU."""
    from symjit_numba.backends import gpu_cuda

    if not gpu_cuda.is_available():
        pytest.skip("numba.cuda unavailable (neither a GPU nor the simulator)")
    module = HeteroActivation(CONFIGS, dtype=torch.float64, calculation_method="GPU_CUDA")
    assert module.compiler.calculation_method == "GPU_CUDA"
    reference = HeteroActivation(CONFIGS, dtype=torch.float64)
    x = _input(5).requires_grad_()
    out = module(x)
    torch.testing.assert_close(out, reference(x), rtol=1e-12, atol=1e-12)
    err = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, module.constants), err)
    expected = torch.autograd.grad(reference(x), (x, reference.constants), err)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_gpu_launch_stream_reaches_the_launch():
    """gpu_cuda.launch_stream: the stream a torch CUDA tensor's op launches on (the simulator ignores it)."""
    from symjit_numba import SymbolicJITCompiler
    from symjit_numba.backends import gpu_cuda

    if not gpu_cuda.is_available():
        pytest.skip("numba.cuda unavailable")
    from numba import cuda

    compiler = SymbolicJITCompiler(CONFIGS, "GPU_CUDA", layout="batch_major")
    params, offsets = compiler.make_params(np.float64)
    z = np.linspace(-2, 2, 4 * len(CONFIGS)).reshape(4, -1)
    a, expected = np.empty_like(z), np.empty_like(z)
    compiler.forward_kernel(z, expected, params, offsets, len(CONFIGS), 4)
    stream = cuda.stream()
    with gpu_cuda.launch_stream(stream):
        assert gpu_cuda._STREAM.get() is stream
        device_a = cuda.to_device(a)
        compiler.forward_kernel(cuda.to_device(z), device_a, params, offsets, len(CONFIGS), 4)
    assert gpu_cuda._STREAM.get() == 0
    np.testing.assert_array_equal(device_a.copy_to_host(), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for torch")
def test_cuda_tensors_on_torch_stream():  # pragma: no cover - no GPU in CI
    module = HeteroActivation(CONFIGS, dtype=torch.float64, device="cuda")
    x = _input(64).cuda().requires_grad_()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = module(x)
        grads = torch.autograd.grad(out.sum(), (x, module.constants))
    stream.synchronize()
    reference = HeteroActivation(CONFIGS, dtype=torch.float64)
    xc = x.detach().cpu().requires_grad_()
    torch.testing.assert_close(out.cpu(), reference(xc), rtol=1e-10, atol=1e-12)
    expected = torch.autograd.grad(reference(xc).sum(), (xc, reference.constants))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g.cpu(), e, rtol=1e-8, atol=1e-10)


def test_module_docstring_example():
    import doctest

    import symjit_numba.torch

    result = doctest.testmod(symjit_numba.torch, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_docs_examples_run():
    """The python examples of docs/torch.md run as written (their asserts included)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "torch.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/torch.md, python example {k + 1}", "exec"), {"__name__": "docs_example"})
