"""Every technique on a tiny randomly initialised Llama, through the existing stage code.

What the stages cannot do yet without the causal-LM task adapter (batches of packed token ids,
the LM loss, logits out of a ``CausalLMOutput``) is called here piece by piece, exactly as the
stages call it; the pipeline wiring comes with the task.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from modelpress.lm.metrics import compare, greedy_decode, next_token_loss
from modelpress.steps.quantize import WeightQuantizeConfig
from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear
from modelpress.steps.quantize.torch_backend import quantize_module
from modelpress.tasks.context import StageContext

from .conftest import tiny_llama

BLOCK_LINEARS = 2 * 7  # q, k, v, o, gate, up, down per layer


def lm_forward(model, ids):
    return model(input_ids=ids).logits


def causal_lm_call(model, inputs):
    return model(input_ids=inputs["input_ids"])


def lm_loss(model, inputs, _target):
    return next_token_loss(causal_lm_call(model, inputs).logits, inputs["input_ids"])


@pytest.fixture(scope="module")
def calibration(sequences):
    return list(sequences[:6].split(2))


def finite_logits(model, sequences) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=sequences).logits
    assert torch.isfinite(logits).all()
    return logits


G32 = {"granularity": "per-group", "group_size": 32}
SCHEMES = {
    "int4 g32 RTN": {"bits": 4, **G32},
    "int3 g32 asym RTN": {"bits": 3, **G32, "symmetric": False},
    "int4 g32 GPTQ": {"bits": 4, **G32, "algorithm": "gptq"},
    "int3 g32 asym GPTQ": {"bits": 3, **G32, "symmetric": False, "algorithm": "gptq"},
    "int4 g32 asym AWQ": {"bits": 4, **G32, "symmetric": False, "awq": {}},
    "int4 g32 asym GPTQ + AWQ": {"bits": 4, **G32, "symmetric": False, "algorithm": "gptq", "awq": {}},
    "W8A8 + SmoothQuant": {"bits": 8, "activations": "dynamic", "smoothquant": {"alpha": 0.5}},
    "fp8 W+A (emulated)": {"dtype": "fp8", "activations": "dynamic"},
}


@pytest.mark.parametrize("name", SCHEMES)
def test_weight_quantize_schemes_keep_the_llama_finite(name, llama, calibration, sequences):
    report: dict = {}
    config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **SCHEMES[name])
    quantized = quantize_module(llama, config, calibration, lm_forward, report)
    kinds = (Fp8Linear,) if "fp8" in name else (QuantLinear,)
    assert sum(isinstance(m, kinds) for m in quantized.modules()) == BLOCK_LINEARS
    assert isinstance(quantized.lm_head, nn.Linear)
    finite_logits(quantized, sequences)
    quality = compare(llama, quantized, sequences)
    assert 0 < quality.kl < 0.5 and quality.agreement > 0.5, quality
    if config.needs_calibration:  # the Llama's decoder layers are walked one at a time
        assert report["calibration_blocks"] == "model.layers (2 blocks, one at a time)"
    if config.algorithm == "gptq":
        assert report["gptq_calibration"] == "sequential over model.layers (2 blocks)"


@pytest.mark.parametrize("name", ["int4 g32 GPTQ", "int4 g32 asym AWQ"])
def test_calibration_device_walk_gives_the_same_model(name, llama, calibration, sequences):
    """``calibration.device`` moves blocks there one at a time; on the model's own device the
    result must be bit for bit the one of the plain walk (the CUDA test checks another device)."""
    plain = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **SCHEMES[name])
    moved = plain.model_copy(update={"calibration": plain.calibration.model_copy(update={"device": "cpu"})})
    a = quantize_module(llama, plain, calibration, lm_forward)
    b = quantize_module(llama, moved, calibration, lm_forward)
    assert torch.equal(finite_logits(a, sequences), finite_logits(b, sequences))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_blocks_calibrate_on_the_gpu_and_return_to_the_host(llama, calibration, sequences):
    seen = []
    hook = llama.model.layers[1].register_forward_pre_hook(
        lambda m, a: seen.append((next(m.parameters()).device.type,
                                  next(llama.model.layers[0].parameters()).device.type)))
    config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False, "device": "cuda"},
                                  **SCHEMES["int4 g32 GPTQ"])
    try:
        on_gpu = quantize_module(llama, config, calibration, lm_forward)
    finally:
        hook.remove()
    on_cpu = quantize_module(llama, config.model_copy(update={"calibration": {"progress": False}}),
                             calibration, lm_forward)
    assert all(t.device.type == "cpu" for t in [*on_gpu.parameters(), *on_gpu.buffers()])
    assert torch.allclose(finite_logits(on_gpu, sequences), finite_logits(on_cpu, sequences), atol=1e-2)


def test_the_input_is_untouched_without_a_deep_copy_and_inplace_reuses_it(llama, calibration, sequences):
    config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **SCHEMES["int4 g32 GPTQ"])
    before = finite_logits(llama, sequences)
    copied = quantize_module(llama, config, calibration, lm_forward)
    assert torch.equal(finite_logits(llama, sequences), before)
    own = {t.data_ptr() for t in [*llama.parameters(), *llama.buffers()]}
    assert not own & {t.data_ptr() for t in [*copied.parameters(), *copied.buffers()]}
    mine = tiny_llama()  # same seed, same weights
    inplace = quantize_module(mine, config, calibration, lm_forward, inplace=True)
    assert inplace is mine and not any(isinstance(m, nn.Linear) for m in mine.model.layers.modules())
    assert torch.equal(finite_logits(inplace, sequences), finite_logits(copied, sequences))


# ----------------------------------------------------------------------------- prune
def _pruner_scores(model, score, calibration, device=None):
    from modelpress.steps.prune.scores import Calibration, element_scores
    from modelpress.steps.prune.transformers_blocks import TransformerPruner

    pruner = TransformerPruner(model, "mlp")
    cal = Calibration([({"input_ids": c}, None) for c in calibration], lm_loss, causal_lm_call,
                      device=device, progress=False)
    return pruner, element_scores(model, pruner.scored_modules(), score, cal)


@pytest.mark.parametrize("score", ["wanda", "taylor"])
def test_mlp_units_pruned_by_score_keep_the_llama_finite(score, calibration, sequences):
    from modelpress.steps.prune.plan import plan_removals

    model = tiny_llama()
    pruner, scores = _pruner_scores(model, score, calibration)
    pruner.apply(plan_removals(pruner.groups(scores, {}, "ffn"), 0.25, "layer", 0.05))
    assert all(layer.mlp.gate_proj.out_features == 96 and layer.mlp.down_proj.in_features == 96
               for layer in model.model.layers)
    finite_logits(model, sequences)
    assert torch.equal(greedy_decode(model, sequences[:1, :4], 3)[:, :4], sequences[:1, :4])


def test_wanda_on_a_calibration_device_walks_blocks_and_scores_alike(calibration):
    model = tiny_llama()
    _, plain = _pruner_scores(model, "wanda", calibration)
    _, walked = _pruner_scores(model, "wanda", calibration, device="cpu")
    assert plain.keys() == walked.keys() and all(torch.allclose(plain[k], walked[k]) for k in plain)


def test_two_four_masks_from_wanda_scores(calibration, sequences):
    from modelpress.steps.prune.masks import two_four_masks
    from modelpress.steps.prune.scores import Calibration, element_scores

    model = tiny_llama()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"}
    cal = Calibration([({"input_ids": c}, None) for c in calibration], lm_loss, causal_lm_call, progress=False)
    masks = two_four_masks(element_scores(model, layers, "wanda", cal))
    with torch.no_grad():
        for name, mask in masks.items():
            layers[name].weight.mul_(mask)
    for m in layers.values():
        assert ((m.weight.view(m.out_features, -1, 4) == 0).sum(-1) >= 2).all()
    finite_logits(model, sequences)


# ----------------------------------------------------------------------------- lowrank
def test_lowrank_factors_the_llamas_linears(sequences):
    from modelpress.steps.lowrank import LowRankConfig, lowrank

    context = StageContext(task=None, data=pd.DataFrame({"split": []}))  # no recovery: no task needed
    factored = lowrank(tiny_llama(), LowRankConfig(param_budget=0.5, exclude=["lm_head"]), context)
    assert context.report["factored_layers"] == BLOCK_LINEARS
    assert isinstance(factored.model.layers[0].mlp.down_proj, nn.Sequential)
    finite_logits(factored, sequences)


# ----------------------------------------------------------------------------- distill / LoRA
def _kd_steps(teacher, student, sequences, steps=8):
    from modelpress.tasks.losses import causal_lm_kd_loss

    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    losses = []
    student.train()
    for _ in range(steps):
        with torch.no_grad():
            teacher_logits = teacher(input_ids=sequences).logits
        loss = causal_lm_kd_loss(student(input_ids=sequences).logits, teacher_logits, sequences, None, 2.0, 0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_layer_dropped_student_through_a_teacher_assistant_learns_token_level_kd(sequences):
    from modelpress.steps.distill.config import StudentSpec
    from modelpress.steps.distill.students import build_student

    teacher = tiny_llama(layers=4)
    assistant = build_student(StudentSpec(layers=3), teacher, teacher)
    student = build_student(StudentSpec(layers=2), assistant.model, teacher)
    assert len(assistant.model.model.layers) == 3 and student.model.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in student.model.model.layers] == [0, 1]
    # 3 -> 2 keeps layers 1 and 2
    assert student.pairs == [("model.layers.0", "model.layers.1"), ("model.layers.1", "model.layers.2")]
    # the KV cache is indexed by the new layer numbers: cached decode = recomputed decode
    prompt = sequences[:1, :5]
    ids = prompt
    with torch.no_grad():
        for _ in range(4):
            ids = torch.cat([ids, student.model(input_ids=ids).logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(greedy_decode(student.model, prompt, 4), ids)
    losses = _kd_steps(assistant.model.eval(), student.model, sequences)
    assert losses[-1] < 0.9 * losses[0], losses
    assert len(list(teacher.model.layers)) == 4  # the teacher is not modified


def test_lora_on_the_lm_loss_recovers_with_2_4_masks_kept(calibration, sequences):
    from modelpress.steps.finetune.config import LoraSettings
    from modelpress.steps.finetune.lora import attach_lora, mask_lora_deltas, merge_lora
    from modelpress.steps.finetune.masks import apply_masks, detect_masks
    from modelpress.steps.prune.masks import two_four_masks

    model = tiny_llama()
    targets = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    with torch.no_grad():  # 2:4-prune every block Linear by magnitude
        for name, mask in two_four_masks({n: model.get_submodule(n).weight.abs() for n in targets}).items():
            model.get_submodule(name).weight.mul_(mask)
    masks = detect_masks(model)
    peft_model = attach_lora(model, LoraSettings(r=4, alpha=8, target_modules=targets), [])
    assert mask_lora_deltas(peft_model, masks) == len(targets)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(10):
        loss = lm_loss(peft_model, {"input_ids": sequences}, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    merged = merge_lora(peft_model)
    apply_masks(merged, masks)
    assert losses[-1] < losses[0], losses
    assert type(merged).__name__ == "LlamaForCausalLM"
    for name in targets:
        w = merged.get_submodule(name).weight
        assert ((w.view(w.shape[0], -1, 4) == 0).sum(-1) >= 2).all()
    with torch.no_grad():
        tuned = float(lm_loss(merged.eval(), {"input_ids": sequences}, None))
    assert tuned < losses[0]
