"""``source: torchscript``: a module saved with ``torch.jit.save`` (no pickled code is run)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationInfo, field_validator

from modelpress.core.files import resolve_path, sha256_file, unreadable
from modelpress.core.registry import register_source
from modelpress.sources.base import Source

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip holding the module's code (``<name>/code/``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


@register_source("torchscript")
class TorchScriptModel(Source):
    """Weights may change (magnitude pruning, fine-tuning, ONNX quantization); structure cannot."""

    source: Literal["torchscript"] = "torchscript"
    path: Path

    artifact = "scripted"
    summary = "a TorchScript module (torch.jit.save); stages that rewrite modules are refused"
    init_order = 30

    @field_validator("path")
    @classmethod
    def _file(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    def problems(self, task: type[Task] | None) -> list[str]:
        problems = [] if self.task is not None else ["model.task: required for source torchscript"]
        if not is_torchscript(self.path):
            problems.append(f"model.path: {self.path} is not a TorchScript archive (torch.jit.save); "
                            "for a state dict use source state-dict, for ONNX source onnx")
        return problems

    def fingerprint(self) -> str:
        return f"sha256:{sha256_file(self.path)}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        import torch

        try:
            return torch.jit.load(str(self.path), map_location="cpu").eval()
        except Exception as exc:  # noqa: BLE001 -- torch raises many types for a damaged archive
            raise unreadable(self.path, "TorchScript module", exc) from None

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        return path.is_file() and is_torchscript(path)
