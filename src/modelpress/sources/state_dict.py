"""``source: state-dict``: weights (``.pt``/``.bin`` or ``.safetensors``) + the class they fit.

``class: "my_models:PatientMLP"`` is imported from the recipe's folder (then ``sys.path``) and
built with ``kwargs``; the weights load with ``torch.load(weights_only=True)`` or safetensors,
so no pickled code runs. Keys and shapes are compared on the meta device at validate time —
no weights are materialised — and a mismatch names the first differing keys.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, ValidationInfo, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.files import resolve_path, sha256_file, unreadable
from modelpress.core.registry import register_source
from modelpress.sources.base import Source

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from modelpress.tasks import Task

SHOWN_KEYS = 5


@register_source("state-dict")
class StateDictModel(Source):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: Literal["state-dict"] = "state-dict"
    path: Path
    class_: str = Field(alias="class", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                        description="module:Class importable from the recipe's folder")
    kwargs: dict[str, JsonValue] = Field(default_factory=dict, description="the class's arguments")
    #: where ``class`` is imported from (the recipe's folder; set from the validation context)
    search_path: Path | None = Field(None, validate_default=True)

    summary = "a state dict (.pt/.safetensors) + class: module:Name (+ kwargs); no pickled code runs"
    init_order = 40

    @field_validator("path")
    @classmethod
    def _file(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    @field_validator("search_path", mode="before")
    @classmethod
    def _recipe_folder(cls, value: Any, info: ValidationInfo) -> Any:
        base = (info.context or {}).get("base")
        return value if value is not None else (str(base) if base is not None else None)

    def problems(self, task: type[Task] | None) -> list[str]:
        problems = [] if self.task is not None else ["model.task: required for source state-dict"]
        try:
            model = self.build(device="meta")
            problems += self._mismatch(model, self.tensors())
        except ModelpressError as exc:
            problems.append(str(exc))
        return problems

    def model_class(self) -> type:
        module_name, _, name = self.class_.partition(":")
        folder = str(self.search_path) if self.search_path else None
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            found = getattr(importlib.import_module(module_name), name)
        except ImportError as exc:
            raise ModelpressError(f"model.class: cannot import {module_name!r} (looked in "
                                  f"{folder or 'sys.path'}): {exc}") from None
        except AttributeError:
            raise ModelpressError(f"model.class: module {module_name!r} has no {name!r}") from None
        import torch

        if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
            raise ModelpressError(f"model.class: {self.class_} is not a torch.nn.Module class")
        return found

    def build(self, device: str = "cpu") -> torch.nn.Module:
        import torch

        cls = self.model_class()
        try:
            with torch.device(device):
                return cls(**self.kwargs)
        except Exception as exc:  # noqa: BLE001 -- the user's constructor can raise anything
            raise ModelpressError(f"model.kwargs: {self.class_}(**{self.kwargs}) failed: "
                                  f"{type(exc).__name__}: {exc}") from None

    def tensors(self, mmap: bool = True) -> dict[str, torch.Tensor]:
        try:
            if self.path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(self.path))
            import torch

            loaded = torch.load(self.path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as exc:  # noqa: BLE001 -- torch/safetensors raise many types for a bad file
            raise unreadable(self.path, "state dict (torch.save(model.state_dict()) or safetensors)", exc) from None
        if not isinstance(loaded, dict) or not all(hasattr(v, "shape") for v in loaded.values()):
            raise ModelpressError(f"{self.path}: holds a {type(loaded).__name__}, not a state dict of tensors")
        return loaded

    def _mismatch(self, model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        given = {k: tuple(v.shape) for k, v in tensors.items()}
        missing = [k for k in expected if k not in given]
        unexpected = [k for k in given if k not in expected]
        shapes = [f"{k} {given[k]} vs {expected[k]}" for k in expected if k in given and given[k] != expected[k]]
        if not (missing or unexpected or shapes):
            return []
        parts = [f"{label}: {', '.join(items[:SHOWN_KEYS])}{' …' if len(items) > SHOWN_KEYS else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected),
                                      ("shape (file vs class)", shapes)) if items]
        return [f"model.path: {self.path.name} does not fit {self.class_}(**{self.kwargs}); " + "; ".join(parts)]

    def fingerprint(self) -> str:
        return f"sha256:{sha256_file(self.path)}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        model = self.build()
        tensors = self.tensors(mmap=False)
        problems = self._mismatch(model, tensors)
        if problems:
            raise ModelpressError(problems[0])
        model.load_state_dict(tensors)
        return model.float().eval()

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """A safetensors file, or a torch file that loads as tensors without unpickling code."""
        if not path.is_file():
            return False
        if path.suffix == ".safetensors":
            return True
        try:
            import torch

            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 -- not loadable as plain tensors: not a state dict
            return False
        return isinstance(loaded, dict) and all(hasattr(v, "shape") for v in loaded.values())

    @classmethod
    def starter(cls, path: Path, model_class: str | None = None) -> dict[str, Any]:
        if not model_class:
            raise ModelpressError(f"{path}: a state dict needs the class it fits: pass --class module:Name "
                                  "(importable from the recipe's folder)")
        return {"source": "state-dict", "path": str(path), "class": model_class, "kwargs": {}}
