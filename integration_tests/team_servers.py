"""A team's servers, started and stopped by the tests, on 127.0.0.1 only: an MLflow tracking
server (sqlite backend, --serve-artifacts) and a local ZenML server whose stack's MLflow
experiment tracker points at it; and :class:`AliasStall`, a relay in front of the tracking
server that can hold one alias write unanswered (the moment a killed publish is killed at)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


# --- a relay that stalls one alias write ------------------------------------------------------

ALIAS_WRITE = "/registered-models/alias"  # POST: set_registered_model_alias (GET reads, DELETE drops)
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


@dataclass
class AliasStall:
    """Every request relayed to the tracking server unchanged, except that once :meth:`arm` is
    called the next alias write is held: read, never forwarded, never answered. The client that
    sent it waits, with its version registered and no alias moved, until it is killed; the test
    then calls :meth:`release` (the held request is dropped). Real traffic, no patched client:
    the stall is on the wire, where a preempted node or a stalled network would put it."""

    upstream: str
    url: str = ""
    held: threading.Event = field(default_factory=threading.Event)
    held_request: dict[str, Any] = field(default_factory=dict)
    _armed: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> AliasStall:
        handler = type("Relay", (_RelayHandler,), {"stall": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def arm(self) -> None:
        self.held.clear()
        self._released.clear()
        self._armed.set()

    def release(self) -> None:
        self._armed.clear()
        self._released.set()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def hold(self, method: str, path: str, body: bytes) -> bool:
        """True (after the release) if this request was the one held."""
        if method != "POST" or not urllib.parse.urlsplit(path).path.endswith(ALIAS_WRITE):
            return False
        with self._lock:
            if not self._armed.is_set():
                return False
            self._armed.clear()
            self.held_request = json.loads(body or b"{}")
            self.held.set()
        self._released.wait()
        return True


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stall: AliasStall

    def relay(self) -> None:
        body = self._body()
        if self.stall.hold(self.command, self.path, body):
            self.close_connection = True  # dropped: the client never gets an answer
            return
        target = urllib.parse.urlsplit(self.stall.upstream)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=600)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS | {"host"}}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_HEADERS:
                self.send_header(key, value)
        length = response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = relay

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base class's name
        pass  # the tracking server logs its own requests
