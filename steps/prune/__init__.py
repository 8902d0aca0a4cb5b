"""Pruning room: the ``prune`` stage (unstructured, structured, 2:4; scored, scheduled, recovered).

Only the config and the registration are imported here (cheap); torch and Torch-Pruning are
imported when the stage runs.
"""

from modelpress.steps.prune.config import PruneConfig
from modelpress.steps.prune.stage import prune

__all__ = ["PruneConfig", "prune"]
