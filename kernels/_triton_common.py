"""Shared Triton plumbing for the kernel files: optional import, interpreter mode, autotune, tiles.

Not public API. Importing this module imports triton when it is installed (and nothing fails when
it is not: ``HAS_TRITON`` is then False and the kernel files define only their references).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # the [kernels] extra is not installed: references still work
    triton = None
    tl = None
    HAS_TRITON = False

# Rows up to this count take the GEMV path: no tl.dot (whose tiles need M >= 16), one program
# per row sharing each weight tile through L2. Beyond it, a 16-row tensor-core tile wins.
GEMV_MAX_M = 4


def interpreting() -> bool:
    """True when Triton runs kernels with its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def autotune_enabled() -> bool:
    """False under the interpreter or with MODELPRESS_KERNELS_AUTOTUNE=0 (the CUDA unit tests:
    tuning every tiny test shape would compile each config for each one)."""
    return not interpreting() and os.environ.get("MODELPRESS_KERNELS_AUTOTUNE", "1") != "0"


def autotune(
    configs: Sequence[Any],
    interpreter_config: Any,
    key: list[str],
    prune: Callable[..., list[Any]] | None = None,
    reset_to_zero: list[str] | None = None,
) -> Callable[[Any], Any]:
    """``triton.autotune`` over the Hopper configs, or over one small config when tuning is off.

    Autotuning in interpreter mode would run every config through numpy: slow and meaningless.
    The small config is also valid on GPUs. Decided when the kernel module is imported.
    ``reset_to_zero`` names outputs that kernels accumulate into (split-K atomics): the tuner
    runs the kernel many times, so they are zeroed before each timed run and before the real one.
    """
    if not autotune_enabled():
        return triton.autotune(configs=[interpreter_config], key=key, reset_to_zero=reset_to_zero)
    prune_by = {"early_config_prune": prune} if prune is not None else None
    return triton.autotune(configs=list(configs), key=key, prune_configs_by=prune_by,
                           reset_to_zero=reset_to_zero)


def m_bucket(m: int) -> int:
    """Autotune key for M: the next power of two (capped), so each batch size range tunes once."""
    return min(triton.next_power_of_2(max(m, 1)), 256)


def prune_block_m(configs: list[Any], named_args: dict[str, Any], **_: Any) -> list[Any]:
    """Drop GEMM configs whose BLOCK_M is far larger than M: they only waste tensor-core work."""
    limit = max(16, named_args["m_bucket"])
    kept = [c for c in configs if c.kwargs["BLOCK_M"] <= limit]
    return kept or list(configs)


@functools.cache
def sm_count(device_index: int) -> int:
    """Streaming multiprocessors of a CUDA device (the interpreter pretends to have 4)."""
    import torch

    if interpreting() or not torch.cuda.is_available():
        return 4
    return torch.cuda.get_device_properties(device_index).multi_processor_count


# A power of two above any BLOCK_K: "no whole groups per tile", so the GEMV kernels' test
# `BLOCK_K % GROUP_TILE == 0` fails without a separate flag (a compiled `a and b` on constexprs
# would evaluate both sides, and `BLOCK_K % 0` cannot compile).
NO_GROUP_TILE = 1 << 30


def group_tile(group_size: int, k: int) -> int:
    """Constexpr group size for the GEMV kernels' per-group fast path (NO_GROUP_TILE if none).

    The fast path lays a tile out as [groups, group_size] (tl.arange needs powers of two) and is
    compiled per group size; per-channel (one group of K) would compile per K, so it is left out.
    """
    power_of_two = group_size & (group_size - 1) == 0
    applies = power_of_two and 2 <= group_size <= 256 and group_size < k
    return group_size if applies else NO_GROUP_TILE


def launch(
    kernel: Any, grid: Any, args: tuple, kwargs: dict[str, Any], config: Any = None
) -> None:
    """Run a kernel on the device of its first argument (a tensor).

    Triton launches on the *current* CUDA device: without the guard, tensors on cuda:1 while
    cuda:0 is current would be read through the wrong device's address space.
    With ``config`` (a triton.Config) pinned, autotuning is bypassed: the tests run every Hopper
    config through the interpreter that way.
    """
    import contextlib

    import torch

    device = args[0].device
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        if config is None:
            kernel[grid](*args, **kwargs)
        else:
            kernel.fn[grid](*args, **kwargs, **config.all_kwargs())


