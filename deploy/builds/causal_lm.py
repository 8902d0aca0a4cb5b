"""What every LLM build reads from a candidate: a Hugging Face causal LM of any family whose Linear
layers the ``weight-quantize`` stage replaced (``QuantLinear``: integer codes in
``kernels/packing.py``'s layout; ``Fp8Linear``: E4M3 weights), described as plain tensors the
format writers transcode.

Nothing here names a family: the formats describe Linear layers by module name, and the model's
own class rebuilt from its own config (:func:`float_model`) gives the names and shapes.

* :func:`describe` — the one quantization scheme of the candidate's layers (formats carry one).
* :func:`int_weight` / :func:`fp8_weight` / :func:`float_weight` — a layer's codes, scales, values.
* :func:`float_model` — the candidate's class holding its weights (dequantized where quantized).
* Folding SmoothQuant/AWQ factors into the model lives in ``smoothing.py``.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelpress.core.errors import ModelpressError
from modelpress.deploy.builds import MANIFEST
from modelpress.kernels.packing import unpack_int4

if TYPE_CHECKING:
    import torch
    from torch import nn

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model",
                   "added_tokens.json", "generation_config.json")


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
    mixed_groups: bool = False  # layers use different group sizes (only GGUF stores that)

    def label(self) -> str:
        if self.kind == "float":
            return self.float_dtype
        group = "mixed groups" if self.mixed_groups else f"g{self.group_size}" if self.group_size else "per-channel"
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

    def regrouped(self, group_size: int) -> IntWeight:
        """The same codes with groups of ``group_size`` (a divisor of the current group): each
        scale and zero point repeated, so every value is unchanged (per-channel codes for a
        format whose blocks are narrower than a row)."""
        if self.group_size % group_size:
            raise ModelpressError(f"groups of {self.group_size} cannot be split into groups of {group_size}")
        repeat = self.group_size // group_size
        return IntWeight(self.codes, self.zeros.repeat_interleave(repeat, 1),
                         self.scales.repeat_interleave(repeat, 1), self.bits, self.symmetric, group_size)


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    return {n: m for n, m in model.named_modules() if isinstance(m, (QuantLinear, Fp8Linear))}


def describe(model: nn.Module, one_group: bool = True) -> Scheme:
    """The single scheme of ``model``'s quantized layers; mixed schemes are refused, and mixed
    group sizes too unless the format stores a group size per tensor (``one_group=False``)."""
    import torch

    from modelpress.steps.quantize.modules import Fp8Linear

    require_causal_lm(model)
    layers = quantized_layers(model)
    if not layers:
        dtypes = {m.weight.dtype for m in model.modules() if isinstance(m, torch.nn.Linear)}
        dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
        return Scheme("float", float_dtype=str(dtype).removeprefix("torch."))
    group, mixed = _common_group(layers, one_group)
    seen = {}
    for name, m in layers.items():
        if isinstance(m, Fp8Linear):
            seen[name] = Scheme("fp8", 8, None, True, "fp8" if m.act == "fp8" else "none", not m.per_row)
        else:
            seen[name] = Scheme("int", m.bits, group, m.symmetric, "int8" if m.act == "int8" else "none",
                                mixed_groups=mixed)
    kinds = set(seen.values())
    if len(kinds) > 1:
        found = ", ".join(sorted({s.label() for s in kinds}))
        raise ModelpressError(f"the candidate mixes quantization schemes ({found}); an LLM build "
                              "stores one scheme for all quantized layers")
    scheme = kinds.pop()
    return Scheme(**{**scheme.__dict__, "quantized": tuple(layers)})


def _common_group(layers: dict[str, nn.Module], one_group: bool) -> tuple[int | None, bool]:
    """(the one group size of the int layers (None: per-channel), whether they differ). A layer
    whose single group spans its whole input (weight-quantize stores it per-channel) agrees with a
    group size equal to its width, as a format with one global group size reads it."""
    groups = {n: (getattr(m, "group_size", None) or m.in_features, m.in_features)
              for n, m in layers.items() if hasattr(m, "group_size")}
    proper = {g for g, width in groups.values() if g != width}
    if not proper:
        return None, False
    if len(proper) > 1 or any(g == width != next(iter(proper)) for g, width in groups.values()):
        if not one_group:
            return None, True
        found = ", ".join(sorted({f"{n}: {g}" for n, (g, _) in groups.items()})[:6])
        raise ModelpressError(f"the candidate's layers use different group sizes ({found} …); this "
                              "build stores one group size (pick a group_size that divides every input width)")
    return proper.pop(), False


def require_causal_lm(model: nn.Module) -> None:
    """A Hugging Face causal LM whose every layer has the shape its own config describes."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) is None or not hasattr(model, "get_input_embeddings"):
        raise ModelpressError(f"LLM builds take a Hugging Face causal LM (a PreTrainedModel with a "
                              f"config), got {type(model).__name__}")
    expected = {n: (m.out_features, m.in_features) for n, m in _rebuilt(model).named_modules()
                if hasattr(m, "in_features") and hasattr(m, "out_features")}
    for name, module in model.named_modules():
        if name in expected and hasattr(module, "in_features"):
            got = (module.out_features, module.in_features)
            if got != expected[name]:
                raise ModelpressError(
                    f"{name} is {got[0]}x{got[1]} but the model's config describes {expected[name][0]}x"
                    f"{expected[name][1]}: layers of other widths than the config's (e.g. after global "
                    "structured pruning) cannot be written as its architecture")


