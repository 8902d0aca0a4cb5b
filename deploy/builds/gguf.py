"""``gguf``: one llama.cpp file, written with the ``gguf`` package as llama.cpp's converter writes
Llama models (tensor names, q/k row permutation, hyper-parameters, GPT-2-style BPE tokenizer).

GGUF stores blocks of 32 weights. Where the candidate's codes fit a block type exactly they are
transcoded, never re-quantized (a group of 32·m weights is m blocks sharing its scale):

* symmetric int2/3/4 → ``Q4_0`` (``w = (q - 8)·d``: q = code - zero + 8),
* asymmetric int2/3/4 → ``Q4_1`` (``w = q·d + m``: d = scale, m = -zero·scale),
* symmetric int8 (and W8A8's weights) → ``Q8_0`` (``w = q·d``).

Scales become fp16 (the block header's type). Anything else (asymmetric int8, fp8, float layers)
is quantized to ``requantize_type`` and listed as such, with its weight error, in the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.errors import ModelpressError
from modelpress.registry import register_build

from . import checks, llama
from .llm import LLMBuild

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

NAME = "gguf"
FILENAME = "model.gguf"
BLOCK = 32
TENSOR_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                "mlp.down_proj": "ffn_down"}
FloatType = Literal["F32", "F16", "BF16", "Q8_0"]


@register_build(NAME)
class Config(LLMBuild):
    """``export: [gguf]`` options; the build's functions are this module's."""

    build_name: ClassVar[str] = NAME
    summary: ClassVar[str] = "one llama.cpp GGUF file, the candidate's codes transcoded into Q4_0/Q4_1/Q8_0 blocks"
    needs: ClassVar[dict[str, str]] = {'gguf': 'llm'}

    float_type: FloatType = Field("F16", description="type of the tensors the candidate kept in float "
                                  "(embeddings, LM head, excluded layers); Q8_0 re-quantizes them")
    requantize_type: Literal["Q8_0", "Q4_0", "Q4_1", "F16"] = Field(
        "Q8_0", description="type of quantized layers whose codes fit no GGUF type (asymmetric int8, "
        "fp8); they are re-quantized and reported")
    tokenizer_pre: str | None = Field(None, description="llama.cpp's pre-tokenizer name; default: "
                                      "detected from tokenizer.json (gpt-2, smollm)")
    max_perplexity_ratio: float = Field(1.02, gt=1.0, description="check: allowed perplexity drift "
                                        "(fp16 block scales, fp16 float tensors)")


def problems(config: Config, stages: list[Any], hf_config: Any) -> list[str]:
    from .compressed_tensors import group_problems

    found = llama.shape_problems(stages, hf_config, NAME)
    weights = llama.weight_stage(stages)
    if weights is None or weights.dtype != "int":
        return found
    if weights.granularity == "per-group" and weights.group_size % BLOCK:
        found.append(f"{NAME}: group_size {weights.group_size} is not a multiple of GGUF's {BLOCK}-weight blocks")
    widths = [hf_config.get(k) if isinstance(hf_config, dict) else getattr(hf_config, k, None)
              for k in ("hidden_size", "intermediate_size")]
    if any(w and w % BLOCK for w in widths):
        found.append(f"{NAME}: input widths {widths} are not multiples of {BLOCK} (GGUF blocks)")
    return found + group_problems(weights, hf_config, NAME)


def block_type(scheme: llama.Scheme) -> str | None:
    """The GGUF type that holds the scheme's codes exactly, or None (re-quantized)."""
    if scheme.kind != "int":
        return None
    if scheme.bits <= 4:
        return "Q4_0" if scheme.symmetric else "Q4_1"
    return "Q8_0" if scheme.symmetric else None


def write(model: nn.Module, tokenizer_dir: Path, out_dir: Path, config: Config | None = None) -> Path:
    config = config or Config()
    import gguf

    scheme = llama.describe(model)
    folded = llama.fold_smoothing(model)
    out_dir = llama.prepare_out_dir(out_dir)
    writer = gguf.GGUFWriter(str(out_dir / FILENAME), "llama")
    _write_hyperparameters(writer, folded.config, scheme, config)
    _write_tokenizer(writer, Path(tokenizer_dir), config)
    report = _write_tensors(writer, folded, scheme, config)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    llama.copy_tokenizer(tokenizer_dir, out_dir)
    llama.write_manifest(out_dir, NAME, scheme, file=FILENAME, **report)
    return out_dir


