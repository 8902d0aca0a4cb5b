"""``modelpress init MODEL DATA``: a starter recipe for a user's own model and data file or folder.

The model's kind is recognised by the registered sources (each says whether a path looks like
its kind of model), the task comes from the model (a Hugging Face config) or the data (a text
column → text classification, numeric columns → tabular, a folder of class folders of images →
image classification), the label order from the model's ``id2label``, ``--labels`` or the data
(for an image folder: the class folders' names, sorted as torchvision's ImageFolder sorts them).
A model without its own image processor gets a ``data.transform`` read from the first image
(its size and mode), to be checked against how the model was trained. The recipe is validated
before it is written, so what ``init`` writes is what ``modelpress run`` accepts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from modelpress.core.errors import ModelpressError, RecipeError
from modelpress.core.registry import SOURCES, TASKS
from modelpress.datasets.image_folder import class_names, folder_files, layout_problem
from modelpress.datasets.images import IMAGE_SUFFIXES, bytes_or_path, column_images
from modelpress.datasets.pixels import decode
from modelpress.datasets.splits import label_key, sorted_labels
from modelpress.datasets.table import table_source
from modelpress.recipe.schema import validate_recipe
from modelpress.tasks import get_task

LABEL_NAMES = ("label", "labels", "target", "class", "y", "category", "diagnosis", "sentiment")
TEXT_NAMES = ("text", "review", "sentence", "comment", "content", "body")
#: a stage and gate that suit any classifier: int8 weights in ONNX Runtime, at most 1 point lost
DEFAULT_STAGES: list[Any] = [{"quantize": {"bits": 8, "granularity": "per-channel"}}]
DEFAULT_GATE = {"accuracy": {"max_drop": 0.01}, "agreement": {"min": 0.95}}


@dataclass
class Choices:
    """What the user told ``init`` (everything optional except the two paths)."""

    model: Path
    data: Path
    out: Path
    label: str | None = None
    text: str | None = None
    task: str | None = None
    model_class: str | None = None
    trust_pickle: bool = False
    name: str | None = None
    labels: list[str] | None = None  # the model's class order, when the model does not name it


def starter_recipe(choices: Choices) -> dict[str, Any]:
    """The recipe as a dict (validated by :func:`write_starter`)."""
    import pandas as pd


    if choices.data.is_dir():
        return _image_recipe(choices)
    frame = _read(choices.data, pd)
    label = choices.label or _guess(frame.columns, LABEL_NAMES) or str(frame.columns[-1])
    if label not in frame.columns:
        raise ModelpressError(f"--label: {choices.data} has no column {label!r}; columns: {list(frame.columns)}")
    model = _model_block(choices)
    facts = _facts(model, choices.model)
    task = choices.task or facts.task or _data_task(frame, label, choices.text)
    if choices.task or facts.task is None:  # a model that names its task keeps it
        model["task"] = task
    data: dict[str, Any] = {"source": table_source(choices.data), "path": _relative(choices.data, choices.out.parent),
                            "label": label}
    kind = get_task(task).data_kind
    if kind == "text":
        data["text"] = choices.text or _text_column(frame, label)
    elif kind == "image":
        data["image"] = _image_column(frame, label) or _no_images(choices.data, task, frame)
        if facts.image_processor is None:  # a plain module: its preprocessing must be declared
            first = frame[data["image"]].dropna().iloc[:1]
            data["transform"] = _transform_of(column_images(first, choices.data)["image"].iloc[0])
    else:
        data["features"] = "*"
    data["labels"] = list(facts.labels) if facts.labels else _declared(choices.labels, frame[label]) \
        if choices.labels else _labels(frame[label])
    return _recipe(choices, model, data)


def _recipe(choices: Choices, model: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    name = choices.name or _name(choices.model)
    return {"name": name, "description": f"starter recipe for {choices.model.name} (modelpress init)",
            "model": model, "data": data, "stages": DEFAULT_STAGES, "gate": DEFAULT_GATE,
            "export": ["onnx"], "registry": {"name": name, "promote_to": "champion"}}


def _image_recipe(choices: Choices) -> dict[str, Any]:
    """An ImageFolder tree (DATA/<class>/<image>): task image classification, the class order
    from the model (id2label), ``--labels`` or the folder names."""

    problem = layout_problem(choices.data)
    if problem:
        raise ModelpressError(problem)
    for flag, value in (("--label", choices.label), ("--text", choices.text)):
        if value is not None:
            raise ModelpressError(f"{flag}: {choices.data} is a folder of images; its class folders are the labels")
    model = _model_block(choices)
    facts = _facts(model, choices.model)
    task = choices.task or facts.task or next(n for n, t in sorted(TASKS.all().items()) if t.init_for == "image")
    if choices.task or facts.task is None:
        model["task"] = task
    classes = class_names(choices.data)
    data: dict[str, Any] = {"source": "images", "path": _relative(choices.data, choices.out.parent)}
    if facts.labels:
        data["labels"] = list(facts.labels)
    elif choices.labels:
        unknown = [c for c in classes if c not in choices.labels]
        if unknown:
            raise ModelpressError(f"--labels: the class folder(s) {', '.join(unknown)} are not among them")
        data["labels"] = list(choices.labels)
    else:
        data["labels"] = list(classes)
    if facts.image_processor is None:  # a plain module: its preprocessing must be declared
        first = next(iter(folder_files(choices.data).values()))[0]
        data["transform"] = _transform_of(first.read_bytes())
    return _recipe(choices, model, data)


def _image_column(frame: Any, label: str) -> str | None:
    """The first column whose first value is an image: bytes, or a path with an image suffix."""

    for column in frame.columns:
        values = frame[column].dropna()
        if column == label or values.empty:
            continue
        data, path = bytes_or_path(values.iloc[0])
        if data is not None or (path is not None and Path(path).suffix.lower() in IMAGE_SUFFIXES):
            return str(column)
    return None


def _no_images(data: Path, task: str, frame: Any) -> NoReturn:
    raise ModelpressError(f"{data}: a {task} model needs a column of images (bytes, or image file paths); "
                          f"none of {list(frame.columns)} holds them")


def _transform_of(image: bytes) -> dict[str, Any]:
    """``data.transform`` for images like ``image``: its size and (RGB or grayscale) mode."""

    decoded = decode(image)
    mode = "L" if decoded.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
    return {"resize": [decoded.height, decoded.width], "mode": mode}


def write_starter(choices: Choices) -> Path:
    """Build, validate and write the starter recipe; RecipeError lists what still needs a choice."""
    import yaml

    recipe = starter_recipe(choices)
    validate_recipe(recipe, source=str(choices.out), base=choices.out.parent.resolve())
    choices.out.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `modelpress init`; check the stage and the gate, then\n"
              f"#   modelpress validate {choices.out.name} && modelpress run {choices.out.name}\n")
    if "transform" in recipe["data"]:
        header += ("# data.transform was read from the first image (size, mode): make it the preprocessing\n"
                   "# the model was trained with (resize, crop, rescale, mean, std).\n")
    choices.out.write_text(header + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    return choices.out


def _read(path: Path, pd: Any) -> Any:
    try:
        return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 -- pandas raises many types for unreadable files
        raise ModelpressError(f"{path}: cannot read as a data table: {str(exc).splitlines()[0]}") from None


def _guess(columns: Any, names: tuple[str, ...]) -> str | None:
    lowered = {str(c).lower(): str(c) for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _model_block(choices: Choices) -> dict[str, Any]:
    """The ``model:`` block from the first registered source that recognises the path."""

    path = choices.model
    if not path.exists():
        raise ModelpressError(f"{path}: no such file or folder")
    for source in sorted(SOURCES.all().values(), key=lambda s: s.init_order):
        if source.recognizes(path):
            block = source.starter(path, choices.model_class)
            break
    else:
        if not choices.trust_pickle:
            raise ModelpressError(f"{path}: not a Hugging Face folder, TorchScript, state dict, safetensors or "
                                  "ONNX file; if it is a whole pickled module you trust, pass --trust-pickle")
        block = {"source": "file", "path": str(path), "trust_pickle": True}
    block["path"] = _relative(path, choices.out.parent)
    return block


def _facts(model: dict[str, Any], path: Path) -> Any:
    """What the model says about itself (task, class names), read from the model's own files."""

    return SOURCES.get(model["source"]).model_validate({**model, "path": str(path.resolve())}).facts()


