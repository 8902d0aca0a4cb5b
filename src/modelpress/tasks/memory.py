"""Peak memory of running an ONNX model in ONNX Runtime, measured in a fresh process.

Why a subprocess: ONNX Runtime allocates natively (tracemalloc cannot see it) and the
pipeline's own process already holds torch, pandas and the dataset, so its high-water mark
says nothing about the model. A fresh interpreter that imports onnxruntime, notes its
``ru_maxrss``, then loads the model and runs one batch gives the model's own peak: session
(weights, arena) plus activations for that batch. About 0.5 s per model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from modelpress.tasks.evaluation import graph_input_names

if TYPE_CHECKING:
    import onnx

    from modelpress.tasks import Batch, Task

# VmHWM (this process image's high-water RSS), not ru_maxrss: Linux carries ru_maxrss over
# from the parent across fork+exec, so a probe started from a big pipeline process would
# report the parent's size. ru_maxrss is the fallback where /proc is missing.
_PROBE = """
import json, resource, sys
import numpy as np, onnxruntime as ort

def high_water_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

before = high_water_kb()
options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.log_severity_level = 3
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
batch = dict(np.load(sys.argv[2]))
wanted = {i.name for i in session.get_inputs()}
session.run(None, {k: v for k, v in batch.items() if k in wanted})
after = high_water_kb()
print(json.dumps({"peak_kb": after - before}))
"""


def peak_memory_mb(model: onnx.ModelProto, batch: Batch, timeout_s: float = 120) -> float:
    """Extra resident memory (MB) at peak while loading ``model`` and running ``batch``."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        model_path, batch_path = Path(tmp, "model.onnx"), Path(tmp, "batch.npz")
        model_path.write_bytes(model.SerializeToString())
        np.savez(batch_path, **batch)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        done = subprocess.run([sys.executable, "-c", _PROBE, str(model_path), str(batch_path)],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"peak-memory probe failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_kb"] / 1024


def add_peak_memory(report: dict[str, dict[str, float]], models: dict[str, onnx.ModelProto],
                    batch: Batch, task: Task) -> dict[str, dict[str, float]]:
    """``report`` with ``peak_memory_mb`` set for each named model (e.g. baseline, candidate), each
    fed ``batch`` the way its graph takes the task's inputs."""

    def peak(model: onnx.ModelProto) -> float:
        return peak_memory_mb(model, task.graph_binding(graph_input_names(model), batch).feeds(batch))

    return {name: {**metrics, "peak_memory_mb": peak(models[name])} if name in models else metrics
            for name, metrics in report.items()}
