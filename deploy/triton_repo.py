"""Triton Inference Server model repositories built from an ONNX graph.

Layout (what Triton, the CPU server and ``modelpress pull`` all read)::

    <root>/<name>/config.pbtxt
    <root>/<name>/<version>/model.onnx
    <root>/<name>/<version>/modelpress.json      # parity report and provenance, ignored by Triton
    <root>/<name>/<version>/preprocessor_config.json  # image models: the transformers image processor
    <root>/<name>-tensorrt/config.pbtxt          # only when a TensorRT engine was built
    <root>/<name>-tensorrt/<version>/model.plan

``config.pbtxt`` is written as protobuf text by hand (it is a flat, fixed message) so building a
repository needs only ``onnx``; the tests parse every generated file with tritonclient's
``model_config_pb2`` to prove it is valid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelpress.core.errors import ModelpressError
from modelpress.datasets.pixels import PREPROCESSOR_FILE

if TYPE_CHECKING:
    import onnx

InstanceKind = Literal["KIND_CPU", "KIND_GPU"]
ONNX_PLATFORM = "onnxruntime_onnx"
TENSORRT_PLATFORM = "tensorrt_plan"
TENSORRT_SUFFIX = "-tensorrt"
METADATA_FILE = "modelpress.json"
DEFAULT_MAX_BATCH = 64
# Triton waits at most this long to merge concurrent requests into one batch: small enough to be
# invisible at low load, large enough to form batches under concurrency.
DEFAULT_QUEUE_DELAY_US = 500

# onnx.TensorProto element type -> Triton data type (model_config.proto's DataType names).
_TRITON_TYPES = {
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16",
    6: "TYPE_INT32", 7: "TYPE_INT64", 8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16",
    11: "TYPE_FP64", 12: "TYPE_UINT32", 13: "TYPE_UINT64", 16: "TYPE_BF16",
}
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, Triton data type and dims (-1 where dynamic)."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def tensor_specs(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's real inputs (initializers excluded) and outputs as Triton tensor specs."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_spec(v) for v in model.graph.output]


def _spec(value: Any) -> TensorSpec:
    tensor = value.type.tensor_type
    if tensor.elem_type not in _TRITON_TYPES:
        raise ModelpressError(f"graph tensor {value.name!r} has ONNX element type {tensor.elem_type}, "
                              "which Triton cannot serve")
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return TensorSpec(value.name, _TRITON_TYPES[tensor.elem_type], dims)


def batches_dynamically(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> bool:
    """Triton's batching needs every tensor to lead with the (dynamic) batch dimension."""
    return all(spec.dims and spec.dims[0] == -1 for spec in [*inputs, *outputs])


def config_text(name: str, platform: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                instance_kind: InstanceKind = "KIND_CPU", instance_count: int = 1,
                max_batch_size: int = DEFAULT_MAX_BATCH) -> str:
    """``config.pbtxt`` for one model; dims exclude the batch axis when Triton batches."""
    batching = max_batch_size > 0 and batches_dynamically(inputs, outputs)
    lines = [f'name: "{name}"', f'platform: "{platform}"',
             f"max_batch_size: {max_batch_size if batching else 0}"]
    lines += _tensors("input", inputs, batching) + _tensors("output", outputs, batching)
    if batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {DEFAULT_QUEUE_DELAY_US} }}")
    lines.append(f"instance_group [ {{ count: {instance_count} kind: {instance_kind} }} ]")
    return "\n".join(lines) + "\n"


def _tensors(field: str, specs: list[TensorSpec], batching: bool) -> list[str]:
    entries = []
    for spec in specs:
        dims = spec.dims[1:] if batching else spec.dims
        entries.append(f'  {{ name: "{spec.name}" data_type: {spec.data_type} '
                       f"dims: [ {', '.join(str(d) for d in dims)} ] }}")
    return [f"{field} [", ",\n".join(entries), "]"]


def write_onnx_model(root: Path, name: str, version: int | str, model: onnx.ModelProto,
                     instance_kind: InstanceKind = "KIND_CPU",
                     metadata: dict[str, Any] | None = None) -> Path:
    """``<root>/<name>/<version>/model.onnx`` plus its config; returns the model's folder."""
    import onnx

    folder = _model_folder(root, name, version)
    inputs, outputs = tensor_specs(model)
    onnx.save(model, str(folder / str(version) / "model.onnx"))
    (folder / "config.pbtxt").write_text(config_text(name, ONNX_PLATFORM, inputs, outputs, instance_kind))
    _write_metadata(folder / str(version), {"format": "onnx", **(metadata or {})})
    _write_preprocessor(folder / str(version), model)
    return folder


def _write_preprocessor(version_folder: Path, model: onnx.ModelProto) -> None:
    """The image processor the graph carries in its metadata (publish puts it there), as the
    file transformers reads (``AutoImageProcessor.from_pretrained(folder)``)."""
    for prop in model.metadata_props:
        if prop.key == PREPROCESSOR_FILE:
            (version_folder / PREPROCESSOR_FILE).write_text(prop.value)


def write_tensorrt_model(root: Path, name: str, version: int | str, engine: bytes,
                         model: onnx.ModelProto, metadata: dict[str, Any] | None = None) -> Path:
    """``<root>/<name>-tensorrt/<version>/model.plan``; tensors are read from the source ONNX."""
    trt_name = name + TENSORRT_SUFFIX
    folder = _model_folder(root, trt_name, version)
    inputs, outputs = tensor_specs(model)
    (folder / str(version) / "model.plan").write_bytes(engine)
    (folder / "config.pbtxt").write_text(
        config_text(trt_name, TENSORRT_PLATFORM, inputs, outputs, "KIND_GPU"))
    _write_metadata(folder / str(version), {"format": "tensorrt", **(metadata or {})})
    return folder


def _model_folder(root: Path, name: str, version: int | str) -> Path:
    if not _NAME.match(name):
        raise ModelpressError(f"model name {name!r} is not a valid Triton model folder name")
    if not str(version).isdigit() or int(version) < 1:
        raise ModelpressError(f"Triton model versions are positive integers, got {version!r}")
    folder = Path(root) / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    return folder


def _write_metadata(version_folder: Path, metadata: dict[str, Any]) -> None:
    (version_folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str))


def latest_version(model_folder: Path) -> Path:
    """The highest numeric version folder of a model (Triton's default version policy)."""
    versions = [p for p in Path(model_folder).iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise ModelpressError(f"{model_folder}: no numeric version folder (expected <name>/<version>/)")
    return max(versions, key=lambda p: int(p.name))


def onnx_models(root: Path) -> list[Path]:
    """Model folders in a repository that hold an ONNX model (the CPU server serves these)."""
    return sorted(p for p in Path(root).iterdir()
                  if (p / "config.pbtxt").is_file() and ONNX_PLATFORM in (p / "config.pbtxt").read_text())
