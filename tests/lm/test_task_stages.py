"""Every technique on a tiny Llama through the stage registry, fed by the causal-lm task: packed
corpus batches, the LM loss, the token-level KD loss, a tied LM head left as it is."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from modelpress.core.registry import get_stage
from modelpress.lm.metrics import compare
from modelpress.tasks import TaskSpec
from modelpress.tasks.context import StageContext

from .conftest import WORDS, tiny_llama, word_tokenizer

BLOCK_LINEARS = 2 * 7


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    word_tokenizer().save_pretrained(folder)
    return TaskSpec("causal-lm", tokenizer=str(folder), max_length=16, fidelity_positions=4).build()


@pytest.fixture(scope="module")
def corpus():
    generator = torch.Generator().manual_seed(5)
    docs = [" ".join(WORDS[int(i)] for i in torch.randint(0, 60, (int(n),), generator=generator))
            for n in torch.randint(6, 20, (240,), generator=generator)]
    return pd.DataFrame({"text": docs, "split": ["eval"] * 40 + ["calibration"] * 40 + ["train"] * 160})


def tied_llama(layers: int = 2) -> nn.Module:
    model = tiny_llama(layers=layers)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    return model


def run(name: str, model: nn.Module, config: dict, task, corpus) -> tuple[nn.Module, dict]:
    spec = get_stage(name)
    context = StageContext(task=task, data=corpus, seed=0)
    return spec.apply(model, spec.config.model_validate(config), context), context.report


def eval_ids(task, corpus) -> torch.Tensor:
    return torch.as_tensor(task.example(corpus[corpus["split"] == "eval"], 6)["input_ids"])


def finite(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert torch.isfinite(logits).all()
    return logits


def test_the_task_packs_each_frame_on_its_own_and_scores_next_tokens(task, corpus):
    calibration = corpus[corpus["split"] == "calibration"]
    batch = task.example(calibration, 3)["input_ids"]
    assert batch.shape == (3, 16) and batch.dtype == "int64"
    eval_tokens = set(task.encode(corpus[corpus["split"] == "eval"])["input_ids"].ravel().tolist())
    batches = list(task.batches(calibration, 4, shuffle=True, seed=1))
    assert len(batches) == task.batch_count(calibration, 4)
    assert all((b["input_ids"] == y).all() for b, y in batches)  # labels: the ids themselves
    assert eval_tokens  # packing really ran
    logits = torch.zeros(1, 4, 130)
    logits[0, torch.arange(3), torch.tensor([7, 8, 9])] = 5.0  # positions 0..2 predict 7, 8, 9
    assert task.correct(logits, torch.tensor([[6, 7, 8, 1]])) == (2, 3)


@pytest.mark.parametrize("config", [
    {"bits": 4, "granularity": "per-group", "group_size": 32},
    {"bits": 3, "granularity": "per-group", "group_size": 32, "symmetric": False, "algorithm": "gptq"},
    {"bits": 4, "granularity": "per-group", "group_size": 32, "algorithm": "gptq", "awq": {"exclude": ["o_proj"]}},
    {"bits": 8, "activations": "dynamic", "smoothquant": {"alpha": 0.5}},
    {"dtype": "fp8", "activations": "dynamic"},
], ids=["int4-rtn", "int3-gptq", "int4-gptq-awq", "w8a8-smoothquant", "fp8"])
def test_weight_quantize_through_the_task_keeps_the_tied_head(config, task, corpus):
    model = tied_llama()
    calibration = {"samples": 6, "batch_size": 3, "progress": False}
    quantized, report = run("weight-quantize", model, {**config, "calibration": calibration}, task, corpus)
    assert isinstance(quantized.lm_head, nn.Linear)  # the task protects the tied head
    assert quantized.lm_head.weight is quantized.model.embed_tokens.weight
    assert "lm_head" in report["kept_float"]
    ids = eval_ids(task, corpus)
    finite(quantized, ids)
    quality = compare(model, quantized, ids)
    assert quality.kl < 0.5 and quality.agreement > 0.5, quality


@pytest.mark.parametrize("score", ["wanda", "taylor"])
def test_structured_mlp_pruning_by_calibration_score(score, task, corpus):
    pruned, report = run("prune", tiny_llama(), {"method": "structured", "scope": "layer", "sparsity": 0.25,
                                                  "score": score, "calibration_batches": 2,
                                                  "calibration_batch_size": 4}, task, corpus)
    assert all(layer.mlp.gate_proj.out_features == 96 for layer in pruned.model.layers)
    assert pruned.config.intermediate_size == 96  # still describable as a Llama
    assert report["units.model.layers.0.ffn"] == "96/128"
    finite(pruned, eval_ids(task, corpus))


def test_two_four_masks_skip_the_tied_head(task, corpus):
    model = tied_llama()
    pruned, report = run("prune", model, {"method": "semi-structured-2:4", "score": "wanda",
                                          "calibration_batches": 2, "calibration_batch_size": 4}, task, corpus)
    assert "lm_head" in report["kept_dense"]
    assert torch.equal(pruned.model.embed_tokens.weight, model.model.embed_tokens.weight)
    w = pruned.model.layers[0].mlp.down_proj.weight
    assert ((w.view(w.shape[0], -1, 4) == 0).sum(-1) >= 2).all()
    finite(pruned, eval_ids(task, corpus))


def test_layer_dropped_student_through_a_teacher_assistant(task, corpus):
    teacher = tiny_llama(layers=4)
    student, report = run("distill", teacher, {
        "student": {"layers": 2}, "assistants": [{"layers": 3}], "epochs": 2, "batch_size": 4, "max_train_rows": 50,
        "lr": 3e-3, "temperature": 2.0, "mixed_precision": "no"}, task, corpus)
    assert student.config.num_hidden_layers == 2 and len(student.model.layers) == 2
    assert report["links"] == 2 and report["link1.name"] == "teacher->assistant1"
    # the task's token-level loss and next-token accuracy are what validation reports
    assert 0 < report["link2.best_val_loss"] < 10 and 0 <= report["link2.best_val_accuracy"] <= 1
    finite(student, eval_ids(task, corpus))


def test_lora_on_the_lm_loss_adapts_blocks_not_the_tied_head(task, corpus):
    model = tied_llama()
    tuned, report = run("finetune", model, {"lora": {"r": 4, "alpha": 8}, "epochs": 2, "batch_size": 4,
                                            "max_train_rows": 60, "lr": 5e-3, "mixed_precision": "no"}, task, corpus)
    assert report["method"] == "lora"
    assert report["val_loss_after"] < report["val_loss_before"]
    assert torch.equal(tuned.lm_head.weight, model.lm_head.weight)  # embeddings untouched
    assert not torch.equal(tuned.model.layers[0].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight)
    finite(tuned, eval_ids(task, corpus))


def test_lowrank_with_recovery_on_the_lm_loss(task, corpus):
    factored, report = run("lowrank", tied_llama(), {"param_budget": 0.5, "recovery": {"epochs": 1, "batch_size": 4}},
                           task, corpus)
    assert report["factored_layers"] == BLOCK_LINEARS and report["rank.lm_head"].startswith("kept")
    finite(factored, eval_ids(task, corpus))


def test_weight_quantize_changes_the_model_in_place_only_when_the_stage_owns_it(task, corpus):
    """A pipeline step owns its input (materialized for it): quantized in place, its float weights
    are freed as it goes. Anyone else's model is left as it was."""
    spec = get_stage("weight-quantize")
    config = spec.config.model_validate({"bits": 4, "granularity": "per-group", "group_size": 32,
                                         "calibration": {"samples": 6, "batch_size": 3, "progress": False}})
    model = tiny_llama()
    before = model.model.layers[0].mlp.up_proj
    kept = spec.apply(model, config, StageContext(task=task, data=corpus))
    assert kept is not model and model.model.layers[0].mlp.up_proj is before
    owned = spec.apply(model, config, StageContext(task=task, data=corpus, owns_model=True))
    assert owned is model and model.model.layers[0].mlp.up_proj is not before
    assert not isinstance(model.model.layers[0].mlp.up_proj, nn.Linear)
