"""``gptq``: the GPTQ checkpoint layout (vLLM, Transformers/GPTQModel, ONNX Runtime GenAI read it),
for any Transformers causal LM: every quantized Linear by its module name, the rest of the folder
the candidate's own class and config.

Per quantized Linear (weights ``[N out, K in]``, groups of ``g`` along K):
``qweight`` int32 ``[K·b/32, N]`` (codes packed along K, lowest bits first), ``qzeros`` int32
``[K/g, N·b/32]`` (zero points packed along N, stored minus one: the v1 "gptq" checkpoint format
every reader takes), ``scales`` fp16 ``[K/g, N]``, ``g_idx`` int32 ``[K]`` (= k // g: our groups
are contiguous even with act-order, whose groups are "static"). Codes are unsigned: modelpress's
int4/int2 codes already are; int8 codes are shifted by 128 together with their zero points.

Written by hand (numpy bit packing) because the libraries that write this layout (GPTQModel,
auto-gptq, optimum) quantize themselves and need CUDA or Transformers 5.

Refused at validate: fp8, W8A8 and 3-bit weights, layers of different group sizes, and widths that
do not pack into int32 words. (MoE routers stay float: the causal-lm task protects them.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_build
from modelpress.deploy.builds import causal_lm, checks, validation
from modelpress.deploy.builds.architectures import Layout
from modelpress.deploy.builds.llm import LLMBuild
from modelpress.deploy.builds.smoothing import fold_smoothing

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

NAME = "gptq"
BITS = (2, 4, 8)  # 3-bit GPTQ packs codes across int32 words; few runtimes read it
LOADER_NOTE = ("direct unpack: Transformers' GPTQ loader needs gptqmodel, which requires torch>=2.14.1 "
               "and transformers>=5.20 (auto-gptq runs on CUDA only)")


@register_build(NAME)
class GPTQBuild(LLMBuild):
    """``export: [gptq]``: its options, and the methods that write and check the folder."""

    build_name: ClassVar[str] = NAME
    summary: ClassVar[str] = ("the GPTQ checkpoint layout (qweight/qzeros/scales/g_idx) "
                              "vLLM, Transformers and GenAI read")
    needs: ClassVar[dict[str, str]] = {'safetensors': 'llm', 'gguf': 'llm'}

    dtype: Literal["auto", "float16", "bfloat16"] = Field(
        "auto", description="dtype of the unquantized tensors; auto keeps the candidate's")
    max_perplexity_ratio: float = Field(1.002, gt=1.0, description="check: allowed perplexity drift "
                                        "(scales are stored in fp16)")

    def format_problems(self, stages: list[Any], hf_config: Any) -> list[str]:
        found = validation.shape_problems(stages, hf_config, NAME)
        weights = validation.weight_stage(stages)
        if weights is None or weights.dtype in ("fp16", "bf16"):
            return found + [(f"{NAME}: the candidate has no integer weights (weight-quantize with dtype: int); "
                             "a float model ships as the compressed-tensors build")]
        if weights.dtype == "fp8":
            found.append(f"{NAME}: fp8 weights have no GPTQ layout (use compressed-tensors)")
        elif weights.activations != "none":
            found.append(f"{NAME}: GPTQ checkpoints are weight-only; W8A8 ships as compressed-tensors")
        elif weights.bits not in BITS:
            found.append(f"{NAME}: int{weights.bits} weights; the layout is written for {BITS} bits")
        model, _ = validation.layout_or_problem(hf_config, NAME)  # its problem is in shape_problems
        if model is None or found:
            return found
        return (found + packing_problems(weights, model, NAME)
                + validation.group_problems(weights, model, NAME))

    def write_folder(self, model: nn.Module, tokenizer_dir: Path, out_dir: Path, *,
                     allow_wrapped_zeros: bool = False, block: int | None = None) -> Path:
        """Write the candidate's codes in the GPTQ layout, with config.json and the tokenizer.

        ``allow_wrapped_zeros``: an asymmetric group whose zero point is 0 is stored as -1 (v1 keeps
        zero−1), which wraps; ONNX Runtime GenAI masks it back, vLLM's GPTQ kernels do not, so it is
        refused unless the caller's reader masks. ``block``: write groups of this size, each larger
        group's scale and zero point repeated (the same values: per-channel codes for a reader whose
        blocks must be narrower than a row).
        """
        from safetensors.torch import save_file

        scheme = causal_lm.describe(model)
        if scheme.kind != "int" or scheme.activations != "none" or scheme.bits not in BITS:
            raise ModelpressError(f"{NAME}: {scheme.label()} has no GPTQ layout (integer weight-only, "
                                  f"{BITS} bits)")
        folded = fold_smoothing(model)
        out_dir = causal_lm.prepare_out_dir(out_dir)
        dtype = None if self.dtype == "auto" else getattr(__import__("torch"), self.dtype)
        plain = causal_lm.float_model(folded, dtype)
        aliases = ({n for n, _ in plain.named_parameters(remove_duplicate=False)}
                   - {n for n, _ in plain.named_parameters()})  # a tied LM head: the embedding, stored once
        state = {k: v.contiguous() for k, v in plain.state_dict().items()
                 if k.removesuffix(".weight") not in scheme.quantized and k not in aliases}
        wrapped = 0
        for name in scheme.quantized:
            weight = causal_lm.int_weight(folded.get_submodule(name))
            tensors, wraps = pack_layer(weight if block is None else weight.regrouped(block))
            wrapped += wraps
            state.update({f"{name}.{k}": v for k, v in tensors.items()})
        if wrapped and not allow_wrapped_zeros:
            raise ModelpressError(f"{NAME}: {wrapped} asymmetric group(s) have zero point 0, which the v1 "
                                  "GPTQ layout (zero−1) cannot store for vLLM; use symmetric: true")
        save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
        _write_config(plain.config, scheme, out_dir, block)
        causal_lm.copy_tokenizer(tokenizer_dir, out_dir)
        causal_lm.write_manifest(out_dir, NAME, scheme, wrapped_zero_points=wrapped)
        return out_dir

    def check_folder(self, out_dir: Path, model: nn.Module, eval_input_ids: torch.Tensor) -> dict[str, float]:
        """The folder's codes are the candidate's; its dequantized logits match the candidate's."""
        import numpy as np
        from safetensors.numpy import load_file

        scheme = causal_lm.describe(model)
        folded = fold_smoothing(model)
        tensors = load_file(str(Path(out_dir) / "model.safetensors"))
        shift = 128 if scheme.bits == 8 else 0
        scale_error = 0.0
        for name in scheme.quantized:
            ours = causal_lm.int_weight(folded.get_submodule(name))
            codes, zeros, scales = read_layer(tensors, name, scheme.bits)
            if not (np.array_equal(codes, ours.codes.numpy().T + shift)
                    and np.array_equal(zeros, ours.zeros.numpy().T + shift)):
                raise ModelpressError(f"{NAME}: {name}'s codes or zero points in {out_dir} differ from the candidate's")
            ref = ours.scales.numpy().T
            scale_error = max(scale_error, float(np.max(np.abs(scales - ref) / np.maximum(np.abs(ref), 1e-30))))
        loaded = load_dequantized(out_dir)
        metrics = checks.compare_logits(checks.model_logits(model, eval_input_ids),
                                        checks.model_logits(loaded, eval_input_ids), eval_input_ids)
        checks.require_close(metrics, NAME, self.max_perplexity_ratio)
        return {**metrics, "codes_equal": 1.0, "scale_fp16_max_rel_error": scale_error}


