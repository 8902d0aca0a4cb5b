"""W8A8 (SmoothQuant path): per-token quantizer and int8 GEMM vs the references."""

from __future__ import annotations

import pytest
import torch

from modelpress.kernels.packing import quantize_weight_groupwise
from modelpress.kernels.w8a8 import (
    quantize_per_token_reference,
    quantize_per_token_triton,
    w8a8_matmul_triton,
    w8a8_reference,
)

DTYPES = [torch.float16, torch.bfloat16]


def make_case(m, n, k, symmetric, dtype, device, bias=True):
    w = torch.randn(n, k) + 2 * torch.rand(n, 1)  # shifted rows: zero-points far from 0
    qweight, scales, zeros = quantize_weight_groupwise(w, 8, None, symmetric)
    x = (torch.randn(m, k) * 4).to(dtype)
    x[0, 0] = 0.5  # a tie-prone value next to an outlier is fine: the rule is fixed
    b = torch.randn(n, dtype=dtype) if bias else None
    to = lambda t: None if t is None else t.to(device)
    return to(x), to(qweight), to(scales), to(zeros), to(b)


@pytest.mark.parametrize("m", [1, 3, 17])
@pytest.mark.parametrize("dtype", DTYPES + [torch.float32])
@pytest.mark.parametrize("k", [64, 96, 192])
def test_per_token_quantizer_matches_reference(m, dtype, k, device):
    x = (torch.randn(m, k) * 3).to(dtype).to(device)
    x[-1] = 0  # an all-zero row gets scale 1, codes 0
    x_q, x_scale = quantize_per_token_triton(x)
    ref_q, ref_scale = quantize_per_token_reference(x)
    assert torch.equal(x_scale, ref_scale)
    assert torch.equal(x_q, ref_q)


@pytest.mark.parametrize("m", [1, 3, 17])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("n", "k"), [(40, 96), (72, 192)])
def test_gemm_matches_reference(m, dtype, symmetric, n, k, device, assert_matches_reference):
    x, q, s, z, b = make_case(m, n, k, symmetric, dtype, device)
    x_q, x_scale = quantize_per_token_reference(x)
    ref = w8a8_reference(x_q, x_scale, q, s, z, b, dtype)
    assert_matches_reference(w8a8_matmul_triton(x_q, x_scale, q, s, z, b, dtype), ref)


def test_gemm_several_tiles_fp32_out_no_bias(device, assert_matches_reference):
    x, q, s, z, _ = make_case(33, 72, 160, True, torch.float16, device, bias=False)
    x_q, x_scale = quantize_per_token_reference(x)
    ref = w8a8_reference(x_q, x_scale, q, s, z, None, torch.float32)
    assert_matches_reference(w8a8_matmul_triton(x_q, x_scale, q, s, z, None, torch.float32), ref)


def test_reference_is_close_to_float_matmul():
    x, *_, b = make_case(4, 16, 128, True, torch.float32, "cpu")
    w = torch.randn(16, 128)
    q, s, _ = quantize_weight_groupwise(w, 8, None, True)
    x_q, x_scale = quantize_per_token_reference(x)
    out = w8a8_reference(x_q, x_scale, q, s, None, b, torch.float32)
    exact = x @ w.T + b
    assert (out - exact).abs().max() < 0.02 * exact.abs().max()


# --- the tests can fail ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "mutate",
    [
        lambda xs, ws, z: (xs, ws, -z),  # weight zero-point flipped
        lambda xs, ws, z: (xs.flip(0).contiguous(), ws, z),  # token scales of the wrong rows
        lambda xs, ws, z: (xs, ws.flip(0).contiguous(), z),  # channel scales of the wrong cols
    ],
    ids=["zero-flipped", "token-scales-swapped", "channel-scales-swapped"],
)
def test_broken_kernels_are_detected(mutate, device, assert_matches_reference):
    x, q, s, z, b = make_case(17, 40, 96, False, torch.float16, device)
    x_q, x_scale = quantize_per_token_reference(x)
    ref = w8a8_reference(x_q, x_scale, q, s, z, b, torch.float16)
    xs, ws, zz = mutate(x_scale, s, z)
    with pytest.raises(AssertionError):
        assert_matches_reference(w8a8_matmul_triton(x_q, xs, q, ws, zz, b, torch.float16), ref)


# --- bad input ---------------------------------------------------------------------------------

def _valid(device):
    x, q, s, z, b = make_case(3, 40, 96, False, torch.float16, device)
    return (*quantize_per_token_reference(x), q, s, z, b)


def test_rejects_mismatched_shapes(device):
    x_q, xs, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="K=64"):
        w8a8_matmul_triton(x_q[:, :64].contiguous(), xs, q, s, z, b)
    with pytest.raises(ValueError, match="x_scale"):
        w8a8_matmul_triton(x_q, xs[:2], q, s, z, b)
    with pytest.raises(ValueError, match="scales must be"):
        w8a8_matmul_triton(x_q, xs, q, s[:-1], z, b)


def test_rejects_wrong_dtypes(device):
    x_q, xs, q, s, z, b = _valid(device)
    with pytest.raises(TypeError, match="activations must be one of int8"):
        w8a8_matmul_triton(x_q.float(), xs, q, s, z, b)
    with pytest.raises(TypeError, match="qweight must be"):
        w8a8_matmul_triton(x_q, xs, q.to(torch.uint8), s, z, b)
    with pytest.raises(ValueError, match="x_scale must be float32"):
        w8a8_matmul_triton(x_q, xs.half(), q, s, z, b)
    with pytest.raises(TypeError, match="out_dtype"):
        w8a8_matmul_triton(x_q, xs, q, s, z, b, torch.int32)


def test_rejects_non_contiguous_weight(device):
    x_q, xs, q, s, z, b = _valid(device)
    strided = torch.empty(q.shape[1], q.shape[0], dtype=q.dtype, device=device).t()
    strided.copy_(q)
    with pytest.raises(ValueError, match="contiguous"):
        w8a8_matmul_triton(x_q, xs, strided, s, z, b)
