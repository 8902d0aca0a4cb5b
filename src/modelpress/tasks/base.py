"""What every task declares and does: its inputs, its metrics, its loss, its evaluation.

Stages, evaluation, export, the gate, the report and the summary talk to a :class:`Task`,
never to a model type or a task name, so a new kind of model is one task module. Batches are
numpy arrays keyed by ONNX input name, so the same batches feed PyTorch (through
``torch.from_numpy``) and ONNX Runtime sessions.

A model's raw output may be a tensor, a tuple ``(logits, embedding, ...)`` or a Hugging Face
``ModelOutput``; :func:`split_outputs` turns each into ``(logits, embedding)``: the embedding
(a pooled sentence vector, penultimate CNN features) is what fidelity cosine compares, and the
logits stand in for it when a model returns none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from modelpress.core.metric import Metric
from modelpress.core.registry import TASKS, StrictConfig
from modelpress.datasets.pixels import ImagePreprocessing
from modelpress.tasks.calling import Binding, bind, graph_signature, signature_of, unwrapped
from modelpress.tasks.losses import kd_loss

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

    from modelpress.core.facts import SourceFacts
    from modelpress.core.handoffs import Evaluation
    from modelpress.datasets.base import DataSchema, Split

Batch = dict[str, "np.ndarray"]
DataKind = Literal["text", "features", "image"]


class TaskConfig(StrictConfig):
    """A task's options in the recipe (``model.task: {name: ..., ...}``); subclasses add fields."""

    name: str


class TaskSpec(BaseModel):
    """A task with everything needed to rebuild it inside any step (JSON-able, cache-friendly).

    ``options`` are the recipe's task options (validated by the task's ``Config``); the other
    fields are facts the plan found in the data and the model source.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    options: dict[str, JsonValue] = {}
    labels: tuple[str, ...] | None = None  # class names in index order
    tokenizer: str | None = None  # a folder, or the name of a package that ships one
    image_shape: tuple[int, int, int] | None = None
    features: tuple[str, ...] | None = None  # input columns, in the model's order
    #: image files: the model's image processor (or the recipe's data.transform as one)
    image_preprocessing: ImagePreprocessing | None = None

    def __init__(self, name: str | None = None, /, **data: Any):
        # Keywords that are not fields are task options: TaskSpec("text-classification", max_length=16).
        options = dict(data.pop("options", None) or {})
        options.update({k: data.pop(k) for k in list(data) if k not in type(self).model_fields})
        super().__init__(**({"name": name} if name is not None else {}), options=options, **data)

    def build(self) -> Task:
        return get_task(self.name)(self)


def split_outputs(outputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, embedding) from a tensor, a tuple/list or a Hugging Face ``ModelOutput``."""
    logits = getattr(outputs, "logits", None)
    if logits is not None:  # ModelOutput: the logits are also what fidelity compares
        return logits, logits
    if isinstance(outputs, (tuple, list)):
        return outputs[0], outputs[1] if len(outputs) > 1 else outputs[0]
    return outputs, outputs


