#!/usr/bin/env bash
# ruff over the sources, then mypy over the installed package (the mapped folders — steps/,
# pipelines/, kernels/, deploy/ — exist as modelpress.* only once installed). Needs the venv that
# scripts/test.sh sets up.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
"$venv/bin/ruff" check .
# From outside the checkout, so that `modelpress` resolves to the installed package, not ./src.
repo="$PWD"
mypy="$(cd "$venv" && pwd)/bin/mypy"
(cd "${TMPDIR:-/tmp}" && "$mypy" -p modelpress --config-file "$repo/pyproject.toml")
