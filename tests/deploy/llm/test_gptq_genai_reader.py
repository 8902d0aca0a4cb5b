"""The gptq build read by a reader modelpress did not write.

GPTQBuild.check_folder decodes the folder with modelpress's own inverse of its own packing, so a mistake made
the same way in both (nibble order, the v1 zero-point offset, which axis is packed) would pass it.
Here onnxruntime-genai's model builder reads the folder instead (its GPTQModel unpacks qweight,
qzeros, scales and g_idx and repacks them as MatMulNBits), and ONNX Runtime's own MatMulNBits
kernel dequantizes the result: fed an identity matrix, a node returns its weight transposed. Every
quantized layer must come back as the candidate's codes times its fp16 scales, and GenAI's logits
must match the candidate's. (Transformers' and optimum's GPTQ loader needs gptqmodel, which needs
torch>=2.14.1 and Transformers 5: gptq.LOADER_NOTE.)

The builder takes 2-, 4- and 8-bit GPTQ folders, symmetric and asymmetric, per group and per
channel; each is read here on the tiny Llama, and each kind of corrupted layout must fail.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from modelpress.core.errors import ModelpressError

#: the layouts the builder reads: bits x symmetric x group (the tiny Llama's inputs are 64 and 128
#: wide, so 32 and 64 are its groups; per-channel is group_size -1)
LAYOUTS = {
    "int4-g32-sym": {"bits": 4, "group_size": 32},
    "int4-g32-asym": {"bits": 4, "group_size": 32, "symmetric": False},
    "int4-g64-sym": {"bits": 4, "group_size": 64},
    "int4-g64-asym": {"bits": 4, "group_size": 64, "symmetric": False},
    "int4-per-channel-sym": {"bits": 4},
    "int4-per-channel-asym": {"bits": 4, "symmetric": False},
    "int8-per-channel-sym": {"bits": 8},
    "int8-g32-asym": {"bits": 8, "group_size": 32, "symmetric": False},
    "int2-g32-sym": {"bits": 2, "group_size": 32},
    "int2-g64-asym": {"bits": 2, "group_size": 64, "symmetric": False},
}


class LayoutMismatch(AssertionError):
    """The independent reader did not get the candidate's weights back."""


@pytest.fixture(scope="module")
def layout_candidate(base_model, calibration):
    """layout_candidate(name in LAYOUTS) -> the tiny Llama weight-quantized so (cached)."""
    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module

    cache = {}

    def forward(model, ids):
        return model(input_ids=ids).logits[:, -8:]

    def get(name):
        if name not in cache:
            fields = dict(LAYOUTS[name])
            if "group_size" in fields:
                fields["granularity"] = "per-group"
            config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **fields)
            cache[name] = quantize_module(base_model, config, calibration, forward)
        return cache[name]

    return get


