"""Hostile and sloppy recipes: every number of every shipped recipe swapped for a boolean,
inf or nan must be refused at its field path; a seeded fuzz of broken recipes must end in a
RecipeError (never another exception); YAML that builds objects, explodes through aliases,
nests too deep or is too large is refused before it is built."""

from __future__ import annotations

import copy
import math
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpress.core.errors import RecipeError
from modelpress.core.safe_yaml import MAX_BYTES, MAX_DEPTH, load_plain
from modelpress.recipe.schema import load_recipe, shipped_recipes, validate_recipe

SHIPPED = {name: yaml.safe_load(path.read_text()) for name, path in sorted(shipped_recipes().items())}
BASE = SHIPPED["mnist-cnn"]


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def replaced(raw: dict, path: tuple, new: Any) -> dict:
    out = copy.deepcopy(raw)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


def field_path(path: tuple) -> str:
    """The path as RecipeError names it: stages[0].prune.sparsity."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problems(raw: dict) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        validate_recipe(raw)
    return caught.value.problems


NUMBERS = [(name, path) for name, raw in SHIPPED.items() for path, value in leaves(raw)
           if isinstance(value, (int, float)) and not isinstance(value, bool)]


@pytest.mark.parametrize("accident", [True, False, math.inf, -math.inf, math.nan], ids=str)
def test_no_number_in_a_shipped_recipe_takes_a_boolean_inf_or_nan(accident: Any) -> None:
    assert len(NUMBERS) > 30
    missed = []
    for name, path in NUMBERS:
        found = problems(replaced(SHIPPED[name], path, accident))
        # an item of a list of values (a search grid's) may be named by the list's path
        named = {field_path(path), field_path(path[:-1]) if isinstance(path[-1], int) else field_path(path)}
        if not any(p.startswith(f"{where}:") for p in found for where in named):
            missed.append((name, field_path(path), found))
    assert not missed, missed[:5]


@pytest.mark.parametrize(("path", "value", "message"), [
    (("gate", "accuracy", "max_drop"), True, "gate.accuracy.max_drop: true is a boolean, not a number"),
    (("data", "seed"), True, "data.seed: true is a boolean, not a number"),
    (("data", "split", "train"), math.inf, "data.split.train: inf is not a finite number"),
    (("stages", 0, "prune", "sparsity"), math.nan, "stages[0].prune.sparsity: nan is not a finite number"),
])
def test_the_cases_the_issue_names(path: tuple, value: Any, message: str) -> None:
    assert message in problems(replaced(BASE, path, value))


def test_a_nested_option_block_is_checked_too() -> None:
    raw = replaced(BASE, ("stages", 0, "prune"), {"sparsity": 0.5, "recovery": {"epochs": 1, "max_rows": True}})
    assert any(p.startswith("stages[0].prune.recovery.max_rows:") and "boolean" in p for p in problems(raw))


def test_a_gate_bound_set_to_null_bounds_nothing_and_is_refused() -> None:
    [problem] = problems(replaced(BASE, ("gate", "accuracy"), {"max_drop": None}))
    assert problem.startswith("gate.accuracy:") and "needs at least one of" in problem


def test_true_false_still_work_where_a_boolean_is_meant() -> None:
    raw = replaced(BASE, ("stages", 1, "quantize", "symmetric"), False)
    assert validate_recipe(raw).stages[1].config.symmetric is False


JUNK = [None, True, -1, 0, 10 ** 30, 1e308, math.nan, "", "x" * 5000, [], {}, [None], {"a": {"b": []}},
        "stages", ["onnx", 7]]


def test_fuzz_of_broken_recipes_only_ever_raises_recipe_errors() -> None:
    rng = random.Random(0)
    names, refused, errors = sorted(SHIPPED), 0, []
    for _ in range(400):
        raw = copy.deepcopy(SHIPPED[rng.choice(names)])
        for _ in range(rng.randint(1, 3)):
            path, _ = rng.choice(list(leaves(raw)))
            if rng.random() < 0.2 and len(path) > 1:  # drop a key or an item instead
                parent = raw
                for key in path[:-2]:
                    parent = parent[key]
                parent[path[-2]] = rng.choice(JUNK)
            else:
                raw = replaced(raw, path, rng.choice(JUNK))
        try:
            validate_recipe(raw)
        except RecipeError as exc:
            refused += 1
            if not exc.problems or any(not p.strip() or "Traceback" in p for p in exc.problems):
                errors.append(exc.problems)
        except Exception as exc:  # noqa: BLE001 -- the point: nothing but RecipeError escapes
            errors.append(f"{type(exc).__name__}: {exc}")
    assert not errors, errors[:5]
    assert refused > 350  # nearly every mutation breaks the recipe


def write(tmp_path: Path, text: str | bytes, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['echo owned']", "!!python/name:os.system",
                                 "!!python/object:collections.OrderedDict {}", "!!binary aGVsbG8=",
                                 "!!set {a, b}", "!custom thing", "!!timestamp 2024-01-01"])
def test_tags_that_build_objects_are_refused(tmp_path: Path, tag: str) -> None:
    path = write(tmp_path, f"name: {tag}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    [problem] = caught.value.problems
    assert problem.startswith("refused: line 1: tag ") and "not allowed" in problem


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10**9 leaves
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, "\n".join(lines)))
    assert "expands to more than" in caught.value.problems[0]


RECURSIVE = {  # an alias inside its own anchor: the composed graph has a cycle; (text, the anchor's line)
    "sequence": ("name: x\nmodel: &a [*a]\n", 2),  # the two-line recipe that used to hang validate
    "mapping": ("name: x\nmodel: &m\n  source: package\n  again: *m\n", 2),
    "nested": ("name: x\ndata:\n  source: digits\n  split: &s\n    train: [0.8, {deeper: [*s]}]\n", 4),
    "inner anchor": ("name: x\nstages:\n  - quantize: {bits: 8}\n  - prune: &p {then: [1, &q [*p]]}\n", 4),
    "merge key": ("name: x\nbase: &b {x: 1, <<: *b}\n", 2),
}


@pytest.mark.parametrize("kind", RECURSIVE)
def test_a_recursive_alias_is_refused_by_validate_in_one_line(tmp_path: Path, modelpress_cli: str, kind: str) -> None:
    text, line = RECURSIVE[kind]
    path = write(tmp_path, text)
    # the timeout only stops a hang (what this recipe did: validate ran for ever at 100 % CPU)
    done = subprocess.run([modelpress_cli, "validate", str(path)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in output, output  # 2: a recipe error
    assert f"{path}: 1 problem(s)" in output, output
    [problem] = [row.strip() for row in output.splitlines() if "recursive alias" in row]
    assert problem.startswith(f"refused: line {line}: an alias refers to a value that contains it"), output


def test_an_alias_used_twice_without_recursion_still_loads() -> None:
    assert load_plain("a: &a [1, {b: 2}]\nc: [*a, *a]\nd: {<<: {e: 3}, f: *a}\n") == {
        "a": [1, {"b": 2}], "c": [[1, {"b": 2}], [1, {"b": 2}]], "d": {"e": 3, "f": [1, {"b": 2}]}}


def test_deep_nesting_and_huge_files_are_refused(tmp_path: Path) -> None:
    deep = "name:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * 40 + "x: 1\n"
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, deep))
    assert f"nested deeper than {MAX_DEPTH}" in caught.value.problems[0]
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, b"[" * 200_000 + b"]" * 200_000, "flow.yaml"))
    assert caught.value.problems[0].startswith(("refused:", "not valid YAML:"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, b"name: " + b"x" * (MAX_BYTES + 1), "huge.yaml"))
    assert caught.value.problems[0].startswith("refused:") and "bytes" in caught.value.problems[0]


def test_duplicate_keys_are_refused_and_plain_values_stay_plain() -> None:
    with pytest.raises(ValueError, match="key 'name' is given twice"):
        load_plain("name: a\nname: b\n")
    assert load_plain("when: 2024-01-01\nbase: &b {x: 1}\nmerged: {<<: *b, y: 2}\n") == {
        "when": "2024-01-01", "base": {"x": 1}, "merged": {"x": 1, "y": 2}}
