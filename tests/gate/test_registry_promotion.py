"""Gate → registry → @champion on a real MLflow sqlite registry with real (tiny) ONNX models.

Each candidate goes through the same functions the pipeline's publish and promote steps
call: evaluate in ONNX Runtime, gate, log + register, promote with check-then-set.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pytest

from modelpress.builds import BuildContext
from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import ChampionReport, DataReport
from modelpress.deploy.onnx_export import export_onnx
from modelpress.gate.rules import run_gate
from modelpress.pipelines.plan import build_plan, publication_of
from modelpress.recipe.schema import validate_recipe
from modelpress.release.promotion import promote_version, rollback
from modelpress.release.publish import log_and_register, promote_if_better
from modelpress.settings.blocks import Threshold
from modelpress.tracking.model_registry import alias_version, previous_tag, promote

from .conftest import linear_model, registered_accuracy

TAGS = {"recipe_hash": "abc", "data_fingerprint": "digits:test", "baseline": "linear-40"}


def plan_for(name: str) -> Any:
    recipe = validate_recipe({"name": "gate-test", "model": {"source": "package", "name": "small-cnn"},
                              "data": {"source": "digits"}, "stages": ["quantize"], "registry": {"name": name}})
    plan = build_plan(recipe, tracker="unused", experiment="gate-tests")
    return publication_of(plan.model_copy(update={"tags": TAGS}))


@pytest.fixture(scope="module")
def baseline(digits: Any) -> Any:
    frame, task = digits
    return export_onnx(linear_model(frame, task, steps=40), task, frame)


def publish_candidate(name: str, digits: Any, baseline: Any, steps: int,
                      max_drop: float = 0.5) -> tuple[dict, dict, dict]:
    """Train → export → evaluate vs baseline → gate → log/register; (registration, verdict, evaluation)."""
    frame, task = digits
    model = linear_model(frame, task, steps)
    candidate = export_onnx(model, task, frame)
    evaluation = task.evaluate(baseline, candidate, frame)
    verdict = run_gate({"accuracy": Threshold(max_drop=max_drop)}, evaluation)
    champion = ChampionReport()  # measured again by the promotion's check-then-set when one exists
    with mlflow.start_run():
        context = BuildContext(name=name, task=task, eval_frame=frame, model=model, onnx=candidate)
        registration = log_and_register(plan_for(name), context, evaluation, verdict, [],
                                        DataReport(success=True, expectations=1, rows=len(frame)), champion, None)
        outcome = promote_if_better(registration, verdict, evaluation, champion, candidate, frame, task,
                                    "champion", 0.0)
    return registration, verdict, outcome


def version_tags(name: str, version: str) -> dict[str, str]:
    return dict(mlflow.MlflowClient().get_model_version(name, version).tags)


def test_pass_moves_champion_and_fail_does_not_with_reason_in_tags(registry: str, model_name: str, digits: Any,
                                                                   baseline: Any) -> None:
    passed, verdict, outcome = publish_candidate(model_name, digits, baseline, steps=40)
    assert verdict.passed and outcome.promoted
    assert str(alias_version(model_name, "champion").version) == passed.version
    assert version_tags(model_name, passed.version)["gate"] == "passed"
    run_tags = mlflow.MlflowClient().get_run(passed.run_id).data.tags  # where the speed figures came from
    assert run_tags["modelpress.speed_runtime.candidate"] == "ONNX Runtime, CPUExecutionProvider"

    failed, verdict, outcome = publish_candidate(model_name, digits, baseline, steps=2, max_drop=0.0)
    assert not verdict.passed and not outcome.promoted
    assert str(alias_version(model_name, "champion").version) == passed.version  # unmoved
    tags = version_tags(model_name, failed.version)
    assert tags["gate"] == "failed" and "accuracy.max_drop" in tags["gate_reason"]
    assert tags["promotion"].startswith("not promoted: gate failed")
    assert str(alias_version(model_name, "challenger").version) == passed.version  # a failure gets no alias


def test_worse_than_champion_beyond_tolerance_is_not_promoted(registry: str, model_name: str, digits: Any,
                                                              baseline: Any) -> None:
    good, _, _ = publish_candidate(model_name, digits, baseline, steps=40)
    worse, verdict, outcome = publish_candidate(model_name, digits, baseline, steps=3)  # passes the loose gate
    assert verdict.passed and not outcome.promoted
    # the paired test on the champion's rows, not two point estimates
    assert "tolerance 0.0 of @champion" in outcome.reason and "accuracy.max_champion_drop" in outcome.reason
    assert "FAILED" in outcome.reason and "[" in outcome.reason  # its interval is shown
    assert str(alias_version(model_name, "champion").version) == good.version
    assert version_tags(model_name, worse.version)["promotion"].startswith("not promoted")


def register_fast(name: str, digits: Any, steps: int) -> tuple[str, float]:
    """Register a trained model's ONNX with the tags publish writes (no PyTorch copy: faster)."""
    frame, task = digits
    proto = export_onnx(linear_model(frame, task, steps), task, frame)
    with mlflow.start_run():
        info = mlflow.onnx.log_model(proto, name="onnx_model", pip_requirements=["onnx"])
    version = mlflow.register_model(info.model_uri, name, tags={**TAGS, "gate": "passed"}).version
    accuracy = registered_accuracy(f"models:/{name}/{version}", frame, task)
    mlflow.MlflowClient().set_model_version_tag(name, version, "accuracy", f"{accuracy:.6f}")
    return str(version), accuracy