def group_aligned(args: dict[str, Any]) -> bool:
    """Heuristic for the GEMM kernels: does every BLOCK_K tile lie inside one quantization group?
    Then each tile needs one scale (and zero-point) per column instead of one per weight."""
    return args["group_size"] % args["BLOCK_K"] == 0


def choose_split_k(m: int, n: int, k: int, device_index: int, smallest_block_n: int = 16) -> int:
    """Split K only when the output alone cannot fill the GPU (decode with a small N).

    Splitting costs a zeroed fp32 buffer, atomics and a cast, so it is a last resort: with
    ``smallest_block_n`` columns per program, one full wave of programs needs no split.
    """
    programs = m * triton.cdiv(n, smallest_block_n)
    split = 1
    # Keep at least 512 K-elements per split so each program still streams a useful chunk.
    while programs * split < sm_count(device_index) and k // (split * 2) >= 512:
        split *= 2
    return split


if HAS_TRITON:

    @triton.jit
    def swizzled_tile(
        pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr
    ):
        """Map a 1-D program id to (pid_m, pid_n) in GROUP_M-row bands, so that programs running
        together share weight tiles in L2."""
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        num_pid_in_group = GROUP_M * num_pid_n
        group_id = pid // num_pid_in_group
        first_pid_m = group_id * GROUP_M
        group_rows = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
        pid_m = first_pid_m + ((pid % num_pid_in_group) % group_rows)
        pid_n = (pid % num_pid_in_group) // group_rows
        return pid_m, pid_n

    @triton.jit
    def dot_accumulate(a, b, acc, UPCAST: tl.constexpr):
        """acc += a @ b. UPCAST feeds fp32 to tl.dot: the CPU interpreter (Triton 3.9) returns
        garbage for bf16 tl.dot, so interpreter runs with bf16 activations upcast the tiles;
        on GPUs UPCAST is always False and bf16 goes to the tensor cores."""
        if UPCAST:
            acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
        else:
            acc = tl.dot(a, b, acc)
        return acc

    @triton.jit
    def tile_scale_and_zero(
        s_ptr, z_ptr, offs_n, n_mask, offs_k, k_mask, k0, group_size, n_groups,
        HAS_ZEROS: tl.constexpr, GROUP_ALIGNED: tl.constexpr, IMPLIED_ZERO: tl.constexpr,
    ):
        """fp32 scale and zero-point of a [BLOCK_K, BLOCK_N] weight tile, broadcastable to it.

        GROUP_ALIGNED: the tile is inside one group, so one [1, BLOCK_N] row of each is loaded.
        Otherwise every weight gathers its group's values ([BLOCK_K, BLOCK_N], L1 hits): more
        registers and load instructions, for group sizes smaller than BLOCK_K.
        """
        if GROUP_ALIGNED:
            offs = offs_n * n_groups + k0 // group_size
            scale = tl.load(s_ptr + offs, mask=n_mask, other=0.0).to(tl.float32)[None, :]
            if HAS_ZEROS:
                zero = tl.load(z_ptr + offs, mask=n_mask, other=0).to(tl.float32)[None, :]
            else:
                zero = tl.zeros_like(scale) + IMPLIED_ZERO
        else:
            offs = offs_n[None, :] * n_groups + (offs_k // group_size)[:, None]
            mask = k_mask[:, None] & n_mask[None, :]
            scale = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            if HAS_ZEROS:
                zero = tl.load(z_ptr + offs, mask=mask, other=0).to(tl.float32)
            else:
                zero = tl.zeros_like(scale) + IMPLIED_ZERO
        return scale, zero

    @triton.jit
    def round_half_away(v):
        """Round to nearest, ties away from zero (same rule as packing.round_half_away)."""
        return tl.where(v >= 0, tl.floor(v + 0.5), -tl.floor(-v + 0.5))
