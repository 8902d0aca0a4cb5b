"""Distillation room: ``distill`` stage (teacher → optional assistants → student)."""

from modelpress.steps.distill.config import DistillConfig, HiddenMatch, StudentSpec
from modelpress.steps.distill.stage import distill

__all__ = ["DistillConfig", "HiddenMatch", "StudentSpec", "distill"]
