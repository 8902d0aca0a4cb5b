"""``source: onnx``: a user's ONNX file, exported the way users export theirs (``torch.onnx.export``
of a ``forward(self, x)`` module), read through the source, evaluated in ONNX Runtime and quantized
by the graph stage; and the files it refuses at ``modelpress validate``, each in one line naming
``model.path`` and the file, without a traceback. (A whole run to @champion:
integration_tests/test_own_models.py.)"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from modelpress.core.registry import get_stage
from modelpress.recipe.schema import validate_recipe


class TinyMLP(nn.Module):
    def __init__(self, features: int = 4, hidden: int = 16, classes: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TwoInputs(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a[:, :2] + b[:, :2]


def export(model: nn.Module, path: Path, names: list[str]) -> Path:
    inputs = tuple(torch.zeros(1, 4) for _ in names)
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated, and still what many use
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, str(path), input_names=names, output_names=["logits"],
                          dynamic_axes={n: {0: "batch"} for n in names}, dynamo=False)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """table.csv (4 features, labels no/yes), an MLP trained on it, exported as mlp.onnx (input ``x``)."""
    folder = tmp_path_factory.mktemp("onnx-source")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 4)).astype("float32")
    answer = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no")
    pd.DataFrame(x, columns=list("abcd")).assign(answer=answer).to_csv(folder / "table.csv", index=False)
    torch.manual_seed(0)
    model = TinyMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = torch.from_numpy((answer == "yes").astype("int64"))  # sorted labels: no=0, yes=1
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x)), target).backward()
        optimizer.step()
    export(model.eval(), folder / "mlp.onnx", ["x"])
    export(TwoInputs(), folder / "two.onnx", ["a", "b"])
    (folder / "garbage.onnx").write_bytes(b"not a protobuf at all \x00\xff" * 8)
    return folder, model


def recipe(path: str) -> dict:
    return {"name": "own-onnx", "registry": {"name": "own-onnx"}, "stages": ["quantize"],
            "model": {"source": "onnx", "path": path, "task": "tabular-classification"},
            "data": {"source": "csv", "path": "table.csv", "label": "answer", "features": "*",
                     "split": {"train": 0.5, "eval": 0.5, "calibration": 32}}}


def test_a_users_onnx_file_is_loaded_evaluated_and_quantized(project: tuple[Path, nn.Module]) -> None:
    import onnx

    from modelpress.datasets.splits import assign_splits, encode_labels
    from modelpress.sources.onnx import OnnxModel
    from modelpress.tasks import TaskSpec
    from modelpress.tasks.context import StageContext

    folder, model = project
    checked = validate_recipe(recipe("mlp.onnx"), base=folder)
    assert isinstance(checked.model, OnnxModel) and checked.model.path == folder / "mlp.onnx"
    assert OnnxModel.recognizes(folder / "mlp.onnx") and not OnnxModel.recognizes(folder / "table.csv")
    frame, labels = encode_labels(assign_splits(checked.data.load(), checked.data.split, seed=0, limit=None),
                                  None)
    assert labels == ["no", "yes"]
    task = TaskSpec("tabular-classification", labels=tuple(labels)).build()
    graph = checked.model.load(task, frame)
    assert isinstance(graph, onnx.ModelProto) and [i.name for i in graph.graph.input] == ["x"]

    eval_frame = frame[frame["split"] == "eval"]
    with torch.no_grad():
        expected = model(torch.from_numpy(task.encode(eval_frame)["features"])).argmax(-1).numpy()
    evaluation = task.evaluate(graph, graph, eval_frame)  # the graph fed by position: x <- features
    assert evaluation.baseline["accuracy"] == pytest.approx(float((expected == eval_frame["label"]).mean()))
    assert evaluation.baseline["accuracy"] > 0.9

    spec = get_stage("quantize")
    quantized = spec.apply(graph, spec.config(), StageContext(task=task, data=frame))
    assert "MatMulInteger" in {n.op_type for n in quantized.graph.node}
    assert task.evaluate(graph, quantized, eval_frame).candidate["agreement"] > 0.9


def test_the_fingerprint_follows_the_files_bytes(project: tuple[Path, nn.Module], tmp_path: Path) -> None:
    folder, _ = project
    copy = tmp_path / "mlp.onnx"
    copy.write_bytes((folder / "mlp.onnx").read_bytes())
    source = validate_recipe({**recipe(str(copy))}, base=folder).model
    before = source.fingerprint()
    export(TinyMLP(hidden=8), copy, ["x"])
    assert source.fingerprint() != before  # a changed file never reuses the cached model


def validate_lines(cli: str, folder: Path, path: str) -> list[str]:
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe(path)))
    done = subprocess.run([cli, "validate", "recipe.yaml"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return [line.strip() for line in done.stderr.splitlines()[1:]]


@pytest.mark.parametrize(("path", "expected"), [
    ("missing.onnx", "model.path: no such file or folder: 'missing.onnx'"),
    ("garbage.onnx", "model.path: {folder}/garbage.onnx: not a readable ONNX model ("),
    ("two.onnx", "model.path: two.onnx's graph takes inputs (a, b), which the tabular-classification task cannot "
                 "feed: it gives features; export the graph with inputs named so, or with 1 input taken in that "
                 "order"),
])
def test_an_onnx_file_the_task_cannot_use_is_one_line_at_validate(project: tuple[Path, nn.Module], modelpress_cli: str,
                                                                  path: str, expected: str) -> None:
    folder, _ = project
    lines = validate_lines(modelpress_cli, folder, path)
    assert len(lines) == 1 and lines[0].startswith(expected.format(folder=folder.resolve())), lines
