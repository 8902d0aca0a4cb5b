"""`modelpress promote --to` (staging → production registry) and `modelpress rollback`, run as
the installed CLI against two real MLflow sqlite registries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

NAME = "tiny-classifier"


def tiny_onnx(seed: int) -> onnx.ModelProto:
    weights = np.random.default_rng(seed).normal(size=(4, 3)).astype("float32")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["pixels", "W"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weights, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def register(uri: str, folder: Path, seed: int, accuracy: float) -> str:
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("staging")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        "staging", artifact_location=(folder / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.onnx.log_model(tiny_onnx(seed), name="onnx_model", pip_requirements=["onnx"])
    tags = {"gate": "passed", "gate_reason": "all checks passed", "accuracy": str(accuracy),
            "data_fingerprint": "digits:test", "recipe_hash": f"hash{seed}"}
    return str(mlflow.register_model(info.model_uri, NAME, tags=tags).version)


def cli(modelpress_cli: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([modelpress_cli, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=300)


def outputs(model: onnx.ModelProto) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": np.eye(4, dtype="float32")})[0]


def test_promote_to_another_registry_then_rollback(modelpress_cli: str, tmp_path: Path) -> None:
    staging, production = tmp_path / "staging", tmp_path / "production"
    staging.mkdir()
    production.mkdir()
    src, dst = f"sqlite:///{staging / 'mlflow.db'}", f"sqlite:///{production / 'mlflow.db'}"
    first = register(src, staging, seed=1, accuracy=0.90)
    second = register(src, staging, seed=2, accuracy=0.93)

    done = cli(modelpress_cli, "promote", NAME, "--version", first, "--tracking-uri", src, "--to", dst, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "promoted to @champion" in done.stdout
    target = mlflow.MlflowClient(dst, dst)
    champion = target.get_model_version_by_alias(NAME, "champion")
    assert champion.tags["recipe_hash"] == "hash1" and champion.tags["promoted_from"].endswith(f"#{NAME}/{first}")
    mlflow.set_registry_uri(dst)
    copied = mlflow.onnx.load_model(f"models:/{NAME}@champion")
    np.testing.assert_allclose(outputs(copied), outputs(tiny_onnx(1)))
    assert (production / "mlartifacts").is_dir()  # artifacts beside the target registry, not in ./mlruns
    assert not (tmp_path / "mlruns").exists()

    done = cli(modelpress_cli, "promote", NAME, "--version", second, "--tracking-uri", src, "--to", dst, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.get_model_version_by_alias(NAME, "champion").tags["recipe_hash"] == "hash2"

    done = cli(modelpress_cli, "rollback", NAME, "--tracking-uri", dst, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.get_model_version_by_alias(NAME, "champion").tags["recipe_hash"] == "hash1"
    assert "rollback" in done.stdout

    missing = cli(modelpress_cli, "rollback", NAME, "--tracking-uri", dst, cwd=tmp_path)
    assert missing.returncode == 1 and "records no previous @champion" in missing.stderr
