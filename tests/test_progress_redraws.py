"""Progress bars written to a file (a CI log, ``modelpress run … > run.log``) redraw at most every
30 s and once at the end, not once per batch.

Each case runs in a fresh process with its output redirected to a file, as a user's shell does,
and counts the redraws tqdm wrote there: a redraw is a bar line (``NN%|``) ended by ``\\r`` or
``\\n``. The baseline head's 1,980-batch training in the demo wrote 2,024 of them before: its
``set_postfix`` redrew the bar every batch, whatever ``TQDM_MININTERVAL`` said.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BATCHES = 300
# tqdm is imported first, as ZenML, MLflow or Transformers may have done before a bar is made.
PREAMBLE = "import tqdm.auto, sys\n"
AS_THE_CLI = ("from modelpress.core.quiet import captured, plain_terminal\n"
              "plain_terminal()\n"
              "with captured(__import__('pathlib').Path(sys.argv[1])):\n"
              "    draw()\n")
AS_A_LIBRARY = "draw()\n"

TRAINING = '''
def draw():
    import torch
    from modelpress.training import Batches, fit, plain_settings

    x, y = torch.randn(2 * BATCHES, 4), torch.randint(0, 2, (2 * BATCHES,))
    head = torch.nn.Linear(4, 2)

    def epoch(_):
        return (({"x": x[i]}, y[i]) for i in torch.arange(len(x)).split(2))

    def loss(model, inputs, target):
        return torch.nn.functional.cross_entropy(model(inputs["x"]), target)

    fit(head, loss, Batches(epoch, BATCHES), plain_settings(1, 0.01, 2), seed=0, desc="baseline head")
'''
CALIBRATION = '''
def draw():
    import time
    from modelpress.steps.quantize.calibration import progress

    for _ in progress(list(range(BATCHES)), True, "calibrate"):
        time.sleep(0.001)
'''
REDRAW = re.compile(rb"\d+%\|[^\r\n]*[\r\n]")


def redraws(code: str, mode: str, tmp_path: Path) -> tuple[int, bytes]:
    script = PREAMBLE + f"BATCHES = {BATCHES}\n" + code + mode
    out = tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    with open(out, "wb") as handle:  # stdout and stderr both to a file, like `> run.log 2>&1`
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "run.log")], stdout=handle,
                       stderr=subprocess.STDOUT, env=env, check=True, timeout=300)
    text = out.read_bytes()
    return len(REDRAW.findall(text)), text


@pytest.mark.parametrize("code", [TRAINING, CALIBRATION], ids=["training", "calibration"])
@pytest.mark.parametrize("mode", [AS_THE_CLI, AS_A_LIBRARY], ids=["cli", "library"])
def test_a_bar_written_to_a_file_redraws_a_handful_of_times(code: str, mode: str, tmp_path: Path) -> None:
    count, text = redraws(code, mode, tmp_path)
    assert 1 <= count <= 4, (count, text[-600:])  # the first draw, the last state, maybe one 30 s in
    assert f"{BATCHES}/{BATCHES}".encode() in text  # the end is drawn once and kept
