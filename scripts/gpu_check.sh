#!/usr/bin/env bash
# GPU check for modelpress' kernels (issue 7): the benchmark table, then the kernel tests on CUDA,
# the 2:4 sparse-kernel test and, where TensorRT is installed, the TensorRT engine build.
#
#   scripts/gpu_check.sh [OUTPUT_DIR]   (default: $OUT, else benchmarks/results/gpu_check, ignored)
#
# Needs nothing from the network: it uses the first python that imports torch and triton and sees
# a GPU ($PYTHON, .venv, python3, python), and imports modelpress.kernels from this checkout via
# a throw-away shim package (no pip install, so nothing about the GPU box's environment changes).
# Sized for ~5 minutes on one H100/H200 (mostly Triton compiles: ~190 test variants, ~60 autotune
# configs); each step has its own time limit (300 s + 240 s worst case) so the other still runs.
# Writes: kernels.md (benchmark table + acceptance verdicts), pytest.txt, pytest-2of4.txt,
# pytest-tensorrt.txt, env.txt.
# GPU_CHECK_ALLOW_CPU=1 accepts a python without a GPU: a dry run of this script itself (the tests
# then use Triton's interpreter and the benchmark the CPU smoke shapes).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT_DIR=${1:-${OUT:-$REPO/benchmarks/results/gpu_check}}
mkdir -p "$OUT_DIR"
TEST_LIMIT_S=${TEST_LIMIT_S:-240}
BENCH_LIMIT_S=${BENCH_LIMIT_S:-300}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" "$REPO/.venv/bin/python" python3 python; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import os, sys, torch, triton
sys.exit(0 if torch.cuda.is_available() or os.environ.get("GPU_CHECK_ALLOW_CPU") == "1" else 1)' \
            >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

PY=$(find_python) || {
    echo "no python with torch + triton + a visible CUDA device" | tee "$OUT_DIR/env.txt"
    exit 2
}

# modelpress.kernels from this checkout, whatever else that python has installed; for the 2:4
# and TensorRT checks, the few modules they import (torch-only: no pydantic/ZenML needed here).
SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/modelpress/steps/prune" "$SHIM/modelpress/deploy"
: >"$SHIM/modelpress/__init__.py"
: >"$SHIM/modelpress/steps/__init__.py"
: >"$SHIM/modelpress/steps/prune/__init__.py"
: >"$SHIM/modelpress/deploy/__init__.py"
ln -s "$REPO/kernels" "$SHIM/modelpress/kernels"
ln -s "$REPO/src/modelpress/errors.py" "$SHIM/modelpress/errors.py"
ln -s "$REPO/steps/prune/masks.py" "$SHIM/modelpress/steps/prune/masks.py"
ln -s "$REPO/deploy/tensorrt.py" "$SHIM/modelpress/deploy/tensorrt.py"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
unset MODELPRESS_KERNELS TRITON_INTERPRET  # CUDA tensors -> the Triton backend, compiled

{
    date -u
    "$PY" -c 'import sys, torch, triton; print(sys.version.split()[0], "torch", torch.__version__,
"triton", triton.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'
    nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv 2>&1
} | tee "$OUT_DIR/env.txt"

# The benchmark first: its table (with a max-error column against the references) is what only a
# GPU can produce; the tests come second with what time is left.
echo "== benchmark (limit ${BENCH_LIMIT_S}s)"
timeout "$BENCH_LIMIT_S" "$PY" benchmarks/kernels.py --out "$OUT_DIR/kernels.md"
BENCH_RC=$?

echo "== kernel tests on CUDA (limit ${TEST_LIMIT_S}s)"
# Own config (-c /dev/null) and --confcutdir: only tests/kernels' conftest, none from the rest of
# the project (whose dependencies this box may lack).
timeout "$TEST_LIMIT_S" "$PY" -m pytest tests/kernels -q -c /dev/null --rootdir "$REPO" \
    --confcutdir tests/kernels --import-mode=importlib -p no:cacheprovider -ra --durations=5 \
    2>&1 | tee "$OUT_DIR/pytest.txt"
TESTS_RC=${PIPESTATUS[0]}

# 2:4 masks on PyTorch's semi-structured sparse kernels: needs sparse tensor cores (sm80+).
echo "== 2:4 sparse kernels on CUDA (limit 120s)"
timeout 120 "$PY" -m pytest tests/prune/test_semi_structured_cuda.py -q -c /dev/null --rootdir "$REPO" \
    --noconftest --import-mode=importlib -p no:cacheprovider -ra 2>&1 | tee "$OUT_DIR/pytest-2of4.txt"
SPARSE_RC=${PIPESTATUS[0]}
# A run where the test skipped proved nothing (no usable CUDA after all): a failure, except in
# a CPU dry run of this script.
if [ "$SPARSE_RC" -eq 0 ] && ! grep -q "1 passed" "$OUT_DIR/pytest-2of4.txt" \
    && [ "${GPU_CHECK_ALLOW_CPU:-0}" != "1" ]; then SPARSE_RC=1; fi

# TensorRT engine build: only where the tensorrt and onnx packages are importable (the usual GPU
# image has neither: benchmarks/RESULTS.md). Said plainly either way; REQUIRE_TENSORRT=1 makes absence fail.
echo "== TensorRT engine build (limit 300s)"
if "$PY" -c 'import tensorrt, onnx' >/dev/null 2>&1; then
    timeout 300 "$PY" -m pytest tests/deploy/test_tensorrt_and_logging.py -k "gpu_runner or fill" -q -c /dev/null \
        --rootdir "$REPO" --confcutdir tests/deploy --import-mode=importlib -p no:cacheprovider -ra \
        2>&1 | tee "$OUT_DIR/pytest-tensorrt.txt"
    TRT_RC=${PIPESTATUS[0]}
    if [ "$TRT_RC" -eq 0 ] && ! grep -q "2 passed" "$OUT_DIR/pytest-tensorrt.txt"; then TRT_RC=1; fi
else
    echo "TensorRT: NOT RUN -- tensorrt/onnx are not importable by $PY" | tee "$OUT_DIR/pytest-tensorrt.txt"
    TRT_RC=0
    [ "${REQUIRE_TENSORRT:-0}" = "1" ] && TRT_RC=3
fi

echo "tests rc=$TESTS_RC benchmark rc=$BENCH_RC 2:4 rc=$SPARSE_RC tensorrt rc=$TRT_RC (124 = time limit);" \
    "table: $OUT_DIR/kernels.md" | tee -a "$OUT_DIR/env.txt"
[ "$TESTS_RC" -eq 0 ] && [ "$BENCH_RC" -eq 0 ] && [ "$SPARSE_RC" -eq 0 ] && [ "$TRT_RC" -eq 0 ]
