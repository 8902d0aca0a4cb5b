"""Quantization math against hand-computed references, and GPTQ against round-to-nearest."""

from __future__ import annotations

import pytest
import torch

from modelpress.kernels.packing import dequantize_weight_groupwise, quantize_weight_groupwise
from modelpress.steps.quantize.gptq import HessianAccumulator, gptq_quantize
from modelpress.steps.quantize.qmath import (
    Grid,
    dequantize_codes,
    dequantize_storage,
    group_params,
    quantize_codes,
    quantize_rtn,
    quantize_weight,
    searched_group_params,
    to_storage,
)


def test_symmetric_per_channel_int8_by_hand():
    w = torch.tensor([[0.5, -1.0, 0.25, 0.0], [2.0, 1.0, -0.5, 0.1]])
    codes, scales, zeros = quantize_rtn(w, Grid(8, True), None)
    # row 0: scale = 1.0/127 ; row 1: scale = 2.0/127; codes = round(w/scale), zero 0
    assert torch.allclose(scales[:, 0], torch.tensor([1.0 / 127, 2.0 / 127]))
    assert codes.tolist() == [[64.0, -127.0, 32.0, 0.0], [127.0, 64.0, -32.0, 6.0]]  # 63.5 → 64 (ties away)
    assert zeros.tolist() == [[0.0], [0.0]]


def test_asymmetric_per_group_int4_by_hand():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0, -1.0, -2.0, -3.0, -4.0]])
    codes, scales, zeros = quantize_rtn(w, Grid(4, False), 4)
    # group 0: range [0, 3] → scale 3/15 = 0.2, zero 0; group 1: [-4, 0] → scale 4/15, zero 15
    assert torch.allclose(scales, torch.tensor([[0.2, 4 / 15]]))
    assert zeros.tolist() == [[0.0, 15.0]]
    assert codes.tolist() == [[0.0, 5.0, 10.0, 15.0, 11.0, 8.0, 4.0, 0.0]]  # -1/(4/15)+15 = 11.25 → 11


def test_symmetric_int3_and_int2_grids():
    w = torch.tensor([[1.0, -1.0, 0.4, -0.2]])
    codes3, scale3, zero3 = quantize_rtn(w, Grid(3, True), None)
    assert zero3.item() == 4 and scale3.item() == pytest.approx(1 / 3)
    assert codes3.tolist() == [[7.0, 1.0, 5.0, 3.0]]  # 0.4*3=1.2→1 → 5 ; -0.6→-1 → 3
    codes2, scale2, zero2 = quantize_rtn(w, Grid(2, True), None)
    assert zero2.item() == 2 and scale2.item() == 1.0 and codes2.tolist() == [[3.0, 1.0, 2.0, 2.0]]


def test_per_tensor_uses_one_scale():
    w = torch.tensor([[1.0, -0.5], [0.25, 4.0]])
    _, scales, _ = quantize_rtn(w, Grid(8, True), None, per_tensor=True)
    assert torch.allclose(scales, torch.full((2, 1), 4.0 / 127))


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group", [None, 32])
def test_same_codes_as_kernels_packing(bits, symmetric, group):
    """Our any-bit quantizer (used by GPTQ) and kernels.packing agree bit for bit at 4/8 bits."""
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(bits))
    mine = to_storage(*quantize_rtn(w, Grid(bits, symmetric), group), Grid(bits, symmetric))
    theirs = quantize_weight_groupwise(w, bits, group, symmetric, scale_dtype=torch.float32)
    assert torch.equal(mine[0], theirs.qweight) and torch.allclose(mine[1], theirs.scales)
    assert (mine[2] is None) == (theirs.zeros is None)
    if theirs.zeros is not None:
        assert torch.equal(mine[2], theirs.zeros)
    back = dequantize_storage(*mine, Grid(bits, symmetric))
    assert torch.allclose(back, dequantize_weight_groupwise(theirs.qweight, theirs.scales, theirs.zeros, bits, group))


@pytest.mark.parametrize("bits", [2, 3])
def test_low_bit_storage_round_trips(bits):
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    grid = Grid(bits, True)
    codes, scales, zeros = quantize_rtn(w, grid, 32)
    storage = quantize_weight(w, grid, 32)
    assert storage[0].dtype == torch.uint8 and storage[0].shape == (8, 32)  # nibble-packed
    expected = (codes - zeros.repeat_interleave(32, 1)) * scales.repeat_interleave(32, 1)
    assert torch.allclose(dequantize_storage(*storage, grid), expected)
    assert (w - expected).abs().max() <= scales.max() * (2 if bits == 2 else 0.5) + 1e-6


def _layer_inputs(trained_net, digits_frame, task, split):
    rows = digits_frame[digits_frame.split == split]
    captured = []
    hook = trained_net.up.register_forward_pre_hook(lambda m, a: captured.append(a[0].detach()))
    with torch.no_grad():
        trained_net(torch.from_numpy(task.encode(rows)["pixel_values"]))
    hook.remove()
    return torch.cat(captured)


@pytest.mark.parametrize("bits,group,act_order", [(4, 32, False), (3, 32, False), (8, None, False),
                                                   (4, 32, True), (3, 16, True)])
