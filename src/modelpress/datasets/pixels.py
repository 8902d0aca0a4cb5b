"""Image files → the model's ``pixel_values``: decoding (Pillow) and preprocessing (transformers).

There is one preprocessing implementation: a transformers image processor. A Hugging Face
image model brings its own (``preprocessor_config.json`` beside its weights); for a plain
module the recipe's ``data.transform`` is expressed as the config of transformers'
``BitImageProcessor``, which is torchvision's ImageNet pipeline (resize the shortest edge or to
H×W, center crop, rescale, normalize). Either way the processor's config is what the plan
carries (:class:`ImagePreprocessing`, JSON) and what ships beside the builds
(``preprocessor_config.json``), so training, evaluation, serving and retraining apply the same.

Images travel through the pipeline as their encoded file bytes (the ``image`` column of the
data frame): the ZenML artifact is self-contained and no larger than the files.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.strict_fields import StrictModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: the file a transformers image processor is saved as (``save_pretrained``), and the key the
#: ONNX builds carry it under in the graph's metadata
PREPROCESSOR_FILE = "preprocessor_config.json"
#: PIL modes the pixels are converted to before preprocessing: 3 channels or 1 (grayscale)
Mode = Literal["RGB", "L"]
CHANNELS: dict[str, int] = {"RGB": 3, "L": 1}
#: PIL's resampling filters by name (the values are PIL.Image.Resampling's, which
#: transformers' processors take as ``resample``)
RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}

Pixels = Annotated[int, Field(gt=0, le=16384)]
Size = Pixels | tuple[Pixels, Pixels]


class ImageTransform(StrictModel):
    """A plain module's preprocessing, as torchvision's ``Resize → CenterCrop → ToTensor →
    Normalize`` writes it (run by transformers' ``BitImageProcessor``)."""

    resize: Size = Field(description="an int resizes the shortest edge to it (aspect kept); [H, W] resizes "
                         "to exactly that")
    crop: Size | None = Field(None, description="center crop to this size (an int: square), after resizing")
    rescale: float = Field(1 / 255, gt=0, description="pixel values are multiplied by this (1/255: 0..1)")
    mean: list[float] | None = Field(None, min_length=1, max_length=3, description="per channel, after rescaling")
    std: list[float] | None = Field(None, min_length=1, max_length=3, description="per channel, after rescaling")
    mode: Mode = Field("RGB", description="RGB (3 channels) or L (grayscale, 1 channel): what the model takes")
    resample: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = "bilinear"

    @model_validator(mode="after")
    def _consistent(self) -> ImageTransform:
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std (normalization), or neither")
        channels = CHANNELS[self.mode]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != channels:
                raise ValueError(f"{name} has {len(values)} value(s) but mode {self.mode} has {channels} channel(s)")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("std values must be positive")
        if self.crop is None and isinstance(self.resize, int):
            raise ValueError(f"resize: {self.resize} keeps each image's aspect ratio, so images of different "
                             "shapes would give tensors of different sizes; add crop, or resize to [H, W]")
        return self

    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the tensors this transform gives."""
        height, width = _pair(self.crop if self.crop is not None else self.resize)
        return CHANNELS[self.mode], height, width

    def processor_kwargs(self) -> dict[str, Any]:
        """The arguments of transformers' ``BitImageProcessor`` that do exactly this."""
        if isinstance(self.resize, int):
            size: dict[str, int] = {"shortest_edge": self.resize}
        else:
            size = {"height": self.resize[0], "width": self.resize[1]}
        kwargs: dict[str, Any] = {"do_resize": True, "size": size, "resample": RESAMPLE[self.resample],
                                  "do_center_crop": self.crop is not None, "do_rescale": True,
                                  "rescale_factor": self.rescale, "do_normalize": self.mean is not None,
                                  "do_convert_rgb": False}  # the mode conversion happens on decoding
        if self.crop is not None:
            height, width = _pair(self.crop)
            kwargs["crop_size"] = {"height": height, "width": width}
        if self.mean is not None:
            kwargs.update(image_mean=list(self.mean), image_std=list(self.std or []))
        return kwargs


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


class ImagePreprocessing(BaseModel):
    """What turns an image file into the model's ``pixel_values``: the PIL mode the decoded
    image is converted to, then a transformers image processor (its ``preprocessor_config.json``
    as JSON: ``image_processor_type`` names the class)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    processor: dict[str, JsonValue]
    mode: Mode = "RGB"


def from_transform(transform: ImageTransform) -> ImagePreprocessing:
    from transformers import BitImageProcessor

    return ImagePreprocessing(processor=_as_json(BitImageProcessor(**transform.processor_kwargs())),
                              mode=transform.mode)


def from_folder(folder: str, hf_config: dict[str, Any] | None) -> ImagePreprocessing:
    """A Hugging Face model's own image processor (its folder's ``preprocessor_config.json``)."""
    from transformers import AutoImageProcessor

    try:
        # use_fast=False: the fast processors need torchvision, which this stack cannot install
        processor = AutoImageProcessor.from_pretrained(folder, use_fast=False, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelpressError(f"model.path: {folder}/{PREPROCESSOR_FILE}: not a transformers image "
                              f"processor ({str(exc).splitlines()[0]})") from None
    channels = int((hf_config or {}).get("num_channels", 3))
    return ImagePreprocessing(processor=_as_json(processor), mode="L" if channels == 1 else "RGB")


def _as_json(processor: Any) -> dict[str, JsonValue]:
    return dict(json.loads(processor.to_json_string()))


def processor(preprocessing: ImagePreprocessing) -> Any:
    """The transformers image processor ``preprocessing`` describes (built once per config)."""
    return _processor(json.dumps(preprocessing.processor, sort_keys=True))


@functools.cache
def _processor(config: str) -> Any:
    import transformers

    values = json.loads(config)
    # The config names its class; transformers exports each processor class under that name.
    return getattr(transformers, values["image_processor_type"]).from_dict(values)


def decode(data: bytes, mode: str | None = None) -> Any:
    """The image in ``data`` (any format Pillow reads), fully decoded, optionally converted."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()  # Image.open is lazy: a truncated file only fails here
    return image.convert(mode) if mode is not None and image.mode != mode else image


