"""Input validation shared by the launchers: clear errors before any kernel can read out of bounds.

Not public API. Every check raises ``ValueError`` (shapes, layout) or ``TypeError`` (dtypes).
"""

from __future__ import annotations

import torch

# Triton kernels feed dequantized tiles to tl.dot in the activation dtype: fp16/bf16 only
# (fp32 would run tl.dot in TF32 on GPUs, a silent precision drop). References also take fp32.
ACTIVATION_DTYPES = (torch.float16, torch.bfloat16)
REFERENCE_DTYPES = ACTIVATION_DTYPES + (torch.float32,)
SCALE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_activations(x: torch.Tensor, op: str, dtypes: tuple[torch.dtype, ...]) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: activations must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{op}: activations must be 2-D [M, K], got shape {tuple(x.shape)}")
    if x.dtype not in dtypes:
        raise TypeError(f"{op}: activations must be one of {_names(dtypes)}, got {x.dtype}")


def check_weight(
    qweight: torch.Tensor, op: str, dtype: torch.dtype, k: int, k_per_byte: int
) -> int:
    """Check a [N, K / k_per_byte] contiguous code tensor; returns N."""
    if qweight.dtype != dtype:
        raise TypeError(f"{op}: qweight must be {dtype}, got {qweight.dtype}")
    if qweight.dim() != 2:
        raise ValueError(f"{op}: qweight must be 2-D, got shape {tuple(qweight.shape)}")
    if not qweight.is_contiguous():
        raise ValueError(
            f"{op}: qweight must be contiguous (the packed layout is row-major [N, K]); "
            "call .contiguous() when building the weight, not per call"
        )
    if qweight.shape[1] * k_per_byte != k:
        what = f"K/{k_per_byte}={k // k_per_byte}" if k_per_byte > 1 else f"K={k}"
        raise ValueError(
            f"{op}: activations have K={k} but qweight is {tuple(qweight.shape)} (expected "
            f"[N, {what}])"
        )
    return qweight.shape[0]


def check_group_size(group_size: int, k: int, op: str, even: bool = False) -> None:
    if not isinstance(group_size, int) or group_size <= 0 or k % group_size:
        raise ValueError(f"{op}: group_size {group_size} does not divide K={k}")
    if even and group_size % 2:
        raise ValueError(f"{op}: int4 group_size must be even, got {group_size}")


def check_scales(scales: torch.Tensor, n: int, n_groups: int, op: str) -> None:
    if scales.dtype not in SCALE_DTYPES:
        raise TypeError(f"{op}: scales must be one of {_names(SCALE_DTYPES)}, got {scales.dtype}")
    if tuple(scales.shape) != (n, n_groups):
        raise ValueError(f"{op}: scales must be [N, K/group_size]={[n, n_groups]}, got "
                         f"{list(scales.shape)}")
    if not scales.is_contiguous():
        raise ValueError(f"{op}: scales must be contiguous")


def check_zeros(
    zeros: torch.Tensor | None, n: int, n_groups: int, dtype: torch.dtype, op: str
) -> None:
    if zeros is None:
        return
    if zeros.dtype != dtype:
        raise TypeError(f"{op}: zeros must be {dtype}, got {zeros.dtype}")
    if tuple(zeros.shape) != (n, n_groups):
        raise ValueError(f"{op}: zeros must be [N, K/group_size]={[n, n_groups]}, got "
                         f"{list(zeros.shape)}")
    if not zeros.is_contiguous():
        raise ValueError(f"{op}: zeros must be contiguous")


def check_bias(bias: torch.Tensor | None, n: int, op: str) -> None:
    if bias is None:
        return
    if tuple(bias.shape) != (n,):
        raise ValueError(f"{op}: bias must be [N]=[{n}], got {list(bias.shape)}")
    if not bias.is_floating_point():
        raise TypeError(f"{op}: bias must be floating point, got {bias.dtype}")


def check_same_device(op: str, *tensors: torch.Tensor | None) -> None:
    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        names = sorted(map(str, devices))
        raise ValueError(f"{op}: all tensors must be on one device, got {names}")


def check_runnable_by_triton(x: torch.Tensor, op: str) -> None:
    """Triton kernels need CUDA tensors, unless the CPU interpreter is on (tests)."""
    from modelpress.kernels._triton_common import HAS_TRITON, interpreting

    if not HAS_TRITON:
        raise RuntimeError(f"{op}: triton is not installed (pip install 'modelpress[kernels]')")
    if x.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"{op}: the Triton kernel needs CUDA tensors, got {x.device} "
            "(set TRITON_INTERPRET=1 before importing triton to run it on CPU)"
        )


def _names(dtypes: tuple[torch.dtype, ...]) -> str:
    return ", ".join(str(d).removeprefix("torch.") for d in dtypes)
