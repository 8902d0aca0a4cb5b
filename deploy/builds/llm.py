"""The base the LLM builds share: a gated causal-LM candidate → a folder its runtime loads.

Each LLM build (``compressed_tensors``, ``gptq``, ``gguf``, ``onnxruntime_genai``) is one class,
registered under its ``export:`` name, whose fields are the build's options and whose methods
do the work:

* ``format_problems(stages, hf_config)`` — why the recipe's stages cannot end in this format,
  read from the stage configs and the source's Hugging Face config (validate time, before
  anything is computed);
* ``write_folder(model, tokenizer_dir, out_dir)`` — transcode the candidate's own integer codes,
  scales and zero points (never a re-quantization, except where a format has no type for a code
  and the build says so);
* ``check_folder(out_dir, model, eval_input_ids)`` — load the folder with the format's real
  consumer and compare it with the candidate.

:class:`LLMBuild` turns these into the :class:`~modelpress.builds.Build` protocol: ``problems``
at ``modelpress validate``, and in publish write → check → the check's numbers logged as
``build.<name>.<metric>`` → the folder logged under ``builds/<name>/`` of the registered
version's run.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelpress.builds import Build, BuildContext
from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import BuildReport
from modelpress.core.registry import RecipeFacts
from modelpress.deploy.builds import MANIFEST, log_build

if TYPE_CHECKING:
    import torch
    from torch import nn


#: what the builds' checks feed the built model and the candidate: a few eval sequences, cut short
CHECK_SEQUENCES, CHECK_LENGTH = 2, 128
#: the capability a task declares when its models are Hugging Face causal LMs
CAUSAL_LM = "hf-causal-lm"


class LLMBuild(Build):
    """Base of the LLM builds; ``build_name`` is the name ``export:`` uses."""

    build_name: ClassVar[str] = ""
    #: Python modules the build needs at run time → the extra that installs them
    needs: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def format_problems(self, stages: list[Any], hf_config: Any) -> list[str]:
        """Why the recipe's stage configs cannot end in this format, each message starting with
        ``"<build_name>: "`` (empty: they can)."""

    @abstractmethod
    def write_folder(self, model: nn.Module, tokenizer_dir: Path, out_dir: Path) -> Path:
        """Write the candidate (and its tokenizer) into ``out_dir``; return the folder."""

    @abstractmethod
    def check_folder(self, out_dir: Path, model: nn.Module, eval_input_ids: torch.Tensor) -> dict[str, float]:
        """Load the folder with the format's consumer; its numbers against the candidate's (raises
        :class:`~modelpress.core.errors.ModelpressError` when they are out of bounds)."""

    def problems(self, facts: RecipeFacts) -> list[str]:
        if CAUSAL_LM not in facts.task.capabilities:
            return [f"builds causal language models; a {facts.task.name} model is not one"]
        if facts.source.artifact != "module":
            return [f"needs the PyTorch candidate; model.source {facts.source.source} gives a "
                    f"{facts.source.artifact} model"]
        try:
            hf_config = facts.source.facts().hf_config or {}
        except ModelpressError:
            return []  # the source reports its own unreadable config
        stages = [stage.config for stage in facts.stages]
        prefix = f"{self.build_name}: "  # the recipe's field path already names the build
        found = [p.removeprefix(prefix) for p in self.format_problems(stages, hf_config)]
        return found + [f"needs the Python package {module!r}, which is not installed: "
                        f'pip install "modelpress[{extra}]"'
                        for module, extra in self.needs.items() if importlib.util.find_spec(module) is None]

    def write(self, context: BuildContext) -> BuildReport:
        import mlflow

        if context.model is None:
            raise ModelpressError(f"{self.build_name}: needs the PyTorch candidate")
        with tempfile.TemporaryDirectory(prefix=f"modelpress-{self.build_name}-") as scratch:
            out = self.write_folder(context.model, context.tokenizer_dir(), Path(scratch) / self.build_name)
            metrics = {k: float(v) for k, v in self.check_folder(out, context.model, check_ids(context)).items()}
            manifest = json.loads((Path(out) / MANIFEST).read_text()) if (Path(out) / MANIFEST).is_file() else {}
            path = log_build(Path(out), self.build_name)
        mlflow.log_metrics({f"build.{self.build_name}.{k}": v for k, v in metrics.items()})
        notes = [f"{k}: {v}" for k, v in sorted(manifest.items()) if k not in ("build",)]
        return BuildReport(name=self.build_name, artifact_path=path, checks=metrics, notes=notes)


def check_ids(context: BuildContext) -> Any:
    """[sequences, length] eval token ids (the task's packing) both models are compared on."""
    import torch

    ids = context.task.example(context.eval_frame, CHECK_SEQUENCES)["input_ids"]
    return torch.as_tensor(ids)[:, :CHECK_LENGTH].contiguous()
