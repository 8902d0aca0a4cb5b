"""The trainable side of one distillation link: the student, its feature taps and the
learned projections, in one module so DDP synchronises all of their gradients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.steps.distill.config import DistillConfig
from modelpress.tasks import split_outputs
from modelpress.tasks.losses import attention_transfer, feature_loss

if TYPE_CHECKING:
    from modelpress.tasks import Task


class FeatureTap:
    """Keeps the latest output of named submodules (first element when it is a tuple)."""

    def __init__(self, model: nn.Module, names: list[str], role: str):
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = []
        for name in names:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                raise ModelpressError(f"distill.hidden.pairs: the {role} has no module named {name!r}") from None
            self._handles.append(module.register_forward_hook(self._keeper(name)))

    def _keeper(self, name: str) -> Any:
        def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.outputs[name] = output[0] if isinstance(output, (tuple, list)) else output
        return keep

    def take(self, names: list[str]) -> list[torch.Tensor]:
        return [self.outputs[n] for n in names]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def projection(student: torch.Tensor, teacher: torch.Tensor, pair: tuple[str, str],
               allowed: bool) -> nn.Module:
    """Identity when widths match, else a learned 1×1 conv / linear map student → teacher."""
    if student.dim() != teacher.dim() or (student.dim() == 4 and student.shape[2:] != teacher.shape[2:]):
        raise ModelpressError(f"distill.hidden.pairs {pair}: student features {tuple(student.shape)} and "
                              f"teacher features {tuple(teacher.shape)} differ beyond their width")
    axis = 1 if student.dim() == 4 else -1
    width_s, width_t = student.shape[axis], teacher.shape[axis]
    if width_s == width_t:
        return nn.Identity()
    if not allowed:
        raise ModelpressError(f"distill.hidden.pairs {pair}: student width {width_s} ≠ teacher width "
                              f"{width_t} and hidden.projection is false; enable it or pair equal widths")
    if student.dim() == 4:
        return nn.Conv2d(width_s, width_t, 1, bias=False)
    return nn.Linear(width_s, width_t, bias=False)


class DistillHarness(nn.Module):
    def __init__(self, student: nn.Module, pairs: list[tuple[str, str]], projections: list[nn.Module],
                 config: DistillConfig, task: Task):
        super().__init__()
        self.student = student
        self.task = task  # calls the student, and its distill_loss (token-level for a causal LM)
        self.projections = nn.ModuleList(projections)
        self.student_names = [s for s, _ in pairs]
        self.config = config
        self.tap = FeatureTap(student, self.student_names, "student") if pairs else None

    def forward(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor,
                teacher_logits: torch.Tensor | None, teacher_features: list[torch.Tensor]) -> torch.Tensor:
        config = self.config
        logits, _ = split_outputs(self.task.call(self.student, inputs))
        loss = self.task.distill_loss(logits, teacher_logits, labels, config.temperature, config.alpha)
        if self.tap is None:
            return loss
        features = self.tap.take(self.student_names)
        if config.hidden.weight:
            matched = [feature_loss(proj(s), t, config.hidden.loss)
                       for proj, s, t in zip(self.projections, features, teacher_features)]
            loss = loss + config.hidden.weight * torch.stack(matched).mean()
        if config.attention:
            maps = [attention_transfer(s, t) for s, t in zip(features, teacher_features) if s.dim() == 4]
            loss = loss + config.attention * torch.stack(maps).mean()
        return loss