def packing_problems(weights: Any, model: Layout, build: str) -> list[str]:
    """qweight packs each column's codes and qzeros each group's zero points into int32 words."""
    per_word = 32 // weights.bits
    bad = {n: shape for n, shape in model.quantized(weights).items() if shape[0] % per_word or shape[1] % per_word}
    if not bad:
        return []
    name, (out, width) = next(iter(bad.items()))
    return [f"{build}: {name} is {out}x{width}; the GPTQ layout packs {per_word} {weights.bits}-bit codes and zero "
            f"points into each int32 word, so both sizes must be multiples of {per_word} (exclude it from "
            "weight-quantize)"]


def quantization_config(scheme: causal_lm.Scheme, block: int | None = None) -> dict[str, Any]:
    return {"quant_method": "gptq", "bits": scheme.bits, "group_size": block or scheme.group_size or -1,
            "desc_act": False, "sym": scheme.symmetric, "static_groups": False, "true_sequential": True,
            "checkpoint_format": "gptq"}


def _write_config(config: Any, scheme: causal_lm.Scheme, out_dir: Path, block: int | None) -> None:
    body = config.to_dict()
    body["quantization_config"] = quantization_config(scheme, block)
    (out_dir / "config.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def pack_layer(weight: causal_lm.IntWeight) -> tuple[dict[str, torch.Tensor], int]:
    """(qweight, qzeros, scales, g_idx) of one layer, and how many zero points wrapped."""
    import numpy as np
    import torch

    shift = 128 if weight.bits == 8 else 0  # int8 codes are signed in modelpress
    codes = (weight.codes.numpy().astype(np.int64) + shift).T  # [K, N]
    zeros = (weight.zeros.numpy().astype(np.int64) + shift).T  # [G, N]
    mask = (1 << weight.bits) - 1
    wraps = int((zeros == 0).sum())
    k = codes.shape[0]
    return {"qweight": torch.from_numpy(pack_rows(codes, weight.bits)),
            "qzeros": torch.from_numpy(pack_rows(((zeros - 1) & mask).T, weight.bits).T.copy()),
            "scales": weight.scales.T.contiguous().to(torch.float16),
            "g_idx": torch.arange(k, dtype=torch.int32) // weight.group_size}, wraps


def pack_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack unsigned ``bits``-wide integers along axis 0 into int32 (lowest bits first)."""
    import numpy as np

    per = 32 // bits
    rows, cols = values.shape
    if rows % per:
        raise ModelpressError(f"{NAME}: {rows} values do not pack into int32 words of {per}")
    grouped = values.reshape(rows // per, per, cols).astype(np.uint32)
    packed = np.zeros((rows // per, cols), dtype=np.uint32)
    for i in range(per):
        packed |= grouped[:, i, :] << np.uint32(bits * i)
    return packed.view(np.int32)


def unpack_rows(packed: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_rows` (written apart from the writer's loop: the check relies on it)."""
    import numpy as np

    words = packed.view(np.uint32)
    shifts = np.arange(0, 32, bits, dtype=np.uint32)
    values = (words[:, None, :] >> shifts[None, :, None]) & np.uint32((1 << bits) - 1)
    return values.reshape(-1, words.shape[1]).astype(np.int64)


def read_layer(tensors: dict[str, np.ndarray], name: str, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes [K, N], zero points [G, N], scales [G, N]) of one layer as a GPTQ reader decodes them."""
    mask = (1 << bits) - 1
    codes = unpack_rows(tensors[f"{name}.qweight"], bits)
    zeros = (unpack_rows(tensors[f"{name}.qzeros"].T.copy(), bits).T + 1) & mask
    return codes, zeros, tensors[f"{name}.scales"].astype("float32")


def load_dequantized(out_dir: Path, dtype: Any = None) -> nn.Module:
    """The folder's model class (Transformers', from its config.json) with its GPTQ weights
    dequantized as a GPTQ reader does (Transformers' own GPTQ loader needs gptqmodel: LOADER_NOTE)."""
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations.accelerate import init_empty_weights

    body = json.loads((Path(out_dir) / "config.json").read_text())
    quant = body.pop("quantization_config")
    config = AutoConfig.for_model(body.pop("model_type"), **body)
    tensors = load_file(str(Path(out_dir) / "model.safetensors"))
    state = {k: torch.from_numpy(v) for k, v in tensors.items()
             if not k.endswith((".qweight", ".qzeros", ".scales", ".g_idx"))}
    for key in [k for k in tensors if k.endswith(".qweight")]:
        name = key.removesuffix(".qweight")
        codes, zeros, scales = read_layer(tensors, name, quant["bits"])
        g_idx = tensors[f"{name}.g_idx"].astype(np.int64)
        weight = (codes - zeros[g_idx]) * scales[g_idx]  # [K, N]
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(weight.T, dtype=np.float32))
    with init_empty_weights():  # every weight is assigned from the file below
        model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    head = model.get_output_embeddings()
    tied = {f"{n}.weight" for n, m in model.named_modules() if m is head} if config.tie_word_embeddings else set()
    if unexpected or [m for m in missing if m not in tied]:
        raise ModelpressError(f"{NAME}: {out_dir} does not hold a full {type(model).__name__}: missing {missing}, "
                              f"unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    return model.eval().to(dtype or torch.float32)


