"""Support matrix, classifier rows: every stage and build on a tiny model of each family, or the
reason ``modelpress validate`` refuses it (tests/support_matrix.py renders these into the README)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # tests/ is no package: the matrix helpers are imported by path

from cells import load, recipe_for  # noqa: E402
from classifiers import FAMILIES, finite_logits, stage_config  # noqa: E402

from modelpress.core.errors import RecipeError  # noqa: E402


def _support() -> Any:
    if "support_matrix" in sys.modules:
        return sys.modules["support_matrix"]
    spec = importlib.util.spec_from_file_location("support_matrix", HERE.parent / "support_matrix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


support = _support()

#: column → (README reason, what validate's one line says)
REFUSED = {
    "pytorch": ("registers the PyTorch module of a task evaluated as one (causal LMs); a classifier registers "
                "`onnx`", "is evaluated in ONNX Runtime; register 'onnx' instead"),
    "huggingface": ("the Hugging Face folder build registers causal LMs; a classifier registers `onnx`",
                    "is not registered as a Hugging Face module; register 'onnx' instead"),
    **{build: ("builds causal language models only", "builds causal language models")
       for build in ("compressed-tensors", "gptq", "gguf", "onnxruntime-genai")},
}
UNTESTED = {"tensorrt": "a TensorRT engine needs the `tensorrt` package on a GPU runner; CI has neither (the "
                        "build then ships the ONNX build alone and says so)"}


def _cells() -> list[Any]:
    out = []
    for family in FAMILIES:
        for column in support.STAGES + support.BUILDS:
            refused = REFUSED.get(column, (None,))[0]
            mark = pytest.mark.support(family, column, refused=refused, untested=UNTESTED.get(column))
            out.append(pytest.param(family, column, marks=mark, id=f"{family}-{column}"))
    return out


def make_project(family: str, folder: Path) -> dict[str, Any]:
    return FAMILIES[family](folder)


@pytest.mark.parametrize(("family", "column"), _cells())
def test_cell(projects: Any, tracking_uri: str, family: str, column: str, tmp_path: Path) -> None:
    folder, blocks = projects(family)
    is_stage = column in support.STAGES
    raw = recipe_for(f"{family}-{column}", blocks, column, stage_config(family, column) if is_stage else None)
    if column in REFUSED:
        with pytest.raises(RecipeError) as caught:
            load(raw, folder)
        problems = caught.value.problems
        assert len(problems) == 1 and REFUSED[column][1] in problems[0] and problems[0].startswith("export[")
        return
    loaded = load(raw, folder)
    if is_stage:
        _stage(loaded)
    else:
        _build(loaded, column, tracking_uri, tmp_path)


def _stage(loaded: Any) -> None:
    """The stage runs; its result gives finite logits for every eval row and (module stages)
    exports to an ONNX graph that reproduces it."""
    from modelpress.core.registry import get_stage
    from modelpress.deploy.onnx_export import check_parity, export_onnx

    entry = loaded.recipe.stages[0]
    spec, evaluation = get_stage(entry.name), loaded.eval
    if spec.kind == "graph":
        graph = export_onnx(loaded.model, loaded.task, evaluation)
        result = spec.apply(graph, entry.config, loaded.context())
        measured = loaded.task.evaluate(graph, result, evaluation)
        assert 0 <= measured.candidate["agreement"] <= 1 and measured.candidate["size_mb"] > 0
        return
    result = spec.apply(loaded.model, entry.config, loaded.context())
    logits, _ = loaded.task.forward(result.eval(), loaded.task.encode(evaluation))
    finite_logits(logits, len(evaluation))
    check_parity(result, export_onnx(result, loaded.task, evaluation), loaded.task, evaluation)


def _build(loaded: Any, column: str, uri: str, tmp_path: Path) -> None:
    """The build is written into an MLflow run and loaded back by its consumer."""
    import mlflow

    from modelpress.builds import BuildContext
    from modelpress.deploy.onnx_export import check_parity, export_onnx
    from modelpress.tasks.evaluation import onnx_runner, onnx_session, predict

    evaluation = loaded.eval
    graph = export_onnx(loaded.model, loaded.task, evaluation)
    parity = check_parity(loaded.model, graph, loaded.task, evaluation)
    build = loaded.recipe.builds[-1].config
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_name="matrix")
    with mlflow.start_run() as run:
        context = BuildContext(name="matrix", task=loaded.task, eval_frame=evaluation, model=loaded.model,
                               onnx=graph, parity=parity, version="1", scratch=tmp_path)
        report = build.write(context)
    if column == "tensorrt":  # no tensorrt here: the build says so instead of failing the run
        assert report.notes and "tensorrt" in report.notes[0].lower()
        return
    client = mlflow.MlflowClient(uri)
    if column == "onnx":
        served = type(build).load_registered(report.model_uri)
    else:  # triton-repository: the model folder as Triton reads it
        folder = Path(client.download_artifacts(run.info.run_id, report.artifact_path, str(tmp_path / "repo")))
        served = _triton_model(folder)
    expected, _, _ = predict(onnx_runner(onnx_session(graph), loaded.task), loaded.task, evaluation)
    logits, _, _ = predict(onnx_runner(onnx_session(served), loaded.task), loaded.task, evaluation)
    assert abs(logits - expected).max() < 1e-5


def _triton_model(folder: Path) -> Any:
    """The version's model.onnx, once config.pbtxt declares each of its inputs (the config's format
    itself is checked against Triton's ModelConfig in tests/deploy/test_triton_repo.py)."""
    import re

    import onnx

    model = onnx.load(str(folder / "1" / "model.onnx"))
    declared = re.findall(r'name:\s*"([^"]+)"', (folder / "config.pbtxt").read_text())
    assert all(i.name in declared for i in model.graph.input)
    return model
