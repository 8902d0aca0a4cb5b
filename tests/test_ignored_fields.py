"""No field of a recipe is silently ignored: a field the configuration would not read, given the
others, is refused at validate with one line naming its path and why; ``group_size`` alone means
per-group, and that is what the stage then does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from modelpress.core.errors import ModelpressError, RecipeError
from modelpress.recipe.schema import shipped_recipes, validate_recipe

from .lm.conftest import word_tokenizer

CNN = {"name": "t", "model": {"source": "package", "name": "small-cnn"}, "data": {"source": "digits"},
       "gate": {"accuracy": {"max_drop": 0.01}}, "registry": {"name": "t"}}
INT4 = {"bits": 4, "group_size": 32}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: a tiny Llama written with save_pretrained (widths 48 and 80: groups of 32
    do not fit them), its tokenizer, a corpus, a CSV of texts and a whole pickled student module."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("ignored")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=48, intermediate_size=80, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    LlamaForCausalLM(config).save_pretrained(folder / "tiny-llm")
    word_tokenizer().save_pretrained(folder / "tiny-llm")
    documents = [f"w{i} w{i + 1} w{i + 2} w{i + 3}" for i in range(60)]
    (folder / "corpus.txt").write_text("\n".join(documents) + "\n")
    pd.DataFrame({"review": documents, "sentiment": ["good", "bad"] * 30}).to_csv(folder / "reviews.csv", index=False)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), folder / "student.pt")
    return folder


def llm(project: Path, **changes: object) -> dict:
    body = {"name": "tiny-lm", "model": {"source": "huggingface", "path": str(project / "tiny-llm"),
                                         "task": {"name": "causal-lm", "max_length": 16}},
            "data": {"source": "text", "path": str(project / "corpus.txt")},
            "stages": [{"weight-quantize": {"bits": 4, "group_size": 16}}],
            "gate": {"perplexity": {"max_ratio": 1.2}}, "registry": {"name": "tiny-lm"}}
    return {**body, **changes}


def cnn(*stages: dict, **changes: object) -> dict:
    return {**CNN, "stages": list(stages), **changes}


def text_csv(project: Path, **data: object) -> dict:
    return {"source": "csv", "path": str(project / "reviews.csv"), "text": "review", **data}


# (case, recipe from the project folder, the problem line's start, words the reason must hold)
CASES = [
    # weight-quantize (PyTorch backend)
    ("granularity-contradicts-group", lambda p: cnn({"weight-quantize": {**INT4, "granularity": "per-channel"}}),
     "stages[0].weight-quantize.group_size", "granularity is per-channel"),
    ("group-of-w8a8", lambda p: cnn({"weight-quantize": {"activations": "dynamic", "group_size": 32}}),
     "stages[0].weight-quantize.group_size", "W8A8"),
    ("group-of-fp8", lambda p: cnn({"weight-quantize": {"dtype": "fp8", "group_size": 32}}),
     "stages[0].weight-quantize.group_size", "fp8"),
    ("bits-of-a-cast", lambda p: cnn({"weight-quantize": {"dtype": "fp16", "bits": 4}}),
     "stages[0].weight-quantize.bits", "casts"),
    ("gptq-of-a-cast", lambda p: cnn({"weight-quantize": {"dtype": "bf16", "algorithm": "gptq"}}),
     "stages[0].weight-quantize.algorithm", "casts"),
    ("range-of-a-cast", lambda p: cnn({"weight-quantize": {"dtype": "fp16", "weight_range": "mse"}}),
     "stages[0].weight-quantize.weight_range", "casts"),
    ("fp8-asymmetric", lambda p: cnn({"weight-quantize": {"dtype": "fp8", "symmetric": False}}),
     "stages[0].weight-quantize.symmetric", "fp8"),
    ("fp8-gptq", lambda p: cnn({"weight-quantize": {"dtype": "fp8", "algorithm": "gptq"}}),
     "stages[0].weight-quantize.algorithm", "fp8"),
    ("rtn-calibration-rows", lambda p: cnn({"weight-quantize": {**INT4, "calibration": {"samples": 64}}}),
     "stages[0].weight-quantize.calibration.samples", "calibrates nothing"),
    ("rtn-calibration-device", lambda p: cnn({"weight-quantize": {**INT4, "calibration": {"device": "cpu"}}}),
     "stages[0].weight-quantize.calibration.device", "calibrates nothing"),
    ("torch-static-calibrator", lambda p: cnn({"weight-quantize": {**INT4, "algorithm": "gptq",
                                                                    "calibration": {"method": "percentile"}}}),
     "stages[0].weight-quantize.calibration.method", "onnxruntime stage"),
    # quantize (ONNX Runtime backend)
    ("ort-int8-group", lambda p: cnn({"quantize": {"group_size": 32}}),
     "stages[0].quantize.group_size", "int8 in ONNX Runtime"),
    ("ort-percentile-of-minmax", lambda p: cnn({"quantize": {"activations": "static",
                                                             "calibration": {"percentile": 99.9}}}),
     "stages[0].quantize.calibration.percentile", "method is minmax"),
    ("ort-dynamic-calibration", lambda p: cnn({"quantize": {"calibration": {"samples": 64}}}),
     "stages[0].quantize.calibration.samples", "calibrates nothing"),
    ("ort-calibrator-of-dynamic", lambda p: cnn({"quantize": {"mixed_precision": {"min_cosine": 0.99},
                                                              "calibration": {"method": "entropy"}}}),
     "stages[0].quantize.calibration.method", "not static"),
    ("ort-calibration-device", lambda p: cnn({"quantize": {"activations": "static",
                                                           "calibration": {"device": "cuda"}}}),
     "stages[0].quantize.calibration.device", "ONNX Runtime"),
    ("ort-int4-operators", lambda p: cnn({"quantize": {**INT4, "activations": "none", "operators": ["MatMul"]}}),
     "stages[0].quantize.operators", "MatMulNBits"),
    ("ort-cast-bits", lambda p: cnn({"quantize": {"dtype": "fp16", "bits": 4}}),
     "stages[0].quantize.bits", "casts"),
    ("ort-smoothquant-unshared", lambda p: cnn({"quantize": {"activations": "static",
                                                             "smoothquant": {"shared": False}}}),
     "stages[0].quantize.smoothquant.shared", "always shares"),
    ("ort-smoothquant-exclude", lambda p: cnn({"quantize": {"activations": "static",
                                                            "smoothquant": {"exclude": ["fc1"]}}}),
     "stages[0].quantize.smoothquant.exclude", "stage's exclude"),
    # prune
    ("magnitude-round-to", lambda p: cnn({"prune": {"round_to": 8}}), "stages[0].prune.round_to", "magnitude"),
    ("heads-round-to", lambda p: cnn({"prune": {"method": "structured", "target": "heads", "round_to": 8}}),
     "stages[0].prune.round_to", "attention heads only"),
    ("channels-head-sparsity", lambda p: cnn({"prune": {"method": "structured", "target": "channels",
                                                        "head_sparsity": 0.3}}),
     "stages[0].prune.head_sparsity", "removes no attention heads"),
    ("two-four-sparsity", lambda p: cnn({"prune": {"method": "semi-structured-2:4", "sparsity": 0.7}}),
     "stages[0].prune.sparsity", "2 of every 4"),
    ("two-four-floor", lambda p: cnn({"prune": {"method": "semi-structured-2:4", "min_density": 0.2}}),
     "stages[0].prune.min_density", "2 of every 4"),
    ("l1-calibration", lambda p: cnn({"prune": {"score": "l1", "calibration_batches": 8}}),
     "stages[0].prune.calibration_batches", "weights alone"),
    ("taylor-device", lambda p: cnn({"prune": {"score": "taylor", "calibration_device": "cpu"}}),
     "stages[0].prune.calibration_device", "taylor"),
    ("one-step-curve", lambda p: cnn({"prune": {"schedule": {"kind": "linear"}}}),
     "stages[0].prune.schedule.kind", "one step"),
    # distill, finetune
    ("labels-only-temperature", lambda p: cnn({"distill": {"student": {"width": 0.5}, "alpha": 0, "temperature": 2}}),
     "stages[0].distill.temperature", "alpha is 0"),
    ("unmatched-hidden-loss", lambda p: cnn({"distill": {"student": {"width": 0.5}, "hidden": {"loss": "cosine"}}}),
     "stages[0].distill.hidden.loss", "hidden.weight is 0"),
    ("unmatched-pairs", lambda p: cnn({"distill": {"student": {"width": 0.5}, "hidden": {"pairs": [["fc1", "fc1"]]}}}),
     "stages[0].distill.hidden.pairs", "attention are 0"),
    ("given-student-init", lambda p: cnn({"distill": {"student": {"path": str(p / "student.pt"), "init": "random"}}}),
     "stages[0].distill.student.init", "keeps its own weights"),
    ("given-assistant-init", lambda p: cnn({"distill": {"student": {"width": 0.5}, "assistants": [
        {"path": str(p / "student.pt"), "init": "random"}]}}),
     "stages[0].distill.assistants[0].init", "keeps its own weights"),
    ("full-finetune-train-modules", lambda p: cnn({"finetune": {"train_modules": ["fc2"]}}),
     "stages[0].finetune.train_modules", "without lora"),
    # data, registry, builds
    ("text-image-shape", lambda p: {**cnn({"quantize": {}}), "model": {"source": "package", "name": "minilm-l6"},
                                    "data": text_csv(p, label="sentiment", image_shape=[1, 8, 8])},
     "data.image_shape", "this data is text"),
    ("labels-without-label", lambda p: llm(p, data=text_csv(p, labels=["good", "bad"])),
     "data.labels", "no label is given"),
    ("field-of-a-text-file", lambda p: llm(p, data={"source": "text", "path": str(p / "corpus.txt"), "field": "body"}),
     "data.field", "one document a line"),
    ("ratio-of-runtime-activations", lambda p: llm(p, stages=[{"weight-quantize": {"activations": "dynamic"}}],
                                                   export=[{"huggingface": {"max_perplexity_ratio": 1.01}}]),
     "export[0].huggingface: max_perplexity_ratio", "at run time"),
]


@pytest.mark.parametrize("build, start, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_field_that_would_have_no_effect_is_refused_naming_it(project: Path, build, start: str, reason: str) -> None:
    with pytest.raises(RecipeError) as caught:
        validate_recipe(build(project))
    named = [p for p in caught.value.problems if p.startswith(start)]
    assert len(named) == 1 and "has no effect" in named[0] and reason in named[0], caught.value.problems
    assert "\n" not in named[0]


def test_without_the_field_each_recipe_validates(project: Path) -> None:
    """The refusals are about the one field: the same stages without it are fine."""
    validate_recipe(cnn({"weight-quantize": {"bits": 4, "granularity": "per-channel"}}, {"quantize": {}}))
    validate_recipe(cnn({"prune": {"method": "semi-structured-2:4"}}, {"finetune": {"lora": {"r": 4},
                                                                                    "train_modules": ["fc2"]}}))
    validate_recipe(llm(project, export=[{"huggingface": {"max_perplexity_ratio": 1.01}}]))


def test_group_size_alone_means_per_group_in_both_backends() -> None:
    recipe = validate_recipe(cnn({"weight-quantize": INT4}, {"quantize": {**INT4, "activations": "none"}}))
    assert [(s.config.granularity, s.config.group_size) for s in recipe.stages] == [("per-group", 32)] * 2
    written = recipe.stages[0].config.model_dump(exclude_unset=True)
    assert written == {**INT4, "granularity": "per-group"}  # a dump of what was written keeps its meaning


def test_group_size_alone_quantizes_groups_of_32() -> None:
    from modelpress.steps.quantize.config import WeightQuantizeConfig
    from modelpress.steps.quantize.modules import QuantLinear
    from modelpress.steps.quantize.torch_backend import quantize_module

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.out = nn.Linear(64, 32), nn.Linear(32, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.hidden(x)))

    torch.manual_seed(0)
    config = WeightQuantizeConfig.model_validate(INT4)
    quantized = quantize_module(MLP(), config, None, lambda m, x: m(x))
    layers = {name: m for name, m in quantized.named_modules() if isinstance(m, QuantLinear)}
    # 64 inputs: two groups of 32 per row (per channel would be one); 32 inputs: one group
    assert {name: tuple(m.scales.shape) for name, m in layers.items()} == {"hidden": (32, 2), "out": (4, 1)}
    assert (layers["hidden"].group_size, layers["hidden"].bits) == (32, 4)


def test_a_group_that_does_not_divide_a_width_is_refused(project: Path) -> None:
    """At validate when the Hugging Face config gives the widths; else before any calibration."""
    from modelpress.steps.quantize.config import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module

    with pytest.raises(RecipeError) as caught:
        validate_recipe(llm(project, stages=[{"weight-quantize": INT4}]))
    assert caught.value.problems == [
        "stages[0].weight-quantize: group_size 32 does not divide hidden_size 48, intermediate_size 80 of the "
        "model's Linear inputs; use 16"]
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 4))
    with pytest.raises(ModelpressError, match=r"group_size: 32 does not divide the input width of 1 layer\(s\): "
                                              r"2 \(48\); use group_size 16"):
        quantize_module(model, WeightQuantizeConfig.model_validate({**INT4, "algorithm": "gptq"}), [torch.randn(4, 64)],
                        lambda m, x: m(x))


def test_a_grid_value_with_no_effect_is_refused_one_that_moots_a_written_field_is_not() -> None:
    stage = {"weight-quantize": {**INT4, "algorithm": "gptq", "calibration": {"samples": 64}}}
    validate_recipe(cnn(stage, search={"grid": {"weight-quantize.algorithm": ["rtn", "gptq"]}}))
    with pytest.raises(RecipeError) as caught:
        validate_recipe(cnn({"weight-quantize": INT4}, search={"grid": {"weight-quantize.calibration.samples": [32]}}))
    assert caught.value.problems == ["search.grid.weight-quantize.calibration.samples: [0] 32: has no effect: this "
                                     "scheme calibrates nothing; calibration counts with algorithm: gptq, awq, "
                                     "smoothquant or mixed_precision"]


@pytest.mark.parametrize("name", ["minilm-sentiment", "mnist-cnn", "minilm-pruned-int8", "smollm2-int4"])
def test_the_recipe_a_version_is_registered_with_validates_again(name: str) -> None:
    """A dump sets every field (a version's recipe.json, which retraining reads back): it is
    checked, but not as if a user had written each default."""
    from modelpress.recipe.schema import load_recipe

    dump = load_recipe(shipped_recipes()[name]).model_dump(mode="json", by_alias=True)
    assert validate_recipe(dump).model_dump(mode="json", by_alias=True) == dump
    with pytest.raises(RecipeError, match="has no effect"):
        validate_recipe(dump, as_written=True)
