"""What the LLM builds can tell at ``modelpress validate``, from the recipe's stage configs and the
source's Hugging Face ``config.json`` alone, before anything is computed.

:func:`layout` builds the config's own model class with its parameters on the meta device (no
memory, no weights): the exact Linear layers (names, widths) of any family Transformers knows,
their roles in llama.cpp's tensor map, and whether the LM head is the embedding table. The
builds' ``problems`` read the layers ``weight-quantize`` would replace from it
(:meth:`Layout.quantized`) and the group size each one gets (the stage's own
``layer_group_size``), so the rules below hold for every family without naming one.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from modelpress.core.errors import ModelpressError
from modelpress.deploy.builds import architectures as arch
from modelpress.deploy.builds.architectures import Layout
from modelpress.deploy.builds.smoothing import smoothing_problems
from modelpress.steps.lowrank.config import LowRankConfig
from modelpress.steps.prune.config import PruneConfig
from modelpress.steps.quantize.config import QuantizeConfig, WeightQuantizeConfig


def layout(hf_config: dict[str, Any]) -> Layout:
    """The config's model on the meta device, described (cached per config)."""
    return _layout(json.dumps(hf_config, sort_keys=True, default=str))


@lru_cache(maxsize=8)
def _layout(config_json: str) -> Layout:
    from torch import nn
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations.accelerate import init_empty_weights

    body = json.loads(config_json)
    model_type = body.get("model_type")
    try:
        config = AutoConfig.for_model(model_type, **{k: v for k, v in body.items() if k != "model_type"})
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelpressError(f"Transformers cannot build a causal LM from this config.json (model_type "
                              f"{model_type!r}): {str(exc).splitlines()[0]}") from None
    linears = {n: (m.out_features, m.in_features) for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    head = model.get_output_embeddings()  # (init_empty_weights unties parameters: read the config)
    tied = next((n for n, m in model.named_modules() if m is head), None) if config.tie_word_embeddings else None
    names = [n for n, _ in model.named_modules()]
    return Layout(str(model_type), type(model).__name__, body, linears, tied,
                  arch.roles(str(model_type), config.num_hidden_layers, names))


def layout_or_problem(hf_config: Any, build: str) -> tuple[Layout | None, list[str]]:
    if not isinstance(hf_config, dict) or not hf_config.get("model_type"):
        return None, []  # no config to read: the source reports it
    try:
        return layout(hf_config), []
    except ModelpressError as exc:
        return None, [f"{build}: {exc}"]


def weight_stage(stages: Any) -> Any:
    """The last ``weight-quantize`` config among a recipe's stage configs (None: float build)."""

    found = [s for s in stages if isinstance(s, WeightQuantizeConfig)]
    return found[-1] if found else None


def shape_problems(stages: Any, hf_config: Any, build: str) -> list[str]:
    """Stages whose result no checkpoint of the model's architecture can describe, and smoothing
    factors its structure cannot absorb."""

    problems = []
    for stage in stages:
        if isinstance(stage, LowRankConfig):
            problems.append(f"{build}: lowrank factors each Linear into two; the architecture's checkpoint has "
                            "one weight per projection")
        elif isinstance(stage, PruneConfig) and stage.method == "structured" and stage.scope == "global":
            problems.append(f"{build}: prune (structured, scope: global) leaves blocks of different widths, "
                            "which the model's config cannot describe; use scope: layer")
        elif isinstance(stage, QuantizeConfig):
            problems.append(f"{build}: quantize (onnxruntime) acts on the exported ONNX graph; LLM builds "
                            "start from the PyTorch candidate (use weight-quantize)")
    weights = weight_stage(stages)
    if weights is None:
        return problems
    model, found = layout_or_problem(hf_config, build)
    if model is not None:
        found += smoothing_problems(weights, model, build)
    return problems + found


def group_problems(weights: Any, model: Layout, build: str, one_group: bool = True) -> list[str]:
    """Groups weight-quantize cannot make, and (``one_group``) layers that would get different
    group sizes where the format stores one for the whole model."""
    try:
        groups = model.groups(weights)
    except ValueError as exc:
        return [f"{build}: {exc}"]
    if not one_group:
        return []
    proper = {g for n, g in groups.items() if g != model.linears[n][1]}
    per_channel = [n for n, g in groups.items() if g == model.linears[n][1]]
    if len(proper) > 1 or (proper and per_channel and any(model.linears[n][1] not in proper for n in per_channel)):
        widths = sorted({(g, model.linears[n][1]) for n, g in groups.items()})
        listed = ", ".join(f"{g} for width {w}" for g, w in widths[:4])
        return [f"{build}: group_size {weights.group_size} gives the layers different group sizes ({listed}); "
                "this format stores one group size, so pick one that divides every input width"]
    return []
