"""``onnxruntime-genai``: an ONNX Runtime GenAI folder (model.onnx + genai_config.json + tokenizer).

Built by onnxruntime-genai's own model builder, for every architecture it converts (read from its
source: :func:`builder_architectures`; in 0.15.2 Llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2 and
others, but no Mixtral or Qwen2-MoE). An int4 candidate is first written as the ``gptq`` build,
which the builder reads as pre-quantized weights and repacks into MatMulNBits, so the codes are
modelpress's (the builder de- and re-quantizes them in fp16 on the way; the check verifies the
result). MatMulNBits takes blocks of a power of two >= 16: a per-group candidate's group is the
block; per-channel codes are written with the largest such block dividing every input width, each
row's scale and zero point repeated over its blocks (the same values, not re-quantized). A float
candidate goes through as a plain fp32 folder. Layers the candidate kept in float (``lm_head``
usually) stay float: the builder is told not to quantize them itself.

Refused at validate: architectures the builder does not convert, anything but int4 weight-only or
float weights, groups MatMulNBits cannot take, and widths no block divides.

Pinned to onnxruntime-genai 0.15.2: the builders of 0.16-0.18 import Transformers 5 classes and
fail on the Transformers 4.57 the pipeline stack runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_build
from modelpress.deploy.builds import causal_lm, checks, gptq, validation
from modelpress.deploy.builds.llm import LLMBuild
from modelpress.deploy.builds.smoothing import fold_smoothing

if TYPE_CHECKING:
    import torch
    from torch import nn

NAME = "onnxruntime-genai"
BLOCKS = (128, 64, 32, 16)  # MatMulNBits: a power of two >= 16; the largest that fits is the fastest
PARITY_TEXTS = ("the film was good.", "A dull  plot, great music!\nThe end", "  spaces and 123 digits")


@register_build(NAME)
class OnnxRuntimeGenAIBuild(LLMBuild):
    """``export: [onnxruntime-genai]``: its options, and the methods that build and check the folder."""

    build_name: ClassVar[str] = NAME
    summary: ClassVar[str] = "an ONNX Runtime GenAI folder (MatMulNBits int4 from the candidate's codes, or fp32)"
    needs: ClassVar[dict[str, str]] = {'onnxruntime_genai': 'llm', 'gguf': 'llm'}

    accuracy_level: Literal[1, 4] = Field(
        1, description="MatMulNBits compute: 1 keeps activations fp32 (the candidate's arithmetic, "
        "what the gate measured); 4 quantizes them to int8 (faster on CPUs with VNNI, no longer "
        "token-for-token equal to the candidate)")
    max_perplexity_ratio: float = Field(1.02, gt=1.0, description="check: allowed perplexity drift")
    min_greedy_match: int | None = Field(
        None, ge=0, le=checks.GREEDY_TOKENS, description="check: leading greedy tokens that must "
        "equal the candidate's (default: all 16 at accuracy_level 1, none at 4)")
    timeout_s: int = Field(1800, ge=10, description="the model builder's time limit")

    def format_problems(self, stages: list[Any], hf_config: Any) -> list[str]:
        found = validation.shape_problems(stages, hf_config, NAME)
        model, _ = validation.layout_or_problem(hf_config, NAME)  # its problem is in shape_problems
        if model is not None and model.architecture not in builder_architectures():
            return found + [f"{NAME}: onnxruntime-genai {_version()}'s model builder does not convert "
                            f"{model.architecture} (its causal LMs: {', '.join(sorted(_causal_lms()))})"]
        weights = validation.weight_stage(stages)
        if weights is None or weights.dtype in ("fp16", "bf16"):
            return found  # float: built at fp32 for the CPU
        if weights.dtype != "int" or weights.activations != "none" or weights.bits != 4:
            return found + [f"{NAME}: builds int4 weight-only candidates (MatMulNBits) and float ones; "
                            "this recipe quantizes to " + _describe(weights)]
        if model is None:
            return found
        found += validation.group_problems(weights, model, NAME) + gptq.packing_problems(weights, model, NAME)
        if found:
            return found
        return block_problems(model.groups(weights), {n: w for n, (_, w) in model.quantized(weights).items()})

    def write_folder(self, model: nn.Module, tokenizer_dir: Path, out_dir: Path) -> Path:
        if type(model).__name__ not in builder_architectures():  # format_problems() refuses it at validate
            raise ModelpressError(f"{NAME}: onnxruntime-genai {_version()}'s model builder does not convert "
                                  f"{type(model).__name__}")
        scheme = causal_lm.describe(model)
        block = None
        if scheme.kind == "float":
            precision = "fp32"
        elif scheme.kind == "int" and scheme.bits == 4 and scheme.activations == "none":
            precision = "int4"
            block = scheme.group_size or _per_channel_block(model, scheme)
        else:
            raise ModelpressError(f"{NAME}: {scheme.label()} cannot be built (int4 weight-only or float)")
        out_dir = causal_lm.prepare_out_dir(out_dir)
        with tempfile.TemporaryDirectory(prefix="modelpress-genai-") as scratch:
            source = Path(scratch) / "hf"
            if precision == "int4":  # GenAI masks v1 zero points, so wrapped ones read back right
                gptq.GPTQBuild().write_folder(model, tokenizer_dir, source, allow_wrapped_zeros=True, block=block)
            else:
                _write_float(model, tokenizer_dir, source)
            _special_ids_from_tokenizer(source)
            _run_builder(source, out_dir, precision, _extra_options(model, scheme, self), self, Path(scratch))
        causal_lm.write_manifest(out_dir, NAME, scheme, precision=precision, accuracy_level=self.accuracy_level,
                                 matmulnbits_block=block)
        return out_dir

    def check_folder(self, out_dir: Path, model: nn.Module, eval_input_ids: torch.Tensor) -> dict[str, float]:
        """GenAI loads and generates; tokenizer, first-token logits and greedy tokens match the candidate."""
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
        matched = greedy_match(expected, got, end_tokens(out_dir))
        metrics["greedy_tokens_matched"] = float(matched)
        tie = diverged_at_tie(model, prompt, expected, got, matched, metrics["max_abs_logit_diff"])
        metrics["greedy_diverged_at_tie"] = float(tie)
        required = self.min_greedy_match
        if required is None:
            required = checks.GREEDY_TOKENS if self.accuracy_level == 1 else 0
        if matched < required and not tie:
            raise ModelpressError(f"{NAME}: greedy continuation diverges from the candidate's at token {matched} "
                                  f"(candidate {expected}, GenAI {got})")
        checks.require_close(metrics, NAME, self.max_perplexity_ratio)
        return metrics


def block_problems(groups: dict[str, int], widths: dict[str, int]) -> list[str]:
    """A MatMulNBits block for the groups (the group itself; per-channel: one that divides every width)."""
    proper = {g for n, g in groups.items() if g != widths[n]}
    if proper:
        group = proper.pop()
        if group < 16 or group & (group - 1):
            return [f"{NAME}: group_size {group} — MatMulNBits takes blocks of a power of two >= 16"]
        return []
    if matmulnbits_block(list(widths.values())) is None:
        return [f"{NAME}: per-channel int4 is written as MatMulNBits blocks of a power of two >= 16 that divide "
                f"every input width, and none of {BLOCKS} divides {sorted(set(widths.values()))}; quantize per group"]
    return []


def matmulnbits_block(widths: list[int]) -> int | None:
    """The largest MatMulNBits block dividing every width (per-channel codes, scales repeated)."""
    return next((b for b in BLOCKS if all(w % b == 0 for w in widths)), None)


@lru_cache(maxsize=1)
def builder_architectures() -> frozenset[str]:
    """The Hugging Face architectures onnxruntime-genai's model builder converts: the names its
    ``create_model`` compares ``config.architectures[0]`` with, read from the installed builder's
    source (so an upgrade of onnxruntime-genai needs no edit here). Empty when not installed."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_genai")  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    source = Path(next(iter(spec.submodule_search_locations))) / "models" / "builder.py"
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Compare) and ast.unparse(node.left) == "config.architectures[0]":
            found |= {c.value for c in node.comparators if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return frozenset(found)


def _causal_lms() -> list[str]:
    return [a.removesuffix("ForCausalLM") for a in builder_architectures() if a.endswith("ForCausalLM")]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxruntime-genai")
    except PackageNotFoundError:
        return "(not installed)"


def _describe(weights: Any) -> str:
    if weights.dtype != "int":
        return weights.dtype
    return f"int{weights.bits}" + (" W8A8" if weights.activations != "none" else "")


def _per_channel_block(model: nn.Module, scheme: causal_lm.Scheme) -> int:
    widths = [int(model.get_submodule(n).in_features) for n in scheme.quantized]
    block = matmulnbits_block(widths)
    if block is None:
        raise ModelpressError(f"{NAME}: no MatMulNBits block of {BLOCKS} divides the input widths "
                              f"{sorted(set(widths))} of the per-channel candidate")
    return block


def _write_float(model: nn.Module, tokenizer_dir: Path, out_dir: Path) -> None:
    import torch

    plain = causal_lm.float_model(fold_smoothing(model), torch.float32)
    out_dir.mkdir(parents=True)
    plain.save_pretrained(out_dir)
    causal_lm.copy_tokenizer(tokenizer_dir, out_dir)


def _special_ids_from_tokenizer(folder: Path) -> None:
    """genai_config.json needs an eos_token_id: where config.json has none, the tokenizer's."""
    from transformers import AutoTokenizer

    body = json.loads((folder / "config.json").read_text())
    missing = [k for k in ("bos", "eos") if body.get(f"{k}_token_id") is None]
    if not missing:
        return
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    for key in missing:
        body[f"{key}_token_id"] = getattr(tokenizer, f"{key}_token_id")
    (folder / "config.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def _extra_options(model: nn.Module, scheme: causal_lm.Scheme, config: OnnxRuntimeGenAIBuild) -> list[str]:
    options = [f"accuracy_level={config.accuracy_level}"]
    head = model.get_output_embeddings()
    head_name = next((n for n, m in model.named_modules() if m is head), None)
    if scheme.kind != "float" and head_name not in scheme.quantized:
        # the builder would RTN-quantize the float LM head (its node is /lm_head/MatMul in every
        # family it builds) and, sharing it, a tied embedding
        options += ["nodes_to_exclude=/lm_head/MatMul", "shared_embeddings=false"]
    return options


def _run_builder(source: Path, out_dir: Path, precision: str, options: list[str], config: OnnxRuntimeGenAIBuild,
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
    """Up to ``n`` greedy tokens; fewer when GenAI ends the text (an end-of-text token)."""
    import numpy as np
    import onnxruntime_genai as og

    params = og.GeneratorParams(og_model)
    params.set_search_options(do_sample=False, max_length=len(prompt) + n)
    generator = og.Generator(og_model, params)
    generator.append_tokens(np.asarray(prompt, dtype=np.int32))
    while not generator.is_done():
        generator.generate_next_token()
    return [int(t) for t in generator.get_sequence(0)[len(prompt):]]


def greedy_match(expected: list[int], got: list[int], ends: set[int]) -> int:
    """Leading tokens GenAI generated as the candidate did; a text both end at the same place
    (GenAI stops at an end-of-text token, the candidate's greedy loop does not) matches in full."""
    for i, token in enumerate(expected):
        if i >= len(got):  # GenAI stopped: where the candidate ends the text too (the end token is not kept)
            return len(expected) if token in ends or (got and got[-1] in ends) else i
        if got[i] != token:
            return i
        if token in ends:
            return len(expected)
    return len(expected)


def diverged_at_tie(model: nn.Module, prompt: list[int], expected: list[int], got: list[int], matched: int,
                    logit_error: float) -> bool:
    """Whether GenAI's first different token was the candidate's runner-up by less than the logit
    error measured between the two: two near-equal logits, which float summation order (MLAS picks
    its kernels by CPU) may order either way, not a build that computes something else."""
    import torch

    if matched >= len(expected) or matched >= len(got):
        return False
    logits = checks.model_logits(model, torch.tensor([prompt + expected[:matched]]))[0, -1]
    margin = float(logits[expected[matched]] - logits[got[matched]])
    return margin <= 2 * logit_error


def end_tokens(out_dir: Path) -> set[int]:
    """The token ids GenAI stops at (genai_config.json's eos_token_id)."""
    eos = json.loads((Path(out_dir) / "genai_config.json").read_text())["model"].get("eos_token_id", [])
    return set(eos if isinstance(eos, list) else [eos])


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


