"""Technique rooms: one sub-package per compression stage, each registering a config and a pure apply()."""

# This folder is installed as modelpress.steps (setuptools package-dir). Imported under any
# other name -- e.g. bare `steps` because the repo root is on sys.path -- it would be a second
# copy that ZenML records under the wrong source and users' own `steps` package would clash
# with, so refuse loudly instead (src/modelpress/DESIGN.md, "Packaging").
if __name__ != "modelpress.steps":
    raise ImportError(
        f"modelpress' steps/ folder was imported as {__name__!r}; it is only importable as "
        "'modelpress.steps'. Install modelpress (pip install .) and import modelpress.steps."
    )