class Task:
    """Base class; concrete tasks register with :func:`modelpress.core.registry.register_task`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    summary: ClassVar[str] = ""
    data_kind: ClassVar[DataKind]
    #: the kind of data for which ``modelpress init`` proposes this task when neither the model
    #: nor the user names one (one task per kind)
    init_for: ClassVar[DataKind | None] = None
    #: the inputs every batch carries, by their Hugging Face names; a model takes them by these
    #: names or, when it names them otherwise (``forward(self, x)``), by position in this order
    input_names: ClassVar[tuple[str, ...]] = ()
    #: inputs a batch may carry that are passed only to models that take them (``token_type_ids``)
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    metrics: ClassVar[tuple[Metric, ...]] = ()
    #: the metric promotion compares a candidate and the current champion on
    primary_metric: ClassVar[str] = ""
    #: Hugging Face ``config.architectures`` suffixes this task takes, and the Auto class
    #: that loads them (``…ForSequenceClassification`` → ``AutoModelForSequenceClassification``)
    hf_architectures: ClassVar[tuple[str, ...]] = ()
    hf_auto_class: ClassVar[str | None] = None
    #: what stages may derive from this task's models (e.g. "students-by-layers")
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: where baseline and candidate are evaluated: exported to ONNX Runtime, or as PyTorch modules
    evaluated_in: ClassVar[Literal["onnx", "torch"]] = "onnx"
    #: the build whose model becomes the registered version (and what champions are loaded from)
    registered_build: ClassVar[str] = "onnx"
    #: whether the data carries a label per row (False: a corpus of documents, e.g. causal LMs)
    labelled: ClassVar[bool] = True
    #: what early stopping watches by default when a recipe's training budget does not say
    monitor: ClassVar[Literal["accuracy", "loss"]] = "accuracy"
    #: whether ``data.split`` may give eval and calibration in sequences or tokens
    #: (:meth:`fit_splits`)
    sized_splits: ClassVar[bool] = False

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.config = self.Config.model_validate({"name": spec.name, **spec.options})

    # --- what it measures ----------------------------------------------------------------

    @classmethod
    def metric(cls, name: str) -> Metric:
        found = next((m for m in cls.metrics if m.name == name), None) or cls.dynamic_metric(name)
        if found is None:
            raise KeyError(f"a {cls.name} model does not measure {name}")
        return found

    @classmethod
    def dynamic_metric(cls, name: str) -> Metric | None:
        """The metric ``name`` is when the task's options make it (a causal LM's ``tasks.NAME.acc``
        for a task file it scores), else None."""
        return None

    @classmethod
    def configured_metrics(cls, config: TaskConfig) -> tuple[Metric, ...]:
        """What a task with these options measures: :attr:`metrics`, and those its options add."""
        return cls.metrics

    @classmethod
    def shown_metrics(cls, names: Iterable[str]) -> list[Metric]:
        """The metrics among ``names`` that this task describes, in print order: the declared ones,
        then those the options made (as they come)."""
        names = list(names)
        dynamic = [m for m in map(cls.dynamic_metric, names) if m is not None]
        return [m for m in cls.metrics if m.name in names] + dynamic

    @classmethod
    def metric_names(cls) -> tuple[str, ...]:
        return tuple(m.name for m in cls.metrics)

    @classmethod
    def better(cls, metric: str, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b`` on ``metric``."""
        return a > b if cls.metric(metric).higher_is_better else a < b

    # --- what a recipe must give it (checked at load) ------------------------------------

    @classmethod
    def takes(cls, kind: str) -> bool:
        """Whether data of ``kind`` (``DataSchema.kind``) can feed this task."""
        return kind == cls.data_kind

    @classmethod
    def data_problems(cls, data: Any, schema: DataSchema, facts: SourceFacts) -> list[str]:
        """Why ``data`` (a recipe data spec this task :meth:`takes`) cannot feed this task's model,
        which the source's ``facts`` describe."""
        return []

    @classmethod
    def source_problems(cls, config: TaskConfig, source: Any) -> list[str]:
        """Why this task's options (``model.task``) cannot work with the model ``source`` describes
        (e.g. sequences longer than its context), found from the source's facts before loading it."""
        return []

    def fit_splits(self, frame: pd.DataFrame, split: Split) -> pd.DataFrame:
        """``frame`` with splits given in sequences or tokens resolved (``datasets.sizes``); only a
        task that reads tokens can (recipe validation refuses the others)."""
        return frame

    def split_sizes(self, frame: pd.DataFrame) -> dict[str, int]:
        """What the splits hold in the task's own units (a causal LM: sequences and tokens)."""
        return {}

    def check_data(self, frame: pd.DataFrame) -> None:
        """Raise a one-line error if the validated data cannot feed this task (runs before the
        model is loaded, e.g. a corpus split too short for one sequence)."""

    # --- data → batches --------------------------------------------------------------------

    def encode(self, frame: pd.DataFrame) -> Batch:
        raise NotImplementedError

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Per input (by the task's name): which axes vary between batches."""
        return {name: {0: "batch"} for name in (*self.input_names, *self.optional_inputs)}

    def batches(self, frame: pd.DataFrame, batch_size: int, shuffle: bool = False,
                seed: int = 0) -> Iterator[tuple[Batch, np.ndarray]]:
        order = frame.sample(frac=1.0, random_state=seed) if shuffle else frame
        for start in range(0, len(order), batch_size):
            chunk = order.iloc[start:start + batch_size]
            yield self.encode(chunk), chunk["label"].to_numpy(dtype="int64", copy=True)

    def batch_count(self, frame: pd.DataFrame, batch_size: int) -> int:
        """How many batches :meth:`batches` yields for ``frame``."""
        return math.ceil(len(frame) / batch_size)

    def example(self, frame: pd.DataFrame, rows: int = 2) -> Batch:
        """The first ``rows`` inputs of ``frame`` as one batch (tracing, calibration samples)."""
        return self.encode(frame.iloc[:rows])

    def timing_batch(self, frame: pd.DataFrame, batch_size: int) -> Batch:
        """A fixed-shape batch for latency measurement."""
        return self.encode(frame.iloc[:batch_size])

    # --- model outputs -----------------------------------------------------------------

    @staticmethod
    def outputs(raw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return split_outputs(raw)

    def binding(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> Binding:
        """How ``model`` takes this task's inputs (``modelpress.tasks.calling``)."""
        what = f"the model's forward ({type(unwrapped(model)).__name__})"
        return bind(signature_of(model), self.input_names, self.optional_inputs, batch, what)

    def graph_binding(self, input_names: Sequence[str], batch: Mapping[str, Any]) -> Binding:
        """How an exported graph with these inputs takes this task's batches."""
        return bind(graph_signature(input_names), self.input_names, self.optional_inputs, batch, "the ONNX graph")

    def call(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> Any:
        """``model``'s raw output on ``batch`` (numpy arrays or tensors), called the way it is written."""
        import torch

        inputs = {k: torch.from_numpy(v) if not isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return self.binding(model, inputs).call(model, inputs)

    def forward(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embedding) of ``model`` on ``batch``."""
        return self.outputs(self.call(model, batch))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
        """(right top-1 predictions, predictions) in one batch, for validation accuracy."""
        return int((logits.argmax(-1) == labels).sum()), labels.numel()

    def distill_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                     labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
        """Knowledge-distillation loss: soft teacher targets (share ``alpha``) + the labels."""

        return kd_loss(student_logits, teacher_logits, labels, temperature, alpha)

    # --- what stages may change ----------------------------------------------------------

    def protected_modules(self, model: torch.nn.Module) -> dict[str, str]:
        """Modules stages must leave as they are, with why (e.g. an LM head whose weight is the
        embedding table: quantizing, masking or adapting it would rewrite the embeddings)."""
        return {}

    def head_modules(self, model: torch.nn.Module) -> list[str]:
        """The task head: trained in full under LoRA unless ``finetune.train_modules`` says."""
        from torch import nn

        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        return linears[-1:]

    def preprocessor(self) -> Any:
        """What turns raw inputs into the model's (its tokenizer), saved beside exported model
        folders with ``save_pretrained``; None when the inputs need nothing."""
        return None

    def check_model(self, model: torch.nn.Module, frame: pd.DataFrame, where: str) -> None:
        """Raise a one-line error naming ``where`` if ``model`` cannot serve this task's data."""

    # --- evaluation --------------------------------------------------------------------

    def evaluate(self, baseline: Any, candidate: Any, eval_frame: pd.DataFrame) -> Evaluation:
        """Every metric for ``baseline`` and ``candidate`` (ONNX graphs or modules, per
        ``evaluated_in``) on the same eval rows."""
        raise NotImplementedError


def get_task(name: str) -> type[Task]:
    """The task registered under ``name`` (one line naming the known ones if there is none)."""
    task: type[Task] = TASKS.get(name)
    return task
