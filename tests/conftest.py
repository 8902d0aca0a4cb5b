from __future__ import annotations

import importlib.util
import sys
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


def _load_support_matrix():
    spec = importlib.util.spec_from_file_location("support_matrix", Path(__file__).with_name("support_matrix.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# the README's support matrix: the `support` mark and `--support-matrix PATH` (tests/support_matrix.py)
_support = _load_support_matrix()
pytest_addoption = _support.pytest_addoption
pytest_configure = _support.pytest_configure
pytest_collection_finish = _support.pytest_collection_finish
