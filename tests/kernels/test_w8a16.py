"""W8A16 fused kernels vs the reference (interpreter on CPU, compiled on CUDA)."""

from __future__ import annotations

import pytest
import torch

from modelpress.kernels.packing import quantize_weight_groupwise
from modelpress.kernels.w8a16 import w8a16_matmul_triton, w8a16_reference

DTYPES = [torch.float16, torch.bfloat16]
# None = per-channel. K=96 and 160 leave a partial 64-wide K tile; N=40/72 partial N tiles.
K_FOR_GROUP = {None: 96, 32: 160, 64: 192, 128: 256}


def make_case(m, n, k, group_size, symmetric, dtype, device, bias=True):
    # Shifted rows: asymmetric ranges get zero-points far from the symmetric ones, so a kernel
    # that mishandles zero-points cannot pass by luck.
    w = torch.randn(n, k) + 2 * torch.rand(n, 1)
    qweight, scales, zeros = quantize_weight_groupwise(w, 8, group_size, symmetric, dtype)
    x = torch.randn(m, k, dtype=dtype)
    b = torch.randn(n, dtype=dtype) if bias else None
    to = lambda t: None if t is None else t.to(device)
    return to(x), to(qweight), to(scales), to(zeros), to(b)


@pytest.mark.parametrize("m", [1, 3, 17])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group_size", [None, 32, 64, 128])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_reference(m, dtype, group_size, symmetric, device, assert_matches_reference):
    x, q, s, z, b = make_case(m, 40, K_FOR_GROUP[group_size], group_size, symmetric, dtype, device)
    ref = w8a16_reference(x, q, s, z, group_size, b)
    assert_matches_reference(w8a16_matmul_triton(x, q, s, z, group_size, b), ref)


@pytest.mark.parametrize("split_k", [1, 2, 3])
@pytest.mark.parametrize("group_size", [None, 32])
def test_gemv_split_k_paths(split_k, group_size, device, assert_matches_reference):
    x, q, s, z, b = make_case(2, 72, 160, group_size, False, torch.bfloat16, device)
    out = w8a16_matmul_triton(x, q, s, z, group_size, b, split_k=split_k)
    assert_matches_reference(out, w8a16_reference(x, q, s, z, group_size, b))


@pytest.mark.parametrize("group_size", [None, 32])
def test_gemm_several_tiles_without_bias(group_size, device, assert_matches_reference):
    x, q, s, z, _ = make_case(33, 72, 160, group_size, False, torch.float16, device, bias=False)
    assert_matches_reference(w8a16_matmul_triton(x, q, s, z, group_size),
                             w8a16_reference(x, q, s, z, group_size))


def test_explicit_per_channel_group_size_equals_k(device, assert_matches_reference):
    x, q, s, z, b = make_case(5, 40, 96, None, True, torch.float16, device)
    assert_matches_reference(w8a16_matmul_triton(x, q, s, z, 96, b),
                             w8a16_reference(x, q, s, z, None, b))


# --- the tests can fail (see test_w4a16.py for the approach) -----------------------------------

@pytest.mark.parametrize(
    "mutate",
    [
        lambda q, s, z: (q, s, -z),  # zero-point sign flipped
        lambda q, s, z: (q, s, torch.zeros_like(z)),  # zero-point ignored
        lambda q, s, z: (q, torch.roll(s, 1, dims=1).contiguous(), z),  # neighbouring group
        lambda q, s, z: (q.flip(1).contiguous(), s, z),  # K order reversed
    ],
    ids=["zero-flipped", "zero-ignored", "group-shifted", "k-reversed"],
)
@pytest.mark.parametrize("m", [1, 17])
def test_broken_kernels_are_detected(mutate, m, device, assert_matches_reference):
    x, q, s, z, b = make_case(m, 40, 128, 32, False, torch.float16, device)
    ref = w8a16_reference(x, q, s, z, 32, b)
    assert_matches_reference(w8a16_matmul_triton(x, q, s, z, 32, b), ref)
    with pytest.raises(AssertionError):
        assert_matches_reference(w8a16_matmul_triton(x, *mutate(q, s, z), 32, b), ref)


# --- bad input ---------------------------------------------------------------------------------

def _valid(device):
    return make_case(3, 40, 128, 32, False, torch.float16, device)


def test_rejects_mismatched_k(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="K=96"):
        w8a16_matmul_triton(x[:, :96], q, s, z, 32, b)


def test_rejects_group_size_not_dividing_k(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="group_size 48 does not divide K=128"):
        w8a16_matmul_triton(x, q, s, z, 48, b)


def test_rejects_non_contiguous_weight(device):
    x, q, s, z, b = _valid(device)
    strided = torch.empty(q.shape[1], q.shape[0], dtype=q.dtype, device=device).t()
    strided.copy_(q)
    with pytest.raises(ValueError, match="contiguous"):
        w8a16_matmul_triton(x, strided, s, z, 32, b)


@pytest.mark.parametrize(
    ("which", "dtype", "message"),
    [("x", torch.float32, "activations must be"), ("q", torch.uint8, "qweight must be"),
     ("z", torch.uint8, "zeros must be"), ("s", torch.int8, "scales must be")],
)
def test_rejects_wrong_dtypes(which, dtype, message, device):
    x, q, s, z, b = _valid(device)
    args = {"x": x, "q": q, "s": s, "z": z}
    args[which] = args[which].to(dtype)
    with pytest.raises(TypeError, match=message):
        w8a16_matmul_triton(args["x"], args["q"], args["s"], args["z"], 32, b)


def test_rejects_zeros_of_wrong_shape_and_bad_split(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="zeros must be"):
        w8a16_matmul_triton(x, q, s, z[:, :1].contiguous(), 32, b)
    with pytest.raises(ValueError, match="split_k"):
        w8a16_matmul_triton(x, q, s, z, 32, b, split_k=0)


def test_reference_accepts_fp32_activations():
    x, q, s, z, b = make_case(2, 8, 64, 32, True, torch.float32, "cpu")
    out = w8a16_reference(x, q, s, z, 32, b)
    assert out.dtype == torch.float32 and out.shape == (2, 8)
