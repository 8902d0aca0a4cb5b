"""Record a candidate in MLflow (params, metrics, reports, both models), register, promote.

Runs inside a ZenML step that has the MLflow experiment tracker, so an MLflow run is active.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx
    import pandas as pd
    import torch

    from .tasks import Task

# Requirements recorded with the logged models; given explicitly because MLflow's inference
# imports the model in a subprocess, which costs tens of seconds per model.
ONNX_REQUIREMENTS = ["onnx", "onnxruntime"]
TORCH_REQUIREMENTS = ["torch", "modelpress"]


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    if isinstance(value, list):
        return flatten(prefix, {str(i): v for i, v in enumerate(value)}) if value else {prefix: "[]"}
    return {prefix: value}


def summary_table(evaluation: dict[str, dict[str, float]], verdict: dict[str, Any]) -> str:
    """A small HTML page: baseline vs candidate and every gate check."""
    metrics = sorted(set(evaluation["baseline"]) & set(evaluation["candidate"]))
    rows = "".join(f"<tr><td>{m}</td><td>{evaluation['baseline'][m]:.4g}</td>"
                   f"<td>{evaluation['candidate'][m]:.4g}</td></tr>" for m in metrics)
    checks = "".join(f"<tr><td>{c['metric']}.{c['rule']}</td><td>{c['value']:.4g}</td><td>{c['limit']:.4g}</td>"
                     f"<td>{'pass' if c['passed'] else 'FAIL'}</td></tr>" for c in verdict["checks"])
    status = "PASSED" if verdict["passed"] else "FAILED"
    return ("<html><body><h2>modelpress gate: " + status + "</h2>"
            f"<p>{verdict['reason']}</p>"
            "<table border=1><tr><th>metric</th><th>baseline</th><th>candidate</th></tr>" + rows + "</table>"
            "<h3>checks</h3><table border=1><tr><th>check</th><th>value</th><th>limit</th><th>result</th></tr>"
            + checks + "</table></body></html>")


def log_and_register(candidate_model: "torch.nn.Module", candidate_onnx: "onnx.ModelProto",
                     evaluation: dict[str, Any], verdict: dict[str, Any], parity: dict[str, float],
                     stage_reports: dict[str, Any], validation_report: dict[str, Any],
                     recipe: dict[str, Any], tags: dict[str, str], champion: dict[str, Any] | None = None,
                     profile: dict[str, Any] | None = None,
                     peers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    import mlflow

    from modelpress.deploy.registry import ONNX_ARTIFACT, TORCH_ARTIFACT, client, register

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("publish must run with the MLflow experiment tracker (no active MLflow run)")
    mlflow.log_params({k: str(v)[:500] for k, v in flatten("", recipe).items()})
    numbers = {**flatten("baseline", evaluation["baseline"]), **flatten("candidate", evaluation["candidate"]),
               **flatten("parity", parity), **flatten("stage", stage_reports)}
    mlflow.log_metrics({k: float(v) for k, v in numbers.items() if isinstance(v, (int, float))})
    mlflow.log_metric("gate_passed", float(verdict["passed"]))
    mlflow.log_dict({"evaluation": evaluation, "verdict": verdict, "parity": parity,
                     "stages": stage_reports, "validation": validation_report,
                     "champion": champion or {}}, "report/report.json")
    _log_gate_evidence(evaluation, verdict, champion or {}, peers or [], recipe, profile)
    mlflow.set_tags({f"modelpress.{k}": v for k, v in tags.items()})

    mlflow.pytorch.log_model(candidate_model, name=TORCH_ARTIFACT, serialization_format="pickle",
                             pip_requirements=TORCH_REQUIREMENTS)
    onnx_info = mlflow.onnx.log_model(candidate_onnx, name=ONNX_ARTIFACT, pip_requirements=ONNX_REQUIREMENTS)
    registry = recipe["registry"]
    version = register(onnx_info.model_uri, registry["name"], {
        **tags, "gate": "passed" if verdict["passed"] else "failed",
        "gate_reason": verdict["reason"][:5000],
        "accuracy": f"{evaluation['candidate']['accuracy']:.6f}",
        "mlflow_run_id": run.info.run_id,
    })
    export = recipe.get("export") or []
    if "triton-repository" in export or "tensorrt" in export:
        from modelpress.deploy.log_repository import log_model_repository

        log_model_repository(candidate_onnx, registry["name"], version.version, export, parity)
    if verdict["passed"]:
        client().set_registered_model_alias(registry["name"], registry["challenger"], version.version)
    return {"name": registry["name"], "version": version.version, "run_id": run.info.run_id,
            "model_uri": f"models:/{registry['name']}/{version.version}",
            "aliases": [registry["challenger"]] if verdict["passed"] else []}


def _log_gate_evidence(evaluation: dict[str, Any], verdict: dict[str, Any], champion: dict[str, Any],
                       peers: list[dict[str, Any]], recipe: dict[str, Any], profile: dict[str, Any] | None) -> None:
    """Gate report (HTML + Pareto SVG), per-check numbers, the champion's numbers, the recipe
    itself (what retraining re-runs) and the data profile (what retraining checks drift against)."""
    import mlflow

    from .report import render_gate

    page, svg = render_gate(evaluation, verdict, champion, peers, recipe["name"])
    mlflow.log_text(page, "report/gate.html")
    mlflow.log_text(svg, "report/pareto.svg")
    checks = {f"gate.{c['metric']}.{c['rule']}": c["value"] for c in verdict["checks"] if c["value"] is not None}
    champ = {f"champion.{k}": v for k, v in (champion.get("metrics") or {}).items() if isinstance(v, (int, float))}
    mlflow.log_metrics({k: float(v) for k, v in {**checks, **champ}.items()})
    mlflow.log_dict(recipe, "recipe/recipe.json")
    if profile:
        mlflow.log_dict(profile, "data/profile.json")


def champion_accuracy(model_uri: str, eval_frame: "pd.DataFrame", task: "Task") -> float:
    """Accuracy of a registered ONNX model on the same eval rows the candidate was scored on."""
    import mlflow

    from .evaluate import onnx_runner, onnx_session, predict, quality

    model = mlflow.onnx.load_model(model_uri)
    logits, _, labels = predict(onnx_runner(onnx_session(model)), task, eval_frame)
    return quality(logits, labels)["accuracy"]


def promote_if_better(registration: dict[str, Any], verdict: dict[str, Any], evaluation: dict[str, Any],
                      eval_frame: "pd.DataFrame", task: "Task", registry: dict[str, Any]) -> dict[str, Any]:
    import mlflow

    from modelpress.deploy.registry import promote

    alias = registry.get("promote_to")
    if not verdict["passed"]:
        outcome = {"promoted": False, "reason": f"gate failed: {verdict['reason']}"}
    elif not alias:
        outcome = {"promoted": False, "reason": "registry.promote_to is not set"}
    else:
        result = promote(registration["name"], registration["version"], alias,
                         evaluation["candidate"]["accuracy"],
                         lambda v: champion_accuracy(f"models:/{v.name}/{v.version}", eval_frame, task),
                         tolerance=registry.get("tolerance", 0.0))
        outcome = {"promoted": result.promoted, "reason": result.reason, "previous": result.previous}
    if registration.get("version"):
        from modelpress.deploy.registry import client

        client().set_model_version_tag(registration["name"], registration["version"], "promotion",
                                       f"{'promoted' if outcome['promoted'] else 'not promoted'}: {outcome['reason']}"[:5000])
    if mlflow.active_run() is not None:
        mlflow.set_tags({"modelpress.promoted": str(outcome["promoted"]),
                         "modelpress.promotion_reason": outcome["reason"][:5000]})
    return {**outcome, "alias": alias, "version": registration["version"], "name": registration["name"]}
