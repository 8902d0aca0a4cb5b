"""The ``prune`` stage's configuration (cheap to import: pydantic only, no torch).

One stage covers the three granularities, because they share scoring, the schedule and the
recovery fine-tune:

* ``magnitude``: unstructured, zeroes single weights (masks; size/latency unchanged unless a
  sparse runtime is used) -- the historical default, kept for ``- prune: {sparsity: 0.6}``;
* ``structured``: physically removes channels / neurons / FFN units / attention heads;
* ``semi-structured-2:4``: in every group of 4 input weights of a Linear row keep 2 (the
  pattern sparse tensor cores accelerate).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import RecipeFacts, StageConfig
from modelpress.settings.training import Recovery

Method = Literal["magnitude", "structured", "semi-structured-2:4"]
Score = Literal["l1", "l2", "taylor", "wanda"]
Target = Literal["auto", "channels", "ffn", "heads", "ffn+heads", "mlp"]


class Schedule(BaseModel):
    """Reach the target sparsity in ``steps`` increments (cubic: big steps first; Zhu & Gupta)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: int = Field(1, ge=1, le=50, description="number of prune(+recover) rounds")
    kind: Literal["cubic", "linear"] = "cubic"

    def targets(self, final: float) -> list[float]:
        """Sparsity reached after each round; the last is always ``final``."""
        out = []
        for step in range(1, self.steps + 1):
            progress = step / self.steps
            share = 1 - (1 - progress) ** 3 if self.kind == "cubic" else progress
            out.append(final * share)
        return out


class PruneConfig(StageConfig):
    method: Method = "magnitude"
    scope: Literal["global", "layer"] = "global"
    sparsity: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="share of weights (magnitude) or of units (structured) removed",
    )
    head_sparsity: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="structured transformers: share of attention heads "
        "removed (default: same as sparsity)",
    )
    target: Target = Field(
        "auto",
        description="structured: what to remove (auto: channels for CNN/MLP, "
        "ffn+heads for BERT encoders, mlp for Llama decoders)",
    )
    layers: Literal["linear", "conv", "all"] = "all"
    score: Score = "l1"
    min_density: float = Field(
        0.05, ge=0.0, le=1.0, description="each layer keeps at least this share"
    )
    round_to: int = Field(
        1, ge=1, description="structured: keep a multiple of this many units per layer"
    )
    calibration_batches: int = Field(
        4, ge=1, description="taylor/wanda: calibration batches scored"
    )
    calibration_batch_size: int = Field(32, ge=1)
    calibration_device: str | None = Field(
        None,
        description="wanda: run the model's blocks on this device (e.g. cuda) one at a time, the "
        "other blocks' weights staying on the host; None: where the model is",
    )
    schedule: Schedule = Schedule()
    recovery: Recovery | None = Field(None, description="a short fine-tune after each round")
    report_latency: bool = Field(True, description="time the eager model before/after on one batch")

    @model_validator(mode="after")
    def _consistent(self) -> PruneConfig:
        if self.method != "structured":
            if self.target != "auto":
                raise ValueError(f"target={self.target!r} only applies to method 'structured'")
            if self.head_sparsity is not None:
                raise ValueError("head_sparsity only applies to method 'structured'")
        if self.method == "semi-structured-2:4" and self.layers == "conv":
            raise ValueError("semi-structured-2:4 prunes Linear layers; layers='conv' selects none")
        if self.schedule.steps > 1 and self.method == "semi-structured-2:4":
            raise ValueError("semi-structured-2:4 is a fixed 50% pattern; schedule.steps must be 1")
        return self

    def ignored_fields(self) -> dict[str, str]:
        ignored: dict[str, str] = {}
        if self.method != "structured":
            ignored["round_to"] = "it rounds the units structured pruning keeps; method is " + self.method
        elif self.target in ("ffn", "mlp", "channels"):
            ignored["head_sparsity"] = f"target {self.target} removes no attention heads"
        elif self.target == "heads":
            ignored["round_to"] = "it rounds FFN units and channels; target heads removes attention heads only"
        if self.method == "semi-structured-2:4":
            pattern = "semi-structured-2:4 keeps 2 of every 4 weights in each row"
            ignored |= {"sparsity": f"{pattern} (50 %)", "scope": pattern, "min_density": pattern}
        if self.score in ("l1", "l2"):
            ignored |= dict.fromkeys(("calibration_batches", "calibration_batch_size", "calibration_device"),
                                     f"score {self.score} reads the weights alone; calibration counts for "
                                     "taylor and wanda")
        elif self.score == "taylor":
            ignored["calibration_device"] = ("it runs wanda's block-by-block pass; taylor back-propagates "
                                             "through the whole model")
        if self.schedule.steps == 1:
            ignored["schedule.kind"] = "one step reaches the target sparsity at once; the curve counts for steps > 1"
        return ignored

    def required_modules(self) -> dict[str, str]:
        return {"torch_pruning": "prune"} if self.method == "structured" else {}

    def recipe_problems(self, facts: RecipeFacts) -> list[str]:
        """Attention heads of a Llama decoder share KV heads (grouped-query attention): refused."""
        if self.method != "structured" or self.target not in ("heads", "ffn+heads"):
            return []
        try:
            hf_config = facts.source.facts().hf_config or {}
        except ModelpressError:  # the source reports its own unreadable config
            return []
        if hf_config.get("model_type") == "llama":
            return [f"target {self.target!r}: head pruning of Llama-style decoders (grouped-query "
                    "attention) is not supported; use target: mlp"]
        return []

    def needs_eager(self) -> str | None:
        if self.method == "structured":
            return "structured pruning cuts units out of modules"
        if self.score in ("taylor", "wanda"):
            return f"{self.score} scores hook into module calls"
        return None  # masks only change weight values
