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
    """Unknown keys are errors; a boolean is never a number; inf/nan never pass a float."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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
