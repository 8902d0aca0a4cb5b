"""``gguf``: one llama.cpp file, written with the ``gguf`` package the way llama.cpp's
``convert_hf_to_gguf.py`` writes the model's architecture, for every family llama.cpp converts.

Names, roles and metadata come from the ``gguf`` package, not from a hand-written list:
``MODEL_ARCH`` / ``MODEL_ARCH_NAMES`` give the architecture, ``TensorNameMap`` every tensor's name
(``architectures.py``), ``Keys`` the metadata keys (:data:`HYPERPARAMETERS`). What the converter
does per family is done here by what the model has, not by its name:

* MoE experts (``….experts.<i>.…``) are stacked into one ``ffn_*_exps`` tensor per projection;
  routers (``ffn_gate_inp``) are F32, as the converter forces them;
* q/k rows are permuted for llama.cpp's rotary layout in the architectures whose converter does
  it (:data:`ROTARY_PERMUTED`: ``llama``, which Mistral and Mixtral convert to);
* a norm that multiplies by ``1 + w`` (Gemma's) is stored as ``1 + w``: the offset is measured
  on the module (``smoothing.norm_offset``);
* fused layers (Phi-3's ``qkv_proj`` / ``gate_up_proj``), biases (Qwen2's), q/k norms (Qwen3's)
  and post-norms (Gemma 2's) are tensors the map names like any other; softcapping, sliding window,
  head and expert sizes are metadata when the config has them.

GGUF stores blocks of 32 weights. Where the candidate's codes fit a block type exactly they are
transcoded, never re-quantized (a group of 32·m weights is m blocks sharing its scale; a
per-channel row is width/32 blocks sharing the row's scale):

* symmetric int2/3/4 → ``Q4_0`` (``w = (q - 8)·d``: q = code - zero + 8),
* asymmetric int2/3/4 → ``Q4_1`` (``w = q·d + m``: d = scale, m = -zero·scale),
* symmetric int8 (and W8A8's weights) → ``Q8_0`` (``w = q·d``).

Scales become fp16 (the block header's type). Anything else (asymmetric int8, fp8, float layers)
is quantized to ``requantize_type`` and listed as such, with its weight error, in the manifest.

The check reads the file back with the ``gguf`` reader (every tensor's name and shape from the
map, every transcoded code and scale bit for bit, every other value against the candidate's, the
metadata) and, where Transformers 4.57 has a GGUF loader that rebuilds the candidate's layers
(llama, mistral, qwen2, qwen3, phi3, gemma2 …; not Mixtral: Transformers reads a ``llama`` file
as a dense Llama), with Transformers' loader, whose logits must match the candidate's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_build
from modelpress.deploy.builds import architectures as arch
from modelpress.deploy.builds import causal_lm, checks, validation
from modelpress.deploy.builds.llm import LLMBuild
from modelpress.deploy.builds.smoothing import fold_smoothing, norm_offset

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

NAME = "gguf"
FILENAME = "model.gguf"
BLOCK = 32
FloatType = Literal["F32", "F16", "BF16", "Q8_0"]
#: GGUF metadata from the Hugging Face config, as convert_hf_to_gguf.py's TextModel and the
#: families' own set_gguf_parameters write it: (key in gguf.Keys, config attributes tried in order,
#: type). A key is written when the config has the attribute (not None).
HYPERPARAMETERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("LLM.CONTEXT_LENGTH", ("max_position_embeddings",), "u32"),
    ("LLM.EMBEDDING_LENGTH", ("hidden_size",), "u32"),
    ("LLM.BLOCK_COUNT", ("num_hidden_layers",), "u32"),
    ("LLM.FEED_FORWARD_LENGTH", ("intermediate_size",), "u32"),
    ("LLM.VOCAB_SIZE", ("vocab_size",), "u32"),
    ("Attention.HEAD_COUNT", ("num_attention_heads",), "u32"),
    ("Attention.HEAD_COUNT_KV", ("num_key_value_heads",), "u32"),
    ("Attention.KEY_LENGTH", ("head_dim",), "u32"),
    ("Attention.VALUE_LENGTH", ("head_dim",), "u32"),
    ("Attention.LAYERNORM_RMS_EPS", ("rms_norm_eps",), "f32"),
    ("Attention.SLIDING_WINDOW", ("sliding_window",), "u32"),
    ("Rope.FREQ_BASE", ("rope_theta",), "f32"),
    ("Rope.SCALING_ORIG_CTX_LEN", ("original_max_position_embeddings",), "u32"),
    ("LLM.EXPERT_COUNT", ("num_local_experts", "num_experts"), "u32"),
    ("LLM.EXPERT_USED_COUNT", ("num_experts_per_tok",), "u32"),
    ("LLM.EXPERT_FEED_FORWARD_LENGTH", ("moe_intermediate_size",), "u32"),
    ("LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH", ("shared_expert_intermediate_size",), "u32"),
    ("LLM.ATTN_LOGIT_SOFTCAPPING", ("attn_logit_softcapping",), "f32"),
    ("LLM.FINAL_LOGIT_SOFTCAPPING", ("final_logit_softcapping",), "f32"),
)
#: llama.cpp architectures whose converter permutes q/k rows (``LlamaModel.permute``): llama.cpp's
#: rotary embedding for them turns adjacent pairs, Transformers' the two halves of each head
ROTARY_PERMUTED = ("llama",)
#: tensor roles llama.cpp reads as F32 whatever the file type (the converter forces them)
F32_ROLES = ("FFN_GATE_INP", "FFN_GATE_INP_SHEXP")


@register_build(NAME)
class GGUFBuild(LLMBuild):
    """``export: [gguf]``: its options, and the methods that write and check the file."""

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

    def format_problems(self, stages: list[Any], hf_config: Any) -> list[str]:
        found = validation.shape_problems(stages, hf_config, NAME)
        model, _ = validation.layout_or_problem(hf_config, NAME)  # its problem is in shape_problems
        if not isinstance(hf_config, dict) or model is None or not arch.available():
            return found  # without gguf, LLMBuild.problems names the missing package
        if arch.gguf_arch_name(model.model_type) is None:
            return found + [f"{NAME}: llama.cpp's tensor maps (gguf {_gguf_version()}) have no architecture for "
                            f"model_type {model.model_type!r}"]
        if hf_config.get("rope_scaling"):
            found.append(f"{NAME}: rope_scaling {hf_config['rope_scaling']} is not written by this build")
        unmapped = [n for n in model.linears if n not in model.roles and n != model.tied_head]
        if unmapped:
            found.append(f"{NAME}: llama.cpp's {arch.gguf_arch_name(model.model_type)} tensor map has no name for "
                         f"{', '.join(unmapped[:3])}")
        weights = validation.weight_stage(stages)
        if weights is None or weights.dtype != "int":
            return found
        found += validation.group_problems(weights, model, NAME, one_group=False)
        if found:
            return found
        quantized = model.quantized(weights)
        bad = sorted({(g, quantized[n][1]) for n, g in model.groups(weights).items()
                      if g % BLOCK or quantized[n][1] % BLOCK})
        if bad:
            found.append(f"{NAME}: groups/widths {bad[:3]} are not multiples of GGUF's {BLOCK}-weight blocks")
        return found

    def write_folder(self, model: nn.Module, tokenizer_dir: Path, out_dir: Path) -> Path:
        import gguf

        scheme = causal_lm.describe(model, one_group=False)
        folded = fold_smoothing(model)
        plan = tensor_plan(folded)
        out_dir = causal_lm.prepare_out_dir(out_dir)
        writer = gguf.GGUFWriter(str(out_dir / FILENAME), arch.gguf_arch_name(folded.config.model_type))
        _write_hyperparameters(writer, folded.config, scheme, self)
        _write_tokenizer(writer, Path(tokenizer_dir), self)
        report = _write_tensors(writer, plan, scheme, self)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        causal_lm.copy_tokenizer(tokenizer_dir, out_dir)
        reader_only = transformers_cannot_load(out_dir, folded)
        causal_lm.write_manifest(out_dir, NAME, scheme, file=FILENAME, architecture=writer.arch,
                                 checked_with="gguf reader" + ("" if reader_only else " + Transformers' GGUF loader"),
                                 transformers_gguf=reader_only or "loads it", **report)
        return out_dir

    def check_folder(self, out_dir: Path, model: nn.Module, eval_input_ids: torch.Tensor) -> dict[str, float]:
        """The gguf reader reads back every tensor the map gives the candidate, codes bit for bit and
        values, plus the metadata and the tokenizer; Transformers' GGUF loader, where it rebuilds the
        candidate's layers, reproduces its logits."""
        scheme = causal_lm.describe(model, one_group=False)
        folded = fold_smoothing(model)
        path = Path(out_dir) / FILENAME
        metrics = read_back(path, folded, scheme, self)
        _check_tokenizer(path, Path(out_dir))
        reason = transformers_cannot_load(Path(out_dir), folded)
        if reason is not None:
            return {**metrics, "transformers_gguf_loaded": 0.0}
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(str(out_dir), gguf_file=FILENAME, dtype="float32").eval()
        compared = checks.compare_logits(checks.model_logits(model, eval_input_ids),
                                         checks.model_logits(loaded, eval_input_ids), eval_input_ids)
        checks.require_close(compared, NAME, self.max_perplexity_ratio)
        return {**metrics, **compared, "transformers_gguf_loaded": 1.0}


