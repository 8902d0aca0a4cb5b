"""Quantization room.

Two stages share one set of config fields (``config.py``):

* ``quantize`` — backend ``onnxruntime``, a graph stage on the exported ONNX (int8 dynamic/static
  QDQ with calibration and SmoothQuant, int4 MatMulNBits, fp16).
* ``weight-quantize`` — backend ``torch``, a module stage before export (int8/4/3/2 weights with
  RTN or GPTQ, W8A8, fp8 E4M3, fp16/bf16; packed in modelpress.kernels' layout, exported as QDQ).

Both support exclusion patterns and sensitivity-driven mixed precision. Only pydantic is imported
here: torch/onnxruntime load inside ``apply``.
"""

from modelpress.steps.quantize.config import QuantizeConfig, WeightQuantizeConfig
from modelpress.steps.quantize.onnxruntime_stage import quantize
from modelpress.steps.quantize.torch_stage import weight_quantize

__all__ = ["QuantizeConfig", "WeightQuantizeConfig", "quantize", "weight_quantize"]
