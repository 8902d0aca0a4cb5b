"""Run the installed `modelpress` CLI like a user: in a project folder, embedded stack."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def project_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_", "MODELPRESS_"))}
    env.update(MODELPRESS_HOME=str(project / ".modelpress"), ZENML_ANALYTICS_OPT_IN="false",
               HF_HUB_OFFLINE="1", ZENML_LOGGING_COLORS_DISABLED="true")
    return env


def run_cli(cli: str, project: Path, *args: str, timeout: int = 600, env: dict[str, str] | None = None) -> Result:
    """``env`` adds to the project's environment (a team's ZENML_CONFIG_PATH, say)."""
    done = subprocess.run([cli, *args], cwd=project, env={**project_env(project), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    return Result(done.returncode, ANSI.sub("", done.stdout), ANSI.sub("", done.stderr))


def mlflow_client(project: Path):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / '.modelpress' / 'mlflow.db'}"
    # The registry URI must be given too: MLflow falls back to the *global* tracking URI, which
    # another test in this process may have set.
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def make_user_project(root: Path) -> Path:
    """A user's ZenML project with its own top-level `steps` and `pipelines` packages."""
    for package in ("steps", "pipelines"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text(f"USER_{package.upper()} = True\n")
    (root / "steps" / "train.py").write_text("def user_train():\n    return 'user step'\n")
    return root
