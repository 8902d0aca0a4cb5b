"""The base of every recipe and stage config: no field takes a value it would only coerce by
accident.

pydantic's lax mode (which we want: "path: model.pt" becomes a Path, "per-channel" a Literal,
[1, 8, 8] a tuple) also turns ``true`` into ``1`` for int and float fields and lets ``.inf`` /
``.nan`` through a float field, so ``max_drop: true`` or ``train: .inf`` would pass a bound
they never meant. pydantic has no per-type switch for "lax, except bool -> number", and
``strict=True`` would refuse the coercions above, so :class:`StrictModel` checks the raw value
of every field against its annotation before pydantic converts it. Nested option classes
that derive from plain ``BaseModel`` (a stage's ``schedule:`` or ``recovery:`` block) are
walked too, so a stage module does not have to remember to use this base for them.

No field of a recipe is silently ignored either: a config lists, given its other values, the
fields it would not read (:meth:`StrictModel.ignored_fields`), and :func:`ignored_problems` refuses
a recipe that wrote one of them (pydantic's ``model_fields_set``: what the YAML said, not the
defaults) with one line naming it (``stages[0].weight-quantize.group_size: has no effect: …``).
A field with an obvious meaning for another one fills it instead (:meth:`StrictModel.implied_values`:
``group_size`` alone means ``granularity: per-group``).
"""

from __future__ import annotations

import math
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

_UNION = (Union, types.UnionType)
_SEQUENCES = (list, tuple, set, frozenset)


