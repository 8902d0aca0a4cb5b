"""nn.Module classes of the shipped models (imported lazily: this module imports torch)."""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


class TextClassifier(nn.Module):
    """A sentence encoder, mean pooling + L2 norm (as sentence-transformers), a linear head.

    ``forward`` returns ``(logits, embedding)``.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, tokenizer: str):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(cast(Any, encoder).config.hidden_size), num_classes)  # a transformers model
        self.tokenizer = tokenizer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        embedding = F.normalize(pooled, p=2, dim=-1)
        return self.head(embedding), embedding


class SmallCNN(nn.Module):
    """conv-relu-pool ×2 → fc-relu → fc; ``forward`` returns ``(logits, features)``."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 16, hidden: int = 64):
        super().__init__()
        channels, height, width_px = image_shape
        self.image_shape = tuple(image_shape)
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * (height // 4) * (width_px // 4), hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.conv1(pixels)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        features = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(features), features
