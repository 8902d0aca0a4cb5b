"""`modelpress stages`: what a recipe author reads to learn each stage's fields."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from modelpress.cli.main import main


def test_stages_lists_nested_options_with_defaults_and_descriptions():
    result = CliRunner().invoke(main, ["stages"])
    assert result.exit_code == 0, result.output
    section = result.output.split("weight-quantize [module]")[1].split("\n\n")[0]
    lines = section.splitlines()
    assert "    gptq: GPTQ or null (default None)" in lines
    assert any(line.startswith("        act_order: bool (default True) — quantize the most active") for line in lines)
    assert "    exclude: list[str] (default [])" in lines
    assert "    calibration: Calibration (defaults below)" in lines
    assert "    weight_range: one of minmax, mse or null (default None)" in lines


def test_tasks_and_builds_point_to_the_support_matrix():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert re.search(r"^## Support matrix", readme, re.MULTILINE)
    for command in ("tasks", "builds"):
        result = CliRunner().invoke(main, [command])
        assert result.exit_code == 0, result.output
        assert result.output.rstrip().endswith("the support matrix in the README (generated from the tests: "
                                               "tests/support_matrix.py).")
