"""Errors a user's own model or data causes, found by `modelpress validate` before any compute:
each exits 2 with one line naming the field or the file, and never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

MLP = '''
import torch
from torch import nn


class TinyMLP(nn.Module):
    def __init__(self, features: int = 4, hidden: int = 8, classes: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, features):
        return self.net(features)
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("errors")
    (folder / "tiny_models.py").write_text(MLP)
    sys.path.insert(0, str(folder))
    from tiny_models import TinyMLP  # type: ignore[import-not-found]

    model = TinyMLP().eval()
    torch.save(model.state_dict(), folder / "state.pt")
    torch.save(model, folder / "whole.pt")  # a pickled module
    rows = "\n".join(f"{i % 3},{i % 5},{i % 7},{i % 2},{'yes' if i % 2 else 'no'}" for i in range(60))
    (folder / "table.csv").write_text("a,b,c,d,answer\n" + rows + "\n")
    (folder / "texts.csv").write_text("review,sentiment\n" + "\n".join(
        f"text number {i},{'good' if i % 2 else 'bad'}" for i in range(40)) + "\n")
    return folder


def tabular(model: dict, **changes: object) -> dict:
    return {"name": "own", "model": model, "data": {"source": "csv", "path": "table.csv", "label": "answer",
                                                    "features": "*"},
            "stages": ["quantize"], "registry": {"name": "own"}, **changes}


def validate(cli: str, folder: Path, recipe: dict, python_prelude: str | None = None) -> subprocess.CompletedProcess:
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    command = [cli, "validate", "recipe.yaml"]
    if python_prelude:  # the real CLI, in an interpreter where some package cannot be imported
        command = [sys.executable, "-c", f"{python_prelude}\nfrom modelpress.cli.main import main\nmain()",
                   "validate", "recipe.yaml"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)


def problem_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return [line.strip() for line in result.stderr.splitlines()[1:]]


SD = {"source": "state-dict", "path": "state.pt", "class": "tiny_models:TinyMLP", "task": "tabular-classification"}

CASES: dict[str, tuple[Callable[[Path], dict], str]] = {
    "features data for an image task without image_shape": (
        lambda f: tabular({**SD, "task": "image-classification"}), "data.image_shape:"),
    "a model file of the wrong kind": (
        lambda f: tabular({"source": "torchscript", "path": "state.pt", "task": "tabular-classification"}),
        "is not a TorchScript archive"),
    "an unknown stage is named": (lambda f: tabular(SD, stages=[{"sparsify": {}}]), "unknown stage 'sparsify'"),
    "a state dict that does not fit its class": (
        lambda f: tabular({**SD, "kwargs": {"hidden": 16}}), "shape (file vs class): net.0.weight (8, 4) vs (16, 4)"),
    "a pickled module without trust_pickle": (
        lambda f: tabular({"source": "file", "path": "whole.pt", "task": "tabular-classification"}),
        "model.trust_pickle:"),
    "a class that cannot be imported": (lambda f: tabular({**SD, "class": "nowhere:TinyMLP"}), "model.class:"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_own_model_input_is_one_line_at_validate(project: Path, modelpress_cli: str, case: str) -> None:
    make, expected = CASES[case]
    lines = problem_lines(validate(modelpress_cli, project, make(project)))
    assert any(expected in line for line in lines), lines
    assert len(lines) == 1, lines


def test_missing_optional_extra_names_the_pip_install(project: Path, modelpress_cli: str) -> None:
    recipe = tabular(SD, stages=[{"finetune": {"lora": {"r": 4}}}, "quantize"])
    without_peft = "import sys; sys.modules['peft'] = None"
    lines = problem_lines(validate(modelpress_cli, project, recipe, python_prelude=without_peft))
    assert lines == ["stages[0].finetune: needs the Python package 'peft', which is not installed: "
                     'pip install "modelpress[finetune]"']


@pytest.fixture(scope="module")
def hf_folders(project: Path) -> tuple[Path, Path]:
    """A tiny random BERT classifier saved twice: without tokenizer files, and with 3 classes + a tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from modelpress.sources.zoo import minilm_path

    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=2, id2label={0: "bad", 1: "good"},
                        label2id={"bad": 0, "good": 1})
    torch.manual_seed(0)
    bare = project / "no-tokenizer"
    BertForSequenceClassification(config).save_pretrained(bare)
    three = project / "three-classes"
    config3 = BertConfig(**{**config.to_dict(), "id2label": {0: "bad", 1: "good", 2: "meh"},
                            "label2id": {"bad": 0, "good": 1, "meh": 2}})
    BertForSequenceClassification(config3).save_pretrained(three)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(three)
    return bare, three


def text_recipe(model: Path, **data: object) -> dict:
    return {"name": "own-text", "model": {"source": "huggingface", "path": str(model)},
            "data": {"source": "csv", "path": "texts.csv", "label": "sentiment", "text": "review", **data},
            "stages": ["quantize"], "registry": {"name": "own-text"}}


def test_hf_folder_without_tokenizer_files(project: Path, modelpress_cli: str, hf_folders) -> None:
    bare, _ = hf_folders
    [line] = problem_lines(validate(modelpress_cli, project, text_recipe(bare)))
    assert line.startswith("model.path:") and "no tokenizer files" in line and "no-tokenizer" in line


def test_data_label_missing_from_id2label(project: Path, modelpress_cli: str, hf_folders) -> None:
    _, three = hf_folders
    (project / "texts2.csv").write_text("review,sentiment\n" + "\n".join(
        f"text {i},{['good', 'awful'][i % 2]}" for i in range(40)) + "\n")
    [line] = problem_lines(validate(modelpress_cli, project, text_recipe(three, path="texts2.csv")))
    assert line.startswith("data.label (") and "awful" in line and "id2label: bad, good, meh" in line


def test_hf_classifier_validates_and_takes_its_task_from_config(project: Path, modelpress_cli: str,
                                                                  hf_folders) -> None:
    _, three = hf_folders
    result = validate(modelpress_cli, project, text_recipe(three))
    assert result.returncode == 0, result.stderr
    assert "ok (text-classification" in result.stdout


def test_init_on_a_state_dict_asks_for_its_class_and_writes_it_when_given(modelpress_cli: str, project: Path) -> None:
    command = [modelpress_cli, "init", "state.pt", "table.csv", "--label", "answer", "--out", "sd.yaml"]
    missing = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr + missing.stdout
    assert "state.pt: a state dict needs the class it fits: pass --class module:Name" in missing.stderr
    given = subprocess.run([*command, "--class", "tiny_models:TinyMLP"], cwd=project, capture_output=True,
                           text=True, timeout=120)
    assert given.returncode == 0, given.stderr
    model = yaml.safe_load((project / "sd.yaml").read_text())["model"]
    assert model["source"] == "state-dict" and model["class"] == "tiny_models:TinyMLP"