def _write_hyperparameters(writer: Any, config: Any, scheme: llama.Scheme, options: Config) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(getattr(config, "_name_or_path", "") or "modelpress candidate")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    file_type = {"Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
                 "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}.get(block_type(scheme) or "",
                                                            getattr(gguf.LlamaFileType, f"MOSTLY_{options.float_type}",
                                                                    gguf.LlamaFileType.MOSTLY_F16))
    writer.add_file_type(int(file_type))
    if getattr(config, "rope_scaling", None):
        raise ModelpressError(f"{NAME}: rope_scaling {config.rope_scaling} is not written by this build")


def _write_tokenizer(writer: Any, tokenizer_dir: Path, config: Config) -> None:
    """GPT-2-style BPE vocabulary as llama.cpp's converter writes it (tokens, types, merges, ids)."""
    import gguf

    path = tokenizer_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelpressError(f"{NAME}: {tokenizer_dir} has no tokenizer.json (GGUF needs a BPE tokenizer)")
    body = json.loads(path.read_text())
    if body["model"]["type"] != "BPE" or not _byte_level_decoder(body):
        raise ModelpressError(f"{NAME}: {path} is not a byte-level BPE tokenizer (the GGUF 'gpt2' model)")
    tokens, types = _token_table(body)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(config.tokenizer_pre or _pre_tokenizer(body, path))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=len(tokens))
    special.add_to_gguf(writer, quiet=True)


def _byte_level_decoder(body: dict[str, Any]) -> bool:
    """ByteLevel, alone or in a Sequence: Transformers' GGUF loader gives a tokenizer read from a
    'gpt2' GGUF (SmolLM2's) the decoder ByteFallback, Fuse, Replace, ByteLevel over the same
    byte-level vocabulary and merges, which are all a GGUF file carries."""
    decoder = body.get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return any(p.get("type") == "ByteLevel" for p in parts)


