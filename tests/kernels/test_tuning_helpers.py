"""The small host-side decisions around the kernels: config pruning, GEMV paths, split-K."""

from __future__ import annotations

import triton

from modelpress.kernels import w4a16
from modelpress.kernels._triton_common import (
    NO_GROUP_TILE,
    choose_split_k,
    group_aligned,
    group_tile,
    m_bucket,
    prune_block_m,
)


def test_m_bucket_rounds_up_to_powers_of_two_and_caps():
    assert [m_bucket(m) for m in (1, 3, 16, 17, 64, 300, 4096)] == [1, 4, 16, 32, 64, 256, 256]


def test_prune_keeps_block_m_near_m():
    configs = w4a16._GEMM_CONFIGS
    for m, limit in ((1, 16), (16, 16), (33, 64), (64, 64), (256, 128)):
        kept = prune_block_m(configs, {"m_bucket": m_bucket(m)})
        assert kept and all(c.kwargs["BLOCK_M"] <= max(limit, 16) for c in kept)
    assert len(prune_block_m(configs, {"m_bucket": 256})) == len(configs)


def test_group_tile_only_for_power_of_two_groups_smaller_than_k():
    assert group_tile(128, 8192) == 128 and group_tile(32, 64) == 32
    assert group_tile(96, 192) == NO_GROUP_TILE  # not a power of two: gather path
    assert group_tile(256, 256) == NO_GROUP_TILE  # one group: per-channel
    # The sentinel never divides a BLOCK_K, so the kernels' `BLOCK_K % GROUP_TILE == 0` is False.
    assert all(c.kwargs["BLOCK_K"] % NO_GROUP_TILE != 0 for c in w4a16._GEMV_CONFIGS)


def test_group_aligned_heuristic():
    assert group_aligned({"group_size": 128, "BLOCK_K": 64})
    assert group_aligned({"group_size": 8192, "BLOCK_K": 128})
    assert not group_aligned({"group_size": 32, "BLOCK_K": 64})


def test_split_k_only_when_the_output_cannot_fill_the_device(monkeypatch):
    """The decision for a device of 4 SMs (what the interpreter reports) and one of 132 (an
    H100/H200), whatever device this test runs on."""
    from modelpress.kernels import _triton_common

    monkeypatch.setattr(_triton_common, "sm_count", lambda device_index: 4)
    assert choose_split_k(1, 8192, 8192, 0) == 1
    assert choose_split_k(1, 16, 8192, 0) == 4  # one 16-column program: split K four ways
    assert choose_split_k(1, 16, 1024, 0) == 2  # but keep >= 512 K-elements per split
    assert choose_split_k(1, 16, 512, 0) == 1
    assert choose_split_k(1, 256, 8192, 0) == 1  # 16 programs already fill 4 SMs
    monkeypatch.setattr(_triton_common, "sm_count", lambda device_index: 132)
    assert choose_split_k(1, 8192, 8192, 0) == 1  # 512 programs fill 132 SMs
    assert choose_split_k(1, 256, 8192, 0) == 16  # 16 programs: split until 256 >= 132
    assert choose_split_k(1, 16, 8192, 0) == 16  # capped by 512 K-elements per split
    assert choose_split_k(1, 16, 1024, 0) == 2


def test_sm_count_is_the_devices_own():
    import torch

    from modelpress.kernels._triton_common import interpreting, sm_count

    expected = 4 if interpreting() or not torch.cuda.is_available() else \
        torch.cuda.get_device_properties(0).multi_processor_count
    assert sm_count(0) == expected


def test_configs_are_valid_tiles():
    for config in w4a16._GEMM_CONFIGS + w4a16._GEMV_CONFIGS:
        for name, value in config.kwargs.items():
            assert value == triton.next_power_of_2(value), (name, value)


def test_split_k_outputs_are_zeroed_around_autotuning():
    """The tuner times a kernel many times; split-K GEMVs accumulate with atomics, so their output
    must be zeroed before each timed run and before the real one (else the first result is the
    sum of all the timing runs)."""
    from modelpress.kernels import w8a16

    for kernel in (w4a16._w4a16_gemv_kernel, w8a16._w8a16_gemv_kernel):
        assert kernel.reset_to_zero == ["out_ptr"]
