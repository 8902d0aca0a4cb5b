"""A real MLflow sqlite registry and tiny real models (a linear classifier on digits)."""

from __future__ import annotations

from typing import Any

import mlflow
import pytest
import torch
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils

from modelpress.datasets.shipped import SHIPPED
from modelpress.tasks import TaskSpec
from modelpress.tasks.evaluation import onnx_runner, onnx_session, predict, quality


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite registry per module (creating its schema takes seconds); tests keep apart by
    registering under their own model names (see ``model_name``). MLflow's global URIs are put
    back afterwards so that later tests' clients are not redirected here."""
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    # The globals as explicitly set (None when unset), not the resolved defaults.
    before = tracking_utils._tracking_uri, registry_utils._registry_uri
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)  # set_registry_uri exports it; the patch takes it back
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        mlflow.create_experiment("gate-tests", artifact_location=(folder / "artifacts").as_uri())
        mlflow.set_experiment("gate-tests")
        yield uri
        mlflow.set_tracking_uri(before[0])  # inside: the env var is then restored by the patch
        mlflow.set_registry_uri(before[1])


@pytest.fixture()
def model_name(request: pytest.FixtureRequest) -> str:
    return "m-" + request.node.name.removeprefix("test_")[:60].replace("[", "-").replace("]", "")


@pytest.fixture(scope="session")
def digits() -> tuple[Any, Any]:
    frame = SHIPPED["digits"].load().iloc[:300].copy()
    frame["split"] = "eval"
    return frame, TaskSpec(name="image-classification", image_shape=(1, 8, 8)).build()


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)


def linear_model(frame: Any, task: Any, steps: int) -> torch.nn.Module:
    """Trained ``steps`` full-batch steps: more steps, higher accuracy."""
    torch.manual_seed(0)
    model = Linear()
    x = torch.from_numpy(task.encode(frame)["pixel_values"])
    y = torch.tensor(frame["label"].to_numpy())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def registered_accuracy(model_uri: str, frame: Any, task: Any) -> float:
    """A registered ONNX model's accuracy on ``frame``, measured here (what promotion compares)."""
    logits, _, labels = predict(onnx_runner(onnx_session(mlflow.onnx.load_model(model_uri)), task), task, frame)
    return quality(logits, labels)["accuracy"]
