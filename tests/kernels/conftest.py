"""Kernel tests run on CUDA when present, else through Triton's CPU interpreter.

TRITON_INTERPRET must be set before triton is imported: ``triton.jit`` decides at decoration
time whether a function (ours, and triton's own ``tl.cdiv``/``tl.sum``...) is compiled or
interpreted. If our kernel modules were already imported by another test module, they are
reloaded; if triton itself was imported without the interpreter, the tests cannot run on CPU
and say so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (the [kernels] extra)", allow_module_level=True)

ON_CUDA = torch.cuda.is_available()
if not ON_CUDA:
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "triton was imported before tests/kernels/conftest.py could turn on its CPU "
            "interpreter; run `TRITON_INTERPRET=1 pytest ...` or run tests/kernels on its own"
        )
    os.environ["TRITON_INTERPRET"] = "1"
else:
    # Tiny test shapes: tuning each would compile every config for each one. The benchmark
    # (scripts/gpu_check.sh) checks the tuned configs against the references instead.
    os.environ.setdefault("MODELPRESS_KERNELS_AUTOTUNE", "0")

# Reload in dependency order: the jit helpers first, then the kernels that call them.
for _name in ("_triton_common", "w8a16", "w4a16", "w8a8"):
    _module = sys.modules.get(f"modelpress.kernels.{_name}")
    if _module is not None:
        importlib.reload(_module)

DEVICE = torch.device("cuda" if ON_CUDA else "cpu")


@pytest.fixture
def device() -> torch.device:
    return DEVICE


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _assert_matches_reference(out: torch.Tensor, ref: torch.Tensor) -> None:
    """Elementwise |out - ref| <= tol * max|ref|: a few output ulps of fp16/bf16 rounding (the
    kernels round dequantized weights to the activation dtype; the references stay in fp32)."""
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert out.dtype == ref.dtype, (out.dtype, ref.dtype)
    tol = {torch.float16: 4e-3, torch.bfloat16: 2e-2, torch.float32: 1e-5}[ref.dtype]
    scale = float(ref.float().abs().max().clamp(min=1.0))
    torch.testing.assert_close(out.float().cpu(), ref.float().cpu(), rtol=0.0, atol=tol * scale)


@pytest.fixture
def assert_matches_reference():
    return _assert_matches_reference
