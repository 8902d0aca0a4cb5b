"""Tiny causal LMs of every family the LLM builds are tested on, written as users write them.

    write_family(name, folder) -> folder   # a save_pretrained folder: config.json, weights, tokenizer

``name`` is one of :data:`FAMILIES` (``llama``, ``mistral``, ``qwen2``, ``qwen3``, ``phi3``,
``gemma2``, ``mixtral``). Each model is the real Transformers config class and model class with
random init: 2 blocks, hidden 128 and MLP 256 (so groups of 32, 64 and 128 all divide every input
width), grouped-query attention, each family's own features (Qwen2's q/k/v biases, Qwen3's q/k
norms and 128-wide heads, Phi-3's fused qkv/gate_up, Gemma 2's 1 + w norms, softcapping and
256-wide heads, Mixtral's 4 experts with top-2 routing), tied embeddings where the family ties
them. The tokenizer is a real byte-level BPE (``tokenizers``, vocabulary 384, trained here on a
small corpus, with a ChatML template) saved beside it, so nothing is downloaded. The init range
is large so that next-token distributions are peaked and greedy continuations are stable.

Used by ``tests/deploy/llm`` (the builds per family) and meant for pipeline tests and the support
matrix: load it with ``importlib.util.spec_from_file_location`` like the other test helpers.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

WORDS = ("the a film movie plot actor story good bad great dull funny sad long short scene music director script "
         "camera ending character heart love time world night day light dark").split()
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
COMMON: dict[str, Any] = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                          "max_position_embeddings": 256, "initializer_range": 0.2,
                          "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
#: family -> (Transformers config class, its fields beyond COMMON)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", {"num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}),
    "mistral": ("MistralConfig", {"num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False}),
    "qwen2": ("Qwen2Config", {"num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}),
    "qwen3": ("Qwen3Config", {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 128,
                              "tie_word_embeddings": True}),
    "phi3": ("Phi3Config", {"num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False,
                            "original_max_position_embeddings": 256}),
    "gemma2": ("Gemma2Config", {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 256,
                                "tie_word_embeddings": True}),
    "mixtral": ("MixtralConfig", {"num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4,
                                  "num_experts_per_tok": 2, "tie_word_embeddings": False}),
}
#: the MoE router modules: the causal-lm task keeps them float (vLLM and llama.cpp read float routers),
#: so tests that call quantize_module directly exclude them as the weight-quantize stage does
ROUTERS = {"mixtral": r"block_sparse_moe\.gate$"}


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + "." for _ in range(n)]


def make_tokenizer() -> Any:
    """A byte-level BPE tokenizer (vocabulary 384) with a ChatML template, as a Transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL[0], eos_token=SPECIAL[0],
                                   unk_token=SPECIAL[0], pad_token=SPECIAL[0])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_model(name: str, vocab: int, seed: int = 0) -> Any:
    """The family's causal LM (random init, eval mode) for a vocabulary of ``vocab`` tokens."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    config_class, fields = FAMILIES[name]
    config = getattr(transformers, config_class)(vocab_size=vocab, **{**COMMON, **fields})
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def write_family(name: str, folder: Path, seed: int = 0) -> Path:
    """A ``save_pretrained`` folder of family ``name``'s tiny model and its tokenizer."""
    tokenizer = make_tokenizer()
    make_model(name, len(tokenizer), seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
