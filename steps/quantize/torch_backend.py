"""The torch backend: replace nn.Linear layers by quantized modules (imports torch).

``quantize_module(model, config, calibration, forward)`` is the pure core, usable without ZenML or a
Task (the SmolLM2 benchmark calls it with token batches); the ``weight-quantize`` stage feeds it
the recipe's calibration rows. Calibration statistics (GPTQ Hessians, SmoothQuant channel maxima,
input samples for sensitivity) are those of the *float* model, except that GPTQ, by default,
calibrates each layer on the outputs of the already-quantized layers before it. Either way the
layers inside the model's repeated blocks are calibrated block by block (``sequential.py``):
memory holds one block's activations and statistics, never every layer's at once.

The input model is left untouched without being deep-copied: the working copy shares the
input's tensors (quantized layers replace modules, they never write into weights), and tensors
still shared at the end are cloned — only what stays float costs memory twice. ``inplace=True``
quantizes the model itself and frees each float weight once its layer is replaced.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.steps.quantize.awq import awq_smoothing
from modelpress.steps.quantize.calibration import CalibrationError, check_finite, progress
from modelpress.steps.quantize.config import WeightQuantizeConfig, tiling_groups, untiled
from modelpress.steps.quantize.gptq import HessianAccumulator, gptq_quantize
from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear, cast_module
from modelpress.steps.quantize.qmath import Grid, fake_quantize, quantize_weight, to_storage
from modelpress.steps.quantize.sequential import chained_blocks, quantize_sequentially

Forward = Callable[[nn.Module, Any], torch.Tensor]
SAMPLE_ROWS = 256  # input rows kept per layer to rank layer sensitivity


def select_layers(model: nn.Module, exclude: list[str], stage: str = "weight-quantize",
                  kinds: tuple[type, ...] = (nn.Linear,)) -> dict[str, nn.Module]:
    """The layers to quantize: every ``kinds`` module whose name no ``exclude`` regex matches."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, kinds)}
    if not layers:
        raise ValueError(f"{stage}: the model has no {'/'.join(k.__name__ for k in kinds)} layers")
    for pattern in exclude:
        if not any(re.search(pattern, name) for name in layers):
            names = list(layers)
            raise ValueError(f"{stage}.exclude: {pattern!r} matches no layer; layers: "
                             + ", ".join(names[:60]) + (" …" if len(names) > 60 else ""))
    return {n: m for n, m in layers.items() if not any(re.search(p, n) for p in exclude)}


@dataclass
class LayerStats:
    hessian: HessianAccumulator | None = None
    absmax: torch.Tensor | None = None
    samples: list[torch.Tensor] = field(default_factory=list)

    def add(self, x: torch.Tensor, name: str) -> None:
        check_finite(x, f"calibration activations at the input of layer {name!r}")
        x2d = x.detach().reshape(-1, x.shape[-1]).float()
        if self.hessian is not None:
            self.hessian.add(x2d)
        if self.absmax is not None:
            self.absmax = torch.maximum(self.absmax.to(x2d.device), x2d.abs().amax(0))
        kept = sum(len(s) for s in self.samples)
        if kept < SAMPLE_ROWS:  # kept on the host: sensitivity is measured on the finished model
            self.samples.append(x2d[: SAMPLE_ROWS - kept].to("cpu", copy=True))

    def release(self) -> None:
        """Drop what only quantizing the layer needed (the Hessian: in x in fp64)."""
        self.hessian = None


def new_stats(layer: nn.Module, config: WeightQuantizeConfig) -> LayerStats:
    """An empty collector for what ``config`` needs of this layer's inputs."""
    needs_hessian = config.algorithm == "gptq" or config.awq is not None
    return LayerStats(HessianAccumulator(layer.in_features) if needs_hessian else None,
                      torch.zeros(layer.in_features) if config.smoothquant else None)


def collect_stats(model: nn.Module, layers: dict[str, nn.Module], batches: list, forward: Forward,
                  config: WeightQuantizeConfig,
                  keep_outputs: bool = True) -> tuple[dict[str, LayerStats], list[torch.Tensor]]:
    """One float pass: per-layer statistics and the reference outputs (for fidelity)."""
    stats = {name: new_stats(m, config) for name, m in layers.items()}
    hooks = [m.register_forward_pre_hook(_recorder(stats[name], name)) for name, m in layers.items()]
    outputs = []
    try:
        with torch.inference_mode():
            for batch in progress(batches, config.calibration.progress, "calibrate"):
                out = forward(model, batch).float()
                check_finite(out, "calibration: model output")
                if keep_outputs:
                    outputs.append(out)
    finally:
        for hook in hooks:
            hook.remove()
    return stats, outputs


