"""A small, shared supervised training loop (baseline heads, recovery fine-tunes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from .tasks import Task


def train_classifier(
    model: "torch.nn.Module",
    task: "Task",
    frame: "pd.DataFrame",
    epochs: int,
    lr: float,
    batch_size: int,
    params: Iterable["torch.nn.Parameter"] | None = None,
    seed: int = 0,
    after_step: Callable[[], None] | None = None,
    desc: str = "train",
) -> list[float]:
    """Cross-entropy training on ``frame``; returns the mean loss of each epoch.

    ``after_step`` runs after every optimiser step (e.g. to re-apply pruning masks).
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from .tasks import torch_forward

    if len(frame) == 0:
        raise ValueError(f"{desc}: the training split is empty")
    torch.manual_seed(seed)
    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    model.train()
    history = []
    steps_per_epoch = -(-len(frame) // batch_size)
    with tqdm(total=epochs * steps_per_epoch, desc=desc, unit="batch", leave=False) as bar:
        for epoch in range(epochs):
            total, count = 0.0, 0
            for batch, labels in task.batches(frame, batch_size, shuffle=True, seed=seed + epoch):
                logits, _ = torch_forward(model, batch)
                loss = F.cross_entropy(logits, torch.from_numpy(labels))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if after_step is not None:
                    after_step()
                total += loss.item() * len(labels)
                count += len(labels)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{total / count:.4f}")
            history.append(total / count)
    model.eval()
    return history


def keep_masks(masks: Iterable[tuple["torch.nn.Parameter", "torch.Tensor"]]) -> Callable[[], None]:
    """An ``after_step`` hook that re-zeroes pruned weights, so masks stay fixed while fine-tuning
    (the optimiser's update and weight decay would otherwise revive them)."""
    import torch

    pairs = [(param, mask.to(param.dtype)) for param, mask in masks]

    def apply() -> None:
        with torch.no_grad():
            for param, mask in pairs:
                param.mul_(mask)

    return apply
