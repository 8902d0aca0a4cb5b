"""Run a recipe's ``search:`` grid: every candidate is an ordinary (cached) pipeline run.

Candidates share the pipeline's prefix (data, validation, baseline training, baseline
export), which ZenML's cache runs once. Each candidate is gated and registered (so every
decision is in the registry with its evidence) but none promotes itself: once all have run,
the best passing one on the recipe's objective is promoted through the same check-then-set
as a single run, and the Pareto set (quality up; size, latency down) is reported as an
MLflow table + HTML page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import ChampionReport
from modelpress.core.registry import BUILDS
from modelpress.gate.champion import measure_version
from modelpress.gate.report import LATENCY, SIZE, load_peers, page, pareto_svg, table
from modelpress.pipelines.plan import promotion_tolerance, task_spec
from modelpress.pipelines.run import run_recipe
from modelpress.recipe.schema import RecipeBase, validate_recipe
from modelpress.release.publish import paired_refusal, primary_score
from modelpress.settings.search import Candidate, best_candidate, expand, pareto, techniques
from modelpress.tasks import get_task
from modelpress.tracking.model_registry import client, promote
from modelpress.tracking.stack import home
from modelpress.tracking.uris import point_mlflow_at


@dataclass
class SearchResult:
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    promotion: dict[str, Any]
    pareto: list[int]
    report_path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    primary: str = "accuracy"  # the task's quality metric, as the rows name it


def run_search(recipe: RecipeBase, raw: dict[str, Any], enable_cache: bool = True) -> SearchResult:
    assert recipe.search is not None
    candidates = expand(raw, recipe.stages, recipe.search)
    rows, last, samples = [], None, {}
    for index, candidate in enumerate(candidates):
        result = run_recipe(_unpromoted(candidate, recipe.name, index), enable_cache=enable_cache,
                            run_name=f"{recipe.name}_search{index}_{{date}}_{{time}}")
        rows.append(_row(index, candidate, result))
        samples[index] = result.evaluation.samples  # each candidate's per-row values, on the same rows
        last = result
    task = recipe.task_class
    primary = task.primary_metric
    passing = [r for r in rows if r["passed"]]
    front = pareto(passing, pareto_keys(task))
    for i in front:
        passing[i]["pareto"] = True
    objective = recipe.search.objective
    best = best_candidate(passing, samples, objective, primary, task.metric(primary).higher_is_better,
                          recipe.statistics)
    promotion = _promote(best, recipe, last) if best else {"promoted": False, "reason": "no candidate passed the gate"}
    summary = summarize(rows, objective)
    report = _report(recipe, rows, best, promotion, summary, last)
    return SearchResult(rows, best, promotion, [r["index"] for r in rows if r.get("pareto")], report, summary,
                        primary)


def _unpromoted(candidate: Candidate, name: str, index: int) -> RecipeBase:
    """The candidate as a recipe that registers (and gets @challenger) but never promotes itself."""
    body = dict(candidate.recipe)
    body["registry"] = {**body["registry"], "promote_to": None}
    body["description"] = f"search candidate {index}: {candidate.label}"
    return validate_recipe(body, source=f"{name} search candidate {index} ({candidate.label})", as_written=False)


def pareto_keys(task: Any) -> list[tuple[str, bool]]:
    """(metric, higher is better) the Pareto set is taken over: quality, size, latency."""
    return [(m, task.metric(m).higher_is_better) for m in (task.primary_metric, SIZE, LATENCY)]


def _row(index: int, candidate: Candidate, result: Any) -> dict[str, Any]:
    evaluation = result.evaluation
    task = get_task(evaluation.task)
    return {"index": index, "candidate": candidate.label, "techniques": "+".join(techniques(candidate)),
            "passed": result.passed, "reason": result.verdict.reason,
            **{m: float(evaluation.candidate[m]) for m in task.metric_names() if m in evaluation.candidate},
            **{f"baseline_{m}": float(evaluation.baseline[m]) for m in (task.primary_metric, SIZE, LATENCY)},
            "version": result.registration.version, "run": result.run_name, "pareto": False,
            "cached_steps": ",".join(result.cached_steps), "name": result.registration.name}


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


def _step_output(result: Any, step: str, output: str) -> Any:
    from zenml.client import Client

    return Client().get_pipeline_run(result.run_id).steps[step].outputs[output][0].load()


def _promote(best: dict[str, Any], recipe: RecipeBase, last: Any) -> dict[str, Any]:
    alias = recipe.registry.promote_to
    if not alias:
        return {"promoted": False, "reason": "registry.promote_to is not set"}
    point_mlflow_at(last.tracking.tracking_uri)  # the tracker's steps leave MLflow's global URI behind them
    frame = _step_output(last, "validate_data", "validated_dataset")
    eval_frame, task = frame[frame["split"] == "eval"], task_spec(recipe).build()

    candidate = BUILDS.get(task.registered_build).load_registered(f"models:/{best['name']}/{best['version']}")

    def measured(version: Any) -> ChampionReport:
        found = measure_version(version.name, str(version.version), alias, candidate, task, eval_frame)
        if found.metrics is None:
            raise ModelpressError(f"@{alias} v{version.version} could not be measured: {found.error}")
        return found

    def score_of(version: Any) -> float:
        return primary_score(task, measured(version).metrics or {})

    tolerance = promotion_tolerance(recipe)
    outcome = promote(best["name"], best["version"], alias, primary_score(task, best), score_of, tolerance=tolerance,
                      refuse=paired_refusal(task, alias, tolerance, recipe.statistics, measured))
    client().set_model_version_tag(best["name"], best["version"], "promotion",
                                   f"{'promoted' if outcome.promoted else 'not promoted'} (search best on "
                                   f"{recipe.search.objective if recipe.search else '?'}): {outcome.reason}"[:5000])
    return {"promoted": outcome.promoted, "reason": outcome.reason, "previous": outcome.previous,
            "alias": alias, "version": best["version"]}


def _report(recipe: RecipeBase, rows: list[dict[str, Any]], best: dict[str, Any] | None,
            promotion: dict[str, Any], summary: dict[str, Any], last: Any) -> Path:
    """The Pareto table + plot: an HTML file under MODELPRESS_HOME and an MLflow run."""
    import mlflow

    page, svg = render_search(recipe.task_class, recipe.name, rows, best, promotion, summary,
                              load_peers(recipe.peers))
    folder = home() / "search"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recipe.name}.html"
    path.write_text(page)
    if last is not None:
        point_mlflow_at(last.tracking.tracking_uri)
    mlflow.set_experiment(recipe.name)
    with mlflow.start_run(run_name=f"{recipe.name}-search"):
        mlflow.set_tags({"modelpress.settings.search": "true", "modelpress.objective": summary["objective"],
                         "modelpress.promoted": str(promotion["promoted"]),
                         "modelpress.promotion_reason": promotion["reason"][:5000]})
        mlflow.log_table({k: [r.get(k) for r in rows] for k in rows[0]} if rows else {}, "search/candidates.json")
        mlflow.log_text(page, "search/report.html")
        mlflow.log_text(svg, "search/pareto.svg")
        mlflow.log_metrics({"candidates": len(rows), "passed": summary["passed"],
                            **({"single_over_composed": summary["single_over_composed"]}
                               if "single_over_composed" in summary else {})})
    return path


def render_search(task: Any, name: str, rows: list[dict[str, Any]], best: dict[str, Any] | None,
                  promotion: dict[str, Any], summary: dict[str, Any], peers: list[Any]) -> tuple[str, str]:

    keys = (task.primary_metric, SIZE, LATENCY)
    points = []
    if rows:
        points.append({"name": "baseline", "kind": "baseline", **{k: rows[0][f"baseline_{k}"] for k in keys}})
    points += [{"name": f"#{r['index']}", "kind": "pareto" if r["pareto"] else "search", **{k: r[k] for k in keys}}
               for r in rows if r["passed"]]
    points += [{"name": p.name, "kind": "peer", **{k: p.metrics[k] for k in keys if k in p.metrics}}
               for p in peers if all(k in p.metrics for k in keys[:2])]
    svg = pareto_svg(points, f"{name} search", task.primary_metric)
    headers = ["#", "candidate", "techniques", "gate", task.primary_metric, "size MB", "latency ms", "peak MB",
               "version", "Pareto"]
    body = [[r["index"], r["candidate"], r["techniques"], "pass" if r["passed"] else "FAIL",
             r[task.primary_metric], r[SIZE], r[LATENCY], r.get("peak_memory_mb"), r["version"],
             "★" if r["pareto"] else ""] for r in rows]
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