def _recorder(stats: LayerStats, name: str) -> Callable:
    def record(module: nn.Module, args: tuple) -> None:
        stats.add(args[0], name)

    return record


def smoothing(linear: nn.Linear, absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel s; returns ``1/s``, the factor applied to activations."""
    w_max = linear.weight.detach().abs().amax(0).float().clamp(min=1e-5)
    s = (absmax.clamp(min=1e-5) ** alpha) / (w_max ** (1 - alpha))
    s = torch.where(absmax > 0, s, torch.ones_like(s)).clamp(min=1e-5)
    return 1.0 / s


def smoothing_shared(linears: list[nn.Linear], absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """``smoothing`` for layers reading one input: max |W| over all of their rows."""
    joined = nn.Linear(linears[0].in_features, sum(m.out_features for m in linears), bias=False)
    joined.weight = nn.Parameter(torch.cat([m.weight.detach() for m in linears]), requires_grad=False)
    return smoothing(joined, absmax, alpha)


def input_factors(layers: dict[str, nn.Module], stats: dict[str, LayerStats],
                  config: WeightQuantizeConfig) -> dict[str, torch.Tensor]:
    """SmoothQuant / AWQ activation factors per layer (``x * factor`` at run time).

    With ``shared`` (the default), layers that read the same input — recognised by identical
    input statistics, which only the same tensor produces — get one factor: what a deployment
    format can fold into the norm or layer feeding them.
    """
    options = config.smoothquant or config.awq
    if options is None:
        return {}
    names = [n for n in layers if stats.get(n) is not None and not any(re.search(p, n) for p in options.exclude)]
    groups = _same_input(names, stats) if options.shared else [[n] for n in names]
    factors = {}
    for group in groups:
        factor = _group_factor([layers[n] for n in group], stats[group[0]], config)
        if factor is not None:
            factors.update({n: factor for n in group})
    return factors


def _same_input(names: list[str], stats: dict[str, LayerStats]) -> list[list[str]]:
    groups: list[list[str]] = []
    for name in names:
        for group in groups:
            if _same_statistics(stats[group[0]], stats[name]):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _same_statistics(a: LayerStats, b: LayerStats) -> bool:
    pairs = [(a.absmax, b.absmax), (a.hessian and a.hessian.h, b.hessian and b.hessian.h)]
    present = [(x, y) for x, y in pairs if x is not None or y is not None]
    return bool(present) and all(x is not None and y is not None and x.shape == y.shape and torch.equal(x, y)
                                 for x, y in present)


def _group_factor(linears: list[nn.Module], stats: LayerStats, config: WeightQuantizeConfig) -> torch.Tensor | None:
    if config.smoothquant is not None:
        return None if stats.absmax is None else smoothing_shared(linears, stats.absmax, config.smoothquant.alpha)
    if stats.hessian is None:
        return None
    grid = Grid(config.bits, config.symmetric)
    group = layer_group_size(config, linears[0].in_features)
    per_tensor = config.granularity == "per-tensor"
    return awq_smoothing([m.weight.detach().float() for m in linears], stats.hessian.value(),
                         lambda v: fake_quantize(v, grid, group, per_tensor), config.awq.grid)


def quantize_layer(linear: nn.Linear, config: WeightQuantizeConfig, stats: LayerStats | None,
                   smooth: torch.Tensor | None = None, release: bool = False) -> nn.Module:
    """The quantized replacement of ``linear``; ``smooth`` from :func:`input_factors`; ``release``:
    ``stats`` gives up its Hessian (its memory becomes GPTQ's scratch instead of being copied)."""
    if config.dtype == "fp8":
        act = "fp8" if config.activations == "dynamic" else "none"
        return Fp8Linear.build(linear, config.granularity == "per-channel", act, smooth)
    grid = Grid(config.bits, config.symmetric)
    group = layer_group_size(config, linear.in_features)
    per_tensor = config.granularity == "per-tensor"
    w = linear.weight.detach().float()
    if smooth is not None:
        w = w / smooth
    if config.algorithm == "gptq" and stats is not None and stats.hessian is not None:
        options = config.gptq_options
        # Passed as a temporary, so GPTQ holds the only reference and frees it once permuted.
        storage = to_storage(*gptq_quantize(w, _own_hessian(stats, smooth, release), grid, group, per_tensor,
                                            damp=options.damp, act_order=options.act_order,
                                            clip=config.clip_range, refit=options.refit_scales,
                                            overwrite=True), grid)
    else:
        storage = quantize_weight(w, grid, group, per_tensor, config.clip_range)
    act = "int8" if config.activations == "dynamic" else "none"
    return QuantLinear.build(linear, storage, grid, group, act, smooth)


def _own_hessian(stats: LayerStats, smooth: torch.Tensor | None, release: bool) -> torch.Tensor:
    """The layer's Hessian as a tensor of our own (``release``: the statistics give theirs up)."""
    assert stats.hessian is not None
    h = stats.hessian.take() if release else stats.hessian.value()
    if release:
        stats.release()
    if smooth is not None:  # inputs are x * smooth, so H scales by smooth on both sides (in place)
        h.mul_(smooth.double()[:, None]).mul_(smooth.double()[None, :])
    return h


def layer_group_size(config: WeightQuantizeConfig, in_features: int) -> int | None:
    """The group of a layer (None: not per-group): the configured one, or the whole row of a
    layer narrower than it (as GPTQ checkpoints index it). ``group_problems`` refused the rest."""
    if config.granularity != "per-group":
        return None
    if in_features > config.group_size and in_features % config.group_size:
        raise ValueError(f"weight-quantize.group_size: {config.group_size} does not divide in_features={in_features}")
    return min(config.group_size, in_features)


def group_problems(config: WeightQuantizeConfig, widths: dict[str, int]) -> str | None:
    """One line naming the layers whose input width the group size does not tile, if any.

    Groups are never shrunk per layer (they once were, silently): a checkpoint format
    (compressed-tensors, GPTQ, MatMulNBits) takes one group size, and the recipe asked for this one.
    """
    if config.granularity != "per-group":
        return None
    bad = untiled(config.group_size, widths)
    if not bad:
        return None
    fits = tiling_groups(widths, bad)
    listed = ", ".join(f"{name} ({width})" for name, width in list(bad.items())[:4]) + (" …" if len(bad) > 4 else "")
    advice = f"use group_size {fits[0]}" if fits else "use granularity: per-channel"
    return (f"weight-quantize.group_size: {config.group_size} does not divide the input width of "
            f"{len(bad)} layer(s): {listed}; {advice}, or exclude them")


def precision_label(config: WeightQuantizeConfig, in_features: int | None = None) -> str:
    if config.dtype != "int":
        return config.dtype + ("" if config.activations == "none" or config.dtype != "fp8" else "-w8a8")
    group = layer_group_size(config, in_features or config.group_size)
    gran = f"g{group}" if group else config.granularity
    act = "a8" if config.activations == "dynamic" else ""
    algorithm = config.algorithm + ("+awq" if config.awq else "")
    return f"int{config.bits}{act}-{gran}-{'sym' if config.symmetric else 'asym'}-{algorithm}"


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def tensor_bytes(model: nn.Module) -> int:
    tensors = list(model.parameters()) + [b for b in model.buffers() if b is not None]
    return sum(t.numel() * t.element_size() for t in tensors)


def quantize_module(model: nn.Module, config: WeightQuantizeConfig, calibration: list | None,
                    forward: Forward, report: dict[str, Any] | None = None,
                    inplace: bool = False) -> nn.Module:
    """A quantized copy of ``model`` (the input is left untouched), or ``model`` itself quantized
    when ``inplace`` (for callers that own it: the float weights are freed as layers are replaced)."""
    report = {} if report is None else report
    size_before = tensor_bytes(model)
    original = None if inplace else model
    if config.dtype in ("fp16", "bf16"):
        model = model.eval() if inplace else copy.deepcopy(model).eval()  # casting writes into weights
        _cast(model, config)
        precisions: dict[str, str] = {name: config.dtype for name in select_layers(model, config.exclude)}
    else:
        model = model.eval() if inplace else sharing_copy(model).eval()
        precisions = _quantize_linears(model, config, calibration, forward, report)
        if original is not None:
            unshare(model, original)
    report.update(size_mb_before=size_before / 1e6, size_mb_after=tensor_bytes(model) / 1e6,
                  layer_precision=precisions, layers_quantized=sum(p != "fp32" for p in precisions.values()),
                  layers_float=sum(p == "fp32" for p in precisions.values()))
    return model


def _tensors(model: nn.Module) -> Iterator[tuple[nn.Module, str, torch.Tensor, bool]]:
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None:
                yield module, name, p, True
        for name, b in module._buffers.items():
            if b is not None:
                yield module, name, b, False


def sharing_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose tensors share the original's storage (no weight copied).

    Each parameter gets a parameter object of its own (so moving the copy's blocks between
    devices leaves the original where it is) over the same data; ties inside the model survive.
    """
    memo: dict[int, Any] = {}
    for _, _, tensor, is_param in _tensors(model):
        if id(tensor) not in memo:
            memo[id(tensor)] = (nn.Parameter(tensor.data, requires_grad=tensor.requires_grad)
                                if is_param else tensor.detach())
    return copy.deepcopy(model, memo)


def unshare(model: nn.Module, original: nn.Module) -> None:
    """Clone every tensor of ``model`` that still shares storage with ``original``'s."""
    shared = {_storage(t) for _, _, t, _ in _tensors(original) if t.numel()}
    clones: dict[int, torch.Tensor] = {}
    for module, name, tensor, is_param in list(_tensors(model)):
        if not tensor.numel() or _storage(tensor) not in shared:
            continue
        if is_param:
            if id(tensor) not in clones:  # tied parameters: one clone, still tied
                tensor.data = tensor.data.clone()
                clones[id(tensor)] = tensor
        else:
            module._buffers[name] = clones.setdefault(id(tensor), tensor.clone())


def _storage(tensor: torch.Tensor) -> int:
    """Where a tensor's memory lives (views of one storage share it)."""
    return tensor.untyped_storage().data_ptr()


def _cast(model: nn.Module, config: WeightQuantizeConfig) -> None:
    dtype = torch.float16 if config.dtype == "fp16" else torch.bfloat16
    kinds = (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d)
    for layer in select_layers(model, config.exclude, kinds=kinds).values():
        cast_module(layer, dtype)


def _quantize_linears(model: nn.Module, config: WeightQuantizeConfig, calibration: list | None,
                      forward: Forward, report: dict[str, Any]) -> dict[str, str]:
    layers = select_layers(model, config.exclude)
    widths = {name: m.in_features for name, m in layers.items()}
    problem = group_problems(config, widths)
    if problem:  # before any calibration: nothing is computed for a group that cannot be used
        raise ModelpressError(problem)
    # Mixed precision may put float layers back; otherwise no reference to them is kept, so an
    # in-place run frees each float weight as soon as its layer is replaced.
    float_layers = layers if config.mixed_precision is not None else {}
    del layers
    stats: dict[str, LayerStats] = {}
    reference: list[torch.Tensor] = []
    quantized: dict[str, nn.Module] = {}  # filled block by block when blocks are calibrated in turn
    if config.needs_calibration:
        if not calibration:
            raise CalibrationError("weight-quantize.calibration: this scheme needs calibration rows")
        stats, reference = _calibrate(model, list(widths), calibration, forward, config, quantized, report)
    rest = {n: model.get_submodule(n) for n in widths if n not in quantized}
    factors = input_factors(rest, stats, config)
    for name in progress(list(rest), config.calibration.progress, "quantize layers", unit="layer"):
        quantized[name] = quantize_layer(rest.pop(name), config, stats.get(name), factors.get(name),
                                         release=True)
        set_module(model, name, quantized[name])
    quantized = {name: quantized[name] for name in widths}  # model order, for reports
    precisions = {name: "fp32" for name in _all_linears(model)} | {
        n: precision_label(config, widths[n]) for n in quantized}
    if config.mixed_precision is not None:
        kept = _keep_sensitive_float(model, float_layers, quantized, stats, calibration or [], reference,
                                     forward, config, report)
        precisions.update({name: "fp32" for name in kept})
    return precisions


def _calibrate(model: nn.Module, names: list[str], calibration: list, forward: Forward,
               config: WeightQuantizeConfig, quantized: dict[str, nn.Module],
               report: dict[str, Any]) -> tuple[dict[str, LayerStats], list[torch.Tensor]]:
    """Statistics per layer and the float reference outputs (kept for mixed precision only).

    Layers inside chained blocks are quantized here already, block by block: on the outputs of
    the quantized blocks before them (sequential GPTQ) or on the float ones (everything else).
    """
    blocks = chained_blocks(model, dict.fromkeys(names), calibration[0], forward)
    in_blocks = [n for n in names if blocks and n.startswith(blocks[0] + ".")]
    outside = {n: model.get_submodule(n) for n in names if n not in in_blocks}
    stats: dict[str, LayerStats] = {}
    reference: list[torch.Tensor] = []
    # The float pass runs before any block is quantized in place: the reference stays float.
    if outside or config.mixed_precision is not None:
        stats, reference = collect_stats(model, outside, calibration, forward, config,
                                         keep_outputs=config.mixed_precision is not None)
    sequential = config.algorithm == "gptq" and config.gptq_options.sequential
    if config.algorithm == "gptq":
        report["gptq_calibration"] = (f"sequential over {blocks[0]} ({len(blocks[1])} blocks)"
                                      if blocks and sequential else "one float pass")
    if config.calibration.device is not None and not blocks:
        report["calibration_device"] = "not used: the model has no chained repeated blocks to onload"
    if blocks:
        report["calibration_blocks"] = f"{blocks[0]} ({len(blocks[1])} blocks, one at a time)"
        stats |= quantize_sequentially(model, blocks, in_blocks, calibration, forward,
                                       lambda name, layer: new_stats(layer, config),
                                       _quantize_into(quantized, config), config.calibration.progress,
                                       sequential=sequential, device=config.calibration.device)
    return stats, reference


def _quantize_into(quantized: dict[str, nn.Module], config: WeightQuantizeConfig) -> Callable:
    def quantize(layers: dict[str, nn.Module], stats: dict[str, LayerStats]) -> dict[str, nn.Module]:
        factors = input_factors(layers, stats, config)
        for name, layer in layers.items():
            quantized[name] = quantize_layer(layer, config, stats[name], factors.get(name), release=True)
        return {name: quantized[name] for name in layers}

    return quantize


def _all_linears(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantLinear, Fp8Linear))]


