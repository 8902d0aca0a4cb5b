"""Running one support-matrix cell: a recipe with one stage or one build, validated as
``modelpress validate`` does, then the stage or build run at library level on its tiny model and
checked (finite outputs of the right shape, ONNX parity with PyTorch, the build loaded back by
its consumer). The pipeline's own ZenML runs are tested in integration_tests/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelpress.datasets.splits import assign_splits, encode_labels
from modelpress.recipe.schema import RecipeBase, validate_recipe
from modelpress.tasks import Task
from modelpress.tasks.context import StageContext


def recipe_for(name: str, blocks: dict[str, Any], column: str, stage_config: dict[str, Any] | None,
               build_stages: list[dict[str, Any]] | None = None) -> dict:
    """One stage (``stage_config`` given) or one build after ``build_stages``."""
    raw: dict[str, Any] = {"name": name, "registry": {"name": name}, **blocks}
    if stage_config is not None:
        raw["stages"] = [{column: stage_config}]
    else:
        raw["stages"], raw["export"] = build_stages or [{"quantize": {"bits": 8}}], [column]
    return raw


@dataclass
class Loaded:
    recipe: RecipeBase
    task: Task
    frame: pd.DataFrame
    model: Any

    @property
    def eval(self) -> pd.DataFrame:
        return self.frame[self.frame["split"] == "eval"]

    def context(self) -> StageContext:
        return StageContext(task=self.task, data=self.frame)


def load(raw: dict, folder: Path) -> Loaded:
    """Validate ``raw`` (relative paths against ``folder``), load its data and model."""
    from modelpress.pipelines.plan import task_spec

    recipe = validate_recipe(raw, base=folder)
    task = task_spec(recipe).build()
    frame = assign_splits(recipe.data.load(), recipe.data.split, recipe.data.seed, recipe.data.limit)
    if task.labelled:  # as the pipeline's validate_data step does: labels become class indices
        frame, _ = encode_labels(frame, task.spec.labels)
    model = recipe.model.load(task, frame)
    loaded = Loaded(recipe, task, frame, model)
    task.check_model(model, loaded.eval, where="model")
    return loaded
