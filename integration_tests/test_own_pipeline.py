"""A user's own ZenML pipeline, exactly as README.md's "Use the steps in your own pipeline" shows
it: the README's code blocks are extracted and run as the user's script, on a ZenML whose active
stack is modelpress's embedded one (set up the way the README says), in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Use the steps in your own pipeline"
NAME = "diagnosis-mlp"


def readme_blocks(language: str) -> list[str]:
    text = README.read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def user_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_"))}
    return {**env, "MODELPRESS_HOME": str(project / ".modelpress"), "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_CONFIG_PATH": str(project / ".modelpress" / "zenml"), "PYTHONPATH": str(project)}


def run(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *args], cwd=project, env=user_env(project), capture_output=True,
                          text=True, timeout=900)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's project: the README's pipeline in diagnosis.py, and the stack the README names."""
    folder = tmp_path_factory.mktemp("user-project")
    (folder / "diagnosis.py").write_text(readme_blocks("python")[0])
    cli = str(Path(sys.executable).with_name("modelpress"))
    done = subprocess.run([cli, "stack", "register"], cwd=folder, env=user_env(folder), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return folder


def champion(project: Path) -> str:
    uri = f"sqlite:///{project / '.modelpress' / 'mlflow.db'}"
    return str(MlflowClient(uri, registry_uri=uri).get_model_version_by_alias(NAME, "champion").version)


def test_readme_pipeline_promotes_then_a_tightened_gate_keeps_the_champion(project: Path) -> None:
    run(project, "diagnosis.py")
    assert champion(project) == "1"
    tightened = ("from diagnosis import diagnosis\n"
                 "diagnosis.with_options(enable_cache=False)(thresholds={'size_mb': {'max_ratio': 0.2}})\n")
    (project / "tightened.py").write_text(tightened)
    run(project, "tightened.py")
    uri = f"sqlite:///{project / '.modelpress' / 'mlflow.db'}"
    versions = MlflowClient(uri, registry_uri=uri).search_model_versions(f"name='{NAME}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]  # the failed candidate is still recorded
    assert champion(project) == "1"
    # the user's later step receives modelpress's records typed, and the quantized graph
    later = ("from zenml.client import Client\n"
             "run = Client().get_pipeline('diagnosis').last_run\n"
             "steps = run.steps\n"
             "verdict = steps['accuracy_gate'].outputs['gate_verdict'][0].load()\n"
             "registration = steps['register'].outputs['registration'][0].load()\n"
             "graph = steps['quantize'].outputs['onnx_model'][0].load()\n"
             "shown = steps['accuracy_gate'].outputs['gate_verdict'][0]\n"
             "assert shown.materializer.import_path.endswith('RecordMaterializer'), shown.materializer\n"
             "assert shown.visualizations, 'the verdict has no dashboard view'\n"
             "print(type(verdict).__name__, verdict.passed, type(registration).__name__, registration.version,\n"
             "      type(graph).__name__)\n")
    (project / "later.py").write_text(later)
    assert run(project, "later.py").stdout.split()[-5:] == ["Verdict", "False", "Registration", "2", "ModelProto"]


def test_the_same_pipeline_from_a_run_configuration(project: Path) -> None:
    python, yaml = readme_blocks("python")[1], readme_blocks("yaml")[0]
    (project / "run.yaml").write_text(yaml)
    (project / "from_config.py").write_text("from diagnosis import *\n" + python)
    run(project, "from_config.py")
    check = ("from zenml.client import Client\n"
             "run = Client().get_pipeline('diagnosis_from_config').last_run\n"
             "steps = run.steps\n"
             "gate = steps['accuracy_gate']\n"
             "print(steps['prune'].config.parameters['config'], gate.config.parameters['thresholds'])\n"
             "print(steps['accuracy_gate'].outputs['gate_verdict'][0].load().checks[1].metric)\n")
    (project / "check.py").write_text(check)
    out = run(project, "check.py").stdout
    assert "'sparsity': 0.3" in out and "'max_ratio': 0.8" in out and out.split()[-1] == "size_mb"


@pytest.mark.parametrize(("edit", "expected"), [
    ('config={"sparsity": 0.3}', 'config={"sparsty": 0.3}'),
    ('thresholds: dict = {"accuracy": {"max_drop": 0.02}}', 'thresholds: dict = {"perplexity": {"max_drop": 0.02}}'),
])
def test_bad_parameters_stop_the_pipeline_in_one_line(project: Path, edit: str, expected: str) -> None:
    (project / "bad.py").write_text(readme_blocks("python")[0].replace(edit, expected))
    done = run(project, "bad.py", check=False)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    field = "prune: config.sparsty" if "sparsty" in expected else "accuracy_gate: thresholds.perplexity"
    assert any(line.startswith(f"modelpress: {field}: ") for line in lines), done.stderr[-3000:]


def test_a_frame_without_the_label_column_fails_in_the_first_step(project: Path) -> None:
    (project / "nolabel.py").write_text(readme_blocks("python")[0].replace(
        '"label": "diagnosis"', '"label": "outcome"'))
    done = run(project, "nolabel.py", check=False)
    assert done.returncode != 0
    assert done.stderr.strip() == "modelpress: prune: data: missing column(s) ['outcome']; has " \
        + done.stderr.strip().split("; has ", 1)[-1], done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr


QUANTIZED_MODULE = """
import torch
from zenml import pipeline, step

from diagnosis import TASK, load_data, train
from modelpress.zenml import weight_quantize


@step
def agreement(original: torch.nn.Module, quantized: torch.nn.Module, data) -> float:
    x = torch.tensor(data.drop(columns="diagnosis").to_numpy(), dtype=torch.float32)
    packed = [type(m).__name__ for m in quantized.modules() if type(m).__module__.startswith("modelpress")]
    assert packed, "no packed layer in the quantized module"
    with torch.no_grad():
        return float((original(x).argmax(-1) == quantized(x).argmax(-1)).float().mean())


@pipeline
def int8_weights():
    data = load_data()
    model = train(data)
    agreement(model, weight_quantize(model, data, task=TASK, config={"bits": 8}), data)


int8_weights()
from zenml.client import Client
print("agreement", Client().get_pipeline("int8_weights").last_run.steps["agreement"].output.load())
"""


def test_a_weight_quantized_module_runs_in_the_users_next_step(project: Path) -> None:
    (project / "int8_weights.py").write_text(QUANTIZED_MODULE)
    out = run(project, "int8_weights.py").stdout.split()
    assert out[-2] == "agreement" and float(out[-1]) >= 0.95
