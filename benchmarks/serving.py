"""Serving benchmark: modelpress' CPU server (kserve V2 + ONNX Runtime) vs `mlflow models serve`.

Both serve the same registered ONNX model on loopback, one worker process each, with their
default settings, driven by the same asyncio/aiohttp client and interleaved per concurrency
level so drift on a shared machine hits both alike. Our server is measured with V2 JSON (like
for like: MLflow only takes JSON) and with V2 binary tensors (tritonclient's default encoding).
Request counts are bounded; server CPU per request is reported because, unlike latency, it does
not depend on what else is running. Only 200 answers count towards req/s and latency; any other
answer, or servers whose predictions differ by more than 1e-5, fails the run.

    /work/venv-deploy/bin/python benchmarks/serving.py            # the small CNN, fresh registry
    .../python benchmarks/serving.py --requests 2000 --concurrency 1 8 32

Needs the main venv (mlflow, torch for the export, aiohttp) and builds/reuses the serving side
venv from tests/deploy/tooling.py for the kserve server.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "bench-cnn"


def _tooling():
    spec = importlib.util.spec_from_file_location("deploy_tooling", REPO / "tests/deploy/tooling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scripts_path() -> str:
    """`mlflow models serve` starts `uvicorn` by name: put this environment's scripts first
    (and, for overlay venvs, those of the environment uvicorn is installed in)."""
    uvicorn_root = Path(importlib.util.find_spec("uvicorn").origin).parents[4]
    return os.pathsep.join([str(Path(sys.executable).parent), str(uvicorn_root / "bin"), os.environ["PATH"]])


def register_cnn(workdir: Path) -> str:
    """Export an (untrained: speed only) SmallCNN and register it as version 1; return the URI."""
    import mlflow
    import onnx
    import torch

    from modelpress.sources.zoo.nets import SmallCNN

    model = SmallCNN((1, 28, 28), 10).eval()
    path = workdir / "cnn.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(path), input_names=["pixels"],
                      output_names=["logits", "embedding"], opset_version=17, dynamo=False,
                      dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}})
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.create_experiment("serving-bench", artifact_location=str(workdir / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.onnx.log_model(onnx.load(str(path)), name="onnx_model", pip_requirements=["onnxruntime"])
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    return f"models:/{MODEL_NAME}/{version.version}"


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


async def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout}s: {log.read_text()[-3000:]}")


async def load(url: str, request: tuple[bytes, dict[str, str]], concurrency: int, requests: int,
               max_seconds: float) -> dict:
    """``requests`` POSTs (fewer if ``max_seconds`` runs out) from ``concurrency`` workers."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.monotonic() + max_seconds
    body, headers = request
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                began = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
                if ok:  # an error answer is often fast: counting it would inflate req/s
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50": statistics.median(ms), "p99": ms[min(len(ms) - 1, int(0.99 * len(ms)))]}


JSON = {"Content-Type": "application/json"}


def bodies(sample: np.ndarray) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each server's request for the same input: V2 JSON, V2 binary tensors (what tritonclient
    sends by default), and MLflow's JSON (the only encoding `mlflow models serve` takes)."""
    import tritonclient.http as httpclient

    v2 = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": list(sample.shape),
                      "data": sample.ravel().tolist()}]}
    tensor = httpclient.InferInput("pixels", list(sample.shape), "FP32")
    tensor.set_data_from_numpy(sample, binary_data=True)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=True) for n in ("logits", "embedding")]
    binary, json_size = httpclient.InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    return {"modelpress": (json.dumps(v2).encode(), JSON),
            "modelpress-binary": (binary, {"Inference-Header-Content-Length": str(json_size),
                                           "Content-Type": "application/octet-stream"}),
            "mlflow": (json.dumps({"inputs": {"pixels": sample.tolist()}}).encode(), JSON)}


PREDICTION_TOLERANCE = 1e-5  # same model, same ONNX Runtime: only float summation order differs