def block_type(scheme: causal_lm.Scheme) -> str | None:
    """The GGUF type that holds the scheme's codes exactly, or None (re-quantized)."""
    if scheme.kind != "int":
        return None
    if scheme.bits <= 4:
        return "Q4_0" if scheme.symmetric else "Q4_1"
    return "Q8_0" if scheme.symmetric else None


@dataclass
class Entry:
    """One GGUF tensor and where its values come from in the candidate."""

    name: str  # e.g. blk.0.attn_q.weight, blk.0.ffn_up_exps.weight
    role: str  # llama.cpp's MODEL_TENSOR name
    leaf: str  # weight / bias
    sources: list[tuple[int, Any]] = field(default_factory=list)  # (expert index, module), stacked in order
    heads: int | None = None  # rows permuted for llama.cpp's rotary layout, per this many heads
    offset: float = 0.0  # added to a norm's weight (1 for a norm multiplying by 1 + w)

    def modules(self) -> list[Any]:
        return [m for _, m in sorted(self.sources, key=lambda s: s[0])]


def tensor_plan(model: nn.Module) -> list[Entry]:
    """Every tensor llama.cpp's map gives the model, in model order (a tied LM head is the embedding)."""
    config = model.config
    arch_name = arch.gguf_arch_name(config.model_type)
    if arch_name is None:
        raise ModelpressError(f"{NAME}: llama.cpp's tensor maps have no architecture for model_type "
                              f"{config.model_type!r}")
    tied = causal_lm.lm_head_tied(model)
    head = model.get_output_embeddings()
    entries: dict[str, Entry] = {}
    unmapped = []
    for module_name, module in model.named_modules():
        leaves = _leaves(module)
        if not leaves or (tied and module is head):
            continue
        found = arch.tensor_role(config.model_type, config.num_hidden_layers, module_name)
        if found is None:
            unmapped.append(module_name)
            continue
        role, base = found
        expert = arch.stacked_name(module_name)[1]
        for leaf in leaves:
            entry = entries.setdefault(f"{base}.{leaf}", Entry(f"{base}.{leaf}", role, leaf,
                                                                heads=_rotary_heads(role, arch_name, config)))
            entry.sources.append((expert or 0, module))
            if "NORM" in role and leaf == "weight" and len(entry.sources) == 1:
                entry.offset = norm_offset(module)
    if unmapped:
        raise ModelpressError(f"{NAME}: llama.cpp's {arch_name} tensor map has no name for {', '.join(unmapped[:4])}")
    for entry in entries.values():
        experts = sorted(i for i, _ in entry.sources)
        if len(experts) > 1 and experts != list(range(len(experts))):
            raise ModelpressError(f"{NAME}: {entry.name} stacks experts {experts}, not 0..{len(experts) - 1}")
    return list(entries.values())


