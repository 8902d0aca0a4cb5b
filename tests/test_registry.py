"""Registration and promotion on a real MLflow sqlite registry with real ONNX models."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch

from modelpress.datasets.shipped import SHIPPED
from modelpress.deploy.onnx_export import export_onnx
from modelpress.tasks import TaskSpec
from modelpress.tasks.evaluation import onnx_runner, onnx_session, predict, quality
from modelpress.tracking.model_registry import alias_version, promote, register, resolve_version

NAME = "digits-linear"


@pytest.fixture()
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("t")
    yield uri
    mlflow.set_tracking_uri(None)  # don't leak this registry into later tests' default client


@pytest.fixture(scope="module")
def digits():
    frame = SHIPPED["digits"].load().iloc[:400].copy()
    frame["split"] = "eval"
    return frame, TaskSpec(name="image-classification", image_shape=(1, 8, 8)).build()


def linear_model(frame, task, steps: int) -> torch.nn.Module:
    """A linear classifier trained ``steps`` steps: more steps, better accuracy."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x = torch.from_numpy(task.encode(frame)["pixel_values"])
    y = torch.tensor(frame["label"].to_numpy())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.net(pixels)

    return Named().eval()


def champion_accuracy(model_uri: str, frame, task) -> float:
    """A registered ONNX model's accuracy on ``frame`` (what the promotion compares here)."""
    logits, _, labels = predict(onnx_runner(onnx_session(mlflow.onnx.load_model(model_uri)), task), task, frame)
    return quality(logits, labels)["accuracy"]


def register_model(frame, task, steps: int) -> tuple[str, float]:
    proto = export_onnx(linear_model(frame, task, steps), task, frame)
    with mlflow.start_run():
        info = mlflow.onnx.log_model(proto, name="onnx_model", pip_requirements=["onnx"])
    version = register(info.model_uri, NAME, {"steps": str(steps)}).version
    return version, champion_accuracy(f"models:/{NAME}/{version}", frame, task)


def scorer(frame, task):
    return lambda v: champion_accuracy(f"models:/{v.name}/{v.version}", frame, task)


def test_first_promotion_then_worse_candidate_is_refused(registry: str, digits) -> None:
    frame, task = digits
    good, good_acc = register_model(frame, task, steps=40)
    bad, bad_acc = register_model(frame, task, steps=1)
    assert good_acc > bad_acc + 0.05

    first = promote(NAME, good, "champion", good_acc, scorer(frame, task))
    assert first.promoted and first.previous is None
    refused = promote(NAME, bad, "champion", bad_acc, scorer(frame, task))
    assert not refused.promoted and "champion" in refused.reason
    assert alias_version(NAME, "champion").version == good
    assert resolve_version(f"models:/{NAME}@champion").version == good


def test_tolerance_lets_a_slightly_worse_candidate_through(registry: str, digits) -> None:
    frame, task = digits
    good, good_acc = register_model(frame, task, steps=40)
    promote(NAME, good, "champion", good_acc, scorer(frame, task))
    slightly, acc = register_model(frame, task, steps=5)
    gap = good_acc - acc
    assert gap > 0.005, f"the 5-step model must be measurably worse ({acc} vs {good_acc}) for this to mean anything"
    refused = promote(NAME, slightly, "champion", acc, scorer(frame, task), tolerance=gap - 1e-6)
    assert not refused.promoted and alias_version(NAME, "champion").version == good  # just below the gap
    assert promote(NAME, slightly, "champion", acc, scorer(frame, task), tolerance=gap + 1e-6).promoted


def test_racing_promotions_end_on_the_better_model(registry: str, digits) -> None:
    """Run A compares against no champion; meanwhile run B promotes a better model.
    Check-then-set must notice and re-compare, so @champion stays on B's model."""
    frame, task = digits
    worse, worse_acc = register_model(frame, task, steps=2)
    better, better_acc = register_model(frame, task, steps=40)
    base, base_acc = register_model(frame, task, steps=1)
    promote(NAME, base, "champion", base_acc, scorer(frame, task))

    raced = {"done": False}

    def score_and_race(version):  # the other run moves the alias while A is comparing
        score = scorer(frame, task)(version)
        if not raced["done"]:
            raced["done"] = True
            assert promote(NAME, better, "champion", better_acc, scorer(frame, task)).promoted
        return score

    outcome = promote(NAME, worse, "champion", worse_acc, score_and_race)
    assert not outcome.promoted
    assert alias_version(NAME, "champion").version == better
