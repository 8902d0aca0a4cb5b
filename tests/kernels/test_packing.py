"""The canonical int4/int8 layouts: pack/unpack and quantize/dequantize round trips."""

from __future__ import annotations

import pytest
import torch

from modelpress.kernels.packing import (
    code_range,
    dequantize_weight_groupwise,
    implied_zero_point,
    pack_int4,
    quantize_weight_groupwise,
    unpack_int4,
)


def test_int4_layout_is_low_nibble_even_k() -> None:
    codes = torch.tensor([[1, 2, 15, 0]], dtype=torch.uint8)
    assert pack_int4(codes).tolist() == [[0x21, 0x0F]]


def test_pack_unpack_round_trip() -> None:
    codes = torch.randint(0, 16, (5, 3, 64), dtype=torch.uint8)
    packed = pack_int4(codes)
    assert packed.shape == (5, 3, 32) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), codes)


@pytest.mark.parametrize("bad", [torch.tensor([[16, 0]]), torch.tensor([[-1, 0]])])
def test_pack_rejects_codes_outside_0_15(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="0..15"):
        pack_int4(bad)


def test_pack_rejects_odd_k() -> None:
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.zeros(2, 3, dtype=torch.uint8))


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [None, 32, 64, 128])
def test_quantize_dequantize_error_is_within_half_a_step(
    bits: int, symmetric: bool, group_size: int | None
) -> None:
    w = torch.randn(24, 256)
    qweight, scales, zeros = quantize_weight_groupwise(w, bits, group_size, symmetric)
    assert (zeros is None) == symmetric
    g = 256 if group_size is None else group_size
    assert scales.shape == (24, 256 // g)
    assert qweight.shape == ((24, 128) if bits == 4 else (24, 256))
    w_hat = dequantize_weight_groupwise(qweight, scales, zeros, bits, group_size)
    step = scales.float().repeat_interleave(g, dim=1)
    assert ((w_hat - w).abs() <= step / 2 + 1e-6).all()


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_codes_survive_dequantize_requantize(bits: int, symmetric: bool) -> None:
    """Quantizing an already-quantized weight with its own grid gives back the same codes."""
    w = torch.randn(8, 128)
    first = quantize_weight_groupwise(w, bits, 32, symmetric)
    w_hat = dequantize_weight_groupwise(*first, bits=bits, group_size=32)
    second = quantize_weight_groupwise(w_hat, bits, 32, symmetric)
    assert torch.equal(first.qweight, second.qweight)


@pytest.mark.parametrize("bits", [4, 8])
def test_codes_stay_in_range(bits: int) -> None:
    w = torch.randn(16, 64) * 100
    for symmetric in (True, False):
        q, _, zeros = quantize_weight_groupwise(w, bits, 32, symmetric)
        codes = unpack_int4(q) if bits == 4 else q
        low, high = code_range(bits, symmetric)
        assert int(codes.min()) >= low and int(codes.max()) <= high
        if zeros is not None:
            assert int(zeros.min()) >= low and int(zeros.max()) <= high


def test_constant_and_zero_groups_are_exact() -> None:
    w = torch.zeros(2, 64)
    w[1] = 3.5
    for bits in (4, 8):
        for symmetric in (True, False):
            q = quantize_weight_groupwise(w, bits, 32, symmetric)
            assert torch.equal(dequantize_weight_groupwise(*q, bits=bits, group_size=32), w)


def test_symmetric_zero_point_is_implied() -> None:
    assert implied_zero_point(4) == 8 and implied_zero_point(8) == 0


def test_scale_dtype_defaults_to_half_precision_weights() -> None:
    q = quantize_weight_groupwise(torch.randn(4, 64).half(), 4, 32, True)
    assert q.scales.dtype == torch.float16
    q = quantize_weight_groupwise(torch.randn(4, 64), 4, 32, True, scale_dtype=torch.bfloat16)
    assert q.scales.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("bits", "group_size", "message"),
    [(3, 32, "bits"), (4, 48, "does not divide"), (8, 0, "does not divide"), (4, 1, "even")],
)
def test_quantize_rejects_bad_arguments(bits: int, group_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quantize_weight_groupwise(torch.randn(4, 64), bits, group_size, True)


def test_symmetric_int4_uses_all_sixteen_levels() -> None:
    """-8 is a level: a group whose negative extreme dominates is represented by -8 * scale exactly
    (scale = |min| / 8, finer than absmax / 7); one whose positive extreme dominates by 7 * scale."""
    w = torch.tensor([[-8.0, -3.0, 0.5, 6.0] * 8, [-2.0, 1.0, 3.0, 7.0] * 8])
    q = quantize_weight_groupwise(w, 4, 32, True)
    codes = unpack_int4(q.qweight)
    assert q.scales[:, 0].tolist() == [1.0, 1.0]
    assert int(codes[0].min()) == 0 and int(codes[1].max()) == 15
    w_hat = dequantize_weight_groupwise(*q, bits=4, group_size=32)
    assert torch.equal(w_hat[:, :4], torch.tensor([[-8.0, -3.0, 1.0, 6.0], [-2.0, 1.0, 3.0, 7.0]]))


def test_symmetric_int4_rounds_closer_than_a_balanced_grid() -> None:
    """On random weights the 16-level grid's error is below the old 15-level [-7, 7] grid's."""
    w = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    q = quantize_weight_groupwise(w, 4, 64, True)
    error = (dequantize_weight_groupwise(*q, bits=4, group_size=64) - w).pow(2).mean()
    groups = w.reshape(256, 4, 64)
    balanced_scale = groups.abs().amax(-1, keepdim=True) / 7
    balanced = ((groups / balanced_scale).round().clamp(-7, 7) * balanced_scale).reshape(256, 256)
    assert error < 0.95 * (balanced - w).pow(2).mean()
