"""Backend dispatch: decided once, env override, CPU fast paths agree with the references."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from modelpress.kernels import dispatch
from modelpress.kernels.packing import quantize_weight_groupwise
from modelpress.kernels.w4a16 import w4a16_reference
from modelpress.kernels.w8a8 import quantize_per_token_reference, w8a8_reference
from modelpress.kernels.w8a16 import w8a16_reference


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    dispatch.reset_backend_choice()
    yield
    dispatch.reset_backend_choice()


def test_default_backend_per_device():
    assert dispatch.backend_for("cpu") == "reference"
    if torch.cuda.is_available():
        assert dispatch.backend_for("cuda") == "triton"


def test_choice_is_made_once(monkeypatch, device):
    first = dispatch.backend_for(device)  # reference on CPU, triton on CUDA
    other = "triton" if first == "reference" else "reference"  # CPU: the interpreter is on
    monkeypatch.setenv(dispatch.ENV_VAR, other)
    assert dispatch.backend_for(device) == first  # cached
    dispatch.reset_backend_choice()
    assert dispatch.backend_for(device) == other


def test_rejects_unknown_override(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "cuda-graphs")
    with pytest.raises(ValueError, match="expected one of"):
        dispatch.backend_for("cpu")


def test_triton_override_without_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        dispatch.backend_for("cpu")


def _w4(device, dtype=torch.float16, symmetric=False):
    q = quantize_weight_groupwise(torch.randn(40, 128), 4, 64, symmetric, dtype)
    return [t if t is None else t.to(device) for t in q]


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_w4a16_linear_takes_any_leading_shape(backend, monkeypatch, device,
                                              assert_matches_reference):
    monkeypatch.setenv(dispatch.ENV_VAR, backend)
    q, s, z = _w4(device)
    x = torch.randn(2, 3, 128, dtype=torch.float16, device=device)
    bias = torch.randn(40, dtype=torch.float16, device=device)
    out = dispatch.w4a16_linear(x, q, s, z, bias, group_size=64)
    assert out.shape == (2, 3, 40)
    ref = w4a16_reference(x.reshape(6, 128), q, s, z, 64, bias).reshape(2, 3, 40)
    assert_matches_reference(out, ref)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("m", [1, 17])
def test_w8a16_linear(backend, m, monkeypatch, device, assert_matches_reference):
    monkeypatch.setenv(dispatch.ENV_VAR, backend)
    quantized = quantize_weight_groupwise(torch.randn(40, 96), 8, None, True, torch.bfloat16)
    q, s, z = (t if t is None else t.to(device) for t in quantized)
    x = torch.randn(m, 96, dtype=torch.bfloat16, device=device)
    out = dispatch.w8a16_linear(x, q, s, z)
    assert_matches_reference(out, w8a16_reference(x, q, s, z))


def _count_calls(monkeypatch, name):
    calls = []
    real = getattr(torch, name)
    monkeypatch.setattr(torch, name, lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.skipif(not hasattr(torch, "_weight_int8pack_mm"), reason="no int8pack CPU op")
def test_cpu_int8pack_fast_path(monkeypatch, assert_matches_reference):
    q, s, _ = quantize_weight_groupwise(torch.randn(40, 96), 8, None, True, torch.bfloat16)
    x = torch.randn(3, 96, dtype=torch.bfloat16)
    bias = torch.randn(40, dtype=torch.bfloat16)
    calls = _count_calls(monkeypatch, "_weight_int8pack_mm")
    out = dispatch.w8a16_linear(x, q, s, None, bias)
    assert calls == [1]
    assert_matches_reference(out, w8a16_reference(x, q, s, None, None, bias))
    dispatch.w8a16_linear(x.half(), q, s.half())  # fp16: the reference is faster here
    dispatch.w8a16_linear(torch.randn(17, 96, dtype=torch.bfloat16), q, s)  # M > 16: likewise
    assert calls == [1]


@pytest.mark.skipif(not hasattr(torch, "_weight_int4pack_mm_for_cpu"), reason="no int4pack op")
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cpu_int4pack_fast_path(group_size, symmetric, monkeypatch, assert_matches_reference):
    w = torch.randn(48, 256) + torch.rand(48, 1)
    q, s, z = quantize_weight_groupwise(w, 4, group_size, symmetric, torch.bfloat16)
    bias = torch.randn(48, dtype=torch.bfloat16)
    calls = _count_calls(monkeypatch, "_convert_weight_to_int4pack_for_cpu")
    for m in (1, 5):  # the second call reuses the converted weight
        x = torch.randn(m, 256, dtype=torch.bfloat16)
        out = dispatch.w4a16_linear(x, q, s, z, bias, group_size)
        assert_matches_reference(out, w4a16_reference(x, q, s, z, group_size, bias))
    assert calls == [1]
    q.copy_(q.flip(0))  # in-place update of the weight: converted again, never stale
    out = dispatch.w4a16_linear(x, q, s, z, bias, group_size)
    assert calls == [1, 1]
    assert_matches_reference(out, w4a16_reference(x, q, s, z, group_size, bias))


@pytest.mark.skipif(not hasattr(torch, "_weight_int4pack_mm_for_cpu"), reason="no int4pack op")
def test_cpu_int4pack_under_inference_mode(assert_matches_reference):
    with torch.inference_mode():  # inference tensors have no version counter
        q, s, z = quantize_weight_groupwise(torch.randn(32, 128), 4, 64, False, torch.bfloat16)
        x = torch.randn(2, 128, dtype=torch.bfloat16)
        for _ in range(2):
            out = dispatch.w4a16_linear(x, q, s, z, group_size=64)
            assert_matches_reference(out, w4a16_reference(x, q, s, z, 64))


def test_cpu_int4pack_not_used_where_it_cannot_apply(monkeypatch, assert_matches_reference):
    q, s, z = quantize_weight_groupwise(torch.randn(40, 96), 4, 32, False, torch.float16)
    calls = _count_calls(monkeypatch, "_weight_int4pack_mm_for_cpu")
    x = torch.randn(2, 96, dtype=torch.float16)  # fp16 (slower there) and N=40 (not 16k)
    assert_matches_reference(dispatch.w4a16_linear(x, q, s, z, group_size=32),
                             w4a16_reference(x, q, s, z, 32))
    assert calls == []


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_w8a8_linear(backend, symmetric, monkeypatch, device, assert_matches_reference):
    monkeypatch.setenv(dispatch.ENV_VAR, backend)
    q, s, z = (t if t is None else t.to(device)
               for t in quantize_weight_groupwise(torch.randn(40, 96), 8, None, symmetric))
    x = torch.randn(5, 96, dtype=torch.float16, device=device)
    bias = torch.randn(40, dtype=torch.float16, device=device)
    out = dispatch.w8a8_linear(x, q, s, z, bias)
    x_q, x_scale = quantize_per_token_reference(x)
    assert_matches_reference(out, w8a8_reference(x_q, x_scale, q, s, z, bias, torch.float16))


def test_reference_backend_gives_clear_errors():
    q, s, z = _w4("cpu")
    with pytest.raises(ValueError, match="does not divide"):
        dispatch.w4a16_linear(torch.randn(2, 128), q, s, z, group_size=48)
    q8, s8, _ = quantize_weight_groupwise(torch.randn(40, 96), 8, None, True)
    with pytest.raises(ValueError, match="K=64"):
        dispatch.w8a8_linear(torch.randn(2, 64), q8, s8)
    with pytest.raises(ValueError, match="K=64"):
        dispatch.w8a16_linear(torch.randn(2, 64, dtype=torch.bfloat16), q8, s8.bfloat16())


def test_triton_backend_refuses_fp32_activations(monkeypatch, device):
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    q, s, z = _w4(device)
    with pytest.raises(TypeError, match="activations must be"):
        dispatch.w4a16_linear(torch.randn(2, 128, device=device), q, s, z, group_size=64)


def test_package_import_is_lazy():
    # Only what modelpress.kernels adds on top of the core package counts here.
    code = (
        "import sys, modelpress; before = set(sys.modules); import modelpress.kernels as k; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "assert not new & {'torch', 'triton'}, new; "
        "assert callable(k.w4a16_linear) and callable(k.pack_int4)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
