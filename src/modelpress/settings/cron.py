"""Cron expressions as ``schedule: {cron}`` takes them: five fields, checked before anything runs."""

from __future__ import annotations

# 5-field cron as Kubernetes CronJobs (robfig/cron) read it: ranges per field, names for
# months and weekdays, steps, lists; '?' means '*' in the day fields.
CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
               ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
               ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")))


def cron_problems(expression: str) -> list[str]:
    """What is wrong with a 5-field cron expression (empty if it is valid)."""
    fields = expression.split()
    if len(fields) != 5:
        return [f"{expression!r} has {len(fields)} fields; cron needs 5 (minute hour day-of-month month day-of-week)"]
    problems = []
    for text, (label, low, high, names) in zip(fields, CRON_FIELDS):
        for item in text.split(","):
            problem = _cron_item_problem(item, label, low, high, names)
            if problem:
                problems.append(problem)
    return problems


def _cron_item_problem(item: str, label: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    body, _, step = item.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return f"{label}: step {step!r} in {item!r} is not a positive number"
    if body in ("*", "?") and (body == "*" or label.startswith("day")):
        return None
    bounds = body.split("-")
    if len(bounds) > 2 or not all(bounds):
        return f"{label}: {item!r} is not a value, a range a-b or *"
    values = []
    for bound in bounds:
        if bound.upper() in names:
            values.append(names.index(bound.upper()) + (1 if label == "month" else 0))
        elif bound.isdigit():
            values.append(int(bound))
        else:
            return f"{label}: {bound!r} is not a number" + (f" or one of {', '.join(names)}" if names else "")
    if not all(low <= v <= high for v in values):
        return f"{label}: {item!r} is outside {low}-{high}"
    if len(values) == 2 and values[0] > values[1]:
        return f"{label}: range {item!r} runs backwards"
    return None
