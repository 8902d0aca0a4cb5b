"""Teacher → assistants → student: each link a distillation of its own, each reported."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.steps.distill.harness import DistillHarness, FeatureTap, projection
from modelpress.steps.distill.students import Student, build_student, load_module, parameter_count
from modelpress.tasks import split_outputs
from modelpress.training import EpochReporter, Validation, carve_validation, fit, frame_batches, to_device, validate

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.steps.distill.config import DistillConfig
    from modelpress.tasks import Task
    from modelpress.tasks.context import StageContext


def run_distill(model: nn.Module, config: DistillConfig, context: StageContext) -> nn.Module:
    seed = config.seed if config.seed is not None else context.seed
    train, val = carve_validation(context.train, config, seed, "distill")
    source = load_module(config.teacher_path, "distill.teacher_path") if config.teacher_path else model
    teacher = copy.deepcopy(source).float().eval()  # the pipeline's model is never modified
    names = ["teacher", *(f"assistant{i + 1}" for i in range(len(config.assistants))), "student"]
    current = teacher
    for index, spec in enumerate([*config.assistants, config.student], start=1):
        student = build_student(spec, current, teacher)
        current = distill_link(current, student, config, context.task, train, val, seed,
                               context.report, prefix=f"link{index}.")
        if _is_main_process():
            context.report[f"link{index}.name"] = f"{names[index - 1]}->{names[index]}"
    if not _is_main_process():
        return current.to("cpu").eval()  # only the main process reports
    context.report.update({"links": len(names) - 1, "train_rows": len(train), "val_rows": len(val),
                           "teacher_params": parameter_count(teacher),
                           "student_params": parameter_count(current),
                           "param_ratio": round(parameter_count(current) / parameter_count(teacher), 4)})
    return current.to("cpu").eval()


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def feature_pairs(config: DistillConfig, student: Student) -> list[tuple[str, str]]:
    if not config.hidden.weight and not config.attention:
        return []
    pairs = [tuple(p) for p in config.hidden.pairs] if config.hidden.pairs is not None else student.pairs
    if not pairs:
        raise ModelpressError("distill.hidden.pairs: feature matching (hidden.weight/attention > 0) needs "
                              "(student module, teacher module) pairs for a given student architecture")
    return pairs  # type: ignore[return-value]


@torch.no_grad()
def probe(teacher: nn.Module, harness: DistillHarness, teacher_tap: FeatureTap | None,
          task: Task, frame: pd.DataFrame, pairs: list[tuple[str, str]],
          config: DistillConfig) -> list[nn.Module]:
    """One batch through both models before training: output sizes must match, feature
    pairs must be bridgeable; returns the projections the pairs need."""
    batch = task.example(frame, 4)
    inputs = to_device(batch, torch.device("cpu"))
    teacher_logits, _ = split_outputs(task.call(teacher, inputs))
    student_logits, _ = split_outputs(task.call(harness.student.eval(), inputs))
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ModelpressError(f"distill: the student outputs {student_logits.shape[-1]} logits and the teacher "
                              f"{teacher_logits.shape[-1]}; soft targets need equal output sizes (logits get "
                              "no projection: give a student with the teacher's label set)")
    if not pairs:
        return []
    assert harness.tap is not None and teacher_tap is not None
    student_features = harness.tap.take([s for s, _ in pairs])
    teacher_features = teacher_tap.take([t for _, t in pairs])
    if config.attention and not any(f.dim() == 4 for f in student_features):
        raise ModelpressError("distill.attention: attention transfer needs convolutional (4-D) feature pairs")
    return [projection(s, t, pair, config.hidden.projection or not config.hidden.weight)
            for s, t, pair in zip(student_features, teacher_features, pairs)]


def distill_link(teacher: nn.Module, student: Student, config: DistillConfig, task: Task,
                 train: pd.DataFrame, val: pd.DataFrame, seed: int, report: dict[str, Any],
                 prefix: str) -> nn.Module:
    teacher = teacher.to("cpu").eval().requires_grad_(False)
    pairs = feature_pairs(config, student)
    teacher_names = [t for _, t in pairs]
    teacher_tap = FeatureTap(teacher, teacher_names, "teacher") if pairs else None
    harness = DistillHarness(student.model.float().requires_grad_(True), pairs, [], config, task)
    try:
        harness.projections = nn.ModuleList(probe(teacher, harness, teacher_tap, task, train, pairs, config))
        needs_teacher = config.alpha > 0 or bool(pairs)

        def loss_fn(wrapped: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
            if not needs_teacher:  # alpha = 0, no feature matching: labels alone, skip the teacher
                return wrapped(inputs, labels, None, [])
            if next(teacher.parameters()).device != labels.device:
                teacher.to(labels.device)
            with torch.no_grad():
                teacher_logits, _ = split_outputs(task.call(teacher, inputs))
                teacher_features = teacher_tap.take(teacher_names) if teacher_tap else []
            return wrapped(inputs, labels, teacher_logits, teacher_features)

        reporter = EpochReporter(report, "distill", prefix)
        result = fit(harness, loss_fn, frame_batches(task, train, config.batch_size, seed + 1), config,
                     seed=seed, desc=f"distill {prefix[:-1]}",
                     validation=Validation(task, val, harness.student), on_epoch=reporter)
    finally:
        if teacher_tap is not None:
            teacher_tap.remove()
        if harness.tap is not None:
            harness.tap.remove()
    if result.is_main:
        reporter.summary(result)
        teacher_val = validate(teacher, task, val, config.batch_size, next(teacher.parameters()).device)
        report[f"{prefix}teacher_val_accuracy"] = round(teacher_val["val_accuracy"], 6)
        report[f"{prefix}teacher_val_loss"] = round(teacher_val["val_loss"], 6)
        report[f"{prefix}teacher_params"] = parameter_count(teacher)
        report[f"{prefix}student_params"] = parameter_count(harness.student)
    teacher.to("cpu")
    return harness.student
