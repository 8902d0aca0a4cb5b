"""W8A8 (the SmoothQuant path): int8 activations x int8 weights, int32 accumulation.

Activations are quantized per token (one fp32 scale per row, symmetric, -127..127, ties away from
zero); weights per output channel in the canonical int8 layout of
:mod:`modelpress.kernels.packing` (``qweight`` int8 ``[N, K]``, ``scales`` ``[N, 1]``, optional
int8 ``zeros`` ``[N, 1]``). ``y = (x_q @ (qweight - zeros).T) * x_scale * w_scale + bias``.

Public functions:

* ``quantize_per_token_reference(x) -> (x_q, x_scale)`` and ``quantize_per_token_triton(x)``.
* ``w8a8_reference(x_q, x_scale, qweight, scales, zeros=None, bias=None, out_dtype=fp16)``:
  exact integer math in float64 (exact for K < 2**38 / 127**2), any device; the test oracle.
* ``w8a8_matmul_triton(...)``: same signature (plus ``config=None`` to pin a
  ``triton.Config``), int8 tensor-core GEMM with an fp32 epilogue.
* ``validate_gemm_inputs(...)``: the launcher's checks (also run by the reference).

Prefer :func:`modelpress.kernels.dispatch.w8a8_linear`, which quantizes the activations too.
"""

from __future__ import annotations

import torch

from modelpress.kernels import _checks
from modelpress.kernels._triton_common import HAS_TRITON, autotune, launch, m_bucket, prune_block_m, tl, triton
from modelpress.kernels.packing import round_half_away

OP = "w8a8"
OUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def quantize_per_token_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 quantization: ``(x_q int8 [M, K], x_scale fp32 [M, 1])``."""
    xf = x.float()
    absmax = xf.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(absmax > 0, absmax / 127.0, torch.ones_like(absmax))
    x_q = round_half_away(xf / scale).clamp(-127, 127).to(torch.int8)
    return x_q, scale


def w8a8_reference(
    x_q: torch.Tensor,
    x_scale: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float16,
) -> torch.Tensor:
    """``(x_q @ (qweight - zeros).T) * x_scale * scales.T + bias`` (exact products in float64)."""
    validate_gemm_inputs(x_q, x_scale, qweight, scales, zeros, bias, out_dtype)
    w = qweight.double()
    if zeros is not None:
        w = w - zeros.double()
    acc = x_q.double() @ w.T
    out = acc * x_scale.double() * scales.double().reshape(1, -1)
    if bias is not None:
        out = out + bias.double()
    return out.to(out_dtype)


if HAS_TRITON:
    from modelpress.kernels._triton_common import round_half_away as _round_half_away_tl
    from modelpress.kernels._triton_common import swizzled_tile

    _GEMM_CONFIGS = [
        # Hopper int8 tensor cores: BLOCK_K >= 32 for int8 MMA; compiled for sm_90a offline.
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 128}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 128, "BLOCK_K": 128}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 128}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64}, num_warps=8, num_stages=3),
    ]
    _GEMM_INTERPRETER_CONFIG = triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 64})

    @triton.jit
    def _quantize_per_token_kernel(x_ptr, q_ptr, s_ptr, K, stride_xm, stride_xk,
                                   BLOCK_K: tl.constexpr):
        row = tl.program_id(0)
        x_row = x_ptr + row * stride_xm
        running_max = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(x_row + offs_k * stride_xk, mask=offs_k < K, other=0.0).to(tl.float32)
            running_max = tl.maximum(running_max, tl.abs(x))
        absmax = tl.max(running_max, axis=0)
        # div_rn: IEEE division like the reference (plain `/` may lower to an approximate divide
        # on GPUs and move the scale, or a code at a tie, by one step).
        scale = tl.where(absmax > 0, tl.math.div_rn(absmax, tl.full((), 127.0, tl.float32)), 1.0)
        tl.store(s_ptr + row, scale)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            x = tl.load(x_row + offs_k * stride_xk, mask=k_mask, other=0.0).to(tl.float32)
            q = _round_half_away_tl(tl.math.div_rn(x, scale))
            q = tl.minimum(tl.maximum(q, -127.0), 127.0)
            tl.store(q_ptr + row * K + offs_k, q.to(tl.int8), mask=k_mask)

    @autotune(_GEMM_CONFIGS, _GEMM_INTERPRETER_CONFIG, key=["m_bucket", "N", "K"],
              prune=prune_block_m)
    @triton.jit
    def _w8a8_gemm_kernel(
        x_ptr, xs_ptr, w_ptr, ws_ptr, z_ptr, b_ptr, out_ptr,
        M, N, K,
        stride_xm, stride_om, stride_on,
        m_bucket,  # autotune key only
        HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
        GROUP_M: tl.constexpr = 8,
    ):
        pid_m, pid_n = swizzled_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        m_mask = offs_m < M
        n_mask = offs_n < N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
        x_rowsum = tl.zeros((BLOCK_M,), dtype=tl.int32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
                        mask=m_mask[:, None] & k_mask[None, :], other=0)
            w = tl.load(w_ptr + offs_n[None, :] * K + offs_k[:, None],
                        mask=k_mask[:, None] & n_mask[None, :], other=0)
            acc = tl.dot(x, w, acc, out_dtype=tl.int32)
            if HAS_ZEROS:
                x_rowsum += tl.sum(x.to(tl.int32), axis=1)
        if HAS_ZEROS:
            # sum_k x (q - z) = sum_k x q - z sum_k x, still exact in int32.
            z = tl.load(z_ptr + offs_n, mask=n_mask, other=0).to(tl.int32)
            acc -= x_rowsum[:, None] * z[None, :]
        x_scale = tl.load(xs_ptr + offs_m, mask=m_mask, other=0.0).to(tl.float32)
        w_scale = tl.load(ws_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        out = acc.to(tl.float32) * x_scale[:, None] * w_scale[None, :]
        if HAS_BIAS:
            out += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
        out_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :] * stride_on
        tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def quantize_per_token_triton(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton version of :func:`quantize_per_token_reference` (one program per row)."""
    _checks.check_activations(x, OP, _checks.ACTIVATION_DTYPES + (torch.float32,))
    _checks.check_runnable_by_triton(x, OP)
    m, k = x.shape
    x_q = torch.empty((m, k), dtype=torch.int8, device=x.device)
    x_scale = torch.empty((m, 1), dtype=torch.float32, device=x.device)
    if m and k:
        block_k = min(triton.next_power_of_2(k), 4096)
        launch(_quantize_per_token_kernel, (m,), (x, x_q, x_scale, k, x.stride(0), x.stride(1)),
               {"BLOCK_K": block_k})
    return x_q, x_scale


