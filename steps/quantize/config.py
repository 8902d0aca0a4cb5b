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

``group_size`` alone means per-group (``{bits: 4, group_size: 32}``), as llm-compressor, GPTQModel
and AutoGPTQ read it; a field the chosen scheme would not read (``group_size`` beside
``granularity: per-channel``, ``calibration.percentile`` without ``method: percentile``, anything
but ``exclude`` for an fp16 cast …) is refused, naming it (``ignored_fields``).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import RecipeFacts, StageConfig

Dtype = Literal["int", "fp16", "bf16", "fp8"]
Granularity = Literal["per-tensor", "per-channel", "per-group"]
# Powers of two from 16: what ONNX Runtime's MatMulNBits (the GenAI and int4 ONNX builds) takes;
# the torch modules, kernels and GPTQ take any even group that divides a layer's input width.
GroupSize = Literal[16, 32, 64, 128, 256]
#: Hugging Face config fields giving the input widths of a model's Linear layers (attention
#: projections read hidden_size; o_proj num_attention_heads x head_dim; MLPs the intermediate sizes)
WIDTH_FIELDS = ("hidden_size", "intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size")
GROUP_SIZES = tuple(sorted(get_args(GroupSize), reverse=True))


def untiled(group: int, widths: dict[str, int]) -> dict[str, int]:
    """The input widths that groups of ``group`` cannot tile (a narrower layer is one group a row)."""
    return {name: width for name, width in widths.items() if width > group and width % group}


def tiling_groups(widths: dict[str, int], untiled_by: dict[str, int]) -> list[int]:
    """The group sizes that tile every width and group the ``untiled_by`` ones, largest first."""
    return [group for group in GROUP_SIZES if not untiled(group, widths) and group <= max(untiled_by.values())]


