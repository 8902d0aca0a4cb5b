"""Text classification: a tokenizer (the model's own) turns a text column into token ids."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.core.registry import register_task
from modelpress.sources.zoo import resolve_tokenizer
from modelpress.tasks.base import Batch, DataKind, TaskConfig
from modelpress.tasks.classification import ClassificationTask

if TYPE_CHECKING:
    import pandas as pd


class TextClassificationConfig(TaskConfig):
    name: Literal["text-classification"] = "text-classification"
    max_length: int = Field(128, ge=2, le=8192, description="tokens per text (longer texts are truncated)")


@register_task("text-classification")
class TextClassification(ClassificationTask):
    name = "text-classification"
    Config = TextClassificationConfig
    config: TextClassificationConfig
    summary = "class of a text column, tokenized with the model's own tokenizer"
    data_kind: ClassVar[DataKind] = "text"
    init_for: ClassVar[DataKind | None] = "text"
    input_names = ("input_ids", "attention_mask")
    #: BERT-family models take segment ids too (all zeros for one text); passed when they do
    optional_inputs = ("token_type_ids",)
    hf_architectures = ("ForSequenceClassification",)
    hf_auto_class = "AutoModelForSequenceClassification"
    capabilities = frozenset({"students-by-layers"})

    def encode(self, frame: pd.DataFrame, padding: str = "longest") -> Batch:
        encoded = tokenizer(self.spec.tokenizer)(
            list(frame["text"]), padding=padding, truncation=True,
            max_length=self.config.max_length, return_tensors="np",
        )
        return {name: encoded[name].astype("int64") for name in (*self.input_names, *self.optional_inputs)
                if name in encoded}

    def timing_batch(self, frame: pd.DataFrame, batch_size: int) -> Batch:
        return self.encode(frame.iloc[:batch_size], padding="max_length")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch", 1: "sequence"} for name in (*self.input_names, *self.optional_inputs)}


@functools.cache
def tokenizer(source: str | None) -> Any:
    """The tokenizer in a folder, or in the package named ``source`` (the shipped MiniLM)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_tokenizer(source))
