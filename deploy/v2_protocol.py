"""Open Inference Protocol (V2) tensor specs and request validation, framework-free.

Kept apart from the server so the rules are unit-tested without kserve installed: a request
whose tensor names, datatypes or shapes do not fit the model must be a 400 with a message that
names the tensor, never a 500 from deep inside ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ONNX Runtime's type strings -> V2 datatypes (the protocol's names).
ORT_TO_V2 = {
    "tensor(float)": "FP32", "tensor(float16)": "FP16", "tensor(double)": "FP64",
    "tensor(bfloat16)": "BF16", "tensor(int8)": "INT8", "tensor(int16)": "INT16",
    "tensor(int32)": "INT32", "tensor(int64)": "INT64", "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}
MAX_BATCH = 1024  # larger requests are refused before they reach ONNX Runtime's allocator


@dataclass(frozen=True)
class V2Tensor:
    """A model tensor as the protocol describes it: -1 marks a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def specs_from_ort(nodes: list[Any]) -> list[V2Tensor]:
    """V2 specs from ``session.get_inputs()`` / ``get_outputs()`` (symbolic dims become -1)."""
    specs = []
    for node in nodes:
        if node.type not in ORT_TO_V2:
            raise ValueError(f"tensor {node.name!r} has type {node.type}, not servable over V2")
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
        specs.append(V2Tensor(node.name, ORT_TO_V2[node.type], shape))
    return specs


def request_problems(expected: list[V2Tensor], received: list[tuple[str, str, list[int]]]) -> list[str]:
    """Everything wrong with a request's (name, datatype, shape) triples; empty when it fits."""
    by_name = {spec.name: spec for spec in expected}
    names = [name for name, _, _ in received]
    problems = [f"unknown input {n!r}; the model takes {sorted(by_name)}" for n in names if n not in by_name]
    problems += [f"missing input {n!r}" for n in by_name if n not in names]
    problems += [f"input {n!r} given more than once" for n in set(names) if names.count(n) > 1]
    batches = set()
    for name, datatype, shape in received:
        spec = by_name.get(name)
        if spec is None:
            continue
        problems += _tensor_problems(spec, datatype, list(shape))
        if shape:
            batches.add(shape[0])
    if len(batches) > 1:
        problems.append(f"inputs disagree on the batch size: {sorted(batches)}")
    return problems


def _tensor_problems(spec: V2Tensor, datatype: str, shape: list[int]) -> list[str]:
    problems = []
    if datatype != spec.datatype:
        problems.append(f"input {spec.name!r}: datatype {datatype}, the model expects {spec.datatype}")
    if len(shape) != len(spec.shape):
        problems.append(f"input {spec.name!r}: shape {shape} has {len(shape)} dims, "
                        f"the model expects {list(spec.shape)}")
        return problems
    for axis, (got, want) in enumerate(zip(shape, spec.shape)):
        if not isinstance(got, int) or got < 0 or (want != -1 and got != want):
            problems.append(f"input {spec.name!r}: dim {axis} is {got}, the model expects "
                            f"{'any size' if want == -1 else want} (shape {list(spec.shape)})")
    if shape and isinstance(shape[0], int) and shape[0] > MAX_BATCH:
        problems.append(f"input {spec.name!r}: batch {shape[0]} exceeds the server's limit {MAX_BATCH}")
    if shape and 0 in shape:
        problems.append(f"input {spec.name!r}: empty tensor (shape {shape})")
    return problems


# The JSON types each V2 datatype's data may hold (JSON has no bool/number mix-ups to allow).
_FLOAT_TYPES, _INT_TYPES = ("FP16", "FP32", "FP64", "BF16"), ("INT8", "INT16", "INT32", "INT64",
                                                              "UINT8", "UINT16", "UINT32", "UINT64")


def data_problems(name: str, datatype: str, data: Any) -> list[str]:
    """JSON ``data`` whose element types do not fit ``datatype`` (true for FP32, "a" for INT64)."""
    allowed: tuple[type, ...] = ((int, float) if datatype in _FLOAT_TYPES else (int,) if datatype in _INT_TYPES
                                 else (bool,) if datatype == "BOOL" else ())
    if not allowed:
        return []
    kinds = _element_types(data)
    bad = next((k for k in kinds if not issubclass(k, allowed) or (k is bool and bool not in allowed)), None)
    if bad is None:
        return []
    return [f"input {name!r}: {datatype} data holds {bad.__name__} values"]


def _element_types(data: Any) -> set[type]:
    """The types of the (possibly nested) list's leaves, at C speed for the usual flat list."""
    if not isinstance(data, list):
        return {type(data)}
    kinds = set(map(type, data))
    while list in kinds:
        data = [leaf for item in data for leaf in (item if isinstance(item, list) else (item,))]
        kinds = set(map(type, data))
    return kinds


def finite_problems(name: str, array: Any) -> list[str]:
    """inf/nan in a float input: the model's answer would be meaningless (NaN logits)."""
    import numpy as np

    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        return [f"input {name!r}: holds inf or nan"]
    return []