class StrictModel(BaseModel):
    """Unknown keys are errors; a boolean is never a number; inf/nan never pass a float; a field
    the configuration would not read says so (:func:`ignored_problems`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def ignored_fields(self) -> dict[str, str]:
        """Fields this configuration would not read, given its other values → why (one line).

        Names may be dotted to reach into a nested block (``calibration.percentile``). Only the
        recipe as a user wrote it is held to this (:func:`ignored_problems`): a dump of a valid
        config (a ZenML step's parameters, the recipe a version was registered with) sets every
        field, and code may pass defaults it does not care about.
        """
        return {}

    def implied_values(self) -> dict[str, Any]:
        """Values that fields left unset take from the ones that were set (per-group
        granularity from a ``group_size``)."""
        return {}

    # Runs before the subclasses' own "after" validators, so they check the implied values.
    @model_validator(mode="after")
    def _fill_implied(self) -> Any:
        for name, value in self.implied_values().items():
            if name not in self.model_fields_set:
                object.__setattr__(self, name, value)  # frozen: set once, while validating
                self.model_fields_set.add(name)  # a dump of what was written keeps its meaning
        return self

    # A model-level check (not a field validator: pydantic allows none on the discriminator
    # fields of tagged unions); each problem still carries its field path as its location.
    @model_validator(mode="before")
    @classmethod
    def _no_accidental_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        errors = []
        for name, field in cls.model_fields.items():
            key = field.alias if field.alias in data else name
            if key not in data:
                continue
            found = value_problem(field.annotation, data[key], (key,))
            if found:
                loc, message = found
                error = PydanticCustomError("accidental_number", message)
                errors.append(InitErrorDetails(type=error, loc=loc, input=data[key]))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


def ignored_problems(value: Any, path: str) -> list[str]:
    """``path.field: has no effect: why`` for every field written in ``value`` (a validated
    recipe, or any part of it) that the configuration holding it would not read."""
    if isinstance(value, (list, tuple)):
        return [p for i, item in enumerate(value) for p in ignored_problems(item, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in ignored_problems(item, f"{path}.{key}")]
    if not isinstance(value, BaseModel):
        return []
    problems = []
    if isinstance(value, StrictModel):
        problems = [f"{path}.{name}: has no effect: {why}".lstrip(".")
                    for name, why in value.ignored_fields().items() if _written(value, name)]
    for name, field in type(value).model_fields.items():
        if name in value.model_fields_set:
            problems += ignored_problems(getattr(value, name), f"{path}.{field.alias or name}".lstrip("."))
    return problems


def _written(model: BaseModel, dotted: str) -> bool:
    """Whether ``dotted`` (``calibration.percentile``) was set on every level."""
    *parents, name = dotted.split(".")
    for parent in parents:
        if parent not in model.model_fields_set or not isinstance(getattr(model, parent), BaseModel):
            return False
        model = getattr(model, parent)
    return name in model.model_fields_set


Problem = tuple[tuple[Any, ...], str]


def value_problem(annotation: Any, value: Any, loc: tuple[Any, ...] = ()) -> Problem | None:
    """(location, why) if ``value`` must not be coerced to ``annotation``, else None."""
    members = _members(annotation)
    if any(m is Any or m is object for m in members):
        return None
    if isinstance(value, bool):
        if _wants_number(members) and not _accepts_bool(members):
            return loc, f"{str(value).lower()} is a boolean, not a number"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        if any(m is float for m in members):
            return loc, f"{value} is not a finite number"
        return None
    if isinstance(value, dict):
        return _first_clean(members, lambda m: _mapping_problem(m, value, loc))
    if isinstance(value, _SEQUENCES):
        return _first_clean(members, lambda m: _sequence_problem(m, list(value), loc))
    return None


def _first_clean(members: list[Any], check: Any) -> Problem | None:
    """None if any union member that fits the value's shape takes it cleanly, else its problem."""
    problems = [check(m) for m in members]
    fitting = [p for p in problems if p is not _NOT_THIS_SHAPE]
    if not fitting or any(p is None for p in fitting):
        return None
    return fitting[0]


_NOT_THIS_SHAPE: Any = object()


def _mapping_problem(member: Any, value: dict[Any, Any], loc: tuple[Any, ...]) -> Any:
    if isinstance(member, type) and issubclass(member, StrictModel):
        return None  # it checks itself when pydantic validates it
    if isinstance(member, type) and issubclass(member, BaseModel):
        fields = {f.alias: f for f in member.model_fields.values() if f.alias}
        fields.update(member.model_fields)
        for key, item in value.items():
            field = fields.get(key)
            problem = field and value_problem(field.annotation, item, (*loc, key))
            if problem:
                return problem
        return None
    if get_origin(member) is dict or member is dict:
        args = get_args(member)
        for key, item in value.items():
            problem = args and value_problem(args[1], item, (*loc, key))
            if problem:
                return problem
        return None
    return _NOT_THIS_SHAPE


def _sequence_problem(member: Any, items: list[Any], loc: tuple[Any, ...]) -> Any:
    origin, args = get_origin(member), get_args(member)
    if origin not in _SEQUENCES and member not in _SEQUENCES:
        return _NOT_THIS_SHAPE
    if not args:
        return None
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        pairs = list(zip(args, items, strict=False))  # a length mismatch is pydantic's to report
    else:
        pairs = [(args[0], item) for item in items]
    for index, (item_type, item) in enumerate(pairs):
        problem = value_problem(item_type, item, (*loc, index))
        if problem:
            return problem
    return None


def _members(annotation: Any) -> list[Any]:
    """The alternatives of ``annotation``: unions flattened, Annotated and NewType unwrapped."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif hasattr(annotation, "__supertype__"):  # typing.NewType
            annotation = annotation.__supertype__
        else:
            break
    if get_origin(annotation) in _UNION:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _wants_number(members: list[Any]) -> bool:
    for member in members:
        if isinstance(member, type) and issubclass(member, (int, float)) and member is not bool:
            return True
        if get_origin(member) is Literal and any(_is_number(v) for v in get_args(member)):
            return True
    return False


def _accepts_bool(members: list[Any]) -> bool:
    literal_bools = any(get_origin(m) is Literal and any(isinstance(v, bool) for v in get_args(m))
                        for m in members)
    return literal_bools or any(m is bool for m in members)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
