"""The one definition of modelpress' quantized weight layouts, with pack/unpack and quantizers.

Everything that stores or reads quantized weights (the quantization suite's Linear modules, the
kernels in this package, exporters) goes through this module, so there is exactly one int4 layout.

Layouts (weights follow ``nn.Linear``: ``[N, K]`` = [out_features, in_features], row-major):

* **int8**: ``qweight`` int8 ``[N, K]``. ``zeros`` int8 ``[N, K // group_size]`` or ``None``
  (symmetric, implied zero-point 0).
* **int4**: ``qweight`` uint8 ``[N, K // 2]``, packed along K: byte ``j`` of row ``n`` holds
  ``k = 2j`` in its low nibble and ``k = 2j + 1`` in its high nibble; codes are unsigned 0..15.
  ``zeros`` uint8 ``[N, K // group_size]`` (values 0..15, one byte each, not packed) or ``None``
  (symmetric, implied zero-point 8).
* ``scales``: float (fp32/fp16/bf16) ``[N, K // group_size]``; per-channel is ``group_size == K``
  (``scales`` is ``[N, 1]``).
* Dequantization: ``w[n, k] = (q[n, k] - zero[n, k // group_size]) * scale[n, k // group_size]``.

Public functions:

* ``pack_int4(codes) -> packed`` / ``unpack_int4(packed) -> codes`` (last dim is K).
* ``quantize_weight_groupwise(w, bits, group_size, symmetric, scale_dtype=None)
  -> QuantizedWeight(qweight, scales, zeros)``.
* ``dequantize_weight_groupwise(qweight, scales, zeros, bits, group_size, dtype=float32) -> w``.
* ``implied_zero_point(bits)``, ``code_range(bits, symmetric)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # torch is imported inside the functions: importing this module stays cheap.
    import torch

SUPPORTED_BITS = (4, 8)


class QuantizedWeight(NamedTuple):
    """A group-quantized weight in the canonical layout (see the module docstring)."""

    qweight: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None


def implied_zero_point(bits: int) -> int:
    """Zero-point of symmetric weights: the middle code, so int4 codes stay unsigned."""
    _check_bits(bits)
    return 8 if bits == 4 else 0


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Smallest and largest code a quantizer emits.

    Symmetric int8 is balanced around its implied zero-point (-127..127: the range int8 GEMMs and
    TensorRT assume). Symmetric int4 uses all 16 codes (levels -8..7 around zero-point 8, as
    GGUF Q4_0, compressed-tensors and MatMulNBits read them): a balanced 1..15 range would waste
    the 16th level (on random weights it costs over 5 % more squared rounding error).
    """
    _check_bits(bits)
    if bits == 8:
        return (-127, 127) if symmetric else (-128, 127)
    return (0, 15)


