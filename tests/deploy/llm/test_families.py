"""Every LLM build for every family its consumer takes, on tiny Llama, Mistral, Qwen2, Qwen3, Phi-3,
Gemma 2 and Mixtral models (families.py) saved with save_pretrained and loaded back as a user's
folder, quantized by the real weight-quantize code (GPTQ int4, groups of 32 and 128): each build is
written from the candidate's codes and loaded by its real consumer (Transformers for
compressed-tensors, the gguf reader and Transformers' GGUF loader for GGUF, GenAI for GenAI), and
what a consumer cannot take is refused by the build's ``problems`` (validate) first.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from modelpress.core.errors import ModelpressError

_spec = importlib.util.spec_from_file_location("llm_families", Path(__file__).with_name("families.py"))
families = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(families)

NAMES = list(families.FAMILIES)
CASES = [(name, group) for name in NAMES for group in (32, 128)]
GENAI = [name for name in NAMES if name != "mixtral"]  # the builder converts no Mixtral
#: what a ✓ in the README's support matrix is limited to (tests/support_matrix.py)
LIMITS = {("mixtral", "gguf"): "checked by the gguf reader only: llama.cpp stores Mixtral under its `llama` "
                               "architecture, which Transformers 4.57 reads back as a dense Llama"}


def cells(column: str, names: list[str] = NAMES) -> list:
    """CASES for ``column``'s test, each backing its family's support-matrix cell."""
    return [pytest.param(name, group, id=f"{name}-{group}",
                         marks=pytest.mark.support(name, column, note=LIMITS.get((name, column))))
            for name, group in CASES if name in names]


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """family(name) -> (folder, model loaded from it, calibration batches, eval ids), cached."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = {}

    def get(name):
        if name not in cache:
            folder = families.write_family(name, tmp_path_factory.mktemp(name))
            tokenizer = AutoTokenizer.from_pretrained(folder)
            ids = tokenizer(" ".join(families.corpus(200, seed=3)))["input_ids"]
            calibration = [torch.tensor([ids[i:i + 64] for i in range(j, j + 256, 64)]) for j in range(0, 1024, 256)]
            held_out = tokenizer(" ".join(families.corpus(40, seed=7)))["input_ids"][:192]
            cache[name] = (folder, AutoModelForCausalLM.from_pretrained(folder).eval(), calibration,
                           torch.tensor([held_out[:96], held_out[96:]]))
        return cache[name]

    return get


def stage(name, **fields):
    """The weight-quantize config a user of this family writes: the tied LM head is left float (the
    causal-lm task protects it) and so are MoE routers (vLLM builds them in float)."""
    from modelpress.steps.quantize import WeightQuantizeConfig

    tied = families.FAMILIES[name][1].get("tie_word_embeddings")
    exclude = (["^lm_head$"] if tied else []) + ([families.ROUTERS[name]] if name in families.ROUTERS else [])
    return WeightQuantizeConfig(exclude=exclude, calibration={"progress": False}, **fields)


def gptq_int4(group):
    return {"bits": 4, "granularity": "per-group", "group_size": group, "algorithm": "gptq"}


@pytest.fixture(scope="module")
def candidate(family):
    """candidate(name, **stage fields) -> the quantized model (cached per family and scheme)."""
    import torch

    from modelpress.steps.quantize.torch_backend import quantize_module

    cache = {}

    def get(name, **fields):
        key = (name, json.dumps(fields, sort_keys=True))
        if key not in cache:
            _, model, calibration, _ = family(name)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # GPTQ's small per-column ops: one thread is fastest, and steady under load
            try:
                cache[key] = quantize_module(model, stage(name, **fields), calibration,
                                             lambda m, ids: m(input_ids=ids).logits[:, -8:])
            finally:
                torch.set_num_threads(threads)
        return cache[key]

    return get


def hf_config(family, name):
    return json.loads((family(name)[0] / "config.json").read_text())


def build(config, name, fields, family, candidate, tmp_path):
    """Validate (the build's format problems), write and check with the consumer; (folder, metrics)."""
    folder, _, _, eval_ids = family(name)
    assert config.format_problems([stage(name, **fields)], hf_config(family, name)) == []
    model = candidate(name, **fields)
    out = config.write_folder(model, folder, tmp_path / config.build_name)
    return out, config.check_folder(out, model, eval_ids)


@pytest.mark.parametrize(("name", "group"), cells("compressed-tensors"))
def test_compressed_tensors_loads_in_transformers_for_every_family(name, group, family, candidate, tmp_path):
    from modelpress.deploy.builds.compressed_tensors import CompressedTensorsBuild

    out, metrics = build(CompressedTensorsBuild(), name, gptq_int4(group), family, candidate, tmp_path)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [type(family(name)[1]).__name__]
    weights = config["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"]) == (4, group)
    assert metrics["max_abs_logit_diff"] == 0.0  # Transformers decompresses exactly the candidate's weights


