"""Image data and models as users have them, made by the tests: digit PNGs under class folders
(scikit-learn's 8×8 digits upscaled to 32×32), a Hugging Face ViT folder with its
``preprocessor_config.json``, and a torchvision-style CNN saved as state dict + class. Each model
is trained here on other digits than the ones in the folder, preprocessed the way its user would
(the ViT through its own image processor, the CNN by torchvision's transforms written out), so
the pipeline's accuracy on the folder measures whether it preprocesses the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: class folder names; sorted (ImageFolder's order) they are not in digit order
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SIZE = 32
#: the first digits go to the PNG folder; the models train on the rest
FOLDER_DIGITS = 300

CNN_SOURCE = '''
import torch
from torch import nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))
'''


def _digit_images() -> tuple[list[Any], Any]:
    """Every sklearn digit as a 32×32 grayscale PIL image (upscaled as a user would), with its class."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = [Image.fromarray(np.round(pixels * 255 / 16).astype(np.uint8), mode="L")
              .resize((SIZE, SIZE), Image.Resampling.BILINEAR) for pixels in bunch.images]
    return images, bunch.target


def digit_pngs(folder: Path, count: int = FOLDER_DIGITS) -> Path:
    """``folder/digits/<name>/<n>.png``: the first ``count`` digits (about count/10 per class)."""
    images, targets = _digit_images()
    root = folder / "digits"
    for index in range(count):
        name = NAMES[int(targets[index])]
        (root / name).mkdir(parents=True, exist_ok=True)
        images[index].save(root / name / f"{index:04d}.png")
    return root


def _held_out() -> tuple[list[Any], list[int]]:
    """The digits that are not in the PNG folder, for training."""
    images, targets = _digit_images()
    return images[FOLDER_DIGITS:], [int(t) for t in targets[FOLDER_DIGITS:]]


def hf_vit(folder: Path, steps: int = 500) -> Path:
    """A tiny random-init ViTForImageClassification trained briefly on held-out digits through its
    own ViTImageProcessor, saved with save_pretrained (id2label in digit order: zero, one, …)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=SIZE, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=10,
                       id2label=dict(enumerate(NAMES)), label2id={n: i for i, n in enumerate(NAMES)})
    model = ViTForImageClassification(config)
    processor = ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    images, targets = _held_out()
    pixels = processor(images=[i.convert("RGB") for i in images], return_tensors="pt")["pixel_values"]
    _train(model, pixels, torch.tensor(targets), steps, lambda m, x: m(pixel_values=x).logits, lr=2e-3)
    out = folder / "digit-vit"
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


def torchvision_style(image: Any) -> Any:
    """Resize(30) → CenterCrop(28) → ToTensor() → Normalize([0.5], [0.5]), as torchvision does
    them (written out: torchvision cannot be installed beside this torch)."""
    import numpy as np
    import torch
    from PIL import Image

    width, height = image.size
    short = min(width, height)
    resized = image.convert("L").resize((30 * width // short, 30 * height // short), Image.Resampling.BILINEAR)
    top, left = round((resized.height - 28) / 2), round((resized.width - 28) / 2)
    array = np.asarray(resized, dtype=np.float32)[top:top + 28, left:left + 28] / 255.0
    return (torch.from_numpy(array)[None] - 0.5) / 0.5


def user_cnn(folder: Path, steps: int = 150) -> Path:
    """``folder/digit_cnn.py`` (class Net) and ``folder/digit_cnn.pt`` (its state dict), trained
    on held-out digits with ImageFolder's class order (the folder names, sorted)."""
    import importlib
    import sys

    import torch

    (folder / "digit_cnn.py").write_text(CNN_SOURCE)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("digit_cnn")
    order = sorted(NAMES)  # torchvision's ImageFolder: class index = position of the sorted folder name
    images, targets = _held_out()
    pixels = torch.stack([torchvision_style(image) for image in images])
    labels = torch.tensor([order.index(NAMES[t]) for t in targets])
    torch.manual_seed(0)
    model = module.Net()
    _train(model, pixels, labels, steps, lambda m, x: m(x), lr=3e-3)
    path = folder / "digit_cnn.pt"
    torch.save(model.eval().state_dict(), path)
    return path


def _train(model: Any, pixels: Any, labels: Any, steps: int, forward: Any, lr: float) -> None:
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    # One thread: these small steps run several times slower with two spinning threads on a busy
    # 2-core machine (benchmarks/RESULTS.md, "OpenMP threads on a busy 2-core box").
    torch.set_num_threads(1)
    model.train()
    try:
        for _ in range(steps):
            batch = torch.randint(0, len(labels), (64,), generator=generator)
            loss = torch.nn.functional.cross_entropy(forward(model, pixels[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
