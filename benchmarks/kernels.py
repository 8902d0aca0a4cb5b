"""Benchmark the quantized matmuls against fp16 cuBLAS and dequantize-then-matmul.

On CUDA: M in {1, 16, 64, 256}, K = N in {4096, 8192}; every kernel is timed with
``triton.testing.do_bench`` (L2 flushed between runs) and checked against its fp32 reference, and
the table reports ms, TFLOP/s, effective GB/s (the bytes the operation must move: packed weights,
scales, zero-points, activations, output) and % of the device's measured copy bandwidth
(a large device-to-device copy, read + write). The issue-7 acceptance targets are evaluated at
the end. On CPU it runs tiny shapes through the dispatch's reference backend, as a smoke test.

    python benchmarks/kernels.py [--out kernels.md] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from modelpress.kernels import dispatch
from modelpress.kernels.packing import dequantize_weight_groupwise, quantize_weight_groupwise
from modelpress.kernels.w4a16 import w4a16_reference
from modelpress.kernels.w8a8 import quantize_per_token_reference, w8a8_reference
from modelpress.kernels.w8a16 import w8a16_reference

GROUP_SIZE = 128
CUDA_MS = (1, 16, 64, 256)
CUDA_SIZES = (4096, 8192)
CPU_MS = (1, 16)
CPU_SIZES = (256, 512)
MAX_REL_ERROR = 2e-2  # a tuned config that computes something else fails the run


@dataclass
class Row:
    kernel: str
    m: int
    k: int
    n: int
    ms: float
    bytes_moved: int
    rel_error: float | None = None
    speedup: float | None = None  # fp16 matmul time / this time

    @property
    def tflops(self) -> float:
        return 2 * self.m * self.k * self.n / (self.ms * 1e-3) / 1e12

    @property
    def gbps(self) -> float:
        return self.bytes_moved / (self.ms * 1e-3) / 1e9


# --- timing --------------------------------------------------------------------------------------

def make_timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Milliseconds of fn: do_bench's median on CUDA (flushes L2); on CPU the best of 7 runs
    (a shared CPU's other jobs only ever add time, so the minimum is the least noisy)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return lambda fn: float(do_bench(fn, warmup=25, rep=100, return_mode="median"))

    def cpu_time(fn: Callable[[], object]) -> float:
        fn()
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        return min(samples)

    return cpu_time


Timer = Callable[[Callable[[], object]], float]


def copy_bandwidth_gbps(device: torch.device, timer: Timer) -> float:
    """Read + write bytes per second of a large copy (1 GiB on CUDA, 64 MiB on CPU)."""
    nbytes = (1 << 30) if device.type == "cuda" else (64 << 20)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return 2 * nbytes / (ms * 1e-3) / 1e9


# --- one shape -----------------------------------------------------------------------------------

def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp(min=1e-6))


def bench_shape(m: int, k: int, dtype: torch.dtype, device: torch.device,
                timer: Callable[[Callable[[], object]], float]) -> list[Row]:
    n = k
    w = torch.randn(n, k, device=device) / k**0.5
    x = torch.randn(m, k, device=device).to(dtype)
    w16 = w.to(dtype)
    out_bytes = m * n * x.element_size()
    act_bytes = m * k * x.element_size()
    rows = [Row("fp16 matmul" if dtype == torch.float16 else f"{_name(dtype)} matmul", m, k, n,
                timer(lambda: F.linear(x, w16)), w16.numel() * w16.element_size() + act_bytes
                + out_bytes)]

    q4 = quantize_weight_groupwise(w, 4, GROUP_SIZE, symmetric=False, scale_dtype=dtype)
    q4_bytes = _nbytes(*q4) + act_bytes + out_bytes
    ref4 = w4a16_reference(x, *q4, GROUP_SIZE)
    w4a16 = lambda: dispatch.w4a16_linear(x, *q4, group_size=GROUP_SIZE)
    rows.append(Row("w4a16 g128", m, k, n, timer(w4a16), q4_bytes, rel_error(w4a16(), ref4)))
    deq4 = lambda: F.linear(x, dequantize_weight_groupwise(*q4, 4, GROUP_SIZE, dtype))
    rows.append(Row("dequant+matmul int4", m, k, n, timer(deq4), q4_bytes, rel_error(deq4(), ref4)))

    q8 = quantize_weight_groupwise(w, 8, None, symmetric=True, scale_dtype=dtype)
    q8_bytes = _nbytes(*q8) + act_bytes + out_bytes
    w8a16 = lambda: dispatch.w8a16_linear(x, *q8)
    rows.append(Row("w8a16 per-channel", m, k, n, timer(w8a16), q8_bytes,
                    rel_error(w8a16(), w8a16_reference(x, *q8))))

    q8f = quantize_weight_groupwise(w, 8, None, symmetric=True, scale_dtype=torch.float32)
    x_q, x_scale = quantize_per_token_reference(x)
    ref8 = w8a8_reference(x_q, x_scale, *q8f, out_dtype=dtype)
    w8a8 = lambda: dispatch.w8a8_linear(x, *q8f)
    rows.append(Row("w8a8 (+act quant)", m, k, n, timer(w8a8), _nbytes(*q8f) + act_bytes
                    + out_bytes, rel_error(w8a8(), ref8)))

    rows.extend(_torchao_int4(m, k, n, w, x, timer, q4_bytes))
    fp16_ms = rows[0].ms
    for row in rows:
        row.speedup = fp16_ms / row.ms
    return rows


def _torchao_int4(m, k, n, w, x, timer, nbytes) -> list[Row]:
    """torchao's int4 weight-only Linear (bf16, group 128) where torchao is installed."""
    if x.device.type != "cuda" or importlib.util.find_spec("torchao") is None:
        return []
    try:
        from torchao.quantization import quantize_

        try:
            from torchao.quantization import Int4WeightOnlyConfig

            config = Int4WeightOnlyConfig(group_size=GROUP_SIZE)
        except ImportError:
            from torchao.quantization import int4_weight_only

            config = int4_weight_only(group_size=GROUP_SIZE)
        linear = torch.nn.Linear(k, n, bias=False, dtype=torch.bfloat16, device=x.device)
        linear.weight.data.copy_(w)
        quantize_(linear, config)
        xb = x.bfloat16()
        with torch.inference_mode():
            ms = timer(lambda: linear(xb))
        return [Row("torchao int4 wo (bf16)", m, k, n, ms, nbytes)]
    except Exception as exc:  # noqa: BLE001 -- an optional comparison must not sink the run
        print(f"torchao int4 skipped at M={m} K={k}: {exc!r}", file=sys.stderr)
        return []


