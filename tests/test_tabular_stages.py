"""Every technique on a tabular MLP (the tabular-classification task): it works, or the recipe
refuses it at load with the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from modelpress.core.errors import RecipeError
from modelpress.core.registry import get_stage
from modelpress.recipe.schema import validate_recipe
from modelpress.tasks import TaskSpec
from modelpress.tasks.context import StageContext


class Scaled(nn.Module):
    """A tabular model with its scaler inside (buffers), as users' models usually are."""

    def __init__(self, features: int = 6, hidden: int = 16, classes: int = 3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features - self.mean)


@pytest.fixture(scope="module")
def tabular() -> tuple[nn.Module, StageContext]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype("float32")
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).assign(label=labels)
    frame["split"] = ["eval"] * 60 + ["calibration"] * 40 + ["train"] * 200
    task = TaskSpec("tabular-classification", labels=("a", "b", "c")).build()
    torch.manual_seed(0)
    model = Scaled()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(labels)).backward()
        optimizer.step()
    return model.eval(), StageContext(task=task, data=frame)


def accuracy(model: nn.Module, context: StageContext) -> float:
    frame = context.split("eval")
    logits, _ = context.task.forward(model, context.task.encode(frame))
    return float((logits.argmax(-1).numpy() == frame["label"].to_numpy()).mean())


@pytest.mark.parametrize("stage, config", [
    ("prune", {"sparsity": 0.5, "recovery": {"epochs": 2, "lr": 1e-2}}),
    ("prune", {"method": "structured", "sparsity": 0.25}),
    ("prune", {"method": "semi-structured-2:4"}),
    ("weight-quantize", {"bits": 4, "granularity": "per-channel", "symmetric": False}),
    ("weight-quantize", {"bits": 8, "activations": "dynamic"}),
    ("lowrank", {"energy": 0.95, "recovery": {"epochs": 1, "lr": 1e-2}}),
    ("finetune", {"epochs": 2, "lr": 1e-2, "batch_size": 32}),
    ("finetune", {"epochs": 1, "lr": 1e-2, "batch_size": 32, "lora": {"r": 2}}),
])
def test_module_stages_work_on_a_tabular_model(tabular, stage: str, config: dict) -> None:
    model, context = tabular
    spec = get_stage(stage)
    before = accuracy(model, context)
    result = spec.apply(model, spec.config.model_validate(config), context)
    logits, _ = context.task.forward(result, context.task.encode(context.split("eval")))
    assert logits.shape == (60, 3) and torch.isfinite(logits).all()
    assert accuracy(result, context) >= before - 0.15, (stage, config)
    assert accuracy(model, context) == before  # the stage never changes its input model


def test_onnx_quantize_stage_works_on_the_exported_tabular_graph(tabular) -> None:
    from modelpress.deploy.onnx_export import export_onnx

    model, context = tabular
    graph = export_onnx(model, context.task, context.split("eval"))
    spec = get_stage("quantize")
    quantized = spec.apply(graph, spec.config(), context)
    evaluation = context.task.evaluate(graph, quantized, context.split("eval"))
    assert evaluation.candidate["agreement"] > 0.9
    # a graph this small does not shrink (QDQ nodes outweigh int8 weights); its MatMuls are int8
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {n.op_type for n in quantized.graph.node}


def test_distillation_needs_a_given_student_for_tabular_models(tmp_path) -> None:
    (tmp_path / "t.csv").write_text("a,b,y\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(30)))
    torch.save(Scaled(features=2, classes=2).state_dict(), tmp_path / "m.pt")
    raw = {"name": "t", "registry": {"name": "t"},
           "model": {"source": "state-dict", "path": str(tmp_path / "m.pt"), "class": f"{__name__}:Scaled",
                     "kwargs": {"features": 2, "classes": 2}, "task": "tabular-classification"},
           "data": {"source": "csv", "path": str(tmp_path / "t.csv"), "label": "y", "features": "*"},
           "stages": [{"distill": {"student": {"layers": 1}}}]}
    with pytest.raises(RecipeError) as caught:
        validate_recipe(raw)
    assert caught.value.problems == [
        "stages[0].distill: a tabular-classification model cannot give a student derived by layers (a "
        "transformer layer stack); give student.path (a student architecture saved with torch.save)"]