def layer_sensitivity(float_layer: nn.Module, quant_layer: nn.Module, rows: torch.Tensor) -> float:
    """Relative output error of one quantized layer on its real calibration inputs."""
    with torch.inference_mode():
        ref = float_layer(rows)
        return float((quant_layer(rows) - ref).norm() / ref.norm().clamp(min=1e-12))


def output_cosine(model: nn.Module, batches: list, reference: list[torch.Tensor], forward: Forward) -> float:
    cosines = []
    with torch.inference_mode():
        for batch, ref in zip(batches, reference):
            out = forward(model, batch).float().reshape(len(ref), -1)
            cosines.append(torch.nn.functional.cosine_similarity(out, ref.reshape(len(ref), -1), dim=1))
    return float(torch.cat(cosines).mean())


def _keep_sensitive_float(model: nn.Module, layers: dict[str, nn.Module], quantized: dict[str, nn.Module],
                          stats: dict[str, LayerStats], batches: list, reference: list[torch.Tensor],
                          forward: Forward, config: WeightQuantizeConfig, report: dict[str, Any]) -> list[str]:
    """Put the most sensitive layers back in float until the output cosine reaches the target."""
    assert config.mixed_precision is not None
    sensitivity = {name: layer_sensitivity(layers[name], quantized[name], torch.cat(stats[name].samples))
                   for name in quantized}
    ranked = sorted(sensitivity, key=sensitivity.get, reverse=True)
    limit = int(config.mixed_precision.max_float_share * len(ranked))
    kept: list[str] = []
    cosine = output_cosine(model, batches, reference, forward)
    while cosine < config.mixed_precision.min_cosine and len(kept) < limit:
        step = ranked[len(kept): min(limit, max(1, 2 * len(kept)))]  # 1, 2, 4, 8 … layers in float
        for name in step:
            set_module(model, name, layers[name])
        kept += step
        cosine = output_cosine(model, batches, reference, forward)
    report.update(sensitivity={k: round(v, 5) for k, v in sensitivity.items()},
                  calibration_cosine=round(cosine, 5),
                  fidelity_target_met=cosine >= config.mixed_precision.min_cosine)
    return kept
