"""`modelpress pull --build` against a real MLflow sqlite registry whose run logged LLM builds."""

from __future__ import annotations

import json
import subprocess

import pytest

from modelpress.core.errors import ModelpressError
from modelpress.deploy.pull import pull_build


def test_pull_build_writes_a_folder_genai_generates_from(llm_registry, tmp_path):
    import numpy as np
    import onnxruntime_genai as og

    folder = pull_build("models:/tiny-llm@champion", "onnxruntime-genai", tmp_path / "models", llm_registry)
    assert folder == tmp_path / "models" / "onnxruntime-genai"
    meta = json.loads((folder / "modelpress.json").read_text())
    assert meta["aliases"] == ["champion"] and str(meta["version"]) == "1"
    assert json.loads((folder / "modelpress-build.json").read_text())["scheme"] == "int4-g32-sym"
    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=12, min_length=12)
    generator = og.Generator(model, params)
    generator.append_tokens(np.array(og.Tokenizer(model).encode("the film was"), dtype=np.int32))
    while not generator.is_done():
        generator.generate_next_token()
    assert len(generator.get_sequence(0)) == 12
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".pull-")]


def test_a_build_the_run_did_not_log_names_those_it_did(llm_registry, tmp_path):
    with pytest.raises(ModelpressError, match="has no 'gptq' build; its run logged: gguf, onnxruntime-genai"):
        pull_build("models:/tiny-llm@champion", "gptq", tmp_path, llm_registry)


def test_cli_pull_build_and_its_errors(llm_registry, tmp_path, modelpress_cli):
    env_uri = ["--tracking-uri", llm_registry]
    done = subprocess.run([modelpress_cli, "pull", "models:/tiny-llm@champion", "--build", "gguf",
                           "--to", str(tmp_path), *env_uri], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "gguf" / "model.gguf").stat().st_size > 10_000
    bad = subprocess.run([modelpress_cli, "pull", "models:/tiny-llm@nope", "--build", "gguf", "--to",
                          str(tmp_path / "x"), *env_uri], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and "models:/tiny-llm@nope" in bad.stderr and "Traceback" not in bad.stderr
