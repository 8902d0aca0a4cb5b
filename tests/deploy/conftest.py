"""Fixtures for the deploy tests: small real ONNX graphs, a real MLflow sqlite registry, and
the side-venv tools (kserve, tritonclient, kubernetes-validate, checkov) and Helm."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent


def load_tooling():
    spec = importlib.util.spec_from_file_location("deploy_tooling", HERE / "tooling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tooling():
    return load_tooling()


@pytest.fixture(scope="session")
def serve_python(tooling) -> Path:
    return tooling.serve_python()


@pytest.fixture(scope="session")
def helm(tooling) -> Path:
    return tooling.helm()


def cnn_like_onnx(seed: int = 0):
    """pixels [batch,1,28,28] fp32 -> logits [batch,10], embedding [batch,32] (CNN's interface)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(size=(784, 32)).astype(np.float32) / 28, "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(32, 10)).astype(np.float32), "w2")
    nodes = [helper.make_node("Flatten", ["pixels"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w1"], ["pre"]),
             helper.make_node("Relu", ["pre"], ["embedding"]),
             helper.make_node("MatMul", ["embedding", "w2"], ["logits"])]
    graph = helper.make_graph(
        nodes, "cnn_like",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 32])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def text_like_onnx():
    """input_ids / attention_mask int64 [batch, sequence] -> logits fp32 [batch, 2] (MiniLM's interface)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(1).normal(size=(100, 2)).astype(np.float32), "table")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
             helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["maskf", "axes2"], ["mask3"]),
             helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
             helper.make_node("ReduceSum", ["masked", "axes"], ["logits"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "text_like",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [table, axes, numpy_helper.from_array(np.array([2], dtype=np.int64), "axes2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="session")
def mlflow_registry(tmp_path_factory):
    """A real MLflow sqlite registry with the CNN-like model as version 1 (@champion) and 2.

    Session-scoped: creating MLflow's schema costs seconds; tests only read the registry."""
    import mlflow

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment("deploy-tests", artifact_location=str(root / "artifacts"))
        versions = []
        for seed in (0, 1):
            with mlflow.start_run(experiment_id=experiment):
                mlflow.log_metrics({"parity.max_abs": 1e-6 * (seed + 1), "parity.cosine": 1.0})
                info = mlflow.onnx.log_model(cnn_like_onnx(seed), name="onnx_model",
                                             pip_requirements=["onnxruntime"])
                if seed == 1:  # as publish logs it on a GPU runner (the engine bytes are a stand-in)
                    _log_tensorrt_repository(root / "trt", cnn_like_onnx(seed), version=2)
            versions.append(mlflow.register_model(info.model_uri, "tiny-cnn").version)
        mlflow.MlflowClient().set_registered_model_alias("tiny-cnn", "champion", str(versions[0]))
        yield uri
        mlflow.set_tracking_uri(None)


def _log_tensorrt_repository(folder: Path, model, version: int) -> None:
    import mlflow

    from modelpress.deploy.pull import REPOSITORY_ARTIFACT
    from modelpress.deploy.triton_repo import write_onnx_model, write_tensorrt_model

    write_onnx_model(folder, "tiny-cnn", version, model)
    write_tensorrt_model(folder, "tiny-cnn", version, b"stand-in engine", model)
    mlflow.log_artifacts(str(folder), REPOSITORY_ARTIFACT)


def parse_configs(serve_python: Path, paths: list[Path]) -> list[dict]:
    """Parse config.pbtxt files with tritonclient's model_config_pb2 (in the side venv, where
    tritonclient[grpc] and its protobuf live); returns each as a dict."""
    script = (
        "import json, sys\n"
        "from google.protobuf import json_format, text_format\n"
        "from tritonclient.grpc import model_config_pb2\n"
        "out = []\n"
        "for path in sys.argv[1:]:\n"
        "    config = text_format.Parse(open(path).read(), model_config_pb2.ModelConfig())\n"
        "    out.append(json_format.MessageToDict(config, preserving_proto_field_name=True))\n"
        "print(json.dumps(out))\n")
    done = subprocess.run([str(serve_python), "-c", script, *map(str, paths)],
                          capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"model_config_pb2 rejected the config: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def cnn_onnx():
    return cnn_like_onnx()


@pytest.fixture(scope="session")
def text_onnx():
    return text_like_onnx()


@pytest.fixture(scope="session")
def parse_config(serve_python):
    return lambda paths: parse_configs(serve_python, paths)
