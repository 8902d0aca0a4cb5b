"""Students: derived from a teacher (fewer layers / narrower) with its weights, or given."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.steps.distill.config import StudentSpec

# Where transformer stacks keep their layers: BERT-style encoders, Llama-style decoders, GPT-2,
# DistilBERT.
LAYER_STACKS = ("encoder.layer", "layers", "model.layers", "transformer.h", "transformer.layer")


@dataclass
class Student:
    model: nn.Module
    #: (student module, teacher module) pairs for hidden-state matching.
    pairs: list[tuple[str, str]] = field(default_factory=list)


def load_module(path: str, field_name: str) -> nn.Module:
    # The user's own file: full unpickling is intended (as model_sources' file source does).
    model = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(model, nn.Module):
        raise ModelpressError(f"{field_name}: {path} holds a {type(model).__name__}, not an nn.Module")
    return model


def build_student(spec: StudentSpec, teacher: nn.Module, original: nn.Module) -> Student:
    """``teacher`` is this link's teacher; ``original`` the chain's first (width reference)."""
    if spec.path is not None:
        return Student(load_module(spec.path, "distill.student.path").float())
    # The validator guarantees layers or width; neither step modifies ``teacher`` itself.
    student = drop_layers(teacher, spec.layers) if spec.layers is not None else Student(teacher)
    if spec.width is not None:
        student = narrow_cnn(student.model, original, spec.width)
    if spec.init == "random":
        reinitialise(student.model)
    return student


def kept_layers(available: int, wanted: int) -> list[int]:
    """Evenly spaced, always keeping the last layer (whose output the head reads)."""
    return [round((i + 1) * available / wanted) - 1 for i in range(wanted)]


def _find_stack(model: nn.Module) -> tuple[nn.Module, str, str]:
    """(config owner, owner name, stack attribute) of the first transformer layer stack."""
    for name, module in model.named_modules():
        config = getattr(module, "config", None)
        count = getattr(config, "num_hidden_layers", None)
        for attr in LAYER_STACKS:
            try:
                stack = module.get_submodule(attr)
            except AttributeError:
                continue
            if isinstance(stack, nn.ModuleList) and len(stack) == count:
                return module, name, attr
    raise ModelpressError("distill.student.layers: no transformer layer stack found in the teacher "
                          f"(looked for {', '.join(LAYER_STACKS)} under a module with a config); "
                          "give student.path for other architectures")


def drop_layers(teacher: nn.Module, layers: int) -> Student:
    model = copy.deepcopy(teacher)
    owner, owner_name, attr = _find_stack(model)
    stack = owner.get_submodule(attr)
    if layers > len(stack):
        raise ModelpressError(f"distill.student.layers: {layers} > the teacher's {len(stack)} layers")
    kept = kept_layers(len(stack), layers)
    parent_name, _, leaf = attr.rpartition(".")
    parent = owner.get_submodule(parent_name) if parent_name else owner
    setattr(parent, leaf, nn.ModuleList([stack[i] for i in kept]))
    owner.config.num_hidden_layers = layers
    if isinstance(getattr(owner.config, "layer_types", None), list):
        owner.config.layer_types = [owner.config.layer_types[i] for i in kept]
    blocks: Any = owner.get_submodule(attr)  # a ModuleList (iterable), typed as a plain Module
    for index, layer in enumerate(blocks):
        for sub in layer.modules():  # decoder caches are indexed by layer
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = index
    prefix = f"{owner_name}.{attr}" if owner_name else attr
    return Student(model, [(f"{prefix}.{i}", f"{prefix}.{k}") for i, k in enumerate(kept)])


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    return scores.topk(count).indices.sort().values


@torch.no_grad()
def narrow_cnn(source: nn.Module, original: nn.Module, width: float) -> Student:
    """A SmallCNN with ``width`` × the original's channels and hidden units, keeping the
    source's largest-L1 filters/units so the student starts close to its teacher."""
    from modelpress.sources.zoo.nets import SmallCNN

    if not isinstance(source, SmallCNN) or not isinstance(original, SmallCNN):
        raise ModelpressError("distill.student.width: width reduction supports SmallCNN teachers; give "
                              "student.path (a given architecture) for other models")
    channels = max(1, round(original.conv1.out_channels * width))
    hidden = max(1, round(original.fc1.out_features * width))
    if channels > source.conv1.out_channels or hidden > source.fc1.out_features:
        raise ModelpressError(f"distill.student.width: {width} is wider than this link's teacher")
    student = SmallCNN(source.image_shape, source.fc2.out_features, width=channels, hidden=hidden)
    c1 = _top(source.conv1.weight.abs().sum((1, 2, 3)), channels)
    c2 = _top(source.conv2.weight[:, c1].abs().sum((1, 2, 3)), 2 * channels)
    units = _top(source.fc1.weight.abs().sum(1), hidden)
    spatial = source.fc1.in_features // source.conv2.out_channels
    fc1 = source.fc1.weight.view(source.fc1.out_features, source.conv2.out_channels, spatial)
    student.conv1.weight.copy_(source.conv1.weight[c1])
    student.conv1.bias.copy_(source.conv1.bias[c1])
    student.conv2.weight.copy_(source.conv2.weight[c2][:, c1])
    student.conv2.bias.copy_(source.conv2.bias[c2])
    student.fc1.weight.copy_(fc1[units][:, c2].reshape(hidden, -1))
    student.fc1.bias.copy_(source.fc1.bias[units])
    student.fc2.weight.copy_(source.fc2.weight[:, units])
    student.fc2.bias.copy_(source.fc2.bias)
    return Student(student, [("conv1", "conv1"), ("conv2", "conv2"), ("fc1", "fc1")])


def reinitialise(model: nn.Module) -> None:
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
