"""What every LLM build reads from a candidate: a Hugging Face Llama whose Linear layers the
``weight-quantize`` stage replaced (``QuantLinear``: integer codes in ``kernels/packing.py``'s
layout; ``Fp8Linear``: E4M3 weights), described as plain tensors the format writers transcode.

* :func:`describe` — the one quantization scheme of the candidate's layers (formats carry one).
* :func:`int_weight` / :func:`fp8_weight` — a layer's codes, zero points and scales.
* :func:`fold_smoothing` — SmoothQuant/AWQ keep ``x * smooth`` inside each layer; no format has
  that, so the factor moves into what feeds the layer (its RMSNorm, or the rows of the layer
  before it). This is exact: codes are untouched, only norm weights or row scales change.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelpress.errors import ModelpressError

if TYPE_CHECKING:
    import torch
    from torch import nn

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model",
                   "added_tokens.json", "generation_config.json")
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass(frozen=True)
class Scheme:
    """How the candidate's quantized layers store their weights (one scheme for all of them)."""

    kind: Literal["float", "int", "fp8"]
    bits: int = 16
    group_size: int | None = None  # None: one group per row (per-channel / per-tensor)
    symmetric: bool = True
    activations: Literal["none", "int8", "fp8"] = "none"
    per_tensor: bool = False  # fp8 per-tensor weight scale
    quantized: tuple[str, ...] = ()  # module names with quantized weights
    float_dtype: str = "float32"  # dtype of the float weights (fp16/bf16 after casting)

    def label(self) -> str:
        if self.kind == "float":
            return self.float_dtype
        group = f"g{self.group_size}" if self.group_size else "per-channel"
        act = {"none": "", "int8": "a8", "fp8": "a8"}[self.activations]
        if self.kind == "fp8":
            return f"fp8{'-w8a8' if act else ''}-{'per-tensor' if self.per_tensor else 'per-channel'}"
        return f"int{self.bits}{act}-{group}-{'sym' if self.symmetric else 'asym'}"


@dataclass(frozen=True)
class IntWeight:
    """``w[n, k] = (codes[n, k] - zeros[n, k // g]) * scales[n, k // g]`` (g = group_size)."""

    codes: torch.Tensor  # int16 [N, K], modelpress' code values (int8: signed, int≤4: unsigned)
    zeros: torch.Tensor  # int16 [N, G], explicit even when implied (symmetric)
    scales: torch.Tensor  # fp32 [N, G]
    bits: int
    symmetric: bool
    group_size: int

    def dequantize(self) -> torch.Tensor:
        g = self.group_size
        zeros = self.zeros.float().repeat_interleave(g, 1)
        return (self.codes.float() - zeros) * self.scales.float().repeat_interleave(g, 1)


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    return {n: m for n, m in model.named_modules() if isinstance(m, (QuantLinear, Fp8Linear))}


def describe(model: nn.Module) -> Scheme:
    """The single scheme of ``model``'s quantized layers; mixed schemes are refused."""
    import torch

    from modelpress.steps.quantize.modules import Fp8Linear

    require_llama(model)
    layers = quantized_layers(model)
    if not layers:
        dtypes = {p.dtype for n, p in model.named_parameters() if "layers." in n and n.endswith("proj.weight")}
        dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
        return Scheme("float", float_dtype=str(dtype).removeprefix("torch."))
    group = _common_group(layers)
    seen = {}
    for name, m in layers.items():
        if isinstance(m, Fp8Linear):
            seen[name] = Scheme("fp8", 8, None, True, "fp8" if m.act == "fp8" else "none", not m.per_row)
        else:
            seen[name] = Scheme("int", m.bits, group, m.symmetric, "int8" if m.act == "int8" else "none")
    kinds = set(seen.values())
    if len(kinds) > 1:
        found = ", ".join(sorted({s.label() for s in kinds}))
        raise ModelpressError(f"the candidate mixes quantization schemes ({found}); an LLM build "
                              "stores one scheme for all quantized layers")
    scheme = kinds.pop()
    return Scheme(**{**scheme.__dict__, "quantized": tuple(layers)})