def _rebuilt(model: nn.Module, config: Any = None) -> nn.Module:
    """``type(model)`` built from ``config`` (default: the model's) with its parameters on the
    meta device (no memory, no init); buffers (rotary tables) are real, computed from the config."""
    from transformers.integrations.accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return type(model)(config if config is not None else model.config)


def int_weight(module: nn.Module) -> IntWeight:
    """A QuantLinear's codes (unpacked), explicit zero points and fp32 scales."""
    import torch

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


def float_weight(module: nn.Module) -> torch.Tensor:
    """The float weight a layer multiplies by (its codes dequantized; smoothing already folded)."""
    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    if isinstance(module, QuantLinear):
        return int_weight(module).dequantize()
    if isinstance(module, Fp8Linear):
        weight, scale = fp8_weight(module)
        return weight.float() * scale
    return module.weight.detach()


def lm_head_tied(model: nn.Module) -> bool:
    """The output projection's weight is the input embedding table (one tensor)."""
    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    return (head is not None and hasattr(head, "weight") and embeddings is not None
            and head.weight is embeddings.weight)


def output_config(model: nn.Module) -> Any:
    """The config to write: the model's own, untied when the LM head no longer equals the embedding."""
    config = copy.deepcopy(model.config)
    if getattr(config, "tie_word_embeddings", False) and not lm_head_tied(model):
        config.tie_word_embeddings = False
    config.architectures = [type(model).__name__]
    return config


def float_model(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """The candidate's own class, rebuilt from its config, holding its weights dequantized where
    quantized (a plain model every consumer of the family's checkpoints knows).

    ``model`` must already be folded (``smoothing.fold_smoothing``). Parameters keep the
    candidate's dtype unless ``dtype`` is given.
    """
    config = output_config(model)
    plain = _rebuilt(model, config)
    state = {}
    for name in plain.state_dict(keep_vars=True):  # parameters and persistent buffers, tied ones twice
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        value = float_weight(owner) if leaf == "weight" else getattr(owner, leaf).detach()
        state[name] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    try:
        plain.load_state_dict(state, assign=True, strict=True)
    except RuntimeError as exc:  # a shape the config does not describe
        detail = str(exc).splitlines()[-1]
        raise ModelpressError(f"the candidate's weights do not fit its own config: {detail}") from None
    if config.tie_word_embeddings:
        plain.tie_weights()
    return plain.eval()


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


def write_manifest(out_dir: Path, build: str, scheme: Scheme, **details: Any) -> None:
    import json

    body = {"build": build, "scheme": scheme.label(), "quantized_layers": len(scheme.quantized), **details}
    (Path(out_dir) / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def prepare_out_dir(out_dir: Path) -> Path:
    """An empty folder to write a build into (a previous build there is replaced, never merged)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return out_dir
