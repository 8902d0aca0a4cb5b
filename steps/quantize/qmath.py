"""Integer weight quantization math for any bit width, in modelpress.kernels' canonical layout.

``modelpress.kernels.packing`` defines the layout and quantizes 4- and 8-bit weights; we use it
for round-to-nearest at those widths. It has no 2/3-bit grid and no per-column quantizer (which
GPTQ needs), so both live here, written to the *same* rules (symmetric ranges around an implied
zero-point using every nibble code, asymmetric ranges that always contain 0, ties away from zero) — the tests check
that this module and ``packing`` agree bit for bit at 4 and 8 bits.

int2/int3 codes are stored in the int4 nibble layout (``pack_int4``) with explicit zero-points:
kernels/ has no sub-nibble packing, so their memory is that of int4 (reported as such).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelpress.kernels.packing import pack_int4, quantize_weight_groupwise, symmetric_scale, unpack_int4
from modelpress.kernels.packing import round_half_away as kernel_rounding

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Grid:
    bits: int
    symmetric: bool

    @property
    def implied_zero(self) -> int:
        """Zero-point of symmetric codes: 0 for int8 (signed storage), mid-range for nibbles."""
        return 0 if self.bits == 8 else 2 ** (self.bits - 1)

    @property
    def qmin(self) -> int:
        if self.bits == 8:
            return -127 if self.symmetric else -128
        return 0  # nibble codes: symmetric ones use every code too (kernels.packing.code_range)

    @property
    def qmax(self) -> int:
        return 127 if self.bits == 8 else 2 ** self.bits - 1

    @property
    def storage(self) -> str:
        return "int8" if self.bits == 8 else "int4"


def group_params(w: torch.Tensor, grid: Grid, per_tensor: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and (float) zero-point per row of ``w`` ``[N, g]`` (one pair for all rows if per_tensor)."""
    import torch

    w = w.float()
    low = (w.amin() if per_tensor else w.amin(dim=-1)).clamp(max=0.0).expand(w.shape[0])
    high = (w.amax() if per_tensor else w.amax(dim=-1)).clamp(min=0.0).expand(w.shape[0])
    if grid.symmetric:
        scale = symmetric_scale(low, high, grid.qmin, grid.qmax, grid.implied_zero)
        zero = torch.full_like(scale, float(grid.implied_zero))
    else:
        scale = (high - low) / (grid.qmax - grid.qmin)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).contiguous()
    if not grid.symmetric:
        zero = round_half_away(grid.qmin - low / scale).clamp(grid.qmin, grid.qmax)
    return scale, zero