def _common_group(layers: dict[str, nn.Module]) -> int | None:
    """The one group size of the int layers (None: per-channel). A layer whose single group spans
    its whole input (weight-quantize stores it per-channel) agrees with a group size equal to its
    width, as a format with one global group size reads it."""
    groups = {n: (getattr(m, "group_size", None) or m.in_features, m.in_features)
              for n, m in layers.items() if hasattr(m, "group_size")}
    proper = {g for g, width in groups.values() if g != width}
    if not proper:
        return None
    if len(proper) > 1 or any(g == width != next(iter(proper)) for g, width in groups.values()):
        found = ", ".join(sorted({f"{n}: {g}" for n, (g, _) in groups.items()})[:6])
        raise ModelpressError(f"the candidate's layers use different group sizes ({found} …); an LLM "
                              "build stores one group size (pick a group_size that divides every "
                              "input width)")
    return proper.pop()


def require_llama(model: nn.Module) -> None:
    """A Llama decoder whose every block has the shapes its config describes."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "llama" or not hasattr(model, "model"):
        raise ModelpressError(f"LLM builds take a Hugging Face Llama causal LM, got {type(model).__name__}")
    expected = llama_shapes(config)
    for i, block in enumerate(model.model.layers):
        for proj, (out_f, in_f) in expected.items():
            layer = block.get_submodule(proj)
            got = (layer.out_features, layer.in_features)
            if got != (out_f, in_f):
                raise ModelpressError(
                    f"model.layers.{i}.{proj} is {got[0]}x{got[1]} but the config describes {out_f}x{in_f}: "
                    "blocks of different widths (e.g. after global structured pruning) cannot be "
                    "described by a Llama config")


def llama_shapes(config: Any) -> dict[str, tuple[int, int]]:
    hidden, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = config.num_key_value_heads * head_dim
    inter = config.intermediate_size
    return {"self_attn.q_proj": (heads * head_dim, hidden), "self_attn.k_proj": (kv, hidden),
            "self_attn.v_proj": (kv, hidden), "self_attn.o_proj": (hidden, heads * head_dim),
            "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}


def int_weight(module: nn.Module) -> IntWeight:
    """A QuantLinear's codes (unpacked), explicit zero points and fp32 scales."""
    import torch

    from modelpress.kernels.packing import unpack_int4

    grid = module.grid
    codes = module.qweight if grid.bits == 8 else unpack_int4(module.qweight)
    scales = module.scales.float()
    zeros = (torch.full(scales.shape, grid.implied_zero, dtype=torch.int16) if module.zeros is None
             else module.zeros.to(torch.int16))
    return IntWeight(codes.to(torch.int16), zeros, scales, grid.bits, grid.symmetric,
                     codes.shape[1] // scales.shape[1])


def fp8_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(E4M3 weight [N, K], fp32 scale [N, 1] or [1, 1])."""
    return module.weight_fp8, module.weight_scale.float()


def output_config(model: nn.Module) -> Any:
    """The config to write: untied when the LM head no longer equals the embedding."""
    config = copy.deepcopy(model.config)
    if getattr(config, "tie_word_embeddings", False) and not _lm_head_tied(model):
        config.tie_word_embeddings = False
    config.architectures = ["LlamaForCausalLM"]
    return config


def _lm_head_tied(model: nn.Module) -> bool:
    head = model.lm_head
    return hasattr(head, "weight") and head.weight is model.model.embed_tokens.weight


def fold_smoothing(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose layers carry no ``smooth`` factor (folded upstream, exactly)."""
    import torch

    model = copy.deepcopy(model)
    problems: list[str] = []
    with torch.no_grad():
        for i, block in enumerate(model.model.layers):
            attn, mlp = block.self_attn, block.mlp
            where = f"model.layers.{i}"
            qkv = [attn.q_proj, attn.k_proj, attn.v_proj]
            _into_norm(block.input_layernorm, qkv, f"{where}.self_attn.q/k/v_proj", problems)
            _into_norm(block.post_attention_layernorm, [mlp.gate_proj, mlp.up_proj], f"{where}.mlp.gate/up_proj",
                       problems)
            _into_rows(attn.v_proj, attn.o_proj, model.config.num_key_value_heads, f"{where}.self_attn.o_proj",
                       problems)
            _into_rows(mlp.up_proj, mlp.down_proj, 0, f"{where}.mlp.down_proj", problems)
        if getattr(model.lm_head, "smooth", None) is not None:
            _into_norm(model.model.norm, [model.lm_head], "lm_head", problems)
    if problems:
        raise ModelpressError("the candidate's SmoothQuant/AWQ factors cannot be folded into the model, "
                              "which every LLM format needs: " + "; ".join(problems))
    return model


def _smooth(module: nn.Module) -> torch.Tensor | None:
    return getattr(module, "smooth", None)


def _into_norm(norm: nn.Module, consumers: list[nn.Module], where: str, problems: list[str]) -> None:
    import torch

    smooths = [_smooth(m) for m in consumers]
    if all(s is None for s in smooths):
        return
    first = smooths[0]
    if any(s is None for s in smooths) or not all(torch.equal(s, first) for s in smooths):
        problems.append(f"{where} read one normalized input but carry different factors (search "
                        "one shared AWQ/SmoothQuant factor per input: awq.shared)")
        return
    norm.weight.mul_(first.to(norm.weight.dtype))
    for m in consumers:
        m.smooth = None


def _into_rows(producer: nn.Module, consumer: nn.Module, kv_heads: int, where: str, problems: list[str]) -> None:
    """Scale the producer's output rows by the consumer's input factor.

    ``kv_heads`` > 0: the consumer is o_proj, whose input repeats each of v_proj's KV heads for
    the query heads sharing it (grouped-query attention): the factor must agree across them.
    """
    smooth = _smooth(consumer)
    if smooth is None:
        return
    if kv_heads:
        repeat = smooth.numel() // producer.out_features
        grouped = smooth.reshape(kv_heads, repeat, -1)
        if not bool((grouped == grouped[:, :1]).all()):
            problems.append(f"{where}'s factor differs between query heads that share one KV head "
                            "(grouped-query attention), so v_proj cannot absorb it (exclude o_proj from "
                            "AWQ: awq.exclude)")
            return
        smooth = grouped[:, 0].reshape(-1)
    _scale_rows(producer, smooth)
    consumer.smooth = None


def _scale_rows(module: nn.Module, factor: torch.Tensor) -> None:
    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    if isinstance(module, QuantLinear):
        module.scales.mul_(factor[:, None].to(module.scales.dtype))
    elif isinstance(module, Fp8Linear):
        raise ModelpressError("an fp8 layer's per-row scale is shared by the row; fold into it is not "
                              "supported (quantize with fp8 per-channel)")
    else:
        module.weight.mul_(factor[:, None].to(module.weight.dtype))
    if getattr(module, "bias", None) is not None:
        module.bias.mul_(factor.to(module.bias.dtype))


def copy_tokenizer(tokenizer_dir: Path, out_dir: Path) -> list[str]:
    """Copy the tokenizer's files (those present) next to the weights; returns their names."""
    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "tokenizer_config.json").is_file() and not (tokenizer_dir / "tokenizer.json").is_file():
        raise ModelpressError(f"{tokenizer_dir} holds no Hugging Face tokenizer (tokenizer.json / "
                              "tokenizer_config.json)")
    copied = []
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, Path(out_dir) / name)
            copied.append(name)
    return copied


