"""Structured pruning must really remove units: exact parameter counts, working forward at
several shapes, save/load and ONNX export round trips."""

from __future__ import annotations

import io

import pytest
import torch

from modelpress.core.registry import get_stage
from modelpress.deploy.onnx_export import check_parity, export_onnx
from modelpress.sources.zoo.nets import SmallCNN
from modelpress.tasks.evaluation import onnx_runner, onnx_session

from .conftest import IMAGE, params, tiny_bert


def _prune(model, context, **config):
    spec = get_stage("prune")
    return spec.apply(
        model, spec.config(method="structured", report_latency=False, **config), context
    )


def test_cnn_channels_are_removed_exactly(image_context) -> None:
    torch.manual_seed(0)
    model = SmallCNN(IMAGE, 3, width=8, hidden=16)
    pruned = _prune(model, image_context, scope="layer", sparsity=0.5)
    # conv1 8→4, conv2 16→8 (its input 8→4), fc1 input 16·2·2→8·2·2; fc1/fc2 feed the
    # logits/embedding and keep their width.
    expected = (1 * 4 * 9 + 4) + (4 * 8 * 9 + 8) + (8 * 2 * 2 * 16 + 16) + (16 * 3 + 3)
    assert params(pruned) == expected < params(model)
    assert (pruned.conv1.out_channels, pruned.conv2.out_channels) == (4, 8)
    assert image_context.report["units.conv2"] == "8/16"
    for rows in (1, 5):
        logits, features = pruned(torch.rand(rows, *IMAGE))
        assert logits.shape == (rows, 3) and features.shape == (rows, 16)
    assert params(model) == (1 * 8 * 9 + 8) + (8 * 16 * 9 + 16) + (16 * 2 * 2 * 16 + 16) + (
        16 * 3 + 3
    )


def test_cnn_pruned_with_schedule_and_recovery_exports_to_onnx(image_context) -> None:
    torch.manual_seed(0)
    model = SmallCNN(IMAGE, 3, width=8, hidden=16)
    pruned = _prune(
        model,
        image_context,
        sparsity=0.5,
        score="taylor",
        schedule={"steps": 2},
        recovery={"epochs": 1, "lr": 1e-3},
    )
    assert image_context.report["params_after"] < image_context.report["params_before"]
    exported = export_onnx(pruned, image_context.task, image_context.split("eval"))
    check_parity(pruned, exported, image_context.task, image_context.split("eval"))


def _bert_expected_drop(hidden: int, ffn_removed: int, heads_removed: int, head_size: int) -> int:
    ffn = ffn_removed * (hidden + 1 + hidden)  # intermediate rows (+bias) and output columns
    attention = (
        heads_removed * head_size * (3 * (hidden + 1) + hidden)
    )  # q/k/v rows (+bias), out columns
    return ffn + attention


def test_bert_ffn_units_and_heads_are_removed_exactly(text_context) -> None:
    model = tiny_bert(layers=2, hidden=64, heads=4, ffn=128)
    pruned = _prune(model, text_context, scope="layer", sparsity=0.5, score="wanda")
    per_layer = _bert_expected_drop(hidden=64, ffn_removed=64, heads_removed=2, head_size=16)
    assert params(model) - params(pruned) == 2 * per_layer
    for layer in pruned.encoder.encoder.layer:
        attention = layer.attention.self
        assert (attention.num_attention_heads, attention.all_head_size) == (2, 32)
        assert layer.intermediate.dense.out_features == layer.output.dense.in_features == 64
    assert {len(h) for h in pruned.encoder.config.pruned_heads.values()} == {2}
    for rows, length in ((1, 3), (3, 17), (4, 32)):
        ids = torch.randint(100, 2000, (rows, length))
        mask = torch.ones_like(ids)
        mask[0, length // 2 :] = 0  # padding in one row
        logits, embedding = pruned(input_ids=ids, attention_mask=mask)
        assert logits.shape == (rows, 2) and embedding.shape == (rows, 64)


def test_bert_head_sparsity_is_separate_and_rounding_applies(text_context) -> None:
    model = tiny_bert(layers=2, hidden=64, heads=4, ffn=128)
    pruned = _prune(
        model,
        text_context,
        scope="layer",
        target="ffn+heads",
        sparsity=0.4,
        head_sparsity=0.25,
        round_to=16,
    )
    for layer in pruned.encoder.encoder.layer:
        assert layer.attention.self.num_attention_heads == 3
        assert (
            layer.intermediate.dense.out_features == 80
        )  # 128 - floor(0.4·128) = 77 → next multiple of 16


def test_pruned_bert_round_trips_save_load_and_onnx(text_context) -> None:
    model = tiny_bert()
    pruned = _prune(
        model,
        text_context,
        sparsity=0.5,
        head_sparsity=0.5,
        score="taylor",
        recovery={"epochs": 1, "lr": 1e-4},
    )
    buffer = io.BytesIO()
    torch.save(pruned, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).eval()
    batch = text_context.task.encode(text_context.split("eval"))
    inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.no_grad():
        torch.testing.assert_close(text_context.task.call(loaded, inputs)[0], text_context.task.call(pruned, inputs)[0])
    exported = export_onnx(pruned, text_context.task, text_context.split("eval"))
    check_parity(pruned, exported, text_context.task, text_context.split("eval"))
    # a shape the export never saw: the head count is baked in, not the example's shape
    ids = torch.randint(100, 2000, (5, 23))
    logits, _ = onnx_runner(onnx_session(exported))(
        {"input_ids": ids.numpy(), "attention_mask": torch.ones_like(ids).numpy()}
    )
    with torch.no_grad():
        expected = pruned(input_ids=ids, attention_mask=torch.ones_like(ids))[0].numpy()
    assert abs(logits - expected).max() < 1e-4


def test_llama_mlp_units_are_removed_exactly() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from modelpress.steps.prune.plan import plan_removals
    from modelpress.steps.prune.scores import element_scores
    from modelpress.steps.prune.transformers_blocks import TransformerPruner

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config).eval()
    before = params(model)
    pruner = TransformerPruner(model, "mlp")
    scores = element_scores(model, pruner.scored_modules(), "l2")
    plan = plan_removals(pruner.groups(scores, {}, "ffn"), 0.25, "layer", 0.05)
    pruner.apply(plan)
    assert before - params(model) == 2 * 16 * (32 * 3)  # 16 units × (gate row, up row, down column)
    for length in (1, 7):
        assert model(torch.randint(0, 128, (2, length))).logits.shape == (2, length, 128)


@pytest.mark.parametrize("target", ["channels", "heads"])
def test_target_must_fit_the_architecture(image_context, text_context, target: str) -> None:
    from modelpress.core.errors import ModelpressError

    model, context = (
        (tiny_bert(), text_context)
        if target == "channels"
        else (SmallCNN(IMAGE, 3, 8, 16), image_context)
    )
    with pytest.raises(ModelpressError, match="target"):
        _prune(model, context, target=target)
