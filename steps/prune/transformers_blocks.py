"""Structured pruning of Hugging Face BERT-style encoders and Llama-style decoders, by hand.

Why not Torch-Pruning's graph here: its autograd tracing of HF models breaks or mis-groups on
attention reshapes, rotary embeddings and tied/shared parameters (Torch-Pruning issues #519,
#527), and it does not update the attention modules' head counts that HF's forward reads. The
coupling inside a transformer block is small and well known, so we name it explicitly:

* BERT FFN unit j: row j of ``intermediate.dense`` + column j of ``output.dense``;
* BERT head h: rows of ``query``/``key``/``value`` for h + columns of ``attention.output.dense``
  -- removed with HF's own ``prune_heads`` (updates num_attention_heads/all_head_size and
  config.pruned_heads, so the head count survives ONNX export and save/load);
* Llama MLP unit j: rows j of ``gate_proj`` and ``up_proj`` + column j of ``down_proj``.

The row/column cuts use Torch-Pruning's pruning functions (weights, biases, in/out features).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.steps.prune.plan import Group
from modelpress.steps.prune.scores import column_scores, row_scores

if TYPE_CHECKING:
    import torch
    from torch import nn


def bert_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {
        name: m
        for name, m in model.named_modules()
        if hasattr(m, "intermediate")
        and hasattr(m, "output")
        and hasattr(m, "attention")
        and hasattr(getattr(m.attention, "self", None), "query")
    }


def llama_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {
        name: m
        for name, m in model.named_modules()
        if all(hasattr(getattr(m, "mlp", None), p) for p in ("gate_proj", "up_proj", "down_proj"))
    }


class TransformerPruner:
    """FFN/MLP units and attention heads of every block as pruning groups."""

    def __init__(self, model: nn.Module, target: str):
        self.model = model
        self.bert = bert_layers(model)
        self.llama = {} if self.bert else llama_layers(model)
        self.target = target

    @property
    def found(self) -> bool:
        return bool(self.bert or self.llama)

    def scored_modules(self) -> dict[str, nn.Module]:
        """The Linear layers whose weights the unit scores read."""
        out = {}
        for name, layer in self.bert.items():
            att = layer.attention
            out.update(
                {
                    f"{name}.attention.self.query": att.self.query,
                    f"{name}.attention.self.key": att.self.key,
                    f"{name}.attention.self.value": att.self.value,
                    f"{name}.attention.output.dense": att.output.dense,
                    f"{name}.intermediate.dense": layer.intermediate.dense,
                    f"{name}.output.dense": layer.output.dense,
                }
            )
        for name, layer in self.llama.items():
            out.update(
                {
                    f"{name}.mlp.{p}": getattr(layer.mlp, p)
                    for p in ("gate_proj", "up_proj", "down_proj")
                }
            )
        return out

    def groups(
        self, scores: dict[str, torch.Tensor], originals: dict[str, int], kind: str
    ) -> list[Group]:
        """``kind``: 'ffn' (BERT FFN / Llama MLP units) or 'heads' (BERT attention heads)."""
        out = []
        for name in self.bert or self.llama:
            units = (
                self._ffn_scores(name, scores) if kind == "ffn" else self._head_scores(name, scores)
            )
            key = f"{name}.{kind}"
            originals.setdefault(key, len(units))
            out.append(Group(key, units.double(), originals[key]))
        return out

    def _ffn_scores(self, name: str, scores: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.bert:
            return row_scores(scores[f"{name}.intermediate.dense"]) + column_scores(
                scores[f"{name}.output.dense"]
            )
        return (
            row_scores(scores[f"{name}.mlp.gate_proj"])
            + row_scores(scores[f"{name}.mlp.up_proj"])
            + column_scores(scores[f"{name}.mlp.down_proj"])
        )

    def _head_scores(self, name: str, scores: dict[str, torch.Tensor]) -> torch.Tensor:
        attention = self.bert[name].attention.self
        heads, size = attention.num_attention_heads, attention.attention_head_size
        rows = sum(
            row_scores(scores[f"{name}.attention.self.{p}"]) for p in ("query", "key", "value")
        )
        columns = column_scores(scores[f"{name}.attention.output.dense"])
        return (rows + columns).view(heads, size).sum(1)

    def apply(self, plan: dict[str, list[int]]) -> None:
        import torch_pruning as tp

        for key, removals in plan.items():
            if not removals:
                continue
            name, kind = key.rsplit(".", 1)
            if kind == "heads":
                self._prune_heads(name, removals)
            elif self.bert:
                tp.prune_linear_out_channels(self.bert[name].intermediate.dense, removals)
                tp.prune_linear_in_channels(self.bert[name].output.dense, removals)
            else:
                mlp = self.llama[name].mlp
                tp.prune_linear_out_channels(mlp.gate_proj, removals)
                tp.prune_linear_out_channels(mlp.up_proj, removals)
                tp.prune_linear_in_channels(mlp.down_proj, removals)
                if hasattr(mlp, "intermediate_size"):
                    mlp.intermediate_size = mlp.gate_proj.out_features
        self._describe_llama_width()

    def _describe_llama_width(self) -> None:
        """A Llama whose blocks all keep one MLP width gets it in its config, so the model still
        saves and loads as the architecture it is (per-layer widths differ only after a global cut)."""
        widths = {layer.mlp.gate_proj.out_features for layer in self.llama.values()}
        config = getattr(self.model, "config", None)
        if len(widths) == 1 and hasattr(config, "intermediate_size"):
            config.intermediate_size = widths.pop()

    def _prune_heads(self, name: str, current: list[int]) -> None:
        """HF's prune_heads numbers heads as in the unpruned model: map current → original ids."""
        attention = self.bert[name].attention
        original = attention.self.num_attention_heads + len(attention.pruned_heads)
        alive = [h for h in range(original) if h not in attention.pruned_heads]
        heads = [alive[i] for i in current]
        base, index = self._owner(self.bert[name])
        if base is not None:
            base.prune_heads({index: heads})  # also records config.pruned_heads
        else:
            attention.prune_heads(heads)

    def _owner(self, layer: nn.Module) -> tuple[nn.Module | None, int]:
        for m in self.model.modules():
            layers = getattr(getattr(m, "encoder", None), "layer", None)
            if hasattr(m, "prune_heads") and layers is not None:
                for i, candidate in enumerate(layers):
                    if candidate is layer:
                        return m, i
        return None, -1

    def units(self) -> dict[str, int]:
        """Units left per block, for the report."""
        out = {}
        for name, layer in self.bert.items():
            out[f"{name}.ffn"] = layer.intermediate.dense.out_features
            out[f"{name}.heads"] = layer.attention.self.num_attention_heads
        for name, layer in self.llama.items():
            out[f"{name}.ffn"] = layer.mlp.gate_proj.out_features  # keyed as its groups (kind "ffn")
        return out
