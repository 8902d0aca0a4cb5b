"""The README's support matrix is the one the tests back (tests/support_matrix.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelpress.core.registry import BUILDS, STAGES

TESTS = Path(__file__).resolve().parent


def _support():  # loaded by path, as tests/conftest.py loads it (tests/ is no package)
    import importlib.util

    spec = importlib.util.spec_from_file_location("support_matrix", TESTS / "support_matrix.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


support = _support()


def _all_cells(request: pytest.FixtureRequest, tmp_path: Path) -> list:
    """Every support mark in tests/: this session's own items when it collected every test module,
    else a collection-only run of the whole folder."""
    modules = {str(p) for p in TESTS.rglob("test_*.py")}
    collected = {str(item.path) for item in request.session.items}
    if modules <= collected:
        return support.cells_of(request.session.items)
    out = tmp_path / "cells.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "--support-matrix", str(out), str(TESTS)], capture_output=True, text=True, cwd=tmp_path)
    assert out.is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    return [support.Cell(**c) for c in json.loads(out.read_text())]


def test_every_stage_and_build_is_a_column() -> None:
    assert set(support.STAGES) == set(STAGES.all()) and set(support.BUILDS) == set(BUILDS.all())


def test_every_cell_has_a_test_and_the_readme_shows_them(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cells = _all_cells(request, tmp_path)
    assert support.missing(cells) == [], "cells with no test behind them"
    shown = support.readme_section(support.README.read_text())
    assert shown == support.render(cells), "the README's support matrix is stale: run scripts/support_matrix.py"
