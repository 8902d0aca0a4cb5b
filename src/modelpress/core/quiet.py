"""Quiet by default: the console shows progress, step names and the summary; everything the
libraries print goes to a log file that is kept with the run.

ONNX Runtime's quantizer prints a line per node, great-expectations and MLflow warn about
their own internals, and some of it comes from native code or child processes, which Python's
logging never sees. So the capture is at the file-descriptor level: fds 1 and 2 are pointed
at pipes for the duration of the run; a reader thread per pipe writes every line (ANSI colour
codes removed) to the log file and passes on to the real terminal only the lines a user
follows a run by. ``--verbose`` passes everything on.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tqdm import tqdm

VERBOSE_ENV = "MODELPRESS_VERBOSE"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
# What the console keeps: ZenML's step lifecycle, the pipeline's end, progress bars (tqdm draws
# `NN%|`), and lines modelpress itself prints.
KEEP = re.compile(rb"^(Step \S+ (has started|has finished|failed)|Using cached version of step|"
                  rb"Pipeline run (has finished|failed)|"
                  rb".*\d+%\|)|^(modelpress|error|warning):", re.IGNORECASE)


def verbose_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false")


# A log file keeps every redraw of a progress bar: one every 30 s, not one per batch.
FILE_REDRAW_S = 30.0
_console_is_terminal: bool | None = None  # what plain_terminal() saw, before any capture


def plain_terminal() -> None:
    """No colour codes, and progress bars that redraw every 30 s, when the output is not a
    terminal (a CI log, a file); call before ZenML is imported, which reads this once.

    Libraries' tqdm bars read ``TQDM_*`` once, when tqdm is imported, and only where the caller
    passes no value: the variables cover them when set this early. modelpress' own bars
    (:func:`progress_bar`) decide when each bar is made, so import order does not matter for them.
    """
    global _console_is_terminal
    _console_is_terminal = sys.stdout.isatty()
    if not _console_is_terminal:
        os.environ.setdefault("ZENML_LOGGING_COLORS_DISABLED", "true")
        os.environ.setdefault("TQDM_MININTERVAL", f"{FILE_REDRAW_S:g}")
        # tqdm's monitor thread forces a redraw of a slowed bar every maxinterval (10 s).
        os.environ.setdefault("TQDM_MAXINTERVAL", f"{FILE_REDRAW_S:g}")


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str, unit: str = "batch",
                 total: int | None = None, enabled: bool = True) -> tqdm:
    """A tqdm bar for modelpress' own loops: on a terminal, tqdm's redraws, cleared at the end;
    written to a file (CI logs, ``> run.log``), a redraw at most every 30 s (``TQDM_MININTERVAL``)
    and the final state kept as one line. Update postfixes with ``refresh=False``: tqdm redraws on
    every ``set_postfix`` otherwise, whatever the interval."""
    from tqdm.auto import tqdm

    interval = _file_redraw_interval()
    if interval is None:
        return tqdm(iterable, desc=desc, unit=unit, total=total, disable=not enabled, leave=False)
    return tqdm(iterable, desc=desc, unit=unit, total=total, disable=not enabled, leave=True,
                mininterval=interval, maxinterval=max(interval, 10.0))


def _file_redraw_interval() -> float | None:
    """Seconds between redraws when the bars end up in a file; None on a terminal."""
    terminal = _console_is_terminal
    if terminal is None:  # not started by the CLI: ask where tqdm writes
        terminal = sys.stderr is not None and sys.stderr.isatty()
    if terminal:
        return None
    try:
        return float(os.environ.get("TQDM_MININTERVAL") or FILE_REDRAW_S)
    except ValueError:
        return FILE_REDRAW_S


@dataclass
class RunLog:
    path: Path
    lines: int = 0
    shown: int = 0
    bar_open: bool = False  # the console's last piece was a progress-bar redraw (ends in \r)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, line: bytes) -> None:
        with self._lock, open(self.path, "ab") as handle:
            handle.write(ANSI.sub(b"", line))
            self.lines += 1


def new_log_path(folder: Path, label: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "-", label)[:80]
    return folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{os.getpid()}.log"


@contextmanager
def captured(path: Path, verbose: bool = False) -> Iterator[RunLog]:
    """Route fds 1 and 2 through filters into ``path`` for the ``with`` block."""
    log = RunLog(path)
    path.write_bytes(b"")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    readers = []
    for fd in (1, 2):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        reader = threading.Thread(target=_pump, args=(os.fdopen(read_end, "rb", buffering=0),
                                                      saved[fd], log, verbose), daemon=True)
        reader.start()
        readers.append(reader)
    # Python-level writers too, in case sys.stdout/err were replaced by something that does not
    # write to fds 1/2 (a notebook, a test runner)
    streams = sys.stdout, sys.stderr
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    try:
        yield log
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = streams
        for fd, original in saved.items():
            os.dup2(original, fd)  # closes our pipe's write end on fds 1 and 2
        for reader in readers:
            # a child process that still holds the pipe (a resource tracker) keeps it open:
            # do not wait for it, the daemon thread goes on copying until that child exits
            reader.join(timeout=2.0)
        for original in saved.values():
            os.close(original)


def _pump(source: BinaryIO, console_fd: int, log: RunLog, verbose: bool) -> None:
    console = os.dup(console_fd)  # the saved fd is closed when the capture ends
    try:
        _filter(source, console, log, verbose)
    except Exception:  # noqa: BLE001 -- never stop draining: a full pipe would block the run
        while chunk := source.read(65536):
            os.write(console, chunk)
    finally:
        os.close(console)


def _filter(source: BinaryIO, console: int, log: RunLog, verbose: bool) -> None:
    pending = b""
    while True:
        chunk = source.read(65536)
        if not chunk:
            break
        pending += chunk
        # progress bars redraw with \r: each redraw is a piece, and only a \n ends a line
        pieces = re.split(rb"(?<=[\r\n])", pending)
        pending = pieces.pop() if not pieces[-1].endswith((b"\n", b"\r")) else b""
        for piece in pieces:
            _route(piece, console, log, verbose)
    if pending:
        _route(pending, console, log, verbose)


def _route(piece: bytes, console: int, log: RunLog, verbose: bool) -> None:
    if not piece.endswith(b"\r"):  # keep only finished lines in the file, not every bar redraw
        log.write(piece)
    if verbose or KEEP.search(ANSI.sub(b"", piece).lstrip(b"\r")):
        log.shown += 1
        redraw = piece.endswith(b"\r")
        if log.bar_open and not redraw:
            piece = b"\n" + piece  # a bar left open would have the next line glued to it
        log.bar_open = redraw
        try:
            os.write(console, piece)
        except OSError:
            pass  # the terminal went away; the log file still has everything


def keep_with_run(path: Path, tracking_uri: str | None, run_id: str | None) -> bool:
    """Log the run's full output as ``logs/<file>`` of MLflow run ``run_id``; False if it cannot."""
    if not run_id:
        return False
    try:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri, tracking_uri).log_artifact(run_id, str(path), "logs")
        return True
    except Exception:  # noqa: BLE001 -- the run itself succeeded; the local copy stays
        return False
