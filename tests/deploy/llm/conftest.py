"""A tiny randomly initialised Llama (2 blocks, hidden 64, GQA) with a byte-level BPE tokenizer
trained here (families.py's), quantized by the real weight-quantize code: the candidates every
scheme of every build is tested on (test_builds.py; the other families: test_families.py).

The weights are drawn with a large init range so next-token distributions are peaked: greedy
continuations then do not flip on the last float bit, and "equal for 16 tokens" is a fair test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCHEMES = {  # weight-quantize configs the builds are tested on
    "int4-g32-sym-rtn": {"bits": 4, "granularity": "per-group", "group_size": 32},
    "int4-g64-sym-gptq": {"bits": 4, "granularity": "per-group", "group_size": 64, "algorithm": "gptq"},
    "int4-g32-asym-gptq": {"bits": 4, "granularity": "per-group", "group_size": 32, "symmetric": False,
                           "algorithm": "gptq"},
    "int8-per-channel": {"bits": 8},
    "int8-g32-sym": {"bits": 8, "granularity": "per-group", "group_size": 32},
    "w8a8": {"bits": 8, "activations": "dynamic"},
    "fp8": {"dtype": "fp8", "activations": "dynamic"},
    # GQA: o_proj's factor could not be folded into v_proj (the builds' problems() say so)
    "int4-g32-sym-awq": {"bits": 4, "granularity": "per-group", "group_size": 32, "awq": {"exclude": ["o_proj"]}},
    "int4-g64-sym-gptq-awq": {"bits": 4, "granularity": "per-group", "group_size": 64, "algorithm": "gptq",
                              "awq": {"exclude": ["o_proj"]}},
    "w8a8-smoothquant": {"bits": 8, "activations": "dynamic", "smoothquant": {"alpha": 0.5, "exclude": ["o_proj"]}},
}


def _families():
    """families.py (tiny models of every family, the byte-level BPE tokenizer), loaded by path."""
    spec = importlib.util.spec_from_file_location("llm_families", Path(__file__).with_name("families.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAMILIES = _families()
corpus = FAMILIES.corpus


def make_tokenizer(folder):
    fast = FAMILIES.make_tokenizer()
    fast.save_pretrained(folder)
    return fast


def make_model(vocab: int, tied: bool = True):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=tied, initializer_range=0.2, rms_norm_eps=1e-5,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    make_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def base_model(tokenizer):
    return make_model(len(tokenizer))


@pytest.fixture(scope="session")
def eval_ids(tokenizer):
    import torch

    text = " ".join(corpus(40, seed=7))
    ids = tokenizer(text)["input_ids"][:192]
    return torch.tensor([ids[:96], ids[96:192]])


@pytest.fixture(scope="session")
def calibration(tokenizer):
    import torch

    ids = tokenizer(" ".join(corpus(200, seed=3)))["input_ids"]
    return [torch.tensor([ids[i:i + 64] for i in range(j, j + 256, 64)]) for j in range(0, 1024, 256)]


@pytest.fixture(scope="session")
def quantize(base_model, calibration):
    """quantize(scheme name) -> the candidate (cached per scheme)."""
    from modelpress.steps.quantize import WeightQuantizeConfig
    from modelpress.steps.quantize.torch_backend import quantize_module

    cache = {}

    def forward(model, ids):
        return model(input_ids=ids).logits[:, -8:]

    def get(name: str):
        if name not in cache:
            config = WeightQuantizeConfig(exclude=["lm_head"], calibration={"progress": False}, **SCHEMES[name])
            cache[name] = quantize_module(base_model, config, calibration, forward)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def llm_registry(tmp_path_factory, quantize, tokenizer_dir, text_onnx):
    """A real MLflow sqlite registry: tiny-llm version 1 (@champion), whose run logged the int4
    candidate's onnxruntime-genai and gguf builds under builds/ (as the publish step does)."""
    import mlflow

    from modelpress.deploy.builds import log_build
    from modelpress.deploy.builds.gguf import GGUFBuild
    from modelpress.deploy.builds.onnxruntime_genai import OnnxRuntimeGenAIBuild

    root = tmp_path_factory.mktemp("llm-registry")
    uri = f"sqlite:///{root}/mlflow.db"
    candidate = quantize("int4-g32-sym-rtn")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment("llm-builds", artifact_location=str(root / "artifacts"))
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.onnx.log_model(text_onnx, name="onnx_model", pip_requirements=["onnxruntime"])
            for build in (OnnxRuntimeGenAIBuild(), GGUFBuild()):
                log_build(build.write_folder(candidate, tokenizer_dir, root / build.build_name), build.build_name)
        version = mlflow.register_model(info.model_uri, "tiny-llm").version
        mlflow.MlflowClient().set_registered_model_alias("tiny-llm", "champion", str(version))
        yield uri
        mlflow.set_tracking_uri(previous)
