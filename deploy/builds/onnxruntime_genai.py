"""``onnxruntime-genai``: an ONNX Runtime GenAI folder (model.onnx + genai_config.json + tokenizer).

Built by onnxruntime-genai's own model builder. An int4 candidate is first written as the
``gptq`` build, which the builder reads as pre-quantized weights and repacks into MatMulNBits,
so the codes are modelpress's (the builder de- and re-quantizes them in fp16 on the way; the
check verifies the result). A float candidate goes through as a plain fp32 folder. Layers the
candidate kept in float (``lm_head`` usually) stay float: the builder is told not to quantize
them itself.

Pinned to onnxruntime-genai 0.15.2: the builders of 0.16-0.18 import Transformers 5 classes and
fail on the Transformers 4.57 the pipeline stack runs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.errors import ModelpressError
from modelpress.registry import register_build

from . import checks, gptq, llama
from .llm import LLMBuild

if TYPE_CHECKING:
    import torch
    from torch import nn

NAME = "onnxruntime-genai"
PARITY_TEXTS = ("the film was good.", "A dull  plot, great music!\nThe end", "  spaces and 123 digits")


@register_build(NAME)
class Config(LLMBuild):
    """``export: [onnxruntime-genai]`` options; the build's functions are this module's."""

    build_name: ClassVar[str] = NAME
    summary: ClassVar[str] = "an ONNX Runtime GenAI folder (MatMulNBits int4 from the candidate's codes, or fp32)"
    needs: ClassVar[dict[str, str]] = {'onnxruntime_genai': 'llm'}

    accuracy_level: Literal[1, 4] = Field(
        1, description="MatMulNBits compute: 1 keeps activations fp32 (the candidate's arithmetic, "
        "what the gate measured); 4 quantizes them to int8 (faster on CPUs with VNNI, no longer "
        "token-for-token equal to the candidate)")
    max_perplexity_ratio: float = Field(1.02, gt=1.0, description="check: allowed perplexity drift")
    min_greedy_match: int | None = Field(
        None, ge=0, le=checks.GREEDY_TOKENS, description="check: leading greedy tokens that must "
        "equal the candidate's (default: all 16 at accuracy_level 1, none at 4)")
    timeout_s: int = Field(1800, ge=10, description="the model builder's time limit")


def problems(config: Config, stages: list[Any], hf_config: Any) -> list[str]:
    found = llama.shape_problems(stages, hf_config, NAME)
    weights = llama.weight_stage(stages)
    if weights is None or weights.dtype in ("fp16", "bf16"):
        return found  # float: built at fp32 for the CPU
    if weights.dtype != "int" or weights.activations != "none" or weights.bits != 4:
        found.append(f"{NAME}: builds int4 weight-only candidates (MatMulNBits) and float ones; "
                     "this recipe quantizes to " + _describe(weights))
    from .compressed_tensors import group_problems

    return found + group_problems(weights, hf_config, NAME)


def _describe(weights: Any) -> str:
    if weights.dtype != "int":
        return weights.dtype
    return f"int{weights.bits}" + (" W8A8" if weights.activations != "none" else "")


def write(model: nn.Module, tokenizer_dir: Path, out_dir: Path, config: Config | None = None) -> Path:
    config = config or Config()
    scheme = llama.describe(model)
    if scheme.kind == "float":
        precision = "fp32"
    elif scheme.kind == "int" and scheme.bits == 4 and scheme.activations == "none":
        precision = "int4"
    else:
        raise ModelpressError(f"{NAME}: {scheme.label()} cannot be built (int4 weight-only or float)")
    out_dir = llama.prepare_out_dir(out_dir)
    with tempfile.TemporaryDirectory(prefix="modelpress-genai-") as scratch:
        source = Path(scratch) / "hf"
        if precision == "int4":  # GenAI masks v1 zero points, so wrapped ones read back right
            gptq.write(model, tokenizer_dir, source, gptq.Config(), allow_wrapped_zeros=True)
        else:
            _write_float(model, tokenizer_dir, source)
        _run_builder(source, out_dir, precision, _extra_options(model, scheme, config), config, Path(scratch))
    llama.write_manifest(out_dir, NAME, scheme, precision=precision, accuracy_level=config.accuracy_level)
    return out_dir


def _write_float(model: nn.Module, tokenizer_dir: Path, out_dir: Path) -> None:
    import torch

    plain = llama.float_model(llama.fold_smoothing(model), torch.float32)
    out_dir.mkdir(parents=True)
    plain.save_pretrained(out_dir)
    llama.copy_tokenizer(tokenizer_dir, out_dir)


def _extra_options(model: nn.Module, scheme: llama.Scheme, config: Config) -> list[str]:
    options = [f"accuracy_level={config.accuracy_level}"]
    if scheme.kind != "float" and "lm_head" not in scheme.quantized:
        # the builder would RTN-quantize the float LM head and, sharing it, a tied embedding
        options += ["nodes_to_exclude=/lm_head/MatMul", "shared_embeddings=false"]
    return options


def _run_builder(source: Path, out_dir: Path, precision: str, options: list[str], config: Config,
                 scratch: Path) -> None:
    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(source), "-o", str(out_dir),
               "-p", precision, "-e", "cpu", "-c", str(scratch / "cache"), "--extra_options", *options]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=config.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ModelpressError(f"{NAME}: the model builder did not finish in {config.timeout_s} s") from None
    if done.returncode != 0 or not (out_dir / "genai_config.json").is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ModelpressError(f"{NAME}: onnxruntime_genai's model builder failed (exit {done.returncode}):\n{tail}")


def genai_logits(og_model: Any, tokens: list[int]) -> Any:
    """Prefill logits ``[len(tokens), vocab]`` (numpy) of a GenAI model."""
    import numpy as np
    import onnxruntime_genai as og

    params = og.GeneratorParams(og_model)
    params.set_search_options(do_sample=False, max_length=len(tokens) + 1)
    generator = og.Generator(og_model, params)
    generator.append_tokens(np.asarray(tokens, dtype=np.int32))
    return np.array(generator.get_output("logits"))[0]


def genai_greedy(og_model: Any, prompt: list[int], n: int) -> list[int]:
    import numpy as np
    import onnxruntime_genai as og

    params = og.GeneratorParams(og_model)
    total = len(prompt) + n
    params.set_search_options(do_sample=False, max_length=total, min_length=total)  # no early EOS stop
    generator = og.Generator(og_model, params)
    generator.append_tokens(np.asarray(prompt, dtype=np.int32))
    while not generator.is_done():
        generator.generate_next_token()
    return [int(t) for t in generator.get_sequence(0)[len(prompt):]]


def tokenizer_problems(og_model: Any, hf_tokenizer: Any, texts: tuple[str, ...] = PARITY_TEXTS) -> list[str]:
    """Texts GenAI's tokenizer encodes or decodes differently from the model's own tokenizer."""
    import onnxruntime_genai as og

    tokenizer = og.Tokenizer(og_model)
    found = []
    for text in texts:
        ours = [int(t) for t in tokenizer.encode(text)]
        theirs = hf_tokenizer(text, add_special_tokens=True)["input_ids"]
        if ours != theirs:
            found.append(f"{text!r}: GenAI {ours} vs Transformers {theirs}")
        elif tokenizer.decode(ours) != hf_tokenizer.decode(theirs, skip_special_tokens=True):
            found.append(f"{text!r}: decodes to {tokenizer.decode(ours)!r}")
    return found


def check(out_dir: Path, model: nn.Module, eval_input_ids: torch.Tensor,
          config: Config | None = None) -> dict[str, float]:
    """GenAI loads and generates; tokenizer, first-token logits and greedy tokens match the candidate."""
    config = config or Config()
    import onnxruntime_genai as og
    import torch
    from transformers import AutoTokenizer

    og_model = og.Model(str(out_dir))
    mismatched = tokenizer_problems(og_model, AutoTokenizer.from_pretrained(str(out_dir)))
    if mismatched:
        raise ModelpressError(f"{NAME}: GenAI's tokenizer disagrees with the model's own: " + "; ".join(mismatched))
    built = torch.stack([torch.from_numpy(genai_logits(og_model, row.tolist())) for row in eval_input_ids])
    reference = checks.model_logits(model, eval_input_ids)
    metrics = checks.compare_logits(reference, built, eval_input_ids)
    first = reference[:, -1], built[:, -1]
    metrics["first_token_max_abs_diff"] = float((first[0] - first[1]).abs().max())
    metrics["first_token_argmax_equal"] = float(bool((first[0].argmax(-1) == first[1].argmax(-1)).all()))
    prompt = eval_input_ids[0, :16].tolist()
    expected = checks.candidate_greedy(model, prompt)
    got = genai_greedy(og_model, prompt, checks.GREEDY_TOKENS)
    matched = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), len(expected))
    metrics["greedy_tokens_matched"] = float(matched)
    required = config.min_greedy_match
    if required is None:
        required = checks.GREEDY_TOKENS if config.accuracy_level == 1 else 0
    if matched < required:
        raise ModelpressError(f"{NAME}: greedy continuation diverges from the candidate's at token {matched} "
                              f"(candidate {expected}, GenAI {got})")
    checks.require_close(metrics, NAME, config.max_perplexity_ratio)
    return metrics
