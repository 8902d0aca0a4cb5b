"""benchmarks/kernels.py runs end to end (on CPU: the reference backend, tiny shapes)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernels.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="scripts/gpu_check.sh runs the full table")
def test_benchmark_quick_run_writes_a_table(tmp_path):
    out = tmp_path / "kernels.md"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = out.read_text()
    for kernel in ("bfloat16 matmul", "w4a16 g128", "dequant+matmul int4", "w8a16", "w8a8"):
        assert f"| {kernel}" in table
    assert "Acceptance" in table and "(partial" not in table


def test_autotune_choices_lists_without_error():
    # Loaded from its path under its own name: a bare `import kernels` would be the repo's
    # kernels/ folder (which refuses to be imported under that name).
    spec = importlib.util.spec_from_file_location("modelpress_kernels_benchmark", SCRIPT)
    benchmark = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = benchmark  # dataclasses look their module up there
    spec.loader.exec_module(benchmark)
    assert isinstance(benchmark.autotune_choices(), list)
