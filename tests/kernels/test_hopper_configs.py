"""Every Hopper autotune config computes the right answer (pinned, through the interpreter).

On a GPU the autotuner may pick any of them; the regular tests only exercise the interpreter's
one small config. Small shapes with partial tiles; group size 64 sends BLOCK_K <= 64 configs down
the group-aligned GEMM path and BLOCK_K = 128 down the per-weight one; 96 (not a power of two)
takes the GEMV's gather path, 128 its per-group one.
"""

from __future__ import annotations

import pytest
import torch

from modelpress.kernels import w4a16, w8a8, w8a16
from modelpress.kernels.packing import quantize_weight_groupwise
from modelpress.kernels.w8a8 import quantize_per_token_reference


def _ids(configs):
    return [",".join(f"{k}={v}" for k, v in c.all_kwargs().items()) for c in configs]


def _weights(bits, n, k, group_size, symmetric, device):
    w = torch.randn(n, k) + torch.rand(n, 1)
    return [None if t is None else t.to(device)
            for t in quantize_weight_groupwise(w, bits, group_size, symmetric, torch.float16)]


@pytest.mark.parametrize("config", w4a16._GEMM_CONFIGS, ids=_ids(w4a16._GEMM_CONFIGS))
def test_w4a16_gemm_configs(config, device, assert_matches_reference):
    q, s, z = _weights(4, 72, 192, 64, False, device)
    x = torch.randn(17, 192, dtype=torch.float16, device=device)
    out = w4a16.w4a16_matmul_triton(x, q, s, z, 64, config=config)
    assert_matches_reference(out, w4a16.w4a16_reference(x, q, s, z, 64))


@pytest.mark.parametrize("config", w4a16._GEMV_CONFIGS, ids=_ids(w4a16._GEMV_CONFIGS))
@pytest.mark.parametrize("group_size", [128, 96])
def test_w4a16_gemv_configs(config, group_size, device, assert_matches_reference):
    q, s, z = _weights(4, 40, 384, group_size, False, device)
    x = torch.randn(1, 384, dtype=torch.float16, device=device)
    out = w4a16.w4a16_matmul_triton(x, q, s, z, group_size, split_k=2, config=config)
    assert_matches_reference(out, w4a16.w4a16_reference(x, q, s, z, group_size))


@pytest.mark.parametrize("config", w8a16._GEMM_CONFIGS, ids=_ids(w8a16._GEMM_CONFIGS))
@pytest.mark.parametrize("group_size", [None, 64])
def test_w8a16_gemm_configs(config, group_size, device, assert_matches_reference):
    q, s, z = _weights(8, 72, 192, group_size, False, device)
    x = torch.randn(17, 192, dtype=torch.float16, device=device)
    out = w8a16.w8a16_matmul_triton(x, q, s, z, group_size, config=config)
    assert_matches_reference(out, w8a16.w8a16_reference(x, q, s, z, group_size))


@pytest.mark.parametrize("config", w8a16._GEMV_CONFIGS, ids=_ids(w8a16._GEMV_CONFIGS))
@pytest.mark.parametrize("group_size", [None, 128, 96])
def test_w8a16_gemv_configs(config, group_size, device, assert_matches_reference):
    q, s, z = _weights(8, 40, 384, group_size, False, device)
    x = torch.randn(1, 384, dtype=torch.float16, device=device)
    out = w8a16.w8a16_matmul_triton(x, q, s, z, group_size, split_k=2, config=config)
    assert_matches_reference(out, w8a16.w8a16_reference(x, q, s, z, group_size))


@pytest.mark.parametrize("config", w8a8._GEMM_CONFIGS, ids=_ids(w8a8._GEMM_CONFIGS))
def test_w8a8_gemm_configs(config, device, assert_matches_reference):
    q, s, z = _weights(8, 72, 192, None, False, device)
    x = torch.randn(17, 192, dtype=torch.float16, device=device)
    x_q, x_scale = quantize_per_token_reference(x)
    out = w8a8.w8a8_matmul_triton(x_q, x_scale, q, s, z, None, torch.float16, config=config)
    ref = w8a8.w8a8_reference(x_q, x_scale, q, s, z, None, torch.float16)
    assert_matches_reference(out, ref)
