"""The gate report: an HTML page (table + checks + Pareto plot) and the plot as SVG.

The same page is a ZenML dashboard visualization (an ``HTMLString`` artifact) and an MLflow
artifact; the SVG is inlined in the page and also logged on its own. The plot puts accuracy
against size, with latency as marker area, for baseline, candidate, champion, search
candidates and the peers measured by the benchmarks when the recipe names them.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLOT_KEYS = ("accuracy", "size_mb", "latency_ms")
TABLE_METRICS = ("accuracy", "f1", "agreement", "cosine", "size_mb", "latency_ms", "latency_p95_ms",
                 "peak_memory_mb")
KIND_STYLE = {"baseline": ("tab:gray", "s"), "candidate": ("tab:blue", "o"), "champion": ("tab:orange", "D"),
              "peer": ("tab:green", "^"), "search": ("tab:blue", "o"), "pareto": ("tab:red", "*")}


def load_peers(path: str | Path | None) -> list[dict[str, Any]]:
    """Benchmark points from JSON: a list of {name, accuracy, size_mb, latency_ms}."""
    if not path:
        return []
    rows = json.loads(Path(path).read_text())
    rows = rows.get("peers", rows) if isinstance(rows, dict) else rows
    return [{"name": str(r["name"]), **{k: float(r[k]) for k in PLOT_KEYS if k in r}, "kind": "peer"}
            for r in rows if all(k in r for k in ("name", "accuracy", "size_mb"))]


def gate_points(evaluation: dict[str, dict[str, float]], champion: dict[str, Any] | None,
                peers: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    points = [{"name": "baseline", "kind": "baseline", **_pick(evaluation["baseline"])},
              {"name": "candidate", "kind": "candidate", **_pick(evaluation["candidate"])}]
    if champion and champion.get("metrics"):
        points.append({"name": f"champion v{champion['version']}", "kind": "champion", **_pick(champion["metrics"])})
    return points + [dict(p) for p in peers]


def _pick(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in PLOT_KEYS if k in metrics}


def pareto_svg(points: Sequence[dict[str, Any]], title: str) -> str:
    """Accuracy (y) vs size (x, log) with latency as marker area; returns SVG text."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on build machines or in steps
    import matplotlib.pyplot as plt

    # Text stays text in the SVG (searchable, selectable, smaller) instead of glyph outlines.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        return _draw(plt, points, title)


def _draw(plt: Any, points: Sequence[dict[str, Any]], title: str) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fastest = min((p.get("latency_ms", 1.0) for p in points), default=1.0) or 1.0
    for p in points:
        color, marker = KIND_STYLE.get(p.get("kind", "candidate"), ("tab:blue", "o"))
        area = 40 * min(p.get("latency_ms", fastest) / fastest, 10)
        ax.scatter(p["size_mb"], p["accuracy"], s=area, c=color, marker=marker, alpha=0.75, edgecolors="black")
        ax.annotate(p["name"], (p["size_mb"], p["accuracy"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("model size (MB, log)")
    ax.set_ylabel("accuracy (eval split)")
    ax.set_title(f"{title} — marker area ∝ latency (p50)", fontsize=9)
    ax.grid(alpha=0.3)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = ("<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.6em 0}"
         "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}"
         ".passed{color:#176c17}.failed{color:#b00}</style>")


def inline_svg(svg: str) -> str:
    """The <svg> element alone: the XML prologue matplotlib writes is invalid inside HTML."""
    return svg[svg.find("<svg"):]


def page(title: str, sections: Sequence[str]) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
            f"</head><body>{''.join(sections)}</body></html>")


def gate_html(evaluation: dict[str, dict[str, float]], verdict: dict[str, Any],
              champion: dict[str, Any] | None, svg: str, name: str = "candidate") -> str:
    """The gate's verdict, every number next to baseline (and champion), every check, the plot."""
    status = "passed" if verdict["passed"] else "failed"
    champ = (champion or {}).get("metrics") or {}
    headers = ["metric", "baseline", "candidate", "candidate / baseline"]
    if champ:
        headers += [f"champion v{champion['version']}", "candidate (beside champion)"]
    rows = []
    for metric in TABLE_METRICS:
        base, cand = evaluation["baseline"].get(metric), evaluation["candidate"].get(metric)
        if base is None or cand is None:
            continue
        row: list[Any] = [metric, base, cand, cand / base if base else None]
        if champ:
            row += [champ.get(metric), champion["candidate"].get(metric)]
        rows.append(row)
    checks = [[f"{c['metric']}.{c['rule']}", c["value"], c["limit"],
               c.get("note") or ("pass" if c["passed"] else "FAIL")] for c in verdict["checks"]]
    note = ""
    if champion and champion.get("error"):
        note = f"<p class='failed'>champion v{champion['version']} could not be measured: {html.escape(champion['error'])}</p>"
    return page(f"modelpress gate: {name}", [
        f"<h2>modelpress gate — {html.escape(name)}: <span class='{status}' id='verdict'>{status.upper()}</span></h2>",
        f"<p id='reason'>{html.escape(verdict['reason'])}</p>", note,
        "<h3>metrics (eval split, ONNX Runtime)</h3>", table(headers, rows, "metrics"),
        "<h3>checks</h3>", table(["check", "value", "limit", "result"], checks, "checks"),
        "<h3>accuracy vs size vs latency</h3>", f"<div class='plot'>{inline_svg(svg)}</div>",
    ])


def render_gate(evaluation: dict[str, dict[str, float]], verdict: dict[str, Any],
                champion: dict[str, Any] | None, peers: Sequence[dict[str, Any]] = (),
                name: str = "candidate") -> tuple[str, str]:
    """(HTML page, SVG plot) for one gated candidate."""
    svg = pareto_svg(gate_points(evaluation, champion, peers), name)
    return gate_html(evaluation, verdict, champion, svg, name), svg
