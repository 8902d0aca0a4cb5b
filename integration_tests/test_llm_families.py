"""Every LLM family through the real pipeline: a tiny causal LM of the family written with
``save_pretrained`` (tests/deploy/llm/families.py), int4 GPTQ, every LLM build its consumers take
(a build validate refuses is named with its reason), gated on perplexity, promoted to @champion;
then each build is pulled with ``modelpress pull --build`` and loaded by its consumer:
Transformers (compressed-tensors, GGUF), the gguf reader, ONNX Runtime GenAI (generates the
candidate's greedy tokens) and, for the GPTQ layout, its codes unpacked into the family's class
(Transformers' own GPTQ loader needs gptqmodel, which needs Transformers 5).

CI runs two families with the most distinct structure (the library-level tests in
tests/deploy/llm/test_families.py cover all seven at groups 32 and 128 on every build); set
``MODELPRESS_ALL_LLM_FAMILIES=1`` for all seven at groups 32 and 128 (about 15 minutes).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import mlflow_client, run_cli

pytestmark = pytest.mark.slow
BUILDS = ["gguf", "compressed-tensors", "gptq", "onnxruntime-genai"]
#: (family, group) run in CI: fused qkv/gate_up through all four builds (Phi-3), an MoE whose
#: routers the stage keeps float and whose GenAI build validate refuses (Mixtral)
CI_CASES = [("phi3", 32), ("mixtral", 128)]


def _families() -> Any:
    path = Path(__file__).resolve().parents[1] / "tests" / "deploy" / "llm" / "families.py"
    if "llm_families" not in sys.modules:
        spec = importlib.util.spec_from_file_location("llm_families", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["llm_families"] = module
        spec.loader.exec_module(module)
    return sys.modules["llm_families"]


families = _families()


def _cases() -> list[Any]:
    everything = os.environ.get("MODELPRESS_ALL_LLM_FAMILIES", "") not in ("", "0")
    out = []
    for name in families.FAMILIES:
        for group in (32, 128):
            skip = not everything and (name, group) not in CI_CASES
            marks = [pytest.mark.skip(reason="MODELPRESS_ALL_LLM_FAMILIES=1 runs every family")] if skip else []
            out.append(pytest.param(name, group, id=f"{name}-g{group}", marks=marks))
    return out


def _recipe(name: str, group: int, builds: list[str]) -> dict[str, Any]:
    return {
        "name": f"{name}-int4-g{group}",
        "model": {"source": "huggingface", "path": "model",
                  "task": {"name": "causal-lm", "max_length": 32, "eval_sequences": 8, "latency_length": 32,
                           "decode_tokens": 8, "continuation_tokens": 6, "prompts": ["the film was"]}},
        "data": {"source": "text", "path": "corpus.txt", "split": {"train": 0.4, "eval": 0.3, "calibration": 60}},
        "stages": [{"weight-quantize": {"bits": 4, "group_size": group, "algorithm": "gptq",
                                        "calibration": {"samples": 8, "batch_size": 4, "progress": False}}}],
        "gate": {"perplexity": {"max_ratio": 1.5}}, "export": builds, "registry": {"name": f"{name}-g{group}"},
    }


@pytest.mark.parametrize(("name", "group"), _cases())
def test_family_int4_to_champion_with_every_build_its_consumers_take(name: str, group: int, modelpress_cli: str,
                                                                     tmp_path: Path) -> None:
    families.write_family(name, tmp_path / "model")
    (tmp_path / "corpus.txt").write_text("\n".join(families.corpus(300, seed=1)) + "\n")
    (tmp_path / "all.yaml").write_text(yaml.safe_dump(_recipe(name, group, BUILDS)))
    checked = run_cli(modelpress_cli, tmp_path, "validate", "all.yaml")
    refused = [b for b in BUILDS if f"].{b}: " in checked.output]
    if refused:  # named one line each, before anything is computed
        assert checked.returncode == 2 and len(checked.output.strip().splitlines()) == 1 + len(refused)
    assert refused == (["onnxruntime-genai"] if name == "mixtral" else []), checked.output
    builds = [b for b in BUILDS if b not in refused]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(_recipe(name, group, builds)))

    result = run_cli(modelpress_cli, tmp_path, "run", "recipe.yaml", timeout=900)
    assert result.returncode == 0, result.output[-4000:]
    assert "promoted to @champion" in result.stdout
    registered = f"{name}-g{group}"
    uri = f"sqlite:///{tmp_path / '.modelpress' / 'mlflow.db'}"
    version = mlflow_client(tmp_path).get_model_version_by_alias(registered, "champion")
    assert version.tags["gate"] == "passed"
    candidate = _champion(uri, registered)
    for build in builds:
        pulled = run_cli(modelpress_cli, tmp_path, "pull", f"models:/{registered}@champion", "--build", build,
                         "--to", "pulled", "--tracking-uri", uri)
        assert pulled.returncode == 0, pulled.output[-2000:]
        CONSUMERS[build](tmp_path / "pulled" / build, candidate, name, group)


def _champion(uri: str, name: str) -> Any:
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.pytorch.load_model(f"models:/{name}@champion").eval()


def _ids() -> Any:
    import torch

    return torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(0))


def _same_logits(model: Any, candidate: Any, atol: float) -> None:
    import torch

    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, candidate(input_ids=ids).logits, atol=atol, rtol=0)


def _agrees(model: Any, candidate: Any) -> None:
    """Next-token predictions agree, where a format stores scales in half precision."""
    import torch

    ids = _ids()
    with torch.no_grad():
        agree = (model(input_ids=ids).logits.argmax(-1) == candidate(input_ids=ids).logits.argmax(-1)).float().mean()
    assert agree > 0.9


def _compressed_tensors(folder: Path, candidate: Any, name: str, group: int) -> None:
    import json

    from transformers import AutoModelForCausalLM

    weights = json.loads((folder / "config.json").read_text())["quantization_config"]["config_groups"]
    assert weights["group_0"]["weights"]["group_size"] == group
    import torch

    loaded = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    _same_logits(loaded.eval(), candidate, 1e-4)


def _gptq(folder: Path, candidate: Any, name: str, group: int) -> None:
    import json

    from modelpress.deploy.builds.gptq import load_dequantized

    assert json.loads((folder / "config.json").read_text())["quantization_config"]["group_size"] == group
    model = load_dequantized(folder).eval()
    model.config._attn_implementation = "eager"
    _agrees(model, candidate)  # the layout stores scales in fp16: close, not equal


def _gguf(folder: Path, candidate: Any, name: str, group: int) -> None:
    import gguf
    from transformers import AutoModelForCausalLM

    from modelpress.deploy.builds.architectures import gguf_arch_name

    reader = gguf.GGUFReader(str(folder / "model.gguf"))
    assert reader.fields["general.architecture"].contents() == gguf_arch_name(candidate.config.model_type)
    assert any(t.name == "blk.0.attn_output.weight" for t in reader.tensors)
    if name == "mixtral":  # Transformers 4.57 reads llama.cpp's Mixtral back as a dense Llama
        return
    _agrees(AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf", attn_implementation="eager").eval(),
            candidate)


def _genai(folder: Path, candidate: Any, name: str, group: int) -> None:
    import onnxruntime_genai as og
    import torch

    model = og.Model(str(folder))
    prompt = _ids()[0, :12].tolist()
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(prompt) + 6)
    generator = og.Generator(model, params)
    generator.append_tokens(prompt)
    got = []
    while not generator.is_done():
        generator.generate_next_token()
        got.append(int(generator.get_next_tokens()[0]))
    with torch.no_grad():
        expected = candidate.generate(torch.tensor([prompt]), max_new_tokens=len(got), do_sample=False)[0, len(prompt):]
    assert got[:3] == expected.tolist()[:3], (got, expected.tolist())


CONSUMERS = {"compressed-tensors": _compressed_tensors, "gptq": _gptq, "gguf": _gguf, "onnxruntime-genai": _genai}