def genai_builds(folder: Path, out: Path) -> Path:
    """onnxruntime-genai's model builder on the gptq folder, with the command line a user types
    (run in this process: a fresh interpreter per build would import torch again each time)."""
    import runpy

    argv = ["builder", "-i", str(folder), "-o", str(out), "-p", "int4", "-e", "cpu",
            "-c", str(out.parent / "builder-cache"), "--extra_options",
            "accuracy_level=1", "nodes_to_exclude=/lm_head/MatMul", "shared_embeddings=false"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        try:
            runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")
        except Exception as exc:  # noqa: BLE001 -- whatever the builder raises on a folder it cannot read
            raise LayoutMismatch(f"the GenAI builder could not read {folder.name}: "
                                 f"{type(exc).__name__}: {exc}") from exc
    return out


def hf_modules(node: str) -> list[str]:
    """The candidate's Linear layers a builder MatMulNBits node holds (it fuses q, k and v)."""
    found = re.fullmatch(r"/model/layers\.(\d+)/(attn|mlp)/(\w+)/MatMulNBits", node)
    assert found, f"unexpected MatMulNBits node {node}"
    layer, block, proj = found.groups()
    prefix = f"model.layers.{layer}.{'self_attn' if block == 'attn' else 'mlp'}."
    return [prefix + p for p in (("q_proj", "k_proj", "v_proj") if proj == "qkv_proj" else (proj,))]


def ort_dequantized(built: Path) -> dict[str, np.ndarray]:
    """Per MatMulNBits node: its weight [N, K] as ONNX Runtime computes it (the node alone, times I)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(built / "model.onnx"))  # with its external data
    initializers = {t.name: t for t in model.graph.initializer}
    weights = {}
    for node in (n for n in model.graph.node if n.op_type == "MatMulNBits"):
        k = next(a.i for a in node.attribute if a.name == "K")
        n = next(a.i for a in node.attribute if a.name == "N")
        graph = helper.make_graph(
            [helper.make_node("MatMulNBits", ["x", *node.input[1:]], ["y"], domain="com.microsoft",
                              **{a.name: helper.get_attribute_value(a) for a in node.attribute})],
            "one-matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [k, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [k, n])],
            [initializers[name] for name in node.input[1:] if name])
        alone = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                         helper.make_opsetid("com.microsoft", 1)])
        session = ort.InferenceSession(alone.SerializeToString(), providers=["CPUExecutionProvider"])
        weights[node.name] = session.run(None, {"x": np.eye(k, dtype=np.float32)})[0].T
    return weights


def candidate_weight(candidate, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes minus zero points times the fp16 scales the layout stores, those scales per weight)."""
    from modelpress.deploy.builds import causal_lm

    weight = causal_lm.int_weight(candidate.get_submodule(name))
    scales = weight.scales.half().float().repeat_interleave(weight.group_size, 1)
    steps = weight.codes.float() - weight.zeros.float().repeat_interleave(weight.group_size, 1)
    return (steps * scales).numpy(), scales.numpy()


def genai_reads(folder: Path, candidate, eval_ids, scratch: Path) -> dict[str, float]:
    """Build the folder with GenAI's builder; raise LayoutMismatch unless every quantized layer
    dequantizes (in ONNX Runtime) to the candidate's weight and GenAI's logits match the candidate's."""
    import onnxruntime_genai as og
    import torch

    from modelpress.deploy.builds import causal_lm, checks
    from modelpress.deploy.builds.onnxruntime_genai import genai_logits

    built = genai_builds(folder, scratch / "genai")
    read = set()
    for node, got in ort_dequantized(built).items():
        names = hf_modules(node)
        parts = [candidate_weight(candidate, name) for name in names]
        want, scales = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        off = np.abs(got - want) > 1e-3 * np.abs(scales)  # a code one step off is a whole scale away
        if off.any():
            rows = np.cumsum([p[0].shape[0] for p in parts])
            row, col = (int(i) for i in np.argwhere(off)[0])
            name = names[int(np.searchsorted(rows, row, side="right"))]
            raise LayoutMismatch(f"{name}: {int(off.sum())} of {off.size} weights read by GenAI's builder differ "
                                 f"from the candidate's (first at [{row}, {col}]: {got[row, col]:.6g} vs "
                                 f"{want[row, col]:.6g})")
        read.update(names)
    quantized = set(causal_lm.describe(candidate).quantized)
    if read != quantized:
        raise LayoutMismatch(f"GenAI's builder quantized {sorted(read ^ quantized)} differently from the candidate")
    model = og.Model(str(built))
    logits = torch.stack([torch.from_numpy(genai_logits(model, row.tolist())) for row in eval_ids])
    metrics = checks.compare_logits(checks.model_logits(candidate, eval_ids), logits, eval_ids)
    if abs(metrics["perplexity_ratio"] - 1) > 2e-3 or metrics["top1_agreement"] < 0.98:
        raise LayoutMismatch(f"GenAI's logits differ from the candidate's: {metrics}")
    return {**metrics, "layers_read": float(len(read))}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_genai_reads_the_candidates_weights_from_the_gptq_folder(layout, layout_candidate, tokenizer_dir, tmp_path,
                                                                 eval_ids):
    from modelpress.deploy.builds import gptq

    candidate = layout_candidate(layout)
    folder = gptq.GPTQBuild().write_folder(candidate, tokenizer_dir, tmp_path / "gptq")
    metrics = genai_reads(folder, candidate, eval_ids, tmp_path)
    assert metrics["layers_read"] == 14.0  # 2 blocks x 7 projections


def _repack(tensors, key: str, change, bits: int, along_rows: bool = True) -> None:
    """Unpack one packed int32 tensor, change its values, pack it back (to corrupt a layout)."""
    from modelpress.deploy.builds.gptq import pack_rows, unpack_rows

    packed = tensors[key] if along_rows else tensors[key].T.copy()
    values = change(unpack_rows(packed, bits))
    repacked = pack_rows(values, bits)
    tensors[key] = repacked if along_rows else repacked.T.copy()


def _flip_one_code(tensors, bits):
    tensors["model.layers.1.mlp.up_proj.qweight"][3, 5] ^= 1  # one code one step off


def _zeros_without_the_v1_offset(tensors, bits):  # a v2 ("gptq_v2") zero point in a v1 folder
    for key in [k for k in tensors if k.endswith(".qzeros")]:
        _repack(tensors, key, lambda z: (z + 1) & ((1 << bits) - 1), bits, along_rows=False)


def _codes_highest_bits_first(tensors, bits):  # each int32 word's codes in reverse order
    per = 32 // bits
    for key in [k for k in tensors if k.endswith(".qweight")]:
        _repack(tensors, key, lambda c: c.reshape(-1, per, c.shape[1])[:, ::-1].reshape(c.shape), bits)


def _scales_transposed(tensors, bits):
    for key in [k for k in tensors if k.endswith(".scales")]:
        tensors[key] = tensors[key].T.copy()


CORRUPTIONS = {"a flipped packed code": (_flip_one_code, "model.layers.1.mlp.up_proj"),
               "zero points without the v1 minus one": (_zeros_without_the_v1_offset, "model.layers.0.self_attn"),
               "codes packed highest bits first": (_codes_highest_bits_first, "model.layers.0.self_attn"),
               "scales transposed": (_scales_transposed, "could not read")}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupted_gptq_layout_fails_the_independent_read(corruption, layout_candidate, tokenizer_dir, tmp_path,
                                                           eval_ids):
    from safetensors.numpy import load_file, save_file

    from modelpress.deploy.builds import gptq

    candidate = layout_candidate("int4-g32-asym")
    folder = gptq.GPTQBuild().write_folder(candidate, tokenizer_dir, tmp_path / "gptq")
    tensors = load_file(str(folder / "model.safetensors"))
    corrupt, expected = CORRUPTIONS[corruption]
    corrupt(tensors, 4)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(LayoutMismatch, match=re.escape(expected)):
        genai_reads(folder, candidate, eval_ids, tmp_path)


def test_a_wrapped_zero_point_is_refused_for_vllm_and_read_back_by_genai(layout_candidate, tokenizer_dir, tmp_path,
                                                                         eval_ids):
    """An asymmetric zero point 0 is stored as -1 in the v1 layout: vLLM reads it wrapped, GenAI
    masks it back. The writer refuses it unless the caller's reader masks (the GenAI build)."""
    import copy

    from modelpress.deploy.builds import causal_lm, gptq

    candidate = copy.deepcopy(layout_candidate("int4-g32-asym"))
    layer = candidate.get_submodule("model.layers.0.mlp.up_proj")
    assert causal_lm.int_weight(layer).zeros.min() > 0, "the candidate has a zero point 0 already"
    layer.zeros[3, 1] = 0
    with pytest.raises(ModelpressError, match="1 asymmetric group.*zero point 0"):
        gptq.GPTQBuild().write_folder(candidate, tokenizer_dir, tmp_path / "refused")
    folder = gptq.GPTQBuild().write_folder(candidate, tokenizer_dir, tmp_path / "gptq", allow_wrapped_zeros=True)
    assert gptq.GPTQBuild().check_folder(folder, candidate, eval_ids)["codes_equal"] == 1.0
    assert genai_reads(folder, candidate, eval_ids, tmp_path)["layers_read"] == 14.0
