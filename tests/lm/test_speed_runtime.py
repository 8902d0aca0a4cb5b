"""An LM's speed is timed on the runtime it ships with, and every figure names that runtime: an
int4 candidate through torch's int4 CPU kernel (bf16 activations), never the dequantizing
reference that its fp32 module would run. The paths are observed with the profiler, not mocked."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from modelpress.core.registry import get_stage
from modelpress.lm.runtime import PACKED_OPS, as_shipped, observe, quantized_layers
from modelpress.tasks import TaskSpec
from modelpress.tasks.context import StageContext

from .conftest import WORDS, tiny_llama, word_tokenizer

INT4_KERNEL = PACKED_OPS["aten::_weight_int4pack_mm_for_cpu"]
LINEARS = 2 * 7  # two blocks of q, k, v, o, gate, up, down


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    word_tokenizer().save_pretrained(folder)
    return TaskSpec("causal-lm", tokenizer=str(folder), max_length=16, eval_sequences=4, latency_length=16,
                    decode_tokens=4, continuation_tokens=0, fidelity_positions=4).build()


@pytest.fixture(scope="module")
def corpus():
    generator = torch.Generator().manual_seed(5)
    docs = [" ".join(WORDS[int(i)] for i in torch.randint(0, 60, (int(n),), generator=generator))
            for n in torch.randint(6, 20, (120,), generator=generator)]
    return pd.DataFrame({"text": docs, "split": ["eval"] * 40 + ["calibration"] * 80})


def int4(model: torch.nn.Module, task, corpus, group_size: int) -> torch.nn.Module:
    spec = get_stage("weight-quantize")
    config = spec.config.model_validate({"bits": 4, "granularity": "per-group", "group_size": group_size,
                                         "symmetric": False, "exclude": ["lm_head"],
                                         "calibration": {"samples": 4, "batch_size": 2, "progress": False}})
    return spec.apply(model, config, StageContext(task=task, data=corpus, seed=0))


def ids(task, corpus) -> torch.Tensor:
    return torch.as_tensor(task.example(corpus[corpus["split"] == "eval"], 1)["input_ids"])


def test_an_int4_candidate_is_timed_on_the_int4_kernel_and_says_so(task, corpus):
    baseline = tiny_llama()
    candidate = int4(baseline, task, corpus, group_size=32)
    assert quantized_layers(candidate) == LINEARS
    evaluation = task.evaluate(baseline, candidate, corpus[corpus["split"] == "eval"])
    assert evaluation.runtimes["baseline"] == "PyTorch float32 on CPU"
    assert evaluation.runtimes["candidate"] == f"PyTorch bfloat16 on CPU, {INT4_KERNEL}"
    assert evaluation.candidate["tokens_per_s"] > 0
    shipped, _ = as_shipped(candidate, ids(task, corpus))
    for rows in (ids(task, corpus), ids(task, corpus)[:, :1]):  # prefill, one decode step
        path = observe(shipped, rows)
        assert path.reference == 0 and path.kernels == {INT4_KERNEL: LINEARS}, path
    assert next(candidate.parameters()).dtype == torch.float32  # the quality metrics' module is left as it is


def test_the_observer_sees_the_reference_that_fp32_activations_run(task, corpus):
    candidate = int4(tiny_llama(), task, corpus, group_size=32)
    path = observe(candidate, ids(task, corpus))  # the fp32 module itself: what was timed before
    assert path.reference == LINEARS and not path.kernels, path


def test_a_scheme_without_a_fast_kernel_is_labelled_as_the_reference(task, corpus):
    candidate = int4(tiny_llama(), task, corpus, group_size=16)  # torch's int4 kernel takes 32..256
    _, label = as_shipped(candidate, ids(task, corpus))
    assert label == ("PyTorch bfloat16 on CPU; prefill and decode ran the dequantizing reference "
                     "(no fast kernel for this scheme there): not the deployed speed")