CALIBRATION_RUNS = ("calibration.samples", "calibration.batch_size")
#: the fewest packed calibration sequences GPTQ / AWQ get before validate warns; measured on
#: SmolLM2-135M int4 g64 (benchmarks/calibration_size.py, benchmarks/RESULTS.md)
MIN_GPTQ_SEQUENCES = 16
STATIC_CALIBRATOR = ("calibration.method", "calibration.percentile")


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
    granularity: Granularity = Field("per-channel", description="per-group when only group_size is given")
    group_size: GroupSize = Field(128, description="weights per group (per-group granularity); given "
                                  "alone it means granularity: per-group")
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

    # --- what a recipe may leave out, and what it must not set ---------------------------------

    def groups(self) -> bool:
        """Whether the backend can quantize these weights per group (each backend says)."""
        return True

    def why_ungrouped(self) -> str:
        """Why ``group_size`` has no effect when the weights are not per-group."""
        return (f"granularity is {self.granularity}; group_size counts with granularity: per-group "
                "(give group_size alone for per-group)")

    def implied_values(self) -> dict[str, Any]:
        # ``group_size`` alone means per-group, as llm-compressor, GPTQModel and AutoGPTQ read it.
        if "group_size" in self.model_fields_set and self.groups():
            return {"granularity": "per-group"}
        return {}

    def cast_ignores(self, extra: tuple[str, ...]) -> dict[str, str]:
        """An fp16/bf16 cast reads only ``exclude``: every quantization setting is ignored."""
        why = (f"dtype {self.dtype} casts the weights to {self.dtype} and quantizes nothing; "
               "the quantization settings count for dtype int")
        fields = ("bits", "granularity", "group_size", "symmetric", "activations", "algorithm", "smoothquant",
                  "mixed_precision", *CALIBRATION_RUNS, *STATIC_CALIBRATOR, "calibration.device", *extra)
        return dict.fromkeys(fields, why)

    def calibration_ignores(self, counts_with: str) -> dict[str, str]:
        """``calibration.*`` when nothing is calibrated."""
        if self.needs_calibration:
            return {}
        return dict.fromkeys((*CALIBRATION_RUNS, *STATIC_CALIBRATOR, "calibration.device"),
                             f"this scheme calibrates nothing; calibration counts with {counts_with}")


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

    def groups(self) -> bool:
        return self.dtype == "int" and self.bits == 4  # MatMulNBits; int8 is per-tensor or per-channel

    def why_ungrouped(self) -> str:
        if self.groups():
            return super().why_ungrouped()
        return "int8 in ONNX Runtime is per-tensor or per-channel; group_size counts for int4 (per-group)"

    def ignored_fields(self) -> dict[str, str]:
        if self.dtype in ("bf16", "fp8"):
            return {}  # refused as such by _ort_can_do_it
        if self.dtype == "fp16":
            return self.cast_ignores(("operators",))
        ignored = self.calibration_ignores("activations: static, smoothquant or mixed_precision")
        if self.granularity != "per-group":
            ignored["group_size"] = self.why_ungrouped()
        if self.bits == 4:
            ignored["operators"] = "int4 (MatMulNBits) quantizes the weights of MatMul nodes; operators counts for int8"
        if self.needs_calibration and self.activations != "static":
            ignored |= dict.fromkeys(STATIC_CALIBRATOR, "chooses the calibrator of static activation "
                                     "ranges; activations are not static")
        elif self.calibration.method != "percentile":
            ignored["calibration.percentile"] = (f"calibration.method is {self.calibration.method}; "
                                                 "percentile counts with method: percentile")
        ignored["calibration.device"] = ("places weight-quantize's block-by-block calibration; ONNX Runtime "
                                         "calibrates the whole graph in its own session")
        ignored["smoothquant.shared"] = ("ONNX Runtime's SmoothQuant always shares one factor among the "
                                         "MatMuls reading an activation (it folds into what feeds them)")
        ignored["smoothquant.exclude"] = "ONNX Runtime's SmoothQuant leaves out what the stage's exclude keeps float"
        return ignored

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

    def calibration_warning(self, sequences: int, tokens_per_sequence: int) -> str | None:
        """GPTQ's Hessians and AWQ's activation scales from fewer than :data:`MIN_GPTQ_SEQUENCES`
        packed sequences (what the split gives, capped by ``calibration.samples``)."""
        if self.algorithm != "gptq" and self.awq is None:
            return None
        used = min(sequences, self.calibration.samples)
        if used >= MIN_GPTQ_SEQUENCES:
            return None
        what = " + ".join(n for n, on in (("GPTQ", self.algorithm == "gptq"), ("AWQ", self.awq is not None)) if on)
        limit = "calibration.samples" if self.calibration.samples < sequences else "data.split.calibration"
        return (f"{what} calibrates on {used} sequences ({used * tokens_per_sequence:,} tokens; {limit}); "
                f"below {MIN_GPTQ_SEQUENCES} its perplexity suffers (benchmarks/RESULTS.md, calibration size): "
                f"give data.split.calibration: {{sequences: {MIN_GPTQ_SEQUENCES}}} or more")

    def groups(self) -> bool:
        return self.dtype == "int" and self.activations == "none"  # weight-only int

    def why_ungrouped(self) -> str:
        if self.groups():
            return super().why_ungrouped()
        if self.dtype == "int":
            return ("W8A8 weights (activations: dynamic) are per-tensor or per-channel; group_size counts "
                    "for weight-only int (activations: none)")
        return f"{self.dtype} weights are per-tensor or per-channel; group_size counts for int weights"

    def ignored_fields(self) -> dict[str, str]:
        if self.dtype in ("fp16", "bf16"):
            return self.cast_ignores(("weight_range", "gptq", "awq"))
        ignored = self.calibration_ignores("algorithm: gptq, awq, smoothquant or mixed_precision")
        ignored |= dict.fromkeys(STATIC_CALIBRATOR, "chooses the onnxruntime stage's static activation "
                                 "calibrator; weight-quantize calibrates on the rows as they are")
        if self.granularity != "per-group":
            ignored["group_size"] = self.why_ungrouped()
        if self.dtype == "fp8":
            fp8 = "fp8 weights are E4M3 with symmetric scales, rounded to nearest; {} counts for dtype int"
            ignored |= {field: fp8.format(field) for field in ("bits", "symmetric", "algorithm", "weight_range",
                                                                "gptq")}
        return ignored

    def recipe_problems(self, facts: RecipeFacts) -> list[str]:
        """A group size must divide the input width of every layer it groups (when the source's
        Hugging Face config gives the widths; the stage checks every layer before it starts)."""
        if self.granularity != "per-group":
            return []
        try:
            hf_config = facts.source.facts().hf_config or {}
        except ModelpressError:  # the source reports its own unreadable config
            return []
        widths = {name: hf_config.get(name) for name in WIDTH_FIELDS}
        heads, head_dim = hf_config.get("num_attention_heads"), hf_config.get("head_dim")
        if isinstance(heads, int) and isinstance(head_dim, int) and heads * head_dim != widths["hidden_size"]:
            widths["num_attention_heads x head_dim"] = heads * head_dim  # o_proj's input (Gemma, Qwen3)
        if self.exclude:  # excluded layers are unknown before the model loads: check what q/k/v read
            widths = {"hidden_size": widths["hidden_size"]}
        known = {name: width for name, width in widths.items() if isinstance(width, int)}
        bad = untiled(self.group_size, known)
        if not bad:
            return []
        fits = " or ".join(map(str, tiling_groups(known, bad)[:2])) or "granularity: per-channel"
        return [f"group_size {self.group_size} does not divide " + ", ".join(f"{k} {w}" for k, w in bad.items())
                + f" of the model's Linear inputs; use {fits}"]

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
