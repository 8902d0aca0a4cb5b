"""Small ONNX graph helpers for the onnxruntime backend: weight MatMuls and intermediate tensors."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelpress.tasks.evaluation import onnx_session

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from modelpress.tasks import Batch


@dataclass(frozen=True)
class WeightMatMul:
    node: str
    activation: str  # input 0 name
    weight: str  # initializer name: [K, N], or [N, K] when transposed (Gemm transB=1)
    transposed: bool = False

    def weight_kn(self, inits: dict) -> np.ndarray:
        from onnx import numpy_helper

        w = numpy_helper.to_array(inits[self.weight])
        return w.T if self.transposed else w

    def store_kn(self, inits: dict, w_kn: np.ndarray) -> None:
        from onnx import numpy_helper

        w = w_kn.T if self.transposed else w_kn
        inits[self.weight].CopyFrom(numpy_helper.from_array(w.astype("float32"), self.weight))


def weight_matmuls(model: onnx.ModelProto, exclude: Collection[str] = frozenset()) -> list[WeightMatMul]:
    """MatMul/Gemm nodes whose second input is a 2-D float initializer (a Linear layer's weight).

    2-D activations export Linear as Gemm (transB=1), 3-D ones as MatMul; both count.
    """
    from onnx import TensorProto, helper

    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.name in exclude or node.input[1] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
            continue  # a scaled or transposed activation is not a plain Linear
        init = inits[node.input[1]]
        if len(init.dims) == 2 and init.data_type == TensorProto.FLOAT:
            found.append(WeightMatMul(node.name, node.input[0], node.input[1], bool(attrs.get("transB", 0))))
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

    session = onnx_session(with_outputs(model, names))
    wanted = {i.name for i in session.get_inputs()}
    for batch in batches:
        values = session.run(names, {k: v for k, v in batch.items() if k in wanted})
        for name, value in zip(names, values):
            if check is not None:
                check(value, name)
            reduce(name, value)
