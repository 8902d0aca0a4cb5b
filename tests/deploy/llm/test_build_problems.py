"""Validate-time refusals: each names the build and why, before anything is computed."""

from __future__ import annotations

import pytest

from modelpress.deploy.builds.compressed_tensors import CompressedTensorsBuild
from modelpress.deploy.builds.gguf import GGUFBuild
from modelpress.deploy.builds.gptq import GPTQBuild
from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild
from modelpress.steps.lowrank.config import LowRankConfig
from modelpress.steps.prune.config import PruneConfig
from modelpress.steps.quantize.config import WeightQuantizeConfig

SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
           "num_attention_heads": 9, "num_key_value_heads": 3}
BUILDS = {b.build_name: b for b in (CompressedTensorsBuild, GGUFBuild, GPTQBuild, OnnxRuntimeGenAIBuild)}


def problems(name, *stages, hf_config=SMOLLM2):
    return BUILDS[name]().format_problems(list(stages), hf_config)


def wq(**fields):
    return WeightQuantizeConfig(**fields)


INT4_G64 = {"bits": 4, "granularity": "per-group", "group_size": 64}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_the_shipped_int4_g64_recipe_builds_everywhere(name):
    stage = wq(**INT4_G64, algorithm="gptq", awq={"exclude": ["o_proj"]})
    assert problems(name, stage) == []


@pytest.mark.parametrize(("name", "stage", "expected"), [
    ("compressed-tensors", wq(bits=3, granularity="per-group", group_size=64), "int3 weights"),
    ("compressed-tensors", wq(**INT4_G64, symmetric=False), "asymmetric weights"),
    ("gptq", wq(dtype="fp8"), "fp8 weights have no GPTQ layout"),
    ("gptq", wq(bits=8, activations="dynamic"), "weight-only"),
    ("gptq", wq(bits=3, granularity="per-group", group_size=64), "int3 weights"),
    ("onnxruntime-genai", wq(bits=8), "int4 weight-only"),
    # a group must tile every input width it is used on (weight-quantize no longer shrinks it)
    ("gptq", wq(bits=4, granularity="per-group", group_size=128), "group_size: 128 does not divide in_features=576"),
    ("gptq", wq(**INT4_G64, awq={}), "add 'o_proj' to awq.exclude"),
    ("gguf", wq(**INT4_G64, awq={"shared": False, "exclude": ["o_proj"]}), "awq.shared is false"),
    ("compressed-tensors", wq(bits=8, activations="dynamic", smoothquant={}), "smoothquant.exclude"),
])
def test_impossible_combinations_are_refused(name, stage, expected):
    found = problems(name, stage)
    assert any(expected in p and p.startswith(name) for p in found), found


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_reshaping_stages_are_refused_by_every_build(name):
    found = problems(name, PruneConfig(method="structured", scope="global", sparsity=0.3),
                     LowRankConfig(energy=0.9), wq(**INT4_G64))
    assert any("scope: global" in p for p in found) and any("lowrank" in p for p in found)
    assert not problems(name, PruneConfig(method="structured", scope="layer", sparsity=0.3), wq(**INT4_G64))


#: OPT: a Transformers causal LM that llama.cpp's tensor maps and GenAI's builder do not know
OPT = {"model_type": "opt", "hidden_size": 64, "ffn_dim": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
       "word_embed_proj_dim": 64, "vocab_size": 384}


def test_architectures_a_consumer_does_not_take_are_refused_and_the_others_pass():
    assert any("no architecture for model_type 'opt'" in p for p in problems("gguf", wq(**INT4_G64), hf_config=OPT))
    assert any("does not convert OPTForCausalLM" in p for p in problems("onnxruntime-genai", hf_config=OPT))
    assert problems("compressed-tensors", wq(**INT4_G64), hf_config=OPT) == []  # Linear layers by module name


def test_per_channel_int4_reaches_genai_when_a_block_divides_every_width():
    per_channel = wq(bits=4, algorithm="gptq")
    assert problems("onnxruntime-genai", per_channel) == []  # SmolLM2: 576 and 1536 are blocks of 64
    odd = {"model_type": "llama", "hidden_size": 88, "intermediate_size": 200, "num_attention_heads": 4,
           "num_key_value_heads": 4, "num_hidden_layers": 2}  # widths of 8 x 11 and 8 x 25
    found = problems("onnxruntime-genai", per_channel, hf_config=odd)
    assert any("none of (128, 64, 32, 16) divides [88, 200]" in p for p in found), found


def test_modelpress_validate_refuses_a_mixtral_recipe_in_one_line_per_build(tmp_path, monkeypatch):
    """The user's view: `modelpress validate` on a Mixtral folder, before anything is computed."""
    import importlib.util
    from pathlib import Path

    import yaml
    from click.testing import CliRunner

    from modelpress.cli.main import main

    spec = importlib.util.spec_from_file_location("llm_families", Path(__file__).with_name("families.py"))
    families = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(families)
    families.write_family("mixtral", tmp_path / "mixtral")
    (tmp_path / "corpus.txt").write_text("\n".join(families.corpus(100)) + "\n")
    recipe = {"name": "mixtral-int4", "model": {"source": "huggingface", "path": "mixtral"},
              "data": {"source": "text", "path": "corpus.txt"},
              "stages": [{"weight-quantize": {"bits": 4, "granularity": "per-group", "group_size": 32,
                                              "algorithm": "gptq"}}],
              "gate": {"perplexity": {"max_ratio": 1.5}},
              "export": ["gguf", "compressed-tensors", "gptq", "onnxruntime-genai"], "registry": {"name": "mixtral"}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "recipe.yaml"])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    # routers are left float by the causal-lm task, so only GenAI (no Mixtral converter) refuses
    assert sum("].onnxruntime-genai: " in line and "does not convert MixtralForCausalLM" in line
               for line in lines) == 1, result.output
    assert len(lines) == 2, result.output
