from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def modelpress_cli() -> str:
    """The installed console script (the one a user runs)."""
    found = shutil.which("modelpress", path=str(Path(sys.executable).parent)) or shutil.which("modelpress")
    assert found, "modelpress is not installed in this environment"
    return found
