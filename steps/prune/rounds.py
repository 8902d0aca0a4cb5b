"""One pruning round per granularity: score the current model, plan, then mask or cut."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.steps.prune.config import PruneConfig
from modelpress.steps.prune.graph import GraphPruner
from modelpress.steps.prune.masks import two_four_masks, unstructured_masks
from modelpress.steps.prune.plan import plan_removals
from modelpress.steps.prune.scores import Calibration, classification_calibration, element_scores
from modelpress.steps.prune.trace import layers_of, module_kinds, output_layer, returns_embedding, trace_errors
from modelpress.steps.prune.transformers_blocks import TransformerPruner
from modelpress.tasks import split_outputs

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelpress.tasks.context import StageContext


class Round:
    def __init__(
        self,
        model: nn.Module,
        config: PruneConfig,
        context: StageContext,
        example: dict[str, torch.Tensor],
    ):
        self.model, self.config, self.context, self.example = model, config, context, example
        self._calibration: Calibration | None = None

    def calibration(self) -> Calibration | None:
        if self.config.score in ("l1", "l2"):
            return None
        if self._calibration is None:
            calibration = classification_calibration(
                self.context, self.config.calibration_batches, self.config.calibration_batch_size
            )
            calibration.device = self.config.calibration_device
            self._calibration = calibration
        return self._calibration

    def scores(self, modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        return element_scores(self.model, modules, self.config.score, self.calibration())

    def check(self, final: float) -> None:
        raise NotImplementedError

    def run(self, target: float) -> None:
        raise NotImplementedError

    def masks(self) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
        return []

    def report(self) -> dict[str, Any]:
        return {}


class MaskRound(Round):
    """Unstructured magnitude/score masks, or the 2:4 pattern."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.layers = layers_of(
            self.model, "linear" if self.config.method == "semi-structured-2:4" else self.config.layers
        )
        # A module the task protects (a tied LM head) is never masked: its zeros would land in
        # the embedding table it shares.
        self.protected = self.context.task.protected_modules(self.model) if self.context.task else {}
        self.layers = {n: m for n, m in self.layers.items() if n not in self.protected}
        if self.config.method == "semi-structured-2:4":
            self.skipped = [n for n, m in self.layers.items() if m.in_features % 4]
            self.layers = {n: m for n, m in self.layers.items() if n not in self.skipped}
        if not self.layers:
            raise ModelpressError(f"prune: the model has no {self.config.layers} layers to prune")
        self._masks: dict[str, torch.Tensor] = {}

    def _plan(self, target: float) -> dict[str, torch.Tensor]:
        scores = self.scores(self.layers)
        if self.config.method == "semi-structured-2:4":
            return two_four_masks(scores)
        return unstructured_masks(scores, target, self.config.scope, self.config.min_density)

    def check(self, final: float) -> None:
        self._plan(final)

    def run(self, target: float) -> None:
        import torch

        self._masks = self._plan(target)
        with torch.no_grad():
            for name, mask in self._masks.items():
                self.layers[name].weight.mul_(mask.to(self.layers[name].weight.dtype))

    def masks(self) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
        return [(self.layers[name].weight, mask) for name, mask in self._masks.items()]

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        total = zeros = 0
        for name, m in self.layers.items():
            n, z = m.weight.numel(), int((m.weight == 0).sum())
            out[f"sparsity.{name}"] = round(z / n, 4)
            total, zeros = total + n, zeros + z
        out["sparsity"] = round(zeros / total, 4)
        if self.protected:
            out["kept_dense"] = "; ".join(f"{name}: {why}" for name, why in self.protected.items())
        if self.config.method == "semi-structured-2:4" and self.skipped:
            out["skipped_layers"] = ", ".join(self.skipped)
        return out


