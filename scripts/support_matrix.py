"""Regenerate the README's support matrix from the tests' support marks.

    .venv/bin/python scripts/support_matrix.py

Collects tests/ (no test runs), reads every ``@pytest.mark.support(family, column, ...)`` and
rewrites the README between its support-matrix markers (tests/support_matrix.py renders it).
CI runs every marked test, and tests/test_support_matrix.py fails when the README differs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    spec = importlib.util.spec_from_file_location("support_matrix", ROOT / "tests" / "support_matrix.py")
    assert spec is not None and spec.loader is not None
    support = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = support  # dataclasses look their module up
    spec.loader.exec_module(support)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cells.json"
        done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               "--support-matrix", str(out), str(ROOT / "tests")], cwd=tmp,
                              capture_output=True, text=True)
        if not out.is_file():
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            return 1
        cells = [support.Cell(**c) for c in json.loads(out.read_text())]
    gaps = support.missing(cells)
    if gaps:
        print(f"warning: {len(gaps)} cells have no test: {', '.join(gaps[:10])}", file=sys.stderr)
    support.README.write_text(support.with_section(support.README.read_text(), support.render(cells)))
    print(f"README support matrix: {len(cells)} marked tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
