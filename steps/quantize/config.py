"""The quantization configs: one set of fields, two backends, each validated against what it can do.

The fields are shared (``QuantizeFields``); the backend decides which combinations are possible:

* ``quantize`` (backend ``onnxruntime``, a *graph* stage on the exported ONNX): int8 dynamic,
  int8 static (QDQ, calibrated, optional SmoothQuant), int4 weight-only per group (MatMulNBits)
  and fp16 casting.
* ``weight-quantize`` (backend ``torch``, a *module* stage before export): weight-only int8/4/3/2
  (per-tensor/channel/group, RTN or GPTQ), W8A8 with per-token dynamic activations (optionally
  SmoothQuant), fp8 E4M3 weights (+ activations), fp16/bf16 casting.

Two stage names because the registry has one ``kind`` per stage: the two backends act on different
artifacts (ONNX graph vs nn.Module) at different points of the pipeline. A recipe that asks one
stage for the other backend gets an error naming the right stage. Cheap to import (pydantic only).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from modelpress.registry import StageConfig

Dtype = Literal["int", "fp16", "bf16", "fp8"]
Granularity = Literal["per-tensor", "per-channel", "per-group"]


class Calibration(StageConfig):
    """How activation statistics are drawn from the recipe's calibration split."""

    method: Literal["minmax", "percentile", "entropy"] = "minmax"
    samples: int = Field(128, ge=1, description="calibration rows used (at most the split's size)")
    batch_size: int = Field(16, ge=1)
    percentile: float = Field(99.999, gt=90.0, le=100.0, description="for method: percentile")
    progress: bool = True
    device: str | None = Field(None, description="weight-quantize: where the model's blocks are calibrated "
                               "(e.g. cuda); each block is moved there in turn and back, so the other "
                               "blocks' weights stay off the accelerator. None: where the model is")


class SmoothQuant(StageConfig):
    """Migrate activation outliers into the weights: s_k = max|X_k|^alpha / max|W_k|^(1-alpha)."""

    alpha: float = Field(0.5, ge=0.0, le=1.0)
    shared: bool = Field(True, description="layers reading the same input share one factor (max |W| "
                         "over all of them), so it folds into what feeds them, as LLM formats need")
    exclude: list[str] = Field(default_factory=list, description="regexes of layers left unsmoothed "
                               "(e.g. o_proj of grouped-query attention, whose factor v_proj cannot absorb)")


class MixedPrecision(StageConfig):
    """Keep the most sensitive layers in float until the output cosine on calibration rows holds."""

    min_cosine: float = Field(0.99, gt=0.0, le=1.0)
    max_float_share: float = Field(0.5, ge=0.0, le=1.0, description="give up beyond this share of layers")


class GPTQ(StageConfig):
    """Options of ``algorithm: gptq`` (torch backend)."""

    sequential: bool = Field(True, description="calibrate block by block, each layer on the outputs of "
                             "the already-quantized layers before it (one float pass when false)")
    act_order: bool = Field(True, description="quantize the most active input columns first")
    damp: float = Field(0.01, gt=0.0, le=1.0, description="Hessian dampening, share of its mean diagonal")
    # Off by default: on SmolLM2 int4 g64 (GPTQ + AWQ, 64 x 256 eval tokens) it brought the model
    # closer to the float one (KL 0.109 vs 0.111, agreement 0.821 vs 0.818) but its perplexity
    # further from the truth (90.4 vs 89.7): the fit follows the calibration rows more closely.
    refit_scales: bool = Field(False, description="once the codes are rounded, re-solve each row's group "
                               "scales for the lowest output error (least squares through the Hessian)")


