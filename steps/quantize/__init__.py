"""Quantization room: ``quantize`` stage (ONNX Runtime int8 dynamic, per-channel weights)."""

from .onnxruntime_dynamic import QuantizeConfig, quantize

__all__ = ["QuantizeConfig", "quantize"]
