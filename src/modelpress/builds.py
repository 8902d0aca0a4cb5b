"""What every build (export format) declares and does; implementations live in deploy/builds/.

A build is one class registered under the name ``export:`` uses: its pydantic fields are the
build's options and its methods do the work. ``problems`` refuses, at validate, a recipe whose
candidate it cannot build; ``write`` writes the files from the gated candidate, checks them with
the format's real consumer and logs them with the registered version (by default under
``builds/<name>/`` of the version's run). The LLM builds share one more layer of methods
(``modelpress.deploy.builds.llm.LLMBuild``).

Exactly one build *registers*: its MLflow model is the registered version's model (the ONNX
graph for the classification tasks); the others run after registration, with the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelpress.core.registry import RecipeFacts, StrictConfig
from modelpress.datasets.pixels import PREPROCESSOR_FILE, processor

if TYPE_CHECKING:
    import onnx
    import pandas as pd
    import torch
    from onnx import ModelProto  # the name `onnx` is also a field of BuildContext

    from modelpress.core.handoffs import BuildReport, Parity
    from modelpress.tasks import Task


@dataclass
class BuildContext:
    """The gated candidate and what a build may need to write and check it."""

    name: str  # the registered model's name
    task: Task
    eval_frame: pd.DataFrame
    model: torch.nn.Module | None = None  # the PyTorch candidate (None for an ONNX source)
    onnx: onnx.ModelProto | None = None  # the ONNX candidate (tasks evaluated in ONNX Runtime)
    parity: Parity | None = None
    version: str | None = None  # set once the registering build registered it
    torch_model_uri: str | None = None  # the PyTorch candidate as logged with the run
    built: dict[str, BuildReport] = field(default_factory=dict)  # earlier builds of this run
    scratch: Path | None = None  # a folder the builds may write into (removed after publish)
    hf_dir: Path | None = None  # the candidate's Hugging Face folder, once the huggingface build wrote it

    def tokenizer_dir(self) -> Path:
        """A folder holding the task's tokenizer files (the Hugging Face folder's, else saved)."""
        if self.hf_dir is not None:
            return self.hf_dir
        tokenizer = self.task.preprocessor()
        if tokenizer is None or self.scratch is None:
            raise ValueError(f"a {self.task.name} model has no tokenizer to write beside a build")
        folder = self.scratch / "tokenizer"
        if not folder.is_dir():
            tokenizer.save_pretrained(folder)
        return folder

    def preprocessor_config(self) -> str | None:
        """The task's image processor as ``preprocessor_config.json`` text; None when it has none."""
        preprocessing = self.task.spec.image_preprocessing
        if preprocessing is None:
            return None

        return str(processor(preprocessing).to_json_string())

    def preprocessor_files(self) -> list[str]:
        """``[scratch/preprocessor_config.json]`` for MLflow's ``extra_files`` (shipped inside the
        logged models), or ``[]`` when the task's inputs need no image processor."""

        text = self.preprocessor_config()
        if text is None or self.scratch is None:
            return []
        path = self.scratch / PREPROCESSOR_FILE
        path.write_text(text)
        return [str(path)]

    def with_preprocessor(self, graph: ModelProto) -> ModelProto:
        """A copy of ``graph`` that carries the task's image processor in its metadata
        (``preprocessor_config.json``), so the preprocessing travels inside model.onnx: the
        Triton repository and ``modelpress pull`` write it beside the graph."""

        copied = type(graph)()
        copied.CopyFrom(graph)
        text = self.preprocessor_config()
        if text is not None:
            kept = [p for p in copied.metadata_props if p.key != PREPROCESSOR_FILE]
            del copied.metadata_props[:]
            copied.metadata_props.extend(kept)
            copied.metadata_props.add(key=PREPROCESSOR_FILE, value=text)
        return copied


class Build(StrictConfig):
    """Base for every build config."""

    summary: ClassVar[str] = ""
    #: True for the one build whose MLflow model becomes the registered version
    registers: ClassVar[bool] = False

    def problems(self, facts: RecipeFacts) -> list[str]:
        """Why this build cannot be made from this recipe's candidate (found at validate)."""
        return []

    def write(self, context: BuildContext) -> BuildReport:
        """Write, check with the consumer, log to the active MLflow run; report what was made."""
        raise NotImplementedError

    def model_uri(self, report: BuildReport) -> str:
        """The registering build's MLflow model URI for :func:`mlflow.register_model`."""
        assert report.model_uri is not None, f"{report.name} registered nothing"
        return report.model_uri

    @classmethod
    def load_registered(cls, model_uri: str) -> Any:
        """A registering build's model back from the registry (champions are measured on it)."""
        raise NotImplementedError




def onnx_graph_problems(facts: RecipeFacts) -> list[str]:
    """Why a build made from the ONNX graph the task evaluates (a Triton repository, a TensorRT
    engine) cannot be made for this recipe: a task evaluated as a PyTorch module exports none."""
    if facts.task.evaluated_in != "onnx":
        return [f"is made from the ONNX graph a task evaluates, and a {facts.task.name} model is evaluated "
                f"and registered as a PyTorch module ({facts.task.registered_build!r}); nothing would build it"]
    return []
