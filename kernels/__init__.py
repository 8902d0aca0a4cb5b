"""Triton kernels with their torch references and a once-decided dispatch."""

# This folder is installed as modelpress.kernels (setuptools package-dir). Imported under any
# other name -- e.g. bare `kernels` because the repo root is on sys.path -- it would be a second
# copy that ZenML records under the wrong source and users' own `kernels` package would clash
# with, so refuse loudly instead (src/modelpress/DESIGN.md, "Packaging").
if __name__ != "modelpress.kernels":
    raise ImportError(
        f"modelpress' kernels/ folder was imported as {__name__!r}; it is only importable as "
        "'modelpress.kernels'. Install modelpress (pip install .) and import modelpress.kernels."
    )

# Public API, resolved lazily: `import modelpress.kernels` must import neither torch nor triton
# (CLI start-up time), so each name is loaded from its module on first attribute access.
#
#   modelpress.kernels.packing   one int4/int8 layout: pack_int4, unpack_int4,
#                                quantize_weight_groupwise, dequantize_weight_groupwise
#   modelpress.kernels.dispatch  w8a16_linear, w4a16_linear, w8a8_linear, backend_for
#   modelpress.kernels.w8a16 / w4a16 / w8a8   reference + Triton kernels + launcher per operation
_EXPORTS = {
    "QuantizedWeight": "packing",
    "pack_int4": "packing",
    "unpack_int4": "packing",
    "quantize_weight_groupwise": "packing",
    "dequantize_weight_groupwise": "packing",
    "w8a16_linear": "dispatch",
    "w4a16_linear": "dispatch",
    "w8a8_linear": "dispatch",
    "backend_for": "dispatch",
}
__all__ = [
    "QuantizedWeight",
    "backend_for",
    "dequantize_weight_groupwise",
    "pack_int4",
    "quantize_weight_groupwise",
    "unpack_int4",
    "w4a16_linear",
    "w8a8_linear",
    "w8a16_linear",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
