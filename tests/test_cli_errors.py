"""Every CLI command, given bad arguments, answers with a short error and a non-zero exit, and
never a traceback: missing and malformed files, names that do not exist, registries that do
not exist or cannot be reached."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelpress.cli.main import main

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("MLFLOW_TRACKING_URI", "ZENML_CONFIG_PATH", "MODELPRESS_VERBOSE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MODELPRESS_HOME", str(tmp_path / ".modelpress"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # an unreachable server fails at once
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "bool.yaml").write_text("name: x\nmodel: {source: package, name: small-cnn}\ndata: {source: digits, "
                                        "seed: true}\nstages: [prune]\nregistry: {name: x}\n")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07not an onnx graph")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "folder").mkdir()
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "registry").write_text(empty)
    return tmp_path


def commands(project: Path) -> list[list[str]]:
    registry = (project / "registry").read_text()
    return [
        ["validate", "missing.yaml"], ["validate", "broken.yaml"], ["validate", "bool.yaml"],
        ["validate", "folder"], ["validate"],
        ["run", "missing.yaml"], ["run", "bool.yaml"], ["run", "--no-such-flag", "x"],
        ["search", "mnist-cnn"], ["schedule", "bool.yaml"],
        ["stages", "extra"], ["sources", "extra"], ["datasets", "extra"], ["tasks", "extra"],
        ["builds", "extra"],
        ["init", "model.onnx", "data.csv", "--out", "folder"], ["init", "missing.pt", "data.csv"],
        ["pull", "not-a-uri", "--to", "out"],
        ["pull", "models:/nope@champion", "--to", "out", "--tracking-uri", registry],
        ["pull", "models:/nope/1", "--to", "out", "--tracking-uri", UNREACHABLE],
        ["promote", "nope"], ["promote", "nope", "--tracking-uri", registry],
        ["promote", "nope", "--version", "x", "--tracking-uri", UNREACHABLE],
        ["promote", "nope", "--tracking-uri", registry, "--to", UNREACHABLE],
        ["rollback", "nope", "--tracking-uri", registry], ["rollback", "nope", "--tracking-uri", UNREACHABLE],
        ["retrain", "nope"], ["retrain", "nope", "--data", "missing.csv"],
        ["serve", "--model-repository", "missing"], ["serve", "--model-repository", "folder", "--http-port", "0"],
    ]


def test_every_command_with_bad_arguments_fails_in_one_short_message(project: Path) -> None:
    runner = CliRunner()
    report = []
    for args in commands(project):
        result = runner.invoke(main, args, catch_exceptions=True)
        output = result.stdout + result.stderr
        escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
        if result.exit_code == 0 or escaped or "Traceback" in output or not output.strip():
            report.append((args, result.exit_code, repr(result.exception), output[-500:]))
        elif len(result.stderr.strip().splitlines()) > 12:  # a recipe lists its problems, one a line
            report.append((args, "too long", result.stderr[-500:]))
    assert not report, report


def test_an_internal_error_is_one_line_with_the_traceback_kept(project: Path, monkeypatch) -> None:
    """A bug (not the user's error) is still one line; the traceback goes to a file it names."""
    import modelpress.cli.main as cli

    def broken(_recipe):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "_load", broken)
    result = CliRunner().invoke(main, ["validate", "anything"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith("error: internal error (ZeroDivisionError: a bug)") and "\n" not in line
    kept = Path(line.split("traceback in ")[1].split(" (rerun")[0])
    assert "ZeroDivisionError" in kept.read_text() and "Traceback" in kept.read_text()
    assert isinstance(CliRunner().invoke(main, ["--verbose", "validate", "anything"]).exception, ZeroDivisionError)


def test_the_installed_script_says_one_line_for_a_missing_recipe(project: Path, modelpress_cli: str) -> None:
    done = subprocess.run([modelpress_cli, "run", "missing.yaml"], capture_output=True, text=True, cwd=project,
                          timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert "missing.yaml" in done.stderr and "no such recipe file" in done.stderr
