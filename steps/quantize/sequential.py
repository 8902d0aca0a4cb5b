"""Block-by-block ("sequential") calibration, as GPTQ does it: each layer's statistics are taken
from the inputs it will really see, i.e. with every layer before it already quantized.

The one-pass alternative (statistics of the float model) lets errors pile up through the depth of
an LLM. Re-running the whole model once per layer would be too slow, so — like the GPTQ, AutoGPTQ
and llm-compressor implementations — we cache the inputs of the model's repeated blocks (the
largest ``nn.ModuleList`` of blocks holding the layers) and run one block at a time. Inside a
block, layers that read the same tensor (q/k/v, gate/up) form one group and are quantized
together, in the order the block calls them, each group seeing the already-quantized earlier ones.

Memory: the cached block inputs are one hidden-state tensor per calibration token (e.g. 128
sequences x 2048 tokens x 4096 wide in fp32 = 4 GiB), the price of not re-running the model.

Written here because the libraries that do this (auto-gptq, gptqmodel, llm-compressor) need CUDA
or replace the model's modules with their own formats. Assumes blocks are chained: block i's
output is block i+1's hidden-state input (checked on the first batch; if not, the caller falls
back to one pass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .calibration import progress

Forward = Callable[[nn.Module, Any], torch.Tensor]
CACHE_ARGS = ("past_key_value", "past_key_values", "layer_past")  # per-call caches: never replayed


class _Stop(Exception):
    """Raised from a hook to end a forward pass early (its remaining work is not needed)."""


def find_blocks(model: nn.Module, layers: dict[str, nn.Module]) -> tuple[str, nn.ModuleList] | None:
    """The ModuleList (name, list) whose items hold the most of ``layers``; None if under 2 blocks."""
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
    seen: dict[int, dict[str, torch.Tensor]] = {}

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


def chained_blocks(model: nn.Module, layers: dict[str, nn.Module], batch: Any,
                   forward: Forward) -> tuple[str, nn.ModuleList] | None:
    """The model's blocks holding ``layers`` if they are chained (checked on ``batch``), else None."""
    found = find_blocks(model, layers)
    return found if found is not None and blocks_are_chained(model, found[1], batch, forward) else None


def quantize_sequentially(model: nn.Module, blocks: tuple[str, nn.ModuleList], layers: dict[str, nn.Module],
                          batches: list, forward: Forward, make_stats: Callable[[str, nn.Module], Any],
                          quantize: Callable[[str, nn.Module, Any], nn.Module],
                          show_progress: bool) -> dict[str, Any]:
    """Quantize ``layers`` (all inside ``blocks``, from ``chained_blocks``) in place, block by block.

    ``make_stats(name, layer)`` gives a fresh statistics collector (with ``add(x, name)``);
    ``quantize(layers, stats)`` takes one group of layers reading the same input (name -> layer,
    name -> statistics) and returns their replacements by name. Returns the statistics per
    quantized layer.
    """
    prefix, blocks = blocks
    inputs = BlockInputs.capture(model, blocks[0], batches, forward)
    collected: dict[str, Any] = {}
    for i, block in enumerate(progress(list(blocks), show_progress, "quantize blocks")):
        mine = [n[len(f"{prefix}.{i}."):] for n in layers if n.startswith(f"{prefix}.{i}.")]
        for group in call_groups(block, mine, inputs) if mine else []:
            collected |= _quantize_group(block, f"{prefix}.{i}.", group, inputs, make_stats, quantize)
        inputs.advance(inputs.run(block))
    return collected


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
    replaced = quantize({prefix + n: block.get_submodule(n) for n in group}, {prefix + n: stats[n] for n in group})
    for n in group:
        parent, _, child = n.rpartition(".")
        owner = block.get_submodule(parent) if parent else block
        setattr(owner, child, replaced[prefix + n])
    return {prefix + n: s for n, s in stats.items()}