def _data_task(frame: Any, label: str, text: str | None) -> str:
    """The task registered for this data's kind (a text column → text, else features)."""

    inputs = frame.drop(columns=[label])
    if text is None and _image_column(frame, label) is not None:
        kind = "image"
    else:
        kind = "text" if text is not None or any(_is_text(inputs[c]) for c in inputs.columns) else "features"
    return next(name for name, task in sorted(TASKS.all().items()) if task.init_for == kind)


def _is_text(column: Any) -> bool:
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(column)


def _text_column(frame: Any, label: str) -> str:
    candidates = [str(c) for c in frame.columns if c != label and _is_text(frame[c])]
    guessed = _guess(candidates, TEXT_NAMES)
    if guessed or len(candidates) == 1:
        return guessed or candidates[0]
    raise ModelpressError(f"--text: cannot tell the text column among {candidates}; pass --text COLUMN")


def _declared(labels: list[str], column: Any) -> list[Any]:
    """``--labels`` in the data's own types (a numeric label column keeps numbers)."""

    by_text = {label_key(v): (v.item() if hasattr(v, "item") else v) for v in column.dropna().unique()}
    missing = [name for name in labels if name not in by_text]
    if missing:
        raise ModelpressError(f"--labels: {', '.join(missing)} not found in the label column {column.name!r}")
    return [by_text[name] for name in labels]


def _labels(column: Any) -> list[Any]:
    """The data's labels in their natural order (the model names none of its own)."""

    return [v.item() if hasattr(v, "item") else v for v in sorted_labels(column.dropna().unique().tolist())]


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


def _name(path: Path) -> str:
    stem = re.sub(r"[^a-z0-9_.-]+", "-", path.stem.lower()).strip("-._") or "model"
    return stem if stem[0].isalnum() else f"m{stem}"


__all__ = ["Choices", "RecipeError", "starter_recipe", "write_starter"]
