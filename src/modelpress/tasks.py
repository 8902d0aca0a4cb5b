"""Task adapters: how a kind of model takes its inputs and what its outputs mean.

Stages, evaluation, export and the gate talk to a :class:`Task`, never to a model type, so a
new model kind is one adapter here. Batches are numpy arrays keyed by ONNX input name, so
the same batches feed PyTorch (via ``torch.from_numpy``) and ONNX Runtime sessions.

Model output convention: ``forward`` returns logits, or ``(logits, embedding)``; the
embedding (pooled sentence vector, penultimate CNN features) is what fidelity cosine uses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

Batch = dict[str, "np.ndarray"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything needed to rebuild a Task inside any step (JSON-able, cache-friendly)."""

    name: str
    image_shape: tuple[int, int, int] | None = None
    tokenizer: str | None = None
    max_length: int = 128

    def build(self) -> "Task":
        return TASKS[self.name](self)


class Task:
    name: str = ""
    input_names: tuple[str, ...] = ()

    def __init__(self, spec: TaskSpec):
        self.spec = spec

    def encode(self, frame: "pd.DataFrame") -> Batch:
        raise NotImplementedError

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        raise NotImplementedError

    def batches(self, frame: "pd.DataFrame", batch_size: int, shuffle: bool = False,
                seed: int = 0) -> Iterator[tuple[Batch, "np.ndarray"]]:
        order = frame.sample(frac=1.0, random_state=seed) if shuffle else frame
        for start in range(0, len(order), batch_size):
            chunk = order.iloc[start:start + batch_size]
            yield self.encode(chunk), chunk["label"].to_numpy(dtype="int64", copy=True)

    def example(self, frame: "pd.DataFrame", rows: int = 2) -> Batch:
        return self.encode(frame.iloc[:rows])

    def timing_batch(self, frame: "pd.DataFrame", batch_size: int) -> Batch:
        """A fixed-shape batch for latency measurement (text is padded to max_length)."""
        return self.encode(frame.iloc[:batch_size])


def split_outputs(outputs: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(logits, embedding) from a model's forward output; logits double as embedding."""
    if isinstance(outputs, (tuple, list)):
        return outputs[0], outputs[1] if len(outputs) > 1 else outputs[0]
    return outputs, outputs


def torch_forward(model: "torch.nn.Module", batch: Batch) -> tuple["torch.Tensor", "torch.Tensor"]:
    import torch

    return split_outputs(model(**{k: torch.from_numpy(v) for k, v in batch.items()}))


class ImageClassification(Task):
    name = "image-classification"
    input_names = ("pixels",)

    def encode(self, frame: "pd.DataFrame") -> Batch:
        shape = self.spec.image_shape
        if shape is None:
            raise ValueError("image-classification needs data.image_shape (C, H, W)")
        features = frame[[f"f{i}" for i in range(shape[0] * shape[1] * shape[2])]]
        # copy=True: pandas 3 hands out read-only views, which torch.from_numpy warns about
        return {"pixels": features.to_numpy(dtype="float32", copy=True).reshape(len(frame), *shape)}

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"pixels": {0: "batch"}}


class TextClassification(Task):
    name = "text-classification"
    input_names = ("input_ids", "attention_mask")

    def encode(self, frame: "pd.DataFrame", padding: str = "longest") -> Batch:
        encoded = _tokenizer(self.spec.tokenizer)(
            list(frame["text"]), padding=padding, truncation=True,
            max_length=self.spec.max_length, return_tensors="np",
        )
        return {name: encoded[name].astype("int64") for name in self.input_names}

    def timing_batch(self, frame: "pd.DataFrame", batch_size: int) -> Batch:
        return self.encode(frame.iloc[:batch_size], padding="max_length")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch", 1: "sequence"} for name in self.input_names}


@functools.cache
def _tokenizer(source: str | None) -> Any:
    from transformers import AutoTokenizer

    from .zoo import resolve_tokenizer

    return AutoTokenizer.from_pretrained(resolve_tokenizer(source))


TASKS: dict[str, type[Task]] = {t.name: t for t in (ImageClassification, TextClassification)}
