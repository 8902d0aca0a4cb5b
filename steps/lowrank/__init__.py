"""Low-rank room: the ``lowrank`` stage (truncated-SVD factorisation of Linear layers).

Only the config and the registration are imported here (cheap); torch is imported when the
stage runs.
"""

from modelpress.steps.lowrank.config import LowRankConfig
from modelpress.steps.lowrank.stage import lowrank

__all__ = ["LowRankConfig", "lowrank"]
