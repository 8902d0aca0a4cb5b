"""``source: huggingface``: a local folder written by ``save_pretrained``.

The folder is the model's whole description, as for Optimum, Olive, NNCF, INC and
llm-compressor: ``config.json`` names the architecture (``BertForSequenceClassification`` →
text-classification, ``ViTForImageClassification`` → image-classification, ``LlamaForCausalLM``
→ causal-lm) and, for classifiers, the class order (``id2label``); the folder's own tokenizer
encodes the text, its own image processor (``preprocessor_config.json``) the images. Loaded with
the Auto class the task names; nothing is fetched from a hub.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationInfo, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.facts import SourceFacts
from modelpress.core.files import resolve_path, sha256_tree
from modelpress.core.registry import TASKS, register_source
from modelpress.datasets.pixels import PREPROCESSOR_FILE
from modelpress.sources.base import Source

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")
#: id2label names transformers writes when nobody named the classes
DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


@register_source("huggingface")
class HuggingFaceModel(Source):
    source: Literal["huggingface"] = "huggingface"
    path: Path

    summary = ("a local Hugging Face folder (save_pretrained: config.json, weights, tokenizer or "
               "preprocessor_config.json)")
    init_order = 10

    @field_validator("path")
    @classmethod
    def _folder(cls, value: Path, info: ValidationInfo) -> Path:
        path = resolve_path(value, info)
        if not path.is_dir():
            raise ValueError(f"'{value}' is a file; a Hugging Face model is a folder written by save_pretrained")
        return path

    def config(self) -> dict[str, Any]:
        file = self.path / "config.json"
        try:
            config = json.loads(file.read_text())
        except FileNotFoundError:
            raise ModelpressError(
                f"model.path: {self.path} has no config.json (not a save_pretrained folder)") from None
        except (OSError, ValueError) as exc:
            raise ModelpressError(f"{file}: not readable JSON ({exc})") from None
        if not isinstance(config, dict):
            raise ModelpressError(f"{file}: expected a JSON object")
        return config

    def architecture(self) -> str:
        names = self.config().get("architectures") or []
        return str(names[0]) if names else ""

    def facts(self) -> SourceFacts:
        config = self.config()
        architecture = self.architecture()
        task = next((t for t in TASKS.all().values()
                     if architecture.endswith(t.hf_architectures) and t.hf_architectures), None)
        name = self.task if isinstance(self.task, str) else (self.task or {}).get("name", "")
        chosen = TASKS.all().get(str(name)) or task
        id2label = (config.get("id2label") or {}) if chosen is None or chosen.labelled else {}
        names = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else []
        named = bool(names) and not all(DEFAULT_LABEL.match(n) for n in names)
        processor = self.path / PREPROCESSOR_FILE
        return SourceFacts(task=task.name if task else None, labels=tuple(names) if named else None,
                           num_labels=len(names) or None, hf_config=config,
                           tokenizer=str(self.path) if self._has_tokenizer() else None,
                           image_processor=str(self.path) if processor.is_file() else None)

    def problems(self, task: type[Task] | None) -> list[str]:
        try:
            self.config()
        except ModelpressError as exc:
            return [str(exc)]
        problems = []
        if not any((self.path / name).exists() for name in WEIGHT_FILES):
            problems.append(f"model.path: {self.path} has no weights ({' or '.join(WEIGHT_FILES[::2])})")
        if task is None:

            known = ", ".join(f"…{a} → {t.name}" for t in TASKS.all().values() for a in t.hf_architectures)
            problems.append(f"model.task: {self.path}/config.json names architecture "
                            f"{self.architecture() or '(none)'!r}, which no task takes ({known}); "
                            "set model.task")
        elif task.hf_auto_class is None:
            problems.append(f"model.task: a {task.name} model cannot be loaded from a Hugging Face folder")
        if task is not None and task.data_kind == "text" and not self._has_tokenizer():
            problems.append(f"model.path: {self.path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
                            "save the tokenizer beside the model (tokenizer.save_pretrained(folder))")
        return problems

    def _has_tokenizer(self) -> bool:
        return any((self.path / name).exists() for name in TOKENIZER_FILES)

    def fingerprint(self) -> str:
        return f"sha256:{sha256_tree(self.path)}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        import transformers

        auto = getattr(transformers, task.hf_auto_class or "")
        try:
            # Eager attention exports to plain MatMul/Softmax graphs that ONNX Runtime quantizes
            # well (see benchmarks/RESULTS.md, "Peer baselines"); SDPA exports differently.
            model = auto.from_pretrained(self.path, attn_implementation="eager", local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelpressError(f"model.path: {self.path}: cannot load as {task.hf_auto_class}: "
                                  f"{str(exc).splitlines()[0]}") from None
        return model.float().eval()

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        return path.is_dir() and (path / "config.json").exists()
