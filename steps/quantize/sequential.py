"""Block-by-block ("sequential") calibration, as GPTQ does it: each layer's statistics are taken
from the inputs it will really see, i.e. with every layer before it already quantized.

The one-pass alternative (statistics of the float model) lets errors pile up through the depth of
an LLM. Re-running the whole model once per layer would be too slow, so — like the GPTQ, AutoGPTQ
and llm-compressor implementations — we cache the inputs of the model's repeated blocks (the
largest ``nn.ModuleList`` of blocks holding the layers) and run one block at a time. Inside a
block, layers that read the same tensor (q/k/v, gate/up) form one group and are quantized
together, in the order the block calls them, each group seeing the already-quantized earlier ones.

Memory scales with one block, not the model: what is kept is the current block's inputs (one
hidden-state tensor per calibration token, e.g. 128 sequences x 2048 tokens x 4096 wide in fp32
= 4 GiB) and the statistics of the layers being calibrated; a layer's statistics are dropped
once it is quantized. With ``device`` set (e.g. ``cuda``), only the block being calibrated (and,
while block inputs are captured, the layers outside the blocks) sits on that device; every other
block stays where the model is (CPU), so a model larger than the accelerator calibrates.

The same walk serves statistics of the *float* model (``sequential=False``: SmoothQuant, AWQ with
round-to-nearest, GPTQ without sequential): each block's layers are calibrated on the float
block's inputs and quantized, and the next block gets the float outputs — the numbers of one
float pass of the whole model, without holding every layer's statistics at once.

Written here because the libraries that do this (auto-gptq, gptqmodel, llm-compressor) need CUDA
or replace the model's modules with their own formats. Assumes blocks are chained: block i's
output is block i+1's hidden-state input (checked on the first batch; if not, the caller falls
back to one pass).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from modelpress.steps.quantize.calibration import progress

Forward = Callable[[nn.Module, Any], torch.Tensor]
CACHE_ARGS = ("past_key_value", "past_key_values", "layer_past")  # per-call caches: never replayed


class _Stop(Exception):
    """Raised from a hook to end a forward pass early (its remaining work is not needed)."""


def find_blocks(model: nn.Module, layers: Collection[str]) -> tuple[str, nn.ModuleList] | None:
    """The ModuleList (name, list) whose items hold the most of ``layers`` (names); None if under 2 blocks."""
    best, best_count = None, 0
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) >= 2:
            count = sum(1 for layer in layers if layer.startswith(f"{name}."))
            if count > best_count:
                best, best_count = (name, module), count
    return best


class BlockInputs:
    """The (args, kwargs) each calibration batch passes to one block, advanced block by block."""

    def __init__(self, calls: list[tuple[tuple, dict]]):
        self.calls = calls

    @classmethod
    def capture(cls, model: nn.Module, first_block: nn.Module, batches: list, forward: Forward) -> BlockInputs:
        calls: list[tuple[tuple, dict]] = []

        def catch(module: nn.Module, args: tuple, kwargs: dict) -> None:
            kwargs = {k: (None if k in CACHE_ARGS else v) for k, v in kwargs.items()}
            if "use_cache" in kwargs:
                kwargs["use_cache"] = False
            calls.append((args, kwargs))
            raise _Stop

        hook = first_block.register_forward_pre_hook(catch, with_kwargs=True)
        try:
            with torch.inference_mode():
                for batch in batches:
                    try:
                        forward(model, batch)
                    except _Stop:
                        pass
        finally:
            hook.remove()
        return cls(calls)

    def run(self, block: nn.Module, stop_after: nn.Module | None = None) -> list[torch.Tensor]:
        """The block's hidden-state output per batch (or just run it up to ``stop_after``)."""
        hook = None if stop_after is None else stop_after.register_forward_hook(_raise_stop)
        outputs = []
        try:
            with torch.inference_mode():
                for args, kwargs in self.calls:
                    try:
                        out = block(*args, **kwargs)
                        outputs.append(out[0] if isinstance(out, (tuple, list)) else out)
                    except _Stop:
                        pass
        finally:
            if hook is not None:
                hook.remove()
        return outputs

    def advance(self, outputs: list[torch.Tensor]) -> None:
        """The next block's inputs: these outputs in place of the hidden states."""
        self.calls = [((out, *args[1:]), kwargs) if args else ((), {**kwargs, "hidden_states": out})
                      for out, (args, kwargs) in zip(outputs, self.calls)]

    def hidden(self, i: int) -> torch.Tensor:
        args, kwargs = self.calls[i]
        return args[0] if args else kwargs["hidden_states"]


