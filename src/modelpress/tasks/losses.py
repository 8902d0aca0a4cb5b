"""Distillation losses, written over any leading shape: classifier logits are (B, V),
causal-LM logits are (B, T, V) and are distilled token by token.

torch is imported inside the functions: the task registry imports every module of
``modelpress.tasks`` to validate a recipe, which must not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    import torch


def _flat(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    flat = logits.reshape(-1, logits.shape[-1]).float()
    return flat if mask is None else flat[mask.reshape(-1).bool()]


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """T² · KL(softmax(t/T) ‖ softmax(s/T)), averaged over positions (Hinton et al., 2015).

    The T² keeps the soft gradients' size independent of T: d/ds = T·(p_s − p_t) / N.
    ``mask`` (same leading shape, 1 = keep) drops padding positions.
    """
    import torch.nn.functional as F

    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ModelpressError(f"distill: student outputs {student_logits.shape[-1]} logits but the teacher "
                              f"{teacher_logits.shape[-1]}; the output sizes must match")
    log_ps = F.log_softmax(_flat(student_logits, mask) / temperature, dim=-1)
    log_pt = F.log_softmax(_flat(teacher_logits, mask) / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    return kl.mean() * temperature ** 2


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor | None,
            temperature: float, alpha: float, mask: torch.Tensor | None = None,
            ignore_index: int = -100) -> torch.Tensor:
    """alpha · soft_kl + (1 − alpha) · cross-entropy on the hard labels.

    ``alpha == 0`` is training from labels alone (the teacher's logits may then be None).
    """
    import torch.nn.functional as F

    hard = None
    if alpha < 1.0 and labels is not None:
        hard = F.cross_entropy(student_logits.reshape(-1, student_logits.shape[-1]).float(),
                               labels.reshape(-1), ignore_index=ignore_index)
        if alpha == 0.0:
            return hard
    if teacher_logits is None:
        raise ValueError("distillation with alpha > 0 needs the teacher's logits")
    soft = soft_kl(student_logits, teacher_logits, temperature, mask)
    return soft if hard is None else alpha * soft + (1 - alpha) * hard


def causal_lm_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Token-level KD for causal LMs: position t is scored on predicting token t + 1."""
    import torch

    mask = (torch.ones_like(input_ids) if attention_mask is None else attention_mask)[:, 1:]
    labels = input_ids[:, 1:].masked_fill(mask == 0, -100)
    return kd_loss(student_logits[:, :-1], teacher_logits[:, :-1], labels, temperature, alpha, mask=mask)


def feature_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str) -> torch.Tensor:
    """MSE, or 1 − cosine along the feature axis (channels for conv maps, last axis otherwise)."""
    import torch.nn.functional as F

    student, teacher = student.float(), teacher.float()
    if kind == "mse":
        return F.mse_loss(student, teacher)
    axis = 1 if student.dim() == 4 else -1
    return 1 - F.cosine_similarity(student, teacher, dim=axis).mean()


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """Spatial attention of a conv feature map: channel-mean of squares, L2-normalised."""
    import torch.nn.functional as F

    return F.normalize(features.float().pow(2).mean(1).flatten(1), dim=1)


def attention_transfer(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis (2017): match where the networks look, not what they compute;
    needs no projection because the map has no channel axis."""
    return (attention_map(student) - attention_map(teacher)).pow(2).mean()