@pytest.mark.parametrize(("name", "group"), cells("gptq"))
def test_gptq_layout_holds_every_familys_codes(name, group, family, candidate, tmp_path):
    from modelpress.deploy.builds.gptq import GPTQBuild

    out, metrics = build(GPTQBuild(), name, gptq_int4(group), family, candidate, tmp_path)
    assert json.loads((out / "config.json").read_text())["quantization_config"]["group_size"] == group
    assert metrics["codes_equal"] == 1.0 and metrics["perplexity_ratio"] == pytest.approx(1.0, abs=2e-3)


#: a tensor each family's GGUF must hold, named by llama.cpp's map, with its shape
GGUF_TENSORS = {
    "llama": ("blk.1.attn_k.weight", (64, 128)),
    "mistral": ("output.weight", (384, 128)),
    "qwen2": ("blk.0.attn_q.bias", (128,)),
    "qwen3": ("blk.0.attn_q_norm.weight", (128,)),
    "phi3": ("blk.0.attn_qkv.weight", (256, 128)),
    "gemma2": ("blk.0.post_ffw_norm.weight", (128,)),
    "mixtral": ("blk.1.ffn_down_exps.weight", (4, 128, 256)),
}


@pytest.mark.parametrize(("name", "group"), cells("gguf"))
def test_gguf_is_read_back_for_every_family(name, group, family, candidate, tmp_path):
    import gguf as gguf_lib

    from modelpress.deploy.builds import gguf

    out, metrics = build(gguf.GGUFBuild(), name, gptq_int4(group), family, candidate, tmp_path)
    model = candidate(name, **gptq_int4(group))  # every quantized layer (each expert of a stack) read back
    assert metrics["layers_with_exact_codes"] == sum(1 for m in model.modules() if hasattr(m, "qweight"))
    # Transformers reads a Mixtral file (llama.cpp's "llama" architecture) as a dense Llama
    assert metrics["transformers_gguf_loaded"] == (0.0 if name == "mixtral" else 1.0)
    if name != "mixtral":
        assert metrics["perplexity_ratio"] == pytest.approx(1.0, abs=2e-3)
    reader = gguf_lib.GGUFReader(str(out / gguf.FILENAME))
    tensors = {t.name: t for t in reader.tensors}
    tensor, shape = GGUF_TENSORS[name]
    found = tensors[tensor]
    assert tuple(int(d) for d in reversed(found.shape)) == shape
    if name == "gemma2":  # llama.cpp multiplies by the stored weight: Gemma's 1 + w
        weight = family(name)[1].model.layers[0].post_feedforward_layernorm.weight.detach().numpy()
        assert found.data == pytest.approx(1.0 + weight)


@pytest.mark.parametrize(("name", "flip"), [("llama", "blk.0.attn_q.weight"), ("mixtral", "blk.1.ffn_up_exps.weight")])
def test_gguf_check_fails_on_one_flipped_code(name, flip, family, candidate, tmp_path):
    """One code one step off in the written file (a rotary-permuted q rows / a stacked expert)."""
    import gguf as gguf_lib

    from modelpress.deploy.builds import gguf

    fields = gptq_int4(32)
    model = candidate(name, **fields)
    out = gguf.GGUFBuild().write_folder(model, family(name)[0], tmp_path / "g")
    tensor = next(t for t in gguf_lib.GGUFReader(str(out / gguf.FILENAME)).tensors if t.name == flip)
    offset = tensor.data_offset + tensor.data.shape[-1] * 5 + 2 + 3  # row 5 (of expert 0), first block, byte 3
    with open(out / gguf.FILENAME, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x01]))
    with pytest.raises(ModelpressError, match=f"{flip}.*codes or scales differ"):
        gguf.GGUFBuild().check_folder(out, model, family(name)[3])


@pytest.mark.parametrize(("name", "group"), cells("onnxruntime-genai", GENAI))
def test_genai_generates_the_candidates_tokens_for_every_family_it_builds(name, group, family, candidate, tmp_path):
    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    _, metrics = build(OnnxRuntimeGenAIBuild(), name, gptq_int4(group), family, candidate, tmp_path)
    # all 16 greedy tokens, or a divergence at a near-tie of a random-init model (the check's own rule)
    assert metrics["greedy_tokens_matched"] == 16.0 or metrics["greedy_diverged_at_tie"] == 1.0, metrics
    assert metrics["first_token_argmax_equal"] == 1.0
    assert metrics["perplexity_ratio"] == pytest.approx(1.0, abs=5e-3)


def test_genai_builds_per_channel_int4_as_blocks_of_one_scale(family, candidate, tmp_path):
    """Per-channel codes (one scale per row) as MatMulNBits blocks of 128, each row's scale and zero
    point repeated over its blocks: the candidate's values exactly, no row-wide block needed."""
    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    fields = {"bits": 4, "algorithm": "gptq"}  # per-channel
    out, metrics = build(OnnxRuntimeGenAIBuild(), "qwen3", fields, family, candidate, tmp_path)
    manifest = json.loads((out / "modelpress-build.json").read_text())
    assert manifest["scheme"] == "int4-per-channel-sym" and manifest["matmulnbits_block"] == 128
    assert metrics["greedy_tokens_matched"] == 16.0 and metrics["perplexity_ratio"] == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("name", ["phi3", "gemma2", "qwen2"])
