"""The accuracy gate: compare candidate metrics with the recipe's thresholds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .recipe import Threshold

# rule → (how the checked value is derived from (candidate, baseline), whether it is an upper bound)
RULES: dict[str, tuple[Callable[[float, float], float], bool]] = {
    "min": (lambda cand, base: cand, False),
    "max": (lambda cand, base: cand, True),
    "max_drop": (lambda cand, base: base - cand, True),
    "max_relative_drop": (lambda cand, base: (base - cand) / base if base else 0.0, True),
    "max_ratio": (lambda cand, base: cand / base if base else float("inf"), True),
}


@dataclass(frozen=True)
class Check:
    metric: str
    rule: str
    limit: float
    value: float
    passed: bool

    def describe(self) -> str:
        sign = "≤" if RULES[self.rule][1] else "≥"
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.metric}.{self.rule}: {self.value:.4g} {sign} {self.limit:.4g} {verdict}"


def run_gate(thresholds: dict[str, "Threshold"], report: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Every configured check with its value; ``passed`` only if all pass (JSON-able)."""
    checks = []
    for metric, threshold in thresholds.items():
        cand, base = report["candidate"][metric], report["baseline"][metric]
        for rule, limit in threshold.model_dump(exclude_none=True).items():
            derive, upper = RULES[rule]
            value = derive(cand, base)
            checks.append(Check(metric, rule, limit, value, value <= limit if upper else value >= limit))
    failed = [c.describe() for c in checks if not c.passed]
    return {"passed": not failed, "checks": [asdict(c) for c in checks],
            "reason": "; ".join(failed) if failed else "all checks passed"}