class AWQ(StageConfig):
    """Activation-aware weight scaling for weight-only int: s = rms(x)^alpha, alpha searched."""

    grid: int = Field(20, ge=2, le=100, description="alpha candidates in (0, 1]")
    shared: bool = Field(True, description="layers reading the same input (q/k/v, gate/up) share one "
                         "alpha and factor, searched on their summed output error, so it folds into "
                         "their norm as LLM formats (GPTQ, GGUF, compressed-tensors) need")
    exclude: list[str] = Field(default_factory=list, description="regexes of layers left unscaled "
                               "(e.g. o_proj of grouped-query attention, whose factor v_proj cannot absorb)")


class QuantizeFields(StageConfig):
    dtype: Dtype = "int"
    bits: Literal[2, 3, 4, 8] = 8
    granularity: Granularity = "per-channel"
    group_size: Literal[32, 64, 128] = 128  # used when granularity is per-group
    symmetric: bool = True
    activations: Literal["none", "dynamic", "static"] = "dynamic"  # none = weight-only
    algorithm: Literal["rtn", "gptq"] = "rtn"
    calibration: Calibration = Calibration()
    smoothquant: SmoothQuant | None = None
    exclude: list[str] = Field(default_factory=list)  # regexes over layer (ONNX node / module) names kept in float
    mixed_precision: MixedPrecision | None = None

    @property
    def needs_calibration(self) -> bool:
        return (self.activations == "static" or self.algorithm == "gptq"
                or self.smoothquant is not None or self.mixed_precision is not None)

    def _problem(self, field: str, backend: str, supports: str, stage_hint: str) -> ValueError:
        value = getattr(self, field)
        return ValueError(f"{field}={value!r}: backend {backend!r} supports {supports}; {stage_hint}")


ORT_SUPPORTS = ("int8 (activations dynamic or static), int4 weight-only per-group (activations: none, "
                "algorithm: rtn) and dtype fp16")
TORCH_SUPPORTS = ("int weights of 2, 3, 4 or 8 bits (activations: none), int8 W8A8 (activations: "
                  "dynamic, per-tensor or per-channel), fp8 and fp16/bf16")


class QuantizeConfig(QuantizeFields):
    """``quantize``: ONNX Runtime quantization of the exported graph."""

    backend: str = "onnxruntime"
    # ONNX op types to quantize; None = the scheme's defaults (MatMul/Gemm, + Gather when static).
    operators: list[Literal["MatMul", "Gemm", "Gather", "Conv", "Attention", "LSTM",
                            "EmbedLayerNormalization"]] | None = None

    @field_validator("backend")
    @classmethod
    def _graph_backend(cls, backend: str) -> str:
        if backend == "torch":
            raise ValueError("backend 'torch' quantizes the PyTorch module before export: use the "
                             "'weight-quantize' stage for it ('quantize' is the onnxruntime graph stage)")
        if backend != "onnxruntime":
            raise ValueError(f"unknown backend {backend!r}; 'quantize' supports 'onnxruntime' "
                             "('weight-quantize' supports 'torch')")
        return backend

    @model_validator(mode="after")
    def _ort_can_do_it(self) -> QuantizeConfig:
        hint = "the 'weight-quantize' stage (backend torch) does " + TORCH_SUPPORTS
        if self.dtype in ("bf16", "fp8"):
            raise self._problem("dtype", "onnxruntime", ORT_SUPPORTS, hint)
        if self.dtype == "int":
            self._check_int(hint)
        return self

    def _check_int(self, hint: str) -> None:
        if self.bits not in (4, 8):
            raise self._problem("bits", "onnxruntime", ORT_SUPPORTS, hint)
        if self.bits == 4:
            if self.activations != "none":
                raise self._problem("activations", "onnxruntime", "only activations: none for int4 "
                                    "(weight-only MatMulNBits)", hint)
            if self.granularity != "per-group":
                raise self._problem("granularity", "onnxruntime", "only per-group int4", hint)
        else:
            if self.activations == "none":
                raise self._problem("activations", "onnxruntime", "dynamic or static for int8", hint)
            if self.granularity == "per-group":
                raise self._problem("granularity", "onnxruntime", "per-tensor or per-channel for int8",
                                    hint)
        if self.algorithm == "gptq":
            raise self._problem("algorithm", "onnxruntime", "rtn (its GPTQ needs neural-compressor)", hint)
        if self.smoothquant is not None and self.activations != "static":
            raise ValueError("smoothquant: needs activations: static (SmoothQuant eases calibrated "
                             "activation ranges; dynamic activations do not need it)")


