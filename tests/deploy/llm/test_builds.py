"""Each LLM build on the tiny Llama: written, loaded by its real consumer, matching the candidate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modelpress.core.errors import ModelpressError


def build(config, candidate, tokenizer_dir, tmp_path, eval_ids):
    """Write the build and run its check (the consumer loads it and compares with the candidate)."""
    out = config.write_folder(candidate, tokenizer_dir, tmp_path / config.build_name)
    return out, config.check_folder(out, candidate, eval_ids)


@pytest.mark.parametrize(("scheme", "fmt"), [
    ("int4-g32-sym-rtn", "pack-quantized"), ("int8-per-channel", "pack-quantized"),
    ("w8a8", "int-quantized"), ("fp8", "float-quantized"), ("fp32", None)])
def test_compressed_tensors_loads_in_transformers_with_the_candidates_logits(
        scheme, fmt, quantize, base_model, tokenizer_dir, tmp_path, eval_ids):
    from modelpress.deploy.builds.compressed_tensors import CompressedTensorsBuild

    candidate = base_model if scheme == "fp32" else quantize(scheme)
    out, metrics = build(CompressedTensorsBuild(), candidate, tokenizer_dir, tmp_path, eval_ids)
    config = json.loads((out / "config.json").read_text())
    if fmt is None:
        assert "quantization_config" not in config
    else:
        assert config["quantization_config"]["format"] == fmt
        assert config["quantization_config"]["ignore"] == ["lm_head"]
    if scheme == "w8a8":  # the consumer re-quantizes activations (range /127.5 vs our /127)
        assert metrics["perplexity_ratio"] == pytest.approx(1.0, abs=0.01)
    else:  # weights decompress to exactly the candidate's
        assert metrics["max_abs_logit_diff"] == 0.0


@pytest.mark.parametrize("scheme", ["int4-g64-sym-gptq", "int4-g32-asym-gptq", "int8-per-channel"])
def test_gptq_layout_holds_the_candidates_codes(scheme, quantize, tokenizer_dir, tmp_path, eval_ids):
    from modelpress.deploy.builds.gptq import GPTQBuild

    # written as vLLM reads it: this asym candidate has no zero point 0, so nothing wraps (the refusal
    # of one that has, and GenAI reading it back, are in test_gptq_genai_reader.py, as is the layout
    # read by a reader that is not modelpress's own inverse)
    out, metrics = build(GPTQBuild(), quantize(scheme), tokenizer_dir, tmp_path, eval_ids)
    assert json.loads((out / "modelpress-build.json").read_text())["wrapped_zero_points"] == 0
    quant = json.loads((out / "config.json").read_text())["quantization_config"]
    bits, group = (8, -1) if "int8" in scheme else (4, int(scheme.split("-g")[1][:2]))
    assert (quant["quant_method"], quant["bits"], quant["group_size"], quant["sym"]) == (
        "gptq", bits, group, "asym" not in scheme)
    assert metrics["codes_equal"] == 1.0 and metrics["scale_fp16_max_rel_error"] < 1e-3
    assert metrics["perplexity_ratio"] == pytest.approx(1.0, abs=2e-3) and metrics["top1_agreement"] > 0.98


def test_gptq_check_catches_a_changed_code(quantize, tokenizer_dir, tmp_path, eval_ids):
    from safetensors.numpy import load_file, save_file

    from modelpress.deploy.builds.gptq import GPTQBuild

    candidate = quantize("int4-g32-sym-rtn")
    out = GPTQBuild().write_folder(candidate, tokenizer_dir, tmp_path / "g")
    tensors = load_file(str(out / "model.safetensors"))
    tensors["model.layers.1.mlp.up_proj.qweight"][3, 5] ^= 1  # one code one step off
    save_file(tensors, str(out / "model.safetensors"))
    with pytest.raises(ModelpressError, match="up_proj's codes"):
        GPTQBuild().check_folder(out, candidate, eval_ids)


@pytest.mark.parametrize(("scheme", "qtype"), [
    ("int4-g32-sym-rtn", "Q4_0"), ("int4-g32-asym-gptq", "Q4_1"), ("int8-g32-sym", "Q8_0"),
    ("int4-g64-sym-gptq", "Q4_0")])
def test_gguf_blocks_hold_the_exact_codes(scheme, qtype, quantize, tokenizer_dir, tmp_path, eval_ids):
    import gguf as gguf_lib

    from modelpress.deploy.builds import gguf

    out, metrics = build(gguf.GGUFBuild(), quantize(scheme), tokenizer_dir, tmp_path, eval_ids)
    assert metrics["layers_with_exact_codes"] == 14.0  # 2 blocks x 7 projections, read back from the file
    assert metrics["transformers_gguf_loaded"] == 1.0
    assert metrics["perplexity_ratio"] == pytest.approx(1.0, abs=2e-3)
    reader = gguf_lib.GGUFReader(str(out / gguf.FILENAME))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == types["blk.1.ffn_down.weight"] == qtype
    assert "output.weight" not in types  # tied embeddings: llama.cpp reuses token_embd
    manifest = json.loads((out / "modelpress-build.json").read_text())
    assert manifest["transcoded_type"] == qtype and manifest["requantized"] == {}


@pytest.mark.parametrize(("scheme", "header"), [("int4-g32-sym-rtn", 2), ("int4-g32-asym-gptq", 4),
                                              ("int8-g32-sym", 2)])
def test_gguf_check_fails_on_one_flipped_code_in_every_block_type(scheme, header, quantize, tokenizer_dir, tmp_path,
                                                                  eval_ids):
    """Q4_0, Q4_1 and Q8_0 blocks (scale, [minimum,] codes): one code one step off fails the check
    (test_families.py flips Q4_0 codes in rotary-permuted rows and in a stacked expert)."""
    import gguf as gguf_lib

    from modelpress.deploy.builds import gguf

    candidate = quantize(scheme)
    out = gguf.GGUFBuild().write_folder(candidate, tokenizer_dir, tmp_path / "g")
    tensor = next(t for t in gguf_lib.GGUFReader(str(out / gguf.FILENAME)).tensors if t.name == "blk.1.ffn_up.weight")
    offset = tensor.data_offset + tensor.data.shape[-1] * 5 + header + 3  # row 5, first block, 4th code byte
    with open(out / gguf.FILENAME, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x01]))
    with pytest.raises(ModelpressError, match="blk.1.ffn_up.weight's codes or scales differ"):
        gguf.GGUFBuild().check_folder(out, candidate, eval_ids)


@pytest.mark.parametrize(("decoder", "accepted"), [
    # what Transformers' GGUF loader gives SmolLM2's tokenizer: the same byte-level vocabulary
    ({"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"},
                                       {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                       {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                        "use_regex": True}]}, True),
    ({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}, False),
])
def test_gguf_takes_a_tokenizer_read_from_gguf_and_refuses_a_non_byte_level_one(
        decoder, accepted, quantize, tokenizer_dir, tmp_path, eval_ids):
    import shutil

    import gguf as gguf_lib

    from modelpress.deploy.builds import gguf

    folder = shutil.copytree(tokenizer_dir, tmp_path / "tok")
    body = json.loads((folder / "tokenizer.json").read_text())
    body["decoder"] = decoder
    (folder / "tokenizer.json").write_text(json.dumps(body))
    candidate = quantize("int4-g32-sym-rtn")
    if not accepted:
        with pytest.raises(ModelpressError, match="not a byte-level BPE tokenizer"):
            gguf.GGUFBuild().write_folder(candidate, folder, tmp_path / "g")
        return
    out = gguf.GGUFBuild().write_folder(candidate, folder, tmp_path / "g")
    reader = gguf_lib.GGUFReader(str(out / gguf.FILENAME))
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    assert tokens == [t for t, _ in sorted({**body["model"]["vocab"]}.items(), key=lambda kv: kv[1])]


@pytest.mark.parametrize("scheme", ["fp8", "fp32"])
def test_gguf_requantizes_what_fits_no_block_type_and_says_so(scheme, quantize, base_model, tokenizer_dir, tmp_path,
                                                              eval_ids):
    from modelpress.deploy.builds import gguf

    candidate = base_model if scheme == "fp32" else quantize(scheme)
    out, metrics = build(gguf.GGUFBuild(), candidate, tokenizer_dir, tmp_path, eval_ids)
    manifest = json.loads((out / "modelpress-build.json").read_text())
    if scheme == "fp8":
        assert len(manifest["requantized"]) == 14 and manifest["requantize_type"] == "Q8_0"
        assert all(0 < err < 0.02 for err in manifest["requantized"].values())
    else:
        assert manifest["requantized"] == {} and manifest["float_type"] == "F16"
    assert metrics["perplexity_ratio"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("scheme", ["int4-g32-sym-rtn", "fp32"])
def test_genai_generates_the_candidates_greedy_tokens(scheme, quantize, base_model, tokenizer_dir, tmp_path, eval_ids):
    import onnx

    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    candidate = base_model if scheme == "fp32" else quantize(scheme)
    out, metrics = build(OnnxRuntimeGenAIBuild(), candidate, tokenizer_dir, tmp_path, eval_ids)
    assert metrics["greedy_tokens_matched"] == 16.0 and metrics["first_token_argmax_equal"] == 1.0
    assert metrics["first_token_max_abs_diff"] < 0.05
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.node}
    assert ("MatMulNBits" in ops) == (scheme != "fp32")
    assert "GatherBlockQuantized" not in ops  # the float embedding stayed float


@pytest.mark.parametrize("scheme", ["int4-g32-sym-awq", "int4-g64-sym-gptq-awq", "w8a8-smoothquant"])
def test_folding_smoothing_factors_keeps_the_outputs(scheme, quantize, eval_ids):
    from modelpress.deploy.builds import smoothing

    candidate = quantize(scheme)
    smoothed = [n for n, m in candidate.named_modules() if getattr(m, "smooth", None) is not None]
    assert smoothed, "AWQ scaled no layer: the test would not test folding"
    folded = smoothing.fold_smoothing(candidate)
    assert not [n for n, m in folded.named_modules() if getattr(m, "smooth", None) is not None]
    with torch.inference_mode():
        np.testing.assert_allclose(folded(input_ids=eval_ids).logits, candidate(input_ids=eval_ids).logits,
                                   atol=1e-4, rtol=1e-4)


def test_awq_codes_reach_genai_through_the_folded_gptq_build(quantize, tokenizer_dir, tmp_path, eval_ids):
    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    _, metrics = build(OnnxRuntimeGenAIBuild(), quantize("int4-g64-sym-gptq-awq"), tokenizer_dir, tmp_path, eval_ids)
    assert metrics["greedy_tokens_matched"] == 16.0 and metrics["perplexity_ratio"] == pytest.approx(1.0, abs=2e-3)


def test_a_greedy_divergence_passes_only_at_a_near_tie() -> None:
    """GenAI may pick the candidate's runner-up where the two logits are closer than the measured
    logit error (summation order differs by CPU); any other different token fails the check."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from modelpress.deploy.builds import checks
    from modelpress.deploy.builds.onnxruntime_genai import diverged_at_tie

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    model = LlamaForCausalLM(config).eval()
    prompt = [1, 5, 9, 3]
    expected = checks.candidate_greedy(model, prompt, 6)
    logits = checks.model_logits(model, torch.tensor([prompt + expected[:3]]))[0, -1]
    top2 = logits.topk(2)
    runner_up, margin = int(top2.indices[1]), float(top2.values[0] - top2.values[1])
    got = expected[:3] + [runner_up, *expected[4:]]
    assert diverged_at_tie(model, prompt, expected, got, 3, logit_error=margin)
    assert not diverged_at_tie(model, prompt, expected, got, 3, logit_error=margin / 4)
    last = int(logits.argsort()[0])  # the least likely token: no logit error excuses it
    assert not diverged_at_tie(model, prompt, expected, expected[:3] + [last], 3, logit_error=margin)
    assert not diverged_at_tie(model, prompt, expected, expected, 6, logit_error=margin)  # no divergence
