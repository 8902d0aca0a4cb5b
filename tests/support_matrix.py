"""The support matrix in the README, generated from the tests that back each cell.

A test backs a cell with ``@pytest.mark.support(family, column)`` (``column``: a stage or a build
name) and must prove it: a ✓ test runs the stage or build on a tiny model of that family (random
init of the real config class) and checks the result with its consumer; a test marked
``refused="why"`` shows that ``modelpress validate`` refuses the combination with that reason,
``untested="why"`` marks a cell this CI cannot run (TensorRT needs a GPU), and ``note="…"`` adds
what a ✓ is limited to (e.g. which consumer could check it). CI runs every test, so
a cell's mark holds exactly when its test exists.

``pytest --support-matrix PATH`` writes every collected mark to PATH (JSON) at collection time;
``scripts/support_matrix.py`` renders it into the README between the markers below, and
``tests/test_support_matrix.py`` fails when the README and the marks differ or a cell has no test.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

MARKER = "support"
README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- support-matrix:start -->", "<!-- support-matrix:end -->"

#: the rows: (key used in marks, label in the README)
FAMILIES = (
    ("mlp", "tabular MLP, `forward(self, x)`"),
    ("cnn", "CNN, `forward(self, x)` (torchvision-style)"),
    ("bert", "BERT"),
    ("roberta", "RoBERTa"),
    ("distilbert", "DistilBERT"),
    ("vit", "ViT"),
    ("convnext", "ConvNeXt"),
    ("llama", "Llama"),
    ("qwen2", "Qwen2"),
    ("qwen3", "Qwen3"),
    ("mistral", "Mistral"),
    ("phi3", "Phi-3"),
    ("gemma2", "Gemma 2"),
    ("mixtral", "Mixtral (MoE)"),
)
#: the columns, in README order: every registered stage, then every registered build
STAGES = ("prune", "lowrank", "distill", "finetune", "weight-quantize", "quantize")
BUILDS = ("onnx", "triton-repository", "tensorrt", "pytorch", "huggingface", "compressed-tensors", "gptq",
          "gguf", "onnxruntime-genai")


@dataclass(frozen=True)
class Cell:
    family: str
    column: str
    test: str  # the test's node id
    refused: str | None = None
    untested: str | None = None
    note: str | None = None


def cells_of(items: list[pytest.Item]) -> list[Cell]:
    cells = []
    for item in items:
        for mark in item.iter_markers(MARKER):
            family, column = mark.args
            cells.append(Cell(family, column, item.nodeid, **{k: mark.kwargs.get(k)
                                                              for k in ("refused", "untested", "note")}))
    return cells


def render(cells: list[Cell]) -> str:
    """The README table: ✓ (runs and is checked; ✓ⁿ with a limit), ✗ⁿ (refused at validate, reason
    n), ○ⁿ (not run here)."""
    by_cell: dict[tuple[str, str], Cell] = {}
    for cell in sorted(cells, key=lambda c: (c.refused is not None, c.untested is not None, c.test)):
        by_cell.setdefault((cell.family, cell.column), cell)  # a passing test outranks a refusal
    notes: list[str] = []

    def mark(cell: Cell | None) -> str:
        if cell is None:
            return "?"
        why = cell.refused or cell.untested or cell.note
        if why is None:
            return "✓"
        if why not in notes:
            notes.append(why)
        return f"{'✗' if cell.refused else '○' if cell.untested else '✓'}{notes.index(why) + 1}"

    columns = STAGES + BUILDS
    lines = ["| model | " + " | ".join(f"`{c}`" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for key, label in FAMILIES:
        lines.append(f"| {label} | " + " | ".join(mark(by_cell.get((key, c))) for c in columns) + " |")
    lines.append("")
    lines += [f"{i}. {why}" for i, why in enumerate(notes, start=1)]
    return "\n".join(lines)


def missing(cells: list[Cell]) -> list[str]:
    have = {(c.family, c.column) for c in cells}
    return [f"{family} × {column}" for family, _ in FAMILIES for column in STAGES + BUILDS
            if (family, column) not in have]


def readme_section(text: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip("\n")


def with_section(text: str, table: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[:start] + "\n" + table + "\n" + text[end:]


# --- the pytest plugin (tests/conftest.py exposes these) --------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--support-matrix", default=None, metavar="PATH",
                     help="write the support-matrix marks of the collected tests to PATH (JSON)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(family, column, refused=None, untested=None, note=None): "
                                       "the README support-matrix cell this test backs")


def pytest_collection_finish(session: pytest.Session) -> None:
    path = session.config.getoption("--support-matrix")
    if path:
        Path(path).write_text(json.dumps([asdict(c) for c in cells_of(session.items)], indent=1))
