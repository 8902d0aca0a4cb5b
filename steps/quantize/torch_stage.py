"""``weight-quantize``: the torch backend as a module stage (runs before ONNX export).

Kept separate from ``quantize`` (the ONNX Runtime graph stage) because the registry has one kind
per stage name; both share the same config fields (see ``config.py``). Heavy imports stay inside
the function so that recipe validation stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelpress.core.registry import register_stage
from modelpress.steps.quantize.calibration import calibration_batches
from modelpress.steps.quantize.config import WeightQuantizeConfig

if TYPE_CHECKING:
    import torch

    from modelpress.tasks.context import StageContext


def task_forward(task: Any) -> Any:
    """The task's own forward (a causal LM's: the last positions' logits), embedding side."""
    return lambda model, batch: task.forward(model, batch)[1]


def with_protected(config: WeightQuantizeConfig, protected: dict[str, str],
                   report: dict[str, Any]) -> WeightQuantizeConfig:
    """``config`` excluding the modules the task protects (a tied LM head), reported as kept float."""
    import re

    if not protected:
        return config
    report["kept_float"] = "; ".join(f"{name}: {why}" for name, why in protected.items())
    return config.model_copy(update={"exclude": [*config.exclude, *(f"^{re.escape(n)}$" for n in protected)]})


@register_stage("weight-quantize", WeightQuantizeConfig, kind="module",
                summary="PyTorch quantized Linear layers: int8/4/3/2 weights (RTN/GPTQ), W8A8, fp8, fp16/bf16")
def weight_quantize(model: torch.nn.Module, config: WeightQuantizeConfig,
                    context: StageContext) -> torch.nn.Module:
    from modelpress.steps.quantize.torch_backend import quantize_module

    batches = calibration_batches(context, config.calibration, "weight-quantize") \
        if config.needs_calibration else None
    config = with_protected(config, context.task.protected_modules(model), context.report)
    return quantize_module(model, config, batches, task_forward(context.task), context.report,
                           inplace=context.owns_model)