def _token_table(body: dict[str, Any]) -> tuple[list[str], list[int]]:
    import gguf

    vocab = dict(body["model"]["vocab"])
    added = {t["id"]: t for t in body.get("added_tokens", [])}
    for token_id, token in added.items():
        vocab.setdefault(token["content"], token_id)
    by_id = {i: t for t, i in vocab.items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise ModelpressError(f"{NAME}: the tokenizer's ids are not contiguous from 0")
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [int(gguf.TokenType.CONTROL if added.get(i, {}).get("special")
                 else gguf.TokenType.USER_DEFINED if i in added else gguf.TokenType.NORMAL)
             for i in range(len(tokens))]
    return tokens, types


def _pre_tokenizer(body: dict[str, Any], path: Path) -> str:
    pre = body.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    raise ModelpressError(f"{NAME}: cannot tell llama.cpp's pre-tokenizer for {path} ({kinds}); set "
                          "tokenizer_pre in the build's options")


def _write_tensors(writer: Any, model: nn.Module, scheme: llama.Scheme, config: Config) -> dict[str, Any]:
    requantized: dict[str, float] = {}
    tied = bool(getattr(model.config, "tie_word_embeddings", False)) and llama._lm_head_tied(model)
    emit = lambda name, module: _write_linear(writer, name, module, scheme, config, requantized)
    _write_float(writer, "token_embd.weight", model.model.embed_tokens.weight, config.float_type)
    for i, block in enumerate(model.model.layers):
        _write_float(writer, f"blk.{i}.attn_norm.weight", block.input_layernorm.weight, "F32")
        _write_float(writer, f"blk.{i}.ffn_norm.weight", block.post_attention_layernorm.weight, "F32")
        for proj, short in TENSOR_NAMES.items():
            emit(f"blk.{i}.{short}.weight", (block.get_submodule(proj), _permutation(proj, model.config)))
    _write_float(writer, "output_norm.weight", model.model.norm.weight, "F32")
    if not tied:
        emit("output.weight", (model.lm_head, None))
    exact = block_type(scheme)
    return {"transcoded_type": exact, "float_type": config.float_type,
            "requantized": {k: round(v, 6) for k, v in requantized.items()},
            "requantize_type": config.requantize_type if requantized else None}


def _permutation(proj: str, config: Any) -> int | None:
    """llama.cpp's rotary layout: q/k rows interleaved per head (its converter's ``permute``)."""
    if proj == "self_attn.q_proj":
        return config.num_attention_heads
    if proj == "self_attn.k_proj":
        return config.num_key_value_heads
    return None


def permute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    """Rows [heads·head_dim, …] reordered as convert_hf_to_gguf.py's ``LlamaModel.permute``."""
    shape = rows.shape
    return rows.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _write_float(writer: Any, name: str, tensor: torch.Tensor | np.ndarray, kind: str) -> None:
    import gguf
    import numpy as np

    data = tensor if isinstance(tensor, np.ndarray) else tensor.detach().float().numpy()
    if kind == "F32" or data.ndim == 1:
        writer.add_tensor(name, data.astype(np.float32))
    elif kind == "F16":
        writer.add_tensor(name, data.astype(np.float16))
    else:
        qtype = getattr(gguf.GGMLQuantizationType, kind)
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def _write_linear(writer: Any, name: str, item: tuple[nn.Module, int | None], scheme: llama.Scheme,
                  config: Config, requantized: dict[str, float]) -> None:
    import gguf
    import numpy as np

    module, heads = item
    quantized = hasattr(module, "qweight") or hasattr(module, "weight_fp8")
    exact = block_type(scheme) if hasattr(module, "qweight") else None
    if exact is not None:
        blocks = encode_blocks(llama.int_weight(module), exact)
        if heads:
            blocks = permute_rows(blocks, heads)
        writer.add_tensor(name, blocks, raw_dtype=getattr(gguf.GGMLQuantizationType, exact))
        return
    weight = llama.float_weight(module).float().numpy()
    if heads:
        weight = permute_rows(weight, heads)
    if not quantized:
        _write_float(writer, name, weight, config.float_type)
        return
    qtype = getattr(gguf.GGMLQuantizationType, config.requantize_type)
    data = gguf.quants.quantize(weight, qtype)
    back = gguf.quants.dequantize(data, qtype)
    requantized[name] = float(np.linalg.norm(back - weight) / max(np.linalg.norm(weight), 1e-30))
    writer.add_tensor(name, data, raw_dtype=qtype)


def encode_blocks(weight: llama.IntWeight, qtype: str) -> np.ndarray:
    """The candidate's codes as GGUF blocks (uint8 ``[N, K/32 · bytes per block]``)."""
    import numpy as np

    codes = weight.codes.numpy().astype(np.int32)
    n, k = codes.shape
    per_block = np.repeat(np.arange(k // weight.group_size), weight.group_size // BLOCK)  # block -> group
    scales = weight.scales.numpy()[:, per_block]  # [N, K/32]
    zeros = weight.zeros.numpy().astype(np.int32)[:, per_block]
    q = codes.reshape(n, k // BLOCK, BLOCK)
    if qtype == "Q8_0":
        header = [scales.astype(np.float16)]
        body = (q - zeros[..., None]).astype(np.int8).view(np.uint8)
    elif qtype == "Q4_0":
        header = [scales.astype(np.float16)]
        body = _nibbles(q - zeros[..., None] + 8)
    else:  # Q4_1: w = q·d + m
        header = [scales.astype(np.float16), (-zeros * scales).astype(np.float16)]
        body = _nibbles(q)
    parts = [h.reshape(n, -1, 1).view(np.uint8) for h in header] + [body]
    return np.concatenate(parts, axis=-1).reshape(n, -1)


def _nibbles(q: np.ndarray) -> np.ndarray:
    """ggml's 4-bit block: byte j holds weight j (low nibble) and weight j + 16 (high nibble)."""
    import numpy as np

    if q.min() < 0 or q.max() > 15:
        raise ModelpressError(f"{NAME}: codes outside 0..15 cannot be stored in a 4-bit block")
    q = q.astype(np.uint8)
    return q[..., : BLOCK // 2] | (q[..., BLOCK // 2:] << np.uint8(4))


def decode_codes(raw: np.ndarray, qtype: str, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(integer codes as the block type stores them [N, K], fp32 block scales d [N, K/32])."""
    import numpy as np

    header = {"Q8_0": 2, "Q4_0": 2, "Q4_1": 4}[qtype]
    blocks = raw.reshape(n, k // BLOCK, -1)
    d = blocks[..., :2].copy().view(np.float16)[..., 0].astype(np.float32)
    body = blocks[..., header:]
    if qtype == "Q8_0":
        q = body.copy().view(np.int8).astype(np.int32)
    else:
        q = np.concatenate([body & 0x0F, body >> 4], axis=-1).astype(np.int32)
    return q.reshape(n, k), d


def check(out_dir: Path, model: nn.Module, eval_input_ids: torch.Tensor,
          config: Config | None = None) -> dict[str, float]:
    """The file's blocks hold the candidate's codes; Transformers' GGUF loader reproduces its perplexity."""
    config = config or Config()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scheme = llama.describe(model)
    folded = llama.fold_smoothing(model)
    codes_checked = _check_codes(Path(out_dir) / FILENAME, folded, scheme)
    loaded = AutoModelForCausalLM.from_pretrained(str(out_dir), gguf_file=FILENAME, dtype="float32").eval()
    metrics = checks.compare_logits(checks.model_logits(model, eval_input_ids),
                                    checks.model_logits(loaded, eval_input_ids), eval_input_ids)
    theirs = AutoTokenizer.from_pretrained(str(out_dir), gguf_file=FILENAME)
    ours = AutoTokenizer.from_pretrained(str(out_dir))
    text = ours.decode(eval_input_ids[0].tolist())
    if theirs(text)["input_ids"] != ours(text)["input_ids"]:
        raise ModelpressError(f"{NAME}: the GGUF tokenizer encodes text differently from the model's own")
    checks.require_close(metrics, NAME, config.max_perplexity_ratio)
    return {**metrics, "layers_with_exact_codes": float(codes_checked)}


def _check_codes(path: Path, model: nn.Module, scheme: llama.Scheme) -> int:
    import gguf
    import numpy as np

    qtype = block_type(scheme)
    if qtype is None:
        return 0
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    checked = 0
    for i, block in enumerate(model.model.layers):
        for proj, short in TENSOR_NAMES.items():
            module = block.get_submodule(proj)
            if not hasattr(module, "qweight"):
                continue
            weight = llama.int_weight(module)
            n, k = weight.codes.shape
            tensor = tensors[f"blk.{i}.{short}.weight"]
            if tensor.tensor_type.name != qtype:
                raise ModelpressError(f"{NAME}: blk.{i}.{short} is {tensor.tensor_type.name}, expected {qtype}")
            q, d = decode_codes(np.asarray(tensor.data), qtype, n, k)
            heads = _permutation(proj, model.config)
            if heads:  # undo llama.cpp's rotary permutation (it is its own inverse for 2 halves)
                q, d = _unpermute(q, heads), _unpermute(d, heads)
            expected = weight.codes.numpy().astype(np.int32)
            zeros = np.repeat(weight.zeros.numpy().astype(np.int32), weight.group_size, 1)
            if qtype == "Q4_0":
                expected = expected - zeros + 8
            elif qtype == "Q8_0":
                expected = expected - zeros
            groups = np.repeat(np.arange(k // weight.group_size), weight.group_size // BLOCK)
            if not np.array_equal(q, expected) or not np.array_equal(
                    d, weight.scales.numpy()[:, groups].astype(np.float16).astype(np.float32)):
                raise ModelpressError(f"{NAME}: blk.{i}.{short}'s codes or scales differ from the candidate's")
            checked += 1
    return checked


def _unpermute(rows: np.ndarray, heads: int) -> np.ndarray:
    shape = rows.shape
    return rows.reshape(heads, shape[0] // heads // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
