"""Recipe search: a grid over stage parameters, expanded into ordinary recipes.

```yaml
search:
  objective: size_mb                 # minimised among candidates that pass the gate
  grid:
    prune.sparsity: [0.3, 0.5, 0.7]  # <stage>.<param>, or stages[i].<stage>.<param>
    quantize.enabled: [true, false]  # `enabled` switches a whole stage on or off
```
Every path is checked at recipe load against the stage's own config class, and every value
is validated by it, so a typo or an out-of-range value fails before anything runs. Pure and
cheap to import (the recipe loader uses it); running candidates lives in
``modelpress.pipelines.search``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelpress.core.handoffs import Samples
from modelpress.core.intervals import paired_interval
from modelpress.core.strict_fields import StrictModel
from modelpress.settings.blocks import Statistics

PATH = re.compile(r"^(?:stages\[(?P<index>\d+)\]\.)?(?P<stage>[A-Za-z_][\w-]*)"
                  r"\.(?P<param>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
ENABLED = "enabled"


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    grid: dict[str, list[Any]] = Field(min_length=1)
    # Objectives are the task's "smaller is better" metrics; quality is what the gate guarantees.
    objective: str = Field("size_mb", description="minimised: one of the task's lower-is-better metrics")
    max_candidates: int = Field(32, ge=1, le=512)


@dataclass(frozen=True)
class Candidate:
    label: str               # "prune.sparsity=0.5, quantize.enabled=false"
    params: dict[str, Any]   # grid path → chosen value
    recipe: dict[str, Any]   # a plain recipe (no search block) ready for validate_recipe


def resolve_path(path: str, stages: Sequence[Any]) -> tuple[int, str, list[str]]:
    """(stage index, stage name, parameter path) for a grid key; ValueError says what is wrong."""
    match = PATH.match(path)
    if not match:
        raise ValueError("expected '<stage>.<param>' or 'stages[<i>].<stage>.<param>'")
    stage, param = match["stage"], match["param"].split(".")
    names = [s.name for s in stages]
    if match["index"] is not None:
        index = int(match["index"])
        if index >= len(stages):
            raise ValueError(f"the recipe has {len(stages)} stage(s) (stages[0]..stages[{len(stages) - 1}])")
        if names[index] != stage:
            raise ValueError(f"stages[{index}] is {names[index]!r}, not {stage!r}")
        return index, stage, param
    hits = [i for i, name in enumerate(names) if name == stage]
    if not hits:
        raise ValueError(f"no {stage!r} stage in the recipe; stages: {', '.join(names)}")
    if len(hits) > 1:
        raise ValueError(f"{stage!r} appears {len(hits)} times; say which: "
                         + ", ".join(f"stages[{i}].{stage}.{'.'.join(param)}" for i in hits))
    return hits[0], stage, param


def objectives(task: Any) -> list[str]:
    """The metrics of ``task`` (a Task class) a search may minimise."""
    return [m.name for m in task.metrics if not m.higher_is_better]


def search_problems(search: SearchSpec, stages: Sequence[Any], task: Any) -> list[str]:
    """Every problem in ``search`` against the recipe's stages and task, each with its field path."""
    problems = []
    if search.objective not in objectives(task):
        problems.append(f"search.objective: {search.objective!r} is not a metric to minimise; "
                        f"use one of {', '.join(objectives(task))}")
    for path, values in search.grid.items():
        where = f"search.grid.{path}"
        try:
            index, stage, param = resolve_path(path, stages)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not values:
            problems.append(f"{where}: give at least one value")
        problems += [f"{where}: {p}" for p in _value_problems(stages[index].config, stage, param, values)]
    count = candidate_count(search)
    if count > search.max_candidates:
        problems.append(f"search.grid: {count} candidates exceed search.max_candidates ({search.max_candidates})")
    return problems


def _value_problems(config: BaseModel, stage: str, param: list[str], values: list[Any]) -> list[str]:
    if param == [ENABLED]:
        return [f"[{i}] {v!r}: 'enabled' takes true or false" for i, v in enumerate(values)
                if not isinstance(v, bool)]
    fields = type(config).model_fields
    if param[0] not in fields:
        return [f"stage {stage!r} has no parameter {param[0]!r}; it has: {', '.join(fields)}"]
    if len(param) > 1 and not _is_block(fields[param[0]].annotation):
        return [f"{'.'.join(param)} is not a nested parameter"]
    # What the recipe wrote (and what that implies), as ``expand`` builds each candidate from it:
    # a group_size grid on a stage that names no granularity means per-group here too. A value
    # that makes a written field moot is fine (algorithm: [rtn, gptq] beside calibration.samples);
    # a grid value that itself has no effect would only repeat a candidate.
    written = config.model_dump(mode="json", exclude_unset=True)
    problems = []
    for i, value in enumerate(values):
        try:
            candidate = type(config).model_validate(_with(written, param, value))
            moot = candidate.ignored_fields().get(".".join(param)) if isinstance(candidate, StrictModel) else None
            if moot:
                problems.append(f"[{i}] {value!r}: has no effect: {moot}")
        except ValidationError as exc:
            detail = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False))
            problems.append(f"[{i}] {value!r}: {detail}")
        except (KeyError, TypeError):
            problems.append(f"[{i}] {value!r}: {'.'.join(param)} is not a nested parameter")
    return problems


def _is_block(annotation: Any) -> bool:
    """Whether a field holds a nested block of options (a model, or a model or None)."""
    members = get_args(annotation) or (annotation,)
    return any(isinstance(m, type) and issubclass(m, BaseModel) for m in members)


