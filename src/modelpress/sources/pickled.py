"""``source: file``: a whole pickled module (``torch.save(model)``), loaded only on opt-in.

Unpickling runs whatever code the file names, so it needs ``trust_pickle: true``; the safe
sources (state-dict, torchscript, onnx, huggingface) load weights and graphs without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.files import resolve_path, sha256_file, unreadable
from modelpress.core.registry import register_source
from modelpress.sources.base import Source

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task

SAFE_ALTERNATIVES = ("save its state_dict and use source state-dict (with class:), "
                     "torch.jit.save it and use source torchscript, or export ONNX and use source onnx")


@register_source("file")
class PickledModel(Source):
    source: Literal["file"] = "file"
    path: Path
    trust_pickle: bool = Field(False, description="unpickle the file (runs the code it names)")

    summary = "a whole pickled nn.Module (torch.save(model)); needs trust_pickle: true"

    @field_validator("path")
    @classmethod
    def _file(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    def problems(self, task: type[Task] | None) -> list[str]:
        problems = [] if self.task is not None else ["model.task: required for source file"]
        if not self.trust_pickle:
            problems.append(f"model.trust_pickle: {self.path.name} is a pickle, and loading it runs the code "
                            f"it names; set trust_pickle: true if you trust it, or {SAFE_ALTERNATIVES}")
        return problems

    def fingerprint(self) -> str:
        return f"sha256:{sha256_file(self.path)}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        import torch

        if not self.trust_pickle:  # validation refuses this; a hand-built plan must not bypass it
            raise ModelpressError(f"model.trust_pickle: refusing to unpickle {self.path}")
        try:
            model = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 -- torch raises many types for a corrupt or foreign file
            raise unreadable(self.path, "pickled PyTorch model", exc) from None
        if not isinstance(model, torch.nn.Module):
            raise ModelpressError(f"{self.path}: holds a {type(model).__name__}, expected a whole "
                                  "torch.nn.Module saved with torch.save(model, path)")
        return model.eval()
