"""Every kernel variant compiles for Hopper (sm_90a), checked on machines without a GPU.

The interpreter runs kernels as Python and accepts things the compiler rejects (and the other way
round), so the CPU tests alone could pass with kernels that never build on an H100. Triton's
NVIDIA backend (ptxas included) compiles to a cubin without a driver; this test does so in a
subprocess, since this session's kernels are interpreted. Run directly, it prints each variant.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_all_kernel_variants_compile_for_sm90() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # silences Triton 3.9's default-change warning
    result = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    if result.returncode == 3:
        pytest.skip(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _compile_all() -> int:
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from triton.runtime.jit import JITFunction

        target = GPUTarget("cuda", 90, 32)
    except ImportError as exc:
        print(f"no Triton NVIDIA backend to compile with: {exc}")
        return 3

    from modelpress.kernels import w4a16, w8a8, w8a16
    from modelpress.kernels._triton_common import NO_GROUP_TILE

    def build(kernel, types: dict[str, str], constexprs: dict, config) -> None:
        fn = kernel
        while not isinstance(fn, JITFunction):  # Autotuner -> Heuristics -> JITFunction
            fn = fn.fn
        constexprs = {**constexprs, **(config.kwargs if config else {})}
        # As launched: unit strides specialize to 1, other ints and pointers are 16-aligned.
        constexprs.update({n: 1 for n in ("stride_xk", "stride_on") if n in fn.arg_names})
        signature = {n: "constexpr" if n in constexprs else types.get(n, "i32")
                     for n in fn.arg_names}
        attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(fn.arg_names)
                 if signature[n] != "constexpr" and n not in ("n_groups", "M", "group_size")}
        options = {"num_warps": config.num_warps, "num_stages": config.num_stages} if config else {}
        triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options)
        print("ok", fn.__name__, constexprs, flush=True)

    half = {"x_ptr": "*fp16", "s_ptr": "*fp16", "b_ptr": "*fp16", "out_ptr": "*fp16"}
    int4 = {**half, "w_ptr": "*u8", "z_ptr": "*u8"}
    int8 = {**half, "w_ptr": "*i8", "z_ptr": "*i8"}
    bf16 = {**int4, "x_ptr": "*bf16", "out_ptr": "*fp32"}
    gemm = {"HAS_ZEROS": True, "HAS_BIAS": True, "UPCAST_DOT": False}
    # One config per kernel (the first Hopper one), every constexpr branch of each kernel.
    build(w4a16._w4a16_gemm_kernel, int4, {**gemm, "GROUP_ALIGNED": True}, w4a16._GEMM_CONFIGS[0])
    build(w4a16._w4a16_gemm_kernel, {**int4, "x_ptr": "*bf16", "out_ptr": "*bf16"},
          {**gemm, "HAS_ZEROS": False, "GROUP_ALIGNED": False}, w4a16._GEMM_CONFIGS[3])
    for group_tile, zeros, split in ((128, True, 1), (NO_GROUP_TILE, False, 2)):
        flags = {"HAS_ZEROS": zeros, "HAS_BIAS": True, "GROUP_TILE": group_tile, "SPLIT_K": split}
        build(w4a16._w4a16_gemv_kernel, int4 if split == 1 else bf16, flags, w4a16._GEMV_CONFIGS[3])
    for per_channel, aligned in ((True, False), (False, True), (False, False)):
        flags = {**gemm, "PER_CHANNEL": per_channel, "GROUP_ALIGNED": aligned}
        build(w8a16._w8a16_gemm_kernel, int8, flags, w8a16._GEMM_CONFIGS[0])
    for per_channel, group_tile in ((True, NO_GROUP_TILE), (False, 128), (False, NO_GROUP_TILE)):
        flags = {"HAS_ZEROS": True, "HAS_BIAS": True, "PER_CHANNEL": per_channel,
                 "GROUP_TILE": group_tile, "SPLIT_K": 2}
        build(w8a16._w8a16_gemv_kernel, {**int8, "out_ptr": "*fp32"}, flags,
              w8a16._GEMV_CONFIGS[4])
    w8a8_types = {"x_ptr": "*i8", "xs_ptr": "*fp32", "w_ptr": "*i8", "ws_ptr": "*fp32",
                  "z_ptr": "*i8", "b_ptr": "*bf16", "out_ptr": "*bf16"}
    build(w8a8._w8a8_gemm_kernel, w8a8_types, {"HAS_ZEROS": True, "HAS_BIAS": True},
          w8a8._GEMM_CONFIGS[0])
    build(w8a8._quantize_per_token_kernel, {"x_ptr": "*fp16", "q_ptr": "*i8", "s_ptr": "*fp32"},
          {"BLOCK_K": 1024}, None)
    return 0


if __name__ == "__main__":
    sys.exit(_compile_all())
