"""Builds (export formats): each a class registered with ``modelpress.core.registry.register_build``
under its ``export:`` name, whose pydantic fields are the build's options and whose methods do
the work (:class:`modelpress.builds.Build`: ``problems`` at validate, ``write`` in publish).

* ``onnx``, ``pytorch``, ``huggingface``: the registering builds (the registered version's model);
* ``triton-repository``, ``tensorrt``: made from the ONNX graph the task evaluated;
* ``compressed-tensors``, ``gptq``, ``gguf``, ``onnxruntime-genai``: a gated causal-LM candidate →
  a folder its runtime loads. They share :class:`~modelpress.deploy.builds.llm.LLMBuild`, which
  turns three methods into the protocol: ``format_problems`` (why the recipe's stages cannot end
  in this format), ``write_folder`` (the candidate's own codes, transcoded) and ``check_folder``
  (the format's real consumer loads the folder and is compared with the candidate).

The other modules are what those builds share (``causal_lm``, ``checks``, ``validation``,
``smoothing``, ``architectures``). Builds are logged under ``builds/<name>/`` of the run that
registered the model version (:func:`log_build`); ``modelpress pull --build NAME`` fetches them
back. Importing this package is cheap: torch, transformers and the format libraries load inside
the methods.
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
