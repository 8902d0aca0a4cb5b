"""Recipe → plan → pipeline wiring that needs no pipeline run."""

from __future__ import annotations

from modelpress.recipe.schema import validate_recipe

RAW = {
    "name": "t",
    "model": {"source": "package", "name": "small-cnn"},
    "data": {"source": "digits"},
    "stages": [{"prune": {"sparsity": 0.3}}, {"quantize": {}}],
    "registry": {"name": "t"},
    "resources": {"prune": {"gpu": 1, "memory": "8GB", "cpu": 4}, "load_model": {"step_operator": "gpu-runner"}},
}


def test_plan_orders_stages_by_kind_and_fingerprints_inputs() -> None:
    from modelpress.pipelines.plan import build_plan

    plan = build_plan(validate_recipe(RAW), tracker="tracker", experiment="t")
    assert [(s.name, s.kind, s.position) for s in plan.stages] == [("prune", "module", 1), ("quantize", "graph", 2)]
    assert plan.data_fingerprint.startswith("digits:scikit-learn==")
    assert plan.task.model_dump() == {"name": "image-classification", "options": {}, "image_shape": (1, 8, 8),
                                      "tokenizer": None, "labels": tuple(str(i) for i in range(10)), "features": None,
                                      "image_preprocessing": None}
    assert [b.name for b in plan.builds] == ["onnx"]
    assert len(plan.tags["recipe_hash"]) == 16
    # the plan is what ZenML caches on: it must survive a JSON round trip unchanged
    assert type(plan).model_validate_json(plan.model_dump_json()) == plan


def test_recipe_resources_become_zenml_resource_settings() -> None:
    from modelpress.pipelines.compress import _configured
    from modelpress.pipelines.plan import build_plan
    from modelpress.pipelines.steps import load_model
    from modelpress.zenml import finetune, prune

    plan = build_plan(validate_recipe(RAW), tracker="tracker", experiment="t")
    stage = _configured(prune, plan, "prune")
    resources = stage.configuration.settings["resources"]
    assert (resources.gpu_count, resources.cpu_count, resources.memory) == (1, 4, "8GB")
    assert _configured(load_model, plan, "load_model").configuration.step_operator == "gpu-runner"
    assert _configured(finetune, plan, "finetune") is finetune