def test_gptq_beats_rtn_on_a_trained_layer(trained_net, digits_frame, task, bits, group, act_order):
    """Output reconstruction error of the trained `up` layer on held-out real inputs."""
    x_cal = _layer_inputs(trained_net, digits_frame, task, "train")
    x_eval = _layer_inputs(trained_net, digits_frame, task, "eval")
    w = trained_net.up.weight.detach()
    hessian = HessianAccumulator(w.shape[1])
    hessian.add(x_cal)
    grid = Grid(bits, True)

    def error(storage):
        wq = dequantize_storage(*storage, grid)
        return float(((x_eval @ wq.T - x_eval @ w.T) ** 2).mean())

    rtn = error(quantize_weight(w, grid, group))
    gptq = error(to_storage(*gptq_quantize(w, hessian.value(), grid, group, act_order=act_order), grid))
    assert gptq < 0.9 * rtn, (gptq, rtn)


def test_act_order_keeps_groups_contiguous_in_the_original_column_order(trained_net, digits_frame, task):
    """With act-order the columns are visited permuted, yet each group's scale must still be the one
    of its original contiguous columns (static groups): every code lies on its own group's grid."""
    x = _layer_inputs(trained_net, digits_frame, task, "train")
    w = trained_net.up.weight.detach()
    hessian = HessianAccumulator(w.shape[1])
    hessian.add(x)
    grid = Grid(4, False)
    codes, scales, _ = gptq_quantize(w, hessian.value(), grid, 16, act_order=True)
    expected_scales = torch.stack([group_params(w[:, j:j + 16], grid)[0] for j in range(0, w.shape[1], 16)], 1)
    torch.testing.assert_close(scales, expected_scales)
    assert torch.argsort(torch.diag(hessian.value()), descending=True)[:16].tolist() != list(range(16))
    # Hessian-compensated codes differ from plain rounding, but never by more than the grid allows
    assert codes.min() >= grid.qmin and codes.max() <= grid.qmax


@pytest.mark.parametrize("bits,symmetric,per_tensor", [(4, True, False), (3, False, False), (2, False, False),
                                                       (4, True, True)])
def test_searched_range_never_rounds_worse_than_min_max(trained_net, bits, symmetric, per_tensor):
    from modelpress.steps.quantize.qmath import searched_group_params

    w = trained_net.down.weight.detach()
    grid = Grid(bits, symmetric)

    def row_error(params):
        scale, zero = params
        return ((dequantize_codes(quantize_codes(w, scale, zero, grid), scale, zero) - w).abs() ** 2.4).sum(1)

    minmax = row_error(group_params(w, grid, per_tensor))
    searched = row_error(searched_group_params(w, grid, per_tensor))
    if per_tensor:  # one range for the whole tensor: compared on the total
        assert searched.sum() <= minmax.sum() and searched_group_params(w, grid, True)[0].unique().numel() == 1
    else:
        assert (searched <= minmax).all()
    assert searched.sum() < 0.95 * minmax.sum()  # at <= 4 bits clipping a trained layer pays off


def _skewed_layer(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs whose channels differ in scale (as LLM activations do), a weight, and their Hessian."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2048, 128, generator=gen) * torch.rand(128, generator=gen) * 3
    w = torch.randn(64, 128, generator=gen)
    hessian = HessianAccumulator(128)
    hessian.add(x)
    return x, w, hessian.value()


def _output_error(x: torch.Tensor, w: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor,
                  zeros: torch.Tensor) -> float:
    g = codes.shape[1] // scales.shape[1]
    w_hat = (codes - zeros.repeat_interleave(g, 1)) * scales.repeat_interleave(g, 1)
    return float(((x @ (w_hat - w).T) ** 2).mean())


@pytest.mark.parametrize("symmetric", [True, False])
def test_refitted_scales_lower_the_output_error_for_the_same_codes(symmetric):
    x, w, hessian = _skewed_layer()
    grid = Grid(4, symmetric)
    codes, scales, zeros = gptq_quantize(w, hessian, grid, 32, act_order=True, clip=True)
    refit_codes, refit_scales, refit_zeros = gptq_quantize(w, hessian, grid, 32, act_order=True, clip=True,
                                                           refit=True)
    assert torch.equal(refit_codes, codes) and torch.equal(refit_zeros, zeros)
    assert not torch.equal(refit_scales, scales) and bool((refit_scales > 0).all())
    assert _output_error(x, w, codes, refit_scales, zeros) < 0.995 * _output_error(x, w, codes, scales, zeros)


def test_hessian_weighted_range_search_beats_the_weight_error_search():
    """With the layer's Hessian the clipped range is chosen for the output error, which is what
    counts; the |w - q(w)|^2.4 search picks ranges that are worse there."""
    x, w, hessian = _skewed_layer(1)
    grid = Grid(4, False)
    by_weights = searched_group_params(w, grid)
    by_output = searched_group_params(w, grid, hessian=hessian.float())
    errors = [_output_error(x, w, quantize_codes(w, s, z, grid), s[:, None], z[:, None])
              for s, z in (by_weights, by_output)]
    assert errors[1] < 0.98 * errors[0], errors
    assert not torch.equal(by_weights[0], by_output[0])
