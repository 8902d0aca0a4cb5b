"""SmoothQuant/AWQ factors folded into the model before a format writes it, for any family.

``weight-quantize`` keeps ``x * smooth`` inside each smoothed layer; no format has that, so the
factor moves into what produces the layer's input. This is exact: codes are untouched, only norm
weights or per-row scales change. Where a factor goes:

* a layer whose input is a norm's output: the norm absorbs it. Which norm feeds which layer is
  seen, not looked up: the model runs once on a few tokens and each layer's input tensor is matched
  with the module that produced it. A norm that multiplies by ``w`` becomes ``w·s``; one that
  multiplies by ``1 + w`` (Gemma's) becomes ``(1 + w)·s − 1``: the offset is measured on the module.
  Every layer reading that output must carry the same factor (``awq.shared`` / ``smoothquant.shared``).
* an attention output projection (role ``ATTN_OUT``): its input is a per-head mix of the value
  rows, so the value projection (``ATTN_V``, or the value rows of a fused ``ATTN_QKV``) absorbs it,
  once per KV head: the factor must agree across the query heads sharing one (GQA).
* an MLP down projection (``FFN_DOWN``, an expert's or the shared expert's): its input is
  ``act(gate)·up``, so the up rows absorb it (the up half of a fused ``gate_up``) when the MLP is gated.

Roles come from llama.cpp's tensor map (``architectures.py``). The folded model is run against the
candidate on the same tokens; a fold that changed the outputs is an error, not a build.
:func:`smoothing_problems` refuses at validate what cannot be folded for a family's structure.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.deploy.builds import architectures as arch

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelpress.deploy.builds.architectures import Layout

PROBE_TOKENS = 8
MAX_FOLD_ERROR = 1e-3  # relative error of the folded model's logits (float rounding only)


def fold_smoothing(model: nn.Module) -> nn.Module:
    """``model`` with no ``smooth`` factor left in any layer (a copy when there was one)."""
    import torch

    if not any(getattr(m, "smooth", None) is not None for m in model.modules()):
        return model
    folded = copy.deepcopy(model)
    problems: list[str] = []
    with torch.no_grad():
        feeders = _feeders(folded)
        names = [n for n, _ in folded.named_modules()]
        role_of = arch.roles(folded.config.model_type, folded.config.num_hidden_layers, names)
        smoothed = [n for n, m in folded.named_modules() if getattr(m, "smooth", None) is not None]
        for name in smoothed:
            role = role_of.get(name)
            if role in arch.ATTN_OUT_ROLES:
                _into_values(folded, name, role_of, problems)
            elif role in arch.DOWN_ROLES:
                _into_up_rows(folded, name, role_of, problems)
        by_feeder: dict[str, list[str]] = {}
        for name in smoothed:
            if getattr(folded.get_submodule(name), "smooth", None) is not None:
                by_feeder.setdefault(feeders.get(name, ""), []).append(name)
        for feeder, layers in by_feeder.items():
            _into_norm(folded, feeder, layers, [n for n, f in feeders.items() if f == feeder], problems)
    if problems:
        raise ModelpressError("the candidate's SmoothQuant/AWQ factors cannot be folded into the model, "
                              "which every LLM format needs: " + "; ".join(problems))
    _require_same_outputs(model, folded)
    return folded


def _feeders(model: nn.Module) -> dict[str, str]:
    """Layer name → name of the module whose output is that layer's input (one forward pass).

    Tensors are matched by storage and size, so a view (``x.view(-1, hidden)``) still matches,
    while a gathered subset (an MoE expert's tokens) does not.
    """
    import torch

    layers = {n for n, m in model.named_modules() if hasattr(m, "in_features")}
    produced: dict[tuple[int, int], str] = {}
    read: dict[str, tuple[int, int]] = {}
    kept: list[torch.Tensor] = []  # alive until the end, so no storage is reused

    def on_output(name: str) -> Any:
        def hook(module: nn.Module, args: tuple, out: Any) -> None:
            if torch.is_tensor(out):
                produced.setdefault((out.data_ptr(), out.numel()), name)
                kept.append(out)
        return hook

    def on_input(name: str) -> Any:
        def hook(module: nn.Module, args: tuple) -> None:
            if args and torch.is_tensor(args[0]):
                read.setdefault(name, (args[0].data_ptr(), args[0].numel()))
                kept.append(args[0])
        return hook

    hooks = [m.register_forward_pre_hook(on_input(n)) if n in layers else m.register_forward_hook(on_output(n))
             for n, m in model.named_modules() if n and (n in layers or not list(m.children()))]
    try:
        model(input_ids=_probe(model))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: produced[key] for name, key in read.items() if key in produced}


def _probe(model: nn.Module) -> torch.Tensor:
    import torch

    vocab = model.get_input_embeddings().weight.shape[0]
    return (torch.arange(PROBE_TOKENS) * 7 % vocab)[None]


def _require_same_outputs(model: nn.Module, folded: nn.Module) -> None:
    import torch

    ids = _probe(model)
    with torch.inference_mode():
        ours, theirs = model(input_ids=ids).logits.float(), folded(input_ids=ids).logits.float()
    error = float((ours - theirs).norm() / ours.norm().clamp(min=1e-12))
    if not error <= MAX_FOLD_ERROR:
        raise ModelpressError(f"folding the SmoothQuant/AWQ factors changed the model's outputs (relative "
                              f"error {error:.2e}): the layers' structure is not the one the fold assumes")


def norm_offset(norm: nn.Module) -> float:
    """``o`` in ``y = (o + w)·n(x)``: 0 for most RMSNorms, 1 for Gemma's (measured on the module)."""
    import torch

    weight = norm.weight
    bias = getattr(norm, "bias", None)
    saved = weight.detach().clone(), None if bias is None else bias.detach().clone()
    x = torch.randn(4, weight.numel(), generator=torch.Generator().manual_seed(0)).to(weight.dtype)
    with torch.no_grad():
        if bias is not None:
            bias.zero_()
        weight.zero_()
        at_zero = norm(x).float()
        weight.fill_(1.0)
        normalized = norm(x).float() - at_zero
        weight.copy_(saved[0])
        if bias is not None and saved[1] is not None:
            bias.copy_(saved[1])
    offset = float((at_zero * normalized).sum() / (normalized * normalized).sum().clamp(min=1e-30))
    if not torch.allclose(at_zero, offset * normalized, atol=1e-4, rtol=1e-3):
        raise ModelpressError(f"{type(norm).__name__} does not scale its output by (offset + weight)")
    return round(offset, 6)


def _smooth(module: nn.Module) -> torch.Tensor | None:
    return getattr(module, "smooth", None)


def _into_norm(model: nn.Module, feeder: str, layers: list[str], readers: list[str], problems: list[str]) -> None:
    import torch

    where = ", ".join(layers[:3]) + (" …" if len(layers) > 3 else "")
    norm = model.get_submodule(feeder) if feeder else None
    width = model.get_submodule(layers[0]).in_features
    if norm is None or getattr(norm, "weight", None) is None or tuple(norm.weight.shape) != (width,):
        problems.append(f"{where}: the input is no norm's output (e.g. an MoE expert reads only the tokens "
                        "routed to it), so no module can absorb the factor (exclude these layers from awq/smoothquant)")
        return
    smooths = [_smooth(model.get_submodule(n)) for n in readers]
    first = smooths[0]
    if any(s is None for s in smooths) or not all(torch.equal(s, first) for s in smooths):
        problems.append(f"{', '.join(readers[:4])} read {feeder}'s output but carry different factors (search "
                        "one shared AWQ/SmoothQuant factor per input: awq.shared)")
        return
    assert first is not None
    offset = norm_offset(norm)
    norm.weight.copy_(((offset + norm.weight.float()) * first.float() - offset).to(norm.weight.dtype))
    for name in readers:
        model.get_submodule(name).smooth = None


def _into_values(model: nn.Module, name: str, role_of: dict[str, str], problems: list[str]) -> None:
    """o_proj's factor into the value rows, once per KV head (query heads sharing one must agree)."""
    consumer = model.get_submodule(name)
    producer_name = arch.sibling(name, role_of, arch.ATTN_VALUE_ROLES)
    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if producer_name is None:
        problems.append(f"{name}: no value projection beside it to absorb its factor")
        return
    smooth = _smooth(consumer)
    assert smooth is not None
    grouped = smooth.reshape(kv_heads, heads // kv_heads, -1)
    if not bool((grouped == grouped[:, :1]).all()):
        problems.append(f"{name}'s factor differs between query heads that share one KV head "
                        "(grouped-query attention), so the value rows cannot absorb it (exclude o_proj from "
                        "AWQ: awq.exclude)")
        return
    _scale_last_rows(model.get_submodule(producer_name), grouped[:, 0].reshape(-1))
    consumer.smooth = None


def _into_up_rows(model: nn.Module, name: str, role_of: dict[str, str], problems: list[str]) -> None:
    """down_proj's factor into the up rows: its input is act(gate) * up, element by element."""
    consumer = model.get_submodule(name)
    up = arch.sibling(name, role_of, arch.UP_ROLES)
    producer = None if up is None else model.get_submodule(up)
    gated = arch.sibling(name, role_of, arch.GATE_ROLES) is not None or (
        producer is not None and producer.out_features == 2 * consumer.in_features)  # fused gate_up
    if producer is None or not gated:
        problems.append(f"{name}: its input is not act(gate)·up of a gated MLP, so no layer can absorb its factor")
        return
    smooth = _smooth(consumer)
    assert smooth is not None
    _scale_last_rows(producer, smooth)  # a fused gate_up holds [gate; up]: up is the last half
    consumer.smooth = None


def _scale_last_rows(module: nn.Module, factor: torch.Tensor) -> None:
    """Multiply the last ``len(factor)`` output rows of ``module`` by ``factor`` (exact: per-row scales)."""
    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    rows = slice(module.out_features - factor.numel(), module.out_features)
    if isinstance(module, QuantLinear):
        module.scales[rows] *= factor[:, None].to(module.scales.dtype)
    elif isinstance(module, Fp8Linear):
        if not module.per_row:
            raise ModelpressError("an fp8 per-tensor weight scale is shared by all rows; folding into it "
                                  "is not possible (quantize with fp8 per-channel)")
        module.weight_scale[rows] *= factor[:, None].to(module.weight_scale.dtype)
    else:
        module.weight[rows] *= factor[:, None].to(module.weight.dtype)
    if getattr(module, "bias", None) is not None:
        module.bias[rows] *= factor.to(module.bias.dtype)


def smoothing_problems(stage: Any, layout: Layout, build: str) -> list[str]:
    """What of a recipe's SmoothQuant/AWQ cannot be folded for this model's structure (validate)."""
    options = stage.smoothquant or stage.awq
    if options is None:
        return []
    field = "smoothquant" if stage.smoothquant is not None else "awq"
    found = []
    if not options.shared:
        found.append(f"{build}: {field}.shared is false: per-layer factors cannot be folded into the "
                     "norm that q/k/v (gate/up) share")
    smoothed = [n for n in layout.quantized(stage) if not any(re.search(p, n) for p in options.exclude)]
    if not layout.roles:  # without the gguf package the build reports the missing package instead
        return found + [f"{build}: {field}: llama.cpp's tensor map (gguf) does not describe model_type "
                        f"{layout.model_type!r}, so where its factors fold cannot be told; drop {field}"
                        ] if arch.available() else found
    role_of = layout.roles
    experts = [n for n in smoothed if role_of.get(n) in arch.EXPERT_INPUT_ROLES]
    if experts:
        found.append(f"{build}: {field} would scale the MoE experts' input projections ({experts[0]} …); each "
                     "expert reads only the tokens routed to it, so no norm can absorb their factors; add "
                     f"'experts' to {field}.exclude")
    heads, kv = layout.config.get("num_attention_heads"), layout.config.get("num_key_value_heads")
    if heads and kv and kv < heads and any(role_of.get(n) in arch.ATTN_OUT_ROLES for n in smoothed):
        found.append(f"{build}: {field} would scale o_proj, whose input repeats each KV head for "
                     f"{heads // kv} query heads (grouped-query attention), so the value rows cannot absorb "
                     f"the factor; add 'o_proj' to {field}.exclude")
    for name in smoothed:
        if role_of.get(name) in arch.DOWN_ROLES and arch.sibling(name, role_of, arch.GATE_ROLES) is None:
            up = arch.sibling(name, role_of, arch.UP_ROLES)
            if up is None or layout.linears[up][0] != 2 * layout.linears[name][1]:
                found.append(f"{build}: {field} would scale {name}, whose input is not act(gate)·up of a gated "
                             f"MLP, so no layer can absorb the factor; add it to {field}.exclude")
                break
    return found
