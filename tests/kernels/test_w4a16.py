"""W4A16 fused kernels vs the reference (interpreter on CPU, compiled on CUDA)."""

from __future__ import annotations

import pytest
import torch

from modelpress.kernels.packing import pack_int4, quantize_weight_groupwise, unpack_int4
from modelpress.kernels.w4a16 import w4a16_matmul_triton, w4a16_reference

DTYPES = [torch.float16, torch.bfloat16]
# K per group size: K=96 and 160 leave a partial 64-wide K tile; N=40/72 partial 32-wide N tiles.
K_FOR_GROUP = {32: 96, 64: 192, 128: 256}


def make_case(m, n, k, group_size, symmetric, dtype, device, bias=True):
    # Shifted rows: asymmetric ranges get zero-points far from the symmetric ones, so a kernel
    # that mishandles zero-points cannot pass by luck.
    w = torch.randn(n, k) + 2 * torch.rand(n, 1)
    qweight, scales, zeros = quantize_weight_groupwise(w, 4, group_size, symmetric, dtype)
    x = torch.randn(m, k, dtype=dtype)
    b = torch.randn(n, dtype=dtype) if bias else None
    to = lambda t: None if t is None else t.to(device)
    return to(x), to(qweight), to(scales), to(zeros), to(b)


@pytest.mark.parametrize("m", [1, 3, 17])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_reference(m, dtype, group_size, symmetric, device, assert_matches_reference):
    x, q, s, z, b = make_case(m, 40, K_FOR_GROUP[group_size], group_size, symmetric, dtype, device)
    ref = w4a16_reference(x, q, s, z, group_size, b)
    assert_matches_reference(w4a16_matmul_triton(x, q, s, z, group_size, b), ref)


@pytest.mark.parametrize("split_k", [1, 2, 3])
@pytest.mark.parametrize("m", [1, 4])
def test_gemv_split_k_paths(split_k, m, device, assert_matches_reference):
    x, q, s, z, b = make_case(m, 72, 160, 32, False, torch.float16, device)
    out = w4a16_matmul_triton(x, q, s, z, 32, b, split_k=split_k)
    assert_matches_reference(out, w4a16_reference(x, q, s, z, 32, b))


@pytest.mark.parametrize("m", [5, 33])
def test_gemm_several_tiles_without_bias(m, device, assert_matches_reference):
    x, q, s, z, _ = make_case(m, 72, 160, 32, True, torch.bfloat16, device, bias=False)
    assert_matches_reference(w4a16_matmul_triton(x, q, s, z, 32), w4a16_reference(x, q, s, z, 32))


def test_strided_activations(device, assert_matches_reference):
    x, q, s, z, b = make_case(17, 40, 128, 64, False, torch.float16, device)
    wide = torch.zeros(17, 256, dtype=x.dtype, device=device)
    wide[:, ::2] = x
    view = wide[:, ::2]  # non-contiguous along K
    assert_matches_reference(w4a16_matmul_triton(view, q, s, z, 64, b),
                             w4a16_reference(x, q, s, z, 64, b))


def test_reference_matches_float_weights() -> None:
    """The oracle itself: reference == x @ dequantized weight (exact grid values)."""
    w = torch.randn(8, 64)
    q, s, z = quantize_weight_groupwise(w, 4, 32, False)
    x = torch.randn(3, 64)
    approx = w4a16_reference(x, q, s, z, 32)
    assert (approx - x @ w.T).abs().max() < 0.25 * x.abs().sum(1).max() * s.float().max()


# --- the tests can fail: a kernel that is broken in typical ways must not pass -----------------
# A broken kernel is emulated by feeding the correct kernel what a buggy one would compute with
# (flipped zero-points, swapped nibbles, scales of the neighbouring group) and checking that the
# comparison rejects it. No broken code lives in the library.

def _flip_zero_points(q, s, z):
    return q, s, 15 - z


def _swap_nibbles(q, s, z):
    codes = unpack_int4(q.cpu())
    swapped = torch.stack((codes[:, 1::2], codes[:, 0::2]), dim=-1).flatten(-2)
    return pack_int4(swapped).to(q.device), s, z


def _shift_groups(q, s, z):
    return q, torch.roll(s, 1, dims=1).contiguous(), z


@pytest.mark.parametrize("mutate", [_flip_zero_points, _swap_nibbles, _shift_groups])
@pytest.mark.parametrize("m", [1, 17])
def test_broken_kernels_are_detected(mutate, m, device, assert_matches_reference):
    x, q, s, z, b = make_case(m, 40, 128, 32, False, torch.float16, device)
    ref = w4a16_reference(x, q, s, z, 32, b)
    assert_matches_reference(w4a16_matmul_triton(x, q, s, z, 32, b), ref)
    with pytest.raises(AssertionError):
        assert_matches_reference(w4a16_matmul_triton(x, *mutate(q, s, z), 32, b), ref)


# --- bad input: clear errors, never a silent wrong answer or a device fault --------------------

def _valid(device):
    return make_case(3, 40, 128, 32, False, torch.float16, device)


def test_rejects_mismatched_k(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="K=64"):
        w4a16_matmul_triton(x[:, :64], q, s, z, 32, b)


def test_rejects_group_size_not_dividing_k(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="group_size 48 does not divide K=128"):
        w4a16_matmul_triton(x, q, s, z, 48, b)


def test_rejects_scales_of_another_group_size(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="scales must be"):
        w4a16_matmul_triton(x, q, s, z, 64, b)


def test_rejects_non_contiguous_packed_weight(device):
    x, q, s, z, b = _valid(device)
    strided = torch.empty(q.shape[1], q.shape[0], dtype=q.dtype, device=device).t()
    strided.copy_(q)
    with pytest.raises(ValueError, match="contiguous"):
        w4a16_matmul_triton(x, strided, s, z, 32, b)


@pytest.mark.parametrize(
    ("which", "dtype", "message"),
    [("x", torch.float32, "activations must be"), ("x", torch.int8, "activations must be"),
     ("q", torch.int8, "qweight must be torch.uint8"), ("z", torch.int8, "zeros must be"),
     ("s", torch.int32, "scales must be")],
)
def test_rejects_wrong_dtypes(which, dtype, message, device):
    x, q, s, z, b = _valid(device)
    args = {"x": x, "q": q, "s": s, "z": z}
    args[which] = args[which].to(dtype)
    with pytest.raises(TypeError, match=message):
        w4a16_matmul_triton(args["x"], args["q"], args["s"], args["z"], 32, b)


def test_rejects_bad_bias_and_odd_k(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="bias"):
        w4a16_matmul_triton(x, q, s, z, 32, b[:-1])
    with pytest.raises(ValueError, match="even"):
        w4a16_matmul_triton(x[:, :127], q, s, z, 32, b)
    with pytest.raises(ValueError, match="2-D"):
        w4a16_matmul_triton(x[None], q, s, z, 32, b)


def test_reference_validates_too(device):
    x, q, s, z, b = _valid(device)
    with pytest.raises(ValueError, match="does not divide"):
        w4a16_reference(x, q, s, z, 48, b)


def test_empty_batch(device):
    x, q, s, z, b = _valid(device)
    assert w4a16_matmul_triton(x[:0], q, s, z, 32, b).shape == (0, 40)
