"""Image files in users' data: a CSV/Parquet column of images, and which preprocessing applies.

* ``data: {source: parquet|csv, path: FILE, image: COLUMN, label: ...}`` takes a column of image
  bytes, of paths (relative paths resolve against the data file's folder), or of Hugging Face
  ``datasets`` Image records (``{bytes, path}``). An ImageFolder tree (``source: images``) is
  ``modelpress.datasets.image_folder``.

Either way the loaded frame has ``image`` (the encoded file bytes), ``image_file`` (where each
image came from, for messages) and ``label``. Which preprocessing applies is decided here too,
from the data spec and the model source's facts (:func:`preprocessing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.core.files import sha256_file
from modelpress.datasets.pixels import from_folder, from_transform

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.core.facts import SourceFacts
    from modelpress.datasets.pixels import ImagePreprocessing

#: the suffixes torchvision's ImageFolder takes (IMG_EXTENSIONS), compared case-insensitively
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


# --- a column of images in a table ----------------------------------------------------------

def column_images(values: pd.Series, data_file: Path) -> pd.DataFrame:
    """``image``/``image_file`` from a column of bytes, paths or ``{bytes, path}`` records."""
    import pandas as pd

    rows = []
    for row, value in enumerate(values):
        data, path = bytes_or_path(value)
        if data is not None:
            rows.append((data, f"{data_file.name} row {row}"))
        elif path is not None:
            file = _resolve(path, data_file)
            if not file.is_file():
                raise ModelpressError(f"{data_file}: row {row}: no such image file {path!r}")
            rows.append((file.read_bytes(), path))
        else:
            raise ModelpressError(f"{data_file}: row {row} holds no image (bytes or a path), "
                                  f"got {type(value).__name__}")
    return pd.DataFrame(rows, columns=["image", "image_file"], index=values.index)


def bytes_or_path(value: Any) -> tuple[bytes | None, str | None]:
    """(the image's bytes, None) or (None, its path) from a cell of an image column; (None, None)."""
    if isinstance(value, dict):  # a Hugging Face datasets Image record, as Parquet stores it
        return bytes_or_path(value.get("bytes") or value.get("path"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, str) and value.strip():
        return None, value
    return None, None


def _resolve(path: str, data_file: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else data_file.parent / candidate


def path_problems(values: pd.Series, data_file: Path) -> list[str]:
    """Every row of an image column holds bytes or names an existing file (checked at validate)."""
    missing = []
    for row, value in enumerate(values):
        data, path = bytes_or_path(value)
        if data is None and (path is None or not _resolve(path, data_file).is_file()):
            missing.append((row, path))
    if not missing:
        return []
    row, path = missing[0]
    first = f"no such image file {path!r}" if path else "no image (bytes or a path)"
    return [f"data.image: {len(missing)} of {len(values)} rows of {data_file.name} hold no readable image; "
            f"the first, row {row}: {first} (relative paths resolve against {data_file.parent})"]


# --- the spec-level facts: fingerprint, preprocessing -----------------------------------------

def column_fingerprint(data_file: Path, values: pd.Series) -> str:
    """The table and every image file its column names: a changed image must not reuse a cached,
    stale dataset."""
    import hashlib

    digest = hashlib.sha256(sha256_file(data_file).encode())
    for value in values:
        _, path = bytes_or_path(value)
        if path is not None and _resolve(path, data_file).is_file():
            digest.update(sha256_file(_resolve(path, data_file)).encode())
    return f"sha256:{digest.hexdigest()}"


def preprocessing_problems(spec: Any, facts: SourceFacts) -> list[str]:
    """Exactly one preprocessing: the model's own image processor, or ``data.transform``."""
    transform = getattr(spec, "transform", None)
    if facts.image_processor is not None and transform is not None:
        return [f"data.transform: the model brings its own preprocessing ({facts.image_processor}/"
                "preprocessor_config.json); remove data.transform"]
    if facts.image_processor is None and transform is None:
        whose = ("the model's folder has no preprocessor_config.json (save its image processor there: "
                 "processor.save_pretrained(folder)), and" if facts.hf_config is not None else "a plain module's")
        return [f"data.transform: {whose} image preprocessing must be declared: data.transform "
                "{resize, crop, mean, std, mode} as the model was trained"]
    channels = (facts.hf_config or {}).get("num_channels")
    if transform is not None and channels is not None and transform.shape()[0] != channels:
        return [f"data.transform.mode: {transform.mode} gives {transform.shape()[0]} channel(s), but the model's "
                f"config.json has num_channels {channels}"]
    return []


def preprocessing(spec: Any, facts: SourceFacts) -> ImagePreprocessing:
    """The recipe's ``data.transform``, else the model's own image processor."""

    transform = getattr(spec, "transform", None)
    if transform is not None:
        return from_transform(transform)
    if facts.image_processor is None:  # validate refuses this; a plan built without it must too
        raise ModelpressError(preprocessing_problems(spec, facts)[0])
    return from_folder(facts.image_processor, dict(facts.hf_config or {}))
