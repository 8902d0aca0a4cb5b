"""Data sources are a registry (``modelpress.datasets``): every built-in kind registered under its
YAML name, an unknown name refused in one line, each kind pointing itself at fresh data for
``retrain``, a corpus profiled and drift-checked without labels, and a user's own kind installed
through the ``modelpress.datasets`` entry-point group validating, listing and loading like ours."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from modelpress.core.errors import DataValidationError, ModelpressError, RecipeError
from modelpress.datasets.base import dataset_config, dataset_kind, dataset_kinds
from modelpress.datasets.profile import data_profile
from modelpress.datasets.shipped import SHIPPED
from modelpress.datasets.splits import assign_splits
from modelpress.datasets.validation import check_against_profile
from modelpress.recipe.schema import validate_recipe

DRIFT = {"max_label_kl": 0.1, "max_mean_shift": 0.5, "max_out_of_range": 0.01}
WORDS = "the film was good and the plot was long but the music was great".split()
RECIPE = {"name": "t", "model": {"source": "package", "name": "small-cnn"}, "data": {"source": "digits"},
          "stages": [{"quantize": {}}], "registry": {"name": "t"}}


def corpus(path: Path, documents: int, words: int, seed: int) -> Path:
    import random

    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(words, words + 6)))
                              for _ in range(documents)) + "\n")
    return path


def test_every_built_in_data_source_is_registered_under_its_yaml_name() -> None:
    assert sorted(dataset_kinds()) == ["csv", "digits", "images", "mnist-5k", "parquet", "rotten-tomatoes", "text"]
    assert all(kind.summary for kind in dataset_kinds().values())


def test_an_unknown_data_source_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(RecipeError) as info:
        validate_recipe({**RECIPE, "data": {"source": "mnist"}})
    assert info.value.problems == ["data.source: unknown data source 'mnist'; known data sources: csv, digits, "
                                   "images, mnist-5k, parquet, rotten-tomatoes, text"]
    with pytest.raises(ModelpressError, match="^data.source: unknown data source 'mnist'; known data sources: csv"):
        dataset_kind("mnist")


def test_a_data_sources_own_fields_keep_their_paths() -> None:
    with pytest.raises(RecipeError) as info:
        validate_recipe({**RECIPE, "data": {"source": "digits", "path": "x.csv", "limit": 5}})
    assert sorted(info.value.problems) == ["data.limit: Input should be greater than or equal to 10",
                                           "data.path: unknown field (not allowed here)"]


def test_each_kind_points_itself_at_fresh_data(tmp_path: Path) -> None:
    """The block a version recorded (its model_dump), re-pointed, validates and loads the fresh file."""
    digits = SHIPPED["digits"].load().head(60)
    digits.to_csv(tmp_path / "digits.csv", index=False)
    digits.to_parquet(tmp_path / "digits.parquet")
    SHIPPED["rotten-tomatoes"].load().head(40).to_csv(tmp_path / "reviews.csv", index=False)
    corpus(tmp_path / "old.txt", 30, 5, 0)
    fresh_corpus = corpus(tmp_path / "fresh.txt", 20, 5, 1)
    profile = data_profile(digits)
    cases = [  # (recorded block, fresh data, the kind it becomes, rows loaded)
        ({"source": "text", "path": str(tmp_path / "old.txt")}, fresh_corpus, "text", 20),
        ({"source": "csv", "path": str(tmp_path / "digits.csv"), "label": "label", "features": "*"},
         tmp_path / "digits.parquet", "parquet", 60),
        ({"source": "digits", "seed": 3}, tmp_path / "digits.csv", "csv", 60),
        ({"source": "rotten-tomatoes"}, tmp_path / "reviews.csv", "csv", 40),
    ]
    for written, fresh, kind, rows in cases:
        recorded = dataset_config(written["source"], written).model_dump(mode="json")
        block = dataset_kind(recorded["source"]).repoint(recorded, fresh, profile)
        config = dataset_config(block["source"], block)
        assert (config.source, config.seed) == (kind, recorded["seed"]) and config.path == fresh, block
        assert len(config.load()) == rows
        assert config.describe().kind == dataset_config(written["source"], written).describe().kind
    # a shipped set's fresh data is a table laid out as it loads: its pixels, shape and classes
    shipped = dataset_config("digits", {"source": "digits"}).model_dump(mode="json")
    table = dataset_config("csv", dataset_kind("digits").repoint(shipped, tmp_path / "digits.csv", profile))
    assert table.feature_names() == tuple(f"f{i}" for i in range(64))
    assert table.describe().image_shape == (1, 8, 8) and table.describe().labels == tuple(range(10))


def test_a_corpus_is_profiled_without_labels_and_checked_for_drift(tmp_path: Path) -> None:
    def documents(path: Path) -> pd.DataFrame:
        text = dataset_config("text", {"source": "text", "path": str(path)})
        return assign_splits(text.load(), text.split, 0, None).drop(columns="split")

    reference = documents(corpus(tmp_path / "reference.txt", 200, 5, 0))
    profile = dataset_config("text", {"source": "text", "path": str(tmp_path / "reference.txt")}).profile(reference)
    assert profile["columns"] == ["text"] and profile["labels"] == [] and profile["kind"] == "text"
    report = check_against_profile(documents(corpus(tmp_path / "fresh.txt", 150, 5, 1)), profile, DRIFT)
    assert report["success"] and report["expectations"] == 4  # schema, missing, range, row mean: no label checks
    with pytest.raises(DataValidationError, match="drift: mean of row means"):
        check_against_profile(documents(corpus(tmp_path / "long.txt", 150, 40, 2)), profile, DRIFT)


PLUGIN = '''
from typing import Literal

from pydantic import Field

from modelpress.datasets.base import DataSchema, Dataset
from modelpress.core.registry import register_dataset


@register_dataset("first-digits")
class FirstDigits(Dataset):
    """The first ROWS of scikit-learn's digits: a user's own data source, installed as a plugin."""

    source: Literal["first-digits"]
    rows: int = Field(200, ge=20, description="how many digits")

    summary = "the first rows of scikit-learn's digits"

    def describe(self) -> DataSchema:
        return DataSchema("features", tuple(range(10)), (1, 8, 8), f"first {self.rows} digits")

    def fingerprint(self) -> str:
        return f"first-digits:{self.rows}"

    def load(self):
        from modelpress.datasets.shipped import SHIPPED

        return SHIPPED["digits"].load().head(self.rows)
'''


def test_a_users_data_source_installed_as_a_plugin_validates_lists_and_loads(tmp_path: Path,
                                                                              modelpress_cli: str) -> None:
    (tmp_path / "first_digits.py").write_text(PLUGIN)
    info = tmp_path / "first_digits-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: first-digits\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[modelpress.datasets]\nfirst-digits = first_digits\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ZENML_ANALYTICS_OPT_IN": "false"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([modelpress_cli, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300, check=False)

    def recipe(data: dict) -> str:
        import yaml

        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**RECIPE, "data": data}))
        return "recipe.yaml"

    listed = cli("datasets")
    assert listed.returncode == 0 and "first-digits: the first rows of scikit-learn's digits" in listed.stdout
    assert "    rows: int (default 200) — how many digits" in listed.stdout
    assert cli("validate", recipe({"source": "first-digits", "rows": 300})).returncode == 0
    refused = cli("validate", recipe({"source": "first-digits", "rows": 5, "colour": "red"}))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "data.rows: Input should be greater than or equal to 20" in refused.stderr
    assert "data.colour: unknown field (not allowed here)" in refused.stderr
    python = str(Path(modelpress_cli).with_name("python"))
    code = ("from modelpress.pipelines.plan import build_plan; from modelpress.recipe.schema import load_recipe; "
            "from modelpress.datasets.base import dataset_config; "
            "plan = build_plan(load_recipe('recipe.yaml'), tracker='t', experiment='t'); "
            "print(plan.data_fingerprint, len(dataset_config(plan.data.name, plan.data.config).load()))")
    recipe({"source": "first-digits", "rows": 300})
    loaded = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert loaded.stdout.split() == ["first-digits:300", "300"], loaded.stderr[-2000:]