def w8a8_matmul_triton(
    x_q: torch.Tensor,
    x_scale: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float16,
    config: triton.Config | None = None,
) -> torch.Tensor:
    """int8 x int8 -> int32 GEMM with per-token x per-channel scales, in one Triton kernel.

    ``config`` pins one kernel config instead of autotuning.
    """
    validate_gemm_inputs(x_q, x_scale, qweight, scales, zeros, bias, out_dtype)
    if x_q.stride(1) != 1:
        raise ValueError(f"{OP}: x_q must be contiguous along K")
    _checks.check_runnable_by_triton(x_q, OP)
    m, k = x_q.shape
    n = qweight.shape[0]
    out = torch.empty((m, n), dtype=out_dtype, device=x_q.device)
    if m == 0 or n == 0:
        return out
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)
    launch(_w8a8_gemm_kernel, grid, (
        x_q, x_scale, qweight, scales,
        zeros if zeros is not None else scales, bias if bias is not None else scales, out,
        m, n, k,
        x_q.stride(0), out.stride(0), out.stride(1),
        m_bucket(m),
    ), {"HAS_ZEROS": zeros is not None, "HAS_BIAS": bias is not None}, config)
    return out


def validate_gemm_inputs(
    x_q: torch.Tensor,
    x_scale: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> None:
    """Raise a clear error for any inconsistent input."""
    _checks.check_activations(x_q, OP, (torch.int8,))
    m, k = x_q.shape
    n = _checks.check_weight(qweight, OP, torch.int8, k, k_per_byte=1)
    if x_scale.dtype != torch.float32 or tuple(x_scale.shape) != (m, 1):
        raise ValueError(f"{OP}: x_scale must be float32 [M, 1]=[{m}, 1], got "
                         f"{x_scale.dtype} {list(x_scale.shape)}")
    if not x_scale.is_contiguous():
        raise ValueError(f"{OP}: x_scale must be contiguous")
    _checks.check_scales(scales, n, 1, OP)
    _checks.check_zeros(zeros, n, 1, torch.int8, OP)
    _checks.check_bias(bias, n, OP)
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"{OP}: out_dtype must be fp16, bf16 or fp32, got {out_dtype}")
    _checks.check_same_device(OP, x_q, x_scale, qweight, scales, zeros, bias)
