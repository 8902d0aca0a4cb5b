"""The public ZenML steps' inputs and parameter checks, without a pipeline run (the runs are in
integration_tests/test_own_pipeline.py): the user's frame and task become what modelpress reads,
and a bad parameter stops the pipeline while it is composed, in one line naming step and field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from zenml import pipeline, step

from modelpress.zenml import StepParameterError, accuracy_gate, compress, prune, quantize, register, weight_quantize
from modelpress.zenml.inputs import prepare

TASK = {"name": "tabular-classification", "label": "diagnosis", "features": "*"}


def user_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"age": rng.normal(50, 10, rows), "bmi": rng.normal(25, 4, rows),
                         "diagnosis": rng.choice(["benign", "malignant"], rows)})


@step
def load() -> pd.DataFrame:
    return user_frame()


@step
def train(data: pd.DataFrame) -> torch.nn.Module:
    return torch.nn.Linear(2, 2)


def test_the_users_frame_is_split_and_encoded_for_the_task() -> None:
    prepared = prepare(user_frame(), TASK, "prune", split={"train": 0.75, "eval": 0.25, "calibration": 16}, seed=3)
    counts = prepared.frame["split"].value_counts().to_dict()
    assert counts == {"eval": 50, "train": 134, "calibration": 16}
    assert prepared.spec.labels == ("benign", "malignant") and prepared.spec.features == ("age", "bmi")
    assert list(prepared.frame.columns) == ["f0", "f1", "label", "split"]
    # the same frame and seed give the same split in every step
    again = prepare(user_frame(), TASK, "evaluate", split={"train": 0.75, "eval": 0.25, "calibration": 16}, seed=3)
    assert again.frame.equals(prepared.frame)


def test_the_users_own_eval_frame_is_the_eval_split() -> None:
    held_out = user_frame(40)
    prepared = prepare(user_frame(), TASK, "evaluate", eval_data=held_out)
    assert len(prepared.eval_rows) == 40
    assert np.allclose(prepared.eval_rows["f0"].to_numpy(), held_out["age"].to_numpy())
    assert set(prepared.rows("calibration").index).isdisjoint(prepared.eval_rows.index)


@pytest.mark.parametrize(("task", "message"), [
    ({**TASK, "label": "outcome"}, "prune: data: missing column(s) ['outcome']"),
    ({"name": "tabular-classification", "features": "*"}, "prune: task.label: a tabular-classification task needs"),
    ({**TASK, "name": "tabular-regression"}, "prune: task.name: "),
    ({**TASK, "max_length": 16}, "prune: task.max_length: unknown field"),
])
def test_a_bad_task_or_frame_is_one_line_naming_the_field(task: dict, message: str) -> None:
    with pytest.raises(StepParameterError) as error:
        prepare(user_frame(), task, "prune")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def composed(body) -> None:  # noqa: ANN001 -- the pipeline's body
    pipeline(name="user_pipeline")(body).prepare()


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, d: prune(m, d, task=TASK, config={"sparsty": 0.3}), "prune: config.sparsty: unknown field"),
    (lambda m, d: weight_quantize(m, d, task=TASK, config={"bits": 5}), "weight_quantize: config.bits: "),
    (lambda m, d: quantize(m, d, task={**TASK, "label": None}), "quantize: task.label: "),
    (lambda m, d: compress(m, d, task=TASK, stages=[{"prune": {}}, {"shrink": {}}]), "compress: stages[1]: "),
    (lambda m, d: register(m, d, d, d, task=TASK, registry="bad name!"), "register: registry.name: "),
])
def test_bad_parameters_fail_when_the_pipeline_is_composed(call, message: str) -> None:  # noqa: ANN001
    def body() -> None:
        data = load()
        call(train(data), data)

    with pytest.raises(StepParameterError) as error:
        composed(body)
    assert str(error.value).startswith(message), str(error.value)


def test_a_gate_on_a_metric_the_task_lacks_fails_when_composed() -> None:
    def body() -> None:
        accuracy_gate(load(), task=TASK, thresholds={"perplexity": {"max_ratio": 1.1}})

    with pytest.raises(StepParameterError, match=r"^accuracy_gate: thresholds.perplexity: a tabular-classification "
                                                 r"task measures size_mb, accuracy, f1, "):
        composed(body)


def test_good_parameters_compose_with_config_classes_or_dicts() -> None:
    from modelpress.core.registry import get_stage

    config_class = get_stage("prune").config

    def body() -> None:
        data = load()
        pruned = prune(train(data), data, task=TASK, config=config_class(sparsity=0.4))
        quantize(pruned, data, task=TASK, config={"activations": "dynamic"}, split={"eval": 0.2})

    composed(body)  # no error


def test_a_resolved_task_spec_survives_its_json_round_trip() -> None:
    """The recipe passes its TaskSpec; ZenML hands it to the step as JSON, which is also a dict."""
    from modelpress.tasks import TaskSpec
    from modelpress.zenml.inputs import task_parts

    spec = TaskSpec("tabular-classification", labels=("a", "b"), features=("age", "bmi"))
    frame = prepare(user_frame(), TASK, "prune").frame
    for given in (spec, spec.model_dump(mode="json")):
        assert task_parts(given, "prune")[2] is None  # the prepared form: no columns to shape
        assert prepare(frame, given, "prune").spec == spec


def test_builds_by_name_by_options_or_resolved_refs() -> None:
    from modelpress.core.handoffs import Ref
    from modelpress.zenml.registry import build_ref

    resolved = build_ref("onnx", "register: builds[0]")
    assert build_ref(resolved.model_dump(mode="json"), "register: builds[0]") == resolved
    assert build_ref({"name": "onnx"}, "register: builds[0]") == resolved
    assert isinstance(resolved, Ref) and resolved.name == "onnx"
    with pytest.raises(StepParameterError, match=r"^register: builds\[0\]: unknown build 'onx'"):
        build_ref({"name": "onx"}, "register: builds[0]")


def test_a_gate_on_a_causal_lm_task_file_metric_composes() -> None:
    """What a task measures depends on its options: a causal LM scoring a task file measures
    tasks.NAME.acc, and a gate on another task's metric is refused."""
    llm = {"name": "causal-lm", "text": "text",
           "tasks": [{"name": "cloze", "kind": "multiple-choice", "shipped": "rotten-tomatoes-cloze"}]}

    def gate(thresholds: dict) -> None:
        composed(lambda: accuracy_gate(load(), task=llm, thresholds=thresholds))

    gate({"tasks.cloze.acc": {"max_drop": 0.1}, "perplexity": {"max_ratio": 1.1}})
    with pytest.raises(StepParameterError, match=r"^accuracy_gate: thresholds.tasks.mmlu.acc: a causal-lm task "):
        gate({"tasks.mmlu.acc": {"max_drop": 0.1}})


def test_a_text_task_in_recipe_syntax_is_shaped_not_taken_as_prepared() -> None:
    frame = pd.DataFrame({"review": [f"review {i}" for i in range(40)], "y": ["pos", "neg"] * 20})
    prepared = prepare(frame, {"name": "text-classification", "text": "review", "label": "y"}, "evaluate")
    assert list(prepared.frame.columns) == ["text", "label", "split"] and prepared.spec.labels == ("neg", "pos")
