"""`modelpress serve` start-up errors: each names what is missing, with no traceback."""

from __future__ import annotations

import importlib.util
import subprocess

import pytest


@pytest.mark.skipif(importlib.util.find_spec("kserve") is not None, reason="kserve is installed here")
def test_serve_without_the_serve_extra_says_how_to_get_it(tmp_path, modelpress_cli):
    done = subprocess.run([modelpress_cli, "serve", "--model-repository", str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1 and "pip install 'modelpress[serve]'" in done.stderr


@pytest.mark.parametrize(("layout", "message"), [
    (None, "does not exist"),
    ("empty", "holds no ONNX model"),
])
def test_serve_refuses_a_missing_or_empty_repository(tmp_path, serve_python, layout, message):
    repository = tmp_path / "models"
    if layout == "empty":
        repository.mkdir()
    done = subprocess.run([str(serve_python), "-m", "modelpress.cli", "serve", "--model-repository", str(repository)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 1 and message in done.stderr and str(repository) in done.stderr
    assert "Traceback" not in done.stderr
