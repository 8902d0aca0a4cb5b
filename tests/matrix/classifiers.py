"""Tiny models of the classifier families, written as users write them, with data to match.

Each family writes a model and its data into a folder and returns the recipe's ``model:`` and
``data:`` blocks: a tabular MLP and a torchvision-style CNN (``forward(self, x)``, state dict +
class, trained for a few steps), and Hugging Face folders (random init of the real config class,
saved with ``save_pretrained`` beside the shipped MiniLM tokenizer).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

USER_MODELS = '''
import torch
from torch import nn


class WineMLP(nn.Module):
    def __init__(self, features=13, hidden=32, classes=3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.head(self.body((x - self.mean) / self.std))


class DigitCNN(nn.Module):
    def __init__(self, num_classes=10, width=8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Linear(8 * width, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
'''


def _user_module(folder: Path) -> Any:
    (folder / "user_models.py").write_text(USER_MODELS)
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"user_models_{abs(hash(folder))}", folder / "user_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 60) -> nn.Module:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        idx = torch.arange(step * 32, step * 32 + 32) % len(x)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
    return model.eval()


def mlp(folder: Path) -> dict[str, Any]:
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame.to_csv(folder / "wine.csv", index=False)
    models = _user_module(folder)
    x = torch.tensor(bunch.data.to_numpy(), dtype=torch.float32)
    model = models.WineMLP()
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0))
    torch.save(_fit(model, x, torch.tensor(bunch.target.to_numpy())).state_dict(), folder / "mlp.pt")
    torch.save(models.WineMLP(hidden=8), folder / "student.pt")  # a smaller student, for distill
    return {"model": {"source": "state-dict", "path": "mlp.pt", "class": "user_models:WineMLP",
                      "task": "tabular-classification"},
            "data": {"source": "csv", "path": "wine.csv", "label": "cultivar", "features": "*",
                     "split": {"train": 0.6, "eval": 0.4, "calibration": 32}}}


def cnn(folder: Path) -> dict[str, Any]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rows = slice(0, 400)
    frame = pd.DataFrame(bunch.data[rows] / 16.0, columns=[f"p{i}" for i in range(64)]).assign(digit=bunch.target[rows])
    frame.to_csv(folder / "digits.csv", index=False)
    models = _user_module(folder)
    x = torch.tensor(frame.drop(columns="digit").to_numpy(), dtype=torch.float32).reshape(-1, 1, 8, 8)
    torch.save(_fit(models.DigitCNN(), x, torch.tensor(frame["digit"].to_numpy())).state_dict(), folder / "cnn.pt")
    torch.save(models.DigitCNN(width=4), folder / "student.pt")
    return {"model": {"source": "state-dict", "path": "cnn.pt", "class": "user_models:DigitCNN",
                      "task": "image-classification"},
            "data": {"source": "csv", "path": "digits.csv", "label": "digit", "features": "*", "image_shape": [1, 8, 8],
                     "split": {"train": 0.6, "eval": 0.4, "calibration": 32}}}


def _reviews(folder: Path, rows: int = 160) -> dict[str, Any]:
    from modelpress.datasets.shipped import SHIPPED

    frame = SHIPPED["rotten-tomatoes"].load().sample(n=rows, random_state=0)
    frame.rename(columns={"text": "review", "label": "fresh"}).to_csv(folder / "reviews.csv", index=False)
    return {"source": "csv", "path": "reviews.csv", "label": "fresh", "text": "review",
            "split": {"train": 0.6, "eval": 0.4, "calibration": 16}}


def _hf_text(config_class: str, **shape: Any) -> Callable[[Path], dict[str, Any]]:
    def make(folder: Path) -> dict[str, Any]:
        import transformers

        from modelpress.sources.zoo import minilm_path

        config = getattr(transformers, config_class)(vocab_size=30522, num_labels=2, **shape)
        torch.manual_seed(0)
        model = transformers.AutoModelForSequenceClassification.from_config(config)
        model.save_pretrained(folder / "model")
        transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder / "model")
        return {"model": {"source": "huggingface", "path": "model", "task": {"name": "text-classification",
                                                                              "max_length": 32}},
                "data": _reviews(folder)}

    return make


def _digit_folder(folder: Path, count: int = 120) -> dict[str, Any]:
    """``folder/digits/<digit>/<n>.png``: sklearn's 8×8 digits upscaled to 32×32 grayscale PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for index in range(count):
        target = folder / "digits" / f"digit-{bunch.target[index]}"
        target.mkdir(parents=True, exist_ok=True)
        pixels = np.round(bunch.images[index] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").resize((32, 32), Image.Resampling.BILINEAR).save(target / f"{index}.png")
    return {"source": "images", "path": "digits", "split": {"train": 0.6, "eval": 0.4, "calibration": 16}}


def _hf_image(config_class: str, processor: Callable[[], Any], student: dict[str, Any] | None = None,
              **shape: Any) -> Callable[[Path], dict[str, Any]]:
    """``student``: the shape of a smaller model of the family, saved whole as student.pt."""

    def make(folder: Path) -> dict[str, Any]:
        import transformers

        def build(**fields: Any) -> Any:
            config = getattr(transformers, config_class)(num_labels=10, num_channels=3, image_size=32, **fields)
            return transformers.AutoModelForImageClassification.from_config(config)

        torch.manual_seed(0)
        build(**shape).save_pretrained(folder / "model")
        processor().save_pretrained(folder / "model")
        if student is not None:
            torch.save(build(**{**shape, **student}), folder / "student.pt")
        return {"model": {"source": "huggingface", "path": "model"}, "data": _digit_folder(folder)}

    return make


def _vit_processor() -> Any:
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def _convnext_processor() -> Any:
    from transformers import ConvNextImageProcessor

    return ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875)


