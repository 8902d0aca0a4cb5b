"""Validate-time refusals: each names the build and why, before anything is computed."""

from __future__ import annotations

import pytest

from modelpress.deploy.builds import compressed_tensors, gguf, gptq, onnxruntime_genai
from modelpress.steps.lowrank.config import LowRankConfig
from modelpress.steps.prune.config import PruneConfig
from modelpress.steps.quantize.config import WeightQuantizeConfig

SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
           "num_attention_heads": 9, "num_key_value_heads": 3}
BUILDS = {m.NAME: m for m in (compressed_tensors, gguf, gptq, onnxruntime_genai)}


def problems(name, *stages, hf_config=SMOLLM2):
    module = BUILDS[name]
    return module.problems(module.Config(), list(stages), hf_config)


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
    ("gguf", wq(bits=4, granularity="per-group", group_size=128), "group_size 128 does not divide hidden_size 576"),
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


def test_other_architectures_are_refused():
    assert any("'bert'" in p for p in problems("gguf", hf_config={"model_type": "bert"}))
