"""A tiny randomly initialised Llama saved as a Hugging Face folder, with a byte-level BPE
tokenizer (and chat template) trained here, and a text corpus: what the LLM pipeline tests run on
(no hub, nothing downloaded)."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ["the", "a", "film", "movie", "plot", "actor", "story", "good", "bad", "great", "dull", "funny",
         "sad", "long", "short", "scene", "music", "director", "script", "camera", "ending", "character",
         "heart", "love", "time", "world", "night", "day", "light", "dark"]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + "." for _ in range(n)]


def write_corpus(path: Path, documents: int = 300, seed: int = 1) -> Path:
    """One document a line (a few blank lines, which the reader skips)."""
    lines = sentences(documents, seed)
    lines[10:10] = ["", "   "]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sentences(400), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL[0], eos_token=SPECIAL[0],
                                   unk_token=SPECIAL[0], pad_token=SPECIAL[0])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def write_tiny_llm(folder: Path, context: int = 256, layers: int = 2, tied: bool = True) -> Path:
    """``save_pretrained`` folder of a LlamaForCausalLM (hidden 64, GQA 4/2 heads) + its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=context, tie_word_embeddings=tied, initializer_range=0.2,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0)
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