def scorer(digits: Any) -> Any:
    frame, task = digits
    return lambda v: registered_accuracy(f"models:/{v.name}/{v.version}", frame, task)


def test_rollback_restores_the_previous_champion_and_walks_back(registry: str, model_name: str, digits: Any) -> None:
    (first, a1), (second, a2), (third, a3) = (register_fast(model_name, digits, s) for s in (10, 25, 60))
    for version, accuracy in ((first, a1), (second, a2), (third, a3)):
        assert promote(model_name, version, "champion", accuracy, scorer(digits), tolerance=1.0).promoted
    assert version_tags(model_name, third)[previous_tag("champion")] == second

    assert rollback(model_name).version == second
    assert str(alias_version(model_name, "champion").version) == second
    assert "returned to" in version_tags(model_name, third)["rolled_back"]
    rollback(model_name)
    assert str(alias_version(model_name, "champion").version) == first
    with pytest.raises(ModelpressError, match="records no previous @champion"):
        rollback(model_name)


def test_interleaved_promotions_end_on_the_better_model(registry: str, model_name: str, digits: Any) -> None:
    """Run A (worse) reads the champion, then run B (better) promotes before A sets the alias:
    A's check-then-set sees the move, re-compares against B's model and gives up."""
    registered = (register_fast(model_name, digits, steps) for steps in (1, 5, 60))
    (base, base_acc), (worse, worse_acc), (better, better_acc) = registered
    assert base_acc < worse_acc < better_acc
    assert promote(model_name, base, "champion", base_acc, scorer(digits)).promoted
    raced = []

    def score_while_b_promotes(version: Any) -> float:
        value = scorer(digits)(version)
        if not raced:
            raced.append(promote(model_name, better, "champion", better_acc, scorer(digits)))
        return value

    outcome = promote(model_name, worse, "champion", worse_acc, score_while_b_promotes)
    assert raced[0].promoted and not outcome.promoted
    assert str(alias_version(model_name, "champion").version) == better


def test_cli_level_promotion_refuses_failed_gates_and_other_data(registry: str, model_name: str, digits: Any) -> None:
    (good, _), (other, _) = register_fast(model_name, digits, 40), register_fast(model_name, digits, 2)
    assert promote_version(model_name, good).promoted
    client = mlflow.MlflowClient()
    client.set_model_version_tag(model_name, other, "gate", "failed")
    with pytest.raises(ModelpressError, match="failed its gate is never promoted"):
        promote_version(model_name, other)
    client.set_model_version_tag(model_name, other, "gate", "passed")
    assert not promote_version(model_name, other).promoted  # worse on the same data
    client.set_model_version_tag(model_name, other, "data_fingerprint", "other-data")
    with pytest.raises(ModelpressError, match="scored on other data"):
        promote_version(model_name, other)
    forced = promote_version(model_name, other, force=True)
    assert forced.promoted and str(alias_version(model_name, "champion").version) == other
    assert rollback(model_name).version == good


def test_cli_level_promotion_compares_the_recorded_primary_metric_in_its_direction(
        registry: str, model_name: str, digits: Any) -> None:
    """A causal LM is compared on perplexity, where lower is better: the CLI must not read accuracy."""
    (low, _), (high, _) = register_fast(model_name, digits, 40), register_fast(model_name, digits, 2)
    client = mlflow.MlflowClient()
    for version, perplexity in ((low, "12.5"), (high, "19.0")):
        for key, value in {"primary_metric": "perplexity", "perplexity": perplexity,
                           "primary_direction": "lower", "accuracy": "0.5"}.items():
            client.set_model_version_tag(model_name, version, key, value)
    assert promote_version(model_name, high).promoted  # nothing to beat yet
    assert promote_version(model_name, low).promoted  # lower perplexity wins
    refused = promote_version(model_name, high)
    assert not refused.promoted and "-12.5" in refused.reason
    assert str(alias_version(model_name, "champion").version) == low
    client.set_model_version_tag(model_name, high, "primary_metric", "accuracy")
    with pytest.raises(ModelpressError, match="scored on accuracy, the other version on perplexity|not comparable"):
        promote_version(model_name, high)
