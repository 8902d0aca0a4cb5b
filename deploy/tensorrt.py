"""TensorRT engines from ONNX through the ``tensorrt`` Python API (GPU runners only).

Where ``tensorrt`` is not importable (CPU machines, CI here) :func:`build_engine` raises
:class:`TensorRTUnavailable` with a plain message and callers ship the ONNX build alone.
int8 engines are built from the quantization suite's QDQ graphs: TensorRT reads the scales from
the Q/DQ nodes (explicit quantization), so no calibrator is needed and none is offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    import onnx

Precision = Literal["fp32", "fp16", "int8"]
UNAVAILABLE = ("TensorRT is not installed here (`import tensorrt` failed): no engine was built; "
               "the ONNX Runtime build ships alone. Build engines on a GPU runner with "
               "`pip install modelpress[tensorrt]`.")


class TensorRTUnavailable(ModelpressError):
    """Raised when an engine build is asked for on a machine without TensorRT."""


@dataclass(frozen=True)
class EngineProfile:
    """Optimization profile for the dynamic batch (and sequence) axes."""

    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 64
    sequence: int = 128  # used for every non-batch dynamic axis (text models)


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def build_engine(model: onnx.ModelProto, precision: Precision = "fp16",
                 profile: EngineProfile = EngineProfile(), workspace_gib: float = 2.0) -> bytes:
    """A serialized engine (Triton's ``model.plan``); raises TensorRTUnavailable without TensorRT."""
    try:
        import tensorrt as trt
    except ImportError:
        raise TensorRTUnavailable(UNAVAILABLE) from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT >= 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelpressError("TensorRT cannot parse the ONNX graph: " + "; ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    _set_precision(trt, builder, config, model, precision)
    config.add_optimization_profile(_profile(builder, network, profile))
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ModelpressError(f"TensorRT failed to build a {precision} engine (see its log above)")
    return bytes(engine)


def _set_precision(trt: Any, builder: Any, config: Any, model: onnx.ModelProto,
                   precision: Precision) -> None:
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        if not any(n.op_type == "QuantizeLinear" for n in model.graph.node):
            raise ModelpressError("an int8 engine needs a QDQ graph (quantize stage with "
                                  "format QDQ); this graph has no QuantizeLinear node")
        # explicit quantization: scales come from the graph; fp16 lets the rest run fast
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)


def _profile(builder: Any, network: Any, profile: EngineProfile) -> Any:
    shapes = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        shapes.set_shape(tensor.name, _fill(dims, profile.min_batch, profile.sequence),
                         _fill(dims, profile.opt_batch, profile.sequence),
                         _fill(dims, profile.max_batch, profile.sequence))
    return shapes


def _fill(dims: list[int], batch: int, sequence: int) -> tuple[int, ...]:
    """Concrete dims for a profile: the batch axis gets ``batch``, other dynamic axes ``sequence``."""
    return tuple(batch if axis == 0 and d == -1 else sequence if d == -1 else d
                 for axis, d in enumerate(dims))
