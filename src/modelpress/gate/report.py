"""The gate report: an HTML page (table + checks + Pareto plot) and the plot as SVG.

The same page is a ZenML dashboard visualization (an ``HTMLString`` artifact) and an MLflow
artifact; the SVG is inlined in the page and also logged on its own. The plot puts the task's
primary metric (accuracy for classifiers) against size, with latency as marker area, for
baseline, candidate, champion, search candidates and the peers measured by the benchmarks when
the recipe names them.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.core.handoffs import PeerPoint

if TYPE_CHECKING:
    from modelpress.core.handoffs import ChampionReport, Check, Evaluation, Verdict

KIND_STYLE = {"baseline": ("tab:gray", "s"), "candidate": ("tab:blue", "o"), "champion": ("tab:orange", "D"),
              "peer": ("tab:green", "^"), "search": ("tab:blue", "o"), "pareto": ("tab:red", "*")}
SIZE, LATENCY = "size_mb", "latency_ms"  # the plot's x axis and marker area, for every task


def load_peers(path: str | Path | None) -> list[PeerPoint]:
    """Benchmark points from JSON: a list of {name, <metric>: value, ...} (or {"peers": [...]})."""

    if not path:
        return []
    rows = json.loads(Path(path).read_text())
    rows = rows.get("peers", rows) if isinstance(rows, dict) else rows
    return [PeerPoint(name=str(r["name"]), metrics={k: float(v) for k, v in r.items()
                                                    if k != "name" and isinstance(v, (int, float))})
            for r in rows if "name" in r and SIZE in r]


def gate_points(task: Any, evaluation: Evaluation, champion: ChampionReport | None,
                peers: Sequence[PeerPoint] = ()) -> list[dict[str, Any]]:
    """Plot points (name, kind, y = the task's primary metric, size, latency)."""
    keys = (task.primary_metric, SIZE, LATENCY)

    def point(name: str, kind: str, metrics: dict[str, float]) -> dict[str, Any]:
        return {"name": name, "kind": kind, **{k: float(metrics[k]) for k in keys if k in metrics}}

    points = [point("baseline", "baseline", evaluation.baseline), point("candidate", "candidate", evaluation.candidate)]
    if champion is not None and champion.metrics:
        points.append(point(f"champion v{champion.version}", "champion", champion.metrics))
    points += [point(p.name, "peer", p.metrics) for p in peers]
    return [p for p in points if task.primary_metric in p and SIZE in p]


def pareto_svg(points: Sequence[dict[str, Any]], title: str, y: str = "accuracy") -> str:
    """``y`` (a quality metric) vs size (x, log) with latency as marker area; returns SVG text."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on build machines or in steps
    import matplotlib.pyplot as plt

    # Text stays text in the SVG (searchable, selectable, smaller) instead of glyph outlines.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        return _draw(plt, points, title, y)


def _draw(plt: Any, points: Sequence[dict[str, Any]], title: str, y: str) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fastest = min((p.get("latency_ms", 1.0) for p in points), default=1.0) or 1.0
    for p in points:
        color, marker = KIND_STYLE.get(p.get("kind", "candidate"), ("tab:blue", "o"))
        area = 40 * min(p.get("latency_ms", fastest) / fastest, 10)
        ax.scatter(p[SIZE], p[y], s=area, c=color, marker=marker, alpha=0.75, edgecolors="black")
        ax.annotate(p["name"], (p[SIZE], p[y]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("model size (MB, log)")
    ax.set_ylabel(f"{y} (eval split)")
    ax.set_title(f"{title} — marker area ∝ latency (p50)", fontsize=9)
    ax.grid(alpha=0.3)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


class Markup(str):
    """A table cell that is already HTML (an inline SVG), inserted as it is."""


def _cell(value: Any) -> str:
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = ("<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.6em 0}"
         "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}"
         "table.examples td{text-align:left;max-width:28em}.note{color:#555;font-style:italic}"
         ".passed{color:#176c17}.failed{color:#b00}</style>")


def inline_svg(svg: str) -> str:
    """The <svg> element alone: the XML prologue matplotlib writes is invalid inside HTML."""
    return svg[svg.find("<svg"):]


def page(title: str, sections: Sequence[str]) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
            f"</head><body>{''.join(sections)}</body></html>")


def examples_html(evaluation: Evaluation) -> str:
    """The task's examples (e.g. prompts with both models' continuations) side by side."""
    if not evaluation.examples:
        return ""
    rows = [[e.input, e.baseline, e.candidate, "yes" if e.same else "no"] for e in evaluation.examples]
    return (f"<h3>{html.escape(evaluation.examples_title)}</h3>"
            + table(["input", "baseline", "candidate", "same"], rows, "examples"))


OUTCOME_COLOR = {"pass": "#176c17", "fail": "#b00", "inconclusive": "#c77800"}


def interval_svg(check: Check, width: int = 220, height: int = 22) -> Markup:
    """The check drawn on one axis: its interval as a bar, the estimate as a dot, the bound as a
    dashed line (a point estimate alone: the dot), coloured by outcome."""
    if check.value is None:
        return Markup("")
    ends = [v for v in (check.low, check.high) if v is not None and abs(v) != float("inf")]
    span = [check.value, check.limit, *ends]
    left, right = min(span), max(span)
    pad = (right - left) * 0.15 or abs(right) * 0.1 or 1.0
    left, right = left - pad, right + pad

    def x(value: float) -> float:
        return 6 + (width - 12) * (value - left) / (right - left)

    color, mid = OUTCOME_COLOR[check.result], height / 2
    bar = (f"<line x1='{x(ends[0]):.1f}' x2='{x(ends[-1]):.1f}' y1='{mid}' y2='{mid}' stroke='{color}' "
           f"stroke-width='4' stroke-linecap='round'/>") if len(ends) == 2 else ""
    title = html.escape(f"estimate {check.value:.4g}" + (f", interval [{ends[0]:.4g}, {ends[-1]:.4g}]" if bar else "")
                        + f", bound {check.limit:.4g}")
    return Markup(f"<svg class='interval' width='{width}' height='{height}' role='img'><title>{title}</title>"
                  f"<line x1='6' x2='{width - 6}' y1='{mid}' y2='{mid}' stroke='#ccc'/>{bar}"
                  f"<circle cx='{x(check.value):.1f}' cy='{mid}' r='3.5' fill='{color}'/>"
                  f"<line x1='{x(check.limit):.1f}' x2='{x(check.limit):.1f}' y1='2' y2='{height - 2}' "
                  f"stroke='black' stroke-dasharray='3,2'/></svg>")


def checks_rows(verdict: Verdict) -> list[list[Any]]:
    """One row per check: estimate, interval, bound, the interval drawn, what it means, result."""
    shown = {"pass": "pass", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}
    rows = []
    for c in verdict.checks:
        interval = f"[{c.low:.4g}, {c.high:.4g}] ({c.level:.0%}, {c.rows} rows)" \
            if c.low is not None and c.high is not None and c.level is not None else "-"
        note = c.note or (f"about {c.rows_needed:,} eval rows would resolve it" if c.rows_needed else "")
        rows.append([f"{c.metric}.{c.rule}", c.value, interval, c.limit, interval_svg(c), note, shown[c.result]])
    return rows


def runtimes_html(evaluation: Evaluation) -> str:
    """The runtime each model's speed figures were measured on (the one it ships to)."""
    if not evaluation.runtimes:
        return ""
    rows = [[name, label] for name, label in evaluation.runtimes.items()]
    return "<h3>speed measured on</h3>" + table(["model", "runtime (latency, tokens/s, peak memory)"], rows, "runtimes")


