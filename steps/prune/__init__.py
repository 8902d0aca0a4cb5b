"""Pruning room: ``prune`` stage (global magnitude, unstructured)."""

from .magnitude import PruneConfig, prune

__all__ = ["PruneConfig", "prune"]
