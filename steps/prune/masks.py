"""Unstructured and 2:4 semi-structured masks (weights zeroed in place; shapes unchanged)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    import torch


def unstructured_masks(
    scores: dict[str, torch.Tensor], sparsity: float, scope: str, min_density: float
) -> dict[str, torch.Tensor]:
    """Keep-masks zeroing the lowest-scored ``sparsity`` share of weights.

    Global scope thresholds all layers together (small first layers survive, benchmarks/RESULTS.md,
    "Peer baselines");
    ``min_density`` then guarantees each layer keeps its best share of weights.
    """
    import torch

    if scope == "global":
        flat = torch.cat([s.flatten().double() for s in scores.values()])
        k = int(sparsity * flat.numel())
        threshold = flat.kthvalue(k).values if k > 0 else flat.min() - 1
        masks = {
            name: _with_floor(s.double() > threshold, s, min_density) for name, s in scores.items()
        }
    else:
        masks = {name: _layer_mask(s, sparsity, min_density) for name, s in scores.items()}
    for name, mask in masks.items():
        if not bool(mask.any()):
            raise ModelpressError(
                f"prune: the plan would zero every weight of {name!r} "
                f"(scope={scope}, sparsity={sparsity}, "
                f"min_density={min_density}); raise min_density or lower sparsity"
            )
    return masks


def _layer_mask(scores: torch.Tensor, sparsity: float, min_density: float) -> torch.Tensor:
    import torch

    keep = max(scores.numel() - int(sparsity * scores.numel()), int(min_density * scores.numel()))
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[scores.flatten().topk(keep).indices] = True
    return mask.view_as(scores)


def _with_floor(keep: torch.Tensor, scores: torch.Tensor, min_density: float) -> torch.Tensor:
    import torch

    floor = int(min_density * scores.numel())
    if int(keep.sum()) >= floor:
        return keep
    keep = torch.zeros_like(keep)  # too few survive the global threshold: keep this layer's best
    keep.view(-1)[scores.flatten().topk(floor).indices] = True
    return keep


def two_four_masks(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """In each run of 4 consecutive input weights of every row keep the 2 best (NVIDIA 2:4)."""
    import torch

    masks = {}
    for name, s in scores.items():
        out_features, in_features = s.shape
        blocks = s.reshape(out_features, in_features // 4, 4)
        keep = torch.zeros_like(blocks, dtype=torch.bool)
        keep.scatter_(2, blocks.topk(2, dim=2).indices, True)
        masks[name] = keep.reshape(out_features, in_features)
    return masks


def semi_structured_kernels(model: torch.nn.Module) -> torch.nn.Module:
    """Swap 2:4-masked Linear weights for PyTorch's semi-structured sparse tensors (CUDA).

    Only for serving on a GPU with sparse tensor cores (Ampere+); the result does not export to
    ONNX, which is why the ``prune`` stage itself leaves dense masked weights.
    """
    import torch
    from torch.sparse import to_sparse_semi_structured

    for module in model.modules():
        if (
            isinstance(module, torch.nn.Linear)
            and module.weight.is_cuda
            and module.in_features % 64 == 0
            and module.out_features % 64 == 0
        ):
            module.weight = torch.nn.Parameter(
                to_sparse_semi_structured(module.weight.detach()), requires_grad=False
            )
    return model
