"""The CLI's quiet mode: fds 1/2 go through a filter into the run's log file; the console keeps
step lines, progress bars and modelpress' own lines; native writes and child processes are
captured too; --verbose shows everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelpress.core.quiet import captured

NOISE = "Quantization parameters for tensor:\"x\" not specified"
CHILD = "child process chatter"
NATIVE = "written straight to fd 2"
STEP = "\x1b[37mStep \x1b[0m\x1b[38;5;105mstage1_quantize\x1b[37m has started.\x1b[0m"
BAR = "\rbaseline:  50%|#####     | 1/2\rbaseline: 100%|##########| 2/2\n"


def chatter() -> None:
    print(NOISE, flush=True)
    print(STEP, flush=True)
    os.write(2, (NATIVE + "\n").encode())
    subprocess.run([sys.executable, "-c", f"print({CHILD!r})"], check=True)
    sys.stderr.write(BAR)
    sys.stderr.flush()
    print("modelpress: a line of ours", flush=True)


@pytest.mark.parametrize("verbose", [False, True])
def test_console_keeps_progress_the_log_keeps_everything(tmp_path: Path, capfd, verbose: bool) -> None:
    log = tmp_path / "run.log"
    with captured(log, verbose=verbose) as run_log:
        chatter()
    out, err = capfd.readouterr()
    console = out + err
    text = log.read_text()

    for line in (NOISE, CHILD, NATIVE, "Step stage1_quantize has started.", "baseline: 100%", "a line of ours"):
        assert line in text, line
    assert "\x1b[" not in text  # colour codes are stripped from the log
    assert "baseline:  50%" not in text  # a bar's redraws are not kept, its last state is
    assert "stage1_quantize" in console and "baseline: 100%" in console and "a line of ours" in console
    for line in (NOISE, CHILD, NATIVE):
        assert (line in console) is verbose, line
    assert run_log.lines >= 6


def test_fds_are_restored_after_an_error(tmp_path: Path, capfd) -> None:
    with pytest.raises(ZeroDivisionError), captured(tmp_path / "run.log"):
        print(NOISE, flush=True)
        1 / 0  # noqa: B018
    print("after", flush=True)
    assert capfd.readouterr().out == "after\n"


def test_a_log_that_is_not_a_terminal_gets_a_progress_redraw_every_30_s_not_every_batch() -> None:
    """Written to a file, each tqdm redraw stays in it: without this a 1,860-batch loop wrote 1,860."""
    script = ("import sys; from modelpress.core.quiet import plain_terminal; plain_terminal(); "
              "from tqdm import tqdm; print(tqdm(range(3), file=sys.stderr).mininterval)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert float(done.stdout.strip()) == 30.0
