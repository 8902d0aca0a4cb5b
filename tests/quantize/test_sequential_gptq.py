"""Block-by-block GPTQ calibration and AWQ scaling, on models with the shape of a transformer."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from modelpress.steps.quantize import WeightQuantizeConfig
from modelpress.steps.quantize.gptq import HessianAccumulator
from modelpress.steps.quantize.sequential import BlockInputs, call_groups, chained_blocks
from modelpress.steps.quantize.torch_backend import LayerStats, quantize_layer, quantize_module


class Block(nn.Module):
    """Pre-norm block with the call pattern of a decoder layer: q/k/v share one input, then o, up, down."""

    def __init__(self, d: int = 32):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.up, self.down = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        h = self.norm1(x)
        attn = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) * scale / 8, -1) @ self.v(h)
        x = x + self.o(attn)
        return x + self.down(torch.relu(self.up(self.norm2(x))))


class Stack(nn.Module):
    def __init__(self, chained: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(8, 32)
        self.blocks = nn.ModuleList(Block() for _ in range(3))
        self.head = nn.Linear(32, 4)
        self.chained = chained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h, scale=2.0) if self.chained else block(h, scale=2.0) * 0.5  # *0.5: not chained
        return self.head(h)


def forward(model, batch):
    return model(batch)


@pytest.fixture(scope="module")
def batches():
    torch.manual_seed(1)
    return [torch.randn(4, 16, 8) * torch.linspace(0.2, 3, 8) for _ in range(6)]


def test_layers_reading_the_same_input_form_one_group_in_call_order(batches):
    model = Stack()
    inputs = BlockInputs.capture(model, model.blocks[0], batches, forward)
    assert len(inputs.calls) == len(batches) and inputs.calls[0][1] == {"scale": 2.0}
    names = ["down", "up", "o", "v", "k", "q"]  # given in reverse: the order must come from the calls
    assert call_groups(model.blocks[0], names, inputs) == [["q", "k", "v"], ["o"], ["up"], ["down"]]


def test_blocks_are_found_only_when_chained(batches):
    chained, broken = Stack(), Stack(chained=False)
    layers = {n: m for n, m in chained.named_modules() if isinstance(m, nn.Linear)}
    assert chained_blocks(chained, layers, batches[0], forward)[0] == "blocks"
    assert chained_blocks(broken, layers, batches[0], forward) is None


def test_each_layer_is_calibrated_on_the_outputs_of_the_quantized_layers_before_it(batches):
    """Block 1's q Hessian must come from inputs produced by the *quantized* block 0 (sequential),
    which differ from the float model's (one pass)."""
    model = Stack()
    config = WeightQuantizeConfig(bits=3, granularity="per-group", group_size=32, algorithm="gptq",
                                  exclude=["embed", "head"], calibration={"progress": False})
    report: dict = {}
    quantized = quantize_module(model, config, batches, forward, report)
    assert report["gptq_calibration"] == "sequential over blocks (3 blocks)"

    def q_stats(net):
        stats = LayerStats(HessianAccumulator(32))
        hook = net.blocks[1].q.register_forward_pre_hook(lambda m, a: stats.add(a[0], "blocks.1.q"))
        with torch.inference_mode():
            for batch in batches:
                net(batch)
        hook.remove()
        return stats

    seen_by_quantized, seen_by_float = q_stats(quantized), q_stats(model)
    assert not torch.allclose(seen_by_quantized.hessian.value(), seen_by_float.hessian.value(), rtol=1e-3)
    # GPTQ of block 1's q from what the quantized model feeds it gives the sequential codes exactly
    assert torch.equal(quantize_layer(model.blocks[1].q, config, seen_by_quantized).qweight,
                       quantized.blocks[1].q.qweight)
    assert not torch.equal(quantize_layer(model.blocks[1].q, config, seen_by_float).qweight,
                           quantized.blocks[1].q.qweight)


def test_sequential_gptq_beats_round_to_nearest_on_the_model_output(batches):
    model = Stack()
    common = {"bits": 3, "granularity": "per-group", "group_size": 32, "exclude": ["embed"],
              "calibration": {"progress": False}}
    held_out = [torch.randn(4, 16, 8) * torch.linspace(0.2, 3, 8) for _ in range(3)]

    def error(net):
        with torch.inference_mode():
            return sum(float(((net(x) - model(x)) ** 2).mean()) for x in held_out)

    rtn = quantize_module(model, WeightQuantizeConfig(**common), batches, forward)
    gptq = quantize_module(model, WeightQuantizeConfig(**common, algorithm="gptq", awq={}), batches, forward)
    assert error(gptq) < 0.8 * error(rtn), (error(gptq), error(rtn))

    buffer = io.BytesIO()
    torch.save(gptq, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=False)
    with torch.inference_mode():
        assert torch.equal(reloaded(held_out[0]), gptq(held_out[0]))


def test_awq_scaling_lowers_the_output_error_of_a_trained_layer(trained_net, digits_frame, task):
    from modelpress.steps.quantize.awq import awq_smoothing, output_error
    from modelpress.steps.quantize.qmath import Grid, fake_quantize

    captured = []
    hook = trained_net.down.register_forward_pre_hook(lambda m, a: captured.append(a[0].detach()))
    with torch.no_grad():
        trained_net(torch.from_numpy(task.encode(digits_frame)["pixel_values"].copy()))
    hook.remove()
    x = torch.cat(captured).reshape(-1, 128)
    cal, held_out = x[::2], x[1::2]
    h_cal, h_eval = HessianAccumulator(128), HessianAccumulator(128)
    h_cal.add(cal)
    h_eval.add(held_out)
    w = trained_net.down.weight.detach()
    quant = lambda v: fake_quantize(v, Grid(3, True), 32)
    inv_s = awq_smoothing(w, h_cal.value(), quant)
    assert inv_s is not None and inv_s.shape == (128,)
    scaled = quant(w / inv_s) * inv_s
    assert output_error(scaled - w, h_eval.value()) < 0.95 * output_error(quant(w) - w, h_eval.value())
