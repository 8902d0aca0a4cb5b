"""Triton model repositories: every generated config.pbtxt parses with tritonclient's
model_config_pb2 and matches the ONNX graph's inputs and outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpress.core.errors import ModelpressError
from modelpress.deploy.triton_repo import (
    config_text,
    latest_version,
    onnx_models,
    tensor_specs,
    write_onnx_model,
    write_tensorrt_model,
)

ONNX_TO_TRITON = {1: "TYPE_FP32", 7: "TYPE_INT64", 6: "TYPE_INT32", 10: "TYPE_FP16"}


def graph_tensors(model) -> dict[str, tuple[str, list[int]]]:
    """name -> (Triton type, dims with -1 for symbolic) straight from the ONNX protobuf."""
    out = {}
    for value in [*model.graph.input, *model.graph.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        out[value.name] = (ONNX_TO_TRITON[tensor.elem_type], dims)
    return out


def mismatches(config: dict, model) -> list[str]:
    """Differences between a parsed ModelConfig and the graph (empty when they agree)."""
    expected = graph_tensors(model)
    batching = int(config.get("max_batch_size", 0)) > 0
    problems = []
    seen = []
    for field in ("input", "output"):
        for tensor in config.get(field, []):
            name = tensor["name"]
            seen.append(name)
            if name not in expected:
                problems.append(f"{field} {name} is not in the graph")
                continue
            dtype, dims = expected[name]
            if batching:
                if dims[0] != -1:
                    problems.append(f"{name}: batching on a fixed batch dim")
                dims = dims[1:]
            if tensor.get("data_type") != dtype:
                problems.append(f"{name}: {tensor.get('data_type')} != {dtype}")
            if [int(d) for d in tensor.get("dims", [])] != dims:
                problems.append(f"{name}: dims {tensor.get('dims')} != {dims}")
    problems += [f"{n} missing from config" for n in expected if n not in seen]
    return problems


def test_cnn_repository_config_parses_and_matches_graph(tmp_path, cnn_onnx, parse_config):
    folder = write_onnx_model(tmp_path, "mnist-cnn", 3, cnn_onnx, metadata={"parity": {"cosine": 1.0}})
    assert (folder / "3" / "model.onnx").is_file() and (folder / "3" / "modelpress.json").is_file()
    [config] = parse_config([folder / "config.pbtxt"])
    assert config["platform"] == "onnxruntime_onnx" and config["name"] == "mnist-cnn"
    assert int(config["max_batch_size"]) == 64 and "dynamic_batching" in config
    assert config["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]
    assert mismatches(config, cnn_onnx) == []


def test_text_repository_int64_inputs_and_gpu_instances(tmp_path, text_onnx, parse_config):
    folder = write_onnx_model(tmp_path, "minilm", 1, text_onnx, instance_kind="KIND_GPU")
    [config] = parse_config([folder / "config.pbtxt"])
    assert [t["data_type"] for t in config["input"]] == ["TYPE_INT64", "TYPE_INT64"]
    assert config["instance_group"][0]["kind"] == "KIND_GPU"
    assert mismatches(config, text_onnx) == []


def test_tensorrt_model_config_parses(tmp_path, cnn_onnx, parse_config):
    folder = write_tensorrt_model(tmp_path, "mnist-cnn", 2, b"not-a-real-engine", cnn_onnx)
    [config] = parse_config([folder / "config.pbtxt"])
    assert folder.name == "mnist-cnn-tensorrt" and (folder / "2" / "model.plan").is_file()
    assert config["platform"] == "tensorrt_plan" and config["instance_group"][0]["kind"] == "KIND_GPU"
    assert mismatches(config, cnn_onnx) == []
    assert onnx_models(tmp_path) == []  # the CPU server does not pick up TensorRT plans


def test_fixed_batch_graph_gets_no_batching(tmp_path, cnn_onnx, parse_config):
    fixed = type(cnn_onnx)()
    fixed.CopyFrom(cnn_onnx)
    for value in [*fixed.graph.input, *fixed.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = 4
    folder = write_onnx_model(tmp_path, "fixed", 1, fixed)
    [config] = parse_config([folder / "config.pbtxt"])
    assert int(config.get("max_batch_size", 0)) == 0 and "dynamic_batching" not in config
    assert mismatches(config, fixed) == []


def test_a_wrong_dtype_in_config_is_caught(tmp_path, cnn_onnx, parse_config):
    """The comparison is not vacuous: a config.pbtxt with the wrong dtype fails it."""
    inputs, outputs = tensor_specs(cnn_onnx)
    broken = config_text("mnist-cnn", "onnxruntime_onnx", inputs, outputs).replace(
        'name: "pixels" data_type: TYPE_FP32', 'name: "pixels" data_type: TYPE_INT32')
    path = tmp_path / "config.pbtxt"
    path.write_text(broken)
    [config] = parse_config([path])
    assert mismatches(config, cnn_onnx) == ["pixels: TYPE_INT32 != TYPE_FP32"]


def test_an_invalid_config_is_rejected_by_model_config_pb2(tmp_path, parse_config):
    path = tmp_path / "config.pbtxt"
    path.write_text('name: "x"\ninput [ { name: "a" data_type: TYPE_FLOAT32 dims: [ 1 ] } ]\n')
    with pytest.raises(AssertionError, match="TYPE_FLOAT32"):
        parse_config([path])


def test_bad_names_and_versions_are_refused(tmp_path, cnn_onnx):
    with pytest.raises(ModelpressError, match="positive integers"):
        write_onnx_model(tmp_path, "m", "latest", cnn_onnx)
    with pytest.raises(ModelpressError, match="not a valid Triton model folder name"):
        write_onnx_model(tmp_path, "../escape", 1, cnn_onnx)


def test_latest_version_is_numeric_not_lexical(tmp_path: Path):
    for version in ("2", "10", "9"):
        (tmp_path / version).mkdir()
    assert latest_version(tmp_path).name == "10"
