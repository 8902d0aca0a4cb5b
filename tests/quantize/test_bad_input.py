"""Bad input fails before compute, with errors naming the field and what would work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from modelpress.steps.quantize import (
    QuantizeConfig,
    WeightQuantizeConfig,
    quantize,
    weight_quantize,
)
from modelpress.steps.quantize.calibration import CalibrationError


def test_exclude_pattern_matching_nothing_lists_layers(trained_net, exported, context):
    message = r"weight-quantize.exclude: 'attn' matches no layer; layers: inp, up, down, head"
    with pytest.raises(ValueError, match=message):
        weight_quantize(trained_net, WeightQuantizeConfig(exclude=["attn"]), context)
    with pytest.raises(ValueError, match=r"quantize.exclude: 'attn' matches no node; quantizable nodes: .*MatMul"):
        quantize(exported, QuantizeConfig(exclude=["attn"]), context)


def test_excluded_layers_stay_float(trained_net, context):
    quantized = weight_quantize(trained_net, WeightQuantizeConfig(exclude=["^head$"]), context)
    assert isinstance(quantized.head, torch.nn.Linear) and context.report["layer_precision"]["head"] == "fp32"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_calibration_is_refused_and_nothing_changes(trained_net, exported, digits_frame, task, bad):
    from modelpress.tasks.context import StageContext

    frame = digits_frame.copy()
    frame.loc[frame.index[frame.split == "calibration"][3], "f10"] = bad
    context = StageContext(task=task, data=frame)
    before = {k: v.clone() for k, v in trained_net.state_dict().items()}
    with pytest.raises(CalibrationError,
                       match=r"weight-quantize.calibration: input batch 0: 'pixel_values' has 1 NaN/inf"):
        weight_quantize(trained_net, WeightQuantizeConfig(algorithm="gptq", bits=4, granularity="per-group",
                                                          group_size=32), context)
    assert all(torch.equal(before[k], v) for k, v in trained_net.state_dict().items())
    with pytest.raises(CalibrationError, match="quantize.calibration"):
        quantize(exported, QuantizeConfig(activations="static"), context)


def test_nan_activations_inside_the_model_are_refused(trained_net, context):
    broken = type(trained_net)()
    broken.load_state_dict(trained_net.state_dict())
    with torch.no_grad():
        broken.up.weight[0, 0] = float("inf")
    with pytest.raises(CalibrationError, match="input of layer 'down'"):
        weight_quantize(broken, WeightQuantizeConfig(algorithm="gptq", exclude=["^up$"]), context)


@pytest.mark.parametrize("fields,expected", [
    ({"bits": 3}, "bits=3: backend 'onnxruntime' supports int8"),
    ({"dtype": "fp8"}, "dtype='fp8': backend 'onnxruntime' supports"),
    ({"algorithm": "gptq"}, "algorithm='gptq': backend 'onnxruntime'"),
    ({"backend": "torch"}, "use the 'weight-quantize' stage"),
    ({"smoothquant": {"alpha": 0.5}}, "smoothquant: needs activations: static"),
])
def test_onnxruntime_refuses_what_it_cannot_do(fields, expected):
    with pytest.raises(ValidationError, match=expected):
        QuantizeConfig(**fields)


@pytest.mark.parametrize("fields,expected", [
    ({"bits": 4, "activations": "dynamic"}, "bits=4: backend 'torch' supports 8-bit weights with int8 activations"),
    ({"activations": "static"}, "activations='static': backend 'torch' supports none or dynamic"),
    ({"backend": "onnxruntime"}, "use the 'quantize' stage"),
    ({"dtype": "fp8", "granularity": "per-group"}, "granularity='per-group': backend 'torch'"),
    ({"gptq": {"act_order": False}}, "gptq: options of algorithm: gptq, but algorithm is 'rtn'"),
    ({"awq": {}, "activations": "dynamic"}, "awq: scales weights for weight-only int"),
    ({"algorithm": "gptq", "gptq": {"damping": 0.1}}, "gptq.damping"),
])
def test_torch_refuses_what_it_cannot_do(fields, expected):
    with pytest.raises(ValidationError, match=expected):
        WeightQuantizeConfig(**fields)


def test_shipped_recipes_still_validate():
    from modelpress.recipe.schema import load_recipe, shipped_recipes

    for name in ("minilm-sentiment", "mnist-cnn"):
        assert load_recipe(shipped_recipes()[name]).stages


def test_recipe_error_names_the_stage_and_field():
    from modelpress.core.errors import RecipeError
    from modelpress.recipe.schema import validate_recipe

    raw = {"name": "x", "model": {"source": "package", "name": "small-cnn"},
           "data": {"source": "digits"}, "stages": [{"quantize": {"bits": 2}}],
           "registry": {"name": "x"}}
    with pytest.raises(RecipeError) as info:
        validate_recipe(raw)
    assert any("stages[0].quantize" in p and "bits=2" in p and "weight-quantize" in p for p in info.value.problems)


def test_recipe_with_both_stages_validates():
    from modelpress.recipe.schema import validate_recipe

    raw = {"name": "x", "model": {"source": "package", "name": "small-cnn"},
           "data": {"source": "digits"}, "registry": {"name": "x"},
           "stages": [{"weight-quantize": {"bits": 4, "granularity": "per-group", "group_size": 32,
                                           "algorithm": "gptq", "exclude": ["fc2"]}},
                      {"quantize": {"activations": "static", "smoothquant": {"alpha": 0.5},
                                    "calibration": {"method": "percentile", "samples": 64}}}]}
    recipe = validate_recipe(raw)
    assert [s.name for s in recipe.stages] == ["weight-quantize", "quantize"]
