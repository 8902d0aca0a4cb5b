"""What the LLM builds share as registered builds: each module's pure functions behind one class.

A module (``compressed_tensors``, ``gptq``, ``gguf``, ``onnxruntime_genai``) defines its options as
``Config(LLMBuild)`` plus ``problems(config, stages, hf_config)``, ``write(model, tokenizer_dir,
out_dir, config)`` and ``check(out_dir, model, eval_input_ids, config)``. :class:`LLMBuild` turns
them into a :class:`~modelpress.builds.Build`: ``problems`` at ``modelpress validate`` (from the
recipe's stage configs and the source's Hugging Face config), and in publish write → check with
the format's real consumer → the check's numbers logged as ``build.<name>.<metric>`` → the folder
logged under ``builds/<name>/`` of the registered version's run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from modelpress.builds import Build, BuildContext
from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import BuildReport
from modelpress.core.registry import RecipeFacts
from modelpress.deploy.builds import MANIFEST, log_build

#: what the builds' checks feed the built model and the candidate: a few eval sequences, cut short
CHECK_SEQUENCES, CHECK_LENGTH = 2, 128
#: the capability a task declares when its models are Hugging Face causal LMs
CAUSAL_LM = "hf-causal-lm"


class LLMBuild(Build):
    """Base of the LLM builds' configs; ``build_name`` is the name ``export:`` uses."""

    build_name: ClassVar[str] = ""
    #: Python modules the build needs at run time → the extra that installs them
    needs: ClassVar[dict[str, str]] = {}

    @classmethod
    def functions(cls) -> ModuleType:
        """The module holding this build's ``problems`` / ``write`` / ``check``."""
        return importlib.import_module(cls.__module__)

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
        found = self.functions().problems(self, stages, hf_config)
        prefix = f"{self.build_name}: "
        found = [p.removeprefix(prefix) for p in found]
        return found + [f"needs the Python package {module!r}, which is not installed: "
                        f'pip install "modelpress[{extra}]"'
                        for module, extra in self.needs.items() if importlib.util.find_spec(module) is None]

    def write(self, context: BuildContext) -> BuildReport:
        import mlflow

        if context.model is None:
            raise ModelpressError(f"{self.build_name}: needs the PyTorch candidate")
        functions = self.functions()
        with tempfile.TemporaryDirectory(prefix=f"modelpress-{self.build_name}-") as scratch:
            out = functions.write(context.model, context.tokenizer_dir(), Path(scratch) / self.build_name, self)
            metrics = {k: float(v) for k, v in functions.check(out, context.model, check_ids(context), self).items()}
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
