"""What a model source knows about its model before loading it: read by tasks, sources and the plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceFacts:
    """What a source knows about its model without loading its weights."""

    task: str | None = None  # the task the model was built for (None: the recipe must say)
    labels: tuple[str, ...] | None = None  # class names in output order
    num_labels: int | None = None  # outputs per row, when known without running the model
    tokenizer: str | None = None  # a folder, or a package that ships one
    image_processor: str | None = None  # a folder holding the model's preprocessor_config.json
    #: the model's Hugging Face config (config.json as a dict), when known without loading it
    hf_config: Mapping[str, Any] | None = None
    #: what a reader of the report must know about this model (e.g. what the reference is)
    notes: tuple[str, ...] = ()