class StructuredRound(Round):
    """Physically removes units: Torch-Pruning groups for CNN/MLP, named blocks for transformers."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.originals: dict[str, int] = {}
        self.transformer = TransformerPruner(self.model, self.config.target)
        self.kinds = self._transformer_kinds() if self.transformer.found else ["channels"]
        if not self.transformer.found and self.config.target not in ("auto", "channels"):
            raise ModelpressError(
                f"prune: target {self.config.target!r} needs a BERT- or Llama-style "
                "transformer; this model has none (use target: channels)"
            )
        self.head = output_layer(self.model, self.example, self.context.task)
        self.keep_embedding = returns_embedding(self.model, self.example, self.context.task)
        self.shapes = self._output_shapes()

    def _transformer_kinds(self) -> list[str]:
        target = self.config.target
        if self.transformer.llama:
            if target in ("heads", "ffn+heads"):
                raise ModelpressError(
                    "prune: head pruning of Llama-style decoders (grouped-query attention) "
                    "is not supported; use target: mlp"
                )
            return ["ffn"]
        if target == "channels":
            raise ModelpressError(
                "prune: target 'channels' is for CNN/MLP; use ffn, heads or ffn+heads"
            )
        return {
            "auto": ["ffn", "heads"],
            "ffn+heads": ["ffn", "heads"],
            "ffn": ["ffn"],
            "heads": ["heads"],
            "mlp": ["ffn"],
        }[target]

    def _sparsity(self, kind: str, target: float) -> float:
        if kind != "heads" or self.config.head_sparsity is None:
            return target
        progress = target / self.config.sparsity if self.config.sparsity else 1.0
        return self.config.head_sparsity * progress

    def _plan(self, target: float) -> tuple[Any, dict[str, list[int]]]:
        if self.transformer.found:
            scores = self.scores(self.transformer.scored_modules())
            plan: dict[str, list[int]] = {}
            for kind in self.kinds:
                groups = self.transformer.groups(scores, self.originals, kind)
                round_to = self.config.round_to if kind == "ffn" else 1
                plan.update(
                    plan_removals(
                        groups,
                        self._sparsity(kind, target),
                        self.config.scope,
                        self.config.min_density,
                        round_to,
                    )
                )
            return self.transformer, plan

        graph = GraphPruner(
            self.model,
            self.example,
            self.config.layers,
            [self.head] if self.head else [],
            self.head if self.keep_embedding else None,
            self.context.task.call,
        )
        modules = {
            n: m for n, m in self.model.named_modules() if isinstance(m, module_kinds("all"))
        }
        groups = graph.scored(self.scores(modules), self.originals)
        if not groups:
            raise ModelpressError(
                "prune: no prunable channel groups (only the output layer is prunable?)"
            )
        return graph, plan_removals(
            groups, target, self.config.scope, self.config.min_density, self.config.round_to
        )

    def check(self, final: float) -> None:
        self._plan(final)

    def run(self, target: float) -> None:
        pruner, plan = self._plan(target)
        pruner.apply(plan)
        self._verify()

    def _output_shapes(
        self, example: dict[str, torch.Tensor] | None = None
    ) -> list[tuple[int, int]]:
        import torch

        with torch.no_grad(), trace_errors(self.model, "the forward pass after pruning"):
            logits, embedding = split_outputs(self.context.task.call(self.model, example or self.example))
        # rank and width: a sequence axis (token logits of a causal LM) follows the input's length
        return [(logits.dim(), logits.shape[-1]), (embedding.dim(), embedding.shape[-1])]

    def _verify(self) -> None:
        """Forward at another batch size (and sequence length) must give the same output shapes."""
        for example in (self.example, _reshaped(self.example)):
            shapes = self._output_shapes(example)
            if shapes != self.shapes:
                raise ModelpressError(
                    f"prune: structured pruning changed the output shapes {self.shapes} → {shapes}"
                )

    def report(self) -> dict[str, Any]:
        if self.transformer.found:
            units = self.transformer.units()
        else:
            units = {}
            for name, m in self.model.named_modules():
                if name in self.originals:
                    units[name] = getattr(m, "out_channels", getattr(m, "out_features", 0))
        return {
            f"units.{name}": f"{kept}/{self.originals.get(name, kept)}"
            for name, kept in units.items()
        }


def _reshaped(example: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Three rows instead of two; for token inputs also a shorter sequence."""
    import torch

    out = {}
    for name, tensor in example.items():
        t = torch.cat([tensor, tensor[:1]])
        if t.dtype == torch.int64 and t.dim() == 2 and t.shape[1] > 2:
            t = t[:, : t.shape[1] - 1]
        out[name] = t
    return out


def make_round(
    model: nn.Module, config: PruneConfig, context: StageContext, example: dict[str, torch.Tensor]
) -> Round:
    cls = StructuredRound if config.method == "structured" else MaskRound
    return cls(model, config, context, example)