def _raise_stop(module: nn.Module, args: tuple, output: Any) -> None:
    raise _Stop


def blocks_are_chained(model: nn.Module, blocks: nn.ModuleList, batch: Any, forward: Forward) -> bool:
    """On one batch: is each block's output exactly the next block's hidden-state input?"""
    seen: dict[int, dict[str, Any]] = {}

    def record(i: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            hidden = args[0] if args else kwargs.get("hidden_states")
            out = output[0] if isinstance(output, (tuple, list)) else output
            seen[i] = {"in": hidden, "out": out}
        return hook

    hooks = [b.register_forward_hook(record(i), with_kwargs=True) for i, b in enumerate(blocks)]
    try:
        with torch.inference_mode():
            forward(model, batch)
    finally:
        for hook in hooks:
            hook.remove()
    pairs = [(seen.get(i, {}).get("out"), seen.get(i + 1, {}).get("in")) for i in range(len(blocks) - 1)]
    return all(isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
               and torch.equal(a, b) for a, b in pairs)


def call_groups(block: nn.Module, names: list[str], inputs: BlockInputs) -> list[list[str]]:
    """``names`` (relative to ``block``) grouped by shared input, in the order the block calls them."""
    # The input tensors themselves are kept (not their addresses, which a freed tensor's successor
    # may reuse), so "same input" is object identity.
    calls: list[tuple[str, torch.Tensor]] = []
    hooks = [block.get_submodule(n).register_forward_pre_hook(
        lambda m, args, n=n: calls.append((n, args[0]))) for n in names]
    try:
        BlockInputs(inputs.calls[:1]).run(block)
    finally:
        for hook in hooks:
            hook.remove()
    groups: list[list[str]] = []
    last_input, seen = None, set()
    for name, x in calls:
        if name in seen:  # a layer called twice counts at its first call
            continue
        seen.add(name)
        if groups and x is last_input:
            groups[-1].append(name)
        else:
            groups.append([name])
        last_input = x
    called = {n for g in groups for n in g}
    return groups + [[n] for n in names if n not in called]  # never-called layers: quantized last


def chained_blocks(model: nn.Module, layers: Collection[str], batch: Any,
                   forward: Forward) -> tuple[str, nn.ModuleList] | None:
    """The model's blocks holding ``layers`` if they are chained (checked on ``batch``), else None."""
    found = find_blocks(model, layers)
    return found if found is not None and blocks_are_chained(model, found[1], batch, forward) else None


def quantize_sequentially(model: nn.Module, chain: tuple[str, nn.ModuleList], layers: Collection[str],
                          batches: list, forward: Forward, make_stats: Callable[[str, nn.Module], Any],
                          quantize: Callable[[str, nn.Module, Any], nn.Module],
                          show_progress: bool, sequential: bool = True,
                          device: str | torch.device | None = None) -> dict[str, Any]:
    """Quantize ``layers`` in place, block by block; all are inside the blocks of ``chain``
    ((prefix, blocks), from ``chained_blocks``).

    ``make_stats(name, layer)`` gives a fresh statistics collector (with ``add(x, name)``);
    ``quantize(layers, stats)`` takes layers (name -> layer, name -> statistics: one group reading
    the same input, or a whole block) and returns their replacements by name. ``sequential``: each
    group of layers sees the already-quantized layers before it (GPTQ); else every layer of a
    block is calibrated on the float block. ``device``: where each block is calibrated (moved there one
    at a time, and back after); None = where the model is. Returns the statistics per layer.
    """
    prefix, blocks = chain
    target = torch.device(device) if device is not None else None
    with outside_on(model, blocks, target):
        inputs = BlockInputs.capture(model, blocks[0], batches, forward)
    collected: dict[str, Any] = {}
    desc = f"{'GPTQ' if sequential else 'calibrate'} {prefix} ({len(blocks)} blocks)"
    for i, block in enumerate(progress(list(blocks), show_progress, desc, unit="block")):
        mine = [n[len(f"{prefix}.{i}."):] for n in layers if n.startswith(f"{prefix}.{i}.")]
        with onloaded(block, target):
            if sequential:
                for group in call_groups(block, mine, inputs) if mine else []:
                    collected |= _quantize_group(block, f"{prefix}.{i}.", group, inputs, make_stats, quantize)
                outputs = inputs.run(block)
            else:
                stats, outputs = _float_block(block, f"{prefix}.{i}.", mine, inputs, make_stats)
                collected |= _replace(block, f"{prefix}.{i}.", stats, quantize)
            inputs.advance(outputs)
            del outputs
    return collected


def _float_block(block: nn.Module, prefix: str, names: list[str], inputs: BlockInputs,
                 make_stats: Callable) -> tuple[dict[str, Any], list[torch.Tensor]]:
    """One run of the float block: statistics of ``names`` and the block's outputs."""
    stats = {n: make_stats(prefix + n, block.get_submodule(n)) for n in names}
    hooks = [block.get_submodule(n).register_forward_pre_hook(
        lambda m, args, n=n: stats[n].add(args[0], prefix + n)) for n in names]
    try:
        outputs = inputs.run(block)
    finally:
        for hook in hooks:
            hook.remove()
    return stats, outputs


def _quantize_group(block: nn.Module, prefix: str, group: list[str], inputs: BlockInputs,
                    make_stats: Callable, quantize: Callable) -> dict[str, Any]:
    stats = {n: make_stats(prefix + n, block.get_submodule(n)) for n in group}
    hooks = [block.get_submodule(n).register_forward_pre_hook(
        lambda m, args, n=n: stats[n].add(args[0], prefix + n)) for n in group]
    try:
        inputs.run(block, stop_after=block.get_submodule(group[-1]))
    finally:
        for hook in hooks:
            hook.remove()
    return _replace(block, prefix, stats, quantize)


def _replace(block: nn.Module, prefix: str, stats: dict[str, Any], quantize: Callable) -> dict[str, Any]:
    """Swap the layers for their quantized modules, on each layer's device (the block may be onloaded)."""
    layers = {prefix + n: block.get_submodule(n) for n in stats}
    devices = {name: next(layer.parameters()).device for name, layer in layers.items()}
    replaced = quantize(layers, {prefix + n: s for n, s in stats.items()})
    for n in stats:
        parent, _, child = n.rpartition(".")
        owner = block.get_submodule(parent) if parent else block
        setattr(owner, child, replaced[prefix + n].to(devices[prefix + n]))
    return {prefix + n: s for n, s in stats.items()}


# ----------------------------------------------------------------------------- onloading
@contextmanager
def onloaded(module: nn.Module, device: torch.device | None) -> Iterator[None]:
    """``module`` on ``device`` inside the block; after it, its tensors are the ones it had.

    Calibration reads weights and never changes them in place, so the device copies are working
    copies: each moved tensor gets its original back (no copy to the host, ties and tensors
    shared with another model stay shared), and what was created inside (quantized layers)
    moves to where the module was.
    """
    if device is None:
        yield
        return
    home = next((t.device for t in [*module.parameters(), *module.buffers()]), torch.device("cpu"))
    try:
        with _moved(list(module.modules()), device):
            yield
    finally:
        module.to(home)


@contextmanager
def outside_on(model: nn.Module, blocks: nn.ModuleList, device: torch.device | None) -> Iterator[None]:
    """Everything of ``model`` but ``blocks`` on ``device`` (inputs moved there too), back after."""
    if device is None:
        yield
        return
    inside = {id(m) for m in blocks.modules()}
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: (_to(args, device), _to(kwargs, device)), with_kwargs=True)
    try:
        with _moved([m for m in model.modules() if id(m) not in inside], device):
            yield
    finally:
        hook.remove()


@contextmanager
def _moved(modules: list[nn.Module], device: torch.device) -> Iterator[None]:
    saved: list[tuple[nn.Module, str, bool, torch.Tensor]] = []
    done: dict[int, torch.Tensor] = {}  # a tied parameter is moved once
    for m in modules:
        for name, p in m._parameters.items():
            if p is not None and p.device != device and id(p) not in done:
                done[id(p)] = p.data
                saved.append((m, name, True, p.data))
                p.data = p.data.to(device)
        for name, b in m._buffers.items():
            if b is not None and b.device != device:
                saved.append((m, name, False, b))
                m._buffers[name] = b.to(device)
    try:
        yield
    finally:
        for m, name, is_param, original in saved:
            if is_param:
                m._parameters[name].data = original  # type: ignore[union-attr]  # saved only when present
            else:
                m._buffers[name] = original


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value
