"""A task calls a model the way the model is written (``modelpress.tasks.calling``).

The models here are written the way users write theirs: ``forward(self, x)`` MLPs and a
torchvision-style CNN (eager, scripted, traced), Hugging Face classifiers of several families
(random init of the real config classes), and wrappers (PEFT). Each is called by the task, exported
to ONNX, and the exported graph is fed by the same rule and compared with PyTorch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.datasets.shipped import SHIPPED
from modelpress.deploy.onnx_export import check_parity, export_onnx
from modelpress.sources.zoo import minilm_path
from modelpress.tasks import TaskSpec
from modelpress.tasks.evaluation import graph_input_names, onnx_runner, onnx_session


class TutorialMLP(nn.Module):
    def __init__(self, features: int = 64, classes: int = 10):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(features, 32), nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class TorchvisionStyleCNN(nn.Module):
    """features → avgpool → flatten → classifier, as torchvision's models are laid out."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class IdsAndMask(nn.Module):
    """A text model that names its inputs its own way: taken by position, in the task's order."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(31000, 16), nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).float()
        return self.head((self.embed(ids) * weights).sum(1) / weights.sum(1).clamp(min=1))


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return SHIPPED["digits"].load().iloc[:48]


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return SHIPPED["rotten-tomatoes"].load().iloc[:12]


def tabular():
    return TaskSpec("tabular-classification").build()


def image():
    return TaskSpec("image-classification", image_shape=(1, 8, 8)).build()


def text():
    return TaskSpec("text-classification", tokenizer=str(minilm_path()), max_length=24).build()


def _exported_matches(model: nn.Module, task, frame: pd.DataFrame) -> list[str]:
    """Export, feed the graph through the task, compare with PyTorch; the graph's input names."""
    proto = export_onnx(model, task, frame)
    parity = check_parity(model, proto, task, frame)
    assert parity.agreement == 1.0 and parity.cosine > 0.9999
    return graph_input_names(proto)


@pytest.mark.parametrize("kind", ["eager", "scripted", "traced"])
def test_a_forward_x_mlp_is_called_positionally_and_exported_with_its_own_input_name(digits, kind) -> None:
    torch.manual_seed(0)
    model = TutorialMLP().eval()
    if kind == "scripted":
        model = torch.jit.script(model)
    elif kind == "traced":
        model = torch.jit.trace(model, torch.zeros(2, 64))
    task = tabular()
    logits, _ = task.forward(model, task.encode(digits))
    assert logits.shape == (len(digits), 10)
    assert _exported_matches(model, task, digits) == ["x"]


def test_a_torchvision_style_cnn_takes_pixels_positionally(digits) -> None:
    torch.manual_seed(0)
    model, task = TorchvisionStyleCNN().eval(), image()
    batch = task.encode(digits)
    assert task.binding(model, batch).by_name is False
    expected = model(torch.from_numpy(batch["pixel_values"]))
    torch.testing.assert_close(task.forward(model, batch)[0], expected)
    assert _exported_matches(model, task, digits) == ["x"]
    assert _exported_matches(torch.jit.script(model), task, digits) == ["x"]


def _bert_family(name: str) -> nn.Module:
    import transformers

    common = dict(vocab_size=31000, num_labels=2)
    configs = {
        "bert": transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64, type_vocab_size=2, **common),
        "roberta": transformers.RobertaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=64, pad_token_id=1, **common),
        "distilbert": transformers.DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64, **common),
    }
    torch.manual_seed(0)
    return transformers.AutoModelForSequenceClassification.from_config(configs[name]).eval()


@pytest.mark.parametrize(("family", "inputs"), [
    ("bert", ["input_ids", "attention_mask", "token_type_ids"]),
    ("roberta", ["input_ids", "attention_mask", "token_type_ids"]),
    ("distilbert", ["input_ids", "attention_mask"]),  # DistilBERT takes no segment ids
])
def test_hugging_face_classifiers_get_their_own_input_names(reviews, family, inputs) -> None:
    model, task = _bert_family(family), text()
    batch = task.encode(reviews)
    binding = task.binding(model, batch)
    assert binding.by_name and list(binding.names) == inputs
    assert _exported_matches(model, task, reviews) == inputs


def test_segment_ids_reach_a_bert_that_uses_them(reviews) -> None:
    """Segment embeddings that differ per type: a model fed its token_type_ids by the task gives
    the same logits as the model called by hand with the tokenizer's whole output."""
    model, task = _bert_family("bert"), text()
    with torch.no_grad():
        model.bert.embeddings.token_type_embeddings.weight.normal_()
    batch = task.encode(reviews)
    batch["token_type_ids"][:, 3:] = 1  # a second segment, as a sentence pair would have
    by_hand = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
    without = model(input_ids=torch.from_numpy(batch["input_ids"]),
                    attention_mask=torch.from_numpy(batch["attention_mask"])).logits
    assert not torch.allclose(by_hand, without)  # the segment ids matter to this model
    torch.testing.assert_close(task.forward(model, batch)[0], by_hand)


def test_a_text_model_with_its_own_argument_names_is_called_by_position(reviews) -> None:
    torch.manual_seed(0)
    model, task = IdsAndMask().eval(), text()
    batch = task.encode(reviews)
    binding = task.binding(model, batch)
    assert binding.names == ("ids", "mask") and binding.keys == ("input_ids", "attention_mask")
    assert _exported_matches(model, task, reviews) == ["ids", "mask"]


def test_peft_and_ddp_style_wrappers_are_looked_through(digits) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    task = tabular()
    wrapped = get_peft_model(TutorialMLP(), LoraConfig(target_modules=["fc1"], r=2)).eval()
    assert task.binding(wrapped, task.encode(digits)).names == ("x",)
    torch.testing.assert_close(task.forward(wrapped, task.encode(digits))[0],
                               wrapped(torch.from_numpy(task.encode(digits)["features"])))


class TwoInputs(nn.Module):
    def forward(self, image: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        return image


@pytest.mark.parametrize(("model", "says"), [
    (TwoInputs(), "takes (image, metadata), but the task gives features"),
])
def test_a_model_the_task_cannot_feed_gets_one_line_naming_both_sides(digits, model, says) -> None:
    task = tabular()
    with pytest.raises(ModelpressError, match=r"TwoInputs\) " + says.replace("(", r"\(").replace(")", r"\)")):
        task.binding(model, task.encode(digits))
    with pytest.raises(ModelpressError, match="^model: the model's forward") as caught:
        task.check_model(model, digits.assign(split="eval"), where="model")
    assert "\n" not in str(caught.value)


def test_a_graph_is_fed_by_the_same_rule(digits) -> None:
    """A user's own ONNX graph with its own input name, run by the task."""
    torch.manual_seed(0)
    model, task = TutorialMLP().eval(), tabular()
    proto = export_onnx(model, task, digits)
    proto.graph.input[0].name = "input.1"  # rename the graph input as another exporter would
    for node in proto.graph.node:
        node.input[:] = ["input.1" if name == "x" else name for name in node.input]
    logits, _ = onnx_runner(onnx_session(proto), task)(task.encode(digits))
    np.testing.assert_allclose(logits, model(torch.from_numpy(task.encode(digits)["features"])).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
