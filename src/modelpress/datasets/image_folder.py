"""``source: images``: image files laid out as torchvision's ``ImageFolder`` reads them.

``DIR/<class>/<image file>``: class names are the folder names, sorted, unless ``labels:``
declares the model's order; files are found recursively in each class folder, with
ImageFolder's suffixes. Hidden folders (``.ipynb_checkpoints``) are not classes. The loaded frame
has ``image`` (the encoded file bytes), ``image_file`` (relative to DIR, for messages) and
``label``; decoding and preprocessing are ``modelpress.datasets.pixels``' (``modelpress.datasets.images``
decides which preprocessing applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from modelpress.core.files import resolve_path, sha256_tree
from modelpress.core.registry import register_dataset
from modelpress.datasets.base import DataSchema, Dataset
from modelpress.datasets.images import IMAGE_SUFFIXES
from modelpress.datasets.pixels import ImageTransform

if TYPE_CHECKING:
    import pandas as pd

#: how many class folders a message names
SHOWN = 5


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _class_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def class_names(root: Path) -> tuple[str, ...]:
    """The classes (folders holding at least one image file), sorted by name as ImageFolder does."""
    return tuple(f.name for f in _class_folders(root) if any(_is_image(p) for p in f.rglob("*")))


def folder_files(root: Path) -> dict[str, list[Path]]:
    """Class name → its image files, both sorted."""
    return {f.name: sorted(p for p in f.rglob("*") if _is_image(p)) for f in _class_folders(root)}


def layout_problem(root: Path) -> str | None:
    """Why ``root`` is not an ImageFolder tree with at least two classes (None when it is)."""
    if not root.is_dir():
        return f"{root} is a file; source images reads a folder laid out as DIR/<class>/<image file>"
    folders = _class_folders(root)
    classes = class_names(root)
    if not classes and any(_is_image(p) for p in root.iterdir()):
        return (f"{root} holds image files but no class folders; the layout is DIR/<class>/<image file> "
                "(is data.path one class folder, not the folder above it?)")
    if len(classes) < 2:
        found = f" ({', '.join(classes)})" if classes else ""
        return (f"{root} has {len(classes)} class folder(s) with image files{found}; the layout is "
                f"DIR/<class>/<image file> with at least 2 classes (files: {', '.join(IMAGE_SUFFIXES)})")
    empty = [f.name for f in folders if f.name not in classes]
    if empty:
        return f"{root}: class folder(s) {', '.join(empty[:SHOWN])} hold no image files ({', '.join(IMAGE_SUFFIXES)})"
    return None


@register_dataset("images")
class ImageFolderData(Dataset):
    """Image files laid out as torchvision's ImageFolder reads them: ``DIR/<class>/<image file>``;
    the class names are the folder names (sorted, unless ``labels`` gives the model's order)."""

    source: Literal["images"]
    path: Path
    labels: list[str] | None = Field(None, min_length=2, description="the model's class order "
                                     "(default: the folder names, sorted)")
    transform: ImageTransform | None = Field(None, description="a plain module's image preprocessing "
                                             "(a Hugging Face model brings its own image processor)")

    summary = "image files in class folders, DIR/<class>/<image file>, as torchvision's ImageFolder reads them"

    @field_validator("path")
    @classmethod
    def _image_folder(cls, value: Path, info: ValidationInfo) -> Path:
        path = resolve_path(value, info)
        problem = layout_problem(path)
        if problem:
            raise ValueError(problem)
        return path

    def describe(self) -> DataSchema:
        classes = tuple(self.labels) if self.labels else class_names(self.path)
        shape = self.transform.shape() if self.transform is not None else None  # None: the model's processor
        return DataSchema("image", classes, shape, str(self.path))

    def problems(self) -> list[str]:
        """Declared labels must name every class folder (a folder outside them could not be scored)."""
        if self.labels is None:
            return []
        unknown = [name for name in class_names(self.path) if name not in self.labels]
        if unknown:
            return [f"data.labels: class folder(s) {', '.join(unknown[:SHOWN])} of {self.path} are not among "
                    f"the declared labels ({', '.join(map(str, self.labels))})"]
        return []

    def fingerprint(self) -> str:
        return f"sha256:{sha256_tree(self.path)}"

    def load(self) -> pd.DataFrame:
        import pandas as pd

        rows = [(path.read_bytes(), path.relative_to(self.path).as_posix(), name)
                for name, files in folder_files(self.path).items() for path in files]
        return pd.DataFrame(rows, columns=["image", "image_file", "label"])

    @classmethod
    def repoint(cls, written: Mapping[str, Any], fresh: Path, profile: Mapping[str, Any]) -> dict[str, Any]:
        """A fresh ImageFolder tree: the same classes (labels) and preprocessing (transform)."""
        return {**written, "path": str(fresh)}
