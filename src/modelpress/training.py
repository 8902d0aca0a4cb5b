"""The one training loop: baseline training, recovery after pruning/low-rank, fine-tuning and
distillation all run :func:`fit`.

Why a loop of our own rather than transformers' Trainer: batches come from the Task (numpy
dicts keyed by input name) or from cached features, a distillation step needs the frozen
teacher's outputs next to the student's, and every caller wants the same budget keys (early
stopping on a validation slice, lr schedule, gradient accumulation, checkpoints). accelerate
does the device placement, mixed precision and DDP; launched with ``accelerate launch
--num_processes N`` the same code shards the batches over N processes (gloo on CPU, NCCL on
GPUs), and only the main process reports.

Loss and labels come from the task (``Task.loss``), so the loop knows nothing of classes or
tokens. Imported only where training happens (it imports torch).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.core.quiet import progress_bar
from modelpress.settings.training import Recovery, TrainSettings, plain_settings

if TYPE_CHECKING:
    import pandas as pd
    from accelerate import Accelerator

    from modelpress.tasks import Task

Inputs = dict[str, torch.Tensor]
#: loss_fn(prepared_trainee, inputs, labels) -> scalar loss; the trainee must be called
#: through the prepared wrapper so DDP synchronises its gradients.
LossFn = Callable[[nn.Module, Inputs, torch.Tensor], torch.Tensor]
EpochLog = Callable[[int, dict[str, float]], None]

__all__ = ["Batches", "FitResult", "Recovery", "TrainSettings", "Validation", "fit", "plain_settings",
           "recover", "train"]
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


@dataclass
class Batches:
    """What one training run iterates: ``epoch(e)`` yields epoch ``e``'s (inputs, labels)."""

    epoch: Callable[[int], Iterable[tuple[dict[str, Any], Any]]]
    per_epoch: int


def frame_batches(task: Task, frame: pd.DataFrame, batch_size: int, seed: int) -> Batches:
    """Shuffled task batches of ``frame``; epoch ``e`` (1-based) shuffles with ``seed + e - 1``."""
    return Batches(lambda e: task.batches(frame, batch_size, shuffle=True, seed=seed + e - 1),
                   task.batch_count(frame, batch_size))


@dataclass
class Validation:
    """Where early stopping looks: the task's loss and accuracy on a slice of train."""

    task: Task
    frame: pd.DataFrame
    model: nn.Module | None = None  # what validation runs (default: the trainee)


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best: dict[str, float]
    stopped_early: bool
    is_main: bool = True  # False on the non-main processes of a multi-process run


def carve_validation(train: pd.DataFrame, settings: TrainSettings, seed: int,
                     stage: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) from the train split; the eval split is never touched."""
    if len(train) == 0:
        raise ModelpressError(f"{stage}: the training split is empty (data.split.train gives 0 rows); "
                              "nothing to train on")
    if settings.max_train_rows is not None and len(train) > settings.max_train_rows:
        train = train.sample(n=settings.max_train_rows, random_state=seed)
    if len(train) < 2:
        raise ModelpressError(f"{stage}: the training split has {len(train)} row(s); at least 2 are "
                              "needed to carve a validation slice (val_fraction)")
    n_val = min(max(1, round(len(train) * settings.val_fraction)), len(train) - 1)
    shuffled = train.sample(frac=1.0, random_state=seed)
    return shuffled.iloc[n_val:], shuffled.iloc[:n_val]


def make_accelerator(settings: TrainSettings) -> Accelerator:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    precision = settings.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Unused parameters are normal here (a BERT pooler the head never reads, a teacher-sized
    # projection only some links use), so DDP must not insist every parameter gets a grad.
    return Accelerator(mixed_precision=precision,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def to_device(batch: dict[str, Any], device: torch.device) -> Inputs:
    return {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(v)).to(device)
            for k, v in batch.items()}


def _labels(labels: Any, device: torch.device) -> torch.Tensor:
    return (labels if isinstance(labels, torch.Tensor) else torch.from_numpy(labels)).to(device)


@torch.no_grad()
def validate(model: nn.Module, task: Task, frame: pd.DataFrame, batch_size: int,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """The task's loss and top-1 accuracy (``Task.correct``: next-token accuracy for a causal LM)
    of ``model`` on ``frame`` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    loss, weight, correct, count = 0.0, 0, 0, 0
    for batch, labels in task.batches(frame, batch_size):
        logits, _ = task.outputs(task.call(model, to_device(batch, torch.device(device))))
        y = _labels(labels, logits.device)
        loss += task.loss(logits, y).item() * y.numel()
        weight += y.numel()
        right, predicted = task.correct(logits, y)
        correct, count = correct + right, count + predicted
    model.train(was_training)
    return {"val_loss": loss / weight, "val_accuracy": correct / count}


