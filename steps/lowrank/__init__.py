"""Low-rank room: the ``lowrank`` stage (truncated-SVD factorisation of Linear layers).

Only the config and the registration are imported here (cheap); torch is imported when the
stage runs.
"""

from .config import LowRankConfig
from .stage import lowrank

__all__ = ["LowRankConfig", "lowrank"]