def pixel_values(images: Iterable[bytes], preprocessing: ImagePreprocessing) -> np.ndarray:
    """float32 N×C×H×W, as the model's image processor makes them from the encoded files."""
    import numpy as np

    arrays = []
    for data in images:
        array = np.asarray(decode(data, preprocessing.mode))
        arrays.append(array[..., None] if array.ndim == 2 else array)  # grayscale: H×W → H×W×1
    # channels_last said explicitly: a 3-pixel-high image would otherwise look channels-first
    out = processor(preprocessing)(images=arrays, return_tensors="np", input_data_format="channels_last")
    return np.ascontiguousarray(out["pixel_values"], dtype=np.float32)


def image_facts(images: Iterable[Any]) -> pd.DataFrame:
    """Per file: width, height, mode, and the decoding error (None when it decodes)."""
    import pandas as pd

    rows: list[tuple[Any, Any, Any, str | None]] = []
    for data in images:
        try:
            image = decode(bytes(data))
            rows.append((image.width, image.height, image.mode, None))
        except Exception as exc:  # noqa: BLE001 -- Pillow raises many types for a bad file
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            rows.append((None, None, None, f"{type(exc).__name__}: {detail}"[:200]))
    return pd.DataFrame(rows, columns=["width", "height", "mode", "decode_error"]).astype(
        {"width": "Int64", "height": "Int64"})


def mean_intensity(images: Iterable[bytes]) -> list[float]:
    """Each image's mean grayscale value in 0..1 (the per-row statistic drift checks compare)."""
    import numpy as np

    return [float(np.asarray(decode(data, "L"), dtype=np.float32).mean() / 255.0) for data in images]
