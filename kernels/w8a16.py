"""W8A16: int8 weights (per-channel or per-group scales, optional zero-points) x fp16/bf16.

Weights use the canonical int8 layout of :mod:`modelpress.kernels.packing` (``qweight`` int8
``[N, K]``, ``scales`` ``[N, K // group_size]``, ``zeros`` int8 or ``None``). Computes
``y = x @ dequant(qweight).T + bias`` without materializing the dequantized weight.

Public functions:

* ``w8a16_reference(x, qweight, scales, zeros=None, group_size=None, bias=None)``: PyTorch, fp32
  math, any device; the oracle of the tests.
* ``w8a16_matmul_triton(x, qweight, scales, zeros=None, group_size=None, bias=None,
  split_k=None, config=None)``: the fused Triton kernels (GEMV for M <= 4, tiled GEMM
  otherwise); ``config`` pins a ``triton.Config`` instead of autotuning.
* ``validate_inputs(...)``: the launcher's checks (also run by the reference and the dispatch).

``group_size=None`` means per-channel (``scales`` is ``[N, 1]``). Prefer
:func:`modelpress.kernels.dispatch.w8a16_linear`, which picks the backend.
"""

from __future__ import annotations

import torch

from modelpress.kernels import _checks
from modelpress.kernels._triton_common import (
    GEMV_MAX_M,
    HAS_TRITON,
    autotune,
    choose_split_k,
    group_aligned,
    group_tile,
    interpreting,
    launch,
    m_bucket,
    prune_block_m,
    tl,
    triton,
)
from modelpress.kernels.packing import dequantize_weight_groupwise

OP = "w8a16"


