"""What a stage's ``apply`` may use besides the model and its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task


@dataclass
class StageContext:
    task: Task
    data: pd.DataFrame  # every split, marked by the 'split' column
    seed: int = 0
    #: The model was loaded for this stage alone (a ZenML step's input artifact): the stage may
    #: change it in place and free its weights as it goes, instead of holding a copy beside it.
    owns_model: bool = False
    #: Facts a stage wants reported (logged to MLflow by the pipeline as ``<stage>.<key>``).
    report: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        return self.data[self.data["split"] == name]

    @property
    def train(self) -> pd.DataFrame:
        return self.split("train")

    @property
    def calibration(self) -> pd.DataFrame:
        return self.split("calibration")