def weight_stage(stages: Any) -> Any:
    """The last ``weight-quantize`` config among a recipe's stage configs (None: float build)."""
    from modelpress.steps.quantize.config import WeightQuantizeConfig

    found = [s for s in stages if isinstance(s, WeightQuantizeConfig)]
    return found[-1] if found else None


def shape_problems(stages: Any, hf_config: Any, build: str) -> list[str]:
    """Stages that leave a model no Llama config (hence no format) can describe."""
    from modelpress.steps.lowrank.config import LowRankConfig
    from modelpress.steps.prune.config import PruneConfig
    from modelpress.steps.quantize.config import QuantizeConfig, WeightQuantizeConfig

    problems = []
    if _get(hf_config, "model_type") not in (None, "llama"):
        problems.append(f"{build}: takes Llama causal LMs; the model is {_get(hf_config, 'model_type')!r}")
    for stage in stages:
        if isinstance(stage, LowRankConfig):
            problems.append(f"{build}: lowrank factors each Linear into two; a Llama checkpoint has one "
                            "weight per projection")
        elif isinstance(stage, PruneConfig) and stage.method == "structured" and stage.scope == "global":
            problems.append(f"{build}: prune (structured, scope: global) leaves blocks of different widths, "
                            "which a Llama config cannot describe; use scope: layer")
        elif isinstance(stage, WeightQuantizeConfig):
            problems += _smoothing_problems(stage, hf_config, build)
        elif isinstance(stage, QuantizeConfig):
            problems.append(f"{build}: quantize (onnxruntime) acts on the exported ONNX graph; LLM builds "
                            "start from the PyTorch candidate (use weight-quantize)")
    return problems