def symmetric_scale(low: torch.Tensor, high: torch.Tensor, qmin: int, qmax: int, zero: int) -> torch.Tensor:
    """The smallest scale that represents both ``low`` (<= 0) and ``high`` (>= 0) around ``zero``.

    On an unbalanced grid (int4: 8 levels below zero, 7 above) this takes the extra negative level
    when the group's negative extreme dominates, instead of clipping the positive one (compressed-
    tensors' absmax / 7.5) or wasting a level (absmax / 7); on a balanced grid it is absmax / qmax.
    """
    import torch

    return torch.maximum(-low / (zero - qmin), high / (qmax - zero))


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Pack int4 codes (integers 0..15, last dim K even) into uint8 ``[..., K // 2]``."""
    import torch

    if codes.shape[-1] % 2:
        raise ValueError(f"int4 packing needs an even last dimension, got {codes.shape[-1]}")
    if codes.is_floating_point() or codes.dtype == torch.bool:
        raise TypeError(f"int4 codes must be an integer tensor, got {codes.dtype}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > 15):
        raise ValueError("int4 codes must lie in 0..15")
    codes = codes.to(torch.uint8)
    low, high = codes[..., 0::2], codes[..., 1::2]
    return (low | (high << 4)).contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: uint8 ``[..., K // 2]`` -> uint8 codes ``[..., K]``."""
    import torch

    if packed.dtype != torch.uint8:
        raise TypeError(f"packed int4 weights must be uint8, got {packed.dtype}")
    low = packed & 0x0F
    high = packed >> 4
    return torch.stack((low, high), dim=-1).flatten(-2)


def quantize_weight_groupwise(
    w: torch.Tensor,
    bits: int,
    group_size: int | None,
    symmetric: bool,
    scale_dtype: torch.dtype | None = None,
) -> QuantizedWeight:
    """Quantize a ``[N, K]`` weight per output channel and per group of ``group_size`` along K.

    ``group_size=None`` means per-channel (one group of K). Asymmetric ranges always include 0 so
    that a constant or one-signed group is still represented exactly. Returns codes in the
    canonical layout (int4 packed), ``scales`` in ``scale_dtype`` (default: ``w.dtype`` if it
    is fp16/bf16, else fp32) and integer ``zeros`` (``None`` when symmetric).
    """
    import torch

    _check_bits(bits)
    if w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"expected a 2-D float weight [N, K], got {tuple(w.shape)} {w.dtype}")
    n, k = w.shape
    group_size = k if group_size is None else group_size
    _check_group_size(k, group_size, bits)
    if scale_dtype is None:
        scale_dtype = w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.float32

    groups = w.detach().float().reshape(n, k // group_size, group_size)
    qmin, qmax = code_range(bits, symmetric)
    low = groups.amin(dim=-1).clamp(max=0.0)
    high = groups.amax(dim=-1).clamp(min=0.0)
    if symmetric:
        scales = symmetric_scale(low, high, qmin, qmax, implied_zero_point(bits))
        zeros_f = torch.full_like(scales, float(implied_zero_point(bits)))
    else:
        scales = (high - low) / (qmax - qmin)
    # An all-zero group would give scale 0 and divide by zero; any scale reproduces it exactly.
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    # Round the scale to its storage dtype first, so codes are computed with the scale the
    # kernels will actually multiply by.
    scales = scales.to(scale_dtype).float()
    if not symmetric:
        zeros_f = round_half_away(qmin - low / scales).clamp(qmin, qmax)
    codes = round_half_away(groups / scales[..., None] + zeros_f[..., None]).clamp(qmin, qmax)
    codes = codes.reshape(n, k)

    code_dtype = torch.uint8 if bits == 4 else torch.int8
    qweight = codes.to(code_dtype)
    if bits == 4:
        qweight = pack_int4(qweight)
    zeros = None if symmetric else zeros_f.to(code_dtype).contiguous()
    return QuantizedWeight(qweight.contiguous(), scales.to(scale_dtype).contiguous(), zeros)


def dequantize_weight_groupwise(
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    bits: int,
    group_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Float ``[N, K]`` weight from the canonical layout (computed in fp32, returned as ``dtype``).

    ``group_size=None`` derives it from ``scales`` (``K // scales.shape[1]``).
    """
    import torch

    _check_bits(bits)
    codes = unpack_int4(qweight) if bits == 4 else qweight
    n, k = codes.shape
    if group_size is None:
        group_size = k // scales.shape[1]
    _check_group_size(k, group_size, bits)
    if tuple(scales.shape) != (n, k // group_size):
        raise ValueError(f"scales must be {(n, k // group_size)}, got {tuple(scales.shape)}")
    zero: float | torch.Tensor = float(implied_zero_point(bits))
    if zeros is not None:
        zero = zeros.float().repeat_interleave(group_size, dim=1)
    w = (codes.float() - zero) * scales.float().repeat_interleave(group_size, dim=1)
    return w.to(dtype or torch.float32)


def round_half_away(v: torch.Tensor) -> torch.Tensor:
    """Round to nearest, ties away from zero: the rule the Triton kernels implement too."""
    import torch

    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def _check_bits(bits: int) -> None:
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")


def _check_group_size(k: int, group_size: int, bits: int) -> None:
    if group_size <= 0 or k % group_size:
        raise ValueError(f"group_size {group_size} does not divide K={k}")
    if bits == 4 and group_size % 2:
        # Both nibbles of a byte must share a group, or a packed byte would straddle two scales.
        raise ValueError(f"int4 group_size must be even, got {group_size}")
