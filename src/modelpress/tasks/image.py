"""Image classification: image files preprocessed by the model's image processor (or the
recipe's ``data.transform``), or C×H×W pixel columns (``data.image_shape``, the shipped small CNN)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from modelpress.core.registry import register_task
from modelpress.datasets.images import preprocessing_problems
from modelpress.datasets.pixels import pixel_values, processor
from modelpress.tasks.base import Batch, DataKind, TaskConfig
from modelpress.tasks.classification import ClassificationTask

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.core.facts import SourceFacts
    from modelpress.datasets.base import DataSchema


class ImageClassificationConfig(TaskConfig):
    name: Literal["image-classification"] = "image-classification"


@register_task("image-classification")
class ImageClassification(ClassificationTask):
    name = "image-classification"
    Config = ImageClassificationConfig
    summary = ("class of an image: image files (an ImageFolder tree or an image column) preprocessed by the "
               "model's image processor or data.transform, or C×H×W pixel columns (data.image_shape)")
    data_kind: ClassVar[DataKind] = "image"
    init_for: ClassVar[DataKind | None] = "image"
    input_names = ("pixel_values",)
    hf_architectures = ("ForImageClassification",)
    hf_auto_class = "AutoModelForImageClassification"
    capabilities = frozenset({"students-by-width"})

    @classmethod
    def takes(cls, kind: str) -> bool:
        return kind in ("image", "features")  # features: pixel columns reshaped by data.image_shape

    @classmethod
    def data_problems(cls, data: Any, schema: DataSchema, facts: SourceFacts) -> list[str]:
        if schema.kind == "image":

            return preprocessing_problems(data, facts)
        if schema.image_shape is None:
            return ["data.image_shape: an image-classification model needs the images' shape "
                    "(C, H, W) to reshape the feature columns; give data.image_shape, or use "
                    "task tabular-classification for a vector of features"]
        return []

    def encode(self, frame: pd.DataFrame) -> Batch:
        if "image" in frame.columns:  # encoded image files

            if self.spec.image_preprocessing is None:
                raise ValueError("image files need the model's image preprocessing (TaskSpec.image_preprocessing)")
            return {"pixel_values": pixel_values(frame["image"], self.spec.image_preprocessing)}
        shape = self.spec.image_shape
        if shape is None:
            raise ValueError("image-classification needs data.image_shape (C, H, W)")
        features = frame[[f"f{i}" for i in range(shape[0] * shape[1] * shape[2])]]
        # copy=True: pandas 3 hands out read-only views, which torch.from_numpy warns about
        return {"pixel_values": features.to_numpy(dtype="float32", copy=True).reshape(len(frame), *shape)}

    def preprocessor(self) -> Any:
        """The image processor, saved as ``preprocessor_config.json`` beside exported models."""
        if self.spec.image_preprocessing is None:
            return None

        return processor(self.spec.image_preprocessing)
