"""What a causal LM's layers are, read from llama.cpp's per-architecture tensor maps (``gguf``).

The ``gguf`` package ships llama.cpp's description of every architecture it converts:
``MODEL_ARCH`` / ``MODEL_ARCH_NAMES`` (the architectures), ``MODEL_TENSORS`` (the tensors each
has) and ``TensorNameMap`` (Hugging Face module names → tensor roles such as ``ATTN_NORM``,
``ATTN_Q``, ``ATTN_QKV``, ``FFN_UP``, ``FFN_GATE_EXP``). The LLM builds read a model's structure
from it instead of hard-coding one family's names: the GGUF build writes tensors by it, the
smoothing fold and the validate-time checks find attention outputs, MLP projections, experts and
routers by their role.

Imports ``gguf`` lazily (the ``llm`` extra).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gguf

#: Hugging Face ``model_type`` → llama.cpp architecture name where they differ: the families
#: ``convert_hf_to_gguf.py`` converts under another architecture (Mistral and Mixtral are
#: ``LlamaModel`` there) or spells differently. Every other model_type is its own name.
GGUF_ARCH_ALIASES = {"mistral": "llama", "mixtral": "llama", "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe",
                     "gemma3_text": "gemma3", "cohere": "command-r"}

#: a module inside an MoE block's expert list: ``….experts.<i>.<projection>``
_EXPERT = re.compile(r"\.experts\.(\d+)\.")

#: roles whose layers read the attention output / the MLP's gated product (their smoothing factor
#: folds into the rows of the layer producing that input), and those producers
ATTN_OUT_ROLES = ("ATTN_OUT",)
ATTN_VALUE_ROLES = ("ATTN_V", "ATTN_QKV")
DOWN_ROLES = ("FFN_DOWN", "FFN_DOWN_EXP", "FFN_DOWN_SHEXP")
UP_ROLES = ("FFN_UP", "FFN_UP_EXP", "FFN_UP_SHEXP")
GATE_ROLES = ("FFN_GATE", "FFN_GATE_EXP", "FFN_GATE_SHEXP")
#: MoE routers (llama.cpp keeps them F32; vLLM builds them unquantized)
ROUTER_ROLES = ("FFN_GATE_INP", "FFN_GATE_INP_SHEXP")
#: expert projections reading the norm's output: each expert reads only the tokens routed to it
EXPERT_INPUT_ROLES = ("FFN_GATE_EXP", "FFN_UP_EXP")


def available() -> bool:
    """Whether the ``gguf`` package (the ``llm`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("gguf") is not None


def gguf_arch_name(model_type: str | None) -> str | None:
    """llama.cpp's name for a Hugging Face ``model_type`` (None: gguf knows no such architecture)."""
    import gguf

    name = GGUF_ARCH_ALIASES.get(model_type or "", model_type)
    return name if name in gguf.MODEL_ARCH_NAMES.values() else None


def gguf_arch(model_type: str | None) -> gguf.MODEL_ARCH | None:
    import gguf

    name = gguf_arch_name(model_type)
    return next((arch for arch, n in gguf.MODEL_ARCH_NAMES.items() if n == name), None)


@lru_cache(maxsize=16)
def _tensor_map(model_type: str, blocks: int) -> Any:
    import gguf

    arch = gguf_arch(model_type)
    return None if arch is None else gguf.TensorNameMap(arch, blocks)


def stacked_name(module_name: str) -> tuple[str, int | None]:
    """(the name llama.cpp gives an MoE expert's module once experts are stacked, expert index);
    ``model.layers.0.mlp.experts.3.up_proj`` → (``model.layers.0.mlp.experts.up_proj``, 3), as
    ``convert_hf_to_gguf.py`` merges them before mapping. Other names are returned unchanged."""
    found = _EXPERT.search(module_name)
    if found is None:
        return module_name, None
    return module_name[:found.start()] + ".experts." + module_name[found.end():], int(found.group(1))


def tensor_role(model_type: str, blocks: int, module_name: str) -> tuple[str, str] | None:
    """(role, GGUF tensor name without suffix) of a module, e.g. (``ATTN_Q``, ``blk.0.attn_q``)."""
    names = _tensor_map(model_type, blocks)
    if names is None:
        return None
    found = names.get_type_and_name(stacked_name(module_name)[0])
    return None if found is None else (found[0].name, found[1])


def roles(model_type: str, blocks: int, module_names: list[str]) -> dict[str, str]:
    """Role of every module the architecture's map knows (the others are left out; none without
    the gguf package, whose absence the builds report as a missing package)."""
    if not available():
        return {}
    found = {}
    for name in module_names:
        role = tensor_role(model_type, blocks, name)
        if role is not None:
            found[name] = role[0]
    return found


def sibling(name: str, role_of: dict[str, str], wanted: tuple[str, ...]) -> str | None:
    """The module under the same parent as ``name`` whose role is one of ``wanted``."""
    parent = name.rpartition(".")[0]
    return next((other for other, role in role_of.items()
                 if role in wanted and other.rpartition(".")[0] == parent), None)


@dataclass(frozen=True)
class Layout:
    """The Linear layers a Hugging Face config gives its causal LM."""

    model_type: str
    architecture: str  # the class, e.g. Qwen2ForCausalLM
    config: dict[str, Any]
    linears: dict[str, tuple[int, int]]  # module name -> (out_features, in_features)
    tied_head: str | None  # the LM head's name when its weight is the embedding table
    roles: dict[str, str] = field(default_factory=dict)  # module name -> llama.cpp tensor role

    def quantized(self, stage: Any) -> dict[str, tuple[int, int]]:
        """The layers ``stage`` (weight-quantize) replaces: every Linear but the excluded ones, the
        tied LM head and MoE routers (the causal-lm task protects both)."""
        return {n: shape for n, shape in self.linears.items()
                if n != self.tied_head and self.roles.get(n) not in ROUTER_ROLES
                and not any(re.search(p, n) for p in stage.exclude)}

    def groups(self, stage: Any) -> dict[str, int]:
        """Each replaced layer's group size as weight-quantize picks it (its width when per-channel)."""
        from modelpress.steps.quantize.torch_backend import layer_group_size

        return {n: layer_group_size(stage, width) or width for n, (_, width) in self.quantized(stage).items()}