def test_awq_factors_fold_into_each_familys_norms_and_rows(name, family, candidate, tmp_path):
    """Phi-3: the down factor into the up half of the fused gate_up; Gemma 2: into 1 + w norms;
    Qwen2: rows with biases. The GGUF build then holds the folded candidate's exact codes."""
    import torch

    from modelpress.deploy.builds import gguf, smoothing

    fields = {"bits": 4, "granularity": "per-group", "group_size": 32, "awq": {"exclude": ["o_proj"]}}
    model = candidate(name, **fields)
    smoothed = [n for n, m in model.named_modules() if getattr(m, "smooth", None) is not None]
    assert any(n.endswith("down_proj") for n in smoothed) and any(n.endswith(("q_proj", "qkv_proj")) for n in smoothed)
    folded = smoothing.fold_smoothing(model)
    assert not [n for n, m in folded.named_modules() if getattr(m, "smooth", None) is not None]
    ids = family(name)[3]
    with torch.inference_mode():
        torch.testing.assert_close(folded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-4, rtol=1e-4)
    _, metrics = build(gguf.GGUFBuild(), name, fields, family, candidate, tmp_path)
    assert metrics["perplexity_ratio"] == pytest.approx(1.0, abs=2e-3)


@pytest.mark.support("mixtral", "onnxruntime-genai", refused="ONNX Runtime GenAI's builder (0.15.2) converts no "
                     "MoE architecture (read from the installed builder)")
def test_mixtral_refusals_name_the_build_and_the_reason(family):
    """What no consumer of a Mixtral build can take, refused before anything is computed."""
    from modelpress.deploy.builds.compressed_tensors import CompressedTensorsBuild
    from modelpress.deploy.builds.gguf import GGUFBuild
    from modelpress.deploy.builds.gptq import GPTQBuild
    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild
    from modelpress.steps.quantize import WeightQuantizeConfig

    config = hf_config(family, "mixtral")
    experts_smoothed = stage("mixtral", bits=4, granularity="per-group", group_size=32, awq={"exclude": ["o_proj"]})
    expected = {
        (OnnxRuntimeGenAIBuild(), "plain"): "does not convert MixtralForCausalLM",
        (GGUFBuild(), "experts"): "each expert reads only the tokens routed to it",
        (GPTQBuild(), "experts"): "add 'experts' to awq.exclude",
    }
    stages = {"plain": stage("mixtral", **gptq_int4(32)), "experts": experts_smoothed}
    for (build, which), reason in expected.items():
        found = build.format_problems([stages[which]], config)
        assert any(p.startswith(f"{build.build_name}: ") and reason in p for p in found), (build.build_name, found)
    assert GGUFBuild().format_problems([stages["plain"]], config) == []
    # routers are never quantized (the causal-lm task protects them), so nothing refuses them
    unexcluded = WeightQuantizeConfig(**gptq_int4(32))
    for build in (CompressedTensorsBuild(), GPTQBuild(), GGUFBuild()):
        assert not any("router" in p for p in build.format_problems([unexcluded], config))


@pytest.mark.parametrize(("got", "matched"), [
    ([5, 6, 0], 4), ([5, 7, 0], 1),
    ([5, 6], 4),  # GenAI stopped at the end token (not kept) where the candidate emits it: the same text
    ([5], 1),  # GenAI stopped where the candidate goes on
])
def test_greedy_match_counts_a_text_both_end_at_the_same_place_as_matched(got, matched):
    from modelpress.deploy.builds.onnxruntime_genai import greedy_match

    assert greedy_match([5, 6, 0, 8], got, ends={0}) == matched


def test_the_causal_lm_task_keeps_moe_routers_float(family):
    """Routers are found by structure (a Linear beside `experts` giving one logit per expert) and
    protected, so weight-quantize leaves them float; validate's layout agrees."""
    import re

    from modelpress.deploy.builds import validation
    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_stage import with_protected
    from modelpress.tasks import TaskSpec

    model = family("mixtral")[1]
    task = TaskSpec("causal-lm", tokenizer=str(family("mixtral")[0])).build()
    protected = task.protected_modules(model)
    routers = [n for n in protected if re.search(families.ROUTERS["mixtral"], n)]
    assert len(routers) == model.config.num_hidden_layers and set(protected) == set(routers)  # untied head
    config = with_protected(WeightQuantizeConfig(**gptq_int4(32)), protected, {})
    assert all(any(re.search(p, n) for p in config.exclude) for n in routers)
    layout = validation.layout(hf_config(family, "mixtral"))
    assert not set(routers) & set(layout.quantized(WeightQuantizeConfig(**gptq_int4(32))))