def _with(config: dict[str, Any], param: list[str], value: Any) -> dict[str, Any]:
    """A copy of ``config`` with the (possibly nested) ``param`` set to ``value``; a block the
    recipe did not write starts from its defaults."""
    out = dict(config)
    if len(param) == 1:
        out[param[0]] = value
    else:
        inner = out.get(param[0], {})
        if not isinstance(inner, dict):
            raise TypeError(param[0])
        out[param[0]] = _with(inner, param[1:], value)
    return out


def candidate_count(search: SearchSpec) -> int:
    count = 1
    for values in search.grid.values():
        count *= max(len(values), 1)
    return count


def expand(recipe: dict[str, Any], stages: Sequence[Any], search: SearchSpec) -> list[Candidate]:
    """Every distinct grid point as a plain recipe dict; points that apply no technique (or
    repeat another because they only differ in a disabled stage's values) are dropped."""
    import json

    paths = list(search.grid)
    candidates, seen = [], set()
    for values in itertools.product(*(search.grid[p] for p in paths)):
        params = dict(zip(paths, values))
        entries = [dict(entry) for entry in recipe["stages"]]
        enabled = [True] * len(entries)
        for path, value in params.items():
            index, stage, param = resolve_path(path, stages)
            if param == [ENABLED]:
                enabled[index] = bool(value)
            else:
                entries[index] = {stage: _with(entries[index][stage], param, value)}
        kept = [e for e, on in zip(entries, enabled) if on]
        label = ", ".join(f"{p}={_short(v)}" for p, v in params.items())
        body = {k: v for k, v in recipe.items() if k != "search"}
        candidate = Candidate(label, params, {**body, "stages": kept})
        key = json.dumps(kept, sort_keys=True)  # a disabled stage's other values give duplicates
        if techniques(candidate) and key not in seen:  # no technique at all is just the baseline
            seen.add(key)
            candidates.append(candidate)
    return candidates


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def techniques(candidate: Candidate) -> list[str]:
    """The stage names a candidate applies (a prune stage with sparsity 0 does nothing)."""
    names = []
    for entry in candidate.recipe["stages"]:
        [(name, config)] = entry.items()
        if name == "prune" and float(config.get("sparsity", 1)) == 0.0:
            continue
        names.append(name)
    return names


def pareto(rows: Sequence[dict[str, Any]], keys: Sequence[tuple[str, bool]]) -> list[int]:
    """Indices of rows no other row dominates; ``keys`` are (metric, higher_is_better)."""

    def at_least_as_good(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return all((a[k] >= b[k]) if up else (a[k] <= b[k]) for k, up in keys)

    def strictly_better(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return any((a[k] > b[k]) if up else (a[k] < b[k]) for k, up in keys)

    return [i for i, row in enumerate(rows)
            if not any(at_least_as_good(other, row) and strictly_better(other, row)
                       for j, other in enumerate(rows) if j != i)]


def best_candidate(rows: Sequence[dict[str, Any]], samples: dict[int, dict[str, Samples]], objective: str,
                   primary: str, higher_is_better: bool, statistics: Statistics) -> dict[str, Any] | None:
    """The passing candidate to promote: the smallest on ``objective`` (then size, then latency),
    displaced only by a candidate tied with it on ``objective`` that is *clearly* better on
    ``primary``. Clearly and tied are the paired intervals' word where the rows kept samples
    (``samples[row index]``, the per-row values of each candidate on the same eval rows), so a
    quality difference within noise is a tie, and ties go to the smaller or faster model."""
    if not rows:
        return None
    order = sorted(rows, key=lambda r: (r[objective], r.get("size_mb", 0.0), r.get("latency_ms", 0.0)))
    best = order[0]
    for row in order[1:]:
        if _tied(row, best, objective, samples, statistics) and \
                _clearly_better(row, best, primary, higher_is_better, samples, statistics):
            best = row
    return best


def _interval(samples: Samples, derive: Any, statistics: Statistics) -> tuple[float, float]:
    found = paired_interval(samples, derive, statistics.level, statistics.resamples, statistics.seed)
    return found.low, found.high


def _tied(a: dict[str, Any], b: dict[str, Any], objective: str, samples: dict[int, dict[str, Samples]],
          statistics: Statistics) -> bool:
    """Equal on ``objective``; for a timed one (latency, each run against its own baseline's
    interleaved rounds) equal means overlapping ratio intervals."""
    timed = [samples.get(r["index"], {}).get(objective) for r in (a, b)]
    if statistics.method == "none" or timed[0] is None or timed[1] is None:
        return bool(a[objective] == b[objective])
    (low_a, high_a), (low_b, high_b) = (_interval(s, lambda c, base: c / base, statistics) for s in timed if s)
    return low_a <= high_b and low_b <= high_a


def _clearly_better(a: dict[str, Any], b: dict[str, Any], primary: str, higher_is_better: bool,
                    samples: dict[int, dict[str, Samples]], statistics: Statistics) -> bool:
    """``a`` better than ``b`` on ``primary``: by the paired interval of a − b on the rows both
    were scored on (a's values as the candidate, b's as the baseline), else on the point values."""
    rows_a, rows_b = (samples.get(r["index"], {}).get(primary) for r in (a, b))
    if statistics.method == "none" or rows_a is None or rows_b is None \
            or len(rows_a.candidate) != len(rows_b.candidate):
        return bool(a[primary] > b[primary]) if higher_is_better else bool(a[primary] < b[primary])
    pair = Samples(statistic=rows_a.statistic, baseline=rows_b.candidate, candidate=rows_a.candidate,
                   weights=rows_a.weights, labels=rows_a.labels)
    low, high = _interval(pair, lambda c, base: c - base, statistics)
    return low > 0 if higher_is_better else high < 0
