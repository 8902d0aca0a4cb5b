"""Small ONNX graph helpers for the onnxruntime backend: weight MatMuls and intermediate tensors."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from modelpress.tasks import Batch


@dataclass(frozen=True)
class WeightMatMul:
    node: str
    activation: str  # input 0 name
    weight: str  # initializer name, shape [K, N]


def weight_matmuls(model: onnx.ModelProto, exclude: set[str] = frozenset()) -> list[WeightMatMul]:
    """MatMul nodes whose second input is a 2-D float initializer (a Linear layer's weight)."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.name in exclude or node.input[1] not in inits:
            continue
        init = inits[node.input[1]]
        if len(init.dims) == 2 and init.data_type == TensorProto.FLOAT:
            found.append(WeightMatMul(node.name, node.input[0], node.input[1]))
    return found


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the named intermediate tensors."""
    from onnx import TensorProto, helper

    exposed = copy.deepcopy(model)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in present:
            exposed.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return exposed


def reduce_intermediates(model: onnx.ModelProto, names: list[str], batches: list[Batch],
                         reduce: Callable[[str, np.ndarray], None], check: Callable | None = None) -> None:
    """Run ``model`` on ``batches`` and hand each named intermediate tensor to ``reduce``."""
    from modelpress.evaluate import onnx_session

    session = onnx_session(with_outputs(model, names))
    wanted = {i.name for i in session.get_inputs()}
    for batch in batches:
        values = session.run(names, {k: v for k, v in batch.items() if k in wanted})
        for name, value in zip(names, values):
            if check is not None:
                check(value, name)
            reduce(name, value)
