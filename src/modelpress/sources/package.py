"""``source: package``: a model whose architecture/weights ship in an installed package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import StrictConfig, register_source
from modelpress.sources.base import Source, SourceFacts

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task


class BaselineTraining(StrictConfig):
    """How a package model's task head (or a shipped CNN) is trained to form the baseline."""

    epochs: int = Field(3, ge=1, le=100)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)


@register_source("package")
class PackageModel(Source):
    """A model from `modelpress.sources.zoo` (``minilm-l6``, ``small-cnn``), trained on the data first."""

    source: Literal["package"] = "package"
    name: str
    baseline: BaselineTraining = BaselineTraining()

    summary = "a model that ships in an installed package (see `modelpress.sources.zoo`), baseline-trained unless pretrained"

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from modelpress.sources.zoo import ZOO

        if name not in ZOO:
            raise ValueError(f"unknown package model {name!r}; known: {', '.join(sorted(ZOO))}")
        return name

    def facts(self) -> SourceFacts:
        from modelpress.sources.zoo import ZOO

        entry = ZOO[self.name]
        return SourceFacts(task=entry.task, tokenizer=entry.tokenizer, hf_config=entry.hf_config,
                           notes=entry.notes)

    def problems(self, task: type[Task] | None) -> list[str]:
        from modelpress.sources.zoo import ZOO

        entry = ZOO[self.name]
        if task is not None and task.name != entry.task:
            return [f"model.task: package model {self.name!r} is a {entry.task} model"]
        if entry.check_installed is not None:
            try:
                entry.check_installed()
            except ModelpressError as exc:
                return [str(exc)]
        # Left at its defaults (as the dump a version is registered with holds it), it is no error.
        if entry.train_baseline is None and "baseline" in self.model_fields_set and self.baseline != BaselineTraining():
            return [f"model.baseline: package model {self.name!r} is pretrained and used as it loads; "
                    "it has no baseline training to configure"]
        return []

    def fingerprint(self) -> str:
        from modelpress import __version__

        return f"{self.name}:modelpress=={__version__}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        import torch

        from modelpress.sources.zoo import ZOO

        entry = ZOO[self.name]
        torch.manual_seed(0)
        if entry.train_baseline is None:  # pretrained: the model as it ships
            return entry.build(0, None).eval()
        model = entry.build(int(dataset["label"].max()) + 1, task.spec.image_shape)
        entry.train_baseline(model, task, dataset[dataset["split"] == "train"], self.baseline)
        return model.eval()