class WeightQuantizeConfig(QuantizeFields):
    """``weight-quantize``: PyTorch modules with packed weights (dequantized via modelpress.kernels)."""

    backend: str = "torch"
    activations: Literal["none", "dynamic", "static"] = "none"
    gptq: GPTQ | None = None  # options of algorithm: gptq (defaults when omitted)
    awq: AWQ | None = None  # activation-aware scaling before weight-only int quantization
    # minmax: the full range of each row/group; mse: a clipped range searched to lower the rounding
    # error (with GPTQ, the layer's output error through the group's Hessian block; with RTN, which
    # has no Hessian, |w - q(w)|^2.4). None picks mse for GPTQ below 8 bits (measured on SmolLM2 int4:
    # ppl +12% vs +16% with minmax; the Hessian-weighted search then took GPTQ + AWQ asym from +8.5%
    # to +7.0%), else minmax (for RTN the weight-error clip did not help the model's perplexity).
    weight_range: Literal["minmax", "mse"] | None = None

    @property
    def gptq_options(self) -> GPTQ:
        return self.gptq or GPTQ()

    @property
    def clip_range(self) -> bool:
        default = "mse" if self.algorithm == "gptq" and self.bits < 8 else "minmax"
        return (self.weight_range or default) == "mse"

    @property
    def needs_calibration(self) -> bool:
        return super().needs_calibration or self.awq is not None

    def needs_eager(self) -> str | None:
        return "it replaces Linear layers with quantized modules"

    @field_validator("backend")
    @classmethod
    def _module_backend(cls, backend: str) -> str:
        if backend == "onnxruntime":
            raise ValueError("backend 'onnxruntime' quantizes the exported ONNX graph: use the "
                             "'quantize' stage for it ('weight-quantize' is the torch module stage)")
        if backend != "torch":
            raise ValueError(f"unknown backend {backend!r}; 'weight-quantize' supports 'torch'")
        return backend

    @model_validator(mode="after")
    def _torch_can_do_it(self) -> WeightQuantizeConfig:
        hint = "the 'quantize' stage (backend onnxruntime) does " + ORT_SUPPORTS
        if self.activations == "static":
            raise self._problem("activations", "torch", "none or dynamic (per-token scales at run "
                                "time); calibrated static activation scales", hint)
        if self.dtype == "int" and self.activations == "dynamic":
            if self.bits != 8:
                raise self._problem("bits", "torch", "8-bit weights with int8 activations (W8A8); "
                                    "lower bit widths are weight-only (activations: none)", "")
            if self.granularity == "per-group":
                raise self._problem("granularity", "torch", "per-tensor or per-channel weights for "
                                    "W8A8", "use activations: none for per-group")
        if self.dtype == "fp8" and self.granularity == "per-group":
            raise self._problem("granularity", "torch", "per-tensor or per-channel (per-row) fp8 "
                                "scales", "")
        if self.awq is not None and (self.dtype != "int" or self.activations != "none" or self.smoothquant):
            raise ValueError("awq: scales weights for weight-only int quantization (dtype: int, "
                             "activations: none, no smoothquant); for int8 activations use smoothquant")
        if self.gptq is not None and self.algorithm != "gptq":
            raise ValueError("gptq: options of algorithm: gptq, but algorithm is "
                             f"{self.algorithm!r}; set algorithm: gptq or drop gptq")
        if self.smoothquant is not None and (self.activations != "dynamic" or self.dtype not in ("int", "fp8")):
            raise ValueError("smoothquant: needs quantized activations (activations: dynamic with "
                             "dtype int or fp8)")
        return self
