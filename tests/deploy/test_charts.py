"""Helm charts: lint, render every values profile, validate offline, checkov, and assert policy.

No cluster runs here: manifests are checked against Kubernetes' own OpenAPI schemas
(kubernetes-validate, strict) for the oldest and newest supported versions, custom resources
against the CRD schemas in tests/deploy/crds, and security policy by checkov plus the
assertions below. The mutation tests break a chart on purpose and show each check catches it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
HERE = Path(__file__).parent
PROFILES = {
    "cpu-onnxruntime": ("modelpress-inference", "cpu-onnxruntime-values.yaml"),
    "gpu-triton-tensorrt": ("modelpress-inference", "gpu-triton-tensorrt-values.yaml"),
    "kserve": ("modelpress-inference", "kserve-values.yaml"),
    "gpu-vllm": ("modelpress-inference", "gpu-vllm-values.yaml"),
    "cpu-genai": ("modelpress-inference", "cpu-genai-values.yaml"),
    "retrain": ("modelpress-retrain", "retrain-values.yaml"),
}
# Oldest version the charts support (Chart.yaml kubeVersion) and the newest schemas shipped.
K8S_VERSIONS = ["1.27.0", "1.37.0"]
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
# checkov findings we accept, each with its reason; everything else must pass.
CHECKOV_SKIPS = {
    "CKV_K8S_15": "imagePullPolicy IfNotPresent on purpose: tags are immutable release tags and "
                  "Always makes every pod start (and node-drain reschedule) depend on the registry",
    "CKV_K8S_35": "MLflow, boto3 and ZenML read their credentials from environment variables; "
                  "the charts take them only by Secret reference (envFrom / secretKeyRef)",
    "CKV_K8S_43": "images are referenced by version tag so values stay readable; users pinning "
                  "digests set image.tag to 'x@sha256:...'",
}
SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|API_KEY|ACCESS_KEY)", re.IGNORECASE)


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False, timeout=60)


def render(helm: Path, chart: Path, values: Path, *extra: str) -> list[dict]:
    done = helm_run(helm, "template", "rel", str(chart), "-f", str(values), "--namespace", "models", *extra)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="session")
def rendered(helm, tmp_path_factory) -> dict[str, tuple[Path, list[dict]]]:
    out = tmp_path_factory.mktemp("rendered")
    result = {}
    for profile, (chart, values) in PROFILES.items():
        docs = render(helm, CHARTS / chart, CHARTS / chart / "ci" / values, "--api-versions", SERVICE_MONITOR_API)
        path = out / f"{profile}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        result[profile] = (path, docs)
    return result


# --- policy ---------------------------------------------------------------------------------

def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    specs = []
    for doc in docs:
        kind = doc["kind"]
        if kind == "Deployment":
            specs.append((kind, doc["spec"]["template"]["spec"]))
        elif kind == "CronJob":
            specs.append((kind, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif kind == "InferenceService":
            specs.append((kind, doc["spec"]["predictor"]))
    return specs


def container_problems(container: dict, where: str) -> list[str]:
    problems = []
    ctx = container.get("securityContext", {})
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if ctx.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: root filesystem is writable")
    if "ALL" not in ctx.get("capabilities", {}).get("drop", []) or ctx.get("capabilities", {}).get("add"):
        problems.append(f"{where}: capabilities are not all dropped")
    if ctx.get("privileged"):
        problems.append(f"{where}: privileged")
    if not container.get("resources", {}).get("limits"):
        problems.append(f"{where}: no resource limits")
    if not any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])):
        problems.append(f"{where}: no writable /tmp (emptyDir) under a read-only root filesystem")
    for env in container.get("env", []):
        if SECRET_NAME.search(env["name"]) and "value" in env:
            problems.append(f"{where}: secret-looking env {env['name']} has an inline value")
    return problems


V2_PROBES = {"startupProbe": "/v2/health/ready", "readinessProbe": "/v2/health/ready",
             "livenessProbe": "/v2/health/live"}
# vLLM's OpenAI server has one health endpoint; the modelpress LLM server is kserve's, with V2's
PROBES = {"vllm": dict.fromkeys(V2_PROBES, "/health")}
# the build each LLM runtime's server must load: what its initContainer pulled
LLM_BUILDS = {"gpu-vllm": "compressed-tensors", "cpu-genai": "onnxruntime-genai"}


def runtime_of(spec: dict) -> str:
    command = spec["containers"][0]["command"]
    return {"vllm": "vllm", "tritonserver": "triton"}.get(command[0], "modelpress")


def probe_problems(container: dict, where: str, runtime: str = "modelpress") -> list[str]:
    problems = []
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    wanted = PROBES.get(runtime, V2_PROBES)
    for probe, path in wanted.items():
        get = container.get(probe, {}).get("httpGet")
        if not get:
            problems.append(f"{where}: no {probe}")
            continue
        if get["path"] != path:
            problems.append(f"{where}: {probe} probes {get['path']}, not {path}")
        if get["port"] not in ports and get["port"] not in ports.values():
            problems.append(f"{where}: {probe} port {get['port']!r} is not a container port {ports}")
    return problems


def policy_problems(docs: list[dict], gpu: bool, serving: bool) -> list[str]:
    problems = [f"{d['kind']}/{d['metadata']['name']}: a Secret must never be rendered"
                for d in docs if d["kind"] == "Secret"]
    for kind, spec in pod_specs(docs):
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append(f"{kind}: pod may run as root")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{kind}: service account token is mounted")
        if not any("emptyDir" in v for v in spec.get("volumes", [])):
            problems.append(f"{kind}: no emptyDir scratch volume")
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        for container in containers:
            problems += container_problems(container, f"{kind}.{container['name']}")
        if serving:
            main = spec["containers"][0]
            problems += probe_problems(main, f"{kind}.{main['name']}", runtime_of(spec))
            if [c["command"][:2] for c in spec.get("initContainers", [])] != [["modelpress", "pull"]]:
                problems.append(f"{kind}: no `modelpress pull` initContainer")
        gpus = [c["resources"].get("limits", {}).get("nvidia.com/gpu") for c in spec["containers"]]
        if gpu and (not any(gpus) or not spec.get("runtimeClassName") or not spec.get("tolerations")
                    or not spec.get("nodeSelector")):
            problems.append(f"{kind}: GPU profile without nvidia.com/gpu limit, runtimeClassName, "
                            "tolerations and nodeSelector")
        if not gpu and any(gpus):
            problems.append(f"{kind}: CPU profile requests GPUs")
    return problems


def llm_problems(docs: list[dict], build: str) -> list[str]:
    """The initContainer pulls ``build`` and the server loads that folder, under the registered name."""
    problems = []
    for kind, spec in pod_specs(docs):
        puller, server = spec["initContainers"][0], spec["containers"][0]
        model = puller["args"][0].removeprefix("models:/").split("@")[0].split("/")[0]
        if puller["args"][-2:] != ["--build", build]:
            problems.append(f"{kind}: the initContainer does not pull the {build} build: {puller['args']}")
        if server["command"] == ["vllm", "serve"]:
            if server["args"][0] != f"/models/{build}" or f"--served-model-name={model}" not in server["args"]:
                problems.append(f"{kind}: vLLM does not serve /models/{build} as {model!r}: {server['args']}")
        elif f"--model-repository=/models/{build}" not in server["args"]:
            problems.append(f"{kind}: the server does not load /models/{build}: {server['args']}")
    return problems


def drain_problems(docs: list[dict]) -> list[str]:
    """A Deployment must have a PDB and an HPA that select / target it."""
    by_kind = {d["kind"]: d for d in docs}
    deployment = by_kind.get("Deployment")
    if deployment is None:
        return ["no Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    problems = []
    pdb = by_kind.get("PodDisruptionBudget")
    if pdb is None or not pdb["spec"]["selector"]["matchLabels"].items() <= labels.items():
        problems.append("no PodDisruptionBudget selecting the Deployment's pods")
    hpa = by_kind.get("HorizontalPodAutoscaler")
    if hpa is None or hpa["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        problems.append("no HorizontalPodAutoscaler targeting the Deployment")
    service = by_kind.get("Service")
    if service is None or not service["spec"]["selector"].items() <= labels.items():
        problems.append("no Service selecting the Deployment's pods")
    return problems


# --- tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_helm_lint_strict(helm, profile):
    chart, values = PROFILES[profile]
    done = helm_run(helm, "lint", "--strict", str(CHARTS / chart), "-f", str(CHARTS / chart / "ci" / values))
    assert done.returncode == 0, done.stdout + done.stderr


def test_manifests_validate_against_kubernetes_and_crd_schemas(rendered, serve_python):
    files = [str(path) for path, _ in rendered.values()]
    done = subprocess.run([str(serve_python), str(HERE / "validate_manifests.py"), "--crds", str(HERE / "crds"),
                           "--versions", *K8S_VERSIONS, "--", *files],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == []
    kinds = {d["kind"] for _, docs in rendered.values() for d in docs}
    assert {"InferenceService", "ServiceMonitor", "CronJob", "Deployment"} <= kinds  # CRs were checked


def test_checkov_passes_with_only_the_justified_skips(rendered, serve_python):
    folder = next(iter(rendered.values()))[0].parent
    done = subprocess.run([str(serve_python), "-m", "checkov.main", "--framework", "kubernetes", "-d", str(folder),
                           "--skip-download", "--compact", "--quiet", "-o", "json",
                           "--skip-check", ",".join(CHECKOV_SKIPS)],
                          capture_output=True, text=True, check=False, timeout=150)
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert failed == []
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_policy(rendered, profile):
    _, docs = rendered[profile]
    problems = policy_problems(docs, gpu=profile.startswith("gpu"), serving=profile != "retrain")
    if profile in ("cpu-onnxruntime", "gpu-triton-tensorrt", "gpu-vllm", "cpu-genai"):
        problems += drain_problems(docs)
    if profile in LLM_BUILDS:
        problems += llm_problems(docs, LLM_BUILDS[profile])
    assert problems == []


def test_gpu_profile_schedules_on_gpus_and_serves_the_engine(rendered):
    deployment = next(d for d in rendered["gpu-triton-tensorrt"][1] if d["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    server = spec["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["runtimeClassName"] == "nvidia"
    assert "--load-model=minilm-sentiment-tensorrt" in server["args"]
    assert spec["initContainers"][0]["args"][-1] == "gpu"  # pull writes KIND_GPU instance groups
    hpa = next(d for d in rendered["gpu-triton-tensorrt"][1] if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["type"] == "Pods"  # queue-time custom metric


def test_vllm_profile_serves_the_build_on_gpus_with_shared_memory(rendered):
    docs = rendered["gpu-vllm"][1]
    spec = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    server = spec["containers"][0]
    assert server["image"] == "vllm/vllm-openai:v0.11.0" and server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"--tensor-parallel-size=1", "--max-model-len=8192", "--enable-prefix-caching"} <= set(server["args"])
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}.items() <= env.items()
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in server["volumeMounts"]
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"


def test_genai_profile_is_the_modelpress_llm_server_on_cpus(rendered):
    spec = next(d for d in rendered["cpu-genai"][1] if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    server = spec["containers"][0]
    assert server["command"] == ["modelpress", "serve"] and "--threads=2" in server["args"]
    assert "runtimeClassName" not in spec and "nvidia.com/gpu" not in server["resources"]["limits"]
    assert "--instance-kind" not in spec["initContainers"][0]["args"]


def test_credentials_only_by_secret_reference(rendered):
    deployment = next(d for d in rendered["cpu-onnxruntime"][1] if d["kind"] == "Deployment")
    puller = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert puller["envFrom"] == [{"secretRef": {"name": "mlflow-credentials"}}]
    cronjob = rendered["retrain"][1][-1]
    env = {e["name"]: e for e in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ZENML_STORE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "zenml-service-account"


def test_retrain_cronjob_never_overlaps(rendered):
    cronjob = next(d for d in rendered["retrain"][1] if d["kind"] == "CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 3
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] + container["args"] == ["modelpress", "run", "mnist-cnn"]


def test_service_monitor_only_when_the_api_exists(helm):
    chart = CHARTS / "modelpress-inference"
    docs = render(helm, chart, chart / "ci" / "cpu-onnxruntime-values.yaml")
    assert "ServiceMonitor" not in {d["kind"] for d in docs}


@pytest.mark.parametrize(("chart", "values", "sets", "message"), [
    ("modelpress-inference", "cpu-onnxruntime", ["model.uri=mnist-cnn"], "model.uri"),
    ("modelpress-inference", "cpu-onnxruntime", ["gpu.count=0"], "gpu.count"),
    ("modelpress-inference", "cpu-onnxruntime", ["runtime=tensorflow"], "runtime"),
    ("modelpress-inference", "cpu-onnxruntime", ["securityContext.readOnlyRootFilesystem=false"],
     "securityContext.readOnlyRootFilesystem"),
    ("modelpress-inference", "cpu-onnxruntime", ["probes.readiness.path=/healthz"], "probes.readiness.path"),
    ("modelpress-inference", "cpu-onnxruntime", ["replicaCuont=3"], "replicaCuont"),
    ("modelpress-inference", "cpu-onnxruntime", ["runtime=triton", "triton.backend=tensorrt"], "gpu.enabled"),
    ("modelpress-inference", "cpu-onnxruntime", ["autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"],
     "autoscaling.minReplicas"),
    ("modelpress-inference", "cpu-onnxruntime", ["runtime=vllm"], "gpu.enabled"),
    ("modelpress-inference", "gpu-vllm", ["vllm.build=gguf"], "vllm.build"),
    ("modelpress-inference", "gpu-vllm", ["vllm.gpuMemoryUtilization=1.5"], "vllm.gpuMemoryUtilization"),
    ("modelpress-inference", "gpu-vllm", ["vllm.extraArgs={--port=1; rm -rf /}"], "vllm.extraArgs"),
    ("modelpress-inference", "gpu-vllm", ["autoscaling.metric=cpu"], "autoscaling.metric"),
    ("modelpress-inference", "gpu-vllm", ["vllmImage.tag="], "vllmImage.tag"),
    ("modelpress-inference", "cpu-genai", ["gpu.enabled=true"], "gpu.enabled"),
    ("modelpress-inference", "cpu-genai", ["server.workers=2"], "server.workers"),
    ("modelpress-inference", "cpu-genai", ["model.optimize=true"], "model.optimize"),
    ("modelpress-retrain", "retrain", ["concurrencyPolicy=Allow"], "concurrencyPolicy"),
    ("modelpress-retrain", "retrain", ["schedule=weekly"], "schedule"),
])
def test_bad_values_fail_naming_the_field(helm, chart, values, sets, message):
    args = ["template", "rel", str(CHARTS / chart), "-f", str(CHARTS / chart / "ci" / f"{values}-values.yaml")]
    for item in sets:
        args += ["--set", item]
    done = helm_run(helm, *args)
    assert done.returncode != 0 and message in done.stderr, done.stderr


# --- the checks can fail: break a copy of the chart on purpose -------------------------------

@pytest.fixture()
def chart_copy(tmp_path) -> Path:
    return Path(shutil.copytree(CHARTS / "modelpress-inference", tmp_path / "modelpress-inference"))


def _break(chart: Path, file: str, old: str, new: str) -> None:
    path = chart / file
    text = path.read_text()
    assert old in text, f"mutation target {old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))


def test_a_broken_template_fails_lint(helm, chart_copy):
    _break(chart_copy, "templates/service.yaml", "{{- end }}", "{{- end }")
    values = str(chart_copy / "ci" / "cpu-onnxruntime-values.yaml")
    done = helm_run(helm, "lint", "--strict", str(chart_copy), "-f", values)
    assert done.returncode != 0 and "service.yaml" in done.stdout + done.stderr


@pytest.mark.parametrize(("profile", "old", "new", "problem"), [
    ("cpu-onnxruntime", "path: {{ $vllmHealth | default .Values.probes.liveness.path }}", "path: /healthz",
     "livenessProbe probes /healthz, not /v2/health/live"),
    ("cpu-genai", "path: {{ $vllmHealth | default .Values.probes.readiness.path }}", "path: /v2/health/live",
     "readinessProbe probes /v2/health/live, not /v2/health/ready"),
    ("gpu-vllm", 'ternary "/health" ""', 'ternary "/v2/health/ready" ""',
     "livenessProbe probes /v2/health/ready, not /health"),
])
def test_a_broken_probe_path_fails_policy(helm, chart_copy, profile, old, new, problem):
    _break(chart_copy, "templates/_helpers.tpl", old, new)
    docs = render(helm, chart_copy, chart_copy / "ci" / PROFILES[profile][1])
    assert f"Deployment.server: {problem}" in policy_problems(docs, gpu=profile.startswith("gpu"), serving=True)


@pytest.mark.parametrize(("profile", "old", "new", "problem"), [
    ("gpu-vllm", '"/models/{{ .Values.vllm.build }}"', '"/models/gptq"',
     "vLLM does not serve /models/compressed-tensors"),
    ("cpu-genai", "/models{{ with include", "/data{{ with include",
     "the server does not load /models/onnxruntime-genai"),
    ("cpu-genai", '"--build"', '"--bulid"', "the initContainer does not pull the onnxruntime-genai build"),
])
def test_an_llm_server_that_loads_another_folder_fails_policy(helm, chart_copy, profile, old, new, problem):
    _break(chart_copy, "templates/_helpers.tpl", old, new)
    docs = render(helm, chart_copy, chart_copy / "ci" / PROFILES[profile][1])
    assert any(problem in p for p in llm_problems(docs, LLM_BUILDS[profile]))


def test_a_probe_on_a_missing_port_fails_policy(helm, chart_copy):
    _break(chart_copy, "templates/_helpers.tpl", "- {name: http, containerPort: {{ .Values.service.httpPort }}",
           "- {name: web, containerPort: {{ .Values.service.httpPort }}")
    docs = render(helm, chart_copy, chart_copy / "ci" / "cpu-onnxruntime-values.yaml")
    assert len([p for p in policy_problems(docs, gpu=False, serving=True) if "is not a container port" in p]) == 3


@pytest.mark.parametrize("profile", ["gpu-triton-tensorrt", "gpu-vllm"])
def test_a_missing_gpu_limit_fails_policy(helm, chart_copy, profile):
    gpu_limit = "{{- $_ := set $limits .Values.gpu.resourceName .Values.gpu.count }}"
    _break(chart_copy, "templates/_helpers.tpl", gpu_limit, "")
    docs = render(helm, chart_copy, chart_copy / "ci" / PROFILES[profile][1])
    assert any("GPU profile without" in p for p in policy_problems(docs, gpu=True, serving=True))


def test_a_missing_pdb_and_an_inline_secret_fail_policy(helm, chart_copy):
    (chart_copy / "templates" / "pdb.yaml").unlink()
    _break(chart_copy, "templates/_helpers.tpl", "    - name: HOME\n      value: /scratch\n    - name: TMPDIR",
           "    - name: AWS_SECRET_ACCESS_KEY\n      value: hunter2\n    - name: TMPDIR")
    docs = render(helm, chart_copy, chart_copy / "ci" / "cpu-onnxruntime-values.yaml")
    assert drain_problems(docs) == ["no PodDisruptionBudget selecting the Deployment's pods"]
    assert any("AWS_SECRET_ACCESS_KEY has an inline value" in p for p in policy_problems(docs, gpu=False, serving=True))


def test_schema_validation_catches_bad_fields(rendered, serve_python, tmp_path):
    """Typos and wrong enums in built-in kinds and custom resources are reported."""
    docs = [json.loads(json.dumps(d)) for d in rendered["kserve"][1] + rendered["cpu-onnxruntime"][1]]
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    isvc["spec"]["predictor"]["scaleMetric"] = "qps"
    isvc["spec"]["predictor"]["initContainer"] = isvc["spec"]["predictor"].pop("initContainers")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run([str(serve_python), str(HERE / "validate_manifests.py"), "--crds", str(HERE / "crds"),
                           "--versions", *K8S_VERSIONS, "--", str(path)],
                          capture_output=True, text=True, check=False, timeout=120)
    problems = "\n".join(json.loads(done.stdout))
    assert "'qps' is not one of" in problems
    assert "initContainer" in problems and "readinesProbe" in problems
    assert "30 seconds" in problems
