"""A team's servers, started and stopped by the tests, on 127.0.0.1 only: an MLflow tracking
server (sqlite backend, --serve-artifacts) and a local ZenML server whose stack's MLflow
experiment tracker points at it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    from .serving import tooling

    return tooling().free_port()


def wait_http(url: str, proc: subprocess.Popen | None, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not up after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """End the server and everything it started (its own session's process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class MlflowServer:
    url: str
    proc: subprocess.Popen
    root: Path


def start_mlflow(root: Path) -> MlflowServer:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "mlflow-server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner workers
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, log)
    except RuntimeError:
        stop(proc)
        raise
    return MlflowServer(url, proc, root)


@dataclass
class ZenmlServer:
    url: str
    config_path: Path

    def env(self) -> dict[str, str]:
        return {"ZENML_CONFIG_PATH": str(self.config_path), "ZENML_ANALYTICS_OPT_IN": "false",
                "ZENML_AUTO_OPEN_DASHBOARD": "false", "ZENML_LOGGING_COLORS_DISABLED": "true"}


def zenml(server_env: dict[str, str], *args: str, timeout: int = 180) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_"))} | server_env
    done = subprocess.run([str(BIN / "zenml"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"zenml {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def start_zenml(root: Path, tracking_uri: str) -> ZenmlServer:
    """`zenml login --local` (a daemon on 127.0.0.1), then a stack whose MLflow experiment
    tracker is the tracking server (the credentials are required by ZenML's flavor for a remote
    URI; this server has no auth and ignores them)."""
    port = free_port()
    server = ZenmlServer(f"http://127.0.0.1:{port}", root / "zenml")
    env = server.env()
    zenml(env, "login", "--local", "--port", str(port), "--ip-address", "127.0.0.1")
    zenml(env, "experiment-tracker", "register", "team_mlflow", "--flavor=mlflow", f"--tracking_uri={tracking_uri}",
          "--tracking_username=team", "--tracking_password=team")
    zenml(env, "stack", "register", "team", "-o", "default", "-a", "default", "-e", "team_mlflow", "--set")
    return server


def stop_zenml(server: ZenmlServer) -> None:
    try:
        zenml(server.env(), "logout", "--local", timeout=60)
    finally:  # whatever logout did, the daemon must not outlive the tests
        pid_file = server.config_path / "zen_server" / "daemon" / "service.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        cmdline = Path(f"/proc/{pid}/cmdline")
        if pid.isdigit() and cmdline.exists() and b"local_daemon_entrypoint" in cmdline.read_bytes():
            os.kill(int(pid), signal.SIGKILL)  # still our daemon (not a reused pid)
