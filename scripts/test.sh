#!/usr/bin/env bash
# Set up .venv (modelpress installed non-editable, with the test extras) and run the tests.
# Extra arguments go to pytest, e.g. scripts/test.sh tests -k recipe
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh "${VENV:-.venv}" dev,kernels,prune,finetune,llm
export ZENML_ANALYTICS_OPT_IN=false
# pytest runs from its own entry point (not `python -m pytest`), so the repo root is not on
# sys.path and every import of modelpress.* resolves to the installed package.
exec "${VENV:-.venv}/bin/pytest" "$@"
