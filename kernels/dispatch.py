"""One entry point per quantized matmul, with the backend decided once per device type.

The quantization suite's Linear modules call these functions; they never pick a kernel themselves.

Backend rule (decided at the first call for a device type, then cached):

* ``MODELPRESS_KERNELS=reference|triton`` forces a backend (tests, debugging). ``triton`` on a
  CPU tensor needs ``TRITON_INTERPRET=1``.
* otherwise: CUDA tensors and triton importable -> ``"triton"``; anything else -> ``"reference"``.

The reference backend validates the inputs like the launchers do, then runs PyTorch's packed CPU
op where one applies and measured faster (:mod:`modelpress.kernels.cpu_ops`: int4pack and
int8pack for bf16 activations, ``torch._int_mm`` for W8A8), else the PyTorch reference, inside a
profiler event (``modelpress.lm.runtime.REFERENCE_EVENT``) so that an LM's speed figure can say
whether it came from the dequantizing reference rather than a deployed kernel.

Public functions (``x`` is ``[..., K]``; the result is ``[..., N]`` in ``x.dtype``):

* ``w8a16_linear(x, qweight, scales, zeros=None, bias=None, group_size=None)``
* ``w4a16_linear(x, qweight, scales, zeros=None, bias=None, group_size=128)``
* ``w8a8_linear(x, qweight, scales, zeros=None, bias=None)``: quantizes ``x`` per token first.
* ``backend_for(device) -> "triton" | "reference"`` and ``reset_backend_choice()`` (tests).

The Triton backend needs fp16/bf16 activations (fp32 would silently run tl.dot in TF32); an fp32
model on CUDA gets a TypeError saying so.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from modelpress.kernels._checks import REFERENCE_DTYPES
from modelpress.lm.runtime import REFERENCE_EVENT

BACKENDS = ("triton", "reference")
ENV_VAR = "MODELPRESS_KERNELS"

_decisions: dict[str, str] = {}


def backend_for(device: torch.device | str) -> str:
    """The backend used for tensors on ``device`` (decided on first use, then cached)."""
    device_type = torch.device(device).type
    if device_type not in _decisions:
        _decisions[device_type] = _decide(device_type)
    return _decisions[device_type]


def reset_backend_choice() -> None:
    """Forget the cached decisions (tests that change ``MODELPRESS_KERNELS``)."""
    _decisions.clear()


def _decide(device_type: str) -> str:
    override = os.environ.get(ENV_VAR, "").strip().lower()
    if override:
        if override not in BACKENDS:
            raise ValueError(f"{ENV_VAR}={override!r}: expected one of {BACKENDS}")
        if override == "triton":
            _require_triton(device_type)
        return override
    return "triton" if device_type == "cuda" and _triton_importable() else "reference"


def _triton_importable() -> bool:
    from modelpress.kernels._triton_common import HAS_TRITON

    return HAS_TRITON


def _require_triton(device_type: str) -> None:
    from modelpress.kernels._triton_common import interpreting

    if not _triton_importable():
        raise RuntimeError(f"{ENV_VAR}=triton but triton is not installed "
                           "(pip install 'modelpress[kernels]')")
    if device_type != "cuda" and not interpreting():
        raise RuntimeError(f"{ENV_VAR}=triton on {device_type} tensors needs TRITON_INTERPRET=1")


def w8a16_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    group_size: int | None = None,
) -> torch.Tensor:
    """``x @ dequant(qweight).T + bias`` for int8 weights (``group_size=None``: per-channel)."""
    from modelpress.kernels import cpu_ops, w8a16

    return _weight_only(x, (qweight, scales, zeros, group_size, bias), w8a16.w8a16_matmul_triton,
                        w8a16.validate_inputs, cpu_ops.w8a16_cpu, w8a16.w8a16_reference)


def w4a16_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    group_size: int = 128,
) -> torch.Tensor:
    """``x @ dequant(qweight).T + bias`` for packed int4 weights."""
    from modelpress.kernels import cpu_ops, w4a16

    return _weight_only(x, (qweight, scales, zeros, group_size, bias), w4a16.w4a16_matmul_triton,
                        w4a16.validate_inputs, cpu_ops.w4a16_cpu, w4a16.w4a16_reference)


def _weight_only(x: torch.Tensor, weight_args: tuple, triton_matmul: Callable, validate: Callable,
                 cpu_fast: Callable, reference: Callable) -> torch.Tensor:
    """One dispatch for the weight-only ops: Triton on CUDA; elsewhere validate, then PyTorch's
    packed CPU op where it applies (returns None otherwise), else the reference."""

    def run(x2d: torch.Tensor) -> torch.Tensor:
        if backend_for(x2d.device) == "triton":
            return triton_matmul(x2d, *weight_args)
        validate(x2d, *weight_args, REFERENCE_DTYPES)
        fast = cpu_fast(x2d, *weight_args)
        if fast is not None:
            return fast
        with torch.profiler.record_function(REFERENCE_EVENT):  # what an LM's speed runtime looks for
            return reference(x2d, *weight_args)

    return _over_rows(x, run)


def w8a8_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token int8 quantization of ``x``, then the int8 x int8 GEMM (SmoothQuant-style).

    ``x`` should already carry the SmoothQuant smoothing (folded into the previous layer).
    """
    from modelpress.kernels import cpu_ops, w8a8

    def run(x2d: torch.Tensor) -> torch.Tensor:
        if backend_for(x2d.device) == "triton":
            x_q, x_scale = w8a8.quantize_per_token_triton(x2d)
            return w8a8.w8a8_matmul_triton(x_q, x_scale, qweight, scales, zeros, bias, x2d.dtype)
        if not x2d.is_floating_point():
            raise TypeError(f"w8a8: activations must be floating point, got {x2d.dtype}")
        x_q, x_scale = w8a8.quantize_per_token_reference(x2d)
        w8a8.validate_gemm_inputs(x_q, x_scale, qweight, scales, zeros, bias, x2d.dtype)
        fast = cpu_ops.w8a8_cpu(x_q, x_scale, qweight, scales, zeros, bias, x2d.dtype)
        if fast is not None:
            return fast
        with torch.profiler.record_function(REFERENCE_EVENT):
            return w8a8.w8a8_reference(x_q, x_scale, qweight, scales, zeros, bias, x2d.dtype)

    return _over_rows(x, run)


def _over_rows(x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply a 2-D matmul to ``[..., K]`` activations."""
    if x.dim() < 1:
        raise ValueError("activations must have at least one dimension [..., K]")
    x2d = x.reshape(-1, x.shape[-1])
    out = run(x2d)
    return out.reshape(*x.shape[:-1], out.shape[-1])