LAYERS = dict(num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, hidden_size=32)
FAMILIES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "mlp": mlp,
    "cnn": cnn,
    "bert": _hf_text("BertConfig", **LAYERS),
    "roberta": _hf_text("RobertaConfig", pad_token_id=1, max_position_embeddings=66, **LAYERS),
    "distilbert": _hf_text("DistilBertConfig", dim=32, n_layers=2, n_heads=2, hidden_dim=64),
    "vit": _hf_image("ViTConfig", _vit_processor, patch_size=8, **LAYERS),
    "convnext": _hf_image("ConvNextConfig", _convnext_processor, student={"hidden_sizes": [4, 8]}, patch_size=4,
                          num_stages=2, hidden_sizes=[8, 16], depths=[1, 1]),
}

#: what each stage column runs (a family may give its own, e.g. distill's student)
STAGE_CONFIGS: dict[str, dict[str, Any]] = {
    "prune": {"sparsity": 0.3},
    "lowrank": {"energy": 0.9},
    "distill": {"student": {"layers": 1}, "epochs": 1, "batch_size": 16},
    "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 16},
    "weight-quantize": {"bits": 8},
    "quantize": {"bits": 8},
}
FAMILY_STAGE_CONFIGS: dict[tuple[str, str], dict[str, Any]] = {
    ("mlp", "distill"): {"student": {"path": "student.pt"}, "epochs": 1, "batch_size": 16},
    ("cnn", "distill"): {"student": {"path": "student.pt"}, "epochs": 1, "batch_size": 16},
    # a ConvNeXt has stages, not a layer stack to cut down: its users distill into a smaller one
    ("convnext", "distill"): {"student": {"path": "student.pt"}, "epochs": 1, "batch_size": 16},
}


def stage_config(family: str, stage: str) -> dict[str, Any]:
    return FAMILY_STAGE_CONFIGS.get((family, stage), STAGE_CONFIGS[stage])


def finite_logits(logits: Any, rows: int) -> None:
    values = np.asarray(logits.detach() if hasattr(logits, "detach") else logits)
    assert values.shape[0] == rows and np.isfinite(values).all()
