"""Support matrix, LLM rows: every stage, and the builds not backed by tests/deploy/llm (whose
test_families.py backs compressed-tensors, gptq, gguf and onnxruntime-genai), on a tiny causal LM
of each family (tests/deploy/llm/families.py), or the reason ``modelpress validate`` refuses it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # tests/ is no package: the matrix helpers are imported by path

from cells import load, recipe_for  # noqa: E402

from modelpress.core.errors import RecipeError  # noqa: E402


def _by_path(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


support = _by_path("support_matrix", HERE.parent / "support_matrix.py")
families = _by_path("llm_families", HERE.parent / "deploy" / "llm" / "families.py")

#: the LLM builds' cells are backed by tests/deploy/llm/test_families.py
LLM_BUILDS = ("compressed-tensors", "gptq", "gguf", "onnxruntime-genai")
STAGE_CONFIGS: dict[str, dict[str, Any]] = {
    "prune": {"sparsity": 0.3},
    "lowrank": {"energy": 0.9},
    "distill": {"student": {"layers": 1}, "epochs": 1, "batch_size": 8},
    "finetune": {"epochs": 1, "lr": 1e-4, "batch_size": 8},
    "weight-quantize": {"bits": 4, "group_size": 32, "algorithm": "gptq",
                        "calibration": {"samples": 8, "batch_size": 4, "progress": False}},
    "quantize": {"bits": 8},
}
#: column → (README reason, what validate's one line says)
REFUSED = {
    "quantize": ("a graph stage (ONNX Runtime) needs the exported graph; a causal LM is evaluated and registered "
                 "as a PyTorch module (use weight-quantize)", "a causal-lm model is evaluated and registered as a "
                 "PyTorch module"),
    "onnx": ("a causal LM registers its Hugging Face folder; its ONNX build is `onnxruntime-genai`",
             "register 'huggingface' instead"),
    "triton-repository": ("made from a classifier's ONNX graph; a causal LM has none (serve it with "
                          "`onnxruntime-genai` or vLLM on `compressed-tensors`/`gptq`)",
                          "is made from the ONNX graph a task evaluates"),
}
REFUSED["tensorrt"] = (REFUSED["triton-repository"][0], REFUSED["triton-repository"][1])


def _cells() -> list[Any]:
    out = []
    for family in families.FAMILIES:
        for column in support.STAGES + support.BUILDS:
            if column in LLM_BUILDS:
                continue
            mark = pytest.mark.support(family, column, refused=REFUSED.get(column, (None,))[0])
            out.append(pytest.param(family, column, marks=mark, id=f"{family}-{column}"))
    return out


def make_project(family: str, folder: Path) -> dict[str, Any]:
    families.write_family(family, folder / "model")
    (folder / "corpus.txt").write_text("\n".join(families.corpus(240)) + "\n")
    return {"model": {"source": "huggingface", "path": "model", "task": {"name": "causal-lm", "max_length": 32}},
            "data": {"source": "text", "path": "corpus.txt", "split": {"train": 0.5, "eval": 0.3, "calibration": 40}}}


@pytest.mark.parametrize(("family", "column"), _cells())
def test_cell(projects: Any, tracking_uri: str, family: str, column: str, tmp_path: Path) -> None:
    import torch

    folder, blocks = projects(family)
    is_stage = column in support.STAGES
    raw = recipe_for(f"{family}-{column}", blocks, column, STAGE_CONFIGS[column] if is_stage else None,
                     build_stages=[{"weight-quantize": {"bits": 4, "group_size": 32}}])
    if column in REFUSED:
        with pytest.raises(RecipeError) as caught:
            load(raw, folder)
        problems = caught.value.problems
        assert len(problems) == 1 and REFUSED[column][1] in problems[0], problems
        return
    torch.set_num_threads(1)  # tiny models: two spinning threads only contend on a busy 2-core runner
    loaded = load(raw, folder)
    entry = loaded.recipe.stages[0]
    from modelpress.core.registry import get_stage

    candidate = get_stage(entry.name).apply(loaded.model, entry.config, loaded.context())
    ids = torch.as_tensor(loaded.task.example(loaded.eval, 2)["input_ids"])
    with torch.no_grad():
        logits = candidate.eval()(input_ids=ids).logits
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits).all()
    if not is_stage:
        _build(loaded, candidate, ids, tracking_uri, tmp_path)


def _build(loaded: Any, candidate: Any, ids: Any, uri: str, tmp_path: Path) -> None:
    """The registering build (huggingface or pytorch) written into an MLflow run from the int4
    candidate, then loaded back by its consumer: the same logits."""
    import mlflow
    import torch
    from transformers import AutoModelForCausalLM

    from modelpress.builds import BuildContext

    build = loaded.recipe.builds[-1].config
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_name="matrix-llm")
    with mlflow.start_run():
        logged = mlflow.pytorch.log_model(candidate, name="model", serialization_format="pickle",
                                          pip_requirements=["torch"])
        context = BuildContext(name="matrix", task=loaded.task, eval_frame=loaded.eval, model=candidate,
                               torch_model_uri=logged.model_uri, scratch=tmp_path)
        report = build.write(context)
    if context.hf_dir is not None:  # huggingface: Transformers loads the folder as the family's class
        # eager attention, as the source loads the candidate (Gemma 2's attention softcapping is
        # eager-only in Transformers; its SDPA path skips it)
        reloaded = AutoModelForCausalLM.from_pretrained(context.hf_dir, attn_implementation="eager").eval()
        assert type(reloaded).__name__ == type(loaded.model).__name__
    else:
        reloaded = type(build).load_registered(report.model_uri)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, candidate(input_ids=ids).logits,
                                   atol=1e-4, rtol=1e-4)
