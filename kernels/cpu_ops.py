"""PyTorch's packed CPU ops, used by the reference backend where they apply and measured faster.

Measured on the 2-core Zen 4 dev machine (torch 2.13), against the references:

* ``torch._weight_int4pack_mm_for_cpu`` (W4A16, bf16 only): ~5-200x at K=N=2048, M=1..64.
  Needs its own blocked layout, converted once per weight and cached (see ``_Int4PackCache``).
  fp16/fp32 activations run it slower than the reference, so they are not routed here.
* ``torch._weight_int8pack_mm`` (W8A16, symmetric per-channel, bf16, M <= 16): ~1.3-14x.
* ``torch._int_mm`` (W8A8, int32 accumulation via oneDNN): ~10x.

Public functions (each returns ``None`` when the fast path does not apply, so the caller falls
back to the reference):

* ``w4a16_cpu(x, qweight, scales, zeros, group_size, bias)``
* ``w8a16_cpu(x, qweight, scales, zeros, group_size, bias)``
* ``w8a8_cpu(x_q, x_scale, qweight, scales, zeros, bias, out_dtype)``
"""

from __future__ import annotations

import weakref

import torch

from modelpress.kernels.packing import implied_zero_point, unpack_int4

INT8PACK_MAX_M = 16  # above this, the fp32 reference beats torch._weight_int8pack_mm here
INT4PACK_GROUP_SIZES = (32, 64, 128, 256)  # what torch's CPU int4 kernel accepts


def w4a16_cpu(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int,
    bias: torch.Tensor | None,
) -> torch.Tensor | None:
    if not (
        x.device.type == "cpu"
        and x.dtype == torch.bfloat16
        and hasattr(torch, "_weight_int4pack_mm_for_cpu")
        and group_size in INT4PACK_GROUP_SIZES
        and qweight.shape[0] % 16 == 0  # the CPU packer's N granularity
    ):
        return None
    packed, scales_and_zeros = _INT4PACK_CACHE.get(qweight, scales, zeros)
    out = torch._weight_int4pack_mm_for_cpu(x, packed, group_size, scales_and_zeros)
    return out if bias is None else out + bias.to(out.dtype)


def w8a16_cpu(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int | None,
    bias: torch.Tensor | None,
) -> torch.Tensor | None:
    per_channel = group_size is None or group_size == x.shape[1]
    if not (
        x.device.type == "cpu"
        and x.dtype == torch.bfloat16
        and hasattr(torch, "_weight_int8pack_mm")
        and zeros is None
        and per_channel
        and x.shape[0] <= INT8PACK_MAX_M
    ):
        return None
    out = torch._weight_int8pack_mm(x, qweight, scales.reshape(-1).to(x.dtype))
    return out if bias is None else out + bias.to(out.dtype)


def w8a8_cpu(
    x_q: torch.Tensor,
    x_scale: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor | None:
    if x_q.device.type != "cpu" or not hasattr(torch, "_int_mm"):
        return None
    acc = torch._int_mm(x_q, qweight.T)
    if zeros is not None:
        # sum_k x (q - z) = sum_k x q - z sum_k x
        acc = acc - x_q.sum(dim=1, keepdim=True, dtype=torch.int32) * zeros.reshape(1, -1)
    out = acc.float() * x_scale * scales.float().reshape(1, -1)
    if bias is not None:
        out = out + bias.float()
    return out.to(out_dtype)


class _Int4PackCache:
    """Canonical int4 weights -> torch's CPU int4pack layout, converted once per weight.

    Keyed on the qweight tensor's identity (the entry goes when the tensor is freed) and checked
    against the tensors' version counters, so an in-place update (load_state_dict) triggers a
    fresh conversion (not for inference tensors, which have no version counter).
    A WeakKeyDictionary cannot be used: it compares tensors with ``==``.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple] = {}

    def get(self, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None):
        stamp = tuple(_stamp(t) for t in (qweight, scales, zeros) if t is not None)
        key = id(qweight)
        entry = self._entries.get(key)
        if entry is None or entry[0]() is not qweight or entry[1] != stamp:
            forget = lambda _ref, key=key: self._entries.pop(key, None)
            entry = (weakref.ref(qweight, forget), stamp, *_to_int4pack(qweight, scales, zeros))
            self._entries[key] = entry
        return entry[2], entry[3]


def _stamp(t: torch.Tensor) -> tuple[int, int, int]:
    """Identity, storage and version of a tensor. Inference tensors have no version counter:
    for them an in-place update under inference_mode goes unnoticed (documented limitation)."""
    version = -1 if t.is_inference() else t._version
    return id(t), t.data_ptr(), version


def _to_int4pack(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None):
    codes = unpack_int4(qweight).to(torch.int32)
    packed = torch._convert_weight_to_int4pack_for_cpu(codes, 1)
    # torch's int4 kernel computes (q - 8) * scale + zero with a float zero; ours is
    # (q - z) * scale, so its zero is (8 - z) * scale (stored in bf16, like the scale).
    scale = scales.float()
    zero_code = zeros.float() if zeros is not None else float(implied_zero_point(4))
    zero = (implied_zero_point(4) - zero_code) * scale
    scales_and_zeros = torch.stack((scale.T, zero.T), dim=-1).contiguous().to(torch.bfloat16)
    return packed, scales_and_zeros


_INT4PACK_CACHE = _Int4PackCache()
