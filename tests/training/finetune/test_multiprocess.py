"""The stages under 2 processes (DDP over gloo on CPU), as a multi-GPU launch would run them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    import torch.distributed as dist
    from modelpress.tasks.context import StageContext
    from modelpress.datasets.shipped import SHIPPED
    from modelpress.sources.zoo.nets import SmallCNN
    from modelpress.core.registry import get_stage
    from modelpress.tasks import TaskSpec

    out = sys.argv[1]
    frame = SHIPPED["digits"].load().iloc[:360].copy()
    frame["split"] = ["train"] * 300 + ["eval"] * 60
    context = StageContext(TaskSpec("image-classification", image_shape=(1, 8, 8)).build(), frame)
    torch.manual_seed(0)
    stage = get_stage("finetune")
    model = stage.apply(SmallCNN((1, 8, 8), 10), stage.config(epochs=2, batch_size=32, lr=3e-3), context)
    distill = get_stage("distill")
    distill_context = StageContext(context.task, frame)
    student = distill.apply(model, distill.config(student={"width": 0.5}, epochs=1, hidden={"weight": 1.0}),
                            distill_context)
    rank = int(os.environ["RANK"])
    facts = {"world": dist.get_world_size(), "backend": dist.get_backend(),
             "digest": [float(p.detach().double().sum()) for p in model.parameters()],
             "student_digest": [float(p.detach().double().sum()) for p in student.parameters()],
             "distill_reported": bool(distill_context.report)}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump(facts, handle)
    if context.report:  # only the main process reports
        with open(os.path.join(out, f"report{rank}.json"), "w") as handle:
            json.dump(context.report, handle)
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_finetune_and_distill_complete_and_report_once(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    # torchrun sets RANK/WORLD_SIZE/MASTER_*; accelerate reads them and, told to use the CPU,
    # picks DDP over gloo. (`accelerate launch --cpu` only starts several CPU processes via MPI.)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script), str(tmp_path)]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["backend"] == "gloo" for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]  # DDP kept the replicas identical
    assert ranks[0]["student_digest"] == ranks[1]["student_digest"]  # … for distillation too
    assert [r["distill_reported"] for r in ranks] == [True, False]
    reports = sorted(p.name for p in tmp_path.glob("report*.json"))
    assert reports == ["report0.json"]
    report = json.loads((tmp_path / "report0.json").read_text())
    assert report["epochs_run"] == 2 and "epoch2.val_accuracy" in report
    # 300 rows - 30 validation = 270 → 9 batches of 32 → 4 per process (the odd one dropped).
    assert report["train_rows"] == 270
