"""``export: [huggingface]``: the registered version of a Hugging Face model evaluated as a PyTorch
module (a causal LM): the gated module itself (what champions are loaded back from, packed
weights included), with the candidate's Hugging Face folder (config, tokenizer, weights) logged
under ``builds/huggingface/`` of the version's run, which ``modelpress pull --build huggingface``
fetches and any Transformers user loads with ``from_pretrained``.

The folder holds plain weights: a quantized layer is written as its dequantized weight (SmoothQuant
/ AWQ factors folded in, exactly), a low-rank pair as its product. It loads as the architecture the
config names and reproduces the candidate's logits, which the check verifies with Transformers;
activations quantized at run time (W8A8, fp8) are not part of a Hugging Face folder, so for those
the check reports the difference instead of requiring a match. The quantized formats (their
integer codes) are the ``compressed-tensors``, ``gptq``, ``gguf`` and ``onnxruntime-genai`` builds.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from modelpress.builds import Build, BuildContext
from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import BuildReport
from modelpress.core.registry import RecipeFacts, register_build
from modelpress.deploy.builds import MANIFEST, checks, log_build
from modelpress.deploy.builds.llm import check_ids
from modelpress.steps.quantize.config import WeightQuantizeConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

NAME = "huggingface"


@register_build(NAME)
class HuggingFaceBuild(Build):
    summary: ClassVar[str] = ("the PyTorch module the task evaluated (registered), with its Hugging Face "
                              "folder: config, tokenizer, weights")
    registers: ClassVar[bool] = True

    max_perplexity_ratio: float = Field(1.001, gt=1.0, description="check: allowed perplexity drift of "
                                        "the folder reloaded by Transformers (weight-only candidates)")

    def problems(self, facts: RecipeFacts) -> list[str]:
        if facts.task.evaluated_in != "torch" or facts.task.hf_auto_class is None:
            return [f"a {facts.task.name} model is not registered as a Hugging Face module; register "
                    f"{facts.task.registered_build!r} instead"]
        if facts.source.artifact != "module":
            return [f"model.source {facts.source.source} gives no Hugging Face module"]
        return self._unchecked_ratio(facts)

    def _unchecked_ratio(self, facts: RecipeFacts) -> list[str]:
        """The drift check is skipped for activations quantized at run time: a bound given for
        such a candidate would bound nothing."""

        default = type(self).model_fields["max_perplexity_ratio"].default
        if "max_perplexity_ratio" not in self.model_fields_set or self.max_perplexity_ratio == default:
            return []
        runtime = [i for i, stage in enumerate(facts.stages) if isinstance(stage.config, WeightQuantizeConfig)
                   and stage.config.dtype in ("int", "fp8") and stage.config.activations != "none"]
        if not runtime:
            return []
        return [f"max_perplexity_ratio: has no effect: stages[{runtime[0]}].weight-quantize quantizes "
                "activations at run time, which a Hugging Face folder does not hold; the folder's logit "
                "difference is reported, not bounded"]

    def write(self, context: BuildContext) -> BuildReport:
        if context.torch_model_uri is None or context.model is None or context.scratch is None:
            raise ValueError("the huggingface build needs the PyTorch candidate")
        folder = context.scratch / NAME
        notes = self.write_folder(context.model, context.task.preprocessor(), folder)
        checks = self.check_folder(folder, context.model, check_ids(context), context.task.hf_auto_class or "", notes)
        path = log_build(folder, NAME)
        context.hf_dir = folder
        _log_metrics(checks)
        return BuildReport(name=NAME, artifact_path=path, model_uri=context.torch_model_uri, checks=checks,
                           notes=notes)

    @classmethod
    def load_registered(cls, model_uri: str) -> Any:
        import mlflow

        return mlflow.pytorch.load_model(model_uri).eval()

    def write_folder(self, model: nn.Module, tokenizer: Any, folder: Path) -> list[str]:
        """``save_pretrained`` of a plain copy of ``model`` + the tokenizer; returns what changed."""

        if not hasattr(model, "save_pretrained"):
            raise ModelpressError(f"{NAME}: the candidate ({type(model).__name__}) is not a Hugging Face model")
        plain, notes = plain_copy(model)
        folder.mkdir(parents=True, exist_ok=True)
        plain.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        (folder / MANIFEST).write_text(json.dumps({"build": NAME, "notes": notes}, indent=2) + "\n")
        return notes

    def check_folder(self, folder: Path, model: nn.Module, input_ids: torch.Tensor, auto_class: str,
                     notes: list[str]) -> dict[str, float]:
        """Transformers loads the folder as its architecture; its logits are the candidate's (weight-
        only), or their difference is reported (activations quantized at run time)."""
        import transformers


        try:
            loaded = getattr(transformers, auto_class).from_pretrained(str(folder), local_files_only=True).eval()
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelpressError(f"{NAME}: Transformers cannot load the written folder as {auto_class}: "
                                  f"{str(exc).splitlines()[0]}") from None
        metrics = checks.compare_logits(checks.model_logits(model, input_ids),
                                        checks.model_logits(loaded.float(), input_ids), input_ids)
        if not any("runtime-quantized" in n for n in notes):
            checks.require_close(metrics, NAME, self.max_perplexity_ratio)
        return metrics


def _log_metrics(checks: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics({f"build.{NAME}.{k}": v for k, v in checks.items()})


def plain_copy(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy whose every layer is a plain ``nn.Linear`` again (weights as the candidate computes)."""
    import torch

    from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

    plain = copy.deepcopy(model)
    counts = {"dequantized": 0, "runtime-quantized activations": 0, "multiplied low-rank": 0}
    for name, module in list(plain.named_modules()):
        if isinstance(module, (QuantLinear, Fp8Linear)):
            _replace(plain, name, _linear(_effective_weight(module), module.bias))
            counts["dequantized"] += 1
            counts["runtime-quantized activations"] += module.act != "none"
        elif _is_factored(module):
            first, second = module[0], module[1]
            with torch.no_grad():
                weight = second.weight.double() @ first.weight.double()
            _replace(plain, name, _linear(weight.to(first.weight.dtype), second.bias))
            counts["multiplied low-rank"] += 1
    notes = [f"{count} layers {what}" for what, count in counts.items() if count]
    return plain.eval(), notes


def _effective_weight(module: nn.Module) -> torch.Tensor:
    from modelpress.steps.quantize.modules import QuantLinear

    if isinstance(module, QuantLinear):
        return module.dequantized_weight().float()
    weight = module.weight_fp8.float() * module.weight_scale.float()
    return weight if module.smooth is None else weight * module.smooth.float()


def _is_factored(module: nn.Module) -> bool:
    """The ``lowrank`` stage's pair: Sequential(Linear(in, r, no bias), Linear(r, out))."""
    from torch import nn

    return (isinstance(module, nn.Sequential) and len(module) == 2
            and all(isinstance(m, nn.Linear) for m in module) and module[0].bias is None)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    import torch
    from torch import nn

    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                      dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias.to(weight.dtype))
    return layer


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


