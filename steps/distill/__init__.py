"""Distillation room: ``distill`` stage (teacher → optional assistants → student)."""

from .config import DistillConfig, HiddenMatch, StudentSpec
from .stage import distill

__all__ = ["DistillConfig", "HiddenMatch", "StudentSpec", "distill"]