def task_loss(task: Task) -> LossFn:
    """The task's own loss on the trainee's outputs (cross-entropy for the classifiers)."""

    def loss(wrapped: nn.Module, inputs: Inputs, labels: torch.Tensor) -> torch.Tensor:
        logits, _ = task.outputs(task.call(wrapped, inputs))
        return task.loss(logits, labels)

    return loss


def _shard(batches: Iterable[Any], world: int, rank: int, count: int) -> Iterator[Any]:
    """Every ``world``-th batch starting at ``rank``, exactly ``count`` of them (DDP needs
    every process to take the same number of steps)."""
    taken = 0
    for index, item in enumerate(batches):
        if taken == count:
            return
        if index % world == rank:
            taken += 1
            yield item


@contextlib.contextmanager
def _checkpoint_folder(settings: TrainSettings, accelerator: Accelerator) -> Iterator[Path]:
    """One folder all processes agree on (the main process picks it and broadcasts it)."""
    from accelerate.utils import broadcast_object_list

    temporary = settings.checkpoint_dir is None
    chosen: list[str] = [tempfile.mkdtemp(prefix="modelpress-ckpt-") if temporary else str(settings.checkpoint_dir)]
    if accelerator.num_processes > 1:
        if temporary and not accelerator.is_main_process:
            shutil.rmtree(chosen[0], ignore_errors=True)
        broadcast_object_list(chosen)
    folder = Path(chosen[0])
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        accelerator.wait_for_everyone()
        if temporary and accelerator.is_main_process:
            shutil.rmtree(folder, ignore_errors=True)


def _improved(metrics: dict[str, float], best: dict[str, float] | None, monitor: str) -> bool:
    if best is None:
        return True
    key = f"val_{monitor}"
    return metrics[key] > best[key] if monitor == "accuracy" else metrics[key] < best[key]


def fit(trainee: nn.Module, loss_fn: LossFn, batches: Batches, settings: TrainSettings, *, seed: int,
        desc: str, validation: Validation | None = None, after_step: Callable[[], None] | None = None,
        on_epoch: EpochLog | None = None) -> FitResult:
    """Train ``trainee``'s trainable parameters on ``batches``.

    With ``validation``, each epoch is validated, the best epoch (``settings.monitor``) is
    checkpointed and restored at the end, and training stops after ``settings.patience``
    epochs without improvement; without it the last epoch is kept. ``after_step`` runs after
    each optimiser step (re-applying pruning masks); ``on_epoch`` gets each epoch's metrics on
    the main process only.
    """
    torch.manual_seed(seed)
    accelerator = make_accelerator(settings)
    params = [p for p in trainee.parameters() if p.requires_grad]
    if not params:
        raise ModelpressError(f"{desc}: the model has no trainable parameters")
    world, rank = accelerator.num_processes, accelerator.process_index
    per_process = batches.per_epoch // world
    if per_process == 0:
        raise ModelpressError(f"{desc}: {batches.per_epoch} training batch(es) of {settings.batch_size} "
                              f"rows are fewer than there are processes ({world})")
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = _scheduler(optimizer, settings, math.ceil(per_process / settings.grad_accum) * settings.epochs)
    # A budget that names no monitor watches what the task's validation means most (the loss
    # for a causal LM, whose accuracy is next-token accuracy).
    monitor = settings.monitor or (validation.task.monitor if validation is not None else "accuracy")
    wrapped, optimizer = accelerator.prepare(trainee, optimizer)
    device = accelerator.device
    history: list[dict[str, float]] = []
    best: dict[str, float] | None = None
    best_epoch, stopped_early = 0, False
    checkpoints = _checkpoint_folder(settings, accelerator) if validation else contextlib.nullcontext(None)
    with checkpoints as folder, progress_bar(total=settings.epochs * per_process, desc=desc,
                                             enabled=accelerator.is_local_main_process) as bar:
        for epoch in range(1, settings.epochs + 1):
            wrapped.train()
            totals = torch.zeros(2, device=device)  # loss sum, rows
            for index, (batch, labels) in enumerate(_shard(batches.epoch(epoch), world, rank, per_process)):
                inputs, y = to_device(batch, device), _labels(labels, device)
                last = (index + 1) % settings.grad_accum == 0 or index + 1 == per_process
                with contextlib.nullcontext() if last else accelerator.no_sync(wrapped):
                    with accelerator.autocast():
                        loss = loss_fn(wrapped, inputs, y)
                    accelerator.backward(loss / settings.grad_accum)
                if last:
                    if settings.max_grad_norm is not None:
                        accelerator.clip_grad_norm_(params, settings.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                    if after_step is not None:
                        after_step()
                totals += torch.tensor([loss.item() * len(y), len(y)], device=device)
                bar.update(1)
                # refresh=False: a postfix alone would redraw the bar every batch
                bar.set_postfix(epoch=epoch, loss=f"{(totals[0] / totals[1]).item():.4f}", refresh=False)
            totals = accelerator.reduce(totals, reduction="sum")
            metrics = {"train_loss": (totals[0] / totals[1]).item(), "lr": scheduler.get_last_lr()[0]}
            if validation is not None:
                metrics.update(validate(validation.model or trainee, validation.task, validation.frame,
                                        settings.batch_size, device))
            history.append(metrics)
            if validation is None or _improved(metrics, best, monitor):
                best, best_epoch = metrics, epoch
                if folder is not None and accelerator.is_main_process:
                    torch.save(accelerator.unwrap_model(wrapped).state_dict(), folder / "best.pt")
            if on_epoch is not None and accelerator.is_main_process:
                on_epoch(epoch, metrics)
            if validation is not None and settings.patience and epoch - best_epoch >= settings.patience \
                    and epoch < settings.epochs:
                stopped_early = True
                break
        accelerator.wait_for_everyone()
        if folder is not None:
            trainee.load_state_dict(torch.load(folder / "best.pt", map_location="cpu", weights_only=True))
    is_main = accelerator.is_main_process
    accelerator.free_memory()
    trainee.eval()
    assert best is not None
    return FitResult(history, best_epoch, best, stopped_early, is_main)


def _scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, total_steps: int) -> Any:
    from transformers import get_scheduler

    return get_scheduler(SCHEDULES[settings.schedule], optimizer,
                         num_warmup_steps=int(settings.warmup * total_steps), num_training_steps=total_steps)


