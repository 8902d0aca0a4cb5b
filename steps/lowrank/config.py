"""The ``lowrank`` stage's configuration (pydantic only; no torch at import)."""

from __future__ import annotations

from pydantic import Field, model_validator

from modelpress.core.registry import StageConfig
from modelpress.settings.training import Recovery


class LowRankConfig(StageConfig):
    """Factor each selected Linear W (out×in) into B·A with B (out×r), A (r×in).

    Exactly one of ``energy`` (keep the smallest rank whose singular values hold this share
    of ‖W‖²) and ``param_budget`` (each factored layer keeps at most this share of its
    parameters) chooses the rank. Layers where the factors would not be smaller are skipped.
    """

    energy: float | None = Field(
        None, gt=0.0, le=1.0, description="share of squared singular values kept"
    )
    param_budget: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="each factored layer keeps at most this share of its weights",
    )
    include: list[str] = Field(
        default_factory=lambda: ["*"], description="fnmatch patterns of module names to consider"
    )
    exclude: list[str] = Field(
        default_factory=list, description="fnmatch patterns of module names to skip"
    )
    min_rank: int = Field(1, ge=1)
    recovery: Recovery | None = Field(None, description="a short fine-tune of the factored model")

    def needs_eager(self) -> str | None:
        return "it factors each Linear layer into two"

    @model_validator(mode="after")
    def _one_rule(self) -> LowRankConfig:
        if (self.energy is None) == (self.param_budget is None):
            raise ValueError("lowrank: set exactly one of 'energy' or 'param_budget'")
        return self