def _leaves(module: nn.Module) -> list[str]:
    """The tensors a module contributes: a (quantized) Linear's weight and bias, or its own parameters."""
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return ["weight"] + (["bias"] if getattr(module, "bias", None) is not None else [])
    return [n for n, p in module._parameters.items() if p is not None]


def _rotary_heads(role: str, arch_name: str, config: Any) -> int | None:
    if arch_name not in ROTARY_PERMUTED:
        return None
    return {"ATTN_Q": config.num_attention_heads, "ATTN_K": config.num_key_value_heads}.get(role)


def hyperparameters(config: Any) -> dict[str, tuple[Any, str]]:
    """GGUF key (for the file's architecture) → (value, type), from the config by :data:`HYPERPARAMETERS`."""
    import gguf

    arch_name = arch.gguf_arch_name(config.model_type)
    found: dict[str, tuple[Any, str]] = {}
    for key, attributes, kind in HYPERPARAMETERS:
        group, _, constant = key.partition(".")
        template = getattr(getattr(gguf.Keys, group), constant)
        value = next((getattr(config, a) for a in attributes if getattr(config, a, None) is not None), None)
        if key == "Attention.SLIDING_WINDOW" and getattr(config, "use_sliding_window", True) is False:
            value = None
        if value is not None:
            found[template.format(arch=arch_name)] = (value, kind)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rotary = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    found[gguf.Keys.Rope.DIMENSION_COUNT.format(arch=arch_name)] = (rotary, "u32")
    return found


