"""LoRA through PEFT: attach adapters, train, merge them back into plain weights.

Merging (``merge_and_unload``) matters for export: the ONNX graph and every later stage see
an ordinary module of the original class, with no adapter branches left.
"""

from __future__ import annotations

import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.steps.finetune.config import LoraSettings

ADAPTABLE = (nn.Linear, nn.Conv2d)


def default_train_modules(model: nn.Module) -> list[str]:
    """The task head: the last Linear layer in definition order."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelpressError("finetune.train_modules: the model has no Linear layer to use as the head; "
                              "name the modules to train in full")
    return [linears[-1]]


def _check_names(model: nn.Module, names: list[str], field: str) -> None:
    known = {name for name, _ in model.named_modules()}
    missing = [n for n in names if n not in known]
    if missing:
        raise ModelpressError(f"finetune.{field}: no module named {', '.join(missing)} in the model")


def lora_targets(model: nn.Module, settings: LoraSettings, train_modules: list[str],
                 protected: dict[str, str] | None = None) -> list[str]:
    """``lora.target_modules``, else every Linear/Conv2d but the fully trained and the protected
    ones (a tied LM head: a merged delta would rewrite the embedding table it shares)."""
    if settings.target_modules is not None:
        _check_names(model, settings.target_modules, "lora.target_modules")
        clash = [n for n in settings.target_modules if n in (protected or {})]
        if clash:
            raise ModelpressError(f"finetune.lora.target_modules: {', '.join(clash)} cannot be adapted: "
                                  + "; ".join(f"{n}: {(protected or {})[n]}" for n in clash))
        return list(settings.target_modules)
    skip = set(train_modules) | set(protected or {})
    targets = [name for name, m in model.named_modules() if isinstance(m, ADAPTABLE) and name not in skip]
    if not targets:
        raise ModelpressError("finetune.lora: the model has no Linear/Conv2d layer to adapt")
    return targets


def attach_lora(model: nn.Module, settings: LoraSettings, train_modules: list[str],
                protected: dict[str, str] | None = None) -> nn.Module:
    """A PEFT model: adapters on the targets, ``train_modules`` trained in full, rest frozen."""
    from peft import LoraConfig, get_peft_model

    _check_names(model, train_modules, "train_modules")
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=lora_targets(model, settings, train_modules, protected),
                        modules_to_save=train_modules or None)
    return get_peft_model(model, config)


def merge_lora(peft_model: nn.Module) -> nn.Module:
    merged = peft_model.merge_and_unload()
    for param in merged.parameters():
        param.requires_grad_(True)
    return merged


def trainable_share(model: nn.Module) -> float:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable / total if total else 0.0



def mask_lora_deltas(peft_model: nn.Module, masks: dict[str, torch.Tensor]) -> int:
    """Make every adapted layer of a pruned weight compute with W + mask ⊙ ΔW.

    PEFT has no notion of pruning: its adapter adds a dense B·A to every weight, and masking
    only after the merge would train one function and ship another. So the adapted layers of
    masked weights run on the masked merged weight during training (one extra weight-sized
    product per layer: fine for recovery fine-tunes), and the merge + re-mask afterwards gives
    exactly the model that was validated. Returns how many layers were patched.
    """
    import types

    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    patched = 0
    for name, module in peft_model.named_modules():
        key = f"{name.removeprefix(prefix)}.weight"
        if isinstance(module, LoraLayer) and key in masks and isinstance(module.base_layer, ADAPTABLE):
            setattr(module, "forward", types.MethodType(_masked_forward(masks[key]), module))  # noqa: B010  # mypy: LoraLayer is a mixin
            patched += 1
    return patched


def _masked_forward(keep: torch.Tensor):
    import torch.nn.functional as F

    def forward(self, x, *args, **kwargs):
        base = self.base_layer
        weight = base.weight
        for adapter in self.active_adapters:
            if adapter in self.lora_A:
                weight = weight + self.get_delta_weight(adapter) * keep.to(weight.device, weight.dtype)
        if isinstance(base, nn.Conv2d):
            return F.conv2d(x, weight, base.bias, base.stride, base.padding, base.dilation, base.groups)
        return F.linear(x, weight, base.bias)

    return forward
