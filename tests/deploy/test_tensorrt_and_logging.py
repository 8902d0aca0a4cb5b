"""TensorRT engine builds say plainly when TensorRT is missing, and publish still logs the
ONNX model repository with the registered version (what `modelpress pull` reads back)."""

from __future__ import annotations

import pytest

from modelpress.deploy.tensorrt import TensorRTUnavailable, _fill, build_engine, tensorrt_available

needs_no_tensorrt = pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")


@needs_no_tensorrt
def test_engine_build_without_tensorrt_says_so(cnn_onnx):
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed here.*ONNX Runtime build ships alone"):
        build_engine(cnn_onnx, "fp16")


@pytest.mark.skipif(not tensorrt_available(), reason="TensorRT engines are built on GPU runners only")
def test_engine_build_on_a_gpu_runner(cnn_onnx):
    engine = build_engine(cnn_onnx, "fp16")
    assert len(engine) > 1000


def test_profile_shapes_fill_dynamic_axes():
    assert _fill([-1, 1, 28, 28], 8, 128) == (8, 1, 28, 28)
    assert _fill([-1, -1], 4, 128) == (4, 128)


def test_publish_logs_the_repository_and_records_the_missing_engine(tmp_path, cnn_onnx):
    import mlflow

    from modelpress.deploy.log_repository import log_model_repository
    from modelpress.deploy.pull import REPOSITORY_ARTIFACT

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("log-repo", artifact_location=str(tmp_path / "artifacts"))
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            built = log_model_repository(cnn_onnx, "mnist-cnn", 4, ["onnx", "triton-repository", "tensorrt"],
                                         {"cosine": 1.0})
        client = mlflow.MlflowClient()
        files = {f.path for f in client.list_artifacts(run.info.run_id, f"{REPOSITORY_ARTIFACT}/mnist-cnn")}
        tags = client.get_run(run.info.run_id).data.tags
    finally:
        mlflow.set_tracking_uri(None)
    assert files == {f"{REPOSITORY_ARTIFACT}/mnist-cnn/4", f"{REPOSITORY_ARTIFACT}/mnist-cnn/config.pbtxt"}
    if tensorrt_available():
        assert "tensorrt" in built["formats"]
    else:
        assert built["formats"] == ["onnx"]
        assert "TensorRT is not installed here" in built["tensorrt"]
        assert tags["modelpress.tensorrt"].startswith("TensorRT is not installed here")
    assert tags["modelpress.model_repository"] == ",".join(built["formats"])
