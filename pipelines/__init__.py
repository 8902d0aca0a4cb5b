"""Recipe → ZenML pipeline."""

# This folder is installed as modelpress.pipelines (setuptools package-dir). Imported under any
# other name -- e.g. bare `pipelines` because the repo root is on sys.path -- it would be a second
# copy that ZenML records under the wrong source and users' own `pipelines` package would clash
# with, so refuse loudly instead (src/modelpress/DESIGN.md, "Packaging").
if __name__ != "modelpress.pipelines":
    raise ImportError(
        f"modelpress' pipelines/ folder was imported as {__name__!r}; it is only importable as "
        "'modelpress.pipelines'. Install modelpress (pip install .) and import modelpress.pipelines."
    )
