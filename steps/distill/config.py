"""Configs of the distillation room (cheap to import: pydantic only)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import RecipeFacts, StageConfig
from modelpress.settings.training import TrainSettings


def _model_file(value: str | None, info: ValidationInfo) -> str | None:
    """The file's absolute path; a relative one is relative to the recipe's folder (context ``base``)."""
    if value is None:
        return None
    path = Path(value).expanduser()
    base = (info.context or {}).get("base")
    if not path.is_absolute() and base is not None and (Path(base) / path).is_file():
        path = Path(base) / path
    if not path.is_file():
        raise ValueError(f"no such model file '{value}' (a whole nn.Module saved with torch.save)")
    return str(path.resolve())


class StudentSpec(StageConfig):
    """A student (or assistant): derived from its teacher, or a given architecture (``path``)."""

    # Keep this many transformer layers, evenly spaced with the last one kept (6 → 3 keeps 1, 3, 5).
    layers: int | None = Field(None, ge=1)
    # SmallCNN channels and hidden units as a share of the *first* teacher's (0.5 = half width).
    width: float | None = Field(None, gt=0, le=1)
    path: str | None = None  # a whole nn.Module saved with torch.save(model, path)
    init: Literal["teacher", "random"] = "teacher"  # derived students start from the teacher's weights

    @field_validator("path")
    @classmethod
    def _student_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _model_file(value, info)

    def ignored_fields(self) -> dict[str, str]:
        if self.path is None:
            return {}
        return {"init": "a given student (path) keeps its own weights; init counts for derived students"}

    @model_validator(mode="after")
    def _one_kind(self) -> StudentSpec:
        derived = self.layers is not None or self.width is not None
        if self.path is not None and derived:
            raise ValueError("give either path (a given architecture) or layers/width (derived from "
                             "the teacher), not both")
        if self.path is None and not derived:
            raise ValueError("give layers and/or width (derived from the teacher), or path")
        return self


class HiddenMatch(StageConfig):
    """Intermediate-feature matching; a learned projection bridges differing widths."""

    weight: float = Field(0.0, ge=0)
    loss: Literal["mse", "cosine"] = "mse"
    projection: bool = True
    # (student module, teacher module) names; None = the pairs a derived student implies
    # (kept transformer layers ↔ their originals; SmallCNN conv1/conv2/fc1 ↔ the same).
    pairs: list[tuple[str, str]] | None = None


class DistillConfig(TrainSettings, StageConfig):
    student: StudentSpec
    # Teacher assistants, largest first: teacher → assistants[0] → … → student, each link a
    # full distillation of its own (Mirzadeh et al., 2020).
    assistants: list[StudentSpec] = Field(default_factory=list)
    teacher_path: str | None = None  # None: the pipeline's current model is the teacher
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the soft (teacher) loss; 1 - alpha weighs the labels' cross-entropy
    hidden: HiddenMatch = HiddenMatch()
    attention: float = Field(0.0, ge=0, description="weight of attention transfer on paired conv features")

    @field_validator("temperature")
    @classmethod
    def _positive_temperature(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"temperature must be > 0 (it divides the logits), got {value}")
        return value

    @field_validator("alpha")
    @classmethod
    def _alpha_is_a_share(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"alpha must lie in [0, 1] (the soft-loss share), got {value}")
        return value

    @field_validator("teacher_path")
    @classmethod
    def _teacher_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _model_file(value, info)

    def ignored_fields(self) -> dict[str, str]:
        ignored: dict[str, str] = {}
        if self.alpha == 0:
            ignored["temperature"] = "alpha is 0: the student learns from the labels alone, without soft targets"
        if not self.hidden.weight:
            ignored |= dict.fromkeys(("hidden.loss", "hidden.projection"),
                                     "hidden.weight is 0: no hidden-state matching")
            if not self.attention:
                ignored["hidden.pairs"] = "hidden.weight and attention are 0: no features are matched"
        return ignored

    def _derived(self) -> list[StudentSpec]:
        return [s for s in (*self.assistants, self.student) if s.path is None]

    def needs_eager(self) -> str | None:
        return "a derived student is a reshaped copy of the teacher" if self._derived() else None

    def recipe_problems(self, facts: RecipeFacts) -> list[str]:
        """Deriving a student needs a model this task's models can be cut down from."""
        wanted = {"students-by-layers": any(s.layers is not None for s in self._derived()),
                  "students-by-width": any(s.width is not None for s in self._derived())}
        how = {"students-by-layers": "by layers (a transformer layer stack)",
               "students-by-width": "by width (the shipped SmallCNN)"}
        capable = set(facts.task.capabilities) | self._model_capabilities(facts)
        return [f"a {facts.task.name} model cannot give a student derived {how[need]}; "
                "give student.path (a student architecture saved with torch.save)"
                for need, asked in wanted.items() if asked and need not in capable]

    @staticmethod
    def _model_capabilities(facts: RecipeFacts) -> set[str]:
        """What the model itself allows whatever its task: a Hugging Face config that counts its
        transformer layers (a ViT's, say) has a layer stack to cut down."""
        try:
            config = facts.source.facts().hf_config or {}
        except ModelpressError:
            return set()
        return {"students-by-layers"} if isinstance(config.get("num_hidden_layers"), int) else set()
