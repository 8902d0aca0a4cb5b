"""Structured pruning of CNNs/MLPs through Torch-Pruning's dependency graph.

Torch-Pruning traces the forward pass (autograd) and groups every layer coupled to a channel
(next layer's inputs, norms, flatten → Linear index expansion, residual adds), so removing a
group keeps the network consistent. We use its graph and its pruning functions; scoring and
the plan are ours (see scores.py, plan.py) so that every granularity shares them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.steps.prune.plan import Group
from modelpress.steps.prune.scores import column_scores, row_scores
from modelpress.steps.prune.trace import module_kinds, trace_errors

if TYPE_CHECKING:
    import torch
    from torch import nn


class GraphPruner:
    """One round's view of a model: its dependency groups, scored, ready to cut."""

    def __init__(
        self,
        model: nn.Module,
        example: dict[str, torch.Tensor],
        layers: str,
        protected: list[nn.Module],
        keep_head_inputs: nn.Module | None,
        forward: Callable[[nn.Module, dict[str, torch.Tensor]], Any],
    ):
        import torch_pruning as tp

        self.model = model
        self.names = {m: name for name, m in model.named_modules()}
        kinds = module_kinds(layers)
        with trace_errors(model, "Torch-Pruning's dependency tracing"):
            self.graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=example, forward_fn=forward, verbose=False
            )
        unreached = [
            name
            for name, m in model.named_modules()
            if isinstance(m, module_kinds("all")) and m not in self.graph.module2node
        ]
        if unreached:
            raise ModelpressError(
                f"prune: the dependency analysis cannot trace module {unreached[0]!r} "
                f"(not reached by "
                "autograd from the outputs: detached, unused or computed under no_grad); "
                "structured pruning would leave it inconsistent"
            )
        self.groups: dict[str, Any] = {}
        for group in self.graph.get_all_groups(
            ignored_layers=list(protected), root_module_types=kinds
        ):
            if keep_head_inputs is not None and self._touches_inputs_of(group, keep_head_inputs):
                continue  # the head's input is the embedding the gate compares with the baseline
            self.groups[self.names[group[0].dep.target.module]] = group

    def _touches_inputs_of(self, group: Any, module: nn.Module) -> bool:
        return any(
            item.dep.target.module is module
            and self.graph.is_in_channel_pruning_fn(item.dep.handler)
            for item in group.items
        )

    def scored(self, scores: dict[str, torch.Tensor], originals: dict[str, int]) -> list[Group]:
        """Each group's unit scores: members' row/column scores summed onto the root channels."""
        import torch

        out = []
        for name, group in self.groups.items():
            units = len(group[0].idxs)
            total = torch.zeros(units, dtype=torch.float64)
            for item in group.items:
                module_name = self.names.get(item.dep.target.module)
                if module_name not in scores:
                    continue
                handler = item.dep.handler
                if self.graph.is_out_channel_pruning_fn(handler):
                    per_unit = row_scores(scores[module_name])
                elif self.graph.is_in_channel_pruning_fn(handler):
                    per_unit = column_scores(scores[module_name])
                else:
                    continue
                total.scatter_add_(
                    0, torch.tensor(item.root_idxs), per_unit[torch.tensor(item.idxs)].double()
                )
            originals.setdefault(name, units)
            out.append(Group(name, total, originals[name]))
        return out

    def apply(self, plan: dict[str, list[int]]) -> None:
        for name, removals in plan.items():
            if removals:
                root = self.groups[name][0]
                group = self.graph.get_pruning_group(
                    root.dep.target.module, root.dep.handler, removals
                )
                group.prune()