def _write_hyperparameters(writer: Any, config: Any, scheme: causal_lm.Scheme, options: GGUFBuild) -> None:
    import gguf

    if getattr(config, "rope_scaling", None):
        raise ModelpressError(f"{NAME}: rope_scaling {config.rope_scaling} is not written by this build")
    writer.add_name(getattr(config, "_name_or_path", "") or "modelpress candidate")
    for key, (value, kind) in hyperparameters(config).items():
        (writer.add_uint32 if kind == "u32" else writer.add_float32)(key, int(value) if kind == "u32" else float(value))
    file_type = {"Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
                 "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}.get(block_type(scheme) or "",
                                                            getattr(gguf.LlamaFileType, f"MOSTLY_{options.float_type}",
                                                                    gguf.LlamaFileType.MOSTLY_F16))
    writer.add_file_type(int(file_type))


def _write_tokenizer(writer: Any, tokenizer_dir: Path, config: GGUFBuild) -> None:
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


def exact_blocks(entry: Entry, scheme: causal_lm.Scheme) -> str | None:
    """The block type holding this tensor's codes exactly, or None (its values are written)."""
    quantized = all(hasattr(m, "qweight") for m in entry.modules())
    if entry.leaf != "weight" or entry.role in F32_ROLES or not quantized:
        return None
    return block_type(scheme)


def float_values(entry: Entry) -> np.ndarray:
    """The tensor's values as llama.cpp reads them: experts stacked, rows permuted, norm offset added."""
    import numpy as np

    arrays = [(causal_lm.float_weight(m) if entry.leaf == "weight" else getattr(m, entry.leaf).detach())
              .float().numpy() for m in entry.modules()]
    data = arrays[0] if len(arrays) == 1 else np.stack(arrays)
    if entry.heads:
        data = permute_rows(data, entry.heads)
    return data + np.float32(entry.offset) if entry.offset else data