def notes_html(notes: Sequence[str]) -> str:
    return "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)


def gate_html(task: Any, evaluation: Evaluation, verdict: Verdict, champion: ChampionReport | None, svg: str,
              name: str = "candidate", notes: Sequence[str] = ()) -> str:
    """The gate's verdict, every number next to baseline (and champion), every check, the plot."""
    status = "passed" if verdict.passed else "failed"
    champ = (champion.metrics if champion is not None else None) or {}
    headers = ["metric", "baseline", "candidate", "candidate / baseline"]
    if champ:
        assert champion is not None
        headers += [f"champion v{champion.version}", "candidate (beside champion)"]
    rows = []
    for metric in [m.name for m in task.shown_metrics(evaluation.baseline)]:
        base, cand = evaluation.baseline.get(metric), evaluation.candidate.get(metric)
        if base is None or cand is None:
            continue
        row: list[Any] = [metric, base, cand, cand / base if base else None]
        if champ:
            row += [champ.get(metric), ((champion.candidate if champion else None) or {}).get(metric)]
        rows.append(row)
    checks = checks_rows(verdict)
    note = ""
    if champion is not None and champion.error:
        note = (f"<p class='failed'>champion v{champion.version} could not be measured: "
                f"{html.escape(champion.error)}</p>")
    return page(f"modelpress gate: {name}", [
        f"<h2>modelpress gate — {html.escape(name)}: <span class='{status}' id='verdict'>{status.upper()}</span></h2>",
        f"<p id='reason'>{html.escape(verdict.reason)}</p>", note, notes_html(notes),
        f"<h3>metrics (eval split, {evaluation.eval_rows} rows)</h3>", table(headers, rows, "metrics"),
        runtimes_html(evaluation),
        "<h3>checks</h3>", _inconclusive_html(verdict),
        table(["check", "estimate", "interval", "bound", "interval (bar), estimate (dot), bound (dashed)",
               "note", "result"], checks, "checks"),
        examples_html(evaluation),
        f"<h3>{task.primary_metric} vs size vs latency</h3>", f"<div class='plot'>{inline_svg(svg)}</div>",
    ])


def _inconclusive_html(verdict: Verdict) -> str:
    if not verdict.inconclusive:
        return ""
    did = {"fail": "counted as failed", "pass": "counted as passed", "warn": "counted as passed, with a warning"}
    return (f"<p class='note' id='inconclusive'>{len(verdict.inconclusive)} check(s) inconclusive (the interval "
            f"straddles the bound), {did[verdict.on_inconclusive or 'fail']} "
            f"(statistics.on_inconclusive: {verdict.on_inconclusive})</p>")


def render_gate(task: Any, evaluation: Evaluation, verdict: Verdict, champion: ChampionReport | None,
                peers: Sequence[PeerPoint] = (), name: str = "candidate",
                notes: Sequence[str] = ()) -> tuple[str, str]:
    """(HTML page, SVG plot) for one gated candidate; ``task`` is a Task (class or instance)."""
    svg = pareto_svg(gate_points(task, evaluation, champion, peers), name, task.primary_metric)
    return gate_html(task, evaluation, verdict, champion, svg, name, notes), svg
