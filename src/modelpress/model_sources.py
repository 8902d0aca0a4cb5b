"""Turn a recipe's model source into a ready baseline nn.Module."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .errors import ModelpressError
from .recipe import FileModel, MlflowModel, PackageModel

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from .tasks import Task


@functools.singledispatch
def load_baseline(source: object, task: "Task", dataset: "pd.DataFrame") -> "torch.nn.Module":
    raise TypeError(f"unsupported model source {type(source).__name__}")


@load_baseline.register(PackageModel)
def _package(source: PackageModel, task: "Task", dataset: "pd.DataFrame") -> "torch.nn.Module":
    import torch

    from .zoo import ZOO

    entry = ZOO[source.name]
    torch.manual_seed(0)
    model = entry.build(int(dataset["label"].max()) + 1, task.spec.image_shape)
    entry.train_baseline(model, task, dataset[dataset["split"] == "train"], source.baseline)
    return model.eval()


@load_baseline.register(FileModel)
def _file(source: FileModel, task: "Task", dataset: "pd.DataFrame") -> "torch.nn.Module":
    import torch

    try:
        # A whole pickled module is the user's own file, so full unpickling is intended here.
        model = torch.load(source.path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise ModelpressError(f"{source.path}: not a loadable PyTorch model file: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelpressError(f"{source.path}: holds a {type(model).__name__}, expected a whole "
                              "torch.nn.Module saved with torch.save(model, path)")
    return model.eval()


@load_baseline.register(MlflowModel)
def _mlflow(source: MlflowModel, task: "Task", dataset: "pd.DataFrame") -> "torch.nn.Module":
    """A registered version's PyTorch model (its ONNX sibling is what serving uses)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from modelpress.deploy.registry import TORCH_ARTIFACT, resolve_version

    try:
        uri = source.uri
        if uri.startswith("models:/"):
            uri = f"runs:/{resolve_version(uri).run_id}/{TORCH_ARTIFACT}"
        return mlflow.pytorch.load_model(uri).eval()
    except MlflowException as exc:
        raise ModelpressError(f"model.uri {source.uri!r}: {exc.message}") from None
