from __future__ import annotations

import importlib.util
from pathlib import Path


def _load_shared_fixtures():
    # by path: tests/ is no package, and integration_tests/conftest.py loads the same file
    spec = importlib.util.spec_from_file_location("shared_fixtures", Path(__file__).with_name("shared_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _load_shared_fixtures()
modelpress_cli = _shared.modelpress_cli
_no_leaked_registry_uri = _shared._no_leaked_registry_uri
