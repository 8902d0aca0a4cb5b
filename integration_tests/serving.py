"""The serving side shared by the serving tests: a CNN registered in MLflow, `modelpress pull`
into a model repository, `modelpress serve` started (serving side venv) and stopped."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "serve-cnn"


def tooling():
    spec = importlib.util.spec_from_file_location("deploy_tooling", REPO / "tests" / "deploy" / "tooling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# one implementation for both suites: the LLM serving tests in tests/deploy start theirs with it too
start = tooling().start_server
stop = tooling().stop_server


def register_cnn(root: Path, tracking_uri: str) -> None:
    """The shipped SmallCNN (random weights: serving, not accuracy, is under test) as @champion."""
    import mlflow
    import onnx
    import torch

    from modelpress.sources.zoo.nets import SmallCNN

    torch.manual_seed(0)
    path = root / "cnn.onnx"
    torch.onnx.export(SmallCNN((1, 28, 28), 10).eval(), (torch.zeros(1, 1, 28, 28),), str(path),
                      input_names=["pixels"], output_names=["logits", "embedding"], opset_version=17,
                      dynamo=False, dynamic_axes={n: {0: "batch"} for n in ("pixels", "logits", "embedding")})
    leaked = os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # explicit: a registry another test left set must not get it
    try:
        experiment = mlflow.create_experiment("serving", artifact_location=str(root / "artifacts"))
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.onnx.log_model(onnx.load(str(path)), name="onnx_model", pip_requirements=["onnxruntime"])
        version = mlflow.register_model(info.model_uri, MODEL)
        mlflow.MlflowClient(tracking_uri, tracking_uri).set_registered_model_alias(MODEL, "champion", version.version)
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        if leaked is None:  # set_registry_uri exported it; None does not take it back
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
        else:
            os.environ["MLFLOW_REGISTRY_URI"] = leaked


def pull_champion(root: Path) -> Path:
    """Register the CNN in a sqlite registry under ``root`` and pull @champion; the repository."""
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    register_cnn(root, tracking_uri)
    cli = Path(sys.executable).parent / "modelpress"
    done = subprocess.run([str(cli), "pull", f"models:/{MODEL}@champion", "--to", str(root / "models")],
                          capture_output=True, text=True, check=False, timeout=120,
                          env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri})
    assert done.returncode == 0, done.stderr
    return root / "models"
