"""Recipe → plan: the typed record the pipeline is built from (registries resolved, fingerprints taken)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelpress import __version__
from modelpress.core.handoffs import Ref, StagePlan
from modelpress.core.registry import get_stage
from modelpress.datasets.images import preprocessing
from modelpress.datasets.splits import label_key
from modelpress.gate.report import load_peers
from modelpress.pipelines.sizes import size_notes
from modelpress.recipe.plan import Plan
from modelpress.recipe.schema import RecipeBase
from modelpress.release.publish import Publication
from modelpress.tasks import TaskSpec


def recipe_hash(recipe: RecipeBase) -> str:
    canonical = json.dumps(recipe.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def task_spec(recipe: RecipeBase) -> TaskSpec:
    """The task with what the data and the model source say about it (labels, tokenizer, shapes)."""
    schema = recipe.data.describe()
    facts = recipe.model.facts()
    labels = facts.labels if facts.labels is not None else recipe.data.declared_labels()
    images = preprocessing(recipe.data, facts) if schema.kind == "image" else None
    return TaskSpec(recipe.task, options=recipe.task_config.model_dump(mode="json", exclude={"name"}),
                    labels=tuple(label_key(label) for label in labels) if labels is not None else None,
                    tokenizer=facts.tokenizer, image_shape=schema.image_shape, features=recipe.data.feature_names(),
                    image_preprocessing=images)


def promotion_tolerance(recipe: RecipeBase) -> float:
    """The gate's ``<primary>.max_champion_drop`` when set, else ``registry.tolerance``."""
    threshold = recipe.gate.get(recipe.task_class.primary_metric)
    if threshold is not None and threshold.max_champion_drop is not None:
        return threshold.max_champion_drop
    return recipe.registry.tolerance


def build_plan(recipe: RecipeBase, tracker: str, experiment: str,
               reference_profile: dict[str, Any] | None = None) -> Plan:
    data_fp, model_fp = recipe.data.fingerprint(), recipe.model.fingerprint()
    task = task_spec(recipe)
    return Plan(
        name=recipe.name,
        recipe=recipe.model_dump(mode="json", by_alias=True),
        source=Ref(name=recipe.model.source, config=recipe.model.model_dump(mode="json", by_alias=True)),
        task=task,
        data=Ref(name=recipe.data.source, config=recipe.data.model_dump(mode="json")),
        stages=[StagePlan(name=s.name, kind=get_stage(s.name).kind, position=i,
                          config=s.config.model_dump(mode="json", by_alias=True))
                for i, s in enumerate(recipe.stages, start=1)],
        builds=[Ref(name=b.name, config=b.config.model_dump(mode="json")) for b in recipe.builds],
        gate=dict(recipe.gate), statistics=recipe.statistics,
        registry=recipe.registry, promotion_tolerance=promotion_tolerance(recipe),
        resources=dict(recipe.resources), drift=recipe.drift, seed=recipe.data.seed,
        data_fingerprint=data_fp, model_fingerprint=model_fp, tracker=tracker, experiment=experiment,
        tags={"recipe": recipe.name, "recipe_hash": recipe_hash(recipe), "data_fingerprint": data_fp,
              "baseline": model_fp, "modelpress_version": __version__},
        peers=load_peers(recipe.peers), reference_profile=reference_profile,
        notes=[*recipe.model.facts().notes, *size_notes(recipe, task.build())],
    )


def publication_of(plan: Plan) -> Publication:
    """What the recipe's version is registered with: its builds, its tags and the recipe itself."""
    return Publication(title=plan.name, registry=plan.registry, task=plan.task, builds=plan.builds,
                       params=plan.recipe, recipe=plan.recipe, tags=plan.tags, peers=plan.peers, notes=plan.notes)