def _write_tensors(writer: Any, plan: list[Entry], scheme: causal_lm.Scheme, config: GGUFBuild) -> dict[str, Any]:
    import gguf
    import numpy as np

    requantized: dict[str, float] = {}
    for entry in plan:
        exact = exact_blocks(entry, scheme)
        if exact is not None:
            qtype = getattr(gguf.GGMLQuantizationType, exact)
            writer.add_tensor(entry.name, encoded_blocks(entry, exact), raw_dtype=qtype)
            continue
        data = float_values(entry)
        kind = value_type(entry, config)
        if kind in ("F32", "F16"):
            writer.add_tensor(entry.name, data.astype(np.float32 if kind == "F32" else np.float16))
            continue
        qtype = getattr(gguf.GGMLQuantizationType, kind)
        packed = gguf.quants.quantize(data, qtype)
        if any(hasattr(m, "qweight") or hasattr(m, "weight_fp8") for m in entry.modules()):
            back = gguf.quants.dequantize(packed, qtype)
            requantized[entry.name] = float(np.linalg.norm(back - data) / max(np.linalg.norm(data), 1e-30))
        writer.add_tensor(entry.name, packed, raw_dtype=qtype)
    return {"transcoded_type": block_type(scheme), "float_type": config.float_type,
            "requantized": {k: round(v, 6) for k, v in requantized.items()},
            "requantize_type": config.requantize_type if requantized else None}


def value_type(entry: Entry, config: GGUFBuild) -> str:
    """The GGUF type of a tensor written from its values (not transcoded)."""
    modules = entry.modules()
    if entry.leaf != "weight" or entry.role in F32_ROLES or "NORM" in entry.role:
        return "F32"
    if any(hasattr(m, "qweight") or hasattr(m, "weight_fp8") for m in modules):
        return config.requantize_type
    return "F32" if modules[0].weight.dim() < 2 else config.float_type