def _nbytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- report --------------------------------------------------------------------------------------

def render(rows: list[Row], copy_gbps: float, header: str) -> str:
    lines = [header, "", f"Measured copy bandwidth: {copy_gbps:,.0f} GB/s (read + write)", "",
             ("| kernel | M | K=N | ms | TFLOP/s | eff. GB/s | % copy BW | vs dense matmul "
             "| max rel err |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        err = "" if r.rel_error is None else f"{r.rel_error:.1e}"
        lines.append(f"| {r.kernel} | {r.m} | {r.k} | {r.ms:.4f} | {r.tflops:.2f} | {r.gbps:,.0f} "
                     f"| {100 * r.gbps / copy_gbps:.0f}% | {r.speedup:.2f}x | {err} |")
    return "\n".join(lines)


def autotune_choices() -> list[str]:
    """What the autotuner picked per key, for whoever tunes the config lists next."""
    from modelpress.kernels import w4a16, w8a8, w8a16

    kernels = {
        "w4a16 gemm": w4a16._w4a16_gemm_kernel, "w4a16 gemv": w4a16._w4a16_gemv_kernel,
        "w8a16 gemm": w8a16._w8a16_gemm_kernel, "w8a16 gemv": w8a16._w8a16_gemv_kernel,
        "w8a8 gemm": w8a8._w8a8_gemm_kernel,
    }
    lines = []
    for name, kernel in kernels.items():
        for key, config in getattr(kernel, "cache", {}).items():
            lines.append(f"- {name} {key}: {config}")
    return lines


def acceptance(rows: list[Row], copy_gbps: float) -> list[str]:
    """Issue 7's GPU targets, as PASS/FAIL lines (only for shapes that were run)."""
    def find(kernel: str, m: int, k: int) -> Row | None:
        matches = (r for r in rows if r.kernel.startswith(kernel) and r.m == m and r.k == k)
        return next(matches, None)

    checks: list[tuple[str, Row | None, Callable[[Row], bool]]] = [
        ("W4A16 M=1 K=N=8192 >= 3.0x fp16", find("w4a16", 1, 8192), lambda r: r.speedup >= 3.0),
        ("W4A16 M=1 K=N=8192 >= 70% copy BW", find("w4a16", 1, 8192),
         lambda r: r.gbps >= 0.7 * copy_gbps),
        ("W8A16 M=1 K=N=8192 >= 1.8x fp16", find("w8a16", 1, 8192), lambda r: r.speedup >= 1.8),
        ("W4A16 M=64 K=N=8192 >= 1.0x fp16", find("w4a16", 64, 8192), lambda r: r.speedup >= 1.0),
        ("W8A16 M=64 K=N=8192 >= 1.0x fp16", find("w8a16", 64, 8192), lambda r: r.speedup >= 1.0),
    ]
    lines = []
    for name, row, ok in checks:
        if row is not None:
            lines.append(f"- {'PASS' if ok(row) else 'FAIL'}: {name} "
                         f"({row.speedup:.2f}x, {100 * row.gbps / copy_gbps:.0f}% BW)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--quick", action="store_true", help="one small shape (smoke test)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16  # CPU fp16 GEMM is slow
    ms_list, sizes = (CUDA_MS, CUDA_SIZES) if device.type == "cuda" else (CPU_MS, CPU_SIZES)
    if args.quick:
        ms_list, sizes = ms_list[:1], sizes[:1]
    torch.manual_seed(0)
    if device.type == "cpu":
        # A smoke run, often on a shared CI box: OpenMP regions of 2+ threads stall behind other
        # jobs' threads and the timings become noise, one thread does not.
        torch.set_num_threads(1)
    timer = make_timer(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    header = (f"## modelpress kernels on {name} (backend: {dispatch.backend_for(device)}, "
              f"{torch.get_num_threads()} CPU thread(s), "
              f"activations {_name(dtype)}, torch {torch.__version__})")
    print(header, flush=True)

    copy_gbps = copy_bandwidth_gbps(device, timer)
    rows: list[Row] = []
    with torch.inference_mode():
        for k in sizes:
            for m in ms_list:
                rows.extend(bench_shape(m, k, dtype, device, timer))
                print(f"done M={m} K=N={k}", flush=True)
                # Rewritten after every shape: a run cut short by a timeout keeps its rows.
                _write(args.out, render(rows, copy_gbps, header) + "\n\n(partial: running)\n")
    report = render(rows, copy_gbps, header)
    verdicts = acceptance(rows, copy_gbps) if device.type == "cuda" else [
        "- acceptance targets not evaluated: no GPU (CPU smoke run of the reference backend)"]
    wrong = [r for r in rows if r.rel_error is not None and r.rel_error > MAX_REL_ERROR]
    verdicts += [f"- FAIL: {r.kernel} M={r.m} K=N={r.k} rel error {r.rel_error:.1e}" for r in wrong]
    report += "\n\nAcceptance (issue 7):\n" + "\n".join(verdicts) + "\n"
    if device.type == "cuda":
        report += "\nAutotune choices (key -> config):\n" + "\n".join(autotune_choices()) + "\n"
    print(report)
    _write(args.out, report)
    return 1 if wrong else 0


def _write(path: str | None, text: str) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    sys.exit(main())
