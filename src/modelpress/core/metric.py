"""What a task measures, described once: the gate, the summary and the LLM metrics read it."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One thing a task measures: its direction, its possible range, how the summary prints it."""

    name: str
    label: str
    higher_is_better: bool
    low: float = 0.0
    high: float = math.inf
    fmt: str = "{:.4f}"