def w8a16_reference(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    group_size: int | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x @ dequant(qweight).T + bias`` in fp32, returned in ``x.dtype`` (fp32 ``x`` allowed)."""
    dtypes = _checks.REFERENCE_DTYPES
    group_size = validate_inputs(x, qweight, scales, zeros, group_size, bias, dtypes)
    w = dequantize_weight_groupwise(qweight, scales, zeros, bits=8, group_size=group_size)
    out = x.float() @ w.T
    if bias is not None:
        out = out + bias.float()
    return out.to(x.dtype)


if HAS_TRITON:
    from modelpress.kernels._triton_common import dot_accumulate, swizzled_tile, tile_scale_and_zero

    _GEMM_CONFIGS = [
        # Hopper (H100/H200). Chosen by compiling each for sm_90a offline (no GPU in development):
        # none spills; registers 70-254. autotune picks per (M bucket, N, K, group size).
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 128}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=8, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64}, num_warps=8, num_stages=3),
    ]
    # Interpreter: one config, small enough that the test shapes leave partial tiles in M, N, K.
    _GEMM_INTERPRETER_CONFIG = triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 64})

    _GEMV_CONFIGS = [
        # Bandwidth-bound decode: 16-32 bytes of weights per thread per step and 48-96 registers
        # (compiled for sm_90a offline), so many CTAs per SM keep enough loads in flight.
        triton.Config({"BLOCK_N": 4, "BLOCK_K": 512}, num_warps=2, num_stages=2),
        triton.Config({"BLOCK_N": 8, "BLOCK_K": 256}, num_warps=2, num_stages=2),
        triton.Config({"BLOCK_N": 8, "BLOCK_K": 512}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_N": 8, "BLOCK_K": 1024}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_N": 16, "BLOCK_K": 256}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_N": 16, "BLOCK_K": 512}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_N": 32, "BLOCK_K": 128}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_N": 32, "BLOCK_K": 256}, num_warps=8, num_stages=2),
    ]
    _GEMV_INTERPRETER_CONFIG = triton.Config({"BLOCK_N": 32, "BLOCK_K": 64})

    @autotune(_GEMM_CONFIGS, _GEMM_INTERPRETER_CONFIG, key=["m_bucket", "N", "K", "group_size"],
              prune=prune_block_m)
    @triton.heuristics({"GROUP_ALIGNED": group_aligned})
    @triton.jit
    def _w8a16_gemm_kernel(
        x_ptr, w_ptr, s_ptr, z_ptr, b_ptr, out_ptr,
        M, N, K, group_size, n_groups,
        stride_xm, stride_xk, stride_om, stride_on,
        m_bucket,  # autotune key only
        HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr, PER_CHANNEL: tl.constexpr,
        UPCAST_DOT: tl.constexpr, GROUP_ALIGNED: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
        GROUP_M: tl.constexpr = 8,
    ):
        pid_m, pid_n = swizzled_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        m_mask = offs_m < M
        n_mask = offs_n < N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        x_rowsum = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                        mask=m_mask[:, None] & k_mask[None, :], other=0.0)
            wk_mask = k_mask[:, None] & n_mask[None, :]
            q = tl.load(w_ptr + offs_n[None, :] * K + offs_k[:, None], mask=wk_mask, other=0)
            if PER_CHANNEL:
                # int8 codes are exact in fp16/bf16: scale and zero-point wait for the epilogue.
                # (Via fp32: the 3.9 interpreter turns int8 -> bf16 casts into bit reinterprets.)
                w = q.to(tl.float32).to(x.dtype)
                if HAS_ZEROS:
                    x_rowsum += tl.sum(x.to(tl.float32), axis=1)
            else:
                scale, zero = tile_scale_and_zero(
                    s_ptr, z_ptr, offs_n, n_mask, offs_k, k_mask, k0, group_size, n_groups,
                    HAS_ZEROS, GROUP_ALIGNED, 0.0,
                )
                w = ((q.to(tl.float32) - zero) * scale).to(x.dtype)
            acc = dot_accumulate(x, w, acc, UPCAST_DOT)
        if PER_CHANNEL:
            # sum_k x (q - z) s = s (sum_k x q - z sum_k x)
            if HAS_ZEROS:
                z = tl.load(z_ptr + offs_n, mask=n_mask, other=0).to(tl.float32)
                acc -= x_rowsum[:, None] * z[None, :]
            acc *= tl.load(s_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
        if HAS_BIAS:
            acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
        out_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :] * stride_on
        tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])

    @autotune(_GEMV_CONFIGS, _GEMV_INTERPRETER_CONFIG, key=["N", "K", "SPLIT_K", "GROUP_TILE"],
              reset_to_zero=["out_ptr"])  # split-K programs atomically add into out_ptr
    @triton.jit
    def _w8a16_gemv_kernel(
        x_ptr, w_ptr, s_ptr, z_ptr, b_ptr, out_ptr,
        N, K, group_size, n_groups,
        stride_xm, stride_xk, stride_om, stride_on,
        HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr, PER_CHANNEL: tl.constexpr,
        GROUP_TILE: tl.constexpr, SPLIT_K: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        # Grid (rows, N tiles, K splits), rows fastest: the programs of one weight tile run
        # together and share it in L2, so the weight streams from HBM once.
        row = tl.program_id(0)
        offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        k_chunk = tl.cdiv(tl.cdiv(K, SPLIT_K), BLOCK_K) * BLOCK_K
        k_begin = tl.program_id(2) * k_chunk
        k_end = tl.minimum(k_begin + k_chunk, K)
        x_row = x_ptr + row * stride_xm
        acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        if PER_CHANNEL:
            # sum_k x (q - z) s = s (sum_k x q - z sum_k x): scale and zero-point at the end.
            x_sum = tl.zeros((BLOCK_K,), dtype=tl.float32)
            for k0 in range(k_begin, k_end, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                k_mask = offs_k < k_end
                x = tl.load(x_row + offs_k * stride_xk, mask=k_mask, other=0.0).to(tl.float32)
                w = tl.load(w_ptr + offs_n[:, None] * K + offs_k[None, :],
                            mask=n_mask[:, None] & k_mask[None, :], other=0)
                acc += tl.sum(w.to(tl.float32) * x[None, :], axis=1)
                x_sum += x
            if HAS_ZEROS:
                acc -= tl.sum(x_sum) * tl.load(z_ptr + offs_n, mask=n_mask, other=0).to(tl.float32)
            acc *= tl.load(s_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        elif BLOCK_K % GROUP_TILE == 0:
            # Whole groups per tile, viewed as [BLOCK_N, groups, GROUP_TILE]: the same
            # factoring per group, so scales and zero-points are loaded once per group.
            for k0 in range(k_begin, k_end, BLOCK_K):
                offs_g = k0 // GROUP_TILE + tl.arange(0, BLOCK_K // GROUP_TILE)
                offs_k = offs_g[:, None] * GROUP_TILE + tl.arange(0, GROUP_TILE)[None, :]
                k_mask = offs_k < k_end
                x = tl.load(x_row + offs_k * stride_xk, mask=k_mask, other=0.0).to(tl.float32)
                w = tl.load(w_ptr + offs_n[:, None, None] * K + offs_k[None, :, :],
                            mask=n_mask[:, None, None] & k_mask[None, :, :], other=0)
                dots = tl.sum(w.to(tl.float32) * x[None, :, :], axis=2)
                g_mask = n_mask[:, None] & (offs_g * GROUP_TILE < k_end)[None, :]
                group_offs = offs_n[:, None] * n_groups + offs_g[None, :]
                if HAS_ZEROS:
                    zero = tl.load(z_ptr + group_offs, mask=g_mask, other=0).to(tl.float32)
                    dots -= zero * tl.sum(x, axis=1)[None, :]
                scale = tl.load(s_ptr + group_offs, mask=g_mask, other=0.0).to(tl.float32)
                acc += tl.sum(scale * dots, axis=1)
        else:
            # Any group size: gather the scale and zero-point of every weight (L1 hits).
            for k0 in range(k_begin, k_end, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                k_mask = offs_k < k_end
                x = tl.load(x_row + offs_k * stride_xk, mask=k_mask, other=0.0).to(tl.float32)
                w_mask = n_mask[:, None] & k_mask[None, :]
                w = tl.load(w_ptr + offs_n[:, None] * K + offs_k[None, :], mask=w_mask, other=0)
                w = w.to(tl.float32)
                group_offs = offs_n[:, None] * n_groups + (offs_k // group_size)[None, :]
                if HAS_ZEROS:
                    w -= tl.load(z_ptr + group_offs, mask=w_mask, other=0).to(tl.float32)
                w *= tl.load(s_ptr + group_offs, mask=w_mask, other=0.0).to(tl.float32)
                acc += tl.sum(w * x[None, :], axis=1)
        # Separate ifs: HAS_BIAS is a compile-time switch, the split index a runtime value.
        if HAS_BIAS:  # noqa: SIM102
            if tl.program_id(2) == 0:  # only one split adds the bias
                acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        out_ptrs = out_ptr + row * stride_om + offs_n * stride_on
        if SPLIT_K == 1:
            tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=n_mask)
        else:
            tl.atomic_add(out_ptrs, acc, mask=n_mask)


def w8a16_matmul_triton(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    group_size: int | None = None,
    bias: torch.Tensor | None = None,
    split_k: int | None = None,
    config: triton.Config | None = None,
) -> torch.Tensor:
    """Fused dequant-GEMM ``x @ dequant(qweight).T + bias`` with Triton; ``x`` is ``[M, K]``.

    ``split_k`` (GEMV path only) overrides the heuristic; tests use it to cover both paths.
    ``config`` pins one kernel config (GEMM or GEMV, by M) instead of autotuning.
    """
    dtypes = _checks.ACTIVATION_DTYPES
    group_size = validate_inputs(x, qweight, scales, zeros, group_size, bias, dtypes)
    _checks.check_runnable_by_triton(x, OP)
    m, k = x.shape
    n = qweight.shape[0]
    n_groups = k // group_size
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return out
    flags = {"HAS_ZEROS": zeros is not None, "HAS_BIAS": bias is not None,
             "PER_CHANNEL": n_groups == 1}
    zeros_arg = zeros if zeros is not None else scales  # never read when HAS_ZEROS is False
    bias_arg = bias if bias is not None else scales
    if m <= GEMV_MAX_M:
        return _launch_gemv(x, qweight, scales, zeros_arg, bias_arg, out, group_size, n_groups,
                            split_k, flags, config)
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)
    launch(_w8a16_gemm_kernel, grid, (
        x, qweight, scales, zeros_arg, bias_arg, out,
        m, n, k, group_size, n_groups,
        x.stride(0), x.stride(1), out.stride(0), out.stride(1),
        m_bucket(m),
    ), {
        "UPCAST_DOT": interpreting() and x.dtype == torch.bfloat16,
        **flags,
    }, config)
    return out


def validate_inputs(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int | None,
    bias: torch.Tensor | None,
    activation_dtypes: tuple[torch.dtype, ...],
) -> int:
    """Raise a clear error for any inconsistent input; returns the effective group size."""
    _checks.check_activations(x, OP, activation_dtypes)
    k = x.shape[1]
    n = _checks.check_weight(qweight, OP, torch.int8, k, k_per_byte=1)
    group_size = k if group_size is None else group_size
    _checks.check_group_size(group_size, k, OP)
    _checks.check_scales(scales, n, k // group_size, OP)
    _checks.check_zeros(zeros, n, k // group_size, torch.int8, OP)
    _checks.check_bias(bias, n, OP)
    _checks.check_same_device(OP, x, qweight, scales, zeros, bias)
    return group_size


def _launch_gemv(x, qweight, scales, zeros_arg, bias_arg, out, group_size, n_groups, split_k,
                 flags, config) -> torch.Tensor:
    m, k = x.shape
    n = qweight.shape[0]
    if split_k is None:
        split_k = choose_split_k(m, n, k, x.device.index or 0)
    if split_k < 1:
        raise ValueError(f"{OP}: split_k must be >= 1, got {split_k}")
    # Split-K partial sums meet in an fp32 buffer through atomics, then round once.
    target = out if split_k == 1 else torch.zeros((m, n), dtype=torch.float32, device=x.device)
    grid = lambda meta: (m, triton.cdiv(n, meta["BLOCK_N"]), split_k)
    launch(_w8a16_gemv_kernel, grid, (
        x, qweight, scales, zeros_arg, bias_arg, target,
        n, k, group_size, n_groups,
        x.stride(0), x.stride(1), target.stride(0), target.stride(1),
    ), {"GROUP_TILE": group_tile(group_size, k), "SPLIT_K": split_k, **flags}, config)
    return out if split_k == 1 else target.to(x.dtype)