def _smoothing_problems(stage: Any, hf_config: Any, build: str) -> list[str]:
    """SmoothQuant/AWQ factors a format can absorb: shared per input, and none on o_proj under GQA."""
    import re

    options = stage.smoothquant or stage.awq
    if options is None:
        return []
    field = "smoothquant" if stage.smoothquant is not None else "awq"
    found = []
    if not options.shared:
        found.append(f"{build}: {field}.shared is false: per-layer factors cannot be folded into the "
                     "norm that q/k/v (gate/up) share")
    heads, kv = _get(hf_config, "num_attention_heads"), _get(hf_config, "num_key_value_heads")
    o_proj_excluded = any(re.search(p, "model.layers.0.self_attn.o_proj") for p in options.exclude)
    if heads and kv and kv < heads and not o_proj_excluded:
        found.append(f"{build}: {field} would scale o_proj, whose input repeats each KV head for "
                     f"{heads // kv} query heads (grouped-query attention), so v_proj cannot absorb the "
                     f"factor; add 'o_proj' to {field}.exclude")
    return found


def _get(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)


def float_weight(module: nn.Module) -> torch.Tensor:
    """The float weight a layer multiplies by (its codes dequantized; smoothing already folded)."""
    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    if isinstance(module, QuantLinear):
        return int_weight(module).dequantize()
    if isinstance(module, Fp8Linear):
        weight, scale = fp8_weight(module)
        return weight.float() * scale
    return module.weight.detach()


def float_model(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A plain ``LlamaForCausalLM`` holding the candidate's weights, dequantized where quantized.

    ``model`` must already be folded (:func:`fold_smoothing`). Parameters keep the candidate's
    dtype unless ``dtype`` is given.
    """
    import torch
    from transformers import LlamaForCausalLM

    config = output_config(model)
    with torch.device("meta"):
        plain = LlamaForCausalLM(config)
    state = {}
    for name, _ in plain.named_parameters(remove_duplicate=False):
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        value = float_weight(owner) if leaf == "weight" else getattr(owner, leaf).detach()
        state[name] = value.to(dtype) if dtype is not None else value
    plain.load_state_dict(state, assign=True, strict=True)
    if config.tie_word_embeddings:
        plain.tie_weights()
    return plain.eval()


def write_manifest(out_dir: Path, build: str, scheme: Scheme, **details: Any) -> None:
    import json

    from modelpress.deploy.builds import MANIFEST

    body = {"build": build, "scheme": scheme.label(), "quantized_layers": len(scheme.quantized), **details}
    (Path(out_dir) / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def prepare_out_dir(out_dir: Path) -> Path:
    """An empty folder to write a build into (a previous build there is replaced, never merged)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return out_dir
