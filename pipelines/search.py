"""Run a recipe's ``search:`` grid: every candidate is an ordinary (cached) pipeline run.

Candidates share the pipeline's prefix (data, validation, baseline training, baseline
export), which ZenML's cache runs once. Each candidate is gated and registered (so every
decision is in the registry with its evidence) but none promotes itself: once all have run,
the best passing one on the recipe's objective is promoted through the same check-then-set
as a single run, and the Pareto set (accuracy up; size, latency down) is reported as an
MLflow table + HTML page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.recipe import RecipeBase, validate_recipe
from modelpress.search import Candidate, expand, pareto, techniques

PARETO_KEYS = (("accuracy", True), ("size_mb", False), ("latency_ms", False))


@dataclass
class SearchResult:
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    promotion: dict[str, Any]
    pareto: list[int]
    report_path: Path
    summary: dict[str, Any] = field(default_factory=dict)


def run_search(recipe: RecipeBase, raw: dict[str, Any], enable_cache: bool = True) -> SearchResult:
    from .run import run_recipe

    assert recipe.search is not None
    candidates = expand(raw, recipe.stages, recipe.search)
    rows, last = [], None
    for index, candidate in enumerate(candidates):
        result = run_recipe(_unpromoted(candidate, recipe.name, index), enable_cache=enable_cache,
                            run_name=f"{recipe.name}_search{index}_{{date}}_{{time}}")
        rows.append(_row(index, candidate, result))
        last = result
    passing = [r for r in rows if r["passed"]]
    front = pareto(passing, PARETO_KEYS)
    for i in front:
        passing[i]["pareto"] = True
    objective = recipe.search.objective
    best = min(passing, key=lambda r: (r[objective], -r["accuracy"])) if passing else None
    promotion = _promote(best, recipe, last) if best else {"promoted": False, "reason": "no candidate passed the gate"}
    summary = summarize(rows, objective)
    report = _report(recipe, rows, best, promotion, summary, last)
    return SearchResult(rows, best, promotion, [r["index"] for r in rows if r.get("pareto")], report, summary)


def _unpromoted(candidate: Candidate, name: str, index: int) -> RecipeBase:
    """The candidate as a recipe that registers (and gets @challenger) but never promotes itself."""
    body = dict(candidate.recipe)
    body["registry"] = {**body["registry"], "promote_to": None}
    body["description"] = f"search candidate {index}: {candidate.label}"
    return validate_recipe(body, source=f"{name} search candidate {index} ({candidate.label})")


def _row(index: int, candidate: Candidate, result: Any) -> dict[str, Any]:
    cand = result.evaluation["candidate"]
    return {"index": index, "candidate": candidate.label, "techniques": "+".join(techniques(candidate)),
            "passed": result.passed, "reason": result.verdict["reason"],
            **{k: float(cand[k]) for k in ("accuracy", "f1", "size_mb", "latency_ms", "latency_p95_ms",
                                           "peak_memory_mb") if k in cand},
            "baseline_size_mb": float(result.evaluation["baseline"]["size_mb"]),
            "baseline_accuracy": float(result.evaluation["baseline"]["accuracy"]),
            "baseline_latency_ms": float(result.evaluation["baseline"]["latency_ms"]),
            "version": str(result.registration["version"]), "run": result.run_name, "pareto": False,
            "cached_steps": ",".join(result.cached_steps),
            "name": result.registration["name"]}


def summarize(rows: list[dict[str, Any]], objective: str) -> dict[str, Any]:
    """Best passing composed candidate vs best passing single-technique one, on ``objective``."""
    passing = [r for r in rows if r["passed"]]
    single = [r for r in passing if "+" not in r["techniques"]]
    composed = [r for r in passing if "+" in r["techniques"]]
    out: dict[str, Any] = {"objective": objective, "candidates": len(rows), "passed": len(passing)}
    if single:
        out["best_single"] = min(single, key=lambda r: r[objective])
    if composed:
        out["best_composed"] = min(composed, key=lambda r: r[objective])
    if single and composed:
        out["single_over_composed"] = out["best_single"][objective] / out["best_composed"][objective]
    return out


def _eval_rows(result: Any) -> Any:
    from zenml.client import Client

    step = Client().get_pipeline_run(result.run_id).steps["validate_data"]
    frame = step.outputs["validated_dataset"][0].load()
    return frame[frame["split"] == "eval"]


def _promote(best: dict[str, Any], recipe: RecipeBase, last: Any) -> dict[str, Any]:
    import mlflow
    from modelpress.deploy.registry import client, promote

    from modelpress.publish import champion_accuracy

    from .plan import task_spec
    from .steps import _task

    alias = recipe.registry.promote_to
    if not alias:
        return {"promoted": False, "reason": "registry.promote_to is not set"}
    if last.tracking.tracking_uri:  # the tracker's steps leave MLflow's global URI behind them
        mlflow.set_tracking_uri(last.tracking.tracking_uri)
        mlflow.set_registry_uri(last.tracking.tracking_uri)
    eval_rows, task = _eval_rows(last), _task(task_spec(recipe))
    accuracy = recipe.gate.get("accuracy")
    tolerance = accuracy.max_champion_drop if accuracy and accuracy.max_champion_drop is not None \
        else recipe.registry.tolerance
    outcome = promote(best["name"], best["version"], alias, best["accuracy"],
                      lambda v: champion_accuracy(f"models:/{v.name}/{v.version}", eval_rows, task),
                      tolerance=tolerance)
    client().set_model_version_tag(best["name"], best["version"], "promotion",
                                   f"{'promoted' if outcome.promoted else 'not promoted'} (search best on "
                                   f"{recipe.search.objective}): {outcome.reason}"[:5000])
    return {"promoted": outcome.promoted, "reason": outcome.reason, "previous": outcome.previous,
            "alias": alias, "version": best["version"]}


def _report(recipe: RecipeBase, rows: list[dict[str, Any]], best: dict[str, Any] | None,
            promotion: dict[str, Any], summary: dict[str, Any], last: Any) -> Path:
    """The Pareto table + plot: an HTML file under MODELPRESS_HOME and an MLflow run."""
    import mlflow

    from modelpress.report import load_peers
    from modelpress.stack import home

    page, svg = render_search(recipe.name, rows, best, promotion, summary, load_peers(recipe.peers))
    folder = home() / "search"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recipe.name}.html"
    path.write_text(page)
    if last is not None and last.tracking.tracking_uri:
        mlflow.set_tracking_uri(last.tracking.tracking_uri)
    mlflow.set_experiment(recipe.name)
    with mlflow.start_run(run_name=f"{recipe.name}-search"):
        mlflow.set_tags({"modelpress.search": "true", "modelpress.objective": summary["objective"],
                         "modelpress.promoted": str(promotion["promoted"]),
                         "modelpress.promotion_reason": promotion["reason"][:5000]})
        mlflow.log_table({k: [r.get(k) for r in rows] for k in rows[0]} if rows else {}, "search/candidates.json")
        mlflow.log_text(page, "search/report.html")
        mlflow.log_text(svg, "search/pareto.svg")
        mlflow.log_metrics({"candidates": len(rows), "passed": summary["passed"],
                            **({"single_over_composed": summary["single_over_composed"]}
                               if "single_over_composed" in summary else {})})
    return path


def render_search(name: str, rows: list[dict[str, Any]], best: dict[str, Any] | None, promotion: dict[str, Any],
                  summary: dict[str, Any], peers: list[dict[str, Any]]) -> tuple[str, str]:
    from modelpress.report import page, pareto_svg, table

    points = []
    if rows:
        points.append({"name": "baseline", "kind": "baseline", "accuracy": rows[0]["baseline_accuracy"],
                       "size_mb": rows[0]["baseline_size_mb"], "latency_ms": rows[0]["baseline_latency_ms"]})
    points += [{"name": f"#{r['index']}", "kind": "pareto" if r["pareto"] else "search",
                "accuracy": r["accuracy"], "size_mb": r["size_mb"], "latency_ms": r["latency_ms"]}
               for r in rows if r["passed"]]
    svg = pareto_svg(points + peers, f"{name} search")
    headers = ["#", "candidate", "techniques", "gate", "accuracy", "size MB", "latency ms", "peak MB",
               "version", "Pareto"]
    body = [[r["index"], r["candidate"], r["techniques"], "pass" if r["passed"] else "FAIL", r["accuracy"],
             r["size_mb"], r["latency_ms"], r.get("peak_memory_mb"), r["version"], "★" if r["pareto"] else ""]
            for r in rows]
    lines = [f"<h2>modelpress search — {name}</h2>",
             f"<p id='best'>objective: smallest {summary['objective']}; best: "
             + (f"#{best['index']} ({best['candidate']})" if best else "none passed")
             + f"; promotion: {promotion['reason']}</p>"]
    if "single_over_composed" in summary:
        lines.append(f"<p id='composition'>best composed candidate is {summary['single_over_composed']:.2f}× "
                     f"smaller on {summary['objective']} than the best single-technique candidate "
                     f"(#{summary['best_single']['index']}: {summary['best_single']['candidate']})</p>")
    lines += [table(headers, body, "candidates"), f"<div class='plot'>{svg[svg.find('<svg'):]}</div>"]
    return page(f"modelpress search: {name}", lines), svg
