"""The peer side of benchmarks/llm.py: llm-compressor 0.14 ``oneshot`` in its own venv.

Run by benchmarks/llm.py with the peer venv's Python (transformers 5, compressed-tensors 0.19);
reads the fp32 model folder and the calibration/eval token ids that modelpress used, quantizes
with each recipe, and scores every result with the same metric code (``modelpress.lm.metrics``,
linked into the venv) against the fp32 model loaded from the same folder.

    python benchmarks/llm_peer.py --model DIR --tokens tokens.pt --out peer.json [--schemes ...]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

GROUP = 64  # SmolLM2's 576-wide inputs: 576 is not a multiple of 128


def w4a16(group: int = GROUP, symmetric: bool = True) -> list[Any]:
    from llmcompressor.modifiers.quantization import GPTQModifier

    weights = {"num_bits": 4, "type": "int", "symmetric": symmetric, "strategy": "group", "group_size": group}
    return [GPTQModifier(config_groups={"group_0": {"targets": ["Linear"], "weights": weights}},
                         ignore=["lm_head"])]


def w8a8_smoothquant() -> list[Any]:
    from llmcompressor.modifiers.quantization import GPTQModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    return [SmoothQuantModifier(smoothing_strength=0.8),
            GPTQModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"])]


RECIPES = {
    "llm-compressor GPTQ W4A16 g64 (sym)": w4a16,
    "llm-compressor GPTQ W4A16 g64 asym": lambda: w4a16(symmetric=False),
    "llm-compressor SmoothQuant 0.8 + GPTQ W8A8": w8a8_smoothquant,
}


def load(folder: str) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def run(folder: str, tokens: dict[str, torch.Tensor], names: list[str], batch_size: int) -> list[dict[str, Any]]:
    from datasets import Dataset
    from llmcompressor import oneshot

    from modelpress.lm.metrics import PeakMemory, compare, perplexity

    calibration, evaluation = tokens["calibration"], tokens["eval"]
    dataset = Dataset.from_dict({"input_ids": calibration.tolist(),
                                 "attention_mask": torch.ones_like(calibration).tolist()})
    baseline = load(folder)
    rows = []
    for name in names:
        model = load(folder)
        start = time.perf_counter()
        with PeakMemory() as peak:
            oneshot(model=model, dataset=dataset, recipe=RECIPES[name](), tokenizer=folder,
                    num_calibration_samples=len(calibration), max_seq_length=calibration.shape[1],
                    shuffle_calibration_samples=False, pipeline="sequential")
        seconds = time.perf_counter() - start
        quality = compare(baseline, model, evaluation, batch_size=batch_size)
        rows.append({"variant": name, "calibration_s": seconds, "peak_rss_mb": peak.mb,
                     **quality.model_dump()})
        print(f"[peer] {name}: ppl {quality.perplexity:.3f} ({seconds:.0f} s)", flush=True)
        del model
    rows.append({"variant": "fp32 (transformers 5, peer venv)",
                 "perplexity": perplexity(baseline, evaluation, batch_size=batch_size)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--schemes", default=",".join(RECIPES))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokens = torch.load(args.tokens, weights_only=True)
    names = [n for n in args.schemes.split(",") if n]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"--schemes: unknown {unknown}; known: {list(RECIPES)}")
    rows = run(args.model, tokens, names, args.batch_size)
    with open(args.out, "w") as handle:
        json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