def permute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    """Rows [heads·head_dim, …] reordered as convert_hf_to_gguf.py's ``LlamaModel.permute``."""
    shape = rows.shape
    return rows.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def unpermute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    shape = rows.shape
    return rows.reshape(heads, shape[0] // heads // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def encoded_blocks(entry: Entry, qtype: str) -> np.ndarray:
    """The entry's codes as GGUF blocks: uint8 ``[N, K/32 · bytes]`` (``[E, N, …]`` for experts)."""
    import numpy as np

    blocks = [encode_blocks(causal_lm.int_weight(m), qtype) for m in entry.modules()]
    data = blocks[0] if len(blocks) == 1 else np.stack(blocks)
    return permute_rows(data, entry.heads) if entry.heads else data


def encode_blocks(weight: causal_lm.IntWeight, qtype: str) -> np.ndarray:
    """The candidate's codes as GGUF blocks (uint8 ``[N, K/32 · bytes per block]``)."""
    import numpy as np

    codes = weight.codes.numpy().astype(np.int32)
    n, k = codes.shape
    scales, zeros = block_scales(weight)
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


def block_scales(weight: causal_lm.IntWeight) -> tuple[np.ndarray, np.ndarray]:
    """(fp32 scale, int32 zero point) of every 32-weight block ``[N, K/32]``: its group's."""
    import numpy as np

    k = weight.codes.shape[1]
    if weight.group_size % BLOCK or k % BLOCK:
        raise ModelpressError(f"{NAME}: groups of {weight.group_size} over width {k} do not split into "
                              f"{BLOCK}-weight blocks")
    per_block = np.repeat(np.arange(k // weight.group_size), weight.group_size // BLOCK)  # block -> group
    return weight.scales.numpy()[:, per_block], weight.zeros.numpy().astype(np.int32)[:, per_block]


def _nibbles(q: np.ndarray) -> np.ndarray:
    """ggml's 4-bit block: byte j holds weight j (low nibble) and weight j + 16 (high nibble)."""
    import numpy as np

    if q.min() < 0 or q.max() > 15:
        raise ModelpressError(f"{NAME}: codes outside 0..15 cannot be stored in a 4-bit block")
    q = q.astype(np.uint8)
    return q[..., : BLOCK // 2] | (q[..., BLOCK // 2:] << np.uint8(4))


def decode_blocks(raw: np.ndarray, qtype: str, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(integer codes as the block type stores them [N, K], fp32 block scales d [N, K/32], fp32 block
    minimums m [N, K/32] for Q4_1, else None)."""
    import numpy as np

    header = {"Q8_0": 2, "Q4_0": 2, "Q4_1": 4}[qtype]
    blocks = raw.reshape(n, k // BLOCK, -1)
    d = blocks[..., :2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32) if qtype == "Q4_1" else None
    body = blocks[..., header:]
    if qtype == "Q8_0":
        q = body.copy().view(np.int8).astype(np.int32)
    else:
        q = np.concatenate([body & 0x0F, body >> 4], axis=-1).astype(np.int32)
    return q.reshape(n, k), d, m


def read_back(path: Path, model: nn.Module, scheme: causal_lm.Scheme, config: GGUFBuild) -> dict[str, float]:
    """Every tensor of the plan in the file, with its codes (transcoded) or values (others)."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(path))
    _check_metadata(reader, model.config)
    tensors = {t.name: t for t in reader.tensors}
    plan = tensor_plan(model)
    expected = {e.name for e in plan}
    if set(tensors) != expected:
        raise ModelpressError(f"{NAME}: {path.name} holds tensors {sorted(set(tensors) - expected)[:4]} the map "
                              f"does not give the model and lacks {sorted(expected - set(tensors))[:4]}")
    exact, worst = 0, 0.0
    for entry in plan:
        tensor = tensors[entry.name]
        qtype = exact_blocks(entry, scheme)
        if qtype is not None:
            exact += _check_codes(entry, tensor, qtype)
            continue
        values = float_values(entry)
        found = gguf.dequantize(tensor.data, tensor.tensor_type).reshape(values.shape)
        error = float(np.linalg.norm(found - values) / max(float(np.linalg.norm(values)), 1e-30))
        if error > _tolerance(tensor.tensor_type.name):
            raise ModelpressError(f"{NAME}: {entry.name} ({tensor.tensor_type.name}) differs from the candidate's "
                                  f"values (relative error {error:.2e})")
        worst = max(worst, error)
    return {"tensors_read_back": float(len(plan)), "layers_with_exact_codes": float(exact),
            "max_value_rel_error": worst}


def _tolerance(qtype: str) -> float:
    """Relative error a value written as this type may carry (exact for F32)."""
    return {"F32": 0.0, "F16": 1e-3, "BF16": 8e-3, "Q8_0": 0.02}.get(qtype, 0.2)


def _check_codes(entry: Entry, tensor: Any, qtype: str) -> int:
    """The blocks hold the candidate's codes and scales bit for bit (a flipped code fails here);
    returns how many layers the tensor holds (an MoE expert stack: one per expert)."""
    import numpy as np

    raw = np.asarray(tensor.data)
    modules = entry.modules()
    raw = raw.reshape(len(modules), -1, raw.shape[-1])
    for index, module in enumerate(modules):
        weight = causal_lm.int_weight(module)
        n, k = weight.codes.shape
        q, d, m = decode_blocks(raw[index], qtype, n, k)
        if entry.heads:  # undo llama.cpp's rotary row order
            q, d = unpermute_rows(q, entry.heads), unpermute_rows(d, entry.heads)
            m = None if m is None else unpermute_rows(m, entry.heads)
        scales, zeros = block_scales(weight)
        codes = weight.codes.numpy().astype(np.int32)
        dense_zeros = np.repeat(zeros, BLOCK, axis=1)
        stored = {"Q4_0": codes - dense_zeros + 8, "Q8_0": codes - dense_zeros, "Q4_1": codes}[qtype]
        fp16 = scales.astype(np.float16).astype(np.float32)
        minimum_ok = m is None or np.array_equal(m, (-zeros * scales).astype(np.float16).astype(np.float32))
        if not (np.array_equal(q, stored) and np.array_equal(d, fp16) and minimum_ok):
            where = f"{entry.name}[{index}]" if len(modules) > 1 else entry.name
            raise ModelpressError(f"{NAME}: {where}'s codes or scales differ from the candidate's")
    return len(modules)


def _check_metadata(reader: Any, config: Any) -> None:
    arch_name = arch.gguf_arch_name(config.model_type)
    written = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    if written != arch_name:
        raise ModelpressError(f"{NAME}: the file's architecture is {written!r}, expected {arch_name!r}")
    for key, (value, kind) in hyperparameters(config).items():
        field = reader.fields.get(key)
        found = None if field is None else field.parts[field.data[0]][0]
        if found is None or (found != value if kind == "u32" else abs(float(found) - float(value)) > 1e-6 * abs(value)):
            raise ModelpressError(f"{NAME}: metadata {key} is {found}, the config says {value}")


def _check_tokenizer(path: Path, out_dir: Path) -> None:
    """The file's vocabulary, merges and special ids are the model's tokenizer's (what llama.cpp
    tokenizes with; Transformers' GGUF tokenizer conversion is not the consumer here: for phi3 and
    gemma2 files it assumes a SentencePiece vocabulary whatever ``tokenizer.ggml.model`` says)."""
    import gguf

    body = json.loads((out_dir / "tokenizer.json").read_text())
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    if tokens != _token_table(body)[0]:
        raise ModelpressError(f"{NAME}: the file's token list differs from {out_dir / 'tokenizer.json'}'s")
    merges = reader.fields["tokenizer.ggml.merges"]
    written = [bytes(merges.parts[i]).decode() for i in merges.data]
    ours = [m if isinstance(m, str) else " ".join(m) for m in body["model"].get("merges", [])]
    if written != ours:
        raise ModelpressError(f"{NAME}: the file's merges differ from the tokenizer's")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    for key, token_id in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id)):
        field = reader.fields.get(f"tokenizer.ggml.{key}_token_id")
        found = None if field is None else int(field.parts[field.data[0]][0])
        if token_id is not None and found != token_id:
            raise ModelpressError(f"{NAME}: the file's {key} token id is {found}, the tokenizer's {token_id}")


def transformers_cannot_load(out_dir: Path, model: nn.Module) -> str | None:
    """Why Transformers' GGUF loader cannot rebuild the candidate from the file (None: it can).

    It can when it has a loader for the architecture and the config it reads has the candidate's
    layers (names and shapes): a Mixtral file is read as a dense Llama, and the loader maps no
    GGUF key to some config fields (e.g. Qwen3's head_dim, an MoE's expert width), whose defaults
    then give other shapes.
    """
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES, load_gguf_checkpoint

    arch_name = arch.gguf_arch_name(model.config.model_type)
    if arch_name not in GGUF_SUPPORTED_ARCHITECTURES:
        return f"Transformers {_transformers_version()} has no GGUF loader for the {arch_name} architecture"
    read = load_gguf_checkpoint(str(Path(out_dir) / FILENAME), return_tensors=False)["config"]
    theirs = AutoConfig.for_model(read.pop("model_type"), **read)
    if _layer_shapes(theirs) != _layer_shapes(model.config):
        return (f"Transformers {_transformers_version()} reads the {arch_name} file as a "
                f"{theirs.model_type} model with other layers than the candidate's {model.config.model_type}")
    return None


def _layer_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    from transformers import AutoModelForCausalLM
    from transformers.integrations.accelerate import init_empty_weights

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")
