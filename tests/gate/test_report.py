"""The gate report's HTML structure and its plot (parsed, not eyeballed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from modelpress.core.handoffs import ChampionReport, Evaluation
from modelpress.gate.report import load_peers, render_gate
from modelpress.gate.rules import run_gate
from modelpress.gate.summary import runtime_lines
from modelpress.settings.blocks import Threshold
from modelpress.tasks import get_task

EVALUATION = Evaluation(
    task="image-classification", eval_rows=300,
    baseline={"accuracy": 0.95, "f1": 0.95, "size_mb": 0.43, "latency_ms": 0.6, "peak_memory_mb": 9.0},
    candidate={"accuracy": 0.94, "f1": 0.94, "agreement": 0.98, "size_mb": 0.12, "latency_ms": 0.5,
               "peak_memory_mb": 6.0})
CHAMPION = ChampionReport(version="4", metrics={"accuracy": 0.945, "size_mb": 0.2, "latency_ms": 0.55},
                          candidate={"accuracy": 0.94, "size_mb": 0.12, "latency_ms": 0.52})


class Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.ids: dict[str, str] = {}
        self.svg_elements = 0
        self._table: str | None = None
        self._id: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("class", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("path", "use", "text", "g") and "svg" in self.stack:
            self.svg_elements += 1
        if "id" in attributes:
            self._id = attributes["id"]
            self.ids[self._id] = ""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop() != tag:
            pass
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._table is not None and self.stack and self.stack[-1] in ("td", "th"):
            self.tables[self._table][-1].append(data)
        if self._id is not None and data.strip():
            self.ids[self._id] += data


def test_gate_report_has_verdict_tables_and_an_svg_plot(tmp_path: Path) -> None:
    peers_file = tmp_path / "peers.json"
    peers_file.write_text(json.dumps([{"name": "torch.ao int8", "accuracy": 0.93, "size_mb": 0.15, "latency_ms": 0.9}]))
    verdict = run_gate({"accuracy": Threshold(max_drop=0.02, max_champion_drop=0.001),
                        "size_mb": Threshold(max_ratio=0.5)}, EVALUATION, CHAMPION)
    page, svg = render_gate(get_task("image-classification"), EVALUATION, verdict, CHAMPION, load_peers(peers_file),
                            "mnist-cnn")

    parsed = Structure()
    parsed.feed(page)
    assert page.startswith("<!DOCTYPE html>") and parsed.ids["verdict"] == "FAILED"
    assert "accuracy.max_champion_drop" in parsed.ids["reason"]
    metrics = {row[0]: row for row in parsed.tables["metrics"][1:]}
    assert metrics["size_mb"][1:4] == ["0.43", "0.12", "0.2791"]  # baseline, candidate, ratio
    assert metrics["accuracy"][4] == "0.945"  # champion column
    checks = {row[0]: row[-1] for row in parsed.tables["checks"][1:]}
    assert checks == {"accuracy.max_drop": "pass", "accuracy.max_champion_drop": "FAIL", "size_mb.max_ratio": "pass"}
    assert parsed.svg_elements > 20  # axes, markers and labels were drawn inline

    root = ET.fromstring(svg.encode())  # the logged plot file is well-formed SVG
    assert root.tag.endswith("svg")
    labels = "".join(root.itertext()) + svg
    for name in ("baseline", "candidate", "champion v4", "torch.ao int8"):
        assert name in labels or name.replace(" ", "") in labels


def test_the_report_and_the_summary_name_the_runtime_of_each_speed_figure() -> None:
    runtimes = {"baseline": "PyTorch float32 on CPU",
                "candidate": "PyTorch bfloat16 on CPU, int4 CPU kernel (_weight_int4pack_mm_for_cpu)"}
    evaluation = EVALUATION.model_copy(update={"task": "causal-lm", "runtimes": runtimes,
                                               "baseline": {**EVALUATION.baseline, "perplexity": 10.0},
                                               "candidate": {**EVALUATION.candidate, "perplexity": 10.5}})
    verdict = run_gate({"perplexity": Threshold(max_ratio=1.1)}, evaluation, None)
    page, _ = render_gate(get_task("causal-lm"), evaluation, verdict, None, (), "smollm2")
    parsed = Structure()
    parsed.feed(page)
    assert parsed.tables["runtimes"][1:] == [[name, label] for name, label in runtimes.items()]
    assert runtime_lines(evaluation) == [f"speed measured on ({name}): {label}" for name, label in runtimes.items()]
    same = EVALUATION.model_copy(update={"runtimes": {"baseline": "ONNX Runtime", "candidate": "ONNX Runtime"}})
    assert runtime_lines(same) == ["speed measured on: ONNX Runtime (both)"]
