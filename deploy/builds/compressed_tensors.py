"""``compressed-tensors``: a Hugging Face folder vLLM and Transformers load quantized, for any
Transformers causal LM: the format describes Linear layers by module name, and the folder is the
candidate's own class and config (``causal_lm.float_model``) with its quantized layers compressed.

The candidate's layers become compressed-tensors modules and the library's own compressor
writes them: ``apply_quantization_config`` gives each Linear the scheme's parameters, we set
``weight`` to the candidate's dequantized codes and ``weight_scale`` to its scales (so the
compressor's ``round(w / scale)`` gives back exactly the candidate's codes — checked on the
written file), then ``ModelCompressor.compress_model`` + ``save_pretrained`` + ``update_config``.

Formats: W4A16/W8A16 → ``pack-quantized``; W8A8 (per-token dynamic int8 activations) →
``int-quantized``; fp8 E4M3 → ``float-quantized``; a float candidate → a plain folder.

Refused at validate: 2/3-bit and asymmetric weights (no vLLM kernel; Transformers 4.57 cannot load
packed zero points) and layers of different group sizes. MoE routers, which vLLM builds in float,
are never quantized: the causal-lm task protects them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_build
from modelpress.deploy.builds import causal_lm, checks, validation
from modelpress.deploy.builds.llm import LLMBuild
from modelpress.deploy.builds.smoothing import fold_smoothing

if TYPE_CHECKING:
    import torch
    from torch import nn

NAME = "compressed-tensors"
WEIGHT_BITS = (4, 8)  # vLLM's compressed-tensors integer kernels (WNA16, W8A8)


@register_build(NAME)
class CompressedTensorsBuild(LLMBuild):
    """``export: [compressed-tensors]``: its options, and the methods that write and check the folder."""

    build_name: ClassVar[str] = NAME
    summary: ClassVar[str] = ("a Hugging Face folder with a compressed-tensors quantization_config "
                              "(vLLM, Transformers), the candidate's codes")
    needs: ClassVar[dict[str, str]] = {'compressed_tensors': 'llm', 'safetensors': 'llm', 'gguf': 'llm'}

    dtype: Literal["auto", "float16", "bfloat16"] = Field(
        "auto", description="dtype of the unquantized tensors (embeddings, norms, float layers); "
        "auto keeps the candidate's")
    max_perplexity_ratio: float | None = Field(
        None, gt=1.0, description="check: allowed perplexity drift (default 1.001; 1.01 when the "
        "consumer quantizes activations: Transformers' emulation divides the int8 range by 127.5, "
        "modelpress and vLLM by 127)")

    def format_problems(self, stages: list[Any], hf_config: Any) -> list[str]:
        """Why the recipe's stages cannot end in a compressed-tensors folder (empty: they can)."""
        found = validation.shape_problems(stages, hf_config, NAME)
        weights = validation.weight_stage(stages)
        model, _ = validation.layout_or_problem(hf_config, NAME)  # its problem is in shape_problems
        if weights is None or model is None or weights.dtype in ("fp16", "bf16"):
            return found
        if weights.dtype == "fp8":
            return found
        if weights.bits not in WEIGHT_BITS:
            found.append(f"{NAME}: int{weights.bits} weights — vLLM's compressed-tensors kernels take "
                         "4- or 8-bit integers (the gguf build stores int2/int3 codes exactly)")
        if not weights.symmetric:
            found.append(f"{NAME}: asymmetric weights — Transformers 4.57 cannot load compressed-tensors "
                         "checkpoints with packed zero points (compressed-tensors ≤ 0.20.1), so the build "
                         "could not be checked; use symmetric: true, or the gptq build")
        return found + validation.group_problems(weights, model, NAME)

    def write_folder(self, model: nn.Module, tokenizer_dir: Path, out_dir: Path) -> Path:
        """Write the candidate as a compressed-tensors (or plain, when float) Hugging Face folder."""
        scheme = causal_lm.describe(model)
        folded = fold_smoothing(model)
        out_dir = causal_lm.prepare_out_dir(out_dir)
        dtype = None if self.dtype == "auto" else _torch_dtype(self.dtype)
        plain = causal_lm.float_model(folded, dtype)
        fmt = None
        if scheme.kind != "float":
            fmt = _compress(plain, folded, scheme, out_dir)
        else:
            plain.save_pretrained(out_dir)
        causal_lm.copy_tokenizer(tokenizer_dir, out_dir)
        causal_lm.write_manifest(out_dir, NAME, scheme, format=fmt or "dense")
        return out_dir

    def check_folder(self, out_dir: Path, model: nn.Module, eval_input_ids: torch.Tensor) -> dict[str, float]:
        """Transformers (with compressed-tensors) loads the folder; its logits match the candidate's."""
        from transformers import AutoModelForCausalLM

        # Transformers loads compressed-tensors folders in fp16 unless told otherwise
        loaded = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype="auto").eval()
        metrics = checks.compare_logits(checks.model_logits(model, eval_input_ids),
                                        checks.model_logits(loaded, eval_input_ids), eval_input_ids)
        dynamic = causal_lm.describe(model).activations != "none"
        checks.require_close(metrics, NAME, self.max_perplexity_ratio or (1.01 if dynamic else 1.001))
        return metrics


