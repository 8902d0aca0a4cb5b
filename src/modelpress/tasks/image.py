"""Image classification: feature columns reshaped to C×H×W pixels (the shipped small CNN)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..registry import register_task
from .base import Batch, DataKind, TaskConfig
from .classification import ClassificationTask

if TYPE_CHECKING:
    import pandas as pd


class ImageClassificationConfig(TaskConfig):
    name: Literal["image-classification"] = "image-classification"


@register_task("image-classification")
class ImageClassification(ClassificationTask):
    name = "image-classification"
    Config = ImageClassificationConfig
    summary = "class of an image given as C×H×W pixel columns (data.image_shape)"
    data_kind: ClassVar[DataKind] = "features"
    input_names = ("pixel_values",)
    hf_architectures = ("ForImageClassification",)
    hf_auto_class = "AutoModelForImageClassification"
    capabilities = frozenset({"students-by-width"})

    @classmethod
    def data_problems(cls, data: Any, image_shape: tuple[int, int, int] | None) -> list[str]:
        if image_shape is None:
            return ["data.image_shape: an image-classification model needs the images' shape "
                    "(C, H, W) to reshape the feature columns; give data.image_shape, or use "
                    "task tabular-classification for a vector of features"]
        return []

    def encode(self, frame: pd.DataFrame) -> Batch:
        shape = self.spec.image_shape
        if shape is None:
            raise ValueError("image-classification needs data.image_shape (C, H, W)")
        features = frame[[f"f{i}" for i in range(shape[0] * shape[1] * shape[2])]]
        # copy=True: pandas 3 hands out read-only views, which torch.from_numpy warns about
        return {"pixel_values": features.to_numpy(dtype="float32", copy=True).reshape(len(frame), *shape)}