def searched_group_params(w: torch.Tensor, grid: Grid, per_tensor: bool = False, steps: int = 20,
                          max_shrink: float = 0.2, norm: float = 2.4,
                          hessian: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``group_params`` with the range clipped per row where that lowers the rounding error.

    Min-max ranges waste levels on the few largest weights; at 2-4 bits shrinking the range by up
    to ``max_shrink`` usually lowers the error. The error is ``|w - q(w)|^norm`` (the GPTQ reference
    quantizer's ``mse`` option, norm 2.4) or, given the layer's input ``hessian`` restricted to
    these columns (``[g, g]``, or its diagonal ``[g]``), the layer's squared output error
    ``d H d^T`` per row — what GPTQ minimises, so weights that meet large inputs keep their
    precision (on SmolLM2 int4 g64: perplexity 89.6 instead of 90.9 with norm 2.4). The shrink is
    chosen per row (once for all rows if per_tensor) from ``steps`` candidates.
    """
    import torch

    w = w.float()
    error = _error_measure(norm, hessian)
    best_scale, best_zero = group_params(w, grid, per_tensor)
    best_err = _row_error(w, best_scale, best_zero, grid, error, per_tensor)
    for i in range(1, steps + 1):
        scale, zero = group_params(w * (1.0 - max_shrink * i / steps), grid, per_tensor)
        err = _row_error(w, scale, zero, grid, error, per_tensor)
        better = err < best_err
        best_scale = torch.where(better, scale, best_scale)
        best_zero = torch.where(better, zero, best_zero)
        best_err = torch.where(better, err, best_err)
    return best_scale, best_zero


def _error_measure(norm: float, hessian: torch.Tensor | None):
    """Per-row error of a weight change ``d`` [N, g]."""
    if hessian is None:
        return lambda d: d.abs().pow(norm).sum(-1)
    h = hessian.float()
    if h.dim() == 1:
        return lambda d: (d * d * h).sum(-1)
    return lambda d: ((d @ h) * d).sum(-1)


def _row_error(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid, error,
               per_tensor: bool) -> torch.Tensor:
    err = error(dequantize_codes(quantize_codes(w, scale, zero, grid), scale, zero) - w)
    return err.sum().expand_as(err) if per_tensor else err


def quantize_codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Codes of ``w`` ``[N, g]`` for per-row ``scale``/``zero`` ``[N]`` (float tensor of integers)."""
    return round_half_away(w.float() / scale[:, None] + zero[:, None]).clamp(grid.qmin, grid.qmax)


def dequantize_codes(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return (codes - zero[:, None]) * scale[:, None]


def round_half_away(v: torch.Tensor) -> torch.Tensor:
    return kernel_rounding(v)


def params_for(clip: bool):
    """The range rule: min-max (``group_params``) or min-max with a searched clipping."""
    return searched_group_params if clip else group_params


def quantize_rtn(w: torch.Tensor, grid: Grid, group_size: int | None, per_tensor: bool = False,
                 clip: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest: (codes [N, K] float, scales [N, G], zeros [N, G] float)."""
    import torch

    k = w.shape[1]
    g = k if group_size is None else group_size
    if k % g:
        raise ValueError(f"group_size {g} does not divide in_features {k}")
    codes, scales, zeros = [], [], []
    for start in range(0, k, g):
        scale, zero = params_for(clip)(w[:, start:start + g], grid, per_tensor)
        codes.append(quantize_codes(w[:, start:start + g], scale, zero, grid))
        scales.append(scale)
        zeros.append(zero)
    return torch.cat(codes, 1), torch.stack(scales, 1), torch.stack(zeros, 1)


def fake_quantize(w: torch.Tensor, grid: Grid, group_size: int | None, per_tensor: bool = False,
                  clip: bool = False) -> torch.Tensor:
    """``w`` rounded to its quantization grid (RTN) and back to float."""
    codes, scales, zeros = quantize_rtn(w, grid, group_size, per_tensor, clip)
    g = codes.shape[1] // scales.shape[1]
    return (codes - zeros.repeat_interleave(g, 1)) * scales.repeat_interleave(g, 1)


def to_storage(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
               grid: Grid) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Canonical tensors (kernels.packing layout): int8 codes, or packed nibbles + uint8 zeros.

    Symmetric int8/int4 drop the zeros (implied); int2/int3 keep them explicitly because the int4
    kernels would otherwise assume zero-point 8.
    """
    import torch

    if grid.bits == 8:
        zero_t = None if grid.symmetric else zeros.to(torch.int8).contiguous()
        return codes.to(torch.int8).contiguous(), scales.float().contiguous(), zero_t
    keep_zeros = not (grid.symmetric and grid.bits == 4)
    zero_t = zeros.to(torch.uint8).contiguous() if keep_zeros else None
    return pack_int4(codes.to(torch.uint8)), scales.float().contiguous(), zero_t


def quantize_weight(w: torch.Tensor, grid: Grid, group_size: int | None, per_tensor: bool = False,
                    clip: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """RTN straight to storage; 4/8-bit min-max per-channel/group goes through kernels.packing itself."""
    if grid.bits in (4, 8) and not per_tensor and not clip:

        qw = quantize_weight_groupwise(w, grid.bits, group_size, grid.symmetric, scale_dtype=_fp32())
        return qw.qweight, qw.scales, qw.zeros
    return to_storage(*quantize_rtn(w, grid, group_size, per_tensor, clip), grid)


def dequantize_storage(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                       grid: Grid) -> torch.Tensor:
    """Float [N, K] weight back from storage (any bit width)."""
    import torch

    codes = qweight.float() if grid.bits == 8 else unpack_int4(qweight).float()
    g = codes.shape[1] // scales.shape[1]
    zero = torch.full_like(scales, float(grid.implied_zero)) if zeros is None else zeros.float()
    return (codes - zero.repeat_interleave(g, 1)) * scales.float().repeat_interleave(g, 1)


def _fp32() -> torch.dtype:
    import torch

    return torch.float32