def _torch_dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, name)


def _compress(plain: nn.Module, folded: nn.Module, scheme: causal_lm.Scheme, out_dir: Path) -> str:
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationScheme,
        apply_quantization_config,
    )

    _refuse(scheme)
    weights, activations, fmt = _arguments(scheme)
    ignore = [n for n, m in plain.named_modules() if type(m).__name__ == "Linear" and n not in scheme.quantized]
    group = QuantizationScheme(targets=list(scheme.quantized), weights=weights, input_activations=activations)
    apply_quantization_config(plain, QuantizationConfig(config_groups={"group_0": group}, ignore=ignore, format=fmt))
    for name in scheme.quantized:
        _set_parameters(plain.get_submodule(name), folded.get_submodule(name), scheme)
    compressor = ModelCompressor.from_pretrained_model(plain, quantization_format=fmt)
    compressor.compress_model(plain)
    plain.save_pretrained(out_dir)
    compressor.update_config(str(out_dir))
    _verify_codes(out_dir, folded, scheme, fmt)
    return fmt


def _refuse(scheme: causal_lm.Scheme) -> None:
    if scheme.kind == "int" and (scheme.bits not in WEIGHT_BITS or not scheme.symmetric):
        raise ModelpressError(f"{NAME}: {scheme.label()} weights cannot be written (4/8-bit symmetric only)")


def _arguments(scheme: causal_lm.Scheme) -> tuple[Any, Any, str]:
    from compressed_tensors.quantization import QuantizationArgs

    if scheme.kind == "fp8":
        weights = QuantizationArgs(num_bits=8, type="float", symmetric=True,
                                   strategy="tensor" if scheme.per_tensor else "channel")
        acts = None if scheme.activations == "none" else QuantizationArgs(
            num_bits=8, type="float", symmetric=True, dynamic=True,
            strategy="tensor" if scheme.per_tensor else "token")
        return weights, acts, "float-quantized"
    strategy = {"strategy": "group", "group_size": scheme.group_size} if scheme.group_size else {"strategy": "channel"}
    weights = QuantizationArgs(num_bits=scheme.bits, type="int", symmetric=True, **strategy)
    if scheme.activations == "int8":  # modelpress W8A8: per-token dynamic symmetric int8
        acts = QuantizationArgs(num_bits=8, type="int", symmetric=True, dynamic=True, strategy="token")
        return weights, acts, "int-quantized"
    return weights, None, "pack-quantized"


def _set_parameters(target: nn.Module, source: nn.Module, scheme: causal_lm.Scheme) -> None:
    """The candidate's dequantized weight and its scales (the compressor re-derives the codes)."""
    import torch

    with torch.no_grad():
        if scheme.kind == "fp8":
            weight, scale = causal_lm.fp8_weight(source)
            target.weight.copy_(weight.float() * scale)
            target.weight_scale.copy_(scale.reshape(target.weight_scale.shape))
            return
        codes = causal_lm.int_weight(source)
        target.weight.copy_(codes.dequantize().to(target.weight.dtype))
        target.weight_scale.copy_(codes.scales.reshape(target.weight_scale.shape).to(target.weight_scale.dtype))


def _verify_codes(out_dir: Path, folded: nn.Module, scheme: causal_lm.Scheme, fmt: str) -> None:
    """The written integers are the candidate's codes (signed, zero point subtracted)."""
    import torch
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    from safetensors import safe_open

    if scheme.kind == "fp8":
        return  # the compressor casts our E4M3 values back to E4M3: nothing to re-derive
    with safe_open(str(out_dir / "model.safetensors"), "pt") as f:
        for name in scheme.quantized:
            codes = causal_lm.int_weight(folded.get_submodule(name))
            expected = codes.codes - codes.zeros.repeat_interleave(codes.group_size, 1)
            if fmt == "pack-quantized":
                shape = torch.Size(f.get_tensor(f"{name}.weight_shape").tolist())
                written = unpack_from_int32(f.get_tensor(f"{name}.weight_packed"), scheme.bits, shape)
            else:
                written = f.get_tensor(f"{name}.weight")
            if not torch.equal(written.to(torch.int16), expected):
                raise ModelpressError(f"{NAME}: {name}'s written codes differ from the candidate's "
                                      "(the compressor re-quantized them)")


