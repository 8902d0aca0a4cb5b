"""The recipe's blocks that stand alone: gate thresholds, the registry: block, resources, drift, schedule.

They validate their own fields; rules that span blocks (a gate on a metric the task lacks, a
stage the task cannot take) live with the recipe in ``modelpress.recipe.schema``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from modelpress.core.strict_fields import StrictModel
from modelpress.settings.cron import cron_problems


class Strict(StrictModel):
    """extra="forbid", frozen; booleans are never numbers, inf/nan never pass (strict_fields.py)."""



class Threshold(Strict):
    """Bounds on one metric of the candidate: absolute and relative to the baseline."""

    min: float | None = None
    max: float | None = None
    max_drop: float | None = Field(None, ge=0, description="baseline - candidate, absolute")
    max_relative_drop: float | None = Field(None, ge=0, le=1)
    max_ratio: float | None = Field(None, gt=0, description="candidate / baseline")
    # Relative to the registry's current champion, re-measured on the same eval rows.
    max_champion_drop: float | None = Field(None, ge=0, description="champion - candidate")
    max_champion_ratio: float | None = Field(None, gt=0, description="candidate / champion")

    @model_validator(mode="after")
    def _consistent(self) -> Threshold:
        # `max_drop: null` is set but bounds nothing: count the bounds that have a value
        if all(getattr(self, bound) is None for bound in type(self).model_fields):
            raise ValueError("a threshold needs at least one of min, max, max_drop, "
                             "max_relative_drop, max_ratio, max_champion_drop, max_champion_ratio")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Statistics(Strict):
    """How the gate and promotion judge a measured difference (README, "The gate").

    ``paired-bootstrap``: a bound holds when the whole interval at ``level`` is within it, fails
    when the whole interval is beyond it, and is inconclusive in between; ``none``: the point
    estimates alone decide (the behaviour before intervals)."""

    method: Literal["paired-bootstrap", "none"] = "paired-bootstrap"
    level: float = Field(0.95, ge=0.5, lt=1, description="two-sided confidence level of each interval")
    resamples: int = Field(2000, ge=200, le=100_000, description="bootstrap resamples of the eval rows")
    seed: int = Field(0, ge=0, description="seeds the resampling: the same rows give the same interval")
    on_inconclusive: Literal["fail", "pass", "warn"] = Field(
        "fail", description="what an interval straddling its bound does, in the gate and in promotion")


class ModelRegistrySettings(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$")
    challenger: str = Field("challenger", pattern=r"^[A-Za-z][\w-]*$")
    promote_to: str | None = Field("champion", pattern=r"^[A-Za-z][\w-]*$")
    tolerance: float = Field(0.0, ge=0, description="primary metric the candidate may lose vs the champion")

    @model_validator(mode="after")
    def _distinct_aliases(self) -> ModelRegistrySettings:
        if self.promote_to == self.challenger:
            raise ValueError(f"challenger and promote_to are both {self.challenger!r}")
        return self


class Resources(Strict):
    """Per-step resources → ZenML ResourceSettings (and optionally a step operator)."""

    cpu: float | None = Field(None, gt=0)
    memory: str | None = Field(None, pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    gpu: int | None = Field(None, ge=0)
    step_operator: str | None = None


class Drift(Strict):
    """How far fresh data may move from the reference (champion's) data before retraining stops."""

    max_label_kl: float = Field(0.1, ge=0, description="KL(fresh labels || reference labels)")
    max_mean_shift: float = Field(0.5, ge=0, description="|mean shift| of row means, in reference std")
    max_out_of_range: float = Field(0.01, ge=0, le=1, description="share of values outside the reference range")


class Schedule(Strict):
    cron: str

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        fields = cron.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[\d*/,\-A-Za-z?]+", f) for f in fields):
            raise ValueError(f"not a 5-field cron expression: {cron!r}")
        problems = cron_problems(cron)
        if problems:
            raise ValueError(f"invalid cron expression {cron!r}: " + "; ".join(problems))
        return cron