async def check_same_predictions(urls: dict[str, str], body: dict[str, tuple[bytes, dict]]) -> float:
    """Both servers must answer the same logits, or the comparison is meaningless."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(urls["modelpress"], data=body["modelpress"][0], headers=JSON) as r:
            ours = next(o for o in (await r.json())["outputs"] if o["name"] == "logits")["data"]
        async with session.post(urls["mlflow"], data=body["mlflow"][0], headers=JSON) as r:
            theirs = (await r.json())["predictions"]["logits"]
    return float(np.max(np.abs(np.asarray(ours) - np.asarray(theirs).ravel())))


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a server's whole process tree (mlflow serve runs uvicorn as a child)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def bench(args: argparse.Namespace, urls: dict[str, str], body: dict[str, tuple[bytes, dict]],
                pids: dict[str, int]) -> list[dict]:
    rows = []
    for server, url in urls.items():  # warm-up: first requests pay for lazy imports and allocations
        await load(url, body[server], 4, args.warmup, 30)
    for concurrency in args.concurrency:
        count = args.requests * max(1, concurrency // 4) if args.scale else args.requests
        for _ in range(args.rounds):
            for server, url in urls.items():
                cpu = cpu_seconds(pids[server])
                result = await load(url, body[server], concurrency, count, args.max_seconds)
                # CPU per request does not depend on what else runs on a shared machine
                result["cpu_ms"] = (cpu_seconds(pids[server]) - cpu) * 1000 / max(1, result["requests"])
                rows.append({"server": server, "concurrency": concurrency, **result})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Median over rounds of each (server, concurrency) cell."""
    cells: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        cells.setdefault((row["server"], row["concurrency"]), []).append(row)
    out = []
    for (server, concurrency), group in cells.items():
        out.append({"server": server, "concurrency": concurrency,
                    "requests": sum(r["requests"] for r in group), "errors": sum(r["errors"] for r in group),
                    **{k: statistics.median(r[k] for r in group) for k in ("rps", "p50", "p99", "cpu_ms")}})
    return out


def print_table(summary: list[dict]) -> None:
    print(f"\n{'server':<18}{'conc':>5}{'requests':>9}{'errors':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'server CPU ms/req':>19}")
    for row in sorted(summary, key=lambda r: (r["concurrency"], r["server"])):
        print(f"{row['server']:<18}{row['concurrency']:>5}{row['requests']:>9}{row['errors']:>7}"
              f"{row['rps']:>9.0f}{row['p50']:>9.2f}{row['p99']:>9.2f}{row['cpu_ms']:>19.2f}")
    print(f"\n{'server':<18}{'conc':>5}{'throughput ×mlflow':>20}{'p99 ÷mlflow':>13}{'CPU/req ÷mlflow':>17}")
    by = {(r["server"], r["concurrency"]): r for r in summary}
    for concurrency in sorted({r["concurrency"] for r in summary}):
        theirs = by[("mlflow", concurrency)]
        for server in ("modelpress", "modelpress-binary"):
            ours = by[(server, concurrency)]
            print(f"{server:<18}{concurrency:>5}{ours['rps'] / theirs['rps']:>20.2f}"
                  f"{ours['p99'] / theirs['p99']:>13.2f}{ours['cpu_ms'] / theirs['cpu_ms']:>17.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=600, help="per server, round and concurrency")
    parser.add_argument("--scale", action="store_true", help="scale requests with concurrency / 4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap per measurement")
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads in our server "
                        "(its default; mlflow keeps ORT's default, one per core)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db",
               "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "PATH": _scripts_path()}
        os.environ.update(env)
        model_uri = register_cnn(workdir)
        from modelpress.deploy.pull import pull

        pull(model_uri, workdir / "repository")
        ports = {"modelpress": _tooling().free_port(), "mlflow": _tooling().free_port()}
        serve_python = str(_tooling().serve_python())
        procs = {
            "modelpress": start([serve_python, "-m", "modelpress.cli", "serve", "--model-repository",
                                 str(workdir / "repository"), "--http-port", str(ports["modelpress"]),
                                 "--threads", str(args.threads)], workdir / "modelpress.log", env),
            "mlflow": start([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"]),
                             "-w", "1"], workdir / "mlflow.log", env),
        }
        try:
            summary = asyncio.run(_run(args, ports, procs, workdir))
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    failed = {f"{r['server']}@{r['concurrency']}": r["errors"] for r in summary if r["errors"]}
    if failed:  # req/s counts only 200s, but a server that errors is not a result
        raise SystemExit(f"non-200 answers (excluded from req/s and latency): {failed}")


async def _run(args: argparse.Namespace, ports: dict[str, int], procs: dict[str, subprocess.Popen],
               workdir: Path) -> list[dict]:
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    await wait_ready(base["modelpress"] + "/v2/health/ready", procs["modelpress"], workdir / "modelpress.log")
    await wait_ready(base["mlflow"] + "/ping", procs["mlflow"], workdir / "mlflow.log")
    infer = base["modelpress"] + f"/v2/models/{MODEL_NAME}/infer"
    urls = {"modelpress": infer, "modelpress-binary": infer, "mlflow": base["mlflow"] + "/invocations"}
    body = bodies(np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32))
    difference = await check_same_predictions(urls, body)
    print(f"max |logits difference| between the servers: {difference:.2e}")
    if not difference <= PREDICTION_TOLERANCE:  # also catches nan
        raise SystemExit(f"the servers disagree by {difference:.2e} (> {PREDICTION_TOLERANCE:.0e}): "
                         "not benchmarking two different computations")
    pids = {"modelpress": procs["modelpress"].pid, "modelpress-binary": procs["modelpress"].pid,
            "mlflow": procs["mlflow"].pid}
    return summarize(await bench(args, urls, body, pids))


if __name__ == "__main__":
    main()
