"""A causal LM through the real pipeline: a tiny randomly initialised Llama folder made here and a
text file of documents, int4 GPTQ, gated on perplexity, registered with its Hugging Face folder
and a GGUF build, promoted to @champion; an impossible perplexity bound then fails the gate and
leaves @champion where it was. Real ZenML runs on the embedded stack, a real MLflow registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .helpers import mlflow_client, run_cli
from .llm_models import write_corpus, write_tiny_llm

pytestmark = pytest.mark.slow
NAME = "tiny-llm"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llm-project")
    write_tiny_llm(folder / "tiny-llm")
    write_corpus(folder / "corpus.txt")
    return folder


def recipe(project: Path, file: str, gate: dict) -> str:
    body = {
        "name": "tiny-llm-int4",
        "model": {"source": "huggingface", "path": "tiny-llm",
                  "task": {"name": "causal-lm", "max_length": 32, "eval_sequences": 8, "latency_length": 32,
                           "decode_tokens": 8, "continuation_tokens": 6, "prompts": ["the film was", "a story"]}},
        "data": {"source": "text", "path": "corpus.txt", "split": {"train": 0.4, "eval": 0.3, "calibration": 60}},
        "stages": [{"weight-quantize": {"bits": 4, "granularity": "per-group", "group_size": 32, "algorithm": "gptq",
                                        "calibration": {"samples": 8, "batch_size": 4, "progress": False}}}],
        "gate": gate, "export": ["gguf"], "registry": {"name": NAME},
    }
    (project / file).write_text(yaml.safe_dump(body))
    return file


def test_int4_gptq_is_gated_on_perplexity_registered_with_its_builds_and_promoted(project, modelpress_cli):
    import torch
    from transformers import AutoModelForCausalLM

    result = run_cli(modelpress_cli, project, "run", recipe(project, "int4.yaml", {"perplexity": {"max_ratio": 1.5}}))
    assert result.returncode == 0, result.output[-4000:]
    assert "gate: PASSED" in result.stdout and "promoted to @champion" in result.stdout
    client = mlflow_client(project)
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert str(champion.version) == "1"
    tags = champion.tags
    assert tags["registered_build"] == "huggingface" and tags["primary_metric"] == "perplexity"
    run = client.get_run(champion.run_id)
    metrics = run.data.metrics
    assert 1.0 < metrics["candidate.perplexity"] <= 1.5 * metrics["baseline.perplexity"]
    assert float(tags["perplexity"]) == pytest.approx(metrics["candidate.perplexity"], rel=1e-5)
    assert 0 < metrics["candidate.kl"] and 0 < metrics["candidate.agreement"] <= 1
    assert metrics["candidate.size_mb"] < metrics["baseline.size_mb"]
    assert metrics["build.gguf.layers_with_exact_codes"] == 14  # 2 blocks x 7 projections, codes transcoded
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "report/report.json")).read_text())
    assert [e["input"] for e in report["evaluation"]["examples"]] == ["the film was", "a story"]
    examples = json.loads(Path(client.download_artifacts(run.info.run_id, "report/examples.json")).read_text())
    assert examples["columns"] == ["input", "baseline", "candidate", "same"] and len(examples["data"]) == 2
    page = Path(client.download_artifacts(run.info.run_id, "report/gate.html")).read_text()
    assert "continuations (greedy, 6 tokens)" in page and "the film was" in page

    # the Hugging Face folder logged with the version loads as a Llama and gives the candidate's logits
    uri = f"sqlite:///{project / '.modelpress' / 'mlflow.db'}"
    pulled = run_cli(modelpress_cli, project, "pull", f"models:/{NAME}@champion", "--build", "huggingface",
                     "--to", "pulled", "--tracking-uri", uri)
    assert pulled.returncode == 0, pulled.output[-2000:]
    folder = project / "pulled" / "huggingface"
    expected = {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"}
    assert expected <= {p.name for p in folder.iterdir()}
    import mlflow

    mlflow.set_tracking_uri(uri)
    candidate = mlflow.pytorch.load_model(f"models:/{NAME}/1").eval()
    plain = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, candidate(input_ids=ids).logits, atol=1e-4)

    # the gguf build: written, checked (codes, perplexity), pullable, loaded back by Transformers
    pulled = run_cli(modelpress_cli, project, "pull", f"models:/{NAME}@champion", "--build", "gguf",
                     "--to", "pulled", "--tracking-uri", uri)
    assert pulled.returncode == 0, pulled.output[-2000:]
    gguf = AutoModelForCausalLM.from_pretrained(project / "pulled" / "gguf", gguf_file="model.gguf").eval()
    with torch.no_grad():
        agree = (gguf(input_ids=ids).logits.argmax(-1) == candidate(input_ids=ids).logits.argmax(-1)).float().mean()
    assert agree > 0.9


def test_an_impossible_perplexity_bound_fails_the_gate_and_leaves_the_champion(project, modelpress_cli):
    client = mlflow_client(project)
    before = str(client.get_model_version_by_alias(NAME, "champion").version)
    result = run_cli(modelpress_cli, project, "run", recipe(project, "impossible.yaml", {"perplexity": {"max": 1.0}}))
    assert result.returncode != 0
    assert "gate: FAILED (perplexity.max:" in result.stdout
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == before
    latest = max(client.search_model_versions(f"name='{NAME}'"), key=lambda v: int(v.version))
    assert str(latest.version) != before and latest.tags["gate"] == "failed"
    # aliases as the registry holds them (a search result's aliases are always [])
    assert client.get_model_version(NAME, latest.version).aliases == []
    assert latest.version not in client.get_registered_model(NAME).aliases.values()
