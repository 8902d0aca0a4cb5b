"""Export (ONNX / ONNX Runtime / TensorRT), model registry and serving glue."""

# This folder is installed as modelpress.deploy (setuptools package-dir). Imported under any
# other name -- e.g. bare `deploy` because the repo root is on sys.path -- it would be a second
# copy that ZenML records under the wrong source and users' own `deploy` package would clash
# with, so refuse loudly instead (src/modelpress/DESIGN.md, "Packaging").
if __name__ != "modelpress.deploy":
    raise ImportError(
        f"modelpress' deploy/ folder was imported as {__name__!r}; it is only importable as "
        "'modelpress.deploy'. Install modelpress (pip install .) and import modelpress.deploy."
    )
