"""Tiny causal LMs and a word-level tokenizer made in the test (no hub, no download)."""

from __future__ import annotations

import pytest
import torch

WORDS = [f"w{i}" for i in range(120)]


def word_tokenizer(words: list[str] = WORDS):
    """A real fast tokenizer (Hugging Face ``tokenizers`` WordLevel): one id per word."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<eos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", unk_token="<unk>",
                                   pad_token="<eos>")


def tiny_llama(layers: int = 2, hidden: int = 64, vocab: int = 128, seed: int = 0,
               intermediate: int = 128):
    """A randomly initialised LlamaForCausalLM: hidden 64, 4 heads / 2 KV heads, small vocab."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tokenizer():
    return word_tokenizer()


@pytest.fixture(scope="session")
def llama():
    return tiny_llama()


@pytest.fixture(scope="session")
def sequences():
    """[8, 32] token ids with some structure (repeats), so statistics are not pure noise."""
    generator = torch.Generator().manual_seed(3)
    base = torch.randint(2, 128, (8, 16), generator=generator)
    return torch.cat([base, base.flip(1)], 1)
