"""Builds (export formats), one module each, registered with ``modelpress.core.registry.register_build``.

The LLM builds (compressed_tensors, gptq, gguf, onnxruntime_genai: a gated causal-LM candidate →
a folder its runtime loads) are pure-function modules waiting to be registered, each with:

* ``Config`` — a pydantic model (extra="forbid") of the build's options;
* ``problems(config, stages, hf_config) -> list[str]`` — why the recipe's stages cannot end in
  this format (validate time, before anything is computed);
* ``write(model, tokenizer_dir, out_dir, config) -> Path`` — transcode the candidate's own
  integer codes, scales and zero points (never a re-quantization, except where a format has no
  type for a code and the build says so);
* ``check(out_dir, model, eval_input_ids) -> dict[str, float]`` — load the folder with the
  format's real consumer and compare it with the candidate.

Builds are logged under ``builds/<name>/`` of the run that registered the model version
(:func:`log_build`); ``modelpress pull --build NAME`` fetches them back. Importing this package
is cheap: torch, transformers and the format libraries load inside the functions.
"""

from __future__ import annotations

from pathlib import Path

BUILDS_ARTIFACT = "builds"  # <run artifacts>/builds/<build name>/… (read by modelpress pull)
MANIFEST = "modelpress-build.json"  # written into every build folder: what was built from what


def log_build(folder: Path, name: str, run_id: str | None = None) -> str:
    """Log a written build folder as ``builds/<name>/`` of ``run_id`` (default: the active run)."""
    import mlflow

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"build folder {folder} does not exist")
    path = f"{BUILDS_ARTIFACT}/{name}"
    if run_id is None:
        mlflow.log_artifacts(str(folder), path)
    else:
        mlflow.MlflowClient().log_artifacts(run_id, str(folder), path)
    return path
