#!/usr/bin/env bash
# Set up .venv and run the README demo (MiniLM-L6 sentiment, int8) on the embedded stack:
# a local ZenML store and an MLflow sqlite registry under ./.modelpress.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh .venv
export ZENML_ANALYTICS_OPT_IN=false
.venv/bin/modelpress run minilm-sentiment "$@"
echo
echo "Browse the results:  .venv/bin/mlflow ui --backend-store-uri sqlite:///$PWD/.modelpress/mlflow.db"
