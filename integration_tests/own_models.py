"""Users' own models and data, made by the tests the way users write theirs: a tabular MLP (scaler
inside) and a torchvision-style CNN, both ``forward(self, x)``, and a Hugging Face sequence
classifier folder built from the shipped MiniLM weights."""

from __future__ import annotations

from pathlib import Path

MLP_SOURCE = '''
import torch
from torch import nn


class PatientMLP(nn.Module):
    """Standardises its inputs itself (the scaler is part of the model), then an MLP."""

    def __init__(self, features: int = 30, hidden: int = 32, classes: int = 2):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
'''

CNN_SOURCE = '''
import torch
from torch import nn


class DigitNet(nn.Module):
    """Laid out like torchvision's classifiers: features, adaptive pooling, a classifier."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, kernel_size=3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(8 * width, 64), nn.ReLU(inplace=True), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)
'''


def patients_csv(folder: Path) -> Path:
    """Breast-cancer rows with their named feature columns and string labels (sklearn ships it)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(bunch.target_names)))
    path = folder / "patients.csv"
    frame.to_csv(path, index=False)
    return path


def train_mlp(folder: Path, classes: int = 2) -> tuple[object, list[str]]:
    """PatientMLP trained briefly on patients.csv (class order: malignant, benign)."""
    import importlib
    import sys

    import pandas as pd
    import torch

    (folder / "patient_models.py").write_text(MLP_SOURCE)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("patient_models")
    frame = pd.read_csv(folder / "patients.csv")
    labels = ["malignant", "benign"]
    x = torch.tensor(frame.drop(columns="diagnosis").to_numpy(), dtype=torch.float32)
    y = torch.tensor(frame["diagnosis"].map({name: i for i, name in enumerate(labels)}).to_numpy())
    torch.manual_seed(0)
    model = module.PatientMLP(classes=classes)
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval(), labels


def reviews_csv(folder: Path, rows: int = 360) -> Path:
    """Rotten Tomatoes snippets with string labels in a column named ``sentiment``."""
    from modelpress.datasets.shipped import SHIPPED

    frame = SHIPPED["rotten-tomatoes"].load().sample(n=rows, random_state=0)
    out = frame.rename(columns={"text": "review"}).assign(
        sentiment=frame["label"].map({1: "positive", 0: "negative"}))[["review", "sentiment"]]
    path = folder / "reviews.csv"
    out.to_csv(path, index=False)
    return path


def hf_classifier(folder: Path, steps: int = 30) -> Path:
    """A BertForSequenceClassification from the shipped MiniLM weights, fine-tuned briefly, saved
    with save_pretrained. Its id2label is *not* alphabetical (0: positive, 1: negative), so a
    run that used the data's sorted label order would score it upside down."""
    import pandas as pd
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from modelpress.sources.zoo import minilm_path

    id2label = {0: "positive", 1: "negative"}
    model = AutoModelForSequenceClassification.from_pretrained(
        minilm_path(), num_labels=2, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    frame = pd.read_csv(folder / "reviews.csv")
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    for step in range(steps):
        chunk = frame.sample(n=16, random_state=step)
        batch = tokenizer(list(chunk["review"]), padding=True, truncation=True, max_length=64, return_tensors="pt")
        labels = torch.tensor(chunk["sentiment"].map({v: k for k, v in id2label.items()}).to_numpy())
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = folder / "my-classifier"
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def digits_csv(folder: Path) -> Path:
    """sklearn's 8×8 digits as a CSV of named pixel columns (``px_r_c``, 0–1) and a ``digit`` label."""
    import pandas as pd
    from sklearn.datasets import load_digits

    bunch = load_digits()
    frame = pd.DataFrame(bunch.data / 16.0, columns=[f"px_{i // 8}_{i % 8}" for i in range(64)])
    frame["digit"] = bunch.target
    path = folder / "digits.csv"
    frame.to_csv(path, index=False)
    return path


def train_cnn(folder: Path, epochs: int = 6) -> object:
    """DigitNet trained briefly on digits.csv, as a user's own training script would."""
    import importlib
    import sys

    import pandas as pd
    import torch

    (folder / "digit_models.py").write_text(CNN_SOURCE)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("digit_models")
    frame = pd.read_csv(folder / "digits.csv")
    x = torch.tensor(frame.drop(columns="digit").to_numpy(), dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(frame["digit"].to_numpy())
    torch.manual_seed(0)
    model = module.DigitNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    return model.eval()