def train(model: nn.Module, task: Task, frame: pd.DataFrame, settings: TrainSettings, *, seed: int = 0,
          desc: str = "train", after_step: Callable[[], None] | None = None) -> FitResult:
    """Plain supervised training on ``frame`` with the task's loss (baseline, recovery)."""
    if len(frame) == 0:
        raise ModelpressError(f"{desc}: the training split is empty")
    return fit(model, task_loss(task), frame_batches(task, frame, settings.batch_size, seed), settings,
               seed=seed, desc=desc, after_step=after_step)


def recover(model: nn.Module, task: Task, frame: pd.DataFrame, recovery: Recovery, *, seed: int,
            desc: str, after_step: Callable[[], None] | None = None) -> FitResult:
    """:class:`Recovery` on (at most ``max_rows`` of) the train split."""
    if recovery.max_rows is not None and len(frame) > recovery.max_rows:
        frame = frame.sample(n=recovery.max_rows, random_state=seed)
    return train(model, task, frame, recovery.settings(), seed=seed, desc=desc, after_step=after_step)


def keep_masks(masks: Iterable[tuple[torch.nn.Parameter, torch.Tensor]]) -> Callable[[], None]:
    """An ``after_step`` hook that re-zeroes pruned weights, so masks stay fixed while fine-tuning
    (the optimiser's update and weight decay would otherwise revive them)."""
    pairs = [(param, mask.to(param.dtype)) for param, mask in masks]

    def apply() -> None:
        with torch.no_grad():
            for param, mask in pairs:
                param.mul_(mask)

    return apply


class EpochReporter:
    """Writes per-epoch metrics into a stage report (→ MLflow via the pipeline) and, when an
    MLflow run is active in this process, as stepped metrics so they plot as curves."""

    def __init__(self, report: dict[str, Any], stage: str, prefix: str = ""):
        self.report, self.stage, self.prefix = report, stage, prefix

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.report[f"{self.prefix}epoch{epoch}.{key}"] = round(float(value), 6)
        import sys

        mlflow = sys.modules.get("mlflow")  # never import mlflow just for this
        if mlflow is not None and mlflow.active_run() is not None:
            mlflow.log_metrics({f"{self.stage}.{self.prefix}{k}": float(v) for k, v in metrics.items()},
                               step=epoch)

    def summary(self, result: FitResult) -> None:
        self.report[f"{self.prefix}best_epoch"] = result.best_epoch
        self.report[f"{self.prefix}epochs_run"] = len(result.history)
        self.report[f"{self.prefix}stopped_early"] = result.stopped_early
        for key, value in result.best.items():
            self.report[f"{self.prefix}best_{key}"] = round(float(value), 6)
